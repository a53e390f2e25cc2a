"""The runs of gd-vs-ntk: kernel scaling, the biased-parity cells (network, kernel, first-step
edge) and the linearised network."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from learnlab.experiments.gd_vs_ntk import schema as names
from learnlab.experiments.gd_vs_ntk.config import Config
from learnlab.grid import cell, cells, for_each_cell
from learnlab.models.mlp import TwoLayerMLP
from learnlab.probes.ntk import (LinearisedModel, empirical_ntk, first_step_edge, kernel_ridge, kernel_svm_accuracy,
                                 select_ridge)
from learnlab.runtime import generator
from learnlab.seeding import replica_seeds, stream
from learnlab.tasks.boolean import sample_boolean_task
from learnlab.tasks.sparse_parity import sparse_parity_support
from learnlab.train.data import ReplicaStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import hinge_loss, replica_sign_accuracy, sign_accuracy

if TYPE_CHECKING:
    from learnlab.runner import Run


def run(cfg: Config, run: Run) -> None:
    seeds = replica_seeds(cfg.seed, cfg.n_seeds)
    kernel_seeds = seeds[:cfg.kernel_seeds] if cfg.kernel_seeds <= cfg.n_seeds else replica_seeds(cfg.seed,
                                                                                                  cfg.kernel_seeds)
    if "scaling" in cfg.parts:
        for_each_cell(run, cells(names.network_scope, n=cfg.network_bits, k=(cfg.k,)),
                      lambda c, r: _offline_networks(cfg, c.n, c.k, cfg.network_samples, seeds, r))
        n, k, size = cfg.agreement
        if cfg.network_bits:  # the network at the agreement point, beside its kernel check
            for_each_cell(run, [cell(names.network_scope(n, k), n=n, k=k)],
                          lambda c, r: _offline_networks(cfg, c.n, c.k, (size,), seeds, r))
        for_each_cell(run, cells(names.kernel_scope, n=cfg.kernel_bits, k=(cfg.k,)),
                      lambda c, r: _kernel_scaling(cfg, c.n, c.k, kernel_seeds, r))
        for_each_cell(run, [cell(names.KERNEL_CHECKS)], lambda c, r: _kernel_points(
            cfg, [(cfg.sanity[0], cfg.k, cfg.sanity[1]), cfg.agreement], kernel_seeds, r))
    # The network of each (alpha, n, k) cell stops once every seed learned; its linearised
    # twin trains as many steps, so the cells return their step counts.
    trained = {}
    if "biased" in cfg.parts:
        grid = [cell(names.cell_scope(i), index=i, alpha=alpha, n=n, k=k) for i, (alpha, n, k) in enumerate(cfg.cells)]
        steps = for_each_cell(run, grid, lambda c, r: _cell(cfg, c.index, c.alpha, c.n, c.k, seeds, kernel_seeds, r))
        trained = dict(zip(cfg.cells, steps))
    if "lazy" in cfg.parts:
        grid = [cell(names.lazy_scope(i), alpha=alpha, n=n, k=k, size=size)
                for i, (alpha, n, k, size) in enumerate(cfg.lazy_cells)]
        for_each_cell(run, grid, lambda c, r: _lazy(cfg, c.alpha, c.n, c.k, c.size, seeds, r,
                                                    trained.get((c.alpha, c.n, c.k))))


def _task(n: int, k: int, seed: int, device, alpha: float = 0.0):
    """(support, a sampler of (count, generator) -> (x, y)) for one seed's task."""
    support = sparse_parity_support(n_bits=n, k=k, generator=generator(seed, device))

    def sample(count: int, g: torch.Generator):
        return sample_boolean_task(count, n_bits=n, support=support, alpha=alpha, generator=g)
    return support, sample


