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
        with pytest.raises(ArtifactError, match=rf"^re-create model file {re.escape(repr(str(broken)))} with `recsys "
                                                rf"fit`: it has a broken entry for array 'c'; it is damaged"):
            read_artifact(broken, mmap=True)
        _, ok = read_artifact(path, mmap=True)  # (the file itself maps)
        assert len(ok["c"]) == 64


@pytest.mark.parametrize("old, new", [(b"'fortran_order':", b"'fortran_order'("), (b"{'descr'", b"{'''scr'")])
def test_a_mapped_member_whose_npy_header_does_not_parse_is_refused(tmp_path, old, new):
    """(Found by the flipped-byte property: numpy's header parser raised SyntaxError / TokenError through a lazy
    load.)"""
    from unittest import mock

    import recsys.artifact as artifact

    path = _stored(tmp_path, {"c": np.arange(64, dtype=np.float64)})
    data = path.read_bytes()
    assert data.count(old) == 1
    broken = tmp_path / "broken.npz"
    broken.write_bytes(data.replace(old, new[:len(old)]))
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        with pytest.raises(ArtifactError, match=rf"^re-create model file {re.escape(repr(str(broken)))} with `recsys "
                                                rf"fit`: it has a damaged \.npy header for array 'c' \((SyntaxError|"
                                                rf"TokenError)\); it is damaged"):
            read_artifact(broken, mmap=True)


def test_records_missing_from_a_model_file_are_named(tmp_path):
    from recsys.artifact import check_model_state

    meta = {"recommender": {"seed": 0, "level": 0.8}, "features": {}, "engine": {"params": {}},
            "data": {"model_ids": ["a"], "dataset_ids": ["d"]}}
    arrays = {"data.d": np.zeros(1, np.int32), "data.m": np.zeros(1, np.int32), "data.y": np.full(1, 0.5),
              "data.model_records": np.ones(1, np.int64)}
    check_model_state(meta, arrays, "m.npz")
    with pytest.raises(ArtifactError, match=r"^re-create model file 'm\.npz' with `recsys fit`: it lacks the recorded "
                                            r"accuracies \('data\.d', 'data\.m', 'data\.y'\); it is damaged"):
        check_model_state(meta, {k: v for k, v in arrays.items() if k != "data.y"}, "m.npz")
    for bad in ({"data.d": np.zeros(1)}, {"data.m": np.zeros(1)}, {"data.y": np.zeros(1, np.int64)},
                {"data.d": np.zeros((1, 1), np.int32)}, {"data.y": np.full(2, 0.5)}):
        with pytest.raises(ArtifactError, match=r"^re-create model file 'm\.npz' with `recsys fit`: it has recorded "
                                                r"accuracies of dtypes "):
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


# -- the rest of check_model_state's refusals, each with its whole message ------------------------------------


def _refusal(meta, arrays) -> str:
    from recsys.artifact import check_model_state

    with pytest.raises(ArtifactError) as err:
        check_model_state(meta, arrays, "m.npz")
    return str(err.value)


def _message(problem: str) -> str:
    return f"re-create model file 'm.npz' with `recsys fit`: it {problem}{_TAIL}"


