"""The house rules of ARCHITECTURE.md, checked on the source: layers import only downward,
one training loop, no generic layer names a concrete model, experiment files stay small."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "learnlab"
# What the lower layers may never import: everything that sits above them.
ABOVE = ("learnlab.experiments", "learnlab.runner", "learnlab.cli", "learnlab.report", "learnlab.registry",
         "learnlab.results", "learnlab.figures", "learnlab.export", "learnlab.sweep")
LOWER = ("train", "probes", "models", "tasks", "data", "store.py")


def _sources(*parts: str):
    for part in parts:
        path = SRC / part
        yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", list(_sources(*LOWER)), ids=lambda p: str(p.relative_to(SRC)))
def test_lower_layers_import_nothing_above_them(path):
    upward = [name for name in _imports(path) if name.startswith(ABOVE)]
    assert not upward, f"{path.relative_to(SRC)} imports {upward}"


def test_the_report_imports_no_experiment():
    for path in _sources("report"):
        assert not [n for n in _imports(path) if n.startswith("learnlab.experiments")], path


def test_one_backward_call_site_the_training_loop():
    sites = []
    for path in _sources("."):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "backward":
                sites.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert len(sites) == 1 and sites[0].startswith("train/loop.py"), sites


def test_no_generic_layer_switches_on_a_concrete_model_class():
    model_classes = {node.name for path in _sources("models") for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.ClassDef)}
    offenders = []
    for path in _sources("."):
        if path.is_relative_to(SRC / "models"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if names & model_classes:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {sorted(names & model_classes)}")
    assert not offenders, offenders


def test_no_experiment_source_file_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in _sources("experiments") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
