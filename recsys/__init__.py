"""recsys: which pretrained models to fine-tune on your dataset.

Learns from a history of fine-tuning results (a model x dataset accuracy
matrix, mostly unknown) and completes it with a LightFM hybrid factorization
whose side features are model and dataset metadata plus text embeddings.

Examples
--------
>>> import recsys
>>> rec = recsys.fit("domainnet-270")                 # doctest: +SKIP
>>> rec.topk("269_clipart_32", k=5)                    # doctest: +SKIP
>>> rec.save("model.npz"); rec = recsys.load_model("model.npz")  # doctest: +SKIP
"""

from __future__ import annotations

import os

from . import datasets
from ._version import __version__
from .errors import ArtifactError, NotFittedError, RecsysError, UnknownNameError, ZooError
from .recommender import Recommender
from .zoo import Zoo, load_zoo

__all__ = ["__version__", "Recommender", "fit", "load_model", "Zoo", "load_zoo", "datasets", "RecsysError",
           "ZooError", "UnknownNameError", "ArtifactError", "NotFittedError"]


def fit(zoo: "Zoo | str | os.PathLike" = "domainnet-270", engine: str = "hybrid", **kwargs) -> Recommender:
    """Fit a :class:`Recommender` on ``zoo`` (a Zoo, a named zoo or a directory).

    ``kwargs`` go to :class:`Recommender` (``seed``, ``text_encoder``, engine parameters ...).
    """
    return Recommender(engine, **kwargs).fit(zoo)


def load_model(path: "str | os.PathLike | None" = None) -> Recommender:
    """Load a model file written by :meth:`Recommender.save` or ``recsys fit``."""
    return Recommender.load(path)
