"""How the zoo reads ids and which file and roles its validation names (issue 21: recsys/zoo.py's mutants that survived).

An id is stripped text, None, pd.NA and NaN are missing and 7.0 is "7"; a missing id in a text column is refused
naming its row; values that Python counts equal (1 and True) stay distinct ids; dates read as the same text
whether the column is categorical or not; names are read once per distinct value, not once per row; the id column
zoo.json names for the datasets is read and then called "dataset"; almost-numeric columns are refused only when the
roles are inferred; and the messages about roles and scores name models.csv, datasets.csv and the row at fault.
"""

from __future__ import annotations

import re
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from recsys import zoo as zoo_module
from recsys.errors import ZooError
from recsys.zoo import Roles, Zoo, normalize_id

MODELS = pd.DataFrame({"model": ["a", "b"], "family": ["x", "y"]})
DATASETS = pd.DataFrame({"dataset": ["d", "e"], "domain": ["p", "q"]})
RECORDS = pd.DataFrame({"model": ["a", "b"], "dataset": ["d", "e"], "accuracy": [0.5, 0.7]})


def whole(message: str) -> str:
    return "^" + re.escape(message) + "$"


def test_missing_values_are_no_id_and_whole_floats_are_integer_ids():
    """None, pd.NA and NaN are no id; 7.0 (as pandas reads "7") is the id "7", 7.5 stays "7.5"."""
    for missing in (None, pd.NA, float("nan"), np.float64("nan")):
        assert normalize_id(missing) is None
    assert normalize_id(7.0) == "7" and normalize_id(np.float64(7.0)) == "7"
    assert normalize_id(7.5) == "7.5" and normalize_id(" 7 ") == "7"


def test_a_number_id_column_reads_7_0_as_7_and_refuses_a_nan_id():
    """Model ids held as floats name the models "7" and "8", and a NaN among them is an empty id."""
    models = pd.DataFrame({"model": [7.0, 8.0]})
    records = pd.DataFrame({"model": ["7", "8"], "dataset": ["d", "e"], "accuracy": [0.5, 0.7]})
    assert Zoo.from_frames(models, DATASETS, records).models.index.tolist() == ["7", "8"]
    with pytest.raises(ZooError, match=whole("models.csv row 2: empty model id; every row needs a model")):
        Zoo.from_frames(pd.DataFrame({"model": [7.0, np.nan]}), DATASETS, records)


def test_a_missing_id_in_a_text_column_is_refused_naming_its_row():
    """A None among the model ids, or among the records' model names, is an empty name on its row."""
    with pytest.raises(ZooError, match=whole("models.csv row 2: empty model id; every row needs a model")):
        Zoo.from_frames(pd.DataFrame({"model": ["a", None]}), DATASETS, RECORDS)
    with pytest.raises(ZooError, match=whole("records.csv row 2: empty model name; every row needs a model")):
        Zoo.from_frames(MODELS, DATASETS, RECORDS.assign(model=["a", None]))


def test_values_python_counts_equal_stay_distinct_ids():
    """1 and True are equal in Python, but as ids they are "1" and "True": two models."""
    models = pd.DataFrame({"model": pd.Series([1, True, "c"], dtype=object)})
    records = pd.DataFrame({"model": ["1", "True"], "dataset": ["d", "e"], "accuracy": [0.5, 0.7]})
    assert Zoo.from_frames(models, DATASETS, records).models.index.tolist() == ["1", "True", "c"]


def test_a_date_column_reads_as_the_same_text_whether_categorical_or_not():
    """Dates are text as pandas prints them, a missing date is a missing cell, and a categorical column of the
    same dates reads the same."""
    dates = pd.to_datetime(["2020-01-01", None, "2021-05-02"])
    models = pd.DataFrame({"model": ["a", "b", "c"], "released": dates})
    plain = Zoo.from_frames(models, DATASETS, RECORDS).models["released"]
    assert plain.iloc[0] == "2020-01-01 00:00:00" and pd.isna(plain.iloc[1]) and plain.iloc[2] == "2021-05-02 00:00:00"
    coded = Zoo.from_frames(models.assign(released=models["released"].astype("category")), DATASETS,
                            RECORDS).models["released"]
    pd.testing.assert_series_equal(coded, plain)


