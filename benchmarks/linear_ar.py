"""The causal map of the linear AR predictor: masked dense vs block-triangular groups.

``python benchmarks/linear_ar.py [--device cpu] [--repeats 5]`` times a training step
(forward, backward, AdamW) of ``LinearAR`` at the quick multiplication shape (T = 76,
d = 32, batch 256) and at the paper's context T = 306 with d = 32 (the paper's d = 128
needs 6 GB for the dense weight alone: a GPU shape, ``--paper`` runs it), for 1 group
(the official masked dense matrix) and for 4 and 8 row groups, and prints tokens/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from learnlab.models.linear_ar import LinearAR, LinearARConfig  # noqa: E402


def step_time(context: int, d: int, batch: int, groups: int, activation: str, device: str, repeats: int) -> float:
    torch.manual_seed(0)
    model = LinearAR(LinearARConfig(vocab_size=117, context=context, d=d, activation=activation, groups=groups)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x = torch.randint(0, 117, (batch, context), device=device)

    def once():
        _, loss = model(x, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    once()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--paper", action="store_true", help="also T=306, d=128, batch 2048 (GPU memory)")
    args = parser.parse_args()
    shapes = [("quick 2x2 multiplication", 76, 32, 256), ("paper context, d=32", 306, 32, 64)]
    if args.paper:
        shapes.append(("paper 4x4 multiplication", 306, 128, 2048))
    print(f"LinearAR training step (MLP variant, AdamW), device {args.device}")
    for label, context, d, batch in shapes:
        print(f"  {label}: T={context}, d={d}, batch {batch}")
        base = None
        for groups in (1, 4, 8):
            seconds = step_time(context, d, batch, groups, "relu", args.device, args.repeats)
            base = base or seconds
            print(f"    groups={groups}: {seconds * 1e3:8.1f} ms/step, {batch * context / seconds:12,.0f} tokens/s"
                  f"  ({base / seconds:.2f}x the masked dense matrix)")


if __name__ == "__main__":
    main()
