"""Learned-metric kernel over datasets: a cold-capable profile from similar datasets.

Two datasets are compared by *similarity features* built from their metadata:
same value of each categorical column, minus the distance of each numeric
column, Jaccard overlap of each text column's tokens (label names) and cosine
of its text embeddings. A dataset's profile is the weighted mean of its
neighbours' standardized accuracies, weights ``exp(beta . phi + gamma log
coherence)``, where the coherence of a neighbour is how well its records agree
with the zoo's mean profile (a dataset of near-constant, noisy accuracies gets
little say). ``beta`` and ``gamma`` are learned by leave-one-dataset-out squared
error on the datasets with enough records (Nadaraya-Watson regression with a
learned metric; Weinberger & Tesauro, 2007, "Metric learning for kernel
regression"). Where no neighbour knows a model, the zoo's mean profile is used.

Neighbours: every other dataset of the zoo while the zoo has at most
:data:`DENSE_MAX_DATASETS` datasets (the weights are then a dense datasets x
datasets matrix, which is fast at that size); above that, the
:data:`N_NEIGHBOURS` nearest datasets in the space of the dataset features
(a sparse graph: memory and time grow linearly with the datasets), and the
metric is learned on at most :data:`MAX_TARGETS` target datasets.

Standardized accuracies are given per known cell (:class:`~recsys.features.data.Cells`).
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from ...features.data import Cells, SideFeatures
from .scale import Standardization

__all__ = ["SimilarityInputs", "DatasetKernel", "NeighbourIndex", "DENSE_MAX_DATASETS", "N_NEIGHBOURS", "MAX_TARGETS"]

#: up to this many datasets, every other dataset is a neighbour (dense weights)
DENSE_MAX_DATASETS = 1500
#: neighbours per dataset above that size
N_NEIGHBOURS = 16
#: most target datasets the metric is learned on above that size
MAX_TARGETS = 2000
#: dimensions of the neighbour search space (principal directions of the dataset features)
SEARCH_DIMS = 8


@dataclass
class SimilarityInputs:
    """What the similarity features are computed from, for one set of datasets (views of their features).

    Attributes
    ----------
    categorical : list of ndarray (n, levels)
        One-hot blocks, one per categorical column.
    numeric : ndarray (n, n_numeric)
        Standardized numeric columns (0 where missing).
    tokens : list of TokenSets (n, vocabulary)
        Token sets, one per text column (sorted by column).
    text : list of ndarray (n, dim)
        L2-normalized text embeddings, one per text column (sorted by column).
    """

    categorical: list
    numeric: np.ndarray
    tokens: list
    text: list

    @classmethod
    def of(cls, side: SideFeatures) -> "SimilarityInputs":
        nums = list(side.numeric.values())
        numeric = np.column_stack(nums) if nums else np.zeros((len(side), 0))
        return cls(list(side.categorical.values()), numeric, [side.tokens[c] for c in sorted(side.tokens)],
                   [side.text[c] for c in sorted(side.text)])

    def __len__(self) -> int:
        return self.numeric.shape[0]

    def n_features(self) -> int:
        return len(self.categorical) + self.numeric.shape[1] + len(self.tokens) + len(self.text)

    def take(self, rows: np.ndarray) -> "SimilarityInputs":
        return SimilarityInputs([c[rows] for c in self.categorical], self.numeric[rows],
                                [t[rows] for t in self.tokens], [e[rows] for e in self.text])


# -- similarity features ------------------------------------------------------------
def similarity_features(a: SimilarityInputs, b: SimilarityInputs) -> np.ndarray:
    """Similarity features between every dataset of ``a`` and of ``b``: (n_features, len(a), len(b))."""
    feats = []
    for ca, cb in zip(a.categorical, b.categorical):
        feats.append(ca @ cb.T)  # 1 when both have the same level
    for k in range(a.numeric.shape[1]):
        feats.append(-np.abs(a.numeric[:, k][:, None] - b.numeric[:, k][None, :]))
    for ta, tb in zip(a.tokens, b.tokens):
        inter = (ta.dense() @ tb.dense().T).astype(np.float64)
        union = ta.sizes()[:, None] + tb.sizes()[None, :] - inter
        feats.append(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0))
    for ea, eb in zip(a.text, b.text):
        feats.append(np.asarray(ea, float) @ np.asarray(eb, float).T)
    if not feats:
        return np.zeros((0, len(a), len(b)))
    return np.stack(feats)


def pair_features(a: SimilarityInputs, b: SimilarityInputs, nb: np.ndarray, block: int = 8192) -> np.ndarray:
    """Similarity features of each dataset ``i`` of ``a`` with its neighbours ``b[nb[i, j]]``: (n_features, n, K)."""
    n, K = nb.shape
    if n > block:
        return np.concatenate([pair_features(a.take(np.arange(i, min(i + block, n))), b, nb[i:i + block], block)
                               for i in range(0, n, block)], axis=1)
    feats = []
    for ca, cb in zip(a.categorical, b.categorical):
        cn = cb[nb.reshape(-1)]  # (only the neighbours' rows: b may hold every dataset of a large zoo)
        la, lb = ca.argmax(1), cn.argmax(1).reshape(n, K)
        has_a, has_b = ca.max(1) > 0, (cn.max(1) > 0).reshape(n, K)
        feats.append(((la[:, None] == lb) & has_a[:, None] & has_b).astype(float))
    for k in range(a.numeric.shape[1]):
        feats.append(-np.abs(a.numeric[:, k][:, None] - b.numeric[:, k][nb]))
    for ta, tb in zip(a.tokens, b.tokens):
        size_a, size_b = ta.sizes(), tb.sizes()
        inter = np.zeros((n, K))
        if n * K <= 4096:  # a few queries: plain set intersections (no scipy)
            for i in range(n):
                row = ta.row(i)
                for j in range(K):
                    inter[i, j] = len(np.intersect1d(row, tb.row(nb[i, j]), assume_unique=True))
        else:
            A, B = ta.csr(), tb.csr()
            for j in range(K):
                inter[:, j] = np.asarray(A.multiply(B[nb[:, j]]).sum(1)).reshape(-1)
        union = size_a[:, None] + size_b[nb] - inter
        feats.append(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0))
    for ea, eb in zip(a.text, b.text):
        feats.append(np.einsum("nd,nkd->nk", np.asarray(ea, float), np.asarray(eb[nb], float)))
    if not feats:
        return np.zeros((0, n, K))
    return np.stack(feats)


class NeighbourIndex:
    """Nearest datasets in the space of the dataset features: a KD-tree on their first principal directions.

    Exact Euclidean search in the projected space (``scipy.spatial.cKDTree``),
    ``O(n log n)`` to build and ``O(log n)`` per query; the projection keeps at
    most :data:`SEARCH_DIMS` directions, where KD-trees stay fast. It only
    proposes candidates: the learned metric weighs them.
    """

    def __init__(self, base: np.ndarray):
        base = np.asarray(base, float)
        self.mean = base.mean(0) if len(base) else np.zeros(base.shape[1])
        centred = base - self.mean
        if centred.shape[1] > SEARCH_DIMS:
            _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 20000)], full_matrices=False)
            self.proj = vt[:SEARCH_DIMS].T
        else:
            self.proj = np.eye(centred.shape[1])
        from scipy.spatial import cKDTree

        self.points = centred @ self.proj
        self.tree = cKDTree(self.points)
        self.n = len(base)

    def query(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """Indices (n_query, k) of the ``k`` nearest base rows, nearest first; ``exclude[i]`` never returned."""
        q = (np.asarray(query, float) - self.mean) @ self.proj
        extra = 1 if exclude is not None else 0
        kk = min(k + extra, self.n)
        _, idx = self.tree.query(q, k=kk, workers=-1)
        idx = np.asarray(idx).reshape(len(q), kk)
        if exclude is None:
            return idx[:, :k]
        keep = idx != np.asarray(exclude)[:, None]
        keep[keep.all(1), -1] = False  # the excluded row was not among them: drop the farthest instead
        return idx[keep].reshape(len(q), kk - 1)


# -- coherence ----------------------------------------------------------------------
def coherence(cells: Cells, z: np.ndarray, min_common: int = 3) -> np.ndarray:
    """Per dataset: correlation of its known standardized accuracies with the others' mean profile.

    Clipped to [0.05, 1]; datasets with too few records get the median. ``z``
    holds one value per cell (NaN: not used).
    """
    ok_cell = ~np.isnan(z)
    zz = np.where(ok_cell, z, 0.0)
    total = np.bincount(cells.m, weights=zz, minlength=cells.shape[1])
    count = np.bincount(cells.m, weights=ok_cell.astype(float), minlength=cells.shape[1])
    others = (total[cells.m] - zz) / np.maximum(count[cells.m] - 1, 1)
    D = cells.shape[0]
    n = np.bincount(cells.d, weights=ok_cell.astype(float), minlength=D)
    nn = np.maximum(n, 1)
    mx = np.bincount(cells.d, weights=zz, minlength=D) / nn
    mo = np.bincount(cells.d, weights=np.where(ok_cell, others, 0.0), minlength=D) / nn
    dx = np.where(ok_cell, zz - mx[cells.d], 0.0)
    do = np.where(ok_cell, others - mo[cells.d], 0.0)
    sxx = np.bincount(cells.d, weights=dx * dx, minlength=D)
    soo = np.bincount(cells.d, weights=do * do, minlength=D)
    sxo = np.bincount(cells.d, weights=dx * do, minlength=D)
    ok = (n >= min_common) & (sxx > 1e-12) & (soo > 1e-12)
    rel = np.where(ok, sxo / np.sqrt(np.where(ok, sxx * soo, 1.0)), np.nan)
    med = float(np.median(rel[ok])) if ok.any() else 1.0
    return np.clip(np.where(ok, rel, med), 0.05, 1.0)


class DatasetKernel:
    """Nadaraya-Watson over datasets with a learned metric (see the module docstring).

    Parameters
    ----------
    sim : SimilarityInputs
        Similarity inputs of the zoo's datasets (all of them, cold ones included).
    embedding : ndarray (n_datasets, p)
        Coordinates for the nearest-neighbour search of the sparse graph (the
        dataset features); unused on dense zoos.
    l2 : float
        Penalty on the metric weights.
    min_known : int
        Datasets with at least this many standardized records are the targets
        of the metric learning.
    seed : int
        Seeds the choice of targets above :data:`MAX_TARGETS`.
    """

    def __init__(self, sim: SimilarityInputs, embedding: np.ndarray, *, l2: float = 1e-4, min_known: int = 5,
                 seed: int = 0):
        self.sim = sim
        self.embedding = np.asarray(embedding, float)
        self.l2 = l2
        self.min_known = min_known
        self.seed = seed
        self.n = len(sim)
        self.dense = self.n <= DENSE_MAX_DATASETS
        self._index = None
        if self.dense:
            self.phi = similarity_features(sim, sim)
            self.nb = None
        else:
            self.nb = self.index.query(self.embedding, min(N_NEIGHBOURS, self.n - 1), exclude=np.arange(self.n))
            self.phi = pair_features(sim, sim, self.nb)

    @classmethod
    def restore(cls, sim: SimilarityInputs, embedding: np.ndarray, *, beta: np.ndarray, log_rel: np.ndarray,
                fallback: np.ndarray, cells: Cells, z: "np.ndarray | Standardization",
                nb: np.ndarray | None) -> "DatasetKernel":
        """A fitted kernel from its saved state (no metric learning, no neighbour search for the zoo).

        ``z``: the standardized records, one per cell or computed where read (NaN cells are left out).
        """
        k = cls.__new__(cls)
        k.sim, k.embedding, k.n = sim, np.asarray(embedding, float), len(sim)
        k.dense = nb is None
        k.nb, k.phi, k._index = nb, None, None
        k.beta, k.log_rel, k.fallback = beta, log_rel, fallback
        k.set_values(cells, z, may_hold_nan=True)
        return k

    @property
    def index(self) -> NeighbourIndex:
        """The neighbour search over the zoo's datasets (built on first use)."""
        if self._index is None:
            self._index = NeighbourIndex(self.embedding)
        return self._index

    # -- fitting --------------------------------------------------------------------
    def fit(self, cells: Cells, z: np.ndarray, init: np.ndarray | None = None) -> "DatasetKernel":
        """Learn the metric on standardized values ``z`` (one per cell; NaN cells unused)."""
        ok = ~np.isnan(z)
        self.set_values(cells.select(ok), z[ok])
        self.fallback = np.bincount(self.cells.m, weights=self.z, minlength=cells.shape[1]) / \
            np.maximum(np.bincount(self.cells.m, minlength=cells.shape[1]), 1)
        self.log_rel = np.log(coherence(self.cells, self.z))
        self.beta = self._learn(init)
        return self

    def set_values(self, cells: Cells, z: "np.ndarray | Standardization", *, may_hold_nan: bool = False) -> None:
        """The standardized values the profiles average (``may_hold_nan``: NaN cells are left out where used).

        ``z`` holds one value per cell, or computes them where read (:class:`~.scale.Standardization`).
        With ``may_hold_nan`` (a model file's cells, perhaps memory-mapped), the NaN-free copy the bulk
        products need is made on first use only: a query for a few datasets masks the NaN of the
        cells it reads (:meth:`_rows_numpy`, same sums) and never passes over the whole zoo.
        """
        self._all = (cells, z) if may_hold_nan else None
        self._cells, self._z = (None, None) if may_hold_nan else (cells, z)
        self._Zc = self._Kc = None

    def _values_at(self, pos: np.ndarray | None) -> np.ndarray:
        """The values of the cells at ``pos`` (all cells when None) of the cells given to :meth:`set_values`."""
        cells, z = self._all
        if isinstance(z, Standardization):
            return z.of(cells) if pos is None else z.at(cells.y[pos], cells.d[pos])
        return z if pos is None else z[pos]

    @property
    def cells(self) -> Cells:
        """The cells with a value (NaN-free)."""
        if self._cells is None:
            z = self._values_at(None)
            ok = ~np.isnan(z)
            self._cells, self._z = self._all[0].select(ok), z[ok]
        return self._cells

    @property
    def z(self) -> np.ndarray:
        """The values of :attr:`cells`."""
        self.cells  # (makes the NaN-free copy on first use)
        return self._z

    @property
    def n_models(self) -> int:
        return (self._all[0] if self._all is not None else self._cells).shape[1]

    @property
    def Zc(self):
        """``z`` as a scipy CSR matrix (datasets x models), built once (fit-time bulk products)."""
        if self._Zc is None:
            self._Zc = self.cells.csr(self.z)
        return self._Zc

    @property
    def Kc(self):
        if self._Kc is None:
            self._Kc = self.cells.csr(np.ones(len(self.cells)))
        return self._Kc

    def _targets(self) -> np.ndarray:
        k = self.cells.row_counts()
        t = np.flatnonzero(k >= self.min_known)
        if len(t) > MAX_TARGETS:
            t = np.sort(np.random.default_rng([self.seed, 31]).choice(t, MAX_TARGETS, replace=False))
        return t

    def _scores(self, beta: np.ndarray, phi: np.ndarray, nb: np.ndarray | None) -> np.ndarray:
        s = np.tensordot(beta[:-1], phi, 1) if len(phi) else np.zeros(phi.shape[1:])
        rel = self.log_rel[None, :] if nb is None else self.log_rel[nb]
        return s + beta[-1] * rel

    def _learn(self, init: np.ndarray | None) -> np.ndarray:
        """``[beta..., gamma]`` minimizing leave-one-dataset-out error (analytic gradient, L-BFGS)."""
        from scipy.optimize import minimize

        n_feat = self.phi.shape[0] + 1
        targets = self._targets()
        if len(targets) < 5:
            return np.zeros(n_feat)
        loss_grad = self._dense_loss(targets) if self.dense else self._sparse_loss(targets)
        x0 = np.zeros(n_feat) if init is None or len(init) != n_feat else np.asarray(init, float)
        res = minimize(loss_grad, x0, jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * n_feat,
                       options={"ftol": 1e-7, "gtol": 1e-5})
        return res.x

    def _dense_loss(self, targets: np.ndarray):
        cells, D, M = self.cells, self.n, self.cells.shape[1]
        Zz = np.zeros((D, M))
        Zz[cells.d, cells.m] = self.z
        Kf = np.zeros((D, M))
        Kf[cells.d, cells.m] = 1.0
        is_t = np.zeros(D, dtype=bool)
        is_t[targets] = True
        T = Kf * is_t[:, None]
        N = T.sum()
        phi_all = np.concatenate([self.phi, np.broadcast_to(self.log_rel[None, None, :], (1, D, D))], 0)
        fallback, l2 = self.fallback, self.l2

        def loss_grad(b):
            s = np.tensordot(b, phi_all, 1)
            s = s - s.max(1, keepdims=True)
            W = np.exp(s)
            np.fill_diagonal(W, 0.0)
            num, den = W @ Zz, W @ Kf
            Mp = np.where(den > 1e-12, num / np.maximum(den, 1e-300), fallback[None, :])
            e = np.where(T > 0, Zz - Mp, 0.0)
            A = np.where(den > 1e-12, e / np.maximum(den, 1e-300), 0.0)
            G = A @ Zz.T - (A * Mp) @ Kf.T  # d loss / d W, up to -2/N
            grad = -2.0 / N * np.einsum("fjl,jl->f", phi_all, W * G) + 2 * l2 * b
            return (e ** 2).sum() / N + l2 * (b ** 2).sum(), grad

        return loss_grad

    def _sparse_loss(self, targets: np.ndarray):
        """The same loss on the neighbour graph, over the target datasets' cells."""
        cells, M = self.cells, self.cells.shape[1]
        nb = self.nb[targets]
        phi_all = np.concatenate([self.phi[:, targets], self.log_rel[nb][None]], 0)
        Zc, Kc = self.Zc, self.Kc
        tmask = cells.rows_mask(targets)
        tcells = cells.select(tmask)
        # targets renumbered 0..T-1
        remap = np.full(self.n, -1)
        remap[targets] = np.arange(len(targets))
        tz = self.z[tmask]
        import scipy.sparse as sp

        T = sp.csr_matrix((np.ones(len(tcells)), tcells.m, _indptr(remap[tcells.d], len(targets))),
                          shape=(len(targets), M))
        tkeys = remap[tcells.d].astype(np.int64) * M + tcells.m
        # per slot: neighbours' values and known flags at the targets' cells (aligned to tcells)
        vals = np.zeros((nb.shape[1], len(tcells)))
        has = np.zeros((nb.shape[1], len(tcells)))
        for j in range(nb.shape[1]):
            has[j] = _at(Kc[nb[:, j]].multiply(T), tkeys, M)
            vals[j] = _at(Zc[nb[:, j]].multiply(T), tkeys, M)
        slot_of_cell = remap[tcells.d]
        N = len(tcells)
        fallback, l2 = self.fallback[tcells.m], self.l2

        def loss_grad(b):
            s = np.tensordot(b, phi_all, 1)
            s = s - s.max(1, keepdims=True)
            W = np.exp(s)  # (T, K)
            w = W[slot_of_cell].T  # (K, cells)
            num, den = (w * vals).sum(0), (w * has).sum(0)
            Mp = np.where(den > 1e-12, num / np.maximum(den, 1e-300), fallback)
            e = tz - Mp
            A = np.where(den > 1e-12, e / np.maximum(den, 1e-300), 0.0)
            # d loss / d s_tj = -2/N W_tj sum_m A_tm has_j (val_j - M_tm)
            c = np.zeros(W.shape)
            for j in range(W.shape[1]):
                c[:, j] = np.bincount(slot_of_cell, weights=A * has[j] * (vals[j] - Mp), minlength=len(W))
            grad = -2.0 / N * np.einsum("ftk,tk->f", phi_all, W * c) + 2 * l2 * b
            return (e ** 2).sum() / N + l2 * (b ** 2).sum(), grad

        return loss_grad

    # -- profiles -----------------------------------------------------------------------
    def _weights_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Weights of the zoo datasets ``rows`` on their neighbours: dense (n, D) or (n, K) with indices."""
        if self.dense:
            phi = self.phi[:, rows] if self.phi is not None else similarity_features(self.sim.take(rows), self.sim)
            s = self._scores(self.beta, phi, None)
            s = s - s.max(1, keepdims=True)
            W = np.exp(s)
            W[np.arange(len(rows)), rows] = 0.0  # never its own records
            return W, None
        nb = self.nb[rows]
        phi = self.phi[:, rows] if self.phi is not None else pair_features(self.sim.take(rows), self.sim, nb)
        s = self._scores(self.beta, phi, nb)
        return np.exp(s - s.max(1, keepdims=True)), nb

    def _weights_new(self, sim: SimilarityInputs, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.dense:
            s = self._scores(self.beta, similarity_features(sim, self.sim), None)
            return np.exp(s - s.max(1, keepdims=True)), None
        nb = self.index.query(embedding, min(N_NEIGHBOURS, self.n))
        s = self._scores(self.beta, pair_features(sim, self.sim, nb), nb)
        return np.exp(s - s.max(1, keepdims=True)), nb

    def _rows_from_weights(self, W: np.ndarray, nb: np.ndarray | None) -> np.ndarray:
        """Full profiles (n, n_models) from weights on the zoo datasets."""
        if len(W) <= 8:
            return self._rows_numpy(W, nb)
        import scipy.sparse as sp

        M = self.cells.shape[1]
        if nb is None:
            Wc = sp.csr_matrix(W)
        else:
            Wc = sp.csr_matrix((W.ravel(), nb.ravel(), np.arange(0, W.size + 1, W.shape[1])),
                               shape=(len(W), self.n))
        num = np.asarray((Wc @ self.Zc).todense())
        den = np.asarray((Wc @ self.Kc).todense())
        return np.where(den > 1e-12, num / np.maximum(den, 1e-300), self.fallback[None, :])

    def _rows_numpy(self, W: np.ndarray, nb: np.ndarray | None) -> np.ndarray:
        """:meth:`_rows_from_weights` for a few rows in numpy alone (a query needs no scipy).

        Reads only the neighbours' cells; NaN values (cells of a model file, see :meth:`set_values`)
        get weight 0, which leaves every sum as it is without them.
        """
        cells = self._all[0] if self._all is not None else self.cells
        M = cells.shape[1]
        out = np.empty((len(W), M))
        for i, w in enumerate(W):
            if nb is None:
                pos = None
                m, wc = cells.m, w[cells.d]
            else:
                at, pos = cells.positions(nb[i])
                m, wc = cells.m[pos], w[at]
            if self._all is not None:
                zz = self._values_at(pos)
                ok = ~np.isnan(zz)
                if not ok.all():
                    m, wc, zz = m[ok], wc[ok], zz[ok]
            else:
                zz = self.z if pos is None else self.z[pos]
            num = np.bincount(m, weights=wc * zz, minlength=M)
            den = np.bincount(m, weights=wc, minlength=M)
            out[i] = np.where(den > 1e-12, num / np.maximum(den, 1e-300), self.fallback)
        return out

    def rows(self, rows: np.ndarray, block: int = 512) -> np.ndarray:
        """Profiles (len(rows), n_models) of zoo datasets, each without its own records."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.n_models))
        for start in range(0, len(rows), block):
            r = rows[start:start + block]
            out[start:start + block] = self._rows_from_weights(*self._weights_rows(r))
        return out

    def new(self, sim: SimilarityInputs, embedding: np.ndarray) -> np.ndarray:
        """Profiles of brand-new datasets (n, n_models)."""
        return self._rows_from_weights(*self._weights_new(sim, embedding))

    def at(self, query: Cells, block_rows: int = 4096) -> np.ndarray:
        """Profile values at the cells ``query`` (their datasets are zoo datasets; own records excluded)."""
        import scipy.sparse as sp

        M = query.shape[1]
        out = np.empty(len(query))
        Zc, Kc = self.Zc, self.Kc
        rows = np.flatnonzero(query.row_counts() > 0)
        for start in range(0, len(rows), block_rows):
            r = rows[start:start + block_rows]
            W, nb = self._weights_rows(r)
            if nb is None:
                Wc = sp.csr_matrix(W)
            else:
                Wc = sp.csr_matrix((W.ravel(), nb.ravel(), np.arange(0, W.size + 1, W.shape[1])),
                                   shape=(len(W), self.n))
            sel = query.rows_mask(r)
            qd, qm = query.d[sel], query.m[sel]
            remap = np.full(query.shape[0], -1)
            remap[r] = np.arange(len(r))
            T = sp.csr_matrix((np.ones(len(qd)), qm, _indptr(remap[qd], len(r))), shape=(len(r), M))
            keys = remap[qd].astype(np.int64) * M + qm
            num = _at((Wc @ Zc).multiply(T), keys, M)
            den = _at((Wc @ Kc).multiply(T), keys, M)
            out[sel] = np.where(den > 1e-12, num / np.maximum(den, 1e-300), self.fallback[qm])
        return out


def _indptr(rows: np.ndarray, n: int) -> np.ndarray:
    """CSR indptr for sorted row indices ``rows`` over ``n`` rows."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
    return ptr


def _at(X, keys: np.ndarray, n_cols: int) -> np.ndarray:
    """Values of sparse ``X`` at the sorted cell keys ``row * n_cols + col`` (0 where X has none)."""
    X = X.tocsr()
    X.sort_indices()
    r = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    xk = r.astype(np.int64) * n_cols + X.indices
    out = np.zeros(len(keys))
    if len(xk):
        pos = np.searchsorted(keys, xk)
        out[pos] = X.data
    return out
