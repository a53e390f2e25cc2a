"""The copying experiment's parts: packed training rows, the shared training call, E1-E5."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from learnlab.experiments.copying import schema as M
from learnlab.experiments.copying.config import TRANSFORMERS, Config
from learnlab.experiments.copying.evidence import COPIES
from learnlab.grid import Cell, cells, for_each_cell
from learnlab.models.copy_transformer import CopyTransformer
from learnlab.models.lstm import LSTMModel
from learnlab.models.mamba import Mamba
from learnlab.runtime import generator, one_cpu_thread, seed_everything
from learnlab.seeding import replica_seeds, stream, streams
from learnlab.tasks import copying as tasks
from learnlab.train.data import SamplerStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import token_loss_sum
from learnlab.train.optim import TrainConfig, make_flat_optimizer

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["run", "build_model", "packed_sampler", "CountingStream", "evaluate_examples"]


# ----------------------------------------------------------------------------- models and data


def build_model(name: str, cfg: Config) -> torch.nn.Module:
    if name in TRANSFORMERS:
        return CopyTransformer(replace(cfg.transformer, pos=name))
    if name == "mamba":
        return Mamba(cfg.mamba)
    return LSTMModel(cfg.lstm)


def _next_token_targets(tokens: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """Targets for position t: token t + 1 where it is answer, else -100 (ignored)."""
    following = torch.roll(tokens, -1, dims=1)
    targets = torch.where(answer, following, torch.full_like(tokens, -100))
    targets[:, -1] = -100
    return targets


_lm_loss = token_loss_sum  # (summed token loss, scored tokens)


def packed_sampler(sample_examples, min_tokens: int, context_len: int, batch_size: int, vocab: tasks.Vocab):
    """``draw(g, n_batches)``: (inputs, targets) of shape (n_batches, B, context_len); each row
    packs fresh examples from ``sample_examples(count, g)`` (``tasks.pack_rows``), enough of
    them drawn that even the shortest (``min_tokens``) fill the row."""
    per_row = -(-context_len // min_tokens) + 1

    def draw(g: torch.Generator, n_batches: int):
        rows = n_batches * batch_size
        tokens, answer = sample_examples(rows * per_row, g)
        tokens, answer = tasks.pack_rows(tokens.view(rows, per_row, -1), answer.view(rows, per_row, -1),
                                         context_len, vocab)
        return (tokens.view(n_batches, batch_size, context_len),
                _next_token_targets(tokens, answer).view(n_batches, batch_size, context_len))
    return draw


class CountingStream:
    """Wraps a batch stream and counts the complete training examples it has served (targets
    equal to EOS); the count is part of its state, so a resumed run counts on exactly. The
    count stays on the batches' device until read (no synchronisation every step)."""

    def __init__(self, inner: SamplerStream, eos: int):
        self.inner, self.eos, self._count = inner, eos, 0

    @property
    def examples(self) -> int:
        return int(self._count)

    def next_batch(self):
        inputs, targets = self.inner.next_batch()
        self._count = self._count + (targets == self.eos).sum()
        return inputs, targets

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "examples": self.examples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self._count = state["examples"]


@torch.no_grad()
def evaluate_examples(model: torch.nn.Module, tokens: torch.Tensor, answer: torch.Tensor,
                      batch_size: int) -> dict[str, float]:
    """String and character accuracy (teacher-forced argmax over the answer): means over all
    examples and the standard error over evaluation batches."""
    was_training = model.training
    model.eval()
    strings, chars, batch_means = [], [], []
    for start in range(0, len(tokens), batch_size):
        logits, _ = model(tokens[start:start + batch_size])
        string, char = tasks.answer_accuracy(logits, tokens[start:start + batch_size], answer[start:start + batch_size])
        strings.append(string)
        chars.append(char)
        batch_means.append(float(string.mean()))
    model.train(was_training)
    se = float(np.std(batch_means, ddof=1) / math.sqrt(len(batch_means))) if len(batch_means) > 1 else float("nan")
    return {"acc": float(torch.cat(strings).mean()), "acc_se": se, "char_acc": float(torch.cat(chars).mean())}


