"""Mutation testing of recsys' core with mutmut: ``make mutate`` → benchmarks/results/mutation.md.

Each core module is mutated on its own, in a scratch copy of the repository (``build/mutation/<module>``):
mutmut copies ``recsys/`` into ``mutants/`` with every mutant of that one module compiled in, runs the
module's own test selection once to learn which tests reach which function, then runs, for each mutant,
only the tests that reach its function (in a forked process). Modules run one after the other; each
module's selection holds the in-process tests that exercise it and are fast (a mutant reruns them).

A mutant that survives is either killed by a new test, or listed in :data:`EQUIVALENT` (in
``benchmarks/mutation_equivalent.py``) with a one-line reason: the score is killed / (mutants -
equivalent). Results are kept per module in ``benchmarks/results/mutation.json``, so that one module can be
run again (``--modules zoo``) and the report still shows them all.

Usage::

    python benchmarks/mutation.py                      # every module (hours on 2 cores)
    python benchmarks/mutation.py --modules metrics,answer --jobs 2
    python benchmarks/mutation.py --modules zoo --again    # only the mutants the stored run left alive
    python benchmarks/mutation.py --report             # rewrite mutation.md from mutation.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutation_equivalent import EQUIVALENT  # noqa: E402


@dataclass
class Module:
    path: str
    tests: list[str]
    #: mutant-name patterns (fnmatch) when only part of the module is mutated; empty: all of it
    only: list[str] = field(default_factory=list)
    note: str = ""


# The tests of each module: in-process (a subprocess cannot see a mutant), not marked slow, and the ones that
# check its behaviour; a mutant reruns those of its selection that reach its function, fastest first, until one
# fails. The hostile sweep's fitted model files are kept between mutants (RECSYS_TEST_MODEL_CACHE).
NOT_SLOW = ["-m", "not slow"]
HOSTILE_MODEL_FILES = "tests/test_hostile.py::test_hostile_input"
MODULES: dict[str, Module] = {
    "metrics": Module("recsys/evaluation/metrics.py", ["tests/test_metrics.py", *NOT_SLOW]),
    # (zoo: the Hypothesis sweeps of test_fuzz_readers, test_any_*, are left out: 11 of the selection's 18 seconds,
    # which every surviving mutant pays; their fixed cases stay)
    "zoo": Module("recsys/zoo.py", ["tests/test_zoo_validation.py", "tests/test_zoo.py", "tests/test_zoo_fast.py",
                                    "tests/test_fuzz_readers.py", "tests/test_zoo_rules.py", "tests/test_zoo_values.py",
                                    "tests/test_zoo_files.py", "tests/test_zoo_names.py", "-k", "not test_any_", *NOT_SLOW],
                  only=[f"recsys.zoo.x{f}__mutmut_*" for f in (
                      "ǁRolesǁfrom_json", "_infer_roles", "ǁZooǁ__post_init__", "ǁZooǁfrom_frames", "ǁZooǁ_validated",
                      "_load_zoo", "__read_zoo_json", "ǁ_Whereǁ__init__", "ǁ_Whereǁcounted", "ǁ_Whereǁline",
                      "ǁ_Whereǁ__call__", "ǁ_Whereǁmany", "ǁ_Whereǁwithout", "__read_csv", "__check_header", "__table",
                      "__read_plain", "__parse", "ǁ_Codesǁ__init__", "ǁ_Codesǁadd", "ǁ_Codesǁcategorical",
                      "__plain_shape", "__blank_lines", "__read_rows", "__codes", "__gather", "__empty_scores",
                      "__is_na", "__name", "__normalize_column", "__index_table", "__check_role_columns",
                      "__require_columns", "__name_codes", "__positions_in", "__numbers", "__first_rows",
                      "__validate_records", "_validate_scores", "_read_scores", "__stable_order")],
                  note="the readers and validators (`load_zoo`, `Zoo.from_frames` and everything they call, "
                       "`validate_scores`, `read_scores`, `infer_roles`, `Roles.from_json`); the writer, "
                       "`fingerprint`, `summary` and `accuracy_table` are not mutated; the Hypothesis sweeps of "
                       "tests/test_fuzz_readers.py (`test_any_*`) are left out of the selection (the time every "
                       "surviving mutant pays)"),
    "artifact": Module("recsys/artifact.py", ["tests/test_artifact.py", "tests/test_fuzz_model_file.py",
                                              HOSTILE_MODEL_FILES, "-k", "model or not hostile", *NOT_SLOW],
                       only=[f"recsys.artifact.x_{f}__mutmut_*" for f in (
                           "read_artifact", "_damaged", "_check_directory", "_members", "_read_meta", "_declared",
                           "_count_ids", "_read_arrays", "_check_header", "_map_member", "_check_aliases",
                           "check_model_state", "_check_ids", "_check_records", "_is_seed")],
                       note="the reader and its checks (`read_artifact` and the functions it calls, "
                            "`check_model_state`); the writer and `upgrade` (format 2-3 files) are not mutated"),
    "calibration": Module("recsys/engines/calibration.py",
                          ["tests/test_calibration.py", "tests/test_joint.py", "tests/test_properties_answer.py",
                           "tests/test_recommender.py",
                           "-k", "not test_recommender or (p_best and not shares_ties and not agrees)", *NOT_SLOW],
                          only=[f"recsys.engines.calibration.x{f}__mutmut_*" for f in (
                              "_stratum_of", "ǁCalibrationǁ_pool", "ǁCalibrationǁquantile", "ǁCalibrationǁinterval",
                              "ǁCalibrationǁp_best", "ǁCalibrationǁ_tables", "ǁCalibrationǁto_state",
                              "ǁCalibrationǁfrom_state", "_holdout_mask", "_calibrate", "__collect",
                              "__fit_noise_scale", "_fit_joint", "__held_rows", "__cold_level", "__pools",
                              "__cold_model_pool")],
                          note="strata, pools, intervals, `Calibration.p_best` and its tables, the state, the hold-out, "
                               "`calibrate` and the joint parameters it fits (`fit_joint`, `_held_rows`, "
                               "`_cold_level`, `_pools`, `_cold_model_pool`); the numeric integration kernels under "
                               "the independent P(best) (`_Table`, `_grid_step`, `_win_probs`, the FFT correlations, "
                               "`_split`, `_gather`, `_fft_size`) and the log-level helper `_quiet_engines` are not "
                               "mutated"),
    "answer": Module("recsys/engines/answer.py", ["tests/test_properties_answer.py", "tests/test_recommender.py",
                                                  "tests/test_joint.py", *NOT_SLOW]),
    "joint": Module("recsys/engines/joint.py", ["tests/test_joint_parts.py", "tests/test_joint.py",
                                                "tests/test_properties_answer.py",
                                                "tests/test_plan_cli.py", "tests/test_calibration.py", *NOT_SLOW],
                    note="the joint distribution: pools, parameters and their state, the conditioning, the fixed "
                         "draws, P(best), the plan"),
    "scale": Module("recsys/engines/stages/scale.py",
                    ["tests/test_stage_scale.py", "tests/test_hybrid_stages.py", "tests/test_kriging.py",
                     "tests/test_joint.py",
                     "tests/test_engine_contract.py", "-k", "hybrid or stage or scale or spread or not contract",
                     *NOT_SLOW],
                    note="the default engine's scales and standardizations (ridge, pooled scales, the row and "
                         "column standardizations) as the engines that use them see them"),
    "sequential": Module("recsys/evaluation/sequential.py", ["tests/test_sequential.py", *NOT_SLOW],
                         only=[f"recsys.evaluation.sequential.x_{f}__mutmut_*" for f in (
                             "sequential_folds", "random_expectation", "regrets", "_order", "policy_means",
                             "_per_target", "paired")],
                         note="what the sequential protocol measures: its folds, the regret and found of a list "
                              "of picks, random's exact expectation, a ranking's picks, the per-policy means and "
                              "the paired sign test; the loop that plays the policies and the report are not "
                              "mutated"),
    "suite": Module("recsys/evaluation/suite.py",
                    ["tests/test_suite_tables.py", "tests/test_evaluation_runner.py", "tests/test_sequential.py",
                     "-k", "suite_table or sign_test or tables or sequential or regret or policy or paired or folds",
                     *NOT_SLOW],
                    only=[f"recsys.evaluation.suite.x_{f}__mutmut_*" for f in (
                        "sign_test", "suite_table", "zoos_with_wins", "sequential_table", "_bootstrap", "pbest_table")],
                    note="the suite's statistics: the sign test, the table of wins against the best simple "
                         "predictor, the zoos with wins, the sequential and P(best) tables and the bootstrap; "
                         "running the suite, its markdown and its plots are not mutated"),
    "conditioning": Module("recsys/evaluation/conditioning.py", ["tests/test_sequential.py", "-k", "conditioning",
                                                                 *NOT_SLOW],
                           only=["recsys.evaluation.conditioning.x_conditioning_summary__mutmut_*"],
                           note="the summary of the conditioning check (the suite's table of results given instead "
                                "of a refit); the check's fits are not mutated"),
    "kriging": Module("recsys/engines/stages/kriging.py",
                      ["tests/test_kriging.py", "tests/test_hybrid_stages.py", "tests/test_engine_contract.py",
                       "tests/test_properties_answer.py", "tests/test_joint.py",
                       "-k", "hybrid or kriging or covariance or not contract", *NOT_SLOW]),
    "recommender": Module("recsys/recommender.py", ["tests/test_properties_answer.py", "tests/test_fuzz_model_file.py",
                                                    "tests/test_recommender_ranking.py", "tests/test_plan_cli.py",
                                                    "tests/test_joint.py::test_known_in_the_python_api",
                                                    "tests/test_joint.py::test_known_refused_in_one_line", *NOT_SLOW],
                          only=[f"recsys.recommender.xǁRecommenderǁ{f}__mutmut_*" for f in (
                              "_rank_columns", "topk_columns", "topk", "topk_new", "_new_columns", "_columns",
                              "_compute_columns", "predict_columns", "iter_predict", "predict", "predict_new",
                              "dataset_index")] + ["recsys.recommender.x__warn_untold__mutmut_*"],
                          note="the answers and their ranking (`predict*`, `iter_predict`, `topk*`, `_columns`, "
                               "`_rank_columns`, with the results given and the plans they pass on, and `_warn_untold`, the "
                               "warning of a ranking of ties); fit, save, load "
                               "and the checks of results given (`_given`) are not mutated"),
    "cli": Module("recsys/cli.py", ["tests/test_cli_exit_codes.py", "tests/test_hostile.py::test_hostile_input",
                                    *NOT_SLOW],
                  only=["recsys.cli.xǁ_Groupǁmain__mutmut_*", "recsys.cli.xǁ_Groupǁinvoke__mutmut_*",
                        "recsys.cli.x__nonempty__mutmut_*", "recsys.cli.x__load_model__mutmut_*",
                        "recsys.cli.x__ask__mutmut_*"],
                  note="exit-code paths only: `_Group.main` and `_Group.invoke` (every error to one line and its "
                       "exit status), `_nonempty`, `_load_model` and `_ask`; the output formatting and the "
                       "commands' bodies are not mutated"),
}

#: mutmut's exit codes as statuses (mutmut.stats.status_by_exit_code, kept here so that the report can be
#: rewritten without mutmut installed)
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", None: "not checked"}
KILLED = ("killed", "timeout", "segfault")


def _status(code) -> str:
    return STATUS.get(code, "suspicious")


def _function(name: str) -> str:
    """``recsys.cli.xǁ_Groupǁmain__mutmut_3`` → ``_Group.main``; ``...x__pair__mutmut_2`` → ``_pair``."""
    mangled = name.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]
    if mangled.startswith("xǁ"):
        _, cls, meth = mangled.split("ǁ")
        return f"{cls}.{meth}"
    return mangled[2:]


def _changed_line(diff: str) -> str:
    """The mutated line(s) of a mutant's diff (its ``+`` lines, stripped, joined)."""
    plus = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(plus)


