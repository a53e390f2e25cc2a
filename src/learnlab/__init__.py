"""learnlab: the science of how neural networks learn, as runnable, checked experiments.

The Python API in three calls::

    import learnlab
    learnlab.experiments()                                   # the registered experiment names
    run = learnlab.run("hidden-progress", preset="quick", n_seeds=4)   # train, check claims, draw figures
    run.claims, run.over_seeds("accuracy"), run.to_pandas()
    same = learnlab.load(run.id)                             # a stored run, by id, prefix or "latest"

Everything else lives in the subpackages (``learnlab.tasks``, ``models``, ``train``,
``data``, ``probes``); importing ``learnlab`` imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from learnlab.errors import ConfigError, LearnlabError, StoreError  # noqa: E402

if TYPE_CHECKING:
    from learnlab.results import StoredRun

__all__ = ["Claim", "ConfigError", "LearnlabError", "StoreError", "__version__", "apply_overrides", "experiments",
           "load", "run", "validate"]


def experiments() -> list[str]:
    """The names of the registered experiments (``learnlab list``)."""
    from learnlab.registry import EXPERIMENTS

    return list(EXPERIMENTS)


def run(experiment: str, preset: str = "quick", *, store: str | None = None, device: str = "auto",
        quiet: bool = True, **overrides: Any) -> StoredRun:
    """Run ``experiment`` at ``preset`` with config ``overrides`` (dotted keys as
    ``model__width=64`` or a dict via ``**{"model.width": 64}``); returns the stored run.

    Raises ``ConfigError`` for an unknown experiment, preset or key, or a bad value,
    before anything is written. A run that fails inside is stored as failed and returned.
    """
    from learnlab import config as config_lib
    from learnlab.experiments import get_experiment, resolve_preset
    from learnlab.results import StoredRun
    from learnlab.runner import execute
    from learnlab.store import DEFAULT_STORE, Store

    module = get_experiment(experiment)
    cfg = config_lib.apply_overrides(resolve_preset(module, preset),
                                     {key.replace("__", "."): value for key, value in overrides.items()})
    handle = Store(store or DEFAULT_STORE)
    outcome = execute(module, cfg, store=handle, preset=preset, device=device, quiet=quiet)
    return StoredRun(handle.get_run(outcome.run_id), module.Config)


def load(run_id: str = "latest", *, store: str | None = None) -> StoredRun:
    """A stored run by id, unique id prefix or ``"latest"``, with the typed readers of
    ``learnlab.results.StoredRun`` (``last``, ``series``, ``over_seeds``, ``to_pandas``)."""
    from learnlab.results import StoredRun, find_run
    from learnlab.store import DEFAULT_STORE, Store

    return StoredRun(find_run(Store(store or DEFAULT_STORE), run_id))


def __getattr__(name: str):  # the lighter names, imported on first use
    if name == "Claim":
        from learnlab.claims import Claim

        return Claim
    if name in ("apply_overrides", "validate"):
        from learnlab import config

        return getattr(config, name)
    raise AttributeError(f"module 'learnlab' has no attribute {name!r}")