def _copy_examples(vocab: tasks.Vocab, min_len: int, max_len: int):
    return lambda count, g: tasks.sample_copy(count, min_len=min_len, max_len=max_len, vocab=vocab, generator=g)


def _lookup_examples(cfg: Config, vocab: tasks.Vocab, key: str, min_len: int, max_len: int):
    part = cfg.lookup
    return lambda count, g: tasks.sample_lookup(count, min_len=min_len, max_len=max_len, n_gram=part.n_gram,
                                                answer_len=part.answer_len, key=key, vocab=vocab, generator=g)


def _train(model: torch.nn.Module, examples, min_tokens: int, context_len: int, eval_set, cfg: Config,
           train_cfg: TrainConfig, data_seed: int, run: Run, *, until_copies: bool = False,
           stop_at: int | None = None) -> int:
    """Train on packed rows of ``examples``; every evaluation logs accuracy on ``eval_set`` and
    the training examples seen so far. ``until_copies``: end at the first evaluation where the
    accuracy reaches ``COPIES``; ``stop_at``: end at the first evaluation at or after that step
    (the schedule is the full budget's either way). Returns the last step."""
    vocab = tasks.Vocab(cfg.n_letters)
    sampler = packed_sampler(examples, min_tokens, context_len, train_cfg.batch_size, vocab)
    stream = CountingStream(SamplerStream(sampler, data_seed, run.device), vocab.eos)

    def measure(model: torch.nn.Module) -> dict[str, float]:
        return {**evaluate_examples(model, *eval_set, cfg.eval_batch_size), M.EXAMPLES: float(stream.examples)}

    evaluator = Measure(measure, until=(M.ACC, COPIES) if until_copies else None, until_step=stop_at)
    # FlatAdamW: torch.optim.AdamW's numbers in a dozen ops a step (every parameter of these models trains)
    return fit(model, stream, _lm_loss, train_cfg, run, evaluate=evaluator,
               optimizer=make_flat_optimizer(model.parameters(), train_cfg))


