"""The fitted zoo's data, owned once: ids, records, side features, scores (indices, no names inside).

Orientation: datasets are users (rows), models are items (columns), so an
accuracy matrix is ``(n_datasets, n_models)`` and top-k ranks models.

:class:`ZooData` is the one owner of what a zoo gives the engines: the known
accuracies (:class:`Cells`: sparse, one entry per record, row-major), each
side's metadata as :class:`SideFeatures` (named blocks: one-hot, numeric, text
dimensions, plus the token sets and full text embeddings of the text
columns), the transferability scores and the id maps (:class:`Ids`). The
:class:`~recsys.recommender.Recommender` owns it and saves it once; engines
receive it at fit and at load and keep only what they learned. A dense
``(n_datasets, n_models)`` view is built on demand for the engines that want
one, and refused above :data:`DENSE_CELL_CAP` cells.

Numpy only: answering for the zoo's datasets imports nothing else.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np

from ..errors import RecsysError, UnknownNameError

__all__ = ["ZooData", "DatasetBlock", "Cells", "SideFeatures", "Layout", "TokenSets", "Ids", "DENSE_CELL_CAP"]

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

    def rows_mask(self, rows: np.ndarray) -> np.ndarray:
        """Bool per cell: does it belong to one of ``rows``."""
        flag = np.zeros(self.shape[0], dtype=bool)
        flag[np.asarray(rows, dtype=np.int64)] = True
        return flag[self.d]

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
        raise RecsysError(f"use the default engine: this zoo has {shape[0]:,} datasets x {shape[1]:,} models = "
                          f"{shape[0] * shape[1]:,} cells, too many for a dense accuracy matrix (at most "
                          f"{DENSE_CELL_CAP:,}), and engines that need one (mc, als, lr, gat ...) do not take it")


class TokenSets:
    """The token sets of some rows (CSR layout in plain numpy: no scipy needed to read them).

    Parameters
    ----------
    indptr : ndarray of int, shape (n + 1,)
    indices : ndarray of int
        Token indices of row ``i``: ``indices[indptr[i]:indptr[i + 1]]`` (sorted, unique).
    n_cols : int
        Vocabulary size.
    """

    def __init__(self, indptr, indices, n_cols: int):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int32)
        self.n_cols = int(n_cols)
        self._dense = None

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], n_cols: int) -> "TokenSets":
        """From one list of token indices per row (each sorted, unique)."""
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        indices = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(indptr[-1]))
        return cls(indptr, indices, n_cols)

    @classmethod
    def empty(cls, n: int, n_cols: int) -> "TokenSets":
        """``n`` rows without tokens."""
        return cls(np.zeros(n + 1, np.int64), np.zeros(0, np.int32), n_cols)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.n_cols

    def sizes(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i]:self.indptr[i + 1]]

    def take(self, rows) -> "TokenSets":
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        sizes = self.sizes()[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        pos = np.repeat(self.indptr[rows], sizes) + (np.arange(indptr[-1]) - np.repeat(indptr[:-1], sizes))
        return TokenSets(indptr, self.indices[pos], self.n_cols)

    __getitem__ = take

    def dense(self) -> np.ndarray:
        """0/1 float32 matrix (n, n_cols), built once."""
        if self._dense is None:
            out = np.zeros((len(self), self.n_cols), dtype=np.float32)
            out[np.repeat(np.arange(len(self)), self.sizes()), self.indices] = 1.0
            self._dense = out
        return self._dense

    def csr(self):
        """As a ``scipy.sparse.csr_matrix`` of ones (imports scipy)."""
        import scipy.sparse as sp

        return sp.csr_matrix((np.ones(len(self.indices)), self.indices, self.indptr), shape=self.shape)


@dataclass(frozen=True)
class Layout:
    """Where each metadata column's features lie in a side's feature matrix: ``(column, start, stop)`` each.

    ``numeric`` spans hold the standardized value at ``start`` and, when the
    span has two columns, a missing-value indicator after it.
    """

    categorical: tuple = ()
    numeric: tuple = ()
    text_dims: tuple = ()

    @classmethod
    def of(cls, categorical: Sequence[tuple[str, int]], numeric: Sequence[tuple[str, bool]],
           text_dims: Sequence[tuple[str, int]]) -> "Layout":
        """Spans laid out in order: (column, levels) one-hot blocks, (column, has a missing indicator)
        numerics, (column, dimensions) text blocks."""
        spans, pos = {}, 0
        for kind, cols in (("categorical", categorical), ("numeric", [(c, 1 + bool(m)) for c, m in numeric]),
                           ("text_dims", text_dims)):
            spans[kind] = tuple((c, pos, pos := pos + int(k)) for c, k in cols)
        return cls(**spans)

    def span(self, kind: str, column: str) -> slice:
        """The columns of ``column``'s ``kind`` block (``"categorical"``, ``"numeric"`` or ``"text_dims"``)."""
        for c, a, b in getattr(self, kind):
            if c == column:
                return slice(a, b)
        raise KeyError(f"no {kind} block for column {column!r}")

    def to_json(self) -> dict:
        return {k: [list(s) for s in getattr(self, k)] for k in ("categorical", "numeric", "text_dims")}

    @classmethod
    def from_json(cls, obj: Mapping | None) -> "Layout":
        obj = obj or {}
        return cls(**{k: tuple((str(c), int(a), int(b)) for c, a, b in obj.get(k, ()))
                      for k in ("categorical", "numeric", "text_dims")})


