"""What every importer shares: values read, runs skipped by reason, records aggregated, a zoo built and written.

An importer reads its source (an MLflow store, model cards, a run table) into a :class:`Collector`, one
*unit* (a run, a card's result, a table row) at a time: :meth:`Collector.add` with the model, the dataset,
the metric's raw value and metadata, or :meth:`Collector.skip` with a reason. :meth:`Collector.build`
then aggregates the units of each (model, dataset) pair, builds and validates the :class:`~recsys.zoo.Zoo`
(merging it into an existing zoo directory when asked), and returns it with an :class:`ImportReport`
whose :meth:`~ImportReport.lines` are the summary the importers log. :func:`write_zoo` writes a zoo
directory so that a failure leaves the previous files as they were.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import RecsysError, UsageError
from ..values import VALUE_FORMS, parse_metric  # noqa: F401 (the importers read values with it)
from ..zoo import hidden_character

log = logging.getLogger(__name__)

AGGREGATIONS = ("max", "last", "mean")
#: column of models.csv / datasets.csv holding the name as text for the encoder, when no metadata is text
NAME_TEXT = "name_text"
#: how many examples of each reason for skipping a summary names
EXAMPLES = 3
#: cells read as missing (the zoo format's NA strings, and what trackers write for an unset value)
_MISSING = frozenset({"", "none", "null", "nan", "na", "n/a", "<na>", "-"})
#: MLflow's SQL stores keep an infinite metric as +-sys.float_info.max
_FLOAT_MAX = 1.7976931348623157e308
#: words of a metric's name that say lower is better: an error rate (in [0, 1] or percent; recorded as
#: 1 - value when the import is told so) ...
ERROR_WORDS = frozenset({"error", "errors", "err", "wer", "cer", "ter", "mer", "ser"})
#: ... and an unbounded loss, which no accuracy can be made of
LOSS_WORDS = frozenset({"loss", "losses", "nll", "perplexity", "ppl", "mse", "rmse", "mae", "mape"})


class ImportSourceError(RecsysError):
    """A source of fine-tuning results (an MLflow store, model cards, a run table) that cannot be read or
    yields no record."""


def check_agg(agg: str) -> str:
    if agg not in AGGREGATIONS:
        raise UsageError(f"give agg one of {', '.join(AGGREGATIONS)} (max keeps a pair's best run, last its latest, "
                         f"mean averages them): got {agg!r}")
    return agg


def missing(value) -> bool:
    """True for None, NaN and the strings trackers write for an unset value ('', 'None', 'nan' ...)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in _MISSING


def clean_name(value) -> str | None:
    """A model or dataset name as the zoo stores it, None when missing.

    Runs of white space (a line break inside a spreadsheet cell, a tab) become one space and the name is
    put in Unicode NFC, as the zoo reader compares ids; other invisible characters stay, so that the
    unit is skipped with its reason (see ``Collector.add``).
    """
    if missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFC", " ".join(str(value).split()))
    return text or None