def _offline_networks(cfg: Config, n: int, k: int, sizes, seeds, run: Run) -> None:
    """One stacked network per (N, seed), each on its own N samples (nested across N)."""
    device = run.device
    grid = [(size, j) for size in sizes for j in range(len(seeds))]
    tasks = [_task(n, k, s, device) for s in seeds]
    pools = [tasks[j][1](max(sizes), generator(stream(s, "train-pool"), device)) for j, s in enumerate(seeds)]
    tests = [tasks[j][1](cfg.n_test, generator(stream(s, "test"), device)) for j, s in enumerate(seeds)]

    def sampler(size: int, j: int):
        x_set, y_set = pools[j][0][:size], pools[j][1][:size]

        def draw(g: torch.Generator, n_batches: int):
            index = torch.randint(0, size, (n_batches * cfg.offline.batch_size,), generator=g, device=g.device)
            return x_set[index].view(n_batches, cfg.offline.batch_size, -1), y_set[index].view(n_batches, -1)
        return draw

    model = TwoLayerMLP(n, cfg.network, [stream(seeds[j], "init") for _, j in grid], device)
    batches = ReplicaStream([sampler(size, j) for size, j in grid], [stream(seeds[j], "batches") for _, j in grid],
                            device, block=16)
    x_test = torch.stack([tests[j][0] for _, j in grid])
    y_test = torch.stack([tests[j][1] for _, j in grid])
    evaluate = Measure(lambda model: {names.ACCURACY: replica_sign_accuracy(model, x_test, y_test)})
    fit(model, batches, hinge_loss, cfg.offline, run, evaluate=evaluate)
    run.log(0, **{names.SAMPLES: torch.tensor([float(size) for size, _ in grid])})


def _kernel_accuracy(cfg: Config, n: int, k: int, size: int, seed: int, device, alpha: float = 0.0,
                     svm: bool = False) -> dict[str, float]:
    """NTK ridge (and optionally SVM) test accuracy on ``size`` samples, kernel at a width-``kernel.width`` init."""
    _, sample = _task(n, k, seed, device, alpha)
    x, y = sample(size, generator(stream(seed, "train-pool"), device))
    x_test, y_test = sample(cfg.n_test, generator(stream(seed, "test"), device))
    model = TwoLayerMLP(n, replace(cfg.network, width=cfg.kernel.width), [stream(seed, "kernel-init")], device)
    train_kernel = empirical_ntk(model, x)
    test_kernel = empirical_ntk(model, x_test, x)
    ridge, _ = select_ridge(train_kernel, y, cfg.kernel.ridges, cfg.kernel.validation)
    predictions = kernel_ridge(train_kernel, y, test_kernel, ridge)
    out = {"ridge_acc": float((torch.sign(predictions) == y_test.double()).double().mean()), "ridge": ridge}
    if svm:
        out["svm_acc"] = kernel_svm_accuracy(train_kernel, y, test_kernel, y_test)
    return out


def _kernel_scaling(cfg: Config, n: int, k: int, seeds, run: Run) -> None:
    """Ridge accuracy vs N, in increasing N until every seed reaches the target (larger N
    only cost time: the curve is what the claims read)."""
    run.clear_metrics()  # it measures (no checkpoint): a run entering it again starts clean
    for size in cfg.kernel_samples:
        svm = n == max(cfg.kernel_bits) and size == cfg.svm_samples
        results = [_kernel_accuracy(cfg, n, k, size, s, run.device, svm=svm)
                   for s in seeds]
        metrics = {names.RIDGE_ACC: torch.tensor([r["ridge_acc"] for r in results]),
                   names.RIDGE: torch.tensor([r["ridge"] for r in results])}
        if svm:
            metrics[names.SVM_ACC] = torch.tensor([r["svm_acc"] for r in results])
        run.log(size, **metrics)
        if min(r["ridge_acc"] for r in results) >= cfg.target_accuracy:
            break


def _kernel_points(cfg: Config, points, seeds, run: Run) -> None:
    run.clear_metrics()
    for index, (n, k, size) in enumerate(points):
        results = [_kernel_accuracy(cfg, n, k, size, s, run.device) for s in seeds]
        run.log(index, **{names.RIDGE_ACC: torch.tensor([r["ridge_acc"] for r in results]),
                          names.N_BITS: torch.full((len(seeds),), float(n)), names.K: torch.full((len(seeds),), float(k)),
                          names.SAMPLES: torch.full((len(seeds),), float(size))})


