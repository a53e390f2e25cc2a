"""Build ``index.html``: one section per experiment with its figures and claims table.

Everything comes from the store: the latest completed run of each experiment, its
stored metrics (figures are redrawn from them) and its stored claims.
"""

from __future__ import annotations

import datetime
import inspect
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from learnlab.experiments import EXPERIMENTS, get_experiment  # noqa: E402
from learnlab.store import RunRecord, Store  # noqa: E402

__all__ = ["build_report", "flatten_config", "latest_runs"]


def flatten_config(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{'a': {'b': 1}}`` -> ``[('a.b', 1)]``."""
    items = []
    for key, value in config.items():
        if isinstance(value, dict):
            items += flatten_config(value, prefix + key + ".")
        else:
            items.append((prefix + key, value))
    return items


def latest_runs(store: Store, experiments: tuple[str, ...] = EXPERIMENTS) -> dict[tuple[str, str | None], RunRecord]:
    """The newest completed run of each experiment and preset (the newest run of any status
    where none completed), in the order of the experiments and of their presets."""
    chosen = {}
    for name in experiments:
        runs = store.list_runs(experiment=name)
        order = list(get_experiment(name).presets()) if runs else []
        for preset in sorted({r.preset for r in runs}, key=lambda p: order.index(p) if p in order else len(order)):
            candidates = [r for r in runs if r.preset == preset]
            completed = [r for r in candidates if r.status == "completed"]
            chosen[name, preset] = (completed or candidates)[-1]
    return chosen


def build_report(store: Store, out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` and its figures; return the page's path."""
    out_dir = Path(out_dir)
    figure_dir = out_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for (name, preset), record in latest_runs(store).items():
        module = get_experiment(name)
        figures = []
        if record.status == "completed":
            for figure_name, figure in module.figures(record).items():
                path = figure_dir / f"{name}-{record.id}-{figure_name}.png"
                figure.savefig(path, dpi=110, bbox_inches="tight")
                plt.close(figure)
                figures.append({"name": figure_name, "src": path.relative_to(out_dir).as_posix()})
        sections.append({
            "name": name if preset is None else f"{name} ({preset})", "description": module.DESCRIPTION, "doc": inspect.getdoc(module) or "",
            "run": record, "figures": figures, "claims": record.claims(),
            "config": flatten_config(record.config),
        })
    runs = []
    for record in store.list_runs():
        claims = record.claims()
        runs.append({
            "id": record.id, "experiment": record.experiment, "preset": record.preset, "seed": record.seed,
            "status": record.status,
            "claims": f"{sum(c.passed for c in claims)}/{len(claims)}" if claims else "",
            "seconds": f"{record.duration:.1f}" if record.duration is not None else "",
        })
    all_claims = [c for section in sections for c in section["claims"]]
    environment = Environment(loader=PackageLoader("learnlab.report", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    page = environment.get_template("index.html.j2").render(
        sections=sections, runs=runs, n_runs=len(runs), store_path=store.path,
        n_claims=len(all_claims), n_passed=sum(c.passed for c in all_claims),
        built=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    )
    index = out_dir / "index.html"
    index.write_text(page)
    return index
