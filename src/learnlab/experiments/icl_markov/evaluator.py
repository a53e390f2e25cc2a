"""The icl-markov evaluator: KL metrics on fixed test sequences, attention probes, and the
minimal model's own numbers (metric names in :mod:`.metrics`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from learnlab.experiments.icl_markov import metrics as M
from learnlab.experiments.icl_markov.config import ICLMarkovConfig
from learnlab.probes.markov import (ReadoutModel, RelativeAttentionStack, kl_divergence, strategy_distributions,
                                    transformer_last_position)
from learnlab.runtime import generator
from learnlab.seeding import stream
from learnlab.tasks.markov import context_index, sample_icl_markov

__all__ = ["MarkovEvaluator"]

_EVAL_ROWS = 250  # sequences x seeds per forward pass


class MarkovEvaluator:
    """KL metrics on fixed test sequences, attention probes, and the model's own numbers.

    Every evaluation logs, per seed: ``kl`` (true || model at the last position),
    ``kl_<strategy>`` (strategy || model), ``cross_entropy``; every
    ``all_positions_every`` steps ``kl_all_positions``; for a transformer of two or more
    layers ``l1_prev_attention`` and ``l2_induction_mass`` (attention probes); and the
    model's ``readouts()`` (the ``ReadoutModel`` protocol): ``l1_rel_<m>`` (layer 1's
    relative score at offset m) for the transformer, ``v_<m>``, ``v_previous_mass``,
    ``w_diagonal`` and ``w_off_diagonal`` for the minimal model. A model with the structure
    of ``probes.markov.RelativeAttentionStack`` is evaluated by the factored
    ``transformer_last_position``; any other through its forward.
    """

    def __init__(self, cfg: ICLMarkovConfig, device: torch.device, n_replicas: int):
        task, self.cfg = cfg.task, cfg
        self.k, self.n = task.k, task.n
        # One fixed test set for all seeds and checkpoints, from its own stream.
        tokens, table = sample_icl_markov(cfg.eval.n_test, k=task.k, length=task.length + 1, n=task.n,
                                          alpha=task.alpha, prior=task.prior, unigram_fraction=task.unigram_fraction,
                                          generator=generator(stream(cfg.seed, "test-set"), device))
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

    def strategy_levels(self) -> dict[str, float]:
        """KL(true || strategy) at the last position on the test set."""
        return {name: float(kl_divergence(self.truth, torch.log(dist)).mean()) for name, dist in self.strategies.items()}

    def __call__(self, model: ReadoutModel, step: int) -> dict[str, Any]:
        S = model.n_replicas
        metrics: dict[str, Any] = {}
        if isinstance(model, RelativeAttentionStack):
            # Layer 1 factored over its k x T x T tables, layer 2 at the last query on the
            # stream's coordinates: the numbers of the model's last-position forward and its
            # attention hooks (to float rounding), without any (N, T, T) tensor.
            out = transformer_last_position(model, self.inputs, self.follows_current)
            logits = out["logits"]
            if "layer1_first" in out:  # two or more layers: the induction-head probes
                metrics[M.L1_PREVIOUS], metrics[M.L2_INDUCTION] = out["l1_prev_attention"], out["l2_induction_mass"]
                self._snapshot(step, {"layer1": out["layer1_first"][:, :40, :40], "layer2": out["layer2_first"]})
        else:
            logits = torch.cat([model(self._rows(start, S))[:, :, -1] for start in range(0, self.inputs.shape[0],
                                                                                          self._chunk(S))], dim=1)
        metrics.update(model.readouts())
        log_model = F.log_softmax(logits.float(), dim=-1)  # (S, N, k)
        metrics[M.KL] = kl_divergence(self.truth, log_model).mean(dim=1)
        for name, dist in self.strategies.items():
            metrics[M.kl_to(name)] = kl_divergence(dist, log_model).mean(dim=1)
        metrics[M.CROSS_ENTROPY] = -log_model.gather(2, self.next_token.expand(S, -1)[:, :, None]).mean(dim=(1, 2))
        if step % self.cfg.eval.all_positions_every == 0:
            n_all = self.truth_all.shape[0]
            kl_sum = 0.0
            for start in range(0, n_all, self._chunk(S)):
                chunk = slice(start, min(start + self._chunk(S), n_all))
                log_all = F.log_softmax(model(self._rows(start, S, n_all)).float(), dim=-1)  # (S, c, T, k)
                kl_sum = kl_sum + (kl_divergence(self.truth_all[chunk], log_all) * self.valid_all[chunk]).sum(dim=(1, 2))
            metrics[M.KL_ALL_POSITIONS] = kl_sum / self.valid_all.sum()
        return metrics

    @staticmethod
    def _chunk(S: int) -> int:
        # Chunks keep each (S, chunk, T, T) attention tensor of a full forward small enough
        # for the allocator to reuse its memory (big ones are mapped and unmapped each time).
        return max(1, _EVAL_ROWS // S)

    def _rows(self, start: int, S: int, stop: int | None = None) -> torch.Tensor:
        """Test sequences start..start+chunk (before ``stop``) for every replica: (S, c, T)."""
        end = min(start + self._chunk(S), self.inputs.shape[0] if stop is None else stop)
        return self.inputs[start:end].expand(S, -1, -1)

    def _snapshot(self, step: int, patterns: dict[str, torch.Tensor]) -> None:
        self.snapshots.append({"step": step, **{name: p.cpu() for name, p in patterns.items()}})

    def done(self, step: int) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = list(state["snapshots"])
