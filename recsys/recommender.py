"""The public face of recsys: fit on a zoo, ask by name, save and load.

:class:`Recommender` owns the fitted zoo's data (:class:`~recsys.features.data.ZooData`:
ids, records, side features, scores) and joins the feature builder (metadata of
new datasets → features), an engine (the accuracy predictor, fitted on that
data) and a calibration (intervals and P(best)); every answer comes from
:func:`recsys.engines.answer.answer`. It is the only layer, besides the CLI,
that speaks names.

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
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np

from ._version import __version__
from .artifact import check_finite, check_model_state, read_artifact, upgrade, verify_mapped, write_artifact
from .engines import DEFAULT_ENGINE, Engine, get_engine_class, make_engine
from .engines.answer import answer, joint_model
from .engines.calibration import Calibration, calibrate
from .errors import ArtifactError, ModelFitError, RecsysError
from .features.data import DatasetBlock, ZooData
from .paths import default_model_path

if TYPE_CHECKING:  # pandas, the feature builder and the zoo are imported only where a method needs them
    import pandas as pd

    from .features.builder import FeatureBuilder
    from .zoo import Zoo

__all__ = ["Recommender", "CAL_MAX_RECORDS"]

log = logging.getLogger(__name__)

#: above this many records, the calibration refits the engine on a random sample of datasets holding about
#: this many records (the residuals' distribution, not the zoo, is what it estimates)
CAL_MAX_RECORDS = 1_000_000
#: output columns of predict / topk, in order
COLUMNS = ("model", "dataset", "predicted", "known", "lower", "upper", "p_best")
#: output columns of plan, in order
PLAN_COLUMNS = ("step", "model", "dataset", "predicted", "lower", "upper", "p_best", "expected_best", "p_found")


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
        Calibrate the intervals and P(best) (extra fits on part of the records).
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

    def fit(self, zoo: "Zoo | str | os.PathLike") -> "Recommender":
        """Fit on every record of ``zoo`` (a :class:`Zoo`, a zoo name or directory).

        Returns
        -------
        self
        """
        from .features.builder import FeatureBuilder
        from .zoo import Zoo

        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or not 0 <= int(self.seed) <= 2 ** 32 - 1:
            raise RecsysError(f"give a seed from 0 to {2 ** 32 - 1}: got {self.seed!r}")
        if not isinstance(zoo, Zoo):
            from . import datasets

            zoo = datasets.load(zoo)
        _warn_floored(zoo)
        t0 = time.perf_counter()
        features = FeatureBuilder(text_encoder=self.text_encoder, text_dims=self.text_dims).fit(zoo)
        data = features.zoo_data(zoo)
        self._set_data(data)
        t1 = time.perf_counter()
        log.info("fitting %s on %d records (%d models x %d datasets)", self._engine_name(), len(data.records),
                 data.n_models, data.n_datasets)
        self.engine_ = self._new_engine().fit(data)
        t2 = time.perf_counter()
        self.calibration_ = None
        if self.calibrate:
            self.calibration_ = self._calibrate(data)
        t3 = time.perf_counter()
        self._features = features
        self.zoo_ = {"name": zoo.name, "fingerprint": zoo.fingerprint(), "models": len(zoo.models),
                     "datasets": len(zoo.datasets), "records": len(zoo.records), "metrics": zoo.metrics}
        self.timing_ = {"features_s": round(t1 - t0, 3), "engine_s": round(t2 - t1, 3),
                        "calibration_s": round(t3 - t2, 3)}
        log.debug("fitted %s on %s in %.2fs (features %.2fs, engine %.2fs, calibration %.2fs)",
                  self.engine_.name, zoo.name, t3 - t0, t1 - t0, t2 - t1, t3 - t2)
        return self

    def _engine_name(self) -> str:
        return self.engine.name if isinstance(self.engine, Engine) else str(self.engine)

    def _calibrate(self, data: ZooData) -> Calibration | None:
        """The intervals' and P(best)'s calibration; on a large zoo, on a random sample of its datasets."""
        sample = data
        rows = np.flatnonzero(data.records.row_counts() > 0)
        if len(data.records) > CAL_MAX_RECORDS and len(rows) > 100:
            n = max(100, int(len(rows) * CAL_MAX_RECORDS / len(data.records)))
            pick = np.sort(np.random.default_rng([self.seed, 4242]).choice(rows, min(n, len(rows)), replace=False))
            sample = data.subset_datasets(pick)
            log.info("calibrating on %d of the %d recorded datasets (%d records)", len(pick), len(rows),
                     len(sample.records))
        else:
            log.info("calibrating intervals and P(best) (one more fit with part of the records hidden)")
        cal = calibrate(self._new_engine, sample, seed=self.seed)
        if not cal.abs_residuals:
            log.warning("too few datasets with records (%d) to calibrate intervals: lower, upper and p_best "
                        "will be empty; add records for at least two datasets", len(rows))
            return None
        return cal

    def _set_data(self, data: ZooData) -> None:
        self.data_ = data
        self._unrecorded = data.model_record_counts() == 0
        self._lazy = False
        self._joint = None

    def _joint_model(self):
        """The joint distribution of the engine's answers (its fixed draws made once per Recommender)."""
        if getattr(self, "_joint", None) is None:
            self._joint = joint_model(self.engine_, self.calibration_, self._unrecorded)
        return self._joint

    def _given(self, known: "Mapping[str, float] | None", stored: np.ndarray | None, dataset: str) -> dict | None:
        """Results given for one dataset (model name -> accuracy) as model index -> accuracy, checked.

        A result that differs from the stored record of the pair replaces it, and the log says so.
        """
        if known is None:
            return None
        if not isinstance(known, Mapping):
            raise RecsysError(f"known must map model names to accuracies, e.g. {{'resnet50': 0.81}}; got "
                              f"{type(known).__name__}")
        names = [str(k) for k in known]
        idx = self.data_.model_ids.indices(names)
        out = {}
        for (name, value), j in zip(known.items(), idx):
            try:
                v = float(value)
            except (TypeError, ValueError):
                v = float("nan")
            if isinstance(value, bool) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
                raise RecsysError(f"give the accuracy of model {str(name)!r} as a finite fraction in [0, 1], as in "
                                  f"the zoo (0.81 for 81%; --known and --results also read 81%): got {value!r}")
            if stored is not None and not np.isnan(stored[j]):
                if stored[j] == v:
                    continue  # the stored record itself: nothing to condition on
                log.warning("model %s on %s: the given result %.6g replaces the stored record %.6g", name, dataset,
                            v, stored[j])
            out[int(j)] = v
        return out or None

    def _check_fitted(self) -> None:
        if not hasattr(self, "engine_"):
            from .errors import NotFittedError

            raise NotFittedError("call fit first (or Recommender.load): this Recommender is not fitted yet")

    @property
    def model_ids(self) -> list[str]:
        self._check_fitted()
        return list(self.data_.model_ids)

    @property
    def dataset_ids(self) -> list[str]:
        self._check_fitted()
        return list(self.data_.dataset_ids)

    @property
    def features_(self) -> "FeatureBuilder":
        """The feature builder (metadata of new datasets → features); rebuilt from the model file on first use."""
        if getattr(self, "_features", None) is None:
            from .features.builder import FeatureBuilder

            meta, arrays = self._feature_state
            self._features = FeatureBuilder.from_state(meta, arrays)
        return self._features

    def dataset_index(self, names: Sequence[str]) -> np.ndarray:
        """Row of each dataset name; :class:`UnknownNameError` (with close names) otherwise."""
        return self.data_.dataset_ids.indices(names)

    # -- prediction ---------------------------------------------------------------
    def _columns(self, block: DatasetBlock, names: Sequence[str], known: np.ndarray, level: float | None,
                 uncertainty: bool, given: list | None = None, plan: dict | None = None) -> dict[str, np.ndarray]:
        """Every output column, flat arrays (one entry per (dataset, model), dataset-major); no pandas.

        ``given``: per dataset, results just obtained (model index -> accuracy); ``plan``: the plan's
        arguments (then the plan's columns are returned).
        """
        if not self._lazy:
            return self._compute_columns(block, names, known, level, uncertainty, given, plan)
        # Memory-mapped model file: its values were not read at load; check what this answer reads, and
        # report a failure inside the engine as the damaged file it is.
        what = f"model file {str(getattr(self, 'path_', '?'))!r}"
        verify_mapped(self._arrays, self.path_, self._nan_ok)  # each mapped array once: checksum, finite values
        zoo = block.index[block.index >= 0]
        problem = self.data_.records.check_rows(zoo) or self.engine_.check_rows(zoo)
        if problem:
            raise ArtifactError(f"re-create {what} with `recsys fit`: it {problem}; it is damaged")
        try:
            return self._compute_columns(block, names, known, level, uncertainty, given, plan)
        except (IndexError, ValueError, TypeError, ArithmeticError) as exc:
            if isinstance(exc, RecsysError) and not isinstance(exc, ModelFitError):
                raise
            msg = (str(exc).splitlines() or [""])[0]
            raise ArtifactError(f"re-create {what} with `recsys fit`: it gives values that cannot be used "
                                f"({type(exc).__name__}: {msg}); it is damaged") from None

    def _compute_columns(self, block: DatasetBlock, names: Sequence[str], known: np.ndarray, level: float | None,
                         uncertainty: bool, given: list | None = None, plan: dict | None = None
                         ) -> dict[str, np.ndarray]:
        if uncertainty and self.calibration_ is None:  # same columns either way, so scripts can rely on them
            log.warning("this model has no interval calibration (%s): lower, upper and p_best are empty",
                        "fitted with --no-calibrate" if not self.calibrate else
                        "too few datasets with records to hold some out")
        ans = answer(self.engine_, self.calibration_, block, known, level=self.level if level is None else level,
                     unrecorded=self._unrecorded, uncertainty=uncertainty, given=given, joint=self._joint_model())
        if plan is not None:
            return self._plan_columns(ans, names[0], **plan)
        n_models = ans.predicted.shape[1]
        cols = {
            "model": np.tile(np.array(list(self.data_.model_ids), dtype=object), len(names)),
            "dataset": np.repeat(np.array(list(names), dtype=object), n_models),
            "predicted": ans.predicted.ravel(),
            "known": ans.known.ravel(),
        }
        if uncertainty:
            cols.update(lower=ans.lower.ravel(), upper=ans.upper.ravel(), p_best=ans.p_best.ravel())
        return cols

    def predict_columns(self, datasets: Sequence[str] | None = None, *, level: float | None = None,
                        uncertainty: bool = True, known: "Mapping[str, float] | None" = None
                        ) -> dict[str, np.ndarray]:
        """:meth:`predict` as a dict of flat columns (numpy arrays), without pandas."""
        self._check_fitted()
        names = list(self.data_.dataset_ids) if datasets is None else [str(d) for d in datasets]
        idx = self.dataset_index(names)
        stored = self.data_.records.dense(idx)
        return self._columns(self.data_.block(idx), names, stored, level, uncertainty,
                             self._given_one(known, names, stored))

    def _given_one(self, known, names: Sequence[str], stored: np.ndarray) -> list | None:
        """``known`` (results of one dataset) as the per-dataset list :func:`answer` takes."""
        if known is None:
            return None
        if len(names) != 1:
            raise RecsysError(f"known results are for one dataset, but {len(names)} are asked for; ask for the "
                              f"dataset they were obtained on alone")
        return [self._given(known, stored[0], names[0])]

    def iter_predict(self, *, level: float | None = None, uncertainty: bool = True,
                     block: int = 64) -> Iterator[dict[str, np.ndarray]]:
        """Predictions for every dataset of the zoo, ``block`` datasets at a time (dicts of flat columns).

        Memory stays O(block x models): the whole matrix is never held (``recsys predict`` streams it).
        """
        self._check_fitted()
        ids = self.data_.dataset_ids
        for start in range(0, len(ids), block):
            idx = np.arange(start, min(start + block, len(ids)))
            yield self._columns(self.data_.block(idx), [ids[i] for i in idx], self.data_.records.dense(idx), level,
                                uncertainty)

    def predict(self, datasets: Sequence[str] | None = None, *, level: float | None = None,
                uncertainty: bool = True, known: "Mapping[str, float] | None" = None) -> "pd.DataFrame":
        """One row per (model, dataset): ``model, dataset, predicted, known[, lower, upper, p_best]``.

        ``known`` is the recorded accuracy (NaN when the pair has no record);
        ``lower``/``upper`` bound ``predicted`` at ``level`` (default 0.8);
        ``p_best`` is the probability that the model is the dataset's best.
        All datasets of the zoo when ``datasets`` is None (on a large zoo, prefer
        :meth:`iter_predict`, which streams them).

        Parameters
        ----------
        known : mapping of model name to accuracy, optional
            Results just obtained on the one dataset asked for: the answer is conditioned on them (no
            refit, nothing written) and they show in the ``known`` column; a result that differs from a
            stored record of the pair replaces it (the log says so).

        Raises
        ------
        UnknownNameError
            A dataset or model the zoo does not hold (with the closest valid names).
        """
        import pandas as pd

        return pd.DataFrame(self.predict_columns(datasets, level=level, uncertainty=uncertainty, known=known))

    def predict_new(self, metadata: "Mapping | pd.DataFrame", scores: "pd.DataFrame | None" = None, *,
                    level: float | None = None, uncertainty: bool = True,
                    known: "Mapping[str, float] | None" = None) -> "pd.DataFrame":
        """Predictions for brand-new datasets known only by their metadata.

        Parameters
        ----------
        metadata : mapping or DataFrame
            One dataset (mapping column → value) or one row per dataset, with the
            zoo's dataset columns (an optional ``dataset`` column names them).
        scores : DataFrame, optional
            ``model, dataset, metric, score`` rows for the new datasets (e.g. LogME).
        known : mapping of model name to accuracy, optional
            Results already obtained on the (one) new dataset (see :meth:`predict`).
        """
        import pandas as pd

        return pd.DataFrame(self._new_columns(metadata, scores, level, uncertainty, known))

    def new_columns(self, metadata, scores=None, *, level: float | None = None, uncertainty: bool = True,
                    known: "Mapping[str, float] | None" = None) -> dict[str, np.ndarray]:
        """:meth:`predict_new` as a dict of flat columns (numpy arrays)."""
        return self._new_columns(metadata, scores, level, uncertainty, known)

    def _new_block(self, metadata, scores) -> tuple[DatasetBlock, list[str]]:
        from .features.builder import new_dataset_frame

        self._check_fitted()
        frame = new_dataset_frame(metadata)
        clash = [d for d in frame["dataset"] if d in self.data_.dataset_ids]
        if clash:
            raise RecsysError(f"ask for dataset {clash[0]!r} by name (--dataset), or give the new dataset another "
                              f"name: {clash[0]!r} is already in the zoo")
        return self.features_.new_datasets(frame, self.data_.model_ids, scores), frame["dataset"].tolist()

    def _new_columns(self, metadata, scores, level, uncertainty, known=None) -> dict[str, np.ndarray]:
        block, names = self._new_block(metadata, scores)
        stored = np.full((len(names), len(self.data_.model_ids)), np.nan)
        return self._columns(block, names, stored, level, uncertainty, self._given_one(known, names, stored))

    @staticmethod
    def _rank_columns(cols: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
        if k < 1:
            raise RecsysError(f"give k of at least 1: got {k}")
        # Rank by the best estimate: the record where there is one, else the prediction.
        known = np.asarray(cols["known"], dtype=float)
        estimate = np.where(np.isnan(known), cols["predicted"], known)
        _warn_untold(np.asarray(cols["predicted"])[None], known[None], cols["dataset"])  # (one dataset: its name first)
        order = np.lexsort((np.arange(len(estimate)), -estimate))[:k]
        out = {"rank": np.arange(1, len(order) + 1)}
        out.update({c: np.asarray(v)[order] for c, v in cols.items()})
        return out

    def topk_columns(self, dataset: str, k: int = 5, *, level: float | None = None,
                     known: "Mapping[str, float] | None" = None) -> dict[str, np.ndarray]:
        """:meth:`topk` as a dict of columns (numpy arrays), without pandas."""
        return self._rank_columns(self.predict_columns([dataset], level=level, known=known), k)

    def topk(self, dataset: str, k: int = 5, *, level: float | None = None,
             known: "Mapping[str, float] | None" = None) -> "pd.DataFrame":
        """The ``k`` best models for a dataset of the zoo, best first.

        Models are ranked by recorded accuracy where the pair has a record (or a result is given in
        ``known``, see :meth:`predict`), else by predicted accuracy.
        """
        import pandas as pd

        return pd.DataFrame(self.topk_columns(dataset, k, level=level, known=known))

    def topk_new(self, metadata: "Mapping | pd.DataFrame", k: int = 5, scores: "pd.DataFrame | None" = None, *,
                 level: float | None = None, known: "Mapping[str, float] | None" = None) -> "pd.DataFrame":
        """The ``k`` best models for one brand-new dataset described by ``metadata``."""
        import pandas as pd

        return pd.DataFrame(self.topk_new_columns(metadata, k, scores, level=level, known=known))

    def topk_new_columns(self, metadata, k: int = 5, scores=None, *, level: float | None = None,
                         known: "Mapping[str, float] | None" = None) -> dict[str, np.ndarray]:
        """:meth:`topk_new` as a dict of columns (numpy arrays)."""
        cols = self._new_columns(metadata, scores, level, True, known)
        if len(set(cols["dataset"])) != 1:
            raise RecsysError("use predict_new for several datasets: topk_new takes one")
        return self._rank_columns(cols, k)

    # -- planning -------------------------------------------------------------------------
    def plan(self, dataset: str, budget: float = 5, *, known: "Mapping[str, float] | None" = None,
             candidates: Sequence[str] | None = None, cost: str | None = None,
             level: float | None = None) -> "pd.DataFrame":
        """Which models to fine-tune on a dataset of the zoo, in order, to find its best model soon.

        One row per step: ``step, model, dataset, predicted, lower, upper, p_best, expected_best,
        p_found``. The plan maximises the expected best accuracy of the whole plan under the joint
        distribution of the dataset's accuracies (greedily: each step takes the model that raises it
        the most given those before it, so a model that errs with one already chosen is taken only
        where that still pays); ``expected_best`` is the expected best accuracy once the first
        ``step`` models are fine-tuned (the results in ``known`` included), ``p_found`` the
        probability that the best candidate is among them, ``p_best`` the probability that the
        model is the best of the candidates and the results. Where the dataset has results (or
        records), the log says how likely the best of them is to stay the best. Deterministic.

        Parameters
        ----------
        dataset : str
        budget : float
            Models to plan (an integer), or with ``cost`` the budget in that column's unit.
        known : mapping of model name to accuracy, optional
            Results already obtained on the dataset: the plan is conditioned on them (see :meth:`predict`).
        candidates : sequence of str, optional
            The models the plan may choose (e.g. those that fit your GPU or licence); default all.
        cost : str, optional
            A numeric model metadata column (e.g. parameters): plan for the best expected gain per
            unit of it, within ``budget`` in that unit.
        """
        import pandas as pd

        return pd.DataFrame(self.plan_columns(dataset, budget, known=known, candidates=candidates, cost=cost,
                                              level=level))

    def plan_columns(self, dataset: str, budget: float = 5, *, known=None, candidates=None, cost=None,
                     level: float | None = None) -> dict[str, np.ndarray]:
        """:meth:`plan` as a dict of columns (numpy arrays), without pandas (but for ``cost``)."""
        self._check_fitted()
        idx = self.dataset_index([str(dataset)])
        stored = self.data_.records.dense(idx)
        plan = self._plan_args(budget, candidates, cost)
        return self._columns(self.data_.block(idx), [str(dataset)], stored, level, True,
                             [self._given(known, stored[0], str(dataset))], plan)

    def plan_new(self, metadata: "Mapping | pd.DataFrame", budget: float = 5, scores: "pd.DataFrame | None" = None,
                 *, known: "Mapping[str, float] | None" = None, candidates: Sequence[str] | None = None,
                 cost: str | None = None, level: float | None = None) -> "pd.DataFrame":
        """:meth:`plan` for one brand-new dataset described by ``metadata`` (see :meth:`topk_new`)."""
        import pandas as pd

        return pd.DataFrame(self.plan_new_columns(metadata, budget, scores, known=known, candidates=candidates,
                                                  cost=cost, level=level))

    def plan_new_columns(self, metadata, budget: float = 5, scores=None, *, known=None, candidates=None,
                         cost=None, level: float | None = None) -> dict[str, np.ndarray]:
        """:meth:`plan_new` as a dict of columns (numpy arrays)."""
        block, names = self._new_block(metadata, scores)
        if len(names) != 1:
            raise RecsysError(f"a plan is for one dataset; the metadata describe {len(names)}")
        stored = np.full((1, len(self.data_.model_ids)), np.nan)
        plan = self._plan_args(budget, candidates, cost)
        return self._columns(block, names, stored, level, True, [self._given(known, None, names[0])], plan)

    def _plan_args(self, budget, candidates, cost) -> dict:
        """The plan's arguments, checked: (budget, candidate mask, cost per model)."""
        if self.calibration_ is None:
            why = "it was fitted with --no-calibrate" if not self.calibrate else \
                "too few datasets with records to calibrate"
            raise RecsysError(f"a plan needs the model's calibration (how its predictions err), and this model has "
                              f"none ({why}); fit it again with `recsys fit`")
        try:
            b = float(budget)
        except (TypeError, ValueError):
            b = float("nan")
        if isinstance(budget, bool) or not math.isfinite(b) or b <= 0:
            raise RecsysError(f"budget must be a positive number (models to plan, or with a cost column the "
                              f"budget in its unit); got {budget!r}")
        mask = np.ones(len(self.data_.model_ids), bool)
        if candidates is not None:
            names = [str(c) for c in candidates]
            if not names:
                raise RecsysError("the candidates list no model; give at least one model name (or leave them out "
                                  "for every model)")
            mask[:] = False
            mask[self.data_.model_ids.indices(names)] = True
        price = None
        if cost is None:
            if b != int(b):
                raise RecsysError(f"budget counts models without a cost column: give a whole number, got {budget!r}")
        else:
            price = self.model_column(cost)
            missing = mask & ~(np.isfinite(price) & (price > 0))
            if missing.all():
                raise RecsysError(f"no candidate has a positive {cost!r}; choose another --cost column")
            if missing.any():
                log.warning("%d candidate(s) without a positive %s are left out of the plan", int(missing.sum()), cost)
            mask &= ~missing
        return {"budget": b, "candidates": mask, "cost": price, "cost_name": cost}

    def model_column(self, column: str) -> np.ndarray:
        """The values of a numeric model metadata column (NaN where missing), as in ``models.csv``."""
        spec = self.features_.model_spec_
        numeric = {n["column"]: n for n in spec.numeric}
        if column not in numeric:
            from .errors import closest

            near = closest(column, list(numeric))
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise RecsysError(f"--cost {column!r} is not a numeric model column{hint}; the numeric model columns "
                              f"are: {', '.join(numeric) or 'none'}")
        n = numeric[column]
        sl = self.data_.models.layout.span("numeric", column)
        z = np.asarray(self.data_.models.matrix[:, sl.start], dtype=float)
        x = z * n["std"] + n["mean"]
        if n["log"]:
            x = np.exp(x)
        if n.get("missing") and sl.stop - sl.start > 1:
            x = np.where(self.data_.models.matrix[:, sl.start + 1] > 0.5, np.nan, x)
        return x

    def _plan_columns(self, ans, name: str, budget: float, candidates: np.ndarray, cost: np.ndarray | None,
                      cost_name: str | None) -> dict[str, np.ndarray]:
        post = ans.posteriors[0]
        free = candidates & ~post.known
        if not free.any():
            raise RecsysError(f"rank them with `recsys topk` (Python: topk) instead: every candidate model already has a "
                              f"result on {name!r}, so there is nothing left to plan")
        if cost is None and budget > free.sum():
            raise RecsysError(f"budget {budget:g} is above the {int(free.sum())} candidate model(s) without a "
                              f"result; plan at most {int(free.sum())}")
        if cost is not None and not (cost[free] <= budget).any():
            raise RecsysError(f"budget {budget:g} is below the cheapest candidate's {cost_name} "
                              f"({np.nanmin(cost[free]):g}); raise --budget")
        plan = post.plan(budget, free, cost)
        among = candidates | post.known
        p_best = ans.p_best[0] if among.all() else post.p_best(among)
        if post.known.any():  # (when to stop: how likely the candidates left are to beat the results so far)
            known = np.flatnonzero(post.known)
            top = int(known[np.argmax(post.mu[known])])
            log.info("the best result so far on %s, %s at %.4g, stays the best with probability %.2f", name,
                     self.data_.model_ids[top], post.mu[top], post.p_stays(p_best))
        models = np.asarray(plan.models, dtype=np.int64)
        n = len(models)
        return {"step": np.arange(1, n + 1), "model": np.array([self.data_.model_ids[j] for j in models], dtype=object),
                "dataset": np.array([name] * n, dtype=object), "predicted": ans.predicted[0, models],
                "lower": ans.lower[0, models], "upper": ans.upper[0, models], "p_best": p_best[models],
                "expected_best": np.asarray(plan.expected_best, dtype=float),
                "p_found": np.asarray(plan.p_found, dtype=float)}

    # -- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the fitted recommender to one model file (atomic; never pickle)."""
        self._check_fitted()
        path = Path(path) if path is not None else default_model_path()
        engine_meta, engine_arrays = self.engine_.get_state()
        feat_meta, feat_arrays = self.features_.to_state()
        data_meta, arrays = self.data_.to_arrays("data.")
        arrays.update({f"engine.{k}": v for k, v in engine_arrays.items()})
        arrays.update({f"features.{k}": v for k, v in feat_arrays.items()})
        if self.calibration_ is not None:
            arrays.update(self.calibration_.to_state())
        meta = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "libraries": _library_versions(),
            "recommender": {"seed": self.seed, "level": self.level, "text_dims": self.text_dims,
                            "text_encoder": self.text_encoder, "calibrate": self.calibrate},
            "data": data_meta,
            "engine": engine_meta,
            "features": feat_meta,
            "zoo": self.zoo_,
            "timing": getattr(self, "timing_", {}),
        }
        return write_artifact(path, meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, lazy: bool = False) -> "Recommender":
        """Read a model file written by :meth:`save` (never unpickles, never runs code).

        Only numpy is needed to answer for the zoo's datasets: the feature builder
        (pandas, the text encoder) is rebuilt when a brand-new dataset is asked for.

        Parameters
        ----------
        path : path, optional
            Default: the default model file (see ``recsys.paths``).
        lazy : bool
            Memory-map the large arrays instead of reading them (``recsys topk`` and
            ``recsys predict`` do): loading takes milliseconds whatever the zoo's size, and
            a query reads the pages it needs. The checks of the records (order, range, values
            in [0, 1]) and of the engine's per-dataset indices then apply to the rows each
            answer reads, when it reads them, and the first answer reads each mapped array
            once for its CRC-32 and its values (:func:`recsys.artifact.verify_mapped`; a file
            that passed is remembered in the user's cache and not read again while it is
            unchanged). The default reads everything now and checks it whole, CRC-32 included.
        """
        path = Path(path) if path is not None else default_model_path()
        meta, arrays = upgrade(*read_artifact(path, mmap=lazy))
        check_model_state(meta, arrays, path)
        try:
            nan_ok = {"data.scores."} | {f"engine.{n}" for n in get_engine_class(meta["engine"]["name"]).nan_arrays}
        except (KeyError, TypeError, ImportError, RecsysError):
            nan_ok = set()  # (an unknown engine is refused below, with its own line)
        check_finite(meta, arrays, path, nan_ok)
        try:
            r = meta["recommender"]
            rec = cls(engine=meta["engine"]["name"], seed=r["seed"], text_encoder=r.get("text_encoder"),
                      text_dims=r["text_dims"], level=r["level"], calibrate=r.get("calibrate", True))
            rec._set_data(ZooData.from_arrays(meta["data"], arrays, "data."))
            rec.engine_ = get_engine_class(meta["engine"]["name"]).from_state(meta["engine"], _part(arrays, "engine."),
                                                                              rec.data_)
            rec._feature_state = (meta["features"], _part(arrays, "features."))
            rec._features = None
            rec._lazy = any(isinstance(a, np.memmap) for a in arrays.values())
            rec._arrays, rec._nan_ok = arrays, frozenset(nan_ok)  # (the mapped ones, checked before the first answer)
            rec.path_ = path
            rec.calibration_ = Calibration.from_state(arrays)
            rec.zoo_ = meta.get("zoo", {})
            rec.timing_ = meta.get("timing", {})
            rec.meta_ = meta
            # Use the engine's arrays once: a file whose arrays disagree fails here, with one line. (Lazily
            # loaded, each answer checks what it reads, and fails with the same line: no need to read more.)
            if not rec._lazy:
                ids = rec.data_.dataset_ids
                rec.predict_columns(list(dict.fromkeys([ids[0], ids[-1]])), uncertainty=False)
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as exc:
            raise ArtifactError(f"re-create model file {str(path)!r} with `recsys fit`: it is incomplete or from an "
                                f"incompatible recsys ({type(exc).__name__}: {exc})") from None
        except RecsysError as exc:
            raise ArtifactError(f"re-create model file {str(path)!r} with `recsys fit`: {exc}") from None
        return rec

    def info(self) -> dict:
        """What the fitted recommender holds (for ``recsys info``)."""
        self._check_fitted()
        fb = self.features_
        return {
            "recsys_version": getattr(self, "meta_", {}).get("recsys_version", __version__),
            "created": getattr(self, "meta_", {}).get("created"),
            "engine": self.engine_.name,
            "engine_summary": self.engine_.summary,
            "engine_params": self.engine_.get_params(),
            "zoo": self.zoo_,
            "models": len(self.data_.model_ids),
            "datasets": len(self.data_.dataset_ids),
            "known_pairs": len(self.data_.records),
            "model_features": len(fb.model_spec_.names),
            "dataset_features": len(fb.dataset_spec_.names),
            "dataset_columns": fb.dataset_columns_,
            "text_encoder": (fb.encoder_info_ or {}).get("spec"),
            "calibrated": self.calibration_ is not None,
            "interval_level": self.level,
            "timing": getattr(self, "timing_", {}),
        }


