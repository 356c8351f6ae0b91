"""The one-line message of each way a zoo directory, its zoo.json and its CSV headers can be wrong, word for word.

A path that is a file, a FIFO, missing or unreadable; a zoo.json that is a directory, a broken symlink, too big,
not UTF-8, not an object, with a key given twice or unknown keys (with the close names, or none); a header in tabs,
with byte-order marks or without names; a column that zoo.json names and the file lacks, an infinite value in a
numeric column, and a records.csv without its required columns (with the close names, or none): each message is
pinned whole, with the paths of the test's own directory, so that any change to what a user reads shows here.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ZooError
from recsys.zoo import load_zoo, read_table

from conftest import write_zoo

FORMAT_HINT = "the zoo format is described in data/README.md and `pydoc recsys.zoo`"
ZOO_JSON_KEYS = "name, description, models, datasets"


def raises_exactly(message: str):
    """pytest.raises for a ZooError whose message is exactly ``message``."""
    return pytest.raises(ZooError, match="^" + re.escape(message) + "$")


# -- the zoo directory -------------------------------------------------------------------------------------------

def test_a_file_given_as_the_zoo_is_refused_naming_the_files_a_zoo_holds(tmp_path):
    path = tmp_path / "records.csv"
    path.write_text("model,dataset,accuracy\n")
    with raises_exactly(f"{str(path)!r} is a file; give the zoo directory that holds models.csv, datasets.csv and "
                        f"records.csv ({FORMAT_HINT})"):
        load_zoo(path)


def test_a_fifo_given_as_the_zoo_is_refused_saying_what_it_is(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    with raises_exactly(f"give a zoo directory (models.csv, datasets.csv, records.csv): {str(path)!r} is a FIFO"):
        load_zoo(path)


def test_a_missing_zoo_directory_is_refused_naming_the_named_zoos(tmp_path):
    path = tmp_path / "nowhere"
    with raises_exactly(f"zoo directory {str(path)!r} does not exist; give a directory with models.csv, datasets.csv "
                        f"and records.csv, or a named zoo (domainnet-270, transfergraph-image, vtab-hf, parc-71)"):
        load_zoo(path)


def test_a_zoo_directory_the_system_refuses_to_read_is_refused_with_the_system_s_reason(tmp_path, monkeypatch):
    """A folder without permission (simulated: tests may run as root, whom chmod does not stop)."""
    d = write_zoo(tmp_path / "z")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(d / "models.csv"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    with raises_exactly(f"cannot read zoo directory {str(d)!r} (Permission denied); check its permissions"):
        load_zoo(d)


# -- zoo.json ----------------------------------------------------------------------------------------------------

def _zoo_json_cases():
    """(how zoo.json is broken: a function of its path, the message: a function of its path)."""
    def write(content: bytes):
        return lambda f: f.write_bytes(content)

    def key_message(unknown, hint=""):
        return lambda f: f"{f} has unknown key(s) {unknown}{hint}; accepted keys: {ZOO_JSON_KEYS}"

    return [
        pytest.param(lambda f: f.mkdir(), lambda f: f"give a regular file as zoo.json: {str(f)!r} is a directory",
                     id="a directory"),
        pytest.param(lambda f: f.symlink_to(f.parent / "gone.json"),
                     lambda f: f"fix or remove the broken symlink {str(f)!r}: zoo.json links to no file",
                     id="a broken symlink"),
        pytest.param(write(b"\xff{}"),
                     lambda f: f"cannot read {f} ('utf-8' codec can't decode byte 0xff in position 0: invalid start "
                               f"byte); save it as UTF-8 JSON, or delete it to infer the column roles",
                     id="not UTF-8"),
        pytest.param(write(b'{"name": "a", "name": "b"}'),
                     lambda f: f"give each key once in {f}: 'name' appears 2 times in one object", id="a key twice"),
        pytest.param(write(b"[]"),
                     lambda f: f"{f} must hold a JSON object with keys {ZOO_JSON_KEYS}; got list", id="a list"),
        pytest.param(write(b'{"zzz": 1}'), key_message(["zzz"]), id="an unknown key like none"),
        pytest.param(write(b'{"modname": 1}'), key_message(["modname"], " (did you mean 'name'?)"),
                     id="an unknown key like two: the closest one"),
        pytest.param(write(b'{"nmae": "x", "modles": {}}'),
                     key_message(["modles", "nmae"], " (did you mean 'models', 'name'?)"),
                     id="two unknown keys: the closest of each"),
    ]


@pytest.mark.parametrize("breaks, message", _zoo_json_cases())
def test_a_broken_zoo_json_is_refused_in_one_line(tmp_path, breaks, message):
    d = write_zoo(tmp_path / "z")
    breaks(d / "zoo.json")
    with raises_exactly(message(d / "zoo.json")):
        load_zoo(d)


def test_a_zoo_json_over_the_json_limit_is_refused_naming_the_variable_that_raises_it(tmp_path, monkeypatch):
    d = write_zoo(tmp_path / "z", zoo_json={"name": "x"})  # 13 bytes
    monkeypatch.setenv("RECSYS_MAX_JSON_BYTES", "10")
    with raises_exactly(f"raise RECSYS_MAX_JSON_BYTES (now 10 bytes) to read zoo.json {str(d / 'zoo.json')!r}: it "
                        f"holds 13 bytes"):
        load_zoo(d)


def test_a_zoo_json_starting_with_a_byte_order_mark_is_read(tmp_path):
    d = write_zoo(tmp_path / "z")
    (d / "zoo.json").write_bytes("\ufeff".encode() + json.dumps({"name": "marked"}).encode())
    assert load_zoo(d).name == "marked"


# -- headers -----------------------------------------------------------------------------------------------------

def test_a_header_in_tabs_is_refused_saying_tabs(tmp_path):
    d = write_zoo(tmp_path / "z")
    (d / "models.csv").write_text("model\tfamily\nresnet50\tresnet\nvit b/16\tvit\nconvnext, tiny\tconvnext\n")
    with raises_exactly(f"models.csv line 1: the header {'model' + chr(9) + 'family'!r} uses tabs; zoo files are "
                        f"comma-separated, save it as CSV with commas"):
        load_zoo(d)


def test_header_names_lose_their_byte_order_marks_and_whitespace_and_nothing_else(tmp_path):
    d = write_zoo(tmp_path / "z")
    (d / "models.csv").write_text('\ufeff\ufeffmodel , \ufeffXL\nresnet50,1\nvit b/16,2\n"convnext, tiny",3\n',
                                  encoding="utf-8")
    zoo = load_zoo(d)
    assert zoo.models.index.name == "model" and list(zoo.models.columns) == ["XL"]
    assert zoo.models["XL"].tolist() == [1.0, 2.0, 3.0]


def test_a_column_without_a_header_name_is_dropped_with_one_info_line_and_a_named_one_logs_nothing(tmp_path, caplog):
    d = write_zoo(tmp_path / "z")
    with caplog.at_level(logging.INFO, logger="recsys.zoo"):
        load_zoo(d)
    assert not [r for r in caplog.records if "without a header name" in r.getMessage()]
    (d / "models.csv").write_text('model,,family\nresnet50,1,resnet\nvit b/16,2,vit\n"convnext, tiny",3,convnext\n')
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recsys.zoo"):
        zoo = load_zoo(d)
    assert list(zoo.models.columns) == ["family"]
    assert [r.getMessage() for r in caplog.records if "without a header name" in r.getMessage()] == [
        f"{d / 'models.csv'}: ignoring 1 column(s) without a header name"]


def test_a_table_whose_header_names_no_column_keeps_one_row_per_line(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("\ufeff\ufeff\nsketch\nphoto\n", encoding="utf-8")  # a header of byte-order marks only
    frame = read_table(path, "--new")
    assert frame.shape == (2, 0)


# -- columns -----------------------------------------------------------------------------------------------------

_MODELS = pd.DataFrame({"model": ["resnet50", "vit b/16"], "family": ["resnet", "vit"]})
_DATASETS = pd.DataFrame({"dataset": ["birds", "cars"]})


@pytest.mark.parametrize("records, message", [
    pytest.param({"model": "resnet50", "dataset": "birds", "acuracy": 0.5},
                 "records.csv has no column(s) ['accuracy'] (did you mean 'acuracy'?); required columns: model, "
                 "dataset, accuracy (found ['model', 'dataset', 'acuracy']); rename the header", id="a misspelled one"),
    pytest.param({"model": "resnet50", "dataset": "birds", "score": 0.5},
                 "records.csv has no column(s) ['accuracy']; required columns: model, dataset, accuracy (found "
                 "['model', 'dataset', 'score']); rename the header", id="one like none"),
    pytest.param({"model": "resnet50", "dataset": "birds", "accuracy_b": 0.5, "accuracy_a": 0.5},
                 "records.csv has no column(s) ['accuracy'] (did you mean 'accuracy_b'?); required columns: model, "
                 "dataset, accuracy (found ['model', 'dataset', 'accuracy_b', 'accuracy_a']); rename the header",
                 id="one like two: the closest"),
    pytest.param({"modle": "resnet50", "datset": "birds", "accuracy": 0.5},
                 "records.csv has no column(s) ['model', 'dataset'] (did you mean 'modle', 'datset'?); required "
                 "columns: model, dataset, accuracy (found ['modle', 'datset', 'accuracy']); rename the header",
                 id="two misspelled"),
    pytest.param({"model": "resnet50", "dataset": "birds", **{f"c{k}": k for k in range(1, 8)}},
                 "records.csv has no column(s) ['accuracy']; required columns: model, dataset, accuracy (found "
                 "['model', 'dataset', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6']); rename the header",
                 id="among nine: the first eight shown"),
])
def test_records_without_a_required_column_are_refused_with_the_close_names(tmp_path, records, message):
    d = write_zoo(tmp_path / "z", models=_MODELS, datasets=_DATASETS, records=pd.DataFrame([records]))
    with raises_exactly(message):
        load_zoo(d)


def test_zoo_json_naming_a_column_like_none_is_refused_without_a_hint(tmp_path):
    d = write_zoo(tmp_path / "z", zoo_json={"models": {"categorical": ["zzz"]}})
    with raises_exactly("zoo.json names column 'zzz' of models.csv, which has no such column; columns found: "
                        "['family', 'params']; fix the name in zoo.json or add the column"):
        load_zoo(d)


def test_zoo_json_naming_a_missing_column_lists_the_close_names_and_the_first_twelve_columns(tmp_path):
    columns = {"size_a": ["s", "m"], "size_b": ["l", "xl"], **{f"f{k}": [k, k + 1] for k in range(1, 12)}}
    d = write_zoo(tmp_path / "z", models=pd.DataFrame({"model": ["resnet50", "vit b/16"], **columns}),
                  datasets=_DATASETS,
                  records=pd.DataFrame({"model": ["resnet50"], "dataset": ["birds"], "accuracy": [0.5]}),
                  zoo_json={"models": {"categorical": ["size"]}})
    shown = list(columns)[:12]
    with raises_exactly(f"zoo.json names column 'size' of models.csv, which has no such column (did you mean "
                        f"'size_b', 'size_a'?); columns found: {shown}; fix the name in zoo.json or add the column"):
        load_zoo(d)


def test_an_infinite_value_in_a_numeric_column_is_refused_naming_its_first_line(tmp_path):
    models = pd.DataFrame({"model": ["resnet50", "vit b/16", "convnext, tiny"], "params": [25e6, np.inf, -np.inf]})
    d = write_zoo(tmp_path / "z", models=models)
    with raises_exactly("models.csv line 3: column 'params' holds an infinite value; give a finite number or leave "
                        "the cell empty"):
        load_zoo(d)
