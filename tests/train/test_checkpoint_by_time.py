"""Checkpoints are on by default (by time), and a run without one refuses --resume."""

import pytest

from learnlab.config import apply_overrides
from learnlab.errors import StoreError
from learnlab.experiments import get_experiment, resolve_preset
from learnlab.runner import execute

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def test_time_based_checkpoints_keep_the_numbers(store):
    experiment = get_experiment("hidden-progress")
    cfg = resolve_preset(experiment, "smoke")
    never = execute(experiment, apply_overrides(cfg, ["train.checkpoint_seconds=none"]), store=store, device="cpu",
                    quiet=True)
    always = execute(experiment, apply_overrides(cfg, ["train.checkpoint_seconds=1e-9"]), store=store, device="cpu",
                     quiet=True)
    assert never.status == always.status == "completed"
    assert store.all_metrics(never.run_id) == store.all_metrics(always.run_id)
    assert any(name.startswith("checkpoint") for name in store.artifacts(always.run_id))
    assert not any(name.startswith("checkpoint") for name in store.artifacts(never.run_id))


def test_resume_without_a_checkpoint_is_refused(store):
    from types import SimpleNamespace

    experiment = get_experiment("hidden-progress")
    cfg = apply_overrides(resolve_preset(experiment, "smoke"), ["train.checkpoint_seconds=none"])

    def stopped(cfg, run):  # trains without a checkpoint (and no grid cells), stopped before it returns
        experiment.run(cfg, run)
        raise KeyboardInterrupt

    parts = {name: getattr(experiment, name) for name in ("NAME", "DESCRIPTION", "Config", "presets", "claims",
                                                          "figures")}
    with pytest.raises(KeyboardInterrupt):
        execute(SimpleNamespace(**parts, run=stopped), cfg, store=store, device="cpu", quiet=True)
    (record,) = store.list_runs()
    assert record.status == "interrupted"
    with pytest.raises(StoreError, match="no checkpoint to resume from"):
        execute(experiment, None, store=store, device="cpu", quiet=True, resume=record.id)