@dataclass
class SideFeatures:
    """One side's metadata (models or datasets) as features, one row per id.

    Attributes
    ----------
    matrix : ndarray of float, shape (n, n_features)
        Every feature: one-hot categoricals, standardized numerics (with missing
        indicators), text dimensions; :attr:`layout` names their spans.
    layout : Layout
    tokens : dict of str to TokenSets
        Per text column, the tokens (label names ...) of each row.
    text : dict of str to ndarray, shape (n, dim)
        Per text column, the full L2-normalized text embedding (0 where missing).
    """

    matrix: np.ndarray
    layout: Layout = field(default_factory=Layout)
    tokens: Mapping[str, TokenSets] = field(default_factory=dict)
    text: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim == 1:
            m = m[:, None]
        if m.ndim != 2:
            raise ValueError(f"a feature matrix must be (n, n_features), got shape {m.shape}")
        self.matrix = m

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def categorical(self) -> dict[str, np.ndarray]:
        """Per categorical column, its one-hot block (n, levels)."""
        return {c: self.matrix[:, a:b] for c, a, b in self.layout.categorical}

    @property
    def numeric(self) -> dict[str, np.ndarray]:
        """Per numeric column, its standardized value (n,) (0 where missing)."""
        return {c: self.matrix[:, a] for c, a, _ in self.layout.numeric}

    def take(self, rows) -> "SideFeatures":
        """The rows ``rows`` only."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return SideFeatures(self.matrix[rows], self.layout, {c: t.take(rows) for c, t in self.tokens.items()},
                            {c: np.asarray(e[rows]) for c, e in self.text.items()})

    def like(self, other: "SideFeatures") -> "SideFeatures":
        """These rows with ``other``'s text columns: a column they lack is missing (no token, zero embedding)."""
        n = len(self)
        tokens = {c: self.tokens[c] if c in self.tokens else TokenSets.empty(n, t.n_cols)
                  for c, t in other.tokens.items()}
        text = {c: np.asarray(self.text[c]) if c in self.text else np.zeros((n, e.shape[1]))
                for c, e in other.text.items()}
        return SideFeatures(self.matrix, other.layout, tokens, text)

    # -- model files -------------------------------------------------------------
    def to_arrays(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"layout": self.layout.to_json(), "tokens": sorted(self.tokens), "text": sorted(self.text)}
        arrays = {f"{prefix}matrix": self.matrix}
        for i, c in enumerate(meta["tokens"]):
            t = self.tokens[c]
            arrays.update({f"{prefix}tok{i}_indptr": t.indptr, f"{prefix}tok{i}_indices": t.indices,
                           f"{prefix}tok{i}_shape": np.asarray(t.shape, dtype=np.int64)})
        for i, c in enumerate(meta["text"]):
            e = self.text[c]
            single = np.asarray(e, dtype=np.float32)  # half the bytes when nothing is lost (encoders give float32)
            arrays[f"{prefix}txt{i}"] = single if np.array_equal(single, e) else e
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping, arrays: Mapping[str, np.ndarray], prefix: str) -> "SideFeatures":
        """The side saved by :meth:`to_arrays`; text embeddings keep their stored dtype (a mapped array stays
        mapped: the similarity features compute in float64 either way)."""
        tokens = {c: TokenSets(arrays[f"{prefix}tok{i}_indptr"], arrays[f"{prefix}tok{i}_indices"],
                               int(arrays[f"{prefix}tok{i}_shape"][1])) for i, c in enumerate(meta.get("tokens", []))}
        text = {c: arrays[f"{prefix}txt{i}"] for i, c in enumerate(meta.get("text", []))}
        return cls(arrays[f"{prefix}matrix"], Layout.from_json(meta.get("layout")), tokens, text)


