"""Corgi^2: an offline pass plus CorgiPile gives near-i.i.d. batches at the I/O cost of reading blocks.

Paper: Livne, Kaplun, Malach, Shalev-Shwartz, "Corgi^2: A Hybrid Offline-Online Approach
To Storage-Aware Data Shuffling For SGD" (arXiv 2309.01640), building on Xu et al.,
"CorgiPile" (SIGMOD 2022). No official code; the loader is ``learnlab.data``.

Setting: a labelled data set **sorted by label** and written to Parquet shards of b
records (homogeneous blocks, as with the video data the paper targets), an i.i.d. test
set held out. Arms at equal online buffer memory (n_on blocks): full shuffle (random
access), sequential, shard-only, sliding buffer (M = n_on b records), CorgiPile (n_on
blocks), Corgi^2 (one offline pass with groups of n_off, then CorgiPile) and Corgi^2
with two offline passes. Every arm's loader runs one real epoch against the shards for
its I/O counts and to check that it emits exactly its planned order; training then
follows the planned orders of every (arm, seed, epoch) on the same records held in
memory, all arms and seeds stacked as one model (softmax regression and a one-hidden-
layer MLP, plain SGD).

Parts: ``gaussian`` (a 10-class Gaussian mixture, 50,000 records in shards of 100) and
``digits`` (scikit-learn's bundled 8 x 8 digits, 1,797 records in shards of 20).

Presets: ``quick`` (``learnlab run corgi2 --preset quick``, about 50 s on 2 cores),
``blocky`` (blocks of 500 records, a 2-block buffer, lr 0.5: where the order changes the
final model; about 35 s), ``paper`` (200,000 records, 5 seeds, more epochs), ``smoke``
(seconds; the tests).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from learnlab.claims import Claim
from learnlab.config import Interval, param
from learnlab.data import ShardedDataset, ShardedLoader, offline_shuffle, plan_order, write_arrays
from learnlab.data.quality import expected_homogeneity, homogeneity, order_quality
from learnlab.runtime import replica_seeds

if TYPE_CHECKING:
    from learnlab.runner import Run
    from learnlab.store import RunRecord

NAME = "corgi2"
DESCRIPTION = "Livne et al.: Corgi^2 = offline block shuffle + CorgiPile, near-i.i.d. batches at block I/O cost"

ARMS = ("full", "sequential", "shard", "sliding_buffer", "corgipile", "corgi2", "corgi2_2pass")
MODELS = ("softmax", "mlp")

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PartConfig:
    n_records: int = param(50_000, Interval(1, None), help="training records (gaussian; digits uses all it has)")
    n_test: int = param(10_000, Interval(1, None))
    n_classes: int = param(10, Interval(2, None))
    dim: int = param(16, Interval(1, None))
    separation: float = param(1.0, Interval(0.0, None), help="std of the class means (unit noise)")
    records_per_shard: int = param(100, Interval(1, None), help="b")
    n_online: int = param(10, Interval(1, None), help="blocks in the online buffer (CorgiPile, Corgi^2)")
    n_offline: int = param(10, Interval(1, None), help="blocks shuffled together in the offline pass")
    homogeneity_n: tuple[int, ...] = param((10, 100), Interval(1, None), help="n_off values for the h-vs-n_off check")


@dataclass(frozen=True)
class Corgi2Config:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(3, Interval(1, 32))
    parts: tuple[str, ...] = param(("gaussian", "digits"))
    arms: tuple[str, ...] = param(ARMS)
    models: tuple[str, ...] = param(MODELS)
    epochs: int = param(5, Interval(1, None))
    batch_size: int = param(64, Interval(1, None))
    lr: float = param(0.05, Interval(0.0, None, closed="neither"))
    hidden: int = param(64, Interval(1, None), help="MLP hidden units")
    latency: float = param(0.0, Interval(0.0, None), help="seconds added to each storage request (I/O epoch only)")
    gaussian: PartConfig = PartConfig()
    digits: PartConfig = PartConfig(records_per_shard=20, n_online=5, n_offline=10, homogeneity_n=(5, 10, 30))

    def check(self) -> str | None:
        if not self.parts or set(self.parts) - {"gaussian", "digits"}:
            return "'parts' entries must be among gaussian, digits"
        if not self.arms or set(self.arms) - set(ARMS):
            return f"'arms' entries must be among {', '.join(ARMS)}"
        if not self.models or set(self.models) - set(MODELS):
            return "'models' entries must be among softmax, mlp"
        return None


Config = Corgi2Config


def presets() -> dict[str, Config]:
    quick = Config()
    paper = replace(quick, n_seeds=5, epochs=10, gaussian=replace(quick.gaussian, n_records=200_000,
                                                                 homogeneity_n=(10, 30, 100)))
    # Larger homogeneous blocks (500 records, ~8 SGD steps each), a 2-block online buffer and a
    # larger step: the regime where the order changes the final model (the paper's video data).
    blocky = replace(quick, parts=("gaussian",), lr=0.5, gaussian=replace(
        quick.gaussian, records_per_shard=500, n_online=2, homogeneity_n=(5, 10, 20)))
    smoke = replace(quick, n_seeds=2, epochs=2, parts=("gaussian",), hidden=16,
                    gaussian=replace(quick.gaussian, n_records=2000, n_test=500, records_per_shard=50, n_online=4,
                                     n_offline=4, homogeneity_n=(4,)))
    return {"smoke": smoke, "quick": quick, "blocky": blocky, "paper": paper}


# ----------------------------------------------------------------------------- data


def _gaussian(part: PartConfig, seed: int):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=part.separation, size=(part.n_classes, part.dim))

    def draw(count: int):
        y = rng.integers(0, part.n_classes, count)
        return (means[y] + rng.normal(size=(count, part.dim))).astype(np.float32), y.astype(np.int64)

    return draw(part.n_records), draw(part.n_test)


def _digits(seed: int):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    test = order[:len(y) // 4]
    train = order[len(y) // 4:]
    return (x[train], y[train].astype(np.int64)), (x[test], y[test].astype(np.int64))


# ----------------------------------------------------------------------------- runs


def run(cfg: Config, run: Run) -> None:
    for part_name in cfg.parts:
        _part(cfg, part_name, run.scoped(part_name))


def _part(cfg: Config, name: str, run: Run) -> None:
    part: PartConfig = getattr(cfg, name)
    (x, y), (x_test, y_test) = _gaussian(part, cfg.seed) if name == "gaussian" else _digits(cfg.seed)
    order = np.argsort(y, kind="stable")  # sorted by label: homogeneous blocks
    x, y = x[order], y[order]
    root = run.dir / f"{name}_data"
    urls = {"sorted": str(root / "sorted")}
    if not (root / "sorted" / "index.json").exists():
        write_arrays(urls["sorted"], {"x": x, "y": y}, part.records_per_shard)
    sorted_set = ShardedDataset(urls["sorted"])
    h = homogeneity(y, sorted_set.shard_sizes)

    # Offline passes: h after one pass for each n_off, the I/O of a pass, and the datasets the Corgi^2 arms read.
    shuffled: dict[str, ShardedDataset] = {}
    measured_h, offline_io = [], {}
    for n_off in sorted(set(part.homogeneity_n) | {part.n_offline}):
        for passes in ((1, 2) if n_off == part.n_offline else (1,)):
            url = str(root / f"offline_n{n_off}_p{passes}")
            if not (root / f"offline_n{n_off}_p{passes}" / "index.json").exists():
                _, io = offline_shuffle(urls["sorted"], url, n_off, cfg.seed, passes)
                offline_io[(n_off, passes)] = io
            dataset = ShardedDataset(url)
            labels = _column(dataset, "y")
            if passes == 1:
                measured_h.append((n_off, homogeneity(labels, dataset.shard_sizes)))
            if n_off == part.n_offline:
                shuffled["corgi2" if passes == 1 else "corgi2_2pass"] = dataset
    run.log(0, n_records=float(len(y)), n_shards=float(len(sorted_set.shard_sizes)), homogeneity_sorted=h, homogeneity_n=torch.tensor([float(n) for n, _ in measured_h]),
            homogeneity_after=torch.tensor([v for _, v in measured_h]))
    io = offline_io.get((part.n_offline, 1))
    if io is not None:
        run.log(0, offline_requests=float(io.requests + io.write_requests), offline_reads=float(io.requests),
                offline_writes=float(io.write_requests), offline_bytes=float(io.bytes_read + io.bytes_written))

    # Every arm: one real epoch through the loader (I/O, and the emitted order equals the plan).
    datasets = {arm: shuffled.get(arm, sorted_set) for arm in cfg.arms}
    order_of = {"corgi2_2pass": "corgi2"}
    io_rows, contents, stored = {}, {}, {}  # stored: each dataset's (x, y), read once (several arms share one)
    for arm in cfg.arms:
        dataset = ShardedDataset(datasets[arm].storage.url, latency=cfg.latency)
        loader = _loader(cfg, part, arm, dataset, order_of, seed=cfg.seed)
        began = time.perf_counter()
        emitted = np.concatenate([batch["y"].numpy() for batch in loader])
        seconds = time.perf_counter() - began
        planned = plan_order(loader.plan(), dataset.shard_sizes)
        stats = loader.last_epoch_stats
        url = dataset.storage.url
        if url not in stored:
            stored[url] = (torch.from_numpy(_column(dataset, "x")), _column(dataset, "y").astype(np.int64))
        labels = stored[url][1]
        io_rows[arm] = {"requests": stats.requests, "noncontiguous": stats.noncontiguous_requests,
                        "bytes_read": stats.bytes_read, "peak_buffer_bytes": stats.peak_buffer_bytes,
                        "records_per_s": len(emitted) / max(seconds, 1e-9),
                        "matches_plan": float(np.array_equal(emitted, labels[planned]))}
        contents[arm] = (dataset, labels, stored[url][0])
    run.artifact("io", io_rows)
    for arm, row in io_rows.items():  # wall-clock throughput is in the artifact only: it is not reproducible
        run.log(0, **{f"{arm}_{key}": float(value) for key, value in row.items() if key != "records_per_s"})

    # Orders of every (arm, seed, epoch), their quality, and training on them.
    seeds = replica_seeds(cfg.seed, cfg.n_seeds)
    record_x = {arm: contents[arm][2] for arm in cfg.arms}
    record_y = {arm: torch.from_numpy(contents[arm][1]) for arm in cfg.arms}
    shards_of = {arm: np.repeat(np.arange(len(d.shard_sizes)), d.shard_sizes) for arm, (d, _, _) in contents.items()}
    orders = {}
    for arm in cfg.arms:
        dataset = contents[arm][0]
        for s, seed in enumerate(seeds):
            loader = _loader(cfg, part, arm, dataset, order_of, seed=seed)
            for epoch in range(cfg.epochs):
                loader.set_epoch(epoch)
                orders[arm, s, epoch] = plan_order(loader.plan(), dataset.shard_sizes)
        quality = [order_quality(orders[arm, s, 0], contents[arm][1], shards_of[arm], cfg.batch_size)
                   for s in range(len(seeds))]
        run.log(0, **{f"{arm}_{metric}": torch.tensor([q[metric] for q in quality], dtype=torch.float32)
                      for metric in quality[0]})
    for model in cfg.models:
        _train(cfg, part, model, orders, record_x, record_y, x_test, y_test, seeds, run.scoped(model))


def _loader(cfg: Config, part: PartConfig, arm: str, dataset, order_of, *, seed: int) -> ShardedLoader:
    return ShardedLoader(dataset, order_of.get(arm, arm), batch_size=cfg.batch_size, n_blocks=part.n_online,
                         buffer_records=part.n_online * part.records_per_shard, seed=seed)


def _column(dataset, name: str) -> np.ndarray:
    return np.concatenate([dataset.read_shard(i)[name] for i in range(len(dataset.shard_sizes))])


def _train(cfg: Config, part: PartConfig, model: str, orders, record_x, record_y, x_test, y_test, seeds,
           run: Run) -> None:
    """SGD on every (arm, seed) as one stacked model, each following its own orders."""
    arms = list(cfg.arms)
    replicas = [(arm, s) for arm in arms for s in range(len(seeds))]
    n_classes = int(max(int(record_y[a].max()) for a in arms)) + 1
    dim = record_x[arms[0]].shape[1]
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    S = len(replicas)
    if model == "softmax":
        params = [torch.zeros(S, dim, n_classes), torch.zeros(S, 1, n_classes)]
    else:
        bound = 1 / math.sqrt(dim)
        params = [torch.empty(S, dim, cfg.hidden).uniform_(-bound, bound, generator=generator),
                  torch.zeros(S, 1, cfg.hidden),
                  torch.empty(S, cfg.hidden, n_classes).uniform_(-1 / math.sqrt(cfg.hidden), 1 / math.sqrt(cfg.hidden),
                                                                 generator=generator),
                  torch.zeros(S, 1, n_classes)]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(params, lr=cfg.lr)

    def forward(x):  # (S, B, d) -> (S, B, C)
        if model == "softmax":
            return torch.baddbmm(params[1], x, params[0])
        return torch.baddbmm(params[3], torch.relu(torch.baddbmm(params[1], x, params[0])), params[2])

    x_eval = torch.from_numpy(x_test).expand(S, -1, -1)
    y_eval = torch.from_numpy(y_test)

    def evaluate(epoch: int) -> None:
        with torch.no_grad():
            accuracy = (forward(x_eval).argmax(-1) == y_eval).float().mean(1)
        run.log(epoch, test_acc=accuracy)

    evaluate(0)
    n = len(orders[arms[0], 0, 0])
    steps = n // cfg.batch_size
    for epoch in range(cfg.epochs):
        index = torch.stack([torch.from_numpy(orders[arm, s, epoch][:steps * cfg.batch_size]) for arm, s in replicas])
        xs = torch.stack([record_x[arm] for arm, _ in replicas])  # (S, N, d)
        ys = torch.stack([record_y[arm] for arm, _ in replicas])
        gathered_x = torch.gather(xs, 1, index.unsqueeze(2).expand(-1, -1, dim)).view(S, steps, cfg.batch_size, dim)
        gathered_y = torch.gather(ys, 1, index).view(S, steps, cfg.batch_size)
        total = torch.zeros(S)
        for step in range(steps):
            logits = forward(gathered_x[:, step])
            loss = F.cross_entropy(logits.reshape(-1, n_classes), gathered_y[:, step].reshape(-1),
                                   reduction="none").view(S, -1).mean(1)
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            total += loss.detach()
        run.log(epoch + 1, train_loss=total / steps)
        evaluate(epoch + 1)
    run.log(0, arm_index=torch.tensor([float(arms.index(arm)) for arm, _ in replicas]))


# ----------------------------------------------------------------------------- results


def arm_accuracy(record: RunRecord, part: str, model: str) -> dict[str, np.ndarray]:
    """{arm: final test accuracy per seed}."""
    accuracy = record.series(f"{part}/{model}/test_acc")
    index = record.series(f"{part}/{model}/arm_index")
    if not len(accuracy) or not len(index):
        return {}
    arms = record.config["arms"]
    final, which = accuracy.values[-1], index.values[-1]
    return {arm: final[which == i] for i, arm in enumerate(arms)}


def _value(record: RunRecord, name: str) -> np.ndarray:
    series = record.series(name)
    return series.values[-1] if len(series) else np.array([np.nan])


def claims(record: RunRecord) -> list[Claim]:
    cfg, out = record.config, []
    for part_name in cfg["parts"]:
        h = float(np.mean(_value(record, f"{part_name}/homogeneity_sorted")))
        ns, after = _value(record, f"{part_name}/homogeneity_n"), _value(record, f"{part_name}/homogeneity_after")
        rows, ok = [], True
        for n_off, measured in zip(ns, after):
            predicted = expected_homogeneity(h, int(n_off))
            rows.append(f"n_off={int(n_off)}: {measured:.2f} vs {predicted:.2f}")
            ok &= abs(measured - predicted) <= 0.15 * predicted
        out.append(Claim(f"{part_name}-homogeneity", "One offline pass with groups of n_off lowers block homogeneity "
                         "to about 1 + (h - 1)/n_off.", f"h = {h:.1f} sorted; " + "; ".join(rows),
                         "within 15% of the formula", bool(ok and rows)))
        arms = cfg["arms"]
        for model in cfg["models"]:
            table = arm_accuracy(record, part_name, model)
            if not table or "full" not in table:
                continue
            full = float(np.mean(table["full"]))
            means = {arm: float(np.mean(v)) for arm, v in table.items()}
            text = ", ".join(f"{arm} {value:.3f}" for arm, value in means.items())
            ok = True
            if "corgi2" in means:
                ok &= abs(means["corgi2"] - full) <= 0.01
            if "corgipile" in means:
                ok &= means["corgipile"] <= full - 0.02
            for arm in ("sequential", "shard"):
                if arm in means:
                    ok &= means[arm] <= full - 0.10
            out.append(Claim(f"{part_name}-{model}-accuracy", "(first estimate) Corgi^2's final test accuracy is within "
                             "1 point of full shuffle; CorgiPile with a small buffer is clearly worse on sorted shards; "
                             "sequential and shard-only are far worse.", text,
                             "corgi2 within 0.01 of full; corgipile <= full - 0.02; sequential, shard <= full - 0.10",
                             bool(ok)))
        kl = {arm: float(np.mean(_value(record, f"{part_name}/{arm}_batch_label_kl"))) for arm in arms}
        if {"full", "corgi2", "corgipile"} <= set(kl):
            ratio_c2, ratio_cp = kl["corgi2"] / kl["full"], kl["corgipile"] / kl["full"]
            out.append(Claim(f"{part_name}-batch-kl", "Corgi^2's per-batch label KL is within 1.5x of a full random "
                             "permutation's; CorgiPile's at the same buffer is several times larger.",
                             ", ".join(f"{arm} {value:.3f}" for arm, value in kl.items()) +
                             f" (corgi2 {ratio_c2:.2f}x, corgipile {ratio_cp:.1f}x full)",
                             "corgi2 <= 1.5x full; corgipile >= 3x full", bool(ratio_c2 <= 1.5 and ratio_cp >= 3)))
        n_records = float(np.mean(_value(record, f"{part_name}/n_records")))
        n_shards = float(np.mean(_value(record, f"{part_name}/n_shards")))
        io_rows, io_ok = [], True
        for arm in arms:
            requests = float(np.mean(_value(record, f"{part_name}/{arm}_requests")))
            io_rows.append(f"{arm} {requests:,.0f}")
            if arm == "full":  # one ranged request per record, plus each shard's footer once
                io_ok &= n_records <= requests <= n_records + n_shards
            else:
                io_ok &= requests == n_shards
        offline = float(np.mean(_value(record, f"{part_name}/offline_requests")))
        io_ok &= offline == 2 * n_shards
        out.append(Claim(f"{part_name}-io", "Per epoch, full random access makes one request per record; CorgiPile "
                         "and Corgi^2 one sequential request per block; the offline pass costs one read and one write "
                         "per block (2m/b requests), once.",
                         f"{n_records:,.0f} records in {n_shards:,.0f} blocks; requests per epoch: " +
                         ", ".join(io_rows) + f"; offline pass {offline:,.0f}",
                         "full = records (+ one footer per shard); block arms = blocks; offline = 2 x blocks",
                         bool(io_ok)))
    return out


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cfg, out = record.config, {}
    arms = cfg["arms"]
    for part_name in cfg["parts"]:
        models = cfg["models"]
        fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
        for ax, model in zip(axes[0], models):
            accuracy = record.series(f"{part_name}/{model}/test_acc")
            index = record.series(f"{part_name}/{model}/arm_index")
            if not len(accuracy) or not len(index):
                continue
            for i, arm in enumerate(arms):
                columns = index.values[-1] == i
                ax.plot(accuracy.steps, accuracy.values[:, columns].mean(axis=1), "o-", ms=3, label=arm)
            ax.set(xlabel="epoch", ylabel="test accuracy", title=f"{part_name}, {model}")
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        out[f"{part_name}_accuracy_vs_epoch"] = fig

        fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
        kl = [float(np.mean(_value(record, f"{part_name}/{arm}_batch_label_kl"))) for arm in arms]
        axes[0].bar(arms, kl)
        axes[0].set(ylabel="mean per-batch label KL (nats)", title="batch label KL")
        axes[0].tick_params(axis="x", rotation=45, labelsize=7)
        requests = [float(np.mean(_value(record, f"{part_name}/{arm}_requests"))) for arm in arms]
        megabytes = [float(np.mean(_value(record, f"{part_name}/{arm}_bytes_read"))) / 2**20 for arm in arms]
        positions = np.arange(len(arms))
        axes[1].bar(positions - 0.2, requests, 0.4, label="requests")
        axes[1].bar(positions + 0.2, megabytes, 0.4, label="MiB read")
        axes[1].set(yscale="log", xticks=positions, title="I/O per epoch")
        axes[1].set_xticklabels(arms, rotation=45, fontsize=7)
        axes[1].legend(fontsize=7)
        h = float(np.mean(_value(record, f"{part_name}/homogeneity_sorted")))
        ns, after = _value(record, f"{part_name}/homogeneity_n"), _value(record, f"{part_name}/homogeneity_after")
        grid = np.geomspace(1, max(ns.max() if len(ns) else 2, 2), 50)
        axes[2].plot(grid, [expected_homogeneity(h, n) for n in grid], "k--", label="1 + (h - 1)/n")
        axes[2].plot(ns, after, "o", label="measured")
        axes[2].set(xscale="log", yscale="log", xlabel="n_off", ylabel="homogeneity h",
                    title=f"after one pass (sorted h = {h:.0f})")
        axes[2].legend(fontsize=7)
        fig.tight_layout()
        out[f"{part_name}_kl_io_homogeneity"] = fig
    return out
