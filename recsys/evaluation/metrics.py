"""Per-dataset quality of a predicted accuracy vector, and its aggregates.

Every metric compares, for one dataset, the true accuracies of the models
(``truth``) with predicted (or filled) ones (``pred``); cells where either is
NaN are left out first. Conventions:

- correlations (Pearson, Spearman, Kendall tau-b) are NaN when either vector
  is constant or fewer than two cells remain;
- NDCG@k uses the true accuracy as the gain and the ``1 / log2(rank + 1)``
  discount; ties in ``pred`` are averaged (as ``sklearn.metrics.ndcg_score``
  does by default); NaN when every gain is 0;
- regret@k is the true best accuracy minus the best true accuracy among the
  ``k`` models ranked first by ``pred``, in accuracy points (x100); ties in
  ``pred`` at the cut are broken at random and the expectation is reported
  (so that no model order, e.g. by index, is favoured);
- every metric is NaN when no cell remains.

Aggregates: the nan-mean over datasets (per repetition, optionally per bin of
known models), then mean and standard deviation over repetitions.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata

__all__ = [
    "pearson",
    "spearman",
    "kendall_tau_b",
    "ndcg_at_k",
    "regret_at_k",
    "metric_names",
    "dataset_metrics",
    "LOWER_IS_BETTER",
    "mean_over_datasets",
    "mean_std_over_reps",
]

#: metric name prefixes where a smaller value is better
LOWER_IS_BETTER = ("regret",)


def _pair(truth, pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(truth, dtype=np.float64).reshape(-1)
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"truth and pred differ in length ({t.size} vs {p.size})")
    ok = ~(np.isnan(t) | np.isnan(p))
    return t[ok], p[ok]


def _constant(x: np.ndarray) -> bool:
    # An exact check: mean-centering a constant float vector need not give exact zeros.
    return x.size < 2 or x.max() == x.min()


def _pearson(t: np.ndarray, p: np.ndarray) -> float:
    if _constant(t) or _constant(p):
        return float("nan")
    tc, pc = t - t.mean(), p - p.mean()
    r = float(tc @ pc / math.sqrt((tc @ tc) * (pc @ pc)))
    return min(1.0, max(-1.0, r))


def pearson(truth, pred) -> float:
    """Pearson correlation; NaN if either vector is constant.

    Examples
    --------
    >>> pearson([0.1, 0.2, 0.3], [1, 2, 4])
    0.9819805060619657
    """
    return _pearson(*_pair(truth, pred))


def spearman(truth, pred) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either vector is constant."""
    t, p = _pair(truth, pred)
    if _constant(t) or _constant(p):
        return float("nan")
    return _pearson(rankdata(t), rankdata(p))


def _kendall(t: np.ndarray, p: np.ndarray) -> float:
    if _constant(t) or _constant(p):  # scipy would warn and return NaN
        return float("nan")
    return float(kendalltau(t, p)[0])  # tau-b, O(n log n)


def kendall_tau_b(truth, pred) -> float:
    """Kendall tau-b (``scipy.stats.kendalltau``, its default variant); NaN if either vector is constant."""
    return _kendall(*_pair(truth, pred))


def _ndcg(t: np.ndarray, p: np.ndarray, k: int) -> float:
    n = t.size
    if n == 0 or not (t > 0).any():
        return float("nan")
    discount = 1.0 / np.log2(np.arange(n) + 2.0)
    discount[k:] = 0.0
    ideal = float(np.sort(t)[::-1] @ discount)
    # Tie-averaged DCG: a group of tied predictions shares its positions' discounts
    # equally (McSherry & Najork 2008; sklearn's default).
    _, inv, counts = np.unique(-p, return_inverse=True, return_counts=True)
    gains = np.bincount(inv.reshape(-1), weights=t, minlength=counts.size) / counts
    cum = np.cumsum(discount)[np.cumsum(counts) - 1]
    dcg = float(gains @ np.diff(cum, prepend=0.0))
    return dcg / ideal


