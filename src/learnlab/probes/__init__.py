"""Probes: measurements on models and on training curves."""

from learnlab.probes.curves import first_step, phase_transition, rank_correlation
from learnlab.probes.weights import coordinate_magnitude, support_gap, weight_movement

__all__ = ["coordinate_magnitude", "first_step", "phase_transition", "rank_correlation", "support_gap",
           "weight_movement"]
