"""Model files written and read directly (issue 21: recsys/artifact.py's mutants that survived the other tests).

The sidecar's values of numpy types, names refused with their message, checking a location before a fit, the
layout of a format-3 side, and the limits read from the zip directory.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recsys.artifact import (FORMAT, FORMAT_VERSION, _legacy_layout, check_writable, read_artifact,
                             write_artifact)
from recsys.errors import ArtifactError


def test_numpy_values_in_the_sidecar_are_written_as_json(tmp_path):
    meta = {"n": np.int64(3), "x": np.float32(0.5), "flag": np.bool_(True), "small": np.arange(3),
            "path": Path("a/b"), "edge": np.zeros(64)}
    back, _ = read_artifact(write_artifact(tmp_path / "m.npz", meta, {"a": np.zeros(2)}))
    assert back["n"] == 3 and type(back["n"]) is int
    assert back["x"] == 0.5 and back["flag"] is True and back["small"] == [0, 1, 2]
    assert back["path"] == "a/b" and back["edge"] == [0.0] * 64
    assert back["format"] == FORMAT and back["format_version"] == FORMAT_VERSION
    assert back["arrays"] == {"a": {"shape": [2], "dtype": "<f8"}}


@pytest.mark.parametrize("value, name", [(np.zeros(65), "ndarray"), (object(), "object"), ({1, 2}, "set")])
def test_values_json_cannot_hold_are_refused(tmp_path, value, name):
    with pytest.raises(TypeError, match=f"^{name} is not JSON serializable$"):
        write_artifact(tmp_path / "m.npz", {"v": value}, {})
    assert not (tmp_path / "m.npz").exists()


def test_the_sidecar_is_sorted_json(tmp_path):
    path = write_artifact(tmp_path / "m.npz", {"b": 1, "a": {"z": 2, "y": 3}}, {})
    with zipfile.ZipFile(path) as zf:
        raw = zf.read("meta.json").decode()
    doc = json.loads(raw)
    assert list(doc) == sorted(doc) and list(doc["a"]) == ["y", "z"]


@pytest.mark.parametrize("name", ["a b", "../up", "", "x/y", "é"])
def test_array_names_outside_the_safe_set_are_refused(tmp_path, name):
    with pytest.raises(ArtifactError, match=f"^{re.escape(f'array name {name!r} is not allowed in a model file')}$"):
        write_artifact(tmp_path / "m.npz", {}, {name: np.zeros(1)})


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ArtifactError, match="array 'o' has an object dtype; model files hold numeric arrays only"):
        write_artifact(tmp_path / "m.npz", {}, {"o": np.array([None])})


def test_check_writable_tells_before_a_fit(tmp_path):
    target = tmp_path / "m.npz"
    assert check_writable(target) == target and not target.exists() and not list(tmp_path.iterdir())
    assert check_writable(str(target)) == target
    with pytest.raises(ArtifactError, match=r"^give a file name such as '.*model\.npz': cannot write model file '.*', "
                                            r"a directory$"):
        check_writable(tmp_path)
    with pytest.raises(ArtifactError, match=r"^choose another location with --out: cannot write model file "
                                            r"'/dev/null', which exists and is a character device \(recsys only "
                                            r"replaces regular files\)$"):
        check_writable("/dev/null")


def test_legacy_layout_of_a_side_with_and_without_parts():
    assert _legacy_layout({}, {}, "p.") == {"categorical": [], "numeric": [], "text_dims": []}
    spec = {"categorical": [["c", ["a", "b", "c"]]], "numeric": [{"column": "x", "missing": True}, {"column": "y"}],
            "text": ["t", "u"]}
    arrays = {"p.text0_components": np.zeros((3, 2)), "p.text1_components": np.zeros((5, 2))}
    assert _legacy_layout(spec, arrays, "p.") == {"categorical": [["c", 0, 3]], "numeric": [["x", 3, 5], ["y", 5, 6]],
                                                  "text_dims": [["t", 6, 9], ["u", 9, 14]]}
    only_text = _legacy_layout({"text": ["t"]}, {"p.text0_components": np.zeros((2, 1))}, "p.")
    assert only_text == {"categorical": [], "numeric": [], "text_dims": [["t", 0, 2]]}
    only_numeric = _legacy_layout({"numeric": [{"column": "x"}]}, {}, "p.")
    assert only_numeric == {"categorical": [], "numeric": [["x", 0, 1]], "text_dims": []}
    only_categorical = _legacy_layout({"categorical": [["c", ["a"]]]}, {}, "p.")
    assert only_categorical == {"categorical": [["c", 0, 1]], "numeric": [], "text_dims": []}


# -- memory-mapped members (read_artifact(mmap=True)) ---------------------------------------------------------


def _stored(tmp_path, arrays, threshold=64):
    from unittest import mock

    import recsys.artifact as artifact

    with mock.patch.object(artifact, "MMAP_MIN_BYTES", threshold):
        return write_artifact(tmp_path / "m.npz", {"n_ids": 1}, arrays)


def test_mapped_members_read_as_they_were_written(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    c = np.arange(24, dtype=np.float64).reshape(4, 6)
    arrays = {"c": c, "f": np.asfortranarray(c), "i": np.arange(40, dtype=np.int32), "small": np.arange(3)}
    path = _stored(tmp_path, arrays)
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        _, got = read_artifact(path, mmap=True)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(got[name], arr)
        assert got[name].dtype == arr.dtype
    assert isinstance(got["c"], np.memmap) and isinstance(got["f"], np.memmap) and not isinstance(got["small"], np.memmap)
    assert got["c"].flags.c_contiguous and not got["c"].flags.writeable  # (written C-ordered, mapped read-only)


def test_a_mapped_member_with_a_broken_local_header_or_cut_short_is_refused(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    path = _stored(tmp_path, {"c": np.arange(64, dtype=np.float64)})
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("c.npy")
    data = bytearray(path.read_bytes())
    broken = tmp_path / "broken.npz"
    broken.write_bytes(bytes(data[:info.header_offset]) + b"XX\x03\x04" + bytes(data[info.header_offset + 4:]))
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        with pytest.raises(ArtifactError, match=rf"^re-create model file {re.escape(repr(str(broken)))} with `recsys fit`: it has a broken "
                                                rf"entry for array 'c'; it is damaged"):
            read_artifact(broken, mmap=True)
        _, ok = read_artifact(path, mmap=True)  # (the file itself maps)
        assert len(ok["c"]) == 64


def test_records_missing_from_a_model_file_are_named(tmp_path):
    from recsys.artifact import check_model_state

    meta = {"recommender": {"seed": 0, "level": 0.8}, "features": {}, "engine": {"params": {}},
            "data": {"model_ids": ["a"], "dataset_ids": ["d"]}}
    arrays = {"data.d": np.zeros(1, np.int32), "data.m": np.zeros(1, np.int32), "data.y": np.full(1, 0.5),
              "data.model_records": np.ones(1, np.int64)}
    check_model_state(meta, arrays, "m.npz")
    with pytest.raises(ArtifactError, match=r"^re-create model file 'm\.npz' with `recsys fit`: it lacks the recorded accuracies \('data\.d', "
                                            r"'data\.m', 'data\.y'\); it is damaged"):
        check_model_state(meta, {k: v for k, v in arrays.items() if k != "data.y"}, "m.npz")
    for bad in ({"data.d": np.zeros(1)}, {"data.m": np.zeros(1)}, {"data.y": np.zeros(1, np.int64)},
                {"data.d": np.zeros((1, 1), np.int32)}, {"data.y": np.full(2, 0.5)}):
        with pytest.raises(ArtifactError, match=r"^re-create model file 'm\.npz' with `recsys fit`: it has recorded accuracies of dtypes "):
            check_model_state(meta, {**arrays, **bad}, "m.npz")


def _state():
    meta = {"recommender": {"seed": 0, "level": 0.8}, "features": {}, "engine": {"params": {}},
            "data": {"model_ids": ["a", "b"], "dataset_ids": ["d"]}}
    arrays = {"data.d": np.zeros(2, np.int32), "data.m": np.arange(2, dtype=np.int32), "data.y": np.full(2, 0.5),
              "data.model_records": np.ones(2, np.int64)}
    return meta, arrays


_TAIL = "; it is damaged or was not written by recsys"


@pytest.mark.parametrize("change, problem", [
    (lambda m, a: m.pop("engine"), "lacks its recommender, data, features or engine section"),
    (lambda m, a: m.update(data=[]), "lacks its recommender, data, features or engine section"),
    (lambda m, a: m["recommender"].update(seed="x"), "has seed 'x' (seeds are integers in 0..4294967295)"),
    (lambda m, a: m["engine"]["params"].update(seed=2 ** 32), "has engine seed 4294967296 (seeds are integers in "
                                                              "0..4294967295)"),
    (lambda m, a: m["recommender"].update(level=0), "has interval level 0 (a number between 0 and 1)"),
    (lambda m, a: m["recommender"].update(level=1), "has interval level 1 (a number between 0 and 1)"),
    (lambda m, a: m["recommender"].update(level=1.5), "has interval level 1.5 (a number between 0 and 1)"),
    (lambda m, a: m["recommender"].update(level=True), "has interval level True (a number between 0 and 1)"),
    (lambda m, a: a.update({"data.scores.0": np.zeros((2, 2))}), "has scores 'data.scores.0' of shape (2, 2), but "
                                                                "lists 1 datasets x 2 models"),
    (lambda m, a: a.update({"data.models.matrix": np.zeros((3, 4))}), "has 'data.models.matrix' of shape (3, 4), but "
                                                                     "lists 2 models"),
    (lambda m, a: a.update({"data.datasets.matrix": np.zeros((2, 4))}), "has 'data.datasets.matrix' of shape (2, 4), "
                                                                       "but lists 1 datasets"),
    (lambda m, a: a.update({"data.datasets.txt0": np.zeros(1)}), "has 'data.datasets.txt0' of shape (1,), but lists "
                                                                "1 datasets"),
])
def test_check_model_state_names_what_disagrees(change, problem):
    from recsys.artifact import check_model_state

    meta, arrays = _state()
    check_model_state(meta, arrays, "m.npz")  # (the state as it is: fine)
    ok = {"data.scores.0": np.zeros((1, 2)), "data.models.matrix": np.zeros((2, 4)),
          "data.datasets.matrix": np.zeros((1, 4)), "data.datasets.txt0": np.zeros((1, 3))}
    check_model_state(meta, {**arrays, **ok}, "m.npz")
    change(meta, arrays)
    with pytest.raises(ArtifactError) as err:
        check_model_state(meta, arrays, "m.npz")
    assert str(err.value) == f"re-create model file 'm.npz' with `recsys fit`: it {problem}{_TAIL}"
