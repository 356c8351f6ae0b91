"""The numeric problem every engine sees: indices, matrices, no names.

Orientation: datasets are users (rows), models are items (columns), so an
accuracy matrix is ``(n_datasets, n_models)`` and top-k ranks models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import RecsysError

__all__ = ["TrainData", "DatasetBlock"]


@dataclass
class DatasetBlock:
    """Datasets to predict for: known ones (by index) or brand-new ones.

    Attributes
    ----------
    index : ndarray of int, shape (n,)
        Row of each dataset in the training data; ``-1`` for a dataset the
        engine has never seen (predicted from its features and scores alone).
    features : ndarray of float, shape (n, n_dataset_features)
    scores : dict of str to ndarray of float, shape (n, n_models)
        Transferability scores per metric, NaN where unknown.
    tokens : dict of str to ndarray of float, shape (n, vocabulary)
        Per text column, 0/1 indicators of its tokens (e.g. label names).
    text : dict of str to ndarray of float, shape (n, dim)
        Per text column, the full L2-normalized text embedding (0 where missing).
    """

    index: np.ndarray
    features: np.ndarray
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    tokens: Mapping[str, np.ndarray] = field(default_factory=dict)
    text: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.index = np.asarray(self.index, dtype=np.int64).reshape(-1)
        self.features = np.asarray(self.features, dtype=np.float64)
        if self.features.ndim != 2 or len(self.features) != len(self.index):
            raise ValueError("features must be (n, n_features) with one row per index")

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class TrainData:
    """Known accuracies plus side features, on indices.

    Attributes
    ----------
    Y : ndarray of float, shape (n_datasets, n_models)
        Recorded accuracies, NaN where unknown.
    model_features : ndarray of float, shape (n_models, n_model_features)
    dataset_features : ndarray of float, shape (n_datasets, n_dataset_features)
    scores : dict of str to ndarray of float, shape (n_datasets, n_models)
        Transferability scores per metric (NaN where unknown), usable as pair
        features; they need no fine-tuning, so they exist for cold datasets too.
    model_groups, dataset_groups : dict of str to slice
        Column ranges of each source column inside the feature matrices, keyed
        ``"categorical:col"``, ``"numeric:col"``, ``"text:col"``.
    model_ids, dataset_ids : tuple of str
        Names, for messages only; engines work on indices.
    dataset_tokens : dict of str to ndarray of float, shape (n_datasets, vocabulary)
        Per text column, 0/1 token indicators (label names ...).
    dataset_text : dict of str to ndarray of float, shape (n_datasets, dim)
        Per text column, full L2-normalized text embeddings.
    """

    Y: np.ndarray
    model_features: np.ndarray
    dataset_features: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    model_groups: dict[str, slice] = field(default_factory=dict)
    dataset_groups: dict[str, slice] = field(default_factory=dict)
    model_ids: tuple[str, ...] = ()
    dataset_ids: tuple[str, ...] = ()
    dataset_tokens: dict[str, np.ndarray] = field(default_factory=dict)
    dataset_text: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.Y = np.asarray(self.Y, dtype=np.float64)
        if self.Y.ndim != 2:
            raise ValueError(f"Y must be a (n_datasets, n_models) matrix, got shape {self.Y.shape}")
        self.model_features = _feature_matrix(self.model_features, self.Y.shape[1], "model_features", "n_models")
        self.dataset_features = _feature_matrix(self.dataset_features, self.Y.shape[0], "dataset_features",
                                                "n_datasets")
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in self.scores.items()}
        if not self.model_ids:
            self.model_ids = tuple(f"m{i}" for i in range(self.n_models))
        if not self.dataset_ids:
            self.dataset_ids = tuple(f"d{i}" for i in range(self.n_datasets))

    @property
    def n_datasets(self) -> int:
        return self.Y.shape[0]

    @property
    def n_models(self) -> int:
        return self.Y.shape[1]

    @property
    def known(self) -> np.ndarray:
        """Boolean mask of recorded cells, shape (n_datasets, n_models)."""
        return ~np.isnan(self.Y)

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Known cells as (dataset index, model index, accuracy) arrays."""
        d, m = np.nonzero(self.known)
        return d, m, self.Y[d, m]

    def block(self, index: np.ndarray | None = None) -> DatasetBlock:
        """The block of known datasets ``index`` (all datasets when omitted)."""
        index = np.arange(self.n_datasets) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        return DatasetBlock(index=index, features=self.dataset_features[index],
                            scores={k: v[index] for k, v in self.scores.items()},
                            tokens={k: v[index] for k, v in self.dataset_tokens.items()},
                            text={k: v[index] for k, v in self.dataset_text.items()})

    def with_Y(self, Y: np.ndarray) -> "TrainData":
        """The same features with other known cells (used by protocols and inner validation)."""
        return TrainData(Y=Y, model_features=self.model_features, dataset_features=self.dataset_features,
                         scores=self.scores, model_groups=self.model_groups, dataset_groups=self.dataset_groups,
                         model_ids=self.model_ids, dataset_ids=self.dataset_ids,
                         dataset_tokens=self.dataset_tokens, dataset_text=self.dataset_text)

    def check(self) -> None:
        """Reject what no engine can learn from: NaN features, infinite or out-of-range accuracies."""
        finite = self.Y[~np.isnan(self.Y)]
        if not np.isfinite(finite).all():
            raise RecsysError("accuracies contain infinite values; give finite fractions in [0, 1]")
        if finite.size == 0:
            raise RecsysError("no known accuracies to learn from; add fine-tuning records")
        if (finite < 0).any() or (finite > 1).any():
            raise RecsysError("accuracies must be fractions in [0, 1]; recsys does not rescale them")
        for name, arr in (("model features", self.model_features), ("dataset features", self.dataset_features)):
            if not np.isfinite(arr).all():
                raise RecsysError(f"{name} contain NaN or infinite values; impute them before fitting")
        for metric, arr in self.scores.items():
            if arr.shape != self.Y.shape:
                raise RecsysError(f"scores {metric!r} have shape {arr.shape}, expected {self.Y.shape}")
            if np.isinf(arr).any():
                raise RecsysError(f"scores {metric!r} contain infinite values")


def _feature_matrix(arr, n: int, name: str, rows: str) -> np.ndarray:
    """``arr`` as a float (n, k) matrix; an empty array means no features (k = 0)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == n:
        return arr
    if arr.size == 0:
        return np.zeros((n, 0))
    if arr.ndim == 1 and arr.shape[0] == n:
        return arr[:, None]
    # Never reshape silently: a transposed matrix would scramble the features.
    raise ValueError(f"{name} has shape {arr.shape}; expected ({rows}={n}, n_features)")