@pytest.mark.parametrize("change, problem", [
    (lambda m, a: m["data"].pop("model_ids"), "has no list of model names"),
    (lambda m, a: m["data"].update(dataset_ids=[]), "has no list of dataset names"),
    (lambda m, a: m["data"].update(model_ids="ab"), "has no list of model names"),  # (a string is not a list)
    (lambda m, a: m["data"].update(model_ids=["a", 1]), "has no list of model names"),
    (lambda m, a: m["data"].update(model_ids=["a", "b", "b"]), "lists model 'b' twice (ids must be unique)"),
    (lambda m, a: m["recommender"].update(level="0.5"), "has interval level '0.5' (a number between 0 and 1)"),
    (lambda m, a: m["recommender"].update(seed=-1), "has seed -1 (seeds are integers in 0..4294967295)"),
    (lambda m, a: m["recommender"].update(seed=True), "has seed True (seeds are integers in 0..4294967295)"),
    (lambda m, a: a.update({"data.d": np.array([0, 1], np.int32)}), "has records outside its 1 datasets x 2 models"),
    (lambda m, a: a.update({"data.m": np.array([0, 2], np.int32)}), "has records outside its 1 datasets x 2 models"),
    (lambda m, a: a.update({"data.m": np.array([1, 1], np.int32)}),
     "has records out of order or repeated (one record per dataset and model)"),
    (lambda m, a: a.update({"data.m": np.array([1, 0], np.int32)}),
     "has records out of order or repeated (one record per dataset and model)"),
    (lambda m, a: a.update({"data.y": np.array([0.5, 1.5])}), "has recorded accuracies outside [0, 1]"),
    (lambda m, a: a.update({"data.y": np.array([-0.01, 0.5])}), "has recorded accuracies outside [0, 1]"),
    (lambda m, a: a.update({"data.y": np.array([np.nan, 0.5])}), "has recorded accuracies outside [0, 1]"),
    (lambda m, a: a.pop("data.model_records"),
     "has record counts per model ('data.model_records') that do not match its 2 models and 2 records"),
    (lambda m, a: a.update({"data.model_records": np.array([1, 1, 0])}),
     "has record counts per model ('data.model_records') that do not match its 2 models and 2 records"),
    (lambda m, a: a.update({"data.model_records": np.array([1.0, 1.0])}),
     "has record counts per model ('data.model_records') that do not match its 2 models and 2 records"),
    (lambda m, a: a.update({"data.model_records": np.array([-1, 3])}),
     "has record counts per model ('data.model_records') that do not match its 2 models and 2 records"),
    (lambda m, a: a.update({"data.model_records": np.array([1, 0])}),
     "has record counts per model ('data.model_records') that do not match its 2 models and 2 records"),
])
def test_check_model_state_names_each_broken_part(change, problem):
    meta, arrays = _state()
    change(meta, arrays)
    assert _refusal(meta, arrays) == _message(problem)


def test_check_model_state_takes_the_edges_of_what_is_allowed():
    from recsys.artifact import check_model_state

    meta, arrays = _state()
    meta["recommender"]["seed"] = 2 ** 32 - 1  # the largest seed
    meta["engine"]["params"]["seed"] = 64
    arrays["data.y"] = np.array([0.0, 1.0])  # accuracies 0 and 1 themselves
    check_model_state(meta, arrays, "m.npz")
    meta["data"]["model_ids"] = ["a", "b", "c"]  # a model without any record
    arrays["data.model_records"] = np.array([1, 1, 0])
    check_model_state(meta, arrays, "m.npz")
    one = {"data.d": np.zeros(1, np.int32), "data.m": np.ones(1, np.int32), "data.y": np.full(1, 0.5),
           "data.model_records": np.array([0, 1, 0])}
    check_model_state(meta, one, "m.npz")  # (a single record: nothing to be out of order)


# -- crafted zip members: what recsys does not write but reads (npy versions, Fortran order, extra fields) -------


def _rezip(src: Path, dst: Path, replace=(), meta=None, drop=(), extra=None, deflate=()) -> Path:
    """``src``'s members stored again into ``dst``: ``replace`` (name -> bytes), ``meta`` updated, ``drop`` left out,
    ``extra`` (name -> bytes) as a member's extra field."""
    replace = dict(replace)
    with zipfile.ZipFile(src) as zf, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
        for info in zf.infolist():
            if info.filename in drop:
                continue
            data = replace.get(info.filename, zf.read(info))
            if info.filename == "meta.json" and meta is not None:
                doc = json.loads(data)
                meta(doc)
                data = json.dumps(doc).encode()
            new = zipfile.ZipInfo(info.filename)
            new.compress_type = zipfile.ZIP_DEFLATED if info.filename in deflate else zipfile.ZIP_STORED
            if extra and info.filename in extra:
                new.extra = extra[info.filename]
            out.writestr(new, data)
    return dst


