"""What a researcher reaches first: config you can see, runs you can take away, the Python API."""

import json

import pyarrow.parquet as pq
import pytest

import learnlab
from learnlab.cli import main
from learnlab.config import ConfigError
from learnlab.runner import execute
from learnlab.store import Store
from tests.report import toy_experiment as toy


def _cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def toy_run(tmp_path):
    store = Store(tmp_path / "runs" / "learnlab.sqlite")
    outcome = execute(toy, toy.Config(n_seeds=3, steps=5), store=store, preset="quick", device="cpu", quiet=True)
    return store, outcome.run_id


def test_config_prints_every_key_with_type_limits_and_help(capsys):
    code, out, _ = _cli(capsys, "config", "sq-vs-pac", "--preset", "smoke", "k=3")
    assert code == 0
    assert "n_seeds" in out and "in [1, 64]" in out and "independent runs" in out and "channel.rho" in out
    assert "``" not in out
    code, out, _ = _cli(capsys, "config", "sq-vs-pac", "--json", "steps=7")
    assert code == 0 and json.loads(out)["steps"] == 7


def test_unknown_key_suggests_the_closest(capsys):
    code, _, err = _cli(capsys, "config", "sq-vs-pac", "n_bit=3")
    assert code == 2 and "did you mean 'n_bits'" in err and len(err.strip().splitlines()) == 1


def test_run_help_lists_experiments_and_presets(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "hidden-progress" in out and "scaling_all" in out and "copying" in out


def test_show_latest_and_json(capsys, toy_run):
    store, run_id = toy_run
    code, out, _ = _cli(capsys, "show", "latest", "--json", "--store", str(store.path))
    data = json.loads(out)
    assert code == 0 and data["id"] == run_id and data["experiment"] == "toy"
    assert {c["kind"] for c in data["claims"]} == {"reproduction", "sanity"}
    reproduction = next(c for c in data["claims"] if c["kind"] == "reproduction")
    assert len(reproduction["ci"]) == 2 and reproduction["source"] and reproduction["verdict"] in (
        "reproduced", "not reproduced", "inconclusive")
    code, out, _ = _cli(capsys, "show", run_id[:4], "--store", str(store.path))
    assert code == 0 and "paper claims: " in out and "sanity: 1 of 1" in out


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_export_long_form(capsys, toy_run, tmp_path, fmt):
    store, run_id = toy_run
    out_path = tmp_path / f"metrics.{fmt}"
    code, _, _ = _cli(capsys, "export", "latest", "--format", fmt, "--out", str(out_path), "--store", str(store.path))
    assert code == 0
    if fmt == "parquet":
        rows = pq.read_table(out_path).to_pylist()
    elif fmt == "json":
        rows = json.loads(out_path.read_text())
    else:
        lines = out_path.read_text().splitlines()
        assert lines[0].replace('"', "") == "run,experiment,preset,seed,step,name,replica,value"
        rows = lines[1:]
    assert len(rows) == len(store.all_metrics(run_id)) == 5 * 3 + 5  # accuracy per replica, loss scalar
    # Nothing is overwritten.
    code, _, err = _cli(capsys, "export", run_id, "--format", fmt, "--out", str(out_path), "--store", str(store.path))
    assert code == 2 and "exists" in err


def test_export_tensorboard(capsys, toy_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store, run_id = toy_run
    code, _, _ = _cli(capsys, "export", run_id, "--format", "tensorboard", "--out", str(tmp_path / "tb"),
                      "--store", str(store.path))
    assert code == 0
    folder = tmp_path / "tb" / f"toy-quick-{run_id}"
    scalar = EventAccumulator(str(folder)).Reload()
    assert [e.value for e in scalar.Scalars("loss")] == pytest.approx([v for _, n, _, v in store.all_metrics(run_id)
                                                                       if n == "loss"])
    replica = EventAccumulator(str(folder / "replica2")).Reload()
    assert len(replica.Scalars("accuracy")) == 5


def test_python_api(tmp_path, toy_run):
    store, run_id = toy_run
    assert "hidden-progress" in learnlab.experiments() and len(learnlab.experiments()) == 10
    run = learnlab.load("latest", store=str(store.path))
    assert run.id == run_id and run.over_seeds("accuracy").shape == (3,)
    table = run.to_arrow()
    assert table.num_rows == 20 and set(table.column_names) >= {"step", "name", "replica", "value"}
    assert {c.kind for c in run.claims} == {"reproduction", "sanity"}
    with pytest.raises(ConfigError, match="did you mean"):
        learnlab.run("sq-vs-pac", preset="smoke", store=str(tmp_path / "x.sqlite"), n_bit=3)
    assert set(learnlab.__all__) >= {"run", "load", "experiments"}


def test_user_file_flags_follow_the_experiments_declaration(capsys, tmp_path):
    """The CLI knows no experiment's keys: --data maps to what the experiment declares."""
    code, _, err = _cli(capsys, "config", "sq-vs-pac", "--preset", "smoke")
    assert code == 0
    code, _, err = _cli(capsys, "run", "sq-vs-pac", "--preset", "smoke", "--data", str(tmp_path / "x.npz"),
                        "--store", str(tmp_path / "s.sqlite"))
    assert code == 2 and "takes no --data" in err and "sampler-distillation" in err
    assert not (tmp_path / "s.sqlite").exists()
