"""In-context n-gram strategies and the KL metrics of the ICL Markov-chain paper.

Edelman et al. (2024), Section 3: a model trained on in-context Markov chains passes
through the *uniform*, *unigram* and *bigram* strategies. Each strategy's exact
predictive distribution at every position is computed here, vectorised over the batch
and positions (cumulative counts, no loop over tokens).

Conventions: ``tokens`` is (B, T); a distribution "at position t" predicts token t+1
from tokens 0..t; every function returns (B, T, k).
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from learnlab.models import _icl_kernel as _kernel
from learnlab.tasks.markov import context_index

__all__ = ["ngram_strategy", "strategy_distributions", "kl_divergence", "count_only_floor", "transformer_last_position",
           "ReadoutModel", "RelativeAttentionStack"]


@runtime_checkable
class ReadoutModel(Protocol):
    """What an in-context Markov evaluator needs from a model besides ``forward``: S stacked
    replicas, and per-replica numbers read off the weights (``readouts()``: name -> (S,))."""

    n_replicas: int

    def readouts(self) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class RelativeAttentionStack(Protocol):
    """What ``transformer_last_position`` reads from a model (the structure of
    ``models.icl_transformer.ICLTransformer``): a token embedding ``wte`` (S, k, d), ``layers``
    of pre-LayerNorm relative attention (``ln_attn``, ``attn`` with ``w_qkv``, ``w_out``,
    ``rel``, ``hook_pattern``; optional ``mlp``), ``ln_final`` and a bias-free ``head`` (S, d, k),
    and a ``forward(idx, last_position_only)``."""

    n_replicas: int
    vocab_size: int
    wte: torch.Tensor
    layers: torch.nn.ModuleList
    ln_final: torch.nn.Module
    head: torch.Tensor


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


@torch.no_grad()
def transformer_last_position(model: torch.nn.Module, tokens: torch.Tensor, follows: torch.Tensor | None = None, *,
                              rows_per_pass: int = 1000) -> dict[str, torch.Tensor]:
    """Last-position logits and the induction-head probes of an ``ICLTransformer``, in eval mode.

    The numbers ``model(tokens, last_position_only=True)`` and hooks on its attention
    patterns give (up to float rounding), without forming any (N, T, T) or (N, T, d) tensor:

    - layer 1 sees token embeddings only, so its scores are q[x_i] . r_{i-j} + q[x_i] . k[x_j]
      = P[x_i, i, j] + A[x_i, x_j]; without dropout exp() of the sum is a product, and the
      attention a query with token a pays to the keys holding token c is exp(A[a, c]) times
      (exp(P[a]) @ one_hot)[i, c]: one (k T, T) x (T, N k) matmul for all sequences;
    - so the residual stream after layer 1 is x_i = sum_m g_im u_m over m = k (1 + heads)
      fixed vectors u (the token embeddings and each head's value of each token through
      the output projection), and in a two-layer model LayerNorm, keys, values and the
      last query of layer 2 act on the coordinates g: (N, T, m) tensors instead of (N, T, d).

    Other models (more layers, an MLP in layer 1) run layers 2.. as the model does.

    Parameters
    ----------
    model : an ``ICLTransformer`` (S replicas); evaluated in eval mode
    tokens : (N, T) test sequences shared by every replica, or (S, N, T)
    follows : (N, T) (or (S, N, T)) weights of the layer-2 probe, e.g. 1 where the previous
        context equals the current one; None skips the probe
    rows_per_pass : sequences x replicas per pass (bounds memory)

    Returns
    -------
    ``logits`` (S, N, k); for two or more layers also ``l1_prev_attention`` (S,), the mean
    over sequences of the best layer-1 head's mean attention to the previous token,
    ``l2_induction_mass`` (S,), the mean over sequences of the last query's last-layer
    attention weighted by ``follows`` (averaged over heads), and head 0's patterns of
    sequence 0: ``layer1_first`` (S, T, T) and ``layer2_first`` (S, T).

    Example
    -------
    >>> out = transformer_last_position(model, test_tokens, follows)  # doctest: +SKIP
    >>> kl = kl_divergence(truth, torch.log_softmax(out["logits"], -1)).mean(1)  # doctest: +SKIP
    """
    from learnlab.probes.hooks import capture

    S = model.n_replicas
    tokens = tokens.expand(S, -1, -1) if tokens.dim() == 2 else tokens
    if follows is not None and follows.dim() == 2:
        follows = follows.expand(S, -1, -1)
    N = tokens.shape[1]
    chunk = max(1, rows_per_pass // S)
    was_training = model.training
    model.eval()
    try:
        if len(model.layers) == 1:
            logits = torch.cat([model(tokens[:, i : i + chunk], last_position_only=True)[:, :, -1]
                                for i in range(0, N, chunk)], dim=1)
            return {"logits": logits}
        low_rank = len(model.layers) == 2 and model.layers[0].mlp is None
        if (low_rank and model.layers[1].mlp is None and _kernel.available(model.wte) and _shared(tokens)
                and (follows is None or _shared(follows))):  # one test set and follows mask for every replica
            compiled = _compiled_two_layer(model, tokens, follows)
            if compiled is not None:
                return compiled
        last_hook = f"layers.{len(model.layers) - 1}.attn.hook_pattern"
        out: dict[str, list[torch.Tensor]] = {"logits": [], "l1_prev_attention": [], "l2_induction_mass": []}
        for start in range(0, N, chunk):
            part = tokens[:, start : start + chunk]
            coords, basis, previous, first = _factored_first_layer(model, part, with_first=start == 0)
            if low_rank:
                x, last = _low_rank_last_layer(model, coords, basis)  # (S, c, d), (S, c, nh, T)
            else:
                x = coords @ basis.unsqueeze(1)  # (S, c, T, d)
                if model.layers[0].mlp is not None:
                    x = x + model.layers[0].mlp(model.layers[0].ln_mlp(x))
                with capture(model, [last_hook]) as seen:
                    for i, layer in enumerate(model.layers[1:], start=1):
                        x = layer(x, i == len(model.layers) - 1)
                x, last = x[:, :, -1], seen[last_hook][:, :, :, -1]
            x = model.ln_final(x)
            out["logits"].append(torch.bmm(x, model.head))  # (S, c, k)
            out["l1_prev_attention"].append(previous.sum(dim=1))
            if follows is not None:
                weights = follows[:, start : start + chunk, None].to(last.dtype)  # (S, c, 1, T)
                out["l2_induction_mass"].append((last * weights).sum(-1).mean(dim=2).sum(dim=1))
            if first is not None:
                layer1_first, layer2_first = first, last[:, 0, 0]
    finally:
        model.train(was_training)
    result = {"logits": torch.cat(out["logits"], dim=1),
              "l1_prev_attention": torch.stack(out["l1_prev_attention"]).sum(0) / N,
              "layer1_first": layer1_first, "layer2_first": layer2_first}
    if follows is not None:
        result["l2_induction_mass"] = torch.stack(out["l2_induction_mass"]).sum(0) / N
    return result


def _shared(t: torch.Tensor) -> bool:
    """Whether every replica's slice of t (S, ...) is the same tensor."""
    return t.shape[0] == 1 or t.stride(0) == 0


