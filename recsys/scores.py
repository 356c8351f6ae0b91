"""Transferability metrics: how well a model's features on a labelled target dataset predict its labels.

Each metric is a function ``(features (n, d), labels (n,)[, source_probs (n, c)]) -> float``,
higher meaning "this model should transfer better". They need no fine-tuning: the
features are the model's penultimate-layer outputs on the target data
(:mod:`recsys.extract` computes them). Pure numpy / scipy, no other part of recsys.

=================  ====================================================  =====================
name               metric                                                reference
=================  ====================================================  =====================
``logme``          log maximum evidence of a Bayesian linear head         You et al. 2021
``hscore``         tr(cov(f)^+ cov(E[f|y]))                               Bao et al. 2019
``reg_hscore``     H-score with a Ledoit-Wolf shrunk covariance           Ibrahim et al. 2022
``nce``            negative conditional entropy H(y | source argmax)      Tran et al. 2019
``leep``           log expected empirical prediction                      Nguyen et al. 2020
``gbc``            Gaussian Bhattacharyya coefficient (class overlap)     Pándy et al. 2022
``transrate``      coding rate of the features minus that given labels    Huang et al. 2022
``knn``            leave-one-out k-nearest-neighbour accuracy             (simple reference)
=================  ====================================================  =====================

``nce`` and ``leep`` read the source classifier's probabilities instead of the
features. The others share one eigendecomposition per feature matrix, of
``F^T F`` or ``F F^T`` whichever is smaller, so ``d > n`` costs no more than
``d = n``. Rank is decided relative to the largest eigenvalue, so constant and
duplicated feature columns neither crash a metric nor turn it into NaN.

References
----------
- K. You, Y. Liu, J. Wang, M. Long. "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning." ICML 2021.
- Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir, L. Guibas. "An
  Information-Theoretic Approach to Transferability in Task Transfer Learning." ICIP 2019.
- S. Ibrahim, N. Ponomareva, R. Mazumder. "Newer is not always better: Rethinking
  transferability metrics, their peculiarities, stability and performance." ECML-PKDD 2022.
- A. T. Tran, C. V. Nguyen, T. Hassner. "Transferability and Hardness of Supervised
  Classification Tasks." ICCV 2019.
- C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau. "LEEP: A New Measure to Evaluate
  Transferability of Learned Representations." ICML 2020.
- M. Pándy, A. Agostinelli, J. Uijlings, V. Ferrari, T. Mensink. "Transferability
  Estimation using Bhattacharyya Class Separability." CVPR 2022.
- L.-K. Huang, J. Huang, Y. Rong, Q. Yang, Y. Wei. "Frustratingly Easy Transferability
  Estimation." ICML 2022.

Examples
--------
>>> import numpy as np
>>> from recsys import scores
>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1, 2], 20)
>>> f = rng.normal(size=(60, 8)) + y[:, None]          # features that separate the classes
>>> scores.logme(f, y) > scores.logme(rng.normal(size=(60, 8)), y)
True
>>> sorted(scores.compute(f, y, ["hscore", "knn"]))
['hscore', 'knn']
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Iterable

import numpy as np

from .errors import RecsysError
from .threads import one_blas_thread

__all__ = ["ScoreError", "METRICS", "NEEDS_SOURCE", "logme", "hscore", "regularized_hscore", "nce", "leep", "gbc",
           "transrate", "knn_accuracy", "compute", "degenerate"]

log = logging.getLogger(__name__)

_EPS = np.finfo(np.float64).eps
# Below this size numpy's eigh is as fast as the tridiagonal route and simpler.
_SMALL_EIGH = 384
# Products below this many multiply-adds run on one BLAS thread (recsys.threads.one_blas_thread).
_SMALL_PRODUCT = 5e8


class ScoreError(RecsysError, ValueError):
    """Input a transferability metric cannot score (shapes, labels, NaN, source probabilities)."""


# ---------------------------------------------------------------------------
# input checks


def _check_features(features, labels):
    """(float64 features (n, d), class codes 0..C-1 (n,), class counts (C,)) or ScoreError."""
    try:
        F = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):
        raise ScoreError("give features as a numeric array of shape (n_samples, n_features): they are not") from None
    if F.ndim != 2:
        raise ScoreError(f"give 2-D features (n_samples, n_features), a single feature as (n, 1): got shape "
                         f"{F.shape}")
    codes, counts = _check_labels(labels, len(F))
    bad = ~np.isfinite(F)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise ScoreError(f"drop or impute the samples with NaN/inf features first: {int(bad.sum())} value(s) in "
                         f"{len(rows)} row(s) (first: {rows[:3].tolist()})")
    if F.shape[1] == 0:
        raise ScoreError("give at least one feature per sample: the features have 0 columns")
    return F, codes, counts


def _check_labels(labels, n: int):
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ScoreError(f"give 1-D labels (n_samples,): got shape {y.shape}")
    if len(y) != n:
        raise ScoreError(f"give one label per sample: the features have {n} rows, the labels {len(y)} entries")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ScoreError("map class names to integer ids 0..C-1 and drop samples without a label: the labels "
                             "hold non-integer or NaN floats")
    elif y.dtype.kind not in "iub":
        raise ScoreError(f"map class names to integer ids 0..C-1 first: the labels have dtype {y.dtype}")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ScoreError(f"give labels of at least 2 classes (transferability compares them): they hold "
                         f"{len(classes)} class")
    if n <= len(classes):
        raise ScoreError(f"add samples: {n} samples for {len(classes)} classes, and a metric needs more samples than "
                         f"classes (at least one class with 2 or more samples)")
    return codes.reshape(-1), np.bincount(codes.reshape(-1))


def _check_source(source_probs, n: int) -> np.ndarray:
    if source_probs is None:
        raise ScoreError("give source_probs (n_samples, n_source_classes), the source classifier's softmax outputs: "
                         "this metric needs them (models without a classification head cannot give them)")
    try:
        P = np.asarray(source_probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ScoreError("give source_probs as a numeric array (n_samples, n_source_classes): it is not") from None
    if P.ndim != 2 or len(P) != n:
        raise ScoreError(f"give source_probs of shape ({n}, n_source_classes), one row per label: got {P.shape}")
    if not np.isfinite(P).all():
        raise ScoreError("give the softmax of finite logits as source_probs: they contain NaN/inf")
    if (P < 0).any() or np.abs(P.sum(1) - 1).max() > 1e-3:
        raise ScoreError("pass the softmax of the source logits as source_probs, not the logits: its rows must be "
                         "probability vectors (non-negative, summing to 1)")
    return P


# ---------------------------------------------------------------------------
# shared linear algebra


class _SymEig:
    """Eigendecomposition of a symmetric PSD matrix, ascending, without always forming the vectors.

    For a large matrix, numpy's ``eigh`` (divide and conquer, all vectors) costs
    about three times its tridiagonal reduction. The metrics need the vectors only
    applied to a few columns (one per class) or a few of them (PCA), so the matrix
    is reduced once (``dsytrd``), the tridiagonal problem solved by MRRR
    (``stemr``, O(d^2)), and the Householder reflectors applied to those columns only.
    """

    def __init__(self, G: np.ndarray):
        G = np.asarray(G, dtype=np.float64)
        self.size = len(G)
        with one_blas_thread():
            if self.size <= _SMALL_EIGH:
                w, self._V = np.linalg.eigh(G)
            else:
                from scipy.linalg import eigh_tridiagonal, lapack

                lwork, info = lapack.dsytrd_lwork(self.size, lower=1)
                packed, diag, off, self._tau, info = lapack.dsytrd(G, lower=1, lwork=int(lwork))
                if info != 0:  # pragma: no cover - LAPACK failure on a finite symmetric matrix
                    raise np.linalg.LinAlgError(f"dsytrd failed (info={info})")
                self._reflectors = packed
                w, self._W = eigh_tridiagonal(diag, off, lapack_driver="stemr")
                self._V = None
        # Round-off makes zero eigenvalues of a PSD matrix slightly negative.
        self.values = np.maximum(w, 0.0)

    def vt(self, B: np.ndarray) -> np.ndarray:
        """``V^T B`` for ``B`` of shape (size, m)."""
        with one_blas_thread():
            if self._V is not None:
                return self._V.T @ B
            return self._W.T @ self._apply_q(B, transpose=True)

    def v(self, cols: np.ndarray) -> np.ndarray:
        """Columns ``cols`` of the eigenvector matrix ``V`` (size, len(cols))."""
        if self._V is not None:
            return self._V[:, cols]
        with one_blas_thread():
            return self._apply_q(self._W[:, cols], transpose=False)

    def _apply_q(self, B: np.ndarray, *, transpose: bool) -> np.ndarray:
        """``Q^T B`` or ``Q B`` for the orthogonal ``Q`` of ``G = Q T Q^T``.

        With ``UPLO='L'``, ``dsytrd`` stores ``Q = H(1) ... H(n-1)``, ``H(i) = I - tau_i v v^T``,
        ``v = (0_i, 1, A[i+2:, i])``: on rows 1..n-1 that is the ``Q`` of a QR factorization
        whose reflectors sit in ``A[1:, :n-1]``, so LAPACK's blocked ``dormqr`` applies it
        (level-3 BLAS, as ``dormtr`` would; scipy does not wrap ``dormtr``).
        """
        from scipy.linalg import lapack

        B = np.array(B, dtype=np.float64, order="F")
        if self.size < 2 or B.shape[1] == 0:
            return B
        a = np.asfortranarray(self._reflectors[1:, :-1])
        tau = self._tau[: self.size - 1]
        trans = "T" if transpose else "N"
        # workspace query: too small a workspace silently falls back to the unblocked algorithm
        _, work, _ = lapack.dormqr("L", trans, a, tau, B[1:], lwork=-1)
        sub, _, info = lapack.dormqr("L", trans, a, tau, B[1:], lwork=int(work[0]), overwrite_c=1)
        if info != 0:  # pragma: no cover - invalid arguments only
            raise np.linalg.LinAlgError(f"dormqr failed (info={info})")
        B[1:] = sub
        return B


def _onehot_sums(X: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class sums of the rows of ``X``: (n_classes, X.shape[1])."""
    from scipy import sparse

    Y = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_classes, len(codes)))
    return np.asarray(Y @ X)


