"""Model files: numeric arrays plus a JSON document, never pickle.

A model file is a zip archive (a valid ``.npz``: ``numpy.load(path,
allow_pickle=False)`` opens it) holding

- ``meta.json``: the JSON sidecar: format name and version, recsys and
  library versions, engine name and hyper-parameters, id maps, feature spec,
  zoo fingerprint;
- one ``<name>.npy`` member per array, read with ``allow_pickle=False``.

Both live in one file so a write is a single atomic rename: a crash while
saving never leaves a half-written model nor destroys the previous one, and a
model cannot be separated from its sidecar. Loading parses JSON and ``.npy``
headers only, so it never runs code from the file.

Arrays of :data:`MMAP_MIN_BYTES` or more are stored uncompressed, so a reader
may memory-map them (``read_artifact(path, mmap=True)``: a query on a zoo of
100,000 datasets reads the pages it touches, not the whole file); smaller ones
are deflated.

Files of older format versions are read and brought to the current layout by
:func:`upgrade` (format 3 stored the zoo's records and features inside the
engine's state too, as aliases of one stored copy).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import stat
import struct
import time
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

from ._version import __version__
from .errors import ArtifactError, RecsysError
from .fileio import file_kind, why, write_atomic

__all__ = ["FORMAT", "FORMAT_VERSION", "write_artifact", "read_artifact", "check_writable", "check_model_state",
           "check_finite", "verify_mapped", "upgrade", "MAX_META_BYTES", "ARRAY_FLOOR_BYTES", "MMAP_MIN_BYTES"]

log = logging.getLogger(__name__)

FORMAT = "recsys-model"
FORMAT_VERSION = 4
#: version 1 held the records as a dense datasets x models matrix; version 2 holds them sparse; version 3
#: stores large arrays uncompressed (memory-mappable) and identical arrays once (aliases); version 4 holds
#: the zoo's data once, beside the engine's learned state (no aliases)
MIN_FORMAT_VERSION = 2
#: arrays this large (bytes) or larger are stored uncompressed, and memory-mapped by ``read_artifact(mmap=True)``
MMAP_MIN_BYTES = 1 << 18
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_META = "meta.json"


def write_artifact(path: str | os.PathLike, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``meta`` and ``arrays`` to ``path`` atomically (temp file + rename).

    A symlink is written through (its target is replaced); anything else that
    exists and is not a regular file (a directory, a FIFO, a device) is refused.
    The file keeps the permission bits of the file it replaces (a new file gets
    the umask's default). Temporary files left beside ``path`` by a process
    that was killed are removed.

    Raises
    ------
    ArtifactError
        When an array has an object dtype (it would need pickle) or a bad name,
        or the file cannot be written (no space, no permission: one line; the
        previous file is left as it was).
    """
    path = Path(path)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "recsys_version": __version__, **meta}
    doc["arrays"] = {}
    arrays = {name: np.asarray(arr) for name, arr in arrays.items()}
    for name, arr in arrays.items():
        if not _NAME.match(name):
            raise ArtifactError(f"array name {name!r} is not allowed in a model file")
        if arr.dtype.hasobject:
            raise ArtifactError(f"array {name!r} has an object dtype; model files hold numeric arrays only")
        doc["arrays"][name] = {"shape": list(arr.shape), "dtype": arr.dtype.str}
    payload = json.dumps(doc, indent=1, sort_keys=True, default=_json_default).encode("utf-8")

    def write(fh) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_META, payload)
            for name, arr in arrays.items():
                _write_member(zf, name, arr)

    return write_atomic(path, write, **_MODEL_FILE)


#: the extra-field id of the alignment padding (the one Android's zipalign uses)
_ALIGN_EXTRA_ID = 0xD935


