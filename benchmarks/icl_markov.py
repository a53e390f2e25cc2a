"""icl-markov speed: ``python benchmarks/icl_markov.py [--rounds 5] [--device cpu] [--threads N]``.

Rows (``BENCH``, see ``benchmarks/_table.py``), every path measured in this run, the paths
taking turns a round at a time so load from other processes falls on all of them; each
row is the median (the table also prints the fastest step and this thread's CPU time):

- a training step of the paper model (batch 64 x 100 tokens, AdamW, the experiment's data
  stream, as ``fit`` runs it) for 1 seed, against a straightforward PyTorch port of the
  official code (``OfficialModel`` below: ``nn.Linear`` Q/K/V, the gathered relative
  embedding with dropout, masked-fill, softmax, dropout, all through autograd). Target
  (issue 20): <= 10 ms on 2 CPU cores, about 8x the port. Also the same model on its
  PyTorch path (where no C compiler is found) and with the per-row relative dropout;
- 10 seeds stacked into one model, against 10 x one seed's step (target: <= 3x one seed's
  step, i.e. a ratio >= 3.3);
- an evaluation on the paper's 2,000 test sequences (last-position KLs, strategy KLs,
  cross-entropy, attention probes, readouts): ``MarkovEvaluator`` (the compiled
  ``ll_eval_two_layer``), its PyTorch path (the factored probe) and the model's
  last-position forward with hooks (``hooked_last_position``). Target: <= 50 ms. All three
  give the same numbers (checked here);
- ICL-MC sampling, the parallel scan against a loop over positions (information).

Run with one thread on a shared machine (``OMP_NUM_THREADS=1``): with two, every parallel
region waits for a partner thread the other processes keep off its core (load ~4 on 2 cores,
2026-12-03: the port 949 ms and ours 321 ms a step with two threads, 86 and 21.5 ms with one).

Where a 1-seed training step spends its time (1 thread, this 2-core machine shared at load
2-4, so shares and per-call minima rather than milliseconds):

- before (PyTorch only; torch.profiler, self CPU, ~40 ms a step beside the port's 70-90):
  batched matmuls 24% (38 a step over (B, T, T) scores, several through permuted copies),
  copies 12%, the dropout masks' mt19937 words 10% (16 random bits an element, ~11 ns per
  64-bit word, 5 ms a step), elementwise passes over (B, T, T) tensors 19% (mul, addcmul,
  sum, clamp, cat), softmax 5%, LayerNorm 2% (~40 ns a row of 16), cross-entropy 1%, AdamW
  3%; the rest Python and autograd;
- after (``models._icl_kernel``; perf, steady state): the compiled kernel 42% of the CPU
  time, PyTorch 24% (MKL for the Q/K/V and output projections 6%), the Python interpreter
  17%, libc 8% (pattern copies, malloc). Per call, fastest of 200 steps: attention backward
  2.6 ms and forward 1.5 ms (layer 2), token attention 1.0 and 0.6 ms (layer 1), relative
  tables 0.3 and 0.1 ms, residual dropout 0.26 and 0.09 ms, LayerNorm 0.05 ms,
  cross-entropy 0.03 ms: 6.6 ms; with the kernel calls stubbed out the step is 4.6 ms
  (forward 1.8, backward 2.0, AdamW 0.8) plus 0.85 ms of sampling (16 batches a draw). The
  masks are a keyed hash of each element's index (0.5 ns an element, 1 bit stored for the
  backward); the kernel's rows are whole 16-float vectors (a scalar epilogue with scalar
  expf calls had cost as much as the vector body).

Profiles of 2026-12-03 (second pass, 1 thread, the machine at load 4-8 on 2 cores, so shares):

- a 1-seed step, torch.profiler (self CPU): attention backward 20%, ``aten::bmm`` 17% (26 calls a
  step: the Q/K/V projection 6400 x 16 x 48 and its two backward products the largest, then the
  output projection, the head, the one-hot embedding, and layer 1's broadcast ``q[a] @ table[i]``
  whose backward alone was ~0.5 ms), attention forward 9.5%, layer 1's token attention 6% + 4.6%
  backward, AdamW 5.4% + zero_grad 1%, the relative tables 6.4% (both ways), residual dropout
  4.8%, LayerNorm 4.3%, ``cat`` 1.5%; the rest small ops and autograd. Thread CPU time by part
  (median of 100 steps): forward 11.6 ms, backward 12.3, ``torch.optim.AdamW`` (foreach) 1.8,
  zero_grad 0.3;
- the paper preset end to end (py-spy, 240 s under py-spy at load ~7): inside ``fit`` 76% (of
  which backward 39%, forward 36%, evaluation 11.5% (last position 7.8, all positions 3.0,
  readouts 0.5), the optimizer 5.7%, the data stream's refills 3.8%, logging and checkpoints
  under 1%); the figures (matplotlib ``savefig``, shared ``figures.py``) 10%; the first
  ``torch.optim.Optimizer`` 9%: its ``__init__`` imports ``torch._dynamo`` (4.1 s measured alone,
  4.3 s for the first ``AdamW(...)``); imports 2.6%.

Cut in this pass: the transformer trains with ``training.FlatAdamW`` (PyTorch's AdamW arithmetic on
one flat buffer, bit-identical to foreach AdamW over 30 steps of this model; 1.51 -> 0.42 ms a step
measured side by side, and no ``torch._dynamo`` import in the paper preset: it has no SGD control);
layer 1's rows ``q[a] @ table[i]`` in one compiled pass each way (``_icl_kernel.TokenRows``; 0.60 ->
0.45 ms forward and backward, medians in one run). Before against after, the 1-seed step alternating
the two trees three times (``/tmp`` copy of cb1ec62 vs this commit, thread CPU ms, median of 60
steps, load ~8): 27.3 / 29.1 / 26.5 before, 24.4 / 26.2 / 23.8 after (about 2.7 ms, 10%); 10 seeds
unchanged within noise (167-191 ms).

What is left is mostly a seed's own work: each seed's (T, T) scores, softmax, dropout and
gradients in the compiled kernel (~6.6 ms of a step by the earlier profile), so 10 stacked seeds
cost ~7-8 one-seed steps; the 3x target would need a one-seed step dominated 3.5 : 1 by per-step
overhead, and this one is not. Of the overhead, the ~35 small PyTorch ops a forward (layer 1's
k x d tables: LayerNorm, Q/K/V, pairs, values) and their autograd nodes remain; one autograd
Function for layer 1's table preparation, and the residual dropout fused with the residual add,
are the next cuts. The paper preset end to end (``learnlab run icl-markov --preset paper``, one
thread): 133 s before the compiled kernel, 59 s after it (load ~1.5 and ~4). This pass, the two trees
one after the other at load 6-8 on 2 cores (``/usr/bin/time``): before 163 s wall, 77.7 s CPU (user +
sys); after 166 s wall, 72.9 s CPU: the wall clock is the other processes' (twice the CPU time), the
CPU time 5 s less; the claims' numbers are the same in both runs (transition at step 1,080, final KL
0.0196, layer-1 and layer-2 probes 0.577 and 0.918: the random draws did not change). The 30 s
target is not met: at the ~24 ms of CPU a 1-seed step took in this session's runs, the 2,000 steps
alone are ~48 s of CPU.

Third pass (2026-12-03, 14:00-14:50; the machine shared, load 2-8 on 2 cores throughout). Cut: the
residual dropout fused with the residual add (``_icl_kernel.DropoutAdd``: one pass and one autograd
node instead of a dropout, an add and their nodes); layer 1's token tables (Q/K/V of the k tokens,
the k x k pairs, the values through the output projection) one autograd node (``_TokenTables``, a
dozen small ops and their nodes before); LayerNorm rows without a 64-bit division a row (d = 16
specialised in the forward; the backward keeps d variable, as its constant changes the rows' sum
order); the relative table built from contiguous copies of a reversed r, its backward's diagonal
sums over consecutive addresses. Numbers unchanged: 30 training steps bit-equal (1 and 3 seeds), and
the paper preset's 3,057 stored metrics bit-identical between the trees. Per call (C alone, best of
300, the two trees alternating three times): LayerNorm forward 107-112 -> 55-64 us, relative table
forward 187-214 -> 93-131 us. On the step this is within the noise of this machine: 1-seed step, one
thread, five alternations of ``/tmp`` copies of HEAD~ and this tree (medians of 60 steps, load 2-3):
before 17.3 / 21.4 / 21.2 / 15.8 / 23.2 ms, after 21.4 / 24.6 / 15.3 / 14.6 / 17.0 ms, fastest step
12.5 and 12.0 ms; 10 seeds 134-176 and 116-179 ms, 7.3-8.5 one-seed steps in both. Two threads, in a
quiet minute (load ~2): before 11.5 ms a step (fastest 9.1), 10 seeds 70.6 ms (fastest 60.3); after
11.6 ms (fastest 8.9), 68.9 ms (58.5): 6x one seed. Two threads at load 3-6: 37-296 ms a step (the
partner thread descheduled at every parallel region), so the experiment keeps one thread.

Where a 1-seed step goes now (perf, steady state, one thread): the compiled kernel ~39% of the CPU
time (layer 2's attention backward 15% and forward 8%, layer 1's 4% and 2%, tables, dropouts,
LayerNorms, rows 1-1.5% each), PyTorch ~25% (MKL 7%), the interpreter ~17%, libc ~9% (memcpy 4.5%:
the patterns written and read back, 2.6 MB a layer, more than the 2 MB L2), ~530 ATen calls a step.

Arithmetic (``step_arithmetic``, printed by this script): a 1-seed step is ~144 MFLOP (layer 2's
attention 86, layer 1 10, matmuls 43, elementwise 7) plus 646k exp() and ~1.0M mask hashes; 10 seeds
1.44 GFLOP. This machine's sgemm (1024^3, best of 10, under load): 46-53 GFLOP/s on one thread, 118 on
two. At that speed 10 seeds' flops alone are 27-31 ms on one thread, 12 ms on two: the 3x target
(with a 10 ms step, 10 seeds in 30 ms, ~48 GFLOP/s sustained) is at the one-thread sgemm peak, not
below the two-thread one. What the step reaches: ~10-12 GFLOP/s for 10 seeds on one thread (the
layer-2 kernel alone ~17-21 GFLOP/s: rows of <= 100 keys by 16, an exp and a hash an element,
softmax and its backward between the products), so each seed's own kernel time (~6.6 ms) sets the
10-seed step near 7-8 one-seed steps.

Paper preset end to end (``/usr/bin/time learnlab run icl-markov --preset paper --store ...``, one
thread, both trees at once at load ~5-6): before 57.7 s CPU (user + sys), 195 s wall; after 56.0 s
CPU, 193 s wall; identical claims. Where it goes (py-spy, 80 s wall at load ~3.5): training steps
~67% (forward 30, backward 31, data stream 3.8, optimizer 1.3), figures 11% (matplotlib ``savefig``,
SVG and PNG each: ~5 s of CPU measured alone, Figure 1's 200 shaded spans 1.2 s -> 0.9 s now as 3-4
spans, the attention figure 1.3 s), evaluation 8%, imports 7% (torch ~5 s and matplotlib ~1.8 s under
load), the attention-snapshot artifact's JSON ~1%. The 30 s target is not met: 2,000 steps at the
12-18 ms of CPU a step measured here are 24-36 s alone.
"""

