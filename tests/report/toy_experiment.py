"""A tiny experiment for report and runner tests: a noisy curve per seed, one claim of each kind."""

from dataclasses import dataclass

import numpy as np
import torch

from learnlab.claims import Measurement, Reproduction, Sanity
from learnlab.config import Interval, param
from learnlab.figures import Figure, curves_over_seeds, new_figure, paper_line

NAME = "toy"
DESCRIPTION = "A toy experiment: accuracy rises over steps"


@dataclass(frozen=True)
class Config:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(6, Interval(1, 64))
    steps: int = param(20, Interval(1, None))
    fail_at: int | None = param(None, help="raise at this step (an interrupted run)")


def presets():
    return {"smoke": Config(n_seeds=3), "quick": Config()}


def run(cfg, run):
    g = torch.Generator().manual_seed(cfg.seed)
    for step in range(cfg.steps):
        if cfg.fail_at is not None and step == cfg.fail_at:
            raise RuntimeError("boom")
        run.log(step, accuracy=torch.clamp(step / cfg.steps + 0.05 * torch.randn(cfg.n_seeds, generator=g), 0, 1),
                loss=float(np.exp(-step / 5)))


def claims(cfg):
    return [
        Reproduction("learns", "The model reaches high accuracy.", source="Fig. 1", statistic="final accuracy",
                     threshold=0.6, side=">=", threshold_source="paper Fig. 1: 0.6", unit="seeds",
                     measure=lambda run: Measurement(run.over_seeds("accuracy"))),
        Sanity("loss-positive", "The loss is non-negative.", statistic="final loss", threshold=0.0, side=">=",
               measure=lambda run: Measurement([run.last("loss")])),
    ]


def figures(run):
    fig, (ax,) = new_figure()
    curves_over_seeds(ax, run.steps("accuracy"), run.values("accuracy"), label="ours")
    paper_line(ax, 0.9)
    ax.legend()
    return {"accuracy": Figure("Test accuracy against step, median over seeds (band: range).", fig)}
