"""The zoo: a fine-tuning history on disk, in one canonical format.

A zoo is a directory::

    models.csv     column ``model`` (id) + any metadata columns
    datasets.csv   column ``dataset`` (id) + any metadata columns; may list
                   datasets without records (cold start)
    records.csv    ``model, dataset, accuracy``: fine-tuning results, accuracy
                   in [0, 1]; extra columns are ignored; unknown pairs are absent
    scores.csv     optional ``model, dataset, metric, score``: feature-based
                   transferability scores (LogME, H-score ...), known for any
                   pair, new datasets included
    zoo.json       optional column roles, e.g. ``{"name": "...", "models":
                   {"id": "model", "categorical": [...], "numeric": [...],
                   "text": [...], "log": [...]}, "datasets": {...}}``; roles
                   are inferred when absent. A column may be categorical and text.

:func:`load_zoo` reads and validates such a directory; every problem is
reported as a :class:`~recsys.errors.ZooError` with one clear line.
This module knows nothing of features or engines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import ZooError, closest

__all__ = ["Roles", "Zoo", "load_zoo", "infer_roles", "ZOO_FILES"]

log = logging.getLogger(__name__)

ZOO_FILES = ("models.csv", "datasets.csv", "records.csv", "scores.csv", "zoo.json")
_FORMAT_HINT = "see 'Zoo format' in the README"


@dataclass(frozen=True)
class Roles:
    """How the metadata columns of one side (models or datasets) are used.

    Parameters
    ----------
    id : str
        Name of the id column.
    categorical, numeric, text : tuple of str
        Columns one-hot encoded, standardized, and embedded with the text
        encoder. A column may be both categorical and text.
    log : tuple of str or None
        Numeric columns log-transformed before standardization (heavy-tailed
        counts such as parameters). ``None``: decided from the data.
    """

    id: str
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    log: tuple[str, ...] | None = None

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in (*self.categorical, *self.numeric, *self.text):
            seen[c] = None
        return list(seen)

    def to_json(self) -> dict:
        out = {"id": self.id, "categorical": list(self.categorical),
               "numeric": list(self.numeric), "text": list(self.text)}
        if self.log is not None:
            out["log"] = list(self.log)
        return out

    @classmethod
    def from_json(cls, obj: Mapping, *, where: str, default_id: str) -> "Roles":
        if not isinstance(obj, Mapping):
            raise ZooError(f"{where} must be an object with keys id, categorical, numeric, text; {_FORMAT_HINT}")
        unknown = set(obj) - {"id", "categorical", "numeric", "text", "log"}
        if unknown:
            raise ZooError(f"{where} has unknown key(s) {sorted(unknown)}; accepted: id, categorical, numeric, text, log")
        lists = {}
        for key in ("categorical", "numeric", "text", "log"):
            val = obj.get(key, None if key == "log" else [])
            if val is None:
                lists[key] = None
                continue
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                raise ZooError(f"{where}.{key} must be a list of column names, got {val!r}")
            lists[key] = tuple(val)
        ident = obj.get("id", default_id)
        if not isinstance(ident, str):
            raise ZooError(f"{where}.id must be a column name, got {ident!r}")
        return cls(id=ident, **lists)


def infer_roles(df: pd.DataFrame, id_col: str) -> Roles:
    """Guess column roles from the values.

    Numbers are numeric; strings are categorical when they repeat (few distinct
    values), text when they are long or mostly distinct (names, label lists).
    Columns with a single value carry no information and are skipped.
    """
    categorical, numeric, text = [], [], []
    n = max(len(df), 1)
    for col in df.columns:
        if col == id_col:
            continue
        s = df[col].dropna()
        if s.nunique() <= 1:
            continue
        if pd.api.types.is_bool_dtype(s):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(s):
            numeric.append(col)
        else:
            s = s.astype(str)
            distinct = s.nunique() / n
            long = s.str.len().mean() > 24 or s.str.contains(",").mean() > 0.5
            if long and distinct > 0.5:
                text.append(col)
            elif s.nunique() <= max(2, min(50, n // 2)):
                categorical.append(col)
            else:
                text.append(col)
    return Roles(id=id_col, categorical=tuple(categorical), numeric=tuple(numeric), text=tuple(text))


@dataclass
class Zoo:
    """A validated fine-tuning history.

    Attributes
    ----------
    name : str
    models : pandas.DataFrame
        Indexed by model id (str), one row per model, metadata columns.
    datasets : pandas.DataFrame
        Indexed by dataset id (str), one row per dataset (with or without records).
    records : pandas.DataFrame
        Columns ``model``, ``dataset`` (str) and ``accuracy`` (float in [0, 1]).
    scores : pandas.DataFrame
        Columns ``model``, ``dataset``, ``metric`` (str) and ``score`` (float);
        empty when the zoo has none.
    model_roles, dataset_roles : Roles
    path : pathlib.Path or None
        Directory the zoo was read from.
    """

    name: str
    models: pd.DataFrame
    datasets: pd.DataFrame
    records: pd.DataFrame
    scores: pd.DataFrame = field(default_factory=lambda: _empty_scores())
    model_roles: Roles | None = None
    dataset_roles: Roles | None = None
    path: Path | None = None

    def __post_init__(self):
        if self.model_roles is None:
            self.model_roles = infer_roles(self.models.reset_index(), "model")
        if self.dataset_roles is None:
            self.dataset_roles = infer_roles(self.datasets.reset_index(), "dataset")

    # -- construction -----------------------------------------------------
    @classmethod
    def from_frames(
        cls,
        models: pd.DataFrame,
        datasets: pd.DataFrame,
        records: pd.DataFrame,
        scores: pd.DataFrame | None = None,
        *,
        name: str = "zoo",
        roles: Mapping | None = None,
        path: Path | None = None,
    ) -> "Zoo":
        """Validate data frames laid out as the zoo files and build a :class:`Zoo`.

        Raises
        ------
        ZooError
            On any missing column, bad value, unknown name or conflicting record.
        """
        roles = dict(roles or {})
        m_roles = Roles.from_json(roles["models"], where="zoo.json models", default_id="model") if "models" in roles else None
        d_roles = Roles.from_json(roles["datasets"], where="zoo.json datasets", default_id="dataset") if "datasets" in roles else None
        models = _index_table(models, "models.csv", m_roles.id if m_roles else "model")
        datasets = _index_table(datasets, "datasets.csv", d_roles.id if d_roles else "dataset")
        if m_roles is None:
            m_roles = infer_roles(models.reset_index(), "model")
        if d_roles is None:
            d_roles = infer_roles(datasets.reset_index(), "dataset")
        m_roles = replace(m_roles, id="model")
        d_roles = replace(d_roles, id="dataset")
        _check_role_columns(m_roles, models, "models.csv")
        _check_role_columns(d_roles, datasets, "datasets.csv")
        records = _validate_records(records, models.index, datasets.index)
        scores = _validate_scores(scores, models.index, datasets.index)
        return cls(name=name, models=models, datasets=datasets, records=records, scores=scores,
                   model_roles=m_roles, dataset_roles=d_roles, path=path)

    # -- views --------------------------------------------------------------
    @property
    def model_ids(self) -> list[str]:
        return list(self.models.index)

    @property
    def dataset_ids(self) -> list[str]:
        return list(self.datasets.index)

    @property
    def metrics(self) -> list[str]:
        """Names of the transferability metrics in ``scores`` (sorted)."""
        return sorted(self.scores["metric"].unique()) if len(self.scores) else []

    def accuracy_table(self) -> pd.DataFrame:
        """Datasets x models table of recorded accuracies (NaN where unknown)."""
        t = self.records.pivot(index="dataset", columns="model", values="accuracy")
        return t.reindex(index=self.datasets.index, columns=self.models.index)

    def fingerprint(self) -> str:
        """A short sha256 of the zoo's content (order-independent)."""
        h = hashlib.sha256()
        for frame in (self.models.sort_index(), self.datasets.sort_index(),
                      self.records.sort_values(["dataset", "model"]),
                      self.scores.sort_values(["dataset", "model", "metric"])):
            h.update(frame.to_csv(index=True).encode())
        h.update(json.dumps([self.model_roles.to_json(), self.dataset_roles.to_json()], sort_keys=True).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """Counts a person wants to see first (used by ``recsys info``)."""
        n_cells = len(self.models) * len(self.datasets)
        with_records = self.records["dataset"].nunique()
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "models": len(self.models),
            "datasets": len(self.datasets),
            "datasets_without_records": len(self.datasets) - with_records,
            "records": len(self.records),
            "density": round(len(self.records) / n_cells, 4) if n_cells else 0.0,
            "metrics": self.metrics,
            "model_columns": self.model_roles.to_json(),
            "dataset_columns": self.dataset_roles.to_json(),
            "fingerprint": self.fingerprint(),
        }

    def with_records(self, records: pd.DataFrame) -> "Zoo":
        """The same zoo with another (already valid) set of records."""
        return replace(self, records=records.reset_index(drop=True))

    # -- output -------------------------------------------------------------
    def write(self, directory: str | os.PathLike) -> Path:
        """Write the zoo in the canonical format (each file written atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_text(directory / "models.csv", self.models.reset_index().to_csv(index=False))
        _atomic_text(directory / "datasets.csv", self.datasets.reset_index().to_csv(index=False))
        _atomic_text(directory / "records.csv", self.records.to_csv(index=False))
        if len(self.scores):
            _atomic_text(directory / "scores.csv", self.scores.to_csv(index=False))
        meta = {"name": self.name, "models": self.model_roles.to_json(), "datasets": self.dataset_roles.to_json()}
        _atomic_text(directory / "zoo.json", json.dumps(meta, indent=2) + "\n")
        return directory


def load_zoo(path: str | os.PathLike, *, name: str | None = None) -> Zoo:
    """Read and validate a zoo directory in the canonical format.

    Parameters
    ----------
    path : str or path-like
        Directory holding ``models.csv``, ``datasets.csv``, ``records.csv`` and
        optionally ``scores.csv`` and ``zoo.json``.
    name : str, optional
        Name of the zoo; default: ``zoo.json``'s name, else the directory name.

    Returns
    -------
    Zoo

    Raises
    ------
    ZooError
        Missing file or column, bad accuracy, unknown names, conflicting records,
        empty zoo.

    Examples
    --------
    >>> zoo = load_zoo("data/example-zoo")  # doctest: +SKIP
    >>> zoo.summary()["records"]            # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_dir():
        raise ZooError(f"zoo directory {str(path)!r} does not exist; give a directory with "
                       f"models.csv, datasets.csv and records.csv, or a named zoo (domainnet-270, transfergraph-image)")
    roles: dict = {}
    zoo_json = path / "zoo.json"
    if zoo_json.exists():
        try:
            roles = json.loads(zoo_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ZooError(f"{zoo_json} is not valid JSON ({exc}); fix it or delete it to infer column roles") from None
        if not isinstance(roles, dict):
            raise ZooError(f"{zoo_json} must hold a JSON object with keys name, models, datasets")
    models = _read_csv(path / "models.csv", id_col=roles.get("models", {}).get("id", "model") if isinstance(roles.get("models"), dict) else "model")
    datasets = _read_csv(path / "datasets.csv", id_col=roles.get("datasets", {}).get("id", "dataset") if isinstance(roles.get("datasets"), dict) else "dataset")
    records = _read_csv(path / "records.csv", as_str=True)
    scores = _read_csv(path / "scores.csv", as_str=True) if (path / "scores.csv").exists() else None
    zoo_name = name or roles.get("name") or path.resolve().name
    return Zoo.from_frames(models, datasets, records, scores, name=str(zoo_name),
                           roles={k: v for k, v in roles.items() if k in ("models", "datasets")}, path=path)


# ---------------------------------------------------------------------------
# validation helpers


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame({"model": pd.Series(dtype=str), "dataset": pd.Series(dtype=str),
                         "metric": pd.Series(dtype=str), "score": pd.Series(dtype=float)})


def _read_csv(file: Path, *, id_col: str | None = None, as_str: bool = False) -> pd.DataFrame:
    if not file.exists():
        raise ZooError(f"zoo directory {str(file.parent)!r} has no {file.name}; a zoo needs models.csv, "
                       f"datasets.csv and records.csv ({_FORMAT_HINT})")
    try:
        if as_str:
            df = pd.read_csv(file, dtype=str, keep_default_na=False, skipinitialspace=False)
        else:
            df = pd.read_csv(file, dtype={id_col: str} if id_col else None)
    except pd.errors.EmptyDataError:
        raise ZooError(f"{file} is empty; it needs a header line ({_FORMAT_HINT})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ZooError(f"{file} is not a readable CSV file ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _index_table(df: pd.DataFrame, fname: str, id_col: str) -> pd.DataFrame:
    side = "model" if fname.startswith("models") else "dataset"
    if isinstance(df.index, pd.Index) and df.index.name == side and id_col not in df.columns:
        df = df.reset_index()
    if id_col not in df.columns:
        raise ZooError(f"{fname} has no column {id_col!r} (the {side} id); columns found: {list(df.columns)[:8]}")
    df = df.copy()
    ids = df[id_col]
    if ids.isna().any():
        line = int(np.flatnonzero(ids.isna().to_numpy())[0]) + 2
        raise ZooError(f"{fname} line {line}: empty {side} id; every row needs a {id_col}")
    df[id_col] = ids.astype(str)
    dup = df[id_col].duplicated(keep=False)
    if dup.any():
        first = df.loc[dup, id_col].iloc[0]
        lines = [int(i) + 2 for i in np.flatnonzero((df[id_col] == first).to_numpy())]
        raise ZooError(f"{fname} lists {side} {first!r} more than once (lines {lines}); ids must be unique")
    if len(df) == 0:
        raise ZooError(f"{fname} lists no {side}s; an empty zoo cannot be fitted")
    df = df.rename(columns={id_col: side}).set_index(side)
    return df


def _check_role_columns(roles: Roles, df: pd.DataFrame, fname: str) -> None:
    for col in roles.columns:
        if col not in df.columns:
            raise ZooError(f"zoo.json names column {col!r} of {fname}, which has no such column; "
                           f"columns found: {list(df.columns)}")
    for col in roles.numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ZooError(f"{fname} line {i + 2}: column {col!r} is numeric but holds {df[col].iloc[i]!r}; "
                           f"give a number or leave the cell empty")
        df[col] = values.astype(float)
        if not np.isfinite(values.dropna()).all():
            raise ZooError(f"{fname}: column {col!r} holds an infinite value; give finite numbers")
    for col in roles.log or ():
        if col not in roles.numeric:
            raise ZooError(f"zoo.json lists {col!r} under log but not under numeric; log applies to numeric columns")
        if (df[col].dropna() <= 0).any():
            raise ZooError(f"{fname}: column {col!r} is log-transformed but holds values <= 0; "
                           f"remove it from 'log' in zoo.json")


def _require_columns(df: pd.DataFrame, fname: str, required: Iterable[str]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ZooError(f"{fname} has no column(s) {missing}; required columns: {', '.join(required)} "
                       f"(found {list(df.columns)[:8]})")


def _numeric_column(df: pd.DataFrame, col: str, fname: str, what: str) -> np.ndarray:
    raw = df[col]
    as_str = raw.astype(str).str.strip()
    values = pd.to_numeric(as_str.where(as_str != "", None), errors="coerce").to_numpy(dtype=float)
    empty = (as_str == "").to_numpy() | raw.isna().to_numpy() | as_str.str.lower().isin(["nan", "na", "none", "null"]).to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if empty[i]:
            raise ZooError(f"{fname} line {i + 2}: {what} is empty or NaN; every row needs a number "
                           f"(drop the row if the result is unknown)")
        raise ZooError(f"{fname} line {i + 2}: {what} {raw.iloc[i]!r} is not a finite number")
    return values


def _check_names(df: pd.DataFrame, fname: str, col: str, valid: pd.Index, side_file: str) -> None:
    unknown = ~df[col].isin(valid)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        name = df[col].iloc[i]
        hint = closest(name, valid)
        hint = f"; did you mean {', '.join(repr(h) for h in hint)}?" if hint else ""
        n_bad = int(unknown.sum())
        more = f" ({n_bad} rows name unknown {col}s)" if n_bad > 1 else ""
        raise ZooError(f"{fname} line {i + 2} names {col} {name!r}, which is not in {side_file}{hint}{more}; "
                       f"add it to {side_file} or fix the name")


def _validate_records(records: pd.DataFrame, models: pd.Index, datasets: pd.Index) -> pd.DataFrame:
    fname = "records.csv"
    _require_columns(records, fname, ("model", "dataset", "accuracy"))
    df = records[["model", "dataset", "accuracy"]].copy()
    df["model"] = df["model"].astype(str)
    df["dataset"] = df["dataset"].astype(str)
    acc = _numeric_column(df, "accuracy", fname, "accuracy")
    out = (acc < 0) | (acc > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        pct = " (they look like percentages: divide them by 100)" if (acc > 1).all() or acc.max() > 1.5 else ""
        raise ZooError(f"{fname} line {i + 2}: accuracy {acc[i]:g} is outside [0, 1]; accuracies are fractions "
                       f"and recsys does not rescale them{pct}")
    df["accuracy"] = acc
    _check_names(df, fname, "model", models, "models.csv")
    _check_names(df, fname, "dataset", datasets, "datasets.csv")
    df["_line"] = np.arange(len(df)) + 2
    dup = df.duplicated(["model", "dataset"], keep=False)
    if dup.any():
        groups = df[dup].groupby(["model", "dataset"], sort=False)
        for (m, d), g in groups:
            if g["accuracy"].nunique() > 1:
                lines = ", ".join(str(x) for x in g["_line"].head(4))
                vals = ", ".join(f"{v:g}" for v in g["accuracy"].head(4))
                raise ZooError(f"{fname} lines {lines} give different accuracies ({vals}) for model {m!r} on "
                               f"dataset {d!r}; keep one record per pair (average them yourself if intended)")
        log.info("records.csv: dropped %d exact duplicate rows", int(dup.sum() - groups.ngroups))
        df = df.drop_duplicates(["model", "dataset"], keep="first")
    if len(df) == 0:
        raise ZooError(f"{fname} holds no records; recsys learns from fine-tuning results: add rows "
                       f"'model,dataset,accuracy'")
    return df.drop(columns="_line").reset_index(drop=True)


def _validate_scores(scores: pd.DataFrame | None, models: pd.Index, datasets: pd.Index) -> pd.DataFrame:
    if scores is None or len(scores) == 0:
        return _empty_scores()
    fname = "scores.csv"
    _require_columns(scores, fname, ("model", "dataset", "metric", "score"))
    df = scores[["model", "dataset", "metric", "score"]].copy()
    for c in ("model", "dataset", "metric"):
        df[c] = df[c].astype(str)
    df["score"] = _numeric_column(df, "score", fname, "score")
    _check_names(df, fname, "model", models, "models.csv")
    _check_names(df, fname, "dataset", datasets, "datasets.csv")
    key = ["model", "dataset", "metric"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        conflicting = df[dup].groupby(key)["score"].nunique()
        if (conflicting > 1).any():
            (m, d, metric) = conflicting[conflicting > 1].index[0]
            lines = [int(i) + 2 for i in np.flatnonzero(((df["model"] == m) & (df["dataset"] == d) & (df["metric"] == metric)).to_numpy())]
            raise ZooError(f"{fname} lines {lines} give different {metric} scores for model {m!r} on dataset {d!r}; "
                           f"keep one score per (model, dataset, metric)")
        df = df.drop_duplicates(key)
    return df.reset_index(drop=True)


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
