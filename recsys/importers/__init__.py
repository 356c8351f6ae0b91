"""Bring your own history: zoos from fine-tuning results kept elsewhere.

Three sources, each read into a validated :class:`~recsys.zoo.Zoo` (and written as a zoo directory with
``out=``, merged into an existing one with ``append=True``):

- :func:`from_mlflow`: the runs of an MLflow tracking store (an ``mlruns`` folder, an SQLite file, a
  server); the defaults read what the Hugging Face ``Trainer``'s MLflow callback logs;
- :func:`from_model_cards`: the ``model-index`` results of Hugging Face model cards, the model being the
  card's ``base_model``;
- :func:`from_csv`: a run table exported from Weights & Biases, a spreadsheet or pandas.

Runs that cannot become a record are skipped and counted by reason; the summary is logged (the CLI
prints it on stderr) and returned as an :class:`ImportReport` with ``return_report=True``. The keys read
by default and how to map others: ``docs/importing.md``.

Examples
--------
>>> from recsys import importers
>>> zoo = importers.from_mlflow("sqlite:///mlflow.db", out="zoo")        # doctest: +SKIP
>>> zoo = importers.from_model_cards(["cards/"], metric="accuracy")       # doctest: +SKIP
>>> zoo = importers.from_csv("wandb.csv", model="config.model_name", dataset="config.dataset",
...                          metric="summary.eval_accuracy")             # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__all__ = ["from_mlflow", "from_model_cards", "from_csv", "ImportReport", "ImportSourceError", "write_zoo"]

_LAZY = {"from_mlflow": ".mlflow_store", "from_model_cards": ".model_cards", "from_csv": ".csv_table",
         "ImportReport": "._core", "ImportSourceError": "._core", "write_zoo": "._core"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recsys.importers' has no attribute {name!r}")
