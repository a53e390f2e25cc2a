"""Many runs at once: ``python benchmarks/ensemble.py [--seeds 64] [--steps 300]``.

Trains ``--seeds`` seeds of the width-100 two-layer MLP on (30, 6)-parity for a fixed
number of steps, once as one stacked ensemble (one run, ``n_seeds=S``) and once as S
sequential runs (``n_seeds=1`` each), through the same ``learnlab`` runner and store. A
6-sparse parity keeps every run on its plateau, so all runs train the same number of
steps; evaluation is at the start and the end only, logging every 10 steps.

Rows (``BENCH``): whole runs (``execute``: training, store, claims and figures, what a
user waits for), the issue's measure, target >= 25x (issue 20); and the training alone
(the time inside ``fit``), which leaves out what every run pays once (figures ~1.5 s a
run, the store) and so shows the ensemble's own gain.

Where an ensemble step goes (64 seeds, batch 32: x (64, 32, 30), hidden (64, 32, 100)):
autograd's forward, backward and SGD were ~30 small kernels, ~3.5 ms a step on 1 thread
of this shared machine; ``train.ensemble.fused_gradient`` computes the forward, the
hinge loss and every gradient in a dozen batched kernels (~1.2 ms with the foreach SGD
step), after which drawing the batches (64 generators, one ``randint`` each per 64
steps, ~0.35 ms a step) is the largest single cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import row  # noqa: E402

import learnlab.experiments.hidden_progress.training as training  # noqa: E402
from learnlab.config import apply_overrides  # noqa: E402
from learnlab.experiments import get_experiment, resolve_preset  # noqa: E402
from learnlab.runner import execute  # noqa: E402
from learnlab.store import Store  # noqa: E402

EXPERIMENT = get_experiment("hidden-progress")
TARGET = 25.0


class FitClock:
    """Adds up the wall time spent inside ``fit`` (wrapped where the experiment calls it)."""

    def __init__(self):
        self.seconds, self._fit = 0.0, training.fit
        training.fit = self

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._fit(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    settings = ["task.n_bits=30", "task.k=6", "model.width=100", f"train.max_steps={args.steps}",
                f"train.eval_every={10**9}", "task.n_val=1024", "controls=", "train.log_every=10"]
    clock = FitClock()

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite")
        # Warm-up: the first run in a process pays one-time costs (lazy imports, kernels).
        execute(EXPERIMENT, apply_overrides(resolve_preset(EXPERIMENT, "quick"), [*settings, "n_seeds=1",
                                                                                   "train.max_steps=10"]),
                store=store, device=args.device, quiet=True)
        clock.seconds = 0.0
        cfg = apply_overrides(resolve_preset(EXPERIMENT, "quick"), [*settings, f"n_seeds={args.seeds}"])
        start = time.perf_counter()
        execute(EXPERIMENT, cfg, store=store, device=args.device, quiet=True)
        ensemble, ensemble_fit = time.perf_counter() - start, clock.seconds

        clock.seconds = 0.0
        start = time.perf_counter()
        for seed in range(args.seeds):
            cfg = apply_overrides(resolve_preset(EXPERIMENT, "quick"), [*settings, "n_seeds=1", f"seed={seed}"])
            execute(EXPERIMENT, cfg, store=store, device=args.device, quiet=True)
        sequential, sequential_fit = time.perf_counter() - start, clock.seconds
        store.close()

    print(f"{args.seeds} seeds x {args.steps} steps, width-100 MLP on (30, 6)-parity, {args.device}")
    print(f"  {'':24} {'whole runs':>12} {'training (fit)':>16}")
    print(f"  {'one stacked ensemble':<24} {ensemble:10.1f} s {ensemble_fit:14.1f} s")
    print(f"  {f'{args.seeds} sequential runs':<24} {sequential:10.1f} s {sequential_fit:14.1f} s")
    print(f"  {'speed-up':<24} {sequential / ensemble:10.1f} x {sequential_fit / ensemble_fit:14.1f} x"
          f"   (target: whole runs >= {TARGET:.0f}x)")
    row(f"{args.seeds}-seed MLP ensemble, whole runs", ensemble, baseline=f"{args.seeds} sequential runs",
        baseline_seconds=sequential, target=f">= {TARGET:.0f}x")
    row(f"{args.seeds}-seed MLP ensemble, training only", ensemble_fit,
        baseline=f"{args.seeds} sequential runs' training", baseline_seconds=sequential_fit)


if __name__ == "__main__":
    main()
