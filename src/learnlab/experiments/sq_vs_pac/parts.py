"""The runs of sq-vs-pac: the b x rho phase diagram, the disagreement of two batches'
rounded gradients, full-batch GD through the oracle and the sample channel."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from learnlab.experiments.sq_vs_pac import schema as names
from learnlab.experiments.sq_vs_pac.config import Config
from learnlab.grid import Cell, cell, cells, for_each_cell
from learnlab.models.mlp import TwoLayerMLP
from learnlab.runtime import generator
from learnlab.seeding import replica_seeds, stream, streams
from learnlab.tasks.boolean import sample_boolean_task
from learnlab.tasks.sparse_parity import sparse_parity_support
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import replica_sign_accuracy, sign_accuracy, square_loss
from learnlab.train.optim import TrainConfig
from learnlab.train.precision import (GradientOracle, PrecisionConfig, SampleChannel, channel_loss, decode_channel,
                                      solve_parity_gf2)

if TYPE_CHECKING:
    from learnlab.runner import Run


def run(cfg: Config, run: Run) -> None:
    support_seeds, data_seeds, init_seeds, test_seeds, channel_seeds = zip(
        *(replica_seeds(s, 5) for s in replica_seeds(cfg.seed, cfg.n_seeds)))
    seeds = _Seeds(support_seeds, data_seeds, init_seeds, test_seeds)
    for_each_cell(run, _phase_cells(cfg), lambda c, r: _phase_row(cfg, c.target, c.mode, c.b, seeds, r))
    for_each_cell(run, [cell(names.DISAGREEMENT_SCOPE)], lambda c, r: _disagreement(cfg, seeds, r))
    for_each_cell(run, cells(names.gd_scope, mode=("exact", "nearest")),
                  lambda c, r: _empirical_gd(cfg, seeds, r, mode=c.mode))
    for_each_cell(run, [cell(names.CHANNEL_SCOPE)], lambda c, r: _channel(cfg, channel_seeds, r))


def _phase_cells(cfg: Config) -> list[Cell]:
    """The phase diagram's rows: (target, rounding mode, b), each a stacked model over rho x seeds.
    Exact gradients at every b; the parity's nearest rounding at every b, its other modes and
    the majority's only at the control batch sizes (where their claims look)."""
    out = []
    for target in cfg.targets:
        for b in cfg.batch_sizes:
            control = not cfg.control_batches or b in cfg.control_batches
            if target == "parity":
                modes = ["exact", *(mode for mode in cfg.modes if mode == "nearest" or control)]
            else:
                modes = ["exact", *cfg.majority_modes] if control else []
            out += [cell(names.phase_scope(target, mode, b), target=target, mode=mode, b=b) for mode in modes]
    return out


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
    if mode != "exact" and (mode != "nearest" or target != "parity"):  # a control: only where its claim looks
        rhos = tuple(rho for rho in rhos if not cfg.control_rhos or rho in cfg.control_rhos)
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
    evaluate = Measure(lambda model: {names.ACCURACY: replica_sign_accuracy(model, x_test, y_test)})
    train = TrainConfig(optimizer="sgd", lr=cfg.lr, batch_size=b, max_steps=cfg.steps,
                        eval_every=max(1, cfg.steps // 8), log_every=max(1, cfg.steps // 40))
    fit(model, batches, square_loss, train, run, evaluate=evaluate, gradient=oracle)
    run.log(0, **{names.RHO: torch.tensor([r for r, _ in grid]),
                 names.SEED_INDEX: torch.tensor(replicas, dtype=torch.float32)})


def _disagreement(cfg: Config, seeds: _Seeds, run: Run) -> None:
    """The fraction of coordinates on which two independent batches' rounded gradients
    differ, at initialisation (parity target, nearest rounding): SQ collapse as b grows."""
    run.clear_metrics()  # it measures (no checkpoint): a run entering it again starts clean
    device = run.device
    supports = _supports(cfg, seeds, device)
    replicas = list(range(cfg.n_seeds))
    model = TwoLayerMLP(cfg.n_bits, cfg.model, [seeds.init[j] for j in replicas], device)
    oracle = GradientOracle(PrecisionConfig(rho=cfg.disagreement_rho, mode="nearest", scale=cfg.scale), square_loss)
    for b in cfg.disagreement_batches:
        gens = [generator(stream(seeds.data[j], f"disagreement-{b}"), device) for j in replicas]

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
        run.log(b, **{names.DISAGREEMENT: differ / total, names.NONZERO: nonzero / total})


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
    evaluate = Measure(lambda model: {names.ACCURACY: replica_sign_accuracy(model, x_test, y_test)})
    train = TrainConfig(optimizer="sgd", lr=cfg.lr, batch_size=cfg.gd_samples, max_steps=cfg.gd_steps,
                        eval_every=max(1, cfg.gd_steps // 8), log_every=max(1, cfg.gd_steps // 40))
    fit(model, batches, square_loss, train, run, evaluate=evaluate, gradient=oracle)
    run.log(0, **{names.RHO: torch.tensor([r for r, _ in grid])})


def _channel(cfg: Config, seeds: tuple[int, ...], run: Run) -> None:
    """The sample channel: SGD with fresh batches of b, then full-batch GD on m samples."""
    run.clear_metrics()  # it measures (no checkpoint): a run entering it again starts clean
    part, device = cfg.channel, run.device
    n = part.n_bits
    subset_seeds, test_seeds, gd_seeds = zip(*(streams(s, "subset", "test", "gd-samples") for s in seeds))
    # a full parity: each bit in the subset with probability 1/2
    subsets = [torch.rand(n, generator=generator(s, device), device=device) < 0.5 for s in subset_seeds]

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
            if mode == "stochastic":  # noise is drawn for every block: the whole answer
                full, _ = oracle.answer(model, x, y)
                with torch.no_grad():
                    model.blocks -= cfg.lr * full["blocks"]
                rows, _ = model.touched_rows(x)
                answers = full["blocks"].view(-1, n + 1)[rows]
            else:  # the answers on the touched blocks: every other block's is exactly zero
                rows, answers = oracle.answer_rows(model, x, y)
                with torch.no_grad():
                    model.blocks.view(-1, n + 1).index_add_(0, rows, answers, alpha=-cfg.lr)
            replica = rows // part.n_blocks
            for j in range(len(seeds)):
                got_x, got_y = decode_channel(answers[replica == j])
                truth = torch.cat([x[j], y[j].unsqueeze(1)], dim=1)
                got = torch.cat([got_x, got_y.unsqueeze(1)], dim=1)
                matches = (got.unsqueeze(1) == truth.unsqueeze(0)).all(-1).any(1)  # decoded rows that are real
                correct[j] += float(matches.sum())
                found[j].append(got[matches])
            seen = seen + b
        accuracy, rank = [], []
        for j, s in enumerate(test_seeds):
            rows = torch.cat(found[j]) if found[j] else torch.zeros(0, n + 1, device=device)
            solution, r = solve_parity_gf2(rows[:, :n].cpu(), rows[:, n].cpu())
            x_test, y_test = labelled(part.n_test, j, generator(s, device))
            predicted = torch.where(solution.bool().to(device), x_test, torch.ones_like(x_test)).prod(dim=1)
            accuracy.append(float((predicted == y_test).float().mean()))
            rank.append(float(r))
        values = {"recovered": correct / max(seen, 1), "accuracy": torch.tensor(accuracy), "rank": torch.tensor(rank),
                  "steps": torch.full((len(seeds),), float(steps)), "rho": torch.full((len(seeds),), rho)}
        run.log(index, **{names.channel_name(prefix, what): value for what, value in values.items()})

    for mode in part.modes:
        for b in part.batch_sizes:
            gens = [generator(stream(s, f"sgd-batches-{b}"), device) for s in seeds]

            def fresh(step, b=b, gens=gens):
                pairs = [labelled(b, j, g) for j, g in enumerate(gens)]
                return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

            learn(b, mode, part.rho, b, math.ceil(part.sample_budget / b), fresh, names.channel_prefix("sgd", mode))
    fixed = [labelled(part.gd_samples, j, generator(s, device)) for j, s in enumerate(gd_seeds)]
    full = (torch.stack([x for x, _ in fixed]), torch.stack([y for _, y in fixed]))
    for index, rho in enumerate(part.gd_rhos):
        learn(index, "nearest", rho, part.gd_samples, 1, lambda step: full, names.channel_prefix("gd"))
