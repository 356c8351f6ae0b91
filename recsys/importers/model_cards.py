"""Fine-tuning results published in Hugging Face model cards (the ``model-index`` of a README.md header).

A fine-tuned model's card names the model it was fine-tuned from (``base_model``) and, in its
``model-index``, the results it reached: each result has a task, a dataset (``type``, ``name``, optional
``config`` and ``split``) and metrics (``type``, ``value``). One record per (base model, dataset):

- model = the card's ``base_model`` (a card with none, or with several (a merge), is skipped);
- dataset = the result's ``dataset.type``, ``/config`` appended when a config other than ``default``
  is given (``glue/sst2``);
- accuracy = the value of the metric whose ``type`` (else ``name``) is ``metric`` (default ``accuracy``),
  from the test split when the card gives several splits (then validation, then a result without a
  split, then any other, train last).

Cards are parsed by ``huggingface_hub`` (``ModelCard``: the YAML header read with ``yaml.safe_load``,
``model-index`` turned into ``EvalResult`` objects), never by hand. Before that, a header is refused
when its aliases expand it past :data:`MAX_YAML_NODES` nodes (a "billion laughs" bomb is a few hundred
bytes that expand to 10^9) or when the file exceeds :data:`MAX_CARD_BYTES`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from ._core import (Collector, ImportReport, ImportSourceError, check_agg, check_out, clean_name, finish,
                    metric_direction, missing)

log = logging.getLogger(__name__)

__all__ = ["from_model_cards", "MAX_CARD_BYTES", "MAX_YAML_NODES"]

MAX_CARD_BYTES = 16 << 20
#: nodes a card's YAML header may expand to, aliases counted as copies (real headers hold thousands at most)
MAX_YAML_NODES = 1_000_000
MAX_DEPTH = 200
_SPLIT_RANK = {"test": 0, "validation": 1, "valid": 1, "val": 1, "dev": 1, "eval": 1, None: 2, "train": 4}
try:  # the YAML header as huggingface_hub finds it (checked for alias bombs before it is loaded)
    from huggingface_hub.repocard import REGEX_YAML_BLOCK as _HEADER
except ImportError:  # pragma: no cover - the same pattern, for a huggingface_hub that moved it
    _HEADER = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")


def from_model_cards(paths: str | os.PathLike | Sequence[str | os.PathLike], *, metric: str = "accuracy",
                     agg: str = "max", out: str | os.PathLike | None = None, append: bool = False,
                     name: str | None = None, return_report: bool = False, lower_is_better: bool | None = None):
    # (over 80 lines by its docstring: 8 parameters and the card format, documented; the body is 56 lines)
    """A zoo of the results of Hugging Face model cards.

    Parameters
    ----------
    paths : path or sequence of paths
        Card files (``README.md`` with a YAML header) and folders searched for ``*.md`` files.
    metric : str
        Metric type (or name) of the results read as accuracy, case-insensitive; default ``accuracy``.
        Values above 1 and at most 100, or written with ``%``, are percentages; ``91.2 ± 0.3`` reads 91.2.
    agg : {"max", "last", "mean"}
        How several cards with results for one (base model, dataset) become one record (``last``: the
        last card in the order read, paths sorted within a folder).
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
    ImportSourceError
        A path that does not exist, or no card with a usable result (the reasons each card was
        skipped are in the message).

    Examples
    --------
    >>> zoo = from_model_cards(["cards/"], out="zoo")     # doctest: +SKIP
    """
    check_agg(agg)
    if out is not None:
        check_out(out, append)  # before reading: a refusal should not wait for the whole source
    metric = str(metric).strip()
    lower = metric_direction(metric, lower_is_better)
    files = list(_card_files([paths] if isinstance(paths, (str, os.PathLike)) else paths))
    report = ImportReport(source=_shown(paths), unit="card", metric=metric, agg=agg, used_unit="result",
                          lower_is_better=lower)
    collector = Collector(report)
    report.read = len(files)
    seen_metrics: dict[str, int] = {}
    for order, (path, label) in enumerate(files):
        data, problem, detail = _read_card(path)
        if problem:
            collector.skip(problem, f"{label}: {detail}" if detail else label)
            continue
        base = data.base_model
        if isinstance(base, (list, tuple)):
            base = base[0] if len(base) == 1 else (base if base else None)
        if isinstance(base, (list, tuple)):
            collector.skip("with several base_model entries (a merge or an adapter of several models)", label)
            continue
        if missing(base) or not isinstance(base, str):
            collector.skip("without base_model", label)
            continue
        results = data.eval_results or []
        if not results:
            collector.skip("without model-index results", label)
            continue
        chosen: dict[str, tuple] = {}
        for res in results:
            kinds = {str(res.metric_type or "").strip().lower(), str(res.metric_name or "").strip().lower()}
            seen_metrics[str(res.metric_type)] = seen_metrics.get(str(res.metric_type), 0) + 1
            if metric.lower() not in kinds:
                continue
            dataset = _dataset_id(res.dataset_type, res.dataset_config)
            if dataset is None:
                continue
            rank = _split_rank(res.dataset_split)
            if dataset not in chosen or rank < chosen[dataset][0]:
                chosen[dataset] = (rank, res)
        if not chosen:
            types = sorted({str(r.metric_type) for r in results})
            collector.skip(f"without a result for {metric}", f"{label}: {', '.join(types[:5])}")
            continue
        for dataset, (_, res) in chosen.items():
            split = f" ({res.dataset_split})" if res.dataset_split else ""
            with_config = dataset != clean_name(res.dataset_type)
            collector.add(base, dataset, res.metric_value, example=f"{label}: {dataset}{split}", order=order,
                          model_key="base_model", dataset_key="dataset.type/config" if with_config else "dataset.type")
    hint = ""
    if not report.used and seen_metrics and metric.lower() not in {m.lower() for m in seen_metrics}:
        common = sorted(seen_metrics, key=lambda m: (-seen_metrics[m], m))[:8]
        hint = f"choose the metric with --metric (the cards report {', '.join(common)})"
    return finish(collector, out=out, append=append, name=name, return_report=return_report,
                  no_records_fix=hint)


def _shown(paths) -> str:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    text = ", ".join(str(p) for p in items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
    return text or "no path"


def _card_files(paths: Iterable[str | os.PathLike]) -> Iterable[tuple[Path, str]]:
    """``(file, label)``: each path as given when a file, the ``*.md`` files under it (sorted) when a folder,
    labelled by their path inside it."""
    given = list(paths)
    if not given:
        raise ImportSourceError("give card files (README.md) or folders of them: no model card given")
    for raw in given:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.md") if p.is_file())
            if not found:
                log.info("%s holds no .md file", path)
            yield from ((p, str(p.relative_to(path))) for p in found)
        elif path.exists():
            yield path, str(raw)
        else:
            raise ImportSourceError(f"give model card files (README.md) or folders of them: no file or folder "
                                    f"{str(raw)!r}")


def _read_card(path: Path):
    """``(card data, None, None)`` or ``(None, reason it is skipped, detail or None)``."""
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            return None, f"larger than {MAX_CARD_BYTES >> 20} MiB", None
        raw = path.read_bytes()
    except OSError as exc:
        return None, "unreadable", exc.strerror or str(exc)
    if not raw.strip():
        return None, "empty", None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "not UTF-8 text", None
    header = _HEADER.search(text)
    if header is None:
        return None, "without a YAML header (--- ... ---)", None
    problem, detail = _yaml_problem(header.group(2))
    if problem:
        return None, problem, detail
    import yaml
    from huggingface_hub import ModelCard

    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # "metadata block not found" and such: the summary says it
    try:
        card = ModelCard(text)
    except yaml.YAMLError as exc:
        return None, "with YAML that does not parse", _yaml_where(exc)
    except RecursionError:
        return None, f"with YAML nested deeper than {MAX_DEPTH} levels", None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        what = "model-index" if "model_index" in str(exc) or "eval_results" in str(exc) else "YAML header"
        return None, f"whose {what} huggingface_hub cannot read", _short(exc)
    finally:
        hub_log.setLevel(level)
    return card.data, None, None


def _short(exc: BaseException) -> str:
    """huggingface_hub's message, the gist: "Invalid `model_index` ... <class 'KeyError'> 'name'. Pass ..." ->
    "KeyError 'name'"."""
    text = " ".join(str(exc).split())
    text = re.sub(r"\. Pass `ignore_metadata_errors=True`.*", "", text)
    text = re.sub(r"^.*<class '(?:\w+\.)*(\w+)'>\s*", r"\1 ", text)
    return text[:100] + ("..." if len(text) > 100 else "")


def _yaml_where(exc) -> str | None:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 2}" if mark is not None else None  # +1: 1-based, +1: the opening --- line


def _yaml_problem(text: str) -> tuple[str | None, str | None]:
    """Why a YAML header is refused before it is loaded (and a detail): aliases that expand it past
    MAX_YAML_NODES nodes, nesting deeper than MAX_DEPTH, a syntax error. Counted on the event stream, which
    never expands anything."""
    import yaml

    sizes: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = []
    nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append((event.anchor, nodes))
                nodes += 1
                if len(stack) > MAX_DEPTH:
                    return f"with YAML nested deeper than {MAX_DEPTH} levels", None
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, start = stack.pop()
                if anchor:
                    sizes[anchor] = nodes - start
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                nodes += sizes.get(event.anchor, 1)
            if nodes > MAX_YAML_NODES:
                return f"with YAML aliases that expand past {MAX_YAML_NODES:,} nodes (an alias bomb)", None
    except yaml.YAMLError as exc:
        return "with YAML that does not parse", _yaml_where(exc)
    return None, None


def _dataset_id(dataset_type, config) -> str | None:
    base = clean_name(dataset_type)
    if base is None:
        return None
    cfg = clean_name(config)
    return f"{base}/{cfg}" if cfg and cfg.lower() != "default" else base


def _split_rank(split) -> int:
    s = clean_name(split)
    if s is None:
        return _SPLIT_RANK[None]
    s = s.split("[", 1)[0].strip().lower()
    return _SPLIT_RANK.get(s, 3)

