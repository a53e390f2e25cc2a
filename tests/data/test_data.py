"""learnlab.data: shards, orders, the loader, the offline pass, I/O accounting, quality metrics."""

import io
import tarfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.data import (ORDERS, DataError, NpySource, ShardedDataset, ShardedLoader, WebDatasetSource, epoch_plan,
                           offline_shuffle, plan_order, worker_blocks, write_arrays)
from learnlab.data import offline as offline_module
from learnlab.data.quality import (batch_label_kl, epoch_correlation, expected_homogeneity, homogeneity,
                                   mean_displacement, order_spearman)


def _sorted_set(url, n=600, b=20, classes=6, seed=0, row_group_size=None):
    rng = np.random.default_rng(seed)
    y = np.sort(rng.integers(0, classes, n))
    x = (rng.normal(size=(n, 3)) + y[:, None]).astype(np.float32)
    write_arrays(url, {"x": x, "y": y}, b, row_group_size=row_group_size)
    return x, y


@settings(max_examples=60, deadline=None)
@given(n_records=st.integers(1, 300), per_shard=st.integers(1, 40), ranks=st.integers(1, 3),
       workers=st.integers(1, 3), order=st.sampled_from(ORDERS), n_blocks=st.integers(1, 5),
       epoch=st.integers(0, 3))
def test_every_record_once_per_epoch_across_ranks_and_workers(n_records, per_shard, ranks, workers, order, n_blocks,
                                                            epoch):
    sizes = np.array([min(per_shard, n_records - s) for s in range(0, n_records, per_shard)])  # uneven last shard
    emitted = []
    for w in range(ranks * workers):
        blocks = worker_blocks(len(sizes), seed=7, epoch=epoch, worker=w, n_workers=ranks * workers)
        plan = epoch_plan(order, sizes, seed=7 + w, epoch=epoch, n_blocks=n_blocks, blocks=blocks)
        emitted.append(plan_order(plan, sizes))
    everything = np.concatenate(emitted)
    assert np.array_equal(np.sort(everything), np.arange(n_records))


def test_the_loader_emits_its_plan_for_every_order_and_across_dataloader_workers(tmp_path):
    x, y = _sorted_set(str(tmp_path / "d"), n=430, b=25)  # uneven last shard
    dataset = ShardedDataset(str(tmp_path / "d"))
    for order in ORDERS:
        loader = ShardedLoader(dataset, order, batch_size=16, n_blocks=3, seed=5)
        emitted = torch.cat([batch["y"] for batch in loader]).numpy()
        assert np.array_equal(emitted, y[plan_order(loader.plan(), dataset.shard_sizes)]), order
    # Two DataLoader worker processes and two ranks: every record exactly once per epoch.
    seen = []
    for rank in range(2):
        loader = ShardedLoader(dataset, "corgipile", batch_size=None, n_blocks=2, seed=1, rank=rank, world_size=2)
        seen += [int(r["x"].sum() * 1e4) for r in torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2)]
    assert sorted(seen) == sorted(int(v * 1e4) for v in x.sum(1))


@pytest.mark.parametrize("order", ["corgipile", "sliding_buffer", "full", "shard"])
def test_a_run_resumed_mid_epoch_continues_the_same_order(tmp_path, order):
    _, y = _sorted_set(str(tmp_path / "d"), n=400, b=20)
    dataset = ShardedDataset(str(tmp_path / "d"))
    reference = ShardedLoader(dataset, order, batch_size=10, n_blocks=3, seed=2)
    reference.set_epoch(3)
    whole = [b["y"] for b in reference]
    interrupted = ShardedLoader(dataset, order, batch_size=10, n_blocks=3, seed=2)
    interrupted.set_epoch(3)
    first = []
    for batch in interrupted:
        first.append(batch["y"])
        if len(first) == 17:
            break
    state = interrupted.state_dict()
    assert state == {"epoch": 3, "emitted": 170}
    resumed = ShardedLoader(dataset, order, batch_size=10, n_blocks=3, seed=2)
    resumed.load_state_dict(state)
    rest = [b["y"] for b in resumed]
    assert torch.equal(torch.cat(first + rest), torch.cat(whole))


def test_io_accounting_per_order(tmp_path):
    _sorted_set(str(tmp_path / "d"), n=600, b=20)
    dataset = ShardedDataset(str(tmp_path / "d"))
    counts = {}
    for order in ("full", "sequential", "corgipile", "sliding_buffer"):
        loader = ShardedLoader(dataset, order, batch_size=32, n_blocks=5)
        for _ in loader:
            pass
        counts[order] = loader.last_epoch_stats
    assert counts["sequential"].requests == 30 and counts["sequential"].noncontiguous_requests == 1
    assert counts["corgipile"].requests == 30 and counts["corgipile"].noncontiguous_requests > 20
    assert counts["corgipile"].bytes_read == counts["sequential"].bytes_read
    assert 600 <= counts["full"].requests <= 600 + 30  # one per record, plus each shard's footer once
    assert counts["full"].peak_buffer_bytes < counts["corgipile"].peak_buffer_bytes
    # 5 blocks x 20 records x (x: 3 float32, y: int64, lineage: 2 int32)
    assert counts["corgipile"].peak_buffer_bytes == 100 * (3 * 4 + 8 + 2 * 4)


