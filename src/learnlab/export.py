"""Runs out of the store, into the tools researchers already use.

Metrics go out in long form, one row per logged value: ``run, experiment, preset, seed,
step, name, replica, value`` (``replica`` is null for a scalar metric, else the index of
the seed in an ensemble). Formats: Parquet, CSV and JSON (one Arrow table), and
TensorBoard event files (one folder per run and replica; needs the ``tensorboard`` extra).

Example::

    learnlab export latest --format parquet --out metrics.parquet
    learnlab export 3f2a latest --format tensorboard --out tb/ && tensorboard --logdir tb/
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from learnlab.errors import LearnlabError
from learnlab.store import Store

__all__ = ["metrics_table", "export_runs", "FORMATS"]

FORMATS = ("parquet", "csv", "json", "tensorboard")

_SCHEMA = pa.schema([("run", pa.string()), ("experiment", pa.string()), ("preset", pa.string()),
                     ("seed", pa.int64()), ("step", pa.int64()), ("name", pa.string()), ("replica", pa.int64()),
                     ("value", pa.float64())])


def metrics_table(store: Store, run_ids: Sequence[str]) -> pa.Table:
    """Every metric row of ``run_ids`` as one long-form Arrow table."""
    columns: dict[str, list] = {field.name: [] for field in _SCHEMA}
    for run_id in run_ids:
        record = store.get_run(run_id)
        rows = store.all_metrics(record.id)
        columns["run"] += [record.id] * len(rows)
        columns["experiment"] += [record.experiment] * len(rows)
        columns["preset"] += [record.preset] * len(rows)
        columns["seed"] += [record.seed] * len(rows)
        for step, name, replica, value in rows:
            columns["step"].append(step)
            columns["name"].append(name)
            columns["replica"].append(replica)
            columns["value"].append(value)
    return pa.table(columns, schema=_SCHEMA)


def export_runs(store: Store, run_ids: Sequence[str], format: str, out: str | Path) -> Path:
    """Write the runs' metrics to ``out`` in ``format``; returns the path written.

    Raises ``LearnlabError`` for an unknown format, an existing destination (nothing is
    overwritten) or a missing optional dependency.
    """
    out = Path(out)
    if format not in FORMATS:
        raise LearnlabError(f"Unknown export format '{format}'; known: {', '.join(FORMATS)}.")
    if out.exists() and not (format == "tensorboard" and out.is_dir() and not any(out.iterdir())):
        raise LearnlabError(f"{out} exists; export writes a new file or folder and overwrites nothing.")
    if format == "tensorboard":
        return _tensorboard(store, run_ids, out)
    table = metrics_table(store, run_ids)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    if format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, temporary)
    elif format == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, temporary)
    else:
        temporary.write_text(json.dumps(table.to_pylist()))
    temporary.replace(out)
    return out


def _tensorboard(store: Store, run_ids: Sequence[str], out: Path) -> Path:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise LearnlabError("TensorBoard export needs the tensorboard package: pip install 'learnlab[tensorboard]'.") \
            from None
    for run_id in run_ids:
        record = store.get_run(run_id)
        writers: dict[int | None, SummaryWriter] = {}
        for step, name, replica, value in store.all_metrics(record.id):
            if value is None:
                continue
            if replica not in writers:  # one folder per replica: TensorBoard overlays seeds as runs
                folder = out / f"{record.experiment}-{record.preset}-{record.id}"
                writers[replica] = SummaryWriter(str(folder if replica is None else folder / f"replica{replica}"))
            writers[replica].add_scalar(name, value, step)
        for writer in writers.values():
            writer.close()
    return out
