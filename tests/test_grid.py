"""The grid layer: a run's cells, each in its scope, skipped by a resumed run once finished."""

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from learnlab.claims import Measurement, Sanity
from learnlab.config import Interval, param
from learnlab.grid import cell, cells, for_each_cell
from learnlab.runner import Run, execute
from learnlab.store import Store


@dataclass(frozen=True)
class ToyConfig:
    seed: int = param(0, Interval(0, None))
    widths: tuple[int, ...] = param((10, 30), Interval(1, None))


def _toy(name: str, run, measure=None):
    """An experiment of ``run`` (and one sanity claim reading ``measure``, if given)."""
    claims = [Sanity("x-positive", "x > 0", statistic="x", threshold=0.0, side=">=", measure=measure)] if measure else []
    return SimpleNamespace(NAME=name, DESCRIPTION="", Config=ToyConfig, run=run, presets=lambda: {},
                           claims=lambda cfg: claims, figures=lambda run: {})


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "grid.sqlite")
    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    return store


def _handle(store: Store) -> Run:
    return Run(store, "r", None, device=torch.device("cpu"), quiet=True)


def test_cells_are_the_product_of_the_axes_in_order():
    grid = cells(lambda width, lr: f"w{width}_lr{lr}", width=(10, 30), lr=(0.1, 1.0))
    assert [c.scope for c in grid] == ["w10_lr0.1", "w10_lr1.0", "w30_lr0.1", "w30_lr1.0"]
    assert (grid[2].width, grid[2].lr) == (30, 0.1)
    assert grid[2].describe() == "width=30 lr=0.1"
    with pytest.raises(AttributeError, match="no axis 'depth'"):
        grid[0].depth
    with pytest.raises(ValueError, match="may not contain '--'"):
        cells(lambda lr: f"lr--{lr}", lr=(1,))


def test_two_cells_of_one_grid_may_not_share_a_scope(store):
    for grid in (cells(lambda width: "same", width=(1, 2)), [cell("w10", width=10), cell("w10", width=10)]):
        with pytest.raises(ValueError, match="share a scope"):
            for_each_cell(_handle(store), grid, lambda c, r: None)


def test_each_cell_writes_in_its_scope_and_returns_in_order(store):
    run = _handle(store)

    def train(c, r):
        r.log(0, accuracy=c.width / 100)
        return c.width * 2

    assert for_each_cell(run, cells(lambda width: f"w{width}", width=(10, 30, 150)), train) == [20, 60, 300]
    run.flush()
    finals = store.final_metrics("r")
    assert finals == {"w10/accuracy": 0.1, "w30/accuracy": 0.3, "w150/accuracy": 1.5}


def test_a_resumed_run_skips_finished_cells_and_gets_their_results_back(store):
    entered = []

    def train(c, r):
        entered.append(c.scope)
        if c.n == 3 and len(entered) == 2:  # the first process dies inside the second cell
            raise KeyboardInterrupt
        r.log(0, steps=float(c.n * 10))
        return {"steps": c.n * 10}

    grid = cells(lambda n: f"n{n}", n=(2, 3, 4))
    with pytest.raises(KeyboardInterrupt):
        for_each_cell(_handle(store), grid, train)
    assert entered == ["n2", "n3"]
    # A new process takes the run up: n2 is not entered again, its result comes from the store.
    results = for_each_cell(_handle(store), grid, train)
    assert entered == ["n2", "n3", "n3", "n4"]
    assert results == [{"steps": 20}, {"steps": 30}, {"steps": 40}]
    assert store.final_metrics("r") == {"n2/steps": 20.0, "n3/steps": 30.0, "n4/steps": 40.0}


def test_nested_cells_are_recorded_under_their_full_scope(store):
    entered = []

    def inner(c, r):
        entered.append((r.scope, c.model))
        return None

    def part(c, r):
        for_each_cell(r, cells(str, model=("mlp", "linear")), inner)

    for_each_cell(_handle(store), [cell("gaussian", part="gaussian")], part)
    for_each_cell(_handle(store), [cell("gaussian", part="gaussian")], part)  # finished: nothing entered again
    assert entered == [("gaussian/mlp", "mlp"), ("gaussian/linear", "linear")]
    inner_again = []
    for_each_cell(_handle(store).scoped("gaussian"), cells(str, model=("mlp", "linear")),
                  lambda c, r: inner_again.append(c.model))
    assert inner_again == []


def test_a_cell_must_return_what_its_record_can_give_back(store):
    for value in (torch.ones(2), (1, 2), [1, (2, 3)], {3: "x"}):
        with pytest.raises(TypeError, match="cannot give back"):
            for_each_cell(_handle(store), [cell("a")], lambda c, r: value)
    assert for_each_cell(_handle(store), [cell("b")], lambda c, r: {"steps": [1, 2.5, None], "ok": True}) == [
        {"steps": [1, 2.5, None], "ok": True}]


