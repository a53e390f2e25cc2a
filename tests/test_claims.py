"""Claim kinds, intervals and verdicts (closed forms first)."""

import math

import numpy as np
import pytest

from learnlab.claims import (Claim, Measurement, NotMeasured, Reproduction, Sanity, bootstrap_interval,
                             check_claims, clopper_pearson_interval, summarise, wilson_interval)


def _spec(side=">=", threshold=0.5, interval="bootstrap", measure=None):
    return Reproduction("x", "a statement", source="Fig. 1", statistic="mean", threshold=threshold, side=side,
                        threshold_source="paper", unit="seeds", interval=interval,
                        measure=measure or (lambda run: Measurement([])))


def test_wilson_matches_the_closed_form():
    low, high = wilson_interval(8, 10)
    # Wilson (1927) for p = 0.8, n = 10, z = 1.96: [0.490, 0.943]
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 20)[0] == 0.0


def test_clopper_pearson_contains_wilson_for_a_small_sample():
    cp, w = clopper_pearson_interval(8, 10), wilson_interval(8, 10)
    assert cp[0] <= w[0] and cp[1] >= w[1]


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_units():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 10), rng.normal(1.0, 1.0, 1000)
    s, l = bootstrap_interval(small), bootstrap_interval(large)
    assert s[0] < small.mean() < s[1] and l[0] < 1.0 < l[1]
    assert (l[1] - l[0]) < (s[1] - s[0])
    assert all(math.isnan(v) for v in bootstrap_interval([1.0]))  # one unit has no interval


@pytest.mark.parametrize("side,values,verdict", [
    (">=", [0.9] * 10, "reproduced"), (">=", [0.1] * 10, "not reproduced"), (">=", [0.0, 1.0] * 5, "inconclusive"),
    ("<=", [0.1] * 10, "reproduced"), ("<=", [0.9] * 10, "not reproduced"), (">=", [], "inconclusive"),
])
def test_three_way_verdict(side, values, verdict):
    assert _spec(side).judge(Measurement(values)).verdict == verdict


def test_strict_sides_do_not_count_an_interval_on_the_threshold():
    # Integer statistics (e.g. blocks chosen): every paired difference 0 is not "more".
    assert _spec(">", threshold=0.0).judge(Measurement([0.0] * 10)).verdict == "not reproduced"
    assert _spec(">=", threshold=0.0).judge(Measurement([0.0] * 10)).verdict == "reproduced"
    assert _spec(">", threshold=0.0).judge(Measurement([1.0, 1.0, 0.0, 1.0, 3.0] * 2)).verdict == "reproduced"
    assert _spec("<", threshold=0.0).judge(Measurement([0.0] * 10)).verdict == "not reproduced"
    assert _spec("<", threshold=0.0).judge(Measurement([-1.0] * 10)).verdict == "reproduced"


def test_rate_claims_use_wilson_and_reject_non_binary_values():
    claim = _spec(interval="wilson").judge(Measurement([1] * 9 + [0]))
    assert claim.estimate == pytest.approx(0.9) and claim.ci == pytest.approx(wilson_interval(9, 10))
    with pytest.raises(ValueError):
        _spec(interval="wilson").judge(Measurement([0.5]))


def test_not_measured_is_inconclusive_with_the_reason():
    def measure(run):
        raise NotMeasured("part skipped")

    claim = _spec(measure=measure).check(None)
    assert claim.verdict == "inconclusive" and "part skipped" in claim.detail


def test_sanity_pass_fail_and_claim_round_trip():
    spec = Sanity("io", "exact count", statistic="reads", threshold=10, side="==", measure=lambda run: Measurement([10]))
    assert spec.check(None).verdict == "pass"
    assert spec.judge(Measurement([11])).verdict == "fail"
    assert spec.judge(Measurement([float("nan")])).verdict == "fail"
    claim = _spec().judge(Measurement([0.7, 0.8, 0.9]))
    assert Claim.from_dict(claim.to_dict()).to_dict() == claim.to_dict()


def test_a_reproduction_needs_its_sources():
    with pytest.raises(ValueError):
        Reproduction("x", "s", source="", statistic="m", threshold=0.5, side=">=", threshold_source="paper",
                     unit="seeds", measure=lambda run: Measurement([]))


def test_summary_counts_kinds_separately():
    claims = check_claims([_spec(measure=lambda run: Measurement([0.9] * 5)),
                           Sanity("s", "st", statistic="v", threshold=0, side=">=", measure=lambda r: Measurement([1]))],
                          None)
    assert summarise(claims) == ("paper claims: 1 reproduced, 0 not reproduced, 0 inconclusive of 1; sanity: 1 of 1")
