"""Build the HTML report from the run store alone.

``index.html``: a summary per paper (the claims' verdicts at the quick preset; smoke
runs are not summarised), a table of contents, one section per experiment (the latest
run of each preset, its figures and claims) and a table of all runs, filterable by
experiment and preset. ``runs/<id>.html``: one page per run with every figure, its
claims, config and status; an interrupted or failed run shows the curves it logged.

Figures are the artifacts the runner stored when the run completed (SVG and PNG), so
the report imports no experiment code and shows runs whose code is gone.
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any


from learnlab.claims import REPRODUCTION_VERDICTS, Claim
from learnlab.errors import StoreError
from learnlab.registry import EXPERIMENTS
from learnlab.store import RunRecord, Store

__all__ = ["build_report", "flatten_config", "latest_runs", "SUMMARY_PRESET"]

SUMMARY_PRESET = "quick"  # the preset whose verdicts the summary counts


def flatten_config(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{'a': {'b': 1}}`` -> ``[('a.b', 1)]``."""
    items = []
    for key, value in config.items():
        if isinstance(value, dict):
            items += flatten_config(value, prefix + key + ".")
        else:
            items.append((prefix + key, value))
    return items


def _about(record: RunRecord) -> dict[str, Any]:
    path = record.artifacts().get("about")
    if path is not None and path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    return {"experiment": record.experiment, "description": "", "doc": "", "presets": []}


def _experiment_order(name: str) -> tuple[int, str]:
    return (EXPERIMENTS.index(name) if name in EXPERIMENTS else len(EXPERIMENTS), name)


def latest_runs(store: Store) -> dict[tuple[str, str | None], RunRecord]:
    """The newest completed run of each experiment and preset (the newest run of any status
    where none completed), experiments in registry order, presets in their declared order."""
    runs = store.list_runs()
    chosen: dict[tuple[str, str | None], RunRecord] = {}
    for name in sorted({r.experiment for r in runs}, key=_experiment_order):
        mine = [r for r in runs if r.experiment == name]
        order = _about(mine[-1]).get("presets") or []
        presets = sorted({r.preset for r in mine}, key=lambda p: (order.index(p) if p in order else len(order), str(p)))
        for preset in presets:
            candidates = [r for r in mine if r.preset == preset]
            completed = [r for r in candidates if r.status == "completed"]
            chosen[name, preset] = (completed or candidates)[-1]
    return chosen


def _counts(claims: list[Claim]) -> dict[str, Any]:
    paper = [c for c in claims if c.kind == "reproduction"]
    sanity = [c for c in claims if c.kind == "sanity"]
    counts = {v.replace(" ", "_"): sum(c.verdict == v for c in paper) for v in REPRODUCTION_VERDICTS}
    counts.update(total=len(paper), sanity_passed=sum(c.verdict == "pass" for c in sanity), sanity=len(sanity),
                  unclassified=sum(c.kind not in ("reproduction", "sanity") for c in claims))
    return counts


def _claim_rows(claims: list[Claim]) -> list[dict[str, Any]]:
    rows = []
    for claim in claims:
        estimate = "" if claim.estimate is None or claim.estimate != claim.estimate else f"{claim.estimate:.4g}"
        interval = ""
        if claim.ci is not None and all(v == v for v in claim.ci):
            interval = f"[{claim.ci[0]:.3g}, {claim.ci[1]:.3g}]"
        rows.append({"claim": claim, "estimate": estimate, "interval": interval,
                     "css": claim.verdict.replace(" ", "-")})
    return rows


def _figures(record: RunRecord, out_dir: Path) -> list[dict[str, str]]:
    """Copy the run's stored figures into the report; returns their captions and paths."""
    artifacts = record.artifacts()
    captions_path = artifacts.get("figures.json")
    if captions_path is None or not captions_path.exists():
        return []
    try:
        captions = json.loads(captions_path.read_text())
    except (OSError, ValueError):
        return []
    target = out_dir / "figures" / record.id
    target.mkdir(parents=True, exist_ok=True)
    figures = []
    for name, caption in captions.items():
        png, svg = artifacts.get(f"figure/{name}.png"), artifacts.get(f"figure/{name}.svg")
        if png is None or not png.exists():
            continue
        shutil.copyfile(png, target / f"{name}.png")
        entry = {"name": name, "caption": caption, "src": f"figures/{record.id}/{name}.png", "svg": ""}
        if svg is not None and svg.exists():
            shutil.copyfile(svg, target / f"{name}.svg")
            entry["svg"] = f"figures/{record.id}/{name}.svg"
        figures.append(entry)
    return figures


