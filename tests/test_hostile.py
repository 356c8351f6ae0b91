"""Hostile input (issue 11): every bad input is one line on stderr and the right exit code, and no file that
existed before is changed.

Each case builds its input in a fresh directory and names the command line to run; the sweep runs it
in-process (click's CliRunner, with ``-q`` so stderr holds errors only), hashes every file it can see
before and after, and checks exit code, the one ``error:`` line and the words it must contain. Cases
that need a real process (another user, a resource limit, kill -9, memory) are tests of their own below.
"""

from __future__ import annotations

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

from conftest import ROOT, write_zoo

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
    """``known.npy`` expands to 3 GiB (a ~3 MB file); ``consistent_meta`` declares that shape in meta.json too,
    ``lie`` writes the true small size in the zip directory while the stream still expands to 3 GiB."""
    n = (3 * GiB) // 8
    header = npy_header((n,))
    raw, size, crc = bomb_stream(header, (3 * GiB - len(header)) >> 20 if False else 3 * 1024)
    size = len(header) + 3 * GiB
    meta, blobs = unpack(model)
    if consistent_meta:
        meta["arrays"]["known"] = {"shape": [n], "dtype": "<f8"}
    entries = [Entry("meta.json", json.dumps(meta).encode())]
    for name, blob in blobs.items():
        if name == "known.npy":
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
    models: dict
    env: dict = field(default_factory=dict)

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

# -- model files: sizes (zip bombs) -------------------------------------------------
case("model-zip-bomb-3gib", 1, "array 'known'", "bytes")(lambda c: topk(zip_bomb(c.dn, c.tmp / "bomb.npz")))
case("model-zip-bomb-declared", 1, "bytes of arrays")(
    lambda c: topk(zip_bomb(c.dn, c.tmp / "bomb.npz", consistent_meta=True)))
case("model-zip-bomb-lying-directory", 1, "damaged")(lambda c: topk(zip_bomb(c.dn, c.tmp / "bomb.npz", lie=True)))
case("model-meta-bomb-1gib", 1, "meta.json of", "bytes")(lambda c: topk(meta_bomb(c.dn, c.tmp / "bomb.npz")))


@case("model-npy-header-1e12", 1, "(1000000000000,)")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "known.npy":
                hdr = npy_header((10**12,))
                e.data = hdr + e.data[len(hdr):] if len(e.data) > len(hdr) else hdr
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


@case("model-npy-header-dtype", 1, "header")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "known.npy":
                arr = load_array(e.data)
                e.data = npy(arr.astype("<i8"))  # same shape and size, another dtype than declared
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


@case("model-npy-bad-magic", 1, "damaged")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "known.npy":
                e.data = b"\x00NOTNPY" + e.data[7:]
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


case("model-array-missing", 1, "lacks array 'known'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=lambda es: [e for e in es if e.name != "known.npy"])))
case("model-encrypted-flag", 1, "encrypted")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          entries_fn=lambda es: [Entry(e.name, e.data, flags=1 if e.name == "known.npy" else 0)
                                                 for e in es])))


@case("model-unknown-compression", 1, "method 99")
def _(c):
    def swap(entries):
        for e in entries:
            if e.name == "known.npy":
                e.method, e.raw = 99, deflate(e.data)
        return entries
    return topk(tamper(c.dn, c.tmp / "m.npz", entries_fn=swap))


case("model-duplicate-member", 1, "twice")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          entries_fn=lambda es: es + [Entry("known.npy", npy(np.zeros((270, 10))))])))
case("model-too-many-members", 1, "members")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz",
                          entries_fn=lambda es: es + [Entry(f"x{i}.txt", b"") for i in range(10_001)])))
case("model-arrays-malformed", 1, "malformed")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.update(arrays=[1, 2]))))
case("model-object-dtype-declared", 1, "dtype '|O'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["arrays"]["known"].update(dtype="|O"))))
case("model-string-dtype-declared", 1, "dtype '<U5'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["arrays"]["known"].update(dtype="<U5"))))

# -- model files: parts that disagree ----------------------------------------------------
case("model-known-strings", 1, "'known'", "dtype")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"known": np.full((270, 10), "0.5")})))
case("model-known-wrong-shape", 1, "'known'", "270 datasets x 10 models")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"known": np.full((10, 270), 0.5)})))
case("model-known-1d", 1, "'known'")(lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"known": np.zeros(2700)})))
case("model-known-out-of-range", 1, "outside [0, 1]")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"known": np.full((270, 10), 7.0)})))
case("model-known-infinite", 1, "infinite values in array 'known'")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"known": np.full((270, 10), np.inf)})))


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
    meta["features"]["model_ids"] = meta["features"]["model_ids"][1:]


case("model-ids-shorter-than-arrays", 1, "270 datasets x 9 models")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", _drop_first_model)))
case("model-duplicate-model-id", 1, "lists model", "twice")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["features"]["model_ids"].__setitem__(
        1, m["features"]["model_ids"][0]))))
case("model-duplicate-dataset-id", 1, "lists dataset", "twice")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["features"]["dataset_ids"].__setitem__(
        5, DN))))
