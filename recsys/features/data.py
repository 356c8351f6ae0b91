"""The numeric problem every engine sees: indices, matrices, no names.

Orientation: datasets are users (rows), models are items (columns), so an
accuracy matrix is ``(n_datasets, n_models)`` and top-k ranks models.

The known accuracies are held as :class:`Cells` (sparse, one entry per
record, in row-major order); a dense ``(n_datasets, n_models)`` view is built
on demand for the engines that want one, and refused above
:data:`DENSE_CELL_CAP` cells (a large zoo is mostly unknown, and its dense
matrix would not fit in memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import RecsysError

__all__ = ["TrainData", "DatasetBlock", "Cells", "DENSE_CELL_CAP"]

#: largest n_datasets x n_models for which a dense accuracy matrix is built (400 MB of float64)
DENSE_CELL_CAP = 50_000_000


class _RowStarts:
    """``indptr`` of cells sorted by row, found by binary search of ``d`` for the rows asked (as an array
    when asked whole): a query for one dataset of a memory-mapped zoo reads a few pages of ``d``."""

    __slots__ = ("d", "n_rows", "_all")

    def __init__(self, d: np.ndarray, n_rows: int):
        self.d, self.n_rows, self._all = d, n_rows, None

    def __getitem__(self, rows):
        if self._all is not None:
            return self._all[rows]
        rows = np.asarray(rows)
        if rows.dtype.kind not in "iu":  # slices, masks: the whole array
            return np.asarray(self)[rows]
        rows = np.where(rows < 0, rows + self.n_rows + 1, rows)
        # (needles in d's own dtype: numpy would otherwise convert all of d)
        found = np.searchsorted(self.d, rows.astype(self.d.dtype), side="left").astype(np.int64)
        return int(found) if found.ndim == 0 else found

    def __len__(self) -> int:
        return self.n_rows + 1

    def __array__(self, dtype=None, copy=None):
        if self._all is None:
            self._all = np.searchsorted(self.d, np.arange(self.n_rows + 1, dtype=self.d.dtype),
                                        side="left").astype(np.int64)
        return self._all if dtype is None else self._all.astype(dtype)


class Cells:
    """Known cells of a (n_datasets, n_models) matrix, row-major (sorted by dataset, then model).

    Parameters
    ----------
    d, m : ndarray of int
        Row (dataset) and column (model) of each cell.
    y : ndarray of float
        Value of each cell.
    shape : (int, int)
    assume_sorted : bool
        Skip sorting (the caller guarantees row-major order and no duplicates).

    Attributes
    ----------
    d, m : ndarray of int32
    y : ndarray of float64
    indptr : ndarray of int64, shape (n_datasets + 1,)
        Cells of dataset ``i`` are ``indptr[i]:indptr[i + 1]`` (CSR layout).
    """

    __slots__ = ("d", "m", "y", "shape", "indptr")

    def __init__(self, d, m, y, shape: tuple[int, int], *, assume_sorted: bool = False):
        d = np.asarray(d, dtype=np.int64).reshape(-1)
        m = np.asarray(m, dtype=np.int64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if not (len(d) == len(m) == len(y)):
            raise ValueError("d, m and y must have the same length")
        n_rows, n_cols = int(shape[0]), int(shape[1])
        if len(d) and (d.min() < 0 or d.max() >= n_rows or m.min() < 0 or m.max() >= n_cols):
            raise ValueError(f"cell indices out of range for shape {shape}")
        if not assume_sorted and len(d):
            key = d * n_cols + m
            order = np.argsort(key, kind="stable")
            key = key[order]
            if (np.diff(key) == 0).any():
                raise ValueError("duplicate cells")
            d, m, y = d[order], m[order], y[order]
        self.d = d.astype(np.int32) if n_rows < 2**31 else d
        self.m = m.astype(np.int32) if n_cols < 2**31 else m
        self.y = y
        self.shape = (n_rows, n_cols)
        self.indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.d, minlength=n_rows), out=self.indptr[1:])

    @classmethod
    def mapped(cls, d: np.ndarray, m: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> "Cells":
        """Cells over arrays used as they are (e.g. memory-mapped from a model file): no copy, no pass over them.

        The caller vouches for row-major order; each row's offsets are found by binary search of ``d``.
        Nothing else is checked here: :meth:`check_rows` checks the rows one is about to use.
        """
        c = cls.__new__(cls)
        c.d, c.m, c.y, c.shape = d, m, y, (int(shape[0]), int(shape[1]))
        c.indptr = _RowStarts(d, c.shape[0])
        return c

    def check_rows(self, rows) -> str | None:
        """What is wrong with the cells of ``rows``, or None: each cell in its row, models strictly increasing
        and in range, values in [0, 1]."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        at, pos = self.positions(rows)
        d, m, y = self.d[pos], self.m[pos], self.y[pos]
        if (d != rows[at]).any():
            return "has records out of order"
        if len(m) and (m.min() < 0 or m.max() >= self.shape[1]):
            return f"has records outside its {self.shape[1]} models"
        if (np.diff(m)[at[1:] == at[:-1]] <= 0).any():
            return "has records out of order or repeated (one record per dataset and model)"
        if not np.isfinite(y).all() or (y < 0).any() or (y > 1).any():
            return "has recorded accuracies outside [0, 1]"
        return None

    @classmethod
    def from_dense(cls, Y: np.ndarray) -> "Cells":
        """Cells of the non-NaN entries of ``Y``."""
        Y = np.asarray(Y, dtype=np.float64)
        d, m = np.nonzero(~np.isnan(Y))
        return cls(d, m, Y[d, m], Y.shape, assume_sorted=True)

    def __len__(self) -> int:
        return len(self.y)

    # -- counts and sums -------------------------------------------------------
    def row_counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def col_counts(self) -> np.ndarray:
        return np.bincount(self.m, minlength=self.shape[1])

    def row_sum(self, v: np.ndarray) -> np.ndarray:
        """Per dataset, the sum of ``v`` (one value per cell)."""
        return np.bincount(self.d, weights=v, minlength=self.shape[0])

    def col_sum(self, v: np.ndarray) -> np.ndarray:
        """Per model, the sum of ``v`` (one value per cell)."""
        return np.bincount(self.m, weights=v, minlength=self.shape[1])

    def row_mean(self, v: np.ndarray) -> np.ndarray:
        """Per dataset, the mean of ``v`` over its cells (0 without cells)."""
        return self.row_sum(v) / np.maximum(self.row_counts(), 1)

    def centre_rows(self, v: np.ndarray) -> np.ndarray:
        """``v`` minus its dataset's mean over the dataset's cells."""
        return v - self.row_mean(v)[self.d]

    # -- subsets -----------------------------------------------------------------
    def select(self, keep: np.ndarray) -> "Cells":
        """The cells where ``keep`` (bool, one per cell) is True (order kept)."""
        keep = np.asarray(keep, dtype=bool)
        return Cells(self.d[keep], self.m[keep], self.y[keep], self.shape, assume_sorted=True)

    def without_rows(self, rows: np.ndarray) -> "Cells":
        """Every cell except those of datasets ``rows``."""
        drop = np.zeros(self.shape[0], dtype=bool)
        drop[np.asarray(rows, dtype=np.int64)] = True
        return self.select(~drop[self.d])

    def rows_mask(self, rows: np.ndarray) -> np.ndarray:
        """Bool per cell: does it belong to one of ``rows``."""
        flag = np.zeros(self.shape[0], dtype=bool)
        flag[np.asarray(rows, dtype=np.int64)] = True
        return flag[self.d]

    def with_values(self, y: np.ndarray) -> "Cells":
        return Cells(self.d, self.m, y, self.shape, assume_sorted=True)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(models, values) of dataset ``i``."""
        sl = slice(self.indptr[i], self.indptr[i + 1])
        return self.m[sl], self.y[sl]

    # -- dense views ----------------------------------------------------------------
    def dense(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), n_models) with the known values, NaN elsewhere (all rows when None)."""
        if rows is None:
            _check_dense(self.shape)
            out = np.full(self.shape, np.nan)
            out[self.d, self.m] = self.y
            return out
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.full((len(rows), self.shape[1]), np.nan)
        at, pos = self.positions(rows)
        out[at, self.m[pos]] = self.y[pos]
        return out

    def positions(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """The cells of ``rows`` (in that order): (index into ``rows`` of each, its position in these cells)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        first = self.indptr[rows]
        sizes = self.indptr[rows + 1] - first
        at = np.repeat(np.arange(len(rows)), sizes)
        starts = np.cumsum(sizes) - sizes
        return at, np.repeat(first, sizes) + (np.arange(len(at)) - starts[at])

    def csr(self, values: np.ndarray | None = None):
        """A ``scipy.sparse.csr_matrix`` of ``values`` (default ``y``) on these cells.

        Beware: scipy drops explicit zeros in some operations; use it for sums.
        """
        import scipy.sparse as sp

        v = self.y if values is None else values
        return sp.csr_matrix((v, self.m, self.indptr), shape=self.shape)


def _check_dense(shape: tuple[int, int]) -> None:
    if shape[0] * shape[1] > DENSE_CELL_CAP:
        raise RecsysError(f"this zoo has {shape[0]:,} datasets x {shape[1]:,} models = {shape[0] * shape[1]:,} "
                          f"cells, too many for a dense accuracy matrix (at most {DENSE_CELL_CAP:,}); engines that "
                          f"need one (mc, als, lr, gat ...) do not take zoos of this size: use the default engine")


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
    tokens : dict of str to sparse matrix (CSR) of float, shape (n, vocabulary)
        Per text column, 0/1 indicators of its tokens (e.g. label names).
    text : dict of str to ndarray of float, shape (n, dim)
        Per text column, the full L2-normalized text embedding (0 where missing).
    """

    index: np.ndarray
    features: np.ndarray
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    tokens: Mapping[str, object] = field(default_factory=dict)
    text: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.index = np.asarray(self.index, dtype=np.int64).reshape(-1)
        self.features = np.asarray(self.features, dtype=np.float64)
        if self.features.ndim != 2 or len(self.features) != len(self.index):
            raise ValueError("features must be (n, n_features) with one row per index")

    def __len__(self) -> int:
        return len(self.index)


class TrainData:
    """Known accuracies plus side features, on indices.

    Give either ``Y`` (dense, NaN where unknown) or ``records`` (sparse).

    Attributes
    ----------
    records : Cells
        The known accuracies (sparse, row-major).
    Y : ndarray of float, shape (n_datasets, n_models)
        Dense view of ``records`` (NaN where unknown), built on first use;
        refused above :data:`DENSE_CELL_CAP` cells.
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
    dataset_tokens : dict of str to sparse matrix (CSR), shape (n_datasets, vocabulary)
        Per text column, 0/1 token indicators (label names ...).
    dataset_text : dict of str to ndarray of float, shape (n_datasets, dim)
        Per text column, full L2-normalized text embeddings.
    """

    def __init__(self, Y: np.ndarray | None = None, model_features=None, dataset_features=None, scores=None,
                 model_groups=None, dataset_groups=None, model_ids=(), dataset_ids=(), dataset_tokens=None,
                 dataset_text=None, *, records: Cells | None = None):
        if (Y is None) == (records is None):
            raise ValueError("give either Y (dense) or records (sparse)")
        if Y is not None:
            Y = np.asarray(Y, dtype=np.float64)
            if Y.ndim != 2:
                raise ValueError(f"Y must be a (n_datasets, n_models) matrix, got shape {Y.shape}")
            records = Cells.from_dense(Y)
        self.records = records
        self._Y = Y
        n_datasets, n_models = records.shape
        self.model_features = _feature_matrix(model_features, n_models, "model_features", "n_models")
        self.dataset_features = _feature_matrix(dataset_features, n_datasets, "dataset_features", "n_datasets")
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in (scores or {}).items()}
        self.model_groups = dict(model_groups or {})
        self.dataset_groups = dict(dataset_groups or {})
        self.model_ids = tuple(model_ids) or tuple(f"m{i}" for i in range(n_models))
        self.dataset_ids = tuple(dataset_ids) or tuple(f"d{i}" for i in range(n_datasets))
        self.dataset_tokens = dict(dataset_tokens or {})
        self.dataset_text = dict(dataset_text or {})

    @property
    def Y(self) -> np.ndarray:
        if self._Y is None:
            self._Y = self.records.dense()
        return self._Y

    @property
    def n_datasets(self) -> int:
        return self.records.shape[0]

    @property
    def n_models(self) -> int:
        return self.records.shape[1]

    @property
    def known(self) -> np.ndarray:
        """Boolean mask of recorded cells, shape (n_datasets, n_models) (dense: small zoos only)."""
        return ~np.isnan(self.Y)

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Known cells as (dataset index, model index, accuracy) arrays, row-major."""
        return self.records.d.astype(np.int64), self.records.m.astype(np.int64), self.records.y

    def block(self, index: np.ndarray | None = None) -> DatasetBlock:
        """The block of known datasets ``index`` (all datasets when omitted)."""
        index = np.arange(self.n_datasets) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        return DatasetBlock(index=index, features=self.dataset_features[index],
                            scores={k: v[index] for k, v in self.scores.items()},
                            tokens={k: v[index] for k, v in self.dataset_tokens.items()},
                            text={k: v[index] for k, v in self.dataset_text.items()})

    def _like(self, **changes) -> "TrainData":
        args = dict(model_features=self.model_features, dataset_features=self.dataset_features,
                    scores=self.scores, model_groups=self.model_groups, dataset_groups=self.dataset_groups,
                    model_ids=self.model_ids, dataset_ids=self.dataset_ids,
                    dataset_tokens=self.dataset_tokens, dataset_text=self.dataset_text)
        args.update(changes)
        return TrainData(**args)

    def subset_datasets(self, rows: np.ndarray) -> "TrainData":
        """The datasets ``rows`` only (renumbered 0..len(rows)-1), with their records, features and scores."""
        rows = np.asarray(rows, dtype=np.int64)
        remap = np.full(self.n_datasets, -1)
        remap[rows] = np.arange(len(rows))
        keep = remap[self.records.d] >= 0
        r = self.records
        records = Cells(remap[r.d[keep]], r.m[keep], r.y[keep], (len(rows), self.n_models))
        return TrainData(records=records, model_features=self.model_features,
                         dataset_features=self.dataset_features[rows], scores={k: v[rows] for k, v in self.scores.items()},
                         model_groups=self.model_groups, dataset_groups=self.dataset_groups, model_ids=self.model_ids,
                         dataset_ids=tuple(np.asarray(self.dataset_ids, dtype=object)[rows]),
                         dataset_tokens={k: v[rows] for k, v in self.dataset_tokens.items()},
                         dataset_text={k: v[rows] for k, v in self.dataset_text.items()})

    def with_Y(self, Y: np.ndarray) -> "TrainData":
        """The same features with other known cells (used by protocols and inner validation)."""
        return self._like(Y=Y)

    def with_records(self, records: Cells) -> "TrainData":
        """The same features with other known cells, given sparse."""
        return self._like(records=records)

    def check(self) -> None:
        """Reject what no engine can learn from: NaN features, infinite or out-of-range accuracies."""
        finite = self.records.y
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
            if arr.shape != self.records.shape:
                raise RecsysError(f"scores {metric!r} have shape {arr.shape}, expected {self.records.shape}")
            if np.isinf(arr).any():
                raise RecsysError(f"scores {metric!r} contain infinite values")


def _feature_matrix(arr, n: int, name: str, rows: str) -> np.ndarray:
    """``arr`` as a float (n, k) matrix; an empty array means no features (k = 0)."""
    if arr is None:
        return np.zeros((n, 0))
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == n:
        return arr
    if arr.size == 0:
        return np.zeros((n, 0))
    if arr.ndim == 1 and arr.shape[0] == n:
        return arr[:, None]
    # Never reshape silently: a transposed matrix would scramble the features.
    raise ValueError(f"{name} has shape {arr.shape}; expected ({rows}={n}, n_features)")
