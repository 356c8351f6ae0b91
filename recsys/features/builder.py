"""Metadata → side features: the specs that encode a zoo and, the same way, a brand-new dataset.

:class:`SideSpec` turns one side's metadata table (models or datasets) into
:class:`~recsys.features.data.SideFeatures`: one-hot categoricals,
standardized numerics (log first for heavy-tailed positive counts such as
parameters, with a missing-value indicator where the zoo has gaps), text
embeddings reduced by PCA to a few dimensions, and for text columns their
token sets and full embeddings. A spec is fitted on the zoo and stored in
model files, so a brand-new dataset given at query time is encoded exactly as
the zoo was.

:class:`FeatureBuilder` holds both sides' specs and builds the
:class:`~recsys.features.data.ZooData` engines are fitted on, in the spirit
of LightFM's ``Dataset``; :func:`new_dataset_frame` is the one place where a
new dataset's metadata are normalized.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import NotFittedError, RecsysError, UsageError, closest
from ..zoo import NA_STRINGS, Roles, Zoo, validate_scores
from .data import Cells, DatasetBlock, Ids, Layout, SideFeatures, TokenSets, ZooData
from .text import TextEncoder, embed, get_encoder

__all__ = ["SideSpec", "FeatureBuilder", "parse_metadata", "new_dataset_frame"]

log = logging.getLogger(__name__)

#: a positive numeric column spanning this ratio or more is log-transformed
LOG_RATIO = 10.0
#: most tokens kept per text column
MAX_VOCAB = 5000
#: characters of a text value split into tokens (label names): tens of thousands of labels, not a 62 MB string's
#: millions of Python strings
MAX_TOKEN_CHARS = 1 << 20
#: a new dataset's numeric value (log-transformed where the column is) may lie this many of the zoo's
#: standard deviations from the zoo's mean: beyond it the features extrapolate to nonsense (1e300 samples)
MAX_STD_AWAY = 100.0
#: numeric metadata are read up to this magnitude: their squares (standard deviations, LightFM's row norms)
#: must stay finite in float64 (whose largest square root is about 1.3e154)
MAX_ABS_VALUE = 1e150


def tokenize(value) -> list[str]:
    """Tokens of a text value: comma-separated items (label lists), else words; lower-cased; read from its first
    :data:`MAX_TOKEN_CHARS` characters."""
    text = _value_text(value)
    if text is None:
        return []
    text = text[:MAX_TOKEN_CHARS]
    parts = text.split(",") if "," in text else text.split()
    return [p.strip().lower() for p in parts if p.strip()]


@dataclass
class SideSpec:
    """How one side's metadata becomes features (fitted, serializable).

    Attributes
    ----------
    categorical : list of (column, levels)
        Levels are normalized strings (see :func:`_value_text`), so ``10``,
        ``10.0`` and ``"10"`` are one level.
    numeric : list of dict(column, log, mean, std, missing, min, max)
        ``missing``: a 0/1 indicator column follows the value; ``min`` and
        ``max``: the zoo's observed range (a new dataset outside it is warned
        about; model files written before recsys stored it have none).
    text : list of dict(column, mean, components)
        PCA of the text embeddings: ``(emb - mean) @ components.T``.
    vocab : dict of str to list of str
        Per text column, the tokens seen in at least two of the zoo's rows
        (in one row when the zoo is small), for token indicators.
    names : list of str
        One name per output column.
    layout : Layout
        The span of each column's features.
    """

    categorical: list = field(default_factory=list)
    numeric: list = field(default_factory=list)
    text: list = field(default_factory=list)
    vocab: dict = field(default_factory=dict)
    names: list = field(default_factory=list)
    layout: Layout = field(default_factory=Layout)

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def columns(self) -> list[str]:
        cols = [c for c, _ in self.categorical] + [n["column"] for n in self.numeric] + [t["column"] for t in self.text]
        return list(dict.fromkeys(cols))

    @classmethod
    def fit(cls, df: pd.DataFrame, roles: Roles, *, encoder: TextEncoder | None, text_dims: int) -> "SideSpec":
        """Learn levels, scales and text projections from the zoo's metadata table ``df``."""
        spec = cls()
        for col in roles.categorical:
            levels = sorted({lv for lv in map(_value_text, df[col].tolist()) if lv is not None})
            if levels:
                spec.categorical.append((col, levels))
        for col in roles.numeric:
            x = _numeric_values(df[col], col)
            ok = ~np.isnan(x)
            if not ok.any():
                continue
            _check_magnitude(x, col, df)
            if roles.log is not None:
                use_log = col in roles.log
            else:
                pos = x[ok]
                use_log = bool((pos > 0).all() and pos.max() / pos.min() >= LOG_RATIO)
            v = np.log(x[ok]) if use_log else x[ok]
            mean, std = float(v.mean()), float(v.std())
            if not math.isfinite(std) or std <= 1e-12 * max(1.0, abs(mean)):
                std = 1.0  # a constant column: centred to 0, not blown up by rounding noise
            spec.numeric.append({"column": col, "log": use_log, "mean": mean, "std": std,
                                 "missing": bool((~ok).any()), "min": float(x[ok].min()), "max": float(x[ok].max())})
        for col in roles.text:
            bags = [set(tokenize(t)) for t in df[col].tolist()]
            counts: dict[str, int] = {}
            for bag in bags:
                for tok in bag:
                    counts[tok] = counts.get(tok, 0) + 1
            min_df = 2 if len(df) > 50 else 1
            kept = sorted((t for t, c in counts.items() if c >= min_df), key=lambda t: (-counts[t], t))[:MAX_VOCAB]
            if kept:
                spec.vocab[col] = sorted(kept)
        if encoder is not None and text_dims > 0:
            for col in roles.text:
                texts = [_value_text(v) for v in df[col].tolist()]
                present = [i for i, t in enumerate(texts) if t is not None]
                if len(present) < 2:
                    continue
                # PCA over the rows that have a text; missing texts project to 0 (the mean).
                emb = embed([texts[i] for i in present], encoder).astype(np.float64)
                mean = emb.mean(0)
                centered = emb - mean
                if not np.any(centered):
                    continue
                k = int(min(text_dims, len(present) - 1, emb.shape[1]))
                _, s, vt = np.linalg.svd(centered, full_matrices=False)
                k = int(min(k, (s > 1e-6 * s[0]).sum()))  # never more directions than distinct texts
                comps = vt[:k]
                # Scale so each kept direction has unit variance over the zoo, like the numerics.
                scale = s[:k] / math.sqrt(len(present))
                scale[scale == 0] = 1.0
                comps = comps / scale[:, None]
                # Deterministic sign: largest loading positive.
                signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
                comps = comps * np.where(signs == 0, 1, signs)[:, None]
                spec.text.append({"column": col, "mean": mean.astype(np.float64),
                                  "components": comps.astype(np.float64)})
        spec._name_columns()
        return spec

    def _name_columns(self) -> None:
        names: list[str] = []
        for col, levels in self.categorical:
            names += [f"{col}={lv}" for lv in levels]
        for n in self.numeric:
            names.append(f"log({n['column']})" if n["log"] else n["column"])
            names += [f"{n['column']}:missing"] if n["missing"] else []
        for t in self.text:
            names += [f"text({t['column']})[{i}]" for i in range(len(t["components"]))]
        self.names = names
        self.layout = Layout.of([(c, len(lv)) for c, lv in self.categorical],
                                [(n["column"], n["missing"]) for n in self.numeric],
                                [(t["column"], len(t["components"])) for t in self.text])

    def features(self, df: pd.DataFrame, *, encoder: TextEncoder | None, text: bool = True) -> SideFeatures:
        """The features of rows laid out like the zoo table (each text embedded once).

        Missing columns and missing values contribute zeros (plus the missing
        indicator where the zoo had gaps); a categorical level the zoo never
        had is logged as a warning and contributes zeros. ``text``: also the
        token sets and full embeddings of the text columns.

        Raises
        ------
        RecsysError
            A non-numeric value in a numeric column, a value <= 0 in a
            log-transformed one, or an encoder whose embeddings do not fit.
        """
        n = len(df)
        parts = [self._one_hot(df, col, levels) for col, levels in self.categorical]
        for spec in self.numeric:
            parts += self._numeric(df, spec)
        embeddings = {}
        for t in self.text:
            col = t["column"]
            proj = np.zeros((n, len(t["components"])))
            if col in df.columns and encoder is not None:
                texts = [_value_text(v) for v in df[col].tolist()]
                present = [i for i, s in enumerate(texts) if s is not None]
                emb = np.zeros((n, len(t["mean"])))
                if present:
                    got = embed([texts[i] for i in present], encoder).astype(np.float64)
                    if got.shape[1] != len(t["mean"]):
                        raise RecsysError(f"use the text encoder the model was fitted with: {encoder.spec!r} gives "
                                          f"{got.shape[1]}-dimensional embeddings, but column {col!r} was fitted with "
                                          f"{len(t['mean'])}")
                    emb[present] = got
                    proj[present] = (got - t["mean"]) @ t["components"].T
                embeddings[col] = emb
            elif encoder is not None:
                embeddings[col] = np.zeros((n, len(t["mean"])))
            parts.append(proj)
        matrix = np.hstack(parts).astype(np.float64) if parts else np.zeros((n, 0))
        if not text:
            return SideFeatures(matrix, self.layout)
        return SideFeatures(matrix, self.layout, self._tokens(df), embeddings)

    @staticmethod
    def _one_hot(df: pd.DataFrame, col: str, levels: list) -> np.ndarray:
        block = np.zeros((len(df), len(levels)))
        if col not in df.columns:
            return block
        lookup = {lv: i for i, lv in enumerate(levels)}
        unseen: list[str] = []
        for r, v in enumerate(df[col].tolist()):
            lv = _value_text(v)
            if lv is None:
                continue
            i = lookup.get(lv)
            if i is None:
                if lv not in unseen:
                    unseen.append(lv)
            else:
                block[r, i] = 1.0
        if unseen:
            near = [h for u in unseen for h in closest(u, levels, n=1)]
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            log.warning("%s=%s was not seen in the zoo (known: %s%s)%s; it contributes nothing", col,
                        ", ".join(map(repr, unseen[:5])), ", ".join(levels[:8]), " ..." if len(levels) > 8 else "",
                        hint)
        return block

    @staticmethod
    def _numeric(df: pd.DataFrame, spec: Mapping) -> list[np.ndarray]:
        col = spec["column"]
        x = _numeric_values(df[col], col) if col in df.columns else np.full(len(df), np.nan)
        miss = np.isnan(x)
        if spec["log"]:
            bad = ~miss & (x <= 0)
            if bad.any():
                raise RecsysError(f"give column {col!r} a value > 0 (it is log-transformed): got {x[bad][0]:g}")
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.log(x)
        z = (x - spec["mean"]) / spec["std"]
        z[miss] = 0.0
        return [z[:, None], miss[:, None].astype(float)] if spec["missing"] else [z[:, None]]

    def _tokens(self, df: pd.DataFrame) -> dict[str, TokenSets]:
        """Per text column with a vocabulary, the zoo's tokens in each row."""
        out = {}
        for col, vocab in self.vocab.items():
            lookup = {t: i for i, t in enumerate(vocab)}
            rows = [sorted({lookup[t] for t in tokenize(v) if t in lookup}) for v in df[col].tolist()] \
                if col in df.columns else [[] for _ in range(len(df))]
            out[col] = TokenSets.from_lists(rows, len(vocab))
        return out

    # -- persistence -------------------------------------------------------
    def to_state(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"categorical": [[c, list(lv)] for c, lv in self.categorical], "numeric": self.numeric,
                "text": [t["column"] for t in self.text], "vocab": self.vocab}
        arrays = {}
        for i, t in enumerate(self.text):
            arrays[f"{prefix}text{i}_mean"] = t["mean"]
            arrays[f"{prefix}text{i}_components"] = t["components"]
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping, arrays: Mapping[str, np.ndarray], prefix: str) -> "SideSpec":
        spec = cls(categorical=[(c, list(lv)) for c, lv in meta["categorical"]],
                   numeric=[dict(n) for n in meta["numeric"]],
                   vocab={c: list(v) for c, v in (meta.get("vocab") or {}).items()})
        for i, col in enumerate(meta["text"]):
            spec.text.append({"column": col, "mean": np.asarray(arrays[f"{prefix}text{i}_mean"], np.float64),
                              "components": np.asarray(arrays[f"{prefix}text{i}_components"], np.float64)})
        spec._name_columns()
        return spec