from __future__ import annotations

import argparse
import contextlib
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
from learnlab.experiments.icl_markov.training import make_icl_optimizer  # noqa: E402
from learnlab.models import _icl_kernel as kernel  # noqa: E402
from learnlab.models.icl_transformer import ICLTransformer  # noqa: E402
from learnlab.probes.hooks import capture  # noqa: E402
from learnlab.probes.markov import kl_divergence  # noqa: E402
from learnlab.runtime import generator, keep_freed_memory  # noqa: E402
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


@contextlib.contextmanager
def pytorch_path():
    """Within: the models' and probes' pure-PyTorch path (as where no C compiler is found)."""
    available = kernel.available
    kernel.available = lambda *tensors: False
    try:
        yield
    finally:
        kernel.available = available


class Stepper:
    """A model, its optimizer and its data stream; ``step()`` records one training step (wall
    and this thread's CPU time)."""

    def __init__(self, cfg, seeds: int, device: torch.device, official: bool = False, rel_dropout: str | None = None,
                 compiled: bool = True):
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
        self.model, self.official, self.compiled = model.train(), official, compiled
        # the experiment's optimizer (FlatAdamW) for ours, torch.optim.AdamW (foreach) for the port
        self.optimizer = make_optimizer(groups, cfg.train) if official else make_icl_optimizer(groups, cfg.train)
        self.device, self.times, self.cpu = device, [], []
        for _ in range(2):
            self.step(record=False)  # warm-up

    def step(self, record: bool = True) -> None:
        with contextlib.nullcontext() if self.compiled else pytorch_path():
            _sync(self.device)
            start, cpu = time.perf_counter(), time.thread_time()
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
                self.cpu.append(time.thread_time() - cpu)


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


