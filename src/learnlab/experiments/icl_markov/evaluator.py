"""The icl-markov evaluator: KL metrics on fixed test sequences, attention probes, and the
minimal model's own numbers (metric names in :mod:`.metrics`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from learnlab.experiments.icl_markov import metrics as M
from learnlab.experiments.icl_markov.config import ICLMarkovConfig
from learnlab.models.icl_transformer import ICLTransformer
from learnlab.models.minimal_induction import MinimalInductionModel
from learnlab.probes.hooks import capture
from learnlab.probes.markov import kl_divergence, strategy_distributions
from learnlab.runtime import generator, replica_seeds
from learnlab.tasks.markov import context_index, sample_icl_markov

__all__ = ["MarkovEvaluator"]

_EVAL_ROWS = 250  # sequences x seeds per forward pass


class MarkovEvaluator:
    """KL metrics on fixed test sequences, attention probes, and the model's own numbers.

    Every evaluation logs, per seed: ``kl`` (true || model at the last position),
    ``kl_<strategy>`` (strategy || model), ``cross_entropy``; every
    ``all_positions_every`` steps ``kl_all_positions``; for the transformer
    ``l1_prev_attention`` and ``l2_induction_mass`` (attention probes) and ``l1_rel_<m>``
    (layer 1's relative score at offset m); for the minimal model ``v_<m>``,
    ``w_diagonal`` and ``w_off_diagonal``.
    """

    def __init__(self, cfg: ICLMarkovConfig, device: torch.device, n_replicas: int):
        task, self.cfg = cfg.task, cfg
        self.k, self.n = task.k, task.n
        # One fixed test set for all seeds and checkpoints, from its own stream.
        tokens, table = sample_icl_markov(cfg.eval.n_test, k=task.k, length=task.length + 1, n=task.n,
                                          alpha=task.alpha, prior=task.prior, unigram_fraction=task.unigram_fraction,
                                          generator=generator(replica_seeds(cfg.seed, 1)[0] ^ 0x7E57, device))
        self.inputs, self.next_token = tokens[:, :-1], tokens[:, -1]
        context = context_index(self.inputs, task.k, task.n)[:, -1]  # (N,)
        self.truth = table.gather(1, context[:, None, None].expand(-1, 1, task.k)).squeeze(1)  # (N, k)
        strategies = strategy_distributions(self.inputs, k=task.k, max_order=task.n, alpha=task.alpha)
        self.strategies = {name: dist[:, -1] for name, dist in strategies.items()}  # name -> (N, k)
        # All-position truth on a subset: the next-token law after every position.
        n_all = min(cfg.eval.n_test_all_positions, cfg.eval.n_test)
        contexts = context_index(self.inputs[:n_all], task.k, task.n)
        self.truth_all = table[:n_all].gather(1, contexts.clamp_min(0)[:, :, None].expand(-1, -1, task.k))
        self.valid_all = contexts >= 0  # (n_all, T)
        # Layer-2 induction: positions j whose previous context equals the current one.
        all_contexts = context_index(self.inputs, task.k, task.n)
        previous = torch.full_like(all_contexts, -1)
        previous[:, 1:] = all_contexts[:, :-1]
        self.follows_current = (previous == all_contexts[:, -1:]).float()  # (N, T)
        self.snapshots: list[dict[str, Any]] = []
        self._step = 0

    def strategy_levels(self) -> dict[str, float]:
        """KL(true || strategy) at the last position on the test set."""
        return {name: float(kl_divergence(self.truth, torch.log(dist)).mean()) for name, dist in self.strategies.items()}

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        S, self._step = model.n_replicas, step
        metrics: dict[str, Any] = {}
        # Chunks keep each (S, chunk, T, T) attention tensor small enough for the allocator
        # to reuse its memory (big ones are mapped and unmapped each time, page by page).
        self._chunk = max(1, _EVAL_ROWS // S)
        chunks = [self._last_position(model, start) for start in range(0, self.inputs.shape[0], self._chunk)]
        log_model = F.log_softmax(torch.cat([c["logits"] for c in chunks], dim=1).float(), dim=-1)  # (S, N, k)
        for name in chunks[0]:
            if name != "logits":
                metrics[name] = torch.stack([c[name] for c in chunks]).sum(0) / self.inputs.shape[0]
        if isinstance(model, MinimalInductionModel):
            metrics.update(self._minimal_parameters(model))
        elif len(model.layers) > 1:
            metrics.update(self._relative_scores(model))
        metrics[M.KL] = kl_divergence(self.truth, log_model).mean(dim=1)
        for name, dist in self.strategies.items():
            metrics[M.kl_to(name)] = kl_divergence(dist, log_model).mean(dim=1)
        metrics[M.CROSS_ENTROPY] = -log_model.gather(2, self.next_token.expand(S, -1)[:, :, None]).mean(dim=(1, 2))
        if step % self.cfg.eval.all_positions_every == 0:
            n_all = self.truth_all.shape[0]
            kl_sum = 0.0
            for start in range(0, n_all, self._chunk):
                chunk = slice(start, min(start + self._chunk, n_all))
                log_all = F.log_softmax(model(self.inputs[chunk].expand(S, -1, -1)).float(), dim=-1)  # (S, c, T, k)
                kl_sum = kl_sum + (kl_divergence(self.truth_all[chunk], log_all) * self.valid_all[chunk]).sum(dim=(1, 2))
            metrics[M.KL_ALL_POSITIONS] = kl_sum / self.valid_all.sum()
        return metrics

    def _last_position(self, model: torch.nn.Module, start: int) -> dict[str, torch.Tensor]:
        """Last-position logits of one chunk, and the attention probes summed over it."""
        S = model.n_replicas
        inputs = self.inputs[start : start + self._chunk].expand(S, -1, -1)  # (S, c, T)
        if not isinstance(model, ICLTransformer):
            return {"logits": model(inputs)[:, :, -1]}
        if len(model.layers) == 1:  # the one-layer control: no induction head to probe
            return {"logits": model(inputs, last_position_only=True)[:, :, -1]}
        hooks = ["layers.0.attn.hook_pattern", f"layers.{len(model.layers) - 1}.attn.hook_pattern"]
        with capture(model, hooks) as seen:
            logits = model(inputs, last_position_only=True)[:, :, -1]  # (S, c, k)
        first, last = seen[hooks[0]], seen[hooks[1]][:, :, :, -1]  # (S, c, nh, T, T), (S, c, nh, T)
        if start == 0:
            self._snapshot(self._step, {"layer1": first[:, 0, 0, :40, :40], "layer2": last[:, 0, 0]})
        follows = self.follows_current[start : start + self._chunk]
        return {
            "logits": logits,
            # per head: mean attention to the previous token over queries; the best head
            M.L1_PREVIOUS: first.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=3).amax(dim=2).sum(dim=1),
            M.L2_INDUCTION: (last * follows[None, :, None]).sum(-1).mean(dim=2).sum(dim=1),
        }

    def _relative_scores(self, model: ICLTransformer) -> dict[str, torch.Tensor]:
        """Layer 1's positional score q[a] . r_m / sqrt(d_head), averaged over tokens a and heads."""
        attention = model.layers[0].attn
        table = model.layers[0].ln_attn(model.wte.unsqueeze(1)).squeeze(1)  # (S, k, d)
        q = torch.bmm(table, attention.w_qkv)[..., : model.cfg.d_model]  # (S, k, d)
        S, k, d = q.shape
        q = q.view(S, k, attention.n_heads, attention.d_head).transpose(1, 2)  # (S, nh, k, hs)
        scores = q @ attention.rel[:, :, :6].transpose(-2, -1) / attention.d_head**0.5  # (S, nh, k, 6)
        return {M.l1_relative(m): scores[..., m].mean(dim=(1, 2)) for m in range(M.RELATIVE_OFFSETS)}

    @staticmethod
    def _minimal_parameters(model: MinimalInductionModel) -> dict[str, torch.Tensor]:
        w, k = model.w, model.vocab_size
        diagonal = w.diagonal(dim1=1, dim2=2).mean(dim=1)
        off = (w.sum(dim=(1, 2)) - w.diagonal(dim1=1, dim2=2).sum(dim=1)) / max(1, k * k - k)
        return {M.MINIMAL_W_DIAGONAL: diagonal, M.MINIMAL_W_OFF_DIAGONAL: off,
                M.MINIMAL_V_PREVIOUS: torch.softmax(model.v, dim=1)[:, 1],
                **{M.minimal_v(m): model.v[:, m] for m in range(M.RELATIVE_OFFSETS)}}

    def _snapshot(self, step: int, patterns: dict[str, torch.Tensor]) -> None:
        self.snapshots.append({"step": step, **{name: p.cpu() for name, p in patterns.items()}})

    def done(self, step: int) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = list(state["snapshots"])
