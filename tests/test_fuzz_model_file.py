"""Any single byte flipped in a model file (issue 21): refused in one line, or the answer unchanged.

The model (the example zoo, calibrated, hashing encoder) is saved once; each example changes one byte of the
file (anywhere, or in one of the regions that matter: the zip directory, the local headers, a stored array's
payload), loads it eagerly or lazily (memory-mapped, as ``recsys topk`` / ``predict`` do) and asks for every
dataset's answer. Either :class:`~recsys.errors.ArtifactError` says in one line that the file is damaged (at
load or at the answer), or the answer is the original one, bit for bit. Any other exception fails.

For the lazy loads the arrays are stored uncompressed and mapped from 256 bytes on (instead of 1 MiB), so that
a small file has the layout of a large one.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import recsys
from recsys import artifact
from recsys.errors import ArtifactError, RecsysError

from conftest import ROOT

EXAMPLE = ROOT / "data" / "example-zoo"
SMALL_MAP = 256  # bytes: arrays from this size on are stored uncompressed and memory-mapped (lazy loads)


def _answer(path: Path, lazy: bool) -> dict[str, np.ndarray]:
    rec = recsys.Recommender.load(path, lazy=lazy)
    return rec.predict_columns()


def _same(a: dict, b: dict) -> bool:
    if list(a) != list(b):
        return False
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape:
            return False
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            if not np.array_equal(x.astype(float), y.astype(float), equal_nan=True):
                return False
        elif not (x == y).all():
            return False
    return True


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{"eager"/"lazy": (file bytes, the original answer, the payload ranges of the arrays a lazy load maps)}."""
    from recsys.zoo import load_zoo

    d = tmp_path_factory.mktemp("flip")
    rec = recsys.Recommender(seed=0, text_encoder="hashing").fit(load_zoo(EXAMPLE))
    out = {}
    for kind, threshold in (("eager", artifact.MMAP_MIN_BYTES), ("lazy", SMALL_MAP)):
        path = d / f"{kind}.npz"
        with mock.patch.object(artifact, "MMAP_MIN_BYTES", threshold):
            rec.save(path)
            answer = _answer(path, lazy=kind == "lazy")
        data = path.read_bytes()
        mapped = []
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.compress_type == zipfile.ZIP_STORED and info.file_size >= threshold:
                    n_name, n_extra = np.frombuffer(data[info.header_offset + 26:info.header_offset + 30], "<u2")
                    start = info.header_offset + 30 + int(n_name) + int(n_extra)
                    mapped.append((start, start + info.compress_size))
        out[kind] = (data, answer, mapped, _directory_start(data))
    assert not out["eager"][2] and out["lazy"][2], "the lazy file must map some arrays"
    return _Saved(out)


class _Saved(dict):
    def __repr__(self) -> str:  # (Hypothesis prints the arguments of a failing example)
        return "<the example zoo's model file, saved eagerly and lazily>"


def _directory_start(data: bytes) -> int:
    end = data.rfind(b"PK\x05\x06")
    return int(np.frombuffer(data[end + 16:end + 20], "<u4")[0])


@st.composite
def flips(draw, data: bytes, mapped: list, directory: int, where: str) -> tuple[int, int]:
    """(position, new byte value): ``where`` is "any", "outside" (no mapped payload) or "inside" (a mapped payload)."""
    if where == "inside":
        start, end = draw(st.sampled_from(mapped))
        pos = draw(st.integers(start, end - 1))
    else:
        region = draw(st.sampled_from(["file", "file", "directory", "head"]))
        lo, hi = {"file": (0, len(data) - 1), "directory": (directory, len(data) - 1), "head": (0, 200)}[region]
        pos = draw(st.integers(lo, hi))
        if where == "outside":
            for start, end in mapped:  # moved out of a mapped payload, to the byte after it
                if start <= pos < end:
                    pos = end if end < len(data) else start - 1
    value = draw(st.integers(0, 255).filter(lambda v: v != data[pos]))
    return pos, value


def _check_flip(tmp: Path, kind: str, saved: dict, pos: int, value: int) -> None:
    data, answer, _, _ = saved[kind]
    path = tmp / f"{kind}-{pos}-{value}.npz"
    path.write_bytes(data[:pos] + bytes([value]) + data[pos + 1:])
    threshold = SMALL_MAP if kind == "lazy" else artifact.MMAP_MIN_BYTES
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", threshold):
        try:
            got = _answer(path, lazy=kind == "lazy")
        except ArtifactError as exc:
            msg = str(exc)
            assert "\n" not in msg and "Traceback" not in msg, msg
            return
        except RecsysError as exc:  # another RecsysError: also one line, but a damaged file should say so
            pytest.fail(f"flipped byte {pos} -> {value}: {type(exc).__name__} instead of ArtifactError: {exc}")
    assert _same(got, answer), f"flipped byte {pos} ({data[pos]} -> {value}) changed the answer silently"


_FLIP = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("kind, where", [("eager", "any"), ("lazy", "outside"),
                                         ("lazy", "inside")],
                         ids=["eager", "lazy-outside-mapped-arrays", "lazy-inside-a-mapped-array"])
@_FLIP
@given(data=st.data())
def test_a_flipped_byte_is_refused_or_harmless(saved, tmp_path_factory, kind, where, data):
    content, _, mapped, directory = saved[kind]
    pos, value = data.draw(flips(content, mapped, directory, where), label="flip")
    _check_flip(tmp_path_factory.mktemp(kind), kind, saved, pos, value)
