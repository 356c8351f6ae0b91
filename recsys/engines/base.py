"""The engine base: what every predictor of the accuracy matrix implements.

An engine is one file: a subclass of :class:`Engine` that implements
``_fit(data)`` and ``_predict(block)``. Validation, the "call fit first"
guard, finite checks, ranking (top-k) and persistence live here, once
(in the spirit of implicit's ``RecommenderBase`` and Surprise's ``AlgoBase``).

Parameter contract (scikit-learn's): ``__init__`` only stores its keyword
arguments, including ``seed``; random generators are created in ``fit``;
fitted attributes end in ``_``.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np

from ..errors import ArtifactError, ModelFitError, NotFittedError, RecsysError
from ..features.data import DatasetBlock, ZooData

__all__ = ["Engine", "fit_progress", "quiet_fits", "stage_reporter"]

log = logging.getLogger(__name__)

_JSON_TYPES = (bool, int, float, str, type(None), list, dict, tuple)
#: datasets predicted at the end of fit to check that the fit did not diverge
_CHECK_ROWS = 512


class _NoReport:
    def stage(self, name: str) -> None:
        log.debug("stage: %s", name)

    def close(self) -> None:
        pass


_PROGRESS = contextvars.ContextVar("recsys_fit_progress", default=None)


@contextlib.contextmanager
def fit_progress(factory):
    """Inside this block, a fit reports its stages to ``factory(n_stages, desc)``.

    The factory returns an object with ``stage(name)`` (stage ``name`` starts; the previous
    one is done) and ``close()``; ``None`` silences every fit (the CLI, which alone knows
    whether stderr is a terminal, gives a progress bar).
    """
    token = _PROGRESS.set(factory)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def quiet_fits():
    """No fit reports its stages inside this block (e.g. the many fits of an evaluation protocol, whose own
    bar counts them)."""
    return fit_progress(None)


def stage_reporter(n_stages: int, desc: str):
    """Where a fit of ``n_stages`` stages reports them: the current :func:`fit_progress` factory's, or nowhere."""
    factory = _PROGRESS.get()
    return _NoReport() if factory is None else factory(n_stages, desc)


