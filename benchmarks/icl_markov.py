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

Threads. Run with one thread on a shared machine (``OMP_NUM_THREADS=1``): with two, every parallel
region waits for a partner thread that other processes keep off its core (load ~4 on 2 cores: 37-1000
ms a step; in a quiet minute two threads take a 1-seed step in ~9-11 ms against ~12-15 with one). Two
threads train bit-identically to one (30 steps checked) when a layer's seeds x heads are at least the
threads (2, 3 and 10 seeds: identical); for 1 seed they differ in the last bits (~1e-8 in the weights
after 30 steps), for two reasons: MKL splits the weight gradients' long sum (a^T @ g over the 6,400
rows: Q/K/V, output projection, embedding, layer-1 values, head) between threads, and the kernel's
backward sums the relative table's gradient (layer 1: its rows and pairs) in per-thread halves of the
batch when seeds x heads < threads (``units_for``). Thread-invariant 1-seed numbers would need those
five products on one thread (as today's one-thread numbers) and a batch split fixed independently of
the thread count (which moves 1-seed one-thread numbers in their last bits).

History of the 1-seed step (1 thread): PyTorch only ~40 ms (batched matmuls over (B, T, T) tensors,
copies, mt19937 masks); the compiled kernel (``models._icl_kernel``: one (T, T) attention per
(replica, sequence, head) in L1, masks a keyed hash, keep flags as bits) ~20 ms; then ``FlatAdamW``
(1.5 -> 0.4 ms), layer 1's rows in C, the residual dropout fused with its add, layer 1's token tables
one node, LayerNorm without a division a row: ~12-17 ms at load 2-3.

Fourth pass (2026-12-03, 16:30-17:20, load 1.5-4.5 on 2 cores, another engineer's jobs running):

- the whole model one autograd node (``icl_transformer._KernelModel``: the kernel Functions' forward
  and backward code called directly, the matmul gradients by autograd's formulas; ~20 nodes and
  their views before). Bit-equal (a test; 30 training steps for 1 and 3 seeds, 1 and 2 threads).
  Fused against the module graph alternating in one process (``model.fused``, 300 steps each, load
  ~3.5): 1 thread 16.9 vs 17.8 ms median (fastest 12.2 vs 12.6), 2 threads 12.2 vs 12.9 (10.2 vs
  10.8); 10 seeds 139 vs 139 ms;
- kernel (bit-equal): the pattern's zeros above the diagonal written only for a hook (the backward
  reads row i's i+1 entries); flat dropout passes and LayerNorm rows split evenly over two threads
  (7 units had gone 4 : 3) and walked 1,024 elements at a time with their mask in L1 (dropout-add
  128-135 -> 93-117 us a call, 1 thread; 63-88 -> 42-58 us on 2); the table backward's columns
  written by one thread. Layer-2 attention forward 1.47 -> 1.44 ms a call.
- ``python benchmarks/icl_markov.py`` with ``--threads 1`` at load 1.6-2.3, each tree in turn
  (HEAD before this pass, then this tree): port 69 / 62 and 51 / 55 ms, ours 14.4 / 11.8 and
  11.5 / 11.7 ms (4.4-5.3x the port), 10 seeds 115 / 108 and 93 / 93 ms (8-9 one-seed steps). With
  ``--threads 2`` at load 2.2-2.8: 8.7 (fastest 7.7) / 10.4 (9.8) and (the other process
  interfering: 288) / 10.9 (9.2) ms, 10 seeds 58 / 62 and 458 / 61 ms. Runs a minute apart differ
  by 20-30%, more than this pass's gain; the in-process comparisons above are the measurement.

Where a 1-seed step goes now (1 thread, load ~2): the kernel calls (perf_counter around each, fastest
of 200 steps) layer-2 attention backward 3.5 ms and forward 2.1, layer-1 attention 1.3 and 0.7,
residual dropout-add 0.4 (two), relative tables 0.36 and 0.14, LayerNorms 0.19 and 0.29, layer-1
rows 0.04 and 0.20, dropout backward 0.17, cross-entropy 0.04: 9.4 ms of a 12-15 ms step. With every
kernel call a no-op the step is 3.3 ms (forward 1.2, backward 1.7, loss 0.16, AdamW 0.3), of which
MKL's matmuls ~0.9 (Q/K/V 6400 x 16 x 48 and its two gradients ~0.26 ms, the output projection's
three ~0.11). So 10 stacked seeds cost 8-9 one-seed steps: each seed's own kernel work dominates.

The layer-2 kernel per item, fitted over T = 25, 50, 100 (B = 64): forward 48 ns a 16-key block and
37 ns a row, backward 83 and 60 ns: ~130 and ~230 cycles a block against ~150 and ~110 512-bit uops
(the forward near two vector ports' issue rate; the backward's group of four sequences keeps ~500 kB
in L2: K^T, V^T and the (T, Tp) rows of ds and kept). Removing each part in turn: forward softmax
27%, mask hash 17%, pattern store 12%, P @ V 17%; backward dq and table-gradient loop ~40%, dk and
dv products ~30%, softmax backward ~30%. Tried, measured per call against HEAD in one process, and
dropped: P @ V four rows at a time sharing each v_j (no gain); dq's sixteen sums in one butterfly
(no gain, last bit moves); the group's four softmaxes interleaved (no gain, last bit moves); the dq
loop with components inside (no gain); groups of 2, 8 or 16 sequences (8: +15%; 1 in the backward:
-10% but dq's last bit moves); dk and dv accumulated row by row instead of stored rows (+15%: the
accumulators' stores); AVX2 or 256-bit vectors (1.4-2.2x slower).

Arithmetic (``step_arithmetic``, printed by this script): a 1-seed step is ~144 MFLOP (layer 2's
attention 86, layer 1 10, matmuls 43, elementwise 7) plus 646k exp() and ~1.0M mask hashes; the
step reaches ~10-12 GFLOP/s against this machine's one-thread sgemm (1024^3) of 50-99 GFLOP/s.

What is left for the 10 ms target: on one thread the kernel calls alone (~7-9 ms) nearly fill it;
fewer vector operations per key would need other semantics (a cheaper mask hash, an approximate exp:
both move the numbers) or a backward restructured around a smaller working set. On two threads the step is at
~9-11 ms when the machine is quiet; the serial 3.3 ms (Python, autograd, MKL's small products,
AdamW) and the kernels' ~1.6x two-thread speedup (the partner thread shares the core with other
processes) set it.

Presets end to end, HEAD before this pass against it with this pass's three files (``/tmp`` copies,
``learnlab run icl-markov --preset ... --store ...``, one thread, one after the other at load ~2):
paper 49.0 -> 46.1 s of CPU (user), its 3,057 metrics identical and its claims' checks the same;
quick 163 -> 138 s (load 3-4, then ~2), its 24,619 metrics identical, 8 of 8 claims reproduced and 2
of 2 sanity checks passed in both. The paper preset's 30 s target is not met: 2,000 steps at 12-15 ms
are 24-30 s alone.
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
from learnlab.models import _icl_kernel as kernel  # noqa: E402
from learnlab.models.icl_transformer import ICLTransformer  # noqa: E402
from learnlab.probes.hooks import capture  # noqa: E402
from learnlab.probes.markov import kl_divergence  # noqa: E402
from learnlab.runtime import generator, keep_freed_memory  # noqa: E402
from learnlab.tasks.markov import sample_icl_markov, sample_transitions, stationary_distribution  # noqa: E402
from learnlab.train.optim import make_flat_optimizer, make_optimizer  # noqa: E402

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
        self.optimizer = make_optimizer(groups, cfg.train) if official else make_flat_optimizer(groups, cfg.train)
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