def _online(cfg: Config, model: torch.nn.Module, n: int, k: int, alpha: float, seeds, run: Run,
            size: int = 0, steps: int | None = None) -> int:
    """Train ``model`` (stacked over seeds) on D_alpha: fresh batches (size 0) or minibatches of ``size`` samples."""
    device = run.device
    tasks = [_task(n, k, s, device, alpha) for s in seeds]
    tests = [sample(cfg.n_test, generator(stream(s, "test"), device)) for s, (_, sample) in zip(seeds, tasks)]
    train = cfg.online if size == 0 else cfg.offline

    def sampler(j: int):
        sample = tasks[j][1]
        pool = sample(size, generator(stream(seeds[j], "train-pool"), device)) if size else None

        def draw(g: torch.Generator, n_batches: int):
            if pool is None:
                x, y = sample(n_batches * train.batch_size, g)
            else:
                index = torch.randint(0, size, (n_batches * train.batch_size,), generator=g, device=g.device)
                x, y = pool[0][index], pool[1][index]
            return x.view(n_batches, train.batch_size, -1), y.view(n_batches, -1)
        return draw

    batches = ReplicaStream([sampler(j) for j in range(len(seeds))], [stream(s, "batches") for s in seeds], device,
                            block=16)
    x_test, y_test = torch.stack([t[0] for t in tests]), torch.stack([t[1] for t in tests])
    evaluate = Measure(lambda model: {names.ACCURACY: replica_sign_accuracy(model, x_test, y_test)},
                       until=(names.ACCURACY, cfg.target_accuracy) if cfg.stop_when_learned else None)
    if steps is not None:
        train = replace(train, max_steps=steps)
    return fit(model, batches, hinge_loss, train, run, evaluate=evaluate)


def _cell(cfg: Config, index: int, alpha: float, n: int, k: int, seeds, kernel_seeds, run: Run) -> int:
    """One (alpha, n, k) cell: the trained network, NTK ridge, and the first-step edge; returns
    the steps the network trained."""
    device = run.device
    model = TwoLayerMLP(n, cfg.network, [stream(s, "init") for s in seeds], device)
    edges, floors = [], []
    for j, s in enumerate(seeds):  # the edge at the network's own initialisation, before training
        _, sample = _task(n, k, s, device, alpha)
        x, y = sample(cfg.edge_samples, generator(stream(s, "edge-train"), device))
        # edge_samples test points: n_test points alone leave a floor ~0.02
        x_test, y_test = sample(cfg.edge_samples, generator(stream(s, "edge-test"), device))
        edge, floor = first_step_edge(model, x, y, x_test, y_test, replica=j, null_draws=cfg.null_draws,
                                      generator=generator(stream(s, "edge-null"), device))
        edges.append(edge)
        floors.append(floor)
    kernel = {}
    if cfg.has_cell_kernel(index):
        kernel[names.KERNEL_ACC] = torch.tensor([_kernel_accuracy(cfg, n, k, cfg.cell_kernel_samples, s, device,
                                                                  alpha)["ridge_acc"] for s in kernel_seeds])
    steps = _online(cfg, model, n, k, alpha, seeds, run)  # a fresh fit clears the scope's metrics: log after it
    run.log(0, **{names.EDGE: torch.tensor(edges), names.EDGE_FLOOR: torch.tensor(floors), **kernel,
                  names.ALPHA: torch.full((len(seeds),), alpha),
                  names.N_BITS: torch.full((len(seeds),), float(n)), names.K: torch.full((len(seeds),), float(k))})
    return steps


def _lazy(cfg: Config, alpha: float, n: int, k: int, size: int, seeds, run: Run, network_steps: int | None) -> None:
    """The linearised network, trained exactly as the network is, from the network's init: online,
    for as many steps as the network of its cell trained (it stops once every seed learned)."""
    base = TwoLayerMLP(n, cfg.network, [stream(s, "init") for s in seeds], run.device)
    _online(cfg, LinearisedModel(base), n, k, alpha, seeds, run, size=size,
            steps=network_steps if size == 0 else None)
