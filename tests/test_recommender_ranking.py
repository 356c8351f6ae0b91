"""The Recommender's answers and their ranking, on the example zoo (issue 21: recommender.py's mutants).

Columns and their order, the rank (record first, else prediction; ties by model order), k, levels passed
through, streaming, brand-new datasets, the warning without a calibration, and a lazily loaded file that is
damaged where an answer reads.
"""

from __future__ import annotations

import logging
import re
from unittest import mock

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys import artifact
from recsys.artifact import read_artifact, write_artifact
from recsys.errors import ArtifactError, RecsysError, UnknownNameError
from recsys.zoo import load_zoo

from conftest import ROOT

EXAMPLE = ROOT / "data" / "example-zoo"
COLUMNS = ["model", "dataset", "predicted", "known", "lower", "upper", "p_best"]
NEW = {"domain": "sketch", "num_classes": 10, "train_samples": 500, "labels": "cat, dog"}


@pytest.fixture(scope="module")
def rec():
    return recsys.Recommender(seed=0, text_encoder="hashing").fit(load_zoo(EXAMPLE))


def test_rank_columns_ranks_the_record_first_then_the_prediction_ties_by_model_order():
    from recsys.recommender import Recommender

    cols = {"model": np.array(["a", "b", "c", "d", "e"]), "dataset": np.array(["x"] * 5),
            "known": np.array([np.nan, 0.5, np.nan, np.nan, 0.9]), "predicted": np.array([0.7, 0.99, 0.5, 0.7, 0.1])}
    top = Recommender._rank_columns(cols, 4)
    assert list(top) == ["rank", "model", "dataset", "known", "predicted"]
    assert top["rank"].tolist() == [1, 2, 3, 4]
    assert top["model"].tolist() == ["e", "a", "d", "b"]  # 0.9 (record), 0.7 (a before d), 0.5 (record of b)
    assert Recommender._rank_columns(cols, 99)["model"].tolist() == ["e", "a", "d", "b", "c"]
    for k in (0, -2):
        with pytest.raises(RecsysError, match=f"^give k of at least 1: got {k}$"):
            Recommender._rank_columns(cols, k)


def test_topk_is_the_predict_frame_ranked(rec):
    name = rec.dataset_ids[2]
    frame = rec.predict([name])
    assert list(frame.columns) == COLUMNS and (frame["dataset"] == name).all()
    top = rec.topk(name, k=3)
    assert list(top.columns) == ["rank", *COLUMNS] and len(top) == 3
    est = frame["known"].where(frame["known"].notna(), frame["predicted"])
    assert top["model"].tolist() == frame.assign(e=est).sort_values("e", ascending=False, kind="stable")["model"][:3].tolist()
    cols = rec.topk_columns(name, k=3)
    pd.testing.assert_frame_equal(top, pd.DataFrame(cols))
    assert len(rec.topk(name)) == 5  # k's default


def test_levels_reach_every_answer(rec):
    # (a dataset with models not recorded: a recorded model's interval is its record, at every level)
    name = rec.dataset_ids[int(np.argmin(rec.data_.records.row_counts()))]
    for narrow, wide in ((rec.predict([name], level=0.3), rec.predict([name], level=0.95)),
                         (rec.topk(name, k=5, level=0.3), rec.topk(name, k=5, level=0.95)),
                         (pd.DataFrame(rec.predict_columns([name], level=0.3)),
                          pd.DataFrame(rec.predict_columns([name], level=0.95))),
                         (rec.predict_new(NEW, level=0.3), rec.predict_new(NEW, level=0.95)),
                         (rec.topk_new(NEW, k=5, level=0.3), rec.topk_new(NEW, k=5, level=0.95))):
        assert ((wide["upper"] - wide["lower"]).to_numpy() > (narrow["upper"] - narrow["lower"]).to_numpy() + 1e-9).any()
    default = rec.predict([name])
    pd.testing.assert_frame_equal(default, rec.predict([name], level=0.8))
    assert rec.level == 0.8