case("model-ids-not-strings", 1, "no list of model names")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m["features"].update(model_ids=list(range(10))))))
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
case("model-features-rows", 1, "features.dataset_features")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", arrays={"features.dataset_features": np.zeros((3, 21))})))
case("model-no-recommender-section", 1, "recommender")(
    lambda c: topk(tamper(c.dn, c.tmp / "m.npz", lambda m: m.pop("recommender"))))
case("model-info-tampered", 1, "twice")(
    lambda c: ["info", "--model", tamper(c.dn, c.tmp / "m.npz", lambda m: m["features"]["dataset_ids"].__setitem__(
        0, m["features"]["dataset_ids"][1]))])



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
case("fit-unknown-engine", 2, "available engines")(lambda c: ["fit", "--engine", "lightgbm", "--out", c.tmp / "m.npz"])
case("topk-level-1.5", 2, "'--level'")(lambda c: [*topk(c.dn), "--level", "1.5"])
case("topk-k-0", 2, "'-k'")(lambda c: [*topk(c.dn), "-k", "0"])
case("topk-no-dataset", 2, "--dataset")(lambda c: ["topk", "--model", c.dn])
case("topk-unknown-dataset-names-zoo", 2, "unknown dataset '296_clipart_32'", "269_clipart_32", "domainnet-270")(
    lambda c: ["topk", "--model", c.dn, "--dataset", "296_clipart_32"])
case("predict-unknown-dataset-names-zoo", 2, "unknown dataset 'dtd'", "domainnet-270")(
    lambda c: ["predict", "--model", c.dn, "--dataset", "dtd"])
