"""Many runs at once: ``python benchmarks/ensemble.py [--seeds 64] [--steps 300]``.

Trains ``--seeds`` seeds of the width-100 two-layer MLP on (30, k)-parity for a fixed
number of steps, once as one stacked ensemble (one run, ``n_seeds=S``) and once as S
sequential runs (``n_seeds=1`` each), through the same ``learnlab`` runner and store,
and prints both wall times and the speed-up. A 6-sparse parity keeps every run on its
plateau, so all runs train the same number of steps; evaluation is at the start and the
end only, logging every 10 steps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from learnlab.config import apply_overrides  # noqa: E402
from learnlab.experiments import get_experiment, resolve_preset  # noqa: E402
from learnlab.runner import execute  # noqa: E402
from learnlab.store import Store  # noqa: E402

EXPERIMENT = get_experiment("hidden-progress")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    settings = ["task.n_bits=30", "task.k=6", "model.width=100", f"train.max_steps={args.steps}",
                f"train.eval_every={10**9}", "task.n_val=1024", "controls=", "train.log_every=10"]

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite")
        # Warm-up: the first run in a process pays one-time costs (lazy imports, kernels).
        execute(EXPERIMENT, apply_overrides(resolve_preset(EXPERIMENT, "quick"), [*settings, "n_seeds=1",
                                                                                   "train.max_steps=10"]),
                store=store, device=args.device, quiet=True)
        cfg = apply_overrides(resolve_preset(EXPERIMENT, "quick"), [*settings, f"n_seeds={args.seeds}"])
        start = time.perf_counter()
        execute(EXPERIMENT, cfg, store=store, device=args.device, quiet=True)
        ensemble = time.perf_counter() - start

        start = time.perf_counter()
        for seed in range(args.seeds):
            cfg = apply_overrides(resolve_preset(EXPERIMENT, "quick"), [*settings, "n_seeds=1", f"seed={seed}"])
            execute(EXPERIMENT, cfg, store=store, device=args.device, quiet=True)
        sequential = time.perf_counter() - start
        store.close()

    print(f"{args.seeds} seeds x {args.steps} steps, width-100 MLP on (30, 6)-parity, {args.device}")
    print(f"  one stacked ensemble  {ensemble:8.1f} s")
    print(f"  {args.seeds} sequential runs  {sequential:8.1f} s")
    print(f"  speed-up              {sequential / ensemble:8.1f}x")


if __name__ == "__main__":
    main()
