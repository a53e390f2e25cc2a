"""The corgi2 experiment's run: shards, the offline pass (real and simulated), each arm's I/O
epoch and planned orders, and SGD on every (arm, seed) as one stacked model."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from learnlab.data import ShardedDataset, ShardedLoader, offline_shuffle, plan_order, write_arrays
from learnlab.data.offline import pass_groups
from learnlab.data.orders import epoch_plan
from learnlab.data.quality import batch_label_kl, expected_homogeneity, homogeneity, order_quality
from learnlab.experiments.corgi2 import schema as M
from learnlab.experiments.corgi2.config import Config, PartConfig
from learnlab.grid import cells, for_each_cell
from learnlab.models.deep_mlp import DeepMLP, DeepMLPConfig
from learnlab.models.linear_classifier import StackedLinearClassifier
from learnlab.seeding import replica_seeds, stream, streams
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import replica_accuracy, replica_cross_entropy
from learnlab.train.optim import TrainConfig

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["run", "simulate_pass", "predicted_kl_ratio", "PlannedOrders", "EpochLog"]


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


def simulate_pass(shard_sizes, n_off: int, seed: int) -> np.ndarray:
    """The record permutation of one offline pass (``offline_shuffle`` with ``passes=1``), in
    memory: the same random grouping (``pass_groups``) and the same per-group permutation,
    new blocks in group order. Returns ``perm`` with record i of the output = record perm[i]."""
    sizes = np.asarray(shard_sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    parts = []
    for group, blocks in enumerate(pass_groups(len(sizes), n_off, seed=seed, pass_index=0)):
        records = np.concatenate([np.arange(offsets[b], offsets[b + 1]) for b in blocks])
        parts.append(records[np.random.default_rng([seed, 0, group]).permutation(len(records))])
    return np.concatenate(parts)


def _pass_sizes(shard_sizes, n_off: int, seed: int) -> np.ndarray:
    sizes = np.asarray(shard_sizes)
    return np.concatenate([sizes[blocks] for blocks in pass_groups(len(sizes), n_off, seed=seed, pass_index=0)])


def predicted_kl_ratio(h_after: float, batch_size: int, n_online: int, block: float) -> float:
    """Corgi^2's batch label KL over a full shuffle's, from the homogeneity of its blocks: a batch
    drawn from a buffer of n_on blocks has label variance (sigma^2 / B)(1 + B (h - 1) / (n_on b)),
    and the plug-in KL of a batch histogram scales with that variance."""
    return 1 + batch_size * (h_after - 1) / (n_online * block)


def run(cfg: Config, run: Run) -> None:
    for_each_cell(run, cells(str, part=cfg.parts), lambda c, r: _part(cfg, c.part, r))


def _part(cfg: Config, name: str, run: Run) -> None:
    # A run entering the part again (a resume) starts it clean: its measurements, and the shards
    # and offline passes they were measured on, are made again (deterministically), so the I/O
    # counts are logged again too. Its finished model cells are not entered again.
    run.clear_metrics()
    shutil.rmtree(run.dir / f"{name}_data", ignore_errors=True)
    part: PartConfig = getattr(cfg, name)
    (x, y), (x_test, y_test) = _gaussian(part, cfg.seed) if name == "gaussian" else _digits(cfg.seed)
    order = np.argsort(y, kind="stable")  # sorted by label: homogeneous blocks
    x, y = x[order], y[order]
    root = run.dir / f"{name}_data"
    sorted_url = str(root / "sorted")
    if not (root / "sorted" / "index.json").exists():
        write_arrays(sorted_url, {"x": x, "y": y}, part.records_per_shard)
    sorted_set = ShardedDataset(sorted_url)
    sizes = np.asarray(sorted_set.shard_sizes)
    h = homogeneity(y, sizes)
    run.log(0, **{M.N_RECORDS: float(len(y)), M.N_SHARDS: float(len(sizes)), M.H_SORTED: h})

    # Offline passes, simulated in memory (many, for intervals over passes) and one real pass.
    pass_seeds = replica_seeds(stream(cfg.seed, "simulated-passes"), part.passes)
    for n_off in M.sweep(part) + ([part.n_offline] if part.n_offline not in part.homogeneity_n else []):
        values = [homogeneity(y[simulate_pass(sizes, n_off, s)], _pass_sizes(sizes, n_off, s)) for s in pass_seeds]
        run.log(0, **{M.homogeneity(n_off): torch.tensor(values, dtype=torch.float64)})
    ratios = []
    for s in pass_seeds:
        perm, pass_sizes = simulate_pass(sizes, part.n_offline, s), _pass_sizes(sizes, part.n_offline, s)
        corgi2 = plan_order(epoch_plan("corgi2", pass_sizes, seed=s, epoch=0, n_blocks=part.n_online), pass_sizes)
        full = plan_order(epoch_plan("full", sizes, seed=s, epoch=0), sizes)
        ratios.append(batch_label_kl(corgi2, y[perm], cfg.batch_size) / batch_label_kl(full, y, cfg.batch_size))
    run.log(0, **{M.KL_RATIO: torch.tensor(ratios, dtype=torch.float64), M.KL_RATIO_PREDICTED: predicted_kl_ratio(
        expected_homogeneity(h, part.n_offline), cfg.batch_size, part.n_online, float(sizes.mean()))})

    shuffled: dict[str, ShardedDataset] = {}
    for passes, arm in ((1, "corgi2"), (2, "corgi2_2pass")):
        url = str(root / f"offline_n{part.n_offline}_p{passes}")
        if not (root / f"offline_n{part.n_offline}_p{passes}" / "index.json").exists():
            _, io = offline_shuffle(sorted_url, url, part.n_offline, cfg.seed, passes)
            if passes == 1:
                run.log(0, **{M.OFFLINE_REQUESTS: float(io.requests + io.write_requests),
                              "offline_reads": float(io.requests), "offline_writes": float(io.write_requests),
                              "offline_bytes": float(io.bytes_read + io.bytes_written)})
        shuffled[arm] = ShardedDataset(url)
    real = _column(shuffled["corgi2"], "y")
    simulated = y[simulate_pass(sizes, part.n_offline, cfg.seed)]
    run.log(0, **{M.PASS_EQUALS_SIMULATION: float(np.array_equal(real, simulated))})

    # Every arm: one real epoch through the loader (I/O, and the emitted order equals the plan).
    io_rows, contents, stored = {}, {}, {}  # stored: each dataset's (x, y), read once (several arms share one)
    for arm in cfg.arms:
        dataset = ShardedDataset(shuffled.get(arm, sorted_set).storage.url, latency=cfg.latency)
        loader = _loader(cfg, part, arm, dataset, seed=cfg.seed)
        began = time.perf_counter()
        emitted = np.concatenate([batch["y"].numpy() for batch in loader])
        seconds = time.perf_counter() - began
        planned = plan_order(loader.plan(), dataset.shard_sizes)
        stats = loader.last_epoch_stats
        url = dataset.storage.url
        if url not in stored:
            stored[url] = (torch.from_numpy(_column(dataset, "x")), _column(dataset, "y").astype(np.int64))
        io_rows[arm] = {M.REQUESTS: stats.requests, "noncontiguous": stats.noncontiguous_requests,
                        "bytes_read": stats.bytes_read, "peak_buffer_bytes": stats.peak_buffer_bytes,
                        "records_per_s": len(emitted) / max(seconds, 1e-9),
                        M.MATCHES_PLAN: float(np.array_equal(emitted, stored[url][1][planned]))}
        contents[arm] = (dataset, *stored[url])
    run.artifact("io", io_rows)
    for arm, row in io_rows.items():  # wall-clock throughput is in the artifact only: it is not reproducible
        run.log(0, **{M.arm(arm, key): float(value) for key, value in row.items() if key != "records_per_s"})

    # Orders of every (arm, seed, epoch), their quality, and training on them. Sweep arms read
    # the sorted records through a simulated pass (their permutation composes with the order).
    seeds = replica_seeds(cfg.seed, cfg.n_seeds)
    data = {arm: (contents[arm][1], torch.from_numpy(contents[arm][2])) for arm in cfg.arms}
    orders = {}
    for arm in cfg.arms:
        dataset = contents[arm][0]
        shards = np.repeat(np.arange(len(dataset.shard_sizes)), dataset.shard_sizes)
        for s, seed in enumerate(seeds):
            loader = _loader(cfg, part, arm, dataset, seed=seed)
            for epoch in range(cfg.epochs):
                loader.set_epoch(epoch)
                orders[arm, s, epoch] = plan_order(loader.plan(), dataset.shard_sizes)
        quality = [order_quality(orders[arm, s, 0], contents[arm][2], shards, cfg.batch_size)
                   for s in range(len(seeds))]
        run.log(0, **{M.arm(arm, metric): torch.tensor([q[metric] for q in quality], dtype=torch.float32)
                      for metric in quality[0]})
    if "full" in cfg.arms:
        x_sorted, y_sorted = torch.from_numpy(x), torch.from_numpy(y)
        for n_off in M.sweep(part):
            arm = M.sweep_arm(n_off)
            for s, seed in enumerate(seeds):
                pass_seed, order_seed = streams(seed, "sweep-pass", "sweep-order")
                perm, pass_sizes = simulate_pass(sizes, n_off, pass_seed), _pass_sizes(sizes, n_off, pass_seed)
                for epoch in range(cfg.epochs):
                    plan = epoch_plan("corgi2", pass_sizes, seed=order_seed, epoch=epoch, n_blocks=part.n_online)
                    orders[arm, s, epoch] = perm[plan_order(plan, pass_sizes)]  # ids into the sorted records
            data[arm] = (x_sorted, y_sorted)
    for_each_cell(run, cells(str, model=cfg.models),
                  lambda c, r: _train(cfg, c.model, orders, data, x_test, y_test, M.replicas(cfg, part), r))


def _loader(cfg: Config, part: PartConfig, arm: str, dataset, *, seed: int) -> ShardedLoader:
    kind = "corgi2" if arm == "corgi2_2pass" else arm
    return ShardedLoader(dataset, kind, batch_size=cfg.batch_size, n_blocks=part.n_online,
                         buffer_records=part.n_online * part.records_per_shard, seed=seed)


def _column(dataset, name: str) -> np.ndarray:
    return np.concatenate([dataset.read_shard(i)[name] for i in range(len(dataset.shard_sizes))])


def _train(cfg: Config, model_name: str, orders, data, x_test, y_test, replicas, run: Run) -> None:
    """SGD on every (arm, seed) as one stacked model through ``train.fit``, each replica
    following its own planned orders. Replica (arm, s) starts from seed s's init at every
    arm (a paired design: arms differ only in the order)."""
    device = run.device
    n_classes = int(max(int(data[a][1].max()) for a, _ in replicas)) + 1
    dim = data[replicas[0][0]][0].shape[1]
    if model_name == "softmax":
        model = StackedLinearClassifier(dim, n_classes, len(replicas), device)
    else:
        init_seeds = [stream(seed, "init") for seed in replica_seeds(cfg.seed, cfg.n_seeds)]
        model = DeepMLP(dim, n_classes, DeepMLPConfig(width=cfg.hidden, depth=1), [init_seeds[s] for _, s in replicas],
                        device)
    batches = PlannedOrders(orders, data, replicas, cfg.batch_size, device)
    steps = batches.steps_per_epoch
    train = TrainConfig(optimizer="sgd", lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.epochs * steps,
                        log_every=steps, eval_every=steps)
    x_eval = torch.from_numpy(x_test).to(device).expand(len(replicas), -1, -1)
    y_eval = torch.from_numpy(y_test).to(device).expand(len(replicas), -1)
    evaluate = Measure(lambda model: {M.TEST_ACC: replica_accuracy(model, x_eval, y_eval)})
    fit(model, batches, replica_cross_entropy, train, EpochLog(run, steps), evaluate=evaluate)


class PlannedOrders:
    """The training batches of every (arm, seed) replica, each in its own planned order:
    step t of epoch e gives replica r records ``orders[arm, s, e][t B : (t + 1) B]`` of its
    arm's data, stacked to (S, B, d) inputs and (S, B) labels. An epoch is the whole
    batches of an order (a last partial batch is dropped). Its state is the step reached:
    the orders are fixed, so that is all a resume needs."""

    def __init__(self, orders, data, replicas, batch_size: int, device):
        self.orders, self.replicas, self.batch_size = orders, replicas, batch_size
        self.steps_per_epoch = len(orders[replicas[0][0], 0, 0]) // batch_size
        # Every arm's records in one table (arms that read the same records share them), so
        # one gather serves all replicas at each step; ``offset[arm]``: where its records start.
        tables, starts, self.offset = [], {}, {}
        for arm in dict.fromkeys(arm for arm, _ in replicas):
            x, y = data[arm]
            if id(x) not in starts:
                starts[id(x)] = sum(len(table[0]) for table in tables)
                tables.append((x, torch.as_tensor(y)))
            self.offset[arm] = starts[id(x)]
        self.x = torch.cat([x for x, _ in tables]).to(device)
        self.y = torch.cat([y for _, y in tables]).to(device)
        self.step, self._epoch, self._index = 0, None, None

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, t = divmod(self.step, self.steps_per_epoch)
        if epoch != self._epoch:  # this epoch's ids into the table, (S, steps B)
            size = self.steps_per_epoch * self.batch_size
            self._index = torch.from_numpy(np.stack([
                self.orders[arm, s, epoch][:size] + self.offset[arm] for arm, s in self.replicas])).to(self.x.device)
            self._epoch = epoch
        ids = self._index[:, t * self.batch_size:(t + 1) * self.batch_size]  # (S, B)
        self.step += 1
        return self.x[ids], self.y[ids]

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]


class EpochLog:
    """A run handle for ``fit`` that records steps as epochs (``fit`` logs and evaluates
    once per epoch here), so the stored curves are per epoch, as the figures draw them."""

    def __init__(self, run: Run, steps_per_epoch: int):
        self.run, self.steps_per_epoch = run, steps_per_epoch

    def log(self, step: int, **metrics) -> None:
        self.run.log(step // self.steps_per_epoch, **metrics)

    def progress(self, total: int, *, initial: int = 0, desc: str | None = None):
        return self.run.progress(total, initial=initial, desc=desc)

    def save_checkpoint(self, step: int, state: dict) -> None:
        self.run.save_checkpoint(step, state)

    def load_checkpoint(self) -> dict | None:
        return self.run.load_checkpoint()
