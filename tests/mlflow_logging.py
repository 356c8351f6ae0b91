"""Log fine-tuning runs into an MLflow store the way users do, in a process of its own.

    python tests/mlflow_logging.py SPEC.json     # writes a JSON manifest of what was logged

The tests build their stores with this script (MLflow's fluent API and the Trainer's callback keep
global state: a tracking URI, an active run, an atexit hook; a child process keeps the test process
clean). ``SPEC``:

``uri``
    the tracking URI (``file:...``, ``sqlite:///...``, ``http://...``).
``trainer``
    optional ``{"dir": DIR, "experiments": [...], "models": N, "seeds": [...]}``: tiny BERT
    classifiers, randomly initialised from a config and saved to ``DIR/ckpt-i`` (no download), each
    fine-tuned by a real ``transformers.Trainer`` with ``report_to=["mlflow"]`` on a few examples,
    with ``MLFLOW_EXPERIMENT_NAME`` set to the experiment (as its documentation says); after the
    first training, ``trainer.evaluate()`` is called again, as users do (the callback then logs into
    a run of its own, without params).
``plain``
    optional list of runs logged with ``mlflow.log_param`` / ``log_metric`` / ``set_tag`` /
    ``log_input``: ``{"experiment", "name", "params", "tags", "metrics": {key: value or [values by
    step]}, "inputs": [{"name", "context"}], "status": FINISHED|FAILED|KILLED|RUNNING}``.

The manifest (written to ``SPEC["manifest"]``: the Trainer prints its logs on stdout) lists the Trainer
runs (``run_id``, ``checkpoint``, ``output_dir``, ``experiment``, ``eval_accuracy``) and the plain runs'
ids.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings


def _quiet():
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("mlflow", "alembic", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def trainer_runs(spec: dict, uri: str) -> list[dict]:
    import mlflow
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    os.environ["MLFLOW_TRACKING_URI"] = uri
    base = spec["dir"]

    class Examples(torch.utils.data.Dataset):
        def __init__(self, n: int, shift: int):
            self.n, self.shift = n, shift

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return {"input_ids": torch.tensor([1 + (i + self.shift) % 7, 2 + i % 3, 3, 4]),
                    "attention_mask": torch.ones(4, dtype=torch.long), "labels": torch.tensor(i % 2)}

    def accuracy(p):
        return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}

    checkpoints = []
    for m in range(spec.get("models", 2)):
        config = BertConfig(vocab_size=32, hidden_size=8 * (m + 1), num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=16, max_position_embeddings=8, num_labels=2)
        torch.manual_seed(m)
        path = os.path.join(base, f"ckpt-{m}")
        BertForSequenceClassification(config).save_pretrained(path)
        checkpoints.append(path)
    out = []
    first = True
    for e, experiment in enumerate(spec["experiments"]):
        os.environ["MLFLOW_EXPERIMENT_NAME"] = experiment
        for path in checkpoints:
            for seed in spec.get("seeds", [0]):
                model = BertForSequenceClassification.from_pretrained(path)
                output_dir = os.path.join(base, f"out-{experiment}-{os.path.basename(path)}-{seed}")
                args = TrainingArguments(output_dir=output_dir, num_train_epochs=1, per_device_train_batch_size=8,
                                         eval_strategy="epoch", report_to=["mlflow"], logging_steps=1,
                                         save_strategy="no", use_cpu=True, disable_tqdm=True, seed=seed)
                trainer = Trainer(model=model, args=args, train_dataset=Examples(16, e + seed),
                                  eval_dataset=Examples(8, e), compute_metrics=accuracy)
                trainer.train()
                run = mlflow.last_active_run()  # the callback's run, ended by train()
                out.append({"run_id": run.info.run_id, "checkpoint": path, "output_dir": output_dir,
                            "experiment": experiment, "eval_accuracy": run.data.metrics.get("eval_accuracy")})
                if first:
                    trainer.evaluate()  # after train(): the callback's run has ended, MLflow opens another
                    stray = mlflow.active_run()
                    out[-1]["stray_run_id"] = stray.info.run_id if stray else None
                    if stray:
                        mlflow.end_run()
                    first = False
    return out


def plain_runs(runs: list[dict], uri: str) -> list[str]:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    ids = []
    for spec in runs:
        exp = mlflow.set_experiment(spec.get("experiment", "Default"))
        if spec.get("status") == "RUNNING":  # left running: created by the client, never ended
            run = MlflowClient(uri).create_run(exp.experiment_id, run_name=spec.get("name"))
            client = MlflowClient(uri)
            for k, v in spec.get("params", {}).items():
                client.log_param(run.info.run_id, k, v)
            for k, v in spec.get("metrics", {}).items():
                client.log_metric(run.info.run_id, k, v)
            ids.append(run.info.run_id)
            continue
        with mlflow.start_run(run_name=spec.get("name")) as run:
            for k, v in spec.get("params", {}).items():
                mlflow.log_param(k, v)
            for k, v in spec.get("tags", {}).items():
                mlflow.set_tag(k, v)
            for k, v in spec.get("metrics", {}).items():
                for step, value in enumerate(v if isinstance(v, list) else [v]):
                    mlflow.log_metric(k, float(value), step=step)
            for inp in spec.get("inputs", []):
                data = mlflow.data.from_pandas(pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}),
                                               name=inp["name"])
                mlflow.log_input(data, context=inp.get("context"))
            ids.append(run.info.run_id)
            if spec.get("status", "FINISHED") != "FINISHED":
                mlflow.end_run(status=spec["status"])
    return ids


def main(path: str) -> None:
    _quiet()
    with open(path) as fh:
        spec = json.load(fh)
    uri = spec["uri"]
    if uri.startswith("file:") or "://" not in uri:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 writes mlruns folders only when allowed
    manifest = {"trainer": [], "plain": []}
    if spec.get("trainer"):
        manifest["trainer"] = trainer_runs(spec["trainer"], uri)
    if spec.get("plain"):
        manifest["plain"] = plain_runs(spec["plain"], uri)
    with open(spec["manifest"], "w") as fh:
        json.dump(manifest, fh)


if __name__ == "__main__":
    main(sys.argv[1])
