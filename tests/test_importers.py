"""recsys.importers without a tracking store: model cards, run tables, what the importers share.

Model cards are realistic README.md files (a YAML header with base_model and a model-index of several
results and metrics, as the Hub's cards hold them) parsed by huggingface_hub; run tables are written
the way W&B's API export snippet, W&B's UI export and a spreadsheet write them. Every import is fitted
and asked for its top-k. The MLflow stores are in tests/test_import_mlflow.py.
"""

from __future__ import annotations

import errno
import json
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import ROOT
from recsys.cli import main
from recsys.errors import UsageError
from recsys.importers import ImportSourceError, from_csv, from_model_cards
from recsys.importers._core import metric_direction, parse_metric
from recsys.importers.mlflow_store import Key, locate, parse_key
from recsys.zoo import Zoo, load_zoo

EXAMPLE = ROOT / "data" / "example-zoo"


def records(zoo) -> dict:
    return {(str(m), str(d)): round(float(a), 6) for m, d, a in zoo.records[["model", "dataset", "accuracy"]]
            .itertuples(index=False)}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def fit_and_topk(zoo_dir: Path, dataset: str, tmp: Path, k: int = 2) -> list[dict]:
    model = tmp / f"{zoo_dir.name}.npz"
    res = cli("-q", "fit", "--zoo", zoo_dir, "--text-encoder", "hashing", "--no-calibrate", "--out", model)
    assert res.exit_code == 0, res.stderr
    res = cli("-q", "topk", "--model", model, "--dataset", dataset, "-k", k, "--format", "json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)
    known = records(load_zoo(zoo_dir))
    assert len(rows) == k and [r["predicted"] for r in rows] == sorted((r["predicted"] for r in rows), reverse=True)
    for r in rows:
        assert r["known"] is None or r["known"] == pytest.approx(known[(r["model"], dataset)], abs=1e-6)
    return rows


# ---------------------------------------------------------------------------
# values and keys


@pytest.mark.parametrize("raw, value, pct", [
    (0.912, 0.912, False), (91.2, 91.2, False), ("0.912", 0.912, False), ("91.2%", 0.912, True),
    ("91.2 ± 0.3", 91.2, False), ("91.2±0.3", 91.2, False), ("91.2 +/- 0.3", 91.2, False),
    ("(91.2 ± 0.3)", 91.2, False), ("91,2", 91.2, False), ("91.2 % ± 0.3 %", 0.912, True), ("1e-1", 0.1, False),
])
def test_metric_values_are_read(raw, value, pct):
    got, written_pct, problem = parse_metric(raw)
    assert problem is None and got == pytest.approx(value) and written_pct == pct


@pytest.mark.parametrize("raw", ["about 90", "91.2 ± ", "high", True, "1.234,5", "91.2 ± 0.3 ± 0.1"])
def test_metric_values_are_refused_in_one_line(raw):
    got, _, problem = parse_metric(raw)
    assert got is None and problem and "\n" not in problem


def test_keys_parse_as_mlflow_search_writes_them():
    assert parse_key("params._name_or_path") == Key("params", "_name_or_path")
    assert parse_key("param.lr") == Key("params", "lr") and parse_key("tag.dataset") == Key("tags", "dataset")
    assert parse_key("metrics.eval_accuracy") == Key("metrics", "eval_accuracy")
    assert parse_key("params.`model.name`") == Key("params", "model.name")
    assert parse_key("attributes.run_name") == Key("run_name") == parse_key("run_name")
    assert parse_key("experiment_name") == Key("experiment_name")
    assert str(parse_key("inputs.dataset")) == "inputs.dataset"
    with pytest.raises(UsageError, match="did you mean params.dataset_name"):
        parse_key("dataset_name", "--dataset-key")
    with pytest.raises(UsageError, match="params.NAME, tags.NAME"):
        parse_key("config.model", "--model-key")


def test_stores_are_located_without_writing(tmp_path):
    with pytest.raises(ImportSourceError, match="no SQLite file"):
        locate(f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()  # the MLflow client would have created it
    with pytest.raises(ImportSourceError, match="no mlruns folder"):
        locate(tmp_path / "mlruns")
    (tmp_path / "proj" / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "proj" / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    with pytest.raises(ImportSourceError, match="did you mean .*mlruns"):
        locate(tmp_path / "proj")
    assert locate(tmp_path / "proj" / "mlruns").kind == "file"
    assert not (tmp_path / "proj" / "mlruns" / ".trash").exists()
    import sqlite3

    with sqlite3.connect(tmp_path / "other.db") as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(ImportSourceError, match="not an MLflow tracking store"):
        locate(tmp_path / "other.db")  # a plain path to an SQLite file is an SQLite store
    assert locate("http://localhost:5000").kind == "http" and locate("postgresql://h/db").kind == "other"


def test_without_mlflow_one_line_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    res = cli("import", "mlflow", "--tracking-uri", tmp_path / "mlruns", "--out", tmp_path / "zoo")
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'recsys[mlflow]'" in lines[0]


def test_http_settings_are_short_and_the_users_win(monkeypatch):
    import os

    from recsys.importers import mlflow_store

    store = mlflow_store.Store("http://127.0.0.1:9", "http")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    with mlflow_store._client_settings(store):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
        assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] == "0"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"  # the user's own setting
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"


# ---------------------------------------------------------------------------
# model cards


def card(base_model=None, results=None, extra: str = "", body: str = "\n# Model\n\nFine-tuned.\n") -> str:
    """A README.md as the Hub writes them: YAML header (base_model, model-index), a markdown body."""
    head = {"license": "apache-2.0", "library_name": "transformers", "tags": ["generated_from_trainer"]}
    if base_model is not None:
        head["base_model"] = base_model
    if results is not None:
        head["model-index"] = [{"name": "my-finetune", "results": results}]
    import yaml

    return "---\n" + yaml.safe_dump(head, sort_keys=False) + extra + "---\n" + body


def result(dataset: str, metrics: dict, split: str | None = "test", config: str | None = None,
           task: str = "image-classification") -> dict:
    ds = {"name": dataset.title(), "type": dataset}
    if config:
        ds["config"] = config
    if split:
        ds["split"] = split
    return {"task": {"type": task, "name": "Image Classification"}, "dataset": ds,
            "metrics": [{"type": k, "value": v, "name": k.title()} for k, v in metrics.items()]}


@pytest.fixture
def cards(tmp_path):
    d = tmp_path / "cards"
    files = {
        "vit-beans/README.md": card("google/vit-base-patch16-224", [
            result("beans", {"accuracy": 0.9766, "f1": 0.97}, split="test"),
            result("beans", {"accuracy": 0.9925}, split="validation"),  # the test split is preferred
            result("cifar10", {"accuracy": "91.2 ± 0.3", "loss": 0.31}, config="plain_text", split="test"),
        ]),
        "resnet-beans/README.md": card("microsoft/resnet-50", [result("beans", {"accuracy": 85.3})]),  # percent
        "resnet-cifar/README.md": card(["microsoft/resnet-50"], [
            result("cifar10", {"accuracy": "88.0%"}, config="plain_text", split=None)]),
        "convnext/README.md": card("facebook/convnext-tiny-224", [
            result("beans", {"accuracy": 0.95}, split="validation"), result("food101", {"accuracy": 0.81})]),
        "no-base/README.md": card(None, [result("beans", {"accuracy": 0.9})]),
        "merge/README.md": card(["a/x", "b/y"], [result("beans", {"accuracy": 0.9})]),
        "f1-only/README.md": card("bert-base-uncased", [result("imdb", {"f1": 0.91}, task="text-classification")]),
        "not-a-number/README.md": card("distilbert-base-uncased", [result("imdb", {"accuracy": "about 91"})]),
        "no-results/README.md": card("gpt2"),
        "no-header/README.md": "# Just a README\n\nNo metadata here.\n",
        "broken-yaml/README.md": "---\nbase_model: x\nmodel-index: [unclosed\n---\n# Broken\n",
        "empty/README.md": "",
        "bad-index/README.md": card("roberta-base", extra="model-index:\n- results:\n  - task: {type: x}\n"),
    }
    for name, text in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return d


EXPECTED_CARDS = {("google/vit-base-patch16-224", "beans"): 0.9766,
                  ("google/vit-base-patch16-224", "cifar10/plain_text"): 0.912,
                  ("microsoft/resnet-50", "beans"): 0.853, ("microsoft/resnet-50", "cifar10/plain_text"): 0.88,
                  ("facebook/convnext-tiny-224", "beans"): 0.95, ("facebook/convnext-tiny-224", "food101"): 0.81}


def test_model_cards_become_records_and_skips_are_listed_by_reason(cards, tmp_path):
    res = cli("import", "model-cards", cards, "--out", tmp_path / "zoo")
    assert res.exit_code == 0, res.stderr
    zoo = load_zoo(tmp_path / "zoo")
    assert records(zoo) == EXPECTED_CARDS
    err = res.stderr
    assert "read 13 cards" in err
    for reason in ("1 without base_model (no-base/README.md)",
                   "1 with several base_model entries (a merge or an adapter of several models) (merge/README.md)",
                   "1 without a result for accuracy (f1-only/README.md: f1)",
                   "1 without model-index results (no-results/README.md)",
                   "1 without a YAML header (--- ... ---) (no-header/README.md)",
                   "1 with YAML that does not parse (broken-yaml/README.md: line 3)", "1 empty (empty/README.md)",
                   "1 whose model-index huggingface_hub cannot read (bad-index/README.md: KeyError 'name')"):
        assert reason in err, (reason, err)
    assert "skipped 8 of 13 cards" in err
    assert ("skipped 1 result: 1 whose accuracy is not a number (not-a-number/README.md: imdb (test): 'about 91' is "
            "not a number such as 0.912, 91.2, 91.2% or 91.2 ± 0.3)") in err
    assert "accuracy of 3 results is a percentage" in err
    assert "6 results -> 6 records of 3 models x 3 datasets" in err
    rows = fit_and_topk(tmp_path / "zoo", "beans", tmp_path, k=3)
    assert {r["model"]: r["known"] for r in rows} == {"google/vit-base-patch16-224": 0.9766,
                                                      "facebook/convnext-tiny-224": 0.95, "microsoft/resnet-50": 0.853}


def test_model_cards_another_metric_and_single_files(cards):
    zoo = from_model_cards([cards / "vit-beans" / "README.md", cards / "f1-only" / "README.md"], metric="F1")
    assert records(zoo) == {("google/vit-base-patch16-224", "beans"): 0.97, ("bert-base-uncased", "imdb"): 0.91}
    with pytest.raises(ImportSourceError, match="the cards report accuracy"):
        from_model_cards(cards / "vit-beans", metric="bleu")
    with pytest.raises(ImportSourceError, match="no file or folder"):
        from_model_cards(cards / "missing")


def test_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    bomb = ["base_model: x", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, prev in zip("bcdefghij", "abcdefghi"):
        bomb.append(f"{i}: &{i} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb.append("model-index: [{name: m, results: [{task: {type: t}, dataset: {type: d, name: d}, metrics: *j}]}]")
    (tmp_path / "README.md").write_text("---\n" + "\n".join(bomb) + "\n---\n")
    zoo, report = from_model_cards([tmp_path / "README.md", ok_card(tmp_path)], return_report=True)
    assert report.skipped == {"with YAML aliases that expand past 1,000,000 nodes (an alias bomb)": 1}
    assert len(zoo.records) == 1


def ok_card(tmp_path: Path) -> Path:
    p = tmp_path / "ok" / "README.md"
    p.parent.mkdir(exist_ok=True)
    p.write_text(card("google/vit-base-patch16-224", [result("beans", {"accuracy": 0.97})]))
    return p


# ---------------------------------------------------------------------------
# run tables


def test_wandb_api_export_with_config_and_summary_columns(tmp_path):
    """The DataFrame W&B's documentation builds from api.runs() (summary, config, name), saved with to_csv."""
    runs = [("vit", "beans", 0.97, 86e6, "finished"), ("vit", "beans", 0.95, 86e6, "finished"),
            ("resnet", "beans", 0.90, 25e6, "finished"), ("resnet", "cifar10", 0.88, 25e6, "finished"),
            ("vit", "cifar10", 0.93, 86e6, "finished")]
    frame = pd.DataFrame({
        "summary": [{"eval/accuracy": acc, "eval/loss": 0.2, "_runtime": 60, "train/global_step": 30,
                     "eval/hist": {"_type": "histogram"}} for _, _, acc, _, _ in runs],
        "config": [{"_name_or_path": f"google/{m}", "dataset_name": d, "num_parameters": n, "seed": i,
                    "report_to": ["wandb"], "bf16": False} for i, (m, d, _, n, _) in enumerate(runs)],
        "name": [f"run-{i}" for i in range(len(runs))]})
    frame.to_csv(tmp_path / "project.csv")
    res = cli("import", "csv", tmp_path / "project.csv", "--model", "config._name_or_path", "--dataset",
              "config.dataset_name", "--metric", "summary.eval/accuracy", "--model-meta", "config.num_parameters",
              "--agg", "mean", "--out", tmp_path / "zoo")
    assert res.exit_code == 0, res.stderr
    zoo = load_zoo(tmp_path / "zoo")
    assert records(zoo) == {("google/vit", "beans"): 0.96, ("google/resnet", "beans"): 0.9,
                            ("google/resnet", "cifar10"): 0.88, ("google/vit", "cifar10"): 0.93}
    assert zoo.models.loc["google/vit", "num_parameters"] == 86e6
    assert "(--agg mean: 3 from 1 row, 1 from 2 rows)" in res.stderr
    fit_and_topk(tmp_path / "zoo", "cifar10", tmp_path)


def test_wandb_ui_export_keeps_finished_runs(tmp_path):
    (tmp_path / "export.csv").write_text(textwrap.dedent("""\
        Name,State,Notes,User,Tags,Created,Runtime,Sweep,model,dataset,eval/accuracy,learning_rate
        run-1,finished,-,me,,2024-01-01T00:00:00.000Z,100,,resnet50,beans,0.91,0.001
        run-2,crashed,-,me,,2024-01-01T00:00:00.000Z,10,,resnet50,beans,0.12,0.001
        run-3,finished,-,me,,2024-01-01T00:00:00.000Z,100,,vit,beans,0.95,0.0001
        run-4,running,-,me,,2024-01-01T00:00:00.000Z,5,,vit,cifar10,0.50,0.0001
        run-5,finished,-,me,,2024-01-01T00:00:00.000Z,100,,vit,cifar10,0.92,0.0001
        run-6,finished,-,me,,2024-01-01T00:00:00.000Z,100,,resnet50,cifar10,,0.001
        """))
    zoo, report = from_csv(tmp_path / "export.csv", model="model", dataset="dataset", metric="eval/accuracy",
                           return_report=True)
    assert records(zoo) == {("resnet50", "beans"): 0.91, ("vit", "beans"): 0.95, ("vit", "cifar10"): 0.92}
    assert report.skipped == {"whose State is not finished (crashed)": 1, "whose State is not finished (running)": 1,
                              "without eval/accuracy": 1}
    assert report.examples["without eval/accuracy"] == ["row 6"]


def test_spreadsheet_with_semicolons_percent_signs_and_odd_names(tmp_path):
    text = ('Base model;Data set;Top-1;Params (M)\n'
            '"convnext, tiny";"cub ""birds""";83,5%;28.6\n'
            '"vit\nb/16";"cub ""birds""";88,1%;86.6\n'
            '"convnext, tiny";stanford cars;81 %;28.6\n'
            '"vit\nb/16";stanford cars;0.9;86.6\n')
    (tmp_path / "sheet.csv").write_text(text, encoding="utf-8-sig")  # Excel writes a BOM
    res = cli("import", "csv", tmp_path / "sheet.csv", "--model", "Base model", "--dataset", "Data set", "--metric",
              "Top-1", "--model-meta", "Params (M)", "--out", tmp_path / "zoo")
    assert res.exit_code == 0, res.stderr
    zoo = load_zoo(tmp_path / "zoo")
    assert records(zoo) == {("convnext, tiny", 'cub "birds"'): 0.835, ("vit b/16", 'cub "birds"'): 0.881,
                            ("convnext, tiny", "stanford cars"): 0.81, ("vit b/16", "stanford cars"): 0.9}
    assert "Top-1 of 3 rows is a percentage" in res.stderr and "1 row already on a 0-1 scale kept" in res.stderr
    fit_and_topk(tmp_path / "zoo", 'cub "birds"', tmp_path)


def test_csv_unknown_column_names_the_closest(tmp_path):
    (tmp_path / "runs.csv").write_text("model,dataset,accuracy\nresnet50,beans,0.9\n")
    res = cli("import", "csv", tmp_path / "runs.csv", "--model", "model", "--dataset", "datset", "--metric",
              "accuracy", "--out", tmp_path / "zoo")
    assert res.exit_code == 2 and "did you mean 'dataset'" in res.stderr
    assert not (tmp_path / "zoo").exists()


# ---------------------------------------------------------------------------
# metrics where lower is better


@pytest.mark.parametrize("metric, refused", [
    ("eval_accuracy", None), ("Top-1", None), ("summary.eval/accuracy", None), ("f1", None), ("summer", None),
    ("meanAveragePrecision", None), ("eval_loss", "loss"), ("evalLoss", "loss"), ("summary.val/perplexity", "loss"),
    ("test_rmse", "loss"), ("wer", "error"), ("test/wer", "error"), ("top1_err", "error"),
    ("Error Rate", "error"), ("errorRate", "error")])
def test_a_metric_named_as_a_loss_or_an_error_rate_is_refused_until_its_direction_is_given(metric, refused):
    if refused is None:
        assert metric_direction(metric, None) is False
    else:
        words = ("as a loss" if refused == "loss" else
                 r"--lower-is-better \(lower_is_better=True in Python\) to record 1 -")
        with pytest.raises(UsageError, match=words):
            metric_direction(metric, None)
    assert metric_direction(metric, True) is True and metric_direction(metric, False) is False


def test_an_error_rate_is_recorded_as_one_minus_it_and_the_best_run_is_the_lowest(tmp_path):
    text = ("model,dataset,wer\n"
            "whisper-small,librispeech,12.5\n"     # percent: 0.875
            "whisper-small,librispeech,0.09\n"     # a fraction, the better run: 0.91
            "wav2vec2-base,librispeech,8.1%\n"     # 0.919
            "wav2vec2-base,common voice,0.3\n"
            "whisper-small,common voice,0.2\n")
    (tmp_path / "asr.csv").write_text(text)
    args = ("import", "csv", tmp_path / "asr.csv", "--model", "model", "--dataset", "dataset", "--metric", "wer")
    res = cli(*args, "--out", tmp_path / "refused")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("error: give --lower-is-better (lower_is_better=True in Python) to record 1 - wer")
    assert not (tmp_path / "refused").exists()
    res = cli(*args, "--lower-is-better", "--out", tmp_path / "zoo")
    assert res.exit_code == 0, res.stderr
    assert records(load_zoo(tmp_path / "zoo")) == {
        ("whisper-small", "librispeech"): 0.91, ("wav2vec2-base", "librispeech"): 0.919,
        ("wav2vec2-base", "common voice"): 0.7, ("whisper-small", "common voice"): 0.8}
    assert "wer is an error rate (lower is better): each value recorded as 1 - wer" in res.stderr
    rows = fit_and_topk(tmp_path / "zoo", "common voice", tmp_path)
    assert rows[0]["model"] == "whisper-small"  # the lower error rate ranks first
    res = cli(*args, "--higher-is-better", "--out", tmp_path / "as-is")  # the user's word: read as it is
    assert res.exit_code == 0 and records(load_zoo(tmp_path / "as-is"))[("whisper-small", "common voice")] == 0.2


def test_a_loss_is_refused_before_the_source_is_read(tmp_path):
    with pytest.raises(UsageError, match="^give a metric where higher is better.*eval_loss"):
        from_csv(tmp_path / "missing.csv", model="m", dataset="d", metric="eval_loss", out=tmp_path / "zoo")
    assert not (tmp_path / "zoo").exists()


def test_model_cards_of_speech_models_report_wer(tmp_path):
    d = tmp_path / "cards"
    d.mkdir()
    (d / "README.md").write_text(card("openai/whisper-small", [
        result("librispeech_asr", {"wer": 3.4}, task="automatic-speech-recognition"),
        result("common_voice", {"wer": 0.12}, task="automatic-speech-recognition")]), encoding="utf-8")
    with pytest.raises(UsageError, match="--lower-is-better"):
        from_model_cards(d, metric="wer")
    zoo = from_model_cards(d, metric="wer", lower_is_better=True)
    assert records(zoo) == {("openai/whisper-small", "librispeech_asr"): 0.966,
                            ("openai/whisper-small", "common_voice"): 0.88}


# ---------------------------------------------------------------------------
# writing: --append, atomicity


def test_append_into_a_zoo_of_ones_own(tmp_path):
    out = tmp_path / "zoo"
    example = load_zoo(EXAMPLE)
    example.write(out)
    (out / "notes.txt").write_text("mine")
    (tmp_path / "runs.csv").write_text("model,dataset,acc\nresnet50,cub birds,0.9\nresnet50,beans,0.8\n"
                                       "new-model,cub birds,0.5\n")
    res = cli("import", "csv", tmp_path / "runs.csv", "--model", "model", "--dataset", "dataset", "--metric", "acc",
              "--append", "--agg", "last", "--out", out)
    assert res.exit_code == 0, res.stderr
    zoo = load_zoo(out)
    got, old = records(zoo), records(example)
    assert got[("resnet50", "cub birds")] == 0.9 != old[("resnet50", "cub birds")]  # --agg last: the import wins
    assert got[("resnet50", "beans")] == 0.8 and got[("new-model", "cub birds")] == 0.5
    assert len(got) == len(old) + 2
    assert zoo.dataset_roles.text == example.dataset_roles.text  # the zoo's own texts; no name text added
    assert "name_text" in zoo.model_roles.text  # models had no text: names become their text, for all
    assert zoo.models.loc["resnet50", "family"] == "resnet"
    assert (out / "notes.txt").read_text() == "mine"
    assert "1 with another accuracy resolved by --agg last (0 kept the zoo's value, 1 changed it)" in res.stderr
    fit_and_topk(out, "beans", tmp_path)


def test_a_failed_write_leaves_the_zoo_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "zoo"
    load_zoo(EXAMPLE).write(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "runs.csv").write_text("model,dataset,acc\nresnet50,cub birds,0.9\n")
    real = Zoo.write

    def full_disk(self, directory):
        real(self, directory)  # every file written into the staging directory, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Zoo, "write", full_disk)
    res = cli("import", "csv", tmp_path / "runs.csv", "--model", "model", "--dataset", "dataset", "--metric", "acc",
              "--append", "--out", out)
    assert res.exit_code == 1 and "unchanged" in res.stderr and "No space left" in res.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging directory left either
    res = cli("import", "csv", tmp_path / "runs.csv", "--model", "model", "--dataset", "dataset", "--metric", "acc",
              "--out", tmp_path / "new")
    assert res.exit_code == 1 and not (tmp_path / "new").exists()  # a directory it created is removed


def test_out_must_be_a_directory_without_a_zoo(tmp_path):
    (tmp_path / "runs.csv").write_text("model,dataset,acc\nresnet50,cub birds,0.9\n")
    (tmp_path / "file").write_text("x")
    res = cli("import", "csv", tmp_path / "runs.csv", "--model", "model", "--dataset", "dataset", "--metric", "acc",
              "--out", tmp_path / "file")
    assert res.exit_code == 2 and "is a file" in res.stderr
    res = cli("import", "csv", tmp_path / "runs.csv", "--model", "model", "--dataset", "dataset", "--metric", "acc",
              "--out", EXAMPLE)
    assert res.exit_code == 2 and "already holds a zoo" in res.stderr


def test_a_row_whose_name_holds_an_invisible_character_is_skipped_with_its_reason(tmp_path):
    (tmp_path / "runs.csv").write_text("model,dataset,accuracy\nresnet50,beans,0.9\nres\u200bnet,beans,0.8\n"
                                       "vit\tb/16,\"bea\nns\",0.7\n", encoding="utf-8")
    res = cli("import", "csv", tmp_path / "runs.csv", "--model", "model", "--dataset", "dataset", "--metric",
              "accuracy", "--out", tmp_path / "zoo")
    assert res.exit_code == 0, res.stderr
    assert "1 whose model name holds an invisible character" in res.stderr and "U+200B" in res.stderr
    assert records(load_zoo(tmp_path / "zoo")) == {("resnet50", "beans"): 0.9, ("vit b/16", "bea ns"): 0.7}