def _write_member(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    """One ``.npy`` member, streamed: deflated when small, stored (memory-mappable) from :data:`MMAP_MIN_BYTES`."""
    arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    big = arr.nbytes >= MMAP_MIN_BYTES
    zip64 = arr.nbytes > (1 << 31)
    info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED if big else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    if big:
        # Pad the local header (an extra field, as zipalign does) so that the array's bytes start on a
        # 64-byte boundary (the .npy header is a multiple of 64): a memory map of unaligned values would
        # make numpy copy the whole array for some operations (searchsorted, for one).
        head = zf.fp.tell() + 30 + len(info.filename.encode("utf-8")) + 4 + (20 if zip64 else 0)
        info.extra = struct.pack("<HH", _ALIGN_EXTRA_ID, -head % 64) + bytes(-head % 64)
    with zf.open(info, "w", force_zip64=zip64) as out:
        np.lib.format.write_array(out, arr, allow_pickle=False)


#: how model files are named in the messages of :func:`~recsys.fileio.write_atomic`
_MODEL_FILE = {"what": "model file", "example": "model.npz", "error": ArtifactError}


def check_writable(path: str | os.PathLike, inputs: Mapping[str | os.PathLike, str] | None = None) -> Path:
    """Fail now, with one line, if a model file cannot be written at ``path`` (before minutes of fitting), or if
    ``path`` is one of the files the command reads (``inputs``: path -> its name in the message)."""
    return write_atomic(path, None, inputs=inputs, **_MODEL_FILE)


#: the largest ``meta.json`` read (its uncompressed size, from the zip directory): a model's sidecar holds
#: ids, feature specs and hyper-parameters; 32 MiB is about a million ids
MAX_META_BYTES = 32 << 20
#: arrays of a model file may hold, in all, max(ARRAY_FLOOR_BYTES, ARRAY_BYTES_PER_ID2 * n_ids ** 2) bytes,
#: ``n_ids`` the number of ids listed in meta.json (models + datasets): eight float64 matrices of
#: (n_ids x n_ids) fit, a zip bomb does not; checked on the zip directory and .npy headers before reading
ARRAY_FLOOR_BYTES = 128 << 20
ARRAY_BYTES_PER_ID2 = 64
#: the most members a model file's zip directory may list
MAX_MEMBERS = 10_000
_DTYPE = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(8|16))$")
_MAX_HEADER = 1 << 16
_CHUNK = 1 << 20


