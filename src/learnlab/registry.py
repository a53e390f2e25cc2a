"""The names of the registered experiments, in the order the report and ``list`` show them.

A leaf module (no imports): ``learnlab.experiments`` maps each name to its module, and
the report orders a store's runs by it without importing any experiment.
"""

__all__ = ["EXPERIMENT_MODULES", "EXPERIMENTS"]

EXPERIMENT_MODULES = {
    "hidden-progress": "learnlab.experiments.hidden_progress",
    "icl-markov": "learnlab.experiments.icl_markov",
    "pareto-frontiers": "learnlab.experiments.pareto_frontiers",
    "ar-learners": "learnlab.experiments.ar_learners",
    "sampler-distillation": "learnlab.experiments.sampler_distillation",
    "sq-vs-pac": "learnlab.experiments.sq_vs_pac",
    "gd-vs-ntk": "learnlab.experiments.gd_vs_ntk",
    "corgi2": "learnlab.experiments.corgi2",
    "subtuning": "learnlab.experiments.subtuning",
    "copying": "learnlab.experiments.copying",
}
EXPERIMENTS = tuple(EXPERIMENT_MODULES)
