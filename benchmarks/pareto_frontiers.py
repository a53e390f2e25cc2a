"""The pareto-frontiers grid as one ensemble vs run by run:
``python benchmarks/pareto_frontiers.py [--steps 500] [--width 100] [--sequential 4]``.

Times ``--steps`` training steps of one width's quick-preset ensemble (dense and sparse
inits x 4 sample sizes x 16 trials = 128 runs of (40, 3)-parity), then ``--sequential``
single runs of the same kind through the same runner, and prints the measured times and
the sequential time extrapolated to all 128 runs. Also prints the paper preset's
throughput (n = 100, 64 runs a width) for the GPU estimate in the README.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from learnlab.experiments import get_experiment, resolve_preset  # noqa: E402
from learnlab.runner import execute  # noqa: E402
from learnlab.store import Store  # noqa: E402

EXPERIMENT = get_experiment("pareto-frontiers")


def timed(cfg, store, device) -> float:
    start = time.perf_counter()
    execute(EXPERIMENT, cfg, store=store, device=device, quiet=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--sequential", type=int, default=4, help="single runs timed (then extrapolated)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    quick = resolve_preset(EXPERIMENT, "quick")
    # Evaluate every 100 steps as the preset does; no run reaches success this early.
    grid = replace(quick, parts=("frontier",), widths=(args.width,),
                   train=replace(quick.train, max_steps=args.steps))
    n_runs = len(grid.inits) * len(grid.sample_sizes) * grid.n_trials
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite")
        timed(replace(grid, n_trials=1, sample_sizes=(500,), inits=("dense",),
                      train=replace(grid.train, max_steps=20)), store, args.device)  # warm-up
        ensemble = timed(grid, store, args.device)
        single = [timed(replace(grid, n_trials=1, sample_sizes=(m,), inits=(init,)), store, args.device)
                  for init, m in zip(["dense", "sparse"] * args.sequential, [500, 2000] * args.sequential)][
                      : args.sequential]
        per_run = sum(single) / len(single)
        print(f"pareto-frontiers quick grid, width {args.width}, {n_runs} runs x {args.steps} steps "
              f"(device {args.device}):")
        print(f"  one ensemble      {ensemble:8.2f} s")
        print(f"  run by run        {per_run * n_runs:8.2f} s  (mean of {len(single)} single runs: {per_run:.3f} s, x {n_runs})")
        print(f"  speed-up          {per_run * n_runs / ensemble:8.1f}x")
        print(f"  ensemble rate     {args.steps / ensemble:8.0f} steps/s -> 10^4 steps in {1e4 * ensemble / args.steps:.0f} s "
              "(early stopping ends it sooner when every run succeeds)")

        paper = resolve_preset(EXPERIMENT, "paper")
        steps = 40
        for width in paper.widths if args.device != "cpu" else paper.widths[:1]:  # 10^4 is 10x the work of 10^3
            cfg = replace(paper, widths=(width,), train=replace(paper.train, max_steps=steps, eval_every=steps))
            seconds = timed(cfg, store, args.device)
            runs = len(cfg.inits) * len(cfg.sample_sizes) * cfg.n_trials
            print(f"  paper grid, width {width}: {runs} runs, {steps / seconds:.1f} steps/s (with 2 evaluations) -> "
                  f"{paper.train.max_steps} steps in {paper.train.max_steps * seconds / steps / 3600:.1f} h on {args.device}")


if __name__ == "__main__":
    main()
