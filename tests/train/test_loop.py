import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from learnlab.config import apply_overrides
from learnlab.experiments import get_experiment, resolve_preset
from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.runner import execute
from learnlab.store import Store
from learnlab.train import TrainConfig, clip_grad_norm_per_replica_, lr_schedule

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")

HIDDEN_PROGRESS = get_experiment("hidden-progress")
WITHOUT_FIGURES = Path(__file__).parents[1] / "learnlab_without_figures.py"


def _config(*overrides):
    return apply_overrides(resolve_preset(HIDDEN_PROGRESS, "smoke"), list(overrides))


def test_replica_weights_do_not_depend_on_the_ensemble():
    together = TwoLayerMLP(10, MLPConfig(width=7), seeds=[11, 22, 33])
    alone = TwoLayerMLP(10, MLPConfig(width=7), seeds=[22])
    assert torch.equal(together.weight[1], alone.weight[0])
    assert torch.equal(together.readout[1], alone.readout[0])
    x = torch.randn(3, 5, 10)
    assert torch.allclose(together(x)[1], alone(x[1:2])[0])


def test_an_ensemble_trains_each_replica_as_a_separate_run(store):
    # (20, 3) parity does not converge in 200 steps, so both runs train for exactly 200.
    settings = ["task.n_bits=20", "task.k=3", "train.max_steps=200"]
    ensemble = execute(HIDDEN_PROGRESS, _config("n_seeds=3", *settings), store=store, device="cpu", quiet=True)
    single = execute(HIDDEN_PROGRESS, _config("n_seeds=1", *settings), store=store, device="cpu", quiet=True)
    for name in ("train_loss", "val_acc", "weight_movement"):
        together, alone = store.series(ensemble.run_id, name), store.series(single.run_id, name)
        assert together.values.shape[1] == 3 and len(together) == len(alone) > 10
        np.testing.assert_allclose(together.values[:, 0], alone.values[:, 0], rtol=1e-5, atol=1e-6)
        assert not np.allclose(together.values[:, 1], together.values[:, 0])


