"""Loader throughput and shuffle quality per order, on one label-sorted sharded dataset.

    python benchmarks/corgi2.py [--records 20000] [--per-shard 100] [--blocks 10] [--latency 0 0.02]

Writes a Gaussian-mixture set sorted by label (homogeneous shards) as Parquet shards and
as WebDataset tars, runs the Corgi^2 offline pass, then prints for each loader, in one
table: records/s for one epoch, storage requests, and the mean per-batch label KL
(batches of 64). Rows: reading the shards sequentially with pyarrow (the throughput
reference), our loader in every order (``corgipile`` and ``corgi2`` should be >= 0.8x
sequential), and WebDataset's shard shuffle + sample buffer at the same buffer memory
(``pip install learnlab[bench]``; skipped when webdataset is missing), MosaicML
Streaming (its ``py1e``, ``py1br`` and ``py1s`` shuffles, shuffle block = our buffer) and
LitData (its chunk shuffle, chunks = our shards), each at the same cache memory (the
buffer of ``--blocks`` shards). ``--latency`` adds seconds to every storage request of
every loader (ours through ``ShardedDataset(latency=...)``, theirs by wrapping their local
downloader), to show what remote storage costs: ``--latency 0.02`` is a 20 ms object store.

Target (issue 20): Corgi^2 at least as fast as the fastest of them while its batches are
the closest to i.i.d. (lowest batch label KL).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from learnlab.data import ShardedDataset, ShardedLoader, offline_shuffle, write_arrays  # noqa: E402
from learnlab.data.quality import batch_label_kl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import row  # noqa: E402

BATCH = 64


def _arrays(records: int, classes: int = 10, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The label-sorted Gaussian mixture every loader reads (the same records)."""
    rng = np.random.default_rng(0)
    y = np.sort(rng.integers(0, classes, records))
    return (rng.normal(size=(records, dim)) + y[:, None]).astype(np.float32), y