def _equivalent(module: str, function: str, line: str) -> str | None:
    for fn, mutated, reason in EQUIVALENT.get(module, ()):
        if fn == function and mutated.strip() == line:
            return reason
    return None


def _mutmut_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('mutmut'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def _diffs(python: Path, work: Path, path: str, names: list[str], env: dict) -> dict[str, str]:
    """``mutmut show``'s diff of each mutant, in one process."""
    code = ("import json, sys\nfrom mutmut.mutation.diff_apply import get_diff_for_mutant\n"
            "names = json.load(sys.stdin)\n"
            f"print(json.dumps({{n: get_diff_for_mutant(n, path={path!r}) for n in names}}))\n")
    out = subprocess.run([str(python), "-c", code], cwd=work, env=env, input=json.dumps(names), capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def _prepare(work: Path, name: str, mod: Module) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "mutants")
    for part in ("recsys", "tests", "data"):
        shutil.copytree(ROOT / part, work / part, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    cfg = (ROOT / "setup.cfg").read_text()
    cfg = re.sub(r"\n\[mutmut\].*", "", cfg, flags=re.S)  # (a section of our own below)
    lines = ["", "[mutmut]", "source_paths = recsys", f"only_mutate = {mod.path}", "also_copy = data/",
             # (a wall-clock limit of 15 x (the tests' own time + 8 s): fixtures that fit a zoo are not in the
             # tests' time, and this machine is shared)
             "timeout_constant = 8.0", "pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in mod.tests] + \
            ["pytest_add_cli_args =", "    -p", "    no:randomly", "    -p", "    no:cacheprovider", "    -q"]
    (work / "setup.cfg").write_text(cfg.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


def _env(work: Path) -> dict:
    return dict(os.environ, RECSYS_HYPOTHESIS_PROFILE="mutation", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
                RECSYS_TEST_MODEL_CACHE=str((work / "model-cache").resolve()))


def run_module(name: str, mod: Module, *, jobs: int, work_root: Path, python: Path, again: dict | None = None,
               resume: bool = False) -> dict:
    """Mutate ``mod`` and run its mutants; ``again``: the module's stored results, whose mutants left alive are the
    only ones run (the ones they killed stay killed: tests are only added or sharpened between runs); ``resume``:
    go on with an interrupted run in its work directory (mutmut runs the mutants without a result yet)."""
    work = work_root / name
    todo = None
    if resume and (work / "mutants").exists():  # (mutmut reruns every mutant named: name only those not run yet)
        meta = json.loads((work / "mutants" / f"{mod.path}.meta").read_text())
        todo = [k for k, v in meta["exit_code_by_key"].items()
                if v is None and (not mod.only or any(fnmatch(k, p) for p in mod.only))]
    else:
        _prepare(work, name, mod)
    mutmut = python.parent / "mutmut"
    alive = _alive(name, again) if again else None
    if again and not alive:
        return again  # (nothing left to run)
    cmd = [str(mutmut), "run", "--max-children", str(jobs), *(alive if again else todo if todo is not None else mod.only)]
    t0 = time.perf_counter()
    with open(work / "run.log", "w") as log:
        proc = subprocess.run(cmd, cwd=work, env=_env(work), stdout=log, stderr=subprocess.STDOUT)
    res = collect(name, mod, work=work, python=python, seconds=time.perf_counter() - t0, jobs=jobs,
                  returncode=proc.returncode, keep=set(alive) if again else None)
    return merge_again(name, mod, again, res, jobs) if again else res


def _alive(name: str, again: dict) -> list[str]:
    """The mutants a stored run left alive that are not listed as equivalent: those run again."""
    return [m["name"] for m in again["mutants"]
            if m["status"] not in KILLED and not _equivalent(name, m["function"], m.get("line", ""))]


def _selection_grows(before: list[str], now: list[str]) -> bool:
    """Whether the test selection ``now`` holds every test of ``before``: the same options (``-k``, ``-m`` and
    their expressions), and every test path of ``before`` (a mutant it killed stays killed)."""
    def split(sel):
        paths, opts, i = [], [], 0
        while i < len(sel):
            if sel[i].startswith("-"):
                opts += sel[i:i + 2]
                i += 2
            else:
                paths.append(sel[i])
                i += 1
        return paths, opts

    (p0, o0), (p1, o1) = split(before), split(now)
    return o0 == o1 and set(p0) <= set(p1)


def merge_again(name: str, mod: Module, again: dict, res: dict, jobs: int) -> dict:
    """A run of ``--again`` merged into the stored run ``again``: the mutants it ran take their new status; the
    others (killed, listed as equivalent, or not reached by an interrupted run again) keep theirs."""
    rerun = {m["name"] for m in res["mutants"]}
    kept = [m for m in again["mutants"] if m["name"] not in rerun
            and (not mod.only or any(fnmatch(m["name"], p) for p in mod.only))]
    res["again"] = {"date": res["date"], "seconds": res["seconds"], "jobs": jobs, "run": len(rerun),
                    "kept": len(kept), "not_reached": res.get("not_run", 0)}
    if again.get("tests") != res["tests"]:  # (tests added to the selection since the first run)
        res["again"]["first_tests"] = again.get("tests")
    res["mutants"] = kept + res["mutants"]
    res["date"], res["seconds"], res["jobs"] = again["date"], again["seconds"], again["jobs"]
    res["not_run"] = again.get("not_run", 0)  # (an interrupted run's mutants not run are still not run)
    return res


def collect(name: str, mod: Module, *, work: Path, python: Path, seconds: float, jobs: int, returncode: int,
            keep: set | None = None) -> dict:
    """The results of a module's run, from its work directory (``--collect``: of a run that was interrupted,
    its mutants not run yet left out and counted; ``keep``: only these mutants, the ones run again)."""
    env = _env(work)
    meta = json.loads((work / "mutants" / f"{mod.path}.meta").read_text())
    codes = {k: v for k, v in meta["exit_code_by_key"].items() if not mod.only or any(fnmatch(k, p) for p in mod.only)}
    if keep is not None:
        codes = {k: v for k, v in codes.items() if k in keep}
    not_run = sum(v is None for v in codes.values())
    codes = {k: v for k, v in codes.items() if v is not None}
    left = [k for k, code in codes.items() if _status(code) not in KILLED]
    diffs = _diffs(python, work, mod.path, left, env)
    mutants = []
    for key, code in codes.items():
        entry = {"name": key, "function": _function(key), "status": _status(code)}
        if key in diffs:
            entry["line"] = _changed_line(diffs[key])
        mutants.append(entry)
    return {"module": mod.path, "tests": mod.tests, "only": mod.only, "note": mod.note, "seconds": round(seconds),
            "jobs": jobs, "returncode": returncode, "not_run": not_run, "mutants": mutants,
            "date": _dt.date.today().isoformat(), "mutmut": _mutmut_version(python)}


def _summary(name: str, res: dict) -> dict:
    counts = {"mutants": 0, "killed": 0, "timeout": 0, "equivalent": 0, "survived": 0, "other": 0}
    survivors, equivalents = [], []
    for m in res["mutants"]:
        counts["mutants"] += 1
        if m["status"] in KILLED:
            counts["killed"] += 1
            counts["timeout"] += m["status"] == "timeout"
            continue
        reason = _equivalent(name, m["function"], m.get("line", ""))
        if reason:
            counts["equivalent"] += 1
            equivalents.append((m, reason))
        else:
            counts["survived" if m["status"] == "survived" else "other"] += 1
            survivors.append(m)
    scored = counts["mutants"] - counts["equivalent"]
    counts["score"] = counts["killed"] / scored if scored else float("nan")
    return {"counts": counts, "survivors": survivors, "equivalents": equivalents}


def _md_cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`" if text else "(line removed)"


def report(results: dict) -> str:
    order = [n for n in MODULES if n in results] + [n for n in results if n not in MODULES]
    versions = sorted({results[n]["mutmut"] for n in order})
    out = ["# Mutation testing of the core", "",
           "Generated by `make mutate` (`python benchmarks/mutation.py`), with mutmut "
           f"{', '.join(versions)}, Python {platform.python_version()}, on {platform.machine()} "
           f"({os.cpu_count()} CPUs, shared). Each module is mutated on its own and its mutants run against its own "
           "test selection (below); a mutant is killed when a test fails (or times out). Score: killed / "
           "(mutants - equivalent). Equivalent mutants change no behaviour a caller can observe; each is listed "
           "with its reason (`benchmarks/mutation_equivalent.py`).", "",
           "| module | mutants | killed (of which timed out) | equivalent | not killed | score | minutes (jobs) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    details = []
    for name in order:
        res = results[name]
        s = _summary(name, res)
        c = s["counts"]
        left = c["survived"] + c["other"]
        run = f"{c['mutants']} (of {c['mutants'] + res['not_run']}: interrupted)" if res.get("not_run") else c["mutants"]
        run = f"{run} (old code)" if res.get("remark", "").startswith("run on the code before") else run
        out.append(f"| `{res['module']}` | {run} | {c['killed']} ({c['timeout']}) | {c['equivalent']} | {left} | "
                   f"{100 * c['score']:.1f}% | {res['seconds'] / 60:.1f} ({res['jobs']}) |")
        details += ["", f"## `{res['module']}`", "",
                    f"Run on {res['date']}: `python benchmarks/mutation.py --modules {name}` = `mutmut run "
                    f"--max-children {res['jobs']}{''.join(' ' + repr(p) for p in res['only'])}` with "
                    f"`pytest_add_cli_args_test_selection = {' '.join(res['tests'])}`."]
        if res.get("again"):
            a = res["again"]
            reached = (f" (interrupted: {a['not_reached']} of those left alive not reached, they keep their status)"
                       if a.get("not_reached") else "")
            selection = (f"against the selection above (the first run's was `{' '.join(a['first_tests'])}`)"
                         if a.get("first_tests") else "against the same selection")
            details.append(f"Run again on {a['date']} after tests were added (`--again`): {a['run']} mutants it "
                           f"left alive and not listed as equivalent, {selection}, in "
                           f"{a['seconds'] / 60:.1f} minutes ({a.get('jobs', res['jobs'])} jobs){reached}; the "
                           f"{a['kept']} others keep their status.")
        if res["note"]:
            details.append(f"Restricted: {res['note']}.")
        if res.get("remark"):
            details.append(f"**Note**: {res['remark']}.")
        if res.get("not_run"):
            details.append(f"**Interrupted**: {res['not_run']} mutants were not run; the counts above are of those run.")
        if s["survivors"]:
            details += ["", "Not killed:", ""]
            details += [f"- `{m['name']}` ({m['status']}): {_md_cell(m.get('line', ''))}" for m in s["survivors"]]
        if s["equivalents"]:
            details += ["", "Equivalent:", ""]
            details += [f"- `{m['function']}`: {_md_cell(m.get('line', ''))}: {reason}" for m, reason in s["equivalents"]]
    return "\n".join(out + details) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", default=",".join(MODULES), help="comma-separated, of: " + ", ".join(MODULES))
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once (mutmut --max-children)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "mutation")
    ap.add_argument("--report", action="store_true", help="only rewrite mutation.md from mutation.json")
    ap.add_argument("--collect", action="store_true",
                    help="read the modules' results from their work directories (an interrupted run) instead of "
                         "running them")
    ap.add_argument("--resume", action="store_true",
                    help="go on with an interrupted run in its work directory (its tests as copied then)")
    ap.add_argument("--again", action="store_true",
                    help="run only the mutants that the stored results of the module left alive and that are not "
                         "listed as equivalent (after tests were added); the others keep their status")
    args = ap.parse_args(argv)
    store = args.out / "mutation.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    if not args.report:
        names = [n.strip() for n in args.modules.split(",") if n.strip()]
        unknown = [n for n in names if n not in MODULES]
        if unknown:
            ap.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
        for name in names:
            print(f"mutating {MODULES[name].path} ...", flush=True)
            if args.collect:
                work = args.work / name  # (its time: from the work directory's set-up to the last mutant's result)
                seconds = ((work / "mutants" / f"{MODULES[name].path}.meta").stat().st_mtime
                           - (work / "setup.cfg").stat().st_mtime)
                again = results.get(name) if args.again else None
                res = collect(name, MODULES[name], work=work, python=Path(sys.executable), seconds=seconds,
                              jobs=args.jobs, returncode=-1, keep=set(_alive(name, again)) if again else None)
                if again:  # (an interrupted --again run: the mutants it did not reach keep their status)
                    res = merge_again(name, MODULES[name], again, res, args.jobs)
            else:
                again = results.get(name) if args.again else None
                if args.again and (again is None or again.get("only") != MODULES[name].only
                                   or not _selection_grows(again.get("tests", []), MODULES[name].tests)):
                    ap.error(f"--again needs a stored run of {name} with the same mutants, and tests that the "
                             f"current selection still holds")
                res = run_module(name, MODULES[name], jobs=args.jobs, work_root=args.work, python=Path(sys.executable),
                                 again=again, resume=args.resume)
                if args.resume and results.get(name, {}).get("seconds"):
                    res["seconds"] += results[name]["seconds"]  # (the interrupted part's time too)
            # (another run may have written other modules meanwhile: merge into what is there now)
            results = json.loads(store.read_text()) if store.exists() else {}
            results[name] = res
            c = _summary(name, results[name])["counts"]
            print(f"  {c['mutants']} mutants run, {c['killed']} killed, {c['equivalent']} equivalent, "
                  f"{c['survived'] + c['other']} left: {100 * c['score']:.1f}% in {results[name]['seconds']} s",
                  flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    (args.out / "mutation.md").write_text(report(results))
    print(f"wrote {args.out / 'mutation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