class Ids(Sequence[str]):
    """Names in index order, and the index of a name (:class:`UnknownNameError` with close names otherwise).

    A lookup of a few names scans the list; more build a dict once (a query for
    one dataset of a 100,000-dataset zoo builds no index).
    """

    def __init__(self, names: Sequence[str], kind: str):
        self._names = list(map(str, names))
        self.kind = kind
        self._pos: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, i):
        return self._names[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __contains__(self, name) -> bool:
        return self.get(name) is not None

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def get(self, name) -> int | None:
        """Index of ``name`` (compared as the zoo's ids are: stripped, Unicode NFC), or None."""
        name = _as_id(name)
        if self._pos is None:
            if len(self._names) <= 64:
                try:
                    return self._names.index(str(name))
                except ValueError:
                    return None
            self._pos = {n: i for i, n in enumerate(self._names)}
        return self._pos.get(str(name))

    def index(self, name) -> int:
        """Index of ``name``."""
        return int(self.indices([name])[0])

    def indices(self, names: Sequence[str]) -> np.ndarray:
        """Index of each name of ``names``."""
        names = [_as_id(n) for n in names]
        if self._pos is None and len(names) <= 4:
            out = []
            for n in names:
                try:
                    out.append(self._names.index(n))
                except ValueError:
                    raise UnknownNameError(self.kind, n, self._names) from None
            return np.asarray(out, dtype=np.int64)
        out = np.empty(len(names), dtype=np.int64)
        for i, n in enumerate(names):
            pos = self.get(n)
            if pos is None:
                raise UnknownNameError(self.kind, n, self._names)
            out[i] = pos
        return out


def _as_id(name) -> str:
    """A queried name as the zoo's ids are stored (stripped, Unicode NFC: a name typed in NFD, as macOS file
    names are, finds its dataset)."""
    return unicodedata.normalize("NFC", str(name).strip())


class DatasetBlock:
    """Datasets to predict for: the zoo's (by index) or brand-new ones.

    Parameters
    ----------
    index : ndarray of int, shape (n,)
        Row of each dataset in the zoo; ``-1`` for a dataset the engine has
        never seen (predicted from its features and scores alone).
    side : SideFeatures, optional
        The datasets' features (``features``: a plain matrix, when there is no structure to give).
    scores : dict of str to ndarray of float, shape (n, n_models)
        Transferability scores per metric, NaN where unknown.
    """

    def __init__(self, index, side: SideFeatures | None = None, scores: Mapping[str, np.ndarray] | None = None, *,
                 features=None):
        self.index = np.asarray(index, dtype=np.int64).reshape(-1)
        if side is None:
            side = SideFeatures(np.zeros((len(self.index), 0)) if features is None else features)
        self.side = side
        self.scores = dict(scores or {})
        if len(side) != len(self.index):
            raise ValueError("features must be (n, n_features) with one row per index")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def features(self) -> np.ndarray:
        """The flat feature matrix (n, n_features)."""
        return self.side.matrix

    def take(self, rows) -> "DatasetBlock":
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return DatasetBlock(self.index[rows], self.side.take(rows), {k: np.asarray(v)[rows] for k, v in
                                                                     self.scores.items()})


class ZooData:
    """The known accuracies plus side features and scores of a zoo, on indices: what engines are fitted on.

    Give either ``Y`` (dense, NaN where unknown) or ``records`` (sparse); each
    side as :class:`SideFeatures` (``models`` / ``datasets``) or as a plain
    matrix (``model_features`` / ``dataset_features``).

    Attributes
    ----------
    records : Cells
        The known accuracies (sparse, row-major).
    models, datasets : SideFeatures
    scores : dict of str to ndarray of float, shape (n_datasets, n_models)
        Transferability scores per metric (NaN where unknown), usable as pair
        features; they need no fine-tuning, so they exist for cold datasets too.
    model_ids, dataset_ids : Ids
        Names; engines work on indices.
    """

    def __init__(self, Y: np.ndarray | None = None, model_features=None, dataset_features=None, scores=None,
                 model_ids=(), dataset_ids=(), *, records: Cells | None = None, models: SideFeatures | None = None,
                 datasets: SideFeatures | None = None, model_records: np.ndarray | None = None):
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
        self.models = models if models is not None else SideFeatures(_feature_matrix(model_features, n_models,
                                                                                    "model_features", "n_models"))
        self.datasets = datasets if datasets is not None else SideFeatures(
            _feature_matrix(dataset_features, n_datasets, "dataset_features", "n_datasets"))
        for side, n, what in ((self.models, n_models, "models"), (self.datasets, n_datasets, "datasets")):
            if len(side) != n:
                raise ValueError(f"{what} features have {len(side)} rows; expected {n}")
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in (scores or {}).items()}
        self._model_records = model_records
        self.model_ids = model_ids if isinstance(model_ids, Ids) else \
            Ids(model_ids or [f"m{i}" for i in range(n_models)], "model")
        self.dataset_ids = dataset_ids if isinstance(dataset_ids, Ids) else \
            Ids(dataset_ids or [f"d{i}" for i in range(n_datasets)], "dataset")

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
    def model_features(self) -> np.ndarray:
        return self.models.matrix

    @property
    def dataset_features(self) -> np.ndarray:
        return self.datasets.matrix

    @property
    def known(self) -> np.ndarray:
        """Boolean mask of recorded cells, shape (n_datasets, n_models) (dense: small zoos only)."""
        return ~np.isnan(self.Y)

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Known cells as (dataset index, model index, accuracy) arrays, row-major."""
        return self.records.d.astype(np.int64), self.records.m.astype(np.int64), self.records.y

    def block(self, index: np.ndarray | None = None) -> DatasetBlock:
        """The block of the zoo's datasets ``index`` (all datasets when omitted)."""
        index = np.arange(self.n_datasets) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        return DatasetBlock(index, self.datasets.take(index), {k: v[index] for k, v in self.scores.items()})

    def _like(self, **changes) -> "ZooData":
        args = dict(models=self.models, datasets=self.datasets, scores=self.scores, model_ids=self.model_ids,
                    dataset_ids=self.dataset_ids)
        args.update(changes)
        return ZooData(**args)

    def subset_datasets(self, rows: np.ndarray) -> "ZooData":
        """The datasets ``rows`` only (renumbered 0..len(rows)-1), with their records, features and scores."""
        rows = np.asarray(rows, dtype=np.int64)
        remap = np.full(self.n_datasets, -1)
        remap[rows] = np.arange(len(rows))
        keep = remap[self.records.d] >= 0
        r = self.records
        records = Cells(remap[r.d[keep]], r.m[keep], r.y[keep], (len(rows), self.n_models))
        return self._like(records=records, datasets=self.datasets.take(rows),
                          scores={k: v[rows] for k, v in self.scores.items()},
                          dataset_ids=[self.dataset_ids[i] for i in rows])

    def with_Y(self, Y: np.ndarray) -> "ZooData":
        """The same features with other known cells (used by protocols and inner validation)."""
        return self._like(Y=Y)

    def with_records(self, records: Cells) -> "ZooData":
        """The same features with other known cells, given sparse."""
        return self._like(records=records)

    def check(self) -> None:
        """Reject what no engine can learn from: NaN features, infinite or out-of-range accuracies."""
        y = self.records.y
        if not np.isfinite(y).all():
            raise RecsysError("give accuracies as finite fractions in [0, 1]: they contain infinite values")
        if y.size == 0:
            raise RecsysError("add fine-tuning records: there are no known accuracies to learn from")
        if (y < 0).any() or (y > 1).any():
            raise RecsysError("give accuracies as fractions in [0, 1] (recsys does not rescale them): some are outside")
        for name, arr in (("model features", self.model_features), ("dataset features", self.dataset_features)):
            if not np.isfinite(arr).all():
                raise RecsysError(f"impute the {name} before fitting: they contain NaN or infinite values")
        for metric, arr in self.scores.items():
            if arr.shape != self.records.shape:
                raise RecsysError(f"give scores {metric!r} of shape {self.records.shape}: got {arr.shape}")
            if np.isinf(arr).any():
                raise RecsysError(f"give finite scores {metric!r}: they contain infinite values")

    # -- model files -------------------------------------------------------------
    def to_arrays(self, prefix: str = "data.") -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able meta and named arrays that :meth:`from_arrays` restores."""
        r = self.records
        arrays = {f"{prefix}d": r.d.astype(np.int32), f"{prefix}m": r.m.astype(np.int32), f"{prefix}y": r.y,
                  f"{prefix}model_records": r.col_counts().astype(np.int64)}
        m_meta, m_arr = self.models.to_arrays(f"{prefix}models.")
        d_meta, d_arr = self.datasets.to_arrays(f"{prefix}datasets.")
        arrays.update({**m_arr, **d_arr})
        metrics = list(self.scores)
        arrays.update({f"{prefix}scores.{i}": self.scores[k] for i, k in enumerate(metrics)})
        meta = {"model_ids": list(self.model_ids), "dataset_ids": list(self.dataset_ids), "metrics": metrics,
                "models": m_meta, "datasets": d_meta}
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping, arrays: Mapping[str, np.ndarray], prefix: str = "data.") -> "ZooData":
        """The data saved by :meth:`to_arrays`. Memory-mapped records are used where they lie (rows are
        checked where read, :meth:`Cells.check_rows`); others were checked by ``check_model_state``."""
        shape = (len(meta["dataset_ids"]), len(meta["model_ids"]))
        parts = [arrays[f"{prefix}{k}"] for k in ("d", "m", "y")]
        records = Cells.mapped(*parts, shape) if any(isinstance(p, np.memmap) for p in parts) else \
            Cells(*parts, shape, assume_sorted=True)
        return cls(records=records, models=SideFeatures.from_arrays(meta["models"], arrays, f"{prefix}models."),
                   datasets=SideFeatures.from_arrays(meta["datasets"], arrays, f"{prefix}datasets."),
                   scores={k: arrays[f"{prefix}scores.{i}"] for i, k in enumerate(meta.get("metrics", []))},
                   model_ids=meta["model_ids"], dataset_ids=meta["dataset_ids"],
                   model_records=np.asarray(arrays[f"{prefix}model_records"]))

    def model_record_counts(self) -> np.ndarray:
        """Records per model (a model file stores them: no pass over a mapped zoo's records)."""
        return self.records.col_counts() if self._model_records is None else self._model_records


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
