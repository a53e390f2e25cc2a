"""The ``learnlab`` command: list | run | sweep | reproduce | runs | show | report | data.

Bad input (unknown experiment, preset or config key, wrong type, out-of-range value,
unknown run, corrupt store or checkpoint) prints one ``learnlab: error: ...`` line and
exits with code 2 before anything is written. ``run`` exits 0 when the run completed,
whether or not its claims pass, and 1 when it failed; its last line is the run id.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys

from learnlab.errors import ConfigError, LearnlabError, Terminated
from learnlab.store import DEFAULT_STORE, Store

__all__ = ["main"]


def _store(args) -> Store:
    """The command's store (one per command; ``main`` closes it, so SQLite removes its -wal / -shm files)."""
    if getattr(args, "_opened_store", None) is None:
        args._opened_store = Store(args.store)
    return args._opened_store


def _print_claims(rows: list[tuple[str, object]]) -> None:
    """rows: (experiment, claim) pairs, printed as an aligned claims table."""
    if not rows:
        print("(no claims checked)")
        return
    table = [("experiment", "kind", "claim", "measured", "verdict")] + [
        (experiment, c.kind, c.name, c.measured, c.verdict) for experiment, c in rows
    ]
    widths = [min(max(len(str(row[i])) for row in table), 70) for i in range(5)]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


# ----------------------------------------------------------------------------- commands


def cmd_list(args) -> int:
    from learnlab.registry import REGISTRY  # no experiment is imported: list prints at once

    width = max(len(", ".join(entry.presets)) for entry in REGISTRY.values())
    for name, entry in REGISTRY.items():
        print(f"{name:<22} {', '.join(entry.presets):<{width}}  {entry.description}")
    return 0


def cmd_config(args) -> int:
    """The resolved config of an experiment's preset with overrides: each key's value,
    type, limits and help."""
    from learnlab.config import describe

    module, cfg = _config_for(args)
    rows = describe(cfg)
    if args.json:
        print(json.dumps({row["key"]: row["value"] for row in rows}, indent=1, default=str))
        return 0
    print(f"{module.NAME} --preset {args.preset}" + (f" {' '.join(args.overrides)}" if args.overrides else ""))
    width = max(len(row["key"]) for row in rows)
    for row in rows:
        value = repr(row["value"]) if isinstance(row["value"], str) else str(row["value"])
        print(f"  {row['key']:<{width}} = {value}")
        detail = row["type"] + (f" {row['limits']}" if row["limits"] else "")
        print(f"  {'':<{width}}   {detail}" + (f"; {row['help']}" if row["help"] else ""))
    return 0


def _config_for(args):
    from learnlab import config as config_lib
    from learnlab.experiments import get_experiment, resolve_preset

    module = get_experiment(args.experiment)
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    declared = getattr(module, "USER_FILES", {})  # which config fields name your files: the experiment says
    for flag in ("data", "weights", "model"):
        path = getattr(args, flag, None)
        if path is None:
            continue
        if flag not in declared:
            takes = [name for name, _ in _experiments_taking(flag)]
            raise LearnlabError(f"{module.NAME} takes no --{flag}" + (f" (experiments that do: {', '.join(takes)})"
                                                                     if takes else "") + ".")
        overrides.append(f"{declared[flag]}={path}")
    return module, config_lib.apply_overrides(resolve_preset(module, args.preset), overrides)


def _experiments_taking(flag: str):
    from learnlab.experiments import EXPERIMENTS, get_experiment

    return [(name, get_experiment(name)) for name in EXPERIMENTS if flag in getattr(get_experiment(name), "USER_FILES", {})]