def read_artifact(path: str | os.PathLike, *, mmap: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file written by :func:`write_artifact`.

    Everything is checked before it is read: the zip directory (members,
    encryption, compression method, sizes), ``meta.json``'s size, and each
    array's ``.npy`` header against the shape and dtype declared in
    ``meta.json``; the declared arrays must fit the size limits (see
    :data:`ARRAY_FLOOR_BYTES`). Arrays are numeric (booleans, integers,
    floats) and never hold infinite values.

    With ``mmap=True``, arrays stored uncompressed from :data:`MMAP_MIN_BYTES`
    on are memory-mapped (read-only ``np.memmap``) after the same header and
    size checks, but their values are not read: their checksum and finiteness
    are left to whoever uses them (:func:`verify_mapped`, which
    ``Recommender.load(lazy=True)`` calls before its first answer).

    Returns
    -------
    meta : dict
    arrays : dict of str to ndarray

    Raises
    ------
    ArtifactError
        Missing, truncated, foreign (a pickle, another zip, another format
        version), oversized or corrupt files. Nothing in the file is ever executed.
    """
    path = Path(path)
    what = f"model file {str(path)!r}"
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ArtifactError(f"point {str(path)!r} to a model file, or give one: it is a symlink to "
                                f"{os.readlink(path)!r}, which does not exist") from None
        raise ArtifactError(f"create {what} with `recsys fit --out {path}`, or give an existing one: it does not "
                            f"exist") from None
    except OSError as exc:  # a symlink loop (ELOOP), a name too long ...
        loop = ": a symlink loop" if exc.errno == errno.ELOOP else ""
        raise ArtifactError(f"give a model file that opens: {what} cannot be opened ({why(exc)}{loop})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ArtifactError(f"give the file written by `recsys fit`: {what} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"give the file written by `recsys fit`: {what} is {file_kind(st.st_mode)}")
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise ArtifactError(f"check the permissions of {what}: it cannot be read ({why(exc)})") from None
    try:
        with raw:
            if not zipfile.is_zipfile(raw):
                raise ArtifactError(f"give a model file written by `recsys fit`: {what} is not a recsys model (not "
                                    f"a zip/npz archive; pickles and other formats are refused and never loaded)")
            _check_directory(raw, what)
            with zipfile.ZipFile(raw) as zf:
                members = _members(zf, what)
                meta = _read_meta(zf, members, what)
                arrays = _read_arrays(zf, members, meta, what, raw if mmap else None)
    except ArtifactError:
        raise
    except MemoryError:
        raise _damaged(what, "needs more memory than this machine has (recsys did not write it for this "
                             "machine)") from None
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError, RuntimeError, NotImplementedError,
            zlib_error()) as exc:
        msg = (str(exc).splitlines() or [""])[0]
        bad_crc = re.match(r"Bad CRC-32 for file '(.+)\.npy'", msg)
        if bad_crc:  # as a lazy read says it (verify_mapped)
            raise _damaged(what, f"does not match the checksum of array {bad_crc.group(1)!r} (its bytes changed "
                                 f"after it was written)") from None
        raise ArtifactError(f"re-create {what} with `recsys fit`: it is damaged or truncated "
                            f"({type(exc).__name__}: {msg})") from None
    return meta, arrays


def _damaged(what: str, problem: str) -> ArtifactError:
    """The one line of a model file whose parts are wrong: the fix (re-create it), then what is wrong."""
    return ArtifactError(f"re-create {what} with `recsys fit`: it {problem}; it is damaged or was not written by "
                         f"recsys")


def _check_directory(raw, what: str) -> None:
    """The zip directory's entry count, read from its end record before ``zipfile`` builds one object per entry."""
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:  # pragma: no cover - private zipfile helper; zipfile's own checks remain
        return
    rec = end_record(raw)
    raw.seek(0)
    if rec and rec[zipfile._ECD_ENTRIES_TOTAL] > MAX_MEMBERS:
        raise _damaged(what, f"lists {rec[zipfile._ECD_ENTRIES_TOTAL]} members (a model file has at most "
                             f"{MAX_MEMBERS})")


def _members(zf: zipfile.ZipFile, what: str) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if info.filename in members:
            raise _damaged(what, f"holds member {info.filename!r} twice")
        if info.flag_bits & 0x1:
            raise _damaged(what, f"has an encrypted member {info.filename!r} (model files are never encrypted)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _damaged(what, f"compresses member {info.filename!r} with method {info.compress_type} (model "
                                 f"files use deflate or none)")
        members[info.filename] = info
    return members


def _read_meta(zf: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo], what: str) -> dict:
    info = members.get(_META)
    if info is None:
        raise ArtifactError(f"give a model file written by `recsys fit`: {what} is an archive without {_META}, "
                            f"not a recsys model")
    if info.file_size > MAX_META_BYTES:
        raise _damaged(what, f"has a {_META} of {info.file_size:,} bytes (at most {MAX_META_BYTES:,} are read)")
    with zf.open(info) as fh:
        payload = fh.read(MAX_META_BYTES + 1)
    try:
        meta = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(what, f"has an unreadable {_META} ({exc})") from None
    except RecursionError:
        raise _damaged(what, f"has a {_META} nested too deeply to read") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ArtifactError(f"give a model file written by `recsys fit`: {what} is not a recsys model (format "
                            f"{found!r})")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _damaged(what, f"has format version {json.dumps(version)[:40]} (recsys writes an integer, "
                             f"{FORMAT_VERSION} for this version)")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"upgrade recsys, or re-fit the model with this one: {what} has format version {version}; "
                            f"this recsys {__version__} reads versions up to {FORMAT_VERSION}")
    if version < MIN_FORMAT_VERSION:
        raise ArtifactError(f"re-fit the model with `recsys fit`: {what} has format version {version}, written by an "
                            f"older recsys; this recsys {__version__} reads versions {MIN_FORMAT_VERSION} to "
                            f"{FORMAT_VERSION}")
    return meta


def _declared(meta: Mapping, what: str) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """Shape, dtype and byte size of every array ``meta.json`` declares, checked against the size limits."""
    declared = meta.get("arrays") or {}
    if not isinstance(declared, dict):
        raise _damaged(what, "declares its arrays in a malformed list")
    out = {}
    total = 0
    for name, spec in declared.items():
        if not _NAME.match(str(name)) or not isinstance(spec, dict):
            raise _damaged(what, f"declares array {name!r} in a malformed way")
        shape, dtype = spec.get("shape"), spec.get("dtype")
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise _damaged(what, f"declares array {name!r} with shape {shape!r}")
        if not isinstance(dtype, str) or not _DTYPE.match(dtype):
            raise _damaged(what, f"declares array {name!r} of dtype {dtype!r} (model files hold booleans, integers "
                                 f"and floats)")
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        total += nbytes
        out[str(name)] = (tuple(shape), dt, nbytes)
    n_ids = _count_ids(meta)
    budget = max(ARRAY_FLOOR_BYTES, ARRAY_BYTES_PER_ID2 * n_ids ** 2)
    if total > budget:
        raise _damaged(what, f"declares {total:,} bytes of arrays for {n_ids} ids (at most {budget:,} are read)")
    return out


