"""The config and presets of gd-vs-ntk."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from learnlab.config import Interval, param
from learnlab.models.mlp import MLPConfig
from learnlab.train.optim import TrainConfig

PARTS = ("scaling", "biased", "lazy")


@dataclass(frozen=True)
class KernelConfig:
    width: int = param(512, Interval(1, None), help="width of the network whose tangent kernel at init is used")
    ridges: tuple[float, ...] = param((1e-4, 1e-3, 1e-2, 1e-1, 1.0), Interval(0.0, None, closed="neither"),
                                      help="lambda / (tr K / N), chosen on a validation split")
    validation: float = param(0.2, Interval(0.0, 1.0, closed="neither"))


@dataclass(frozen=True)
class GdVsNtkConfig:
    seed: int = param(0, Interval(0, None))
    n_seeds: int = param(8, Interval(1, 64), help="seeds of the networks and edges (stacked: cheap)")
    kernel_seeds: int = param(3, Interval(1, 64), help="seeds of the kernel fits (one kernel solve each)")
    n_test: int = param(4000, Interval(1, None))
    target_accuracy: float = param(0.95, Interval(0.5, 1.0), help="a run learns when it reaches this accuracy")
    stop_when_learned: bool = param(True, help="end an online cell at the first evaluation where every seed has "
                                               "reached target_accuracy (its claims read whether it is reached)")
    parts: tuple[str, ...] = param(PARTS)
    network: MLPConfig = MLPConfig(width=256)
    # The offline sparse-parity setting of pareto-frontiers (hinge, SGD, weight decay 0.01).
    offline: TrainConfig = TrainConfig(lr=0.1, weight_decay=0.01, batch_size=32, max_steps=10_000, eval_every=1000,
                                       log_every=100)
    online: TrainConfig = TrainConfig(lr=0.1, batch_size=64, max_steps=10_000, eval_every=500, log_every=100)
    kernel: KernelConfig = KernelConfig()
    k: int = param(3, Interval(1, None), help="the parity degree of the scaling part")
    network_bits: tuple[int, ...] = param((), Interval(1, None), help="offline networks of the scaling part")
    network_samples: tuple[int, ...] = param((100, 200, 400, 800, 1600, 3200), Interval(1, None))
    kernel_bits: tuple[int, ...] = param((6, 8, 10, 12), Interval(1, None))
    kernel_samples: tuple[int, ...] = param((100, 200, 400, 800, 1600, 3200), Interval(1, None))
    svm_samples: int = param(1600, Interval(1, None), help="the SVM cross-check at the largest kernel n")
    agreement: tuple[int, int, int] = param((24, 2, 1000), help="(n, k, N) with N >= n^k: the kernel learns")
    sanity: tuple[int, int] = param((8, 2000), help="(n, N) with N >= n^k: the kernel learns the k-parity")
    cells: tuple[tuple[float, int, int], ...] = param(
        ((0.0, 16, 2), (0.5, 30, 4), (0.0, 50, 5), (0.5, 50, 5)), help="(alpha, n, k) cells of the biased part")
    cell_kernel_samples: int = param(4000, Interval(1, None))
    kernel_at: Literal["largest_n", "every_cell"] = param(
        "largest_n", help="cells whose NTK ridge is fitted: those at the largest n (the figure's row, where the claims "
                          "and the linearised model read it) or every cell (the kernel solves are most of the cost)")
    # The edge of a k = 3 parity at n = 16 is ~0.01: 2 x 10^4 samples (floor ~0.02) miss it, 10^5 resolve it.
    edge_samples: int = param(100_000, Interval(1, None), help="N for g0 of the first-step edge, and its test set")
    null_draws: int = param(3, Interval(1, None), help="label permutations for the edge's noise floor")
    lazy_cells: tuple[tuple[float, int, int, int], ...] = param(
        ((0.5, 50, 5, 0),), help="(alpha, n, k, N) for the linearised model; N = 0: online (a cell of the biased part)")

    def has_cell_kernel(self, index: int) -> bool:
        """Whether cell ``index`` fits the NTK ridge (``kernel_at``)."""
        return self.kernel_at == "every_cell" or self.cells[index][1] == max(n for _, n, _ in self.cells)

    def check(self) -> str | None:
        if not self.parts or set(self.parts) - set(PARTS):
            return f"'parts' entries must be among {', '.join(PARTS)}"
        for alpha, n, k in self.cells:
            if not (-1 < alpha < 1 and 1 <= k <= n):
                return f"cell (alpha={alpha}, n={n}, k={k}) needs -1 < alpha < 1 and 1 <= k <= n"
        if self.k > min(self.network_bits + self.kernel_bits):
            return f"k = {self.k} exceeds the smallest n"
        if "scaling" in self.parts and self.agreement[1] == self.k and self.agreement[0] in self.network_bits:
            return (f"'agreement' (n={self.agreement[0]}, k={self.agreement[1]}) is one of the scaling networks; "
                    f"give it another n or k")
        return None


Config = GdVsNtkConfig


def presets() -> dict[str, Config]:
    quick = Config()
    # The network's side of the k = 3 scaling (offline, n up to 48) and the kernel up to n = 16, N = 8,000.
    scaling = replace(quick, parts=("scaling",), network_bits=(16, 32, 48), kernel_bits=(6, 8, 10, 12, 16),
                      kernel_samples=(100, 200, 400, 800, 1600, 3200, 8000), lazy_cells=((0.0, 16, 3, 400),))
    paper = replace(quick, n_seeds=16, kernel_seeds=5, network_bits=scaling.network_bits,
                    kernel_bits=scaling.kernel_bits, kernel_samples=scaling.kernel_samples,
                    cells=quick.cells + ((0.25, 50, 5), (0.5, 128, 7), (0.0, 128, 7)), kernel_at="every_cell",
                    edge_samples=400_000,
                    online=replace(quick.online, max_steps=50_000, eval_every=2500), null_draws=10)
    smoke = replace(quick, n_seeds=2, kernel_seeds=2, n_test=500, network=MLPConfig(width=32),
                    kernel=replace(quick.kernel, width=32), offline=replace(quick.offline, max_steps=60, eval_every=30),
                    online=replace(quick.online, max_steps=60, eval_every=30), network_bits=(8,),
                    network_samples=(50, 100), kernel_bits=(4, 6, 8), kernel_samples=(50, 100), svm_samples=100,
                    agreement=(8, 2, 100), sanity=(6, 100), cells=((0.0, 8, 2), (0.5, 10, 3)),
                    cell_kernel_samples=100, edge_samples=500, null_draws=2, lazy_cells=((0.5, 10, 3, 0),))
    return {"smoke": smoke, "quick": quick, "scaling": scaling, "paper": paper}
