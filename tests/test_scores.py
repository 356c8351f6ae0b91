"""Transferability metrics against independent references.

References used here, each written from the paper rather than from recsys.scores:

- LogME: Algorithm 1 of You et al. (ICML 2021), one class at a time in the original feature
  basis (``m = beta A^{-1} F^T y`` solved directly, ``A = alpha I + beta F^T F``), iterated to
  convergence; when ``d > n`` the same ``m`` through the push-through identity
  ``F^T (t I + F F^T)^{-1} y`` and ``log|A|`` through Sylvester's identity, so that the
  reference stays well-conditioned. Also the authors' public code's own stopping rule
  (github.com/thuml/LogME, ``each_evidence``: 11 iterations, 1% tolerance, 1e-5 epsilon),
  and the closed form of the noise-free limit.
- H-score: ``tr(pinv(cov f) cov(E[f|y]))`` with dense matrices; the 1-D value is eta^2.
- Regularized H-score: scikit-learn's ``LedoitWolf`` covariance and shrinkage.
- TransRate: ``slogdet`` of the d x d matrices (the authors' formula).
- GBC: Bhattacharyya distance of Gaussians with dense covariance matrices and ``slogdet``.
- NCE, LEEP, kNN: values derived by hand on tiny inputs, and closed forms.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from recsys import scores
from recsys.errors import RecsysError
from recsys.scores import ScoreError

ALL = ["logme", "hscore", "reg_hscore", "gbc", "transrate", "knn"]


def blobs(n=60, d=8, C=3, sep=0.7, seed=0):
    """Gaussian features with a class signal of strength ``sep``; every class present."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    y[:C] = np.arange(C)
    f = rng.normal(size=(n, d)) + sep * np.eye(C)[y] @ rng.normal(size=(C, d))
    return f, y


# ---------------------------------------------------------------------------
# LogME


def logme_reference(F, y, tol=1e-12, max_iter=100_000, per_class=False):
    """Algorithm 1 of You et al. (2021), per class, converged; mean over classes of evidence / n."""
    n, d = F.shape
    dual = d > n
    G = F @ F.T if dual else F.T @ F
    s = np.clip(np.linalg.eigvalsh(G), 0, None)
    s_min = s[s > s.max() * 1e-12].min()
    out = []
    for c in np.unique(y):
        yc = (y == c).astype(float)
        Fy = F.T @ yc
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            t = alpha / beta
            if dual:
                m = F.T @ np.linalg.solve(t * np.eye(n) + G, yc)
            else:
                m = beta * np.linalg.solve(alpha * np.eye(d) + beta * G, Fy)
            gamma = (s / (s + t)).sum()                    # sum beta s / (alpha + beta s)
            n_gamma = (n - len(s)) + (t / (s + t)).sum()   # n - gamma, summed without cancellation
            r = F @ m - yc
            alpha, beta = gamma / (m @ m), n_gamma / (r @ r)
            # stop at convergence, or in the noise-free limit (beta -> inf) where the evidence is flat
            if abs(alpha / beta - t) <= tol * t or alpha / beta < 1e-10 * s_min:
                break
        t = alpha / beta
        if dual:  # Sylvester: |alpha I_d + beta F^T F| = alpha^d |I_n + F F^T / t|
            logdet = d * np.log(alpha) + np.linalg.slogdet(np.eye(n) + G / t)[1]
        else:
            logdet = np.linalg.slogdet(alpha * np.eye(d) + beta * G)[1]
        ev = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi) - beta / 2 * (r @ r)
              - alpha / 2 * (m @ m) - 0.5 * logdet)
        out.append(ev / n)
    return out if per_class else float(np.mean(out))


@pytest.mark.parametrize("n,d,C,seed", [(60, 8, 3, 0), (200, 30, 5, 1), (50, 50, 5, 2), (20, 19, 3, 3),
                                        (20, 21, 3, 4), (40, 60, 4, 5), (30, 100, 3, 6), (120, 10, 12, 7)])
