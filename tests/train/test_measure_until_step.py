"""Measure(until_step=...): a control trained exactly as long as another model, on the same schedule."""

import torch

from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.runner import Run
from learnlab.store import Store
from learnlab.train import Measure, ReplicaStream, fit
from learnlab.train.optim import TrainConfig


def test_measure_until_step_ends_the_run_at_the_first_evaluation_at_or_after_that_step(tmp_path):
    store = Store(tmp_path / "m.sqlite")
    store.create_run("s", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    run = Run(store, "s", None, device=torch.device("cpu"), quiet=True)
    model = TwoLayerMLP(4, MLPConfig(width=8), seeds=[1])
    batches = ReplicaStream([lambda g, n: (torch.randn(n, 16, 4, generator=g), torch.zeros(n, 16))], [7], "cpu")
    evaluate = Measure(lambda m: {"norm": float(sum(p.norm() for p in m.parameters()))}, until_step=35)
    cfg = TrainConfig(lr=0.05, max_steps=200, eval_every=10, log_every=10)
    last = fit(model, batches, lambda out, y: (out - y).square().mean(dim=1), cfg, run, evaluate=evaluate)
    run.flush()
    assert last == 40  # evaluations at 0, 10, ..., 40: the first at or after step 35
    assert list(store.series("s", "norm").steps) == [0, 10, 20, 30, 40]
