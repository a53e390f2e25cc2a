"""Claims as pre-registered tests: a paper's statement, checked on measured results.

Two kinds (see DESIGN.md, "Evidence"):

- :class:`Reproduction`: a statement of the paper, in our words, with its ``source``
  (section, figure or table), the ``statistic`` measured, a ``threshold`` and where it
  comes from (the paper's number or what its theory implies, never a value read off our
  runs), the ``unit`` it aggregates over (seeds, runs, test examples) and an interval
  method. Its verdict is three-way: ``reproduced`` when the whole 95% interval lies on the
  paper's side of the threshold, ``not reproduced`` when it lies on the other side,
  ``inconclusive`` when it straddles (or nothing could be measured).
- :class:`Sanity`: an invariant, identity or by-construction property (an I/O count, an
  exact equality, a proven bound checked by Monte Carlo, a hand-built algorithm). Its
  verdict is ``pass`` or ``fail``; it is a guard, never counted as a reproduction.

A spec is declared before the run from the config (``experiment.claims(cfg)``); its
``measure`` reads the stored run and returns a :class:`Measurement` (one value per
unit); ``judge`` turns a measurement into a checked :class:`Claim`. Measuring and
judging are separate so the contract test can feed every claim values on both sides of
its threshold and prove it can fail.

Example::

    Reproduction(
        "abrupt-transition", "Accuracy jumps from chance to near 1 within a short window.",
        source="Sec. 4, Fig. 2", statistic="fraction of seeds whose jump takes <= 10% of t_c",
        threshold=0.5, side=">=", threshold_source="paper: 'most runs'", unit="seeds",
        interval="wilson", measure=lambda run: Measurement(run.over_seeds("abrupt")))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "Claim", "Reproduction", "Sanity", "Measurement", "NotMeasured", "ClaimSpec",
    "REPRODUCTION_VERDICTS", "SANITY_VERDICTS", "bootstrap_interval", "wilson_interval",
    "clopper_pearson_interval", "normal_interval", "check_claims", "summarise",
]

REPRODUCTION_VERDICTS = ("reproduced", "not reproduced", "inconclusive")
SANITY_VERDICTS = ("pass", "fail")
Side = Literal[">=", "<=", ">", "<"]
IntervalMethod = Literal["bootstrap", "wilson", "clopper-pearson", "normal"]
CONFIDENCE = 0.95
_Z = 1.959963984540054  # the two-sided 95% normal quantile


class NotMeasured(Exception):
    """Raised by a ``measure`` when the statistic does not apply to this run (a part was
    not run, a precondition failed): the verdict is ``inconclusive`` with this reason."""


@dataclass(frozen=True)
class Measurement:
    """What a claim's ``measure`` returns.

    values : one number per unit (seed, run, test example, pass); 0/1 for a rate.
    detail : the measured values in words for the report (``"t = 12 of 16 seeds"``).
    standard_error : for ``interval="normal"`` on a single Monte Carlo estimate.
    """

    values: Any
    detail: str = ""
    standard_error: float | None = None

    def array(self) -> np.ndarray:
        values = np.asarray(self.values, dtype=np.float64).ravel()
        return values[np.isfinite(values)]


# ----------------------------------------------------------------------------- intervals


def bootstrap_interval(values: Sequence[float], *, statistic: Callable[[np.ndarray], float] = np.mean,
                       resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of ``statistic`` over units (deterministic: fixed
    seed). Fewer than two units have no interval: ``(nan, nan)``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), size=(resamples, len(values)))]
    if statistic is np.mean:
        stats = draws.mean(axis=1)
    elif statistic is np.median:
        stats = np.median(draws, axis=1)
    else:
        stats = np.array([statistic(row) for row in draws])
    low, high = np.quantile(stats, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(low), float(high)


def wilson_interval(successes: float, trials: int) -> tuple[float, float]:
    """Wilson score 95% interval of a rate."""
    if trials <= 0:
        return (math.nan, math.nan)
    p = successes / trials
    denominator = 1 + _Z**2 / trials
    centre = (p + _Z**2 / (2 * trials)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / trials + _Z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson_interval(successes: int, trials: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a rate."""
    from scipy.stats import beta  # scipy comes with scikit-learn

    if trials <= 0:
        return (math.nan, math.nan)
    alpha = 1 - CONFIDENCE
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def normal_interval(estimate: float, standard_error: float) -> tuple[float, float]:
    """estimate +- 1.96 standard errors (a Monte Carlo estimate)."""
    return estimate - _Z * standard_error, estimate + _Z * standard_error


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Claim:
    """One checked claim, as stored and shown.

    kind : ``reproduction`` or ``sanity``
    verdict : one of ``REPRODUCTION_VERDICTS`` or ``SANITY_VERDICTS``
    estimate : the statistic's value (mean / rate / median over units); for a sanity
        claim the value farthest from the threshold's side
    ci : the 95% interval (two numbers) for a reproduction, ``None`` for a sanity claim
    threshold : e.g. ``">= 0.5"``; threshold_source says where the number comes from
    detail : the measured values in words
    """

    name: str
    kind: str
    statement: str
    verdict: str
    statistic: str = ""
    estimate: float | None = None
    ci: tuple[float, float] | None = None
    threshold: str = ""
    source: str | None = None
    threshold_source: str | None = None
    unit: str | None = None
    n_units: int | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict in ("reproduced", "pass")

    @property
    def measured(self) -> str:
        """The measurement in words: estimate, interval and detail."""
        parts = []
        if self.estimate is not None and math.isfinite(self.estimate):
            text = f"{self.estimate:.4g}"
            if self.ci is not None and all(math.isfinite(v) for v in self.ci):
                text += f" [{self.ci[0]:.3g}, {self.ci[1]:.3g}]"
            if self.n_units:
                text += f" over {self.n_units} {self.unit or 'units'}"
            parts.append(text)
        if self.detail:
            parts.append(self.detail)
        return "; ".join(parts) or "not measured"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "statement": self.statement, "source": self.source,
            "statistic": self.statistic, "estimate": _finite(self.estimate),
            "ci": None if self.ci is None else [_finite(self.ci[0]), _finite(self.ci[1])],
            "threshold": self.threshold, "threshold_source": self.threshold_source, "unit": self.unit,
            "n_units": self.n_units, "verdict": self.verdict, "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claim:
        ci = data.get("ci")
        return cls(
            name=data["name"], kind=data["kind"], statement=data["statement"], verdict=data["verdict"],
            statistic=data.get("statistic") or "", threshold=data.get("threshold") or "",
            estimate=math.nan if data.get("estimate") is None else float(data["estimate"]),
            ci=None if ci is None else (_nan_if_none(ci[0]), _nan_if_none(ci[1])),
            source=data.get("source"), threshold_source=data.get("threshold_source"), unit=data.get("unit"),
            n_units=data.get("n_units"), detail=data.get("detail") or "",
        )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Reproduction:
    """A paper's statement as a pre-registered test (see the module docstring).

    threshold, side : the paper's side is ``estimate >= threshold`` (side ``">="``) or
        ``estimate <= threshold`` (side ``"<="``); ``">"`` and ``"<"`` are strict (an interval
        that touches the threshold is inconclusive): for discrete statistics, where an
        interval of exactly [0, 0] must not count as "more")
    interval : ``bootstrap`` (of the mean, or the median with ``estimator="median"``, over
        units), ``wilson`` or ``clopper-pearson`` (0/1 values: a rate), ``normal`` (one
        Monte Carlo estimate with its ``standard_error``)
    """

    name: str
    statement: str
    source: str
    statistic: str
    threshold: float
    side: Side
    threshold_source: str
    unit: str
    measure: Callable[[Any], Measurement] = field(repr=False, compare=False)
    interval: IntervalMethod = "bootstrap"
    estimator: Literal["mean", "median"] = "mean"

    kind = "reproduction"

    def __post_init__(self):
        if self.side not in (">=", "<=", ">", "<"):
            raise ValueError(f"claim {self.name}: side must be '>=', '<=', '>' or '<', got {self.side!r}")
        if not self.source or not self.threshold_source:
            raise ValueError(f"claim {self.name}: a reproduction names its source and its threshold's source")

    def judge(self, measurement: Measurement) -> Claim:
        values = measurement.array()
        n = len(values)
        estimate, ci = math.nan, (math.nan, math.nan)
        if n:
            if self.interval in ("wilson", "clopper-pearson"):
                if not np.all((values == 0) | (values == 1)):
                    raise ValueError(f"claim {self.name}: a rate's values must be 0 or 1")
                successes = float(values.sum())
                estimate = successes / n
                ci = (wilson_interval(successes, n) if self.interval == "wilson"
                      else clopper_pearson_interval(int(successes), n))
            elif self.interval == "normal":
                estimate = float(values.mean())
                error = measurement.standard_error
                if error is None:
                    error = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
                ci = normal_interval(estimate, error)
            else:
                estimator = np.median if self.estimator == "median" else np.mean
                estimate = float(estimator(values))
                ci = bootstrap_interval(values, statistic=estimator)
        low, high = ci
        if not (math.isfinite(low) and math.isfinite(high)):
            verdict = "inconclusive"
        elif self.side == ">=":
            verdict = "reproduced" if low >= self.threshold else "not reproduced" if high < self.threshold else "inconclusive"
        elif self.side == ">":
            verdict = "reproduced" if low > self.threshold else "not reproduced" if high <= self.threshold else "inconclusive"
        elif self.side == "<":
            verdict = "reproduced" if high < self.threshold else "not reproduced" if low >= self.threshold else "inconclusive"
        else:
            verdict = "reproduced" if high <= self.threshold else "not reproduced" if low > self.threshold else "inconclusive"
        return Claim(self.name, self.kind, self.statement, verdict, statistic=self.statistic, estimate=estimate,
                     ci=ci, threshold=f"{self.side} {self.threshold:g}", source=self.source,
                     threshold_source=self.threshold_source, unit=self.unit, n_units=n, detail=measurement.detail)

    def check(self, run: Any) -> Claim:
        try:
            return self.judge(self.measure(run))
        except NotMeasured as reason:
            return Claim(self.name, self.kind, self.statement, "inconclusive", statistic=self.statistic,
                         estimate=math.nan, ci=(math.nan, math.nan), threshold=f"{self.side} {self.threshold:g}",
                         source=self.source, threshold_source=self.threshold_source, unit=self.unit, n_units=0,
                         detail=f"not measured: {reason}")


