"""The zoo's readers and validators, exactly (issue 21: recsys/zoo.py's mutants that survived).

Messages name the file and the line (read from disk) or the row (a frame built in Python), also after blank
rows were dropped by the C reader; the scores file of ``recsys topk --scores``; what from_frames passes on.
"""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from recsys import zoo as zoo_module
from recsys.errors import ZooError
from recsys.zoo import Roles, Zoo, load_zoo, read_scores

from conftest import write_zoo

MODELS = pd.DataFrame({"model": ["a", "b"], "family": ["x", "y"]})
DATASETS = pd.DataFrame({"dataset": ["d", "e"], "domain": ["p", "q"]})
RECORDS = pd.DataFrame({"model": ["a", "b"], "dataset": ["d", "e"], "accuracy": [0.5, 0.7]})


def test_from_frames_names_rows_of_each_frame_and_passes_on_its_arguments(tmp_path):
    zoo = Zoo.from_frames(MODELS, DATASETS, RECORDS)
    assert zoo.name == "zoo" and zoo.path is None and zoo.model_roles.categorical == ("family",)
    named = Zoo.from_frames(MODELS, DATASETS, RECORDS, name="mine", path=tmp_path,
                            roles={"models": {"categorical": []}, "datasets": {"text": ["domain"]}})
    assert named.name == "mine" and named.path == tmp_path
    assert named.model_roles == Roles(id="model") and named.dataset_roles.text == ("domain",)
    cases = [
        (dict(models=pd.DataFrame({"model": ["a", "b", "a"]})), r"models\.csv lists model 'a' more than once "
                                                                 r"\(models\.csv rows 1, 3\)"),
        (dict(datasets=pd.DataFrame({"dataset": ["d", "", "e"]})), r"datasets\.csv row 2: empty dataset id"),
        (dict(records=RECORDS.assign(accuracy=[0.5, "x"])), r"records\.csv row 2: accuracy 'x' is not a number"),
        (dict(records=pd.concat([RECORDS, RECORDS.assign(accuracy=[0.6, 0.7])])),
         r"records\.csv rows 1, 3 give different accuracies \(0\.5, 0\.6\)"),
        (dict(scores=pd.DataFrame({"model": ["a"], "dataset": ["d"], "metric": ["m"], "score": ["x"]})),
         r"scores\.csv row 1: score 'x' is not a number"),
    ]
    for change, message in cases:
        frames = dict(models=MODELS, datasets=DATASETS, records=RECORDS, scores=None, **{})
        frames.update(change)
        with pytest.raises(ZooError, match=f"^{message}"):
            Zoo.from_frames(**frames)


def test_lines_are_counted_after_the_c_reader_drops_blank_rows(tmp_path):
    d = write_zoo(tmp_path / "z")
    (d / "records.csv").write_text("model,dataset,accuracy\nresnet50,birds,0.5\n,,\n, ,\nvit b/16,birds,x\n")
    for plain in (0, 1 << 62):
        with mock.patch.object(zoo_module, "_PLAIN_MIN_BYTES", plain):
            with pytest.raises(ZooError, match=r"^records\.csv line 5: accuracy 'x' is not a number"):
                load_zoo(d)
    (d / "records.csv").write_text("model,dataset,accuracy\n,,\nresnet50,birds,0.5\n\nresnet50,birds,0.6\n")
    for plain in (0, 1 << 62):
        with mock.patch.object(zoo_module, "_PLAIN_MIN_BYTES", plain):
            with pytest.raises(ZooError, match=r"^records\.csv lines 3, 5 give different accuracies \(0\.5, 0\.6\)"):
                load_zoo(d)


def test_where_without_drops_rows_from_either_kind_of_line_list():
    where = zoo_module._Where("f.csv", lines=np.array([2, 4, 7, 9]))
    less = where.without(np.array([1, 2]))
    assert less.fname == "f.csv" and less(0) == "f.csv line 2" and less(1) == "f.csv line 9"
    skipped = zoo_module._Where("g.csv", skipped=np.array([3], dtype=np.int64))
    fewer = skipped.without(np.array([0]))
    assert fewer.fname == "g.csv" and fewer(0) == "g.csv line 4" and fewer.many([0, 1]) == "g.csv lines 4, 5"
    counted = zoo_module._Where("h.csv")
    assert counted(0) == "h.csv row 1" and counted.many([0, 2]) == "h.csv rows 1, 3"


