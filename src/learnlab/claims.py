"""A paper's claim, checked on measured results: statement, measured value, threshold, verdict."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Claim"]


@dataclass(frozen=True)
class Claim:
    """One checked claim.

    Attributes
    ----------
    name : short identifier (``abrupt-transition``)
    statement : what the paper says, in its words where possible
    measured : the measured value, as text (``median 0.71 of t_c``)
    threshold : what counts as reproduced (``>= 0.5``)
    passed : the verdict on the measured value
    """

    name: str
    statement: str
    measured: str
    threshold: str
    passed: bool

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"
