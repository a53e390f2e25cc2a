import json
import re
from pathlib import Path

import pytest

from learnlab.cli import main
from learnlab.store import Store


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "runs" / "learnlab.sqlite"


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_show_runs_and_report_end_to_end(capsys, store_path, tmp_path):
    code, out, _ = _run(capsys, "run", "hidden-progress", "--preset", "smoke", "--quiet", "--store", str(store_path))
    assert code == 0
    run_id = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{10}", run_id)

    code, out, _ = _run(capsys, "show", run_id, "--store", str(store_path))
    assert code == 0 and "status completed" in out and "task.n_bits = 8" in out
    claim_lines = [line for line in out.splitlines() if line.strip().startswith(("[reproduction] ", "[sanity] "))]
    assert len(claim_lines) == len(Store(store_path).claims(run_id)) > 0
    assert "paper claims: " in out

    # --recheck recomputes the claims from the stored metrics
    Store(store_path).set_claims(run_id, [])
    code, out, _ = _run(capsys, "show", run_id, "--recheck", "--store", str(store_path))
    assert code == 0 and [line for line in out.splitlines()
                          if line.strip().startswith(("[reproduction] ", "[sanity] "))] == claim_lines

    code, out, _ = _run(capsys, "runs", "--store", str(store_path))
    assert code == 0 and run_id in out

    out_dir = tmp_path / "report"
    code, out, _ = _run(capsys, "report", "--store", str(store_path), "--out", str(out_dir))
    assert code == 0
    html = (out_dir / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    captions = json.loads(Store(store_path).artifacts(run_id)["figures.json"].read_text())
    assert len(images) == len(captions) >= 3  # every stored figure of the run
    for src in images:
        assert (out_dir / src).is_file() and (out_dir / src).stat().st_size > 1000
    assert "abrupt-transition" in html and run_id in html and f"runs/{run_id}.html" in html


@pytest.mark.parametrize("args, message", [
    (["run", "hidden-progress", "--preset", "smoke", "model.widht=3"], "Unknown config key 'model.widht'"),
    (["run", "hidden-progress", "--preset", "smoke", "task.k=0"], "must be an int in [1, n_bits=8]. Got 0."),
    (["run", "hidden-progress", "--preset", "smoke", "train.lr=fast"], "'train.lr' parameter must be a float"),
    (["run", "hidden-progress", "--preset", "nope"], "Unknown preset 'nope'"),
    (["run", "no-such-paper"], "Unknown experiment 'no-such-paper'"),
    (["run", "hidden-progress", "--device", "cuda"], "sees no CUDA device"),
    (["sweep", "hidden-progress", "--preset", "smoke", "--grid", "task.k=1,99"], "Got 99."),
    (["show", "nope"], "No run 'nope'"),
    (["run", "hidden-progress", "--resume", "nope"], "No run 'nope'"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_stored(capsys, store_path, args, message):
    if "cuda" in args:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    code, out, err = _run(capsys, *args, "--store", str(store_path))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not store_path.exists() or Store(store_path).list_runs() == []


def test_sweep_runs_the_cross_product_in_a_process_pool(capsys, store_path, monkeypatch):
    monkeypatch.setenv("LEARNLAB_FIGURES", "0")  # the points' rows are checked, not their figures
    code, out, _ = _run(capsys, "sweep", "hidden-progress", "--preset", "smoke", "--grid", "seed=0,1",
                        "--grid", "model.width=8,16", "--jobs", "2", "--quiet", "--store", str(store_path),
                        "train.max_steps=40", "train.eval_every=20")
    assert code == 0, out
    runs = Store(store_path).list_runs()
    assert len(runs) == 4 and all(r.status == "completed" for r in runs)
    assert sorted((r.config["seed"], r.config["model"]["width"]) for r in runs) == [(0, 8), (0, 16), (1, 8), (1, 16)]
    assert all(r.config["train"]["max_steps"] == 40 for r in runs)


def test_reproduce_prints_the_report_path_and_claims_table(capsys, store_path):
    # One experiment, one at a time (the contract test runs every smoke preset; the --jobs
    # test below runs two in a pool).
    code, out, _ = _run(capsys, "reproduce", "hidden-progress", "--preset", "smoke", "--quiet", "--store",
                        str(store_path))
    assert code == 0
    report = Path(out.splitlines()[0].removeprefix("report: "))
    assert report.is_file()
    assert re.search(r"^hidden-progress\s+reproduction\s+seeds-converge\s+.*\s(reproduced|not reproduced|inconclusive)$",
                     out, re.M)
    assert re.search(r"^hidden-progress: paper claims: \d+ reproduced", out, re.M)


def test_reproduce_with_jobs_runs_experiments_in_processes_and_reuses_completed_runs(capsys, store_path):
    names = ("hidden-progress", "sq-vs-pac")
    code, out, err = _run(capsys, "reproduce", *names, "--preset", "smoke", "--jobs", "2", "--quiet",
                          "--store", str(store_path))
    assert code == 0, err
    runs = Store(store_path).list_runs()
    assert sorted(r.experiment for r in runs) == sorted(names) and all(r.status == "completed" for r in runs)
    for name in names:
        assert re.search(rf"^{name}: paper claims: \d+ reproduced", out, re.M)
    # A second call finds both completed with this config and code, and runs nothing.
    code, out, err = _run(capsys, "reproduce", *names, "--preset", "smoke", "--jobs", "2", "--quiet",
                          "--store", str(store_path))
    assert code == 0 and len(Store(store_path).list_runs()) == 2
    assert err.count("already completed as run") == 2


def test_reproduce_rejects_jobs_below_one(capsys, store_path):
    code, _, err = _run(capsys, "reproduce", "hidden-progress", "--preset", "smoke", "--jobs", "0",
                        "--store", str(store_path))
    assert code != 0 and "--jobs must be an int >= 1" in err and not store_path.exists()


def test_list_names_every_experiment_with_its_presets(capsys):
    from learnlab.experiments import EXPERIMENTS, get_experiment

    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name in EXPERIMENTS:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert all(preset in line for preset in get_experiment(name).presets())


def test_figures_can_be_left_for_later(capsys, store_path, monkeypatch):
    monkeypatch.setenv("LEARNLAB_FIGURES", "0")
    code, out, _ = _run(capsys, "run", "hidden-progress", "--preset", "smoke", "--quiet", "--store", str(store_path))
    assert code == 0, out
    (record,) = Store(store_path).list_runs()
    assert record.status == "completed" and Store(store_path).claims(record.id)
    assert not any(name.startswith("figure") for name in Store(store_path).artifacts(record.id))
    monkeypatch.delenv("LEARNLAB_FIGURES")
    code, out, _ = _run(capsys, "show", record.id, "--recheck", "--store", str(store_path))
    assert code == 0, out
    assert "figures.json" in Store(store_path).artifacts(record.id)