class _Spectrum:
    """Thin SVD of ``X`` (n, d) through the eigendecomposition of the smaller Gram matrix.

    ``X = U diag(s) V^T`` with the ``k`` singular values kept: eigenvalues of the Gram
    matrix below ``max(n, d) * eps`` times the largest are round-off of the product
    (constant or duplicated columns), and dropped. Gives the class-indicator
    projections ``U^T Y`` and leading principal components without forming the
    larger factor.
    """

    def __init__(self, X: np.ndarray):
        self.X = X
        n, d = X.shape
        self.right = d <= n  # decompose X^T X (d x d); else X X^T (n x n)
        with one_blas_thread(float(n) * d * min(n, d) < _SMALL_PRODUCT):
            G = X.T @ X if self.right else X @ X.T
        eig = _SymEig(G)
        w = eig.values
        tol = w.max(initial=0.0) * max(n, d) * _EPS
        self.keep = np.flatnonzero(w > tol) if w.max(initial=0.0) > 0 else np.zeros(0, dtype=int)
        self.sigma = w[self.keep]          # squared singular values s^2, ascending
        self.eig = eig

    @property
    def rank(self) -> int:
        return len(self.keep)

    def ut_onehot(self, codes: np.ndarray, n_classes: int) -> np.ndarray:
        """``U^T Y`` (k, n_classes) for the one-hot label matrix ``Y``."""
        if self.rank == 0:
            return np.zeros((0, n_classes))
        if self.right:
            # U = X V / s, so U^T Y = V^T (X^T Y) / s; X^T Y is the per-class feature sums.
            sums = _onehot_sums(self.X, codes, n_classes).T       # (d, C)
            return self.eig.vt(sums)[self.keep] / np.sqrt(self.sigma)[:, None]
        onehot = np.zeros((len(codes), n_classes))
        onehot[np.arange(len(codes)), codes] = 1.0
        return self.eig.vt(onehot)[self.keep]

    def components(self, p: int) -> np.ndarray:
        """Scores on the ``p`` leading principal axes, ``U_p diag(s_p)`` (n, p)."""
        p = min(p, self.rank)
        cols = self.keep[::-1][:p]  # largest first
        if self.right:
            return self.X @ self.eig.v(cols)
        return self.eig.v(cols) * np.sqrt(self.eig.values[cols])[None, :]


