"""An evaluator that only measures runs beside training, on a copy of the weights, with the same numbers."""

import threading

import torch

from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.runner import Run
from learnlab.store import Store
from learnlab.train import ReplicaStream, fit
from learnlab.train.optim import TrainConfig


class _Norms:
    """Logs the weights' norm and remembers which model object and thread each call saw."""

    def __init__(self, beside: bool):
        self.beside_training = beside
        self.calls: list[tuple[int, int, str]] = []  # (step, id(model), thread name)

    def __call__(self, model, step):
        self.calls.append((step, id(model), threading.current_thread().name))
        return {"norm": torch.stack([p.detach().flatten(1).norm(dim=1) for p in model.parameters()]).sum(0)}

    def done(self, step):
        return False

    def state_dict(self):
        return {"calls": len(self.calls)}

    def load_state_dict(self, state):
        pass


def _train(store: Store, run_id: str, evaluate: _Norms, checkpoint_every: int = 0, max_steps: int = 90):
    store.create_run(run_id, experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    run = Run(store, run_id, None, device=torch.device("cpu"), quiet=True)
    model = TwoLayerMLP(4, MLPConfig(width=8), seeds=[1, 2])
    batches = ReplicaStream([lambda g, n: (torch.randn(n, 16, 4, generator=g), torch.randn(n, 16, generator=g))] * 2,
                            [7, 8], "cpu")
    cfg = TrainConfig(lr=0.05, max_steps=max_steps, eval_every=10, log_every=5, checkpoint_every=checkpoint_every,
                      checkpoint_seconds=None)
    fit(model, batches, lambda out, y: (out - y).square().mean(dim=1), cfg, run, evaluate=evaluate)
    run.flush()
    return model


def test_an_evaluator_beside_training_logs_the_numbers_it_would_log_in_line(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    in_line, beside = _Norms(beside=False), _Norms(beside=True)
    trained_in_line = _train(store, "in-line", in_line)
    trained_beside = _train(store, "beside", beside, checkpoint_every=30)
    assert store.all_metrics("beside") == store.all_metrics("in-line")
    assert list(store.series("beside", "norm").steps) == list(range(0, 91, 10))
    for a, b in zip(trained_in_line.parameters(), trained_beside.parameters()):
        assert torch.equal(a, b)
    # in line: the training model in this thread; beside: one copy of it, in the worker thread
    assert {(i, t) for _, i, t in in_line.calls} == {(id(trained_in_line), threading.current_thread().name)}
    (copy_id, thread), = {(i, t) for _, i, t in beside.calls}
    assert copy_id != id(trained_beside) and thread.startswith("learnlab-evaluate")


def test_an_error_in_an_evaluator_beside_training_reaches_the_training_thread(tmp_path):
    class Failing(_Norms):
        def __call__(self, model, step):
            if step == 20:
                raise ValueError("the probe failed at step 20")
            return super().__call__(model, step)

    store = Store(tmp_path / "s.sqlite")
    try:
        _train(store, "failing", Failing(beside=True))
    except ValueError as error:
        assert "step 20" in str(error)
    else:
        raise AssertionError("the evaluator's error was lost")