def test_logme_matches_algorithm_1(n, d, C, seed):
    f, y = blobs(n, d, C, seed=seed)
    assert scores.logme(f, y) == pytest.approx(logme_reference(f, y), abs=1e-6)


@pytest.mark.parametrize("n,d,C,seed", [(60, 30, 3, 0), (40, 60, 4, 5)])
def test_logme_matches_algorithm_1_on_the_large_matrix_path(monkeypatch, n, d, C, seed):
    # Matrices above _SMALL_EIGH take the tridiagonal route (dsytrd + MRRR + Householder reflectors);
    # lowering the threshold sends these small ones there.
    monkeypatch.setattr(scores, "_SMALL_EIGH", 8)
    f, y = blobs(n, d, C, seed=seed)
    assert scores.logme(f, y) == pytest.approx(logme_reference(f, y), abs=1e-6)


def logme_authors(F, y):
    """The authors' public code (thuml/LogME, ``each_evidence``): 11 iterations at most, a 1% stopping
    tolerance and 1e-5 added to two denominators."""
    n, d = F.shape
    v, s, _ = np.linalg.svd(F.T @ F)
    out = []
    for c in np.unique(y):
        yc = (y == c).astype(float)
        alpha, beta, lam = 1.0, 1.0, 1.0
        tmp = v.T @ (F.T @ yc)
        for _ in range(11):
            gamma = (s / (s + lam)).sum()
            m = v @ (tmp * beta / (alpha + beta * s))
            a_de = m @ m
            alpha = gamma / (a_de + 1e-5)
            b_de = ((yc - F @ m) ** 2).sum()
            beta = (n - gamma) / (b_de + 1e-5)
            new = alpha / beta
            if abs(new - lam) / lam < 0.01:
                break
            lam = new
        ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * s))
              - beta / 2 * (b_de + 1e-5) - alpha / 2 * (a_de + 1e-5) - n / 2 * np.log(2 * np.pi))
        out.append(ev / n)
    return float(np.mean(out))


def test_logme_close_to_the_authors_stopping_rule():
    """Their early stop and epsilon move the value by about 6e-6 here; the converged one is the reference."""
    for seed in range(3):
        f, y = blobs(300, 20, 4, seed=seed)
        assert scores.logme(f, y) == pytest.approx(logme_authors(f, y), abs=5e-5)


def test_logme_noise_free_limit_closed_form():
    """d >= n: a class the features fit exactly can have its maximum at beta = inf; there the
    evidence is max over alpha of log N(y; 0, F F^T / alpha), reached at alpha = n / y^T (F F^T)^-1 y."""
    f, y = blobs(30, 100, 3, seed=2)
    n = len(f)
    K = f @ f.T
    per_class = logme_reference(f, y, per_class=True)
    at_limit = 0
    for c, ref in enumerate(per_class):
        yc = (y == c).astype(float)
        limit = (-n / 2 * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(K)[1]
                 + n / 2 * np.log(n / (yc @ np.linalg.solve(K, yc))) - n / 2) / n
        assert ref >= limit - 1e-9  # the limit is one point of the maximized evidence
        at_limit += abs(ref - limit) < 1e-8
    assert at_limit >= 1  # this data set has such classes (all three, d >> n)
    assert scores.logme(f, y) == pytest.approx(np.mean(per_class), abs=1e-6)


def test_logme_zero_features_closed_form():
    """Rank 0: every weight is useless, beta = n / n_c and the evidence is a Gaussian's on y_c alone."""
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    n, counts = len(y), np.bincount(y)
    expected = np.mean([0.5 * np.log(n / nc) - 0.5 - 0.5 * np.log(2 * np.pi) for nc in counts])
    assert scores.logme(np.zeros((n, 5)), y) == pytest.approx(expected, abs=1e-12)