def test_predict_orders_rows_dataset_major_and_takes_names_as_strings(rec):
    names = [rec.dataset_ids[3], rec.dataset_ids[1]]
    frame = rec.predict(np.array(names))
    n = len(rec.model_ids)
    assert frame["dataset"].tolist() == [names[0]] * n + [names[1]] * n
    assert frame["model"].tolist() == list(rec.model_ids) * 2
    everything = rec.predict()
    assert everything["dataset"].unique().tolist() == list(rec.dataset_ids)
    bare = rec.predict(names, uncertainty=False)
    assert list(bare.columns) == COLUMNS[:4]
    pd.testing.assert_frame_equal(bare, frame[COLUMNS[:4]])
    with pytest.raises(UnknownNameError, match="unknown dataset 'cub bird'; did you mean 'cub birds'"):
        rec.predict(["cub bird"])
    np.testing.assert_array_equal(rec.dataset_index(names), [3, 1])


def test_iter_predict_streams_the_same_answers_in_blocks(rec):
    whole = rec.predict_columns(level=0.6)
    parts = list(rec.iter_predict(level=0.6, block=3))
    assert len(parts) == -(-len(rec.dataset_ids) // 3)
    for col in COLUMNS:
        np.testing.assert_array_equal(np.concatenate([p[col] for p in parts]), whole[col])
    bare = list(rec.iter_predict(uncertainty=False))
    assert len(bare) == 1 and list(bare[0]) == COLUMNS[:4]
    np.testing.assert_array_equal(bare[0]["predicted"], whole["predicted"])


def test_new_datasets(rec):
    frame = rec.predict_new([{**NEW, "dataset": "one"}, {**NEW, "dataset": "two", "domain": "photo"}])
    assert frame["dataset"].unique().tolist() == ["one", "two"] and frame["known"].isna().all()
    assert not np.allclose(frame["predicted"][:5], frame["predicted"][5:])
    top = rec.topk_new(NEW, k=2)
    assert len(top) == 2 and top["rank"].tolist() == [1, 2]
    with pytest.raises(RecsysError, match="^use predict_new for several datasets: topk_new takes one$"):
        rec.topk_new([{**NEW, "dataset": "one"}, {**NEW, "dataset": "two"}])
    with pytest.raises(RecsysError, match=r"^ask for dataset 'cub birds' by name \(--dataset\), or give the new dataset "
                                          r"another name: 'cub birds' is already in the zoo$"):
        rec.predict_new({**NEW, "dataset": "cub birds"})


def test_an_answer_without_a_calibration_says_why(caplog):
    zoo = load_zoo(EXAMPLE)
    rec = recsys.Recommender(seed=0, text_encoder="hashing", calibrate=False).fit(zoo)
    caplog.clear()  # (the fit's own lines: an earlier test may have set recsys's logger to INFO)
    with caplog.at_level(logging.WARNING, logger="recsys"):
        frame = rec.predict([rec.dataset_ids[0]])
    assert frame[["lower", "upper", "p_best"]].isna().all().all()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "this model has no interval calibration (fitted with --no-calibrate): lower, upper and p_best are empty"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recsys"):
        rec.predict([rec.dataset_ids[0]], uncertainty=False)
    assert caplog.text == ""


def test_a_lazy_load_refuses_the_damaged_rows_an_answer_reads(rec, tmp_path):
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        meta, arrays = read_artifact(rec.save(tmp_path / "m.npz"))
        y = np.array(arrays["data.y"])
        y[rec.data_.records.indptr[4]] = 1.5
        arrays["data.y"] = y
        meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "recsys_version", "arrays")}
        path = write_artifact(tmp_path / "bad.npz", meta, arrays)
        lazy = recsys.Recommender.load(path, lazy=True)
        assert lazy._lazy
        assert len(lazy.topk(rec.dataset_ids[0], k=2)) == 2
        with pytest.raises(ArtifactError, match=rf"^re-create model file {re.escape(repr(str(path)))} with `recsys "
                                                rf"fit`: it has recorded accuracies outside \[0, 1\]; it is damaged$"):
            lazy.topk(rec.dataset_ids[4], k=2)


def test_without_a_calibration_because_too_few_datasets_have_records(caplog):
    models = pd.DataFrame({"model": ["a", "b", "c"]})
    datasets = pd.DataFrame({"dataset": ["d", "e"], "size": [1.0, 2.0]})
    records = pd.DataFrame({"model": ["a", "b"], "dataset": ["d", "d"], "accuracy": [0.5, 0.6]})
    with caplog.at_level(logging.WARNING, logger="recsys"):
        rec = recsys.Recommender("popularity", seed=0, text_encoder="hashing").fit(
            recsys.Zoo.from_frames(models, datasets, records))
        caplog.clear()
        rec.predict(["e"])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "this model has no interval calibration (too few datasets with records to hold some out): lower, upper and "
        "p_best are empty"]


