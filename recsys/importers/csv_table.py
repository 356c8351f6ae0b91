"""Fine-tuning results from a run table: one row per run, exported from Weights & Biases, a spreadsheet or pandas.

Columns are named as in the header. ``COLUMN.KEY`` reads ``KEY`` inside a column whose cells are objects:
JSON, or the Python dict reprs that ``pandas.DataFrame.to_csv`` writes for W&B's ``run.config`` /
``run.summary`` (read with :func:`ast.literal_eval`, which evaluates literals only, never code). A key
holding dots or slashes (W&B's ``eval/accuracy``) is looked up whole first, then as a path
(``config.model.name``). A column named ``State`` or ``state`` (W&B's export) keeps the rows whose state
is ``finished``; the others are skipped and counted. The separator is a comma, a semicolon or a tab,
whichever splits the header into the most columns.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Sequence

from ..errors import UsageError, closest
from ._core import (Collector, ImportReport, ImportSourceError, check_agg, check_meta_columns, check_out, finish,
                    metric_direction, missing)

log = logging.getLogger(__name__)

__all__ = ["from_csv", "MAX_CELL_BYTES"]

#: an object cell (JSON / dict repr) longer than this is not parsed (its keys read as missing)
MAX_CELL_BYTES = 1 << 20
_STATE_COLUMNS = ("State", "state")
_FINISHED = "finished"


def from_csv(file: str | os.PathLike, *, model: str, dataset: str, metric: str, model_meta: Sequence[str] = (),
             dataset_meta: Sequence[str] = (), agg: str = "max", out: str | os.PathLike | None = None,
             append: bool = False, name: str | None = None, return_report: bool = False,
             lower_is_better: bool | None = None):
    """A zoo of a run table.

    Parameters
    ----------
    file : path
        A CSV (or TSV) file with a header line, UTF-8.
    model, dataset, metric : str
        Columns (or ``COLUMN.KEY`` inside an object column) of the pretrained model, the dataset and the
        accuracy; values above 1 and at most 100, or written with ``%``, are percentages.
    model_meta, dataset_meta : sequence of str
        Columns carried into ``models.csv`` / ``datasets.csv`` (named after the key for ``COLUMN.KEY``).
    agg : {"max", "last", "mean"}
        How several rows of one (model, dataset) become one record (``last``: the lowest in the file).
    lower_is_better : bool, optional
        The metric is an error rate (in [0, 1] or percent; lower is better): each value recorded as
        1 - value. Default: higher is better, but a metric whose name reads as a loss or an error rate
        (``eval_loss``, ``wer``, ``top1_err``) is refused until this says which
        (:func:`~recsys.importers._core.metric_direction`).
    out, append, name, return_report
        As in :func:`~recsys.importers.from_mlflow`.

    Returns
    -------
    Zoo or (Zoo, ImportReport)

    Raises
    ------
    UsageError
        A column that is not in the file (exit status 2).
    ImportSourceError
        A file that cannot be read as CSV, or no row with a usable result.

    Examples
    --------
    >>> zoo = from_csv("wandb_export.csv", model="config._name_or_path", dataset="config.dataset_name",
    ...                metric="summary.eval/accuracy", out="zoo")          # doctest: +SKIP
    """
    check_agg(agg)
    lower = metric_direction(str(metric), lower_is_better)
    if out is not None:
        check_out(out, append)  # before reading: a refusal should not wait for the whole source
    path = Path(file).expanduser()
    header, rows = _read_table(path)
    table = _Table(header, rows, str(file))
    m_cols = [table.column_name(c) for c in model_meta]
    d_cols = [table.column_name(c) for c in dataset_meta]
    check_meta_columns(m_cols, d_cols)
    models = table.values(model, "--model")
    datasets = table.values(dataset, "--dataset")
    values = table.values(metric, "--metric")
    metas = {c: table.values(spec, f"--{side}-meta") for side, cols, specs in
             (("model", m_cols, model_meta), ("dataset", d_cols, dataset_meta)) for c, spec in zip(cols, specs)}
    state = next((c for c in _STATE_COLUMNS if c in table.index), None)
    states = table.values(state, "state") if state else None
    report = ImportReport(source=str(file), unit="row", metric=str(metric), agg=agg, lower_is_better=lower)
    collector = Collector(report, m_cols, d_cols)
    report.read = len(rows)
    if state:
        report.notes.append(f"column {state!r}: rows whose state is not {_FINISHED!r} are skipped")
    for i in range(len(rows)):
        label = f"row {i + 1}"
        if states is not None and str(states[i] or "").strip().lower() != _FINISHED:
            collector.skip(f"whose {state} is not {_FINISHED} ({str(states[i] or '').strip() or 'empty'})", label)
            continue
        if missing(models[i]):
            collector.skip(f"without {model}", label)
            continue
        if missing(datasets[i]):
            collector.skip(f"without {dataset}", label)
            continue
        if missing(values[i]):
            collector.skip(f"without {metric}", label)
            continue
        collector.add(models[i], datasets[i], values[i], example=label, order=i,
                      meta={c: v[i] for c, v in metas.items()}, model_key=model, dataset_key=dataset)
    return finish(collector, out=out, append=append, name=name, return_report=return_report)


def _read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ImportSourceError(f"give a CSV file with one row per run: run table {str(path)!r} {what}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportSourceError(f"save {str(path)!r} as UTF-8 CSV: it is not UTF-8 text ({exc.reason} at byte "
                                f"{exc.start})") from None
    except OSError as exc:
        raise ImportSourceError(f"check the permissions of {str(path)!r}: it cannot be read "
                                f"({exc.strerror or exc})") from None
    if "\x00" in text:
        raise ImportSourceError(f"give a CSV file: {str(path)!r} holds NUL bytes, not a text table")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else \
        max((",", ";", "\t"), key=lambda d: (len(next(csv.reader([first], delimiter=d), [])), d == ","))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise ImportSourceError(f"quote values holding the separator or quotes: {path.name} line "
                                f"{reader.line_num} is not valid CSV ({exc})") from None
    if not rows:
        raise ImportSourceError(f"give a run table with a header line and one row per run: {str(path)!r} is "
                                f"empty")
    header = [h.strip() for h in rows[0]]
    body = []
    for row in rows[1:]:
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        body.append(row[:len(header)])
    return header, body


class _Table:
    """Columns of a run table, and keys inside its object columns, by name."""

    def __init__(self, header: list[str], rows: list[list[str]], shown: str):
        self.index = {}
        for j, h in enumerate(header):
            self.index.setdefault(h, j)  # a repeated header name: the first column
        self.rows, self.shown = rows, shown
        self._objects: dict[int, list] = {}

    def column_name(self, spec: str) -> str:
        """The name a column (or ``COLUMN.KEY``) takes in models.csv / datasets.csv."""
        spec = str(spec).strip()
        if spec in self.index:
            return spec
        col, key = self._split(spec, "--model-meta / --dataset-meta")
        return key

    def values(self, spec: str, option: str) -> list:
        spec = str(spec).strip()
        if spec in self.index:
            j = self.index[spec]
            return [row[j] for row in self.rows]
        col, key = self._split(spec, option)
        objects = self._parsed(self.index[col])
        return [_lookup(obj, key) for obj in objects]

    def _split(self, spec: str, option: str) -> tuple[str, str]:
        for i, ch in enumerate(spec):
            if ch == "." and spec[:i] in self.index and spec[i + 1:]:
                return spec[:i], spec[i + 1:]
        near = closest(spec, self.index)
        hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
        shown = ", ".join(repr(c) for c in list(self.index)[:10]) + (" ..." if len(self.index) > 10 else "")
        raise UsageError(f"give {option} a column of {self.shown} ({shown}; COLUMN.KEY reads KEY inside a column "
                         f"of JSON objects): no column {spec!r}{hint}")

    def _parsed(self, j: int) -> list:
        if j not in self._objects:
            self._objects[j] = [_parse_object(row[j]) for row in self.rows]
        return self._objects[j]


def _parse_object(cell: str):
    """A JSON object, or the repr of a Python dict (pandas' to_csv of W&B's config/summary); None otherwise."""
    text = cell.strip()
    if not text.startswith("{") or len(text) > MAX_CELL_BYTES:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        try:
            obj = ast.literal_eval(text)  # literals only: never runs code
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return obj if isinstance(obj, dict) else None


def _lookup(obj, key: str):
    if not isinstance(obj, dict):
        return None
    if key in obj:
        return _scalar(obj[key])
    cur = obj
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return _scalar(cur)


def _scalar(v):
    """W&B writes some summary values as objects ({'min': ..., 'max': ...}): those are not one value."""
    if isinstance(v, (dict, list)):
        return None
    return v
