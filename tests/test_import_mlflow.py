"""`recsys import mlflow` against real MLflow stores written by the real library, the way users write them.

Stores are logged by ``tests/mlflow_logging.py`` in a child process: a real ``transformers.Trainer``
with its MLflow callback (tiny BERT classifiers initialised from a config, no download), and runs
logged with ``mlflow.log_param`` / ``log_metric`` under custom keys. Each store kind is read: a file
store (``mlruns``), an SQLite store (by the SQL reader and by the MLflow client, which must agree) and
a real ``mlflow server`` on a free local port. Every import is then fitted and asked for its top-k.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT
from recsys.cli import main
from recsys.zoo import load_zoo

mlflow = pytest.importorskip("mlflow", reason="the test extra installs mlflow: pip install -e '.[test]'")

from recsys.importers import from_mlflow  # noqa: E402
from recsys.importers import mlflow_store  # noqa: E402

pytestmark = pytest.mark.slow  # every test here writes a real store (MLflow's import and migrations take seconds)

LOGGER = ROOT / "tests" / "mlflow_logging.py"
BASE = {"base": "resnet50", "data": "cub birds", "n_params": "25.6", "train_size": "5994", "lr": "1e-4"}


def run(base=None, **kw) -> dict:
    params = {**BASE, **(base or {})}
    return {"experiment": "vision", "params": {k: v for k, v in params.items() if v is not None}, **kw}


#: runs logged with log_param / log_metric under custom keys: model in params.base, dataset in params.data
#: (or a dataset input), accuracy in metrics.acc, mostly in percent (as many people log it)
PLAIN = [
    run(name="r50-cub-s0", metrics={"acc": [40.0, 71.2]}),        # the latest value counts: 71.2
    run(name="r50-cub-s1", metrics={"acc": 70.0}),
    run({"base": "vit b/16", "n_params": "86.6"}, name="vit-cub", metrics={"acc": 83.4}),
    run({"base": "vit b/16", "n_params": "86.6", "data": "stanford cars", "train_size": "8144"}, name="vit-cars",
        metrics={"acc": 88.0}),
    run({"data": "stanford cars", "train_size": "8144"}, name="r50-cars", metrics={"acc": 80.5}),
    run({"base": "convnext, tiny", "n_params": "28.6"}, name="convnext-cub", metrics={"acc": 80.1}),
    run({"base": "convnext, tiny", "n_params": "28.6", "data": "flowers/102", "train_size": "1020"},
        name="convnext-flowers", metrics={"acc": 95.0}),
    run({"data": "flowers/102", "train_size": "1020"}, name="r50-flowers", metrics={"acc": 90.0}),
    run({"base": "vit b/16", "n_params": "86.6", "data": "stanford cars", "train_size": "8144"}, name="vit-cars-2",
        metrics={"acc": 87.0}),
    # not results: each is skipped and counted
    run(name="failed", metrics={"acc": 10.0}, status="FAILED"),
    run(name="killed", metrics={"acc": 10.0}, status="KILLED"),
    run(name="running", metrics={"acc": 10.0}, status="RUNNING"),
    run(name="nan", metrics={"acc": float("nan")}),
    run(name="inf", metrics={"acc": float("inf")}),
    run({"base": None}, name="no-base", metrics={"acc": 50.0}),
    run(name="too-high", metrics={"acc": 250.0}),
    run(name="no-metric", metrics={"loss": 0.3}),
    # a dataset input (mlflow.log_input) names the dataset; the accuracy is a fraction
    {"experiment": "nlp", "name": "bert-imdb", "params": {"base": "bert-base-uncased", "n_params": "110"},
     "inputs": [{"name": "imdb-test", "context": "eval"}, {"name": "imdb", "context": "train"}],
     "metrics": {"acc": 0.93}},
]
CUSTOM = ["--model-key", "params.base", "--dataset-key", "inputs.dataset", "--dataset-key", "params.data",
          "--metric", "acc"]
EXPECTED_MAX = {("resnet50", "cub birds"): 0.712, ("vit b/16", "cub birds"): 0.834,
                ("vit b/16", "stanford cars"): 0.88, ("resnet50", "stanford cars"): 0.805,
                ("convnext, tiny", "cub birds"): 0.801, ("convnext, tiny", "flowers/102"): 0.95,
                ("resnet50", "flowers/102"): 0.90, ("bert-base-uncased", "imdb"): 0.93}


def log_runs(spec: dict, tmp: Path, timeout: float = 900) -> dict:
    """Log ``spec`` (see tests/mlflow_logging.py) in a child process; the manifest of what it logged."""
    tmp.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "manifest": str(tmp / "manifest.json")}
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run([sys.executable, str(LOGGER), str(tmp / "spec.json")], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "manifest.json").read_text())


def records(zoo) -> dict:
    return {(str(m), str(d)): round(float(a), 6) for m, d, a in zoo.records[["model", "dataset", "accuracy"]]
            .itertuples(index=False)}


def invoke(*args) -> "object":
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr + res.stdout
    return res


def fit_and_topk(zoo_dir: Path, dataset: str, tmp: Path, k: int = 3) -> list[dict]:
    """The round trip a user makes: fit the imported zoo, ask for the best models of one of its datasets.

    Checks what holds whatever the engine predicts: k rows ranked by predicted accuracy, and the accuracy
    recorded for a pair (``known``) equal to the zoo's record.
    """
    model = tmp / f"{zoo_dir.name}.npz"
    invoke("-q", "fit", "--zoo", zoo_dir, "--text-encoder", "hashing", "--no-calibrate", "--out", model)
    out = invoke("-q", "topk", "--model", model, "--dataset", dataset, "-k", k, "--format", "json").stdout
    rows = json.loads(out)
    assert len(rows) == k and [r["rank"] for r in rows] == list(range(1, k + 1))
    assert [r["predicted"] for r in rows] == sorted((r["predicted"] for r in rows), reverse=True)
    known = records(load_zoo(zoo_dir))
    for r in rows:
        assert r["dataset"] == dataset
        if r["known"] is not None:
            assert r["known"] == pytest.approx(known[(r["model"], dataset)], abs=1e-6)
        else:
            assert (r["model"], dataset) not in known
    return rows


# ---------------------------------------------------------------------------
# the stores


@pytest.fixture(scope="module")
def trainer_store(tmp_path_factory):
    """An SQLite store of real Trainer runs: 2 checkpoints x 2 experiments (sst2, imdb), 2 seeds."""
    tmp = tmp_path_factory.mktemp("trainer")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    manifest = log_runs({"uri": uri, "trainer": {"dir": str(tmp), "experiments": ["sst2", "imdb"], "models": 2,
                                                 "seeds": [0, 1]}}, tmp)
    return uri, manifest


@pytest.fixture(scope="module")
def plain_sqlite(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain-sqlite")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    log_runs({"uri": uri, "plain": PLAIN}, tmp)
    return uri


@pytest.fixture(scope="module")
def plain_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain-files")
    log_runs({"uri": f"file:{tmp / 'mlruns'}", "plain": PLAIN}, tmp)
    return tmp / "mlruns"


# ---------------------------------------------------------------------------
# what the Trainer's callback logs, and the defaults that read it


def test_the_trainer_callback_logs_what_the_defaults_read(trainer_store):
    """Read back with the client what a real Trainer logged: the checkpoint it started from is the param
    _name_or_path (not output_dir), the experiment is MLFLOW_EXPERIMENT_NAME, the accuracy eval_accuracy, and
    no param names the dataset."""
    uri, manifest = trainer_store
    client = mlflow.MlflowClient(uri)
    for entry in manifest["trainer"]:
        got = client.get_run(entry["run_id"])
        params = got.data.params
        assert params["_name_or_path"] == entry["checkpoint"]
        assert params["output_dir"] == entry["output_dir"] != entry["checkpoint"]
        assert params["model_type"] == "bert" and "num_train_epochs" in params and "learning_rate" in params
        assert len(params) > 100  # the model config and every TrainingArguments field
        assert not {"dataset", "dataset_name", "model_name_or_path", "base_model"} & set(params)
        assert 0 <= got.data.metrics["eval_accuracy"] <= 1 and "eval_loss" in got.data.metrics
        assert got.info.status == "FINISHED"
        assert client.get_experiment(got.info.experiment_id).name == entry["experiment"]
        assert got.inputs.dataset_inputs == []  # the callback logs no dataset input
    stray = client.get_run(manifest["trainer"][0]["stray_run_id"])  # trainer.evaluate() after train()
    assert stray.data.params == {} and "eval_accuracy" in stray.data.metrics


def test_trainer_runs_import_with_no_flags(trainer_store, tmp_path):
    uri, manifest = trainer_store
    res = invoke("import", "mlflow", "--tracking-uri", uri, "--out", tmp_path / "zoo")
    assert res.stdout.strip() == str(tmp_path / "zoo")
    zoo = load_zoo(tmp_path / "zoo")
    by_pair: dict = {}
    for e in manifest["trainer"]:
        by_pair.setdefault((e["checkpoint"], e["experiment"]), []).append(e["eval_accuracy"])
    assert records(zoo) == {k: round(max(v), 6) for k, v in by_pair.items()}  # --agg max over the seeds
    assert set(zoo.model_ids) == {e["checkpoint"] for e in manifest["trainer"]}  # never an output_dir
    err = res.stderr
    assert "read 9 runs" in err  # 8 trainings + the run trainer.evaluate() opened
    assert "skipped 1 of 9 runs: 1 without a model name" in err
    assert "model names from params._name_or_path (8 runs)" in err
    assert "dataset names from experiment_name (8 runs)" in err
    assert "8 runs -> 4 records of 2 models x 2 datasets (--agg max: 4 from 2 runs)" in err
    assert zoo.model_roles.text == ("name_text",) and zoo.dataset_roles.text == ("name_text",)
    top = fit_and_topk(tmp_path / "zoo", "sst2", tmp_path, k=2)
    assert {r["model"] for r in top} == set(zoo.model_ids) and all(r["known"] is not None for r in top)


def test_the_trainers_eval_loss_is_refused_in_one_line_before_the_store_is_read(trainer_store, tmp_path, monkeypatch):
    """The Trainer logs eval_loss beside eval_accuracy: read as an accuracy, a history of losses would rank the
    worst models first."""
    uri, _ = trainer_store
    monkeypatch.setattr(mlflow_store, "read_runs", lambda *a, **k: pytest.fail("the store was read"))
    res = CliRunner().invoke(main, ["import", "mlflow", "--tracking-uri", uri, "--metric", "eval_loss", "--out",
                                    str(tmp_path / "zoo")])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("error: give a metric where higher is better") and "eval_loss" in res.stderr
    assert not (tmp_path / "zoo").exists()


# ---------------------------------------------------------------------------
# custom keys, skipped runs, aggregation: SQLite (both readers) and a file store


def test_custom_keys_skip_reasons_and_percentages(plain_sqlite, tmp_path):
    res = invoke("import", "mlflow", "--tracking-uri", plain_sqlite, *CUSTOM, "--out", tmp_path / "zoo")
    zoo = load_zoo(tmp_path / "zoo")
    assert records(zoo) == EXPECTED_MAX
    err = res.stderr
    assert f"read {len(PLAIN)} runs" in err
    for reason in ("1 not FINISHED (FAILED) (run 'failed')", "1 not FINISHED (KILLED) (run 'killed')",
                   "1 not FINISHED (RUNNING) (run 'running')", "2 whose acc is not finite (run 'nan'; run 'inf')",
                   "1 without a model name (none of params.base) (run 'no-base')",
                   "1 whose acc is outside [0, 1] and (1, 100] (run 'too-high': 250)",
                   "1 without metric acc (run 'no-metric')"):
        assert reason in err, (reason, err)
    assert f"skipped 8 of {len(PLAIN)} runs" in err
    assert "acc of 9 runs is a percentage" in err and "1 run already on a 0-1 scale kept" in err
    assert "dataset names from params.data (9 runs), inputs.dataset (1 run)" in err
    assert "10 runs -> 8 records of 4 models x 4 datasets (--agg max: 6 from 1 run, 2 from 2 runs)" in err


@pytest.mark.parametrize("agg, cub, cars", [("max", 0.712, 0.88), ("mean", 0.706, 0.875), ("last", 0.70, 0.87)])
def test_agg_combines_the_runs_of_a_pair(plain_sqlite, agg, cub, cars):
    zoo = from_mlflow(plain_sqlite, model_key="params.base", dataset_key=["inputs.dataset", "params.data"],
                      metric="acc", agg=agg)
    got = records(zoo)
    assert got[("resnet50", "cub birds")] == pytest.approx(cub)
    assert got[("vit b/16", "stanford cars")] == pytest.approx(cars)


def test_sql_reader_and_client_give_the_same_zoo(plain_sqlite, trainer_store):
    for uri, kw in ((plain_sqlite, dict(model_key="params.base", dataset_key=["inputs.dataset", "params.data"],
                                        metric="acc", model_meta=["params.n_params", "run_name"],
                                        dataset_meta=["params.train_size"])),
                    (trainer_store[0], dict(model_meta=["params.hidden_size", "params.model_type"])),
                    (plain_sqlite, dict(model_key="run_name", dataset_key="experiment_name", metric="acc",
                                        experiments=["vision"], agg="last"))):
        sql, sql_report = from_mlflow(uri, reader="sql", return_report=True, **kw)
        client, client_report = from_mlflow(uri, reader="client", return_report=True, **kw)
        assert sql.fingerprint() == client.fingerprint()
        assert sql_report.lines()[2:] == client_report.lines()[2:]  # (the first lines name the reader)
        assert "SQL reader" in sql_report.lines()[1] and "MLflow client" in client_report.lines()[1]


def test_file_store_needs_no_environment_variable(plain_files, plain_sqlite, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    for uri in (str(plain_files), f"file:{plain_files}", plain_files.as_uri()):
        zoo = from_mlflow(uri, model_key="params.base", dataset_key=["inputs.dataset", "params.data"], metric="acc")
        assert records(zoo) == EXPECTED_MAX
        assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # set for the read only
    files = from_mlflow(plain_files, model_key="params.base", dataset_key=["inputs.dataset", "params.data"],
                        metric="acc", model_meta=["params.n_params"], dataset_meta=["params.train_size"])
    sqlite = from_mlflow(plain_sqlite, model_key="params.base", dataset_key=["inputs.dataset", "params.data"],
                         metric="acc", model_meta=["params.n_params"], dataset_meta=["params.train_size"])
    assert files.fingerprint() == sqlite.fingerprint()  # the same runs, logged into two kinds of store
    invoke("import", "mlflow", "--tracking-uri", plain_files, *CUSTOM, "--out", tmp_path / "zoo")
    fit_and_topk(tmp_path / "zoo", "cub birds", tmp_path)


def test_metadata_become_numeric_columns_and_names_become_text(plain_sqlite, tmp_path):
    invoke("import", "mlflow", "--tracking-uri", plain_sqlite, *CUSTOM, "--model-meta", "params.n_params",
           "--dataset-meta", "params.train_size", "--dataset-meta", "params.lr", "--out", tmp_path / "zoo")
    zoo = load_zoo(tmp_path / "zoo")
    assert zoo.models.loc["vit b/16", "n_params"] == 86.6 and zoo.models["n_params"].dtype.kind == "f"
    assert zoo.datasets.loc["stanford cars", "train_size"] == 8144
    assert "n_params" in zoo.model_roles.numeric and "train_size" in zoo.dataset_roles.numeric
    assert "lr" not in zoo.dataset_roles.columns  # one value everywhere: no information, no role
    assert zoo.model_roles.text == ("name_text",) and zoo.models.loc["convnext, tiny", "name_text"] == "convnext, tiny"
    assert math.isnan(zoo.datasets.loc["imdb", "train_size"])  # the run did not log it
    fit_and_topk(tmp_path / "zoo", "stanford cars", tmp_path, k=4)


def test_append_merges_and_resolves_conflicts_by_agg(plain_sqlite, tmp_path):
    out = tmp_path / "zoo"
    zoo_dir = ROOT / "data" / "example-zoo"
    example = load_zoo(zoo_dir)
    example.write(out)
    res = invoke("import", "mlflow", "--tracking-uri", plain_sqlite, *CUSTOM, "--append", "--agg", "max",
                 "--out", out)
    merged = load_zoo(out)
    got = records(merged)
    old = records(example)
    for pair, acc in EXPECTED_MAX.items():
        assert got[pair] == pytest.approx(max(acc, old.get(pair, -1)))
    assert {p: a for p, a in got.items() if p in old and p not in EXPECTED_MAX} == \
        {p: a for p, a in old.items() if p not in EXPECTED_MAX}
    assert len(merged.scores) == len(example.scores)  # the zoo's scores stay
    assert merged.models.loc["resnet50", "family"] == "resnet"  # the zoo's metadata stay
    assert "appended to the zoo in" in res.stderr and "with another accuracy resolved by --agg max" in res.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = CliRunner().invoke(main, ["import", "mlflow", "--tracking-uri", plain_sqlite, *CUSTOM, "--out", out])
    assert res.exit_code == 2 and "already holds a zoo" in res.stderr  # without --append: refused
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_experiment_filter_and_unknown_names(plain_sqlite):
    zoo = from_mlflow(plain_sqlite, experiments=["nlp"], model_key="params.base", dataset_key="inputs.dataset",
                      metric="acc")
    assert records(zoo) == {("bert-base-uncased", "imdb"): 0.93}
    res = CliRunner().invoke(main, ["import", "mlflow", "--tracking-uri", plain_sqlite, "--experiment", "visoin",
                                    "--out", "unused"])
    assert res.exit_code == 2 and "unknown experiment 'visoin'" in res.stderr and "'vision'" in res.stderr


def test_default_metric_missing_names_the_metrics_logged(plain_sqlite):
    res = CliRunner().invoke(main, ["import", "mlflow", "--tracking-uri", plain_sqlite, "--model-key", "params.base",
                                    "--out", "unused"])
    assert res.exit_code == 1
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: choose the metric with --metric (the runs log acc") and "no record imported" in line


# ---------------------------------------------------------------------------
# a real tracking server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on a free local port (its own SQLite file); ready when /health answers, killed after."""
    import requests

    tmp = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                             f"sqlite:///{tmp / 'server.db'}", "--default-artifact-root", str(tmp / "artifacts"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # at most ~5 minutes on a loaded machine; it usually answers within 20 s
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited ({proc.returncode}): {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health")
        yield url, tmp
    finally:  # the server and the workers it started: the process group of its own session
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        log.close()


def test_tracking_server_round_trip(server, tmp_path):
    url, tmp = server
    manifest = log_runs({"uri": url, "plain": PLAIN,
                         "trainer": {"dir": str(tmp / "trainer"), "experiments": ["sst2"], "models": 2}},
                        tmp / "logged")
    res = invoke("import", "mlflow", "--tracking-uri", url, *CUSTOM, "--experiment", "vision", "--experiment", "nlp",
                 "--out", tmp_path / "custom")
    assert records(load_zoo(tmp_path / "custom")) == EXPECTED_MAX
    assert "MLflow client" in res.stderr
    rows = fit_and_topk(tmp_path / "custom", "flowers/102", tmp_path, k=4)
    assert {r["model"]: r["known"] for r in rows if r["known"] is not None} == {"convnext, tiny": 0.95,
                                                                              "resnet50": 0.9}
    invoke("import", "mlflow", "--tracking-uri", url, "--experiment", "sst2", "--out", tmp_path / "trainer")
    zoo = load_zoo(tmp_path / "trainer")
    assert set(zoo.model_ids) == {e["checkpoint"] for e in manifest["trainer"]}
    # the server's own SQLite file, read directly with SQL, gives the same zoo as the server does
    direct = from_mlflow(f"sqlite:///{tmp / 'server.db'}", experiments=["vision", "nlp"], model_key="params.base",
                         dataset_key=["inputs.dataset", "params.data"], metric="acc")
    assert direct.fingerprint() == load_zoo(tmp_path / "custom").fingerprint()

