"""The zoo's rules at their thresholds, each checked on both sides: how infer_roles tells columns apart (a bool
column is categorical; strings are text when long, a mean length over 24 characters or more than half of them holding
a comma, and distinct in more than half of the rows; else categorical when they take at most half as many distinct
values as there are rows, never fewer than 2 nor more than 50, and text otherwise); the exact messages of records
given as tables (not a table, a missing name or one with a hidden character, an unknown name with the close ones, an
accuracy outside [0, 1] with the percentage hint only when all of them lie in [0, 100]); and, for records that repeat
a pair, the rows kept (the first of identical ones) and the conflict reported (the first met in the file, with its
own rows only, at most four of them).
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from recsys.errors import ZooError
from recsys.zoo import Roles, Zoo, infer_roles

MODELS = pd.DataFrame({"model": ["a", "b"]})
DATASETS = pd.DataFrame({"dataset": ["d", "e"]})


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def records(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["model", "dataset", "accuracy"])


def roles_of(values: list) -> Roles:
    """The roles inferred for one metadata column ``x`` beside the id column."""
    return infer_roles(pd.DataFrame({"model": [f"m{i}" for i in range(len(values))], "x": values}), "model")


def role_of(values: list) -> str:
    roles = roles_of(values)
    found = [r for r in ("categorical", "numeric", "text") if "x" in getattr(roles, r)]
    assert len(found) == 1, roles
    return found[0]


# -- infer_roles ---------------------------------------------------------------------------------------------


def test_a_bool_column_is_categorical_not_numeric():
    assert roles_of([True, False, True]) == Roles(id="model", categorical=("x",))


def test_two_distinct_strings_are_text_when_their_mean_length_is_over_24_characters():
    assert role_of(["a" * 25, "b" * 25]) == "text"
    assert role_of(["a" * 24, "b" * 26]) == "text"  # mean 25
    assert role_of(["a" * 24, "b" * 24]) == "categorical"  # mean 24: not long
    assert role_of(["a" * 23, "b" * 25]) == "categorical"


def test_two_distinct_strings_are_text_when_more_than_half_of_them_hold_a_comma():
    assert role_of(["a, b", "c, d"]) == "text"
    assert role_of(["a, b", "c"]) == "categorical"  # exactly half: not long


def test_long_strings_that_repeat_are_categorical_when_at_most_half_of_the_rows_are_distinct():
    long1, long2 = "a fairly long description, of one", "another long description, of two"
    assert role_of([long1, long2, long1, long2]) == "categorical"  # 2 distinct in 4 rows: half, not more
    assert role_of([long1, long2, long1, long2 + "!"]) == "text"  # 3 distinct in 4 rows


def test_short_strings_are_categorical_with_at_most_half_as_many_distinct_values_as_rows():
    assert role_of([f"v{i % 5}" for i in range(10)]) == "categorical"  # 5 distinct in 10 rows
    assert role_of([f"v{i % 6}" for i in range(10)]) == "text"  # 6 distinct in 10 rows


def test_short_strings_are_categorical_with_at_most_50_distinct_values_however_many_rows():
    assert role_of([f"v{i % 50}" for i in range(102)]) == "categorical"
    assert role_of([f"v{i % 51}" for i in range(102)]) == "text"


# -- records given as tables: messages ---------------------------------------------------------------------------


def test_records_that_are_not_a_table_are_refused_by_their_type():
    with pytest.raises(ZooError, match=exactly("records.csv: expected a table (pandas DataFrame), got list")):
        Zoo.from_frames(MODELS, DATASETS, [("a", "d", 0.5)])


@pytest.mark.parametrize("rows, message", [
    ((("a", "d", 0.5), ("", "d", 0.5)), "records.csv row 2: empty model name; every row needs a model"),
    ((("a", "d", 0.5), ("a", " ", 0.5)), "records.csv row 2: empty dataset name; every row needs a dataset"),
    ((("a", "d", 0.5), ("a", None, 0.5)), "records.csv row 2: empty dataset name; every row needs a dataset"),
    ((("a", "d", 0.5), ("a\u200b", "d", 0.5)),
     "remove the character U+200B (zero width space) from the model " + repr("a\u200b") + ": records.csv row 2"),
    ((("a", "d", 0.5), ("a", "d\x1b", 0.5)),
     "remove the character U+001B (escape) from the dataset 'd\\x1b': records.csv row 2"),
])
def test_a_record_without_a_name_or_with_a_hidden_character_is_refused_where_it_is(rows, message):
    with pytest.raises(ZooError, match=exactly(message)):
        Zoo.from_frames(MODELS, DATASETS, records(*rows))


def test_an_unknown_name_without_a_close_one_is_named_alone():
    with pytest.raises(ZooError, match=exactly("records.csv row 2 names model 'zzz', which is not in models.csv; "
                                               "fix the name or add it to models.csv")):
        Zoo.from_frames(MODELS, DATASETS, records(("a", "d", 0.5), ("zzz", "d", 0.5)))


def test_an_unknown_name_lists_the_close_ones_and_counts_the_rows_with_unknown_names():
    models = pd.DataFrame({"model": ["resnet101", "resnet50", "vit"]})
    message = ("records.csv row 1 names model 'resnet5', which is not in models.csv (did you mean 'resnet50', "
               "'resnet101'?); 2 rows name unknown models; fix the name or add it to models.csv")  # closest first
    with pytest.raises(ZooError, match=exactly(message)):
        Zoo.from_frames(models, DATASETS, records(("resnet5", "d", 0.5), ("vit", "d", 0.5), ("resnet5", "e", 0.5)))


def test_accuracies_of_exactly_0_and_1_are_fractions():
    zoo = Zoo.from_frames(MODELS, DATASETS, records(("a", "d", 0.0), ("b", "d", 1.0)))
    assert zoo.records["accuracy"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("accuracies, hint, where", [
    ([0.0, 83.0], True, "row 2: accuracy 83 is outside [0, 1]"),  # 0 may be a percentage too
    ([0.5, 100.0], True, "row 2: accuracy 100 is outside [0, 1]"),
    ([0.5, 101.0], False, "row 2: accuracy 101 is outside [0, 1]"),  # over 100: not percentages either
    ([-0.5, 83.0], False, "row 1: accuracy -0.5 is outside [0, 1] (2 rows are outside)"),
])
def test_accuracies_outside_0_1_are_refused_with_the_percentage_hint_only_when_all_lie_in_0_100(accuracies, hint,
                                                                                               where):
    pct = "; if they are percentages, divide them by 100" if hint else ""
    message = (f"give accuracies as fractions in [0, 1] (0.83, not 83: recsys never rescales them){pct}: "
               f"records.csv {where}")
    rows = [(m, "d", a) for m, a in zip("ab", accuracies)]
    with pytest.raises(ZooError, match=exactly(message)):
        Zoo.from_frames(MODELS, DATASETS, records(*rows))


# -- repeated pairs: first rows and conflicts ----------------------------------------------------------------------


def test_identical_duplicate_rows_of_any_pair_are_dropped_keeping_the_first():
    zoo = Zoo.from_frames(MODELS, DATASETS, records(("a", "d", 0.5), ("b", "e", 0.7), ("a", "e", 0.6),
                                                    ("b", "e", 0.7), ("a", "e", 0.6)))
    got = zoo.records.astype({"model": str, "dataset": str})
    assert got.values.tolist() == [["a", "d", 0.5], ["b", "e", 0.7], ["a", "e", 0.6]]


def conflict(rows: str, accuracies: str, model: str, dataset: str) -> str:
    return exactly(f"records.csv rows {rows} give different accuracies ({accuracies}) for model {model!r} on dataset "
                   f"{dataset!r}; keep one record per pair (average them yourself if intended)")


def test_a_conflict_on_any_pair_is_refused_not_only_on_the_first_pair_in_sorted_order():
    with pytest.raises(ZooError, match=conflict("2, 3", "0.7, 0.8", "b", "e")):
        Zoo.from_frames(MODELS, DATASETS, records(("a", "d", 0.5), ("b", "e", 0.7), ("b", "e", 0.8)))


def test_the_conflict_reported_is_the_one_met_first_in_the_file_with_its_own_rows_only():
    # sorted by pair (dataset, then model) the conflicting pairs come in the other order
    with pytest.raises(ZooError, match=conflict("1, 3", "0.7, 0.8", "b", "e")):
        Zoo.from_frames(MODELS, DATASETS, records(("b", "e", 0.7), ("a", "d", 0.5), ("b", "e", 0.8),
                                                  ("a", "d", 0.6)))
    # a conflicting pair between other pairs (in sorted order) lists none of their rows
    with pytest.raises(ZooError, match=conflict("2, 4", "0.6, 0.65", "a", "e")):
        Zoo.from_frames(MODELS, DATASETS, records(("b", "e", 0.8), ("a", "e", 0.6), ("a", "d", 0.5),
                                                  ("a", "e", 0.65), ("b", "d", 0.9)))
    with pytest.raises(ZooError, match=conflict("1, 3", "0.5, 0.55", "a", "d")):
        Zoo.from_frames(MODELS, DATASETS, records(("a", "d", 0.5), ("b", "e", 0.8), ("a", "d", 0.55),
                                                  ("a", "e", 0.6)))


def test_a_conflict_names_its_first_four_rows_and_accuracies():
    rows = [("a", "d", 0.5)] + [("b", "e", v) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    with pytest.raises(ZooError, match=conflict("2, 3, 4, 5", "0.1, 0.2, 0.3, 0.4", "b", "e")):
        Zoo.from_frames(MODELS, DATASETS, records(*rows))