def _centered(F: np.ndarray) -> np.ndarray:
    return F - F.mean(0, keepdims=True)


# ---------------------------------------------------------------------------
# LogME


def logme(features, labels, *, tol: float = 1e-10, max_iter: int = 10_000) -> float:
    """Log maximum evidence of a Bayesian linear head on the features (You et al. 2021).

    For each class ``c`` the indicator ``y_c`` is modelled as ``F w + noise``,
    ``w ~ N(0, I / alpha)``, ``noise ~ N(0, I / beta)``; ``alpha`` and ``beta``
    maximize the evidence ``p(y_c | F)`` by the paper's fixed-point iteration
    (Algorithm 1). The score is the maximum log evidence divided by ``n``,
    averaged over classes.

    The iteration runs in the eigenbasis of ``F^T F`` (or ``F F^T`` when
    ``d > n``), decomposed once for all classes; per class it then updates only
    the scalar ``t = alpha / beta`` and every class is updated at once:
    ``gamma = sum s / (s + t)``, ``|m|^2 = sum s x^2 / (s + t)^2``,
    ``|F m - y|^2 = sum x^2 t^2 / (s + t)^2 + r``, with ``s`` the eigenvalues,
    ``x = U^T y_c`` and ``r = |y_c|^2 - |x|^2``; ``alpha = gamma / |m|^2``,
    ``beta = (n - gamma) / |F m - y|^2`` until ``t`` changes by less than
    ``tol`` (relative). With ``A = alpha I + beta F^T F`` the evidence's
    ``d/2 log alpha - 1/2 log|A|`` is written ``-1/2 sum log(1 + s/t)`` over the
    non-zero eigenvalues: exact, and finite when ``F`` is rank-deficient.

    Parameters
    ----------
    features : array_like of float, shape (n, d)
    labels : array_like of int, shape (n,)
        Class ids (any integers; at least 2 classes).
    tol : float
        Relative change of ``alpha / beta`` at which a class's iteration stops.
    max_iter : int

    Returns
    -------
    float
        Mean over classes of the log evidence per sample (higher is better).
        Invariant to scaling the features by a constant, to orthogonal rotations
        and to duplicating feature columns (all leave ``F F^T`` equal up to a
        factor that ``alpha`` absorbs).

    Raises
    ------
    ScoreError
        Shapes, NaN features, fewer than 2 classes, no more samples than classes.

    Notes
    -----
    Differences from the authors' code (github.com/thuml/LogME): it stops at 11
    iterations or a 1% change of ``alpha / beta`` and adds ``1e-5`` to the two
    denominators; here the iteration runs to convergence without the epsilon
    (on well-conditioned data the results differ by about 1e-5, and the score
    becomes exactly scale invariant). Their later ``_fit_fixed_point`` keeps ``d/2 log alpha`` while summing
    ``log(alpha + beta s)`` over the non-zero eigenvalues only, which adds
    ``(d - rank)/(2n) log alpha`` when ``d > n``; this follows the paper's
    evidence, as their ICML version (``_fit_icml``) does.
    """
    F, codes, counts = _check_features(features, labels)
    return _logme(_Spectrum(F), codes, counts, tol=tol, max_iter=max_iter)


