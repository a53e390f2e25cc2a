"""A run's grid: the cells one experiment run trains (widths, learners x n x k, batch sizes x
rounding modes), each in its own scope, through one function instead of loops inside ``run()``.

    for_each_cell(run, cells(width_scope, width=cfg.widths), lambda cell, r: train(cfg, cell.width, r))

What the grid layer gives every experiment alike:

- each cell writes through ``run.scoped(cell.scope)`` (its own metric names and checkpoint);
- a finished cell is recorded in the store with what its function returned (a number, a
  string, a list or dict of them, or ``None``), so a resumed run skips it and gets the same
  value back, instead of entering it again (a measuring cell, with no checkpoint, would
  measure again);
- one progress line over the cells (``--quiet`` silences it).

A grid of *runs* (one config per point, compared across runs) is the sweep layer's
(``learnlab sweep``, ``sweep.py``); a grid whose cells share a shape trains as stacked
replicas of one model (``train.ensemble``). This layer is for cells of one run that the
run's claims read together but that cannot stack (different widths, input sizes, models).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

if TYPE_CHECKING:
    from learnlab.runner import Run

R = TypeVar("R")

_DONE = "cell"  # a finished cell's record is the artifact <scope, its / as -->.cell


@dataclass(frozen=True)
class Cell:
    """One cell: its scope (metric prefix) and its coordinates on the grid's axes."""

    scope: str
    values: tuple[tuple[str, Any], ...]

    def __getattr__(self, axis: str) -> Any:
        for name, value in object.__getattribute__(self, "values"):
            if name == axis:
                return value
        raise AttributeError(f"cell {object.__getattribute__(self, 'scope')!r} has no axis {axis!r}")

    def describe(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.values)


def cells(scope: Callable[..., str], **axes: Sequence[Any]) -> list[Cell]:
    """The product of ``axes`` in the order given (the last axis varies fastest), each cell
    named ``scope(*its values)`` (in the axes' order)."""
    names = list(axes)
    return [cell(scope(*combo), **dict(zip(names, combo)))
            for combo in itertools.product(*(tuple(axes[name]) for name in names))]


def cell(scope: str, **values: Any) -> Cell:
    """A single cell (a grid's point given by hand: a control, a check at one setting)."""
    if "--" in scope:  # Run.artifact writes a scope's '/' as '--': keep the record's file name unambiguous
        raise ValueError(f"a cell's scope may not contain '--': {scope!r}")
    return Cell(scope, tuple(values.items()))


def for_each_cell(run: Run, grid: Sequence[Cell], train: Callable[[Cell, Run], R], *,
                  desc: str | None = None) -> list[R]:
    """Train ``grid``'s cells one after another, ``train(cell, run.scoped(cell.scope))``, and
    return what each returned, in the grid's order. Cells a resumed run already finished are
    not entered again: their stored return values are returned."""
    scopes = [item.scope for item in grid]
    if len(set(scopes)) != len(scopes):  # two cells would write (and checkpoint) in one scope
        raise ValueError(f"two cells of one grid share a scope: {sorted({s for s in scopes if scopes.count(s) > 1})}")
    done = _finished(run)
    results: list[R] = []
    progress = run.progress(len(grid), desc=desc or f"{run.id} cells", unit="cell") if len(grid) > 1 else None
    for item in grid:
        scope = f"{run.scope}/{item.scope}" if run.scope else item.scope
        if scope in done:
            results.append(done[scope])
        else:
            cell_run = run.scoped(item.scope)
            value = train(item, cell_run)
            _check_readable(item.scope, value)
            cell_run.flush()  # the cell's metrics are in the store before it is marked finished
            cell_run.artifact(_DONE, {"scope": scope, "cell": dict(item.values), "result": value})
            results.append(value)
        if progress is not None:
            progress.update()
            progress.set_postfix_str(item.describe(), refresh=False)
    if progress is not None:
        progress.close()
    return results


def is_cell_record(artifact: str) -> bool:
    """Whether a stored artifact name is a finished cell's record (a resume has progress to keep)."""
    return artifact.endswith(f".{_DONE}")


def _check_readable(scope: str, value: Any) -> None:
    """A cell's return value must read back from its JSON record as it is (a resumed run gets
    the record's value where a fresh one got the live one): None, a bool, int, float or str,
    and lists and str-keyed dicts of them (no tuples: JSON gives them back as lists)."""
    def readable(v: Any) -> bool:
        if v is None or isinstance(v, (bool, int, float, str)):
            return True
        if type(v) is list:
            return all(readable(x) for x in v)
        return type(v) is dict and all(isinstance(k, str) and readable(x) for k, x in v.items())
    if not readable(value):
        raise TypeError(f"cell {scope!r} returned a {type(value).__name__} that its record cannot give back as it "
                        "is: a cell returns None, a number, a string, or lists and str-keyed dicts of them")


def _finished(run: Run) -> dict[str, Any]:
    """scope -> stored return value of every finished cell of this run."""
    out = {}
    for name, path in run.store.artifacts(run.id).items():
        if not is_cell_record(name):  # Run.artifact names it <scope with / as -->.cell
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):  # a damaged record: the cell is trained again
            continue
        if isinstance(record, dict) and isinstance(record.get("scope"), str) and "result" in record:
            out[record["scope"]] = record["result"]
    return out
