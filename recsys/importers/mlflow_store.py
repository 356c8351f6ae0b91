"""Fine-tuning runs from an MLflow tracking store: a local ``mlruns`` folder, an SQLite file or a server.

One finished run is one fine-tuning result: the pretrained model it started from, the dataset it was
fine-tuned on and the metric it reached. The defaults read what the Hugging Face ``Trainer``'s MLflow
callback logs (``report_to="mlflow"``), checked by ``tests/test_import_mlflow.py`` on a real Trainer run:

- model: the param ``_name_or_path`` (the model config's: the checkpoint ``from_pretrained`` loaded,
  never the output directory), else ``model_name_or_path``, ``base_model``, ``model_name``, else the tag
  ``base_model``;
- dataset: the name of the run's MLflow dataset input (``mlflow.log_input``; a training input first),
  else the param ``dataset_name``, ``dataset`` or ``task_name``, the tag ``dataset_name`` or ``dataset``,
  else the experiment's name (``MLFLOW_EXPERIMENT_NAME``; not the experiment ``Default``);
- metric: ``eval_accuracy`` (what ``Trainer.evaluate`` logs when ``compute_metrics`` returns
  ``accuracy``), the run's latest value.

Keys address ``params.NAME``, ``tags.NAME``, ``metrics.NAME``, ``run_name``, ``experiment_name`` and
``inputs.dataset`` (MLflow's search syntax: ``param.``, ``tag.``, ``metric.``, ``attributes.run_name`` are
accepted too). The documentation is ``docs/importing.md``.

Stores are read with the official client (``pip install 'recsys[mlflow]'``); an SQLite store whose schema
is MLflow's is read with SQL directly by default (read-only, only the keys asked for: 100,000 runs in
seconds where the client takes minutes), and the tests check that both readers give the same zoo.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sqlite3
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..errors import UsageError, closest
from ._core import (Collector, ImportReport, ImportSourceError, check_agg, check_meta_columns, check_out, finish,
                    meta_column, metric_direction, missing)

log = logging.getLogger(__name__)

__all__ = ["from_mlflow", "DEFAULT_METRIC", "DEFAULT_MODEL_KEYS", "DEFAULT_DATASET_KEYS", "INSTALL_HINT"]

DEFAULT_METRIC = "eval_accuracy"
DEFAULT_MODEL_KEYS = ("params._name_or_path", "params.model_name_or_path", "params.base_model", "params.model_name",
                      "tags.base_model")
DEFAULT_DATASET_KEYS = ("inputs.dataset", "params.dataset_name", "params.dataset", "params.task_name",
                        "tags.dataset_name", "tags.dataset", "experiment_name")
INSTALL_HINT = "pip install 'recsys[mlflow]' (or pip install mlflow)"
#: MLflow's HTTP client settings while importing, unless the environment sets them: an unreachable or
#: failing server is reported within seconds instead of after MLflow's default 7 retries (minutes)
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
PROBE_SECONDS = 5.0
PAGE = {"http": 1000, "local": 1000}  # runs per search_runs page (servers cap pages; local stores do not)
_PREFIXES = {"params": "params", "param": "params", "parameter": "params", "parameters": "params",
             "tags": "tags", "tag": "tags", "metrics": "metrics", "metric": "metrics"}
_SPECIAL = {"run_name": "run_name", "attributes.run_name": "run_name", "attribute.run_name": "run_name",
            "attr.run_name": "run_name", "run.run_name": "run_name", "experiment_name": "experiment_name",
            "experiment": "experiment_name", "inputs.dataset": "inputs.dataset", "dataset_input": "inputs.dataset"}
_KEY_FORMS = "params.NAME, tags.NAME, metrics.NAME, run_name, experiment_name or inputs.dataset"
_TRAIN = "train"  # the value of the tag mlflow.data.context that marks a training input
_DEFAULT_EXPERIMENT = "Default"


@dataclass(frozen=True)
class Key:
    """Where a value of a run is read: ``kind`` is params, tags, metrics, run_name, experiment_name or
    inputs.dataset; ``name`` the param/tag/metric name."""

    kind: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}" if self.name else self.kind


def parse_key(text: str, option: str = "key") -> Key:
    """A key as written on the command line (``params.model_name``, ``run_name`` ...).

    Raises
    ------
    UsageError
        For anything else, with the accepted forms (exit status 2).
    """
    raw = str(text).strip()
    if raw.lower() in _SPECIAL:
        return Key(_SPECIAL[raw.lower()])
    prefix, dot, rest = raw.partition(".")
    rest = rest.strip()
    if len(rest) > 1 and rest[0] == rest[-1] == "`":  # MLflow's quoting of names with dots or spaces
        rest = rest[1:-1]
    if dot and prefix.lower() in _PREFIXES and rest:
        return Key(_PREFIXES[prefix.lower()], rest)
    hint = f"; did you mean params.{raw}?" if raw and not dot else ""
    raise UsageError(f"give {option} {_KEY_FORMS}{hint}: {raw!r} is not a key of a run")


def _keys(given, default: Sequence[str], option: str) -> list[Key]:
    if given is None or (not isinstance(given, str) and not list(given)):
        given = default
    if isinstance(given, str):
        given = [given]
    return [parse_key(k, option) for k in given]


def _metric_key(metric: str) -> Key:
    key = parse_key(metric, "--metric") if "." in metric and metric.split(".", 1)[0].lower() in _PREFIXES \
        else Key("metrics", str(metric).strip())
    if key.kind != "metrics" or not key.name:
        raise UsageError(f"give --metric the name of a metric the runs log, e.g. eval_accuracy: {metric!r} names a "
                         f"{key.kind} key")
    return key


# ---------------------------------------------------------------------------
# the public function


def from_mlflow(tracking_uri: str | os.PathLike, *, experiments: Sequence[str] | None = None,
                model_key: str | Sequence[str] | None = None, dataset_key: str | Sequence[str] | None = None,
                metric: str = DEFAULT_METRIC, agg: str = "max", model_meta: Sequence[str] = (),
                dataset_meta: Sequence[str] = (), out: str | os.PathLike | None = None, append: bool = False,
                name: str | None = None, reader: str = "auto", return_report: bool = False,
                lower_is_better: bool | None = None):
    # (over 80 lines by its docstring: 14 parameters, each documented; the body is 54 lines)
    """A zoo of the fine-tuning runs of an MLflow tracking store.

    Parameters
    ----------
    tracking_uri : str or path-like
        ``file:///path/mlruns``, ``file:./mlruns`` or a plain path to an ``mlruns`` folder (read without
        ``MLFLOW_ALLOW_FILE_STORE``), ``sqlite:///path/mlflow.db`` (or a plain path to the file), or
        ``http(s)://host:port`` of a tracking server. Other URIs the MLflow client understands
        (``postgresql://`` ...) are passed to it.
    experiments : sequence of str, optional
        Names of the experiments to read; default every active experiment.
    model_key, dataset_key : str or sequence of str, optional
        Where a run's model / dataset name is read (the first key a run has wins); default
        :data:`DEFAULT_MODEL_KEYS` / :data:`DEFAULT_DATASET_KEYS`.
    metric : str
        The metric read as accuracy (its latest value in each run); default ``eval_accuracy``. Values above
        1 and at most 100 are percentages and divided by 100.
    agg : {"max", "last", "mean"}
        How several runs of one (model, dataset) become one record: the best, the latest (by start time),
        or their mean.
    lower_is_better : bool, optional
        The metric is an error rate (in [0, 1] or percent; lower is better): each value recorded as
        1 - value. Default: higher is better, but a metric whose name reads as a loss or an error rate
        (``eval_loss``, ``wer``, ``top1_err``) is refused until this says which
        (:func:`~recsys.importers._core.metric_direction`).
    model_meta, dataset_meta : sequence of str
        Keys carried into ``models.csv`` / ``datasets.csv`` (e.g. ``params.num_parameters``), one column
        each named after the key without its prefix; numeric when every value is a number.
    out : str or path-like, optional
        Zoo directory to write (refused when it holds a zoo, unless ``append``).
    append : bool
        Merge into the zoo in ``out``: new records added, a pair it already holds with another accuracy
        resolved by ``agg`` (the zoo's record counts as one run); the files are replaced only once the
        merged zoo is valid and written.
    name : str, optional
        Name of the zoo; default the name of ``out``.
    reader : {"auto", "client", "sql"}
        ``auto``: SQL for an SQLite store with MLflow's schema, the MLflow client otherwise.
    return_report : bool
        Also return the :class:`~recsys.importers.ImportReport` (what was read, skipped and why).

    Returns
    -------
    Zoo or (Zoo, ImportReport)
        Validated; written to ``out`` when given.

    Raises
    ------
    UsageError
        A malformed key, an unknown experiment, ``out`` holding a zoo without ``append`` (exit status 2).
    ImportSourceError
        A store that cannot be read (missing, corrupted, unreachable), the client missing, no record.

    Examples
    --------
    >>> zoo = from_mlflow("sqlite:///mlflow.db", out="zoo")       # doctest: +SKIP
    >>> zoo = from_mlflow("mlruns", metric="eval_f1", agg="mean",
    ...                   model_meta=["params.num_parameters"])   # doctest: +SKIP
    """
    check_agg(agg)
    if reader not in ("auto", "client", "sql"):
        raise UsageError(f"give reader one of auto, client, sql: got {reader!r}")
    model_keys = _keys(model_key, DEFAULT_MODEL_KEYS, "--model-key")
    dataset_keys = _keys(dataset_key, DEFAULT_DATASET_KEYS, "--dataset-key")
    mkey = _metric_key(metric)
    lower = metric_direction(mkey.name, lower_is_better)
    m_meta = [parse_key(k, "--model-meta") for k in model_meta]
    d_meta = [parse_key(k, "--dataset-meta") for k in dataset_meta]
    m_cols, d_cols = [meta_column(str(k)) for k in m_meta], [meta_column(str(k)) for k in d_meta]
    check_meta_columns(m_cols, d_cols)
    if out is not None:
        check_out(out, append)  # before reading: a refusal should not wait for the whole source
    store = locate(tracking_uri)
    report = ImportReport(source=store.shown, unit="run", metric=mkey.name, agg=agg, lower_is_better=lower)
    collector = Collector(report, m_cols, d_cols)
    wanted = list(dict.fromkeys([*model_keys, *dataset_keys, mkey, *m_meta, *d_meta]))
    exps, runs = read_runs(store, wanted, experiments, reader)
    report.read = len(runs)
    chosen = f"{len(exps)} experiment{'' if len(exps) == 1 else 's'}" + ("" if experiments else " (all active)")
    report.notes.append(f"{chosen}, read with the {store.reader_used}; accuracy: metric {mkey.name}")
    runs.sort(key=lambda run: (run["start"] if run["start"] is not None else -1, run["id"]))
    no_model = f"without a model name (none of {_or(model_keys)})"
    no_dataset = f"without a dataset name (none of {_or(dataset_keys)})"
    for run in runs:
        label = f"run {run['name']!r}" if run["name"] else f"run {run['id']}"
        if run["status"] != "FINISHED":
            collector.skip(f"not FINISHED ({run['status']})", label)
            continue
        values = run["values"]
        model, m_from = _first(values, model_keys)
        if model is None:
            collector.skip(no_model, label)
            continue
        dataset, d_from = _first(values, dataset_keys)
        if dataset is None:
            collector.skip(no_dataset, label)
            continue
        value = values.get(str(mkey))
        if value is None:
            collector.skip(f"without metric {mkey.name}", label)
            continue
        meta = {c: values.get(str(k)) for c, k in zip([*m_cols, *d_cols], [*m_meta, *d_meta])}
        collector.add(model, dataset, value, example=label, order=run["start"] or 0, meta=meta,
                      model_key=m_from, dataset_key=d_from)
    hint = ""
    if not report.used and report.skipped.get(f"without metric {mkey.name}"):
        seen = store.metric_names()
        if seen:
            near = closest(mkey.name, seen)
            hint = (f"choose the metric with --metric (the runs log {', '.join(seen[:8])}" +
                    (f"; did you mean {near[0]!r}?" if near else "") + ")")
    return finish(collector, out=out, append=append, name=name, return_report=return_report,
                  no_records_fix=hint)


def _or(keys: Sequence[Key]) -> str:
    names = [str(k) for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _first(values: dict, keys: Sequence[Key]) -> tuple[str | None, str | None]:
    for key in keys:
        v = values.get(str(key))
        if not missing(v):
            return v, str(key)
    return None, None


# ---------------------------------------------------------------------------
# where the store is


class Store:
    """A tracking store located from its URI: ``kind`` is file, sqlite, http or other."""

    def __init__(self, uri: str, kind: str, path: Path | None = None):
        self.uri, self.kind, self.path = uri, kind, path
        self.shown = uri
        self.reader_used = "MLflow client"
        self._metrics_seen = None

    def metric_names(self) -> list[str]:
        """Metric names the store's runs log, most frequent first (for a did-you-mean)."""
        if self._metrics_seen is not None:
            return self._metrics_seen
        if self.kind == "sqlite":
            try:
                with _readonly(self.path) as con:
                    rows = con.execute("SELECT key FROM latest_metrics GROUP BY key ORDER BY COUNT(*) DESC, key "
                                       "LIMIT 20").fetchall()
                return [r[0] for r in rows]
            except sqlite3.Error:
                return []
        return []


def locate(uri: str | os.PathLike) -> Store:
    """The store behind ``uri``, checked without writing anything (the MLflow client would create a missing
    SQLite file or mlruns folder)."""
    text = os.fspath(uri).strip() if not isinstance(uri, str) else uri.strip()
    if not text:
        raise UsageError("give --tracking-uri an mlruns folder, sqlite:///FILE.db or http://HOST:PORT: it is empty")
    low = text.lower()
    if low.startswith(("http://", "https://")):
        return Store(text, "http")
    if low.startswith("sqlite:"):
        if not low.startswith("sqlite:///") or low.startswith("sqlite:///:memory:"):
            raise ImportSourceError(f"write an SQLite store as sqlite:///relative/path.db or "
                                    f"sqlite:////absolute/path.db: tracking URI {text!r} is not")
        path = Path(urllib.parse.unquote(text[len("sqlite:///"):].split("?", 1)[0]))
        return _sqlite_store(text, path)
    if low.startswith("file:"):
        parsed = urllib.parse.urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise ImportSourceError(f"write a local folder as file:///path/to/mlruns: tracking URI {text!r} names host "
                                    f"{parsed.netloc!r}")
        return _file_store(text, Path(urllib.parse.unquote(parsed.path)))
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+:", text) and not re.match(r"^[a-zA-Z]:[\\/]", text):
        return Store(text, "other")  # postgresql://, mysql://, databricks ...: the client knows them
    path = Path(text).expanduser()
    if path.is_file():
        if _is_sqlite(path):
            return _sqlite_store(f"sqlite:///{path.resolve()}", path, shown=text)
        raise ImportSourceError(f"give an mlruns folder, sqlite:///FILE.db or http://HOST:PORT: {text!r} is a file "
                                f"but not an SQLite database")
    return _file_store(text, path)


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _sqlite_store(uri: str, path: Path, shown: str | None = None) -> Store:
    path = path.expanduser()
    if not path.exists():
        raise ImportSourceError(f"check the path (sqlite:///rel.db is relative to the current directory, "
                                f"sqlite:////abs/path.db absolute): no SQLite file at {str(path)!r} (from {uri!r})")
    if not path.is_file():
        raise ImportSourceError(f"give the store's .db file: {str(path)!r} is not a file")
    try:
        with _readonly(path) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise ImportSourceError(f"give an MLflow SQLite store (the file `mlflow server --backend-store-uri "
                                f"sqlite:///...` writes): {str(path)!r} is not a readable SQLite database "
                                f"({exc})") from None
    for table in ("experiments", "runs"):
        if table not in tables:
            raise ImportSourceError(f"give the MLflow store's file: {str(path)!r} is an SQLite database but not an "
                                    f"MLflow tracking store (no table {table!r})")
    store = Store(uri, "sqlite", path)
    store.shown = shown or uri
    return store


def _file_store(uri: str, path: Path) -> Store:
    path = path.expanduser()
    if not path.exists():
        raise ImportSourceError(f"give the folder MLflow wrote (it holds one numbered folder per experiment), "
                                f"sqlite:///FILE.db or http://HOST:PORT: no mlruns folder at {str(path)!r}")
    if not path.is_dir():
        raise ImportSourceError(f"give an mlruns folder: {str(path)!r} is not a folder")
    try:
        found = any((d / "meta.yaml").is_file() for d in path.iterdir() if d.is_dir() and d.name != ".trash")
    except OSError as exc:
        raise ImportSourceError(f"check the permissions of {str(path)!r}: it cannot be read "
                                f"({exc.strerror or exc})") from None
    if not found:
        inner = path / "mlruns"
        hint = f" (did you mean {str(inner)!r}?)" if inner.is_dir() else ""
        raise ImportSourceError(f"give the mlruns folder itself: {str(path)!r} holds no MLflow experiment (no "
                                f"EXPERIMENT/meta.yaml){hint}")
    return Store(path.resolve().as_uri(), "file", path)


@contextlib.contextmanager
def _readonly(path: Path) -> Iterator[sqlite3.Connection]:
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        yield con
    finally:
        con.close()


# ---------------------------------------------------------------------------
# reading runs


def read_runs(store: Store, keys: Sequence[Key], experiments: Sequence[str] | None, reader: str = "auto"):
    """``(experiments {id: name}, runs)`` of the active runs of the chosen experiments.

    Each run is a dict ``id, name, status, start, experiment, values`` (``values``: ``str(key)`` -> the
    run's value, absent when the run has none). Both readers give the same runs.
    """
    if reader == "sql" and store.kind != "sqlite":
        raise UsageError(f"use reader 'auto' or 'client': reader 'sql' reads SQLite stores only, and "
                         f"{store.shown!r} is a {store.kind} store")
    if store.kind == "sqlite" and reader in ("auto", "sql"):
        problem = _sql_schema_problem(store.path)
        if problem is None:
            store.reader_used = "SQL reader (read-only)"
            return _sql_runs(store, keys, experiments)
        if reader == "sql":
            raise ImportSourceError(f"use the MLflow client (reader='auto'): {store.shown!r}: {problem}")
        log.debug("%s: %s; reading with the MLflow client", store.shown, problem)
    return _client_runs(store, keys, experiments)


def _choose_experiments(available: dict[str, str], wanted: Sequence[str] | None, shown: str) -> dict[str, str]:
    """{id: name} of the experiments asked for (by name), all when ``wanted`` is None."""
    if not wanted:
        return dict(available)
    by_name = {n: i for i, n in available.items()}
    out = {}
    for name in wanted:
        if name in by_name:
            out[by_name[name]] = name
        elif str(name) in available:  # an experiment id
            out[str(name)] = available[str(name)]
        else:
            near = closest(name, by_name)
            hint = f"did you mean {', '.join(repr(n) for n in near)}? " if near else ""
            listed = ", ".join(repr(n) for n in sorted(by_name)[:8]) + (" ..." if len(by_name) > 8 else "")
            raise UsageError(f"give an active experiment of {shown} ({listed}): unknown experiment {name!r}"
                             f"{'; ' + hint.strip() if hint else ''}")
    return out


def _dataset_input(inputs: Iterable[tuple[str, str | None]]) -> str | None:
    """The dataset input a run trained on: ``(name, context)`` pairs; training inputs first, then inputs
    without a context, then the others; the smallest name among equals."""
    rank = {_TRAIN: 0, None: 1}
    best = None
    for name, context in inputs:
        if missing(name):
            continue
        cand = (rank.get(context, 2), name)
        if best is None or cand < best:
            best = cand
    return best[1] if best else None


# -- the MLflow client ------------------------------------------------------------------------------


def _mlflow():
    try:
        import mlflow  # noqa: F401
        from mlflow import MlflowClient
        from mlflow.entities import ViewType
    except ImportError as exc:
        raise ImportSourceError(f"install the MLflow client with {INSTALL_HINT}: reading an MLflow store needs it "
                                f"({exc})") from None
    return MlflowClient, ViewType


@contextlib.contextmanager
def _client_settings(store: Store):
    """MLflow set up for a read: short HTTP retries, the file store allowed, its INFO logs and warnings quiet."""
    env = dict(HTTP_SETTINGS) if store.kind in ("http", "other") else {}
    if store.kind == "file":
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses mlruns folders without it
    saved = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if saved[k] is None:  # the user's own settings win
            os.environ[k] = v
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _client_errors() -> tuple[type, ...]:
    errors: list[type] = [OSError]
    with contextlib.suppress(ImportError):
        from mlflow.exceptions import MlflowException

        errors.append(MlflowException)
    with contextlib.suppress(ImportError):
        import requests

        errors.append(requests.RequestException)
    with contextlib.suppress(ImportError):
        import sqlalchemy.exc

        errors.append(sqlalchemy.exc.SQLAlchemyError)
    return tuple(errors)


def _probe(store: Store) -> None:
    """Fail within seconds, with one line, when nothing answers at a server's address."""
    import requests

    url = store.uri.rstrip("/") + "/health"
    verify = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or \
        os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() not in ("true", "1")
    try:
        requests.get(url, timeout=PROBE_SECONDS, verify=verify)
    except requests.exceptions.SSLError:
        return  # reachable; the client reports the certificate problem with its own settings
    except requests.exceptions.Timeout:
        raise ImportSourceError(f"check the URI and that the server runs: the MLflow tracking server at {store.uri} "
                                f"did not answer within {PROBE_SECONDS:g} s") from None
    except requests.exceptions.RequestException as exc:
        why = _first_line(exc)
        refused = "refused" if "refused" in why.lower() else why
        raise ImportSourceError(f"check the URI and that the server runs (`mlflow server --port PORT`): cannot reach "
                                f"the MLflow tracking server at {store.uri} ({refused})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    match = re.search(r"\[Errno -?\d+\] [^'\")]+", text)  # urllib3 nests the OS error deep in its message
    if match:
        return match.group(0).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _client_runs(store: Store, keys: Sequence[Key], experiments: Sequence[str] | None):
    MlflowClient, ViewType = _mlflow()
    errors = _client_errors()
    if store.kind == "http":
        _probe(store)
    with _client_settings(store):
        try:
            client = MlflowClient(tracking_uri=_client_uri(store))
            available, token = {}, None
            while True:
                page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
                available.update({str(e.experiment_id): e.name for e in page})
                token = page.token
                if not token:
                    break
            exps = _choose_experiments(available, experiments, store.shown)
            runs, seen = [], {}
            if exps:
                size = PAGE["http" if store.kind in ("http", "other") else "local"]
                token = None
                while True:
                    page = client.search_runs(list(exps), run_view_type=ViewType.ACTIVE_ONLY, max_results=size,
                                              page_token=token)
                    for run in page:
                        runs.append(_from_entity(run, exps, keys))
                        for k in run.data.metrics:
                            seen[k] = seen.get(k, 0) + 1
                    token = page.token
                    if not token:
                        break
        except UsageError:
            raise
        except errors as exc:
            why = _first_line(exc)
            if store.kind == "sqlite" and "readonly database" in why:
                raise ImportSourceError(f"upgrade a copy (`mlflow db upgrade sqlite:///COPY.db`) and import that: "
                                        f"the MLflow client would have to create or upgrade tables of {store.shown} "
                                        f"(it is incomplete, or from another MLflow version), and recsys opens stores "
                                        f"read-only") from None
            raise ImportSourceError(f"check the URI and the store: MLflow could not read {store.shown} "
                                    f"({type(exc).__name__}: {why})") from None
    store._metrics_seen = sorted(seen, key=lambda k: (-seen[k], k))
    return exps, runs


def _client_uri(store: Store) -> str:
    """The URI the client opens: an SQLite file read-only (the client would otherwise create or migrate the
    tables of a store it finds incomplete or old, writing into the user's file)."""
    if store.kind == "sqlite":
        return f"sqlite:///file:{urllib.parse.quote(str(store.path.resolve()))}?mode=ro&uri=true"
    return store.uri


def _from_entity(run, exps: dict[str, str], keys: Sequence[Key]) -> dict:
    info, data = run.info, run.data
    values = {}
    for key in keys:
        if key.kind == "params":
            v = data.params.get(key.name)
        elif key.kind == "tags":
            v = data.tags.get(key.name)
        elif key.kind == "metrics":
            v = data.metrics.get(key.name)
        elif key.kind == "run_name":
            v = info.run_name
        elif key.kind == "experiment_name":
            v = _experiment_as_dataset(exps.get(str(info.experiment_id)))
        else:
            inputs = getattr(run, "inputs", None)
            v = _dataset_input(
                (d.dataset.name, next((t.value for t in d.tags if t.key == "mlflow.data.context"), None))
                for d in (getattr(inputs, "dataset_inputs", None) or []))
        if v is not None:
            values[str(key)] = v
    return {"id": info.run_id, "name": info.run_name, "status": info.status, "start": info.start_time,
            "experiment": str(info.experiment_id), "values": values}


def _experiment_as_dataset(name: str | None) -> str | None:
    return None if name == _DEFAULT_EXPERIMENT else name


# -- SQL, read-only, for SQLite stores ---------------------------------------------------------------

_SQL_COLUMNS = {"experiments": {"experiment_id", "name", "lifecycle_stage"},
                "runs": {"run_uuid", "name", "status", "start_time", "experiment_id", "lifecycle_stage"},
                "params": {"key", "value", "run_uuid"}, "tags": {"key", "value", "run_uuid"},
                "latest_metrics": {"key", "value", "is_nan", "run_uuid"}}
_SQL_INPUTS = {"inputs": {"input_uuid", "source_type", "source_id", "destination_type", "destination_id"},
               "datasets": {"dataset_uuid", "name"}, "input_tags": {"input_uuid", "name", "value"}}
_SQL_CHUNK = 500  # keys per IN (...) list, below SQLite's limit on variables


def _sql_schema_problem(path: Path) -> str | None:
    """Why the SQL reader cannot read this store as the client would (None: it can)."""
    try:
        with _readonly(path) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "alembic_version" not in tables:
                return "no alembic_version table (not a schema the SQL reader knows)"
            for table, cols in _SQL_COLUMNS.items():
                if table not in tables:
                    return f"no table {table!r}"
                have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
                if not cols <= have:
                    return f"table {table!r} lacks column(s) {sorted(cols - have)}"
            have = {r[1] for r in con.execute("PRAGMA table_info(experiments)")}
            if "workspace" in have and con.execute(
                    "SELECT 1 FROM experiments WHERE workspace IS NOT NULL AND workspace != 'default' "
                    "LIMIT 1").fetchone():
                return "experiments in workspaces other than 'default'"
    except sqlite3.Error as exc:
        raise ImportSourceError(f"check that the SQLite file is whole and not locked: cannot read {str(path)!r} "
                                f"({exc})") from None
    return None


def _sql_runs(store: Store, keys: Sequence[Key], experiments: Sequence[str] | None):
    path = store.path
    try:
        with _readonly(path) as con:
            available = {str(i): n for i, n in con.execute(
                "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'")}
            exps = _choose_experiments(available, experiments, store.shown)
            runs = {}
            for rid, name, status, start, exp in con.execute(
                    "SELECT run_uuid, name, status, start_time, experiment_id FROM runs "
                    "WHERE lifecycle_stage = 'active'"):
                if str(exp) in exps:
                    runs[rid] = {"id": rid, "name": name, "status": status, "start": start,
                                 "experiment": str(exp), "values": {}}
            by_kind: dict[str, list[Key]] = {}
            for key in keys:
                by_kind.setdefault(key.kind, []).append(key)
            for kind, table in (("params", "params"), ("tags", "tags"), ("metrics", "latest_metrics")):
                wanted = {k.name: str(k) for k in by_kind.get(kind, [])}
                names = list(wanted)
                for i in range(0, len(names), _SQL_CHUNK):
                    chunk = names[i:i + _SQL_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    if kind == "metrics":
                        query = f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE key IN ({marks})"
                    else:
                        query = f"SELECT run_uuid, key, value, 0 FROM {table} WHERE key IN ({marks})"
                    for rid, key, value, is_nan in con.execute(query, chunk):
                        run = runs.get(rid)
                        if run is None:
                            continue
                        if kind == "metrics":
                            value = math.nan if is_nan else float(value)
                        run["values"][wanted[key]] = value
            for key in by_kind.get("run_name", []):
                for run in runs.values():
                    if run["name"] is not None:
                        run["values"][str(key)] = run["name"]
            for key in by_kind.get("experiment_name", []):
                for run in runs.values():
                    name = _experiment_as_dataset(exps.get(run["experiment"]))
                    if name is not None:
                        run["values"][str(key)] = name
            if by_kind.get("inputs.dataset"):
                _sql_inputs(con, runs, str(by_kind["inputs.dataset"][0]))
    except sqlite3.Error as exc:
        raise ImportSourceError(f"check that the SQLite file is whole and not locked: cannot read {str(path)!r} "
                                f"({exc})") from None
    return exps, list(runs.values())


def _sql_inputs(con: sqlite3.Connection, runs: dict, key: str) -> None:
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, cols in _SQL_INPUTS.items():
        if table not in tables or not cols <= {r[1] for r in con.execute(f"PRAGMA table_info({table})")}:
            return  # a store older than dataset inputs: no run has one
    found: dict[str, list] = {}
    for rid, name, context in con.execute(
            "SELECT i.destination_id, d.name, t.value FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
            "LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid AND t.name = 'mlflow.data.context' "
            "WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN'"):
        if rid in runs:
            found.setdefault(rid, []).append((name, context))
    for rid, pairs in found.items():
        name = _dataset_input(pairs)
        if name is not None:
            runs[rid]["values"][key] = name