def _logme(spec: _Spectrum, codes, counts, *, tol: float, max_iter: int) -> float:
    n = len(codes)
    C = len(counts)
    k = spec.rank
    sigma = spec.sigma[:, None]                      # (k, 1) non-zero eigenvalues of F^T F
    x2 = spec.ut_onehot(codes, C) ** 2               # (k, C)
    # |y_c|^2 - |U^T y_c|^2: the part of y_c outside the features' span. When the features span
    # R^n (rank n, so d >= n) it is exactly 0; the subtraction would leave round-off that outweighs
    # the vanishing residual of the noise-free limit.
    resid = np.zeros(C) if k == n else np.maximum(counts - x2.sum(0), 0.0)
    # t = alpha / beta stays in a band outside of which the evidence no longer changes (relative
    # change below 1e-10): a class orthogonal to the features sends t to +inf (weights 0), one that
    # the features fit exactly (d >= n) to 0 (noise-free limit). Only such classes reach the edges.
    t_lo = 1e-10 * float(spec.sigma.min(initial=1.0))
    t_hi = 1e10 * float(spec.sigma.max(initial=1.0))

    def step(t, cols):
        """One fixed-point update of t for the classes ``cols``: (new t, n - gamma, |F m - y|^2 at t)."""
        xc = x2[:, cols]
        inv = 1.0 / (sigma + t)                      # (k, len(cols))
        r = sigma * inv                              # beta s / (alpha + beta s)
        q = t * inv                                  # 1 - r, computed without cancellation
        gamma = r.sum(0)
        # n - gamma summed directly: near t = 0 the difference n - gamma loses every digit.
        n_gamma = (n - k) + q.sum(0)
        m2 = (r * inv * xc).sum(0)                   # |m|^2 = sum s x^2 / (s + t)^2
        res2 = (q * q * xc).sum(0) + resid[cols]     # |F m - y|^2
        with np.errstate(divide="ignore", invalid="ignore"):
            t_new = (gamma / m2) * (res2 / n_gamma)  # alpha / beta = (gamma / |m|^2) / ((n - gamma) / |F m - y|^2)
        t_new = np.where(np.isfinite(t_new) & (t_new > 0), t_new, t_hi)
        return t_new, n_gamma, res2

    t = np.ones(C)  # alpha = beta = 1, as in the paper
    active = np.arange(C)
    for _ in range(max_iter):
        t_new = np.clip(step(t[active], active)[0], t_lo, t_hi)  # vectorized over the classes still moving
        moving = np.abs(t_new - t[active]) > tol * t[active]
        t[active] = t_new
        active = active[moving]
        if not len(active):
            break
    else:
        log.debug("LogME: %d class(es) did not converge in %d iterations", len(active), max_iter)
    # Evidence after the last update, as in the paper. With alpha = gamma / |m|^2 and
    # beta = (n - gamma) / |F m - y|^2 the two quadratic terms add up to n/2, and
    # d/2 log alpha - 1/2 log|alpha I + beta F^T F| = -1/2 sum log(1 + s / t) over s > 0.
    # The update is not clipped here: beta and t must come from the same step.
    t_next, n_gamma, res2 = step(t, np.arange(C))
    log_beta = np.log(n_gamma) - np.log(np.maximum(res2, np.finfo(float).tiny))
    logdet = np.log1p(sigma / t_next[None, :]).sum(0)
    evidence = 0.5 * n * log_beta - 0.5 * logdet - 0.5 * n - 0.5 * n * math.log(2 * math.pi)
    return float(np.mean(evidence / n))


# ---------------------------------------------------------------------------
# H-scores


def hscore(features, labels) -> float:
    """H-score: ``tr(cov(f)^+ cov(E[f | y]))`` (Bao et al. 2019).

    The between-class covariance measured in units of the total covariance;
    equivalently the sum of the squared canonical correlations between the
    features and the one-hot labels, so ``0 <= H <= C - 1``.

    Parameters
    ----------
    features : array_like of float, shape (n, d)
    labels : array_like of int, shape (n,)

    Returns
    -------
    float
        Invariant to any invertible linear map of the features (scaling,
        rotation, duplicated columns) and to relabelling the classes.

    Raises
    ------
    ScoreError

    Notes
    -----
    The pseudo-inverse keeps the eigen-directions above ``max(n, d) * eps``
    times the largest. The metric itself saturates as ``d`` nears ``n``: once
    ``d >= n - 1`` the within-class covariance is singular in every between-class
    direction and ``H = C - 1`` for any generic features; use
    :func:`regularized_hscore` there.
    """
    F, codes, counts = _check_features(features, labels)
    spec = _Spectrum(_centered(F))
    _warn_degenerate("hscore", spec, counts, None)
    return _hscore(spec, codes, counts)


