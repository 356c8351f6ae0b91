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
parse as numbers is numeric.

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
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import ZooError, closest
from .fileio import write_atomic

__all__ = ["Roles", "Zoo", "load_zoo", "infer_roles", "ZOO_FILES"]

log = logging.getLogger(__name__)

ZOO_FILES = ("models.csv", "datasets.csv", "records.csv", "scores.csv", "zoo.json")
_FORMAT_HINT = "the zoo format is described in data/README.md and `pydoc recsys.zoo`"
_ROLE_KEYS = ("id", "categorical", "numeric", "text", "log")
_ZOO_JSON_KEYS = ("name", "description", "models", "datasets")
#: metadata cells read as missing values (pandas' default NA strings)
NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
_LINES = "recsys_lines"  # DataFrame.attrs key: line number of each row in the file read
_SOURCE = "recsys_source"  # DataFrame.attrs key: the file a frame was read from by the fast reader


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
            if val is None:
                lists[key] = None
                continue
            if isinstance(val, str):
                val = [val]
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                raise ZooError(f"{where}.{key} must be a list of column names, got {val!r}")
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

    Numbers are numeric; strings are categorical when they repeat (few distinct
    values), text when they are long or mostly distinct (names, label lists).
    Columns with a single value carry no information and are skipped.

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


@dataclass
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
        roles = dict(roles or {})
        m_roles = Roles.from_json(roles["models"], where="zoo.json models", default_id="model") \
            if roles.get("models") is not None else None
        d_roles = Roles.from_json(roles["datasets"], where="zoo.json datasets", default_id="dataset") \
            if roles.get("datasets") is not None else None
        models, m_lines = _index_table(models, "models.csv", "model", m_roles.id if m_roles else "model")
        datasets, d_lines = _index_table(datasets, "datasets.csv", "dataset", d_roles.id if d_roles else "dataset")
        m_roles = replace(m_roles, id="model") if m_roles else infer_roles(models.reset_index(), "model")
        d_roles = replace(d_roles, id="dataset") if d_roles else infer_roles(datasets.reset_index(), "dataset")
        _check_role_columns(m_roles, models, "models.csv", m_lines)
        _check_role_columns(d_roles, datasets, "datasets.csv", d_lines)
        records = _validate_records(records, models.index, datasets.index)
        scores = _validate_scores(scores, models.index, datasets.index)
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
    ``records.csv`` and ``scores.csv`` are parsed by pandas' C reader, names kept as
    categoricals, and validated with array operations (10 M records: about 20 s and
    1 GB). A file that reader cannot be shown to read exactly as the line-by-line
    reader does (quoted values, other line widths, a value that fails a check ...)
    is read line by line, which reports problems with their line numbers but takes
    minutes for millions of rows.

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
        if not path.is_dir():
            raise ZooError(f"zoo directory {str(path)!r} does not exist; give a directory with "
                           f"models.csv, datasets.csv and records.csv, or a named zoo (domainnet-270, transfergraph-image, vtab-hf, parc-71)")
        meta = _read_zoo_json(path / "zoo.json")
        models = _read_csv(path / "models.csv")
        datasets = _read_csv(path / "datasets.csv")
        records = _read_table(path / "records.csv", ("model", "dataset"), ("accuracy",))
        scores = _read_table(path / "scores.csv", ("model", "dataset", "metric"), ("score",)) \
            if (path / "scores.csv").exists() else None
    except OSError as exc:  # a folder without permission (listing or entering it)
        raise ZooError(f"cannot read zoo directory {str(path)!r} ({exc.strerror or exc}); check its "
                       f"permissions") from None
    zoo_name = name or meta.get("name") or path.resolve().name
    return Zoo.from_frames(models, datasets, records, scores, name=str(zoo_name),
                           roles={k: meta.get(k) for k in ("models", "datasets")}, path=path)


# ---------------------------------------------------------------------------
# reading


