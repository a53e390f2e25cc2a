"""icl-markov speed: ``python benchmarks/icl_markov.py [--device cpu] [--full]``.

Prints in one table:
- ICL-MC sampling throughput (k=2, 101 tokens) of the parallel-scan sampler against a
  step-by-step loop over positions (what a straightforward sampler does);
- seconds per training step of the paper's transformer (batch 64, 100 tokens) for 1, 5
  and 10 seeds stacked into one model, with the official gathered dropout on the
  relative encodings and with the cheaper per-row variant;
- seconds per evaluation (2,000 test sequences, last-position metrics and probes);
- the implied wall time of the paper configuration (2,000 steps + 201 evaluations) and
  of 10 seeds batched; ``--full`` also runs the paper preset end to end and times it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from learnlab.experiments import get_experiment, resolve_preset  # noqa: E402
from learnlab.experiments.icl_markov import MarkovEvaluator, markov_stream, next_token_loss  # noqa: E402
from learnlab.models.icl_transformer import ICLTransformer  # noqa: E402
from learnlab.runtime import generator  # noqa: E402
from learnlab.tasks.markov import sample_icl_markov, sample_transitions, stationary_distribution  # noqa: E402
from learnlab.train.optim import make_optimizer  # noqa: E402

EXPERIMENT = get_experiment("icl-markov")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device) -> float:
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def loop_sampler(batch: int, length: int, g: torch.Generator):
    """The straightforward sampler: one batched draw per position."""
    table = sample_transitions(batch, k=2, generator=g)
    state = torch.multinomial(stationary_distribution(table), 1, generator=g).squeeze(1)
    tokens = [state]
    for _ in range(length - 1):
        state = torch.multinomial(table[torch.arange(batch, device=g.device), state], 1, generator=g).squeeze(1)
        tokens.append(state)
    return torch.stack(tokens, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per setting")
    parser.add_argument("--full", action="store_true", help="also run the paper preset end to end")
    args = parser.parse_args()
    device = torch.device(args.device)
    g = generator(0, device)

    print(f"icl-markov on {device} ({torch.get_num_threads()} threads)")
    print(f"{'sampling (k=2, 101 tokens)':<52} {'tokens/s':>12}")
    for batch in (64, 2048):
        scan = timed(lambda: sample_icl_markov(batch, k=2, length=101, generator=g), 20, device)
        loop = timed(lambda: loop_sampler(batch, 101, g), 5, device)
        print(f"{f'  parallel scan, batch {batch}':<52} {batch * 101 / scan:>12,.0f}")
        print(f"{f'  loop over positions, batch {batch}':<52} {batch * 101 / loop:>12,.0f}")

    cfg = resolve_preset(EXPERIMENT, "paper")
    print(f"{'training step (batch 64, T=100)':<52} {'s/step':>12}")
    step_seconds = {}
    for rel_dropout in ("gathered", "per_row"):
        for seeds in (1, 5, 10):
            model_cfg = replace(cfg.transformer, rel_dropout=rel_dropout)
            model = ICLTransformer(2, model_cfg, list(range(seeds)), device)
            optimizer = make_optimizer(model.parameters(), cfg.train)
            stream = markov_stream(cfg, list(range(seeds)), device)

            def step():
                inputs, targets = stream.next_batch()
                loss = next_token_loss(model(inputs), targets).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            seconds = timed(step, args.steps, device)
            step_seconds[rel_dropout, seeds] = seconds
            print(f"{f'  {seeds} seed(s), {rel_dropout} dropout':<52} {seconds:>12.4f}")

    evaluator = MarkovEvaluator(cfg, device, 1)
    eval_seconds = {}
    for seeds in (1, 10):
        model = ICLTransformer(2, cfg.transformer, list(range(seeds)), device).eval()
        with torch.no_grad():
            eval_seconds[seeds] = timed(lambda: evaluator(model, 1), 3, device)
        print(f"{f'evaluation, 2,000 sequences, {seeds} seed(s)':<52} {eval_seconds[seeds]:>11.3f}s")

    for seeds in (1, 10):
        estimate = 2000 * step_seconds["gathered", seeds] + 201 * eval_seconds[seeds]
        print(f"{f'implied paper run, {seeds} seed(s), 2,000 steps + 201 evals':<52} {estimate:>11.0f}s")
    if args.full:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "learnlab.cli", "run", "icl-markov", "--preset", "paper", "--quiet",
                            "--device", args.device, "--store", str(Path(folder) / "bench.sqlite")], check=True,
                           stdout=subprocess.DEVNULL, env={**__import__("os").environ,
                                                           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
            print(f"{'measured paper run end to end (incl. start-up)':<52} {time.perf_counter() - start:>11.0f}s")


if __name__ == "__main__":
    main()