def _compiled_two_layer(model, tokens: torch.Tensor, follows: torch.Tensor | None) -> dict[str, torch.Tensor] | None:
    """``transformer_last_position`` of a two-layer attention-only model by the compiled kernel
    (``models._icl_kernel``, ``ll_eval_two_layer``): the same factorisation as
    ``_factored_first_layer`` and ``_low_rank_last_layer``, one sequence at a time with its
    (T, m) stream coordinates in cache. The tables it reads are built here; None when a
    layer-1 row's mass underflows (the caller then takes the exact path)."""
    S, N, T = tokens.shape
    first, second = model.layers
    a1, a2 = first.attn, second.attn
    nh1, hs1, nh2, k = a1.n_heads, a1.d_head, a2.n_heads, model.vocab_size
    d = nh1 * hs1
    R = S * nh1
    table = first.ln_attn(model.wte.unsqueeze(1)).squeeze(1)  # (S, k, d): each token's normalised embedding
    q, key, v = torch.bmm(table, a1.w_qkv).view(S, k, 3, nh1, hs1).permute(2, 0, 3, 1, 4).reshape(3, R, k, hs1)
    q = q / math.sqrt(hs1)
    by_offset = q @ a1.rel[:, :, :T].reshape(R, T, hs1).transpose(1, 2)  # (R, k, T): q[a] . r_m
    positions = torch.arange(T, device=tokens.device)
    offsets = positions[:, None] - positions[None, :]  # i - j
    positional = by_offset[:, :, offsets.clamp_min(0)].masked_fill(offsets < 0, float("-inf"))  # (R, k, T, T)
    exp_positional = torch.exp(positional - positional.amax(dim=-1, keepdim=True))
    # counts[r, n, c, a, i] = sum over j <= i with token c of exp_positional[r, a, i, j]: one matmul for all sequences
    tokens = tokens[0].contiguous()  # (N, T), one test set for every replica (the caller checked)
    one_hot = F.one_hot(tokens, k).to(q.dtype).permute(0, 2, 1).reshape(N * k, T)  # (N k, T)
    counts = torch.matmul(one_hot, exp_positional.reshape(R, k * T, T).transpose(1, 2)).contiguous()  # (R, N k, k T)
    exp_positional = F.pad(exp_positional, (0, _kernel.padded(T) - T)).contiguous()
    pair = q @ key.transpose(1, 2)  # (R, k, k)
    exp_pair = torch.exp(pair - pair.amax(dim=-1, keepdim=True)).contiguous()
    head_values = torch.einsum("shcd,shde->shce", v.view(S, nh1, k, hs1), a1.w_out.view(S, nh1, hs1, -1))
    basis = torch.cat([model.wte, head_values.reshape(S, nh1 * k, -1)], dim=1).contiguous()  # (S, m, d)
    norm = second.ln_attn
    centred = basis - basis.mean(dim=-1, keepdim=True)
    gram = (centred @ centred.transpose(1, 2) / d).contiguous()  # (S, m, m)
    maps = (centred * norm.weight.unsqueeze(1)) @ a2.w_qkv  # (S, m, 3d)
    shifts = (norm.bias.unsqueeze(1) @ a2.w_qkv).squeeze(1).contiguous()  # (S, 3d)
    qmap, kmap, vmap = (part.contiguous() for part in maps.split(d, dim=-1))
    relative = F.pad(a2.rel[:, :, :T].flip(2).transpose(2, 3), (0, _kernel.padded(T) - T)).contiguous()  # r_{T-1-j}
    follows_rows = None if follows is None else follows[0].to(torch.float32).contiguous()
    logits, previous, induction = torch.empty(S, N, k), torch.empty(S, N), torch.empty(S, N)
    first1, first2 = torch.empty(S, T, T), torch.empty(S, T)
    lnw, lnb, head, w_out = (t.contiguous() for t in (model.ln_final.weight, model.ln_final.bias, model.head, a2.w_out))
    underflow = _kernel.library().ll_eval_two_layer(
        counts.data_ptr(), exp_positional.data_ptr(), exp_pair.data_ptr(), gram.data_ptr(), qmap.data_ptr(),
        kmap.data_ptr(), vmap.data_ptr(), shifts.data_ptr(), relative.data_ptr(), basis.data_ptr(), w_out.data_ptr(),
        lnw.data_ptr(), lnb.data_ptr(), head.data_ptr(), tokens.data_ptr(),
        None if follows_rows is None else follows_rows.data_ptr(), S, N, T, nh1, a2.n_heads, k, d, logits.data_ptr(),
        previous.data_ptr(), induction.data_ptr(), first1.data_ptr(), first2.data_ptr(), torch.get_num_threads())
    if underflow:
        return None
    result = {"logits": logits, "l1_prev_attention": previous.mean(dim=1), "layer1_first": first1,
              "layer2_first": first2}
    if follows is not None:
        result["l2_induction_mass"] = induction.mean(dim=1)
    return result


