"""mnist1d: ten classes of 40-sample 1-D signals, generated offline by the ``mnist1d`` package.

Greydanus, "Scaling down deep learning" (2020; package ``mnist1d``): each class is a
12-point template, padded, shifted, sheared, scaled and noised, then resampled to 40
points. Nothing is downloaded: the package's own generator runs here. Used by
``subtuning`` (the pretraining source and two targets) and ``sampler-distillation``
(noisy-label teachers and their students).

- :func:`sample_mnist1d`: ``n`` examples, optionally from other templates or under
  other transformation scales (a distribution shift)
- :func:`new_templates`: ten new random templates (ten new classes)
- ``STRONGER_SHIFT``: transformation scales for a shifted target (more correlated
  noise, shear and translation than the defaults)
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sample_mnist1d", "new_templates", "STRONGER_SHIFT"]

STRONGER_SHIFT = {"corr_noise_scale": 0.6, "iid_noise_scale": 0.05, "shear_scale": 1.5, "max_translation": 60}


def sample_mnist1d(n_samples: int, *, seed: int, templates: dict | None = None,
                   **scales: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, 40) float32 and y (n,) int64.

    seed : the package's generator seed (numpy, < 2**32)
    templates : ``{"x", "t", "y"}`` templates (default: the digit-like ones)
    scales : overrides of the package's transformation arguments, e.g. ``STRONGER_SHIFT``
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    # The package draws classes in whole rounds of ten: generate a multiple of ten, keep n.
    args.num_samples, args.seed, args.train_split = int(np.ceil(n_samples / 10) * 10), int(seed), 1.0
    for key, value in scales.items():
        setattr(args, key, value)
    data = make_dataset(args, template=templates)
    x = torch.tensor(data["x"][:n_samples], dtype=torch.float32)
    return x, torch.tensor(data["y"][:n_samples], dtype=torch.int64)


def new_templates(seed: int) -> dict:
    """Ten new classes: smooth random 12-point shapes at the scale of mnist1d's digit templates."""
    from mnist1d.data import get_templates

    original = get_templates()
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(10, 14)).cumsum(axis=1)
    smooth = (raw[:, :-2] + raw[:, 1:-1] + raw[:, 2:]) / 3
    smooth = (smooth - smooth.mean(1, keepdims=True)) / smooth.std(1, keepdims=True)
    scale = np.asarray(original["x"]).std()
    return {"x": smooth * scale + np.asarray(original["x"]).mean(), "t": original["t"], "y": np.arange(10)}