@dataclass(frozen=True)
class Sanity:
    """An invariant: passes when every measured value satisfies ``side threshold``
    (``"=="`` within ``tolerance``)."""

    name: str
    statement: str
    statistic: str
    threshold: float
    side: Literal[">=", "<=", "=="]
    measure: Callable[[Any], Measurement] = field(repr=False, compare=False)
    tolerance: float = 0.0

    kind = "sanity"

    def __post_init__(self):
        if self.side not in (">=", "<=", "=="):
            raise ValueError(f"claim {self.name}: side must be '>=', '<=' or '=='")

    def judge(self, measurement: Measurement) -> Claim:
        raw = np.asarray(measurement.values, dtype=np.float64).ravel()
        if len(raw) == 0 or not np.all(np.isfinite(raw)):
            return self._claim("fail", math.nan, measurement.detail or "no finite value measured")
        if self.side == ">=":
            worst, ok = float(raw.min()), bool(raw.min() >= self.threshold)
        elif self.side == "<=":
            worst, ok = float(raw.max()), bool(raw.max() <= self.threshold)
        else:
            worst = float(raw[np.argmax(np.abs(raw - self.threshold))])
            ok = bool(abs(worst - self.threshold) <= self.tolerance)
        return self._claim("pass" if ok else "fail", worst, measurement.detail)

    def _claim(self, verdict: str, estimate: float, detail: str) -> Claim:
        threshold = f"{self.side} {self.threshold:g}" + (f" +- {self.tolerance:g}" if self.side == "==" and self.tolerance else "")
        return Claim(self.name, self.kind, self.statement, verdict, statistic=self.statistic, estimate=estimate,
                     ci=None, threshold=threshold, detail=detail)

    def check(self, run: Any) -> Claim:
        try:
            return self.judge(self.measure(run))
        except NotMeasured as reason:
            return self._claim("fail", math.nan, f"not measured: {reason}")


ClaimSpec = Reproduction | Sanity


def check_claims(specs: Sequence[ClaimSpec], run: Any) -> list[Claim]:
    """Check every spec on ``run``; names must be unique."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate claim names: {sorted({n for n in names if names.count(n) > 1})}")
    return [spec.check(run) for spec in specs]


def summarise(claims: Sequence[Claim]) -> str:
    """``paper claims: R reproduced, N not reproduced, I inconclusive of T; sanity: S of S``."""
    paper = [c for c in claims if c.kind == "reproduction"]
    sanity = [c for c in claims if c.kind == "sanity"]
    count = {v: sum(c.verdict == v for c in paper) for v in REPRODUCTION_VERDICTS}
    return (f"paper claims: {count['reproduced']} reproduced, {count['not reproduced']} not reproduced, "
            f"{count['inconclusive']} inconclusive of {len(paper)}; "
            f"sanity: {sum(c.verdict == 'pass' for c in sanity)} of {len(sanity)}")
