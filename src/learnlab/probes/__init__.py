"""Probes: measurements on models and on training curves."""

from learnlab.probes.curves import binomial_interval, first_step, loglog_slope, phase_transition, rank_correlation
from learnlab.probes.fourier import correlation_gradient, fourier_gap, hypercube
from learnlab.probes.hooks import capture
from learnlab.probes.markov import count_only_floor, kl_divergence, ngram_strategy, strategy_distributions
from learnlab.probes.weights import coordinate_magnitude, support_gap, weight_movement

__all__ = [
    "binomial_interval", "capture", "coordinate_magnitude", "correlation_gradient", "count_only_floor", "first_step", "fourier_gap",
    "hypercube", "kl_divergence", "loglog_slope", "ngram_strategy", "phase_transition", "rank_correlation",
    "strategy_distributions", "support_gap", "weight_movement",
]