def test_random_access_reads_one_row_group(tmp_path):
    x, y = _sorted_set(str(tmp_path / "d"), n=100, b=50, row_group_size=5)
    dataset = ShardedDataset(str(tmp_path / "d"))
    record = dataset.read_record(1, 17)
    assert np.array_equal(record["x"][0], x[67]) and record["y"][0] == y[67]
    dataset.storage.reset_stats()
    dataset.read_record(1, 3)
    assert dataset.storage.stats.requests == 1 and dataset.storage.stats.bytes_read < dataset.entries[1]["bytes"] / 5


def test_the_offline_pass_is_a_permutation_that_lowers_homogeneity_as_the_formula_says(tmp_path):
    x, y = _sorted_set(str(tmp_path / "src"), n=8000, b=20, classes=10)
    h = homogeneity(y, np.full(400, 20))
    index, io = offline_shuffle(str(tmp_path / "src"), str(tmp_path / "dst"), 5, seed=3)
    out = ShardedDataset(str(tmp_path / "dst"))
    records = [out.read_shard(i) for i in range(len(out.shard_sizes))]
    source_shard = np.concatenate([r["_lineage_shard"] for r in records])
    source_row = np.concatenate([r["_lineage_row"] for r in records])
    flat = source_shard * 20 + source_row
    assert np.array_equal(np.sort(flat), np.arange(8000))  # a permutation, by lineage
    assert np.array_equal(np.concatenate([r["x"] for r in records]), x[flat])  # carrying the right records
    shuffled_y = np.concatenate([r["y"] for r in records])
    # 80 groups: the between-group part of h is estimated to about +-16% (one standard deviation)
    assert homogeneity(shuffled_y, out.shard_sizes) == pytest.approx(expected_homogeneity(h, 5), rel=0.35)
    assert io.requests == 400 and io.write_requests == 400  # one read and one write per block
    assert ShardedDataset(str(tmp_path / "src")).n_records == 8000  # the source is untouched


