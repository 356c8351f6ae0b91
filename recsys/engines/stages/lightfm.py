"""LightFM on soft labels: the factorization stage shared by ``lightfm`` and ``hybrid``.

LightFM (Kula, 2015, "Metadata Embeddings for User and Item Cold-start
Recommendations") learns an embedding per *feature*; a user (dataset) or item
(model) is the sum of its features' embeddings, so a dataset never seen in
fit is embedded from its metadata alone. Its losses are implicit-feedback
losses; an accuracy is given to it as a soft label: a standardized accuracy
``z`` becomes ``t = sigmoid(z / tau)``, and each record is a positive
interaction weighted ``t`` plus a negative one weighted ``1 - t`` under the
logistic loss, whose optimum is ``sigmoid(score) = t``; so ``tau * score``
estimates ``z``.

Users are datasets, described by a bias, their metadata features (one-hot,
standardized numerics, text-embedding dimensions), the bag of their text
tokens (label names) and its crosses with each categorical column (e.g.
domain x label); items are models (identity + metadata). No dataset identity
feature: every dataset, recorded or brand-new, is represented through its
features, so cold start is the normal path.

A fit sees at most ``max_records`` records (default :data:`MAX_RECORDS`; a
random sample above, each dataset keeping its share): LightFM's cost grows
with the interactions, and the stage's job, mapping metadata to a profile, is
learned as well from tens of thousands of records as from millions.
"""

from __future__ import annotations

import numpy as np

from ...features.data import Cells, SideFeatures

__all__ = ["user_features", "item_features", "fit_soft_labels", "scores_at", "scores_rows", "score_row_means",
           "scores_of_users",
           "MAX_RECORDS", "MIN_RECORDS"]

_T_CLIP = (0.01, 0.99)
#: most records an engine's LightFM fits see, shared by its fold fits (a stratified sample above);
#: each fit sees at least :data:`MIN_RECORDS` of them when it has that many. Speed: LightFM's SGD
#: costs about 4 us per record and epoch at ~50 active features per record; 60,000 (the cap until
#: 2026-11) cost 9.4 s of a 1,300 x 36 zoo's 10.2 s engine fit, and on the synthetic zoos of
#: ``benchmarks/scale.py`` the cap of 20,000 kept hold-out Pearson where it was (0.904 at
#: 1,300 x 36, 0.797 vs 0.799 at 200 x 3,000, 0.798 vs 0.789 at 500 x 10,000). The four reference
#: zoos' fits are below both caps.
MAX_RECORDS = 20_000
MIN_RECORDS = 5_000


def user_features(side: SideFeatures):
    """Bias + metadata features + token bag (rows scaled 1/sqrt(n)) + categorical x token crosses (CSR)."""
    import scipy.sparse as sp

    n = len(side)
    blocks = [sp.csr_matrix(np.ones((n, 1))), sp.csr_matrix(side.matrix)]
    cats = list(side.categorical.values())
    for col in sorted(side.tokens):
        bag = side.tokens[col].csr()
        size = np.asarray(bag.sum(1)).reshape(-1)
        bag = sp.diags(1.0 / np.sqrt(np.maximum(size, 1.0))) @ bag
        blocks.append(bag)
        for onehot in cats:
            for level in range(onehot.shape[1]):
                blocks.append(sp.diags(onehot[:, level]) @ bag)
    UF = sp.hstack(blocks, format="csr", dtype=np.float32)
    UF.eliminate_zeros()  # a zero entry would still make LightFM regularize that feature's embedding
    return UF


def item_features(model_features: np.ndarray):
    """Identity + model metadata (CSR)."""
    import scipy.sparse as sp

    n = len(model_features)
    return sp.hstack([sp.identity(n), sp.csr_matrix(model_features)], format="csr", dtype=np.float32)


def _sample(cells: Cells, z: np.ndarray, rng: np.random.Generator, limit: int) -> tuple[Cells, np.ndarray]:
    """About ``limit`` cells at most, each dataset keeping a share proportional to its records."""
    if len(cells) <= limit:
        return cells, z
    keep = rng.random(len(cells)) < limit / len(cells)
    return cells.select(keep), z[keep]