def _between_projections(spec: _Spectrum, codes, counts) -> np.ndarray:
    """``b_i = v_i^T cov(E[f|y]) v_i`` on each kept eigenvector ``v_i`` of the centred features."""
    # v_i^T (mean_c - mean) = (U^T Y)_ic s_i / n_c and cov(E[f|y]) = sum_c n_c/n (mean_c - mean)(...)^T
    P = spec.ut_onehot(codes, len(counts))                   # (k, C)
    return (P ** 2 / counts[None, :]).sum(1) * spec.sigma / len(codes)


def _hscore(spec: _Spectrum, codes, counts) -> float:
    if spec.rank == 0:
        return 0.0  # constant features separate nothing
    n = len(codes)
    return float((_between_projections(spec, codes, counts) / (spec.sigma / n)).sum())


def regularized_hscore(features, labels) -> float:
    """Shrinkage-based H-score ``H_a`` (Ibrahim, Ponomareva and Mazumder 2022).

    ``tr(S_a^{-1} (1 - a) cov(E[f | y]))`` with ``S_a = (1 - a) S + a (tr S / d) I``
    the Ledoit-Wolf estimate of the feature covariance ``S`` and ``a`` its
    Ledoit-Wolf shrinkage intensity, computed from the data. Shrinkage keeps the
    score informative when ``d`` is close to or above ``n``, where the plain
    H-score saturates. The TransferGraph zoo lists it as ``REG_H_SCORE``.

    Parameters
    ----------
    features : array_like of float, shape (n, d)
    labels : array_like of int, shape (n,)

    Returns
    -------
    float
        Invariant to scaling the features by a constant and to orthogonal
        rotations; equals :func:`hscore` when the shrinkage is 0.

    Raises
    ------
    ScoreError

    Notes
    -----
    Both covariances use the ``1/n`` normalization (so ``a = 0`` gives the
    H-score exactly); the Transfer-Learning-Library's ``regularized_h_score``
    takes the class-mean covariance with ``1/(n-1)``, a factor ``n/(n-1)`` above
    (the TransferGraph code follows that library).
    """
    F, codes, counts = _check_features(features, labels)
    return _regularized_hscore(_Spectrum(_centered(F)), codes, counts)


def _ledoit_wolf_shrinkage(spec: _Spectrum) -> float:
    """Ledoit-Wolf (2004) shrinkage intensity of the centred features' covariance (sklearn's formula)."""
    X = spec.X
    n, d = X.shape
    lam = spec.eig.values / n                       # eigenvalues of S = X^T X / n (non-zero ones)
    mu = lam.sum() / d
    frob2 = float((lam ** 2).sum())                 # |S|_F^2
    # sum_ij ((X^2)^T X^2)_ij = sum_samples |x|^4: the fourth moments without a d x d product
    fourth = float(((X ** 2).sum(1) ** 2).sum())
    beta = (fourth / n - frob2) / (d * n)
    delta = (frob2 - d * mu ** 2) / d
    if delta <= 0:
        return 0.0
    return float(np.clip(min(beta, delta) / delta, 0.0, 1.0))


def _regularized_hscore(spec: _Spectrum, codes, counts) -> float:
    if spec.rank == 0:
        return 0.0
    n, d = spec.X.shape
    a = _ledoit_wolf_shrinkage(spec)
    mu = spec.eig.values.sum() / n / d
    b = _between_projections(spec, codes, counts)
    # Eigen-directions outside the kept ones carry no between-class variance (cov(E[f|y]) <= S).
    return float(((1 - a) * b / ((1 - a) * spec.sigma / n + a * mu)).sum())


# ---------------------------------------------------------------------------
# NCE and LEEP (source classifier's probabilities)


def nce(features, labels, source_probs) -> float:
    """Negative conditional entropy ``-H(Y | Z)`` (Tran, Nguyen and Hassner 2019).

    ``Z`` is the source classifier's prediction (the argmax of ``source_probs``)
    and ``Y`` the target label, both over the target samples; natural logarithm.

    Parameters
    ----------
    features : array_like or None
        Unused (kept for the common signature; may be None).
    labels : array_like of int, shape (n,)
    source_probs : array_like of float, shape (n, c)
        Softmax outputs of the source model's classification head.

    Returns
    -------
    float
        ``<= 0``; 0 when the source prediction determines the target label.
        Invariant to relabelling the target or the source classes.

    Raises
    ------
    ScoreError
    """
    codes, counts = _check_labels(labels, len(np.asarray(labels)))
    P = _check_source(source_probs, len(codes))
    z = P.argmax(1)
    C = len(counts)
    joint = np.bincount(z * C + codes, minlength=P.shape[1] * C).reshape(P.shape[1], C) / len(codes)  # P(z, y)
    pz = joint.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(joint > 0, joint / pz, 1.0)  # P(y | z); 0 log 0 = 0
    return float((joint * np.log(cond)).sum())


