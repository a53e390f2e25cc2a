"""icl-markov configuration and presets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from learnlab.config import Interval, param
from learnlab.experiments.icl_markov.metrics import CONTROLS
from learnlab.models.icl_transformer import ICLTransformerConfig
from learnlab.models.minimal_induction import MinimalInductionConfig
from learnlab.train.optim import TrainConfig


@dataclass(frozen=True)
class MarkovTaskConfig:
    k: int = param(2, Interval(2, 64), help="states (tokens)")
    n: int = param(2, Interval(2, 4), help="n-gram order: 2 = Markov chain, 3 = trigram")
    alpha: float = param(1.0, Interval(0.0, None, closed="neither"), help="Dirichlet concentration")
    length: int = param(100, Interval(2, 4096), help="tokens the model sees (length + 1 are generated)")
    prior: Literal["dirichlet", "doubly_stochastic", "unigram"] = param("dirichlet")
    unigram_fraction: float = param(0.0, Interval(0.0, 1.0), help="share of unigram chains in the mixture")


@dataclass(frozen=True)
class EvalConfig:
    n_test: int = param(2000, Interval(1, None), help="fixed test sequences (last-position metrics)")
    n_test_all_positions: int = param(500, Interval(1, None), help="test sequences for the all-position KL")
    all_positions_every: int = param(50, Interval(1, None), help="steps between all-position evaluations")


@dataclass(frozen=True)
class ICLMarkovConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(1, Interval(1, 256), help="seeds trained together as one stacked model")
    model: Literal["transformer", "minimal"] = param("transformer")
    task: MarkovTaskConfig = MarkovTaskConfig()
    transformer: ICLTransformerConfig = ICLTransformerConfig()
    minimal: MinimalInductionConfig = MinimalInductionConfig()
    # lr 5e-4 as the official code (the paper's text says 3e-5); evaluation every 10 steps:
    # 201 checkpoints over 2,000 steps, as the paper
    train: TrainConfig = TrainConfig(optimizer="adamw", lr=5e-4, beta1=0.9, beta2=0.95, weight_decay=0.1,
                                     batch_size=64, max_steps=2000, log_every=10, eval_every=10)
    eval: EvalConfig = EvalConfig()
    controls: tuple[str, ...] = param((), help="also train: one_layer, minimal, doubly_stochastic, unigram_mix")
    control_seeds: int = param(2, Interval(1, 256))
    minimal_seeds: int | None = param(None, Interval(1, 256), help="seeds of the minimal model; None: control_seeds")
    control_max_steps: int | None = param(None, Interval(1, None), help="None: as many steps as the main model")

    def check(self) -> str | None:
        unknown = set(self.controls) - set(CONTROLS)
        if unknown:
            return f"'controls' entries must be among {', '.join(CONTROLS)}; got {sorted(unknown)[0]!r}"
        if self.transformer.max_len < self.task.length:
            return f"transformer.max_len={self.transformer.max_len} is shorter than task.length={self.task.length}"
        if self.task.prior == "doubly_stochastic" and self.task.n != 2:
            return "the doubly stochastic prior is defined for n = 2 only"
        return None


Config = ICLMarkovConfig


def control_config(cfg: ICLMarkovConfig, control: str) -> ICLMarkovConfig:
    """Each control is the main config with a few changes, trained after it in the same run."""
    seeds = (cfg.minimal_seeds or cfg.control_seeds) if control == "minimal" else cfg.control_seeds
    base = replace(cfg, n_seeds=seeds, controls=(), control_max_steps=None, minimal_seeds=None,
                   train=replace(cfg.train, max_steps=cfg.control_max_steps or cfg.train.max_steps))
    if control == "one_layer":
        return replace(base, transformer=replace(cfg.transformer, n_layers=1, heads=cfg.transformer.heads[:1]))
    if control == "minimal":
        return replace(base, model="minimal")
    if control == "doubly_stochastic":
        return replace(base, task=replace(cfg.task, prior="doubly_stochastic"))
    return replace(base, task=replace(cfg.task, unigram_fraction=0.25))  # unigram_mix


def presets() -> dict[str, ICLMarkovConfig]:
    paper = ICLMarkovConfig()  # Figure 1, k = 2
    # Ten seeds stacked (a rate needs them) on the paper's task, model and batch, with the
    # paper's optimisation budget in lr x steps (2e-3 x 600 = 1.2 against 5e-4 x 2,000 = 1.0):
    # 10 x 2,000 paper steps cost ~370 CPU-s (``seeds10``), over the 3-minute budget.
    seeds10 = replace(paper, n_seeds=10, train=replace(paper.train, eval_every=25, log_every=25),
                      eval=replace(paper.eval, n_test=1000, all_positions_every=500),
                      controls=("one_layer", "minimal"), control_seeds=1, minimal_seeds=10, control_max_steps=1000)
    quick = replace(seeds10, train=replace(seeds10.train, lr=2e-3, max_steps=600, eval_every=10, log_every=10),
                    eval=replace(seeds10.eval, all_positions_every=300))
    priors = replace(paper, n_seeds=2, task=replace(paper.task, k=4),
                     train=replace(paper.train, max_steps=3000, eval_every=20),
                     eval=replace(paper.eval, all_positions_every=200),
                     controls=("doubly_stochastic", "unigram_mix"), control_seeds=2)
    trigram = replace(paper, n_seeds=2, task=replace(paper.task, k=3, n=3, length=200),
                      transformer=replace(paper.transformer, heads=(2, 1), d_model=32, max_len=200),
                      train=replace(paper.train, batch_size=128, lr=4e-3, max_steps=4000, eval_every=20),
                      eval=replace(paper.eval, all_positions_every=200))
    smoke = replace(paper, n_seeds=2, task=replace(paper.task, length=24), transformer=replace(paper.transformer,
                    max_len=24), minimal=replace(paper.minimal, max_len=24),
                    train=replace(paper.train, max_steps=60, lr=5e-3),
                    eval=EvalConfig(n_test=128, n_test_all_positions=32, all_positions_every=30),
                    controls=("one_layer", "minimal"), control_seeds=1)
    return {"smoke": smoke, "quick": quick, "seeds10": seeds10, "paper": paper, "priors": priors, "trigram": trigram}
