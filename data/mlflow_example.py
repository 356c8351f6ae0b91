#!/usr/bin/env python
"""A small MLflow store of fine-tuning runs, logged as the Hugging Face Trainer's MLflow callback logs them.

    python data/mlflow_example.py sqlite:///mlflow.db      # or an mlruns folder, or http://HOST:PORT

For the README's "Bring your own history" (needs ``pip install 'recsys[mlflow]'``). The results are
those of ``data/example-zoo`` (made up), two seeds per (model, dataset) pair, each run logged with
the calls the callback makes (``transformers.integrations.MLflowCallback``): the experiment is set
by name (``MLFLOW_EXPERIMENT_NAME``; here the dataset), the params are the model config and the
training arguments (``_name_or_path`` the checkpoint ``from_pretrained`` loaded, ``output_dir``,
``learning_rate`` ...), the metrics the Trainer's logs (``loss``, ``learning_rate`` per step, then
``eval_loss``, ``eval_accuracy``, ``train_runtime`` ...). A store also holds runs that are no
result: one run FAILED, and one opened by a ``trainer.evaluate()`` called after ``trainer.train()``
(the callback's run has ended, so MLflow opens one of its own, without params). Runs are named
(``MODEL-I-seedS``, ``evaluate``) where MLflow would draw random names, so that the README's output
is the same on every run.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import warnings
from pathlib import Path

ZOO = Path(__file__).resolve().parent / "example-zoo"
SEEDS = (0, 1)
STEPS = 3


def main(uri: str) -> int:
    warnings.filterwarnings("ignore")
    if "://" not in uri or uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 writes mlruns folders only when allowed
    import mlflow

    for name in ("mlflow", "alembic"):  # (after the import: MLflow sets its logger up when imported)
        logging.getLogger(name).setLevel(logging.ERROR)

    mlflow.set_tracking_uri(uri)
    with open(ZOO / "models.csv", newline="", encoding="utf-8") as fh:
        family = {row["model"]: row["family"] for row in csv.DictReader(fh)}
    with open(ZOO / "records.csv", newline="", encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    n = 0
    for i, rec in enumerate(records):
        mlflow.set_experiment(rec["dataset"])  # what MLFLOW_EXPERIMENT_NAME makes the callback do
        for seed in SEEDS:
            accuracy = round(float(rec["accuracy"]) + (0.004 if seed else -0.004), 4)
            status = "FAILED" if (i, seed) == (3, 1) else "FINISHED"
            slug = rec["model"].replace("/", "_").replace(" ", "_")
            with mlflow.start_run(run_name=f"{slug}-{i}-seed{seed}"):
                mlflow.log_params({"_name_or_path": rec["model"], "model_type": family[rec["model"]],
                                   "num_train_epochs": rec.get("epochs") or "3", "learning_rate": "5e-05",
                                   "per_device_train_batch_size": "32", "seed": str(seed), "run_name": "None",
                                   "output_dir": f"runs/{slug}-{i}-{seed}", "hub_model_id": "None",
                                   "report_to": "['mlflow']"})
                for step in range(1, STEPS + 1):
                    mlflow.log_metrics({"loss": round(1.2 / step, 4), "learning_rate": 5e-05 * (1 - step / STEPS),
                                        "epoch": float(step)}, step=step)
                if status == "FINISHED":
                    mlflow.log_metrics({"eval_loss": round(1 - accuracy, 4), "eval_accuracy": accuracy,
                                        "eval_runtime": 1.5}, step=STEPS)
                    mlflow.log_metrics({"train_runtime": 60.0, "train_loss": 0.6}, step=STEPS)
                else:
                    mlflow.end_run(status="FAILED")
            n += 1
    # trainer.evaluate() after trainer.train(): its metrics land in a run of their own
    with mlflow.start_run(run_name="evaluate"):
        mlflow.log_metrics({"eval_loss": 0.3, "eval_accuracy": 0.7}, step=STEPS)
    n += 1
    print(f"logged {n} runs of {len(family)} models on {len({r['dataset'] for r in records})} datasets into {uri}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} TRACKING_URI   (e.g. sqlite:///mlflow.db)")
    sys.exit(main(sys.argv[1]))