def leep(features, labels, source_probs) -> float:
    """Log expected empirical prediction (Nguyen, Hassner, Seeger and Archambeau 2020).

    With ``theta`` the source probabilities, the empirical joint
    ``P(y, z) = 1/n sum_i theta_iz [y_i = y]`` gives ``P(y | z)``; LEEP is the mean
    log-likelihood of the target labels under ``sum_z theta_iz P(y | z)``.

    Parameters
    ----------
    features : array_like or None
        Unused (kept for the common signature; may be None).
    labels : array_like of int, shape (n,)
    source_probs : array_like of float, shape (n, c)

    Returns
    -------
    float
        ``<= 0``. Invariant to relabelling the target or the source classes.

    Raises
    ------
    ScoreError
    """
    codes, counts = _check_labels(labels, len(np.asarray(labels)))
    P = _check_source(source_probs, len(codes))
    n = len(codes)
    joint = _onehot_sums(P, codes, len(counts)) / n          # (C, c): P(y, z)
    pz = joint.sum(0, keepdims=True)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)   # P(y | z); unused z get 0
    eep = np.einsum("iz,iz->i", P, cond.T[:, codes].T)        # sum_z theta_iz P(y_i | z)
    # Sample i itself puts theta_iz into P(y_i, z), so eep > 0; the floor guards round-off only.
    return float(np.mean(np.log(np.maximum(eep, 1e-300))))


# ---------------------------------------------------------------------------
# GBC


def gbc(features, labels, *, pca_dim: int | None = 64, gaussian: str = "spherical", var_floor: float = 1e-4) -> float:
    """Gaussian Bhattacharyya coefficient (Pándy et al. 2022).

    The features are reduced to their ``pca_dim`` leading principal components,
    each class is modelled by a Gaussian (per-class mean, and variance either
    one per dimension, ``"diagonal"``, or their mean, ``"spherical"``), and
    ``GBC = -sum_{i != j} exp(-D_B(i, j))`` over ordered class pairs, with the
    Bhattacharyya distance
    ``D_B = 1/8 (mu_i - mu_j)^T S^{-1} (mu_i - mu_j) + 1/2 ln(det S / sqrt(det S_i det S_j))``,
    ``S = (S_i + S_j) / 2``. The defaults are the authors' experiment settings
    (spherical, 64 components).

    Parameters
    ----------
    features : array_like of float, shape (n, d)
    labels : array_like of int, shape (n,)
    pca_dim : int or None
        Principal components kept (None: all), at most the rank of the centred
        features (axes without variance are never kept).
    gaussian : {"spherical", "diagonal"}
    var_floor : float
        Per-class variances are floored at ``var_floor`` times the mean variance
        of the reduced features, so a class with one sample or a constant
        feature gives a finite distance.

    Returns
    -------
    float
        In ``[-C (C - 1), 0]``; higher (closer to 0) means better separated
        classes. Invariant to scaling the features by a constant, to
        orthogonal rotations and to relabelling the classes.

    Raises
    ------
    ScoreError

    Notes
    -----
    Two departures from the authors' code (google-research ``stable_transfer``):
    their floor is an absolute ``1e-4``, here it is relative so the score does not
    depend on the features' units; and their spherical variant adds
    ``1/2 ln(s / sqrt(s_i s_j))`` once, while the determinant of a spherical
    covariance in ``p`` dimensions is ``s^p``, so the paper's formula has ``p/2``
    of it, as here.
    """
    if gaussian not in ("spherical", "diagonal"):
        raise ScoreError(f"give gbc's gaussian 'spherical' or 'diagonal': got {gaussian!r}")
    if pca_dim is not None and pca_dim < 1:
        raise ScoreError(f"give gbc's pca_dim a positive integer or None: got {pca_dim!r}")
    F, codes, counts = _check_features(features, labels)
    return _gbc(_Spectrum(_centered(F)), codes, counts, pca_dim=pca_dim, gaussian=gaussian, var_floor=var_floor)


def _gbc(spec: _Spectrum, codes, counts, *, pca_dim, gaussian, var_floor) -> float:
    C = len(counts)
    if spec.rank == 0:
        return -float(C * (C - 1))  # every class at the same point: every pair overlaps fully
    Z = spec.components(spec.rank if pca_dim is None else pca_dim)   # (n, p), centred
    p = Z.shape[1]
    means = _onehot_sums(Z, codes, C) / counts[:, None]                # (C, p)
    var = _onehot_sums(Z ** 2, codes, C) / counts[:, None] - means ** 2  # population variances
    floor = var_floor * float((Z ** 2).mean())
    var = np.maximum(var, floor)
    if gaussian == "spherical":
        s = var.mean(1)                                                # (C,)
        avg = (s[:, None] + s[None, :]) / 2
        sq = (means ** 2).sum(1)
        dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * means @ means.T, 0.0)
        db = dist2 / (8 * avg) + 0.5 * p * (np.log(avg) - 0.5 * np.log(s)[:, None] - 0.5 * np.log(s)[None, :])
    else:
        db = np.empty((C, C))
        logv = np.log(var)
        for i in range(C):  # one row of pairs at a time: C x p memory, not C x C x p
            avg = (var[i][None, :] + var) / 2
            db[i] = ((means[i][None, :] - means) ** 2 / avg).sum(1) / 8 \
                + 0.5 * (np.log(avg).sum(1) - 0.5 * logv[i].sum() - 0.5 * logv.sum(1))
    bc = np.exp(-np.maximum(db, 0.0))  # D_B >= 0; clipping removes round-off below 0
    np.fill_diagonal(bc, 0.0)
    return -float(bc.sum())