def _partial_curves(store: Store, record: RunRecord, out_dir: Path, limit: int = 6) -> list[dict[str, str]]:
    """The curves a run logged before it stopped (a failed or interrupted run has no stored
    figures): the metrics with the most steps, mean over replicas against the step."""
    names = record.metric_names()
    if not names:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {name: store.series(record.id, name) for name in names}
    ranked = sorted((n for n in names if len(series[n]) > 1), key=lambda n: (-len(series[n]), n))[:limit]
    if not ranked:
        return []
    fig, axes = plt.subplots(1, len(ranked), figsize=(3.2 * len(ranked), 2.8), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], ranked):
        values = series[name].values
        ax.plot(series[name].steps, values if values.ndim == 1 else values.mean(axis=1))
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    target = out_dir / "figures" / record.id
    target.mkdir(parents=True, exist_ok=True)
    fig.savefig(target / "partial-curves.png", dpi=100)
    plt.close(fig)
    return [{"name": "partial-curves", "svg": "", "src": f"figures/{record.id}/partial-curves.png",
             "caption": f"Metrics logged before the run stopped ({record.status}), mean over replicas against step."}]


def build_report(store: Store, out_dir: str | Path, *, progress: bool = True) -> Path:
    """Write ``out_dir/index.html`` and one page per run; return the index's path.

    Raises ``StoreError`` when the store holds no runs (nothing is written then).
    """
    from jinja2 import Environment, PackageLoader, select_autoescape
    from tqdm.auto import tqdm

    runs = store.list_runs()
    if not runs:
        raise StoreError(f"No runs in {store.path}: nothing to report. Run an experiment first "
                         "(learnlab run hidden-progress --preset quick).")
    out_dir = Path(out_dir)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    environment = Environment(loader=PackageLoader("learnlab.report", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    built = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")

    pages: dict[str, dict[str, Any]] = {}
    for record in tqdm(runs, desc="report", unit="run", disable=None if progress else True, leave=False):
        claims = record.claims()
        figures = _figures(record, out_dir)
        if not figures and record.status != "completed":
            figures = _partial_curves(store, record, out_dir)
        about = _about(record)
        page = {"run": record, "claims": _claim_rows(claims), "counts": _counts(claims), "figures": figures,
                "config": flatten_config(record.config), "about": about, "href": f"runs/{record.id}.html"}
        pages[record.id] = page
        html = environment.get_template("run.html.j2").render(page=page, built=built, root="../")
        (out_dir / "runs" / f"{record.id}.html").write_text(html)

    sections: dict[str, dict[str, Any]] = {}
    latest = latest_runs(store)
    for (name, preset), record in latest.items():
        if preset == "smoke" and any(n == name and p != "smoke" for n, p in latest):
            continue  # smoke runs are tests: shown in "all runs", not as a section
        section = sections.setdefault(name, {"name": name, "anchor": name, "about": pages[record.id]["about"],
                                             "runs": []})
        section["runs"].append(pages[record.id])

    summary = []
    for name in sorted({r.experiment for r in runs}, key=_experiment_order):
        quick = [r for r in runs if r.experiment == name and r.preset == SUMMARY_PRESET and r.status == "completed"]
        page = pages[quick[-1].id] if quick else None
        summary.append({"name": name, "description": pages[[r for r in runs if r.experiment == name][-1].id]["about"]
                        .get("description", ""), "page": page})

    index = out_dir / "index.html"
    index.write_text(environment.get_template("index.html.j2").render(
        sections=list(sections.values()), summary=summary, pages=[pages[r.id] for r in reversed(runs)],
        experiments=sorted({r.experiment for r in runs}, key=_experiment_order),
        presets=sorted({str(r.preset) for r in runs}), store_path=store.path, n_runs=len(runs),
        summary_preset=SUMMARY_PRESET, built=built, root=""))
    return index
