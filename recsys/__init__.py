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

import importlib
import os
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import ArtifactError, NotFittedError, RecsysError, UnknownNameError, ZooError

if TYPE_CHECKING:
    from . import datasets, importers
    from .recommender import Recommender
    from .zoo import Zoo, load_zoo

__all__ = ["__version__", "Recommender", "fit", "load_model", "Zoo", "load_zoo", "datasets", "importers",
           "RecsysError", "ZooError", "UnknownNameError", "ArtifactError", "NotFittedError"]

# Imported on first use (PEP 562), so that `recsys topk` on a fitted model loads neither pandas nor the
# fitting stack: only what answering needs.
_LAZY = {"Recommender": ".recommender", "Zoo": ".zoo", "load_zoo": ".zoo", "datasets": ".datasets",
         "importers": ".importers"}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = module if name in ("datasets", "importers") else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")


def fit(zoo: "Zoo | str | os.PathLike" = "domainnet-270", engine: str | None = None, **kwargs) -> "Recommender":
    """Fit a :class:`Recommender` on ``zoo`` (a Zoo, a named zoo or a directory).

    ``engine``: a registered engine name; default the default engine (``recsys.engines.DEFAULT_ENGINE``).

    ``kwargs`` go to :class:`Recommender` (``seed``, ``text_encoder``, engine parameters ...).
    """
    from .recommender import Recommender

    if engine is None:
        from .engines import DEFAULT_ENGINE as engine
    return Recommender(engine, **kwargs).fit(zoo)


def load_model(path: "str | os.PathLike | None" = None) -> "Recommender":
    """Load a model file written by :meth:`Recommender.save` or ``recsys fit``."""
    from .recommender import Recommender

    return Recommender.load(path)
