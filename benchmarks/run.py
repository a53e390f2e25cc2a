"""Benchmarks, one command: ``make bench`` (or ``python benchmarks/run.py [--device cpu]``).

Prints, in one table:
- training steps/second of ``hidden-progress`` at its quick and paper presets (8 seeds
  trained as one ensemble; evaluation every ``eval_every`` steps as configured);
- the overhead of logging (every 10 steps) and of checkpointing (every 100 and 1,000
  steps) as a percentage of the bare step time (target: under 5%).

Each number is a steady-state rate: (best time of 2N steps - best time of N steps) / N,
so set-up (validation set, model construction, imports) cancels out.
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
NEVER = 10**9  # an interval longer than any run: the thing is off


def seconds_per_step(preset: str, overrides: list[str], steps: int, device: str, repeats: int) -> float:
    """Steady-state seconds per training step of ``preset`` with ``overrides``."""

    def timed(n: int) -> float:
        cfg = apply_overrides(resolve_preset(EXPERIMENT, preset), [*overrides, f"train.max_steps={n}"])
        with tempfile.TemporaryDirectory() as folder:
            store = Store(Path(folder) / "bench.sqlite")
            start = time.perf_counter()
            outcome = execute(EXPERIMENT, cfg, store=store, device=device, quiet=True)
            elapsed = time.perf_counter() - start
            store.close()
        if outcome.status != "completed":
            raise SystemExit(f"benchmark run failed: {outcome.error}")
        return elapsed

    # The best of each length separately, then the difference: a minimum of noisy
    # differences would be biased low.
    short = min(timed(steps) for _ in range(repeats))
    long = min(timed(2 * steps) for _ in range(repeats))
    return (long - short) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = lambda preset, *overrides: seconds_per_step(preset, list(overrides), args.steps, args.device, args.repeats)  # noqa: E731

    # A 6-sparse parity stays on its plateau far longer than these runs, so no run stops
    # early at convergence; a step costs the same for any k.
    plateau = ["task.k=6", "controls="]
    print(f"hidden-progress, {args.device}, {args.steps} steps, best of {args.repeats}")
    print(f"{'setting':<58} {'steps/s':>9} {'vs bare':>8}")
    for preset in ("quick", "paper"):
        cfg = resolve_preset(EXPERIMENT, preset)
        rate = 1 / run(preset, *plateau)
        print(f"{preset + f' preset (n={cfg.task.n_bits}, {cfg.n_seeds} seeds, eval every {cfg.train.eval_every})':<58}"
              f" {rate:>9.0f}")

    bare = run("quick", *plateau, f"train.log_every={NEVER}", f"train.eval_every={NEVER}")
    print(f"{'bare loop (quick model, no logging, eval, checkpoints)':<58} {1 / bare:>9.0f} {'':>8}")
    for label, overrides in [
        ("+ logging every 10 steps", ["train.log_every=10"]),
        ("+ checkpoint every 1,000 steps", [f"train.log_every={NEVER}", "train.checkpoint_every=1000"]),
        ("+ checkpoint every 100 steps", [f"train.log_every={NEVER}", "train.checkpoint_every=100"]),
        ("+ logging every 10 and checkpoint every 1,000", ["train.log_every=10", "train.checkpoint_every=1000"]),
    ]:
        cost = run("quick", *plateau, f"train.eval_every={NEVER}", *overrides)
        print(f"{label:<58} {1 / cost:>9.0f} {100 * (cost - bare) / bare:>+7.1f}%")


if __name__ == "__main__":
    main()
