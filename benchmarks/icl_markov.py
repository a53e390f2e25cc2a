"""icl-markov speed: ``python benchmarks/icl_markov.py [--rounds 5] [--device cpu]``.

Rows (``BENCH``, see ``benchmarks/_table.py``), every path measured in this run, the paths
taking turns a round at a time so load from other processes falls on all of them; each
row is the median:

- a training step of the paper model (batch 64 x 100 tokens, AdamW, a fresh batch drawn
  each step, as ``fit`` runs it) for 1 seed, against a straightforward PyTorch port of the
  official code (``OfficialModel`` below: ``nn.Linear`` Q/K/V, the gathered relative
  embedding with dropout, masked-fill, softmax, dropout, all through autograd). Target
  (issue 20): <= 10 ms on 2 CPU cores, about 8x the port;
- 10 seeds stacked into one model, against 10 x one seed's step (target: <= 3x one
  seed's step, i.e. a ratio >= 3.3), and the cheaper per-row relative dropout;
- an evaluation on the paper's 2,000 test sequences (last-position KLs, strategy KLs,
  cross-entropy, attention probes, readouts): the experiment's ``MarkovEvaluator`` (through
  ``probes.markov.transformer_last_position``) against the model's last-position forward
  with hooks (``hooked_last_position``, the evaluator's path before). Target: <= 50 ms.
  The two give the same numbers (checked here);
- ICL-MC sampling, the parallel scan against a loop over positions (information).

Where a 1-seed training step spends its time (torch.profiler, 1 thread, self CPU; the
machine was shared, so shares rather than milliseconds):

- before (the model as it was): matmuls 32% (42 a step, some through ``einsum`` with
  permuted copies of the (B, T, T) scores); the dropout masks 17% (an int16 compare to a
  bool tensor and a ``where`` to a float mask cost ~1 ms per (B, T, T) mask, more than
  the random draw); elementwise passes over (B, T, T) tensors 20% (scaling, causal
  bias, adds, masked fills, concatenations of the relative scores); softmax and its
  backward 4%; and ~2,000 page faults a step (~4 ms of system time: multi-megabyte
  tensors allocated fresh every step and handed back to the system by glibc);
- after: matmuls 35% (nine (B, T, T)-sized ones: q k^T and q r_{i-j} written into one
  buffer, the mix with the values, six in the backward); the 16-bit random words of the
  two attention masks 7% (mt19937, drawn exactly as before: the same masks); softmax 3%;
  a few elementwise passes; AdamW 2% (multi-tensor now); 50-100 page faults a step.

A 10-seed stacked step (torch.profiler, 1 thread, self CPU shares, 2026-12-02; ~185 ms of
CPU a step, 8.2x the 1-seed step's 22 ms): batched matmuls 35% (the (640, 100, 100) x
(640, 100, 16) products of layer 2's forward and backward 11%, layer 1's products with the
(k = 2)-column one-hot 5%, the (r, i)-batched relative terms 10%); the Toeplitz backward's
zero fill of a fresh (R, T, 2T-1, hs) buffer 8% (a page fault per 4 kB page: now a reused
buffer, zeroed once; ~6% of the step, gradients bit-equal); the dropout masks' 16-bit
random words 7%; softmax 4%; transposed copies of q/k/v and of the (B, R, T, T) gradient
6%; concatenations 3%. Every one of them is linear in the seeds and, at 10 seeds, reads and
writes (B, R, T, T) = 25 MB tensors out of cache, so the stacked step is memory-bound: the
issue's target (10 seeds <= 3x one seed) needs attention that keeps each (T, T) tile in
cache (fused or chunked over the batch, recomputing the pattern in the backward), not yet
done.

What is left is a seed's own work: 2 x 64 x 100 x 100 scores, their softmax, dropout and
gradients, all linear in the number of seeds, so 10 stacked seeds cost ~9 one-seed steps
(stacking now saves only the per-step overhead). A fused C++ attention (one sequence a
work item, rows in L1, no (B, T, T) tensor) was tried and matched, not beat, the batched
MKL matmuls at this size (T = 100, d_head = 16), so it was not kept.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import row  # noqa: E402

from learnlab.experiments import get_experiment, resolve_preset  # noqa: E402
from learnlab.experiments.icl_markov import MarkovEvaluator, markov_stream, next_token_loss  # noqa: E402
from learnlab.models.icl_transformer import ICLTransformer  # noqa: E402
from learnlab.probes.hooks import capture  # noqa: E402
from learnlab.probes.markov import kl_divergence  # noqa: E402
from learnlab.runtime import generator  # noqa: E402
from learnlab.tasks.markov import sample_icl_markov, sample_transitions, stationary_distribution  # noqa: E402
from learnlab.train.optim import make_optimizer  # noqa: E402

EXPERIMENT = get_experiment("icl-markov")
OFFICIAL = "official code, straightforward PyTorch port"
STEP_TARGET_MS, STEP_TARGET_RATIO, STACK_TARGET, EVAL_TARGET_MS = 10.0, 8.0, 3.0, 50.0


class OfficialAttention(nn.Module):
    """One layer of the official model (``mingpt/model_new.py``, ``Attention``), written plainly:
    pre-LayerNorm, bias-free Q, K, V and output, a relative embedding table whose extra row
    (index T, all zeros) stands for j > i, gathered to (T, T, d) and dropped out, masked
    softmax, attention dropout, residual dropout."""

    def __init__(self, d: int, n_head: int, block_size: int, p: float):
        super().__init__()
        self.n_head = n_head
        self.ln = nn.LayerNorm(d)
        self.query, self.key, self.value, self.proj = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.relative = nn.Embedding(block_size + 1, d, padding_idx=block_size)
        self.attn_drop, self.resid_drop, self.rel_drop = nn.Dropout(p), nn.Dropout(p), nn.Dropout(p)
        position = torch.arange(block_size)
        offsets = position[:, None] - position[None, :]
        self.register_buffer("offsets", torch.where(offsets < 0, block_size, offsets))
        self.register_buffer("causal", offsets >= 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        h = self.ln(x)
        q, k, v = (f(h).view(B, T, nh, hs).transpose(1, 2) for f in (self.query, self.key, self.value))  # (B, nh, T, hs)
        rel = self.rel_drop(self.relative(self.offsets[:T, :T])).view(T, T, nh, hs)
        att = (q @ k.transpose(-2, -1) + torch.einsum("ijhd,bhid->bhij", rel, q)) / math.sqrt(hs)
        att = torch.softmax(att.masked_fill(~self.causal[:T, :T], float("-inf")), dim=-1)
        y = (self.attn_drop(att) @ v).transpose(1, 2).reshape(B, T, C)
        return x + self.resid_drop(self.proj(y))


class OfficialModel(nn.Module):
    """The official ``Attention_Only_Transformer``: embedding (with dropout), attention
    layers, final LayerNorm, bias-free head; N(0, 0.02) init."""

    def __init__(self, vocab_size: int, d: int = 16, n_layer: int = 2, n_head: int = 1, block_size: int = 100,
                 p: float = 0.1):
        super().__init__()
        self.wte, self.drop = nn.Embedding(vocab_size, d), nn.Dropout(p)
        self.layers = nn.ModuleList(OfficialAttention(d, n_head, block_size, p) for _ in range(n_layer))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.wte(idx))
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln_f(x))


class Stepper:
    """A model, its optimizer and its data stream; ``step()`` records one training step."""

    def __init__(self, cfg, seeds: int, device: torch.device, official: bool = False, rel_dropout: str | None = None):
        self.stream = markov_stream(cfg, list(range(seeds)), device)
        if official:
            model = OfficialModel(cfg.task.k, d=cfg.transformer.d_model, block_size=cfg.task.length).to(device)
            decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2
                     and "relative" not in n and "wte" not in n]
        else:
            model_cfg = cfg.transformer if rel_dropout is None else \
                type(cfg.transformer)(**{**cfg.transformer.__dict__, "rel_dropout": rel_dropout})
            model = ICLTransformer(cfg.task.k, model_cfg, list(range(seeds)), device)
            decay = model.decay_parameters()  # as the experiment's train_one
        decay_ids = {id(p) for p in decay}
        groups = [{"params": [p for p in model.parameters() if id(p) in decay_ids]},
                  {"params": [p for p in model.parameters() if id(p) not in decay_ids], "weight_decay": 0.0}]
        self.model, self.official = model.train(), official
        self.optimizer = make_optimizer(groups, cfg.train)
        self.device, self.times = device, []
        for _ in range(2):
            self.step(record=False)  # warm-up

    def step(self, record: bool = True) -> None:
        _sync(self.device)
        start = time.perf_counter()
        inputs, targets = self.stream.next_batch()  # (S, B, T)
        if self.official:
            logits = self.model(inputs[0])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[0].reshape(-1))
        else:
            loss = next_token_loss(self.model(inputs), targets).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        _sync(self.device)
        if record:
            self.times.append(time.perf_counter() - start)


@torch.no_grad()
def hooked_last_position(evaluator: MarkovEvaluator, model: ICLTransformer, rows: int = 250) -> dict[str, torch.Tensor]:
    """The evaluator's last-position numbers as they were computed before the factored probe:
    the model's last-position forward in chunks of ``rows`` sequences x seeds, attention
    patterns read by hooks (the baseline of the evaluation rows)."""
    S, N = model.n_replicas, evaluator.inputs.shape[0]
    chunk = max(1, rows // S)
    hooks = ["layers.0.attn.hook_pattern", f"layers.{len(model.layers) - 1}.attn.hook_pattern"]
    logits, previous, induction = [], 0.0, 0.0
    for start in range(0, N, chunk):
        with capture(model, hooks) as seen:
            logits.append(model(evaluator.inputs[start : start + chunk].expand(S, -1, -1), last_position_only=True)[:, :, -1])
        first, last = seen[hooks[0]], seen[hooks[1]][:, :, :, -1]
        previous = previous + first.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=3).amax(dim=2).sum(dim=1)
        follows = evaluator.follows_current[start : start + chunk]
        induction = induction + (last * follows[None, :, None]).sum(-1).mean(dim=2).sum(dim=1)
    log_model = F.log_softmax(torch.cat(logits, dim=1).float(), dim=-1)
    return {"kl": kl_divergence(evaluator.truth, log_model).mean(dim=1), "l1_prev_attention": previous / N,
            "l2_induction_mass": induction / N, **model.readouts()}


def loop_sampler(batch: int, length: int, g: torch.Generator):
    """The straightforward sampler: one batched draw per position."""
    table = sample_transitions(batch, k=2, generator=g)
    state = torch.multinomial(stationary_distribution(table), 1, generator=g).squeeze(1)
    tokens = [state]
    for _ in range(length - 1):
        state = torch.multinomial(table[torch.arange(batch, device=g.device), state], 1, generator=g).squeeze(1)
        tokens.append(state)
    return torch.stack(tokens, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device, repeats: int = 1) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; each row is the median")
    parser.add_argument("--steps", type=int, default=4, help="1-seed training steps a round")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = resolve_preset(EXPERIMENT, "paper")
    print(f"icl-markov on {device}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds (medians)")

    # Training steps: each path takes its turn every round.
    steppers = {OFFICIAL: (Stepper(cfg, 1, device, official=True), 1),
                "learnlab, 1 seed": (Stepper(cfg, 1, device), args.steps),
                "learnlab, 1 seed, per-row dropout": (Stepper(cfg, 1, device, rel_dropout="per_row"), args.steps),
                "learnlab, 10 seeds stacked": (Stepper(cfg, 10, device), 1)}
    for _ in range(args.rounds):
        for stepper, n in steppers.values():
            for _ in range(n):
                stepper.step()
    step = {name: statistics.median(stepper.times) for name, (stepper, _) in steppers.items()}
    one, official = step["learnlab, 1 seed"], step[OFFICIAL]
    print(f"training step (batch 64 x 100 tokens, AdamW)        {'seconds':>10}  {'ratio':>8}")
    for name, seconds in step.items():
        print(f"  {name:<50} {seconds * 1e3:7.1f} ms  {official / seconds:7.1f}x")
    row("training step, 1 seed", one, baseline=OFFICIAL, baseline_seconds=official,
        target=f"<= {STEP_TARGET_MS:.0f} ms, ~{STEP_TARGET_RATIO:.0f}x the port")
    row("training step, 1 seed, per-row dropout", step["learnlab, 1 seed, per-row dropout"], baseline=OFFICIAL,
        baseline_seconds=official)
    row("training step, 10 seeds stacked", step["learnlab, 10 seeds stacked"], baseline="10 x the 1-seed step",
        baseline_seconds=10 * one, target=f"<= {STACK_TARGET:.0f}x one seed's step (ratio >= {10 / STACK_TARGET:.1f})")
    print(f"  10 seeds stacked = {step['learnlab, 10 seeds stacked'] / one:.1f} x one seed's step "
          f"(target <= {STACK_TARGET:.0f}x)")

    # Evaluation on the paper's 2,000 test sequences.
    evaluator = MarkovEvaluator(cfg, device, 1)
    for seeds in (1, 10):
        model = ICLTransformer(cfg.task.k, cfg.transformer, list(range(seeds)), device).eval()
        with torch.no_grad():
            got = evaluator(model, 1)
        expected = hooked_last_position(evaluator, model)
        worst = max(float((got[name] - expected[name]).abs().max()) for name in expected)
        times = {"hooks": [], "factored": []}
        for _ in range(args.rounds):
            times["hooks"].append(_timed(lambda: hooked_last_position(evaluator, model), device))
            with torch.no_grad():
                times["factored"].append(_timed(lambda: evaluator(model, 1), device))
        hooks, factored = statistics.median(times["hooks"]), statistics.median(times["factored"])
        print(f"evaluation, {cfg.eval.n_test:,} sequences, {seeds} seed(s): MarkovEvaluator (factored) "
              f"{factored * 1e3:.1f} ms, model with hooks {hooks * 1e3:.1f} ms ({hooks / factored:.1f}x); "
              f"largest difference {worst:.1e}")
        row(f"evaluation, {cfg.eval.n_test} sequences, {seeds} seed(s)", factored,
            baseline="model's last-position forward with hooks", baseline_seconds=hooks,
            target=f"<= {EVAL_TARGET_MS:.0f} ms" if seeds == 1 else "")
        evaluator.snapshots.clear()

    # Sampling (information).
    g = generator(0, device)
    for batch in (64, 2048):
        scan = statistics.median(_timed(lambda: sample_icl_markov(batch, k=2, length=101, generator=g), device, 5)
                                 for _ in range(args.rounds))
        loop = statistics.median(_timed(lambda: loop_sampler(batch, 101, g), device) for _ in range(args.rounds))
        print(f"sampling, batch {batch} x 101 tokens: parallel scan {batch * 101 / scan:,.0f} tokens/s, "
              f"loop over positions {batch * 101 / loop:,.0f} tokens/s")
        row(f"ICL-MC sampling, batch {batch}", scan, baseline="loop over positions", baseline_seconds=loop)


if __name__ == "__main__":
    main()