def fit_soft_labels(cells: Cells, z: np.ndarray, UF, IF, *, alpha: float, no_components: int, epochs: int,
                    learning_rate: float, tau: float, seed: int, max_records: int = MAX_RECORDS
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Fit LightFM on the soft labels of ``z`` (one standardized value per cell, NaN: unused).

    Returns (user feature embeddings with the bias as last column, (n_user_features, k + 1);
    item representations with the bias as last column, (n_models, k + 1)).
    """
    import scipy.sparse as sp
    from lightfm import LightFM

    ok = ~np.isnan(z)
    cells, z = cells.select(ok), z[ok]
    cells, z = _sample(cells, z, np.random.default_rng([seed, 101]), max_records)
    d, m = cells.d.astype(np.int64), cells.m.astype(np.int64)
    t = np.clip(1.0 / (1.0 + np.exp(-z / tau)), *_T_CLIP)
    rows, cols = np.r_[d, d], np.r_[m, m]
    shape = cells.shape
    inter = sp.coo_matrix((np.r_[np.ones_like(t), -np.ones_like(t)].astype(np.float32), (rows, cols)), shape=shape)
    weight = sp.coo_matrix((np.r_[t, 1 - t].astype(np.float32), (rows, cols)), shape=shape)
    model = LightFM(no_components=no_components, loss="logistic", learning_rate=learning_rate,
                    user_alpha=alpha, item_alpha=alpha, random_state=seed)
    model.fit(inter, user_features=UF, item_features=IF, sample_weight=weight, epochs=epochs, num_threads=1)
    user = np.hstack([model.user_embeddings, model.user_biases[:, None]]).astype(np.float64)
    item = np.hstack([IF @ model.item_embeddings, (IF @ model.item_biases)[:, None]]).astype(np.float64)
    return user, item


def scores_of_users(users: np.ndarray, item: np.ndarray, tau: float) -> np.ndarray:
    """``tau * score`` from precomputed user representations (n_fits, n, k + 1): the mean over fits, (n, n_models)."""
    out = 0.0
    for u, i in zip(users, item):
        out = out + (u[:, :-1] @ i[:, :-1].T + u[:, -1:] + i[:, -1][None, :])
    return tau * out / len(users)


def _users(UF, user: np.ndarray) -> np.ndarray:
    return np.asarray(UF @ user)


def scores_rows(UF, user: np.ndarray, item: np.ndarray, tau: float) -> np.ndarray:
    """``tau * score`` for users described by ``UF`` over every model: (n, n_models).

    ``user``/``item`` may be stacked over several fits (3-D): the mean over fits.
    """
    if user.ndim == 3:
        return np.mean([scores_rows(UF, u, i, tau) for u, i in zip(user, item)], axis=0)
    u = _users(UF, user)
    return tau * (u[:, :-1] @ item[:, :-1].T + u[:, -1:] + item[:, -1][None, :])


def score_row_means(UF, user: np.ndarray, item: np.ndarray, tau: float) -> np.ndarray:
    """``scores_rows(UF, user, item, tau).mean(1)`` without the (n, n_models) matrix (the mean is linear)."""
    u = _users(UF, user)
    return tau * (u[:, :-1] @ item[:, :-1].mean(0) + u[:, -1] + item[:, -1].mean())


def scores_at(UF, user: np.ndarray, item: np.ndarray, tau: float, d: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``tau * score`` at cells (``d`` rows of ``UF``, ``m`` models); stacked fits are averaged."""
    if user.ndim == 3:
        return np.mean([scores_at(UF, u, i, tau, d, m) for u, i in zip(user, item)], axis=0)
    u = _users(UF, user)
    out = np.empty(len(d))
    for start in range(0, len(d), 1 << 20):  # blocks: the gathered embeddings are (cells x k)
        sl = slice(start, start + (1 << 20))
        dd, mm = d[sl], m[sl]
        out[sl] = np.einsum("ij,ij->i", u[dd, :-1], item[mm, :-1]) + u[dd, -1] + item[mm, -1]
    return tau * out
