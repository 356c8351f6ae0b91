"""The public face of recsys: fit on a zoo, ask by name, save and load.

:class:`Recommender` joins the feature builder (names ↔ indices, metadata →
features), an engine (the accuracy predictor) and a calibration (intervals and
P(best)). It is the only layer, besides the CLI, that speaks names.

Examples
--------
>>> import recsys
>>> rec = recsys.Recommender(seed=0).fit("domainnet-270")            # doctest: +SKIP
>>> rec.topk("269_clipart_32", k=5)                                   # doctest: +SKIP
>>> rec.topk_new({"domain": "sketch", "categories": 4, "num_pre_class": 10,
...               "Sample_Size": 40, "Labels": "cat, dog, horse, cow"})  # doctest: +SKIP
>>> rec.save("model.npz"); recsys.Recommender.load("model.npz")      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import platform
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ._version import __version__
from .artifact import check_model_state, read_artifact, write_artifact
from .engines import DEFAULT_ENGINE, Engine, get_engine_class, make_engine
from .engines.calibration import Calibration, calibrate
from .errors import ArtifactError, RecsysError
from .features.builder import FeatureBuilder
from .paths import default_model_path
from .features.data import DatasetBlock, TrainData
from .zoo import Zoo

__all__ = ["Recommender"]

log = logging.getLogger(__name__)


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "pandas", "rectools-lightfm", "torch", "transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


class Recommender:
    """Recommend models for datasets from a fine-tuning history.

    Parameters
    ----------
    engine : str or Engine
        Engine name (see ``recsys.engines.ENGINES``; default ``hybrid``) or an
        unfitted engine instance.
    seed : int
        Seed of the engine and of the calibration.
    text_encoder : str, optional
        Hub id or local path of the text encoder; default: the shipped
        all-MiniLM-L6-v2; ``"hashing"`` for a fast dependency-free one.
    text_dims : int
        Dimensions kept per text column.
    level : float
        Default level of the prediction intervals.
    calibrate : bool
        Fit the conformal calibration (an extra fit on part of the records).
    **engine_params
        Passed to the engine's constructor.
    """

    def __init__(self, engine: str | Engine = DEFAULT_ENGINE, *, seed: int = 0, text_encoder: str | None = None,
                 text_dims: int = 8, level: float = 0.8, calibrate: bool = True, **engine_params):
        self.engine = engine
        self.seed = seed
        self.text_encoder = text_encoder
        self.text_dims = text_dims
        self.level = level
        self.calibrate = calibrate
        self.engine_params = engine_params

    # -- fitting ---------------------------------------------------------------
    def _new_engine(self) -> Engine:
        if isinstance(self.engine, Engine):
            params = {**self.engine.get_params(), "seed": self.seed}
            return type(self.engine)(**params)
        return make_engine(self.engine, seed=self.seed, **self.engine_params)

    def fit(self, zoo: Zoo | str | os.PathLike) -> "Recommender":
        """Fit on every record of ``zoo`` (a :class:`Zoo`, a zoo name or directory).

        Returns
        -------
        self
        """
        if not isinstance(zoo, Zoo):
            from . import datasets

            zoo = datasets.load(zoo)
        t0 = time.perf_counter()
        self.features_ = FeatureBuilder(text_encoder=self.text_encoder, text_dims=self.text_dims).fit(zoo)
        data = self.features_.train_data(zoo)
        t1 = time.perf_counter()
        self.engine_ = self._new_engine().fit(data)
        t2 = time.perf_counter()
        self.calibration_ = None
        if self.calibrate:
            self.calibration_ = calibrate(self._new_engine, data, seed=self.seed)
            if not self.calibration_.abs_residuals:
                log.warning("too few datasets with records (%d) to calibrate intervals: lower, upper and p_best "
                            "will be empty; add records for at least two datasets",
                            int(data.known.any(1).sum()))
                self.calibration_ = None
        t3 = time.perf_counter()
        self.known_ = data.Y
        self.scores_ = data.scores
        self.zoo_ = {"name": zoo.name, "fingerprint": zoo.fingerprint(), "models": len(zoo.models),
                     "datasets": len(zoo.datasets), "records": len(zoo.records), "metrics": zoo.metrics}
        self.timing_ = {"features_s": round(t1 - t0, 3), "engine_s": round(t2 - t1, 3),
                        "calibration_s": round(t3 - t2, 3)}
        log.debug("fitted %s on %s in %.2fs (features %.2fs, engine %.2fs, calibration %.2fs)",
                 self.engine_.name, zoo.name, t3 - t0, t1 - t0, t2 - t1, t3 - t2)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "engine_"):
            from .errors import NotFittedError

            raise NotFittedError("this Recommender is not fitted yet; call fit first (or Recommender.load)")

    @property
    def model_ids(self) -> list[str]:
        self._check_fitted()
        return list(self.features_.model_ids_)

    @property
    def dataset_ids(self) -> list[str]:
        self._check_fitted()
        return list(self.features_.dataset_ids_)

    # -- prediction ---------------------------------------------------------------
    def _frame(self, block: DatasetBlock, names: Sequence[str], known: np.ndarray, level: float | None,
               uncertainty: bool) -> pd.DataFrame:
        pred = self.engine_.predict(block)
        n_models = pred.shape[1]
        rows = {
            "model": np.tile(np.array(self.model_ids, dtype=object), len(names)),
            "dataset": np.repeat(np.array(list(names), dtype=object), n_models),
            "predicted": pred.ravel(),
            "known": known.ravel(),
        }
        if uncertainty:
            if self.calibration_ is not None:
                lvl = self.level if level is None else level
                n_known = (~np.isnan(known)).sum(1)
                lower, upper = self.calibration_.interval(pred, n_known, lvl)
                keys = [zlib.crc32(str(n).encode("utf-8")) for n in names]
                p_best = self.calibration_.p_best(pred, known, n_known, seed=self.seed, keys=keys)
            else:  # same columns either way, so scripts can rely on them
                log.warning("this model has no interval calibration (%s): lower, upper and p_best are empty",
                            "fitted with --no-calibrate" if not self.calibrate else
                            "too few datasets with records to hold some out")
                lower = upper = p_best = np.full(pred.shape, np.nan)
            rows.update(lower=lower.ravel(), upper=upper.ravel(), p_best=p_best.ravel())
        return pd.DataFrame(rows)

    def predict(self, datasets: Sequence[str] | None = None, *, level: float | None = None,
                uncertainty: bool = True) -> pd.DataFrame:
        """One row per (model, dataset): ``model, dataset, predicted, known[, lower, upper, p_best]``.

        ``known`` is the recorded accuracy (NaN when the pair has no record);
        ``lower``/``upper`` bound ``predicted`` at ``level`` (default 0.8);
        ``p_best`` is the probability that the model is the dataset's best.
        All datasets of the zoo when ``datasets`` is None.

        Raises
        ------
        UnknownNameError
            A dataset the zoo does not hold (with the closest valid names).
        """
        self._check_fitted()
        names = self.dataset_ids if datasets is None else [str(d) for d in datasets]
        idx = self.features_.dataset_index(names)
        block = DatasetBlock(index=idx, features=self.features_.dataset_features_[idx],
                             scores={k: v[idx] for k, v in self.scores_.items()})
        return self._frame(block, names, self.known_[idx], level, uncertainty)

    def predict_new(self, metadata: Mapping | pd.DataFrame, scores: pd.DataFrame | None = None, *,
                    level: float | None = None, uncertainty: bool = True) -> pd.DataFrame:
        """Predictions for brand-new datasets known only by their metadata.

        Parameters
        ----------
        metadata : mapping or DataFrame
            One dataset (mapping column → value) or one row per dataset, with the
            zoo's dataset columns (an optional ``dataset`` column names them).
        scores : DataFrame, optional
            ``model, dataset, metric, score`` rows for the new datasets (e.g. LogME).
        """
        self._check_fitted()
        frame = pd.DataFrame([dict(metadata)]) if isinstance(metadata, Mapping) else metadata.reset_index(drop=True)
        if "dataset" not in frame.columns:
            frame = frame.assign(dataset=[f"new-dataset-{i + 1}" if len(frame) > 1 else "new-dataset"
                                          for i in range(len(frame))])
        clash = [d for d in frame["dataset"].astype(str) if d in self.features_.dataset_pos_]
        if clash:
            raise RecsysError(f"dataset {clash[0]!r} is already in the zoo; ask for it by name (--dataset) or give "
                              f"the new dataset another name")
        block = self.features_.new_datasets(frame, scores)
        known = np.full((len(frame), len(self.model_ids)), np.nan)
        return self._frame(block, frame["dataset"].astype(str).tolist(), known, level, uncertainty)

    @staticmethod
    def _rank(frame: pd.DataFrame, k: int) -> pd.DataFrame:
        if k < 1:
            raise RecsysError(f"k must be at least 1, got {k}")
        # Rank by the best estimate: the record where there is one, else the prediction.
        estimate = frame["known"].where(frame["known"].notna(), frame["predicted"])
        order = np.lexsort((np.arange(len(frame)), -estimate.to_numpy(dtype=float)))
        top = frame.iloc[order[:k]].reset_index(drop=True)
        top.insert(0, "rank", np.arange(1, len(top) + 1))
        return top

    def topk(self, dataset: str, k: int = 5, *, level: float | None = None) -> pd.DataFrame:
        """The ``k`` best models for a dataset of the zoo, best first.

        Models are ranked by recorded accuracy where the pair has a record,
        else by predicted accuracy.
        """
        return self._rank(self.predict([dataset], level=level), k)

    def topk_new(self, metadata: Mapping | pd.DataFrame, k: int = 5, scores: pd.DataFrame | None = None, *,
                 level: float | None = None) -> pd.DataFrame:
        """The ``k`` best models for one brand-new dataset described by ``metadata``."""
        frame = self.predict_new(metadata, scores, level=level)
        if frame["dataset"].nunique() != 1:
            raise RecsysError("topk_new takes one dataset; use predict_new for several")
        return self._rank(frame, k)

    # -- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the fitted recommender to one model file (atomic; never pickle)."""
        self._check_fitted()
        path = Path(path) if path is not None else default_model_path()
        engine_meta, engine_arrays = self.engine_.get_state()
        feat_meta, feat_arrays = self.features_.to_state()
        arrays = {f"engine.{k}": v for k, v in engine_arrays.items()}
        arrays.update({f"features.{k}": v for k, v in feat_arrays.items()})
        arrays["known"] = self.known_
        arrays.update({f"scores.{i}": v for i, v in enumerate(self.scores_.values())})
        if self.calibration_ is not None:
            arrays.update(self.calibration_.to_state())
        meta = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "libraries": _library_versions(),
            "recommender": {"seed": self.seed, "level": self.level, "text_dims": self.text_dims,
                            "text_encoder": self.text_encoder, "calibrate": self.calibrate,
                            "score_metrics": list(self.scores_)},
            "engine": engine_meta,
            "features": feat_meta,
            "zoo": self.zoo_,
            "timing": getattr(self, "timing_", {}),
        }
        return write_artifact(path, meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Recommender":
        """Read a model file written by :meth:`save` (never unpickles, never runs code)."""
        path = Path(path) if path is not None else default_model_path()
        meta, arrays = read_artifact(path)
        check_model_state(meta, arrays, path)
        try:
            r = meta["recommender"]
            engine_state = meta["engine"]
            cls_ = get_engine_class(engine_state["name"])
            engine = cls_.from_state(engine_state, {k[len("engine."):]: v for k, v in arrays.items()
                                                    if k.startswith("engine.")})
            rec = cls(engine=engine_state["name"], seed=r["seed"], text_encoder=r.get("text_encoder"),
                      text_dims=r["text_dims"], level=r["level"], calibrate=r.get("calibrate", True))
            rec.features_ = FeatureBuilder.from_state(meta["features"], {k[len("features."):]: v for k, v in arrays.items()
                                                                         if k.startswith("features.")})
            rec.engine_ = engine
            rec.known_ = arrays["known"]
            rec.scores_ = {m: arrays[f"scores.{i}"] for i, m in enumerate(r.get("score_metrics", []))}
            rec.calibration_ = Calibration.from_state(arrays)
            rec.zoo_ = meta.get("zoo", {})
            rec.timing_ = meta.get("timing", {})
            rec.meta_ = meta
            # Use the engine's arrays once: a file whose arrays disagree fails here, with one line.
            rec.predict(list(dict.fromkeys([rec.dataset_ids[0], rec.dataset_ids[-1]])), uncertainty=False)
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as exc:
            raise ArtifactError(f"model file {str(path)!r} is incomplete or from an incompatible recsys "
                                f"({type(exc).__name__}: {exc}); re-create it with `recsys fit`") from None
        except RecsysError as exc:
            raise ArtifactError(f"model file {str(path)!r}: {exc}") from None
        return rec

    def info(self) -> dict:
        """What the fitted recommender holds (for ``recsys info``)."""
        self._check_fitted()
        n_known = int((~np.isnan(self.known_)).sum())
        return {
            "recsys_version": getattr(self, "meta_", {}).get("recsys_version", __version__),
            "created": getattr(self, "meta_", {}).get("created"),
            "engine": self.engine_.name,
            "engine_summary": self.engine_.summary,
            "engine_params": self.engine_.get_params(),
            "zoo": self.zoo_,
            "models": len(self.model_ids),
            "datasets": len(self.dataset_ids),
            "known_pairs": n_known,
            "model_features": len(self.features_.model_spec_.names),
            "dataset_features": len(self.features_.dataset_spec_.names),
            "dataset_columns": self.features_.dataset_columns_,
            "text_encoder": (self.features_.to_state()[0].get("text_encoder") or {}).get("spec"),
            "calibrated": self.calibration_ is not None,
            "interval_level": self.level,
            "timing": getattr(self, "timing_", {}),
        }
