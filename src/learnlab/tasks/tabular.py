"""Tabular classification data: scikit-learn's bundled sets, generated sets, and user files.

The tabular benchmark of Edelman et al., "Pareto Frontiers in Neural Feature Learning"
(NeurIPS 2023), Section 5, compares wide sparsely-initialised MLPs with forests on
small tabular sets, each downsampled to a grid of training fractions. Nothing here
downloads: the named sets ship inside scikit-learn, and ``load_table`` reads a CSV or
OpenML-format (ARFF) file the user supplies.

A data set is features ``x`` (N, d) float64 and labels ``y`` (N,) int64 in [0, C).
Missing values (empty, ``?``, ``NA``) are imputed with the column median; string-valued
feature columns are coded as integers (sorted distinct values); labels likewise.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learnlab.errors import LearnlabError
from learnlab.seeding import stream

__all__ = ["TabularDataset", "BUNDLED", "load_dataset", "load_table", "trial_split", "standardize"]

_MISSING = {"", "?", "na", "nan", "null", "none"}


@dataclass(frozen=True)
class TabularDataset:
    name: str
    x: np.ndarray  # (N, d) float64
    y: np.ndarray  # (N,) int64 in [0, n_classes)
    feature_names: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1


def _bundled(name: str) -> TabularDataset:
    import sklearn.datasets as sk

    if name == "classification":  # a generated set with a few informative features among noise
        x, y = sk.make_classification(n_samples=1000, n_features=20, n_informative=5, n_redundant=2,
                                      n_classes=2, random_state=0)
        return TabularDataset(name, x.astype(np.float64), y.astype(np.int64), tuple(f"x{i}" for i in range(20)))
    if name == "parity":  # axis-aligned: the label is the parity of 3 of 12 sign features, 5% flipped
        rng = np.random.default_rng(0)
        x = rng.choice([-1.0, 1.0], size=(2000, 12))
        y = ((x[:, [1, 4, 7]].prod(axis=1) > 0) ^ (rng.random(2000) < 0.05)).astype(np.int64)
        return TabularDataset(name, x, y, tuple(f"x{i}" for i in range(12)))
    loader = {"breast_cancer": sk.load_breast_cancer, "wine": sk.load_wine, "digits": sk.load_digits,
              "iris": sk.load_iris}[name]
    bunch = loader()
    names = tuple(str(f) for f in bunch.feature_names)
    return TabularDataset(name, bunch.data.astype(np.float64), bunch.target.astype(np.int64), names)


BUNDLED = ("breast_cancer", "wine", "digits", "iris", "classification", "parity")


def load_dataset(source: str, *, target: str | None = None) -> TabularDataset:
    """A bundled set by name (``BUNDLED``), or a ``.csv`` / ``.arff`` file by path."""
    if source in BUNDLED:
        return _bundled(source)
    if source.endswith((".csv", ".arff")):
        return load_table(source, target=target)
    raise LearnlabError(f"Unknown tabular data set '{source}': use one of {', '.join(BUNDLED)} "
                        "or a path ending in .csv or .arff.")


def load_table(path: str | Path, *, target: str | None = None) -> TabularDataset:
    """Read a CSV (header row) or an OpenML-format ARFF file; the label is column ``target``
    (default: the last column).

    Raises
    ------
    LearnlabError
        if the file is missing, empty, ragged, or has no column named ``target``.
    """
    path = Path(path)
    if not path.is_file():
        raise LearnlabError(f"Tabular file not found: {path}")
    header, rows = _read_arff(path) if path.suffix == ".arff" else _read_csv(path)
    if not rows:
        raise LearnlabError(f"Tabular file {path} has no data rows")
    if any(len(row) != len(header) for row in rows):
        bad = next(i for i, row in enumerate(rows) if len(row) != len(header))
        raise LearnlabError(f"Tabular file {path}: row {bad + 1} has {len(rows[bad])} fields, the header {len(header)}")
    label_column = len(header) - 1 if target is None else _column_index(header, target, path)
    columns = list(zip(*rows))
    features = [_encode(columns[j]) for j in range(len(header)) if j != label_column]
    labels = _encode(columns[label_column], categorical=True)
    if np.isnan(labels).any():
        raise LearnlabError(f"Tabular file {path}: the label column '{header[label_column]}' has missing values")
    x = np.stack(features, axis=1) if features else np.zeros((len(rows), 0))
    names = tuple(h for j, h in enumerate(header) if j != label_column)
    return TabularDataset(path.stem, x, labels.astype(np.int64), names)


def _column_index(header: list[str], target: str, path: Path) -> int:
    if target not in header:
        raise LearnlabError(f"Tabular file {path} has no column '{target}'; columns: {', '.join(header)}")
    return header.index(target)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        raise LearnlabError(f"Tabular file {path} is empty")
    return [h.strip() for h in rows[0]], [[v.strip() for v in row] for row in rows[1:]]


def _read_arff(path: Path) -> tuple[list[str], list[list[str]]]:
    """The @attribute names and the @data rows of an ARFF file (dense format)."""
    header, rows, in_data = [], [], False
    with open(path, newline="") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("%"):
                continue
            if in_data:
                if line.startswith("{"):
                    raise LearnlabError(f"ARFF file {path}: sparse @data rows are not supported")
                rows.append([v.strip().strip("'\"") for v in next(csv.reader([line], quotechar="'"))])
            elif line.lower().startswith("@attribute"):
                match = re.match(r"@attribute\s+('[^']*'|\"[^\"]*\"|\S+)", line, flags=re.IGNORECASE)
                header.append(match.group(1).strip("'\""))
            elif line.lower().startswith("@data"):
                in_data = True
    if not header:
        raise LearnlabError(f"ARFF file {path} declares no @attribute")
    return header, rows


def _encode(values, categorical: bool = False) -> np.ndarray:
    """Numbers as floats (missing -> NaN -> column median); any other strings as sorted codes."""
    present = [v for v in values if v.lower() not in _MISSING]
    if not categorical:
        try:
            numbers = np.array([float(v) if v.lower() not in _MISSING else np.nan for v in values])
            median = np.nanmedian(numbers) if present else 0.0
            return np.where(np.isnan(numbers), median, numbers)
        except ValueError:
            pass
    codes = {v: i for i, v in enumerate(sorted(set(present)))}
    coded = np.array([codes.get(v, np.nan) for v in values], dtype=float)
    if not categorical and np.isnan(coded).any():
        coded = np.where(np.isnan(coded), np.nanmedian(coded), coded)
    return coded


def trial_split(dataset: TabularDataset, *, fraction: float, test_fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Training and test indices for one trial: a stratified test split of ``test_fraction``,
    then a stratified ``fraction`` of the rest for training (at least one example per class).

    The test split depends only on ``seed``, so every fraction of a trial is tested on the
    same examples.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(dataset.y))
    pool, test = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=dataset.y)
    n_train = max(dataset.n_classes, int(round(fraction * len(pool))))
    if n_train >= len(pool):
        return np.sort(pool), np.sort(test)
    subset_seed = stream(seed, "train-subset") % 2**32  # NumPy's legacy seeds are 32-bit
    train, _ = train_test_split(pool, train_size=n_train, random_state=subset_seed, stratify=dataset.y[pool])
    return np.sort(train), np.sort(test)


def standardize(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and scale by the training rows' statistics (constant columns scaled by 1)."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (x_train, *others)]