def _npy(arr, version=None, pad=0) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    data = buf.getvalue()
    if pad:  # a longer header (spaces before its newline), as the format allows
        major = data[6]
        size = 10 if major == 1 else 12
        hlen = int.from_bytes(data[8:size], "little")
        header = data[size:size + hlen].rstrip(b"\n") + b" " * pad + b"\n"
        data = data[:8] + len(header).to_bytes(size - 8, "little") + header + data[size + hlen:]
    return data


def _read_both(path):
    from unittest import mock

    import recsys.artifact as artifact

    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        return read_artifact(path, mmap=True)[1], read_artifact(path)[1]


def _refused(path) -> list[str]:
    from unittest import mock

    import recsys.artifact as artifact

    out = []
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        for mmap in (True, False):
            with pytest.raises(ArtifactError) as err:
                read_artifact(path, mmap=mmap)
            out.append(str(err.value))
    return out


C = np.arange(24, dtype=np.float64).reshape(4, 6)


def test_a_fortran_ordered_member_reads_as_written(tmp_path):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    path = _rezip(src, tmp_path / "f.npz", {"c.npy": _npy(np.asfortranarray(C))})
    for got in _read_both(path):
        np.testing.assert_array_equal(got["c"], C)
    mapped, _ = _read_both(path)
    assert isinstance(mapped["c"], np.memmap) and mapped["c"].flags.f_contiguous
    assert mapped["c"].member.name == "c"


@pytest.mark.parametrize("version, pad", [((1, 0), 20_000), ((2, 0), 0), ((2, 0), 20_000)])
def test_npy_headers_of_versions_1_and_2_up_to_64_kib_read(tmp_path, version, pad):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    path = _rezip(src, tmp_path / "v.npz", {"c.npy": _npy(C, version, pad)})
    for got in _read_both(path):
        np.testing.assert_array_equal(got["c"], C)


def test_npy_header_refusals_name_the_array(tmp_path):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    what = "re-create model file {!r} with `recsys fit`: it {}; it is damaged or was not written by recsys"
    v3 = _rezip(src, tmp_path / "v3.npz", {"c.npy": _npy(C, (3, 0))})
    assert _refused(v3) == [what.format(str(v3), "stores array 'c' in .npy format version (3, 0)")] * 2
    shape = _rezip(src, tmp_path / "shape.npz", {"c.npy": _npy(C.reshape(6, 4))})
    assert _refused(shape) == [what.format(str(shape), "stores array 'c' with shape (6, 4) and dtype <f8 in its .npy "
                                                       "header, but meta.json declares (4, 6) and <f8")] * 2
    longer = _rezip(src, tmp_path / "longer.npz", {"c.npy": _npy(C) + b"\0" * 8})
    assert _refused(longer) == [what.format(str(longer), "stores array 'c' in 328 bytes, but its header and shape "
                                                         "take 320")] * 2


def test_a_member_with_a_long_extra_field_maps(tmp_path):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    field = b"\xfe\xca" + (40_000).to_bytes(2, "little") + b"\0" * 40_000  # (more than a signed 16-bit length)
    path = _rezip(src, tmp_path / "x.npz", extra={"c.npy": field})
    mapped, eager = _read_both(path)
    assert isinstance(mapped["c"], np.memmap)
    np.testing.assert_array_equal(mapped["c"], C)
    np.testing.assert_array_equal(eager["c"], C)