@pytest.mark.parametrize("damage", ["not json", "null", '{"scope": "a"}', '{"result": 3}'])
def test_a_damaged_cell_record_means_the_cell_trains_again(store, damage):
    entered = []
    for_each_cell(_handle(store), [cell("a")], lambda c, r: entered.append(1) or 7)
    store.artifacts("r")["a.cell"].write_text(damage)
    assert for_each_cell(_handle(store), [cell("a")], lambda c, r: entered.append(1) or 7) == [7]
    assert entered == [1, 1]


def test_an_interrupted_grid_run_resumes_without_entering_finished_cells(tmp_path):
    entered = []

    def run(cfg, run):
        def train(c, r):
            entered.append(c.scope)
            if entered == ["w10_d1", "w10_d2"]:
                raise KeyboardInterrupt  # the first process stops inside its second cell
            r.log(0, accuracy=torch.full((2,), c.width / (c.width + c.depth)))
            return c.width * c.depth
        steps = for_each_cell(run, cells(lambda w, d: f"w{w}_d{d}", width=cfg.widths, depth=(1, 2)), train)
        run.log(0, product_sum=float(sum(steps)))

    Toy = _toy("grid-toy", run)

    store = Store(tmp_path / "toy.sqlite")
    with pytest.raises(KeyboardInterrupt):
        execute(Toy, ToyConfig(), store=store, device="cpu", quiet=True)
    (record,) = store.list_runs()
    assert record.status == "interrupted"
    # No checkpoint was written, but a finished cell is progress: the run resumes.
    outcome = execute(Toy, None, store=store, resume=record.id, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    assert entered == ["w10_d1", "w10_d2", "w10_d2", "w30_d1", "w30_d2"]
    finals = store.final_metrics(record.id)
    assert finals["product_sum"] == 10 + 20 + 30 + 60  # w10_d1's return value read back from its record
    assert sorted(finals) == ["product_sum", "w10_d1/accuracy", "w10_d2/accuracy", "w30_d1/accuracy",
                              "w30_d2/accuracy"]


def test_a_run_stopped_while_its_claims_are_checked_is_interrupted_and_resumes_to_them(tmp_path):
    checks = []

    def measure(run):
        checks.append(1)
        if len(checks) == 1:
            raise KeyboardInterrupt  # Ctrl-C after training, while the claims are checked
        return Measurement([run.last("a/x")])

    def run(cfg, run):
        for_each_cell(run, [cell("a")], lambda c, r: r.log(0, x=1.0))

    Toy = _toy("claims-toy", run, measure)
    store = Store(tmp_path / "toy.sqlite")
    with pytest.raises(KeyboardInterrupt):
        execute(Toy, ToyConfig(), store=store, device="cpu", quiet=True)
    (record,) = store.list_runs()
    assert record.status == "interrupted"  # not left "running" with no process behind it
    outcome = execute(Toy, None, store=store, resume=record.id, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    assert [c.verdict for c in store.claims(record.id)] == ["pass"]


def test_a_run_without_checkpoints_or_cells_stopped_at_its_claims_resumes_to_them_alone(tmp_path):
    trainings, checks = [], []

    def measure(run):
        checks.append(1)
        if len(checks) == 1:
            raise KeyboardInterrupt
        return Measurement([run.last("x")])

    def run(cfg, run):
        trainings.append(1)
        run.log(0, x=1.0)

    Toy = _toy("short-toy", run, measure)
    store = Store(tmp_path / "toy.sqlite")
    with pytest.raises(KeyboardInterrupt):
        execute(Toy, ToyConfig(), store=store, device="cpu", quiet=True)
    (record,) = store.list_runs()
    outcome = execute(Toy, None, store=store, resume=record.id, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    assert trainings == [1]  # trained once: the resume went straight to the claims
    assert [c.verdict for c in store.claims(record.id)] == ["pass"]
    assert store.final_metrics(record.id) == {"x": 1.0}


def test_a_second_training_in_one_scope_of_a_run_is_refused(store):
    """Two fits in one scope would make the second resume from the first's checkpoint once one
    was written (sampler-distillation's teacher pools did, depending on the checkpoint timer)."""
    from learnlab.train import ReplicaStream, fit
    from learnlab.train.optim import TrainConfig

    run = _handle(store)
    batches = ReplicaStream([lambda g, n: (torch.randn(n, 4, 2, generator=g), torch.zeros(n, 4))], [7], "cpu")
    loss = lambda out, y: (out.squeeze(-1) - y).square().mean()  # noqa: E731
    cfg = TrainConfig(lr=0.1, max_steps=3, log_every=1)
    fit(torch.nn.Linear(2, 1), batches, loss, cfg, run.scoped("teachers"))
    fit(torch.nn.Linear(2, 1), batches, loss, cfg, run.scoped("other"))  # another scope: fine
    with pytest.raises(RuntimeError, match="second training in scope 'teachers'"):
        fit(torch.nn.Linear(2, 1), batches, loss, cfg, run.scoped("teachers"))