def _count_ids(meta: Mapping) -> int:
    """Ids listed in ``meta`` (every list under a key ending in ``_ids``), found without recursion."""
    n, stack = 0, [meta]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(key, str) and key.endswith("_ids") and isinstance(value, list):
                n += len(value)
            elif isinstance(value, (dict, list)):
                stack.append(value)
    return n


def _read_arrays(zf: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo], meta: Mapping,
                 what: str, raw=None) -> dict[str, np.ndarray]:
    declared = _declared(meta, what)
    aliases = _check_aliases(meta, declared, what)
    arrays = {}
    for name, (shape, dtype, nbytes) in declared.items():
        if name in aliases:
            continue
        info = members.get(f"{name}.npy")
        if info is None:
            raise _damaged(what, f"lacks array {name!r}")
        if not nbytes <= info.file_size <= nbytes + _MAX_HEADER:
            raise _damaged(what, f"stores array {name!r} in {info.file_size:,} bytes, but its declared shape "
                                 f"{list(shape)} ({dtype.str}) takes {nbytes:,}")
        if raw is not None and info.compress_type == zipfile.ZIP_STORED and nbytes >= MMAP_MIN_BYTES:
            arrays[name] = _map_member(raw, info, name, shape, dtype, nbytes, what)
            continue
        with zf.open(info) as fh:
            fortran = _check_header(fh, info, name, shape, dtype, nbytes, what)
            arr = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
            view = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")
            pos = 0
            while pos < nbytes:
                got = fh.readinto(view[pos:pos + _CHUNK])
                if not got:
                    raise _damaged(what, f"has a truncated array {name!r}")
                pos += got
            if fortran:
                arr = arr.T
        if arr.dtype.kind in "fc" and np.isinf(arr).any():
            raise _damaged(what, f"holds infinite values in array {name!r}")
        arrays[name] = arr
    for name, target in aliases.items():
        arrays[name] = arrays[target]
    return arrays


def _check_header(fh, info: zipfile.ZipInfo, name: str, shape: tuple, dtype: np.dtype, nbytes: int,
                  what: str) -> bool:
    """Read a member's ``.npy`` header (``fh`` at its start) and check it against ``meta.json``; returns fortran."""
    start = fh.tell()
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            h_shape, fortran, h_dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            h_shape, fortran, h_dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=_MAX_HEADER)
        else:
            raise _damaged(what, f"stores array {name!r} in .npy format version {version}")
    except (SyntaxError, tokenize.TokenError) as exc:  # (numpy parses the header with ast and tokenize; its
        # ValueErrors are caught by the reader's callers like any other damage)
        raise _damaged(what, f"has a damaged .npy header for array {name!r} ({type(exc).__name__})") from None
    if tuple(h_shape) != shape or h_dtype != dtype:
        raise _damaged(what, f"stores array {name!r} with shape {tuple(h_shape)} and dtype {h_dtype.str} "
                             f"in its .npy header, but meta.json declares {shape} and {dtype.str}")
    if info.file_size != fh.tell() - start + nbytes:
        raise _damaged(what, f"stores array {name!r} in {info.file_size:,} bytes, but its header and "
                             f"shape take {fh.tell() - start + nbytes:,}")
    return bool(fortran)