def metric_direction(metric: str, lower_is_better: bool | None) -> bool:
    """Whether the values of ``metric`` are errors (lower is better): as given, else higher is better, unless
    the metric's name reads as an error rate or a loss (``eval_loss``, ``test/wer``, ``top1_err``): then it is
    refused until the direction is given, as read the wrong way round a history recommends its worst models.

    Raises
    ------
    UsageError
        A name that reads as a loss or an error rate, and ``lower_is_better`` None.
    """
    if lower_is_better is not None:
        return bool(lower_is_better)
    words = set(re.split(r"[^0-9a-z]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(metric)).lower()))
    if words & LOSS_WORDS:
        raise UsageError(f"give a metric where higher is better, in [0, 1] or percent (e.g. eval_accuracy), or "
                         f"--higher-is-better (lower_is_better=False in Python) to read {metric} as one: its name "
                         f"reads as a loss (lower is better, unbounded), and recsys ranks models by an accuracy")
    if words & ERROR_WORDS:
        raise UsageError(f"give --lower-is-better (lower_is_better=True in Python) to record 1 - {metric} (an error "
                         f"rate in [0, 1] or percent), or --higher-is-better to read it as it is: its name reads as "
                         f"an error rate (lower is better)")
    return False


@dataclass
class ImportReport:
    """What an import read, kept and skipped: the summary the importers log, as data.

    Attributes
    ----------
    source : str
        What was read (a tracking URI, card paths, a file).
    unit : str
        What was read: ``run``, ``card`` or ``row``.
    used_unit : str or None
        What becomes a record when it differs from ``unit`` (a card's ``result``).
    metric : str
        The metric read as accuracy.
    lower_is_better : bool
        The metric is an error rate: each value recorded as 1 - value (:func:`metric_direction`).
    agg : str
        How the units of one (model, dataset) pair were aggregated.
    read : int
        Units read.
    skipped : Counter
        Reason -> number of units skipped for it.
    skip_units : dict
        Reason -> the unit it counts when not ``unit`` (a card's results).
    examples : dict
        Reason -> up to three units skipped for it (run names, card paths, row numbers).
    used : int
        Units turned into records.
    units_per_record : Counter
        Number of units -> number of records aggregated from that many.
    percent : int
        Values read on a 0-100 scale (or written with %) and divided by 100.
    fractions : int
        Values already on a 0-1 scale.
    keys : dict
        ``"model"`` / ``"dataset"`` -> Counter of where the names were read (key -> units).
    meta_conflicts : Counter
        Metadata column -> models or datasets whose units disagreed (the most frequent value kept).
    notes : list of str
        Anything else worth a line (per-source details).
    appended : dict or None
        With ``append``: counts of the merge (records added, conflicts and how they were resolved).
    models, datasets, records : int
        Size of the zoo built.
    path : pathlib.Path or None
        Directory written.
    """

    source: str
    unit: str
    metric: str
    agg: str
    read: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    used_unit: str | None = None
    skip_units: dict = field(default_factory=dict)
    used: int = 0
    units_per_record: Counter = field(default_factory=Counter)
    percent: int = 0
    fractions: int = 0
    keys: dict = field(default_factory=lambda: {"model": Counter(), "dataset": Counter()})
    meta_conflicts: Counter = field(default_factory=Counter)
    notes: list = field(default_factory=list)
    lower_is_better: bool = False
    appended: dict | None = None
    models: int = 0
    datasets: int = 0
    records: int = 0
    path: Path | None = None

    def lines(self) -> list[str]:
        """The summary, a few lines: what was read, what was skipped and why, how records were formed."""
        u = self.unit
        used_unit = self.used_unit or u
        out = [f"read {_n(self.read, u)} from {self.source}"]
        out += self.notes
        for unit in dict.fromkeys([u, *self.skip_units.values()]):
            reasons = [(r, n) for r, n in self.skipped.most_common() if self.skip_units.get(r, u) == unit]
            if not reasons:
                continue
            parts = []
            for reason, n in reasons:
                ex = self.examples.get(reason, [])
                parts.append(f"{n:,} {reason}" + (f" ({'; '.join(ex)}{' ...' if n > len(ex) else ''})" if ex else ""))
            total = sum(n for _, n in reasons)
            of = f" of {self.read:,}" if unit == u else ""
            plural = "" if (self.read if of else total) == 1 else "s"
            out.append(f"skipped {total:,}{of} {unit}{plural}: " + "; ".join(parts))
        for side in ("model", "dataset"):
            used = self.keys.get(side) or {}
            if used:
                out.append(f"{side} names from " +
                           ", ".join(f"{k} ({_n(v, used_unit)})" for k, v in used.most_common()))
        if self.percent:
            mixed = f" ({_n(self.fractions, used_unit)} already on a 0-1 scale kept)" if self.fractions else ""
            out.append(f"{self.metric} of {_n(self.percent, used_unit)} is a percentage (above 1, at most 100, or "
                       f"written with %): divided by 100{mixed}")
        if self.lower_is_better:
            out.append(f"{self.metric} is an error rate (lower is better): each value recorded as 1 - {self.metric}")
        for col, n in self.meta_conflicts.most_common():
            out.append(f"metadata {col!r}: {n} name(s) with differing values across {used_unit}s; the most frequent "
                       f"kept (the latest {used_unit}'s on a tie)")
        if self.records:
            hist = ", ".join(f"{r:,} from {_n(k, used_unit)}" for k, r in sorted(self.units_per_record.items()))
            out.append(f"{_n(self.used, used_unit)} -> {_n(self.records, 'record')} of {_n(self.models, 'model')} x "
                       f"{_n(self.datasets, 'dataset')} (--agg {self.agg}: {hist})")
        if self.appended:
            a = self.appended
            out.append(f"appended to the zoo in {a['path']}: {a['added']} new record(s), {a['same']} already there, "
                       f"{a['conflicts']} with another accuracy resolved by --agg {self.agg} ({a['kept']} kept the "
                       f"zoo's value, {a['changed']} changed it); {a['new_models']} new model(s), "
                       f"{a['new_datasets']} new dataset(s)")
        return out


def _n(n: int, unit: str) -> str:
    return f"{n:,} {unit}" + ("" if n == 1 else "s")


class Collector:
    """Units read from a source, on their way to records.

    Parameters
    ----------
    report : ImportReport
        Filled as units are added or skipped.
    model_meta, dataset_meta : sequence of str
        Names of the metadata columns each unit may carry (the columns of models.csv / datasets.csv).
    """

    def __init__(self, report: ImportReport, model_meta: Sequence[str] = (), dataset_meta: Sequence[str] = ()):
        self.report = report
        self.model_meta, self.dataset_meta = list(model_meta), list(dataset_meta)
        self._model: list[str] = []
        self._dataset: list[str] = []
        self._value: list[float] = []
        self._order: list[float] = []
        self._meta: dict[str, list] = {c: [] for c in (*self.model_meta, *self.dataset_meta)}
        clash = set(self.model_meta) & set(self.dataset_meta)
        if clash:
            raise UsageError(f"keep metadata column(s) {sorted(clash)} in one of --model-meta / --dataset-meta (a "
                             f"column describes one side): they are asked for both models and datasets")

    def skip(self, reason: str, example: str | None = None, *, unit: str | None = None) -> None:
        """Count one unit skipped for ``reason`` (a short phrase: 'not FINISHED', 'without a model' ...);
        ``unit`` when it is not the report's (a card's result)."""
        self.report.skipped[reason] += 1
        if unit and unit != self.report.unit:
            self.report.skip_units[reason] = unit
        if example is not None:
            ex = self.report.examples.setdefault(reason, [])
            if len(ex) < EXAMPLES:
                ex.append(example if len(example) <= 160 else "..." + example[-157:])  # the end names the file

    def add(self, model, dataset, raw_value, *, example: str, order: float = 0.0,
            meta: Mapping[str, object] | None = None, model_key: str | None = None,
            dataset_key: str | None = None) -> bool:
        """One unit: checked (names present, value a finite accuracy) and kept, or skipped with its reason.

        ``raw_value`` is the metric as found (a number or a string such as '91.2 ± 0.3'); a value above 1
        and at most 100 is taken as a percentage; an error rate (``report.lower_is_better``) becomes
        1 - value. ``order`` sorts units for ``agg='last'`` (a start time, a row number). Returns whether the
        unit was kept.
        """
        r = self.report
        unit = r.used_unit
        model, dataset = clean_name(model), clean_name(dataset)
        if model is None:
            self.skip("without a model name", example, unit=unit)
            return False
        if dataset is None:
            self.skip("without a dataset name", example, unit=unit)
            return False
        for side, name in (("model", model), ("dataset", dataset)):
            bad = hidden_character(name)
            if bad:
                self.skip(f"whose {side} name holds an invisible character", f"{example}: {bad} in {name!r}",
                          unit=unit)
                return False
        if missing(raw_value) and not (isinstance(raw_value, float) and math.isnan(raw_value)):
            self.skip(f"without {r.metric}", example, unit=unit)
            return False
        value, pct, problem = parse_metric(raw_value)
        if problem:
            self.skip(f"whose {r.metric} is not a number", f"{example}: {problem}", unit=unit)
            return False
        if not math.isfinite(value) or abs(value) >= _FLOAT_MAX:
            self.skip(f"whose {r.metric} is not finite", example, unit=unit)
            return False
        if pct or 1.0 < value <= 100.0:
            value = value if pct else float(f"{value / 100.0:.12g}")  # 71.2 -> 0.712, not 0.7120000000000001
            if not 0.0 <= value <= 1.0:
                self.skip(f"whose {r.metric} is above 100%", f"{example}: {raw_value}", unit=unit)
                return False
            r.percent += 1
        elif 0.0 <= value <= 1.0:
            r.fractions += 1
        else:
            self.skip(f"whose {r.metric} is outside [0, 1] and (1, 100]", f"{example}: {value:g}", unit=unit)
            return False
        if r.lower_is_better:
            value = float(f"{1.0 - value:.12g}")  # (an error of 0.088 -> 0.912, not 0.9119999999999999)
        self._model.append(model)
        self._dataset.append(dataset)
        self._value.append(value)
        self._order.append(float(order))
        meta = meta or {}
        for col, values in self._meta.items():
            v = meta.get(col)
            values.append(meta_value(v))
        if model_key:
            r.keys["model"][model_key] += 1
        if dataset_key:
            r.keys["dataset"][dataset_key] += 1
        r.used += 1
        return True

    # -- building the zoo ------------------------------------------------------------------------

    def build(self, *, name: str | None = None, append_to: str | os.PathLike | None = None,
              no_records_fix: str = ""):
        """The zoo of the units kept (aggregated by ``report.agg``), merged into ``append_to`` when given.

        Returns ``(zoo, report)``. Raises :class:`ImportSourceError` when no unit was kept.
        """
        import pandas as pd

        from ..zoo import Zoo, load_zoo

        r = self.report
        if not self._value:
            lines = r.lines()
            why = "; ".join(lines[1:]) if len(lines) > 1 else "the source holds none"
            fix = no_records_fix or ("map the source's fields to the model, the dataset and the accuracy (options "
                                      "in docs/importing.md)")
            raise ImportSourceError(f"{fix}: no record imported from {r.source}: {why}")
        frame = pd.DataFrame({"model": self._model, "dataset": self._dataset, "accuracy": self._value,
                              "order": self._order, **{f"meta:{c}": v for c, v in self._meta.items()}})
        records, counts = _aggregate(frame, r.agg)
        r.units_per_record = Counter(counts.tolist())
        models = _metadata(frame, "model", self.model_meta, r)
        datasets = _metadata(frame, "dataset", self.dataset_meta, r)
        existing = load_zoo(append_to) if append_to is not None and _holds_zoo(Path(append_to)) else None
        if existing is not None:
            models, datasets, records, roles, scores, merged = _merge(existing, models, datasets, records, r.agg)
            r.appended = {"path": str(append_to), **merged}
            zoo = Zoo.from_frames(models.reset_index(), datasets.reset_index(), records, scores,
                                  name=existing.name, roles=roles)
        else:
            zoo = _new_zoo(models, datasets, records, name or "imported")
        r.models, r.datasets, r.records = len(zoo.models), len(zoo.datasets), len(zoo.records)
        return zoo, r


def _aggregate(frame, agg: str):
    """One record per (model, dataset): ``agg`` of its units, and how many units each came from."""
    keys = ["model", "dataset"]
    if agg == "last":
        frame = frame.sort_values("order", kind="stable")
    grouped = frame.groupby(keys, sort=True)["accuracy"]
    values = {"max": grouped.max, "mean": grouped.mean, "last": grouped.last}[agg]()
    counts = grouped.size()
    records = values.reset_index()
    return records, counts.to_numpy()


def _metadata(frame, side: str, columns: list[str], report: ImportReport):
    """models / datasets table: one row per name, each column its most frequent value (ties: the latest unit)."""
    import pandas as pd

    names = sorted(frame[side].unique())
    table = pd.DataFrame(index=pd.Index(names, name=side, dtype=object))
    for col in columns:
        sub = frame[[side, f"meta:{col}", "order"]].dropna(subset=[f"meta:{col}"])
        if not len(sub):
            table[col] = None
            continue
        sub = sub.assign(v=sub[f"meta:{col}"].map(_meta_text))
        stats = sub.groupby([side, "v"], sort=False).agg(n=("order", "size"), last=("order", "max")).reset_index()
        varied = stats.groupby(side).size()
        if (varied > 1).any():
            report.meta_conflicts[col] += int((varied > 1).sum())
        best = stats.sort_values(["n", "last"], ascending=False, kind="stable").drop_duplicates(side)
        values = best.set_index(side)["v"].reindex(table.index)
        numbers = pd.to_numeric(values, errors="coerce")
        table[col] = numbers.astype(float) if numbers.notna().sum() == values.notna().sum() else values
    return table


def _meta_text(v) -> str:
    """A metadata value as the CSV cell it becomes (numbers without a needless .0)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _new_zoo(models, datasets, records, name: str):
    """A zoo of imported tables; names become text for the encoder on a side whose metadata hold no text."""
    from ..zoo import Zoo

    zoo = Zoo.from_frames(models.reset_index(), datasets.reset_index(), records, name=name)  # roles inferred
    roles, tables = {}, {"models": models, "datasets": datasets}
    for side, inferred in (("models", zoo.model_roles), ("datasets", zoo.dataset_roles)):
        text = list(inferred.text)
        if not text:
            tables[side] = tables[side].assign(**{NAME_TEXT: tables[side].index.to_numpy()})
            text = [NAME_TEXT]
        roles[side] = {"categorical": list(inferred.categorical), "numeric": list(inferred.numeric), "text": text}
    return Zoo.from_frames(tables["models"].reset_index(), tables["datasets"].reset_index(), records, name=name,
                           roles=roles)


def _holds_zoo(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("models.csv", "datasets.csv", "records.csv"))


def _merge(old, models, datasets, records, agg: str):
    """The tables of zoo ``old`` with the imported ones merged in (the zoo's metadata win on a disagreement).

    A pair recorded in both with another accuracy is resolved by ``agg``: ``max`` keeps the larger, ``last``
    the imported one, ``mean`` averages the two (the zoo's record counts as one). Returns
    ``(models, datasets, records, roles, scores, counts)``.
    """
    import numpy as np
    import pandas as pd

    from ..zoo import infer_roles

    tables, roles, new_names = {}, {}, {}
    for side, new, table, old_roles in (("model", models, old.models, old.model_roles),
                                        ("dataset", datasets, old.datasets, old.dataset_roles)):
        # names as text: where the zoo has them (an earlier import) or has no text at all
        name_text = NAME_TEXT in table.columns or not old_roles.text
        if name_text:
            new = new.assign(**{NAME_TEXT: new.index.to_numpy()})
        new_names[side] = len(new.index.difference(table.index))
        merged = table.combine_first(new)  # the zoo's values win; its missing ones and new rows from the import
        merged = merged.reindex(columns=list(dict.fromkeys([*table.columns, *new.columns])))
        if name_text:
            merged[NAME_TEXT] = merged[NAME_TEXT].where(merged[NAME_TEXT].notna(), merged.index.to_series())
        merged.index.name = side
        tables[side] = merged.loc[sorted(merged.index)]
        r = old_roles.to_json()
        r.pop("id", None)
        fresh = [c for c in merged.columns if c not in table.columns and c != NAME_TEXT]
        inferred = infer_roles(merged[fresh].reset_index(), side) if fresh else None
        for role in ("categorical", "numeric", "text"):
            r[role] = list(r[role]) + (list(getattr(inferred, role)) if inferred else [])
        if name_text and NAME_TEXT not in r["text"]:
            r["text"].append(NAME_TEXT)
        roles[side + "s"] = r
    old_records = old.records.assign(model=old.records["model"].astype(str),
                                     dataset=old.records["dataset"].astype(str))[["model", "dataset", "accuracy"]]
    both = old_records.merge(records, on=["model", "dataset"], how="outer", suffixes=("_old", "_new"),
                             indicator=True)
    a_old, a_new = both["accuracy_old"].to_numpy(), both["accuracy_new"].to_numpy()
    shared = (both["_merge"] == "both").to_numpy()
    same = shared & np.isclose(a_old, a_new, rtol=0, atol=1e-12)
    conflict = shared & ~same
    if agg == "max":
        resolved = np.fmax(a_old, a_new)
    elif agg == "last":
        resolved = np.where(np.isnan(a_new), a_old, a_new)
    else:
        resolved = np.where(shared, (a_old + a_new) / 2, np.fmax(a_old, a_new))
    resolved = np.where(same, a_old, resolved)
    changed = conflict & (resolved != a_old)
    out = pd.DataFrame({"model": both["model"], "dataset": both["dataset"], "accuracy": resolved})
    counts = {"added": int((both["_merge"] == "right_only").sum()), "same": int(same.sum()),
              "conflicts": int(conflict.sum()), "kept": int((conflict & ~changed).sum()),
              "changed": int(changed.sum()), "new_models": new_names["model"], "new_datasets": new_names["dataset"]}
    scores = old.scores if len(old.scores) else None
    return tables["model"], tables["dataset"], out, roles, scores, counts


# ---------------------------------------------------------------------------
# writing


def check_out(out: str | os.PathLike, append: bool) -> Path:
    """``out`` as a directory the import may write: refused when it is a file, or holds a zoo without append."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"give --out the zoo directory to write (it is created): {str(out)!r} is a file")
    if _holds_zoo(path) and not append:
        raise UsageError(f"give --append to merge the import into it, or another --out: --out {str(out)!r} already "
                         f"holds a zoo")
    return path


def write_zoo(zoo, out: str | os.PathLike) -> Path:
    """Write ``zoo`` into directory ``out`` with :meth:`Zoo.write`, all files or none.

    The files are written into a temporary directory inside ``out`` first, then moved over the old ones
    (renames within one directory), so a failure while writing (a full disk, no permission) leaves every
    file of ``out`` as it was; files of ``out`` that are not zoo files are never touched.
    """
    out = Path(out).expanduser()
    created = not out.exists()
    stage = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=out, prefix=".recsys-import-", suffix=".tmp"))
        zoo.write(stage)
        written = sorted(p.name for p in stage.iterdir())
        for name in written:
            os.replace(stage / name, out / name)
        if "scores.csv" not in written:
            (out / "scores.csv").unlink(missing_ok=True)  # as Zoo.write does: a zoo without scores has no file
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise ImportSourceError(f"free some space or choose another --out: cannot write the zoo to {str(out)!r} "
                                f"({exc.strerror or exc}); the files there are unchanged") from None
    finally:
        if stage is not None and stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    zoo.path = out
    return out


def finish(collector: Collector, *, out, append: bool, name: str | None, return_report: bool,
           no_records_fix: str = ""):
    """Build the zoo of ``collector``, write it to ``out`` (merged when ``append``), log the summary."""
    report = collector.report
    target = check_out(out, append) if out is not None else None
    zoo, report = collector.build(name=name or (target.resolve().name if target is not None else None),
                                  append_to=target if append else None, no_records_fix=no_records_fix)
    if target is not None:
        report.path = write_zoo(zoo, target)
    for line in report.lines():
        log.info("%s", line)
    return (zoo, report) if return_report else zoo


def meta_column(key: str) -> str:
    """The column a metadata key becomes: its name without the ``params.`` / ``config.`` ... prefix."""
    return key.split(".", 1)[1] if "." in key else key


def check_meta_columns(model_cols: Iterable[str], dataset_cols: Iterable[str]) -> None:
    for side, cols in (("model", list(model_cols)), ("dataset", list(dataset_cols))):
        dup = sorted({c for c in cols if cols.count(c) > 1})
        if dup:
            raise UsageError(f"give each metadata column once: --{side}-meta names column {dup[0]!r} twice")
        bad = [c for c in cols if c in (side, NAME_TEXT)]
        if bad:
            raise UsageError(f"choose another key for --{side}-meta: {bad[0]!r} would overwrite the "
                             f"{'id' if bad[0] == side else 'name text'} column of {side}s.csv")


def meta_value(v):
    """A metadata value as kept: None for a missing or non-finite one."""
    if missing(v):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, str):
        try:
            if not math.isfinite(float(v)):
                return None
        except ValueError:
            pass
        return v.strip()
    if isinstance(v, (dict, list)):
        import json

        return json.dumps(v, sort_keys=True)
    return v
