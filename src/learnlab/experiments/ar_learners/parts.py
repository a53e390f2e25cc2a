"""ar-learners ``run``: the parity, multiplication, text and length-complexity parts."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from learnlab.experiments.ar_learners import metrics as M
from learnlab.experiments.ar_learners.config import Config, MultiplicationPartConfig, TextPartConfig
from learnlab.grid import Cell, cell, cells, for_each_cell
from learnlab.models.linear_ar import LinearAR, LinearARConfig
from learnlab.runtime import generator, seed_everything
from learnlab.seeding import replica_seeds, stream
from learnlab.tasks import multiplication as mult
from learnlab.tasks import text as textlib
from learnlab.tasks.parity_cot import chain_length, sample_parity_chain
from learnlab.train.data import SamplerStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import token_loss_sum
from learnlab.train.optim import TrainConfig

if TYPE_CHECKING:
    from learnlab.runner import Run

__all__ = ["run"]

_lm_loss = token_loss_sum  # (summed token loss, scored tokens)


def _targets(sequences: torch.Tensor, first_scored: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of (N, L) sequences; only tokens at positions >= ``first_scored`` count."""
    inputs, targets = sequences[:, :-1], sequences[:, 1:].clone()
    targets[:, : first_scored - 1] = -100
    return inputs, targets


def _fixed_set_sampler(sequences: torch.Tensor, first_scored: int, batch_size: int):
    inputs, targets = _targets(sequences, first_scored)

    def draw(g: torch.Generator, n_batches: int):  # minibatches resampled from the fixed set
        index = torch.randint(0, len(sequences), (n_batches * batch_size,), generator=g, device=g.device)
        return (inputs[index].view(n_batches, batch_size, -1), targets[index].view(n_batches, batch_size, -1))
    return draw


def _train(model: LinearAR, sampler, seed: int, train_cfg: TrainConfig, run: Run, measure) -> None:
    batches = SamplerStream(sampler, seed, run.device)
    fit(model, batches, _lm_loss, train_cfg, run, evaluate=Measure(measure))


