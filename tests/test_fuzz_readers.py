"""Every reader, fuzzed (issue 21): any bytes as a zoo file or a ``--new`` file.

Each property holds for any input: the reader either gives a valid zoo (the same one by both of its
tokenizers, and the one an independent reading of the file with Python's csv module describes: no row
silently dropped, no value changed), or refuses the input with one :class:`~recsys.errors.RecsysError`
line. Anything else (a traceback, an exception of another type, a message of several lines) fails.

Inputs come from a grammar of near-valid files (the names, numbers and separators a person types,
quotes, blank lines, CR, a BOM, percentages ...), some with a byte changed, inserted or cut off, and
from raw bytes. The budget is Hypothesis' profile (tests/conftest.py): a few dozen examples per
property in ``make test``, thousands in ``make fuzz``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import example, given, strategies as st

from recsys import zoo as zoo_module
from recsys.cli import main
from recsys.errors import RecsysError, ZooError
from recsys.zoo import load_zoo

from conftest import ROOT, write_zoo

EXAMPLE = ROOT / "data" / "example-zoo"
N_EXAMPLE_MODELS = len(pd.read_csv(EXAMPLE / "models.csv"))

# -- a grammar of near-valid zoo files -------------------------------------------------------------

MODELS = ["resnet50", "vit b/16", '"convnext, tiny"']
DATASETS = ["birds", "cars 196", "flowers/102"]
ODD_NAMES = ["", " resnet50 ", '"vit b/16"', "resnet5O", "NA", "convnext, tiny", "brids", '"two\nlines"', "007",
             "é", '"say ""hi"""', "\t", "#N/A"]
NUMBERS = ["0.5", "0.71", "1", "0", "1.0", "1.01", "1.0000001", "-0.1", "-0", "83%", "nan", "NaN", "inf", "-inf", "",
           " 0.7 ", "7e-1", "1e-3", "1e500", "0x1", "high", "7", ".5", "5.", "+0.5", "1_0", "0,5", '"0.5"', "None"]
HEADERS = ["model,dataset,accuracy", "model,dataset,accuracy", "model,dataset,accuracy", "dataset,model,accuracy",
           "model,dataset,accuracy,extra", "model, dataset ,accuracy", "\ufeffmodel,dataset,accuracy",
           "model;dataset;accuracy", "model,dataset", "model,dataset,accuracy,", ",model,dataset,accuracy",
           "model,dataset,model", "model\tdataset\taccuracy", ""]
EOLS = st.sampled_from(["\n", "\n", "\r\n", "\r"])


@st.composite
def edited(draw, data: bytes) -> bytes:
    """``data``, sometimes with one byte replaced, inserted or deleted, or cut short."""
    kind = draw(st.sampled_from(["same", "same", "replace", "insert", "delete", "cut"]))
    if kind == "same" or not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    if kind == "replace":
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    if kind == "insert":
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i:]
    if kind == "delete":
        return data[:i] + data[i + 1:]
    return data[:i]


@st.composite
def records_files(draw) -> bytes:
    """A records.csv: mostly valid rows over the tiny zoo's names, some odd cells, rows and line ends."""
    eol = draw(EOLS)
    lines = [draw(st.sampled_from(HEADERS))]
    for _ in range(draw(st.integers(0, 8))):
        shape = draw(st.sampled_from(["row", "row", "row", "row", "blank", "spaces", "short", "long"]))
        if shape == "blank":
            lines.append("")
            continue
        if shape == "spaces":
            lines.append(draw(st.sampled_from([" ", "\t", " , , ", ",,"])))
            continue
        model = draw(st.one_of(st.sampled_from(MODELS), st.sampled_from(ODD_NAMES)))
        dataset = draw(st.one_of(st.sampled_from(DATASETS), st.sampled_from(ODD_NAMES)))
        acc = draw(st.one_of(st.sampled_from(NUMBERS), st.floats(0, 1).map(repr)))
        cells = [model, dataset, acc]
        if shape == "short":
            cells = cells[:draw(st.integers(1, 2))]
        elif shape == "long":
            cells.append(draw(st.sampled_from(["", " ", "x", "0.5"])))
        lines.append(",".join(cells))
    text = eol.join(lines) + draw(st.sampled_from(["", eol]))
    return draw(edited(text.encode("utf-8")))