def test_logme_invariances():
    f, y = blobs(80, 12, 4, seed=9)
    base = scores.logme(f, y)
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert scores.logme(f * 123.4, y) == pytest.approx(base, abs=1e-9)      # scaling
    assert scores.logme(f @ Q, y) == pytest.approx(base, abs=1e-9)          # rotation
    assert scores.logme(np.hstack([f, f]), y) == pytest.approx(base, abs=1e-9)  # duplicated columns
    perm = np.array([2, 0, 3, 1])
    assert scores.logme(f, perm[y]) == pytest.approx(base, abs=1e-12)     # relabelling
    assert scores.logme(f, y + 10) == pytest.approx(base, abs=1e-12)      # any integer ids


# ---------------------------------------------------------------------------
# H-scores


def test_hscore_hand_value_1d():
    # one feature: H = between-class / total sum of squares. Means 0.5 and 3.5 around 2:
    # SS_between = 4 * 1.5^2 = 9, SS_total = 4 + 1 + 1 + 4 = 10.
    assert scores.hscore([[0.0], [1.0], [3.0], [4.0]], [0, 0, 1, 1]) == pytest.approx(0.9, abs=1e-12)


def hscore_reference(f, y):
    cov = np.cov(f, rowvar=False, bias=True)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    return float(np.trace(np.linalg.pinv(cov, rcond=1e-10, hermitian=True) @ np.cov(g, rowvar=False, bias=True)))


@pytest.mark.parametrize("n,d,C,seed", [(60, 8, 3, 0), (200, 30, 5, 1), (500, 450, 6, 2)])
def test_hscore_matches_dense_formula(n, d, C, seed):
    f, y = blobs(n, d, C, seed=seed)
    assert scores.hscore(f, y) == pytest.approx(hscore_reference(f, y), rel=1e-9)


def test_hscore_invariant_to_invertible_maps_and_saturates_when_d_reaches_n():
    f, y = blobs(100, 10, 4, seed=3)
    A = np.random.default_rng(1).normal(size=(10, 10))
    assert scores.hscore(f @ A + 5.0, y) == pytest.approx(scores.hscore(f, y), rel=1e-9)
    assert scores.hscore(np.hstack([f, f[:, :3]]), y) == pytest.approx(scores.hscore(f, y), rel=1e-9)
    # Documented property of the definition, not of this code: d >= n - 1 gives C - 1 for any features.
    g, yg = blobs(30, 40, 4, seed=4)
    noise = np.random.default_rng(2).normal(size=(30, 40))
    assert scores.hscore(g, yg) == pytest.approx(3.0, abs=1e-8)
    assert scores.hscore(noise, yg) == pytest.approx(3.0, abs=1e-8)


def reg_hscore_reference(f, y):
    from sklearn.covariance import LedoitWolf

    f = f - f.mean(0)
    lw = LedoitWolf(assume_centered=True).fit(f)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    return float(np.trace(np.linalg.solve(lw.covariance_, (1 - lw.shrinkage_) * np.cov(g, rowvar=False, bias=True))))


@pytest.mark.parametrize("n,d,C,seed", [(60, 8, 3, 0), (200, 30, 5, 1), (40, 60, 4, 2), (500, 450, 6, 3)])
def test_regularized_hscore_matches_ledoit_wolf(n, d, C, seed):
    f, y = blobs(n, d, C, seed=seed)
    assert scores.regularized_hscore(f, y) == pytest.approx(reg_hscore_reference(f, y), rel=1e-9)


def test_regularized_hscore_properties():
    # one feature: Ledoit-Wolf shrinks nothing (the target is the covariance itself), so H_a = H
    x, y = [[0.0], [1.0], [3.0], [4.0]], [0, 0, 1, 1]
    assert scores.regularized_hscore(x, y) == pytest.approx(0.9, abs=1e-12)
    f, y = blobs(40, 60, 4, seed=2)
    Q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(60, 60)))
    base = scores.regularized_hscore(f, y)
    assert scores.regularized_hscore(f * 0.01, y) == pytest.approx(base, rel=1e-9)
    assert scores.regularized_hscore(f @ Q, y) == pytest.approx(base, rel=1e-9)
    assert 0 < base < 3  # not saturated at C - 1 where the plain H-score is


