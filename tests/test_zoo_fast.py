"""The zoo reader's two tokenizers: pandas' C reader for plain files (big records/scores files) gives the zoo
that csv.reader line by line gives, with the same messages; fast fingerprint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recsys.zoo as zoo_mod
from conftest import ROOT, write_zoo
from recsys.errors import UnknownNameError, ZooError
from recsys.features import FeatureBuilder
from recsys.zoo import load_zoo

EXAMPLE = ROOT / "data" / "example-zoo"
# Names without commas or quotes, so that records.csv and scores.csv need no quoting.
MODELS = pd.DataFrame({"model": ["resnet50", "vit b/16", "google/vit-base", "007x"],
                       "family": ["resnet", "vit", "vit", "other"], "params": [25e6, 86e6, 86e6, 1e6]})
DATASETS = pd.DataFrame({"dataset": ["birds", "cars 196", "flowers/102", "new sketches"],
                         "domain": ["photo", "photo", "photo", "sketch"], "classes": [200, 196, 102, 10]})
RECORDS = pd.DataFrame({"model": ["resnet50", "vit b/16", "google/vit-base", "resnet50", "vit b/16", "007x"],
                        "dataset": ["birds", "birds", "birds", "cars 196", "flowers/102", "flowers/102"],
                        "accuracy": [0.71, 0.83, 0.79, 0.65, 0.9312345678901234, 0.5]})
SCORES = pd.DataFrame({"model": ["resnet50", "vit b/16", "resnet50", "resnet50"],
                       "dataset": ["birds", "birds", "new sketches", "new sketches"],
                       "metric": ["LOG_ME", "LOG_ME", "LOG_ME", "H_SCORE"], "score": [1.5, -2.25, 0.5, 3.0]})


@pytest.fixture
def fast_calls(monkeypatch):
    """How many files the C reader took (it returns a table) and declined (None: read line by line)."""
    calls = {"took": 0, "declined": 0}
    real = zoo_mod._read_plain

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["took" if out is not None else "declined"] += 1
        return out

    monkeypatch.setattr(zoo_mod, "_read_plain", spy)
    monkeypatch.setattr(zoo_mod, "_PLAIN_MIN_BYTES", 0)  # these small files too
    return calls


def load_careful(path, monkeypatch):
    """``load_zoo`` with every file read line by line (csv.reader)."""
    with monkeypatch.context() as m:
        m.setattr(zoo_mod, "_read_plain", lambda *a, **k: None)
        return load_zoo(path)


def plain_zoo(directory, records_text=None, scores=SCORES):
    d = write_zoo(directory, models=MODELS, datasets=DATASETS, records=None, scores=scores)
    (d / "records.csv").write_text(records_text if records_text is not None else RECORDS.to_csv(index=False))
    return d


def assert_same_zoo(a, b):
    pd.testing.assert_frame_equal(a.records, b.records)
    pd.testing.assert_frame_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.models, b.models)
    assert a.fingerprint() == b.fingerprint()


QUIRKS = {
    "plain": RECORDS.to_csv(index=False),
    "crlf, no final newline": RECORDS.to_csv(index=False, lineterminator="\r\n").rstrip("\r\n"),
    "bom, spaces, blank lines, extra column": (
        "\ufeff model , dataset ,accuracy, lr\n resnet50 ,birds, 0.71,0.1\n\n   \nvit b/16,birds,0.83,\n"
        "google/vit-base,birds,0.79,1\nresnet50,cars 196,0.65,1\nvit b/16,flowers/102,0.9312345678901234,1\n"
        "007x,flowers/102,.5,1\n\n"),
    "identical duplicates": RECORDS.to_csv(index=False) + "resnet50,birds,0.710\nresnet50 ,birds,71e-2\n",
    "unnamed index column": RECORDS.to_csv(index=True),
}


@pytest.mark.parametrize("quirk", list(QUIRKS))
def test_fast_reader_gives_the_careful_readers_zoo(tmp_path, monkeypatch, fast_calls, quirk):
    d = plain_zoo(tmp_path / "z", QUIRKS[quirk])
    fast = load_zoo(d)
    assert fast_calls == {"took": 2, "declined": 0}  # records.csv and scores.csv, both plain
    careful = load_careful(d, monkeypatch)
    assert_same_zoo(fast, careful)
    assert len(fast.records) == 6 and fast.records["accuracy"].iloc[4] == 0.9312345678901234
    assert isinstance(fast.records["model"].dtype, pd.CategoricalDtype)
    assert list(fast.records["model"].cat.categories) == fast.model_ids  # codes are column positions
    assert fast.metrics == ["H_SCORE", "LOG_ME"] and fast.scores["model"].dtype == object


def test_reference_zoos_read_fast_as_careful(tmp_path, monkeypatch, fast_calls, domainnet, transfergraph):
    for zoo in (domainnet, transfergraph):
        d = zoo.write(tmp_path / zoo.name)
        fast_calls.update(took=0, declined=0)
        fast = load_zoo(d)
        assert fast_calls["took"] >= 1, zoo.name
        assert_same_zoo(fast, load_careful(d, monkeypatch))
        assert fast.fingerprint() == zoo.fingerprint()


@pytest.mark.parametrize("body, match", [
    # pandas' C reader would silently drop the extra field: the line-width pre-scan must not
    ("resnet50,birds,0.7,x\n", r"records.csv line 3: 4 fields but the header has 3"),
    ("resnet50,birds\n", r"records.csv line 3: accuracy is empty or NaN"),
    ("resnet50,birds,nan\n", r"records.csv line 3: accuracy is empty or NaN"),
    ("resnet50,birds,inf\n", r"records.csv line 3: accuracy 'inf' is infinite"),
    ("resnet50,birds,1.5\n", r"records.csv line 3: accuracy 1.5 is outside \[0, 1\]"),
    ("resnet5O,birds,0.7\n", r"records.csv line 3 names model 'resnet5O', which is not in models.csv"),
    ("resnet50,birds,0.75\n", r"records.csv lines 2, 3 give different accuracies \(0.71, 0.75\)"),
    (" ,birds,0.7\n", r"records.csv line 3: empty model name"),
    ("\n\nresnet50,\"birds\",0.7x\n", r"records.csv line 5: accuracy '0.7x' is not a number"),
    ("vit b/16,birds,0.7\rresnet50,cars 196,0.8\n", None),  # a bare CR ends a line for csv.reader
])
def test_problems_keep_the_careful_message(tmp_path, fast_calls, body, match):
    d = plain_zoo(tmp_path / "z", "model,dataset,accuracy\nresnet50,birds,0.71\n" + body)
    if match is None:
        careful = load_zoo(d)
        assert len(careful.records) == 3
    else:
        with pytest.raises(ZooError, match=match):
            load_zoo(d)
    assert fast_calls["took"] + fast_calls["declined"] >= 1  # records.csv was offered to the fast reader


def test_ids_that_look_like_numbers_stay_as_written(tmp_path, monkeypatch, fast_calls):
    models = pd.DataFrame({"model": ["007", "1.0", "1e3"], "size": [1, 2, 3]})
    datasets = pd.DataFrame({"dataset": ["0042", "2021-01-01"], "n": [3, 4]})
    records = pd.DataFrame({"model": ["007", "1.0", "1e3"], "dataset": ["0042", "2021-01-01", "0042"],
                            "accuracy": [0.5, 0.6, 0.7]})
    d = write_zoo(tmp_path / "z", models=models, datasets=datasets, records=records)
    zoo = load_zoo(d)
    assert fast_calls["declined"] == 0  # the C reader's 7.0 for 007 is read again as text, not line by line
    assert_same_zoo(zoo, load_careful(d, monkeypatch))
    assert list(zoo.records["model"].astype(str)) == ["007", "1.0", "1e3"]
    assert zoo.accuracy_table().loc["2021-01-01", "1.0"] == pytest.approx(0.6)


def test_frames_built_in_python_validate_as_before():
    """from_frames takes object, string and categorical name columns alike (the importers' path)."""
    for cast in (lambda s: s, lambda s: s.astype("string"), lambda s: s.astype("category")):
        records = RECORDS.assign(model=cast(RECORDS["model"]), dataset=cast(RECORDS["dataset"]))
        zoo = zoo_mod.Zoo.from_frames(MODELS, DATASETS, records, SCORES)
        assert zoo.records["model"].astype(str).tolist() == RECORDS["model"].tolist()
        assert zoo.records["dataset"].cat.categories.tolist() == DATASETS["dataset"].tolist()
    with pytest.raises(ZooError, match=r"records.csv row 2 names dataset 'bird', which is not in datasets.csv"):
        zoo_mod.Zoo.from_frames(MODELS, DATASETS, RECORDS.assign(dataset=["birds", "bird"] + ["birds"] * 4))


def test_fingerprint_is_content_only(monkeypatch):
    zoo = zoo_mod.Zoo.from_frames(MODELS, DATASETS, RECORDS, SCORES)
    fp = zoo.fingerprint()
    rng = np.random.default_rng(0)
    shuffled = zoo_mod.Zoo.from_frames(MODELS.iloc[::-1], DATASETS.iloc[rng.permutation(4)],
                                       RECORDS.iloc[rng.permutation(6)], SCORES.iloc[::-1])
    assert shuffled.fingerprint() == fp  # row order of every table
    as_text = zoo.with_records(zoo.records.astype({"model": object, "dataset": object}))
    assert as_text.fingerprint() == fp  # the dtype of the name columns
    acc = zoo.records["accuracy"].to_numpy().copy()
    acc[2] += 1e-9
    changed = [
        zoo.with_records(zoo.records.assign(accuracy=acc)),
        zoo.with_records(zoo.records.iloc[1:]),
        zoo.with_records(zoo.records.assign(model=zoo.records["model"].to_numpy()[[1, 0, 2, 3, 4, 5]])),
        zoo_mod.Zoo.from_frames(MODELS, DATASETS, RECORDS, SCORES.assign(metric=["LOG_ME"] * 3 + ["H2"])),
        zoo_mod.Zoo.from_frames(MODELS.assign(params=[25e6, 86e6, 86e6, 2e6]), DATASETS, RECORDS, SCORES),
    ]
    fps = [z.fingerprint() for z in changed]
    assert fp not in fps and len(set(fps)) == len(fps)


def test_train_data_maps_names_vectorized(tmp_path):
    zoo = load_zoo(plain_zoo(tmp_path / "z"))
    fb = FeatureBuilder(text_encoder="hashing").fit(zoo)
    Y = fb.zoo_data(zoo).Y
    expected = np.full((4, 4), np.nan)
    for m, d, a in RECORDS.itertuples(index=False):
        expected[zoo.dataset_ids.index(d), zoo.model_ids.index(m)] = a
    np.testing.assert_array_equal(Y, expected)
    # records as plain strings, in another order, map the same way
    again = fb.zoo_data(zoo.with_records(zoo.records.astype({"model": object}).iloc[::-1]))
    np.testing.assert_array_equal(again.Y, expected)
    with pytest.raises(UnknownNameError, match="resnet5O"):
        fb.zoo_data(zoo.with_records(zoo.records.astype({"model": object}).assign(model="resnet5O")))


@pytest.mark.parametrize("chunk, block", [(1 << 21, 1 << 24), (2, 23)])  # also many chunks and pre-scan blocks
def test_plain_files_name_the_line_without_a_second_reader(tmp_path, monkeypatch, fast_calls, chunk, block):
    """Blank lines, rows of blank cells and ids the C reader takes for numbers: the C reader's table still
    knows each row's line, so a problem deep in a big file is named at once (not by reading it line by line)."""
    monkeypatch.setattr(zoo_mod, "_PLAIN_CHUNK", chunk)
    monkeypatch.setattr(zoo_mod, "_PLAIN_BLOCK", block)
    body = "model,dataset,accuracy\n\nresnet50,birds,0.71\n , , \n   \n007x,birds,0.5\r\n\t\n,,\nvit b/16,cars 196,{}\n"
    d = plain_zoo(tmp_path / "z", body.format("0.65"))
    assert len(load_zoo(d).records) == 3 and fast_calls == {"took": 2, "declined": 0}
    for bad, match in [("1.0000001", r"line 9: accuracy 1.0000001 is outside"), ("83%", r"line 9: accuracy '83%' is a percentage"),
                       ("inf", r"line 9: accuracy 'inf' is infinite"), ("", r"line 9: accuracy is empty or NaN")]:
        (d / "records.csv").write_text(body.format(bad))
        with pytest.raises(ZooError, match=match):
            load_zoo(d)
    assert fast_calls["declined"] == 0


def test_a_single_row_and_a_header_alone_through_the_c_reader(tmp_path, monkeypatch, fast_calls, caplog):
    import logging

    d = plain_zoo(tmp_path / "z", "model,dataset,accuracy\nresnet50,birds,0.71\n",
                  scores=SCORES.iloc[:0])
    (d / "scores.csv").write_text("model,dataset,metric,score,\n")  # (a header alone, one column without a name)
    with caplog.at_level(logging.INFO, logger="recsys"):
        zoo = load_zoo(d)
    assert fast_calls == {"took": 2, "declined": 0}
    assert len(zoo.records) == 1 and zoo.records["accuracy"].tolist() == [0.71]
    assert len(zoo.scores) == 0
    assert f"{d / 'scores.csv'}: ignoring 1 column(s) without a header name" in caplog.messages
    assert_same_zoo(zoo, load_careful(d, monkeypatch))
    assert {k: str(v) for k, v in zoo.scores.dtypes.items()} == {"model": "object", "dataset": "object",
                                                                 "metric": "object", "score": "float64"}


def test_a_short_row_of_blank_cells_is_skipped_and_an_unnamed_column_logged(tmp_path, monkeypatch, fast_calls,
                                                                            caplog):
    import logging

    d = plain_zoo(tmp_path / "z", RECORDS.to_csv(index=True) + ",\n")  # (an unnamed index column; a row ",")
    with caplog.at_level(logging.INFO, logger="recsys"):
        fast = load_zoo(d)
    assert fast_calls == {"took": 2, "declined": 0}
    assert len(fast.records) == 6
    assert_same_zoo(fast, load_careful(d, monkeypatch))
    assert f"{d / 'records.csv'}: ignoring 1 column(s) without a header name" in caplog.messages


ODD_BODIES = {
    "quoted cells": 'model,dataset,accuracy\n"resnet50",birds,0.71\nvit b/16,"birds",0.83\n',
    "a NUL byte": "model,dataset,accuracy\nresnet50,bi\x00rds,0.71\nvit b/16,birds,0.83\n",
    "a bare CR": "model,dataset,accuracy\nresnet50,birds,0.71\rvit b/16,birds,0.83\n",
    "a blank first line": "\nmodel,dataset,accuracy\nresnet50,birds,0.71\nvit b/16,birds,0.83\n",
    "a first line of spaces": "  \t\nmodel,dataset,accuracy\nresnet50,birds,0.71\n",
    "a first line of BOMs and commas": "\ufeff\ufeff,,\nmodel,dataset,accuracy\nresnet50,birds,0.71\n",
    "crlf and blank lines": "model,dataset,accuracy\r\nresnet50,birds,0.71\r\n\r\n  \r\n\t\r\nvit b/16,birds,0.83\r\n",
    "a short line of blank cells": "model,dataset,accuracy\nresnet50,birds,0.71\n,\n ,\nvit b/16,birds,0.83\n",
    "a one-cell line after a space": "model,dataset,accuracy\nresnet50,birds,0.71\n X\nvit b/16,birds,0.83\n",
    "a line of a space and a vertical tab": "model,dataset,accuracy\nresnet50,birds,0.71\n \x0b\nvit b/16,birds,0.83\n",
    "an extra column named with X": "model,dataset,accuracy,noteX\nresnet50,birds,0.71,a\nvit b/16,birds,0.83,b\n",
    "no final newline": "model,dataset,accuracy\nresnet50,birds,0.71\nvit b/16,birds,0.83",
    "only the header, without a newline": "model,dataset,accuracy",
    "an empty file": "",
}


def _outcome(load, d):
    try:
        zoo = load(d)
    except ZooError as exc:
        return str(exc)
    return zoo


@pytest.mark.parametrize("block", [1 << 24, 5], ids=["one block", "5-byte blocks"])
@pytest.mark.parametrize("bad", ["", "last", "first"], ids=["as is", "then a bad accuracy", "a bad accuracy first"])
@pytest.mark.parametrize("body", list(ODD_BODIES))
def test_odd_files_read_as_the_careful_reader_reads_them(tmp_path, monkeypatch, fast_calls, body, bad, block):
    """Whatever the C reader's pre-scan makes of a file (plain or not, blank lines, the header, its line numbers
    across blocks), the zoo, or the message naming the line, is the line-by-line reader's."""
    monkeypatch.setattr(zoo_mod, "_PLAIN_BLOCK", block)
    text, line = ODD_BODIES[body], "resnet50,cars 196,1.5\n"
    if bad == "last":
        text = text + ("\n" if text and not text.endswith(("\n", "\r")) else "") + line
    elif bad == "first":  # (after the header: then blank lines come after the line the message names)
        at = text.find("model,dataset,accuracy")
        at = text.find("\n", at) + 1 if at >= 0 and text.find("\n", at) >= 0 else len(text)
        text = text[:at] + line + text[at:]
    d = plain_zoo(tmp_path / "z", text)
    fast = _outcome(load_zoo, d)
    careful = _outcome(lambda p: load_careful(p, monkeypatch), d)
    if isinstance(careful, str):
        assert fast == careful
    else:
        assert not isinstance(fast, str), fast
        assert_same_zoo(fast, careful)
        pd.testing.assert_frame_equal(fast.records, careful.records)


@pytest.mark.parametrize("text", ["model,dataset,metric,score", "model,dataset,metric,score\n", "\ufeffmodel,dataset,metric,score\r\n"])
def test_a_scores_file_of_only_its_header_reads_as_no_scores(tmp_path, monkeypatch, fast_calls, text):
    d = plain_zoo(tmp_path / "z")
    (d / "scores.csv").write_text(text, encoding="utf-8")
    fast = load_zoo(d)
    assert fast_calls["took"] == 2 and len(fast.scores) == 0
    assert_same_zoo(fast, load_careful(d, monkeypatch))
