"""One call that runs a protocol and writes its tables, report and figures (``recsys evaluate``)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..engines import DEFAULT_ENGINE, ENGINES
from ..errors import RecsysError, UsageError
from ..features import ZooData
from ..zoo import Zoo
from .protocols import ProtocolResult, get_spec, logo, missing_edge, p1, p2
from .report import below_baselines, fit_time_ratio, markdown_report, summarize, timing_summary

__all__ = ["RunResult", "run", "write_outputs"]

log = logging.getLogger(__name__)

#: the baselines every report carries (docs/protocols.md, "Baselines")
REQUIRED_BASELINES = ("random", "popularity", "additive")
#: the protocols and metrics, described for readers (in a source checkout; a wheel does not ship it)
PROTOCOLS_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols.md"


@dataclass
class RunResult:
    """What :func:`run` measured and wrote.

    Attributes
    ----------
    result : ProtocolResult
        Raw per-dataset rows, timings, status and errors.
    summary : pandas.DataFrame
        ``engine, bin, metric, mean, std, n_reps`` (see :func:`~recsys.evaluation.report.summarize`).
    timing : pandas.DataFrame
        ``engine, fit_s, predict_s, calibrate_s, n_folds, status``.
    markdown : str
        The report (tables beside the published figures).
    below_baseline : list of str
        Headline metrics where the default engine is worse than a baseline.
    files : dict of str to pathlib.Path
        What was written (empty when ``out_dir`` was None).
    wall_s : float
        Wall time of the whole call (features, protocol, files).
    """

    result: ProtocolResult
    summary: pd.DataFrame
    timing: pd.DataFrame
    markdown: str
    below_baseline: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def status(self) -> dict[str, str]:
        """Engine → ``ok`` / ``failed: ...`` / ``partly failed ...`` / ``n/a: no scores``."""
        return self.result.status

    @property
    def failed(self) -> dict[str, str]:
        return {e: s for e, s in self.status.items() if "failed" in s}

    @property
    def fit_ratio_gat(self) -> float:
        """gat's mean fit time over the default engine's, same run (NaN if either is missing)."""
        return fit_time_ratio(self.result)

    def value(self, engine: str, metric: str = "pearson", bin: str = "all") -> float:
        """Mean over repetitions of ``metric`` for ``engine`` (``bin`` "all" or a known-model bin)."""
        s = self.summary
        s = s[(s["engine"] == engine) & (s["metric"] == metric) & (s["bin"] == bin)]
        return float(s["mean"].iloc[0]) if len(s) else float("nan")


def write_outputs(run_result: RunResult, out_dir: str | Path, *, plots: bool = True,
                  compress: bool = False) -> dict[str, Path]:
    """Write ``{p}_per_dataset.csv``, ``{p}_summary.csv``, ``{p}_timing.csv``, ``{p}_errors.csv``,
    ``{p}_report.md`` and the ``{p}_*.png`` figures into ``out_dir``.

    ``compress``: the per-dataset rows (the large file) as ``{p}_per_dataset.csv.gz``
    (pandas and most CSV readers open it as it is).
    """
    res = run_result.result
    prefix = res.spec.name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "per_dataset_csv": out / f"{prefix}_per_dataset.csv{'.gz' if compress else ''}",
        "summary_csv": out / f"{prefix}_summary.csv",
        "timing_csv": out / f"{prefix}_timing.csv",
        "errors_csv": out / f"{prefix}_errors.csv",
        "report_md": out / f"{prefix}_report.md",
    }
    # Five significant digits: per-dataset metrics are not known better, and the file stays small. Text cells
    # (dataset names, messages) that a spreadsheet would evaluate are neutralized (fileio.spreadsheet_safe).
    _safe(res.per_dataset).to_csv(files["per_dataset_csv"], index=False, float_format="%.5g")
    _safe(run_result.summary).to_csv(files["summary_csv"], index=False)
    _safe(run_result.timing).to_csv(files["timing_csv"], index=False)
    _safe(res.errors).to_csv(files["errors_csv"], index=False)
    files["report_md"].write_text(run_result.markdown, encoding="utf-8")
    if plots:
        from .plots import write_plots

        files.update(write_plots(res, run_result.summary, out, prefix))
    return files


def _safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text cells as a spreadsheet may open them (:func:`recsys.fileio.spreadsheet_safe`)."""
    from ..fileio import spreadsheet_safe

    text = [c for c in frame.columns if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].map(lambda v: v if v is None or v != v else spreadsheet_safe(v))
                           for c in text})