def cmd_run(args) -> int:
    from learnlab.experiments import get_experiment
    from learnlab.runner import execute
    from learnlab.runtime import resolve_device

    resolve_device(args.device)
    if args.resume:
        if args.overrides or args.seed is not None or args.data is not None or args.weights is not None \
                or args.model is not None:
            raise LearnlabError("--resume continues a run with its stored config; drop the overrides.")
        module, cfg, preset = get_experiment(args.experiment), None, None
    else:
        module, cfg = _config_for(args)
        preset = args.preset
    store = _store(args)
    outcome = execute(module, cfg, store=store, preset=preset, device=args.device, quiet=args.quiet,
                      resume=args.resume)
    from learnlab.train import distributed

    if not distributed.is_main():  # torchrun: rank 0 reports
        return 0 if outcome.status == "completed" else 1
    record = store.get_run(outcome.run_id)
    print(f"{module.NAME}: {outcome.status} in {record.duration or 0:.1f} s")
    if outcome.error:
        print(f"error: {outcome.error}", file=sys.stderr)
    claims = record.claims()
    for claim in claims:
        print(f"  [{claim.kind}] {claim.verdict}  {claim.name}: {claim.measured}")
    if claims:
        from learnlab.claims import summarise

        print(summarise(claims))
    print(outcome.run_id)
    return 0 if outcome.status == "completed" else 1


def cmd_sweep(args) -> int:
    from learnlab.runtime import resolve_device
    from learnlab.sweep import LocalPoolExecutor, RayExecutor, SlurmExecutor, expand_grid, pending_points, run_sweep

    resolve_device(args.device)
    points = expand_grid(args.experiment, args.preset, args.grid, args.overrides)
    store = _store(args)
    todo = pending_points(points, store)
    if args.executor == "ray":
        executor = RayExecutor(args.address, args.cpus_per_run, args.gpus_per_run, args.retries, args.ray_cpus)
        where = f"on Ray ({args.address or 'local'})"
    elif args.executor == "slurm":
        folder = args.slurm_folder or str(store.root / "slurm")
        executor = SlurmExecutor(folder, args.partition, args.time, args.gpus_per_run and int(args.gpus_per_run),
                                 max(1, int(args.cpus_per_run)), args.retries, cluster=args.slurm_cluster)
        where = f"as SLURM jobs (logs in {folder})"
    else:
        executor, where = LocalPoolExecutor(args.jobs), f"{args.jobs} at a time"
    print(f"sweep: {len(points)} runs of {args.experiment} ({args.preset}), {len(points) - len(todo)} already "
          f"completed, {len(todo)} to run {where}", file=sys.stderr)
    failed = 0
    for point, outcome in run_sweep(todo, store=store, executor=executor, device=args.device, quiet=args.quiet,
                                    skip_completed=False):
        setting = " ".join(f"{k}={v}" for k, v in point.overrides)
        failed += outcome.status != "completed"
        print(f"{outcome.run_id or '-':<10}  {outcome.status:<9}  {setting}"
              + (f"  ({outcome.error})" if outcome.error else ""), flush=True)
    return 0 if not failed else 1