@st.composite
def metadata_files(draw, side: str) -> bytes:
    """A models.csv / datasets.csv holding (mostly) the ids the tiny zoo's records name, and odd metadata."""
    eol = draw(EOLS)
    ids = MODELS if side == "model" else DATASETS
    header = draw(st.sampled_from([f"{side},kind,size", f"{side},kind,size", f"kind,{side},size", f"{side}",
                                   f" {side} ,kind,size", f"{side},kind,kind", f"name,kind,size",
                                   f"{side},kind,size,"]))
    rows = draw(st.permutations(ids))
    rows = list(rows) + draw(st.lists(st.sampled_from(ODD_NAMES + ids + ["new sketches"]), max_size=3))
    lines = [header]
    for name in rows:
        kind = draw(st.sampled_from(["photo", "sketch", "", "NA", "1", "true", '"a, b"', "é"]))
        size = draw(st.one_of(st.sampled_from(["10", "2.5e6", "", "nan", "inf", "-1", "big", "0"]),
                              st.integers(-5, 10**12).map(str)))
        first = [name, kind, size] if not header.startswith("kind") else [kind, name, size]
        lines.append(",".join(first[:draw(st.integers(1, 4))]))
        if draw(st.booleans()) and draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", " ", ",,"])))
    text = eol.join(lines) + draw(st.sampled_from(["", eol]))
    return draw(edited(text.encode("utf-8")))


COLUMNS = ["family", "params", "domain", "classes", "labels", "model", "dataset", " domain ", "bogus", ""]
# (null is drawn for "log" only: null for categorical / numeric / text is a known traceback, see
# test_null_column_roles_in_zoo_json_are_one_error_line below)
ROLE_VALUES = st.one_of(st.lists(st.sampled_from(COLUMNS), max_size=3), st.sampled_from(COLUMNS), st.integers(),
                        st.just({}))


@st.composite
def zoo_jsons(draw) -> bytes:
    """A zoo.json: objects of the right shape with odd values, other JSON values, or text that is not JSON."""
    kind = draw(st.sampled_from(["object", "object", "object", "json", "text"]))
    if kind == "text":
        return draw(st.one_of(st.binary(max_size=40), st.sampled_from([b"{", b"{not json", b"", b"\xef\xbb\xbf{}",
                                                                        b"[" * 5000 + b"]" * 5000])))
    if kind == "json":
        value = draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                                  lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                     max_size=3), max_leaves=8))
        return json.dumps(value).encode()
    doc = {}
    for key in draw(st.lists(st.sampled_from(["name", "description", "models", "datasets", "nmae"]), unique=True)):
        if key in ("models", "datasets"):
            roles = {}
            for role in draw(st.lists(st.sampled_from(["id", "categorical", "numeric", "text", "log", "numerical"]),
                                      unique=True, max_size=4)):
                roles[role] = draw(st.sampled_from(["model", "dataset", "family", "", 3])) if role == "id" else \
                    draw(st.one_of(ROLE_VALUES, st.none()) if role == "log" else ROLE_VALUES)
            doc[key] = draw(st.one_of(st.just(roles), st.sampled_from([None, [], "family", 1])))
        else:
            doc[key] = draw(st.one_of(st.text(max_size=8), st.integers(), st.none()))
    return draw(edited(json.dumps(doc).encode()))


# -- the properties --------------------------------------------------------------------------------


def _outcome(directory: Path, *, plain: bool):
    """("ok", zoo) or ("error", message) of load_zoo; ``plain``: every records/scores file through pandas' C
    reader when it can take it (else line by line with csv.reader), whatever its size."""
    with mock.patch.object(zoo_module, "_PLAIN_MIN_BYTES", 0 if plain else 1 << 62):
        try:
            return "ok", load_zoo(directory)
        except RecsysError as exc:
            return "error", str(exc)


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert "Traceback" not in message


def _records_of(zoo) -> set:
    r = zoo.records
    return set(zip(r["model"].astype(str), r["dataset"].astype(str), r["accuracy"].astype(float)))


def _careful(data: bytes) -> list[list[str]] | None:
    """The non-blank rows of a CSV file as Python's csv module reads it (header first), cells stripped; None when
    it cannot be read."""
    try:
        text = data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (UnicodeDecodeError, csv.Error):
        return None
    rows = [[c.strip() for c in row] for row in rows if any(c.strip() for c in row)]
    return rows or None


def _check_same(a, b) -> None:
    """Both tokenizers give the same outcome: both refuse the file in one line, or both give the same zoo.

    (A file with two problems may be refused for either: the C reader's pre-scan checks the header before it
    decodes the rest, the line-by-line reader decodes first.)"""
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        _one_line(a[1])
        _one_line(b[1])
        return
    za, zb = a[1], b[1]
    assert za.fingerprint() == zb.fingerprint()
    pd.testing.assert_frame_equal(za.records, zb.records)
    pd.testing.assert_frame_equal(za.models, zb.models)
    pd.testing.assert_frame_equal(za.datasets, zb.datasets)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _zoo_with(scratch: Path, name: str, content: bytes) -> Path:
    d = write_zoo(Path(tempfile.mkdtemp(dir=scratch)))
    (d / name).write_bytes(content)
    return d