# ---------------------------------------------------------------------------
# TransRate


def transrate(features, labels, *, eps: float = 1e-4) -> float:
    """TransRate: coding rate of the features minus their rate given the labels (Huang et al. 2022).

    ``R(Z) = 1/2 logdet(I + Z^T Z / (n eps))`` on the centred features ``Z``, and
    ``TrR = R(Z) - 1/C sum_c R(Z_c)`` with ``Z_c`` the rows of class ``c`` (centred
    with the global mean, ``n_c`` in place of ``n``), as in the authors' code and
    the Transfer-Learning-Library's ``transrate``.

    Parameters
    ----------
    features : array_like of float, shape (n, d)
    labels : array_like of int, shape (n,)
    eps : float
        Distortion; the score depends on the features' scale through it (the
        paper's code uses 1e-4 on raw features).

    Returns
    -------
    float
        Invariant to orthogonal rotations of the features and to relabelling
        the classes; not to scaling.

    Raises
    ------
    ScoreError
    """
    F, codes, counts = _check_features(features, labels)
    return _transrate(_Spectrum(_centered(F)), codes, counts, eps=eps)


def _coding_rate(eigenvalues: np.ndarray, n: int, eps: float) -> float:
    return 0.5 * float(np.log1p(np.maximum(eigenvalues, 0.0) / (n * eps)).sum())


def _transrate(spec: _Spectrum, codes, counts, *, eps) -> float:
    X = spec.X
    n, d = X.shape
    total = _coding_rate(spec.eig.values, n, eps)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    per_class = 0.0
    with one_blas_thread():  # many small products and eigenvalue problems
        for c in range(len(counts)):
            Xc = X[order[starts[c]:starts[c + 1]]]
            # logdet(I + Xc^T Xc / a) from the smaller of the two Gram matrices (same non-zero eigenvalues)
            G = Xc @ Xc.T if len(Xc) < d else Xc.T @ Xc
            per_class += _coding_rate(np.linalg.eigvalsh(G), len(Xc), eps)
    return total - per_class / len(counts)


# ---------------------------------------------------------------------------
# kNN


