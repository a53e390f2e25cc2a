"""The house rules of ARCHITECTURE.md, checked on the source: layers import only downward,
one training loop, no generic layer names a concrete model, experiment files stay small,
seeds come from named streams and never from offsets."""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "learnlab"
# What the lower layers may never import: everything that sits above them.
ABOVE = ("learnlab.experiments", "learnlab.runner", "learnlab.cli", "learnlab.report", "learnlab.registry",
         "learnlab.results", "learnlab.figures", "learnlab.export", "learnlab.sweep", "learnlab.grid")
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


def _function_backward_bodies(tree: ast.AST) -> set[int]:
    """ids of the nodes inside autograd Functions' own ``backward(ctx, ...)`` methods: a backward
    there that calls other Functions' backward code (``Inner.backward(inner_ctx, grad)``, a fused
    node's chain rule) computes gradients by hand; it does not start autograd."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "backward" and node.args.args \
                and node.args.args[0].arg == "ctx":
            inside.update(id(child) for child in ast.walk(node))
    return inside


def test_one_backward_call_site_the_training_loop():
    sites = []
    for path in _sources("."):
        tree = ast.parse(path.read_text())
        by_hand = _function_backward_bodies(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "backward" \
                    and not (id(node) in by_hand and len(node.args) >= 2):  # (an inner context, a gradient)
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


# Seeds come from named streams of the run seed (learnlab.seeding), never from offsets: no
# arithmetic on a seed (seed + 7, seed * 1000 + n, seeds[j] + b, seed ^ 0x7E57), no arithmetic
# as the seed a generator is made from, no magic number beside a seed in a generator's entropy.
SEED_OFFSETS_ALLOWED: tuple[str, ...] = ()  # every experiment derives its seeds from named streams (issue #19)
_SEED = re.compile(r"(^|_)seeds?$")  # seed, init_seed, seeds, student_seeds, replica_seeds(...)[0]; not n_seeds
_SEED_FUNCTIONS = {"stream", "streams", "replica_seeds"}  # what returns seeds
_SEEDED = {"generator", "manual_seed", "default_rng", "SeedSequence", "RandomState", "seed_everything",
           *_SEED_FUNCTIONS}  # what takes a seed as its first argument
_OFFSET = (ast.Add, ast.Sub, ast.Mult, ast.BitXor, ast.BitOr, ast.LShift, ast.RShift)


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Subscript, ast.Call)):
        node = node.value if isinstance(node, ast.Subscript) else node.func
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _is_seed(node: ast.AST, loop_seeds: set[str]) -> bool:
    name = _base_name(node)
    if isinstance(node, ast.Name) and name in loop_seeds:
        return True
    if isinstance(node, ast.Call):
        return name in _SEED_FUNCTIONS
    return name is not None and bool(_SEED.search(name)) and not name.startswith("n_")


def _loop_seeds(target: ast.AST, iterable: ast.AST) -> set[str]:
    """The names a for target takes from an iterable of seeds (through enumerate and zip)."""
    if isinstance(iterable, ast.Call) and _base_name(iterable.func) == "enumerate" and iterable.args:
        pair = isinstance(target, ast.Tuple) and len(target.elts) == 2
        return _loop_seeds(target.elts[1], iterable.args[0]) if pair else set()
    if isinstance(iterable, ast.Call) and _base_name(iterable.func) == "zip" and isinstance(target, ast.Tuple):
        return set().union(*(_loop_seeds(t, a) for t, a in zip(target.elts, iterable.args)))
    return {target.id} if isinstance(target, ast.Name) and _is_seed(iterable, set()) else set()


def _seed_offsets(tree: ast.AST) -> set[int]:
    lines = set()

    def offsets_in(node: ast.AST, loop_seeds: set[str]) -> None:
        for inner in ast.walk(node):
            if isinstance(inner, ast.BinOp) and isinstance(inner.op, _OFFSET) and (
                    _is_seed(inner.left, loop_seeds) or _is_seed(inner.right, loop_seeds)):
                lines.add(inner.lineno)

    for node in ast.walk(tree):
        if isinstance(node, ast.For):
            for statement in node.body:
                offsets_in(statement, _loop_seeds(node.target, node.iter))
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            offsets_in(node, set().union(*(_loop_seeds(g.target, g.iter) for g in node.generators)))
        elif isinstance(node, ast.Call):
            seeds = [node.args[0]] if node.args and _base_name(node.func) in _SEEDED else []
            seeds += [k.value for k in node.keywords if k.arg and (_SEED.search(k.arg) or k.arg == "random_state")]
            for seed in seeds:
                if isinstance(seed, ast.BinOp) and isinstance(seed.op, _OFFSET):
                    lines.add(seed.lineno)  # generator(s + 1), seed=seed + size
                elif isinstance(seed, (ast.List, ast.Tuple)) and any(  # default_rng([seed, epoch, 0x5EED])
                        isinstance(e, ast.Constant) and type(e.value) is int and e.value > 255 for e in seed.elts):
                    lines.add(seed.lineno)
    lines.update(node.lineno for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, _OFFSET)
                 and (_is_seed(node.left, set()) or _is_seed(node.right, set())))
    return lines


def test_seeds_come_from_named_streams_not_offsets():
    offenders = []
    for path in _sources("."):
        relative = str(path.relative_to(SRC))
        if relative.startswith(SEED_OFFSETS_ALLOWED):
            continue
        source = path.read_text()
        for line in sorted(_seed_offsets(ast.parse(source))):
            offenders.append(f"{relative}:{line}: {source.splitlines()[line - 1].strip()}")
    assert not offenders, "seed offsets; derive a named stream (learnlab.seeding.stream) instead:\n" + "\n".join(
        offenders)


@pytest.mark.parametrize("offset", ["seed + 7", "cfg.seed + 12345", "seed * 1000 + n_gram", "self.seed * 1_000_003 + w",
                                    "seeds[j] + b", "replica_seeds(seed, 1)[0] ^ 0x7E57", "generator(s + 1, device)",
                                    "[s + 4 for s in seeds]", "[g(s + 2) for j, s in enumerate(seeds)]",
                                    "f(seed=base + size)", "split(random_state=seed + 1)",
                                    "np.random.default_rng([seed, epoch, 0x5EED])"])
def test_the_seed_offset_scan_finds_offsets(offset):
    assert _seed_offsets(ast.parse(offset)) == {1}


@pytest.mark.parametrize("clean", ["stream(seed, f'length-{n}')", "seed % 2**31", "cfg.n_seeds * 2",
                                   "[j * k for j, s in enumerate(seeds)]", "len(seeds) - 1",
                                   "np.random.default_rng([seed, epoch])", "generator(stream(s, 'test'), device)"])
def test_the_seed_offset_scan_passes_named_streams(clean):
    assert _seed_offsets(ast.parse(clean)) == set()


def _opens_scopes(node: ast.AST) -> bool:
    """A call ``<run>.scoped(name)`` (one argument: the schemas' ``scoped(scope, name)`` only names a metric)."""
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "scoped"
               and len(n.args) + len(n.keywords) == 1 for n in ast.walk(node))


