"""The registered experiments: module, paper and presets, without importing any of them.

A leaf module (no imports), so ``learnlab list``, ``learnlab --help`` and the report know
the experiments at once; an experiment module is imported only when it runs.
``tests/test_registry.py`` checks every entry against its module.
"""

from typing import NamedTuple

__all__ = ["EXPERIMENT_MODULES", "EXPERIMENTS", "ExperimentEntry", "REGISTRY"]


class ExperimentEntry(NamedTuple):
    module: str
    paper: str  # authors, year, arXiv id
    description: str  # the module's DESCRIPTION
    presets: tuple[str, ...]  # the module's presets(), in order


REGISTRY = {
    "hidden-progress": ExperimentEntry(
        "learnlab.experiments.hidden_progress", "Barak et al. 2022, arXiv 2207.08799",
        "Barak et al. 2022: SGD on online sparse parity, abrupt t_c and hidden progress in the weights",
        ("smoke", "quick", "paper", "scaling", "learners", "scaling_all", "luck")),
    "icl-markov": ExperimentEntry(
        "learnlab.experiments.icl_markov", "Edelman et al. 2024, arXiv 2402.11004",
        "Edelman et al. 2024: transformers learn in-context Markov chains via unigram then bigram (induction head)",
        ("smoke", "quick", "seeds10", "paper", "priors", "trigram")),
    "pareto-frontiers": ExperimentEntry(
        "learnlab.experiments.pareto_frontiers", "Edelman et al. 2023, arXiv 2309.03800",
        "Edelman et al. 2023: offline sparse parity success vs width x samples, sparse init, tabular vs forests",
        ("smoke", "quick", "frontier", "tabular", "paper")),
    "ar-learners": ExperimentEntry(
        "learnlab.experiments.ar_learners", "Malach 2023, arXiv 2309.06979",
        "Malach 2023: linear next-token predictors learn parity and multiplication with a chain of thought",
        ("smoke", "quick", "full", "multiplication", "paper")),
    "sampler-distillation": ExperimentEntry(
        "learnlab.experiments.sampler_distillation", "Kaplun et al. 2022, arXiv 2203.14649",
        "Kaplun et al. 2022: interpolating teachers are samplers; distilled students approach Bayes",
        ("smoke", "quick", "paper")),
    "sq-vs-pac": ExperimentEntry(
        "learnlab.experiments.sq_vs_pac", "Abbe et al. 2021, arXiv 2108.04190",
        "Abbe et al. 2021: bounded-precision SGD is SQ when b rho^2 >> 1 and PAC when b rho << 1",
        ("smoke", "quick", "paper")),
    "gd-vs-ntk": ExperimentEntry(
        "learnlab.experiments.gd_vs_ntk", "Malach et al. 2021, arXiv 2103.01210",
        "Malach et al. 2021: trained networks vs their tangent kernels on sparse parities",
        ("smoke", "quick", "scaling", "paper")),
    "corgi2": ExperimentEntry(
        "learnlab.experiments.corgi2", "Livne et al. 2023, arXiv 2309.01640",
        "Livne et al.: Corgi^2 = offline block shuffle + CorgiPile, near-i.i.d. batches at block I/O cost",
        ("smoke", "quick", "small-blocks", "paper")),
    "subtuning": ExperimentEntry(
        "learnlab.experiments.subtuning", "Kaplun et al. 2023, arXiv 2302.06354",
        "Kaplun et al. 2023: SubTuning -- finetuning profiles, greedy block selection, shared multi-task trunks",
        ("smoke", "quick", "cpu", "minilm", "paper")),
    "copying": ExperimentEntry(
        "learnlab.experiments.copying", "Jelassi et al. 2024, arXiv 2402.01032",
        "Jelassi et al. 2024: transformers copy and look up strings that state-space models cannot",
        ("smoke", "quick", "cpu", "paper")),
}
EXPERIMENT_MODULES = {name: entry.module for name, entry in REGISTRY.items()}
EXPERIMENTS = tuple(REGISTRY)
