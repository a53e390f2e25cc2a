"""SubTuning's activation cache: a finetuning profile over late blocks with and without it.

    python benchmarks/subtuning.py [--channels 18] [--examples 2000] [--steps 150]

Finetunes each of the last ``--blocks`` blocks of a 1-D ResNet (one SubTuned model a
block, a new head, AdamW) on the same data, once training on cached activations of the
frozen prefix (computed once per example) and once running the frozen prefix every step,
and prints both times, the speed-up, and full finetuning's time for reference.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from learnlab.finetune import FitConfig, SubTuned, fit  # noqa: E402
from learnlab.models.resnet1d import resnet1d  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=18)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--blocks", type=int, default=4, help="profile the last this many blocks")
    args = parser.parse_args()
    torch.manual_seed(0)
    backbone = resnet1d(10, args.channels).eval()
    x, y = torch.randn(args.examples, 40), torch.randint(0, 10, (args.examples,))
    epochs = max(1, math.ceil(args.steps * 64 / args.examples))
    late = range(len(backbone) - args.blocks, len(backbone))
    times = {}
    for cache in (True, False):
        start = time.perf_counter()
        for block in late:
            fit(SubTuned(backbone, [block], 10, example=x), x, y, FitConfig(epochs=epochs, cache=cache))
        times[cache] = time.perf_counter() - start
    start = time.perf_counter()
    fit(SubTuned(backbone, range(len(backbone)), 10, example=x, tune_stem=True), x, y,
        FitConfig(epochs=epochs, cache=False))
    full = time.perf_counter() - start
    print(f"1-D ResNet c={args.channels} ({sum(p.numel() for p in backbone.parameters()):,} parameters), "
          f"{args.examples:,} examples, {epochs} epochs of batch 64, blocks {list(late)}")
    print(f"profile with the cached prefix    {times[True]:7.2f} s ({times[True] / args.blocks:.2f} s a block)")
    print(f"profile through the frozen prefix {times[False]:7.2f} s ({times[False] / args.blocks:.2f} s a block)")
    print(f"speed-up {times[False] / times[True]:.1f}x; one full finetuning run {full:.2f} s")


if __name__ == "__main__":
    main()