def ndcg_at_k(truth, pred, k: int) -> float:
    """NDCG@k with gain = true accuracy and ties in ``pred`` averaged.

    Equals ``sklearn.metrics.ndcg_score([truth], [pred], k=k)`` except that a
    vector with no positive gain gives NaN (sklearn: 0).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return _ndcg(*_pair(truth, pred), k)


def _regret(t: np.ndarray, p: np.ndarray, k: int) -> float:
    n = t.size
    if n == 0:
        return float("nan")
    k = min(k, n)
    cut = np.sort(p)[::-1][k - 1]
    above, tied = p > cut, p == cut
    slots = k - int(above.sum())  # drawn at random from the tied group at the cut
    fixed = t[above].max() if above.any() else -np.inf
    a = np.sort(t[tied])[::-1]
    m = a.size
    # P(the best of a random `slots`-subset is the i-th best of the group) = C(m-1-i, slots-1) / C(m, slots).
    probs = np.array([math.comb(m - 1 - i, slots - 1) for i in range(m)], dtype=float) / math.comb(m, slots)
    expected_best = float(probs @ np.maximum(a, fixed))
    # (the probabilities sum to 1 up to rounding: a regret of 0 must not come out as -1e-14)
    return 100.0 * max(float(t.max()) - expected_best, 0.0)


def regret_at_k(truth, pred, k: int) -> float:
    """True best accuracy minus the best true accuracy among the top ``k`` by ``pred``, x100.

    Ties in ``pred`` that straddle the cut are broken uniformly at random; the
    expected regret is returned.

    Examples
    --------
    >>> regret_at_k([0.9, 0.5, 0.7], [0.1, 0.3, 0.2], k=1)
    40.0
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return _regret(*_pair(truth, pred), k)


def metric_names(k: int) -> list[str]:
    """Column names of :func:`dataset_metrics` for cut-off ``k``."""
    names = ["pearson", "spearman", "kendall", f"ndcg@{k}", "regret@1", f"regret@{k}"]
    return list(dict.fromkeys(names))


def dataset_metrics(truth, pred, k: int) -> dict[str, float]:
    """All per-dataset metrics of :func:`metric_names` (k) for one dataset."""
    t, p = _pair(truth, pred)
    out = {"pearson": _pearson(t, p), "kendall": _kendall(t, p), f"ndcg@{k}": _ndcg(t, p, k),
           "regret@1": _regret(t, p, 1), f"regret@{k}": _regret(t, p, k)}
    out["spearman"] = float("nan") if _constant(t) or _constant(p) else _pearson(rankdata(t), rankdata(p))
    return {name: out[name] for name in metric_names(k)}


def lower_is_better(metric: str) -> bool:
    return metric.startswith(LOWER_IS_BETTER)


def mean_over_datasets(per_dataset: pd.DataFrame, metrics: Sequence[str], by: Iterable[str]) -> pd.DataFrame:
    """Nan-mean of each metric over the datasets of each ``by`` group.

    A group whose values are all NaN gets NaN (no warning).
    """
    by = list(by)
    return per_dataset.groupby(by, sort=False, dropna=False)[list(metrics)].mean().reset_index()


def mean_std_over_reps(per_rep: pd.DataFrame, metrics: Sequence[str], by: Iterable[str]) -> pd.DataFrame:
    """Long table ``by..., metric, mean, std, n_reps`` over the rows (repetitions) of each group.

    ``std`` is the sample standard deviation (ddof=1) of the repetition values,
    NaN with a single repetition; ``n_reps`` counts repetitions with a finite value.
    """
    by = list(by)
    long = per_rep.melt(id_vars=by, value_vars=list(metrics), var_name="metric", value_name="value")
    g = long.groupby(by + ["metric"], sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n_reps": g.count()}).reset_index()
    return out
