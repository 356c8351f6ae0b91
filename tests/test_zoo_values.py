"""The values of a zoo built from Python tables: missing values of every kind, metadata columns normalized, the
messages of number columns.

Importers hand ``Zoo.from_frames`` columns holding ``None``, ``NaN``, ``pd.NA``, ``NaT``, booleans, numbers as
strings, dates, lists or categoricals, on frames with any index. Each missing value is missing (NaN) whatever its
kind; a metadata column is float64 when every value it holds is a number, else text (object, str, NaN where
missing), exactly as the same zoo reads back from its files; the accuracy and score columns are float64, and
each cell that is not a finite number is named in one line (empty, infinite, not a number, how many such rows);
exact duplicate records are dropped with one log line that says how many.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ZooError
from recsys.zoo import Zoo, load_zoo, validate_scores

DATASETS = pd.DataFrame({"dataset": ["d", "e"]})


def _models(n: int, index=None, **columns) -> pd.DataFrame:
    """n models named m0, m1 ... with the metadata columns given (each a Series of the dtype given)."""
    frame = pd.DataFrame({"model": [f"m{i}" for i in range(n)]}, index=index)
    for name, values in columns.items():
        frame[name] = pd.Series(values, index=frame.index) if not isinstance(values, pd.Series) else values
    return frame


def _zoo(models: pd.DataFrame, **kwargs) -> Zoo:
    records = pd.DataFrame({"model": [models["model"].iloc[0]], "dataset": ["d"], "accuracy": [0.5]})
    return Zoo.from_frames(models, DATASETS, records, **kwargs)


def _records(accuracy) -> pd.DataFrame:
    n = len(accuracy)
    return pd.DataFrame({"model": ["m0"] * n, "dataset": [f"d{i}" for i in range(n)],
                         "accuracy": accuracy if isinstance(accuracy, pd.Series) else pd.Series(accuracy)})


def _zoo_with_accuracies(accuracy) -> Zoo:
    records = _records(accuracy)
    return Zoo.from_frames(pd.DataFrame({"model": ["m0"]}), pd.DataFrame({"dataset": records["dataset"]}), records)


def _whole(message: str) -> str:
    return "^" + re.escape(message) + "$"


# ---------------------------------------------------------------------------
# metadata columns


def test_every_kind_of_missing_value_is_a_missing_number_in_a_column_of_numbers():
    """None, NaN, pd.NA, NaT and the NA strings ("NA", a blank) among numbers and number strings: the column
    is numeric, NaN where a value is missing."""
    params = pd.Series(["7", 8, None, np.nan, pd.NA, pd.NaT, "NA", "  ", 2.5], dtype=object)
    zoo = _zoo(_models(len(params), params=params))
    col = zoo.models["params"]
    assert col.dtype == np.float64
    assert col.isna().tolist() == [False, False, True, True, True, True, True, True, False]
    assert col.dropna().tolist() == [7.0, 8.0, 2.5]


def test_a_missing_value_among_booleans_is_missing_and_the_others_are_true_or_false():
    """A nullable boolean column (True, pd.NA, False) reads as the text 'True' / 'False', NaN where missing."""
    flags = pd.array([True, pd.NA, False], dtype="boolean")
    col = _zoo(_models(3, pretrained=flags)).models["pretrained"]
    assert col.dtype == object
    assert col.iloc[0] == "True" and pd.isna(col.iloc[1]) and col.iloc[2] == "False"


def test_a_boolean_column_is_the_text_read_back_from_its_file(tmp_path):
    """Booleans (numpy or nullable, with a missing one) become the object column of 'True' / 'False' that the
    written zoo reads back: the zoo built in Python and the one read from its files are the same tables."""
    models = _models(3, pretrained=[True, False, True], frozen=pd.array([False, pd.NA, True], dtype="boolean"))
    zoo = _zoo(models)
    assert zoo.models["pretrained"].tolist() == ["True", "False", "True"]
    assert (zoo.models.dtypes == object).all()
    back = load_zoo(zoo.write(tmp_path / "zoo"))
    pd.testing.assert_frame_equal(back.models, zoo.models)
    assert back.fingerprint() == zoo.fingerprint()


def test_a_boolean_column_without_any_value_is_the_empty_column_read_back_from_its_file(tmp_path):
    """A nullable boolean column that holds no value (all pd.NA) is what its file reads back: an empty
    column (float64 NaN), as one of None; it was an object column of NaN, so a zoo built in Python and the
    same zoo read from its files had different tables and fingerprints."""
    models = _models(3, frozen=pd.array([pd.NA, pd.NA, pd.NA], dtype="boolean"), notes=[None, None, None])
    zoo = _zoo(models)
    assert zoo.models["frozen"].dtype == np.float64 and zoo.models["frozen"].isna().all()
    back = load_zoo(zoo.write(tmp_path / "zoo"))
    pd.testing.assert_frame_equal(back.models, zoo.models)
    assert back.fingerprint() == zoo.fingerprint()


def test_each_model_keeps_its_own_metadata_whatever_the_frames_index():
    """A frame with an index of its own (rows 10, 20, 30): every kind of column (booleans, number strings,
    text, nothing at all) gives each model the values of its own row."""
    models = _models(3, index=[30, 10, 20], pretrained=[True, False, True], params=["1", "2", None],
                     family=["cnn", "vit", None], notes=[None, None, None])
    zoo = _zoo(models)
    assert zoo.models.loc["m0"].tolist()[:3] == ["True", 1.0, "cnn"]
    assert zoo.models.loc["m1"].tolist()[:3] == ["False", 2.0, "vit"]
    assert zoo.models.loc["m2", "pretrained"] == "True"
    assert zoo.models.loc[["m0", "m1"], "params"].tolist() == [1.0, 2.0]
    assert zoo.models[["params", "family", "notes"]].isna().sum().tolist() == [1, 1, 3]
    assert zoo.models["notes"].dtype == np.float64


def test_text_cells_are_stripped_of_surrounding_whitespace():
    zoo = _zoo(_models(3, family=[" cnn ", "vit  ", "cnn"]))
    assert zoo.models["family"].tolist() == ["cnn", "vit", "cnn"]


def test_a_column_holding_one_word_in_every_row_stays_text():
    """Every value a row holds counts, the first distinct one too: a column of 'cnn' only is text, not empty."""
    zoo = _zoo(_models(2, family=["cnn", "cnn"]))
    assert zoo.models["family"].tolist() == ["cnn", "cnn"]


def test_a_word_among_numbers_is_refused_even_when_it_comes_first():
    """The word is the first distinct value of the column; the column is still not taken for numbers."""
    models = _models(6, size=["~600", "1", "2", "3", "4", "5"])
    msg = ("write a number or leave the cell empty in column 'size' of models.csv, or list the column under "
           "\"categorical\" or \"text\" in zoo.json if it is not numeric (5 of its 6 values are numbers): "
           "models.csv row 1 holds '~600'")
    with pytest.raises(ZooError, match=_whole(msg)):
        _zoo(models)


def test_categories_no_row_uses_do_not_decide_a_columns_type():
    """A categorical column whose used categories are numbers is numeric, though an unused category is a word."""
    size = pd.Categorical(["1", "2", "1"], categories=["1", "2", "x"])
    col = _zoo(_models(3, size=pd.Series(size))).models["size"]
    assert col.dtype == np.float64 and col.tolist() == [1.0, 2.0, 1.0]


def test_dates_and_durations_are_text_not_numbers():
    """Timestamps and timedeltas are not numbers (pandas could count their nanoseconds): they are kept as text."""
    released = pd.Series([pd.Timestamp("2021-01-01"), pd.NaT, pd.Timestamp("2022-06-30")])
    trained = pd.Series([pd.Timedelta(hours=1), pd.Timedelta(hours=2), pd.NaT])
    models = _zoo(_models(3, released=released, trained=trained)).models
    assert models["released"].iloc[[0, 2]].tolist() == ["2021-01-01 00:00:00", "2022-06-30 00:00:00"]
    assert models["trained"].iloc[[0, 1]].tolist() == ["0 days 01:00:00", "0 days 02:00:00"]
    assert models["released"].isna().tolist() == [False, True, False]
    assert models["trained"].isna().tolist() == [False, False, True]


def test_values_pandas_cannot_try_as_numbers_make_a_text_column():
    """Lists (from JSON) and a value pandas refuses to even look at as a number (a signalling NaN decimal, which
    cannot be hashed) are not numbers: their columns are text, as they print."""
    models = _zoo(_models(2, labels=[["a"], ["b", "c"]], odd=[Decimal("sNaN"), Decimal("1")])).models
    assert models["labels"].tolist() == ["['a']", "['b', 'c']"]
    assert models["odd"].tolist() == ["sNaN", "1"]


# ---------------------------------------------------------------------------
# accuracy and score columns


@pytest.mark.parametrize("accuracy", [
    pd.Series([1, 0], dtype=np.int64), pd.Series([1, 0], dtype=np.uint8),
    pd.Series([0.25, 0.5], dtype=np.float32), pd.Series([0.25, 0.5], dtype="Float64"),
    pd.Series(["0.25", " 0.5 "], dtype=object)], ids=["int64", "uint8", "float32", "Float64", "strings"])
def test_accuracies_and_scores_are_float64_whatever_the_columns_dtype(accuracy):
    zoo = _zoo_with_accuracies(accuracy)
    assert zoo.records["accuracy"].dtype == np.float64
    expected = pd.to_numeric(accuracy).astype(np.float64).tolist()
    assert zoo.records["accuracy"].tolist() == expected
    scores = validate_scores(_records(accuracy).rename(columns={"accuracy": "score"}).assign(metric="logme"))
    assert scores["score"].dtype == np.float64 and scores["score"].tolist() == expected


@pytest.mark.parametrize("accuracy", [pd.Series([True, False]), pd.Series([True, False], dtype="boolean")],
                         ids=["bool", "boolean"])
def test_booleans_are_not_accuracies(accuracy):
    msg = "records.csv row 1: accuracy 'True' is not a number (2 such rows); give a fraction in [0, 1]"
    with pytest.raises(ZooError, match=_whole(msg)):
        _zoo_with_accuracies(accuracy)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA, "", "  ", "NA", "n/a"], ids=repr)
@pytest.mark.parametrize("kind", ["numbers", "strings"])
def test_a_missing_accuracy_is_said_to_be_empty_whatever_its_kind(missing, kind):
    """Among numbers or among number strings, any kind of missing value is "empty or NaN", not "not a number"."""
    first = 0.5 if kind == "numbers" else "0.5"
    accuracy = pd.Series([first, missing, first], dtype=object)
    msg = ("records.csv row 2: accuracy is empty or NaN; every row needs a fraction in [0, 1] (drop the row if "
           "the result is unknown)")
    with pytest.raises(ZooError, match=_whole(msg)):
        _zoo_with_accuracies(accuracy)


@pytest.mark.parametrize("dtype", ["Int64", "Float64"])
def test_a_missing_value_in_a_nullable_number_column_is_said_to_be_empty(dtype):
    """pd.NA in a nullable integer or float column is a missing accuracy, said to be empty."""
    msg = ("records.csv row 2: accuracy is empty or NaN; every row needs a fraction in [0, 1] (drop the row if "
           "the result is unknown)")
    with pytest.raises(ZooError, match=_whole(msg)):
        _zoo_with_accuracies(pd.Series([1, pd.NA, 0], dtype=dtype))


def test_a_missing_score_is_said_to_be_empty():
    scores = pd.DataFrame({"model": ["a", "b"], "metric": ["logme"] * 2,
                           "score": pd.Series(["1.5", None], dtype=object)})
    msg = ("scores row 2: score is empty or NaN; every row needs a finite number (drop the row if the result is "
           "unknown)")
    with pytest.raises(ZooError, match=_whole(msg)):
        validate_scores(scores)


@pytest.mark.parametrize("value", [np.inf, -np.inf], ids=["inf", "-inf"])
def test_an_infinite_accuracy_is_named_as_written(value):
    msg = f"records.csv row 2: accuracy {str(value)!r} is infinite; give a fraction in [0, 1]"
    with pytest.raises(ZooError, match=_whole(msg)):
        _zoo_with_accuracies(pd.Series([0.5, value, 0.25]))


_EMPTY = "accuracy is empty or NaN{}; every row needs a fraction in [0, 1] (drop the row if the result is unknown)"
_WORD = "accuracy 'x' is not a number{}; give a fraction in [0, 1]"


@pytest.mark.parametrize("values, message", [([0.5, np.nan, np.inf, 0.25], _EMPTY),
                                             (["0.5", "x", "y", "0.25"], _WORD)], ids=["numbers", "strings"])
def test_the_message_counts_the_bad_rows_when_there_are_two_or_more(values, message):
    """One bad cell: the message names it; two or more: it also says how many rows are bad."""
    with pytest.raises(ZooError, match=_whole("records.csv row 2: " + message.format(" (2 such rows)"))):
        _zoo_with_accuracies(pd.Series(values))
    with pytest.raises(ZooError, match=_whole("records.csv row 2: " + message.format(""))):
        _zoo_with_accuracies(pd.Series([values[i] for i in (0, 1, 3)]))


# ---------------------------------------------------------------------------
# duplicate records


def test_exact_duplicate_records_are_dropped_with_one_line_saying_how_many(caplog):
    records = pd.DataFrame({"model": ["m0", "m1", "m0"], "dataset": ["d", "d", "d"], "accuracy": [0.5, 0.6, 0.5]})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recsys.zoo"):
        zoo = Zoo.from_frames(_models(2), DATASETS, records)
    assert len(zoo.records) == 2
    assert [r.getMessage() for r in caplog.records if r.name == "recsys.zoo"] == [
        "records.csv: dropped 1 exact duplicate row(s)"]


def test_complex_accuracies_are_refused_not_cut_to_their_real_part():
    records = pd.DataFrame({"model": ["a", "b"], "dataset": ["x", "x"], "accuracy": np.array([0.5, 0.2j])})
    with pytest.raises(ZooError, match=r"^records.csv row 1: accuracy '\(0.5\+0j\)' is not a number \(2 such rows\); "):
        Zoo.from_frames(pd.DataFrame({"model": ["a", "b"]}), pd.DataFrame({"dataset": ["x"]}), records)


def test_a_missing_time_in_a_column_of_accuracies_is_said_to_be_empty():
    records = pd.DataFrame({"model": ["a", "b"], "dataset": ["x", "x"], "accuracy": pd.Series([0.5, pd.NaT], dtype=object)})
    with pytest.raises(ZooError, match=r"^records.csv row 2: accuracy is empty or NaN; every row needs "):
        Zoo.from_frames(pd.DataFrame({"model": ["a", "b"]}), pd.DataFrame({"dataset": ["x"]}), records)


def test_an_integer_too_large_for_a_float_makes_a_metadata_column_text():
    models = pd.DataFrame({"model": ["a", "b"], "params": pd.Series([10 ** 400, 5], dtype=object)})
    zoo = Zoo.from_frames(models, pd.DataFrame({"dataset": ["x"]}),
                          pd.DataFrame({"model": ["a"], "dataset": ["x"], "accuracy": [0.5]}))
    assert zoo.models["params"].tolist() == [str(10 ** 400), "5"]
