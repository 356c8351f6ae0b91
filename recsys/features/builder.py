"""Metadata → side features, and the one id/feature builder.

:class:`SideSpec` turns one side's metadata table (models or datasets) into a
float matrix: one-hot categoricals, standardized numerics (log first for
heavy-tailed positive counts such as parameters, with a missing-value
indicator where the zoo has gaps) and text embeddings reduced by PCA to a few
dimensions. A spec is fitted on the zoo and stored in model files, so a
brand-new dataset given at query time is encoded exactly as the zoo was.

:class:`FeatureBuilder` owns the name ↔ index maps and builds the
:class:`~recsys.features.data.TrainData` engines are fitted on, in the
spirit of LightFM's ``Dataset``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import RecsysError, UnknownNameError
from ..zoo import Roles, Zoo
from .data import DatasetBlock, TrainData
from .text import TextEncoder, embed, get_encoder

__all__ = ["SideSpec", "FeatureBuilder", "parse_metadata"]

log = logging.getLogger(__name__)

#: a positive numeric column spanning this ratio or more is log-transformed
LOG_RATIO = 10.0


@dataclass
class SideSpec:
    """How one side's metadata becomes features (fitted, serializable).

    Attributes
    ----------
    categorical : list of (column, levels)
    numeric : list of dict(column, log, mean, std, missing)
        ``missing``: a 0/1 indicator column follows the value.
    text : list of dict(column, mean, components)
        PCA of the text embeddings: ``(emb - mean) @ components.T``.
    names : list of str
        One name per output column.
    groups : dict of str to slice
    """

    categorical: list = field(default_factory=list)
    numeric: list = field(default_factory=list)
    text: list = field(default_factory=list)
    names: list = field(default_factory=list)
    groups: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def columns(self) -> list[str]:
        cols = [c for c, _ in self.categorical] + [n["column"] for n in self.numeric] + [t["column"] for t in self.text]
        return list(dict.fromkeys(cols))

    @classmethod
    def fit(cls, df: pd.DataFrame, roles: Roles, *, encoder: TextEncoder | None, text_dims: int) -> "SideSpec":
        spec = cls()
        for col in roles.categorical:
            levels = sorted({str(v) for v in df[col].dropna()})
            spec.categorical.append((col, levels))
        for col in roles.numeric:
            x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
            ok = ~np.isnan(x)
            if not ok.any():
                continue
            if roles.log is not None:
                use_log = col in roles.log
            else:
                pos = x[ok]
                use_log = bool((pos > 0).all() and pos.max() / pos.min() >= LOG_RATIO)
            v = np.log(x[ok]) if use_log else x[ok]
            std = float(v.std()) or 1.0
            spec.numeric.append({"column": col, "log": use_log, "mean": float(v.mean()), "std": std,
                                 "missing": bool((~ok).any())})
        if roles.text and encoder is not None:
            for col in roles.text:
                emb = _embed_column(df[col], encoder)
                mean = emb.mean(0)
                centered = emb - mean
                k = int(min(text_dims, max(len(df) - 1, 1), emb.shape[1]))
                if k <= 0 or not np.any(centered):
                    continue
                _, s, vt = np.linalg.svd(centered, full_matrices=False)
                k = int(min(k, (s > 1e-6 * s[0]).sum()))  # never more directions than distinct texts
                comps = vt[:k]
                # Scale so each kept direction has unit variance over the zoo, like the numerics.
                scale = s[:k] / math.sqrt(max(len(df), 1))
                scale[scale == 0] = 1.0
                comps = comps / scale[:, None]
                # Deterministic sign: largest loading positive.
                signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
                comps = comps * np.where(signs == 0, 1, signs)[:, None]
                spec.text.append({"column": col, "mean": mean.astype(np.float64), "components": comps.astype(np.float64)})
        spec._name_columns()
        return spec

    def _name_columns(self) -> None:
        names: list[str] = []
        groups: dict[str, slice] = {}
        for col, levels in self.categorical:
            start = len(names)
            names += [f"{col}={lv}" for lv in levels]
            groups[f"categorical:{col}"] = slice(start, len(names))
        for n in self.numeric:
            start = len(names)
            names.append(f"log({n['column']})" if n["log"] else n["column"])
            if n["missing"]:
                names.append(f"{n['column']}:missing")
            groups[f"numeric:{n['column']}"] = slice(start, len(names))
        for t in self.text:
            start = len(names)
            names += [f"text({t['column']})[{i}]" for i in range(len(t["components"]))]
            groups[f"text:{t['column']}"] = slice(start, len(names))
        self.names, self.groups = names, groups

    def transform(self, df: pd.DataFrame, *, encoder: TextEncoder | None) -> np.ndarray:
        """Feature matrix (len(df), n_features) for rows laid out like the zoo table."""
        n = len(df)
        parts = []
        for col, levels in self.categorical:
            block = np.zeros((n, len(levels)))
            if col in df.columns:
                lookup = {lv: i for i, lv in enumerate(levels)}
                for r, v in enumerate(df[col].tolist()):
                    if _is_missing(v):
                        continue
                    i = lookup.get(str(v))
                    if i is None:
                        log.warning("%s=%r was not seen in the zoo (known: %s); it contributes nothing",
                                    col, v, ", ".join(levels[:8]))
                    else:
                        block[r, i] = 1.0
            parts.append(block)
        for spec in self.numeric:
            col = spec["column"]
            x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float) if col in df.columns else np.full(n, np.nan)
            miss = np.isnan(x)
            if spec["log"]:
                with np.errstate(divide="ignore", invalid="ignore"):
                    bad = ~miss & (x <= 0)
                    if bad.any():
                        raise RecsysError(f"column {col!r} must be > 0 (it is log-transformed); got {x[bad][0]:g}")
                    x = np.log(x)
            z = (x - spec["mean"]) / spec["std"]
            z[miss] = 0.0
            parts.append(z[:, None])
            if spec["missing"]:
                parts.append(miss[:, None].astype(float))
        for t in self.text:
            col = t["column"]
            if col in df.columns and encoder is not None:
                emb = _embed_column(df[col], encoder)
                proj = (emb - t["mean"]) @ t["components"].T
                missing = df[col].map(_is_missing).to_numpy()
                proj[missing] = 0.0
            else:
                proj = np.zeros((n, len(t["components"])))
            parts.append(proj)
        if not parts:
            return np.zeros((n, 0))
        return np.hstack(parts).astype(np.float64)

    # -- persistence -------------------------------------------------------
    def to_state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"categorical": [[c, lv] for c, lv in self.categorical], "numeric": self.numeric,
                "text": [t["column"] for t in self.text]}
        arrays = {}
        for i, t in enumerate(self.text):
            arrays[f"{prefix}text{i}_mean"] = t["mean"]
            arrays[f"{prefix}text{i}_components"] = t["components"]
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping, arrays: Mapping[str, np.ndarray], prefix: str) -> "SideSpec":
        spec = cls(categorical=[(c, list(lv)) for c, lv in meta["categorical"]],
                   numeric=[dict(n) for n in meta["numeric"]])
        for i, col in enumerate(meta["text"]):
            spec.text.append({"column": col, "mean": arrays[f"{prefix}text{i}_mean"],
                              "components": arrays[f"{prefix}text{i}_components"]})
        spec._name_columns()
        return spec


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or (isinstance(v, str) and v == "")


def _embed_column(col: pd.Series, encoder: TextEncoder) -> np.ndarray:
    texts = ["" if _is_missing(v) else str(v) for v in col.tolist()]
    return embed(texts, encoder).astype(np.float64)


class FeatureBuilder:
    """Name ↔ index maps and feature matrices for one zoo.

    Parameters
    ----------
    text_encoder : str, TextEncoder or None
        Hub id, local path, ``"hashing"``, or ``None`` for the shipped MiniLM.
        ``False`` ignores text columns.
    text_dims : int
        Dimensions kept per text column (PCA over the zoo's rows).

    Examples
    --------
    >>> fb = FeatureBuilder(text_encoder="hashing").fit(zoo)      # doctest: +SKIP
    >>> data = fb.train_data(zoo)                                   # doctest: +SKIP
    >>> data.Y.shape == (len(zoo.datasets), len(zoo.models))        # doctest: +SKIP
    True
    """

    def __init__(self, text_encoder: str | TextEncoder | None | bool = None, *, text_dims: int = 8):
        self.text_encoder = text_encoder
        self.text_dims = text_dims

    @property
    def encoder(self) -> TextEncoder | None:
        if self.text_encoder is False:
            return None
        if not hasattr(self, "_encoder"):
            self._encoder = get_encoder(self.text_encoder)
        return self._encoder

    def fit(self, zoo: Zoo) -> "FeatureBuilder":
        """Learn the id maps and the feature specs from ``zoo``'s metadata (never from records)."""
        self.model_ids_ = list(zoo.model_ids)
        self.dataset_ids_ = list(zoo.dataset_ids)
        self.model_pos_ = {m: i for i, m in enumerate(self.model_ids_)}
        self.dataset_pos_ = {d: i for i, d in enumerate(self.dataset_ids_)}
        enc = self.encoder if (zoo.model_roles.text or zoo.dataset_roles.text) else None
        self.model_spec_ = SideSpec.fit(zoo.models, zoo.model_roles, encoder=enc, text_dims=self.text_dims)
        self.dataset_spec_ = SideSpec.fit(zoo.datasets, zoo.dataset_roles, encoder=enc, text_dims=self.text_dims)
        self.metrics_ = zoo.metrics
        self.dataset_columns_ = list(zoo.datasets.columns)
        self.model_features_ = self.model_spec_.transform(zoo.models, encoder=enc)
        self.dataset_features_ = self.dataset_spec_.transform(zoo.datasets, encoder=enc)
        return self

    # -- names ↔ indices ----------------------------------------------------
    def model_index(self, names: Sequence[str]) -> np.ndarray:
        return np.array([self._pos(self.model_pos_, n, "model") for n in names], dtype=np.int64)

    def dataset_index(self, names: Sequence[str]) -> np.ndarray:
        return np.array([self._pos(self.dataset_pos_, n, "dataset") for n in names], dtype=np.int64)

    @staticmethod
    def _pos(table: Mapping[str, int], name: str, kind: str) -> int:
        try:
            return table[str(name)]
        except KeyError:
            raise UnknownNameError(kind, str(name), table.keys()) from None

    # -- matrices -------------------------------------------------------------
    def train_data(self, zoo: Zoo) -> TrainData:
        """The numeric problem for ``zoo``'s records (same ids as at fit)."""
        Y = np.full((len(self.dataset_ids_), len(self.model_ids_)), np.nan)
        rec = zoo.records
        Y[self.dataset_index(rec["dataset"]), self.model_index(rec["model"])] = rec["accuracy"].to_numpy(float)
        return TrainData(Y=Y, model_features=self.model_features_, dataset_features=self.dataset_features_,
                         scores=self.score_matrices(zoo.scores, self.dataset_ids_),
                         model_groups=dict(self.model_spec_.groups), dataset_groups=dict(self.dataset_spec_.groups),
                         model_ids=tuple(self.model_ids_), dataset_ids=tuple(self.dataset_ids_))

    def score_matrices(self, scores: pd.DataFrame, dataset_names: Sequence[str]) -> dict[str, np.ndarray]:
        """Per metric, a (len(dataset_names), n_models) matrix of scores, NaN where unknown.

        Scores of models unknown to the builder are ignored; metrics the
        builder was not fitted with are ignored too (engines could not use them).
        """
        out = {}
        pos = {d: i for i, d in enumerate(dataset_names)}
        for metric in self.metrics_:
            mat = np.full((len(dataset_names), len(self.model_ids_)), np.nan)
            if scores is not None and len(scores):
                s = scores[(scores["metric"] == metric) & scores["dataset"].isin(pos) & scores["model"].isin(self.model_pos_)]
                mat[[pos[d] for d in s["dataset"]], [self.model_pos_[m] for m in s["model"]]] = s["score"].to_numpy(float)
            out[metric] = mat
        return out

    def new_datasets(self, metadata: pd.DataFrame, scores: pd.DataFrame | None = None) -> DatasetBlock:
        """Block for datasets not in the zoo, from their metadata (and optional scores).

        ``metadata`` has one row per new dataset with (some of) the zoo's dataset
        columns; an optional ``dataset`` column names them.
        """
        unknown = [c for c in metadata.columns if c not in self.dataset_columns_ and c != "dataset"]
        if unknown:
            raise RecsysError(f"unknown dataset column(s) {unknown}; accepted columns: {', '.join(self.dataset_columns_)}")
        absent = [c for c in self.dataset_spec_.columns if c not in metadata.columns]
        if absent:
            log.warning("new dataset lacks column(s) %s; they are treated as missing", ", ".join(absent))
        feats = self.dataset_spec_.transform(metadata, encoder=self.encoder if self.dataset_spec_.text else None)
        names = metadata["dataset"].astype(str).tolist() if "dataset" in metadata.columns else [f"new{i}" for i in range(len(metadata))]
        return DatasetBlock(index=np.full(len(metadata), -1), features=feats,
                            scores=self.score_matrices(scores, names) if self.metrics_ else {})

    # -- persistence ----------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        m_meta, m_arr = self.model_spec_.to_state("mspec_")
        d_meta, d_arr = self.dataset_spec_.to_state("dspec_")
        enc = self.encoder if (self.model_spec_.text or self.dataset_spec_.text) else None
        meta = {"model_ids": self.model_ids_, "dataset_ids": self.dataset_ids_, "metrics": self.metrics_,
                "dataset_columns": self.dataset_columns_, "text_dims": self.text_dims,
                "text_encoder": None if enc is None else {"spec": enc.spec, "key": enc.key},
                "model_spec": m_meta, "dataset_spec": d_meta}
        arrays = {**m_arr, **d_arr, "model_features": self.model_features_, "dataset_features": self.dataset_features_}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> "FeatureBuilder":
        enc = meta.get("text_encoder")
        fb = cls(text_encoder=(enc or {}).get("spec") if enc else False, text_dims=int(meta["text_dims"]))
        fb.model_ids_ = list(meta["model_ids"])
        fb.dataset_ids_ = list(meta["dataset_ids"])
        fb.model_pos_ = {m: i for i, m in enumerate(fb.model_ids_)}
        fb.dataset_pos_ = {d: i for i, d in enumerate(fb.dataset_ids_)}
        fb.metrics_ = list(meta["metrics"])
        fb.dataset_columns_ = list(meta["dataset_columns"])
        fb.model_spec_ = SideSpec.from_state(meta["model_spec"], arrays, "mspec_")
        fb.dataset_spec_ = SideSpec.from_state(meta["dataset_spec"], arrays, "dspec_")
        fb.model_features_ = arrays["model_features"]
        fb.dataset_features_ = arrays["dataset_features"]
        return fb


def parse_metadata(pairs: Sequence[str]) -> dict[str, str]:
    """``["col=value", ...]`` (from repeated ``--set``) → dict; values stay strings."""
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise RecsysError(f"--set {p!r}: expected COLUMN=VALUE, e.g. --set domain=sketch")
        out[key.strip()] = value
    return out