class Engine(ABC):
    """Predicts accuracies for (dataset, model) pairs.

    Subclasses set ``name`` (the ``--engine`` value) and ``summary`` (one
    line for ``recsys info``), and implement :meth:`_fit` and :meth:`_predict`.

    Parameters
    ----------
    seed : int
        Seed of every random generator the engine creates in ``fit``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: engines that cannot work without transferability scores set this
    requires_scores: ClassVar[bool] = False
    #: fitted array attributes that may hold NaN by design (e.g. a level for datasets without records); any other
    #: NaN in a model file is damage, refused when the file is read (``recsys info``, ``Recommender.load``)
    nan_arrays: ClassVar[frozenset] = frozenset()
    #: the residual covariance across models of an engine that kriges (with :meth:`row_inputs`); None: the
    #: joint distribution of its answers has independent errors (:mod:`recsys.engines.joint`)
    covariance = None

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    # -- parameters ----------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as given (scikit-learn's ``get_params``)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> "Engine":
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise RecsysError(f"give engine {self.name!r} parameters among {', '.join(valid)}: it has no "
                                  f"parameter {k!r}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fitting ---------------------------------------------------------------
    def fit(self, data: ZooData) -> "Engine":
        """Fit on the known cells of ``data``; returns ``self``.

        Raises
        ------
        RecsysError
            Invalid input (NaN features, accuracies outside [0, 1], missing scores).
        ModelFitError
            The fit produced non-finite predictions.
        """
        data.check()
        if self.requires_scores and not any(np.isfinite(v).any() for v in data.scores.values()):
            raise RecsysError(f"choose another engine (e.g. --engine hybrid), or add a scores.csv to the zoo: engine "
                              f"{self.name!r} ranks by transferability scores, and this zoo has none")
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        self._data = data
        self._fit(data)
        self.n_models_ = data.n_models
        self.n_datasets_ = data.n_datasets
        self.n_dataset_features_ = data.dataset_features.shape[1]
        self.metrics_ = sorted(data.scores)
        # Fail now, not at query time, if the fit diverged: predict every dataset of a small zoo, an even
        # sample of at most _CHECK_ROWS datasets of a large one (their predictions are n_datasets x n_models).
        rows = np.unique(np.linspace(0, data.n_datasets - 1, min(data.n_datasets, _CHECK_ROWS)).astype(np.int64))
        try:
            self.predict(data.block(rows))
        except ModelFitError:
            for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
                delattr(self, attr)
            raise
        return self

    @abstractmethod
    def _fit(self, data: ZooData) -> None:
        """Learn from ``data``; store fitted attributes with a trailing ``_``."""

    @abstractmethod
    def _predict(self, block: DatasetBlock) -> np.ndarray:
        """Predicted accuracies, shape (len(block), n_models), in accuracy units."""

    # -- prediction --------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_models_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"call fit first: this {type(self).__name__} is not fitted yet")

    def check_rows(self, rows: np.ndarray) -> str | None:
        """What is wrong with the fitted state that answering for zoo datasets ``rows`` reads, or None.

        For state loaded without being read (memory-mapped from a model file): engines whose
        per-dataset arrays hold indices check those rows here; the default has nothing to check.
        """
        return None

    def predict(self, block: DatasetBlock) -> np.ndarray:
        """Predicted accuracy of every model on each dataset of ``block``.

        Returns
        -------
        ndarray of float, shape (len(block), n_models)
        """
        self._check_fitted()
        if block.features.shape[1] != self.n_dataset_features_:
            raise RecsysError(f"build dataset features with the feature builder the engine was fitted with: they "
                              f"have {block.features.shape[1]} columns, the engine {self.n_dataset_features_}")
        if len(block.index) and block.index.max() >= self.n_datasets_:
            raise RecsysError(f"give dataset indices below {self.n_datasets_} (the zoo's datasets), or -1 for a new "
                              f"one: index {int(block.index.max())} is out of range")
        if len(block) == 0:
            return np.zeros((0, self.n_models_))
        pred = np.asarray(self._predict(block), dtype=np.float64)
        if pred.shape != (len(block), self.n_models_):
            raise ModelFitError(f"{type(self).__name__} predicted shape {pred.shape}, expected {(len(block), self.n_models_)}")
        if not np.isfinite(pred).all():
            raise ModelFitError(f"try another seed or stronger regularization: {type(self).__name__} produced "
                                f"non-finite predictions (the fit diverged)")
        return pred

    def row_inputs(self, block: DatasetBlock) -> list | None:
        """What the joint distribution of each dataset of ``block`` needs from an engine that kriges
        (:class:`~recsys.engines.joint.RowInputs`); None (the default): the independent fallback."""
        return None

    def topk(self, block: DatasetBlock, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` models per dataset, best first (ties: lower model index first).

        Returns
        -------
        index : ndarray of int, shape (len(block), min(k, n_models))
        predicted : ndarray of float, same shape
        """
        if k < 1:
            raise RecsysError(f"give k of at least 1: got {k}")
        pred = self.predict(block)
        order = np.argsort(-pred, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(pred, order, axis=1)

    # -- persistence ---------------------------------------------------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able meta, arrays) describing the fitted engine.

        The default stores every fitted attribute (name ending in ``_``): arrays
        as arrays, plain values in JSON. Engines holding other objects (a
        LightFM model, a torch module) override :meth:`_extra_state`.
        """
        self._check_fitted()
        meta: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                arrays[key] = value
            elif isinstance(value, (np.integer, np.floating, np.bool_)):
                meta[key] = value.item()
            elif isinstance(value, _JSON_TYPES) and _is_json(value):
                meta[key] = value
            else:
                continue  # rebuilt by _extra_state / _load_extra
        extra_meta, extra_arrays = self._extra_state()
        meta.update(extra_meta)
        arrays.update(extra_arrays)
        return {"name": self.name, "params": self.get_params(), "fitted": meta}, arrays

    def _extra_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {}, {}

    def _load_extra(self, fitted: Mapping, arrays: Mapping[str, np.ndarray]) -> None:
        """Rebuild non-array state (override together with :meth:`_extra_state`); ``self._data`` is the zoo."""

    @classmethod
    def from_state(cls, state: Mapping, arrays: Mapping[str, np.ndarray], data: ZooData) -> "Engine":
        """The engine saved by :meth:`get_state`, answering for ``data`` (the zoo it was fitted on)."""
        params = dict(state.get("params", {}))
        unknown = set(params) - set(cls._param_names())
        if unknown:
            raise ArtifactError(f"re-fit the model with this recsys (`recsys fit`): the model file has parameter(s) "
                                f"{sorted(unknown)} that engine {cls.name!r} does not know (another recsys version "
                                f"wrote it)")
        defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
        for key, value in params.items():  # JSON turned tuples into lists
            if isinstance(value, list) and isinstance(defaults.get(key), tuple):
                params[key] = tuple(value)
        engine = cls(**params)
        for key, value in state.get("fitted", {}).items():
            if key.endswith("_"):
                setattr(engine, key, value)
        for key, value in arrays.items():
            if key.endswith("_"):
                setattr(engine, key, value)
        engine._data = data
        engine._load_extra(state.get("fitted", {}), arrays)
        if not engine.is_fitted:
            raise ArtifactError(f"re-create the model file with `recsys fit`: it holds an unfitted {cls.name!r} "
                                f"engine")
        return engine


def _is_json(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
