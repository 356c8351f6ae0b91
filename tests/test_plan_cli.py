"""`recsys plan`, `--known` and `--results` on the command line (issue 18)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from recsys.cli import main

from conftest import ROOT

EXAMPLE = ROOT / "data" / "example-zoo"
PARAMS = {"resnet50": 25.6, "google/vit-base-patch16-224": 86.6, "convnext tiny": 28.6, "efficientnet_b0": 5.3,
          "mobilenet v3 large": 5.5}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "ex.npz"
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--out", str(path), "--text-encoder",
                                    "hashing"])
    assert res.exit_code == 0, res.stderr
    return path


def run(*args) -> tuple[list[dict], str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr
    return list(csv.DictReader(io.StringIO(res.stdout))), res.stderr


def test_plan_columns_and_order(model):
    rows, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 3, "--format", "csv")
    assert list(rows[0]) == ["step", "model", "dataset", "predicted", "lower", "upper", "p_best", "expected_best",
                             "p_found"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and len({r["model"] for r in rows}) == 3
    eb = [float(r["expected_best"]) for r in rows]
    pf = [float(r["p_found"]) for r in rows]
    assert eb == sorted(eb) and pf == sorted(pf) and 0 < pf[-1] <= 1
    for r in rows:
        assert float(r["lower"]) <= float(r["predicted"]) <= float(r["upper"])
    again, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 3, "--format", "csv")
    assert again == rows  # deterministic


def test_a_result_changes_the_plan_without_a_refit(model, tmp_path):
    before = model.read_bytes()
    first, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 2, "--format", "csv")
    top = first[0]["model"]
    after, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 2, "--format", "csv", "--known",
                   f"{top}=0.40")
    assert top not in [r["model"] for r in after]
    assert model.read_bytes() == before  # nothing written
    results = tmp_path / "results.csv"
    results.write_text(f"model,accuracy\n{top},0.40\n")
    same, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 2, "--format", "csv", "--results",
                  results)
    assert same == after


def test_candidates_and_cost(model, tmp_path):
    cands = tmp_path / "gpu.txt"
    cands.write_text("# fits my GPU\nefficientnet_b0\nmobilenet v3 large\n\nresnet50\n")
    rows, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 3, "--candidates", cands,
                  "--format", "csv")
    assert {r["model"] for r in rows} == {"efficientnet_b0", "mobilenet v3 large", "resnet50"}
    rows, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 40, "--cost", "params_millions",
                  "--format", "csv")
    assert rows and sum(PARAMS[r["model"]] for r in rows) <= 40 + 1e-9
    assert "google/vit-base-patch16-224" not in [r["model"] for r in rows]  # 86.6 does not fit in 40


def test_known_in_topk_and_predict(model):
    rows, err = run("topk", "--model", model, "--dataset", "stanford cars", "-k", 5, "--format", "csv", "--known",
                    "resnet50=0.99")
    assert rows[0]["model"] == "resnet50" and float(rows[0]["known"]) == 0.99
    assert "resnet50 on stanford cars: the given result 0.99 replaces the stored record" in err
    plain, _ = run("predict", "--model", model, "--dataset", "stanford cars", "--format", "csv")
    cond, _ = run("predict", "--model", model, "--dataset", "stanford cars", "--format", "csv", "--known",
                  "resnet50=0.99")
    free = [i for i, r in enumerate(plain) if r["known"] == ""]
    assert free and all(float(cond[i]["predicted"]) != float(plain[i]["predicted"]) for i in free)
    res = CliRunner().invoke(main, ["topk", "--model", str(model), "--set", "domain=photo", "-k", "5", "--format",
                                    "json", "--known", "convnext tiny=0.5"])
    assert {r["model"]: r["known"] for r in json.loads(res.stdout)}["convnext tiny"] == 0.5


def test_python_and_cli_plans_agree(model):
    from recsys.recommender import Recommender

    rec = Recommender.load(model)
    py = rec.plan_new({"domain": "photo"}, 3, known={"resnet50": 0.7})
    rows, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 3, "--known", "resnet50=0.7",
                  "--format", "csv")
    assert py["model"].tolist() == [r["model"] for r in rows]
    np.testing.assert_allclose(py["expected_best"], [float(r["expected_best"]) for r in rows], rtol=1e-5)


def test_a_result_written_as_a_percentage_reads_as_its_fraction(model, tmp_path):
    """81% on the command line (and in a --results file) is 0.81; a bare 81 stays refused (the zoo's scale is
    [0, 1]), in one line that says how to write it."""
    (tmp_path / "results.csv").write_text("model,accuracy\nconvnext tiny,71.5 %\n")
    rows, _ = run("predict", "--model", model, "--set", "domain=photo", "--format", "csv", "--known", "resnet50=81%",
                  "--results", tmp_path / "results.csv")
    same, _ = run("predict", "--model", model, "--set", "domain=photo", "--format", "csv", "--known",
                  "resnet50=0.81", "--known", "convnext tiny=0.715")
    assert float({r["model"]: r["known"] for r in rows}["resnet50"]) == 0.81
    assert rows == same
    res = CliRunner().invoke(main, ["-q", "topk", "--model", str(model), "--set", "domain=photo", "--known",
                                    "resnet50=81"])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("error: give the accuracy of model 'resnet50' as a finite fraction in [0, 1]")
    res = CliRunner().invoke(main, ["-q", "topk", "--model", str(model), "--set", "domain=photo", "--known",
                                    "resnet50=%"])
    assert res.exit_code == 2 and "give a fraction such as 0.81, or 81%" in res.stderr


def test_the_plan_says_how_likely_the_best_result_so_far_is_to_stay_the_best(model):
    """With results (or records) on the dataset, one line on stderr names the best of them and P(it stays the best):
    the sum of the known models' P(best) among the candidates and the results, higher for a higher result; without
    any result there is no line."""
    _, err = run("plan", "--model", model, "--set", "domain=photo", "--budget", 2, "--format", "csv")
    assert "stays the best" not in err
    rows, _ = run("plan", "--model", model, "--set", "domain=photo", "--budget", 5, "--format", "csv")
    low, high = rows[-1]["model"], rows[0]["model"]
    _, err = run("plan", "--model", model, "--set", "domain=photo", "--budget", 1, "--known", f"{low}=0.02",
                 "--known", f"{high}=0.03")
    line = [x for x in err.splitlines() if "stays the best" in x]
    assert len(line) == 1 and f"{high} at 0.03," in line[0]
    p_low = float(line[0].rsplit(" ", 1)[1])
    _, err = run("plan", "--model", model, "--set", "domain=photo", "--budget", 1, "--known", f"{high}=0.999")
    (line,) = [x for x in err.splitlines() if "stays the best" in x]
    assert f"{high} at 0.999," in line
    p_high = float(line.rsplit(" ", 1)[1])
    assert p_low < 0.5 < p_high <= 1  # (two results at 2-3%: the models left are likely better; at 99.9% not)