def _zoo(n_models, n_datasets, seed=0, unrecorded=0):
    rng = np.random.default_rng(seed)
    models = pd.DataFrame({"model": [f"m{i}" for i in range(n_models)], "family": rng.choice(["a", "b"], n_models)})
    datasets = pd.DataFrame({"dataset": [f"d{i}" for i in range(n_datasets)], "size": rng.integers(1, 99, n_datasets)})
    cells = [(f"m{m}", f"d{d}", float(rng.uniform(0.2, 0.9))) for d in range(n_datasets)
             for m in range(n_models - unrecorded) if rng.random() < 0.7]
    return recsys.Zoo.from_frames(models, datasets, pd.DataFrame(cells, columns=["model", "dataset", "accuracy"]))


def test_defaults_of_k_and_of_the_stream_block():
    rec = recsys.Recommender("popularity", seed=0, text_encoder="hashing", calibrate=False).fit(_zoo(8, 70))
    assert len(rec.topk("d0")) == 5 and len(rec.topk_columns("d0")["model"]) == 5
    assert len(rec.topk_new({"size": 10})) == 5
    parts = list(rec.iter_predict(uncertainty=False))
    assert [len(p["model"]) // 8 for p in parts] == [64, 6]


def test_unrecorded_models_are_told_to_p_best(tmp_path):
    from recsys.engines.answer import answer

    rec = recsys.Recommender("additive", seed=0, text_encoder="hashing").fit(_zoo(6, 40, unrecorded=2))
    idx = rec.dataset_index(["d1", "d2"])
    block, known = rec.data_.block(idx), rec.data_.records.dense(idx)
    frame = rec.predict(["d1", "d2"])
    unrecorded = rec.data_.model_record_counts() == 0
    assert unrecorded.tolist() == [False] * 4 + [True] * 2
    told = answer(rec.engine_, rec.calibration_, block, known, unrecorded=unrecorded).p_best.ravel()
    untold = answer(rec.engine_, rec.calibration_, block, known).p_best.ravel()
    np.testing.assert_array_equal(frame["p_best"].to_numpy(), told)
    assert not np.allclose(told, untold)


def test_scores_of_new_datasets_reach_their_answer():
    rec = recsys.Recommender("logme", seed=0, text_encoder="hashing", calibrate=False).fit(load_zoo(EXAMPLE))
    scores = pd.DataFrame({"model": list(rec.model_ids), "metric": "LOG_ME",
                           "score": np.linspace(-2.0, 3.0, len(rec.model_ids))})
    plain, scored = rec.predict_new(NEW), rec.predict_new(NEW, scores=scores)
    assert not np.allclose(plain["predicted"], scored["predicted"])
    pd.testing.assert_frame_equal(rec.topk_new(NEW, k=5, scores=scores).drop(columns="rank").reset_index(drop=True),
                                  scored.sort_values("predicted", ascending=False, kind="stable")
                                  .reset_index(drop=True)[COLUMNS])


def test_a_lazy_load_answers_as_the_eager_one_at_any_level_and_checks_row_0(rec, tmp_path):
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        path = rec.save(tmp_path / "m.npz")
        lazy, eager = recsys.Recommender.load(path, lazy=True), recsys.Recommender.load(path)
        assert lazy._lazy and not eager._lazy
        for level in (0.3, 0.9):
            pd.testing.assert_frame_equal(lazy.predict(level=level), eager.predict(level=level))
        assert list(lazy.topk(rec.dataset_ids[0], k=2).columns) == ["rank", *COLUMNS]
        assert list(lazy.predict([rec.dataset_ids[0]], uncertainty=False).columns) == COLUMNS[:4]
        meta, arrays = read_artifact(path)
        y = np.array(arrays["data.y"])
        y[0] = -0.5  # the first record of the first dataset
        arrays["data.y"] = y
        meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "recsys_version", "arrays")}
        bad = recsys.Recommender.load(write_artifact(tmp_path / "bad.npz", meta, arrays), lazy=True)
        with pytest.raises(ArtifactError, match=r"has recorded accuracies outside \[0, 1\]; it is damaged"):
            bad.predict([rec.dataset_ids[0]])


