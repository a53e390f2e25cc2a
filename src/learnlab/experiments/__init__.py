"""Experiments: one module a paper, registered by name.

Each module offers ``NAME``, ``DESCRIPTION``, ``Config``, ``presets()``, ``run(cfg, run)``,
``claims(record)`` and ``figures(record)`` (the ``learnlab.runner.Experiment`` protocol).
Modules are imported on first use, so ``learnlab list`` stays fast.

To add one: write ``learnlab/experiments/<name>.py`` following ``hidden_progress.py``
and add it to ``_MODULES`` below.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from learnlab.errors import ConfigError

__all__ = ["EXPERIMENTS", "get_experiment", "resolve_preset"]

_MODULES = {
    "hidden-progress": "learnlab.experiments.hidden_progress",
    "icl-markov": "learnlab.experiments.icl_markov",
    "pareto-frontiers": "learnlab.experiments.pareto_frontiers",
    "ar-learners": "learnlab.experiments.ar_learners",
    "sampler-distillation": "learnlab.experiments.sampler_distillation",
    "sq-vs-pac": "learnlab.experiments.sq_vs_pac",
    "gd-vs-ntk": "learnlab.experiments.gd_vs_ntk",
    "corgi2": "learnlab.experiments.corgi2",
    "subtuning": "learnlab.experiments.subtuning",
    "copying": "learnlab.experiments.copying",
}
EXPERIMENTS = tuple(_MODULES)


def get_experiment(name: str) -> ModuleType:
    """The experiment module registered as ``name``."""
    if name not in _MODULES:
        raise ConfigError(f"Unknown experiment '{name}'; known: {', '.join(EXPERIMENTS)}.")
    return importlib.import_module(_MODULES[name])


def resolve_preset(experiment: ModuleType, preset: str):
    """The frozen config of ``preset`` for ``experiment``."""
    presets = experiment.presets()
    if preset not in presets:
        raise ConfigError(f"Unknown preset '{preset}' for {experiment.NAME}; known: {', '.join(presets)}.")
    return presets[preset]
