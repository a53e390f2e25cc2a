"""Speed of the theory experiments' hot paths: tangent kernels and bounded-precision gradients.

    python benchmarks/theory.py [--kernel-samples 8000]

Prints, in one run:
- the empirical NTK of a width-512 two-layer ReLU net on n = 16 inputs: the closed form at
  N = 8,000 (the gd-vs-ntk kernel size, float64, chunked) and kernel ridge on it, against
  the general Jacobian and vjp/jvp methods at a smaller N (they agree to 1e-5; tested);
- one oracle step of sq-vs-pac (per-example gradients, clip, mean, round) for the quick
  setting (3 replicas, width 128, n = 16) at b = 256 and 1,024: the clipped-mean fast path,
  the closed-form per-example tensor, ``torch.func.vmap(grad)``, and a Python loop over the
  examples (what a naive implementation does).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from learnlab.models.mlp import MLPConfig, TwoLayerMLP  # noqa: E402
from learnlab.probes.ntk import empirical_ntk, kernel_ridge  # noqa: E402
from learnlab.train.losses import square_loss  # noqa: E402
from learnlab.train.precision import GradientOracle, PrecisionConfig, per_example_gradients  # noqa: E402


def timed(fn, repeats: int = 1) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def kernels(n_samples: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(n_samples, 16, generator=g) < 0.5, 1.0, -1.0)
    y = x[:, :3].prod(1)
    model = TwoLayerMLP(16, MLPConfig(width=512), seeds=[0])
    start = time.perf_counter()
    kernel = empirical_ntk(model, x)
    built = time.perf_counter() - start
    start = time.perf_counter()
    kernel_ridge(kernel, y, kernel[:100], 1e-3)
    solved = time.perf_counter() - start
    print(f"NTK closed form, N = {n_samples:,}: kernel {built:.2f} s, ridge (Cholesky, float64) {solved:.2f} s, "
          f"{kernel.numel() * 8 / 2**30:.2f} GiB")
    small = x[:1000]
    for method in ("closed_form", "jacobian", "vjp_jvp"):
        seconds = timed(lambda m=method: empirical_ntk(model, small, method=m))
        print(f"  N = 1,000 by {method:<11}: {seconds:.3f} s")


def oracle_steps() -> None:
    model = TwoLayerMLP(16, MLPConfig(width=128), seeds=[0, 1, 2])
    oracle = GradientOracle(PrecisionConfig(rho=0.3, mode="nearest", scale=10.0), square_loss)
    for b in (256, 1024):
        x = torch.where(torch.rand(3, b, 16) < 0.5, 1.0, -1.0)
        y = x[..., :3].prod(-1)

        def loop():  # one backward per example
            for i in range(b):
                model.zero_grad()
                square_loss(model(x[:, i:i + 1]), y[:, i:i + 1]).sum().backward()

        rows = {"clipped-mean fast path": lambda: oracle.answer(model, x, y),
                "closed-form per-example": lambda: per_example_gradients(model, x, y, square_loss, "closed_form"),
                "vmap(grad)": lambda: per_example_gradients(model, x, y, square_loss, "vmap"),
                "loop over examples": loop}
        times = {name: timed(fn, repeats=3 if name != "loop over examples" else 1) for name, fn in rows.items()}
        fast = times["clipped-mean fast path"]
        print(f"oracle step, 3 replicas x b = {b}:")
        for name, seconds in times.items():
            print(f"  {name:<24} {seconds * 1e3:9.2f} ms  ({seconds / fast:5.1f}x the fast path)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-samples", type=int, default=8000)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    kernels(args.kernel_samples)
    oracle_steps()


if __name__ == "__main__":
    main()