def test_names_are_read_once_per_distinct_value_not_once_per_row():
    """Reading a column of names costs one look at each distinct name, with missing cells among them or a
    column of missing cells only, however many rows hold them."""
    rows = 300
    many = RECORDS.iloc[[0, 1] * (rows // 2)].reset_index(drop=True)  # exact duplicates: dropped
    cases = [
        (many.assign(model=["a", "b"] * (rows // 2 - 1) + ["a", None]),
         f"records.csv row {rows}: empty model name; every row needs a model"),
        (many.assign(model=np.full(rows, None, dtype=object)),
         "records.csv row 1: empty model name; every row needs a model"),
    ]
    for records, message in cases:
        with mock.patch.object(zoo_module, "_name", wraps=zoo_module._name) as name:
            with pytest.raises(ZooError, match=whole(message)):
                Zoo.from_frames(MODELS, DATASETS, records)
        # the model and dataset ids (2 + 2) and the records' model column (at most "a" and "b")
        assert name.call_count <= 6
    with mock.patch.object(zoo_module, "_name", wraps=zoo_module._name) as name:
        zoo = Zoo.from_frames(MODELS, DATASETS, many)
    assert len(zoo.records) == 2 and name.call_count <= 8


def test_dataset_ids_in_the_column_zoo_json_names_are_read_and_called_dataset():
    """zoo.json's datasets.id names the id column; the zoo's dataset roles then call it "dataset"."""
    datasets = DATASETS.rename(columns={"dataset": "name"})
    zoo = Zoo.from_frames(MODELS, datasets, RECORDS, roles={"datasets": {"id": "name", "categorical": ["domain"]}})
    assert zoo.datasets.index.tolist() == ["d", "e"] and zoo.datasets.index.name == "dataset"
    assert zoo.dataset_roles == Roles(id="dataset", categorical=("domain",))


def test_an_almost_numeric_column_is_refused_only_when_roles_are_inferred():
    """Numbers but for one cell: refused naming the cell when zoo.json gives no roles, kept as declared else."""
    models = pd.DataFrame({"model": list("abcde"), "params": ["1", "2", "3", "~600", "5"]})
    message = ("write a number or leave the cell empty in column 'params' of models.csv, or list the column under "
               "\"categorical\" or \"text\" in zoo.json if it is not numeric (4 of its 5 values are numbers): "
               "models.csv row 4 holds '~600'")
    with pytest.raises(ZooError, match=whole(message)):
        Zoo.from_frames(models, DATASETS, RECORDS)
    zoo = Zoo.from_frames(models, DATASETS, RECORDS, roles={"models": {"categorical": ["params"]}})
    assert zoo.models["params"].tolist() == ["1", "2", "3", "~600", "5"]
    assert zoo.model_roles == Roles(id="model", categorical=("params",))


def test_a_role_naming_a_missing_model_column_names_models_csv():
    """A column zoo.json lists for the models but models.csv lacks is named with its file and the closest name."""
    message = ("zoo.json names column 'famly' of models.csv, which has no such column (did you mean 'family'?); "
               "columns found: ['family']; fix the name in zoo.json or add the column")
    with pytest.raises(ZooError, match=whole(message)):
        Zoo.from_frames(MODELS, DATASETS, RECORDS, roles={"models": {"categorical": ["famly"]}})


def test_a_dataset_column_declared_numeric_names_the_row_holding_text():
    """A dataset column zoo.json lists as numeric that holds a word is refused naming datasets.csv and the row."""
    datasets = DATASETS.assign(classes=pd.Series([10, "many"], dtype=object))
    message = ("write a number or leave the cell empty in column 'classes' of datasets.csv (zoo.json lists it as "
               "numeric): datasets.csv row 2 holds 'many'")
    with pytest.raises(ZooError, match=whole(message)):
        Zoo.from_frames(MODELS, datasets, RECORDS, roles={"datasets": {"numeric": ["classes"]}})


def test_a_score_of_a_dataset_not_in_the_zoo_is_refused():
    """scores.csv may only name the zoo's datasets."""
    scores = pd.DataFrame({"model": ["a"], "dataset": ["zz"], "metric": ["m"], "score": [1.0]})
    message = "scores.csv row 1 names dataset 'zz', which is not in datasets.csv; fix the name or add it to datasets.csv"
    with pytest.raises(ZooError, match=whole(message)):
        Zoo.from_frames(MODELS, DATASETS, RECORDS, scores=scores)


def test_a_missing_time_in_an_id_column_is_a_missing_id():
    models = pd.DataFrame({"model": pd.to_datetime(["2020-01-01", None])})
    with pytest.raises(ZooError, match="^" + re.escape("models.csv row 2: empty model id; every row needs a model") + "$"):
        Zoo.from_frames(models, pd.DataFrame({"dataset": ["x"]}),
                        pd.DataFrame({"model": ["2020-01-01 00:00:00"], "dataset": ["x"], "accuracy": [0.5]}))