def _part(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _warn_untold(predicted: np.ndarray, known: np.ndarray, names: Sequence[str]) -> None:
    """Say so when every model without a result gets the same prediction on a dataset (rows of ``predicted``,
    ``known``): a ranking of those models (``topk``) would be a ranking of ties."""
    unknown = np.isnan(known)
    p = np.where(unknown, predicted, np.nan)
    tied = (unknown.sum(1) > 1) & (np.nanmax(p, 1, initial=-np.inf) - np.nanmin(p, 1, initial=np.inf) <= 1e-12)
    if tied.any():
        first, n = int(np.flatnonzero(tied)[0]), int(tied.sum()) - 1
        more = f" (and {n} more dataset{'s' if n > 1 else ''})" if n else ""
        log.warning("every model without a result gets the same predicted accuracy on %s%s: nothing the zoo holds "
                    "tells them apart there, so they are listed in the models' file order; results of two models or "
                    "more (--known MODEL=ACCURACY) tell the others apart where models err together, and so may "
                    "dataset metadata or more datasets in the zoo", names[first], more)


def _warn_floored(zoo) -> None:
    """One warning line naming the datasets whose records look like failed fine-tunes (``Zoo.floored``)."""
    bad = zoo.floored()
    if not len(bad):
        return
    shown = "; ".join(f"{r.dataset}: {r.at_floor} of {r.records} records at {r.floor:.4g}, the highest {r.highest:.4g}"
                      for r in bad.head(3).itertuples())
    more = f"; and {len(bad) - 3} more (recsys info --zoo)" if len(bad) > 3 else ""
    log.warning("%s: %d dataset(s) with most records at their lowest accuracy, as failed fine-tunes would be (%s%s); "
                "recsys learns them as results: remove the records of runs that failed from records.csv",
                zoo.name, len(bad), shown, more)
