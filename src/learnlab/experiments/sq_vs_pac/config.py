"""The config and presets of sq-vs-pac."""

from __future__ import annotations

from dataclasses import dataclass, replace

from learnlab.config import Interval, param
from learnlab.models.mlp import MLPConfig

TARGETS = ("parity", "majority")
ROUNDINGS = ("nearest", "trunc", "adv_zero", "stochastic")


@dataclass(frozen=True)
class ChannelConfig:
    n_bits: int = param(64, Interval(1, 512), help="a full parity on n bits (a random subset of all of them)")
    n_blocks: int = param(65_536, Interval(1, None),
                          help="parameter blocks M; a step of b examples has ~b^2 / 2M collisions (lost examples)")
    rho: float = param(0.05, Interval(0.0, None, closed="neither"))
    batch_sizes: tuple[int, ...] = param((4, 8, 16, 32, 64, 128, 4096), Interval(1, None),
                                         help="4,096 puts b rho^2 = 10 at rho = 0.05: the SQ side for this target")
    modes: tuple[str, ...] = param(("nearest", "adv_zero"),
                                   help="adv_zero (nearest zero within 3 rho / 4) is our reading of an adversarial "
                                        "rounding; the paper's exact definition is not used")
    sample_budget: int = param(100, Interval(1, None), help="SGD runs ceil(budget / b) steps")
    n_test: int = param(4096, Interval(1, None))
    gd_samples: int = param(128, Interval(1, None), help="m for full-batch GD on the empirical loss")
    gd_rhos: tuple[float, ...] = param((0.002, 0.3), Interval(0.0, None, closed="neither"),
                                       help="full-batch GD precisions: below 1/m and far above 1/sqrt(m)")


@dataclass(frozen=True)
class SqVsPacConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(8, Interval(1, 64), help="independent runs (supports, inits, data) per setting")
    n_bits: int = param(16, Interval(1, 256))
    k: int = param(3, Interval(1, "n_bits"), help="parity / majority degree")
    model: MLPConfig = MLPConfig(width=128)
    lr: float = param(0.1, Interval(0.0, None, closed="neither"))
    steps: int = param(2000, Interval(1, None),
                       help="exact gradients learn the (16, 3) parity by ~1,500 steps at b >= 16")
    scale: float = param(10.0, Interval(0.0, None, closed="neither"),
                         help="s, applied before clipping: our choice (first-layer coordinates get RMS ~0.7 at "
                              "initialisation); the paper's scaling could not be read")
    n_test: int = param(8192, Interval(1, None))
    targets: tuple[str, ...] = param(TARGETS)
    batch_sizes: tuple[int, ...] = param((4, 16, 64, 256), Interval(1, None))
    rhos: tuple[float, ...] = param((0.03, 0.1, 0.3, 1.0), Interval(0.0, None, closed="neither"))
    modes: tuple[str, ...] = param(("nearest", "stochastic"),
                                   help="phase-diagram roundings of the parity; exact always runs")
    majority_modes: tuple[str, ...] = param(("nearest",), help="phase-diagram roundings of the majority")
    control_batches: tuple[int, ...] = param((256,), Interval(1, None),
                                             help="batch sizes where the roundings other than nearest and the majority "
                                                  "run (the SQ side of the grid); empty: every batch size")
    control_rhos: tuple[float, ...] = param((0.3,), Interval(0.0, None, closed="neither"),
                                            help="precisions where the controls run: the SQ-learnable side at b = 256 "
                                                 "(b rho^2 >= 10 and rho below the majority's correlation 1/2); "
                                                 "empty: every rho")
    disagreement_batches: tuple[int, ...] = param((4, 8, 16, 32, 64, 128, 256, 512, 1024), Interval(1, None))
    disagreement_rho: float = param(0.3, Interval(0.0, None, closed="neither"))
    disagreement_pairs: int = param(20, Interval(1, None))
    gd_samples: int = param(1000, Interval(1, None), help="m for full-batch GD of the MLP")
    gd_steps: int = param(2000, Interval(1, None))
    gd_rhos: tuple[float, ...] = param((0.0005, 0.3), Interval(0.0, None, closed="neither"),
                                       help="full-batch GD precisions: ~1/(2m) and far above 1/sqrt(m)")
    channel: ChannelConfig = ChannelConfig()

    def check(self) -> str | None:
        if not self.targets or set(self.targets) - set(TARGETS):
            return "'targets' entries must be among parity, majority"
        if set(self.modes) - set(ROUNDINGS) or set(self.majority_modes) - set(ROUNDINGS):
            return "'modes' entries must be among nearest, trunc, adv_zero, stochastic"
        if set(self.channel.modes) - {"exact", *ROUNDINGS}:
            return "'channel.modes' entries must be among exact, nearest, trunc, adv_zero, stochastic"
        if set(self.control_rhos) - set(self.rhos):
            return "every 'control_rhos' entry must be one of 'rhos'"
        if "majority" in self.targets and self.k % 2 == 0:
            return f"the majority target needs an odd k; got k = {self.k}"
        return None


Config = SqVsPacConfig


def presets() -> dict[str, Config]:
    quick = Config()
    paper = replace(quick, n_seeds=16, steps=4000, batch_sizes=(4, 16, 64, 256, 1024), rhos=(0.01, 0.03, 0.1, 0.3, 1.0),
                    modes=("nearest", "trunc", "stochastic"), majority_modes=("nearest", "stochastic"),
                    control_batches=(), control_rhos=(), gd_samples=2000, gd_rhos=(0.00025, 0.3))
    smoke = replace(quick, n_seeds=2, n_bits=8, model=MLPConfig(width=16), steps=40, n_test=512, batch_sizes=(4, 32),
                    control_batches=(), control_rhos=(),
                    rhos=(0.1, 0.3), disagreement_batches=(4, 64), disagreement_pairs=3, gd_samples=64, gd_steps=20,
                    channel=replace(quick.channel, n_bits=16, n_blocks=512, batch_sizes=(4, 32, 512), n_test=256,
                                    gd_samples=32))
    return {"smoke": smoke, "quick": quick, "paper": paper}