def _is_missing(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(v)
    return isinstance(v, str) and v.strip() in NA_STRINGS


def _value_text(v) -> str | None:
    """A metadata value as the string used for categorical levels and text; None when missing.

    Numbers are written canonically (``10``, ``10.0`` and ``"10"`` all give
    ``"10"``), so a value typed on the command line matches the zoo's.
    """
    if _is_missing(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (list, tuple)):  # a label list given in JSON
        return ", ".join(str(x).strip() for x in v) or None
    if isinstance(v, str):
        s = v.strip()
        try:
            f = float(s)
        except ValueError:
            return s
        if not math.isfinite(f) or s.lower().lstrip("+-") in ("inf", "infinity"):
            return s
        v = f
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return str(int(f)) if f.is_integer() and abs(f) < 1e16 else repr(f)
    return str(v).strip() or None


def _numeric_values(col: pd.Series, name: str) -> np.ndarray:
    """Floats of a numeric column (NaN for missing); a value that is not a number is an error."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        out = col.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(out).any():  # e.g. 1e999 in JSON
            raise RecsysError(f"give column {name!r} a finite number or leave it out: it is numeric and got an "
                              f"infinite value ({out[np.isinf(out)][0]:g})")
        return out
    values = [None if _is_missing(v) else v for v in col.tolist()]
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            raise RecsysError(f"give column {name!r} a number or leave it out: it is numeric and got {v!r} (a "
                              f"boolean)")
        try:
            out[i] = float(v.strip() if isinstance(v, str) else v)
        except (TypeError, ValueError):
            raise RecsysError(f"give column {name!r} a number or leave it out: it is numeric and got {v!r}") from None
        if not math.isfinite(out[i]):
            raise RecsysError(f"give column {name!r} a finite number or leave it out: it is numeric and got {v!r}")
    return out


class FeatureBuilder:
    """Metadata → features for one zoo: the fitted specs, in the spirit of LightFM's ``Dataset``.

    The builder learns how each side's metadata become features (:class:`SideSpec`)
    and builds the :class:`~recsys.features.data.ZooData` engines are fitted on;
    it keeps no data of its own (the ids, records and features live in that
    ``ZooData``), so a brand-new dataset is encoded exactly as the zoo's were.

    Parameters
    ----------
    text_encoder : str, TextEncoder or None
        Hub id (already in the local Hugging Face cache), local model directory,
        ``"hashing"``, or ``None`` for the shipped all-MiniLM-L6-v2. ``False``
        ignores text columns.
    text_dims : int
        Dimensions kept per text column (PCA over the zoo's rows); 0 ignores
        text columns.

    Examples
    --------
    >>> fb = FeatureBuilder(text_encoder="hashing").fit(zoo)      # doctest: +SKIP
    >>> data = fb.zoo_data(zoo)                                     # doctest: +SKIP
    >>> data.Y.shape == (len(zoo.datasets), len(zoo.models))        # doctest: +SKIP
    True
    """

    def __init__(self, text_encoder: str | TextEncoder | None | bool = None, *, text_dims: int = 8):
        self.text_encoder = text_encoder
        self.text_dims = text_dims

    @property
    def encoder(self) -> TextEncoder | None:
        """The text encoder (built on first use; never loads weights until a text must be encoded)."""
        if self.text_encoder is False:
            return None
        if getattr(self, "_encoder", None) is None:
            self._encoder = get_encoder(self.text_encoder)
            fitted = getattr(self, "encoder_info_", None)
            if fitted and fitted.get("key") != self._encoder.key:
                log.warning("text encoder %r is now %s but the model was fitted with %s; text features of new "
                            "datasets may be off (refit to be safe)", self._encoder.spec, self._encoder.key,
                            fitted.get("key"))
        return self._encoder

    def fit(self, zoo: Zoo) -> "FeatureBuilder":
        """Learn the feature specs from ``zoo``'s metadata (never from records).

        Returns
        -------
        FeatureBuilder
            ``self``.
        """
        if isinstance(self.text_dims, bool) or not isinstance(self.text_dims, (int, np.integer)) or self.text_dims < 0:
            raise RecsysError(f"give text_dims an integer >= 0: got {self.text_dims!r}")
        uses_text = bool(zoo.model_roles.text or zoo.dataset_roles.text) and self.text_dims > 0
        enc = self.encoder if uses_text else None
        self.model_spec_ = SideSpec.fit(zoo.models, zoo.model_roles, encoder=enc, text_dims=int(self.text_dims))
        self.dataset_spec_ = SideSpec.fit(zoo.datasets, zoo.dataset_roles, encoder=enc, text_dims=int(self.text_dims))
        self.metrics_ = zoo.metrics
        self.dataset_columns_ = list(zoo.datasets.columns)
        has_text = bool(self.model_spec_.text or self.dataset_spec_.text)
        self.encoder_info_ = {"spec": enc.spec, "key": enc.key} if (enc is not None and has_text) else None
        return self

    def zoo_data(self, zoo: Zoo) -> ZooData:
        """The numeric problem for ``zoo``: ids, records, both sides' features and the scores."""
        self._check_fitted()
        enc = self.encoder if self.encoder_info_ else None
        models, datasets = Ids(zoo.model_ids, "model"), Ids(zoo.dataset_ids, "dataset")
        rec = zoo.records
        records = Cells(_positions(rec["dataset"], datasets), _positions(rec["model"], models),
                        rec["accuracy"].to_numpy(float), (len(datasets), len(models)))
        return ZooData(records=records, models=self.model_spec_.features(zoo.models, encoder=enc, text=False),
                       datasets=self.dataset_spec_.features(zoo.datasets, encoder=enc),
                       scores=self.score_matrices(zoo.scores, list(datasets), models), model_ids=models,
                       dataset_ids=datasets)

    def score_matrices(self, scores: pd.DataFrame | None, dataset_names: Sequence[str],
                       models: Ids) -> dict[str, np.ndarray]:
        """Per metric, a (len(dataset_names), n_models) matrix of scores, NaN where unknown.

        ``scores`` has columns ``model``, ``metric``, ``score`` and ``dataset``
        (which may be left out when ``dataset_names`` has one name). Scores of
        models not in ``models`` are ignored; metrics the builder was not
        fitted with are ignored too (engines could not use them).
        """
        out = {}
        pos = {str(d): i for i, d in enumerate(dataset_names)}
        s = _check_scores(scores, list(pos)) if scores is not None and len(scores) else None
        if s is not None:
            known_models = pd.Index(list(models))
            unknown = sorted(set(s["model"]) - set(known_models))
            if unknown:
                log.warning("scores name %d model(s) not in the zoo (%s); they are ignored", len(unknown),
                            ", ".join(unknown[:3]))
            other = sorted(set(s["dataset"]) - set(pos))
            if other:
                raise RecsysError(f"name the new dataset like its scores (--dataset NAME), or drop the dataset "
                                  f"column of a single dataset's scores: scores are given for dataset(s) {other[:3]} "
                                  f"but the dataset(s) asked for are {list(pos)[:3]}")
            if not self.metrics_:
                log.warning("this model was fitted on a zoo without transferability scores; the scores given "
                            "are ignored")
            else:
                extra = sorted(set(s["metric"]) - set(self.metrics_))
                if extra:
                    near = [h for u in extra for h in closest(u, self.metrics_, n=1)]
                    hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
                    log.warning("scores of metric(s) %s are ignored%s: the model uses %s", ", ".join(extra), hint,
                                ", ".join(self.metrics_))
        for metric in self.metrics_:
            mat = np.full((len(pos), len(models)), np.nan)
            if s is not None:
                m = s[(s["metric"] == metric) & s["dataset"].isin(pos) & s["model"].isin(known_models)]
                mat[[pos[d] for d in m["dataset"]], models.indices(m["model"].tolist())] = m["score"].to_numpy(float)
            out[metric] = mat
        return out

    def new_datasets(self, metadata: pd.DataFrame, models: Ids, scores: pd.DataFrame | None = None) -> DatasetBlock:
        """Block for datasets not in the zoo, from their metadata (and optional scores).

        Parameters
        ----------
        metadata : pandas.DataFrame
            One row per new dataset, as :func:`new_dataset_frame` gives it: (some
            of) the zoo's dataset columns and a ``dataset`` column naming them.
        models : Ids
            The zoo's models (the scores' columns).
        scores : pandas.DataFrame, optional
            Transferability scores of the new datasets (``model, dataset,
            metric, score``).

        Returns
        -------
        DatasetBlock
            ``index`` -1 for every row; features encoded exactly as the zoo's
            rows (a zoo row given here gets the features it has in the zoo).

        Raises
        ------
        RecsysError
            Unknown columns (the message lists the accepted ones), non-numeric
            values in numeric columns.
        """
        self._check_fitted()
        unknown = [c for c in metadata.columns if c not in self.dataset_columns_ and c != "dataset"]
        if unknown:
            near = [h for u in unknown for h in closest(u, self.dataset_columns_, n=1)]
            hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
            raise RecsysError(f"describe new datasets with the zoo's dataset columns ({', '.join(self.dataset_columns_)}); "
                              f"unknown column(s) {unknown}{hint}")
        absent = [c for c in self.dataset_spec_.columns if c not in metadata.columns]
        if absent:
            log.warning("new dataset lacks column(s) %s; they are treated as missing", ", ".join(absent))
        side = self.dataset_spec_.features(metadata, encoder=self.encoder if self.dataset_spec_.text else None)
        _check_numeric_range(self.dataset_spec_, metadata)
        if scores is not None and len(scores) and not self.metrics_:
            log.warning("this model was fitted on a zoo without transferability scores; the %d score(s) given "
                        "are ignored (fit on a zoo with scores.csv to use them)", len(scores))
        names = metadata["dataset"].astype(str).tolist()
        return DatasetBlock(np.full(len(metadata), -1), side,
                            self.score_matrices(scores, names, models) if self.metrics_ else {})

    def _check_fitted(self) -> None:
        if not hasattr(self, "dataset_spec_"):
            raise NotFittedError("call fit(zoo) first: this FeatureBuilder is not fitted")

    # -- persistence ----------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able metadata and named arrays that :meth:`from_state` restores (no pickle)."""
        self._check_fitted()
        m_meta, m_arr = self.model_spec_.to_state("mspec_")
        d_meta, d_arr = self.dataset_spec_.to_state("dspec_")
        meta = {"metrics": self.metrics_, "dataset_columns": self.dataset_columns_, "text_dims": int(self.text_dims),
                "text_encoder": dict(self.encoder_info_) if self.encoder_info_ else None,
                "model_spec": m_meta, "dataset_spec": d_meta}
        return meta, {**m_arr, **d_arr}

    @classmethod
    def from_state(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> "FeatureBuilder":
        """The builder saved by :meth:`to_state`; the text encoder is built only when a new dataset needs it."""
        enc = meta.get("text_encoder")
        fb = cls(text_encoder=enc.get("spec") if enc else False, text_dims=int(meta["text_dims"]))
        fb.encoder_info_ = dict(enc) if enc else None
        fb.metrics_ = list(meta["metrics"])
        fb.dataset_columns_ = list(meta["dataset_columns"])
        fb.model_spec_ = SideSpec.from_state(meta["model_spec"], arrays, "mspec_")
        fb.dataset_spec_ = SideSpec.from_state(meta["dataset_spec"], arrays, "dspec_")
        return fb


def new_dataset_frame(metadata: "Mapping | pd.DataFrame | Sequence[Mapping]") -> pd.DataFrame:
    """Metadata of brand-new datasets as one table, column names stripped, each row named.

    One mapping (column → value), a list of them or a DataFrame; a ``dataset``
    column names the datasets (default ``new-dataset``, or ``new-dataset-1`` ...
    when there are several; a missing name gets its default too).

    Raises
    ------
    RecsysError
        No dataset given, or two with one name.
    """
    if isinstance(metadata, Mapping):
        frame = pd.DataFrame([dict(metadata)])
    elif isinstance(metadata, pd.DataFrame):
        frame = metadata.reset_index(drop=True)
    else:
        frame = pd.DataFrame(list(metadata))
    frame = frame.rename(columns=lambda c: str(c).strip())
    if len(frame) == 0:
        raise RecsysError("describe at least one new dataset (column: value pairs such as {\"domain\": \"sketch\"})")
    default = ["new-dataset"] if len(frame) == 1 else [f"new-dataset-{i + 1}" for i in range(len(frame))]
    given = frame["dataset"].tolist() if "dataset" in frame.columns else [None] * len(frame)
    names = [default[i] if _is_missing(v) else str(v).strip() for i, v in enumerate(given)]
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise RecsysError(f"give each new dataset its own name: {dup!r} names several")
    return frame.assign(dataset=names)


def _positions(names: pd.Series, ids: Ids) -> np.ndarray:
    """Indices of a column of names, vectorized (a zoo's records are categorical, coded in id order)."""
    index = pd.Index(list(ids))
    if isinstance(names.dtype, pd.CategoricalDtype):  # look up the few categories, not every row
        cats = np.append(index.get_indexer(names.cat.categories), -1)  # code -1 (missing) stays -1
        codes = cats[names.cat.codes.to_numpy()]
    else:
        codes = index.get_indexer(names)
    codes = codes.astype(np.int64)
    missing = codes < 0
    if missing.any():  # compared as str; an unknown name raises UnknownNameError (with close names)
        codes[missing] = ids.indices(pd.Series(names)[missing].astype(str).tolist())
    return codes


def _check_magnitude(x: np.ndarray, col: str, df: pd.DataFrame) -> None:
    """A zoo's numeric column holds no value of :data:`MAX_ABS_VALUE` or more (one line naming it otherwise)."""
    with np.errstate(invalid="ignore"):
        big = np.flatnonzero(np.abs(x) >= MAX_ABS_VALUE)
    if len(big):
        side = df.index.name or "row"
        where = f" ({side} {str(df.index[big[0]])[:60]!r})" if df.index.name else ""
        raise RecsysError(f"correct the value of column {col!r}{where}, or leave it empty: {x[big[0]]:g} is beyond "
                          f"what recsys reads as numeric metadata (magnitudes below {MAX_ABS_VALUE:g}); check its "
                          f"unit")


def _check_numeric_range(spec: SideSpec, df: pd.DataFrame) -> None:
    """New datasets' numeric values within :data:`MAX_STD_AWAY` standard deviations of the zoo's (one line otherwise);
    a warning for each value outside the zoo's observed range (the predictions extrapolate)."""
    for n in spec.numeric:
        col = n["column"]
        if col not in df.columns:
            continue
        x = _numeric_values(df[col], col)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            v = np.log(x) if n["log"] else x
            z = np.abs((v - n["mean"]) / n["std"])
        far = np.flatnonzero(~np.isnan(x) & ~(z <= MAX_STD_AWAY))
        if len(far):
            lo, hi = n["mean"] - MAX_STD_AWAY * n["std"], n["mean"] + MAX_STD_AWAY * n["std"]
            with np.errstate(over="ignore"):
                lo, hi = (np.exp(lo), np.exp(hi)) if n["log"] else (lo, hi)
            raise RecsysError(f"check the value of column {col!r} and its unit: {x[far[0]]:g} is far outside the "
                              f"zoo's values; accepted: {lo:.3g} to {hi:.3g} ({MAX_STD_AWAY:g} standard deviations of "
                              f"the zoo's{' log' if n['log'] else ''} values around their mean)")
        if "min" in n and "max" in n:
            names = df["dataset"].astype(str).tolist() if "dataset" in df.columns else [""] * len(df)
            for i in np.flatnonzero(~np.isnan(x) & ((x < n["min"]) | (x > n["max"]))):
                log.warning("%s: column %r = %g is outside the zoo's range (%g to %g); the predictions extrapolate "
                            "and may be unreliable: check the value and its unit", names[i], col, x[i], n["min"],
                            n["max"])


def _check_scores(scores: pd.DataFrame, dataset_names: list[str]) -> pd.DataFrame:
    """Scores given with new datasets, checked as a zoo's are (:func:`recsys.zoo.validate_scores`)."""
    scores = validate_scores(scores)
    if "dataset" not in scores.columns:
        if len(dataset_names) != 1:
            raise RecsysError("name each score's dataset in a column 'dataset' (it may be left out for a single new "
                              "dataset): the scores have none")
        scores = scores.assign(dataset=dataset_names[0])
    return scores


def parse_metadata(pairs: Sequence[str]) -> dict[str, str]:
    """``["col=value", ...]`` (from repeated ``--set``) → dict; values stay strings."""
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"write --set COLUMN=VALUE, e.g. --set domain=sketch: --set {p!r} is not")
        out[key.strip()] = value
    return out
