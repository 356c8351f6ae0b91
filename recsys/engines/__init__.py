"""Engines: predictors of the (dataset x model) accuracy matrix, one file each.

Engines are looked up by name and imported lazily, so that e.g. torch is only
imported when the ``gat`` engine is used.
"""

from __future__ import annotations

import importlib

from ..errors import RecsysError, UsageError, closest
from .base import Engine

__all__ = ["Engine", "ENGINES", "DEFAULT_ENGINE", "get_engine_class", "make_engine"]

#: name -> "module:Class" (relative to this package)
ENGINES: dict[str, str] = {
    "hybrid": "hybrid:HybridEngine",
    "lightfm": "lightfm:LightFMEngine",
    "random": "random:RandomEngine",
    "popularity": "popularity:PopularityEngine",
    "additive": "additive:AdditiveEngine",
    "lr": "lr:LinearRegressionEngine",
    "mc": "mc:MatrixCompletionEngine",
    "als": "als:ALSEngine",
    "logme": "logme:ScoreEngine",
    "score-stack": "score_stack:ScoreStackEngine",
    "gat": "gat:GATEngine",
}
DEFAULT_ENGINE = "hybrid"


def get_engine_class(name: str) -> type[Engine]:
    """The engine class registered as ``name``."""
    try:
        target = ENGINES[name]
    except KeyError:
        hint = closest(name, ENGINES)
        hint = f"; did you mean {', '.join(map(repr, hint))}?" if hint else ""
        raise UsageError(f"choose an engine of `recsys engines` ({', '.join(ENGINES)}): unknown engine "
                         f"{name!r}{hint}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def make_engine(name: str = DEFAULT_ENGINE, **params) -> Engine:
    """An unfitted engine ``name`` built with ``params`` (e.g. ``seed=0``)."""
    cls = get_engine_class(name)
    valid = cls._param_names()
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise RecsysError(f"give engine {name!r} parameters among {', '.join(valid)}: it has no parameter(s) "
                          f"{unknown}")
    return cls(**params)