@given(st.one_of(records_files(), st.binary(max_size=120)))
@example(b"model,dataset,accuracy\nresnet50,birds,0.7\nvit b/16,birds,0.7\nresnet50,cars 196,0.7\n"
         b"vit b/16,cars 196,0.7\nresnet50,birds,0.7\n")
@example(b"model,dataset,accuracy\nresnet50,birds,1.01\n")
@example(b"model,dataset,accuracy\r\nresnet50,birds,0.5\r\n\r\n  \r\nvit b/16,birds,1\r\n")
def test_any_records_file_is_a_valid_zoo_or_one_error_line(scratch, content):
    d = _zoo_with(scratch, "records.csv", content)
    plain, rows = _outcome(d, plain=True), _outcome(d, plain=False)
    _check_same(plain, rows)
    if plain[0] == "error":
        _one_line(plain[1])
        return
    # The careful reading: every non-blank row is a record (identical repeats once), its values as written.
    table = _careful(content)
    assert table is not None, "the zoo reader accepted a file Python's csv module cannot read"
    header, body = table[0], table[1:]
    col = {name: header.index(name) for name in ("model", "dataset", "accuracy")}
    expected = set()
    for row in body:
        row = row + [""] * (len(header) - len(row))
        acc = float(row[col["accuracy"]])
        assert math.isfinite(acc) and 0.0 <= acc <= 1.0
        expected.add((row[col["model"]], row[col["dataset"]], acc))
    assert _records_of(plain[1]) == expected
    assert len(plain[1].records) == len({(m, d) for m, d, _ in expected})


@pytest.mark.parametrize("side", ["model", "dataset"])
@given(data=st.data())
def test_any_metadata_file_is_a_valid_zoo_or_one_error_line(scratch, side, data):
    content = data.draw(st.one_of(metadata_files(side), st.binary(max_size=80)), label=f"{side}s.csv")
    d = _zoo_with(scratch, f"{side}s.csv", content)
    kind, got = _outcome(d, plain=False)
    if kind == "error":
        _one_line(got)
        return
    table = _careful(content)
    assert table is not None
    header, body = table[0], table[1:]
    ids = [(row + [""] * len(header))[header.index(side)] for row in body]
    frame = got.models if side == "model" else got.datasets
    assert list(frame.index) == ids  # every row, in file order, none dropped
    assert sorted(frame.columns) == sorted(h for h in header if h and h != side)


@given(zoo_jsons())
@example(b'{"name": "tiny", "models": {"categorical": ["family", " family "]}}')
def test_any_zoo_json_is_a_valid_zoo_or_one_error_line(scratch, content):
    d = _zoo_with(scratch, "zoo.json", content)
    kind, got = _outcome(d, plain=False)
    if kind == "error":
        _one_line(got)
        return
    doc = json.loads(content.decode("utf-8-sig"))
    assert isinstance(doc, dict)
    if isinstance(doc.get("name"), str) and doc["name"]:
        assert got.name == doc["name"]
    for side, roles in (("models", got.model_roles), ("datasets", got.dataset_roles)):
        given_roles = doc.get(side)
        if isinstance(given_roles, dict):
            for key in ("categorical", "numeric", "text"):
                value = given_roles.get(key, [])
                value = [value] if isinstance(value, str) else value
                assert list(getattr(roles, key)) == list(dict.fromkeys(v.strip() for v in value))


# -- what the review of issue 21 found, as fixed cases ------------------------------------------------------


@pytest.mark.parametrize("plain", [True, False])
@pytest.mark.parametrize("cell", ["1.01", "1.0000001", "100", "-0.0001"])
def test_an_accuracy_just_outside_zero_one_is_refused_by_both_tokenizers(scratch, plain, cell):
    """(Both readers once accepted 1.01: the fit succeeded, then Recommender.load refused the file it wrote.)"""
    d = _zoo_with(scratch, "records.csv", f"model,dataset,accuracy\nresnet50,birds,0.5\nvit b/16,birds,{cell}\n".encode())
    kind, msg = _outcome(d, plain=plain)
    pct = "; if they are percentages, divide them by 100" if float(cell) >= 0 else ""
    assert kind == "error" and msg == (f"give accuracies as fractions in [0, 1] (0.83, not 83: recsys never rescales "
                                       f"them){pct}: records.csv line 3: accuracy {cell} is outside [0, 1]")


def test_an_accuracy_just_above_one_is_named_as_written(scratch):
    d = _zoo_with(scratch, "records.csv", b"model,dataset,accuracy\nresnet50,birds,1.0000001\n")
    kind, msg = _outcome(d, plain=False)
    assert kind == "error" and "1.0000001" in msg


