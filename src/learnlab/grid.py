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

_DONE = "cell"  # artifact name prefix of a finished cell's record: cell/<scope>


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
    out = [Cell(scope(*combo), tuple(zip(names, combo)))
           for combo in itertools.product(*(tuple(axes[name]) for name in names))]
    scopes = [c.scope for c in out]
    if len(set(scopes)) != len(scopes):
        raise ValueError(f"two cells of one grid share a scope: {sorted(s for s in scopes if scopes.count(s) > 1)}")
    return out


def cell(scope: str, **values: Any) -> Cell:
    """A single cell (a grid's point given by hand: a control, a check at one setting)."""
    return Cell(scope, tuple(values.items()))


def for_each_cell(run: Run, grid: Sequence[Cell], train: Callable[[Cell, Run], R], *,
                  desc: str | None = None) -> list[R]:
    """Train ``grid``'s cells one after another, ``train(cell, run.scoped(cell.scope))``, and
    return what each returned, in the grid's order. Cells a resumed run already finished are
    not entered again: their stored return values are returned."""
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
            if not isinstance(value, (type(None), bool, int, float, str, list, tuple, dict)):
                raise TypeError(f"cell {item.scope!r} returned a {type(value).__name__}: a cell returns a number, a "
                                "string, a list or dict of them, or None (its record must read back the same)")
            cell_run.flush()  # the cell's metrics are in the store before it is marked finished
            cell_run.artifact(_DONE, {"cell": dict(item.values), "result": value})
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


def _finished(run: Run) -> dict[str, Any]:
    """scope -> stored return value of every finished cell of this run."""
    out = {}
    for name, path in run.store.artifacts(run.id).items():
        if is_cell_record(name):  # Run.artifact names it <scope with / as -->.cell
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):  # a damaged record: the cell is trained again
                continue
            out[name[: -len(f".{_DONE}")].replace("--", "/")] = record.get("result")
    return out