def _factored_first_layer(model, tokens: torch.Tensor, with_first: bool):
    """Layer 1 of an ``ICLTransformer`` in eval mode, without an (N, T, T) tensor.

    tokens (S, N, T) -> (coordinates g (S, N, T, m) and basis u (S, m, d) of the residual
    stream after layer 1's attention, x = g @ u, m = k (1 + heads): the token's one-hot,
    then each head's attention mass on each token; per sequence the best head's mean
    attention to the previous token (S, N); head 0's pattern of sequence 0 (S, T, T) when
    ``with_first``, else None)."""
    S, N, T = tokens.shape
    layer = model.layers[0]
    attention = layer.attn
    nh, hs, k = attention.n_heads, attention.d_head, model.vocab_size
    R = S * nh
    device = tokens.device
    table = layer.ln_attn(model.wte.unsqueeze(1)).squeeze(1)  # (S, k, d): the normalised embedding of each token
    qkv = torch.bmm(table, attention.w_qkv)  # (S, k, 3d)
    q, key, v = qkv.view(S, k, 3, nh, hs).permute(2, 0, 3, 1, 4).reshape(3, R, k, hs)  # each (R, k, hs)
    q = q / math.sqrt(hs)
    relative = attention._gathered_table(T)  # (R, T, T, hs): r_{i-j}, zero for j > i (eval: no dropout)
    positional = torch.einsum("rad,rijd->raij", q, relative)  # (R, k, T, T): P[a, i, j] = q[a] . r_{i-j}
    causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    positional = positional.masked_fill(~causal, float("-inf"))
    exp_positional = torch.exp(positional - positional.amax(dim=-1, keepdim=True))  # (R, k, T, T), 0 above the diagonal
    pair = q @ key.transpose(1, 2)  # (R, k, k): A[a, c] = q[a] . k[c]
    exp_pair = torch.exp(pair - pair.amax(dim=-1, keepdim=True))  # (R, k, k)
    ids = tokens.unsqueeze(1).expand(S, nh, N, T).reshape(R, N, T)
    own = ids.transpose(1, 2).contiguous()  # (R, T, N): the query's own token a = x_i
    one_hot = torch.zeros(R, T, N, k, dtype=q.dtype, device=device).scatter_(3, own.unsqueeze(3), 1.0)
    # counts[r, a, i, n, c] = sum_{j <= i, x_j = c} exp(P[a, i, j]): one matmul per replica-head
    counts = torch.bmm(exp_positional.reshape(R, k * T, T), one_hot.view(R, T, N * k)).view(R, k, T, N, k)
    selected = counts[:, 0]
    for a in range(1, k):  # keep counts[:, a] where the query's token is a
        selected = torch.where((own == a).unsqueeze(-1), counts[:, a], selected)
    replica = torch.arange(R, device=device)
    pair_rows = exp_pair.reshape(R * k, k).index_select(0, (replica[:, None, None] * k + own).view(-1))
    weights = selected * pair_rows.view(R, T, N, k)  # (R, T, N, k): attention mass on each token
    total = weights.sum(dim=-1, keepdim=True)  # (R, T, N, 1)
    if not bool((total > 1e-30).all()):  # exp() of the split maxima underflowed: scores spread beyond ~70
        return _exact_first_layer(model, tokens, with_first)
    coords = torch.zeros(S, N, T, k * (1 + nh), dtype=q.dtype, device=device)  # (S, N, T, m), m = k (1 + nh)
    coords[..., :k].scatter_(3, tokens.unsqueeze(3), 1.0)
    coords[..., k:].view(S, N, T, nh, k).copy_((weights / total).view(S, nh, T, N, k).permute(0, 3, 2, 1, 4))
    # u: the token embeddings, then head h's value of token c through its block of the output projection
    head_values = torch.einsum("shcd,shde->shce", v.view(S, nh, k, hs), attention.w_out.view(S, nh, hs, -1))
    basis = torch.cat([model.wte, head_values.reshape(S, nh * k, -1)], dim=1)  # (S, m, d)
    # pattern[i, i-1] = exp(P[x_i, i, i-1]) exp(A[x_i, x_{i-1}]) / total[i], for i >= 1
    diagonal = exp_positional.diagonal(offset=-1, dim1=2, dim2=3)  # (R, k, T-1): exp(P[a, i, i-1])
    current, before = ids[:, :, 1:], ids[:, :, :-1]  # (R, N, T-1)
    previous = (diagonal.unsqueeze(1).expand(R, N, k, T - 1).gather(2, current.unsqueeze(2)).squeeze(2)
                * exp_pair.reshape(R, 1, k * k).expand(R, N, k * k).gather(2, current * k + before)
                / total[:, 1:, :, 0].transpose(1, 2))  # (R, N, T-1)
    previous = previous.mean(dim=-1).view(S, nh, N).amax(dim=1)  # (S, N): the best head
    first = None
    if with_first:  # head 0 of sequence 0
        heads = torch.arange(S, device=device) * nh
        own0 = ids[heads, 0]  # (S, T)
        first = (exp_positional[heads[:, None], own0, torch.arange(T, device=device)]
                 * exp_pair[heads[:, None, None], own0[:, :, None], own0[:, None, :]] / total[heads, :, 0])  # (S, T, T)
    return coords, basis, previous, first


