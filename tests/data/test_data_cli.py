import numpy as np

from learnlab.cli import main


def test_write_shuffle_inspect_quality_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "set.npz", x=rng.normal(size=(1000, 4)).astype(np.float32), y=rng.integers(0, 5, 1000))
    sorted_set, shuffled = str(tmp_path / "sorted"), str(tmp_path / "shuffled")
    assert main(["data", "write", str(tmp_path / "set.npz"), sorted_set, "--records-per-shard", "50",
                 "--sort-by", "y"]) == 0
    assert main(["data", "shuffle", sorted_set, shuffled, "--blocks", "5", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["data", "inspect", sorted_set]) == 0
    sorted_h = float(capsys.readouterr().out.split("homogeneity h = ")[1])
    assert main(["data", "inspect", shuffled]) == 0
    out = capsys.readouterr().out
    assert "offline pass" in out and float(out.split("homogeneity h = ")[1]) < sorted_h / 2
    assert main(["data", "quality", shuffled, "--order", "corgi2", "--blocks", "4"]) == 0
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert int(lines["requests"]) == 20 and float(lines["batch_label_kl"]) < 0.5


def test_bad_data_input_is_one_error_line(tmp_path, capsys):
    assert main(["data", "write", str(tmp_path / "missing.npz"), str(tmp_path / "out")]) == 2
    assert main(["data", "inspect", str(tmp_path / "nothing")]) == 2
    assert main(["data", "quality", str(tmp_path / "nothing"), "--order", "corgipile"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("learnlab: error: ") for e in errors)
    assert "no index.json" in errors[1]
