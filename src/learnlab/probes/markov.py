"""In-context n-gram strategies and the KL metrics of the ICL Markov-chain paper.

Edelman et al. (2024), Section 3: a model trained on in-context Markov chains passes
through the *uniform*, *unigram* and *bigram* strategies. Each strategy's exact
predictive distribution at every position is computed here, vectorised over the batch
and positions (cumulative counts, no loop over tokens).

Conventions: ``tokens`` is (B, T); a distribution "at position t" predicts token t+1
from tokens 0..t; every function returns (B, T, k).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from learnlab.tasks.markov import context_index

__all__ = ["ngram_strategy", "strategy_distributions", "kl_divergence", "count_only_floor"]


def ngram_strategy(tokens: torch.Tensor, *, k: int, order: int, alpha: float = 1.0) -> torch.Tensor:
    """The in-context m-gram estimator with a Dirichlet(alpha) prior (posterior mean).

    ``order`` 0: uniform 1/k. ``order`` 1: unigram (counts of x_0..x_t + alpha) / (t + 1 + k alpha),
    counting the current token. ``order`` m >= 2: over transitions seen so far from the
    current context c (the last m-1 tokens), (n_{c,i} + alpha) / (n_c + k alpha); uniform
    where no full context exists yet.
    """
    batch, length = tokens.shape
    if order == 0:
        return torch.full((batch, length, k), 1.0 / k, device=tokens.device)
    if order == 1:
        counts = F.one_hot(tokens, k).float().cumsum(dim=1)  # (B, T, k)
        return (counts + alpha) / (counts.sum(dim=-1, keepdim=True) + k * alpha)
    context = context_index(tokens, k, order)  # (B, T), -1 before the first full context
    # A transition is (context at j, token j+1); it is known at positions t >= j+1.
    pair = torch.full_like(tokens, -1)
    pair[:, 1:] = torch.where(context[:, :-1] >= 0, context[:, :-1] * k + tokens[:, 1:], -1)
    counts = F.one_hot(pair.clamp_min(0), k**order).float()  # (B, T, k^m)
    counts = (counts * (pair >= 0)[:, :, None]).cumsum(dim=1).view(batch, length, k ** (order - 1), k)
    rows = counts.gather(2, context.clamp_min(0)[:, :, None, None].expand(-1, -1, 1, k)).squeeze(2)  # (B, T, k)
    estimate = (rows + alpha) / (rows.sum(dim=-1, keepdim=True) + k * alpha)
    return torch.where(context[:, :, None] < 0, torch.full_like(estimate, 1.0 / k), estimate)


def strategy_distributions(tokens: torch.Tensor, *, k: int, max_order: int = 2, alpha: float = 1.0) -> dict[str, torch.Tensor]:
    """``{'uniform': ..., 'unigram': ..., 'bigram': ..., 'trigram': ...}`` up to ``max_order``."""
    names = {0: "uniform", 1: "unigram", 2: "bigram", 3: "trigram"}
    return {names.get(m, f"{m}-gram"): ngram_strategy(tokens, k=k, order=m, alpha=alpha) for m in range(max_order + 1)}


def kl_divergence(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last dimension, for probabilities ``p`` and log-probabilities ``log_q``."""
    return (p * (torch.log(p.clamp_min(1e-30)) - log_q)).sum(dim=-1)


def count_only_floor(*, k: int, length: int, alpha: float = 1.0, n_samples: int = 200_000,
                     generator: torch.Generator) -> float:
    """KL(true || best predictor that sees only the token counts and the current token),
    at the last position, by Monte Carlo.

    The best such predictor is E[P(x_t, .) | counts, x_t]. It is estimated by group
    means on one half of the samples and scored on the other half (so the estimate is
    not flattered by fitting its own noise). This is the floor of the one-layer model
    in the ICL Markov-chain paper: ~0.072 for k = 2, below the add-one unigram's 0.087.
    """
    from learnlab.tasks.markov import sample_icl_markov  # a probe may read the task's reference

    tokens, table = sample_icl_markov(n_samples, k=k, length=length, alpha=alpha, generator=generator)
    truth = table.gather(1, tokens[:, -1:, None].expand(-1, 1, k)).squeeze(1)  # (N, k)
    features = torch.cat([F.one_hot(tokens, k).sum(dim=1), tokens[:, -1:]], dim=1)  # (N, k+1)
    groups, group_of = torch.unique(features, dim=0, return_inverse=True)
    half = n_samples // 2
    device = truth.device
    sums = torch.zeros(len(groups), k, device=device).index_add_(0, group_of[:half], truth[:half])
    counts = torch.zeros(len(groups), device=device).index_add_(0, group_of[:half], torch.ones(half, device=device))
    # Groups unseen in the first half fall back to the add-alpha unigram of their counts.
    fallback = (features[:, :k].float() + alpha) / (length + k * alpha)
    seen = counts[group_of[half:]] > 0
    estimate = torch.where(seen[:, None], sums[group_of[half:]] / counts[group_of[half:]].clamp_min(1)[:, None],
                           fallback[half:])
    return float(kl_divergence(truth[half:], torch.log(estimate.clamp_min(1e-12))).mean())