def test_read_scores_of_a_file_of_its_own(tmp_path):
    missing = tmp_path / "none.csv"
    with pytest.raises(ZooError, match=rf"^give an existing CSV file \(model, dataset, metric, score\) as scores "
                                       rf"file: {re.escape(repr(str(missing)))} does not exist$"):
        read_scores(missing)
    with pytest.raises(ZooError, match=rf"^give an existing CSV file \(model, dataset, metric, score\) as --scores: "
                                       rf"{re.escape(repr(str(missing)))} does not exist$"):
        read_scores(str(missing), "--scores")
    f = tmp_path / "s.csv"
    f.write_text("model,metric,score\nresnet50,LOG_ME,1.5\nvit b/16,LOG_ME,2\n")
    got = read_scores(f)
    assert list(got.columns) == ["model", "metric", "score"] and got["score"].tolist() == [1.5, 2.0]
    f.write_text("model,metric,score\nresnet50,LOG_ME,high\n")
    with pytest.raises(ZooError, match=r"^--scores: s\.csv line 2: score 'high' is not a number"):
        read_scores(f, "--scores")
    big = tmp_path / "big.csv"  # (the C reader's size: scores parsed as numbers there too)
    rows = "".join(f"m{i},d,LOG_ME,{i / 7:.17g}\n" for i in range(5000))
    big.write_text("model,dataset,metric,score\n" + rows)
    got = read_scores(big)
    assert len(got) == 5000 and got["score"].dtype == np.float64
    np.testing.assert_allclose(got["score"].to_numpy(), np.arange(5000) / 7, rtol=0, atol=0)
    assert Path(big).stat().st_size >= zoo_module._PLAIN_MIN_BYTES


@pytest.mark.parametrize("plain", [0, 1 << 62])
@pytest.mark.parametrize("text, message", [
    ("model;dataset;accuracy\nresnet50;birds;0.5\n", "records.csv line 1: the header 'model;dataset;accuracy' uses "
                                                     "semicolons; zoo files are comma-separated, save it as CSV with "
                                                     "commas"),
    ("model,dataset,model\nresnet50,birds,resnet50\n", "records.csv line 1: the header names column(s) ['model'] more "
                                                       "than once; give each column a unique name"),
    ("model,dataset,accuracy\n\n  \n", "records.csv holds no records; recsys learns from fine-tuning results: add rows "
                                       "'model,dataset,accuracy' (the zoo format is described in data/README.md and "
                                       "`pydoc recsys.zoo`)"),
])
def test_both_tokenizers_give_the_same_message(tmp_path, plain, text, message):
    d = write_zoo(tmp_path / "z")
    (d / "records.csv").write_text(text)
    with mock.patch.object(zoo_module, "_PLAIN_MIN_BYTES", plain):
        with pytest.raises(ZooError) as err:
            load_zoo(d)
    assert str(err.value) == message


@pytest.mark.parametrize("plain", [0, 1 << 62])
def test_short_blank_lines_are_skipped_by_both_tokenizers(tmp_path, plain):
    d = write_zoo(tmp_path / "z")
    (d / "records.csv").write_text("model,dataset,accuracy\nresnet50,birds,0.5\n,\n \t\nvit b/16,birds,0.75\n")
    with mock.patch.object(zoo_module, "_PLAIN_MIN_BYTES", plain):
        zoo = load_zoo(d)
    assert zoo.records["accuracy"].tolist() == [0.5, 0.75]
    assert zoo.records["model"].astype(str).tolist() == ["resnet50", "vit b/16"]