def _patch_directory(path: Path, name: str, offset: int, value: bytes) -> None:
    """Write ``value`` at ``offset`` of member ``name``'s entry in the zip directory (its data left as it is)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        n_name = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + n_name] == name.encode():
            data[at + offset:at + offset + len(value)] = value
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def _lie_about_size(path: Path, name: str, size: int) -> None:
    """Make the zip directory say that member ``name`` holds ``size`` bytes."""
    _patch_directory(path, name, 20, size.to_bytes(4, "little") * 2)


def test_a_mapped_member_that_runs_past_the_end_of_the_file_is_refused(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    big = np.arange(10_000, dtype=np.float64)
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": big})
    short = _npy(big)[:-79_000]  # (its header declares 10,000 values; 125 are left)
    path = _rezip(src, tmp_path / "cut.npz", {"c.npy": short})
    _lie_about_size(path, "c.npy", len(_npy(big)))
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        with pytest.raises(ArtifactError) as err:
            read_artifact(path, mmap=True)
    assert str(err.value) == (f"re-create model file {str(path)!r} with `recsys fit`: it has a truncated array 'c'; "
                              f"it is damaged or was not written by recsys")


# -- aliases (format 3: an array stored once under two names) ---------------------------------------------------


def _aliased(tmp_path, aliases, declare=None):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"a": C, "b": C, "c": C, "v": np.zeros(3)})

    def meta(doc):
        doc["aliases"] = aliases
        doc["arrays"].update(declare or {})

    return _rezip(src, tmp_path / "alias.npz", meta=meta, drop=("b.npy", "c.npy"))


def test_aliases_read_as_their_target(tmp_path):
    for got in _read_both(_aliased(tmp_path, {"b": "a", "c": "a"})):
        assert sorted(got) == ["a", "b", "c", "v"]  # (the arrays declared after an alias too)
        assert got["b"] is got["a"] and got["c"] is got["a"]
        np.testing.assert_array_equal(got["a"], C)


@pytest.mark.parametrize("aliases, problem", [
    ([["b", "a"]], "lists its aliases in a malformed way"),
    ({"b": "a", "c": "b"}, "has a broken alias 'c' -> 'b'"),  # (an alias of an alias)
    ({"b": "a", "c": "zz"}, "has a broken alias 'c' -> 'zz'"),  # (the target is not declared)
    ({"b": "a", "c": ["a"]}, "has a broken alias 'c' -> ['a']"),  # (the target is not a name)
    ({"b": "a", "c": "a", "zz": "a"}, "has a broken alias 'zz' -> 'a'"),  # (the alias is not declared)
    ({"b": "a", "c": "v"}, "has a broken alias 'c' -> 'v'"),  # (another shape)
])
def test_broken_aliases_are_refused_in_one_line(tmp_path, aliases, problem):
    path = _aliased(tmp_path, aliases)
    want = f"re-create model file {str(path)!r} with `recsys fit`: it {problem}; it is damaged or was not written " \
           f"by recsys"
    assert _refused(path) == [want, want]


# -- what meta.json declares -----------------------------------------------------------------------------------


def _declaring(tmp_path, arrays, **more):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})

    def meta(doc):
        doc["arrays"] = arrays
        doc.update(more)

    return _rezip(src, tmp_path / "declared.npz", meta=meta, drop=("c.npy",))


@pytest.mark.parametrize("arrays, problem", [
    (["c"], "declares its arrays in a malformed list"),
    ({"a/b": {"shape": [2], "dtype": "<f8"}}, "declares array 'a/b' in a malformed way"),
    ({"a": [2]}, "declares array 'a' in a malformed way"),
    ({"a": {"shape": "2", "dtype": "<f8"}}, "declares array 'a' with shape '2'"),
    ({"a": {"shape": [4, -6], "dtype": "<f8"}}, "declares array 'a' with shape [4, -6]"),
    ({"a": {"shape": [4.5], "dtype": "<f8"}}, "declares array 'a' with shape [4.5]"),
    ({"a": {"shape": [True, 6], "dtype": "<f8"}}, "declares array 'a' with shape [True, 6]"),
    ({"a": {"shape": [1] * 33, "dtype": "<f8"}}, f"declares array 'a' with shape {[1] * 33}"),
    ({"a": {"shape": [2], "dtype": "<U4"}}, "declares array 'a' of dtype '<U4' (model files hold booleans, integers "
                                            "and floats)"),
])
def test_malformed_declarations_are_refused_in_one_line(tmp_path, arrays, problem):
    path = _declaring(tmp_path, arrays)
    want = f"re-create model file {str(path)!r} with `recsys fit`: it {problem}; it is damaged or was not written " \
           f"by recsys"
    assert _refused(path) == [want, want]


def test_a_declaration_of_32_dimensions_is_read(tmp_path):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": np.arange(2.0).reshape([2] + [1] * 31)})
    for got in _read_both(src):
        assert got["c"].shape == (2,) + (1,) * 31


def test_the_arrays_declared_are_limited_by_the_ids_listed(tmp_path):
    """At most max(128 MiB, 64 bytes x ids^2), the ids counted in every list under a key ending in ``_ids``, nested
    in mappings and lists (here 1,500 + 600 + 100 = 2,200 ids: 309,760,000 bytes)."""
    ids = {"data": {"model_ids": [f"m{i}" for i in range(1500)], "dataset_ids": [f"d{i}" for i in range(600)],
                    "ids": list(range(50)), "n_ids": 7},
           "engine": {"parts": [{"stage_ids": [f"s{i}" for i in range(100)]}, "x"]}}
    over = _declaring(tmp_path, {"a": {"shape": [38_720_001], "dtype": "<f8"}}, **ids)
    want = (f"re-create model file {str(over)!r} with `recsys fit`: it declares 309,760,008 bytes of arrays for 2200 "
            f"ids (at most 309,760,000 are read); it is damaged or was not written by recsys")
    assert _refused(over) == [want, want]
    at = _declaring(tmp_path, {"a": {"shape": [38_720_000], "dtype": "<f8"}}, **ids)  # (the budget itself: declared)
    want = f"re-create model file {str(at)!r} with `recsys fit`: it lacks array 'a'; it is damaged or was not " \
           f"written by recsys"
    assert _refused(at) == [want, want]


def test_the_stored_size_of_a_member_is_checked_against_its_declaration(tmp_path):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    what = "re-create model file {!r} with `recsys fit`: it {}; it is damaged or was not written by recsys"
    small = _npy(C[:1])
    short = _rezip(src, tmp_path / "short.npz", {"c.npy": small})
    assert _refused(short) == [what.format(str(short), f"stores array 'c' in {len(small):,} bytes, but its declared "
                                                       f"shape [4, 6] (<f8) takes 192")] * 2
    bare = _rezip(src, tmp_path / "bare.npz", {"c.npy": C.tobytes()})  # (the values without their .npy header)
    for got in _refused(bare):
        assert got.startswith(f"re-create model file {str(bare)!r} with `recsys fit`: it is damaged or truncated "
                              f"(ValueError: ")
    head = 65_536 - (len(_npy(C)) - C.nbytes)  # (a .npy header of 64 KiB exactly: the most read)
    at = _rezip(src, tmp_path / "at.npz", {"c.npy": _npy(C, (1, 0), head)})
    for got in _read_both(at):
        np.testing.assert_array_equal(got["c"], C)
    over = _rezip(src, tmp_path / "over.npz", {"c.npy": _npy(C, (1, 0), head + 1)})
    assert _refused(over) == [what.format(str(over), "stores array 'c' in 65,729 bytes, but its declared shape [4, 6] "
                                                     "(<f8) takes 192")] * 2


def test_only_stored_members_from_the_threshold_on_are_mapped(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    arrays = {"at": np.arange(8, dtype=np.float64), "below": np.arange(7, dtype=np.float64), "big": C, "zipped": C}
    src = _stored(tmp_path, arrays)
    path = _rezip(src, tmp_path / "z.npz", deflate=("zipped.npy",))
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        _, mapped = read_artifact(path, mmap=True)
        _, eager = read_artifact(path)
    assert {n for n, a in mapped.items() if isinstance(a, np.memmap)} == {"at", "big"}
    assert not any(isinstance(a, np.memmap) for a in eager.values())
    for got in (mapped, eager):
        for name, arr in arrays.items():
            np.testing.assert_array_equal(got[name], arr)


def test_meta_json_is_read_up_to_its_limit(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    path = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    with zipfile.ZipFile(path) as zf:
        size = zf.getinfo("meta.json").file_size
    with mock.patch.object(artifact, "MAX_META_BYTES", size):
        np.testing.assert_array_equal(read_artifact(path)[1]["c"], C)
    with mock.patch.object(artifact, "MAX_META_BYTES", size - 1):
        with pytest.raises(ArtifactError) as err:
            read_artifact(path)
    assert str(err.value) == (f"re-create model file {str(path)!r} with `recsys fit`: it has a meta.json of {size:,} "
                              f"bytes (at most {size - 1:,} are read); it is damaged or was not written by recsys")


def test_a_mapped_member_that_ends_with_the_file_maps_and_its_checksum_refuses_it(tmp_path):
    """The zip directory says the member runs to the last byte of the file (over the directory itself): it maps
    (no byte is missing), and the checksum checked before the first answer refuses it."""
    from unittest import mock

    import recsys.artifact as artifact
    from recsys.artifact import verify_mapped

    big = np.arange(10_000, dtype=np.float64)
    whole = _npy(big)
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": big})
    path = tmp_path / "end.npz"
    keep = 1_000
    for _ in range(2):  # (the second pass: the data cut so that the declared bytes end where the file does)
        _rezip(src, path, {"c.npy": whole[:128 + keep]})
        _lie_about_size(path, "c.npy", len(whole))
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("c.npy")
        data_start = info.header_offset + 30 + len("c.npy") + 128
        keep += data_start + big.nbytes - path.stat().st_size
    assert data_start + big.nbytes == path.stat().st_size
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 64):
        _, got = read_artifact(path, mmap=True)
    assert isinstance(got["c"], np.memmap) and got["c"].shape == (10_000,)
    with pytest.raises(ArtifactError, match=r"it does not match the checksum of array 'c' \(its bytes changed after "
                                            r"it was written\)"):
        verify_mapped(got, path)


# -- read_artifact's refusals before and around the zip, each with its whole message ------------------------------


def _damage(path, problem):
    return f"re-create model file {str(path)!r} with `recsys fit`: it {problem}; it is damaged or was not written by " \
           f"recsys"


def test_paths_that_are_not_a_model_file_are_refused_in_one_line(tmp_path):
    import os
    from unittest import mock

    import recsys.artifact as artifact

    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "gone.npz")
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop)
    long = tmp_path / ("x" * 300 + ".npz")
    cases = [(dangling, f"point {str(dangling)!r} to a model file, or give one: it is a symlink to "
                        f"{str(tmp_path / 'gone.npz')!r}, which does not exist"),
             (loop, f"give a model file that opens: model file {str(loop)!r} cannot be opened (Too many levels of "
                    f"symbolic links: a symlink loop)"),
             (long, f"give a model file that opens: model file {str(long)!r} cannot be opened (File name too long)"),
             (tmp_path, f"give the file written by `recsys fit`: model file {str(tmp_path)!r} is a directory")]
    for path, want in cases:
        with pytest.raises(ArtifactError) as err:
            read_artifact(path)
        assert str(err.value) == want
    path = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    with mock.patch.object(artifact, "open", side_effect=PermissionError(13, os.strerror(13)), create=True):
        with pytest.raises(ArtifactError) as err:
            read_artifact(path)
    assert str(err.value) == f"check the permissions of model file {str(path)!r}: it cannot be read (Permission denied)"


def test_what_goes_wrong_inside_the_zip_is_one_line(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    path = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    with mock.patch.object(artifact, "_check_directory", side_effect=EOFError()):
        with pytest.raises(ArtifactError) as err:
            read_artifact(path)
    assert str(err.value) == f"re-create model file {str(path)!r} with `recsys fit`: it is damaged or truncated " \
                             f"(EOFError: )"
    with mock.patch.object(artifact.np, "empty", side_effect=MemoryError()):
        with pytest.raises(ArtifactError) as err:
            read_artifact(path)
    assert str(err.value) == _damage(path, "needs more memory than this machine has (recsys did not write it for "
                                           "this machine)")


def test_the_members_of_the_zip_are_checked(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C, "d": np.arange(3.0)})
    with zipfile.ZipFile(src) as zf:
        n = len(zf.infolist())
    with mock.patch.object(artifact, "MAX_MEMBERS", n):
        np.testing.assert_array_equal(read_artifact(src)[1]["c"], C)  # (at the limit: read)
    with mock.patch.object(artifact, "MAX_MEMBERS", n - 1):
        with pytest.raises(ArtifactError) as err:
            read_artifact(src)
    assert str(err.value) == _damage(src, f"lists {n} members (a model file has at most {n - 1})")

    def crafted(name, flag_bits=None, **info):
        out = tmp_path / name
        with zipfile.ZipFile(src) as zf, zipfile.ZipFile(out, "w") as dst:
            for member in zf.infolist():
                new = zipfile.ZipInfo(member.filename)
                new.compress_type = zipfile.ZIP_DEFLATED
                if member.filename == "c.npy":
                    for key, value in info.items():
                        setattr(new, key, value)
                dst.writestr(new, zf.read(member))
        if flag_bits is not None:  # (zipfile writes its own flags: set in the directory)
            _patch_directory(out, "c.npy", 8, flag_bits.to_bytes(2, "little"))
        return out

    option = crafted("option.npz", flag_bits=0x2)  # (deflate's "maximum compression" option bit)
    with zipfile.ZipFile(option) as zf:
        assert zf.getinfo("c.npy").flag_bits == 0x2
    np.testing.assert_array_equal(read_artifact(option)[1]["c"], C)
    locked = crafted("locked.npz", flag_bits=0x1)
    with pytest.raises(ArtifactError) as err:
        read_artifact(locked)
    assert str(err.value) == _damage(locked, "has an encrypted member 'c.npy' (model files are never encrypted)")
    bz = crafted("bz.npz", compress_type=zipfile.ZIP_BZIP2)
    with pytest.raises(ArtifactError) as err:
        read_artifact(bz)
    assert str(err.value) == _damage(bz, "compresses member 'c.npy' with method 12 (model files use deflate or none)")
    twice = tmp_path / "twice.npz"
    with zipfile.ZipFile(src) as zf, zipfile.ZipFile(twice, "w") as dst:
        for member in zf.infolist():
            dst.writestr(member.filename, zf.read(member))
        with pytest.warns(UserWarning, match="Duplicate name: 'd.npy'"):
            dst.writestr("d.npy", zf.read("d.npy"))
    with pytest.raises(ArtifactError) as err:
        read_artifact(twice)
    assert str(err.value) == _damage(twice, "holds member 'd.npy' twice")


def test_a_member_whose_bytes_changed_is_named_by_its_checksum(tmp_path):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    path = _rezip(src, tmp_path / "flipped.npz")
    data = bytearray(path.read_bytes())
    at = data.find(_npy(C)) + len(_npy(C)) - 1
    data[at] ^= 1  # (the zip directory keeps the checksum of the bytes as written)
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as err:
        read_artifact(path)
    assert str(err.value) == _damage(path, "does not match the checksum of array 'c' (its bytes changed after it was "
                                           "written)")


@pytest.mark.parametrize("meta, problem", [
    (b"{oops", "has an unreadable meta.json (Expecting property name enclosed in double quotes: line 1 column 2 "
               "(char 1))"),
    (b"[" * 200_000 + b"]" * 200_000, "has a meta.json nested too deeply to read"),
    (json.dumps({"format": FORMAT, "format_version": "x" * 60}).encode(),
     f"has format version {json.dumps('x' * 60)[:40]} (recsys writes an integer, {FORMAT_VERSION} for this version)"),
])
def test_an_unreadable_meta_json_is_refused_in_one_line(tmp_path, meta, problem):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    path = _rezip(src, tmp_path / "meta.npz", {"meta.json": meta})
    with pytest.raises(ArtifactError) as err:
        read_artifact(path)
    assert str(err.value) == _damage(path, problem)


def test_the_format_versions_read_and_what_to_do_outside_them(tmp_path):
    from recsys.artifact import MIN_FORMAT_VERSION, __version__

    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})

    def versioned(version):
        return _rezip(src, tmp_path / f"v{version}.npz", meta=lambda doc: doc.update(format_version=version))

    assert read_artifact(versioned(MIN_FORMAT_VERSION))[0]["format_version"] == MIN_FORMAT_VERSION
    for version, message in (
            (MIN_FORMAT_VERSION - 1, "re-fit the model with `recsys fit`: model file {path!r} has format version "
                                     f"{MIN_FORMAT_VERSION - 1}, written by an older recsys; this recsys {__version__} "
                                     f"reads versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}"),
            (FORMAT_VERSION + 1, "upgrade recsys, or re-fit the model with this one: model file {path!r} has format "
                                 f"version {FORMAT_VERSION + 1}; this recsys {__version__} reads versions up to "
                                 f"{FORMAT_VERSION}")):
        path = versioned(version)
        with pytest.raises(ArtifactError) as err:
            read_artifact(path)
        assert str(err.value) == message.format(path=str(path))


def test_arrays_are_read_a_chunk_at_a_time_and_infinite_values_refused(tmp_path):
    from unittest import mock

    import recsys.artifact as artifact

    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C, "e": np.zeros((0, 3))})
    with mock.patch.object(artifact, "_CHUNK", 64):  # (192 bytes in three reads)
        _, got = read_artifact(src)
    np.testing.assert_array_equal(got["c"], C)
    assert got["e"].shape == (0, 3)
    inf = C.copy()
    inf[2, 3] = -np.inf
    path = _rezip(src, tmp_path / "inf.npz", {"c.npy": _npy(inf)})
    with pytest.raises(ArtifactError) as err:
        read_artifact(path)
    assert str(err.value) == _damage(path, "holds infinite values in array 'c'")


@pytest.mark.parametrize("meta, found", [({"format": "other/1"}, "'other/1'"), ({"format_version": 4}, "None"),
                                         ([1, 2], "None")], ids=["another format", "no format", "not an object"])
def test_a_meta_json_of_another_format_is_not_a_recsys_model(tmp_path, meta, found):
    src = write_artifact(tmp_path / "m.npz", {"n_ids": 1}, {"c": C})
    path = _rezip(src, tmp_path / "other.npz", {"meta.json": json.dumps(meta).encode()})
    with pytest.raises(ArtifactError) as err:
        read_artifact(path)
    assert str(err.value) == (f"give a model file written by `recsys fit`: model file {str(path)!r} is not a recsys "
                              f"model (format {found})")


def test_the_arrays_declared_count_together_against_the_limit(tmp_path):
    """Two arrays of 70 MiB each: each under the 128 MiB floor, together over it."""
    each = 70 << 20
    over = _declaring(tmp_path, {"a": {"shape": [each // 8], "dtype": "<f8"}, "b": {"shape": [each // 8], "dtype": "<f8"}})
    want = _damage(over, f"declares {2 * each:,} bytes of arrays for 0 ids (at most {128 << 20:,} are read)")
    assert _refused(over) == [want, want]


def test_check_model_state_wants_each_of_its_sections():
    for section in ("recommender", "features", "data", "engine"):
        meta, arrays = _state()
        meta.pop(section)
        assert _refusal(meta, arrays) == _message("lacks its recommender, data, features or engine section")


def test_a_non_finite_number_among_names_in_meta_json_is_found_and_placed():
    """Lists of names (the ids) are passed over whole; a list that mixes a number in is read item by item, so
    a NaN or an infinity among names is still refused, with where it is."""
    from recsys.artifact import check_finite

    meta = {"recommender": {}, "features": {}, "engine": {},
            "data": {"dataset_ids": [f"d{i}" for i in range(1000)], "columns": ["a", "b", float("nan")]}}
    with pytest.raises(ArtifactError, match=r"holds nan in meta.json \(data\.columns\.2\)"):
        check_finite(meta, {}, "m.recsys", set())
    meta["data"]["columns"] = ["a", [float("-inf")]]
    with pytest.raises(ArtifactError, match=r"holds -inf in meta.json \(data\.columns\.1\.0\)"):
        check_finite(meta, {}, "m.recsys", set())
    meta["data"]["columns"] = ["a", "b"]
    check_finite(meta, {}, "m.recsys", set())
