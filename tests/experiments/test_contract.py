"""The contract every registered experiment keeps, at its smoke preset."""

import json
import math

import numpy as np
import pytest

from learnlab import config as config_lib
from learnlab.claims import (REPRODUCTION_VERDICTS, SANITY_VERDICTS, Measurement, Reproduction, Sanity)
from learnlab.config import ConfigError
from learnlab.experiments import EXPERIMENTS, get_experiment, resolve_preset
from learnlab import runner
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


def test_smoke_runs_logs_checks_claims_and_is_deterministic(experiment, store, smoke_run, monkeypatch):
    cfg = resolve_preset(experiment, "smoke")
    # The first run is the session's shared smoke run of this experiment (other files read it too).
    shared, first_id = smoke_run(experiment.NAME)
    record = shared.get_run(first_id)
    assert record.status == "completed", record.error
    # The repeats are compared on their numbers and claims: their figures (seconds each) are not drawn.
    monkeypatch.setattr(runner, "draw_figures", lambda *args, **kwargs: {})
    second = execute(experiment, cfg, store=store, preset="smoke", device="cpu", quiet=True)
    assert second.status == "completed", second.error
    claims = record.claims()
    assert record.metric_names() and len(claims) > 0
    for claim in claims:  # every claim has a kind and a verdict of its kind
        assert claim.kind in ("reproduction", "sanity"), claim
        assert claim.verdict in (REPRODUCTION_VERDICTS if claim.kind == "reproduction" else SANITY_VERDICTS), claim
        if claim.kind == "reproduction":
            assert claim.source and claim.threshold_source and claim.ci is not None, claim
    # Figures are stored artifacts (SVG and PNG) with captions in words.
    artifacts = record.artifacts()
    captions = json.loads(artifacts["figures.json"].read_text())
    assert captions, "an experiment draws at least one figure"
    for name, caption in captions.items():
        assert artifacts[f"figure/{name}.svg"].stat().st_size > 0 and artifacts[f"figure/{name}.png"].exists()
        assert " " in caption and "_" not in caption.split()[0], f"caption of {name} is not in words: {caption!r}"
    # The stored config is the resolved config.
    assert config_lib.from_dict(experiment.Config, record.config) == cfg
    # The same seed and config give the same numbers.
    assert shared.all_metrics(first_id) == store.all_metrics(second.run_id)
    assert [c.to_dict() for c in claims] == [c.to_dict() for c in store.claims(second.run_id)]
    # Another seed gives other numbers.
    other = execute(experiment, config_lib.apply_overrides(cfg, ["seed=1"]), store=store, device="cpu", quiet=True)
    assert store.all_metrics(other.run_id) != shared.all_metrics(first_id)


def _synthetic(spec, paper_side: bool) -> Measurement:
    """Values on the paper's side of a claim's threshold, or on the other side."""
    n = 400  # many units: a decisive interval
    t = spec.threshold
    if isinstance(spec, Reproduction) and spec.interval in ("wilson", "clopper-pearson"):
        wants_high = (spec.side in (">=", ">")) == paper_side
        return Measurement(np.ones(n) if wants_high else np.zeros(n))
    delta = max(abs(t) * 0.5, 0.1)
    if isinstance(spec, Sanity) and spec.side == "==":
        return Measurement(np.full(n, t if paper_side else t + spec.tolerance + delta))
    above = (spec.side in (">=", ">")) == paper_side
    values = np.full(n, t + delta if above else t - delta) + np.linspace(-1e-3, 1e-3, n) * delta
    return Measurement(values, standard_error=1e-3 * delta)


def test_every_claim_can_fail(experiment):
    """Each reproduction claim is reproduced on values on the paper's side of its threshold and
    not reproduced on the other side; each sanity claim fails on a violating value."""
    for preset in ("smoke", "quick"):
        cfg = resolve_preset(experiment, preset)
        specs = experiment.claims(cfg)
        assert specs, f"{experiment.NAME} {preset}: no claims"
        assert len({s.name for s in specs}) == len(specs)
        for spec in specs:
            assert isinstance(spec, (Reproduction, Sanity)), spec
            if isinstance(spec, Reproduction):
                assert spec.judge(_synthetic(spec, True)).verdict == "reproduced", spec.name
                assert spec.judge(_synthetic(spec, False)).verdict == "not reproduced", spec.name
                assert math.isfinite(spec.threshold)
            else:
                assert spec.judge(_synthetic(spec, True)).verdict == "pass", spec.name
                assert spec.judge(_synthetic(spec, False)).verdict == "fail", spec.name


def test_an_invalid_config_fails_before_anything_is_written(experiment, store):
    cfg = resolve_preset(experiment, "smoke")
    broken = cfg.__class__(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "seed": -1})
    with pytest.raises(ConfigError, match="'seed'"):
        execute(experiment, broken, store=store, device="cpu", quiet=True)
    assert store.list_runs() == []
