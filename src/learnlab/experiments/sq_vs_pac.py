"""Differentiable learning vs PAC and SQ: what bounded-precision SGD can and cannot learn.

Paper: Abbe, Kamath, Malach, Sandon, Srebro, "On the Power of Differentiable Learning
versus PAC and SQ Learning", NeurIPS 2021 (arXiv 2108.04190). A theory paper without
code; we make its mechanism observable. SGD sees the gradient through an oracle of
precision rho (``learnlab.train.precision``): per-example gradients scaled by s = 10
(first-layer coordinates then have RMS ~0.7 at initialisation), clipped to [-1, 1],
averaged over a batch of b, rounded to rho Z.

- b rho^2 >> 1: the batch average concentrates within rho of its expectation and a
  deterministic rounding answers like a statistical query. A k-sparse parity has
  exponentially small population gradients, which round to zero: SGD cannot learn it,
  while the majority of k bits (every bit correlates with it) survives the same
  precision, and unbiased stochastic rounding (the control) learns the parity too.
- b rho^2 <~ 1: the batch noise exceeds rho and carries the signal through the rounding;
  with b rho << 1 single examples leak through the oracle entirely. Our sample channel
  (an illustration, not the paper's construction) reads every example back from the
  rounded gradient and learns a full parity on n = 64 by Gaussian elimination over
  GF(2) -- a PAC algorithm no SQ learner can be.
- Full-batch GD on an empirical loss of m samples shows the same two regimes with m
  in place of b.

Parts: the b x rho phase diagram (parity and majority; nearest and stochastic rounding;
exact gradients as the reference), the disagreement of two batches' rounded gradients
at initialisation vs b, the sample channel (SGD and full-batch GD), and full-batch GD of
the MLP through the oracle.

Presets: ``quick`` (n = 16, k = 3, width 128, square loss, eta = 0.1, T = 4,000, 3 seeds;
``learnlab run sq-vs-pac --preset quick``, about 4 minutes on 2 cores), ``paper`` (adds
b = 1,024, more precisions and 5 seeds), ``smoke`` (seconds; the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from learnlab.claims import Claim
from learnlab.config import Interval, param
from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.runtime import generator, replica_seeds
from learnlab.tasks.boolean import sample_boolean_task
from learnlab.tasks.sparse_parity import sparse_parity_support
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import sign_accuracy, square_loss
from learnlab.train.optim import TrainConfig
from learnlab.train.precision import (GradientOracle, PrecisionConfig, SampleChannel, channel_loss, decode_channel,
                                      solve_parity_gf2)

if TYPE_CHECKING:
    from learnlab.runner import Run
    from learnlab.store import RunRecord

NAME = "sq-vs-pac"
DESCRIPTION = "Abbe et al. 2021: bounded-precision SGD is SQ when b rho^2 >> 1 and PAC when b rho << 1"

TARGETS = ("parity", "majority")

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ChannelConfig:
    n_bits: int = param(64, Interval(1, 512), help="a full parity on n bits (a random subset of all of them)")
    n_blocks: int = param(65_536, Interval(1, None),
                          help="parameter blocks M; a step of b examples has ~b^2 / 2M collisions (lost examples)")
    rho: float = param(0.05, Interval(0.0, None, closed="neither"))
    batch_sizes: tuple[int, ...] = param((4, 8, 16, 32, 64, 128), Interval(1, None))
    modes: tuple[str, ...] = param(("nearest", "adv_zero"))
    sample_budget: int = param(100, Interval(1, None), help="SGD runs ceil(budget / b) steps")
    n_test: int = param(4096, Interval(1, None))
    gd_samples: int = param(128, Interval(1, None), help="m for full-batch GD on the empirical loss")
    gd_rhos: tuple[float, ...] = param((0.002, 0.3), Interval(0.0, None, closed="neither"),
                                       help="full-batch GD precisions: below 1/m and far above 1/sqrt(m)")


@dataclass(frozen=True)
class SqVsPacConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(3, Interval(1, 64), help="independent runs (supports, inits, data) per setting")
    n_bits: int = param(16, Interval(1, 256))
    k: int = param(3, Interval(1, "n_bits"), help="parity / majority degree")
    model: MLPConfig = MLPConfig(width=128)
    lr: float = param(0.1, Interval(0.0, None, closed="neither"))
    steps: int = param(4000, Interval(1, None))
    scale: float = param(10.0, Interval(0.0, None, closed="neither"), help="s, applied before clipping")
    n_test: int = param(8192, Interval(1, None))
    targets: tuple[str, ...] = param(TARGETS)
    batch_sizes: tuple[int, ...] = param((4, 16, 64, 256), Interval(1, None))
    rhos: tuple[float, ...] = param((0.03, 0.1, 0.3, 1.0), Interval(0.0, None, closed="neither"))
    modes: tuple[str, ...] = param(("nearest", "stochastic"), help="phase-diagram roundings; exact always runs")
    disagreement_batches: tuple[int, ...] = param((4, 8, 16, 32, 64, 128, 256, 512, 1024), Interval(1, None))
    disagreement_rho: float = param(0.3, Interval(0.0, None, closed="neither"))
    disagreement_pairs: int = param(20, Interval(1, None))
    gd_samples: int = param(2000, Interval(1, None), help="m for full-batch GD of the MLP")
    gd_steps: int = param(2000, Interval(1, None))
    gd_rhos: tuple[float, ...] = param((0.00025, 0.3), Interval(0.0, None, closed="neither"),
                                       help="full-batch GD precisions: ~1/(2m) and far above 1/sqrt(m)")
    channel: ChannelConfig = ChannelConfig()

    def check(self) -> str | None:
        if not self.targets or set(self.targets) - set(TARGETS):
            return "'targets' entries must be among parity, majority"
        if set(self.modes) - {"nearest", "trunc", "adv_zero", "stochastic"}:
            return "'modes' entries must be among nearest, trunc, adv_zero, stochastic"
        if set(self.channel.modes) - {"exact", "nearest", "trunc", "adv_zero", "stochastic"}:
            return "'channel.modes' entries must be among exact, nearest, trunc, adv_zero, stochastic"
        if "majority" in self.targets and self.k % 2 == 0:
            return f"the majority target needs an odd k; got k = {self.k}"
        return None


Config = SqVsPacConfig


def presets() -> dict[str, Config]:
    quick = Config()
    paper = replace(quick, n_seeds=5, batch_sizes=(4, 16, 64, 256, 1024), rhos=(0.01, 0.03, 0.1, 0.3, 1.0),
                    modes=("nearest", "trunc", "stochastic"))
    smoke = replace(quick, n_seeds=2, n_bits=8, model=MLPConfig(width=16), steps=40, n_test=512, batch_sizes=(4, 32),
                    rhos=(0.1, 0.3), disagreement_batches=(4, 64), disagreement_pairs=3, gd_samples=64, gd_steps=20,
                    channel=replace(quick.channel, n_bits=16, n_blocks=512, batch_sizes=(4, 32), n_test=256,
                                    gd_samples=32))
    return {"smoke": smoke, "quick": quick, "paper": paper}


# ----------------------------------------------------------------------------- runs


def run(cfg: Config, run: Run) -> None:
    support_seeds, data_seeds, init_seeds, test_seeds, channel_seeds = zip(
        *(replica_seeds(s, 5) for s in replica_seeds(cfg.seed, cfg.n_seeds)))
    seeds = _Seeds(support_seeds, data_seeds, init_seeds, test_seeds)
    for target in cfg.targets:
        for b in cfg.batch_sizes:
            _phase_row(cfg, target, "exact", b, seeds, run.scoped(f"{target}_exact_b{b}"))
            for mode in cfg.modes:
                _phase_row(cfg, target, mode, b, seeds, run.scoped(f"{target}_{mode}_b{b}"))
    _disagreement(cfg, seeds, run.scoped("disagreement"))
    _empirical_gd(cfg, seeds, run.scoped("gd_exact"), mode="exact")
    _empirical_gd(cfg, seeds, run.scoped("gd_nearest"), mode="nearest")
    _channel(cfg, channel_seeds, run.scoped("channel"))


@dataclass(frozen=True)
class _Seeds:
    support: tuple[int, ...]
    data: tuple[int, ...]
    init: tuple[int, ...]
    test: tuple[int, ...]


def _supports(cfg: Config, seeds: _Seeds, device) -> list[torch.Tensor]:
    return [sparse_parity_support(n_bits=cfg.n_bits, k=cfg.k, generator=generator(s, device)) for s in seeds.support]


def _test_sets(cfg: Config, target: str, supports, seeds: _Seeds, replicas: list[int], device):
    """Each replica's held-out set (S, N, n), (S, N), from its seed's support."""
    sets = [sample_boolean_task(cfg.n_test, n_bits=cfg.n_bits, support=supports[j], target=target,
                                generator=generator(seeds.test[j], device)) for j in range(len(supports))]
    return torch.stack([sets[j][0] for j in replicas]), torch.stack([sets[j][1] for j in replicas])


def _phase_row(cfg: Config, target: str, mode: str, b: int, seeds: _Seeds, run: Run) -> None:
    """Online SGD through the oracle at batch size b: every rho of the grid (one for
    ``exact``) times every seed, trained as one stacked model."""
    device = run.device
    rhos = (1.0,) if mode == "exact" else cfg.rhos
    grid = [(rho, j) for rho in rhos for j in range(cfg.n_seeds)]
    supports = _supports(cfg, seeds, device)
    replicas = [j for _, j in grid]

    def sampler(j: int):
        def draw(g: torch.Generator, n_batches: int):
            x, y = sample_boolean_task(n_batches * b, n_bits=cfg.n_bits, support=supports[j], target=target,
                                       generator=g)
            return x.view(n_batches, b, -1), y.view(n_batches, b)
        return draw

    model = TwoLayerMLP(cfg.n_bits, cfg.model, [seeds.init[j] for j in replicas], device)
    batches = ReplicaStream([sampler(j) for j in replicas], [seeds.data[j] for j in replicas], device, block=16)
    oracle = GradientOracle(PrecisionConfig(rho=rhos[0], mode=mode, scale=cfg.scale),
                            square_loss, seed=seeds.data[0], replica_rho=torch.tensor([r for r, _ in grid]))
    x_test, y_test = _test_sets(cfg, target, supports, seeds, replicas, device)
    evaluate = Measure(lambda m: {"accuracy": sign_accuracy(m(x_test), y_test)})
    train = TrainConfig(optimizer="sgd", lr=cfg.lr, batch_size=b, max_steps=cfg.steps,
                        eval_every=max(1, cfg.steps // 8), log_every=max(1, cfg.steps // 40))
    fit(model, batches, square_loss, train, run, evaluate=evaluate, gradient=oracle)
    run.log(0, rho=torch.tensor([r for r, _ in grid]), seed_index=torch.tensor(replicas, dtype=torch.float32))


def _disagreement(cfg: Config, seeds: _Seeds, run: Run) -> None:
    """The fraction of coordinates on which two independent batches' rounded gradients
    differ, at initialisation (parity target, nearest rounding): SQ collapse as b grows."""
    device = run.device
    supports = _supports(cfg, seeds, device)
    replicas = list(range(cfg.n_seeds))
    model = TwoLayerMLP(cfg.n_bits, cfg.model, [seeds.init[j] for j in replicas], device)
    oracle = GradientOracle(PrecisionConfig(rho=cfg.disagreement_rho, mode="nearest", scale=cfg.scale), square_loss)
    for b in cfg.disagreement_batches:
        gens = [generator(seeds.data[j] + b, device) for j in replicas]

        def batch():
            pairs = [sample_boolean_task(b, n_bits=cfg.n_bits, support=supports[j], generator=g)
                     for j, g in zip(replicas, gens)]
            return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

        differ = torch.zeros(len(replicas), device=device)
        nonzero = torch.zeros(len(replicas), device=device)
        total = 0
        for _ in range(cfg.disagreement_pairs):
            first, _ = oracle.answer(model, *batch())
            second, _ = oracle.answer(model, *batch())
            for name in first:
                differ += (first[name] != second[name]).flatten(1).sum(1)
                nonzero += (first[name] != 0).flatten(1).sum(1)
            total += sum(a[0].numel() for a in first.values())
        run.log(b, disagreement=differ / total, nonzero_fraction=nonzero / total)


def _empirical_gd(cfg: Config, seeds: _Seeds, run: Run, *, mode: str) -> None:
    """Full-batch GD on m samples through the oracle (m in place of b)."""
    device = run.device
    supports = _supports(cfg, seeds, device)
    rhos = (1.0,) if mode == "exact" else cfg.gd_rhos
    grid = [(rho, j) for rho in rhos for j in range(cfg.n_seeds)]
    replicas = [j for _, j in grid]
    sets = [sample_boolean_task(cfg.gd_samples, n_bits=cfg.n_bits, support=supports[j],
                                generator=generator(seeds.data[j], device)) for j in range(cfg.n_seeds)]

    def full_batch(j: int):
        def draw(g: torch.Generator, n_batches: int):
            x, y = sets[j]
            return x.expand(n_batches, -1, -1), y.expand(n_batches, -1)
        return draw

    model = TwoLayerMLP(cfg.n_bits, cfg.model, [seeds.init[j] for j in replicas], device)
    batches = ReplicaStream([full_batch(j) for j in replicas], [seeds.data[j] for j in replicas], device, block=4)
    oracle = GradientOracle(PrecisionConfig(rho=rhos[0], mode=mode, scale=cfg.scale), square_loss,
                            replica_rho=torch.tensor([r for r, _ in grid]))
    x_test, y_test = _test_sets(cfg, "parity", supports, seeds, replicas, device)
    evaluate = Measure(lambda m: {"accuracy": sign_accuracy(m(x_test), y_test)})
    train = TrainConfig(optimizer="sgd", lr=cfg.lr, batch_size=cfg.gd_samples, max_steps=cfg.gd_steps,
                        eval_every=max(1, cfg.gd_steps // 8), log_every=max(1, cfg.gd_steps // 40))
    fit(model, batches, square_loss, train, run, evaluate=evaluate, gradient=oracle)
    run.log(0, rho=torch.tensor([r for r, _ in grid]))


def _channel(cfg: Config, seeds: tuple[int, ...], run: Run) -> None:
    """The sample channel: SGD with fresh batches of b, then full-batch GD on m samples."""
    part, device = cfg.channel, run.device
    n = part.n_bits
    subsets = [torch.rand(n, generator=generator(s, device), device=device) < 0.5 for s in seeds]  # a full parity

    def labelled(count: int, j: int, g: torch.Generator):
        x = torch.where(torch.rand((count, n), generator=g, device=device) < 0.5, 1.0, -1.0)
        return x, torch.where(subsets[j], x, torch.ones_like(x)).prod(dim=1)

    def learn(index: int, mode: str, rho: float, b: int, steps: int, data, prefix: str):
        """``steps`` oracle calls on batches from ``data(step)``; decode; solve; test."""
        model = SampleChannel(n, part.n_blocks, n_replicas=len(seeds), hash_seed=seeds[0]).to(device)
        oracle = GradientOracle(PrecisionConfig(rho=rho, mode=mode, scale=1.0), channel_loss, seed=seeds[0])
        found = [[] for _ in seeds]
        correct, seen = torch.zeros(len(seeds)), 0
        for step in range(steps):
            x, y = data(step)
            answers, _ = oracle.answer(model, x, y)
            with torch.no_grad():
                model.blocks -= cfg.lr * answers["blocks"]
            for j in range(len(seeds)):
                got_x, got_y = decode_channel(answers["blocks"][j])
                truth = torch.cat([x[j], y[j].unsqueeze(1)], dim=1)
                got = torch.cat([got_x, got_y.unsqueeze(1)], dim=1)
                matches = (got.unsqueeze(1) == truth.unsqueeze(0)).all(-1).any(1)  # decoded rows that are real
                correct[j] += float(matches.sum())
                found[j].append(got[matches])
            seen = seen + b
        accuracy, rank = [], []
        for j, s in enumerate(seeds):
            rows = torch.cat(found[j]) if found[j] else torch.zeros(0, n + 1, device=device)
            solution, r = solve_parity_gf2(rows[:, :n].cpu(), rows[:, n].cpu())
            x_test, y_test = labelled(part.n_test, j, generator(s + 1, device))
            predicted = torch.where(solution.bool().to(device), x_test, torch.ones_like(x_test)).prod(dim=1)
            accuracy.append(float((predicted == y_test).float().mean()))
            rank.append(float(r))
        run.log(index, **{f"{prefix}_recovered": correct / max(seen, 1), f"{prefix}_accuracy": torch.tensor(accuracy),
                          f"{prefix}_rank": torch.tensor(rank), f"{prefix}_steps": torch.full((len(seeds),), float(steps)),
                          f"{prefix}_rho": torch.full((len(seeds),), rho)})

    for mode in part.modes:
        for b in part.batch_sizes:
            gens = [generator(s + 7 * b, device) for s in seeds]

            def fresh(step, b=b, gens=gens):
                pairs = [labelled(b, j, g) for j, g in enumerate(gens)]
                return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

            learn(b, mode, part.rho, b, math.ceil(part.sample_budget / b), fresh, f"sgd_{mode}")
    fixed = [labelled(part.gd_samples, j, generator(s + 3, device)) for j, s in enumerate(seeds)]
    full = (torch.stack([x for x, _ in fixed]), torch.stack([y for _, y in fixed]))
    for index, rho in enumerate(part.gd_rhos):
        learn(index, "nearest", rho, part.gd_samples, 1, lambda step: full, "gd")


# ----------------------------------------------------------------------------- results


def _final(record: RunRecord, scope: str, name: str = "accuracy") -> np.ndarray:
    series = record.series(f"{scope}/{name}")
    return series.values[-1] if len(series) else np.array([np.nan])


def phase_table(record: RunRecord, target: str, mode: str) -> dict[tuple[int, float], np.ndarray]:
    """{(b, rho): final accuracy per seed} for one target and rounding (``exact``: rho = 0)."""
    table = {}
    for b in record.config["batch_sizes"]:
        scope = f"{target}_{mode}_b{b}"
        accuracy = _final(record, scope)
        rhos = record.series(f"{scope}/rho")
        if not len(rhos):
            continue
        rho_values = rhos.values[-1]
        for rho in sorted(set(rho_values.tolist())):  # stored as float32: key by the rounded value
            table[b, 0.0 if mode == "exact" else float(f"{rho:.6g}")] = accuracy[rho_values == rho]
    return table


def _cell(table, b: int, rho: float) -> float:
    for (bb, rr), values in table.items():
        if bb == b and math.isclose(rr, rho, rel_tol=1e-6):
            return float(np.mean(values))
    return float("nan")


def _channel_row(record: RunRecord, prefix: str, index: int) -> tuple[float, float]:
    recovered, accuracy = record.series(f"channel/{prefix}_recovered"), record.series(f"channel/{prefix}_accuracy")
    at = np.flatnonzero(recovered.steps == index)
    if not len(at):
        return float("nan"), float("nan")
    return float(np.mean(recovered.values[at[-1]])), float(np.min(accuracy.values[at[-1]]))


def claims(record: RunRecord) -> list[Claim]:
    cfg = record.config
    out = []
    parity_exact = phase_table(record, "parity", "exact")
    parity_nearest = phase_table(record, "parity", "nearest")
    b_big, b_small, rho = 256, 16, 0.3
    exact = _cell(parity_exact, b_big, 0.0)
    out.append(Claim("exact-gradients", f"With exact gradients, SGD (b = {b_big}) learns the ({cfg['n_bits']}, "
                     f"{cfg['k']}) parity.", f"accuracy {exact:.3f}", ">= 0.95", exact >= 0.95))
    sq = _cell(parity_nearest, b_big, rho)
    out.append(Claim("sq-regime", f"Deterministic rounding at b = {b_big}, rho = {rho} (b rho^2 = {b_big * rho**2:.0f}) "
                     "erases the parity signal: the oracle acts as an SQ oracle.", f"accuracy {sq:.3f}", "<= 0.60",
                     sq <= 0.60))
    small = _cell(parity_nearest, b_small, rho)
    out.append(Claim("small-batch", f"The same rho at b = {b_small} (b rho^2 = {b_small * rho**2:.1f}): batch noise "
                     "carries the signal through the rounding.", f"accuracy {small:.3f}", ">= 0.95", small >= 0.95))
    if "majority" in cfg["targets"]:
        majority = _cell(phase_table(record, "majority", "nearest"), b_big, rho)
        out.append(Claim("majority-survives", f"The majority of {cfg['k']} bits (SQ-easy) is learned at the same "
                         f"precision (b = {b_big}, rho = {rho}).", f"accuracy {majority:.3f}", ">= 0.90",
                         majority >= 0.90))
    if "stochastic" in cfg["modes"]:
        control = _cell(phase_table(record, "parity", "stochastic"), b_big, rho)
        out.append(Claim("stochastic-control", "Unbiased stochastic rounding at b = 256, rho = 0.3 learns the parity: "
                         "the failure comes from the deterministic rounding.", f"accuracy {control:.3f}", ">= 0.95",
                         control >= 0.95))
    dis = record.series("disagreement/disagreement")
    by_b = {int(b): float(np.mean(v)) for b, v in zip(dis.steps, dis.values)}
    low, high = by_b.get(16, float("nan")), by_b.get(256, float("nan"))
    out.append(Claim("sq-collapse", "At initialisation, two independent batches' rounded gradients agree more and "
                     f"more as b grows (nearest, rho = {cfg['disagreement_rho']}).",
                     f"coordinates that differ: b = 16 {low:.3f}, b = 256 {high:.4f}", ">= 0.2 at 16, <= 0.01 at 256",
                     low >= 0.2 and high <= 0.01))
    part = cfg["channel"]
    n, rho_c = part["n_bits"], part["rho"]
    rec_small, acc_small = _channel_row(record, "sgd_nearest", 8)
    rec_big, acc_big = _channel_row(record, "sgd_adv_zero", 64)
    out.append(Claim("sample-channel", f"b rho small => PAC: from the rounded gradients alone every example is read back "
                     f"and a full parity on n = {n} is learned (Gaussian elimination over GF(2)); with b rho large an "
                     "adversarial rounding leaks nothing.",
                     f"b = 8, rho = {rho_c}: recovered {rec_small:.3f}, accuracy {acc_small:.3f} after "
                     f"{math.ceil(part['sample_budget'] / 8)} steps; b = 64 adv_zero: recovered {rec_big:.3f}, "
                     f"accuracy {acc_big:.3f}", "b = 8: recovered >= 0.99, accuracy 1.0; b = 64: 0 recovered, <= 0.55",
                     rec_small >= 0.99 and acc_small == 1.0 and rec_big == 0.0 and acc_big <= 0.55))
    gd_exact = _final(record, "gd_exact")
    gd = record.series("gd_nearest/rho")
    rows, ok = [f"exact {np.mean(gd_exact):.3f}"], bool(np.mean(gd_exact) >= 0.95)
    if len(gd):
        accuracy, rhos = _final(record, "gd_nearest"), gd.values[-1]
        m = cfg["gd_samples"]
        for value in sorted(set(rhos.tolist())):
            mean = float(np.mean(accuracy[rhos == value]))
            fine = value <= 1 / m
            rows.append(f"rho = {value:g} (m rho^2 = {m * value**2:.3g}) {mean:.3f}")
            ok &= mean >= 0.95 if fine else (mean <= 0.60 if m * value**2 >= 10 else True)
    fine_rec, fine_acc = _channel_row(record, "gd", 0)
    coarse_rec, coarse_acc = _channel_row(record, "gd", 1)
    rows.append(f"channel m = {part['gd_samples']}: rho = {part['gd_rhos'][0]:g} recovered {fine_rec:.3f} acc "
                f"{fine_acc:.3f}; rho = {part['gd_rhos'][-1]:g} recovered {coarse_rec:.3f} acc {coarse_acc:.3f}")
    ok &= fine_rec >= 0.99 and fine_acc == 1.0 and coarse_rec == 0.0 and coarse_acc <= 0.55
    out.append(Claim("empirical-gd", "Full-batch GD on m samples shows the same regimes with m in place of b: "
                     "rho <~ 1/m learns (the channel reads every sample), rho >> 1/sqrt(m) does not.",
                     "; ".join(rows), "fine: >= 0.95 (channel: all recovered, 1.0); coarse: <= 0.60 (channel: none, "
                     "<= 0.55)", bool(ok)))
    return out


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cfg, out = record.config, {}
    bs, rhos = list(cfg["batch_sizes"]), sorted(cfg["rhos"])
    panels = [(t, m) for m in cfg["modes"] for t in cfg["targets"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (target, mode) in zip(axes[0], panels):
        table = phase_table(record, target, mode)
        grid = np.array([[_cell(table, b, r) for b in bs] for r in rhos])
        image = ax.imshow(grid, origin="lower", vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="white" if value < 0.8 else "black")
        # The regime lines b rho = 1 and b rho^2 = 1, in cell coordinates (log-interpolated).
        fine_b = np.geomspace(bs[0], bs[-1], 100)
        for line_rho, style, label in ((1 / fine_b, "--", "b rho = 1"), (np.sqrt(1 / fine_b), ":", "b rho^2 = 1"),
                                       (np.sqrt(10 / fine_b), "-.", "b rho^2 = 10")):
            ax.plot(np.interp(np.log(fine_b), np.log(bs), range(len(bs))),
                    np.interp(np.log(line_rho), np.log(rhos), range(len(rhos)), left=np.nan, right=np.nan),
                    style, color="red", lw=1, label=label)
        ax.set(xticks=range(len(bs)), xticklabels=bs, yticks=range(len(rhos)), yticklabels=rhos, xlabel="batch b",
               ylabel="precision rho", title=f"{target}, {mode}")
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="test accuracy")
    out["phase_diagram"] = fig

    dis = record.series("disagreement/disagreement")
    if len(dis):
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        ax.plot(dis.steps, dis.values.mean(axis=1), "o-", label="coordinates that differ")
        nonzero = record.series("disagreement/nonzero_fraction")
        ax.plot(nonzero.steps, nonzero.values.mean(axis=1), "s--", label="nonzero coordinates")
        ax.set_yscale("symlog", linthresh=1e-4)  # log above 1e-4, linear down to an exact 0
        ax.set(xscale="log", ylim=(0, 1), xlabel="batch b", ylabel="fraction of coordinates",
               title=f"two batches' rounded gradients at init (rho = {cfg['disagreement_rho']})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["gradient_disagreement"] = fig

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for mode in cfg["channel"]["modes"]:
        series = record.series(f"channel/sgd_{mode}_recovered")
        if len(series):
            ax.plot(series.steps, series.values.mean(axis=1), "o-", label=f"{mode}: samples recovered")
            accuracy = record.series(f"channel/sgd_{mode}_accuracy")
            ax.plot(accuracy.steps, accuracy.values.mean(axis=1), "s--", label=f"{mode}: parity test accuracy")
    ax.axvline(1 / cfg["channel"]["rho"], color="gray", lw=0.8, label="b rho = 1")
    ax.set(xscale="log", xlabel="batch b", ylabel="fraction", title=f"sample channel, rho = {cfg['channel']['rho']}")
    ax.legend(fontsize=6)
    fig.tight_layout()
    out["sample_channel"] = fig
    return out