def test_hscore_with_fewer_samples_than_dimensions_warns_and_names_the_alternative(caplog):
    """39 texts under a 384-dimensional encoder: H-score is exactly C - 1 for good and random features alike."""
    import logging

    good, y = blobs(39, 384, 6, sep=3.0, seed=4)
    rand = np.random.default_rng(5).normal(size=good.shape)
    with caplog.at_level(logging.WARNING, logger="recsys.scores"):
        values = [scores.compute(f, y, ["hscore", "reg_hscore"], what="my-encoder") for f in (good, rand)]
    assert values[0]["hscore"] == pytest.approx(5) and values[1]["hscore"] == pytest.approx(5)  # saturated
    assert values[0]["reg_hscore"] > values[1]["reg_hscore"]  # the alternative still tells them apart
    assert caplog.text.count("my-encoder: use reg_hscore (the shrinkage H-score) or logme instead") == 2
    assert "hscore on 39 samples of rank-38 features in 6 classes is exactly its maximum C - 1 = 5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recsys.scores"):
        scores.hscore(*blobs(300, 16, 4))                # many samples: informative, no warning
        scores.compute(good, y, ["logme", "reg_hscore"])  # no hscore asked: no warning
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING, logger="recsys.scores"):
        scores.hscore(*blobs(40, 36, 10))  # rank 36 > 40 - 10: some directions saturate
    assert "pushed towards its maximum C - 1 = 9" in caplog.text
    assert scores.degenerate("logme", 10, 384, 3) is None


# ---------------------------------------------------------------------------
# NCE and LEEP


def test_nce_hand_value():
    # argmax source labels z = 0, 0, 1, 1 and targets y = 0, 1, 1, 1:
    # H(Y|Z) = P(z=0) H(1/2, 1/2) + P(z=1) * 0 = ln(2) / 2
    P = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    assert scores.nce(None, [0, 1, 1, 1], P) == pytest.approx(-math.log(2) / 2, abs=1e-12)


def test_leep_hand_values():
    # Hard source probabilities: P(y|z=0) = (1/2, 1/2), P(y|z=1) = (0, 1);
    # the expected empirical predictions are 1/2, 1/2, 1, 1 -> LEEP = ln(1/2) / 2 (= NCE here).
    hard = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert scores.leep(None, [0, 1, 1, 1], hard) == pytest.approx(-math.log(2) / 2, abs=1e-12)
    # An uninformative source (the same row for every sample) predicts the label marginal: LEEP = -H(Y).
    y = np.random.default_rng(0).integers(0, 4, 50)
    p = np.bincount(y) / len(y)
    flat = np.tile([0.2, 0.3, 0.5], (50, 1))
    assert scores.leep(None, y, flat) == pytest.approx(float((p * np.log(p)).sum()), abs=1e-12)


def test_leep_nce_match_published_loops_and_permutations():
    rng = np.random.default_rng(4)
    n, C, Cs = 200, 5, 7
    y = rng.integers(0, C, n)
    logits = rng.normal(size=(n, Cs)) + 2 * np.eye(Cs)[y % Cs]
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # LEEP as Nguyen et al. write it: joint, conditional, mean log of the expected prediction
    joint = np.zeros((C, Cs))
    for i in range(n):
        joint[y[i]] += P[i] / n
    cond = joint / joint.sum(0, keepdims=True)
    ref_leep = np.mean([np.log(P[i] @ cond[y[i]]) for i in range(n)])
    assert scores.leep(None, y, P) == pytest.approx(ref_leep, abs=1e-12)
    # NCE as Tran et al. write it, from counts of (argmax, label)
    z = P.argmax(1)
    ref_nce = 0.0
    for zz in np.unique(z):
        pz = np.mean(z == zz)
        pyz = np.bincount(y[z == zz], minlength=C) / (z == zz).sum()
        ref_nce += pz * sum(q * np.log(q) for q in pyz if q > 0)
    assert scores.nce(None, y, P) == pytest.approx(ref_nce, abs=1e-12)
    perm_t, perm_s = rng.permutation(C), rng.permutation(Cs)
    for metric in (scores.nce, scores.leep):
        assert metric(None, perm_t[y], P[:, perm_s]) == pytest.approx(metric(None, y, P), abs=1e-12)