def test_stable_order_is_a_stable_argsort_for_small_and_huge_keys():
    rng = np.random.default_rng(0)
    for keys in (rng.integers(0, 5, 1000), rng.integers(0, 5, 1000) + (1 << 61), np.array([], dtype=np.int64)):
        np.testing.assert_array_equal(zoo_module._stable_order(keys), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("obj, message", [
    ([1], "zoo.json models must be an object with keys id, categorical, numeric, text, log, got [1]; the zoo format "
          "is described in data/README.md and `pydoc recsys.zoo`"),
    ({"id": "model", "bogus": 1, "Numeric": []}, "zoo.json models has unknown key(s) ['Numeric', 'bogus']; accepted: "
                                                 "id, categorical, numeric, text, log"),
    ({"numeric": 5}, 'give zoo.json models.numeric as a list of column names, e.g. ["size"], or leave it out: it is 5'),
    ({"text": [1] * 40}, 'give zoo.json models.text as a list of column names, e.g. ["size"], or leave it out: it is '
                         '[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,'),  # (its first 60 characters)
    ({"log": [None]}, 'give zoo.json models.log as a list of column names, e.g. ["size"], or leave it out: it is '
                      '[null]'),
    ({"id": 5}, "zoo.json models.id must be the name of the id column, got 5"),
    ({"id": " "}, "zoo.json models.id must be the name of the id column, got ' '"),
    ({"numeric": ["size", " model "]}, "zoo.json models.numeric lists the id column 'model'; ids are not features, "
                                       "remove it"),
])
def test_roles_from_zoo_json_refused_in_one_line(obj, message):
    with pytest.raises(ZooError) as err:
        zoo_module.Roles.from_json(obj, where="zoo.json models", default_id="model")
    assert str(err.value) == message


def test_roles_from_zoo_json_as_given():
    roles = zoo_module.Roles.from_json({"id": " name ", "categorical": "family", "numeric": [" size", "size"],
                                       "log": None}, where="zoo.json models", default_id="model")
    assert (roles.id, roles.categorical, roles.numeric, roles.text, roles.log) == ("name", ("family",), ("size",), (),
                                                                                   None)
    assert zoo_module.Roles.from_json(roles, where="x", default_id="y") is roles
    assert zoo_module.Roles.from_json({}, where="x", default_id="model").id == "model"


# -- validate_scores: the one check of a score table ------------------------------------------------------------

SCORE_TABLE = pd.DataFrame({"model": ["a", "b", "a"], "dataset": ["x", "x", "y"], "metric": ["LOG_ME"] * 3,
                            "score": [1.0, 2.0, 3.0]})
ZOO_NAMES = {"models": pd.Index(["a", "b"]), "datasets": pd.Index(["x", "y"])}


@pytest.mark.parametrize("table, names, message", [
    ([1, 2], {}, "scores: expected a table (pandas DataFrame), got list"),
    (SCORE_TABLE.drop(columns="dataset"), ZOO_NAMES, "scores has no column(s) ['dataset']; required columns: model, "
     "dataset, metric, score (found ['model', 'metric', 'score']); rename the header"),
    (SCORE_TABLE.drop(columns=["dataset", "metric"]), {}, "scores has no column(s) ['metric']; required columns: "
     "model, metric, score (found ['model', 'score']); rename the header"),
    (SCORE_TABLE.assign(model=["a", " ", "a"]), {}, "scores row 2: empty model name; every row needs a model"),
    (SCORE_TABLE.assign(dataset=["x", "", "y"]), {}, "scores row 2: empty dataset name; every row needs a dataset"),
    (SCORE_TABLE.assign(metric=["LOG_ME", "", "H"]), {}, "scores row 2: empty metric name; every row needs a metric"),
    (SCORE_TABLE.assign(score=[1.0, "abc", 3.0]), {}, "scores row 2: score 'abc' is not a number; give a finite number"),
    (SCORE_TABLE.assign(score=[1.0, np.inf, 3.0]), {}, "scores row 2: score 'inf' is infinite; give a finite number"),
    (SCORE_TABLE, {"models": pd.Index(["a"]), "datasets": ZOO_NAMES["datasets"]},
     "scores row 2 names model 'b', which is not in models.csv; fix the name or add it to models.csv"),
    (SCORE_TABLE, {"models": ZOO_NAMES["models"], "datasets": pd.Index(["x"])},
     "scores row 3 names dataset 'y', which is not in datasets.csv; fix the name or add it to datasets.csv"),
    (pd.concat([SCORE_TABLE, SCORE_TABLE.iloc[[0]].assign(score=9.0)]), ZOO_NAMES,
     "scores rows 1, 4 give different LOG_ME scores (1, 9) for model 'a' on dataset 'x'; keep one score per "
     "(model, dataset, metric) (average them if intended)"),
    (pd.concat([SCORE_TABLE, SCORE_TABLE.iloc[[0]].assign(score=9.0)]).drop(columns="dataset"), {},
     "scores rows 1, 3, 4 give different LOG_ME scores (1, 3, 9) for model 'a'; keep one score per "
     "(model, dataset, metric) (average them if intended)"),
])
def test_validate_scores_names_the_table_row_column_and_value(table, names, message):
    with pytest.raises(ZooError, match="^" + re.escape(message) + "$"):
        zoo_module.validate_scores(table, **names)


@pytest.mark.parametrize("limit", [1 << 62, 4], ids=["codes combined", "codes made dense again"])
def test_validate_scores_drops_identical_duplicates_and_keeps_the_columns_it_was_given(monkeypatch, limit):
    """Identical duplicate rows go (the first kept); the scores of new datasets may leave the dataset out; the same
    whether the names' codes are combined at once or, past the int64 limit, made dense again between columns."""
    monkeypatch.setattr(zoo_module, "_KEY_LIMIT", limit)
    got = zoo_module.validate_scores(pd.concat([SCORE_TABLE, SCORE_TABLE.iloc[[1]]]), **ZOO_NAMES)
    assert got.to_dict("list") == {"model": ["a", "b", "a"], "dataset": ["x", "x", "y"], "metric": ["LOG_ME"] * 3,
                                   "score": [1.0, 2.0, 3.0]}
    assert got["model"].dtype == object
    one = SCORE_TABLE.drop(columns="dataset").iloc[:2]
    assert list(zoo_module.validate_scores(one).columns) == ["model", "metric", "score"]
    with pytest.raises(ZooError, match=r"^scores rows 1, 4 give different LOG_ME scores \(1, 9\) for model 'a' on "):
        zoo_module.validate_scores(pd.concat([SCORE_TABLE, SCORE_TABLE.iloc[[0]].assign(score=9.0)]), **ZOO_NAMES)
    many = pd.DataFrame({"model": [f"m{i}" for i in range(6)], "dataset": [f"d{i % 3}" for i in range(6)],
                         "metric": ["H", "LOG_ME"] * 3, "score": np.arange(6.0)})
    pd.testing.assert_frame_equal(zoo_module.validate_scores(pd.concat([many, many])), many, check_dtype=False)


def test_a_zoo_built_without_roles_infers_them_around_its_id_columns(tmp_path):
    import dataclasses

    zoo = load_zoo(write_zoo(tmp_path / "z",
                             models=pd.DataFrame({"model": ["a", "b"], "family": ["resnet", "vit"], "params": [25.6, 86.0]}),
                             datasets=pd.DataFrame({"dataset": ["x", "y"], "domain": ["photo", "sketch"], "classes": [10, 20]}),
                             records=pd.DataFrame({"model": ["a", "b"], "dataset": ["x", "y"], "accuracy": [0.5, 0.6]})))
    bare = dataclasses.replace(zoo, model_roles=None, dataset_roles=None)
    assert bare.model_roles == zoo.model_roles and bare.dataset_roles == zoo.dataset_roles
    assert bare.model_roles.id == "model" and "model" not in bare.model_roles.categorical + bare.model_roles.text
    assert bare.dataset_roles.id == "dataset" and bare.dataset_roles.categorical == ("domain",)
    assert bare.dataset_roles.numeric == ("classes",) and "dataset" not in bare.dataset_roles.text


def test_zoo_json_naming_a_missing_column_lists_every_close_name_and_the_columns(tmp_path):
    datasets = pd.DataFrame({"dataset": ["x", "y"], "domain": ["a", "b"], "domains": ["c", "d"], "classes": [1, 2]})
    d = write_zoo(tmp_path / "z", models=pd.DataFrame({"model": ["m"]}), datasets=datasets,
                  records=pd.DataFrame({"model": ["m"], "dataset": ["x"], "accuracy": [0.5]}),
                  zoo_json={"datasets": {"categorical": ["domainz"]}})
    with pytest.raises(ZooError) as err:
        load_zoo(d)
    assert str(err.value) == ("zoo.json names column 'domainz' of datasets.csv, which has no such column (did you mean "
                              "'domain', 'domains'?); columns found: ['domain', 'domains', 'classes']; fix "
                              "the name in zoo.json or add the column")


# -- metadata tables, the line-by-line reader and the files of a zoo directory ---------------------------------

META_M = pd.DataFrame({"model": ["a", "b"], "family": ["resnet", "vit"]})
META_D = pd.DataFrame({"dataset": ["x", "y"], "domain": ["photo", "sketch"]})
META_R = pd.DataFrame({"model": ["a", "b"], "dataset": ["x", "y"], "accuracy": [0.5, 0.6]})
FIX_ID = 'name the id column \'model\', or name it in zoo.json ({"models": {"id": ...}})'


@pytest.mark.parametrize("models, message", [
    ([1], "models.csv: expected a table (pandas DataFrame), got list"),
    (META_M.rename(columns={"model": "modle"}), "models.csv has no column 'model' (the model id) (did you mean "
     f"'modle'?); columns found: ['modle', 'family']; {FIX_ID}"),
    (META_M.rename(columns={"model": "zzz"}), "models.csv has no column 'model' (the model id); columns found: "
     f"['zzz', 'family']; {FIX_ID}"),
    (pd.DataFrame({"zzz": ["a", "b"], **{f"c{i}": [1, 2] for i in range(10)}}), "models.csv has no column 'model' "
     f"(the model id); columns found: ['zzz', 'c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6']; {FIX_ID}"),
    (pd.DataFrame({"model": ["a", "b", "b", "a"]}), "models.csv lists model 'a' more than once (models.csv rows 1, 4); "
     "ids must be unique"),
    (pd.DataFrame({"model": ["a", " "]}), "models.csv row 2: empty model id; every row needs a model"),
    (pd.DataFrame({"model": pd.Series([], dtype=object)}), "models.csv lists no models; an empty zoo cannot be "
     "fitted (the zoo format is described in data/README.md and `pydoc recsys.zoo`)"),
])
def test_a_metadata_table_is_refused_in_one_line_naming_what_to_fix(models, message):
    with pytest.raises(ZooError, match="^" + re.escape(message) + "$"):
        Zoo.from_frames(models, META_D, META_R)


def test_a_metadata_table_of_ids_alone_or_indexed_by_them_is_a_table_of_no_columns_or_its_own(tmp_path):
    bare = Zoo.from_frames(pd.DataFrame({"model": ["a", "b"]}), META_D, META_R)
    assert bare.models.shape == (2, 0) and bare.models.index.tolist() == ["a", "b"]
    indexed = Zoo.from_frames(META_M.set_index("model"), META_D, META_R)
    assert indexed.models.index.tolist() == ["a", "b"] and list(indexed.models.columns) == ["family"]
    for zoo in (bare, indexed):  # (ids kept as Python strings, whatever pandas would infer)
        assert zoo.models.index.dtype == object and zoo.datasets.index.dtype == object
        assert zoo.models.index.name == "model" and zoo.datasets.index.name == "dataset"


@pytest.mark.parametrize("roles, message", [
    ({"models": {"id": "nme"}}, "models.csv has no column 'nme' (the model id named by zoo.json's models.id) (did you "
     "mean 'name'?); columns found: ['name', 'family']; fix models.id in zoo.json"),
    ({"models": {"id": "name"}, "datasets": {"categorical": 3}}, "give zoo.json datasets.categorical as a list of "
     "column names, e.g. [\"size\"], or leave it out: it is 3"),
])
def test_zoo_json_roles_that_do_not_fit_the_tables_are_refused_by_their_side(tmp_path, roles, message):
    d = write_zoo(tmp_path / "z", models=META_M.rename(columns={"model": "name"}), datasets=META_D, records=META_R,
                  zoo_json=roles)
    with pytest.raises(ZooError, match="^" + re.escape(message) + "$"):
        load_zoo(d)


def test_an_id_named_in_zoo_json_beside_a_column_named_like_the_side_is_refused(tmp_path):
    d = write_zoo(tmp_path / "z", models=META_M.assign(name=["a", "b"]), datasets=META_D, records=META_R,
                  zoo_json={"models": {"id": "name"}})
    with pytest.raises(ZooError, match="^" + re.escape("models.csv has both 'name' (the id, from zoo.json) and a column "
                                                       "'model'; rename 'model' or use it as the id") + "$"):
        load_zoo(d)


def test_the_line_by_line_reader_pads_short_rows_cuts_blank_extra_cells_and_keeps_quoted_line_breaks(tmp_path):
    d = write_zoo(tmp_path / "z", models=META_M, datasets=META_D, records=META_R)
    (d / "models.csv").write_text('model,family,notes\na,resnet\nb,vit,"line one\r\nline two",,\n', newline="")
    zoo = load_zoo(d)
    assert zoo.models["family"].tolist() == ["resnet", "vit"]
    assert zoo.models["notes"].isna().tolist() == [True, False]
    assert zoo.models.loc["b", "notes"] == "line one\r\nline two"  # (as written: csv.reader reads with newline="")


def test_a_cell_over_the_limit_and_a_file_that_cannot_be_read_are_one_line_each(tmp_path, monkeypatch):
    d = write_zoo(tmp_path / "z", models=META_M, datasets=META_D, records=META_R)
    (d / "models.csv").write_text('model,family\na,resnet\nb,"' + "v" * 50 + "\n")
    monkeypatch.setattr(zoo_module, "MAX_CELL_CHARS", 40)
    with pytest.raises(ZooError, match="^" + re.escape("close the quote that opens a cell, or shorten the cell: "
                                                       "models.csv from line 3 holds a cell longer than 40 "
                                                       "characters") + "$"):
        load_zoo(d)
    monkeypatch.undo()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(zoo_module, "open", refused, raising=False)
    with pytest.raises(ZooError, match="^" + re.escape(f"cannot read {d / 'models.csv'} (Permission denied); check "
                                                       "the file's permissions") + "$"):
        load_zoo(d)


def test_a_missing_or_irregular_zoo_file_is_named(tmp_path):
    d = write_zoo(tmp_path / "z", models=META_M, datasets=META_D, records=META_R)
    (d / "records.csv").unlink()
    with pytest.raises(ZooError, match="^" + re.escape(f"zoo directory {str(d)!r} has no records.csv; a zoo needs "
                                                       "models.csv, datasets.csv and records.csv (the zoo format is "
                                                       "described in data/README.md and `pydoc recsys.zoo`)") + "$"):
        load_zoo(d)
    (d / "records.csv").mkdir()
    with pytest.raises(ZooError, match="^" + re.escape(f"give a regular file as records.csv: "
                                                       f"{str(d / 'records.csv')!r} is a directory") + "$"):
        load_zoo(d)


def test_columns_without_a_header_name_are_dropped_and_said(tmp_path, caplog):
    d = write_zoo(tmp_path / "z", models=META_M, datasets=META_D, records=META_R)
    (d / "models.csv").write_text("model,,family\na,1,resnet\nb,2,vit\n")
    with caplog.at_level("INFO", logger="recsys"):
        zoo = load_zoo(d)
    assert list(zoo.models.columns) == ["family"]
    assert f"{d / 'models.csv'}: ignoring 1 column(s) without a header name" in caplog.text


def test_a_missing_id_column_lists_every_close_name():
    models = pd.DataFrame({"modle": ["a", "b"], "mdel": ["a", "b"]})
    with pytest.raises(ZooError, match="^" + re.escape("models.csv has no column 'model' (the model id) (did you mean "
                                                       f"'mdel', 'modle'?); columns found: ['modle', 'mdel']; {FIX_ID}")
                       + "$"):
        Zoo.from_frames(models, META_D, META_R)


def test_validate_scores_names_the_first_four_conflicting_rows_and_a_hidden_character_in_a_name():
    five = pd.DataFrame({"model": ["a"] * 5, "dataset": ["x"] * 5, "metric": ["LOG_ME"] * 5, "score": [1.0, 2, 3, 4, 5]})
    with pytest.raises(ZooError, match="^" + re.escape("scores rows 1, 2, 3, 4 give different LOG_ME scores (1, 2, 3, 4) "
                                                       "for model 'a' on dataset 'x'; keep one score per (model, "
                                                       "dataset, metric) (average them if intended)") + "$"):
        zoo_module.validate_scores(five)
    hidden = pd.DataFrame({"model": ["a\u200b"], "dataset": ["x"], "metric": ["M"], "score": [1.0]})
    with pytest.raises(ZooError, match="^" + re.escape("remove the character U+200B (zero width space) from the model "
                                                       "'a\\u200b': scores row 1") + "$"):
        zoo_module.validate_scores(hidden)