def test_an_accuracy_above_one_is_refused_in_python_frames_too():
    records = pd.DataFrame({"model": ["resnet50"], "dataset": ["birds"], "accuracy": [1.01]})
    models, datasets = pd.DataFrame({"model": ["resnet50"]}), pd.DataFrame({"dataset": ["birds"]})
    with pytest.raises(ZooError, match=r"records.csv row 1: accuracy 1.01 is outside \[0, 1\]"):
        zoo_module.Zoo.from_frames(models, datasets, records)


@pytest.mark.parametrize("plain", [True, False])
def test_equal_accuracies_of_different_pairs_are_all_kept(scratch, plain):
    """Every pair of a 3 x 4 zoo recorded at the same accuracy: 12 records, none merged with another (a duplicate key
    built from the wrong columns once dropped such records silently); a repeated identical row is dropped once."""
    rows = [f'{m},{d},0.5' for d in ("birds", "cars 196", "flowers/102", "new sketches")
            for m in ("resnet50", "vit b/16", '"convnext, tiny"')]
    content = ("model,dataset,accuracy\n" + "\n".join(rows + rows[:2]) + "\n").encode()
    kind, got = _outcome(_zoo_with(scratch, "records.csv", content), plain=plain)
    assert kind == "ok", got
    assert len(got.records) == 12 and len(_records_of(got)) == 12
    scores = "model,dataset,metric,score\n" + "".join(f"{m},{d},{metric},1.5\n" for metric in ("LOG_ME", "NCE")
                                                      for m in ("resnet50", "vit b/16") for d in ("birds", "cars 196"))
    d = _zoo_with(scratch, "scores.csv", scores.encode())
    kind, got = _outcome(d, plain=plain)
    assert kind == "ok" and len(got.scores) == 8


@pytest.mark.parametrize("key", ["categorical", "numeric", "text"])
def test_null_column_roles_in_zoo_json_are_one_error_line(scratch, key):
    d = _zoo_with(scratch, "zoo.json", json.dumps({"models": {key: None}}).encode())
    kind, got = _outcome(d, plain=False)
    assert kind == "error" and "\n" not in got and "zoo.json" in got, got  # (found by fuzzing: once a TypeError)


# -- --new files, through the command line -----------------------------------------------------------

NEW_KEYS = ["dataset", "domain", "num_classes", "train_samples", "labels", "bogus", "Labels", ""]
NEW_VALUES = st.one_of(st.text(max_size=12), st.integers(-10**20, 10**20), st.floats(), st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=2), st.just({"a": 1}))


@st.composite
def new_files(draw) -> bytes:
    kind = draw(st.sampled_from(["object", "object", "list", "json", "text"]))
    obj = lambda: draw(st.dictionaries(st.sampled_from(NEW_KEYS), NEW_VALUES, max_size=5))  # noqa: E731
    if kind == "object":
        value = obj()
    elif kind == "list":
        value = [obj() for _ in range(draw(st.integers(0, 3)))]
    elif kind == "json":
        value = draw(st.one_of(st.integers(), st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)))
    else:
        return draw(st.one_of(st.binary(max_size=40), st.sampled_from([b"{", b"", b"[]", b"{}", b"\xff\xfe{}"])))
    return draw(edited(json.dumps(value).encode()))  # (NaN and Infinity as JSON allows them in Python)


@pytest.fixture(scope="module")
def example_model(tmp_path_factory):
    """The example zoo, fitted once with the hashing encoder and no calibration."""
    path = tmp_path_factory.mktemp("fuzz-model") / "example.npz"
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing",
                                    "--no-calibrate", "--out", str(path)])
    assert res.exit_code == 0, res.stderr
    return path


@given(new_files())
@example(json.dumps([{"dataset": "a", "domain": "sketch"}, {"dataset": "b", "labels": "cat, dog"}]).encode())
@example(json.dumps({"domain": "sketch", "num_classes": float("nan")}).encode())
@example(b'[{"dataset": "x", "domain": {"a": 1}, "labels": "\\ud800"}]')  # (a lone surrogate: once a traceback)
def test_any_new_file_is_answered_or_refused_in_one_line(example_model, scratch, content):
    new = Path(tempfile.mkdtemp(dir=scratch)) / "new.json"
    new.write_bytes(content)
    res = CliRunner().invoke(main, ["-q", "predict", "--model", str(example_model), "--new", str(new),
                                    "--format", "csv"])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.stderr + res.stdout
    if res.exit_code != 0:
        assert res.exit_code in (1, 2)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
        return
    doc = json.loads(content)
    objects = doc if isinstance(doc, list) else [doc]
    out = pd.read_csv(io.StringIO(res.stdout), keep_default_na=False)
    assert out["dataset"].nunique() == len(objects)  # one answer per object given, none dropped
    assert len(out) == N_EXAMPLE_MODELS * len(objects)
    assert np.isfinite(out["predicted"].astype(float)).all()