def _map_member(raw, info: zipfile.ZipInfo, name: str, shape: tuple, dtype: np.dtype, nbytes: int,
                what: str) -> np.ndarray:
    """A stored (uncompressed) member as a read-only memory map, after its headers are checked."""
    raw.seek(info.header_offset)
    local = raw.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise _damaged(what, f"has a broken entry for array {name!r}")
    n_name, n_extra = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + n_name + n_extra
    raw.seek(start)
    fortran = _check_header(raw, info, name, shape, dtype, nbytes, what)
    offset = raw.tell()
    st = os.fstat(raw.fileno())
    if offset + nbytes > st.st_size:
        raise _damaged(what, f"has a truncated array {name!r}")
    raw.seek(start)
    head_crc = zlib.crc32(raw.read(offset - start))  # (the .npy header: the member's CRC-32 starts with it)
    # Mapped through the open file, not its name: the very file whose headers were just checked, even if
    # another process replaces it meanwhile (`recsys fit` renames a new file into place).
    arr = np.memmap(raw, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    arr.member = _Member(name, head_crc, info.CRC, _FileState.of(st))  # what verify_mapped checks
    return arr


@dataclass(frozen=True)
class _Member:
    """A memory-mapped array's zip member: the CRC-32 of its ``.npy`` header, the CRC-32 of the whole member
    that the zip directory records, and the state of the file it was mapped from."""

    name: str
    head_crc: int
    crc: int
    file: "_FileState"


class _FileState(NamedTuple):
    """What changes whenever a file's bytes do: its device, inode, size, and modification and change times."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "_FileState":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


#: a file changed less than this long before it was verified is not remembered as verified: a write within the
#: filesystem's clock tick (a few milliseconds) could leave its times as they were (git's "racy" index entries)
_SETTLE_NS = 2_000_000_000


def verify_mapped(arrays: Mapping[str, np.ndarray], path: str | os.PathLike, nan_ok: frozenset | set = frozenset(),
                  *, threads: int | None = None) -> None:
    """Check the memory-mapped arrays of ``read_artifact(path, mmap=True)`` that were not checked yet.

    Each array's member is read once, in full: its CRC-32 against the zip directory's (one flipped bit in the
    stored accuracies or the kriging weights is caught), and its floats for infinities and for NaN outside
    ``nan_ok`` (as :func:`check_finite`). An array that passed is marked and never read for this again;
    ``Recommender.load(lazy=True)`` calls this before its first answer. Arrays are checked on ``threads``
    threads at once (zlib and numpy release the GIL): the cost is reading them, about 1 GB/s a core.

    A file that passed whole is remembered in the ``verified`` folder of :func:`recsys.paths.cache_dir`, by
    its device, inode, size, modification and change times and its members' checksums, and later processes
    do not read it again while all of these stay the same (any write changes the times; a file changed less
    than 2 s before it was verified is not remembered). A stamp that cannot be written is not an error.

    Raises
    ------
    ArtifactError
        One line naming the first array that fails.
    """
    from concurrent.futures import ThreadPoolExecutor

    what = f"model file {str(path)!r}"
    prefixes = tuple(n for n in nan_ok if n.endswith("."))
    todo = [(name, arr) for name, arr in arrays.items()
            if isinstance(arr, np.memmap) and isinstance(getattr(arr, "member", None), _Member)
            and not getattr(arr, "verified", False)]
    if not todo:
        return
    stamp = _Stamp.of([arr.member for _, arr in todo], nan_ok)
    if stamp is not None and stamp.found():
        for _, arr in todo:
            arr.verified = True
        return

    def check(item) -> str | None:
        name, arr = item
        member = arr.member
        crc = member.head_crc
        flat = arr.reshape(-1, order="A").view(np.uint8) if arr.size else np.zeros(0, np.uint8)
        for start in range(0, len(flat), 64 << 20):
            crc = zlib.crc32(flat[start:start + (64 << 20)], crc)
        if crc != member.crc:
            return f"does not match the checksum of array {name!r} (its bytes changed after it was written)"
        if arr.dtype.kind in "fc":
            problem = _nonfinite(arr, name in nan_ok or name.startswith(prefixes))
            if problem:
                return f"holds {problem} in array {name!r}"
        return None

    todo.sort(key=lambda item: -item[1].nbytes)  # the largest first: the threads finish together
    workers = max(1, min(len(todo), threads or min(4, os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(check, todo))
    for (name, arr), problem in zip(todo, problems):
        if problem:
            raise _damaged(what, problem)
        arr.verified = True
    if stamp is not None:
        stamp.remember(path)


@dataclass(frozen=True)
class _Stamp:
    """That a model file's mapped arrays passed :func:`verify_mapped`: a small JSON file in the user's cache,
    named by the file's device and inode, holding what must be unchanged for the verification to still hold."""

    file: Path
    text: str
    state: _FileState

    @classmethod
    def of(cls, members: list[_Member], nan_ok) -> "_Stamp | None":
        states = {m.file for m in members}
        if len(states) != 1:  # (arrays mapped from two files: nothing to remember)
            return None
        from .paths import cache_dir

        state = states.pop()
        text = json.dumps({"size": state.size, "mtime_ns": state.mtime_ns, "ctime_ns": state.ctime_ns,
                           "nan_ok": sorted(nan_ok), "members": sorted([m.name, m.head_crc, m.crc] for m in members)},
                          sort_keys=True)
        return cls(cache_dir() / "verified" / f"{state.dev}-{state.ino}.json", text, state)

    def found(self) -> bool:
        try:
            with open(self.file, "rb") as fh:
                return fh.read(len(self.text) + 1).decode("utf-8", "replace") == self.text
        except OSError:
            return False

    def remember(self, path: str | os.PathLike) -> None:
        try:
            if (time.time_ns() - max(self.state.mtime_ns, self.state.ctime_ns) < _SETTLE_NS
                    or _FileState.of(os.stat(path)) != self.state):  # (replaced or changed since it was mapped)
                return
            write_atomic(self.file, self.text, what="verification stamp")
        except (OSError, RecsysError) as exc:  # (a read-only cache: verified again next time)
            log.debug("model file verification not remembered: %s", exc)


def _check_aliases(meta: Mapping, declared: Mapping[str, tuple], what: str) -> dict[str, str]:
    """A format-3 file's aliases (an array stored once under another name), checked against the declarations."""
    aliases = meta.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise _damaged(what, "lists its aliases in a malformed way")
    for name, target in aliases.items():
        if (name not in declared or not isinstance(target, str) or target not in declared or target in aliases
                or declared[name][:2] != declared[target][:2]):
            raise _damaged(what, f"has a broken alias {name!r} -> {target!r}")
    return aliases


def check_model_state(meta: Mapping, arrays: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """Refuse, with one line, a model file whose parts disagree (tampered or damaged).

    What every recsys model holds whatever its engine (in the current layout:
    :func:`upgrade` first): the seeds and the interval level, the model and
    dataset ids (unique strings), and the recorded accuracies (``data.d``,
    ``data.m``, ``data.y``: sorted, unique, in range, in [0, 1]; when
    memory-mapped, only their dtypes and lengths here, their values row by row
    where they are used); arrays with one row per model or dataset (side
    features, scores) must have it. Engine arrays are checked by using them
    once (``Recommender.load``).

    Raises
    ------
    ArtifactError
    """
    what = f"model file {str(path)!r}"
    rec, data, engine = meta.get("recommender"), meta.get("data"), meta.get("engine")
    if not isinstance(rec, dict) or not isinstance(meta.get("features"), dict) or not isinstance(engine, dict) \
            or not isinstance(data, dict):
        raise _damaged(what, "lacks its recommender, data, features or engine section")
    for where, seed in (("seed", rec.get("seed")), ("engine seed", (engine.get("params") or {}).get("seed", 0))):
        if not _is_seed(seed):
            raise _damaged(what, f"has {where} {seed!r} (seeds are integers in 0..{2 ** 32 - 1})")
    level = rec.get("level")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise _damaged(what, f"has interval level {level!r} (a number between 0 and 1)")
    n = {side: _check_ids(data.get(f"{side}_ids"), side, what) for side in ("model", "dataset")}
    _check_records(arrays, n, what)
    expected = (n["dataset"], n["model"])
    rows = {"data.models.matrix": n["model"], "data.datasets.matrix": n["dataset"]}
    for name, arr in arrays.items():
        if name.startswith("data.scores.") and arr.shape != expected:
            raise _damaged(what, f"has scores {name!r} of shape {arr.shape}, but lists {n['dataset']} datasets x "
                                 f"{n['model']} models")
        if (name in rows or name.startswith("data.datasets.txt")) and \
                (arr.ndim != 2 or len(arr) != rows.get(name, n["dataset"])):
            raise _damaged(what, f"has {name!r} of shape {arr.shape}, but lists {rows.get(name, n['dataset'])} "
                                 f"{'models' if '.models.' in name else 'datasets'}")


def check_finite(meta: Mapping, arrays: Mapping[str, np.ndarray], path: str | os.PathLike,
                 nan_ok: frozenset | set = frozenset()) -> None:
    """Refuse, with one line, a model file holding a NaN or an infinite float where none belongs.

    Every float array read into memory (a memory-mapped one is checked when an answer first touches it,
    :func:`verify_mapped`) and every number of the ``recommender``, ``data``, ``features`` and ``engine``
    sections of ``meta.json`` (``timing`` is informative only). NaN marks "unknown" in the arrays named in
    ``nan_ok`` (a name ending in ``.`` covers every array under it: ``data.scores.``); nowhere else. A checksum
    cannot catch a NaN written by a fit that diverged, or a file rewritten with matching checksums.

    Raises
    ------
    ArtifactError
    """
    what = f"model file {str(path)!r}"
    prefixes = tuple(n for n in nan_ok if n.endswith("."))
    for name, arr in arrays.items():
        if isinstance(arr, np.memmap) or arr.dtype.kind not in "fc":
            continue
        problem = _nonfinite(arr, name in nan_ok or name.startswith(prefixes))
        if problem:
            raise _damaged(what, f"holds {problem} in array {name!r}")
    stack = [(key, meta.get(key)) for key in ("recommender", "data", "features", "engine")]
    while stack:
        where, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise _damaged(what, f"holds {node} in meta.json ({where})")
        if isinstance(node, list) and set(map(type, node)) <= {str}:
            continue  # (the ids: 100,000 names hold no number)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((f"{where}.{k}", v) for k, v in items if isinstance(v, (dict, list, float)))


def _nonfinite(arr: np.ndarray, nan_ok: bool) -> str | None:
    """What is not finite in ``arr`` ("NaN", "infinite values"), or None; read a block at a time."""
    flat = arr.reshape(-1)
    for start in range(0, len(flat), 1 << 20):
        block = flat[start:start + (1 << 20)]
        if np.isinf(block).any():
            return "infinite values"
        if not nan_ok and np.isnan(block).any():
            return "NaN"
    return None


def _check_ids(ids, side: str, what: str) -> int:
    if not isinstance(ids, list) or not ids or set(map(type, ids)) != {str}:  # (map: 100,000 ids in milliseconds)
        raise _damaged(what, f"has no list of {side} names")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = next(i for i in ids if i in seen or seen.add(i))
        raise _damaged(what, f"lists {side} {twice!r} twice (ids must be unique)")
    return len(ids)


def _check_records(arrays: Mapping[str, np.ndarray], n: Mapping[str, int], what: str) -> None:
    parts = [arrays.get(f"data.{k}") for k in ("d", "m", "y")]
    if any(p is None for p in parts):
        raise _damaged(what, "lacks the recorded accuracies ('data.d', 'data.m', 'data.y')")
    d, m, y = parts
    if d.dtype.kind not in "iu" or m.dtype.kind not in "iu" or y.dtype.kind != "f" \
            or not (d.ndim == m.ndim == y.ndim == 1) or not (len(d) == len(m) == len(y)):
        raise _damaged(what, f"has recorded accuracies of dtypes {d.dtype.str}, {m.dtype.str}, {y.dtype.str} and "
                             f"lengths {len(d)}, {len(m)}, {len(y)} (one integer dataset, integer model and float "
                             f"accuracy per record expected)")
    if any(isinstance(p, np.memmap) for p in parts):
        pass  # memory-mapped (read_artifact(mmap=True)): checked row by row where they are used, not read here
    elif len(d) and (d.min() < 0 or d.max() >= n["dataset"] or m.min() < 0 or m.max() >= n["model"]):
        raise _damaged(what, f"has records outside its {n['dataset']} datasets x {n['model']} models")
    elif len(d) > 1 and (np.diff(d.astype(np.int64) * n["model"] + m) <= 0).any():
        raise _damaged(what, "has records out of order or repeated (one record per dataset and model)")
    elif np.isnan(y).any() or ((y < 0) | (y > 1)).any():
        raise _damaged(what, "has recorded accuracies outside [0, 1]")
    counts = arrays.get("data.model_records")
    if counts is None or counts.shape != (n["model"],) or counts.dtype.kind not in "iu" or \
            (len(counts) and counts.min() < 0) or int(counts.sum()) != len(d):
        raise _damaged(what, f"has record counts per model ('data.model_records') that do not match its "
                             f"{n['model']} models and {len(d)} records")


def upgrade(meta: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """A file of an older format version in the current layout (the current one as it is).

    Formats 2 and 3 kept the zoo's records under ``known.*``, its feature matrices under ``features.*``, its
    scores under ``scores.*``, and engines their own views of them (the hybrid's ``sim.*`` similarity
    inputs, ``X_`` and ``cells_*_``, the lightfm engine's ``tok*``, score-stack's ``scores.*``): the data
    move to ``data.*`` (text columns from the engine's views), the engines keep what they learned.
    """
    if meta.get("format_version", FORMAT_VERSION) >= 4 or not isinstance(meta.get("features"), dict):
        return meta, arrays
    meta, arrays, feats = dict(meta), dict(arrays), dict(meta["features"])
    engine = dict(meta.get("engine") or {})
    fitted = dict(engine.get("fitted") or {})
    out = {k: v for k, v in arrays.items() if k.startswith(("cal_", "features.mspec_", "features.dspec_"))}
    for old, new in (("d", "d"), ("m", "m"), ("y", "y"), ("model_records", "model_records")):
        if f"known.{old}" in arrays:
            out[f"data.{new}"] = arrays[f"known.{old}"]
    if "data.model_records" not in out and "data.m" in out and isinstance(feats.get("model_ids"), list):
        out["data.model_records"] = np.bincount(out["data.m"], minlength=len(feats["model_ids"])).astype(np.int64)
    sides = {}
    for side, spec_key, prefix in (("models", "model_spec", "features.mspec_"),
                                   ("datasets", "dataset_spec", "features.dspec_")):
        out[f"data.{side}.matrix"] = arrays.get(f"features.{side[:-1]}_features", np.zeros((0, 0)))
        sides[side] = {"layout": _legacy_layout(feats.get(spec_key) or {}, arrays, prefix), "tokens": [], "text": []}
    # Text columns: the hybrid's similarity inputs (sim.tok*, sim.txt*) or the lightfm engine's tokens (tok*).
    for key, kind, names in (("engine.sim.tok", "tokens", fitted.get("token_columns_")),
                             ("engine.tok", "tokens", fitted.get("token_columns_")),
                             ("engine.sim.txt", "text", fitted.get("text_columns_"))):
        sep = "_" if ".sim." in key else "."
        for i, col in enumerate(names or []):
            if kind == "tokens" and f"{key}{i}{sep}indptr" in arrays:
                sides["datasets"]["tokens"].append(col)
                for part in ("indptr", "indices", "shape"):
                    out[f"data.datasets.tok{i}_{part}"] = arrays[f"{key}{i}{sep}{part}"]
            elif kind == "text" and f"{key}{i}" in arrays:
                sides["datasets"]["text"].append(col)
                out[f"data.datasets.txt{i}"] = arrays[f"{key}{i}"]
    metrics = list((meta.get("recommender") or {}).get("score_metrics", []))
    out.update({f"data.scores.{i}": arrays[f"scores.{i}"] for i in range(len(metrics)) if f"scores.{i}" in arrays})
    stale = ("X_", "cells_d_", "cells_m_", "cells_y_", "has_records_", "groups_", "token_columns_", "text_columns_")
    for key, value in arrays.items():
        name = key[len("engine."):]
        if key.startswith("engine.") and name not in stale and not name.startswith(("sim.", "tok", "scores.")):
            out[key] = value
    engine["fitted"] = {k: v for k, v in fitted.items() if k not in stale}
    meta["engine"] = engine
    meta["data"] = {"model_ids": feats.get("model_ids"), "dataset_ids": feats.get("dataset_ids"), "metrics": metrics,
                    **sides}
    meta["features"] = {k: v for k, v in feats.items() if k not in ("model_ids", "dataset_ids")}
    return meta, out


def _legacy_layout(spec: Mapping, arrays: Mapping[str, np.ndarray], prefix: str) -> dict:
    """The layout of a format-3 side from its spec (as ``SideSpec`` lays its columns out)."""
    from .features.data import Layout

    text = [(c, len(arrays.get(f"{prefix}text{i}_components", ()))) for i, c in enumerate(spec.get("text", []))]
    return Layout.of([(c, len(lv)) for c, lv in spec.get("categorical", [])],
                     [(n.get("column"), n.get("missing")) for n in spec.get("numeric", [])], text).to_json()


def _is_seed(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2 ** 32 - 1


def zlib_error():
    import zlib

    return zlib.error


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray) and obj.size <= 64:
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
