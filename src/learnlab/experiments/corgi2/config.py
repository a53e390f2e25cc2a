"""The corgi2 experiment's configuration and presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from learnlab.config import Interval, param

__all__ = ["Config", "Corgi2Config", "PartConfig", "presets", "ARMS", "MODELS"]

ARMS = ("full", "sequential", "shard", "sliding_buffer", "corgipile", "corgi2", "corgi2_2pass")
MODELS = ("softmax", "mlp")


@dataclass(frozen=True)
class PartConfig:
    n_records: int = param(50_000, Interval(1, None), help="training records (gaussian; digits uses all it has)")
    n_test: int = param(10_000, Interval(1, None))
    n_classes: int = param(10, Interval(2, None))
    dim: int = param(16, Interval(1, None))
    separation: float = param(1.0, Interval(0.0, None), help="std of the class means (unit noise)")
    records_per_shard: int = param(100, Interval(1, None), help="b")
    n_online: int = param(10, Interval(1, None), help="blocks in the online buffer (CorgiPile, Corgi^2)")
    n_offline: int = param(10, Interval(1, None), help="blocks shuffled together in the offline pass")
    homogeneity_n: tuple[int, ...] = param((10, 100), Interval(1, None),
                                           help="n_off values of the sweep (homogeneity and accuracy gap)")
    passes: int = param(20, Interval(2, None), help="offline passes simulated per n_off (intervals over passes)")


@dataclass(frozen=True)
class Corgi2Config:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(3, Interval(1, 32))
    parts: tuple[str, ...] = param(("gaussian", "digits"))
    arms: tuple[str, ...] = param(ARMS)
    models: tuple[str, ...] = param(MODELS)
    epochs: int = param(5, Interval(1, None))
    batch_size: int = param(64, Interval(1, None))
    lr: float = param(0.05, Interval(0.0, None, closed="neither"))
    hidden: int = param(64, Interval(1, None), help="MLP hidden units")
    latency: float = param(0.0, Interval(0.0, None), help="seconds added to each storage request (I/O epoch only)")
    gaussian: PartConfig = PartConfig()
    digits: PartConfig = PartConfig(records_per_shard=20, n_online=5, n_offline=10, homogeneity_n=(5, 10, 30))

    def check(self) -> str | None:
        if not self.parts or set(self.parts) - {"gaussian", "digits"}:
            return "'parts' entries must be among gaussian, digits"
        if not self.arms or set(self.arms) - set(ARMS):
            return f"'arms' entries must be among {', '.join(ARMS)}"
        if not self.models or set(self.models) - set(MODELS):
            return "'models' entries must be among softmax, mlp"
        return None


Config = Corgi2Config


def presets() -> dict[str, Config]:
    base = Config()
    # quick: where the order changes the final model (the paper's setting: large homogeneous
    # blocks, as video clips): blocks of 500 records (about 8 SGD steps each), a 2-block online
    # buffer, a step large enough for the order to matter, and the sweep of n_off.
    quick = replace(base, parts=("gaussian",), lr=0.5, n_seeds=5, gaussian=replace(
        base.gaussian, records_per_shard=500, n_online=2, n_offline=50, homogeneity_n=(5, 10, 25, 50)))
    # small-blocks: blocks of 100 (about 1.5 SGD steps each) and a 10-block buffer, where the
    # order hardly matters for these models (a regime outside the paper's statement), and digits.
    small_blocks = base
    paper = replace(quick, n_seeds=5, epochs=10, gaussian=replace(quick.gaussian, n_records=200_000,
                                                                 homogeneity_n=(10, 25, 50, 100, 200)))
    smoke = replace(base, n_seeds=2, epochs=2, parts=("gaussian",), hidden=16,
                    gaussian=replace(base.gaussian, n_records=2000, n_test=500, records_per_shard=50, n_online=4,
                                     n_offline=4, homogeneity_n=(4,), passes=3))
    return {"smoke": smoke, "quick": quick, "small-blocks": small_blocks, "paper": paper}
