"""Metric names of the copying experiment: written by ``parts``, read by ``evidence``.

Scopes (``run.scoped(...)``) and, inside them, metric names:

- ``train(model, seed)``: the training curve: ``ACC`` (string accuracy at |x| = max_len,
  logged at each evaluation step), ``EXAMPLES`` (complete training examples seen so far)
- ``length(model, seed)``: ``ACC`` at step = the evaluation length; ``PARAMETERS`` at step 0
- ``duplicate(model, seed)``: ``ACC`` at step = n, strings of max_len letters with an n-gram repeated
- ``lookup(key, model, seed)`` and ``lookup_length(key, model, seed)``: as train / length
- ``MAMBA_SHORT``: Mamba's training curve on short strings
- ``HANDBUILT``: at step n: ``REPEAT_PROBABILITY``, ``REPEAT_BOUND``, ``COPIER_ACC``,
  ``COPIER_ACC_CLEAN`` (strings without a repeated n-gram); at step 0 the state of each
  recurrent model in bits and the length its GSSM bound forces errors from
- ``PRETRAINED``: ``PHONEBOOK_ACC`` at step = book size, ``text_{natural,shuffled}_{acc,prefix}``
  at step = words
"""

from learnlab.store import scoped_name

ACC = "acc"
EXAMPLES = "examples_seen"
PARAMETERS = "parameters"
HANDBUILT = "handbuilt"
MAMBA_SHORT = "mamba_short"
PRETRAINED = "pretrained"
REPEAT_PROBABILITY = "repeat_probability"
REPEAT_BOUND = "repeat_bound"
COPIER_ACC = "copier_acc"
COPIER_ACC_CLEAN = "copier_acc_without_repeats"
STRINGS_WITH_REPEATS = "strings_with_repeats"
PHONEBOOK_ACC = "phonebook_acc"


def train(model: str, seed: int) -> str:
    return f"{model}_s{seed}"


def length(model: str, seed: int) -> str:
    return f"{model}_s{seed}_length"


def duplicate(model: str, seed: int) -> str:
    return f"{model}_s{seed}_dup"


def lookup(key: str, model: str, seed: int) -> str:
    return f"lookup_{key}_{model}_s{seed}"


def lookup_length(key: str, model: str, seed: int) -> str:
    return f"lookup_{key}_{model}_s{seed}_length"


def state_bits(model: str) -> str:
    return f"{model}_state_bits"


def bound_length(model: str) -> str:
    return f"{model}_bound_length"


def text(tag: str, what: str) -> str:
    return f"text_{tag}_{what}"


def metric(scope: str, name: str = ACC) -> str:
    return scoped_name(scope, name)