def cmd_reproduce(args) -> int:
    import time

    from learnlab import config as config_lib
    from learnlab.claims import summarise
    from learnlab.experiments import EXPERIMENTS, get_experiment, resolve_preset
    from learnlab.report import build_report
    from learnlab.runner import config_hash, current_code_version, execute
    from learnlab.runtime import resolve_device
    from learnlab.sweep import LocalPoolExecutor, SweepPoint

    resolve_device(args.device)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be an int >= 1. Got {args.jobs}.")
    names = args.experiments or list(EXPERIMENTS)
    plan = []
    for name in names:  # validate everything before running anything
        module = get_experiment(name)
        plan.append((module, resolve_preset(module, args.preset)))
    store = _store(args)
    started = time.monotonic()
    previous = store.list_runs()
    code = current_code_version()
    record_of: dict[str, object] = {}  # experiment -> its completed (or failed) run
    todo = []
    for position, (module, cfg) in enumerate(plan, 1):
        digest = config_hash(module.NAME, config_lib.to_dict(cfg))
        done = [r for r in previous if r.experiment == module.NAME and r.config_hash == digest
                and r.status == "completed" and r.git_commit == code]
        if done and not args.force:
            record_of[module.NAME] = done[-1]
            print(f"== {module.NAME} ({args.preset}): already completed as run {done[-1].id} with this config and "
                  f"code (--force reruns)", file=sys.stderr)
        else:
            # The estimate: this preset's last completed duration in this store, where there is one.
            times = [r.duration for r in previous if r.experiment == module.NAME and r.preset == args.preset
                     and r.status == "completed" and r.duration]
            todo.append((module, cfg, times[-1] if times else None))
    failed = 0

    def finished(name: str, outcome) -> None:
        nonlocal failed
        if outcome.error:
            failed += 1
            print(f"{name} failed: {outcome.error.splitlines()[0]}", file=sys.stderr)
        if outcome.run_id:
            record_of[name] = store.get_run(outcome.run_id)

    if args.jobs == 1:
        for position, (module, cfg, last) in enumerate(todo, 1):
            estimate = f", last time {last:.0f} s" if last else ""
            print(f"== {module.NAME} ({args.preset}): {position} of {len(todo)} to run, "
                  f"{time.monotonic() - started:.0f} s elapsed{estimate}", file=sys.stderr)
            finished(module.NAME, execute(module, cfg, store=store, preset=args.preset, device=args.device,
                                          quiet=args.quiet))
    else:
        # Longest first (by the last time this store saw), so the pool's last job is a short one.
        todo.sort(key=lambda item: -(item[2] or 0.0))
        points = [SweepPoint(module.NAME, args.preset, (), config_lib.to_dict(cfg)) for module, cfg, _ in todo]
        print(f"== {len(points)} experiments ({args.preset}), {args.jobs} at a time: "
              + ", ".join(p.experiment for p in points), file=sys.stderr)
        for point, outcome in LocalPoolExecutor(args.jobs).map(points, store.path, args.device, True):
            finished(point.experiment, outcome)
            record = record_of.get(point.experiment)
            verdicts = summarise(record.claims()) if record is not None else outcome.status
            print(f"== {point.experiment} {outcome.status} at {time.monotonic() - started:.0f} s: {verdicts}",
                  file=sys.stderr, flush=True)
    rows, summaries = [], []
    for module, _ in plan:
        record = record_of.get(module.NAME)
        claims = record.claims() if record is not None else []
        rows += [(module.NAME, claim) for claim in claims]
        summaries.append((module.NAME, claims))
    index = build_report(store, args.out or store.root / "report", progress=not args.quiet)
    print(f"report: {index}")
    _print_claims(rows)
    for name, claims in summaries:
        print(f"{name}: {summarise(claims)}")
    print(f"reproduce: {len(plan)} experiments in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0 if not failed else 1


def cmd_runs(args) -> int:
    store = _store(args)
    if not store.exists():  # a listing creates nothing
        raise LearnlabError(f"No run store at {store.path}; run an experiment first.")
    runs = store.list_runs(experiment=args.experiment)
    print(f"{'run':<10}  {'experiment':<20}  {'preset':<7}  {'seed':>4}  {'status':<11}  reproduced  seconds")
    for record in runs:
        claims = record.claims()
        paper = [c for c in claims if c.kind == "reproduction"]
        passed = f"{sum(c.passed for c in paper)}/{len(paper)}" if claims else "-"
        seconds = f"{record.duration:.1f}" if record.duration is not None else "-"
        print(f"{record.id:<10}  {record.experiment:<20}  {record.preset or '-':<7}  {record.seed:>4}  "
              f"{record.status:<11}  {passed:<10}  {seconds}")
    return 0


def cmd_show(args) -> int:
    from learnlab.claims import summarise
    from learnlab.report.html import flatten_config

    store = _store(args)
    record = _find_run(store, args.run)
    if args.recheck:  # claims and figures are functions of the stored metrics: redo them with today's code
        from learnlab.experiments import get_experiment
        from learnlab.runner import check_and_draw

        if record.status != "completed":
            raise LearnlabError(f"run {record.id} is {record.status}: only a completed run's claims are rechecked")
        check_and_draw(get_experiment(record.experiment), store, record.id)
    claims = record.claims()
    if args.json:
        print(json.dumps(_run_json(record, claims), indent=1))
        return 0
    print(f"run {record.id}: {record.experiment} (preset {record.preset}), status {record.status}")
    if record.error:
        print(f"error: {record.error}")
    print(f"device {record.device}, commit {record.git_commit or '-'}, "
          f"versions {json.dumps(record.versions, sort_keys=True)}")
    print("config:")
    for key, value in flatten_config(record.config):
        print(f"  {key} = {value}")
    print("final metrics:")
    for name, value in store.final_metrics(record.id).items():
        print(f"  {name} = {value:.6g}" if value is not None else f"  {name} = nan")
    print("claims:")
    for claim in claims:
        print(f"  [{claim.kind}] {claim.verdict}  {claim.name}: {claim.measured} (threshold: {claim.threshold})")
    if claims:
        print(summarise(claims))
    return 0


def _find_run(store: Store, reference: str):
    from learnlab.results import find_run

    return find_run(store, reference)


def cmd_export(args) -> int:
    from learnlab import export

    store = _store(args)
    records = [_find_run(store, reference) for reference in args.runs]
    path = export.export_runs(store, [r.id for r in records], args.format, args.out)
    print(path)
    return 0


def _run_json(record, claims) -> dict:
    """A run and its claims as plain data (``learnlab show RUN --json``)."""
    return {
        "id": record.id, "experiment": record.experiment, "preset": record.preset, "seed": record.seed,
        "status": record.status, "error": record.error, "config": record.config,
        "timing": {"started": record.started, "ended": record.ended, "seconds": record.duration},
        "git_commit": record.git_commit, "device": record.device,
        "claims": [c.to_dict() for c in claims],
    }


def cmd_report(args) -> int:
    from learnlab.report import build_report

    store = _store(args)
    if not store.path.exists():
        raise LearnlabError(f"No run store at {store.path}; run an experiment first.")
    if args.markdown:
        from learnlab.report.markdown import write_result_pages

        print(write_result_pages(store, args.markdown))
        return 0
    print(build_report(store, args.out or store.root / "report", progress=not args.quiet))
    return 0


# ----------------------------------------------------------------------------- data


def cmd_data_write(args) -> int:
    import numpy as np

    from learnlab.data import DataError, Storage, write_arrays
    from learnlab.data.shards import WebDatasetSource, check_columns, refuse_existing

    refuse_existing(Storage(args.destination))  # before reading anything (`data write g.npz g.npz` included)
    if args.source.endswith(".npz"):
        try:
            with np.load(args.source, allow_pickle=False) as arrays:
                columns = {name: arrays[name] for name in arrays.files}
        except Exception as error:  # missing, not a zip, truncated, pickled: numpy and zipfile raise many kinds
            raise DataError(f"{args.source}: not a readable .npz ({type(error).__name__}: {error})") from None
    else:  # WebDataset tar shards: a directory of .tar files
        from pathlib import Path

        tars = sorted(p.name for p in Path(args.source).glob("*.tar"))
        if not tars:
            raise DataError(f"{args.source} is neither an .npz file nor a directory of .tar shards")
        source = WebDatasetSource(args.source, tars)
        parts = [source.read_shard(i) for i in range(len(tars))]
        columns = {k.replace(".", "_"): np.concatenate([p[k] for p in parts]) for k in parts[0]}
    columns = check_columns(columns, args.source)  # one row a record, equal lengths, >= 1 record, storable types
    if args.sort_by is not None:
        if args.sort_by not in columns:
            raise DataError(f"--sort-by {args.sort_by!r} is not a column; columns: {', '.join(columns)}")
        if columns[args.sort_by].ndim != 1:
            raise DataError(f"--sort-by {args.sort_by!r}: a column of one value a record is needed; it has shape "
                            f"{columns[args.sort_by].shape[1:]} a record")
        order = np.argsort(columns[args.sort_by], kind="stable")
        columns = {k: v[order] for k, v in columns.items()}
    index = write_arrays(args.destination, columns, args.records_per_shard, row_group_size=args.row_group_size)
    print(f"wrote {index['records']:,} records in {len(index['shards'])} shards to {args.destination}")
    return 0


def cmd_data_shuffle(args) -> int:
    from tqdm import tqdm

    from learnlab.data import offline_shuffle

    bar = tqdm(desc="offline pass", unit="group", disable=True if args.quiet else None, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    if args.executor == "ray":
        try:
            import ray
        except ImportError as error:
            raise LearnlabError("--executor ray needs Ray: pip install learnlab[ray]") from error
        ray.init(address=args.address, num_cpus=args.ray_cpus if args.address is None else None, log_to_driver=False)
    index, io = offline_shuffle(args.source, args.destination, args.blocks, args.seed, args.passes,
                                workers=args.workers, executor=args.executor, progress=progress)
    bar.close()
    print(f"shuffled {index['records']:,} records into {len(index['shards'])} shards at {args.destination}: "
          f"{io.requests} reads ({io.bytes_read:,} bytes), {io.write_requests} writes ({io.bytes_written:,} bytes)")
    return 0


def _labels(dataset, column: str):
    import numpy as np

    from learnlab.data import DataError

    if column not in dataset.schema:
        raise DataError(f"label column {column!r} is not in the dataset; columns: {', '.join(dataset.schema)}")
    spec = dataset.schema[column]
    if spec.get("kind") != "number" or np.dtype(spec.get("dtype", "f8")).kind not in "biu":
        raise DataError(f"label column {column!r} holds {spec.get('dtype') or spec.get('kind')} values; class labels "
                        f"are integers, one a record")
    return np.concatenate([dataset.read_shard(i)[column] for i in range(len(dataset.shard_sizes))]).astype(np.int64)


def cmd_data_inspect(args) -> int:
    from learnlab.data import open_source
    from learnlab.data.quality import homogeneity

    dataset = open_source(args.url)
    sizes = dataset.shard_sizes
    total_bytes = sum(e["bytes"] for e in dataset.entries)
    per_shard = f"; records per shard {sizes.min()}-{sizes.max()}" if len(sizes) else ""
    print(f"{args.url}: {dataset.n_records:,} records in {len(sizes)} shards ({total_bytes:,} bytes{per_shard})")
    for name, spec in dataset.schema.items():
        print(f"  {name}: {spec.get('kind')} {spec.get('dtype', '')} {tuple(spec.get('shape') or ())}")
    if "offline" in dataset.index:
        print(f"  offline pass: {dataset.index['offline']}")
    default_label = "y" in dataset.schema and dataset.schema["y"].get("kind") == "number" \
        and str(dataset.schema["y"].get("dtype", "f"))[1:2] in ("i", "u", "b")
    if dataset.n_records and (args.label is not None or default_label):
        print(f"  homogeneity h = {homogeneity(_labels(dataset, args.label or 'y'), sizes):.2f}")
    return 0


def cmd_data_quality(args) -> int:
    import numpy as np

    from learnlab.data import ShardedLoader, open_source, plan_order
    from learnlab.data.quality import epoch_correlation, order_quality

    dataset = open_source(args.url, latency=args.latency)
    labels = _labels(dataset, args.label)
    shards = np.repeat(np.arange(len(dataset.shard_sizes)), dataset.shard_sizes)
    loader = ShardedLoader(dataset, args.order, batch_size=args.batch_size, n_blocks=args.blocks,
                           buffer_records=args.buffer_records, seed=args.seed)
    orders = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        orders.append(plan_order(loader.plan(), dataset.shard_sizes))
    dataset.storage.reset_stats()
    for _ in loader:  # one real epoch, for the I/O counts
        pass
    metrics = order_quality(orders[0], labels, shards, args.batch_size)
    metrics["epoch_correlation"] = epoch_correlation(orders[0], orders[1])
    for name, value in {**metrics, **loader.last_epoch_stats.as_dict()}.items():
        print(f"{name:<28} {value:.4g}" if isinstance(value, float) else f"{name:<28} {value}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learnlab", description=__doc__.splitlines()[0])
    default_store = os.environ.get("LEARNLAB_STORE", str(DEFAULT_STORE))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default=default_store, help=f"run store (default {default_store})")
    running = argparse.ArgumentParser(add_help=False)
    running.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    running.add_argument("--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="experiments with their presets").set_defaults(func=cmd_list)
    from learnlab.registry import REGISTRY

    known = "experiments and presets:\n" + "\n".join(
        f"  {name:<21} {', '.join(entry.presets)}" for name, entry in REGISTRY.items())

    run = commands.add_parser("run", parents=[common, running], help="one run of an experiment", epilog=known,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("experiment", metavar="EXPERIMENT", help="one of the experiments listed below")
    run.add_argument("--preset", default="quick", help="a preset of the experiment (default quick; listed below)")
    run.add_argument("--seed", type=int)
    run.add_argument("--resume", metavar="RUN_ID", help="continue this run from its last checkpoint")
    run.add_argument("--data", metavar="PATH", help="your own data, for experiments that declare a data file")
    run.add_argument("--weights", metavar="PATH", help="pretrained weights, for experiments that declare them")
    run.add_argument("--model", metavar="PATH",
                     help="a local Hugging Face causal LM, for experiments that test one")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. model.width=512")
    run.set_defaults(func=cmd_run)

    sweep = commands.add_parser("sweep", parents=[common, running], help="a grid of runs")
    sweep.add_argument("experiment")
    sweep.add_argument("--preset", default="quick")
    sweep.add_argument("--grid", action="append", default=[], metavar="key=v1,v2", help="one axis (repeatable)")
    sweep.add_argument("--jobs", type=int, default=1, help="processes at once (default 1)")
    sweep.add_argument("--executor", choices=("local", "ray", "slurm"), default="local",
                       help="local process pool (default), Ray tasks, or SLURM jobs via submitit")
    sweep.add_argument("--address", help="ray: the cluster address (default: start a local one)")
    sweep.add_argument("--ray-cpus", type=int, help="ray: CPUs of a local instance started here (default: all)")
    sweep.add_argument("--cpus-per-run", type=float, default=1, help="ray / slurm: CPUs a point asks for")
    sweep.add_argument("--gpus-per-run", type=float, default=0, help="ray / slurm: GPUs a point asks for")
    sweep.add_argument("--retries", type=int, default=1, help="ray / slurm: resubmissions of a failed point")
    sweep.add_argument("--partition", help="slurm: the partition")
    sweep.add_argument("--time", type=int, default=60, help="slurm: minutes a job may run")
    sweep.add_argument("--slurm-folder", help="slurm: where submitit keeps job files (default: next to the store)")
    sweep.add_argument("--slurm-cluster", choices=("slurm", "local", "debug"),
                       help="slurm: force submitit's backend (local: jobs as local processes)")
    sweep.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for every point")
    sweep.set_defaults(func=cmd_sweep)

    reproduce = commands.add_parser("reproduce", parents=[common, running], help="every experiment, then the report")
    reproduce.add_argument("experiments", nargs="*", metavar="EXP")
    reproduce.add_argument("--preset", default="quick")
    reproduce.add_argument("--jobs", type=int, default=1,
                           help="experiments at once, each in its own process with cores/jobs threads (default 1)")
    reproduce.add_argument("--out", help="report folder (default: report/ beside the store)")
    reproduce.add_argument("--force", action="store_true",
                           help="rerun experiments already completed with the same config and code")
    reproduce.set_defaults(func=cmd_reproduce)

    runs = commands.add_parser("runs", parents=[common], help="list runs")
    runs.add_argument("--experiment")
    runs.set_defaults(func=cmd_runs)

    config = commands.add_parser("config", help="a preset's resolved config: each key's value, type, limits and help",
                                 epilog=known, formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_argument("experiment", metavar="EXPERIMENT")
    config.add_argument("--preset", default="quick")
    config.add_argument("--seed", type=int)
    config.add_argument("--json", action="store_true", help="print the resolved config as JSON")
    config.add_argument("overrides", nargs="*", metavar="key=value")
    config.set_defaults(func=cmd_config)

    show = commands.add_parser("show", parents=[common], help="one run: config, status, metrics, claims")
    show.add_argument("run", help="a run id, a unique prefix of one, or 'latest'")
    show.add_argument("--json", action="store_true", help="print the run and its claims as JSON")
    show.add_argument("--recheck", action="store_true",
                      help="check the claims again on the stored metrics (after the claim code changed)")
    show.set_defaults(func=cmd_show)

    export = commands.add_parser("export", parents=[common], help="metrics of runs as Parquet, CSV, JSON or TensorBoard")
    export.add_argument("runs", nargs="+", metavar="RUN", help="run ids, unique prefixes, or 'latest'")
    export.add_argument("--format", choices=("parquet", "csv", "json", "tensorboard"), default="parquet")
    export.add_argument("--out", required=True, help="a file (parquet, csv, json) or a folder (tensorboard)")
    export.set_defaults(func=cmd_export)

    report = commands.add_parser("report", parents=[common], help="rebuild the HTML report from the store")
    report.add_argument("--out", help="report folder (default: report/ beside the store)")
    report.add_argument("--markdown", metavar="DIR", help="write Markdown result pages (docs/results) instead")
    report.add_argument("--quiet", action="store_true", help="no progress bar")
    report.set_defaults(func=cmd_report)

    data = commands.add_parser("data", help="sharded datasets: write, shuffle (Corgi^2 offline pass), inspect, quality")
    verbs = data.add_subparsers(dest="verb", required=True)
    write = verbs.add_parser("write", help="arrays (.npz) or WebDataset tars (a directory) -> Parquet shards + index")
    write.add_argument("source")
    write.add_argument("destination", help="a path or fsspec URL (file://, s3://, memory://, ...)")
    write.add_argument("--records-per-shard", type=int, default=1000)
    write.add_argument("--row-group-size", type=int, help="records per Parquet row group (random-access granularity)")
    write.add_argument("--sort-by", help="sort records by this column first (homogeneous shards)")
    write.set_defaults(func=cmd_data_write)
    shuffle = verbs.add_parser("shuffle", help="the Corgi^2 offline pass into a new dataset")
    shuffle.add_argument("source")
    shuffle.add_argument("destination")
    shuffle.add_argument("--blocks", type=int, default=10, help="blocks shuffled together (n)")
    shuffle.add_argument("--seed", type=int, default=0)
    shuffle.add_argument("--passes", type=int, default=1)
    shuffle.add_argument("--workers", type=int, default=1, help="processes (a file system all of them see)")
    shuffle.add_argument("--executor", choices=("local", "ray"), default="local",
                         help="ray: each group of blocks a Ray task (shards at a URL every node reaches)")
    shuffle.add_argument("--address", help="ray: the cluster address (default: start a local one)")
    shuffle.add_argument("--ray-cpus", type=int, help="ray: CPUs of a local instance started here")
    shuffle.add_argument("--quiet", action="store_true")
    shuffle.set_defaults(func=cmd_data_shuffle)
    inspect = verbs.add_parser("inspect", help="index, schema and block homogeneity h")
    inspect.add_argument("url")
    inspect.add_argument("--label", help="label column for h (default y, when present)")
    inspect.set_defaults(func=cmd_data_inspect)
    quality = verbs.add_parser("quality", help="shuffle-quality and I/O metrics of one order")
    quality.add_argument("url")
    quality.add_argument("--order", default="corgipile")
    quality.add_argument("--blocks", type=int, default=10)
    quality.add_argument("--buffer-records", type=int)
    quality.add_argument("--batch-size", type=int, default=64)
    quality.add_argument("--label", default="y")
    quality.add_argument("--seed", type=int, default=0)
    quality.add_argument("--latency", type=float, default=0.0, help="seconds added to every storage request")
    quality.set_defaults(func=cmd_data_quality)
    return parser


def _one_line(error: BaseException) -> str:
    """The error's text on one line: a damaged file's bytes may quote newlines or control characters."""
    text = " ".join(str(error).split())  # str.split() also breaks at \x1c-\x1f, which splitlines() honours
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before or after options (`run EXP --preset quick k=v`), so
    # collect the leftover key=value words here; anything else is an argparse error.
    args, extra = parser.parse_known_args(argv)
    stray = [word for word in extra if word.startswith("-") or "=" not in word]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        return args.func(args)
    except LearnlabError as error:
        print(f"learnlab: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as error:  # a store damaged on disk (bad pages), or one locked for too long
        print(f"learnlab: error: the run store {getattr(args, 'store', '')} cannot be used ({_one_line(error)}).",
              file=sys.stderr)
        return 2
    except UnicodeDecodeError as error:  # bytes that are not UTF-8: a damaged store row or a file of yours
        print(f"learnlab: error: text that is not UTF-8 ({_one_line(error)}); if the run store "
              f"{getattr(args, 'store', '')} held it, it is damaged.", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        run_id = getattr(interrupt, "run_id", None)
        if run_id is None:
            print("learnlab: interrupted", file=sys.stderr)
        else:
            store = f" --store {args.store}" if getattr(args, "store", None) not in (None, str(DEFAULT_STORE)) else ""
            print(f"learnlab: interrupted run {run_id}; resume it with: learnlab run {interrupt.experiment} "
                  f"--resume {run_id}{store}", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130  # SIGTERM: 128 + 15
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    finally:
        if getattr(args, "_opened_store", None) is not None:
            args._opened_store.close()


if __name__ == "__main__":
    sys.exit(main())