def _read_zoo_json(file: Path) -> dict:
    if not file.exists():
        return {}
    try:
        meta = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ZooError(f"{file} is not valid JSON ({exc}); fix it, or delete it to infer the column roles") from None
    except RecursionError:
        raise ZooError(f"{file} is nested too deeply to be a zoo.json; it holds a name and two objects of column "
                       f"roles ({_FORMAT_HINT})") from None
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


def _read_csv(file: Path) -> pd.DataFrame:
    """A zoo CSV file as a frame of stripped strings; ``attrs`` keep each row's line number.

    Blank lines are skipped, a UTF-8 BOM and whitespace around header names and
    cells removed; columns with an empty header are dropped. Types are decided
    later, by the validation, so ids such as ``007`` or ``NA`` stay as written.
    """
    if not file.is_file():
        raise ZooError(f"zoo directory {str(file.parent)!r} has no {file.name}; a zoo needs models.csv, "
                       f"datasets.csv and records.csv ({_FORMAT_HINT})")
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1
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
                raise ZooError(f"{file.name} line {start}: not valid CSV ({exc}); quote values holding commas or "
                               f"quotes, e.g. \"convnext, tiny\", and double the quotes inside them") from None
    except UnicodeDecodeError as exc:
        raise ZooError(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 CSV") from None
    except OSError as exc:
        raise ZooError(f"cannot read {file} ({exc.strerror or exc}); check the file's permissions") from None
    if not rows:
        raise ZooError(f"{file} is empty; it needs a header line ({_FORMAT_HINT})")
    header = [h.strip().lstrip("\ufeff").strip() for h in rows[0]]
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        sep = "semicolons" if ";" in header[0] else "tabs"
        raise ZooError(f"{file.name} line {lines[0]}: the header {header[0]!r} uses {sep}; zoo files are "
                       f"comma-separated, save it as CSV with commas")
    named = [h for h in header if h]
    dups = sorted({h for h in named if named.count(h) > 1})
    if dups:
        raise ZooError(f"{file.name} line {lines[0]}: the header names column(s) {dups} more than once; "
                       f"give each column a unique name")
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
    keep = [j for j, h in enumerate(header) if h]
    if len(keep) < width:
        log.info("%s: ignoring %d column(s) without a header name", file, width - len(keep))
    df = pd.DataFrame([[r[j] for j in keep] for r in body], columns=[header[j] for j in keep], dtype=object)
    if not keep:
        df = pd.DataFrame(index=range(len(body)))
    df.attrs[_LINES] = np.asarray(lines[1:], dtype=np.int64)  # pandas deep-copies attrs: an array copies fast
    return df


# ---------------------------------------------------------------------------
# the fast path for big files (records.csv, scores.csv)
#
# _read_csv builds a Python list of strings per row: 10 M records take minutes and
# gigabytes. _read_fast parses with pandas' C reader, name columns as categoricals (codes +
# distinct names), numbers as float64; _validate_*_fast check on the distinct names and on
# codes. Neither ever raises a ZooError: on anything they cannot prove they handle exactly
# as the careful path does (quotes, bare CR, NUL, rows of another width, a blank first
# line, odd headers, non-numbers, unknown names, conflicting duplicates ...) they return
# None and the careful path runs, so every message (file, line) stays what it was.

_FAST_BLOCK = 1 << 24  # bytes per block of the pre-scan
_FAST_CHUNK = 1 << 21  # rows per chunk of the C reader (bounds its token buffers)


def _read_table(file: Path, names: tuple[str, ...], numbers: tuple[str, ...]) -> pd.DataFrame:
    """A records/scores file: the fast reader when it applies, else :func:`_read_csv`."""
    frame = _read_fast(file, names, numbers)
    return frame if frame is not None else _read_csv(file)


def _read_fast(file: Path, names: tuple[str, ...], numbers: tuple[str, ...]) -> pd.DataFrame | None:
    """``names`` columns as categoricals and ``numbers`` as float64, or None (use :func:`_read_csv`).

    The frame holds only those columns, named as in the header; ``attrs`` name the
    file, so that a validation that fails can re-read it carefully for its message.
    """
    try:
        shape = _plain_csv_shape(file)
        if shape is None:
            return None
        header, n_rows = shape
        pos = {h: j for j, h in enumerate(header) if h}
        if n_rows == 0 or any(c not in pos for c in (*names, *numbers)):
            return None
        dtype = {pos[c]: "category" for c in names}
        dtype.update({pos[c]: np.float64 for c in numbers})
        codes: dict[str, list[np.ndarray]] = {c: [] for c in names}
        tables: dict[str, dict[str, int]] = {c: {} for c in names}
        values: dict[str, list[np.ndarray]] = {c: [] for c in numbers}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any parser warning: let the careful reader decide
            reader = pd.read_csv(file, sep=",", header=None, skiprows=1, names=list(range(len(header))),
                                 usecols=sorted(dtype), dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE,
                                 engine="c", encoding="utf-8", index_col=False, skip_blank_lines=True,
                                 chunksize=_FAST_CHUNK, low_memory=False)  # one pass per chunk
            with reader:
                for chunk in reader:
                    for c in names:
                        # Each chunk has its own categories: merge them in a dict (pandas'
                        # union_categoricals over chunks took half the read time).
                        col = chunk[pos[c]]
                        cats, table = col.cat.categories, tables[c]
                        if len(cats) and cats.inferred_type != "string":
                            log.debug("%s: careful reader (column %r holds ids that look like numbers)", file.name, c)
                            return None  # ids stay as written: 007 must not become 7.0
                        remap = np.fromiter((table.setdefault(x, len(table)) for x in cats), np.int32, len(cats))
                        chunk_codes = col.cat.codes.to_numpy()
                        if (chunk_codes < 0).any():
                            return None
                        codes[c].append(remap[chunk_codes])
                    for c in numbers:
                        values[c].append(chunk[pos[c]].to_numpy(dtype=np.float64))
    except Exception as exc:  # noqa: BLE001 - whatever it is, the careful reader reports it properly
        log.debug("%s: careful reader (%s: %s)", file.name, type(exc).__name__, exc)
        return None
    columns = {c: pd.Categorical.from_codes(np.concatenate(codes[c]),
                                            categories=pd.Index(list(tables[c]), dtype=object)) for c in names}
    columns.update({c: np.concatenate(values[c]) for c in numbers})
    df = pd.DataFrame({c: columns[c] for c in header if c in columns})
    if len(df) != n_rows:
        log.debug("%s: careful reader (%d rows parsed, %d expected)", file.name, len(df), n_rows)
        return None
    df.attrs[_SOURCE] = str(file)
    return df


def _plain_csv_shape(file: Path) -> tuple[list[str], int] | None:
    """(header names, number of data rows) of a CSV file that the C reader reads as csv.reader does.

    That is: UTF-8, no quote character, no NUL, no bare CR, a non-blank first line, and
    every other line either blank (whitespace only) or with exactly as many fields as the
    header (commas counted per line, which is exact without quotes). None otherwise.
    """
    header: list[str] | None = None
    rows = 0
    rest = b""
    with open(file, "rb") as fh:
        while True:
            block = fh.read(_FAST_BLOCK)
            data = rest + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            part, rest = data[:cut], data[cut:]
            if b'"' in part or b"\x00" in part or part.count(b"\r") != part.count(b"\r\n"):
                return None
            if header is None and part:
                end = part.find(b"\n")
                first = part[:end if end >= 0 else len(part)].decode("utf-8-sig").rstrip("\r")
                header = [h.strip().lstrip("\ufeff").strip() for h in first.split(",")]
                named = [h for h in header if h]
                if not named or len(set(named)) < len(named):
                    return None
                part = part[end + 1:] if end >= 0 else b""
            if part:
                n = _count_rows(part, len(header) - 1)
                if n is None:
                    return None
                rows += n
            if not block:
                break
    return (header, rows) if header is not None else None


def _count_rows(part: bytes, commas: int) -> int | None:
    """Lines of ``part`` with exactly ``commas`` commas; None if a line is neither that nor blank."""
    arr = np.frombuffer(part, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not len(ends) or ends[-1] != len(arr) - 1:  # the file's last line has no newline
        ends = np.append(ends, len(arr))
    per_line = np.diff(np.searchsorted(np.flatnonzero(arr == 44), ends), prepend=0)
    odd = np.flatnonzero(per_line != commas)
    if len(odd) > 1000:
        return None
    starts = np.concatenate([[0], ends[:-1] + 1])
    for i in odd:  # only blank lines may differ (e.g. the file's trailing empty line)
        if per_line[i] or part[starts[i]:ends[i]].strip():
            return None
    return len(ends) - len(odd)


def _fast_codes(col: pd.Series, valid: pd.Index | None) -> tuple[np.ndarray, pd.Index] | None:
    """Codes of a name column (stripped) against ``valid`` (or its own distinct names); None to decline."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes, uniques = col.cat.codes.to_numpy(), col.cat.categories
    elif pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype):
        codes, uniques = pd.factorize(col)
    else:
        return None
    uniques = list(uniques)
    if not len(codes) or (codes < 0).any() or not all(isinstance(u, str) for u in uniques):
        return None  # missing names, or ids that are numbers: _name() decides how they read
    stripped = [u.strip() for u in uniques]
    if not all(stripped):
        return None
    if valid is None:
        inverse, valid = pd.factorize(pd.Index(stripped, dtype=object))
        return inverse[codes], valid
    where = valid.get_indexer(stripped)
    if (where < 0).any():
        return None  # an unknown name: the careful path says which, with a did-you-mean
    return where[codes], valid


def _fast_numbers(col: pd.Series) -> np.ndarray | None:
    if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        return None
    values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    return values if np.isfinite(values).all() else None


def _fast_columns(frame: pd.DataFrame, required: tuple[str, ...]) -> dict[str, str] | None:
    cols = {str(c).strip(): c for c in frame.columns}
    if len(cols) != len(frame.columns) or any(c not in cols for c in required):
        return None
    return cols


def _stable_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for keys >= 0, about 5x faster on millions of rows.

    Sorting ``key * n + row`` with np.sort (SIMD) and taking ``% n`` gives the permutation.
    """
    n = len(key)
    if n and int(key.max()) < (1 << 62) // n:
        return np.sort(key * n + np.arange(n, dtype=np.int64)) % n
    return np.argsort(key, kind="stable")


def _first_of_duplicates(key: np.ndarray, values: np.ndarray) -> np.ndarray | None:
    """Rows to keep: the first of each key; None when two rows of a key hold different values."""
    keep = np.ones(len(key), dtype=bool)
    ks = np.sort(key)
    if not (ks[1:] == ks[:-1]).any():  # the usual case, settled by one sort
        return keep
    order = _stable_order(key)  # equal keys keep their file order
    ks = key[order]
    same = ks[1:] == ks[:-1]
    if same.any():
        vs = values[order]
        if (vs[1:][same] != vs[:-1][same]).any():
            return None
        keep[order[1:][same]] = False
    return keep


def _validate_records_fast(records: pd.DataFrame, models: pd.Index, datasets: pd.Index) -> pd.DataFrame | None:
    """:func:`_validate_records` for records that pass every check, vectorized; None otherwise."""
    cols = _fast_columns(records, ("model", "dataset", "accuracy"))
    if cols is None or not len(records):
        return None
    m = _fast_codes(records[cols["model"]], models)
    d = _fast_codes(records[cols["dataset"]], datasets) if m is not None else None
    acc = _fast_numbers(records[cols["accuracy"]]) if d is not None else None
    if acc is None or ((acc < 0) | (acc > 1)).any():
        return None
    m, d = m[0].astype(np.int64), d[0].astype(np.int64)
    keep = _first_of_duplicates(d * len(models) + m, acc)
    if keep is None:
        return None
    if not keep.all():
        log.info("records.csv: dropped %d exact duplicate row(s)", int((~keep).sum()))
        m, d, acc = m[keep], d[keep], acc[keep]
    return pd.DataFrame({"model": pd.Categorical.from_codes(m, dtype=pd.CategoricalDtype(models)),
                         "dataset": pd.Categorical.from_codes(d, dtype=pd.CategoricalDtype(datasets)),
                         "accuracy": acc})


def _validate_scores_fast(scores: pd.DataFrame, models: pd.Index, datasets: pd.Index) -> pd.DataFrame | None:
    """:func:`_validate_scores` for scores that pass every check, vectorized; None otherwise."""
    cols = _fast_columns(scores, ("model", "dataset", "metric", "score"))
    if cols is None or not len(scores):
        return None
    m = _fast_codes(scores[cols["model"]], models)
    d = _fast_codes(scores[cols["dataset"]], datasets) if m is not None else None
    k = _fast_codes(scores[cols["metric"]], None) if d is not None else None
    val = _fast_numbers(scores[cols["score"]]) if k is not None else None
    if val is None:
        return None
    (m, _), (d, _), (k, metrics) = m, d, k
    keep = _first_of_duplicates((d.astype(np.int64) * len(models) + m) * len(metrics) + k, val)
    if keep is None:
        return None
    names = {c: pd.Series(np.asarray(ids, dtype=object)[codes[keep]], dtype=object)  # str objects, as _name_column
             for c, ids, codes in (("model", models, m), ("dataset", datasets, d), ("metric", metrics, k))}
    return pd.DataFrame({**names, "score": val[keep]})


def _careful_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame from the fast reader read again by :func:`_read_csv` (line numbers for messages)."""
    source = frame.attrs.get(_SOURCE)
    return _read_csv(Path(source)) if source else frame


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


# ---------------------------------------------------------------------------
# validation helpers


class _Where:
    """Names a row in messages: the file's line when read from a file, else the row number."""

    def __init__(self, df: pd.DataFrame, fname: str):
        lines = df.attrs.get(_LINES)
        self.lines = list(lines) if lines is not None and len(lines) == len(df) else None
        self.fname = fname

    def line(self, i: int) -> int:
        return self.lines[i] if self.lines is not None else i + 2

    def __call__(self, i: int) -> str:
        if self.lines is not None:
            return f"{self.fname} line {self.lines[i]}"
        return f"{self.fname} row {i + 1}"

    def many(self, rows: Iterable[int]) -> str:
        nums = [str(self.line(int(i))) if self.lines is not None else str(int(i) + 1) for i in rows]
        return f"{self.fname} {'lines' if self.lines is not None else 'rows'} {', '.join(nums)}"


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
    """An id as a stripped string, None when missing."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)  # 7.0 read by pandas from "7"
    s = str(v).strip()
    return s or None


def _normalize_column(s: pd.Series) -> pd.Series:
    """One metadata column: float64 when every value is a number, else str (NaN for missing).

    Frames read from CSV and frames built in Python go through here, so a zoo
    written and read back is identical.
    """
    if pd.api.types.is_bool_dtype(s):
        return pd.Series([np.nan if _is_na(v) else str(bool(v)) for v in s], index=s.index, dtype=object)
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(np.float64)
    values = [None if _is_na(v) else (v.strip() if isinstance(v, str) else v) for v in s.tolist()]
    present = [v for v in values if v is not None]
    if not present:
        return pd.Series(np.nan, index=s.index, dtype=np.float64)
    try:
        numeric = not pd.to_numeric(pd.Series(present, dtype=object), errors="coerce").isna().any()
    except (TypeError, ValueError):  # lists or dicts (from JSON) are not numbers
        numeric = False
    if numeric and not any(isinstance(v, bool) for v in present):
        return pd.to_numeric(pd.Series(values, index=s.index, dtype=object), errors="coerce").astype(np.float64)
    return pd.Series([np.nan if v is None else str(v) for v in values], index=s.index, dtype=object)


def _index_table(df: pd.DataFrame, fname: str, side: str, id_col: str) -> tuple[pd.DataFrame, _Where]:
    """Validate a metadata table; returns it indexed by ``side`` ('model' / 'dataset') with typed columns."""
    if not isinstance(df, pd.DataFrame):
        raise ZooError(f"{fname}: expected a table (pandas DataFrame), got {type(df).__name__}")
    where = _Where(df, fname)
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
    ids = [_name(v) for v in df[id_col].tolist()]
    if None in ids:
        i = ids.index(None)
        raise ZooError(f"{where(i)}: empty {side} id; every row needs a {id_col}")
    seen: dict[str, int] = {}
    for i, v in enumerate(ids):
        if v in seen:
            rows = [j for j, w in enumerate(ids) if w == v]
            raise ZooError(f"{fname} lists {side} {v!r} more than once ({where.many(rows)}); ids must be unique")
        seen[v] = i
    if not ids:
        raise ZooError(f"{fname} lists no {side}s; an empty zoo cannot be fitted ({_FORMAT_HINT})")
    out = pd.DataFrame({c: _normalize_column(df[c]) for c in df.columns if c != id_col}, index=df.index)
    out.index = pd.Index(ids, name=side, dtype=object)
    out.attrs = {}
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
            raise ZooError(f"{where(i)}: column {col!r} is numeric but holds {df[col].iloc[i]!r}; "
                           f"give a number or leave the cell empty")
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


def _require_columns(df: pd.DataFrame, fname: str, required: Iterable[str]) -> None:
    required = list(required)
    missing = [c for c in required if c not in df.columns]
    if missing:
        hints = [h for c in missing for h in closest(c, df.columns, n=1)]
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise ZooError(f"{fname} has no column(s) {missing}{hint}; required columns: {', '.join(required)} "
                       f"(found {list(df.columns)[:8]}); rename the header")


def _name_column(df: pd.DataFrame, col: str, where: _Where) -> pd.Series:
    names = [_name(v) for v in df[col].tolist()]
    if None in names:
        i = names.index(None)
        raise ZooError(f"{where(i)}: empty {col} name; every row needs a {col}")
    return pd.Series(names, index=df.index, dtype=object)


def _numeric_column(df: pd.DataFrame, col: str, where: _Where, what: str, accepted: str) -> np.ndarray:
    raw = df[col]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(dtype=float, na_value=np.nan)
        empty = np.isnan(values)
    else:
        cells = ["" if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v).strip()
                 for v in raw.tolist()]
        values = pd.to_numeric(pd.Series([c if c else None for c in cells], dtype=object),
                               errors="coerce").to_numpy(dtype=float)
        empty = np.array([c in NA_STRINGS for c in cells], dtype=bool)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        n_bad = int(bad.sum())
        more = f" ({n_bad} such rows)" if n_bad > 1 else ""
        if empty[i]:
            raise ZooError(f"{where(i)}: {what} is empty or NaN{more}; every row needs {accepted} "
                           f"(drop the row if the result is unknown)")
        cell = str(raw.iloc[i]).strip()
        if cell.endswith("%"):
            raise ZooError(f"{where(i)}: {what} {cell!r} is a percentage{more}; give {accepted}, "
                           f"e.g. 0.83 for 83%")
        if np.isinf(values[i]):
            raise ZooError(f"{where(i)}: {what} {cell!r} is infinite{more}; give {accepted}")
        raise ZooError(f"{where(i)}: {what} {cell!r} is not a number{more}; give {accepted}")
    return values


def _check_names(df: pd.DataFrame, where: _Where, col: str, valid: pd.Index, side_file: str) -> None:
    unknown = ~df[col].isin(valid)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        name = df[col].iloc[i]
        hint = closest(name, valid)
        hint = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
        n_bad = int(unknown.sum())
        more = f"; {n_bad} rows name unknown {col}s" if n_bad > 1 else ""
        raise ZooError(f"{where(i)} names {col} {name!r}, which is not in {side_file}{hint}{more}; "
                       f"fix the name or add it to {side_file}")


def _validate_records(records: pd.DataFrame, models: pd.Index, datasets: pd.Index) -> pd.DataFrame:
    fname = "records.csv"
    if not isinstance(records, pd.DataFrame):
        raise ZooError(f"{fname}: expected a table (pandas DataFrame), got {type(records).__name__}")
    fast = _validate_records_fast(records, models, datasets)
    if fast is not None:
        return fast
    records = _careful_frame(records)
    where = _Where(records, fname)
    records = records.rename(columns=lambda c: str(c).strip())
    _require_columns(records, fname, ("model", "dataset", "accuracy"))
    df = pd.DataFrame({"model": _name_column(records, "model", where),
                       "dataset": _name_column(records, "dataset", where)})
    acc = _numeric_column(records, "accuracy", where, "accuracy", "a fraction in [0, 1]")
    out = (acc < 0) | (acc > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        n_out = int(out.sum())
        more = f" ({n_out} rows are outside)" if n_out > 1 else ""
        pct = ""
        if acc.min() >= 0 and acc.max() <= 100:
            pct = "; if they are percentages, divide them by 100"
        raise ZooError(f"{where(i)}: accuracy {acc[i]:g} is outside [0, 1]{more}; accuracies are fractions "
                       f"(0.83, not 83) and recsys never rescales them{pct}")
    df["accuracy"] = acc
    _check_names(df, where, "model", models, "models.csv")
    _check_names(df, where, "dataset", datasets, "datasets.csv")
    dup = df.duplicated(["model", "dataset"], keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        sub = df.iloc[rows]
        for (m, d), g in sub.groupby(["model", "dataset"], sort=False):
            if g["accuracy"].nunique() > 1:
                pos = [int(rows[k]) for k in np.flatnonzero(((sub["model"] == m) & (sub["dataset"] == d)).to_numpy())]
                vals = ", ".join(f"{v:g}" for v in g["accuracy"].head(4))
                raise ZooError(f"{where.many(pos[:4])} give different accuracies ({vals}) for model {m!r} on "
                               f"dataset {d!r}; keep one record per pair (average them yourself if intended)")
        n_drop = int(df.duplicated(["model", "dataset"]).sum())
        log.info("records.csv: dropped %d exact duplicate row(s)", n_drop)
        df = df.drop_duplicates(["model", "dataset"], keep="first")
    if len(df) == 0:
        raise ZooError(f"{fname} holds no records; recsys learns from fine-tuning results: add rows "
                       f"'model,dataset,accuracy' ({_FORMAT_HINT})")
    df = df.reset_index(drop=True)
    df["model"] = pd.Categorical(df["model"], dtype=pd.CategoricalDtype(models))
    df["dataset"] = pd.Categorical(df["dataset"], dtype=pd.CategoricalDtype(datasets))
    return df


def _validate_scores(scores: pd.DataFrame | None, models: pd.Index, datasets: pd.Index) -> pd.DataFrame:
    if scores is None:
        return _empty_scores()
    fname = "scores.csv"
    if not isinstance(scores, pd.DataFrame):
        raise ZooError(f"{fname}: expected a table (pandas DataFrame), got {type(scores).__name__}")
    fast = _validate_scores_fast(scores, models, datasets)
    if fast is not None:
        return fast
    scores = _careful_frame(scores)
    where = _Where(scores, fname)
    scores = scores.rename(columns=lambda c: str(c).strip())
    _require_columns(scores, fname, ("model", "dataset", "metric", "score"))
    if len(scores) == 0:
        return _empty_scores()
    df = pd.DataFrame({c: _name_column(scores, c, where) for c in ("model", "dataset", "metric")})
    df["score"] = _numeric_column(scores, "score", where, "score", "a finite number")
    _check_names(df, where, "model", models, "models.csv")
    _check_names(df, where, "dataset", datasets, "datasets.csv")
    key = ["model", "dataset", "metric"]
    dup = df.duplicated(key, keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        sub = df.iloc[rows]
        for (m, d, metric), g in sub.groupby(key, sort=False):
            if g["score"].nunique() > 1:
                pos = [int(rows[k]) for k in np.flatnonzero(((sub["model"] == m) & (sub["dataset"] == d)
                                                             & (sub["metric"] == metric)).to_numpy())]
                raise ZooError(f"{where.many(pos[:4])} give different {metric} scores for model {m!r} on dataset "
                               f"{d!r}; keep one score per (model, dataset, metric) (average them if intended)")
        df = df.drop_duplicates(key)
    return df.reset_index(drop=True)