def test_a_killed_offline_pass_leaves_no_dataset_and_a_rerun_completes_it_identically(tmp_path, monkeypatch):
    _sorted_set(str(tmp_path / "src"), n=400, b=20)
    offline_shuffle(str(tmp_path / "src"), str(tmp_path / "reference"), 4, seed=9)
    real = offline_module.shuffle_group
    calls = {"n": 0}

    def dies_on_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(offline_module, "shuffle_group", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        offline_shuffle(str(tmp_path / "src"), str(tmp_path / "dst"), 4, seed=9)
    assert not (tmp_path / "dst" / "index.json").exists()
    with pytest.raises(DataError, match="no index.json"):
        ShardedDataset(str(tmp_path / "dst"))
    monkeypatch.setattr(offline_module, "shuffle_group", real)
    offline_shuffle(str(tmp_path / "src"), str(tmp_path / "dst"), 4, seed=9)
    done, reference = ShardedDataset(str(tmp_path / "dst")), ShardedDataset(str(tmp_path / "reference"))
    assert [e["sha256"] for e in done.entries] == [e["sha256"] for e in reference.entries]
    with pytest.raises(DataError, match="already holds a dataset"):
        offline_shuffle(str(tmp_path / "src"), str(tmp_path / "dst"), 4, seed=9)


def test_two_passes_mix_more_and_memory_urls_work():
    _, y = _sorted_set("memory://two/src", n=1000, b=20, classes=10)
    offline_shuffle("memory://two/src", "memory://two/one", 5, seed=0)
    offline_shuffle("memory://two/src", "memory://two/two", 5, seed=0, passes=2)
    h = {}
    for name in ("one", "two"):
        d = ShardedDataset(f"memory://two/{name}")
        h[name] = homogeneity(np.concatenate([d.read_shard(i)["y"] for i in range(len(d.shard_sizes))]), d.shard_sizes)
    assert h["two"] < h["one"] < homogeneity(y, np.full(50, 20))


def test_corrupt_truncated_and_missing_shards_are_named(tmp_path):
    _sorted_set(str(tmp_path / "d"), n=100, b=20)
    shard = tmp_path / "d" / "shard-00002.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    dataset = ShardedDataset(str(tmp_path / "d"))
    with pytest.raises(DataError, match="shard 'shard-00002.parquet' is corrupt"):
        dataset.read_shard(2)
    shard.write_bytes(bytes(data[:200]))
    with pytest.raises(DataError, match="shard 'shard-00002.parquet' is truncated"):
        dataset.read_shard(2)
    shard.unlink()
    with pytest.raises(DataError, match="shard 'shard-00002.parquet' is missing"):
        list(ShardedLoader(dataset, "sequential"))
    (tmp_path / "d" / "index.json").write_text("{not json")
    with pytest.raises(DataError, match="index.json is corrupt"):
        ShardedDataset(str(tmp_path / "d"))


def test_a_buffer_larger_than_allowed_is_refused(tmp_path):
    _sorted_set(str(tmp_path / "d"), n=200, b=20)
    dataset = ShardedDataset(str(tmp_path / "d"))
    with pytest.raises(DataError, match="exceeds the memory allowed"):
        ShardedLoader(dataset, "corgipile", n_blocks=10, max_buffer_bytes=1000)
    with pytest.raises(DataError, match="unknown order"):
        ShardedLoader(dataset, "random")


def test_npy_and_webdataset_adapters(tmp_path):
    x = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    y = np.arange(50) % 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    npy = NpySource(str(tmp_path), {"x": "x.npy", "y": "y.npy"}, records_per_block=12)
    assert list(npy.shard_sizes) == [12, 12, 12, 12, 2]
    assert np.array_equal(npy.read_shard(4)["x"], x[48:]) and np.array_equal(npy.read_record(2, 5)["y"], y[29:30])
    batches = list(ShardedLoader(npy, "corgipile", batch_size=7, n_blocks=2))
    assert sorted(torch.cat([b["x"][:, 0] for b in batches]).tolist()) == sorted(x[:, 0].tolist())
    for shard in range(2):  # WebDataset tars: key.x.npy + key.cls per record
        with tarfile.open(tmp_path / f"wds-{shard}.tar", "w") as tar:
            for i in range(shard * 25, shard * 25 + 25):
                for suffix, payload in (("x.npy", _npy_bytes(x[i])), ("cls", str(y[i]).encode())):
                    info = tarfile.TarInfo(f"{i:06d}.{suffix}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    wds = WebDatasetSource(str(tmp_path), ["wds-0.tar", "wds-1.tar"])
    assert list(wds.shard_sizes) == [25, 25]
    assert np.array_equal(wds.read_shard(1)["x.npy"], x[25:]) and wds.read_record(0, 4)["cls"][0] == y[4]
    wds.storage.reset_stats()
    wds.read_record(1, 3)
    assert wds.storage.stats.requests == 1


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_quality_metrics_on_known_orders():
    labels = np.repeat(np.arange(10), 100)  # sorted
    identity = np.arange(1000)
    shuffled = np.random.default_rng(0).permutation(1000)
    assert order_spearman(identity) == 1.0 and mean_displacement(identity) == 0.0
    assert abs(order_spearman(shuffled)) < 0.1 and mean_displacement(shuffled) == pytest.approx(1 / 3, abs=0.03)
    assert batch_label_kl(identity, labels, 50) == pytest.approx(np.log(10))  # every batch a single label
    assert batch_label_kl(shuffled, labels, 50) < 0.3
    assert homogeneity(labels, np.full(10, 100)) == pytest.approx(100)  # pure blocks: h = b
    assert homogeneity(labels[shuffled], np.full(10, 100)) == pytest.approx(1, abs=0.5)
    assert epoch_correlation(identity, identity) == 1.0
    assert expected_homogeneity(100, 10) == pytest.approx(10.9)


def test_the_offline_pass_in_a_process_pool_on_a_file_url_equals_the_local_one(tmp_path):
    _sorted_set(f"file://{tmp_path}/src", n=300, b=20)
    offline_shuffle(str(tmp_path / "src"), str(tmp_path / "one"), 3, seed=4)
    offline_shuffle(f"file://{tmp_path}/src", f"file://{tmp_path}/pool", 3, seed=4, workers=2)
    one, pool = ShardedDataset(str(tmp_path / "one")), ShardedDataset(f"file://{tmp_path}/pool")
    assert [e["sha256"] for e in one.entries] == [e["sha256"] for e in pool.entries]  # byte for byte


def test_batches_are_tensors_and_the_transform_sees_them(tmp_path):
    _sorted_set(str(tmp_path / "d"), n=100, b=20)
    loader = ShardedLoader(ShardedDataset(str(tmp_path / "d")), "corgipile", batch_size=32, n_blocks=2,
                           transform=lambda batch: (batch["x"] * 2, batch["y"]))
    batches = list(loader)
    assert [len(y) for _, y in batches] == [32, 32, 32, 4]
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64
    assert len(list(ShardedLoader(ShardedDataset(str(tmp_path / "d")), "shard", batch_size=32, drop_last=True))) == 3
