"""Evaluation: per-dataset metrics, the two published protocols, reports and figures.

- :mod:`~recsys.evaluation.metrics`: Pearson, Spearman, Kendall tau-b, NDCG@k, regret@k;
- :mod:`~recsys.evaluation.protocols`: P1 (DomainNet-270 missing-edge) and P2
  (TransferGraph leave-one-dataset-out), exactly as ``docs/protocols.md`` describes them, and their
  generalizations to any zoo (missing-edge, logo); :mod:`~recsys.evaluation.sequential`: pick, see the
  result, pick again (regret after n fine-tunes); :mod:`~recsys.evaluation.suite`: the cross-zoo suite;
- :mod:`~recsys.evaluation.report` and :mod:`~recsys.evaluation.plots`: tables beside
  the published figures, markdown, PNGs;
- :func:`run`: one protocol end to end, used by ``recsys evaluate``.
"""

from .metrics import dataset_metrics, kendall_tau_b, ndcg_at_k, pearson, regret_at_k, spearman
from .protocols import PROTOCOLS, Fold, ProtocolResult, evaluate, p1, p1_masks, p2, p2_folds
from .report import markdown_report, summarize
from .runner import RunResult, run

__all__ = ["run", "RunResult", "p1", "p2", "evaluate", "PROTOCOLS", "Fold", "ProtocolResult", "p1_masks",
           "p2_folds", "summarize", "markdown_report", "pearson", "spearman", "kendall_tau_b", "ndcg_at_k",
           "regret_at_k", "dataset_metrics"]