case("predict-dataset-and-new", 2, "not both")(
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


case("fit-out-char-device", 1, "character device")(lambda c: ["fit", "--out", "/dev/null", "--text-encoder", "hashing"])
case("fit-out-directory", 2, "is a directory")(lambda c: ["fit", "--out", c.tmp, "--text-encoder", "hashing"])
case("fit-out-under-a-file", 1, "cannot write model file")(
    lambda c: ["fit", "--out", c.file("blocker", "") / "m.npz", "--text-encoder", "hashing"])
case("evaluate-out-under-a-file", 1, "is a file")(
    lambda c: ["evaluate", "--protocol", "p1", "--engines", "popularity", "--out", c.file("blocker", "") / "ev"])

# -- resource bounds ----------------------------------------------------------------------
case("hashing-dim-999999999", 1, "from 1 to 4096")(
    lambda c: ["fit", "--text-encoder", "hashing:999999999", "--out", c.tmp / "m.npz"])
case("hashing-dim-0", 1, "from 1 to 4096")(lambda c: ["fit", "--text-encoder", "hashing:0", "--out", c.tmp / "m.npz"])
case("hashing-dim-text", 1, "hashing:DIM")(lambda c: ["fit", "--text-encoder", "hashing:x", "--out", c.tmp / "m.npz"])


def fit_param(*params, engine="lightfm"):
    def build(c):
        args = ["fit", "--engine", engine, "--text-encoder", "hashing", "--no-calibrate", "--out", c.tmp / "m.npz"]
        for p in params:
            args += ["--param", p]
        return args
    return build


case("param-no-components-huge", 1, "no_components accepts integers from 0 to 10000")(
    fit_param("no_components=99999999999999"))
case("param-epochs-1e23", 1, "epochs expects a int")(fit_param("epochs=1e23"))
case("param-learning-rate-1e23", 1, "learning_rate accepts numbers from -1e+06 to 1e+06")(
    fit_param("learning_rate=1e23"))
case("param-learning-rate-diverges", 1, "--param learning_rate=1e6 failed")(fit_param("learning_rate=1e6"))
case("param-alphas-1e300", 1, "alphas accepts numbers")(fit_param("alphas=1e300"))
case("param-tau-inf", 1, "tau accepts numbers")(fit_param("tau=inf"))
case("param-list-too-long", 1, "at most 100 values")(fit_param("blend_weights=" + ",".join(["0.5"] * 101)))
case("param-unknown-name", 1, "NAME one of")(fit_param("nonsense=1"))
case("param-bad-type", 1, "epochs expects a int")(fit_param("epochs=many"))
case("param-als-factors-huge", 1, "factors accepts integers from 1 to 1024", "engine 'als'")(
    fit_param("factors=99999999999", engine="als"))
case("param-gat-hidden-huge", 1, "hidden accepts integers from 1 to 1024")(fit_param("hidden=100000", engine="gat"))
case("param-gat-epochs-huge", 1, "epochs accepts integers from 0 to 10000")(fit_param("epochs=99999999999", engine="gat"))

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
case("new-a-number", 1, "expected a JSON object")(new(text="42"))
case("new-empty-list", 1, "expected a JSON object")(new(text="[]"))
case("new-dataset-null", 1, '"dataset" of object 1 is null', "non-empty name")(new({"dataset": None}))
case("new-inline-dataset-null", 1, '"dataset" of object 1 is null')(
    lambda c: ["topk", "--model", c.dn, "--new", '{"dataset": null}'])
case("new-dataset-empty", 1, '"dataset" of object 1 is " "')(new({"dataset": " "}))
case("new-numeric-true", 1, "column 'categories'", "boolean")(new({"categories": True}))
case("new-numeric-1e300", 1, "column 'categories' = 1e+300", "far outside")(new({"categories": 1e300}))
case("new-log-numeric-1e300", 1, "column 'Sample_Size' = 1e+300", "accepted")(new({"Sample_Size": 1e300}))
case("new-numeric-1e999", 1, "column 'categories'", "infinite")(
    new(text=json.dumps(SKETCH).replace('"categories": 4', '"categories": 1e999')))
case("new-numeric-negative-log", 1, "must be > 0")(new({"Sample_Size": -5}))
case("new-numeric-text", 1, "column 'categories' is numeric")(new({"categories": "many"}))
case("set-numeric-true", 1, "column 'categories' is numeric")(
    lambda c: ["topk", "--model", c.dn, "--set", "categories=true"])
case("set-unknown-column", 1, "unknown dataset column", "Labels")(lambda c: ["topk", "--model", c.dn, "--set", "colour=blue"])
case("new-missing-file", 1, "no such file")(lambda c: ["topk", "--model", c.dn, "--new", c.tmp / "none.json"])
case("new-csv-garbage", 1, "not a readable CSV")(
    lambda c: ["topk", "--model", c.dn, "--new", c.file("n.csv", b"\x00\xff\xfe garbage\n\x81\x82")])
case("new-dataset-in-zoo", 1, "already in the zoo")(new({"dataset": DN}))

# -- scores of a new dataset (--scores) --------------------------------------------------------


def scores(text: str | bytes):
    def build(c):
        return ["topk", "--model", c.models["ex"], "--dataset", "new", "--set", "domain=sketch",
                "--scores", c.file("s.csv", text)]
    return build


case("scores-binary-garbage", 1, "--scores", "not UTF-8")(scores(bytes(range(128, 256)) * 20))
case("scores-conflicting-duplicates", 1, "rows 1 and 2", "different LOG_ME scores", "resnet50")(
    scores("model,dataset,metric,score\nresnet50,new,LOG_ME,0.5\nresnet50,new,LOG_ME,0.9\n"))
case("scores-missing-column", 1, "lacks column(s) ['score']")(scores("model,dataset,metric\nresnet50,new,LOG_ME\n"))
case("scores-not-a-number", 1, "not a number")(scores("model,dataset,metric,score\nresnet50,new,LOG_ME,high\n"))
case("scores-nan", 1, "NaN")(scores("model,dataset,metric,score\nresnet50,new,LOG_ME,NaN\n"))
case("scores-empty-model", 1, "row 1", "has no model")(scores("model,dataset,metric,score\n,new,LOG_ME,1\n"))
case("scores-other-dataset", 1, "scores are given for dataset(s) ['other']")(
    scores("model,dataset,metric,score\nresnet50,other,LOG_ME,1\n"))
case("scores-missing-file", 1, "--scores", "cannot read")(
    lambda c: ["topk", "--model", c.models["ex"], "--set", "domain=sketch", "--scores", c.tmp / "none.csv"])
case("scores-empty-file", 1, "--scores", "cannot read")(scores(""))

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
case("zoo-missing-directory", 1, "does not exist")(lambda c: ["info", "--zoo", c.tmp / "nope"])
case("zoo-a-file", 1, "is a file")(lambda c: ["info", "--zoo", c.file("f.csv", "model\n")])
case("zoo-unknown-name", 1, "did you mean 'domainnet-270'")(lambda c: ["info", "--zoo", "domainet-270"])


@pytest.fixture(scope="module")
def models(tmp_path_factory, data_dir):
    """Fitted once, calibrated, with the hashing text encoder: DomainNet-270 and the example zoo (has scores)."""
    d = tmp_path_factory.mktemp("hostile-models")
    out = {"dn": d / "dn.npz", "ex": d / "example.npz"}
    for zoo, path in (("domainnet-270", out["dn"]), (str(EXAMPLE), out["ex"])):
        res = CliRunner().invoke(main, ["-q", "fit", "--zoo", zoo, "--out", str(path), "--text-encoder", "hashing"])
        assert res.exit_code == 0, res.stderr
    return out


def snapshot(*roots: Path) -> dict[Path, str]:
    files = {}
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for p in paths:
            files[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name, models, tmp_path, monkeypatch):
    build, code, words = CASES[name]
    ctx = Ctx(tmp_path / "case", models)
    ctx.tmp.mkdir()
    monkeypatch.chdir(ctx.tmp)
    default = ctx.tmp / "default" / "model.npz"  # what `recsys fit` writes without --out: must survive too
    default.parent.mkdir()
    shutil.copyfile(models["dn"], default)
    monkeypatch.setenv("RECSYS_MODEL", str(default))
    args = [str(a) for a in build(ctx)]
    for key, value in ctx.env.items():
        monkeypatch.setenv(key, value)
    roots = [ctx.tmp, models["dn"].parent]
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
