"""The zoo: a fine-tuning history on disk, in one canonical format.

A zoo is a directory of UTF-8 CSV files (comma-separated, RFC 4180 quoting:
names holding commas, quotes or line breaks are quoted, so names such as
``vit b/16`` or ``"convnext, tiny"`` work)::

    models.csv     column ``model`` (id) + any metadata columns
    datasets.csv   column ``dataset`` (id) + any metadata columns; may list
                   datasets without records (cold start)
    records.csv    ``model, dataset, accuracy``: fine-tuning results, accuracy
                   a fraction in [0, 1] (never a percentage; recsys does not
                   rescale); extra columns are ignored; unknown pairs are
                   absent; identical duplicate rows are dropped, conflicting
                   ones rejected
    scores.csv     optional ``model, dataset, metric, score``: feature-based
                   transferability scores (LogME, H-score ...), known for any
                   pair, new datasets included
    zoo.json       optional: a name and the column roles, e.g. ``{"name": "...",
                   "models": {"id": "model", "categorical": [...], "numeric":
                   [...], "text": [...], "log": [...]}, "datasets": {...}}``;
                   roles are inferred when absent. A column may be both
                   categorical and text. ``id`` names the id column when it is
                   not ``model`` / ``dataset``.

Header names and cells are stripped of surrounding whitespace (and a UTF-8
byte-order mark); blank lines are skipped. In metadata, an empty cell (or
``NA``, ``NaN``, ``null`` ...) is a missing value; a column whose values all
parse as numbers is numeric, and one whose values are numbers but for a few
(``~600``, ``"8,000"``) is refused unless ``zoo.json`` gives its role. Ids
(models, datasets, metrics) are compared after Unicode NFC normalization and
may not hold control or invisible characters (newline, ESC, zero-width space).

Every file must be a regular file of at most 4 GiB (``zoo.json``: 64 MiB; raise
them with ``$RECSYS_MAX_INPUT_BYTES`` / ``$RECSYS_MAX_JSON_BYTES``), a cell at
most 16 Mi characters long.

:func:`load_zoo` reads and validates such a directory; every problem is
reported as a :class:`~recsys.errors.ZooError` with one clear line that
names the file and line. This module knows nothing of features or engines.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import ZooError, closest
from .fileio import check_input, file_kind, load_json, write_atomic

__all__ = ["Roles", "Zoo", "load_zoo", "infer_roles", "validate_scores", "read_scores", "read_table", "normalize_id",
           "ZOO_FILES"]

log = logging.getLogger(__name__)

ZOO_FILES = ("models.csv", "datasets.csv", "records.csv", "scores.csv", "zoo.json")
_FORMAT_HINT = "the zoo format is described in data/README.md and `pydoc recsys.zoo`"
_ROLE_KEYS = ("id", "categorical", "numeric", "text", "log")
_ZOO_JSON_KEYS = ("name", "description", "models", "datasets")
#: metadata cells read as missing values (pandas' default NA strings)
NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


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
        """Every metadata column used, once, in role order."""
        return list(dict.fromkeys((*self.categorical, *self.numeric, *self.text)))

    def to_json(self) -> dict:
        out = {"id": self.id, "categorical": list(self.categorical),
               "numeric": list(self.numeric), "text": list(self.text)}
        if self.log is not None:
            out["log"] = list(self.log)
        return out

    @classmethod
    def from_json(cls, obj: Mapping, *, where: str, default_id: str) -> "Roles":
        """Roles from a ``zoo.json`` entry; ``where`` names it in error messages."""
        if isinstance(obj, Roles):
            return obj
        if not isinstance(obj, Mapping):
            raise ZooError(f"{where} must be an object with keys {', '.join(_ROLE_KEYS)}, got {obj!r}; {_FORMAT_HINT}")
        unknown = sorted(set(obj) - set(_ROLE_KEYS))
        if unknown:
            raise ZooError(f"{where} has unknown key(s) {unknown}; accepted: {', '.join(_ROLE_KEYS)}")
        lists = {}
        for key in ("categorical", "numeric", "text", "log"):
            val = obj.get(key, None if key == "log" else [])
            if val is None and key == "log":  # log: null means "decided from the data"
                lists[key] = None
                continue
            if isinstance(val, str):
                val = [val]
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                raise ZooError(f"give {where}.{key} as a list of column names, e.g. [\"size\"], or leave it out: "
                               f"it is {json.dumps(val)[:60]}")
            lists[key] = tuple(dict.fromkeys(v.strip() for v in val))
        ident = obj.get("id", default_id)
        if not isinstance(ident, str) or not ident.strip():
            raise ZooError(f"{where}.id must be the name of the id column, got {ident!r}")
        ident = ident.strip()
        for key in ("categorical", "numeric", "text", "log"):
            if ident in (lists[key] or ()):
                raise ZooError(f"{where}.{key} lists the id column {ident!r}; ids are not features, remove it")
        return cls(id=ident, **lists)


def infer_roles(df: pd.DataFrame, id_col: str) -> Roles:
    """Guess column roles from the values.

    Numbers are numeric, booleans categorical; strings are text when they are
    long (a mean over 24 characters, or more than half of them holding a comma)
    and more than half of the rows distinct; otherwise categorical when they
    repeat (at most half as many distinct values as rows, at most 50, at least 2
    allowed), else text (names, label lists). Columns with a single value carry
    no information and are skipped.

    Parameters
    ----------
    df : pandas.DataFrame
        The metadata table, id column included.
    id_col : str
        Column that holds the ids (never a feature).

    Returns
    -------
    Roles
        ``log`` is None: log transforms are decided from the data at fit time.
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