def docs_link(out_dir: str | Path | None) -> str | None:
    """``docs/protocols.md`` relative to ``out_dir`` (the current directory when None), for the report's links.

    None where the file is not there (an installed wheel): the report then names it without a link.
    """
    if not PROTOCOLS_DOC.is_file():
        return None
    base = Path(out_dir if out_dir is not None else ".").resolve()
    try:
        return Path(os.path.relpath(PROTOCOLS_DOC, base)).as_posix()
    except ValueError:  # another drive (Windows)
        return PROTOCOLS_DOC.as_uri()


def _with_datasets_to_learn_from(zoo: Zoo | ZooData | str, protocol: str) -> Zoo | ZooData:
    """``zoo`` (loaded, when named), refused when the protocol's folds would hide every record.

    ``missing-edge`` cuts the datasets with records into ``min(10, their number)`` groups, the
    last of which is cold: with one such dataset, every fold hides everything and every engine
    would fail the same way.
    """
    if isinstance(zoo, ZooData):
        name, n = "data", int(zoo.known.any(1).sum())
    else:
        if not isinstance(zoo, Zoo):
            from .. import datasets

            zoo = datasets.load(zoo)
        name, n = zoo.name, int(zoo.records["dataset"].nunique())
    if n < 2:
        need = "a second dataset" if n == 1 else "two datasets"
        raise RecsysError(f"add records of {need} to zoo {name!r}: {protocol} learns the records it hides from the "
                          f"other datasets, and this zoo has records of {n}")
    return zoo


def _with_baselines(engines: list[str], baselines: bool) -> list[str]:
    """``engines``, with the baselines every report carries in front when the default engine is among them."""
    if baselines and DEFAULT_ENGINE in engines:
        # The protocol's rule: a method counts as better only against these, measured in the same run.
        missing = [b for b in REQUIRED_BASELINES if b not in engines]
        if missing:
            log.info("adding the baselines every report carries: %s", ", ".join(missing))
            engines = [*missing, *engines]
    return engines