def test_a_lazy_answer_that_fails_inside_the_engine_is_the_damaged_file_it_is(rec, tmp_path, monkeypatch):
    from recsys.errors import ModelFitError

    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        path = rec.save(tmp_path / "m.npz")
        lazy = recsys.Recommender.load(path, lazy=True)
    name = rec.dataset_ids[0]
    for exc, kind in ((IndexError("index 99 is out of bounds\nsecond line"), "IndexError: index 99 is out of bounds"),
                      (ValueError(""), "ValueError: "), (ModelFitError("diverged"), "ModelFitError: diverged")):
        def broken(block, exc=exc):
            raise exc

        monkeypatch.setattr(lazy.engine_, "predict", broken)
        with pytest.raises(ArtifactError) as err:
            lazy.topk(name, k=2)
        assert str(err.value) == (f"re-create model file {str(path)!r} with `recsys fit`: it gives values that "
                                  f"cannot be used ({kind}); it is damaged")
    monkeypatch.setattr(lazy.engine_, "predict", lambda block: (_ for _ in ()).throw(RecsysError("its own message")))
    with pytest.raises(RecsysError, match="^its own message$"):
        lazy.topk(name, k=2)


def test_a_lazy_answer_verifies_the_mapped_arrays_against_the_file_it_names(rec, tmp_path):
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        path = rec.save(tmp_path / "m.npz")
        lazy = recsys.Recommender.load(path, lazy=True)
    name, arr = max(((n, a) for n, a in lazy._arrays.items() if isinstance(a, np.memmap)), key=lambda x: x[1].nbytes)
    with open(path, "r+b") as f:  # one bit flipped in the file under the mapping (not read since the load)
        f.seek(arr.offset)
        byte = f.read(1)[0]
        f.seek(arr.offset)
        f.write(bytes([byte ^ 1]))
    with pytest.raises(ArtifactError) as err:
        lazy.topk(rec.dataset_ids[0], k=2)
    assert str(err.value).startswith(f"re-create model file {str(path)!r}") and repr(name) in str(err.value)


def test_a_lazy_answer_checks_the_engine_rows_of_the_datasets_it_reads(rec, tmp_path, monkeypatch):
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        lazy = recsys.Recommender.load(rec.save(tmp_path / "m.npz"), lazy=True)
    seen = []
    monkeypatch.setattr(lazy.engine_, "check_rows", lambda rows: seen.append(np.asarray(rows).tolist()))
    lazy.topk(rec.dataset_ids[2], k=2)
    lazy.topk_new(NEW, k=2)  # (a new dataset reads no zoo row)
    assert seen == [[2], []]
    monkeypatch.setattr(lazy.engine_, "check_rows", lambda rows: "has kernel neighbours outside its 3 datasets")
    with pytest.raises(ArtifactError, match="has kernel neighbours outside its 3 datasets; it is damaged"):
        lazy.topk(rec.dataset_ids[2], k=2)


def test_a_lazy_load_answers_results_given_and_plans_as_the_eager_one(rec, tmp_path):
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        path = rec.save(tmp_path / "m.npz")
        lazy, eager = recsys.Recommender.load(path, lazy=True), recsys.Recommender.load(path)
    answers = rec.predict()
    left = answers.loc[answers["known"].isna()].groupby("dataset", sort=False).size()
    name = left.index[left >= 2][0]  # (a dataset with two models left to fine-tune)
    free = answers.loc[(answers["dataset"] == name) & answers["known"].isna(), "model"].tolist()
    known = {free[0]: 0.42}
    pd.testing.assert_frame_equal(lazy.topk(name, k=3, known=known), eager.topk(name, k=3, known=known))
    assert lazy.topk(name, k=len(rec.model_ids), known=known).set_index("model").loc[free[0], "known"] == 0.42
    plan = lazy.plan(name, 1, known=known)
    pd.testing.assert_frame_equal(plan, eager.plan(name, 1, known=known))
    assert plan["dataset"].tolist() == [name] and plan["model"].iloc[0] != free[0]


def test_predict_new_takes_the_results_given(rec):
    m = rec.model_ids[1]
    got = rec.predict_new(NEW, known={m: 0.37}).set_index("model")
    assert got.loc[m, "known"] == 0.37 and got.loc[m, "predicted"] == 0.37
    assert np.isnan(rec.predict_new(NEW).set_index("model").loc[m, "known"])