def make_data(root: Path, records: int, per_shard: int):
    x, y = _arrays(records)
    write_arrays(str(root / "sorted"), {"x": x, "y": y}, per_shard, lineage=False)
    tars = []
    for shard, start in enumerate(range(0, records, per_shard)):
        path = root / "wds" / f"shard-{shard:05d}.tar"
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for i in range(start, min(start + per_shard, records)):
                buffer = io.BytesIO()
                np.save(buffer, x[i])
                for suffix, payload in (("x.npy", buffer.getvalue()), ("cls", str(y[i]).encode())):
                    info = tarfile.TarInfo(f"{i:08d}.{suffix}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        tars.append(str(path))
    return tars


def sequential_reference(url: str) -> tuple[float, int, np.ndarray]:
    import pyarrow.parquet as pq

    dataset = ShardedDataset(url)
    start, labels = time.perf_counter(), []
    for entry in dataset.entries:
        labels.append(pq.read_table(f"{url}/{entry['name']}").column("y").to_numpy())
    return time.perf_counter() - start, len(dataset.entries), np.concatenate(labels)


def ours(url: str, order: str, blocks: int, per_shard: int, latency: float) -> tuple[float, int, np.ndarray]:
    dataset = ShardedDataset(url, latency=latency)
    loader = ShardedLoader(dataset, order, batch_size=BATCH, n_blocks=blocks, buffer_records=blocks * per_shard)
    start = time.perf_counter()
    labels = np.concatenate([batch["y"].numpy() for batch in loader])
    return time.perf_counter() - start, loader.last_epoch_stats.requests, labels


def webdataset_loader(tars: list[str], blocks: int, per_shard: int, latency: float) -> tuple[float, int, np.ndarray]:
    import webdataset as wds
    from webdataset import cache

    pipeline = (wds.WebDataset(tars, shardshuffle=len(tars), empty_check=False).shuffle(blocks * per_shard)
                .decode().to_tuple("x.npy", "cls").batched(BATCH))
    # WebDataset opens a local tar with open() inside StreamingOpen: one storage request a shard.
    original, requests = cache.StreamingOpen.__call__, [0]

    def slow_open(self, urls):
        for item in original(self, urls):
            requests[0] += 1
            time.sleep(latency)
            yield item

    cache.StreamingOpen.__call__ = slow_open
    try:
        start = time.perf_counter()
        labels = np.concatenate([np.asarray(batch[1]) for batch in pipeline])
        seconds = time.perf_counter() - start
    finally:
        cache.StreamingOpen.__call__ = original
    return seconds, requests[0], labels


def _record_bytes(dim: int = 32) -> int:
    return dim * 4 + 8


def _without_torchvision() -> None:
    """Let ``import streaming`` work where torchvision cannot load.

    Streaming's package import pulls in its image datasets (``streaming.vision``), which
    import ``torchvision.datasets.VisionDataset`` and ``to_tensor``; the loaders measured
    here never touch them. PyPI's torchvision does not load beside a local CPU build of torch
    ('operator torchvision::nms does not exist'), so where it cannot be imported, register
    inert stand-ins for just those two names (they raise if anything calls them).
    """
    try:
        import torchvision  # noqa: F401
        return
    except Exception:  # missing, or a build that does not match this torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    import types

    with contextlib.suppress(ImportError):  # streaming imports transformers, which probes torchvision: probe first
        import transformers.feature_extraction_utils  # noqa: F401

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision is not importable here; streaming's image datasets are not available")

    package, datasets = types.ModuleType("torchvision"), types.ModuleType("torchvision.datasets")
    transforms, functional = types.ModuleType("torchvision.transforms"), types.ModuleType("torchvision.transforms.functional")
    datasets.VisionDataset = type("VisionDataset", (), {"__init__": unavailable})
    datasets.CIFAR10 = type("CIFAR10", (), {"__init__": unavailable})
    functional.to_tensor = unavailable
    package.datasets, package.transforms, transforms.functional = datasets, transforms, functional
    sys.modules.update({"torchvision": package, "torchvision.datasets": datasets,
                        "torchvision.transforms": transforms, "torchvision.transforms.functional": functional})


def write_mds(root: Path, x: np.ndarray, y: np.ndarray, per_shard: int) -> str:
    _without_torchvision()
    from streaming import MDSWriter

    out = root / "mds"
    # size_limit in bytes: shards of ~per_shard records, like ours
    with MDSWriter(out=str(out), columns={"x": f"ndarray:float32:{x.shape[1]}", "y": "int"},
                   size_limit=per_shard * (_record_bytes(x.shape[1]) + 16), compression=None) as writer:
        for xi, yi in zip(x, y):
            writer.write({"x": xi, "y": int(yi)})
    return str(out)


@contextlib.contextmanager
def _storage_latency(downloader: type, method: str, latency: float):
    """Every call of ``downloader.method`` (one storage request) sleeps ``latency`` first;
    yields the request counter ``[n]``."""
    original, requests = getattr(downloader, method), [0]

    def slow(self, *args, **kwargs):
        requests[0] += 1
        time.sleep(latency)
        return original(self, *args, **kwargs)

    setattr(downloader, method, slow)
    try:
        yield requests
    finally:
        setattr(downloader, method, original)


def _one_epoch_of_labels(dataset, head: int | None = None) -> tuple[float, np.ndarray]:
    """Labels in the order ``dataset`` yields them, and the seconds it took (the first ``head`` only, if given)."""
    start = time.perf_counter()
    labels = np.fromiter((sample["y"] for sample in itertools.islice(dataset, head)), dtype=np.int64)
    return time.perf_counter() - start, labels


def streaming_loader(remote: str, algorithm: str, blocks: int, per_shard: int, latency: float,
                     head: int | None = None) -> tuple[float, int, np.ndarray]:
    _without_torchvision()
    import streaming.base.storage.download as download
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    with _storage_latency(download.LocalDownloader, "_download_file_impl", latency) as requests, \
            tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as cache:
        record = _record_bytes() + 16
        dataset = StreamingDataset(remote=remote, local=cache, shuffle=True, shuffle_algo=algorithm, shuffle_seed=0,
                                   shuffle_block_size=blocks * per_shard, batch_size=BATCH,
                                   cache_limit=blocks * per_shard * record * 2, predownload=blocks * per_shard)
        seconds, labels = _one_epoch_of_labels(dataset, head)
        if head is not None and getattr(dataset, "_iterator", None) is not None:
            # Stopped early: stop Streaming's download threads before their cache goes away.
            dataset._iterator.exit()
            time.sleep(1.0)
    return seconds, requests[0], labels


def write_litdata(root: Path, x: np.ndarray, y: np.ndarray, per_shard: int) -> str:
    from litdata import optimize

    out = root / "litdata"
    optimize(fn=_lit_item, inputs=[(x[i], int(y[i])) for i in range(len(y))], output_dir=str(out),
             chunk_size=per_shard, num_workers=1, mode="overwrite")
    return str(out)


def _lit_item(item):
    return {"x": item[0], "y": item[1]}


def litdata_loader(remote: str, blocks: int, per_shard: int, latency: float) -> tuple[float, int, np.ndarray]:
    import litdata.streaming.downloader as download
    from litdata import StreamingDataset

    with _storage_latency(download.LocalDownloader, "download_file", latency) as requests, \
            tempfile.TemporaryDirectory() as cache:
        dataset = StreamingDataset(input_dir=f"local:{remote}", cache_dir=cache, shuffle=True, seed=0,
                                   max_cache_size=blocks * per_shard * (_record_bytes() + 64), max_pre_download=blocks)
        seconds, labels = _one_epoch_of_labels(dataset)
    return seconds, requests[0], labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--per-shard", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=10, help="online buffer, in blocks (all loaders)")
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.02],
                        help="seconds added to every storage request; one table per value (default: 0 and 20 ms)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        tars = make_data(root, args.records, args.per_shard)
        offline_shuffle(str(root / "sorted"), str(root / "offline"), args.blocks, seed=0)
        x, y = _arrays(args.records)
        mds = lit = None
        try:
            mds = write_mds(root, x, y, args.per_shard)
        except ImportError:
            print("(mosaicml-streaming not installed: pip install learnlab[bench])")
        try:
            lit = write_litdata(root, x, y, args.per_shard)
        except ImportError:
            print("(litdata not installed: pip install learnlab[bench])")
        for latency in args.latency:
            table(root, tars, mds, lit, args, latency)