def knn_accuracy(features, labels, *, k: int = 5, chunk: int | None = None) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (Euclidean): a simple reference metric.

    Each sample is classified by the majority label of its ``k`` nearest other
    samples; a tie goes to the tied class whose nearest member ranks first.

    Parameters
    ----------
    features : array_like of float, shape (n, d)
    labels : array_like of int, shape (n,)
    k : int
        Neighbours (at most ``n - 1`` are used). Distances are computed in
        float32 (the cost is the ``n x n`` products); only near-ties may order
        differently from float64.
    chunk : int, optional
        Rows of the distance matrix computed at once (default: about 16 M entries).

    Returns
    -------
    float
        In [0, 1]. Invariant to scaling, rotating and translating the features
        and to relabelling the classes.

    Raises
    ------
    ScoreError
    """
    if int(k) < 1:
        raise ScoreError(f"give knn's k a positive integer: got {k!r}")
    F, codes, counts = _check_features(features, labels)
    return _knn(F, codes, len(counts), k=int(k), chunk=chunk)


def _knn(F, codes, C, *, k, chunk=None) -> float:
    n = len(F)
    k = min(k, n - 1)
    # Distances in float32: the n x n products are the cost (half the time of float64) and only
    # near-ties can order differently. Centring (translation changes no distance) keeps the
    # cancellation in |x_j|^2 - 2 x_i.x_j small.
    X = _centered(F).astype(np.float32)
    sq = (X.astype(np.float64) ** 2).sum(1).astype(np.float32)
    rows = chunk or max(1, (1 << 24) // n)
    with one_blas_thread(float(n) * n * X.shape[1] < _SMALL_PRODUCT):
        return _knn_correct(X, sq, codes, C, k, rows) / n


def _knn_correct(X, sq, codes, C, k, rows) -> int:
    """Number of samples whose leave-one-out k-NN vote gives their own label."""
    n = len(X)
    ranks = np.arange(k)
    correct = 0
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        # |x_i - x_j|^2 without |x_i|^2, constant along the row: the same neighbours
        D = sq[None, :] - 2.0 * (X[start:stop] @ X.T)
        D[np.arange(stop - start), np.arange(start, stop)] = np.inf  # leave the sample itself out
        nn = np.argpartition(D, k - 1, axis=1)[:, :k] if k < n - 1 else np.argsort(D, axis=1)[:, :k]
        # order the k neighbours by distance (ties by index) for the tie-break
        dn = np.take_along_axis(D, nn, axis=1)
        o = np.lexsort((nn, dn), axis=1)
        nn = np.take_along_axis(nn, o, axis=1)
        lab = codes[nn]                                             # (m, k)
        votes = np.zeros((stop - start, C))
        np.add.at(votes, (np.arange(stop - start)[:, None], lab), float(k + 1))
        # tie-break: earlier (nearer) rank adds more, but less than one vote
        first = np.full((stop - start, C), -1.0)
        np.maximum.at(first, (np.arange(stop - start)[:, None], lab), (k - ranks)[None, :].astype(float))
        pred = (votes + np.maximum(first, 0)).argmax(1)
        correct += int((pred == codes[start:stop]).sum())
    return correct


# ---------------------------------------------------------------------------
# registry and batch computation

#: metric name -> function; all take (features, labels[, source_probs]) and return a float
METRICS: dict[str, Callable[..., float]] = {
    "logme": logme,
    "hscore": hscore,
    "reg_hscore": regularized_hscore,
    "nce": nce,
    "leep": leep,
    "gbc": gbc,
    "transrate": transrate,
    "knn": knn_accuracy,
}

#: metrics that read the source classifier's probabilities
NEEDS_SOURCE = frozenset({"nce", "leep"})


def compute(features, labels, metrics: Iterable[str] | None = None, source_probs=None, *,
            what: str | None = None) -> dict[str, float]:
    """Several metrics on the same data, sharing the eigendecompositions.

    A metric asked where it degenerates is computed, with a warning that names
    the alternative (see :func:`degenerate`).

    Parameters
    ----------
    features : array_like of float, shape (n, d)
    labels : array_like of int, shape (n,)
    metrics : iterable of str, optional
        Names of :data:`METRICS`; default all, minus ``nce``/``leep`` when
        ``source_probs`` is None.
    source_probs : array_like of float, shape (n, c), optional
    what : str, optional
        Names the features in warnings (the model, in ``recsys score``).

    Returns
    -------
    dict
        ``{name: score}`` in the order asked.

    Raises
    ------
    ScoreError
        An unknown metric name, ``nce``/``leep`` asked without ``source_probs``,
        or input a metric cannot score.
    """
    if metrics is None:
        names = [m for m in METRICS if source_probs is not None or m not in NEEDS_SOURCE]
    else:
        names = list(dict.fromkeys(str(m).strip().lower() for m in metrics))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ScoreError(f"choose metrics from {', '.join(METRICS)}: unknown metric(s) {', '.join(map(repr, unknown))}")
    if source_probs is None and any(m in NEEDS_SOURCE for m in names):
        raise ScoreError(f"drop {', '.join(m for m in names if m in NEEDS_SOURCE)} or give source_probs (the source "
                         f"classifier's softmax outputs): they need them")
    F, codes, counts = _check_features(features, labels)
    P = _check_source(source_probs, len(F)) if source_probs is not None else None
    out: dict[str, float] = {}
    raw = centred = None
    for name in names:
        if name == "logme":
            raw = raw or _Spectrum(F)
            out[name] = _logme(raw, codes, counts, tol=1e-10, max_iter=10_000)
        elif name in ("hscore", "reg_hscore", "gbc", "transrate"):
            centred = centred or _Spectrum(_centered(F))
            if name == "hscore":
                _warn_degenerate(name, centred, counts, what)
                out[name] = _hscore(centred, codes, counts)
            elif name == "reg_hscore":
                out[name] = _regularized_hscore(centred, codes, counts)
            elif name == "gbc":
                out[name] = _gbc(centred, codes, counts, pca_dim=64, gaussian="spherical", var_floor=1e-4)
            else:
                out[name] = _transrate(centred, codes, counts, eps=1e-4)
        elif name == "knn":
            out[name] = _knn(F, codes, len(counts), k=5)
        else:
            out[name] = METRICS[name](None, codes, P)
    return out


def degenerate(metric: str, n_samples: int, rank: int, n_classes: int) -> str | None:
    """Why ``metric`` tells nothing on ``n_samples`` samples of features of rank ``rank`` in ``n_classes`` classes,
    with the alternative to use (None when it is informative).

    The H-score is the sum of the ``C - 1`` squared canonical correlations between the features and the labels;
    when ``rank > n - C`` the span of the features meets that of the (centred) labels in ``rank + C - n``
    directions for any features at all, each correlation 1 (Bao et al. 2019's estimate needs ``n`` well above
    ``d``): with fewer samples than feature dimensions it is ``C - 1`` for a good encoder and a random one alike.
    """
    if metric == "hscore" and n_classes > 1 and rank > n_samples - n_classes:
        full = rank >= n_samples - 1
        return (f"use reg_hscore (the shrinkage H-score) or logme instead, or score more samples: hscore on "
                f"{n_samples} samples of rank-{rank} features in {n_classes} classes is "
                f"{'exactly' if full else 'pushed towards'} its maximum C - 1 = {n_classes - 1} whatever the "
                f"features (fewer samples than feature dimensions)")
    return None


def _warn_degenerate(metric: str, spec: _Spectrum, counts, what: str | None) -> None:
    why = degenerate(metric, len(spec.X), spec.rank, len(counts))
    if why:
        log.warning("%s%s", f"{what}: " if what else "", why)