# ---------------------------------------------------------------------------
# GBC


def test_gbc_hand_value_1d():
    # class 0 = {0, 2}: mean 1, variance 1; class 1 = {4, 8}: mean 6, variance 4; average variance 2.5.
    # D_B = 5^2 / (8 * 2.5) + 1/2 ln(2.5 / sqrt(1 * 4)) and GBC = -2 exp(-D_B) (both ordered pairs).
    db = 25 / 20 + 0.5 * math.log(2.5 / 2)
    assert scores.gbc([[0.0], [2.0], [4.0], [8.0]], [0, 0, 1, 1]) == pytest.approx(-2 * math.exp(-db), rel=1e-12)


def gbc_reference(f, y, pca_dim, gaussian, var_floor=1e-4):
    """PCA by numpy's SVD, then the Bhattacharyya distance with dense covariance matrices."""
    X = f - f.mean(0)
    _, sv, vt = np.linalg.svd(X, full_matrices=False)
    rank = int((sv > sv[0] * 1e-12).sum())  # principal axes with variance (not the null ones when d >= n)
    Z = X @ vt[:min(pca_dim, rank)].T
    floor = var_floor * np.mean(Z ** 2)
    stats = []
    for c in np.unique(y):
        zc = Z[y == c]
        v = np.maximum(zc.var(0), floor)
        cov = np.diag(v) if gaussian == "diagonal" else np.eye(Z.shape[1]) * v.mean()
        stats.append((zc.mean(0), cov))
    total = 0.0
    for i, (mi, Si) in enumerate(stats):
        for j, (mj, Sj) in enumerate(stats):
            if i != j:
                S = (Si + Sj) / 2
                db = (mi - mj) @ np.linalg.solve(S, mi - mj) / 8 + 0.5 * (
                    np.linalg.slogdet(S)[1] - 0.5 * np.linalg.slogdet(Si)[1] - 0.5 * np.linalg.slogdet(Sj)[1])
                total += np.exp(-db)
    return -total


@pytest.mark.parametrize("gaussian", ["spherical", "diagonal"])
@pytest.mark.parametrize("n,d,C,pca,seed", [(90, 8, 3, 64, 0), (200, 30, 5, 10, 1), (40, 60, 4, 64, 2)])
def test_gbc_matches_dense_bhattacharyya(gaussian, n, d, C, pca, seed):
    f, y = blobs(n, d, C, sep=0.4, seed=seed)
    assert scores.gbc(f, y, pca_dim=pca, gaussian=gaussian) == pytest.approx(
        gbc_reference(f, y, pca, gaussian), rel=1e-9, abs=1e-12)


def test_gbc_invariances_and_overlap_bound():
    f, y = blobs(90, 8, 3, sep=0.4, seed=1)
    Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))
    base = scores.gbc(f, y)
    assert scores.gbc(f * 1e3, y) == pytest.approx(base, rel=1e-9)
    assert scores.gbc(f @ Q, y) == pytest.approx(base, rel=1e-9)
    assert scores.gbc(f, np.array([2, 0, 1])[y]) == pytest.approx(base, rel=1e-12)
    # identical classes overlap completely: every ordered pair gives BC = 1
    assert scores.gbc(np.ones((9, 4)), np.repeat([0, 1, 2], 3)) == -6.0


# ---------------------------------------------------------------------------
# TransRate


