"""The contract every registered experiment keeps, at its smoke preset."""

import pytest

from learnlab import config as config_lib
from learnlab.config import ConfigError
from learnlab.experiments import EXPERIMENTS, get_experiment, resolve_preset
from learnlab.runner import execute


@pytest.fixture(params=EXPERIMENTS)
def experiment(request):
    return get_experiment(request.param)


def test_presets_are_valid_and_named(experiment):
    presets = experiment.presets()
    assert {"smoke", "quick", "paper"} <= set(presets)
    for name, cfg in presets.items():
        if name in getattr(experiment, "USER_INPUT_PRESETS", ()):  # runs on files you provide: says which
            with pytest.raises(ConfigError, match="--weights|--data"):
                config_lib.validate(cfg)
        else:
            config_lib.validate(cfg)


def test_smoke_runs_logs_checks_claims_and_is_deterministic(experiment, store):
    cfg = resolve_preset(experiment, "smoke")
    first = execute(experiment, cfg, store=store, preset="smoke", device="cpu", quiet=True)
    second = execute(experiment, cfg, store=store, preset="smoke", device="cpu", quiet=True)
    assert first.status == second.status == "completed", first.error
    record = store.get_run(first.run_id)
    assert record.metric_names() and len(record.claims()) > 0
    # The stored config is the resolved config.
    assert config_lib.from_dict(experiment.Config, record.config) == cfg
    # The same seed and config give the same numbers.
    assert store.all_metrics(first.run_id) == store.all_metrics(second.run_id)
    assert [c.measured for c in record.claims()] == [c.measured for c in store.claims(second.run_id)]
    # Another seed gives other numbers.
    other = execute(experiment, config_lib.apply_overrides(cfg, ["seed=1"]), store=store, device="cpu", quiet=True)
    assert store.all_metrics(other.run_id) != store.all_metrics(first.run_id)


def test_an_invalid_config_fails_before_anything_is_written(experiment, store):
    cfg = resolve_preset(experiment, "smoke")
    broken = cfg.__class__(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "seed": -1})
    with pytest.raises(ConfigError, match="'seed'"):
        execute(experiment, broken, store=store, device="cpu", quiet=True)
    assert store.list_runs() == []