def run(cfg: Config, run: Run) -> None:
    seeds = dict(zip(("parity", "multiplication", "text", "length"), replica_seeds(cfg.seed, 4)))
    if "parity" in cfg.parts:  # each n with and without the counting chain
        parity = cfg.parity
        for_each_cell(run, cells(M.parity_scope, n=parity.n_bits, chain=("none", "count")), lambda c, r: _parity(
            c.n, max(1, c.n // 2), c.chain, None, "none", stream(seeds["parity"], f"n-bits-{c.n}"), parity.n_train,
            parity.n_test, parity.d, parity.train, r, groups=parity.groups))
    if "multiplication" in cfg.parts:
        for_each_cell(run, [cell(M.MULT_COT, cot=True), cell(M.MULT_DIRECT, cot=False)],
                      lambda c, r: _multiplication(cfg.multiplication, c.cot, seeds["multiplication"], r))
    if "text" in cfg.parts:
        def text(c: Cell, r: Run) -> None:
            part = cfg.text
            if part.corpus_steps:  # this corpus's own budget
                part = replace(part, train=replace(part.train, max_steps=part.corpus_steps[c.index]))
            _text(part, c.corpus, seeds["text"], r)
        for_each_cell(run, [cell(M.text_scope(corpus), corpus=corpus, index=i)
                            for i, corpus in enumerate(cfg.text.corpora)], text)
    if "length" in cfg.parts:
        part = cfg.length
        for_each_cell(run, cells(M.length_mlp_scope, k=part.chunk_sizes), lambda c, r: _parity(
            part.n_bits, part.subset_size, "chunks", c.k, "relu", seeds["length"], part.n_train, part.n_test, part.d,
            part.train, r, groups=part.groups))
        # The linear model: the binary-count chain (each token a linear threshold) cut to
        # its last L bits; below ceil(log2(|A| + 1)) tokens its first token is no longer one.
        for_each_cell(run, cells(M.length_linear_scope, tokens=part.linear_lengths), lambda c, r: _parity(
            part.n_bits, part.linear_subset_size, "count", None, "none", seeds["length"], part.n_train, part.n_test,
            part.d, part.train, r, groups=part.groups, keep_last=c.tokens))


# ----------------------------------------------------------------------------- parts


def _parity(n: int, subset_size: int, chain: str, k: int | None, activation: str, seed: int, n_train: int,
            n_test: int, d: int, train_cfg: TrainConfig, run: Run, groups: int = 1, keep_last: int | None = None) -> None:
    device = run.device
    task_seed, train_seed, test_seed, init_seed, data_seed = replica_seeds(seed, 5)
    subset = torch.randperm(n, generator=generator(task_seed, device), device=device)[:subset_size]
    full = chain_length(chain, subset_size, k)
    length = full if keep_last is None else min(keep_last, full)

    def sample(count: int, s: int) -> torch.Tensor:  # x, '=', then the chain's last ``length`` tokens
        sequences = sample_parity_chain(count, subset=subset, n_bits=n, chain=chain, k=k, generator=generator(s, device))
        return torch.cat([sequences[:, : n + 1], sequences[:, n + 1 + full - length :]], dim=1)

    train_set, test_set = sample(n_train, train_seed), sample(n_test, test_seed)
    seed_everything(init_seed)
    model = LinearAR(LinearARConfig(vocab_size=3, context=n + length, d=d, activation=activation,
                                    groups=min(groups, n + length))).to(device)

    def measure(model: LinearAR) -> dict[str, float]:
        rolled = model.generate(test_set[:, : n + 1], length)  # greedy, from x and "="
        final = (rolled[:, -1] == test_set[:, -1]).float().mean()
        logits, _ = model(test_set[:, :-1])
        per_token = (logits[:, n:].argmax(-1) == test_set[:, n + 1 :]).float().mean()
        return {M.FINAL_TOKEN_ACC: final, M.TEACHER_FORCED_ACC: per_token}

    _train(model, _fixed_set_sampler(train_set, n + 1, train_cfg.batch_size), data_seed, train_cfg, run, measure)
    run.log(0, **{M.CHAIN_TOKENS: float(length), M.SUBSET_SIZE: float(subset_size), M.TEST_EXAMPLES: float(n_test)})


def _multiplication(part: MultiplicationPartConfig, cot: bool, seed: int, run: Run) -> None:
    device, fmt = run.device, mult.multiplication_format(part.digits, cot)
    test_seed, init_seed, data_seed = replica_seeds(seed, 3)
    a_test, b_test = mult.sample_pairs(part.n_test, digits=part.digits, split="test",
                                       generator=generator(test_seed, device))
    test_set = mult.encode_products(a_test, b_test, fmt)
    seed_everything(init_seed)
    model = LinearAR(LinearARConfig(vocab_size=len(mult.VOCAB), context=fmt.length - 1, d=part.d,
                                    activation=part.activation, groups=min(part.groups, fmt.length - 1))).to(device)

    def draw(g: torch.Generator, n_batches: int):  # fresh training pairs every batch (the paper samples online)
        a, b = mult.sample_pairs(n_batches * part.train.batch_size, digits=part.digits, split="train", generator=g)
        inputs, targets = _targets(mult.encode_products(a, b, fmt), fmt.prompt_length)
        return inputs.view(n_batches, part.train.batch_size, -1), targets.view(n_batches, part.train.batch_size, -1)

    def measure(model: LinearAR) -> dict[str, float]:
        decoded = model.generate(test_set[:, : fmt.prompt_length], fmt.length - fmt.prompt_length)
        checks = mult.chain_checks(decoded, fmt)
        digits_right = (decoded[:, fmt.answer_slice] == test_set[:, fmt.answer_slice]).float().mean(dim=0)
        return {M.EXACT_MATCH: checks["correct"].float().mean(), M.WELL_FORMED: checks["well_formed"].float().mean(),
                M.CONSISTENT: checks["consistent"].float().mean(), M.ANSWER_DIGIT_ACC: digits_right}

    _train(model, draw, data_seed, part.train, run, measure)
    run.log(0, **{M.EFFECTIVE_PARAMETERS: float(model.effective_parameters()), M.SEQUENCE_TOKENS: float(fmt.length),
                  M.TEST_EXAMPLES: float(part.n_test)})


def _text(part: TextPartConfig, corpus: str, seed: int, run: Run) -> None:
    device = run.device
    split_seed, init_seed, data_seed, sample_seed = replica_seeds(seed, 4)
    documents = textlib.load_corpus(corpus, seed=split_seed)
    train_words, val_words = textlib.split_documents(documents, validation_fraction=0.1, seed=split_seed)
    vocab = textlib.WordVocabulary.fit(train_words, size=part.vocab_size)
    train_ids = torch.tensor(vocab.encode(train_words), device=device)
    val_ids = torch.tensor(vocab.encode(val_words), device=device)
    baselines = textlib.ngram_perplexities(vocab.encode(train_words), vocab.encode(val_words), len(vocab))
    seed_everything(init_seed)
    model = LinearAR(LinearARConfig(vocab_size=len(vocab), context=part.context, d=part.d,
                                    groups=min(part.groups, part.context))).to(device)
    windows = val_ids.unfold(0, part.context + 1, part.context)  # non-overlapping validation windows
    # A window's first token has no context; score tokens 1.. of each window, as the baselines do.

    def draw(g: torch.Generator, n_batches: int):  # random windows of the training stream
        count = n_batches * part.train.batch_size
        starts = torch.randint(0, len(train_ids) - part.context - 1, (count,), generator=g, device=g.device)
        chunk = train_ids[starts[:, None] + torch.arange(part.context + 1, device=g.device)]
        return (chunk[:, :-1].view(n_batches, part.train.batch_size, -1),
                chunk[:, 1:].view(n_batches, part.train.batch_size, -1))

    def measure(model: LinearAR) -> dict[str, float]:
        losses = [model(w[:, :-1], w[:, 1:])[1] for w in windows.split(256)]
        sizes = [len(w) for w in windows.split(256)]
        return {M.VAL_PERPLEXITY: math.exp(sum(float(l) * s for l, s in zip(losses, sizes)) / sum(sizes))}

    _train(model, draw, data_seed, part.train, run, measure)
    with torch.no_grad():  # the final model's loss on 20 chunks of the validation windows: units for an interval
        chunks = [model(w[:, :-1], w[:, 1:])[1] for w in windows.chunk(min(20, len(windows)))]
    # The bigram on the same tokens (window i scores validation tokens i*context+1 .. (i+1)*context),
    # so that chunks pair: pydoc's topics differ in perplexity far more than the two models do.
    bigram = torch.from_numpy(textlib.bigram_token_nll(vocab.encode(train_words), vocab.encode(val_words), len(vocab),
                                                       baselines["add_k"]))[:len(windows) * part.context]
    bigram_chunks = [c.mean() for c in bigram.view(len(windows), part.context).chunk(min(20, len(windows)))]
    run.log(part.train.max_steps, **{M.VAL_CHUNK_NLL: torch.stack(chunks),
                                     M.VAL_CHUNK_BIGRAM_NLL: torch.stack(bigram_chunks).float()})
    run.log(0, **{M.UNIGRAM_PERPLEXITY: baselines["unigram"], M.BIGRAM_PERPLEXITY: baselines["bigram"],
                  M.BIGRAM_ADD_K: baselines["add_k"]})
    # Samples at temperature 0.5 from the start of validation windows.
    prompts = windows[: part.n_samples, : part.context // 4]
    sampled = model.generate(prompts, part.context - part.context // 4 + 1, temperature=0.5,
                             generator=generator(sample_seed, device))
    texts = [" ".join(vocab.decode(row.tolist())) for row in sampled]
    run.artifact(M.SAMPLES, texts[:20])
    if corpus == "stories":
        generated = [" ".join(vocab.decode(row[part.context // 4 :].tolist())) for row in sampled]
        parsed, total = textlib.grammar_parse_rate(generated)
        run.log(0, **{M.PARSE_RATE: parsed / max(total, 1), M.SAMPLED_SENTENCES: float(total)})