def run(
    protocol: str,
    zoo: Zoo | ZooData | str | None = None,
    engines: Sequence[str] | None = None,
    repeats: int | None = None,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    text_encoder=None,
    seeds: Sequence[int] | None = None,
    coverage: str | bool | Sequence[str] | None = "default",
    level: float = 0.8,
    targets: Sequence[str | int] | None = None,
    plots: bool = True,
    baselines: bool = True,
    compress: bool = False,
    steps: int = 5,
    cache=None,
) -> RunResult:  # (over 80 lines by its docstring alone: 15 parameters, each documented; the body is 30)
    """Run a protocol (``p1``, ``p2``, ``missing-edge``, ``logo``, ``sequential``); write its files when ``out_dir``
    is given.

    Parameters
    ----------
    protocol : {"p1", "p2", "missing-edge", "logo", "sequential"}
    zoo : Zoo, ZooData, str or None
        A zoo, a zoo name or directory, or ready ZooData. Default: the zoo
        of the published figures (``domainnet-270`` for P1,
        ``transfergraph-image`` for P2), ``domainnet-270`` for the others.
    engines : sequence of str, optional
        Registered engine names (default: every registered engine). A failing
        engine is reported in ``status``, not dropped.
    repeats : int, optional
        Repetitions (missing-edge kinds default 10; leave-one-dataset-out kinds
        default 1: the engine seed is the only random part). Seeds are ``0..repeats-1`` unless ``seeds`` is given.
    out_dir : path, optional
        Where to write the CSVs, the markdown report and the figures.
    progress : bool
        tqdm bar on stderr.
    text_encoder : str, optional
        Text encoder of the FeatureBuilder (default: the shipped MiniLM;
        ``"hashing"`` is the fast dependency-free one).
    seeds : sequence of int, optional
    coverage : "default", "all", "none" or list of engine names
        Engines whose 80% interval coverage is measured (each fold calibrates
        on its own training data: one more fit per fold).
    level : float
        Interval level of the coverage columns.
    targets : sequence, optional
        p2 and logo: the held-out datasets (names or indices; default every
        dataset with scores for p2, every dataset with >= 10 records for logo).
    plots : bool
        Write the PNG figures too.
    baselines : bool
        When the default engine is evaluated, add the baselines every report
        carries (random, popularity, additive) if they are not listed.
    compress : bool
        Write the per-dataset rows gzipped (see :func:`write_outputs`).
    steps : int
        sequential: picks per target.
    cache : FitCache, optional
        Fits and calibrations shared with other runs (see :class:`~recsys.evaluation.protocols.FitCache`).

    Returns
    -------
    RunResult

    Raises
    ------
    RecsysError
        Unknown protocol, engine, zoo or target; inconsistent repeats/seeds.

    Examples
    --------
    >>> res = run("p1", engines=["popularity", "additive"], repeats=2, text_encoder="hashing")  # doctest: +SKIP
    >>> print(res.markdown)                                                                     # doctest: +SKIP
    """
    t0 = time.perf_counter()
    spec = get_spec(protocol)
    zoo = spec.default_zoo if zoo is None else zoo
    if spec.name == "sequential":
        return _run_sequential(zoo, engines, repeats, out_dir, progress=progress, text_encoder=text_encoder,
                               seeds=seeds, level=level, targets=targets, plots=plots, baselines=baselines,
                               compress=compress, steps=steps, cache=cache, t0=t0)
    engines = _with_baselines(list(ENGINES) if engines is None else list(engines), baselines)
    if spec.kind == "missing-edge" and targets is not None:
        raise UsageError(f"drop --targets, or choose p2 or logo: targets apply to the leave-one-dataset-out "
                         f"protocols, not to {spec.name}")
    if spec.name == "missing-edge":
        zoo = _with_datasets_to_learn_from(zoo, spec.name)
    log.info("running %s on %s with %s", spec.name, getattr(zoo, "name", zoo), ", ".join(engines))
    fn = {"p1": p1, "missing-edge": missing_edge, "p2": p2, "logo": logo}[spec.name]
    extra = {} if spec.kind == "missing-edge" else {"targets": targets}
    res = fn(zoo, engines, repeats, seeds, text_encoder=text_encoder, coverage=coverage, level=level,
             progress=progress, cache=cache, **extra)
    summary = summarize(res)
    rr = RunResult(result=res, summary=summary, timing=timing_summary(res),
                   markdown=markdown_report(res, summary, docs=docs_link(out_dir)),
                   below_baseline=below_baselines(res, summary))
    if out_dir is not None:
        rr.files = write_outputs(rr, out_dir, plots=plots, compress=compress)
    rr.wall_s = time.perf_counter() - t0
    for name, status in rr.failed.items():
        log.error("%s: engine %s %s", spec.name, name, status)
    return rr


def _run_sequential(zoo, engines, repeats, out_dir, *, progress, text_encoder, seeds, level, targets, plots,
                    baselines, compress, steps, cache, t0) -> RunResult:
    """:func:`run` for the sequential protocol: the policies' regret@n, its report, its CSVs and figure."""
    from .sequential import SPEC, policy_means, sequential, sequential_markdown

    if engines is not None:
        # (random is played exactly, not by the random engine's draws)
        engines = [e for e in _with_baselines(list(engines), baselines) if e != "random"]
    res = sequential(zoo, engines, repeats, seeds, steps=steps, targets=targets, text_encoder=text_encoder,
                     level=level, progress=progress, cache=cache)
    summary = policy_means(res).reset_index()
    rr = RunResult(result=res, summary=summary, timing=res.timing,
                   markdown=sequential_markdown(res, docs=docs_link(out_dir)))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        prefix = SPEC.name
        files = {"per_dataset_csv": out / f"{prefix}_per_dataset.csv{'.gz' if compress else ''}",
                 "summary_csv": out / f"{prefix}_summary.csv", "timing_csv": out / f"{prefix}_timing.csv",
                 "errors_csv": out / f"{prefix}_errors.csv", "report_md": out / f"{prefix}_report.md"}
        res.per_dataset.to_csv(files["per_dataset_csv"], index=False, float_format="%.5g")
        summary.to_csv(files["summary_csv"], index=False, float_format="%.5g")
        res.timing.to_csv(files["timing_csv"], index=False)
        res.errors.to_csv(files["errors_csv"], index=False)
        files["report_md"].write_text(rr.markdown, encoding="utf-8")
        if plots:
            from .plots import plot_regret

            files["regret_png"] = out / f"{prefix}_regret.png"
            plot_regret(res, files["regret_png"])
        rr.files = files
    rr.wall_s = time.perf_counter() - t0
    return rr
