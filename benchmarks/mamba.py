"""A Mamba training step: our pure-PyTorch model (parallel scan) vs Hugging Face's CPU fallback.

    python benchmarks/mamba.py [--hf-steps 2]

d = 128, 4 layers, state 16, batch 16, length 64 (the copying quick preset's Mamba): one
step is forward, backward and AdamW. Prints our parallel scan, our sequential scan and
``transformers``' ``MambaForCausalLM`` (its pure-PyTorch path, as it runs without the CUDA
kernels), in one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from learnlab.models.mamba import Mamba, MambaConfig  # noqa: E402


def step_time(model, forward, steps: int, device: str) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx = torch.randint(0, 30, (16, 65), device=device)
    forward(idx)[1].backward()  # warm-up
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        forward(idx)[1].backward()
        optimizer.step()
    sync()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--hf-steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = {}
    for scan in ("parallel", "sequential"):
        model = Mamba(MambaConfig(d_model=128, n_layer=4, d_state=16, scan=scan)).to(args.device).train()
        rows[f"learnlab, {scan} scan"] = step_time(model, lambda idx, m=model: m(idx[:, :-1], idx[:, 1:]), args.steps,
                                                   args.device)
    try:
        import transformers

        config = transformers.MambaConfig(vocab_size=30, hidden_size=128, num_hidden_layers=4, state_size=16)
        hf = transformers.MambaForCausalLM(config).to(args.device).train()

        def hf_forward(idx):
            out = hf(idx, labels=idx)
            return out.logits, out.loss

        rows["transformers MambaForCausalLM (pure-PyTorch fallback)"] = step_time(hf, hf_forward, args.hf_steps,
                                                                                args.device)
    except ImportError:
        print("(transformers not installed: pip install learnlab[hf])")
    fastest = min(rows.values())
    print("Mamba training step, d = 128, 4 layers, state 16, batch 16, length 64")
    for name, seconds in rows.items():
        print(f"  {name:<48} {seconds * 1e3:10.1f} ms  ({seconds / fastest:6.1f}x the fastest)")


if __name__ == "__main__":
    main()
