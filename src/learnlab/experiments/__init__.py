"""Experiments: one module a paper, registered by name.

Each module offers ``NAME``, ``DESCRIPTION``, ``Config``, ``presets()``, ``run(cfg, run)``,
``claims(cfg)`` (the claim specs, declared from the config) and ``figures(run)`` (drawn from
a ``learnlab.results.StoredRun``): the ``learnlab.runner.Experiment`` protocol.
Modules are imported on first use, so ``learnlab list`` stays fast.

To add one: write ``learnlab/experiments/<name>.py`` following ``hidden_progress.py``
and add it to ``EXPERIMENT_MODULES`` in ``learnlab/registry.py``.
"""

from __future__ import annotations

import importlib
import sys
import types
from types import ModuleType

from learnlab.errors import ConfigError
from learnlab.registry import EXPERIMENT_MODULES as _MODULES
from learnlab.registry import EXPERIMENTS

__all__ = ["EXPERIMENTS", "get_experiment", "resolve_preset"]


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


class _CallableModule(types.ModuleType):
    """``learnlab.experiments()`` lists the experiment names even after this package is
    imported (importing a subpackage rebinds the parent's attribute to the module)."""

    def __call__(self) -> list[str]:
        return list(EXPERIMENTS)


sys.modules[__name__].__class__ = _CallableModule