def test_per_replica_clipping_equals_clipping_each_replica_alone():
    torch.manual_seed(0)
    grads = [torch.randn(3, 4, 5), torch.randn(3, 4)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norms = clip_grad_norm_per_replica_(params, 1.5, 3)
    for s in range(3):
        alone = [torch.nn.Parameter(torch.zeros_like(g[s])) for g in grads]
        for p, g in zip(alone, grads):
            p.grad = g[s].clone()
        expected_norm = torch.nn.utils.clip_grad_norm_(alone, 1.5)
        assert torch.allclose(norms[s], expected_norm)
        for p, q in zip(params, alone):
            assert torch.allclose(p.grad[s], q.grad, atol=1e-6)


def test_schedules_are_pure_functions_of_the_step():
    cfg = TrainConfig(lr=1.0, max_steps=100, warmup_steps=10, schedule="cosine")
    lr_at = lr_schedule(cfg)
    assert lr_at(0) == pytest.approx(0.1) and lr_at(9) == pytest.approx(1.0)
    assert lr_at(10) == pytest.approx(1.0) and lr_at(55) == pytest.approx(0.5) and lr_at(100) == pytest.approx(0.0)
    assert [lr_at(s) for s in range(100)] == [lr_at(s) for s in range(100)]
    linear = lr_schedule(TrainConfig(lr=2.0, max_steps=10, schedule="linear"))
    assert linear(5) == pytest.approx(1.0)


def test_a_diverging_run_is_stored_as_failed_with_the_step_range(store):
    outcome = execute(HIDDEN_PROGRESS, _config("train.loss=square", "train.lr=1e6", "train.log_every=5"),
                      store=store, device="cpu", quiet=True)
    assert outcome.status == "failed"
    record = store.get_run(outcome.run_id)
    assert record.status == "failed" and "stopped being finite between steps" in record.error


def _cli(store_path, *args):
    # `learnlab ARGS` in a process of its own, its figures skipped (only rows and claims are compared).
    return [sys.executable, str(WITHOUT_FIGURES), *args, "--store", str(store_path), "--quiet"]


def test_a_run_killed_mid_way_and_resumed_ends_like_an_uninterrupted_one(tmp_path):
    # (24, 4) parity does not converge within 600 steps, so both runs train the full cap; the
    # victim is killed right after its first checkpoint (step 100), long before its end.
    settings = ["--preset", "smoke", "task.n_bits=24", "task.k=4", "train.max_steps=600",
                "train.checkpoint_every=100", "train.log_every=7", "train.eval_every=10"]
    store_path = tmp_path / "learnlab.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    store = Store(store_path)
    # The uninterrupted reference runs in this process (the same config and arithmetic: one
    # thread under xdist, as its subprocesses); the victim and its resume are real CLI processes.
    reference = execute(HIDDEN_PROGRESS, _config(*settings[2:]), store=store, device="cpu", quiet=True)
    assert reference.status == "completed", reference.error
    reference_id = reference.run_id

    victim = subprocess.Popen(_cli(store_path, "run", "hidden-progress", *settings), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    victim_id = None
    while time.time() < deadline:  # kill it once its first checkpoint is on disk
        running = [r for r in store.list_runs() if r.status == "running"]
        if running and "checkpoint" in running[0].artifacts():
            victim_id = running[0].id
            break
        time.sleep(0.01)
    assert victim_id is not None, "the run never wrote a checkpoint"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert store.get_run(victim_id).status == "running"  # killed: nobody marked it
    killed_at = store.series(victim_id, "train_loss").steps.max()
    assert killed_at < 600

    resumed = subprocess.run(_cli(store_path, "run", "hidden-progress", "--resume", victim_id), capture_output=True,
                             text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == victim_id
    assert store.get_run(victim_id).status == "completed"
    assert store.all_metrics(victim_id) == store.all_metrics(reference_id)
    assert [c.measured for c in store.claims(victim_id)] == [c.measured for c in store.claims(reference_id)]


def _crashed_run_with_a_checkpoint(store_path):
    """A short run with checkpoints, then marked failed as if it had crashed."""
    from learnlab.cli import main

    assert main(["run", "hidden-progress", "--preset", "smoke", "train.checkpoint_every=20", "--quiet",
                 "--store", str(store_path), "task.n_bits=16", "task.k=4", "train.max_steps=100"]) == 0
    store = Store(store_path)
    record = store.list_runs()[0]
    store.set_status(record.id, "failed", "pretend it crashed")
    return store, record


def test_resume_with_a_missing_checkpoint_is_one_clear_error(tmp_path):
    store, record = _crashed_run_with_a_checkpoint(tmp_path / "learnlab.sqlite")
    record.artifacts()["checkpoint"].unlink()
    before = store.all_metrics(record.id)
    with pytest.raises(Exception, match="is missing"):
        execute(HIDDEN_PROGRESS, None, store=store, resume=record.id, device="cpu", quiet=True)
    assert store.all_metrics(record.id) == before  # nothing lost


def test_multiplicative_weight_decay_is_the_papers_update(store):
    from learnlab.runner import Run
    from learnlab.train import ReplicaStream, fit

    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    run = Run(store, "r", None, device=torch.device("cpu"), quiet=True)
    model = torch.nn.Linear(2, 1, bias=False)
    start = model.weight.detach().clone()
    batches = ReplicaStream([lambda g, n: (torch.ones(n, 4, 2), torch.zeros(n, 4))], [0], "cpu")
    loss = lambda outputs, targets: (outputs.squeeze(-1) - targets).square().mean()  # noqa: E731
    cfg = TrainConfig(lr=0.1, weight_decay=0.05, weight_decay_style="multiplicative", max_steps=1, log_every=1)
    fit(model, batches, loss, cfg, run)
    gradient = 2 * (start.sum()) * torch.ones(1, 2)  # d/dw mean((w . 1)^2) = 2 (w . 1) 1
    assert torch.allclose(model.weight.detach(), (1 - 0.05) * start - 0.1 * gradient, atol=1e-6)


def test_resume_from_a_corrupt_checkpoint_is_one_clear_error(tmp_path, capsys):
    from learnlab.cli import main

    store_path = tmp_path / "learnlab.sqlite"
    store, record = _crashed_run_with_a_checkpoint(store_path)
    record.artifacts()["checkpoint"].write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["run", "hidden-progress", "--resume", record.id, "--store", str(store_path), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("learnlab: error: Checkpoint") and "is corrupt" in error and "\n" not in error
    assert store.get_run(record.id).status == "failed"  # untouched


def test_cross_field_rules_are_one_line_errors(tmp_path, capsys):
    from learnlab.cli import main

    assert main(["run", "icl-markov", "--preset", "smoke", "controls=bogus", "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "'controls' entries must be among" in capsys.readouterr().err


class _FreezeAt:
    """Freezes one replica at one step and remembers its weights then."""

    def __init__(self, replicas, replica: int, step: int):
        self.replicas, self.replica, self.step, self.weights_then = replicas, replica, step, None

    def __call__(self, model, step):
        if step == self.step:
            self.replicas.freeze(torch.arange(3) == self.replica)
            self.weights_then = [p.detach().clone() for p in model.parameters()]
        return {}

    def done(self, step):
        return False

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_frozen_replica_stops_exactly_and_the_others_train_on(store, optimizer):
    from learnlab.runner import Run
    from learnlab.train import ReplicaControl, ReplicaStream, fit

    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")

    def train(freeze: bool):
        run = Run(store, "r", None, device=torch.device("cpu"), quiet=True)
        model = TwoLayerMLP(6, MLPConfig(width=8), seeds=[1, 2, 3])
        sampler = lambda g, n: (torch.randn(n, 4, 6, generator=g), torch.randn(n, 4, generator=g))  # noqa: E731
        batches = ReplicaStream([sampler] * 3, [7, 8, 9], "cpu")
        # Momentum and weight decay would keep moving a replica whose gradient is merely zeroed.
        cfg = TrainConfig(optimizer=optimizer, lr=0.05, momentum=0.9 if optimizer == "sgd" else 0.0,
                          weight_decay=0.1, max_steps=40, eval_every=10, log_every=10)
        replicas = ReplicaControl.stoppable(3, "cpu")
        evaluator = _FreezeAt(replicas, 1, 20 if freeze else -1)
        fit(model, batches, lambda out, y: (out - y).square().mean(dim=1), cfg, run, evaluate=evaluator,
            replicas=replicas)
        return model, evaluator

    frozen, evaluator = train(freeze=True)
    free, _ = train(freeze=False)
    for p, then, q in zip(frozen.parameters(), evaluator.weights_then, free.parameters()):
        assert torch.equal(p[1], then[1])  # bit-identical since step 20
        assert not torch.equal(q[1], then[1])  # it would have moved
        assert torch.equal(p[[0, 2]], q[[0, 2]])  # the others are untouched by their neighbour's stop


def test_a_per_replica_learning_rate_trains_each_replica_as_alone_at_its_rate(store):
    from learnlab.runner import Run
    from learnlab.train import ReplicaControl, ReplicaStream, fit

    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    sampler = lambda g, n: (torch.randn(n, 4, 6, generator=g), torch.randn(n, 4, generator=g))  # noqa: E731
    loss = lambda out, y: (out - y).square().mean(dim=1)  # noqa: E731

    def train(seeds, data_seeds, lr, replicas=None):
        model = TwoLayerMLP(6, MLPConfig(width=8), seeds=seeds)
        cfg = TrainConfig(lr=lr, momentum=0.9, max_steps=30, log_every=10)
        fit(model, ReplicaStream([sampler] * len(seeds), data_seeds, "cpu"), loss, cfg,
            Run(store, "r", None, device=torch.device("cpu"), quiet=True), replicas=replicas)
        return model

    together = train([1, 2], [7, 8], 0.1, ReplicaControl(lr_scale=torch.tensor([1.0, 0.25])))
    for replica, lr in ((0, 0.1), (1, 0.025)):
        alone = train([[1, 2][replica]], [[7, 8][replica]], lr)
        for p, q in zip(together.parameters(), alone.parameters()):
            torch.testing.assert_close(p[replica], q[0], rtol=1e-5, atol=1e-6)


def test_measure_until_ends_the_run_at_the_first_evaluation_where_every_replica_reached_the_target(store):
    from learnlab.runner import Run
    from learnlab.train import Measure, ReplicaStream, fit

    store.create_run("u", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    run = Run(store, "u", None, device=torch.device("cpu"), quiet=True)
    model = TwoLayerMLP(4, MLPConfig(width=8), seeds=[1, 2])
    sampler = lambda g, n: (torch.randn(n, 16, 4, generator=g), torch.zeros(n, 16))  # noqa: E731
    batches = ReplicaStream([sampler] * 2, [7, 8], "cpu")
    # "closeness" to the zero target rises as |f| shrinks; the run stops once both replicas pass 0.9
    x_probe = torch.randn(2, 64, 4, generator=torch.Generator().manual_seed(0))
    evaluate = Measure(lambda m: {"closeness": 1 - m(x_probe).abs().mean(dim=1)}, until=("closeness", 0.9))
    cfg = TrainConfig(lr=0.05, max_steps=2000, eval_every=10, log_every=10)
    last = fit(model, batches, lambda out, y: (out - y).square().mean(dim=1), cfg, run, evaluate=evaluate)
    run.flush()
    closeness = store.series("u", "closeness").values
    assert last < 2000 and last % 10 == 0
    assert (closeness[-1] >= 0.9).all() and not (closeness[:-1] >= 0.9).all(axis=1).any()


def test_make_flat_optimizer_takes_torch_adamws_steps_on_a_plain_parameter_list():
    # copying passes model.parameters() (one group): FlatAdamW's parameters are torch's AdamW's, bit for bit;
    # SGD is not flattened
    from learnlab.train.optim import FlatAdamW, make_flat_optimizer, make_optimizer, set_learning_rate

    cfg = TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.1)
    trained = []
    for make in (make_optimizer, make_flat_optimizer):
        model = TwoLayerMLP(6, MLPConfig(width=5), seeds=[4, 5])
        optimizer = make(model.parameters(), cfg)
        assert isinstance(optimizer, FlatAdamW) == (make is make_flat_optimizer)
        g = torch.Generator().manual_seed(1)
        for step in range(6):
            optimizer.zero_grad(set_to_none=True)
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            set_learning_rate(optimizer, cfg.lr / (1 + step))
            optimizer.step()
        trained.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*trained))
    assert not isinstance(make_flat_optimizer(TwoLayerMLP(6, MLPConfig(width=5), seeds=[4]).parameters(),
                                              TrainConfig(optimizer="sgd")), FlatAdamW)
