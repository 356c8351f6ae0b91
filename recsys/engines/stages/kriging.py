"""Universal kriging of each dataset from its records: from a standardized profile to accuracies.

Model: ``y[d, m] = s_d * (c_d + M[d, m] + e[d, m])`` where ``M`` is a profile
in standardized units (from the earlier stages), ``s_d`` the dataset's spread
of accuracies, ``c_d`` its level and ``e`` a residual whose covariance across
models ``S`` is estimated from the well-recorded datasets (models that err
together on one dataset err together on others). Given a dataset's records,
``c_d`` is the generalized-least-squares offset and the unknown residuals are
their best linear predictor (universal kriging; Cressie, 1993, ch. 3)::

    y_u = s_d * (c + M_u + S_uk alpha),   alpha = S_kk^-1 (r_k - c),   r_k = y_k / s_d - M_k

``S`` is a dense models x models matrix up to :data:`DENSE_MAX_MODELS` models
(:class:`DenseCovariance`); above that it is low rank plus diagonal,
``S = V V' + diag(psi)`` (:class:`LowRankCovariance`, its factors from a
randomized eigendecomposition of the sparse residuals), so memory and time grow
linearly with the models. Datasets are solved in batches of equal record
counts (one batched linear solve per count), never one Python call per dataset.

A fitted kriging keeps, per dataset, ``c`` and ``alpha`` (one value per
record), from which any of its cells is predicted on demand. A dataset
answered with results given (:func:`recsys.engines.joint.condition`) is
kriged again by :func:`krige_row_joined`: ``S``'s block of its models
estimated with its residuals at its records and results too
(:func:`covariance_counts`: what the estimate was made of); by
:func:`krige_row` below :data:`COV_MIN_KNOWN` of them. The shrinkage of ``S``
is chosen no lower than :func:`shrinkage_floor`, its own noise.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ...features.data import Cells

__all__ = ["DenseCovariance", "LowRankCovariance", "residual_covariance", "robust_variances", "covariance_from_arrays",
           "covariance_counts", "shrinkage_floor", "Kriging", "krige_row", "krige_row_joined", "low_rank_part",
           "DENSE_MAX_MODELS", "COV_MIN_KNOWN", "shrunk_factors"]

#: datasets with at least this many records enter the residual covariance
COV_MIN_KNOWN = 5
#: up to this many models the residual covariance is a dense matrix
DENSE_MAX_MODELS = 1024
#: most floats held at once by a batched solve
_BATCH_FLOATS = 8_000_000


class DenseCovariance:
    """A dense residual covariance ``S`` (n_models, n_models)."""

    def __init__(self, S: np.ndarray):
        self.S = np.asarray(S, float)
        self.n = len(self.S)
        self.ridge = 1e-9 * float(np.trace(self.S)) / max(self.n, 1)

    def diag(self) -> np.ndarray:
        """Each model's variance."""
        return np.diag(self.S).copy()

    def blocks(self, idx: np.ndarray) -> np.ndarray:
        """``S[idx_i, idx_i]`` for each row of ``idx`` (n, k): (n, k, k), plus the stabilizing ridge."""
        A = self.S[idx[:, :, None], idx[:, None, :]]
        A[:, np.arange(idx.shape[1]), np.arange(idx.shape[1])] += self.ridge
        return A

    def moments(self, idx: np.ndarray | None = None) -> tuple[float, float]:
        """``(tr S, 1'S1)`` of the block of the models ``idx`` (all: None, computed once)."""
        if idx is None:
            return self._moments
        B = self.S[np.ix_(idx, idx)]
        return float(np.trace(B)), float(B.sum())

    @functools.cached_property
    def _moments(self) -> tuple[float, float]:
        return float(np.trace(self.S)), float(self.S.sum())

    def solve(self, idx: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``S[idx_i, idx_i]^-1 rhs_i`` for each row: idx (n, k), rhs (n, k, p)."""
        return np.linalg.solve(self.blocks(idx), rhs)

    def shrunk(self, shrink: float) -> "DenseCovariance":
        """``S`` with its off-diagonal part scaled by ``1 - shrink`` (diagonal kept)."""
        diag = np.diag(self.S).copy()
        S = (1 - shrink) * self.S
        S[np.diag_indices(self.n)] = diag
        return DenseCovariance(S)

    def cross(self, alpha: np.ndarray, idx: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """``S[cols, idx_i] @ alpha_i`` per row: (n, len(cols)) (all models when ``cols`` is None)."""
        S = self.S if cols is None else self.S[cols]
        return np.einsum("mnk,nk->nm", S[:, idx], alpha)

    def cross_cells(self, alpha: np.ndarray, idx: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``S[cols_j, idx_rows_j] @ alpha_rows_j`` for query cells j (row index into idx, model)."""
        return np.einsum("jk,jk->j", self.S[cols[:, None], idx[rows]], alpha[rows])

    def to_arrays(self, prefix: str) -> dict:
        return {f"{prefix}S": self.S}


class LowRankCovariance:
    """``S = V V' + diag(psi)``: ``V`` (n_models, rank), ``psi`` (n_models,)."""

    def __init__(self, V: np.ndarray, psi: np.ndarray):
        self.V = np.asarray(V, float)
        self.psi = np.asarray(psi, float)
        self.n = len(self.psi)

    def diag(self) -> np.ndarray:
        """Each model's variance."""
        return (self.V * self.V).sum(1) + self.psi

    def blocks(self, idx: np.ndarray) -> np.ndarray:
        Vk = self.V[idx]
        A = Vk @ np.swapaxes(Vk, 1, 2)
        A[:, np.arange(idx.shape[1]), np.arange(idx.shape[1])] += self.psi[idx]
        return A

    def moments(self, idx: np.ndarray | None = None) -> tuple[float, float]:
        """``(tr S, 1'S1)`` of the block of the models ``idx`` (all: None, computed once)."""
        if idx is None:
            return self._moments
        V, psi = self.V[idx], self.psi[idx]
        return float((V * V).sum() + psi.sum()), float((V.sum(0) ** 2).sum() + psi.sum())

    @functools.cached_property
    def _moments(self) -> tuple[float, float]:
        return float((self.V * self.V).sum() + self.psi.sum()), float((self.V.sum(0) ** 2).sum() + self.psi.sum())

    def solve(self, idx: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """Woodbury: ``(V_k V_k' + Psi_k)^-1 = Psi^-1 - Psi^-1 V_k (I + V_k' Psi^-1 V_k)^-1 V_k' Psi^-1``,
        a rank x rank solve per dataset instead of k x k."""
        Vk = self.V[idx]  # (n, k, r)
        pinv = 1.0 / self.psi[idx]  # (n, k)
        PV = Vk * pinv[..., None]
        inner = np.swapaxes(Vk, 1, 2) @ PV
        inner[:, np.arange(Vk.shape[2]), np.arange(Vk.shape[2])] += 1.0
        Pb = rhs * pinv[..., None]
        return Pb - PV @ np.linalg.solve(inner, np.swapaxes(PV, 1, 2) @ rhs)

    def shrunk(self, shrink: float) -> "LowRankCovariance":
        """The low-rank (off-diagonal) part scaled by ``1 - shrink``, the diagonal ``V V' + psi`` kept."""
        V = self.V * np.sqrt(1 - shrink)
        return LowRankCovariance(V, self.psi + shrink * (self.V * self.V).sum(1))

    def cross(self, alpha: np.ndarray, idx: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        # S[u, k] alpha = V_u (V_k' alpha) + psi_u [u in k] alpha_u
        b = np.einsum("nkr,nk->nr", self.V[idx], alpha)
        if cols is None:
            out = b @ self.V.T
            out[np.arange(len(idx))[:, None], idx] += self.psi[idx] * alpha  # where the model is a record
            return out
        out = b @ self.V[cols].T
        hit = cols[None, None, :] == idx[:, :, None]
        return out + np.einsum("nkc,nk->nc", hit, self.psi[idx] * alpha)

    def cross_cells(self, alpha: np.ndarray, idx: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        b = np.einsum("nkr,nk->nr", self.V[idx], alpha)
        out = np.einsum("jr,jr->j", self.V[cols], b[rows])
        hit = idx[rows] == cols[:, None]
        return out + (hit * alpha[rows]).sum(1) * self.psi[cols]

    def to_arrays(self, prefix: str) -> dict:
        return {f"{prefix}V": self.V, f"{prefix}psi": self.psi}


def low_rank_part(S: np.ndarray, rank: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(V, psi)`` with ``V V' + diag(psi)`` a positive semi-definite model of a dense covariance ``S``: its top
    ``rank`` eigenpairs (negative eigenvalues at 0), the rest of each variance on the diagonal (at least 1% of
    it). The low-rank-plus-diagonal form of :class:`LowRankCovariance`, for ``S`` of any size."""
    S = (np.asarray(S, dtype=float) + np.asarray(S, dtype=float).T) / 2
    w, U = np.linalg.eigh(S)
    top = np.argsort(w)[::-1][:max(1, min(rank, len(S) - 1))]
    V = U[:, top] * np.sqrt(np.maximum(w[top], 0.0))
    diag = np.diag(S)
    return V, np.maximum(diag - (V * V).sum(1), 0.01 * np.maximum(diag, 1e-12))


def covariance_from_arrays(arrays, prefix: str) -> "DenseCovariance | LowRankCovariance":
    """The covariance saved by its ``to_arrays(prefix)``."""
    if f"{prefix}S" in arrays:
        return DenseCovariance(arrays[f"{prefix}S"])
    return LowRankCovariance(arrays[f"{prefix}V"], arrays[f"{prefix}psi"])


def _residuals(cells: Cells, s: np.ndarray, M: np.ndarray, rows_ok: np.ndarray) -> np.ndarray:
    """Per cell of the datasets ``rows_ok`` (bool per dataset): ``y/s - M`` minus the dataset's mean of it; 0 elsewhere."""
    u = cells.y / s[cells.d] - M
    u = cells.centre_rows(u)
    return np.where(rows_ok[cells.d], u, 0.0)


def residual_covariance(cells: Cells, s: np.ndarray, M: np.ndarray, *, min_known: int = COV_MIN_KNOWN,
                        shrink: float = 0.2, rows: np.ndarray | None = None, rank: int = 16, seed: int = 0):
    """Covariance across models of ``y/s - M - offset`` over well-recorded datasets.

    ``M`` holds the profile at each cell. Pairwise-complete, corrected for
    removing each dataset's mean, shrunk towards its diagonal by ``shrink``.
    Only the datasets flagged in ``rows`` (bool per dataset; default all) are
    used. Dense (:class:`DenseCovariance`) up to :data:`DENSE_MAX_MODELS`
    models, else low rank (``rank``) plus diagonal, the off-diagonal part
    scaled by ``1 - shrink``.
    """
    k = cells.row_counts()
    use = k >= min_known
    if rows is not None:
        use = use & rows
    n_models = cells.shape[1]
    if not use.any():
        return DenseCovariance(np.eye(n_models)) if n_models <= DENSE_MAX_MODELS else \
            LowRankCovariance(np.zeros((n_models, 1)), np.ones(n_models))
    R = _residuals(cells, s, M, use)
    corr = np.where(use, k / np.maximum(k - 1, 1), 0.0)
    inuse = use[cells.d]
    diag_num = np.bincount(cells.m, weights=R * R * corr[cells.d], minlength=n_models)
    diag_cnt = np.bincount(cells.m, weights=inuse.astype(float), minlength=n_models)
    diag = diag_num / np.maximum(diag_cnt, 1.0)
    fill = np.median(diag[diag > 0]) if (diag > 0).any() else 1.0
    diag = np.where(diag > 0, diag, fill)  # models never recorded on a well-recorded dataset
    if n_models <= DENSE_MAX_MODELS:
        S, _, _ = _pairwise(cells, R * np.sqrt(corr[cells.d]), inuse)
        S[np.diag_indices(n_models)] = diag
        return DenseCovariance(S).shrunk(shrink)
    V = _factor_residuals(cells.select(inuse), R[inuse], min(rank, n_models - 1), seed)
    psi = np.maximum(diag - (V * V).sum(1), 0.05 * diag)
    return LowRankCovariance(V, psi).shrunk(shrink)


def _pairwise(cells: Cells, r: np.ndarray, inuse: np.ndarray) -> tuple[np.ndarray, np.ndarray, object]:
    """Pairwise-complete means of the products ``r_i r_j`` over the datasets recording both models (flagged
    per cell by ``inuse``), how many datasets each, and ``r`` as a sparse datasets x models matrix."""
    Rc = cells.csr(r)
    Kc = cells.csr(inuse.astype(float))
    n = np.asarray((Kc.T @ Kc).todense())
    return np.asarray((Rc.T @ Rc).todense()) / np.maximum(n, 1.0), n, Rc


def pairwise_noise(cells: Cells, s: np.ndarray, M: np.ndarray, *, min_known: int = COV_MIN_KNOWN
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """The residuals' pairwise covariance, unshrunk (:func:`residual_covariance`'s off-diagonal entries), and the
    sampling variance of each off-diagonal entry: each is a mean over the datasets recording both models of
    ``u_i u_j``, its sampling variance that of a mean, the products' variance over their count (infinite where
    fewer than two datasets record the pair, and on the diagonal). None above :data:`DENSE_MAX_MODELS` models
    or with fewer than two well-recorded datasets (:func:`shrunk_factors` above)."""
    k = cells.row_counts()
    use = k >= min_known
    if cells.shape[1] > DENSE_MAX_MODELS or use.sum() < 2:
        return None
    S, n, Rc = _pairwise(cells, _unbiased_residuals(cells, s, M, use), use[cells.d])
    W2 = np.asarray((Rc.multiply(Rc).T @ Rc.multiply(Rc)).todense())
    return S, _sampling_var(S, n, W2, np.arange(len(S)))


def _unbiased_residuals(cells: Cells, s: np.ndarray, M: np.ndarray, use: np.ndarray) -> np.ndarray:
    """:func:`_residuals` of the datasets ``use`` times ``sqrt(k / (k - 1))``, ``k`` each dataset's records: the
    products ``u_i u_j`` then estimate the covariance without the bias of removing each dataset's mean."""
    k = cells.row_counts()
    corr = np.where(use, k / np.maximum(k - 1, 1), 0.0)
    return _residuals(cells, s, M, use) * np.sqrt(corr[cells.d])


def _sampling_var(S: np.ndarray, n: np.ndarray, W2: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The sampling variance of each mean ``S`` of products ``u_i u_j`` over the ``n`` datasets recording both
    models (``W2`` the sums of the squared products), rows ``rows`` of the models x models matrices: infinite
    where fewer than two datasets record the pair, and on the diagonal (model ``rows[i]`` with itself)."""
    off = n >= 2
    off[np.arange(len(rows)), rows] = False
    var = np.full(S.shape, np.inf)
    var[off] = (W2[off] - n[off] * S[off] ** 2) / (n[off] * (n[off] - 1))
    return var


def shrinkage_floor(cells: Cells, s: np.ndarray, M: np.ndarray, *, min_known: int = COV_MIN_KNOWN,
                    noise: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """How far the residual covariance's off-diagonal part is noise: the Schafer-Strimmer intensity of its
    shrinkage towards the diagonal (Schafer & Strimmer, 2005, target "D"), the summed sampling variances of
    its off-diagonal entries over their summed squares, in [0, 1] (:func:`pairwise_noise`, or ``noise`` as it
    gives them).

    A covariance estimated from a handful of datasets is mostly noise off its diagonal, and kriged on more
    models than it has datasets its blocks are near singular: a dataset's results outside their span then move
    the other models by tens of points. The kriging's shrinkage is chosen no lower (:class:`~recsys.engines.
    hybrid.HybridEngine`). 0 above :data:`DENSE_MAX_MODELS` models (the low-rank covariance keeps a diagonal of
    at least 5% of each model's variance) and where no two datasets record a pair.
    """
    noise = pairwise_noise(cells, s, M, min_known=min_known) if noise is None else noise
    if noise is None:
        return 0.0
    S, var = noise
    off = np.isfinite(var)
    total = float((S[off] ** 2).sum())
    return float(np.clip(var[off].sum() / total, 0.0, 1.0)) if total > 0 else 1.0


def entrywise_shrunk(noise: tuple[np.ndarray, np.ndarray], diag: np.ndarray) -> np.ndarray:
    """The pairwise covariance of :func:`pairwise_noise` with each off-diagonal entry shrunk towards 0 by its own
    noise, ``S_ij max(0, 1 - var_ij / S_ij^2)`` (the positive-part James-Stein factor of one mean), and ``diag``
    on the diagonal: what the joint distribution's errors are correlated by.

    The kriging's shrinkage is one number for every pair, no lower than the share of noise in all of them
    (:func:`shrinkage_floor`): on a zoo of a few datasets and many models, most pairs are noise and it is high
    (0.9 on three of the four reference zoos), and the few pairs that err together on every dataset, as the
    fine-tunes of one checkpoint do, would be drawn nearly independent. Here each pair keeps what its own
    datasets show: a correlation near 1 seen on 7 datasets keeps about 0.7 of it, one of 0.3 on 7 is dropped
    and kept on 270. Not positive semi-definite in general: :func:`low_rank_part` makes it so.
    """
    out = _each_shrunk(*noise)
    out[np.diag_indices(len(out))] = diag
    return out


def _each_shrunk(S: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Each mean ``S_ij`` times ``max(0, 1 - var_ij / S_ij^2)``; 0 where its variance is infinite or it is 0."""
    w = np.zeros_like(S)
    ok = np.isfinite(var) & (S != 0)
    w[ok] = np.clip(1.0 - var[ok] / S[ok] ** 2, 0.0, 1.0)
    return S * w


#: most models :func:`shrunk_factors` makes the pairwise-shrunk covariance of (a models x models float32
#: matrix: 0.27 GB at 8,192; measured there, 2.6 s and 0.40 GB peak on 10 datasets, 3.1 s and 0.43 GB on 200 at
#: 20%), and the most work it may take: multiply-adds of the dense products (models^2 x well-recorded datasets),
#: or record pairs of the sparse ones (sum over those datasets of their records squared)
PAIRWISE_MAX_MODELS = 8192
PAIRWISE_MAX_DENSE_WORK = 4e10
PAIRWISE_MAX_PAIRS = 2e8
#: most entries of the dense datasets x models residuals the dense products are made from (0.16 GB)
PAIRWISE_MAX_DENSE_ENTRIES = 2e7


def shrunk_factors(cells: Cells, s: np.ndarray, M: np.ndarray, diag: np.ndarray, *, rank: int = 16,
                   min_known: int = COV_MIN_KNOWN, seed: int = 0, power_iters: int = 4, block: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`low_rank_part` of :func:`entrywise_shrunk` (:func:`pairwise_noise`'s covariance, ``diag`` on its
    diagonal) for more models than a few float64 models x models matrices allow.

    The covariance, each entry's sampling variance and its shrinkage are computed a block of models at a time
    (as :func:`pairwise_noise` and :func:`entrywise_shrunk` compute them for every pair at once) into one float32
    matrix, whose top ``rank`` eigenpairs come from a randomized range finder with ``power_iters`` power
    iterations (Halko, Martinsson & Tropp, 2011) rather than a full eigendecomposition (``block``: models per
    block, by default as many as keep a block's arrays at 2 M entries); the rest of each
    variance goes on the diagonal (at least 1% of it), as in :func:`low_rank_part`. None above
    :data:`PAIRWISE_MAX_MODELS` models, when the work exceeds :data:`PAIRWISE_MAX_DENSE_WORK` (dense products,
    few datasets) and :data:`PAIRWISE_MAX_PAIRS` (sparse ones), or with fewer than two well-recorded datasets.
    """
    k = cells.row_counts()
    use = k >= min_known
    n_models = cells.shape[1]
    if n_models > PAIRWISE_MAX_MODELS or use.sum() < 2:
        return None
    rows = np.flatnonzero(use)
    dense = float(n_models) ** 2 * len(rows) <= PAIRWISE_MAX_DENSE_WORK and \
        len(rows) * n_models <= PAIRWISE_MAX_DENSE_ENTRIES
    if not dense and float((k[rows].astype(float) ** 2).sum()) > PAIRWISE_MAX_PAIRS:
        return None
    Rc = cells.csr(_unbiased_residuals(cells, s, M, use))[rows]
    Kc = cells.csr(use[cells.d].astype(float))[rows]
    if dense:
        R, K = Rc.toarray(), Kc.toarray()
        W = R * R

        def prod(A, b):
            return A[:, b].T @ A
    else:
        R, K, W = Rc.tocsc(), Kc.tocsc(), Rc.multiply(Rc).tocsc()

        def prod(A, b):
            return np.asarray((A[:, b].T @ A).todense())
    J = np.zeros((n_models, n_models), dtype=np.float32)
    step = block or max(64, min(1024, (1 << 21) // n_models))  # (a few block x models float64 arrays: 16 MB each)
    for lo in range(0, n_models, step):
        b = np.arange(lo, min(lo + step, n_models))
        n = prod(K, b)
        S = prod(R, b) / np.maximum(n, 1.0)
        out = _each_shrunk(S, _sampling_var(S, n, prod(W, b), b))
        out[np.arange(len(b)), b] = diag[b]
        J[b] = out
    rng = np.random.default_rng([seed, 19])
    Y = J @ rng.normal(size=(n_models, min(2 * rank, n_models))).astype(np.float32)
    for _ in range(power_iters):
        Q, _ = np.linalg.qr(Y)
        Y = J @ Q
    Q, _ = np.linalg.qr(Y.astype(float))
    B = Q.T @ (J @ Q.astype(np.float32)).astype(float)
    w, U = np.linalg.eigh((B + B.T) / 2)  # (J is symmetric up to the rounding of its blocks)
    top = np.argsort(w)[::-1][:max(1, min(rank, n_models - 1))]
    V = (Q @ U[:, top]) * np.sqrt(np.maximum(w[top], 0.0))
    return V, np.maximum(diag - (V * V).sum(1), 0.01 * np.maximum(diag, 1e-12))


#: the median of a chi-square variable with one degree of freedom: median(e^2) / this estimates var(e), normal e
_CHI2_1_MEDIAN = 0.45493642311957283


def robust_variances(cells: Cells, s: np.ndarray, M: np.ndarray, fallback: np.ndarray, *,
                     min_known: int = COV_MIN_KNOWN, min_cells: int = 3) -> np.ndarray:
    """Each model's error variance from the median of its squared residuals (those of
    :func:`residual_covariance`) over the well-recorded datasets, scaled to be the variance of normal errors;
    ``fallback`` where a model has fewer than ``min_cells`` of them, or where their median is 0 (most of its
    records exactly on their predictions: ties of a degenerate zoo; an error scale of 0 would make its
    normalized residuals infinite).

    The scale of the joint distribution's errors, whose tails come from the calibrated pools: a mean of
    squares would count a model's one outlying record twice, once in its scale and again in the pools' tails
    (a model fine-tuned on one dataset, far above its prediction there, then looked 100 times as uncertain as
    the others everywhere). O(records log records).
    """
    k = cells.row_counts()
    use = k >= min_known
    out = np.array(fallback, dtype=float)
    inuse = use[cells.d]
    if not inuse.any():
        return out
    corr = k / np.maximum(k - 1, 1)
    r2 = _residuals(cells, s, M, use)[inuse] ** 2 * corr[cells.d[inuse]]
    m = cells.m[inuse]
    order = np.lexsort((r2, m))
    r2, m = r2[order], m[order]
    n = np.bincount(m, minlength=cells.shape[1])
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    ok = n >= min_cells
    lo, hi = start[ok] + (n[ok] - 1) // 2, start[ok] + n[ok] // 2
    med = (r2[lo] + r2[hi]) / 2 / _CHI2_1_MEDIAN
    out[ok] = np.where(med > 0, med, out[ok])
    return out


def _factor_residuals(cells: Cells, r: np.ndarray, rank: int, seed: int, power_iters: int = 4) -> np.ndarray:
    """Model factors ``V`` (n_models, rank) whose ``V V'`` approximates the residual covariance across models.

    Each model's column of residuals is scaled by ``1 / sqrt(share of datasets recording it)``, so that
    ``R' R / n`` estimates the covariance from the pairs of models recorded together (as the dense
    estimate does exactly, assuming records are missing independently of the residuals); its leading
    eigenvectors come from a randomized range finder with ``power_iters`` power iterations (Halko,
    Martinsson & Tropp, 2011), two sparse products each: O(records x rank), no models x models matrix.
    """
    rng = np.random.default_rng([seed, 17])
    D, M = cells.shape
    rows = cells.row_counts() > 0
    n_rows = max(int(rows.sum()), 1)
    share = np.maximum(cells.col_counts(), 1) / n_rows
    Rt = cells.csr(r / np.sqrt(share[cells.m]))
    k = min(rank + 8, M)
    Y = Rt.T @ (Rt @ rng.normal(size=(M, k)))
    for _ in range(power_iters):
        Q, _ = np.linalg.qr(Y)
        Y = Rt.T @ (Rt @ Q)
    Q, _ = np.linalg.qr(Y)
    B = Rt @ Q  # (D, k)
    w, U = np.linalg.eigh(B.T @ B / n_rows)
    top = np.argsort(w)[::-1][:rank]
    return (Q @ U[:, top]) * np.sqrt(np.maximum(w[top], 0.0))


def _groups(indptr: np.ndarray) -> dict[int, np.ndarray]:
    """Rows grouped by their number of entries (> 0): one batched solve per group."""
    counts = np.diff(indptr)
    order = np.argsort(counts, kind="stable")
    sorted_counts = counts[order]
    out = {}
    for grp in np.split(order, np.flatnonzero(np.diff(sorted_counts)) + 1):
        if len(grp) and counts[grp[0]] > 0:
            out[int(counts[grp[0]])] = grp
    return out


def krige_row(cov, idx: np.ndarray, r: np.ndarray) -> tuple[float, np.ndarray]:
    """GLS level and kriging weights of one dataset from its standardized records ``r`` at models ``idx``.

    The solve of :meth:`Kriging.fit` for one dataset (same covariance blocks, same ridge): a row kriged here
    from the records it was fitted with gets the level and weights the fit kept.
    """
    idx = np.asarray(idx, dtype=np.int64)
    rhs = np.stack([np.asarray(r, dtype=float), np.ones(len(idx))], axis=1)[None]
    sol = cov.solve(idx[None, :], rhs)[0]
    level = sol[:, 0].sum() / sol[:, 1].sum()
    return float(level), sol[:, 0] - level * sol[:, 1]


def covariance_counts(cells: Cells, min_known: int = COV_MIN_KNOWN) -> tuple[np.ndarray, int]:
    """Per model, the datasets that enter :func:`residual_covariance` recording it; and how many enter."""
    use = cells.row_counts() >= min_known
    return np.bincount(cells.m[use[cells.d]], minlength=cells.shape[1]).astype(float), int(use.sum())


def krige_row_joined(cov, idx: np.ndarray, r: np.ndarray, counts: np.ndarray, n_rows: int,
                     shrink: float) -> tuple[float, np.ndarray]:
    """:func:`krige_row` of a dataset with results given, as if the fit had known them: the block of its
    models ``idx`` holds its residuals at its records and results.

    The fit estimates each covariance entry as a mean over the datasets recording both models
    (:func:`residual_covariance`); a dataset that now has ``k`` records and results adds its term
    ``u_i u_j`` to the entries of its models: ``S_kk' = (1 - w) S_kk + w R``, ``R`` its centred residuals'
    products (times ``k / (k - 1)``, off the diagonal times ``1 - shrink``, as the fit has them),
    ``w = 1 / (n + 1)`` with ``n`` the datasets behind those entries, ``(mean count of its models)^2 /
    n_rows`` (exact where every dataset records every model; the low-rank estimate makes the same assumption
    of records missing independently). Only the block is solved with: the entries between its models and
    the others are unchanged (it holds nothing on the others). On a zoo of hundreds of datasets this changes
    nothing that shows; on one of a handful, a fit with the dataset's results would have learned as much
    from them.

    A dataset that entered the covariance with :data:`COV_MIN_KNOWN` records or more keeps that term of
    its stored records too (the block of those holds it twice, the new one weighted ``w``): taking the old
    term out instead, entry by entry, can leave a pairwise-complete block that is not positive definite,
    and measured worse (parc-71, datasets fitted with half of their records and given the other half:
    Pearson 0.789 against 0.852 with both terms and 0.855 for the refit).
    """
    idx = np.asarray(idx, dtype=np.int64)
    k = len(idx)
    u = np.asarray(r, dtype=float) - np.mean(r)
    u *= math.sqrt(k / (k - 1))
    n = float(np.mean(counts[idx])) ** 2 / max(n_rows, 1)
    w = 1.0 / (n + 1.0)
    if isinstance(cov, LowRankCovariance):  # (1 - w)(V V' + psi) + w (1 - shrink) u u' + w shrink u^2: rank + 1
        V = np.hstack([math.sqrt(1 - w) * cov.V[idx], math.sqrt(w * (1 - shrink)) * u[:, None]])
        block = LowRankCovariance(V, (1 - w) * cov.psi[idx] + w * shrink * u * u)  # (psi > 0: w < 1, the fit's > 0)
    else:
        R = (w * (1 - shrink)) * np.outer(u, u)
        R[np.diag_indices(k)] = w * u * u
        block = DenseCovariance((1 - w) * cov.S[np.ix_(idx, idx)] + R)
    return krige_row(block, np.arange(k), r)  # (the block's models are 0 .. k - 1)


class Kriging:
    """Per-dataset GLS level and kriging weights, fitted on the known cells.

    Parameters
    ----------
    cov : DenseCovariance or LowRankCovariance
    """

    def __init__(self, cov):
        self.cov = cov

    @classmethod
    def restore(cls, cov, cells: Cells, s: np.ndarray, level: np.ndarray, alpha: np.ndarray) -> "Kriging":
        """A fitted kriging from its saved state: the records it was fitted on and what :meth:`fit` learned."""
        krig = cls(cov)
        krig.cells, krig.s, krig.level, krig.alpha = cells, s, level, alpha
        return krig

    def fit(self, cells: Cells, s: np.ndarray, M: np.ndarray) -> "Kriging":
        """``M``: the profile at each cell. Sets ``level`` (per dataset, NaN without records) and ``alpha`` (per cell)."""
        self.cells = cells
        self.s = s
        self.level = np.full(cells.shape[0], np.nan)
        self.alpha = np.zeros(len(cells))
        r_all = cells.y / s[cells.d] - M
        for c, rows in _groups(cells.indptr).items():
            for part in np.array_split(rows, max(1, int(len(rows) * c * c // _BATCH_FLOATS) + 1)):
                pos = cells.indptr[part][:, None] + np.arange(c)[None, :]
                idx = cells.m[pos].astype(np.int64)
                rhs = np.stack([r_all[pos], np.ones((len(part), c))], axis=2)
                sol = self.cov.solve(idx, rhs)
                Ai_r, Ai_1 = sol[..., 0], sol[..., 1]
                lev = Ai_r.sum(1) / Ai_1.sum(1)
                self.level[part] = lev
                self.alpha[pos] = Ai_r - lev[:, None] * Ai_1
        return self

    def residuals(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(models, standardized records ``y / s - M``) of zoo dataset ``row`` as the fit had them.

        Recovered from what the fit kept (``r = S_kk alpha + level``), so the profile the fit saw at each
        record (each candidate without the record's own dataset) need not be recomputed.
        """
        sl = slice(int(self.cells.indptr[row]), int(self.cells.indptr[row + 1]))
        idx = np.asarray(self.cells.m[sl], dtype=np.int64)
        if not len(idx):
            return idx, np.zeros(0)
        alpha = np.asarray(self.alpha[sl], dtype=float)
        cov = self.cov
        if isinstance(cov, LowRankCovariance):  # V_k (V_k' alpha) + psi_k alpha: no k x k block
            Ak = cov.V[idx] @ (cov.V[idx].T @ alpha) + cov.psi[idx] * alpha
        else:
            Ak = cov.blocks(idx[None, :])[0] @ alpha
        return idx, Ak + float(self.level[row])

    def rows(self, rows: np.ndarray, M_rows: np.ndarray) -> np.ndarray:
        """Predictions (accuracy units) of the zoo datasets ``rows`` (with records) over every model.

        ``M_rows`` (len(rows), n_models) holds their profiles; recorded cells keep their record.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty(M_rows.shape)
        counts = self.cells.indptr[rows + 1] - self.cells.indptr[rows]  # (only these rows' offsets are read)
        for c in np.unique(counts):
            sel = np.flatnonzero(counts == c)
            r = rows[sel]
            pos = self.cells.indptr[r][:, None] + np.arange(c)[None, :]
            idx = self.cells.m[pos].astype(np.int64)
            corr = self.cov.cross(self.alpha[pos], idx)
            out[sel] = self.s[r, None] * (self.level[r, None] + M_rows[sel] + corr)
            out[sel[:, None], idx] = self.cells.y[pos]
        return out

    def at(self, query: Cells, M_query: np.ndarray) -> np.ndarray:
        """Predictions at the cells ``query`` (of datasets with records in the fit), ``M_query`` the profile there."""
        out = np.empty(len(query))
        counts = self.cells.row_counts()
        qc = counts[query.d]
        for c in np.unique(qc):
            sel = np.flatnonzero(qc == c)
            r = query.d[sel].astype(np.int64)
            ur, inv = np.unique(r, return_inverse=True)
            pos = self.cells.indptr[ur][:, None] + np.arange(c)[None, :]
            idx = self.cells.m[pos].astype(np.int64)
            corr = self.cov.cross_cells(self.alpha[pos], idx, inv, query.m[sel].astype(np.int64))
            out[sel] = self.s[r] * (self.level[r] + M_query[sel] + corr)
        return out