def _eval_copies(cfg: Config, length: int, seed: int, device, *, split: str = "validation"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Strings of ``length`` letters: the ``validation`` set the training curve is measured (and
    ``stop_at_copy`` decided) on, or an independent ``test`` set that the claims read."""
    n = cfg.eval_batches * cfg.eval_batch_size
    name = f"length-{length}" if split == "validation" else f"test-length-{length}"
    return tasks.sample_copy(n, min_len=length, max_len=length, vocab=tasks.Vocab(cfg.n_letters),
                             generator=generator(stream(seed, name), device))


# ----------------------------------------------------------------------------- parts


def run(cfg: Config, run: Run) -> None:
    with one_cpu_thread(run.device):  # ~0.1M-parameter models: a second thread only spins
        _run_parts(cfg, run)


def _run_parts(cfg: Config, run: Run) -> None:
    seeds = replica_seeds(cfg.seed, cfg.n_seeds)
    if "ngram" in cfg.parts:
        _ngram_bounds(cfg, cfg.seed, run.scoped(M.HANDBUILT))
    if "copy" in cfg.parts:
        # stop_at_copy: the lead transformer of each seed trains until it copies, and the other
        # models of that seed stop at the same step (every model is seeded alike).
        lead = next((m for m in cfg.models if m in TRANSFORMERS), None) if cfg.stop_at_copy else None

        def copy(c: Cell, r: Run, stop_at: int | None = None) -> int:
            return _copy(cfg, c.model, seeds[c.index], r, run.scoped(M.length(c.model, c.index)),
                         run.scoped(M.duplicate(c.model, c.index)) if "ngram" in cfg.parts else None,
                         until_copies=c.model == lead, stop_at=stop_at)

        stops = [None] * len(seeds)
        if lead is not None:
            lasts = for_each_cell(run, cells(_train_scope, index=range(len(seeds)), model=(lead,)), copy)
            stops = [last if last < cfg.train.max_steps else None for last in lasts]
        for_each_cell(run, cells(_train_scope, index=range(len(seeds)), model=[m for m in cfg.models if m != lead]),
                      lambda c, r: copy(c, r, stops[c.index]))
    if "lookup" in cfg.parts:
        for_each_cell(run, cells(lambda index, model, key: M.lookup(key, model, index), index=range(len(seeds)),
                                 model=cfg.lookup.models, key=cfg.lookup.keys),
                      lambda c, r: _lookup(cfg, c.model, c.key, seeds[c.index], r,
                                           run.scoped(M.lookup_length(c.key, c.model, c.index))))
    if "mamba_short" in cfg.parts:
        _mamba_short(cfg, seeds[0], run.scoped(M.MAMBA_SHORT))
    if "pretrained" in cfg.parts:
        _pretrained(cfg, cfg.seed, run.scoped(M.PRETRAINED))


def _train_scope(index: int, model: str) -> str:
    return M.train(model, index)


def _copy(cfg: Config, name: str, seed: int, run: Run, length_run: Run, dup_run: Run | None, *,
          until_copies: bool = False, stop_at: int | None = None) -> int:
    """E1 (trained with a curve at max_len), E2 (every evaluation length), E3 (duplicated n-grams).
    Returns the last training step (``_train``'s ``until_copies`` and ``stop_at``)."""
    device, vocab = run.device, tasks.Vocab(cfg.n_letters)
    init_seed, data_seed, eval_seed = streams(seed, "copy-init", "copy-data", "copy-eval")
    seed_everything(init_seed)
    model = build_model(name, cfg).to(device)
    train_cfg = replace(cfg.train, max_steps=cfg.mamba_steps) if name == "mamba" else cfg.train
    last = _train(model, _copy_examples(vocab, cfg.min_len, cfg.max_len), 2 * cfg.min_len + 3, cfg.context_len,
                  _eval_copies(cfg, cfg.max_len, eval_seed, device), cfg, train_cfg, data_seed, run,
                  until_copies=until_copies, stop_at=stop_at)
    length_run.clear_metrics()
    length_run.log(0, **{M.PARAMETERS: float(sum(p.numel() for p in model.parameters()))})
    for length in cfg.eval_lengths:
        length_run.log(length, **evaluate_examples(model, *_eval_copies(cfg, length, eval_seed, device, split="test"),
                                                   cfg.eval_batch_size))
    if dup_run is not None:
        dup_run.clear_metrics()
        n = cfg.eval_batches * cfg.eval_batch_size
        for n_gram in cfg.ngram.n_grams:
            g = generator(stream(eval_seed, f"duplicate-{n_gram}"), device)
            examples = tasks.sample_duplicate_ngram(n, length=cfg.max_len, n_gram=n_gram, vocab=vocab, generator=g)
            dup_run.log(n_gram, **evaluate_examples(model, *examples, cfg.eval_batch_size))
    return last


def _lookup(cfg: Config, name: str, key: str, seed: int, run: Run, length_run: Run) -> None:
    device, vocab, part = run.device, tasks.Vocab(cfg.n_letters), cfg.lookup
    init_seed, data_seed, eval_seed = streams(seed, "lookup-init", "lookup-data", "lookup-eval")
    seed_everything(init_seed)
    model = build_model(name, cfg).to(device)
    steps = min(part.max_steps, cfg.mamba_steps) if name == "mamba" else part.max_steps
    n = cfg.eval_batches * cfg.eval_batch_size

    def eval_set(length: int):
        g = generator(stream(eval_seed, f"length-{length}"), device)
        return _lookup_examples(cfg, vocab, key, length, length)(n, g)

    shortest = part.n_gram + part.min_len + (5 if key == "prefix" else 4)  # answers have >= 1 letter
    _train(model, _lookup_examples(cfg, vocab, key, part.min_len, part.max_len), shortest, part.context_len,
           eval_set(part.max_len), cfg, replace(cfg.train, max_steps=steps), data_seed, run)
    length_run.clear_metrics()
    for length in part.eval_lengths:
        length_run.log(length, **evaluate_examples(model, *eval_set(length), cfg.eval_batch_size))


def _mamba_short(cfg: Config, seed: int, run: Run) -> None:
    """Mamba on shorter strings with a larger budget: the model can learn to copy."""
    device, vocab, part = run.device, tasks.Vocab(cfg.n_letters), cfg.mamba_short
    init_seed, data_seed, eval_seed = streams(seed, "mamba-short-init", "mamba-short-data", "mamba-short-eval")
    seed_everything(init_seed)
    model = build_model("mamba", cfg).to(device)
    _train(model, _copy_examples(vocab, part.min_len, part.max_len), 2 * part.min_len + 3, part.context_len,
           _eval_copies(cfg, part.max_len, eval_seed, device), cfg, replace(cfg.train, max_steps=part.max_steps),
           data_seed, run)


def _ngram_bounds(cfg: Config, seed: int, run: Run) -> None:
    """The hand-built copier and the n-gram repeat probability (Monte Carlo) vs the bound."""
    part, vocab = cfg.ngram, tasks.Vocab(cfg.n_letters)
    run.clear_metrics()
    for n_gram in part.copier_n_grams:
        g = generator(stream(seed, f"ngram-copier-{n_gram}"), run.device)
        probability = tasks.ngram_repeat_probability(part.copier_length, cfg.n_letters, n_gram,
                                                     samples=part.samples, generator=g)
        tokens, answer = tasks.sample_copy(part.copier_samples, min_len=part.copier_length,
                                           max_len=part.copier_length, vocab=vocab, generator=g)
        copied = tasks.ngram_copier(tokens, n_gram, vocab)
        letters = tokens[:, 1:1 + part.copier_length]
        exact = (copied == letters).all(1)
        no_repeat = ~tasks.has_repeated_ngram(letters, n_gram, vocab)
        run.log(n_gram, **{
            M.REPEAT_PROBABILITY: probability,
            M.REPEAT_BOUND: tasks.ngram_repeat_bound(part.copier_length, cfg.n_letters, n_gram),
            M.COPIER_ACC: float(exact.float().mean()),
            M.COPIER_ACC_CLEAN: float(exact[no_repeat].float().mean()) if no_repeat.any() else float("nan"),
            M.STRINGS_WITH_REPEATS: float((~no_repeat).float().mean())})
    # Theorem 2.7 for the recurrent models as configured: the state in bits (fp32), and the
    # shortest length at which a state that size must err on more than half of all strings.
    mamba, lstm = cfg.mamba, cfg.lstm
    inner = mamba.expand * mamba.d_model
    floats = {"mamba": mamba.n_layer * inner * (mamba.d_state + mamba.d_conv - 1),  # SSM state + conv window
              "lstm": 2 * lstm.n_layer * lstm.hidden}  # h and c
    for name, count in floats.items():
        bits = tasks.state_bits(count)
        forced = math.ceil((bits + 1) / math.log2(cfg.n_letters))  # 2^bits / D^L <= 1/2
        run.log(0, **{M.state_bits(name): float(bits), M.bound_length(name): float(forced)})


def _pretrained(cfg: Config, seed: int, run: Run) -> None:
    part = cfg.pretrained
    run.clear_metrics()
    if part.model_path is None:
        run.artifact("skipped.txt", "no pretrained model given: learnlab run copying --model PATH "
                                    "(a local Hugging Face causal LM, e.g. Pythia or Mamba)")
        return
    from learnlab.probes.lm_harness import exact_match, greedy_answers, load_causal_lm, prefix_match
    from learnlab.tasks.phonebook import phonebook_prompts, text_copy_prompts

    model, tokenizer = load_causal_lm(part.model_path, run.device)
    for size in part.book_sizes:
        prompts, answers = phonebook_prompts(size, part.queries, seed=stream(seed, f"phonebook-{size}"))
        generated = greedy_answers(model, tokenizer, prompts, max_new_tokens=16, batch_size=part.batch_size)
        run.log(size, **{M.PHONEBOOK_ACC: float(exact_match(generated, answers).mean())})
    for words in part.text_lengths:
        for shuffle in (False, True):
            prompts, answers = text_copy_prompts(words, part.queries, shuffle=shuffle,
                                                 seed=stream(seed, f"text-copy-{words}"))
            budget = max(len(tokenizer(a)["input_ids"]) for a in answers) + 2
            generated = greedy_answers(model, tokenizer, prompts, max_new_tokens=budget, batch_size=part.batch_size)
            exact, fraction = prefix_match(generated, answers)
            tag = "shuffled" if shuffle else "natural"
            run.log(words, **{M.text(tag, "acc"): float(exact.mean()),
                              M.text(tag, "prefix"): float(fraction.mean())})
