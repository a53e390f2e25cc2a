"""Auto-regressive next-token predictors are universal learners (with a chain of thought).

Paper: Malach, "Auto-Regressive Next-Token Predictors are Universal Learners", ICML 2024
(arXiv 2309.06979); official code ``LinearLM``. A linear next-token predictor (token
embedding -> one causal linear map over the whole context -> output embedding, no
nonlinearity) cannot compute a parity in one token, but computes it, and multiplies
numbers, when trained on sequences that spell out a chain of thought (CoT). The length
of the chain trades against what each step must compute (length complexity).

Parts (``parts=...``):

- ``parity``: n-bit parity of a hidden half of the bits, 4,000 training sequences, the
  linear model without a CoT vs with the binary-count CoT (Section 4); accuracy of the
  final token after a greedy roll-out on fresh inputs.
- ``multiplication``: 2 x 2-digit products in the paper's CoT format (77 tokens) vs the
  answer alone, the same model family and budget; exact match of greedily decoded answers
  on held-out pairs (a fixed 75/25 split of all pairs), and the fraction of well-formed,
  self-consistent chains (Section 5).
- ``text``: the linear model as a language model on offline English (Python's
  ``pydoc_data`` topics, a synthetic story corpus with a known grammar), perplexity
  against unigram and add-k bigram baselines on the same split; samples at temperature
  0.5 and the fraction of sampled story sentences the grammar parses.
- ``length``: the shallow MLP variant on a parity of 8 of 16 bits with chains in which
  each step adds the parity of k more bits; accuracy vs chain length ceil(8 / k).

Presets
-------
``quick``  all four parts at CPU scale: ``learnlab run ar-learners --preset quick``
           (about 7 minutes on 2 cores: an estimate from its parts' timings).
``paper``  4 x 4-digit multiplication at the paper's scale (T = 307, d = 128, AdamW lr
           1e-3, wd 0.1, batch 2048; a GPU job) and n = 32 parity.
``smoke``  seconds; used by the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from learnlab.claims import Claim
from learnlab.config import Interval, param
from learnlab.models.linear_ar import LinearAR, LinearARConfig
from learnlab.runtime import generator, replica_seeds, seed_everything
from learnlab.tasks import multiplication as mult
from learnlab.tasks import text as textlib
from learnlab.tasks.parity_cot import chain_length, sample_parity_chain
from learnlab.train.data import SamplerStream
from learnlab.train.loop import Measure, fit
from learnlab.train.losses import token_loss_sum
from learnlab.train.optim import TrainConfig

if TYPE_CHECKING:
    from learnlab.runner import Run
    from learnlab.store import RunRecord

NAME = "ar-learners"
DESCRIPTION = "Malach 2023: linear next-token predictors learn parity and multiplication with a chain of thought"

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ParityPartConfig:
    n_bits: tuple[int, ...] = param((16, 32), Interval(2, 256), help="input lengths n (|A| = n / 2)")
    n_train: int = param(4000, Interval(1, None), help="fixed training sequences")
    n_test: int = param(2000, Interval(1, None), help="fresh inputs for the roll-out accuracy")
    d: int = param(32, Interval(1, None))
    train: TrainConfig = TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.0, batch_size=256, max_steps=600,
                                     eval_every=200, log_every=50)


@dataclass(frozen=True)
class MultiplicationPartConfig:
    digits: int = param(2, Interval(1, 6), help="p: p x p-digit products")
    activation: str = param("relu", help="relu: the shallow MLP variant (the official multiplication model, "
                                         "use_relu=true); none: the linear model")
    d: int = param(32, Interval(1, None))
    groups: int = param(7, Interval(1, None), help="row groups of the causal map (speed only)")
    n_test: int = param(1000, Interval(1, None), help="held-out pairs decoded greedily")
    train: TrainConfig = TrainConfig(optimizer="adamw", lr=3e-3, weight_decay=0.1, batch_size=256, max_steps=3000,
                                     eval_every=1000, log_every=50)


@dataclass(frozen=True)
class TextPartConfig:
    corpora: tuple[str, ...] = param(("stories", "pydoc"), help="stories (synthetic grammar), pydoc (Python's topics)")
    context: int = param(32, Interval(2, 512), help="T")
    d: int = param(64, Interval(1, None))
    vocab_size: int = param(2000, Interval(10, None), help="most frequent training words kept; the rest [UNK]")
    n_samples: int = param(200, Interval(1, None), help="sampled sentences scored by the grammar")
    groups: int = param(4, Interval(1, None), help="row groups of the causal map (speed only)")
    train: TrainConfig = TrainConfig(optimizer="adamw", lr=3e-3, weight_decay=0.1, batch_size=64, max_steps=1500,
                                     eval_every=500, log_every=50)


@dataclass(frozen=True)
class LengthPartConfig:
    n_bits: int = param(32, Interval(2, 256))
    subset_size: int = param(16, Interval(1, "n_bits"))
    chunk_sizes: tuple[int, ...] = param((1, 2, 4, 8, 16), Interval(1, None),
                                         help="k: bits each chain step adds; chain length ceil(|A| / k)")
    n_train: int = param(4000, Interval(1, None))
    n_test: int = param(2000, Interval(1, None))
    d: int = param(32, Interval(1, None))
    groups: int = param(4, Interval(1, None), help="row groups of the causal map (speed only)")
    train: TrainConfig = TrainConfig(optimizer="adamw", lr=3e-3, weight_decay=0.0, batch_size=256, max_steps=1000,
                                     eval_every=250, log_every=50)


@dataclass(frozen=True)
class ARLearnersConfig:
    seed: int = param(0, Interval(0, None))
    parts: tuple[str, ...] = param(("parity", "multiplication", "text", "length"))
    parity: ParityPartConfig = ParityPartConfig()
    multiplication: MultiplicationPartConfig = MultiplicationPartConfig()
    text: TextPartConfig = TextPartConfig()
    length: LengthPartConfig = LengthPartConfig()

    def check(self) -> str | None:
        unknown = set(self.parts) - {"parity", "multiplication", "text", "length"}
        if not self.parts or unknown:
            return "'parts' entries must be among parity, multiplication, text, length (at least one)"
        if self.multiplication.activation not in ("relu", "none"):
            return "'multiplication.activation' must be relu or none"
        if set(self.text.corpora) - {"stories", "pydoc"} or not self.text.corpora:
            return "'text.corpora' entries must be among stories, pydoc"
        return None


Config = ARLearnersConfig


def presets() -> dict[str, Config]:
    quick = Config()
    # 2 x 2 multiplication trained longer than quick's 3,000 steps (CPU, ~12 minutes).
    multiplication = replace(quick, parts=("multiplication",), multiplication=replace(
        quick.multiplication, train=replace(quick.multiplication.train, max_steps=10_000, eval_every=2000)))
    paper = replace(quick, parts=("parity", "multiplication"),
                    multiplication=replace(quick.multiplication, digits=4, d=128, groups=8, n_test=2000, train=replace(
                        quick.multiplication.train, batch_size=2048, max_steps=50_000, eval_every=5000)))
    smoke = Config(
        parity=ParityPartConfig(n_bits=(6,), n_train=256, n_test=128, d=8,
                                train=replace(quick.parity.train, max_steps=60, eval_every=30, batch_size=64)),
        multiplication=MultiplicationPartConfig(d=8, n_test=32, train=replace(
            quick.multiplication.train, max_steps=20, eval_every=20, batch_size=32)),
        text=TextPartConfig(corpora=("stories",), context=8, d=8, vocab_size=200, n_samples=10,
                            train=replace(quick.text.train, max_steps=20, eval_every=20)),
        length=LengthPartConfig(n_bits=6, subset_size=4, chunk_sizes=(2, 4), n_train=256, n_test=128, d=8,
                                train=replace(quick.length.train, max_steps=30, eval_every=30, batch_size=64)))
    return {"smoke": smoke, "quick": quick, "multiplication": multiplication, "paper": paper}


# ----------------------------------------------------------------------------- training


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
    if "parity" in cfg.parts:
        for n in cfg.parity.n_bits:
            for chain in ("none", "count"):
                _parity(n, max(1, n // 2), chain, None, "none", seeds["parity"] + n,
                        cfg.parity.n_train, cfg.parity.n_test, cfg.parity.d, cfg.parity.train,
                        run.scoped(f"parity_n{n}_{chain}"))
    if "multiplication" in cfg.parts:
        for cot in (True, False):
            _multiplication(cfg.multiplication, cot, seeds["multiplication"],
                            run.scoped("mult_cot" if cot else "mult_direct"))
    if "text" in cfg.parts:
        for corpus in cfg.text.corpora:
            _text(cfg.text, corpus, seeds["text"], run.scoped(f"text_{corpus}"))
    if "length" in cfg.parts:
        part = cfg.length
        for k in part.chunk_sizes:
            _parity(part.n_bits, part.subset_size, "chunks", k, "relu", seeds["length"], part.n_train,
                    part.n_test, part.d, part.train, run.scoped(f"length_k{k}"), groups=part.groups)


# ----------------------------------------------------------------------------- parts


def _parity(n: int, subset_size: int, chain: str, k: int | None, activation: str, seed: int,
            n_train: int, n_test: int, d: int, train_cfg: TrainConfig, run: Run, groups: int = 1) -> None:
    device = run.device
    task_seed, train_seed, test_seed, init_seed, data_seed = replica_seeds(seed, 5)
    subset = torch.randperm(n, generator=generator(task_seed, device), device=device)[:subset_size]
    sample = lambda count, s: sample_parity_chain(count, subset=subset, n_bits=n, chain=chain, k=k,  # noqa: E731
                                                  generator=generator(s, device))
    train_set, test_set = sample(n_train, train_seed), sample(n_test, test_seed)
    length = chain_length(chain, subset_size, k)
    seed_everything(init_seed)
    model = LinearAR(LinearARConfig(vocab_size=3, context=n + length, d=d, activation=activation,
                                    groups=min(groups, n + length))).to(device)

    def measure(model: LinearAR) -> dict[str, float]:
        rolled = model.generate(test_set[:, : n + 1], length)  # greedy, from x and "="
        final = (rolled[:, -1] == test_set[:, -1]).float().mean()
        logits, _ = model(test_set[:, :-1])
        per_token = (logits[:, n:].argmax(-1) == test_set[:, n + 1 :]).float().mean()
        return {"final_token_acc": final, "teacher_forced_acc": per_token}

    _train(model, _fixed_set_sampler(train_set, n + 1, train_cfg.batch_size), data_seed, train_cfg, run, measure)
    run.log(0, chain_tokens=float(length), subset_size=float(subset_size))


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
        return {"exact_match": checks["correct"].float().mean(), "well_formed": checks["well_formed"].float().mean(),
                "consistent": checks["consistent"].float().mean(), "answer_digit_acc": digits_right}

    _train(model, draw, data_seed, part.train, run, measure)
    run.log(0, effective_parameters=float(model.effective_parameters()), sequence_tokens=float(fmt.length))


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
        return {"val_perplexity": math.exp(sum(float(l) * s for l, s in zip(losses, sizes)) / sum(sizes))}

    _train(model, draw, data_seed, part.train, run, measure)
    run.log(0, unigram_perplexity=baselines["unigram"], bigram_perplexity=baselines["bigram"],
            bigram_add_k=baselines["add_k"])
    # Samples at temperature 0.5 from the start of validation windows.
    prompts = windows[: part.n_samples, : part.context // 4]
    sampled = model.generate(prompts, part.context - part.context // 4 + 1, temperature=0.5,
                             generator=generator(sample_seed, device))
    texts = [" ".join(vocab.decode(row.tolist())) for row in sampled]
    run.artifact("samples", texts[:20])
    if corpus == "stories":
        generated = [" ".join(vocab.decode(row[part.context // 4 :].tolist())) for row in sampled]
        parsed, total = textlib.grammar_parse_rate(generated)
        run.log(0, parse_rate=parsed / max(total, 1), sampled_sentences=float(total))


# ----------------------------------------------------------------------------- claims


def _last(record: RunRecord, name: str) -> float:
    series = record.series(name)
    return float(series.values[-1]) if len(series) else float("nan")


def claims(record: RunRecord) -> list[Claim]:
    cfg, out = record.config, []
    if "parity" in cfg["parts"]:
        for n in cfg["parity"]["n_bits"]:
            direct, chained = _last(record, f"parity_n{n}_none/final_token_acc"), _last(record, f"parity_n{n}_count/final_token_acc")
            floor = 0.98 if n <= 16 else 0.95
            out.append(Claim(
                f"parity-n{n}", f"A linear next-token predictor cannot output the parity of {n // 2} of {n} bits "
                "directly, but learns it with the binary-count chain of thought.",
                f"no CoT {direct:.3f}, CoT {chained:.3f} ({cfg['parity']['n_train']} training sequences)",
                f"no CoT in [0.45, 0.55]; CoT >= {floor}", 0.45 <= direct <= 0.55 and chained >= floor))
    if "multiplication" in cfg["parts"]:
        p = cfg["multiplication"]["digits"]
        cot, direct = _last(record, "mult_cot/exact_match"), _last(record, "mult_direct/exact_match")
        formed = _last(record, "mult_cot/well_formed")
        out.append(Claim(
            "multiplication-cot", f"With the chain of thought the linear model multiplies {p}x{p}-digit numbers it "
            "never saw; without it the same model family and budget does not; its chains are well formed.",
            f"held-out exact match: CoT {cot:.3f}, no CoT {direct:.3f}; well-formed chains {formed:.3f}, "
            f"self-consistent {_last(record, 'mult_cot/consistent'):.3f}",
            "CoT >= 0.90, no CoT <= 0.50, well formed >= 0.95 (first estimates)",
            cot >= 0.90 and direct <= 0.50 and formed >= 0.95))
    if "text" in cfg["parts"]:
        for corpus in cfg["text"]["corpora"]:
            model = _last(record, f"text_{corpus}/val_perplexity")
            unigram, bigram = _last(record, f"text_{corpus}/unigram_perplexity"), _last(record, f"text_{corpus}/bigram_perplexity")
            out.append(Claim(
                f"text-{corpus}", "The linear model is a language model: validation perplexity well below the unigram "
                "baseline's and close to (or below) the add-k bigram's.",
                f"perplexity {model:.2f}; unigram {unigram:.2f}, bigram {bigram:.2f} (ratio {model / bigram:.2f})",
                "<= 0.5 x unigram and <= 1.1 x bigram (first estimates)", model <= 0.5 * unigram and model <= 1.1 * bigram))
        if "stories" in cfg["text"]["corpora"]:
            rate = _last(record, "text_stories/parse_rate")
            out.append(Claim(
                "text-grammar", "Sampled text follows the synthetic grammar (temperature 0.5).",
                f"{rate:.3f} of {_last(record, 'text_stories/sampled_sentences'):.0f} sampled sentences parse",
                ">= 0.80 (first estimate)", rate >= 0.80))
    if "length" in cfg["parts"]:
        part = cfg["length"]
        size = part["subset_size"]
        rows = [(k, -(-size // k), _last(record, f"length_k{k}/final_token_acc")) for k in sorted(part["chunk_sizes"])]
        short_steps = [acc for k, _, acc in rows if k <= 2]
        long_steps = [acc for k, _, acc in rows if k >= size]
        out.append(Claim(
            "length-complexity", "Length complexity: when each chain step may add the parity of only k more bits, a "
            "chain of ceil(|A| / k) tokens keeps accuracy high; shortening it to one token (k = |A|) collapses it.",
            "; ".join(f"k={k} ({steps} tokens): {acc:.3f}" for k, steps, acc in rows),
            "accuracy >= 0.95 for k <= 2 and <= 0.6 for k = |A|",
            bool(short_steps) and min(short_steps) >= 0.95 and bool(long_steps) and max(long_steps) <= 0.6))
    return out


# ----------------------------------------------------------------------------- figures


def figures(record: RunRecord) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cfg, out = record.config, {}
    if "parity" in cfg["parts"] or "length" in cfg["parts"]:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for n in cfg["parity"]["n_bits"] if "parity" in cfg["parts"] else ():
            points = [(_last(record, f"parity_n{n}_{c}/chain_tokens"), _last(record, f"parity_n{n}_{c}/final_token_acc"))
                      for c in ("none", "count")]
            ax.plot(*zip(*points), "o-", label=f"linear, n={n}: none vs binary count")
        if "length" in cfg["parts"]:
            points = sorted((_last(record, f"length_k{k}/chain_tokens"), _last(record, f"length_k{k}/final_token_acc"))
                            for k in cfg["length"]["chunk_sizes"])
            ax.plot(*zip(*points), "s--", label=f"MLP, n={cfg['length']['n_bits']}: chunks of k bits")
        ax.axhline(0.5, color="gray", lw=0.8)
        ax.set(xlabel="chain-of-thought tokens", ylabel="final-token accuracy (roll-out)", ylim=(0.4, 1.02),
               title="parity: accuracy vs chain length")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["parity_vs_chain_length"] = fig
    if "multiplication" in cfg["parts"]:
        fig, (ax_steps, ax_digits) = plt.subplots(1, 2, figsize=(10, 3.6))
        for scope, label in (("mult_cot", "CoT"), ("mult_direct", "no CoT")):
            series = record.series(f"{scope}/exact_match")
            ax_steps.plot(series.steps, series.values, "o-", label=label)
            digits = record.series(f"{scope}/answer_digit_acc")
            if len(digits):
                ax_digits.plot(range(digits.values.shape[1]), digits.values[-1], "o-", label=label)
        ax_steps.set(xlabel="step", ylabel="held-out exact match", title=f"{cfg['multiplication']['digits']}x"
                     f"{cfg['multiplication']['digits']} multiplication")
        ax_digits.set(xlabel="answer digit (most significant first)", ylabel="accuracy", ylim=(0, 1.02),
                      title="accuracy per answer digit")
        ax_steps.legend(fontsize=8)
        fig.tight_layout()
        out["multiplication"] = fig
    if "text" in cfg["parts"]:
        corpora = cfg["text"]["corpora"]
        fig, axes = plt.subplots(1, len(corpora), figsize=(5 * len(corpora), 3.6), squeeze=False)
        for ax, corpus in zip(axes[0], corpora):
            series = record.series(f"text_{corpus}/val_perplexity")
            ax.plot(series.steps, series.values, "o-", label="linear model")
            for baseline, style in (("unigram", ":"), ("bigram", "--")):
                ax.axhline(_last(record, f"text_{corpus}/{baseline}_perplexity"), ls=style, color="gray",
                           label=f"{baseline} baseline")
            ax.set(yscale="log", xlabel="step", ylabel="validation perplexity", title=corpus)
            ax.legend(fontsize=7)
        fig.tight_layout()
        out["perplexity"] = fig
        samples = _samples_table(record, corpora)
        if samples is not None:
            out["samples"] = samples
    return out


def _samples_table(record: RunRecord, corpora):
    """The first sampled texts (temperature 0.5) of each corpus, as a figure of text."""
    import json
    import textwrap

    import matplotlib.pyplot as plt

    artifacts = record.artifacts()
    lines = []
    for corpus in corpora:
        path = artifacts.get(f"text_{corpus}.samples")
        if path is None:
            continue
        lines.append(f"{corpus}:")
        for text in json.loads(path.read_text())[:4]:
            lines += ["  " + row for row in textwrap.wrap(text, 110)[:2]]
    if not lines:
        return None
    fig = plt.figure(figsize=(10, 0.22 * len(lines) + 0.4))
    fig.text(0.01, 0.98, "\n".join(lines), va="top", family="monospace", fontsize=7)
    return fig
