"""In-context Markov chains (ICL-MC) and their n-gram generalisation.

Edelman, Edelman, Goel, Malach, Tsilivis, "The Evolution of Statistical Induction
Heads: In-Context Learning Markov Chains" (2024; arXiv 2402.11004), Section 2. Every
sequence has its own transition matrix drawn from a prior; the model must infer it in
context. The first token comes from the chain's stationary distribution (computed
exactly by a linear solve; the official code returns the uniform distribution for
k < 5).

Sampling is vectorised over the batch and over time: each step t draws one uniform
u_t per sequence, which turns the chain into a map f_t: state -> next state; the whole
trajectory is the prefix composition f_t o ... o f_1 applied to the start, computed by
a parallel (Hillis-Steele) scan in log2(T) batched gathers, not a loop over tokens.

Shapes: B sequences, k states (tokens), n-gram order n (n = 2 is a Markov chain),
c = k^(n-1) contexts, T tokens per sequence.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = [
    "Prior",
    "sample_gamma",
    "sample_dirichlet",
    "sample_transitions",
    "lifted_transitions",
    "stationary_distribution",
    "sample_chains",
    "sample_icl_markov",
    "context_index",
    "true_next_distribution",
]

Prior = Literal["dirichlet", "doubly_stochastic", "unigram"]


def sample_gamma(concentration: float, shape: tuple[int, ...], *, generator: torch.Generator) -> torch.Tensor:
    """Gamma(concentration, 1) samples drawn with an explicit generator.

    Marsaglia and Tsang (2000), vectorised: propose for every entry still pending, accept
    about 96% a round. For concentration < 1, Gamma(a) = Gamma(a + 1) * U^(1/a).
    """
    device = generator.device
    boost = concentration < 1.0
    a = concentration + 1.0 if boost else concentration
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(shape, device=device)
    pending = torch.ones(shape, dtype=torch.bool, device=device)
    while bool(pending.any()):
        count = int(pending.sum())
        x = torch.randn(count, generator=generator, device=device)
        u = torch.rand(count, generator=generator, device=device)
        v = (1.0 + c * x) ** 3
        accept = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-30)))
        slots = pending.nonzero(as_tuple=True)
        chosen = tuple(index[accept] for index in slots)
        out[chosen] = (d * v)[accept]
        pending[chosen] = False
    if boost:
        out = out * torch.rand(shape, generator=generator, device=device) ** (1.0 / concentration)
    return out


def sample_dirichlet(alpha: float, shape: tuple[int, ...], k: int, *, generator: torch.Generator) -> torch.Tensor:
    """Rows drawn from Dirichlet(alpha * 1_k): shape (*shape, k), each row sums to 1."""
    if alpha == 1.0:  # Dirichlet(1) = normalised exponentials: exact and cheaper
        g = -torch.log(torch.rand((*shape, k), generator=generator, device=generator.device).clamp_min(1e-30))
    else:
        g = sample_gamma(alpha, (*shape, k), generator=generator)
    return g / g.sum(dim=-1, keepdim=True)


def _doubly_stochastic(batch: int, k: int, alpha: float, generator: torch.Generator) -> torch.Tensor:
    """Random doubly stochastic matrices: a Dirichlet(alpha)-weighted mixture of k uniformly
    random permutation matrices. By Birkhoff's theorem every mixture of permutation matrices
    is doubly stochastic, so the stationary distribution is uniform and the unigram
    statistics carry no information."""
    device = generator.device
    keys = torch.rand(batch, k, k, generator=generator, device=device)
    permutations = keys.argsort(dim=-1)  # (B, m=k, k): k random permutations per sequence
    matrices = torch.nn.functional.one_hot(permutations, k).float()  # (B, m, k, k)
    weights = sample_dirichlet(alpha, (batch,), k, generator=generator)  # (B, m)
    return torch.einsum("bm,bmij->bij", weights, matrices)


def sample_transitions(batch: int, *, k: int, n: int = 2, alpha: float = 1.0, prior: Prior = "dirichlet",
                       unigram_fraction: float = 0.0, generator: torch.Generator) -> torch.Tensor:
    """Transition tables, one per sequence: (B, c, k) with c = k^(n-1) contexts.

    ``prior``: ``dirichlet`` (each row i.i.d. Dirichlet(alpha)), ``doubly_stochastic``
    (n = 2 only; see ``_doubly_stochastic``) or ``unigram`` (all rows equal: the next
    token ignores the context). ``unigram_fraction`` replaces that fraction of the
    sequences, chosen at random, by unigram chains (a mixture prior).
    """
    contexts = k ** (n - 1)
    if prior == "doubly_stochastic":
        if n != 2:
            raise ValueError("the doubly stochastic prior is defined for Markov chains (n = 2)")
        table = _doubly_stochastic(batch, k, alpha, generator)
    elif prior == "unigram":
        table = sample_dirichlet(alpha, (batch, 1), k, generator=generator).expand(batch, contexts, k).contiguous()
    elif prior == "dirichlet":
        table = sample_dirichlet(alpha, (batch, contexts), k, generator=generator)
    else:
        raise ValueError(f"unknown prior {prior!r}")
    if unigram_fraction > 0:
        rows = sample_dirichlet(alpha, (batch, 1), k, generator=generator).expand(batch, contexts, k)
        chosen = torch.rand(batch, generator=generator, device=generator.device) < unigram_fraction
        table = torch.where(chosen[:, None, None], rows, table)
    return table


def lifted_transitions(table: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """The chain on contexts: (B, c, k) -> (B, c, c), context (x_1..x_{n-1}) -> (x_2..x_n).

    Contexts are numbered base k, oldest token most significant.
    """
    batch, contexts, _ = table.shape
    if n == 2:
        return table
    shift = (torch.arange(contexts, device=table.device) * k) % contexts  # drop the oldest token
    lifted = table.new_zeros(batch, contexts, contexts)
    targets = shift[:, None] + torch.arange(k, device=table.device)[None, :]  # (c, k)
    lifted.scatter_(2, targets.expand(batch, contexts, k), table)
    return lifted


def stationary_distribution(transitions: torch.Tensor) -> torch.Tensor:
    """pi with pi P = pi, sum(pi) = 1, for row-stochastic P of shape (B, m, m): (B, m).

    Solves (P^T - I) pi = 0 with one equation replaced by sum(pi) = 1, in float64. For
    a chain with several stationary distributions (reducible), the solve is singular and
    a least-squares solution is used.
    """
    p = transitions.double()
    m = p.shape[-1]
    system = p.transpose(1, 2) - torch.eye(m, dtype=p.dtype, device=p.device)
    system[:, -1, :] = 1.0
    rhs = torch.zeros(p.shape[0], m, 1, dtype=p.dtype, device=p.device)
    rhs[:, -1] = 1.0
    solution, info = torch.linalg.solve_ex(system, rhs)
    if bool((info != 0).any()):
        solution = torch.linalg.lstsq(system.cpu(), rhs.cpu()).solution.to(p.device)
    pi = solution.squeeze(-1).clamp_min(0.0)
    return (pi / pi.sum(dim=-1, keepdim=True)).to(transitions.dtype)


def sample_chains(transitions: torch.Tensor, start: torch.Tensor, length: int, *,
                  generator: torch.Generator) -> torch.Tensor:
    """Trajectories of the chains ``transitions`` (B, m, m) from states ``start`` (B,).

    Returns (B, length) states, the first being ``start``. Vectorised over time by a
    parallel prefix scan of the per-step maps f_t(s) = inverse-CDF(P[s], u_t).
    """
    batch, m, _ = transitions.shape
    if length == 1:
        return start[:, None]
    cdf = transitions.cumsum(dim=-1)  # (B, m, m)
    cdf[..., -1] = 1.0  # guard against rounding: every u < 1 lands in a state
    u = torch.rand(batch, length - 1, generator=generator, device=generator.device)  # (B, T-1)
    # maps[b, t, s] = the state after step t+1 when the state at step t is s
    maps = (u[:, :, None, None] >= cdf[:, None, :, :]).sum(dim=-1).clamp_max(m - 1)  # (B, T-1, m)
    # Inclusive scan: after it, maps[:, t] = f_t o ... o f_0.
    offset = 1
    while offset < length - 1:
        earlier = maps[:, :-offset]  # (B, T-1-offset, m)
        maps = torch.cat([maps[:, :offset], maps[:, offset:].gather(2, earlier)], dim=1)
        offset *= 2
    states = maps.gather(2, start[:, None, None].expand(batch, length - 1, 1)).squeeze(2)  # (B, T-1)
    return torch.cat([start[:, None], states], dim=1)


def sample_icl_markov(batch: int, *, k: int, length: int, n: int = 2, alpha: float = 1.0,
                      prior: Prior = "dirichlet", unigram_fraction: float = 0.0,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of in-context n-gram sequences.

    Returns
    -------
    tokens : (B, length) int64 in [0, k); the first n-1 tokens come from the stationary
        distribution of the lifted chain
    table : (B, k^(n-1), k) the transition table of each sequence: the true next-token
        distribution after context c is ``table[b, c]``
    """
    table = sample_transitions(batch, k=k, n=n, alpha=alpha, prior=prior, unigram_fraction=unigram_fraction,
                               generator=generator)
    lifted = lifted_transitions(table, k, n)  # (B, c, c)
    pi = stationary_distribution(lifted)  # (B, c)
    start = torch.multinomial(pi, 1, generator=generator).squeeze(1)  # (B,) a context
    contexts = sample_chains(lifted, start, length - (n - 2), generator=generator)  # (B, length - n + 2)
    # The first context spells the first n-1 tokens; each later context adds its newest token.
    digits = k ** torch.arange(n - 2, -1, -1, device=start.device)  # most significant first
    first = (contexts[:, :1] // digits) % k  # (B, n-1)
    tokens = torch.cat([first, contexts[:, 1:] % k], dim=1)
    return tokens, table


def context_index(tokens: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """The context (previous n-1 tokens, base k) ending at each position: (B, T) -> (B, T).

    Positions with fewer than n-1 tokens so far get -1.
    """
    batch, length = tokens.shape
    index = torch.zeros_like(tokens)
    for lag in range(n - 1):  # n-1 is the (small) order, not the sequence length
        shifted = torch.full_like(tokens, -1)
        shifted[:, lag:] = tokens[:, : length - lag]
        index = index + shifted.clamp_min(0) * k**lag
    if n == 2:
        return tokens.clone()
    index[:, : n - 2] = -1
    return index


def true_next_distribution(tokens: torch.Tensor, table: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """The true distribution of the token after each position: (B, T, k).

    Positions without a full context (the first n-2) get the uniform distribution
    (no metric reads them).
    """
    context = context_index(tokens, k, n)  # (B, T)
    rows = table.gather(1, context.clamp_min(0)[:, :, None].expand(-1, -1, k))  # (B, T, k)
    return torch.where(context[:, :, None] < 0, torch.full_like(rows, 1.0 / k), rows)