def step_arithmetic(cfg) -> dict[str, float]:
    """What a 1-seed training step of the paper model computes (forward and backward, counted from the
    shapes; a multiply-add is 2 flops): the attention of the layers after the first (scores q . (k + r),
    softmax, dropout, P @ v, and their gradients: 16 d + 9 heads flops per causal (query, key) pair),
    layer 1 on its token tables, the matmuls (Q/K/V and output projections, embedding, head), the
    elementwise passes (LayerNorm, dropout, residual), and the exp() and mask hashes apart."""
    B, T, k, d = cfg.train.batch_size, cfg.task.length, cfg.task.k, cfg.transformer.d_model
    heads = cfg.transformer.heads
    pairs = T * (T + 1) // 2  # causal (query, key) pairs of a sequence
    later = sum(B * pairs * (16 * d + 9 * nh) for nh in heads[1:])
    first = B * pairs * heads[0] * (12 + 6 * k) + 6 * heads[0] * T * k * (d // heads[0]) * T  # and its rows
    matmuls = (3 * (2 * B * T * d * 3 * d + 2 * B * T * d * d) * (len(heads) - 1)  # forward and two backward
               + 3 * 2 * B * T * heads[0] * k * d + 2 * 2 * B * T * k * d + 3 * 2 * B * T * d * k)
    elementwise = B * T * d * (20 * len(heads) + 12 * len(heads))  # LayerNorms, dropouts and adds, both ways
    return {"attention": later, "layer 1": first, "matmuls": matmuls, "elementwise": elementwise,
            "total": later + first + matmuls + elementwise, "exp": B * pairs * sum(heads),
            "hashes": sum(B * pairs * nh + pairs * d + B * T * d for nh in heads)}


def sgemm_rate(n: int = 1024, repeats: int = 10) -> float:
    """This machine's float32 matmul speed, flops a second (best of ``repeats``, torch's threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b, torch.device("cpu")) for _ in range(repeats))
    return 2 * n**3 / best


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


def _median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; each row is the median")
    parser.add_argument("--steps", type=int, default=4, help="1-seed training steps a round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the runner does for every run
    device = torch.device(args.device)
    cfg = resolve_preset(EXPERIMENT, "paper")
    compiled = device.type == "cpu" and kernel.library() is not None
    print(f"icl-markov on {device}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds (medians); "
          f"compiled attention kernel: {'yes' if compiled else 'no (the PyTorch path)'}")

    # Training steps: each path takes its turn every round.
    one, fallback = "learnlab, 1 seed", "learnlab, 1 seed, PyTorch path (no compiler)"
    steppers = {OFFICIAL: (Stepper(cfg, 1, device, official=True), 1),
                one: (Stepper(cfg, 1, device), args.steps),
                fallback: (Stepper(cfg, 1, device, compiled=False), 1),
                "learnlab, 1 seed, per-row dropout": (Stepper(cfg, 1, device, rel_dropout="per_row"), args.steps),
                "learnlab, 10 seeds stacked": (Stepper(cfg, 10, device), 1)}
    for _ in range(args.rounds):
        for stepper, n in steppers.values():
            for _ in range(n):
                stepper.step()
    step = {name: statistics.median(stepper.times) for name, (stepper, _) in steppers.items()}
    print(f"training step (batch 64 x 100 tokens, AdamW)                 wall ms   min ms   CPU ms   ratio")
    for name, (stepper, _) in steppers.items():
        print(f"  {name:<58} {_median_ms(stepper.times)}  {min(stepper.times) * 1e3:7.1f}  {_median_ms(stepper.cpu)}"
              f"  {step[OFFICIAL] / step[name]:5.1f}x")
    row("training step, 1 seed", step[one], baseline=OFFICIAL, baseline_seconds=step[OFFICIAL],
        target=f"<= {STEP_TARGET_MS:.0f} ms, ~{STEP_TARGET_RATIO:.0f}x the port")
    row("training step, 1 seed, PyTorch path (no C compiler)", step[fallback], baseline=OFFICIAL,
        baseline_seconds=step[OFFICIAL])
    row("training step, 1 seed, per-row dropout", step["learnlab, 1 seed, per-row dropout"], baseline=OFFICIAL,
        baseline_seconds=step[OFFICIAL])
    stacked = step["learnlab, 10 seeds stacked"]
    row("training step, 10 seeds stacked", stacked, baseline="10 x the 1-seed step", baseline_seconds=10 * step[one],
        target=f"<= {STACK_TARGET:.0f}x one seed's step (ratio >= {10 / STACK_TARGET:.1f})")
    print(f"  10 seeds stacked = {stacked / step[one]:.1f} x one seed's step (target <= {STACK_TARGET:.0f}x)")
    if device.type == "cpu":
        count, rate = step_arithmetic(cfg), sgemm_rate()
        print(f"arithmetic of a 1-seed step: {count['total'] / 1e6:.0f} MFLOP (attention {count['attention'] / 1e6:.0f}, "
              f"layer 1 {count['layer 1'] / 1e6:.0f}, matmuls {count['matmuls'] / 1e6:.0f}, elementwise "
              f"{count['elementwise'] / 1e6:.0f}), {count['exp'] / 1e3:.0f}k exp, {count['hashes'] / 1e6:.2f}M mask "
              f"hashes; measured: {count['total'] / step[one] / 1e9:.1f} GFLOP/s (1 seed), "
              f"{10 * count['total'] / stacked / 1e9:.1f} GFLOP/s (10 seeds); this machine's sgemm (1024^3, "
              f"{torch.get_num_threads()} threads) {rate / 1e9:.0f} GFLOP/s: 10 seeds' flops alone at that speed "
              f"{10 * count['total'] / rate * 1e3:.0f} ms = {10 * count['total'] / rate / step[one]:.1f} x the "
              f"1-seed step (target {STACK_TARGET:.0f}x)")

    # Evaluation on the paper's 2,000 test sequences.
    evaluator = MarkovEvaluator(cfg, device, 1)
    evaluation = {}
    for seeds in (1, 10):
        model = ICLTransformer(cfg.task.k, cfg.transformer, list(range(seeds)), device).eval()
        with torch.no_grad():
            got = evaluator(model, 1)
            with pytorch_path():
                torch_path = evaluator(model, 1)
        expected = hooked_last_position(evaluator, model)
        worst = max(float((got[name] - expected[name]).abs().max()) for name in expected)
        worst = max(worst, max(float((got[name] - torch_path[name]).abs().max()) for name in torch_path))
        times = {"hooks": [], "pytorch": [], "ours": []}
        for _ in range(args.rounds):
            times["hooks"].append(_timed(lambda: hooked_last_position(evaluator, model), device))
            with torch.no_grad():
                with pytorch_path():
                    times["pytorch"].append(_timed(lambda: evaluator(model, 1), device))
                times["ours"].append(_timed(lambda: evaluator(model, 1), device))
        hooks, factored, ours = (statistics.median(times[name]) for name in ("hooks", "pytorch", "ours"))
        evaluation[seeds] = ours
        print(f"evaluation, {cfg.eval.n_test:,} sequences, {seeds} seed(s): MarkovEvaluator {ours * 1e3:.1f} ms, "
              f"its PyTorch path {factored * 1e3:.1f} ms, model with hooks {hooks * 1e3:.1f} ms ({hooks / ours:.1f}x); "
              f"largest difference {worst:.1e}")
        row(f"evaluation, {cfg.eval.n_test} sequences, {seeds} seed(s)", ours,
            baseline="model's last-position forward with hooks", baseline_seconds=hooks,
            target=f"<= {EVAL_TARGET_MS:.0f} ms" if seeds == 1 else "")
        evaluator.snapshots.clear()
    # The paper preset's arithmetic: 2,000 steps and 201 evaluations (start-up, the 41 all-position
    # evaluations, figures and claims come on top: time `learnlab run icl-markov --preset paper`).
    paper = cfg.train.max_steps * step[one] + (cfg.train.max_steps // cfg.train.eval_every + 1) * evaluation[1]
    print(f"paper preset, steps and evaluations alone: {paper:.1f} s (target for the whole run: <= 30 s)")

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