def test_a_zoo_that_tells_no_models_apart_on_a_new_dataset_says_so(caplog, tmp_path):
    # Datasets alternate: each model's gain on the even ones is its loss on the odd ones, and the metadata are
    # noise, so no profile predicts a held-out dataset better than a constant and a dataset without records gets
    # one prediction for every model: the answer says so rather than passing file order off as a ranking.
    rng = np.random.default_rng(1)
    n_d, n_m = 8, 30
    v = rng.normal(0, 0.05, n_m)
    sign = np.where(np.arange(n_d) % 2 == 0, 1.0, -1.0)
    Y = 0.7 + sign[:, None] * v[None, :] + rng.normal(0, 0.005, (n_d, n_m))
    models = pd.DataFrame({"model": [f"m{j}" for j in range(n_m)], "x": rng.normal(size=n_m)})
    datasets = pd.DataFrame({"dataset": [f"d{i}" for i in range(n_d + 1)], "a": rng.normal(size=n_d + 1)})
    records = pd.DataFrame([(f"m{j}", f"d{i}", Y[i, j]) for i in range(n_d) for j in range(n_m)],
                           columns=["model", "dataset", "accuracy"])
    rec = recsys.Recommender(seed=0, text_encoder="hashing").fit(
        recsys.Zoo.from_frames(models, datasets, records, name="alternating"))
    assert not rec.engine_.stack_weights_.any()  # the premise: the stack kept no profile
    path = rec.save(tmp_path / "alternating.recsys")
    with caplog.at_level(logging.WARNING, logger="recsys.recommender"):
        rec = recsys.load_model(path)  # (its check of the file answers for d8 too, but is no answer: silent)
        top = rec.topk("d8", k=5)
    assert top["predicted"].nunique() == 1 and top["model"].tolist() == ["m0", "m1", "m2", "m3", "m4"]
    said = [r.getMessage() for r in caplog.records if "same predicted accuracy" in r.getMessage()]
    assert said == ["every model without a result gets the same predicted accuracy on d8: nothing the zoo holds "
                    "tells them apart there, so they are listed in the models' file order; results of two models or "
                    "more (--known MODEL=ACCURACY) tell the others apart where models err together, and so may "
                    "dataset metadata or more datasets in the zoo"]
    # one result moves the level of all the others alike (still tied: said again); two tell them apart
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recsys.recommender"):
        one = rec.topk("d8", k=5, known={"m3": float(Y[0, 3])})
    assert one["predicted"].nunique() == 1 and len(caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recsys.recommender"):
        two = rec.topk("d8", k=n_m, known={"m3": float(Y[0, 3]), "m0": float(Y[0, 0])})
        rec.topk("d0", k=5)  # a dataset with records: its own ranking
        rec.predict(["d8"])  # (no ranking: nothing to warn about)
    assert not [r for r in caplog.records if "same predicted accuracy" in r.getMessage()]
    assert two["predicted"].nunique() == n_m
    # the models that err with m3 (on the even datasets, each model's gain is v) follow it
    rest = two["known"].isna().to_numpy()
    gain = v[two["model"].str[1:].astype(int).to_numpy()]  # (topk's rows are in rank order)
    assert np.corrcoef(two["predicted"][rest], gain[rest])[0, 1] > 0.9


def test_the_ties_warning_names_the_first_tied_dataset_and_counts_the_others(caplog):
    """A dataset is a ranking of ties when two or more models lack a result and their predictions are within
    1e-12 of each other; one line names the first and counts the rest; a dataset with one unknown model, or none,
    is not one (and asks nothing of numpy that warns)."""
    import warnings

    from recsys.recommender import _warn_untold

    nan = np.nan
    pred = np.array([[0.5, 0.5, 0.5], [0.5, 0.6, 0.5], [0.4, 0.4, 0.9], [0.3, 0.7, 0.3], [0.2, 0.2, 0.2],
                     [0.0, 1e-12, 0.0]])
    known = np.array([[nan, nan, nan], [nan, nan, nan], [nan, nan, 0.9], [0.3, nan, 0.3], [0.2, 0.2, 0.2],
                      [nan, nan, nan]])
    names = [f"d{i}" for i in range(6)]

    def said(rows):
        caplog.clear()
        with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="recsys.recommender"):
            warnings.simplefilter("error")
            _warn_untold(pred[rows], known[rows], [names[i] for i in rows])
        return [r.getMessage().split(":")[0] for r in caplog.records]

    stem = "every model without a result gets the same predicted accuracy on "
    assert said([0, 1, 2, 3, 4, 5]) == [stem + "d0 (and 2 more datasets)"]
    assert said([1, 2, 3, 5]) == [stem + "d2 (and 1 more dataset)"]
    assert said([3, 4, 5]) == [stem + "d5"]
    assert said([1, 3, 4]) == []