def test_transrate_hand_value_1d():
    # x = 0, 1, 3, 5 centred: -2.25, -1.25, 0.75, 2.75; eps = 1:
    # R(Z) = 1/2 ln(1 + 14.75 / 4); class 0: 1/2 ln(1 + 6.625 / 2); class 1: 1/2 ln(1 + 8.125 / 2)
    expected = 0.5 * math.log(1 + 14.75 / 4) - 0.5 * (0.5 * math.log(1 + 6.625 / 2) + 0.5 * math.log(1 + 8.125 / 2))
    assert scores.transrate([[0.0], [1.0], [3.0], [5.0]], [0, 0, 1, 1], eps=1.0) == pytest.approx(expected, abs=1e-12)


def transrate_reference(f, y, eps=1e-4):
    f = f - f.mean(0)

    def rate(z):
        n, d = z.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]

    classes = np.unique(y)
    return rate(f) - sum(rate(f[y == c]) for c in classes) / len(classes)


@pytest.mark.parametrize("n,d,C,seed", [(60, 8, 3, 0), (200, 30, 5, 1), (40, 60, 4, 2)])
def test_transrate_matches_slogdet(n, d, C, seed):
    f, y = blobs(n, d, C, seed=seed)
    assert scores.transrate(f, y) == pytest.approx(transrate_reference(f, y), rel=1e-9)
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    assert scores.transrate(f @ Q, y) == pytest.approx(transrate_reference(f, y), rel=1e-9)


# ---------------------------------------------------------------------------
# kNN


def test_knn_hand_values():
    # x = 0, 1, 2.5, 10, 11, 13 with labels 0, 0, 1, 1, 1, 0
    # k=1: 0->1 ok, 1->0 ok, 2.5->1 wrong, 10->11 ok, 11->10 ok, 13->11 wrong: 4/6
    # k=2 (tie -> the nearer neighbour's label): 0 ok, 1 ok, 2.5 wrong, 10 ok, 11 ok, 13 wrong: 4/6
    # k=3: 0 -> {0,1,1} wrong, 1 -> {0,1,1} wrong, 2.5 -> {0,0,1} wrong, 10 ok, 11 ok, 13 -> {1,1,1} wrong: 2/6
    x = np.array([[0.0], [1.0], [2.5], [10.0], [11.0], [13.0]])
    y = [0, 0, 1, 1, 1, 0]
    assert scores.knn_accuracy(x, y, k=1) == pytest.approx(4 / 6)
    assert scores.knn_accuracy(x, y, k=2) == pytest.approx(4 / 6)
    assert scores.knn_accuracy(x, y, k=3) == pytest.approx(2 / 6)
    # chunking does not change the answer
    f, yy = blobs(101, 5, 3, seed=2)
    assert scores.knn_accuracy(f, yy, chunk=7) == scores.knn_accuracy(f, yy)


# ---------------------------------------------------------------------------
# all metrics: invariances, stability, errors


def test_every_metric_invariant_to_relabelling():
    f, y = blobs(90, 10, 4, seed=11)
    perm = np.array([3, 1, 0, 2])
    for name in ALL:
        assert scores.METRICS[name](f, perm[y]) == pytest.approx(scores.METRICS[name](f, y), rel=1e-9, abs=1e-12), name