def table(root: Path, tars: list[str], mds: str | None, lit: str | None, args, latency: float) -> None:
    """Every loader for one epoch at one storage latency; prints the table and the BENCH rows."""
    rows = [("pyarrow, shards in order", *sequential_reference(str(root / "sorted")))]
    for order in ("sequential", "shard", "sliding_buffer", "corgipile", "corgi2", "full"):
        url = str(root / ("offline" if order == "corgi2" else "sorted"))
        if order == "full":
            # Random access is a request a record or so: time the head of its epoch.
            head = 20_000 if latency == 0 else 1_000
            if args.records > head:
                rows.append((f"learnlab {order} (first {head:,} records)", *_partial_full(url, latency, head)))
                continue
        rows.append((f"learnlab {order}", *ours(url, order, args.blocks, args.per_shard, latency)))
    try:
        rows.append(("webdataset shardshuffle + buffer", *webdataset_loader(tars, args.blocks, args.per_shard, latency)))
    except ImportError:
        print("(webdataset not installed: pip install learnlab[bench])")
    if mds is not None:
        for algorithm in ("py1e", "py1br"):
            rows.append((f"mosaicml-streaming {algorithm}",
                         *streaming_loader(mds, algorithm, args.blocks, args.per_shard, latency)))
        # py1s re-fetches a shard for almost every sample at this cache size (~1.8 requests a
        # record): like random access, time the head of its epoch, on local storage only.
        if latency == 0:
            head = min(args.records, 5_000)
            rows.append((f"mosaicml-streaming py1s (first {head:,} records)",
                         *streaming_loader(mds, "py1s", args.blocks, args.per_shard, latency, head)))
    if lit is not None:
        rows.append(("litdata chunk shuffle", *litdata_loader(lit, args.blocks, args.per_shard, latency)))
    reference = args.records / rows[0][1]
    frequencies = np.bincount(rows[0][3].astype(np.int64)) / args.records
    print(f"\n{args.records:,} records, {args.per_shard} per shard, sorted by label; buffers of {args.blocks} blocks "
          f"({args.blocks * args.per_shard:,} records); {latency * 1e3:g} ms a storage request (pyarrow in order: "
          f"none); batch label KL over batches of {BATCH}")
    print(f"{'loader':<42} {'records/s':>12} {'vs seq.':>8} {'requests':>9} {'batch KL':>9}")
    for name, seconds, requests, labels in rows:
        order = np.arange(len(labels))
        # Against the whole set's label histogram: a head of an epoch may hold few classes.
        kl = batch_label_kl(order, labels.astype(np.int64), BATCH, reference=frequencies)
        rate = len(labels) / seconds
        print(f"{name:<42} {rate:>12,.0f} {rate / reference:>7.2f}x {requests:>9,} {kl:>9.3f}")
        row(f"{name} ({latency * 1e3:g} ms a request)", seconds, baseline="pyarrow in order",
            baseline_seconds=rows[0][1] * len(labels) / args.records,
            target=f"batch KL {kl:.3f}; Corgi^2 fastest with lowest KL" if "corgi2" in name else f"batch KL {kl:.3f}")


def _partial_full(url: str, latency: float, head: int) -> tuple[float, int, np.ndarray]:
    """Random access is ~10^3x slower: time the first ``head`` records of its epoch."""
    dataset = ShardedDataset(url, latency=latency)
    loader = ShardedLoader(dataset, "full", batch_size=BATCH)
    start, labels = time.perf_counter(), []
    for batch in loader:
        labels.append(batch["y"].numpy())
        if sum(len(b) for b in labels) >= head:
            break
    return time.perf_counter() - start, dataset.storage.stats.requests, np.concatenate(labels)


if __name__ == "__main__":
    main()