# Loops that open a scope per item and may: each item hands live objects (trained models) to a
# later part, which a skipped cell could not give back. Keyed by (file, enclosing function).
_LIVE_RESULT_LOOPS = {("experiments/subtuning/__init__.py", "_run"),  # the targets' SubTuned models -> multitask
                      ("experiments/sampler_distillation/__init__.py", "_gaussian")}  # a seed's teachers -> its students


def _hand_rolled_grids(tree: ast.AST, where: str = "") -> list[int]:
    """Lines of loops and comprehensions whose body opens run scopes: one scope per item is
    a grid of cells, what ``learnlab.grid.for_each_cell`` is for."""
    lines = []
    for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
        name = getattr(function, "name", "")
        if (where, name) in _LIVE_RESULT_LOOPS:
            continue
        for node in ast.walk(function):
            body = None
            if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
                body = node.body
            elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                body = [node]
            if body is not None and any(_opens_scopes(child) for child in body) and node.lineno not in lines:
                lines.append(node.lineno)
    # a loop inside an allowed function is reached again from the module: drop what an allowed function holds
    allowed = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
               and (where, n.name) in _LIVE_RESULT_LOOPS]
    inside = {m.lineno for f in allowed for m in ast.walk(f) if hasattr(m, "lineno")}
    return sorted(line for line in lines if line not in inside)


@pytest.mark.parametrize("path", list(_sources("experiments")), ids=lambda p: str(p.relative_to(SRC)))
def test_grids_of_cells_go_through_the_grid_layer(path):
    where = str(path.relative_to(SRC))
    lines = _hand_rolled_grids(ast.parse(path.read_text(), filename=str(path)), where)
    assert not lines, (f"{where}: loops open a run scope per item at lines {lines}; declare the cells with "
                       "learnlab.grid.cells and train them with for_each_cell")


@pytest.mark.parametrize("source, found", [
    ("for n in ns:\n    for k in ks:\n        train(run.scoped(f'{n}{k}'))", True),
    ("[train(run.scoped(a + b)) for a in xs for b in ys]", True),
    ("for n in ns:\n    train(run.scoped(n))", True),
    ("for n, k in itertools.product(ns, ks):\n    train(run.scoped(scope=f'{n}{k}'))", True),
    ("while todo:\n    train(run.scoped(todo.pop()))", True),
    ("train(run.scoped('control'))\nfor n in ns:\n    log(M.scoped('a', n))", False),
    ("for_each_cell(run, cells(scope, n=ns, k=ks), train)", False)])
def test_the_grid_scan_finds_hand_rolled_grids(source, found):
    assert bool(_hand_rolled_grids(ast.parse(source))) is found