def test_stable_for_d_above_n_constant_and_duplicated_features():
    """The failure reported with other implementations: NaN, a crash, or every model scored alike."""
    rng = np.random.default_rng(5)
    n, C = 30, 3
    y = np.repeat(np.arange(C), n // C)
    signal = rng.normal(size=(n, 50)) + 1.5 * np.eye(C)[y] @ rng.normal(size=(C, 50))
    noise = rng.normal(size=(n, 50))

    def degrade(f):  # d > n, plus constant and duplicated columns
        return np.hstack([f, np.ones((n, 5)), np.zeros((n, 5)), f[:, :20], 2 * f[:, :20]])

    good, bad = scores.compute(degrade(signal), y), scores.compute(degrade(noise), y)
    for name in ALL:
        assert np.isfinite(good[name]) and np.isfinite(bad[name]), name
    for name in ("logme", "reg_hscore", "gbc", "transrate", "knn"):
        assert good[name] > bad[name], name
    # the plain H-score is saturated at C - 1 by definition once d >= n - 1 (see its docstring)
    assert good["hscore"] == pytest.approx(C - 1, abs=1e-6) and bad["hscore"] == pytest.approx(C - 1, abs=1e-6)


def test_compute_equals_single_metrics_and_large_path(monkeypatch):
    tall, wide = blobs(150, 120, 5, sep=0.3, seed=12), blobs(60, 120, 5, seed=13)  # d x d and n x n Gram
    dense = [scores.compute(*tall), scores.compute(*wide)]
    assert list(dense[0]) == ALL
    for name in ALL:
        assert dense[0][name] == pytest.approx(scores.METRICS[name](*tall), rel=1e-12), name
    monkeypatch.setattr(scores, "_SMALL_EIGH", 8)  # the tridiagonal route for every matrix
    for data, expected in zip((tall, wide), dense):
        got = scores.compute(*data)
        for name in ALL:
            assert got[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


def test_compute_source_metrics():
    f, y = blobs(60, 6, 3, seed=13)
    P = np.full((60, 4), 0.25)
    out = scores.compute(f, y, ["logme", "leep", "nce"], source_probs=P)
    assert out["leep"] == pytest.approx(scores.leep(None, y, P)) and out["nce"] == pytest.approx(scores.nce(None, y, P))
    assert set(scores.compute(f, y, source_probs=P)) == set(scores.METRICS)
    with pytest.raises(ScoreError, match="^drop leep or give source_probs"):
        scores.compute(f, y, ["leep"])
    with pytest.raises(ScoreError, match="^choose metrics from .*: unknown metric.*'logmee'"):
        scores.compute(f, y, ["logmee"])


@pytest.mark.parametrize("features,labels,source,match", [
    (np.ones((10, 3)), np.zeros(10, int), None, "at least 2 classes"),
    (np.ones((3, 3)), [0, 1, 2], None, "more samples than classes"),
    (np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]), [0, 1, 1], None, "NaN"),
    (np.ones((10, 3)), [0, 1] * 4, None, "give one label per sample: the features have 10 rows, the labels 8"),
    (np.ones(10), [0, 1] * 5, None, "2-D"),
    (np.ones((4, 2)), [0.5, 1, 0, 1], None, "integer"),
    (np.ones((4, 2)), ["a", "b", "a", "b"], None, "integer"),
    (np.ones((4, 0)), [0, 1, 0, 1], None, "0 columns"),
    (None, [0, 1, 0, 1], np.ones((4, 2)), "probability vectors"),
    (None, [0, 1, 0, 1], np.full((3, 2), 0.5), "shape"),
])
def test_bad_input_is_one_clear_line(features, labels, source, match):
    metric = (lambda: scores.leep(None, labels, source)) if source is not None else (
        lambda: scores.logme(features, labels))
    with pytest.raises(ScoreError, match=match) as info:
        metric()
    assert isinstance(info.value, RecsysError) and "\n" not in str(info.value)
    if source is None:  # every feature metric checks the same way
        for name in ALL:
            with pytest.raises(ScoreError, match=match):
                scores.METRICS[name](features, labels)


def test_docstring_examples():
    assert doctest.testmod(scores, raise_on_error=False).failed == 0


def test_blas_threads_restored():
    """Decompositions run on one BLAS thread (recsys.threads.one_blas_thread) and give the setting back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    seen = []
    eigh = np.linalg.eigh

    def recording_eigh(*args, **kwargs):
        seen.append(blas_threads())
        return eigh(*args, **kwargs)

    f, y = blobs(80, 12, 4, seed=14)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(np.linalg, "eigh", recording_eigh)
            scores.compute(f, y)
        assert blas_threads() == before
    assert seen and all(threads == [1] * len(threads) for threads in seen)  # decompositions on one thread
