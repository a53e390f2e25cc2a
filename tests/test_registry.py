"""The registry (read without importing experiments) agrees with every experiment module."""

import pytest

from learnlab.experiments import get_experiment
from learnlab.registry import REGISTRY


@pytest.mark.parametrize("name", list(REGISTRY))
def test_registry_entry_matches_its_module(name):
    module, entry = get_experiment(name), REGISTRY[name]
    assert module.NAME == name
    assert module.DESCRIPTION == entry.description
    assert tuple(module.presets()) == entry.presets