def _low_rank_last_layer(model, coords: torch.Tensor, basis: torch.Tensor):
    """Layer 2 of a two-layer ``ICLTransformer`` at the last query, on the coordinates of
    ``_factored_first_layer`` (x = coords @ basis). LayerNorm(x) = (g / sigma) @ ((u -
    mean u) * w) + b, with sigma^2 = g^T C g for the (m, m) Gram matrix C of the centred
    basis: keys, values and the query are (m, d) maps of g / sigma. Returns the residual
    stream at the last position (S, N, d) and the last query's pattern (S, N, nh, T)."""
    S, N, T, m = coords.shape
    layer = model.layers[1]
    attention, norm = layer.attn, layer.ln_attn
    nh, hs = attention.n_heads, attention.d_head
    d = basis.shape[-1]
    centred = basis - basis.mean(dim=-1, keepdim=True)  # (S, m, d)
    gram = centred @ centred.transpose(1, 2) / d  # (S, m, m)
    flat = coords.view(S, N * T, m)  # 3-d matmuls: one (N T, m) x (m, .) product a replica
    variance = (torch.bmm(flat, gram) * flat).sum(dim=-1).view(S, N, T, 1)  # g^T C g
    g = coords * torch.rsqrt(variance + 1e-5)  # F.layer_norm's eps
    maps = (centred * norm.weight.unsqueeze(1)) @ attention.w_qkv  # (S, m, 3d)
    shifts = (norm.bias.unsqueeze(1) @ attention.w_qkv).squeeze(1)  # (S, 3d)
    q = (g[:, :, -1] @ maps[..., :d] + shifts[:, None, :d]).view(S, N, nh, hs) / math.sqrt(hs)
    key_maps = maps[..., d : 2 * d].reshape(S, m, nh, hs)
    scores = torch.einsum("sntm,snhm->snht", g, torch.einsum("smhd,snhd->snhm", key_maps, q))  # q . k_j
    scores = scores + (q * shifts[:, None, d : 2 * d].view(S, 1, nh, hs)).sum(-1, keepdim=True)
    relative = attention._gathered_table(T)[:, -1].view(S, nh, T, hs)  # r_{T-1-j}
    scores = scores + torch.einsum("snhd,shtd->snht", q, relative)
    pattern = torch.softmax(scores, dim=-1)  # (S, N, nh, T)
    mixed = torch.einsum("snhm,smhd->snhd", torch.einsum("snht,sntm->snhm", pattern, g),
                         maps[..., 2 * d :].reshape(S, m, nh, hs)) + shifts[:, None, 2 * d :].view(S, 1, nh, hs)
    x = coords[:, :, -1] @ basis + torch.bmm(mixed.reshape(S, N, d), attention.w_out)  # (S, N, d)
    if layer.mlp is not None:
        x = x + layer.mlp(layer.ln_mlp(x.unsqueeze(2))).squeeze(2)
    return x, pattern


def _exact_first_layer(model, tokens: torch.Tensor, with_first: bool):
    """The same quantities through the model's own layer 1 (the (N, T, T) pattern formed);
    the coordinates are then the stream itself (basis: the identity)."""
    from learnlab.probes.hooks import capture

    S, N, T = tokens.shape
    k = model.vocab_size
    x = torch.bmm(F.one_hot(tokens.reshape(S, N * T), k).to(model.wte.dtype), model.wte).view(S, N, T, -1)
    layer = model.layers[0]
    with capture(model, ["layers.0.attn.hook_pattern"]) as seen:
        x = x + layer.attn(None, tokens=tokens, token_table=layer.ln_attn(model.wte.unsqueeze(1)).squeeze(1))
    pattern = seen["layers.0.attn.hook_pattern"]  # (S, N, nh, T, T)
    previous = pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=3).amax(dim=2)  # (S, N)
    basis = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device).expand(S, -1, -1)
    return x, basis, previous, pattern[:, 0, 0].clone() if with_first else None