@dataclass(repr=False)
class Zoo:
    """A validated fine-tuning history.

    Attributes
    ----------
    name : str
    models : pandas.DataFrame
        Indexed by model id (str), one row per model, metadata columns: float64
        when every value is a number, else object holding str (NaN where missing).
    datasets : pandas.DataFrame
        Indexed by dataset id (str), one row per dataset (with or without records).
    records : pandas.DataFrame
        Columns ``model``, ``dataset`` (categorical: the categories are the
        model ids and dataset ids, in the order of ``models`` and ``datasets``,
        so ``records["model"].cat.codes`` are column positions) and
        ``accuracy`` (float in [0, 1]).
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

    def __repr__(self) -> str:
        """One paragraph: counts, the columns by role, the scores (``print(zoo)``; the tables are attributes)."""
        def roles(r: Roles) -> str:
            parts = [f"{k} {', '.join(v)}" for k, v in (("categorical", r.categorical), ("numeric", r.numeric),
                                                         ("text", r.text), ("log", r.log or ())) if v]
            return "; ".join(parts) or "none"

        n_rec, cells = len(self.records), len(self.models) * len(self.datasets)
        cold = len(self.datasets) - self.records["dataset"].nunique()
        scores = (f"{len(self.scores):,} transferability scores ({', '.join(self.metrics)})" if len(self.scores)
                  else "no transferability scores")
        where = f", read from {self.path}" if self.path else ""
        return (f"Zoo {self.name!r}{where}: {len(self.models):,} models x {len(self.datasets):,} datasets, "
                f"{n_rec:,} records ({n_rec / cells if cells else 0:.1%} of the pairs; {cold:,} dataset"
                f"{'s' if cold != 1 else ''} without records); {scores}. Model columns: {roles(self.model_roles)}. "
                f"Dataset columns: {roles(self.dataset_roles)}.")

    __str__ = __repr__

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

        Parameters
        ----------
        models, datasets, records, scores : pandas.DataFrame
            Laid out as ``models.csv`` ... ``scores.csv`` (``scores`` optional).
        name : str
        roles : mapping, optional
            ``{"models": {...}, "datasets": {...}}`` as in ``zoo.json`` (or
            :class:`Roles`); inferred from the values when absent.
        path : pathlib.Path, optional

        Raises
        ------
        ZooError
            On any missing column, bad value, unknown name or conflicting record.
        """
        tables = [None if f is None else _Table(f, _Where(fname))
                  for f, fname in ((models, "models.csv"), (datasets, "datasets.csv"), (records, "records.csv"),
                                   (scores, "scores.csv"))]
        return cls._validated(*tables, name=name, roles=roles, path=path)

    @classmethod
    def _validated(cls, models: _Table, datasets: _Table, records: _Table, scores: _Table | None, *, name: str,
                   roles: Mapping | None, path: Path | None) -> "Zoo":
        roles = dict(roles or {})
        m_roles = Roles.from_json(roles["models"], where="zoo.json models", default_id="model") \
            if roles.get("models") is not None else None
        d_roles = Roles.from_json(roles["datasets"], where="zoo.json datasets", default_id="dataset") \
            if roles.get("datasets") is not None else None
        models, m_lines = _index_table(models, "model", m_roles.id if m_roles else "model")
        datasets, d_lines = _index_table(datasets, "dataset", d_roles.id if d_roles else "dataset")
        for declared, frame, where in ((m_roles, models, m_lines), (d_roles, datasets, d_lines)):
            if declared is None:  # roles inferred from the values: a typo must not turn numbers into text
                _refuse_almost_numbers(frame, where)
        m_roles = replace(m_roles, id="model") if m_roles else infer_roles(models.reset_index(), "model")
        d_roles = replace(d_roles, id="dataset") if d_roles else infer_roles(datasets.reset_index(), "dataset")
        _check_role_columns(m_roles, models, "models.csv", m_lines)
        _check_role_columns(d_roles, datasets, "datasets.csv", d_lines)
        records = _validate_records(records, models.index, datasets.index)
        scores = validate_scores(scores, models.index, datasets.index)
        return cls(name=str(name), models=models, datasets=datasets, records=records, scores=scores,
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
        rows = _positions(self.records["dataset"], self.datasets.index)
        cols = _positions(self.records["model"], self.models.index)
        ok = (rows >= 0) & (cols >= 0)
        table = np.full((len(self.datasets), len(self.models)), np.nan)
        table[rows[ok], cols[ok]] = self.records["accuracy"].to_numpy(dtype=np.float64)[ok]
        return pd.DataFrame(table, index=self.datasets.index, columns=self.models.index)

    def floored(self, min_records: int = 5) -> pd.DataFrame:
        """Datasets whose records look like failed fine-tunes: of at least ``min_records`` records, more than half
        share the dataset's lowest accuracy, and that value is below half the highest (a collapse to one value,
        not the coarse steps of a small test set). recsys learns such records as results like any other.

        Returns
        -------
        pandas.DataFrame
            Columns ``dataset``, ``records``, ``at_floor``, ``floor``, ``highest``; most records at the floor first.
        """
        acc = self.records["accuracy"].to_numpy(dtype=np.float64)
        frame = pd.DataFrame({"d": self.records["dataset"].cat.codes.to_numpy(), "a": acc})
        frame["at"] = acc <= frame.groupby("d")["a"].transform("min").to_numpy() + 1e-12
        out = frame.groupby("d").agg(records=("a", "size"), at_floor=("at", "sum"), floor=("a", "min"),
                                     highest=("a", "max"))
        out.insert(0, "dataset", self.datasets.index[out.index.to_numpy()])
        out = out[(out["records"] >= min_records) & (2 * out["at_floor"] > out["records"])
                  & (2 * out["floor"] < out["highest"])]
        return out.sort_values(["at_floor", "dataset"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def fingerprint(self) -> str:
        """A short sha256 of the zoo's content (row-order independent; the name is not part of it).

        Records and scores are hashed as arrays (names coded against their sorted
        distinct values, rows sorted by those codes), not as text, so a zoo of
        10 M records takes seconds; the dtype of the name columns (str or
        categorical) does not matter.
        """
        h = hashlib.sha256()
        for frame in (self.models.sort_index(), self.datasets.sort_index()):
            h.update(frame.to_csv(index=True, lineterminator="\n").encode())
        _hash_table(h, self.records, ("dataset", "model"), "accuracy")
        _hash_table(h, self.scores, ("dataset", "model", "metric"), "score")
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
            "datasets_mostly_at_floor": self.floored()["dataset"].tolist()[:20],
            "model_columns": self.model_roles.to_json(),
            "dataset_columns": self.dataset_roles.to_json(),
            "fingerprint": self.fingerprint(),
        }

    def with_records(self, records: pd.DataFrame) -> "Zoo":
        """The same zoo with another (already valid) set of records."""
        return replace(self, records=records.reset_index(drop=True))

    # -- output -------------------------------------------------------------
    def write(self, directory: str | os.PathLike) -> Path:
        """Write the zoo in the canonical format (each file written atomically).

        ``load_zoo(zoo.write(d))`` gives a zoo with the same :meth:`fingerprint`.
        A ``scores.csv`` left in ``directory`` by an earlier zoo is removed when
        this zoo has no scores.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)

        def write(fname: str, text: str) -> None:
            write_atomic(directory / fname, text, what="zoo file", error=ZooError,
                         elsewhere="write the zoo to another directory")

        write("models.csv", _to_csv(self.models.reset_index()))
        write("datasets.csv", _to_csv(self.datasets.reset_index()))
        write("records.csv", _to_csv(self.records[["model", "dataset", "accuracy"]]))
        if len(self.scores):
            write("scores.csv", _to_csv(self.scores[["model", "dataset", "metric", "score"]]))
        else:
            (directory / "scores.csv").unlink(missing_ok=True)
        meta = {"name": self.name, "models": self.model_roles.to_json(), "datasets": self.dataset_roles.to_json()}
        write("zoo.json", json.dumps(meta, indent=2) + "\n")
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
        empty zoo, invalid ``zoo.json``.

    Notes
    -----
    A plain ``records.csv`` or ``scores.csv`` (no quotes; what big files are) is parsed by
    pandas' C reader, names kept as categoricals, and validated with array operations (10 M
    records: about 10 s and 0.7 GB), with the same messages (file, line, column, value) as any
    other file, which is read line by line (csv.reader).

    Examples
    --------
    >>> zoo = load_zoo("data/example-zoo")  # doctest: +SKIP
    >>> zoo.summary()["records"]            # doctest: +SKIP
    """
    path = Path(path).expanduser()
    try:
        if path.is_file():
            raise ZooError(f"{str(path)!r} is a file; give the zoo directory that holds models.csv, datasets.csv and "
                           f"records.csv ({_FORMAT_HINT})")
        if path.exists() and not path.is_dir():
            raise ZooError(f"give a zoo directory (models.csv, datasets.csv, records.csv): {str(path)!r} is "
                           f"{file_kind(path.stat().st_mode)}")
        if not path.is_dir():
            raise ZooError(f"zoo directory {str(path)!r} does not exist; give a directory with "
                           f"models.csv, datasets.csv and records.csv, or a named zoo (domainnet-270, transfergraph-image, vtab-hf, parc-71)")
        meta = _read_zoo_json(path / "zoo.json")
        models = _read_csv(path / "models.csv")
        datasets = _read_csv(path / "datasets.csv")
        records = _read_csv(path / "records.csv", numbers=("accuracy",))
        scores = _read_csv(path / "scores.csv", numbers=("score",)) if (path / "scores.csv").exists() else None
    except OSError as exc:  # a folder without permission (listing or entering it)
        raise ZooError(f"cannot read zoo directory {str(path)!r} ({exc.strerror or exc}); check its "
                       f"permissions") from None
    zoo_name = name or meta.get("name") or path.resolve().name
    return Zoo._validated(models, datasets, records, scores, name=str(zoo_name),
                          roles={k: meta.get(k) for k in ("models", "datasets")}, path=path)


# ---------------------------------------------------------------------------
# reading: one reader for every zoo CSV file
#
# _read_csv tokenizes a plain file (UTF-8, no quote, NUL or bare CR, every line as wide as the header or
# blank: what big records/scores files are) with pandas' C reader, in chunks, text as categoricals and
# numbers as float64, and any other file line by line with csv.reader. Both give the same table: the same
# cells and each row's line in the file, so the one validation below names the file, line, column and
# value of any problem without reading the file again, and checks 10 M records with array operations.


def _read_zoo_json(file: Path) -> dict:
    if not os.path.lexists(file):
        return {}
    check_input(file, "zoo.json", json_doc=True, error=ZooError,
                missing=f"fix or remove the broken symlink {str(file)!r}: zoo.json links to no file")
    try:
        meta = load_json(file.read_text(encoding="utf-8-sig"), f"{file}", error=ZooError)
    except json.JSONDecodeError as exc:
        raise ZooError(f"{file} is not valid JSON ({exc}); fix it, or delete it to infer the column roles") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise ZooError(f"cannot read {file} ({exc}); save it as UTF-8 JSON, or delete it to infer the column roles") \
            from None
    if not isinstance(meta, dict):
        raise ZooError(f"{file} must hold a JSON object with keys {', '.join(_ZOO_JSON_KEYS)}; "
                       f"got {type(meta).__name__}")
    unknown = sorted(set(meta) - set(_ZOO_JSON_KEYS))
    if unknown:
        hints = [h for u in unknown for h in closest(u, _ZOO_JSON_KEYS, n=1)]
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise ZooError(f"{file} has unknown key(s) {unknown}{hint}; accepted keys: {', '.join(_ZOO_JSON_KEYS)}")
    if "name" in meta and not isinstance(meta["name"], str):
        raise ZooError(f"{file}: 'name' must be a string, got {meta['name']!r}")
    return meta


class _Where:
    """Names rows in messages: their line in the file read, else (a frame built in Python) their row number.

    ``lines`` holds each row's line; ``skipped`` (sorted) the lines after the header that hold no row,
    which says the same for a plain file of 10 M rows in a few bytes.
    """

    def __init__(self, fname: str, *, lines: np.ndarray | None = None, skipped: np.ndarray | None = None):
        self.fname, self.lines, self.skipped = fname, lines, skipped

    @property
    def counted(self) -> bool:
        return self.lines is None and self.skipped is None

    def line(self, i: int) -> int:
        if self.lines is not None:
            return int(self.lines[i])
        line = 2 + i  # the i-th line from line 2 on that is not skipped
        while True:
            found = 2 + i + int(np.searchsorted(self.skipped, line, side="right"))
            if found == line:
                return line
            line = found

    def __call__(self, i: int) -> str:
        return f"{self.fname} row {i + 1}" if self.counted else f"{self.fname} line {self.line(i)}"

    def many(self, rows: Iterable[int]) -> str:
        if self.counted:
            return f"{self.fname} rows {', '.join(str(int(i) + 1) for i in rows)}"
        return f"{self.fname} lines {', '.join(str(self.line(int(i))) for i in rows)}"

    def without(self, rows: np.ndarray) -> "_Where":
        """The rows left when ``rows`` are dropped."""
        if self.lines is not None:
            return _Where(self.fname, lines=np.delete(self.lines, rows))
        return _Where(self.fname, skipped=np.union1d(self.skipped, [self.line(int(i)) for i in rows]))


@dataclass
class _Table:
    """A zoo table and where its rows come from."""

    frame: pd.DataFrame
    where: _Where


def _read_csv(file: Path, *, numbers: tuple[str, ...] = ()) -> _Table:
    """A zoo CSV file: header names and cells stripped, blank lines skipped, each row's line kept.

    A UTF-8 BOM and whitespace around header names and cells are removed; rows whose cells are all
    blank are skipped; columns with an empty header are dropped. Types are decided by the
    validation, so ids such as ``007`` or ``NA`` stay as written. A long table (``numbers`` given:
    records, scores) of :data:`_PLAIN_MIN_BYTES` or more goes through the C reader when it is plain:
    text columns as categoricals, ``numbers`` as float64 when every cell is a finite number (else as
    text, for the validation to name the bad cell); any other file is read line by line (str cells).
    """
    size = check_input(file, file.name, error=ZooError, missing=f"zoo directory {str(file.parent)!r} has no "
                       f"{file.name}; a zoo needs models.csv, datasets.csv and records.csv ({_FORMAT_HINT})")
    table = _read_plain(file, numbers) if numbers and size >= _PLAIN_MIN_BYTES else None
    return table if table is not None else _read_rows(file)


def _check_header(cells: list[str], fname: str, line: int) -> list[str]:
    """The header's stripped names; one line when it uses semicolons or tabs, or names a column twice."""
    header = [h.strip().lstrip("\ufeff").strip() for h in cells]
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        sep = "semicolons" if ";" in header[0] else "tabs"
        raise ZooError(f"{fname} line {line}: the header {header[0]!r} uses {sep}; zoo files are "
                       f"comma-separated, save it as CSV with commas")
    named = [h for h in header if h]
    dups = sorted({h for h in named if named.count(h) > 1})
    if dups:
        raise ZooError(f"{fname} line {line}: the header names column(s) {dups} more than once; "
                       f"give each column a unique name")
    return header


def _table(columns: dict[int, pd.Categorical | np.ndarray], header: list[str], n: int, where: _Where,
           file: Path) -> _Table:
    """The table of the columns read (by position), without the columns that have no header name."""
    keep = [j for j, h in enumerate(header) if h]
    if len(keep) < len(header):
        log.info("%s: ignoring %d column(s) without a header name", file, len(header) - len(keep))
    return _Table(pd.DataFrame({header[j]: columns[j] for j in keep}) if keep else pd.DataFrame(index=range(n)), where)


# -- the plain tokenizer (pandas' C reader) ------------------------------------------------------

#: the longest cell of a zoo CSV file, in characters (csv's own default, 131,072, is short for label lists)
MAX_CELL_CHARS = 16 << 20
#: below this size (bytes), csv.reader reads a file faster than the C reader starts
_PLAIN_MIN_BYTES = 64 << 10
_PLAIN_BLOCK = 1 << 24  # bytes per block of the pre-scan
_PLAIN_CHUNK = 1 << 21  # rows per chunk of the C reader (bounds its token buffers)
_KEY_LIMIT = 1 << 62  # names' codes combined into one int64 key stay below this (validate_scores)


def _read_plain(file: Path, numbers: tuple[str, ...]) -> _Table | None:
    """The table of a plain file (see above) through pandas' C reader; None for :func:`_read_rows`."""
    try:
        shape = _plain_shape(file)
    except OSError:
        return None  # the line-by-line reader says what is wrong
    if shape is None:
        return None
    cells, n_rows, skipped = shape
    header = _check_header(cells, file.name, 1)
    where = _Where(file.name, skipped=skipped)
    if n_rows == 0:
        return _table({j: np.array([], dtype=object) for j in range(len(header))}, header, 0, where, file)
    width = len(header)
    floats = [j for j, h in enumerate(header) if h and h in numbers]
    try:
        try:
            columns = _parse(file, width, [j for j in range(width) if j not in floats], floats)
            redo = [j for j, c in columns.items() if c is None or (j in floats and not np.isfinite(c).all())]
        except (UnicodeDecodeError, pd.errors.ParserError):
            raise
        except ValueError:  # a number column holds something else than numbers
            columns, redo = {}, list(range(width))
        # As text (str, coded here): numbers that are not all finite, for the validation to name the cell
        # as written; ids the C reader took for numbers (007 must stay 007).
        columns.update(_parse(file, width, redo, [], as_object=True) if redo else {})
    except Exception as exc:  # noqa: BLE001 - decoding, tokenizing ...: the line-by-line reader reports it
        log.debug("%s: read line by line (%s: %s)", file.name, type(exc).__name__, exc)
        return None
    if any(len(c) != n_rows for c in columns.values()):
        log.debug("%s: read line by line (the C reader's rows differ from the pre-scan's)", file.name)
        return None
    blank = np.ones(n_rows, dtype=bool)  # rows of blank cells (",,"): the line-by-line reader skips them
    for col in columns.values():
        if not isinstance(col, pd.Categorical) or not blank.any():  # (a number is never blank)
            blank[:] = False
            break
        blank &= np.array([not str(c).strip() for c in col.categories] + [True])[col.codes]  # (-1: a padded cell)
    if blank.any():
        rows = np.flatnonzero(blank)
        columns, where, n_rows = {j: c[~blank] for j, c in columns.items()}, where.without(rows), n_rows - len(rows)
    return _table(columns, header, n_rows, where, file)


def _parse(file: Path, width: int, text: list[int], floats: list[int], *, as_object: bool = False) -> dict:
    """Columns (by position) of a plain file: ``text`` as categoricals, ``floats`` as float64 arrays.

    A text column the C reader took for numbers (or booleans) is None. ``as_object``: text columns
    are read as str and coded here, which keeps them as written.
    """
    dtype = {j: object if as_object else "category" for j in text}
    dtype.update({j: np.float64 for j in floats})
    codes = {j: _Codes() for j in text}
    values: dict[int, list[np.ndarray]] = {j: [] for j in floats}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any parser warning: let the line-by-line reader decide
        subset = sorted(dtype) if len(dtype) < width else None  # (all columns: a wider line is an error, not cut)
        reader = pd.read_csv(file, sep=",", header=None, skiprows=1, names=list(range(width)), usecols=subset,
                             dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE, engine="c", encoding="utf-8",
                             index_col=False, skip_blank_lines=True, chunksize=_PLAIN_CHUNK, low_memory=False)
        with reader:
            for chunk in reader:
                for j in text:
                    col = chunk[j]
                    if as_object:
                        found, uniques = pd.factorize(col.to_numpy(dtype=object))
                        codes[j].add(found, pd.Index(uniques, dtype=object))
                    elif codes[j] is not None:
                        cats = col.cat.categories
                        if len(cats) and cats.inferred_type != "string":
                            codes[j] = None
                        else:
                            codes[j].add(col.cat.codes.to_numpy(), cats)
                for j in floats:
                    values[j].append(chunk[j].to_numpy(dtype=np.float64))
    out = {j: None if c is None else c.categorical() for j, c in codes.items()}
    out.update({j: np.concatenate(v) if v else np.array([], dtype=np.float64) for j, v in values.items()})
    return out


class _Codes:
    """A text column read in chunks: each chunk's codes mapped onto the distinct values seen so far."""

    def __init__(self):
        self.seen = pd.Index([], dtype=object)
        self.parts: list[np.ndarray] = []

    def add(self, codes: np.ndarray, uniques: pd.Index) -> None:
        where = self.seen.get_indexer(uniques)
        new = where < 0
        if new.any():
            where[new] = np.arange(len(self.seen), len(self.seen) + int(new.sum()))
            self.seen = self.seen.append(pd.Index(uniques[new], dtype=object))
        self.parts.append(where.astype(np.int32)[codes])

    def categorical(self) -> pd.Categorical:
        codes = np.concatenate(self.parts) if self.parts else np.array([], dtype=np.int32)
        return pd.Categorical.from_codes(codes, categories=self.seen)


def _plain_shape(file: Path) -> tuple[list[str], int, np.ndarray] | None:
    """(header cells, number of data rows, blank lines) of a plain file, or None.

    Plain: UTF-8 (checked by the C reader), no quote character, no NUL, no bare CR, and a
    non-blank first line. The C reader refuses a line wider than the header and pads a shorter one
    with empty cells, as the line-by-line reader does; it skips blank lines (spaces and tabs only),
    whose numbers are kept here for the messages.
    """
    header: list[str] | None = None
    rows, line, rest, skipped = 0, 2, b"", []
    with open(file, "rb") as fh:
        while True:
            block = fh.read(_PLAIN_BLOCK)
            data = rest + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            part, rest = data[:cut], data[cut:]
            if b'"' in part or b"\x00" in part or (b"\r" in part and part.count(b"\r") != part.count(b"\r\n")):
                return None
            if header is None and part:
                end = part.find(b"\n")
                try:
                    first = part[:end if end >= 0 else len(part)].decode("utf-8-sig").rstrip("\r")
                except UnicodeDecodeError:
                    return None
                header = first.split(",")
                if not any(h.strip().lstrip("\ufeff") for h in header):
                    return None  # a blank first line: the header comes later
                part = part[end + 1:] if end >= 0 else b""
            if part:
                n_lines, blank = _blank_lines(part)
                skipped.extend((line + blank).tolist())
                rows += n_lines - len(blank)
                line += n_lines
            if not block:
                break
    return (header, rows, np.asarray(skipped, dtype=np.int64)) if header is not None else None


def _blank_lines(part: bytes) -> tuple[int, np.ndarray]:
    """(lines of ``part``, positions of those holding only spaces and tabs: the C reader skips them)."""
    arr = np.frombuffer(part, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not len(ends) or ends[-1] != len(arr) - 1:  # the file's last line has no newline
        ends = np.append(ends, len(arr))
    starts = np.concatenate([[0], ends[:-1] + 1])
    first = arr[starts]  # a blank line starts with a space, a tab, CR or its own end
    maybe = np.flatnonzero((first == 32) | (first == 9) | (first == 13) | (first == 10))
    blank = [i for i in maybe if not part[starts[i]:ends[i]].strip(b" \t\r")]
    return len(ends), np.asarray(blank, dtype=np.int64)


# -- the line-by-line tokenizer (csv.reader) -----------------------------------------------------

def _read_rows(file: Path) -> _Table:
    """Any zoo CSV file (RFC 4180 quotes, bare CR ...), line by line; every problem names its line."""
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1
    limit = csv.field_size_limit(MAX_CELL_CHARS)
    try:
        with open(file, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            try:
                for row in reader:
                    first, start = start, reader.line_num + 1
                    if any(cell.strip() for cell in row):
                        rows.append(row)
                        lines.append(first)
            except csv.Error as exc:
                if "field limit" in str(exc):
                    raise ZooError(f"close the quote that opens a cell, or shorten the cell: {file.name} from line "
                                   f"{start} holds a cell longer than {MAX_CELL_CHARS:,} characters") from None
                raise ZooError(f"{file.name} line {start}: not valid CSV ({exc}); quote values holding commas or "
                               f"quotes, e.g. \"convnext, tiny\", and double the quotes inside them") from None
    except UnicodeDecodeError as exc:
        raise ZooError(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 CSV") from None
    except OSError as exc:
        raise ZooError(f"cannot read {file} ({exc.strerror or exc}); check the file's permissions") from None
    finally:
        csv.field_size_limit(limit)
    if not rows:
        raise ZooError(f"{file} is empty; it needs a header line ({_FORMAT_HINT})")
    header = _check_header(rows[0], file.name, lines[0])
    width = len(header)
    body = []
    for row, line in zip(rows[1:], lines[1:]):
        if len(row) > width:
            if any(c.strip() for c in row[width:]):
                raise ZooError(f"{file.name} line {line}: {len(row)} fields but the header has {width}; "
                               f"quote values that contain commas, e.g. \"convnext, tiny\"")
            row = row[:width]
        elif len(row) < width:
            row = row + [""] * (width - len(row))
        body.append([c.strip() for c in row])
    columns = {j: np.array([r[j] for r in body], dtype=object) for j in range(width)}
    return _table(columns, header, len(body), _Where(file.name, lines=np.asarray(lines[1:], dtype=np.int64)), file)


# ---------------------------------------------------------------------------
# validation: frames read from files and frames built in Python alike


def _codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of a column, code -1 for a missing value.

    A categorical's categories; strings factorized; other values one by one (1, 1.0 and True
    must stay apart). Whatever is computed per distinct value and gathered by the codes is what
    computing it per cell gives, for 10 M cells at the cost of their few distinct values.
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(), np.asarray(s.cat.categories, dtype=object)
    values = s.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(values)
        return codes, np.asarray(uniques, dtype=object)
    return np.arange(len(values)), values


def _gather(per_value, codes: np.ndarray, missing, dtype=object) -> np.ndarray:
    """Per-cell values from per-distinct-value ones (code -1: ``missing``)."""
    out = np.empty(len(per_value) + 1, dtype=dtype)
    out[:-1] = per_value
    out[-1] = missing
    return out[codes]


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame({"model": pd.Series(dtype=object), "dataset": pd.Series(dtype=object),
                         "metric": pd.Series(dtype=object), "score": pd.Series(dtype=float)})


def _is_na(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(v)
    if isinstance(v, str):
        return v.strip() in NA_STRINGS
    return False


def _name(v) -> str | None:
    """An id as a stripped string, None when missing (a text id is as written: "NA" is an id)."""
    if not isinstance(v, str) and _is_na(v):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)  # 7.0 read by pandas from "7"
    s = str(v).strip()
    if not s.isascii() and not unicodedata.is_normalized("NFC", s):
        s = unicodedata.normalize("NFC", s)  # ids that print alike are one id (macOS writes NFD)
    return s or None


#: characters refused in ids: controls (newline, ESC ...), invisible formatting (zero-width space, bidi
#: overrides), lone surrogates, line and paragraph separators
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_HIDDEN_NAMES = {"\t": "tab", "\n": "newline", "\r": "carriage return", "\x1b": "escape", "\x00": "NUL"}


def hidden_character(s: str) -> str | None:
    """The first character of ``s`` that an id may not hold ("U+001B (escape)"), None when there is none."""
    if s.isprintable():
        return None
    for ch in s:
        if unicodedata.category(ch) in _HIDDEN:
            name = _HIDDEN_NAMES.get(ch) or unicodedata.name(ch, "").lower()
            return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")
    return None


def normalize_id(value, what: str = "id") -> str | None:
    """An id as recsys compares it: stripped, Unicode NFC; None when empty.

    Raises
    ------
    ZooError
        When it holds a control or invisible character (newline, ESC, zero-width space ...).
    """
    name = _name(value)
    bad = hidden_character(name) if name is not None else None
    if bad:
        raise ZooError(f"remove the character {bad} from the {what} {name!r}: ids are printed in tables and "
                       f"compared as seen")
    return name


def _normalize_column(s: pd.Series) -> pd.Series:
    """One metadata column: float64 when every value is a number, else str (NaN for missing).

    Frames read from CSV and frames built in Python go through here, so a zoo
    written and read back is identical.
    """
    if pd.api.types.is_bool_dtype(s):
        values = [np.nan if _is_na(v) else str(bool(v)) for v in s]
        if all(v is np.nan for v in values):  # no value at all: as an empty column read from a file
            return pd.Series(np.nan, index=s.index, dtype=np.float64)
        return pd.Series(values, index=s.index, dtype=object)
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(np.float64)
    codes, uniques = _codes(s)
    values = [None if _is_na(v) else (v.strip() if isinstance(v, str) else v) for v in uniques]
    used = np.bincount(codes[codes >= 0], minlength=len(values)) > 0
    present = [v for v, u in zip(values, used) if u and v is not None]
    if not present:
        return pd.Series(np.nan, index=s.index, dtype=np.float64)
    try:
        numeric = not pd.to_numeric(pd.Series(present, dtype=object), errors="coerce").isna().any()
    except (TypeError, ValueError, OverflowError):  # lists or dicts (from JSON), integers past float64: not numbers
        numeric = False
    if numeric and not any(isinstance(v, bool) for v in present):
        per_value = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(np.float64).tolist()
        return pd.Series(_gather(per_value, codes, np.nan, np.float64), index=s.index)
    return pd.Series(_gather([np.nan if v is None else str(v) for v in values], codes, np.nan), index=s.index,
                     dtype=object)


def _index_table(table: _Table, side: str, id_col: str) -> tuple[pd.DataFrame, _Where]:
    """Validate a metadata table; returns it indexed by ``side`` ('model' / 'dataset') with typed columns."""
    df, where = table.frame, table.where
    fname = where.fname
    if not isinstance(df, pd.DataFrame):
        raise ZooError(f"{fname}: expected a table (pandas DataFrame), got {type(df).__name__}")
    if df.index.name in (side, id_col) and id_col not in df.columns:
        df = df.reset_index().rename(columns={df.index.name: id_col})
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    if id_col not in df.columns:
        named = f" named by zoo.json's {side}s.id" if id_col != side else ""
        hint = closest(id_col, df.columns)
        hint = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
        fix = f"fix {side}s.id in zoo.json" if id_col != side else \
            f"name the id column {side!r}, or name it in zoo.json ({{\"{side}s\": {{\"id\": ...}}}})"
        raise ZooError(f"{fname} has no column {id_col!r} (the {side} id{named}){hint}; columns found: "
                       f"{list(df.columns)[:8]}; {fix}")
    if id_col != side and side in df.columns:
        raise ZooError(f"{fname} has both {id_col!r} (the id, from zoo.json) and a column {side!r}; "
                       f"rename {side!r} or use it as the id")
    codes, names = _name_codes(df[id_col], where, f"empty {side} id; every row needs a {id_col}", f"{side} id")
    ids = _gather(names, codes, None)
    dup = pd.Index(ids).duplicated(keep=False)
    if dup.any():
        v = ids[np.flatnonzero(dup)[0]]
        rows = np.flatnonzero(ids == v)
        raise ZooError(f"{fname} lists {side} {v!r} more than once ({where.many(rows)}); ids must be unique")
    if not len(ids):
        raise ZooError(f"{fname} lists no {side}s; an empty zoo cannot be fitted ({_FORMAT_HINT})")
    out = pd.DataFrame({c: _normalize_column(df[c]) for c in df.columns if c != id_col}, index=df.index)
    out.index = pd.Index(ids, name=side, dtype=object)
    return out, where


def _check_role_columns(roles: Roles, df: pd.DataFrame, fname: str, where: _Where) -> None:
    for col in (*roles.columns, *(roles.log or ())):
        if col not in df.columns:
            hint = closest(col, df.columns)
            hint = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
            raise ZooError(f"zoo.json names column {col!r} of {fname}, which has no such column{hint}; columns "
                           f"found: {list(df.columns)[:12]}; fix the name in zoo.json or add the column")
    for col in roles.numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise _not_a_number(col, where, i, df[col].iloc[i], " (zoo.json lists it as numeric)")
        values = values.astype(np.float64)
        if np.isinf(values.to_numpy()).any():
            i = int(np.flatnonzero(np.isinf(values.to_numpy()))[0])
            raise ZooError(f"{where(i)}: column {col!r} holds an infinite value; give a finite number or leave "
                           f"the cell empty")
        df[col] = values
    for col in roles.log or ():
        if col not in roles.numeric:
            raise ZooError(f"zoo.json lists {col!r} under log but not under numeric; log applies to numeric columns")
        bad = (df[col] <= 0).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ZooError(f"{where(i)}: column {col!r} is log-transformed but holds {df[col].iloc[i]:g} (<= 0); "
                           f"remove it from 'log' in zoo.json or fix the value")


def _refuse_almost_numbers(df: pd.DataFrame, where: _Where) -> None:
    """A column of numbers but for a few cells (``~600``, Excel's ``8,000``) would become a text column and
    change the predictions without a word: refused, naming the first such cell."""
    for col in df.columns:
        if df[col].dtype != object:
            continue
        present = df[col].notna().to_numpy()
        numbers = pd.to_numeric(df[col], errors="coerce").notna().to_numpy()
        n, k = int(present.sum()), int(numbers.sum())
        if k >= 2 and 0 < n - k <= max(1, n // 5):
            i = int(np.flatnonzero(present & ~numbers)[0])
            raise _not_a_number(col, where, i, df[col].iloc[i], f', or list the column under "categorical" or '
                                f'"text" in zoo.json if it is not numeric ({k} of its {n} values are numbers)')


def _not_a_number(col: str, where: _Where, i: int, value, why: str) -> ZooError:
    return ZooError(f"write a number or leave the cell empty in column {col!r} of {where.fname}{why}: {where(i)} "
                    f"holds {value!r}")


def _number(v: float) -> str:
    """A number as given: 83, 0.5, 1.0000001 (``:g`` would show 1)."""
    text = f"{v:g}"
    return text if float(text) == v else repr(float(v))


def _require_columns(df: pd.DataFrame, fname: str, required: Iterable[str]) -> None:
    required = list(required)
    missing = [c for c in required if c not in df.columns]
    if missing:
        hints = [h for c in missing for h in closest(c, df.columns, n=1)]
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise ZooError(f"{fname} has no column(s) {missing}{hint}; required columns: {', '.join(required)} "
                       f"(found {list(df.columns)[:8]}); rename the header")


def _name_codes(col: pd.Series, where: _Where, empty: str, what: str) -> tuple[np.ndarray, list]:
    """(codes, names): every row's name (stripped, NFC) is ``names[code]``; ``empty`` is said of the first
    row without one, and the first name holding a control or invisible character is refused."""
    codes, uniques = _codes(col)
    names = [_name(v) for v in uniques]
    if (codes < 0).any() or None in names:
        rows = np.flatnonzero(_gather([n is None for n in names], codes, True, bool))
        if len(rows):
            raise ZooError(f"{where(int(rows[0]))}: {empty}")
    hidden = [k for k, n in enumerate(names) if n is not None and hidden_character(n)]
    rows = np.flatnonzero(np.isin(codes, hidden)) if hidden else ()
    if len(rows):
        i = int(rows[0])
        raise ZooError(f"remove the character {hidden_character(names[codes[i]])} from the {what} {names[codes[i]]!r}: "
                       f"{where(i)}")
    return codes, names


def _positions_in(codes: np.ndarray, names: list, valid: pd.Index, where: _Where, col: str,
                  side_file: str) -> np.ndarray:
    """Each row's position in ``valid``; one line naming the first unknown name (with the closest ones)."""
    pos = _gather(valid.get_indexer(pd.Index(names, dtype=object)), codes, -1, np.int32)  # (int32: 10 M rows take 40 MB)
    unknown = pos < 0
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        name = names[codes[i]]
        hint = closest(name, valid)
        hint = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
        n_bad = int(unknown.sum())
        more = f"; {n_bad} rows name unknown {col}s" if n_bad > 1 else ""
        raise ZooError(f"{where(i)} names {col} {name!r}, which is not in {side_file}{hint}{more}; "
                       f"fix the name or add it to {side_file}")
    return pos


def _numbers(col: pd.Series, where: _Where, what: str, accepted: str) -> np.ndarray:
    """A column of finite numbers (float64); one line naming the first cell that is not one."""
    types = pd.api.types
    if types.is_numeric_dtype(col) and not (types.is_bool_dtype(col) or types.is_complex_dtype(col)):  # (else as text)
        codes, values = None, col.to_numpy(dtype=float, na_value=np.nan)
    else:
        codes, uniques = _codes(col)
        cells = ["" if _is_na(v) else str(v).strip() for v in uniques]
        per_value = pd.to_numeric(pd.Series([c if c else None for c in cells], dtype=object),
                                  errors="coerce").to_numpy(dtype=float)
        values = _gather(per_value, codes, np.nan, np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        n_bad = int(bad.sum())
        more = f" ({n_bad} such rows)" if n_bad > 1 else ""
        if codes is None:
            cell, empty = str(col.iloc[i]).strip(), bool(np.isnan(values[i]))
        else:
            cell = cells[codes[i]] if codes[i] >= 0 else ""
            empty = cell in NA_STRINGS
        if empty:
            raise ZooError(f"{where(i)}: {what} is empty or NaN{more}; every row needs {accepted} "
                           f"(drop the row if the result is unknown)")
        if cell.endswith("%"):
            raise ZooError(f"{where(i)}: {what} {cell!r} is a percentage{more}; give {accepted}, "
                           f"e.g. 0.83 for 83%")
        if np.isinf(values[i]):
            raise ZooError(f"{where(i)}: {what} {cell!r} is infinite{more}; give {accepted}")
        raise ZooError(f"{where(i)}: {what} {cell!r} is not a number{more}; give {accepted}")
    return values


def _first_rows(key: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(the rows to keep: the first of each key, the rows of the first key whose values differ, or None).

    "First" is in file order: the key of the earliest row among the conflicting ones, its rows in
    file order, as a person reading the file meets them.
    """
    keep = np.ones(len(key), dtype=bool)
    ks = np.sort(key)
    if not (ks[1:] == ks[:-1]).any():  # the usual case, settled by one sort
        return keep, None
    order = _stable_order(key)  # equal keys keep their file order
    ks, vs = key[order], values[order]
    same = ks[1:] == ks[:-1]
    differ = same & (vs[1:] != vs[:-1])
    if differ.any():
        starts = np.flatnonzero(np.r_[True, ~same])  # where each key's run of rows starts (sorted positions)
        runs = np.searchsorted(starts, np.flatnonzero(differ) + 1, side="right") - 1
        first = runs[np.argmin(order[starts[runs]])]
        end = starts[first + 1] if first + 1 < len(starts) else len(order)
        return keep, order[starts[first]:end]
    keep[order[1:][same]] = False
    return keep, None


def _validate_records(table: _Table, models: pd.Index, datasets: pd.Index) -> pd.DataFrame:
    records, where = table.frame, table.where
    fname = where.fname
    if not isinstance(records, pd.DataFrame):
        raise ZooError(f"{fname}: expected a table (pandas DataFrame), got {type(records).__name__}")
    records = records.rename(columns=lambda c: str(c).strip())
    _require_columns(records, fname, ("model", "dataset", "accuracy"))
    m_codes, m_names = _name_codes(records["model"], where, "empty model name; every row needs a model", "model")
    d_codes, d_names = _name_codes(records["dataset"], where, "empty dataset name; every row needs a dataset",
                                   "dataset")
    acc = _numbers(records["accuracy"], where, "accuracy", "a fraction in [0, 1]")
    out = (acc < 0) | (acc > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        n_out = int(out.sum())
        more = f" ({n_out} rows are outside)" if n_out > 1 else ""
        pct = ""
        if acc.min() >= 0 and acc.max() <= 100:
            pct = "; if they are percentages, divide them by 100"
        raise ZooError(f"give accuracies as fractions in [0, 1] (0.83, not 83: recsys never rescales them){pct}: "
                       f"{where(i)}: accuracy {_number(acc[i])} is outside [0, 1]{more}")
    m = _positions_in(m_codes, m_names, models, where, "model", "models.csv")
    d = _positions_in(d_codes, d_names, datasets, where, "dataset", "datasets.csv")
    keep, conflict = _first_rows(d.astype(np.int64) * len(models) + m, acc)
    if conflict is not None:
        vals = ", ".join(_number(v) for v in acc[conflict[:4]])
        raise ZooError(f"{where.many(conflict[:4])} give different accuracies ({vals}) for model "
                       f"{models[m[conflict[0]]]!r} on dataset {datasets[d[conflict[0]]]!r}; keep one record per "
                       f"pair (average them yourself if intended)")
    if not keep.all():
        log.info("records.csv: dropped %d exact duplicate row(s)", int((~keep).sum()))
        m, d, acc = m[keep], d[keep], acc[keep]
    if len(acc) == 0:
        raise ZooError(f"{fname} holds no records; recsys learns from fine-tuning results: add rows "
                       f"'model,dataset,accuracy' ({_FORMAT_HINT})")
    return pd.DataFrame({"model": pd.Categorical.from_codes(m, dtype=pd.CategoricalDtype(models)),
                         "dataset": pd.Categorical.from_codes(d, dtype=pd.CategoricalDtype(datasets)),
                         "accuracy": acc})


def validate_scores(scores: "pd.DataFrame | _Table | None", models: pd.Index | None = None,
                    datasets: pd.Index | None = None) -> pd.DataFrame:
    """The one check of a score table (``model, dataset, metric, score``).

    A zoo's ``scores.csv``, the file of ``recsys topk --scores`` and the scores given to
    :meth:`~recsys.features.FeatureBuilder.new_datasets` all go through here: names stripped (an
    empty one refused), scores finite numbers, identical duplicate rows dropped and conflicting ones
    refused; each problem one line naming the file (or table), line (or row), column and value.

    Parameters
    ----------
    scores : pandas.DataFrame or None
    models, datasets : pandas.Index, optional
        The names allowed (a zoo's); None: any name. Without ``datasets`` (the scores of new
        datasets) the dataset column may be left out (the scores of one dataset).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``dataset`` (unless left out), ``metric`` (str) and ``score`` (float).

    Raises
    ------
    ZooError
    """
    if scores is None:
        return _empty_scores()
    table = scores if isinstance(scores, _Table) else _Table(scores, _Where("scores"))
    frame, where = table.frame, table.where
    fname = where.fname
    if not isinstance(frame, pd.DataFrame):
        raise ZooError(f"{fname}: expected a table (pandas DataFrame), got {type(frame).__name__}")
    frame = frame.rename(columns=lambda c: str(c).strip())
    names = [c for c in ("model", "dataset", "metric") if c != "dataset" or datasets is not None or c in frame]
    _require_columns(frame, fname, ("model", "dataset", "metric", "score") if "dataset" in names else
                     ("model", "metric", "score"))
    if len(frame) == 0:
        return _empty_scores()
    found = {c: _name_codes(frame[c], where, f"empty {c} name; every row needs a {c}", c) for c in names}
    values = _numbers(frame["score"], where, "score", "a finite number")
    ids, key = {}, np.zeros(len(frame), dtype=np.int64)
    for c in names:
        valid = {"model": models, "dataset": datasets}.get(c)
        if valid is None:
            pos, valid = pd.factorize(_gather(found[c][1], found[c][0], None))
        else:
            pos = _positions_in(*found[c], valid, where, c, f"{c}s.csv")
        if len(valid) and int(key.max()) >= _KEY_LIMIT // len(valid):
            key = pd.factorize(key)[0]  # (dense again: the codes of many distinct names would overflow)
        ids[c], key = (np.asarray(valid, dtype=object), pos), key * len(valid) + pos
    keep, conflict = _first_rows(key, values)
    if conflict is not None:
        name = {c: v[p[conflict[0]]] for c, (v, p) in ids.items()}
        on = f" on dataset {name['dataset']!r}" if "dataset" in name else ""
        vals = ", ".join(_number(v) for v in values[conflict[:4]])
        raise ZooError(f"{where.many(conflict[:4])} give different {name['metric']} scores ({vals}) for model "
                       f"{name['model']!r}{on}; keep one score per (model, dataset, metric) (average them if "
                       f"intended)")
    return pd.DataFrame({**{c: pd.Series(v[p[keep]], dtype=object) for c, (v, p) in ids.items()},
                         "score": values[keep]})


def read_scores(path: str | os.PathLike, what: str = "scores file") -> pd.DataFrame:
    """A score table in a file of its own (``recsys topk --scores``), read and checked as a zoo's scores.csv.

    Its dataset column may be left out (the scores of one new dataset); ``what`` leads every message.
    """
    return _read_given(path, what, "model, dataset, metric, score", validate_scores, numbers=("score",))


def read_table(path: str | os.PathLike, what: str) -> pd.DataFrame:
    """A CSV table given on the command line (``recsys topk --new``), read as a zoo's files are.

    A regular file within the size limit, the header checked (semicolons, a name given twice),
    cells stripped and kept as written (str); ``what`` leads every message.
    """
    return _read_given(path, what, "a header and one row per dataset", lambda table: table.frame)


def _read_given(path: str | os.PathLike, what: str, holding: str, then, numbers: tuple[str, ...] = ()):
    check_input(path, what, error=ZooError, missing=f"give an existing CSV file ({holding}) as {what}: "
                f"{str(path)!r} does not exist")
    try:
        return then(_read_csv(Path(path), numbers=numbers))
    except ZooError as exc:
        raise ZooError(f"{what}: {exc}") from None


# ---------------------------------------------------------------------------
# helpers


def _stable_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for keys >= 0, about 5x faster on millions of rows.

    Sorting ``key * n + row`` with np.sort (SIMD) and taking ``% n`` gives the permutation.
    """
    n = len(key)
    if n and int(key.max()) < (1 << 62) // n:
        return np.sort(key * n + np.arange(n, dtype=np.int64)) % n
    return np.argsort(key, kind="stable")


def _positions(col: pd.Series, ids: pd.Index) -> np.ndarray:
    """Position of each name of ``col`` in ``ids`` (-1 if absent), without a Python loop per row."""
    if isinstance(col.dtype, pd.CategoricalDtype):  # look up the few categories, not every row
        cats = np.append(ids.get_indexer(col.cat.categories), -1)  # code -1 (missing) stays -1
        return cats[col.cat.codes.to_numpy()].astype(np.int64)
    return ids.get_indexer(col).astype(np.int64)


def _hash_table(h, frame: pd.DataFrame, keys: tuple[str, ...], value: str) -> None:
    """Feed ``frame``'s rows to ``h`` independently of their order and of the name columns' dtype."""
    key = np.zeros(len(frame), dtype=np.int64)
    for col in keys:
        s = frame[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes, uniques = s.cat.codes.to_numpy().astype(np.int64), s.cat.categories
        else:
            codes, uniques = pd.factorize(s)
        uniques = np.asarray([str(u) for u in uniques], dtype=object)
        used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(uniques)))
        order = np.asarray(sorted(used, key=uniques.__getitem__), dtype=np.int64)
        rank = np.full(len(uniques) + 1, -1, dtype=np.int64)  # the extra slot maps code -1 (missing)
        rank[order] = np.arange(len(order))
        h.update(json.dumps([col, uniques[order].tolist()]).encode())
        key = key * (len(order) + 1) + rank[codes] + 1
    values = frame[value].to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 -> 0.0
    order = _stable_order(key)
    if (key[order][1:] == key[order][:-1]).any():  # repeated keys (not in a validated zoo): order by value too
        order = np.lexsort((values, key))
    h.update(key[order].tobytes())
    h.update(values[order].tobytes())


def _to_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")
