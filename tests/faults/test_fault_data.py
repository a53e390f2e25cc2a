"""Faults in sharded data (#18): a killed offline pass rerun with other arguments, a destination
inside its source, byte flips and truncations of shards (every read path) and of indexes,
writes over existing datasets, interrupted writes, and malformed arrays. Each gives the
right result or one ``learnlab: error:`` line, and loses nothing."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnlab.data import DataError, ShardedDataset, ShardedLoader, offline_shuffle, write_arrays
from learnlab.data.offline import shuffle_group
from learnlab.data.shards import INDEX, LINEAGE_ROW, LINEAGE_SHARD, ShardWriter
from _support import cli, file_hashes, one_error

VICTIM = Path(__file__).with_name("_victim.py")


def _sorted_set(url: str, n: int = 2000, per_shard: int = 20, row_group_size: int | None = None) -> dict:
    rng = np.random.default_rng(0)
    return write_arrays(url, {"x": rng.normal(size=(n, 3)).astype(np.float32), "y": np.sort(rng.integers(0, 10, n))},
                        per_shard, row_group_size=row_group_size)


def _column(url: str, name: str) -> np.ndarray:
    dataset = ShardedDataset(url)
    return np.concatenate([dataset.read_shard(i)[name] for i in range(len(dataset.shard_sizes))])


# -- the offline pass (cases 1, 14) ---------------------------------------------------------------


def test_a_killed_offline_pass_rerun_with_other_arguments_is_refused_and_with_its_own_completes(tmp_path, capsys):
    source, destination = str(tmp_path / "sorted"), str(tmp_path / "out")
    _sorted_set(source)  # 100 shards of 20: 10 groups of 10 blocks
    victim = subprocess.run([sys.executable, str(VICTIM), "data", "shuffle", source, destination, "--blocks", "10",
                             "--seed", "0", "--quiet"], env={**os.environ, "FAULT": "group:4:kill"},
                            capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stderr
    assert not (tmp_path / "out" / INDEX).exists()  # four groups done, nothing committed
    before = file_hashes(tmp_path)
    code, _, err = cli(capsys, "data", "shuffle", source, destination, "--blocks", "10", "--seed", "1", "--quiet")
    one_error(code, err, "holds an unfinished offline pass with other arguments", "seed 0 (now 1)")
    code, _, err = cli(capsys, "data", "shuffle", source, destination, "--blocks", "5", "--seed", "0", "--quiet")
    one_error(code, err, "n_blocks 10 (now 5)")
    assert file_hashes(tmp_path) == before
    # The same arguments finish the pass: the same dataset, byte for byte, as a pass never interrupted.
    assert cli(capsys, "data", "shuffle", source, destination, "--blocks", "10", "--seed", "0", "--quiet")[0] == 0
    offline_shuffle(source, str(tmp_path / "clean"), 10, 0)
    assert ShardedDataset(destination).index["shards"] == ShardedDataset(str(tmp_path / "clean")).index["shards"]
    lineage = _column(destination, LINEAGE_SHARD) * 20 + _column(destination, LINEAGE_ROW)
    assert sorted(lineage.tolist()) == list(range(2000))  # every source record once: none lost, none twice


def test_a_finished_groups_marker_is_reused_only_by_the_same_task(tmp_path):
    source = f"memory://{uuid.uuid4().hex}/src"
    _sorted_set(source, n=200, per_shard=20)
    out = str(tmp_path / "out")
    first, _ = shuffle_group(source, out, 0, [3, 1], seed=0, pass_index=0)
    again, io = shuffle_group(source, out, 0, [3, 1], seed=0, pass_index=0)
    assert again == first and io == {}  # skipped: its marker says it is done
    other, io = shuffle_group(source, out, 0, [3, 1], seed=1, pass_index=0)
    assert other != first and io["write_requests"] == 2  # redone: the marker was another task's


@pytest.mark.parametrize("destination", ["sorted/sub", "sorted", "sorted/../sorted", "."])
def test_an_offline_pass_never_writes_inside_its_source_or_around_it(tmp_path, capsys, monkeypatch, destination):
    monkeypatch.chdir(tmp_path)
    _sorted_set("sorted", n=200)
    before = file_hashes(tmp_path)
    code, _, err = cli(capsys, "data", "shuffle", "sorted", destination, "--blocks", "5", "--quiet")
    one_error(code, err)
    assert "must not be" in err or "already" in err
    assert file_hashes(tmp_path) == before


# -- shards and indexes: what is read is verified (cases 3, 4) ----------------------------------------


@pytest.fixture(scope="module")
def small_dataset() -> tuple[str, dict, dict]:
    """Three shards of 8 records in row groups of 3, and every record as written."""
    url = f"memory://{uuid.uuid4().hex}/set"
    index = _sorted_set(url, n=24, per_shard=8, row_group_size=3)
    dataset = ShardedDataset(url)
    records = {(s, r): dataset.read_record(s, r) for s in range(3) for r in range(8)}
    files = {e["name"]: dataset.storage.read(e["name"]) for e in index["shards"]}
    return url, files, records


def _damaged_copy(url: str, files: dict, name: str, damage) -> str:
    import fsspec

    copy = f"memory://{uuid.uuid4().hex}/set"
    fs = fsspec.filesystem("memory")
    fs.pipe(copy.removeprefix("memory://") + "/" + INDEX, fs.cat(url.removeprefix("memory://") + "/" + INDEX))
    for shard, data in files.items():
        fs.pipe(copy.removeprefix("memory://") + "/" + shard, damage(data) if shard == name else data)
    return copy


def _damage(position: float, flip: int, cut: bool):
    def apply(data: bytes) -> bytes:
        index = int(position * len(data))
        if cut:
            return data[:index]
        damaged = bytearray(data)
        damaged[index] ^= flip
        return bytes(damaged)
    return apply


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shard=st.integers(0, 2), position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255),
       cut=st.booleans())
def test_a_flipped_byte_or_truncation_of_a_shard_is_never_read_as_data(small_dataset, shard, position, flip, cut):
    url, files, records = small_dataset
    name = sorted(files)[shard]
    copy = _damaged_copy(url, files, name, _damage(position, flip, cut))
    with pytest.raises(DataError, match=f"shard '{name}'"):  # a whole-shard read checks the shard's SHA-256
        ShardedDataset(copy).read_shard(shard)
    dataset = ShardedDataset(copy)  # random access reads a row group and the footer: each checked on its own
    for row in range(8):
        try:
            record = dataset.read_record(shard, row)
        except DataError as error:
            assert f"shard '{name}'" in str(error)
            continue
        assert all(np.array_equal(record[k], v) for k, v in records[(shard, row)].items())


def test_the_full_order_refuses_a_flipped_byte_in_a_row_group(small_dataset):
    url, files, _ = small_dataset
    name = sorted(files)[1]
    entry = ShardedDataset(url).entries[1]
    start, end, _ = entry["row_groups"][1]
    copy = _damaged_copy(url, files, name, _damage((start + end) / 2 / entry["bytes"], 0x40, False))
    loader = ShardedLoader(ShardedDataset(copy), "full", batch_size=4)
    with pytest.raises(DataError, match=f"shard '{name}' is corrupt: row group 1 does not match its checksum"):
        list(loader)


@settings(max_examples=60, deadline=None)
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255), cut=st.booleans())
def test_a_flipped_byte_or_truncation_of_an_index_is_refused_or_harmless(small_dataset, position, flip, cut):
    import fsspec

    url, files, _ = small_dataset
    fs = fsspec.filesystem("memory")
    index = fs.cat(url.removeprefix("memory://") + "/" + INDEX)
    copy = _damaged_copy(url, files, "", None)
    fs.pipe(copy.removeprefix("memory://") + "/" + INDEX, _damage(position, flip, cut)(index))
    original = ShardedDataset(url)
    try:
        dataset = ShardedDataset(copy)
    except DataError:
        return
    # Accepted only where the flip changed nothing read (whitespace, the seal's own key).
    assert dataset.entries == original.entries and dataset.schema == original.schema


def test_data_write_refuses_an_existing_dataset_and_leaves_it_readable(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", x=np.arange(40, dtype=np.float32), y=np.arange(40) % 4)
    dataset = tmp_path / "set"
    assert cli(capsys, "data", "write", str(tmp_path / "a.npz"), str(dataset), "--records-per-shard", "2")[0] == 0
    before = file_hashes(tmp_path)
    code, _, err = cli(capsys, "data", "write", str(tmp_path / "a.npz"), str(dataset), "--records-per-shard", "20")
    one_error(code, err, f"{dataset} already exists (it holds a dataset)")
    code, _, err = cli(capsys, "data", "write", str(tmp_path / "a.npz"), str(tmp_path / "a.npz"))
    one_error(code, err, "already exists (it holds a file)")
    assert file_hashes(tmp_path) == before
    assert len(ShardedDataset(str(dataset)).shard_sizes) == 20


def test_an_interrupted_write_leaves_no_destination_and_the_next_write_completes(tmp_path, monkeypatch):
    arrays = {"x": np.arange(100, dtype=np.float32), "y": np.arange(100) % 3}
    original, seen = ShardWriter.write_shard, [0]

    def write_shard(self, name, records):  # the process dies after three shards
        seen[0] += 1
        if seen[0] == 4:
            raise SystemExit("killed")
        return original(self, name, records)

    monkeypatch.setattr(ShardWriter, "write_shard", write_shard)
    with pytest.raises(SystemExit):
        write_arrays(str(tmp_path / "set"), arrays, 10)
    monkeypatch.undo()
    assert not (tmp_path / "set").exists()  # nothing that looks like a dataset, complete or not
    write_arrays(str(tmp_path / "set"), arrays, 10)  # clears the interrupted write's leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert _column(str(tmp_path / "set"), "x").tolist() == arrays["x"].tolist()


# -- malformed arrays (cases 9, 12) ------------------------------------------------------------------


@pytest.mark.parametrize("arrays, extra, message", [
    ({"x": np.zeros((200, 2)), "y": np.zeros(199)}, ["--sort-by", "y"], "columns have different numbers of rows "
                                                                        "(x 200, y 199)"),
    ({"x": np.zeros((200, 2)), "y": np.zeros(199)}, [], "columns have different numbers of rows"),
    ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, [], "has no records (0 rows)"),
    ({"x": np.float32(1.0), "y": np.zeros(3)}, [], "column 'x' is a 0-d array"),
    ({"x": np.zeros(3, dtype=complex), "y": np.zeros(3)}, [], "column 'x' has dtype complex128"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(4)}, ["--sort-by", "x"], "--sort-by 'x': a column of one value a record"),
])
def test_malformed_arrays_are_one_error_line_and_write_nothing(tmp_path, capsys, arrays, extra, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    code, _, err = cli(capsys, "data", "write", str(tmp_path / "bad.npz"), str(tmp_path / "out"), *extra)
    one_error(code, err, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_a_truncated_npz_is_one_error_line(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", x=np.arange(1000.0))
    data = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "a.npz").write_bytes(data[:len(data) // 2])
    code, _, err = cli(capsys, "data", "write", str(tmp_path / "a.npz"), str(tmp_path / "out"))
    one_error(code, err, "not a readable .npz")


def test_negative_labels_are_classes_like_any_other(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.sort(rng.integers(-3, 2, 500))
    x = rng.normal(size=(500, 2))
    for name, labels in (("neg", y), ("pos", y + 3)):  # the same classes, renamed
        np.savez(tmp_path / f"{name}.npz", x=x, y=labels)
        code, _, err = cli(capsys, "data", "write", str(tmp_path / f"{name}.npz"), str(tmp_path / name),
                            "--records-per-shard", "50")
        assert code == 0, err
    outputs = []
    for name in ("neg", "pos"):
        code, out, err = cli(capsys, "data", "inspect", str(tmp_path / name))
        assert code == 0, err
        outputs.append(out.split("homogeneity h = ")[1])
        code, out, err = cli(capsys, "data", "quality", str(tmp_path / name), "--blocks", "2")
        assert code == 0, err
        outputs.append(out.split("batch_label_kl")[1].split()[0])
    assert outputs[:2] == outputs[2:]
