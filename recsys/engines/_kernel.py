"""Learned-metric kernel over datasets: a cold-capable profile from similar datasets.

Two datasets are compared by *similarity features* built from their metadata:
same value of each categorical column, minus the distance of each numeric
column, Jaccard overlap of each text column's tokens (label names) and cosine
of its text embeddings. A dataset's profile is the weighted mean of the other
datasets' standardized accuracies, weights ``exp(beta . phi + gamma log
coherence)``, where the coherence of a neighbour is how well its records agree
with the zoo's mean profile (a dataset of near-constant, noisy accuracies gets
little say). ``beta`` and ``gamma`` are learned by leave-one-dataset-out squared
error on the datasets with enough records (Nadaraya-Watson regression with a
learned metric; Weinberger & Tesauro, 2007, "Metric learning for kernel
regression").

Matrices are (n_datasets, n_models); ``Z`` holds standardized known accuracies
and NaN elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.optimize import minimize

__all__ = ["SimilarityInputs", "similarity_features", "coherence", "learn_weights", "kernel_profile"]


@dataclass
class SimilarityInputs:
    """What the similarity features are computed from, for one set of datasets.

    Attributes
    ----------
    categorical : list of ndarray (n, levels)
        One-hot blocks, one per categorical column.
    numeric : ndarray (n, n_numeric)
        Standardized numeric columns (0 where missing).
    tokens : list of ndarray (n, vocabulary)
        Token indicators (0/1), one block per text column.
    text : list of ndarray (n, dim)
        L2-normalized text embeddings, one per text column.
    """

    categorical: list
    numeric: np.ndarray
    tokens: list
    text: list

    @classmethod
    def from_features(cls, features: np.ndarray, groups: Mapping[str, slice], tokens: Mapping[str, np.ndarray],
                      text: Mapping[str, np.ndarray]) -> "SimilarityInputs":
        cats = [features[:, sl] for key, sl in groups.items() if key.startswith("categorical:")]
        nums = [features[:, sl.start] for key, sl in groups.items() if key.startswith("numeric:")]
        numeric = np.column_stack(nums) if nums else np.zeros((len(features), 0))
        return cls(cats, numeric, [np.asarray(v, float) for _, v in sorted(tokens.items())],
                   [np.asarray(v, float) for _, v in sorted(text.items())])

    def n_features(self) -> int:
        return len(self.categorical) + self.numeric.shape[1] + len(self.tokens) + len(self.text)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}numeric": self.numeric}
        for i, c in enumerate(self.categorical):
            out[f"{prefix}cat{i}"] = c
        for i, t in enumerate(self.tokens):
            out[f"{prefix}tok{i}"] = t
        for i, e in enumerate(self.text):
            out[f"{prefix}txt{i}"] = e
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> "SimilarityInputs":
        def seq(tag):
            out, i = [], 0
            while f"{prefix}{tag}{i}" in arrays:
                out.append(np.asarray(arrays[f"{prefix}{tag}{i}"], float))
                i += 1
            return out

        return cls(seq("cat"), np.asarray(arrays[f"{prefix}numeric"], float), seq("tok"), seq("txt"))


def similarity_features(a: SimilarityInputs, b: SimilarityInputs) -> np.ndarray:
    """Similarity features between every dataset of ``a`` and of ``b``: (n_features, len(a), len(b))."""
    feats = []
    for ca, cb in zip(a.categorical, b.categorical):
        feats.append(ca @ cb.T)  # 1 when both have the same level
    for k in range(a.numeric.shape[1]):
        feats.append(-np.abs(a.numeric[:, k][:, None] - b.numeric[:, k][None, :]))
    for ta, tb in zip(a.tokens, b.tokens):
        inter = ta @ tb.T
        union = ta.sum(1)[:, None] + tb.sum(1)[None, :] - inter
        feats.append(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0))
    for ea, eb in zip(a.text, b.text):
        feats.append(ea @ eb.T)
    if not feats:
        return np.zeros((0, a.numeric.shape[0], b.numeric.shape[0]))
    return np.stack(feats)


def coherence(Z: np.ndarray, min_common: int = 3) -> np.ndarray:
    """Per dataset: correlation of its known standardized accuracies with the others' mean profile.

    Clipped to [0.05, 1]; datasets with too few records get the median.
    """
    K = ~np.isnan(Z)
    Zz = np.where(K, Z, 0.0)
    total, count = Zz.sum(0), K.sum(0)
    others = (total[None, :] - Zz) / np.maximum(count[None, :] - 1, 1)
    n = K.sum(1)
    nn = np.maximum(n, 1)
    mx = Zz.sum(1) / nn
    mo = np.where(K, others, 0.0).sum(1) / nn
    dx = np.where(K, Zz - mx[:, None], 0.0)
    do = np.where(K, others - mo[:, None], 0.0)
    sxx, soo, sxo = (dx * dx).sum(1), (do * do).sum(1), (dx * do).sum(1)
    ok = (n >= min_common) & (sxx > 1e-12) & (soo > 1e-12)
    rel = np.where(ok, sxo / np.sqrt(np.where(ok, sxx * soo, 1.0)), np.nan)
    med = float(np.median(rel[ok])) if ok.any() else 1.0
    return np.clip(np.where(ok, rel, med), 0.05, 1.0)


def _column_means(Z: np.ndarray) -> np.ndarray:
    """Mean known value per model (0 where a model has none), without NaN warnings."""
    K = ~np.isnan(Z)
    return np.where(K, Z, 0.0).sum(0) / np.maximum(K.sum(0), 1)


def _weights(phi: np.ndarray, beta: np.ndarray, log_rel: np.ndarray, exclude_self: bool) -> np.ndarray:
    s = np.tensordot(beta[:-1], phi, 1) if len(phi) else np.zeros(phi.shape[1:])
    s = s + beta[-1] * log_rel[None, :]
    s = s - s.max(1, keepdims=True)
    W = np.exp(s)
    if exclude_self:
        np.fill_diagonal(W, 0.0)
    return W


def kernel_profile(Z: np.ndarray, phi: np.ndarray, beta: np.ndarray, log_rel: np.ndarray, *,
                   exclude_self: bool) -> np.ndarray:
    """Weighted mean of the neighbours' known standardized accuracies, (n_query, n_models).

    ``phi`` is (n_features, n_query, n_datasets) against the datasets of ``Z``.
    Where no neighbour knows a model, the zoo's mean profile is used.
    """
    W = _weights(phi, beta, log_rel, exclude_self)
    K = ~np.isnan(Z)
    num = W @ np.where(K, Z, 0.0)
    den = W @ K.astype(float)
    fallback = _column_means(Z)
    return np.where(den > 1e-12, num / np.maximum(den, 1e-300), fallback[None, :])


def learn_weights(Z: np.ndarray, phi: np.ndarray, log_rel: np.ndarray, *, min_known: int = 5,
                  l2: float = 1e-4, init: np.ndarray | None = None) -> np.ndarray:
    """``[beta..., gamma]`` minimizing leave-one-dataset-out error (analytic gradient, L-BFGS).

    Only datasets with at least ``min_known`` records are scored; with fewer
    than 5 such datasets the kernel stays uniform (all weights 0).
    """
    n_feat = phi.shape[0] + 1
    K = ~np.isnan(Z)
    target = K.sum(1) >= min_known
    if target.sum() < 5:
        return np.zeros(n_feat)
    phi_all = np.concatenate([phi, np.broadcast_to(log_rel[None, None, :], (1,) + phi.shape[1:])], 0)
    T = (K & target[:, None]).astype(float)
    N = T.sum()
    Zz = np.where(K, Z, 0.0)
    Kf = K.astype(float)
    fallback = _column_means(Z)

    def loss_grad(b):
        s = np.tensordot(b, phi_all, 1)
        s = s - s.max(1, keepdims=True)
        W = np.exp(s)
        np.fill_diagonal(W, 0.0)
        num, den = W @ Zz, W @ Kf
        M = np.where(den > 1e-12, num / np.maximum(den, 1e-300), fallback[None, :])
        e = np.where(T > 0, Zz - M, 0.0)
        A = np.where(den > 1e-12, e / np.maximum(den, 1e-300), 0.0)
        G = A @ Zz.T - (A * M) @ Kf.T  # d loss / d W, up to -2/N
        grad = -2.0 / N * np.einsum("fjl,jl->f", phi_all, W * G) + 2 * l2 * b
        return (e ** 2).sum() / N + l2 * (b ** 2).sum(), grad

    x0 = np.zeros(n_feat) if init is None or len(init) != n_feat else np.asarray(init, float)
    res = minimize(loss_grad, x0, jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * n_feat,
                   options={"ftol": 1e-7, "gtol": 1e-5})
    return res.x
