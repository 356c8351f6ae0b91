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
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from ._version import __version__
from .errors import ArtifactError

__all__ = ["FORMAT", "FORMAT_VERSION", "write_artifact", "read_artifact", "check_writable"]

FORMAT = "recsys-model"
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_META = "meta.json"


def write_artifact(path: str | os.PathLike, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``meta`` and ``arrays`` to ``path`` atomically (temp file + rename).

    Raises
    ------
    ArtifactError
        When an array has an object dtype (it would need pickle) or a bad name.
    """
    path = Path(path)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "recsys_version": __version__, **meta}
    doc["arrays"] = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if not _NAME.match(name):
            raise ArtifactError(f"array name {name!r} is not allowed in a model file")
        if arr.dtype.hasobject:
            raise ArtifactError(f"array {name!r} has an object dtype; model files hold numeric arrays only")
        doc["arrays"][name] = {"shape": list(arr.shape), "dtype": arr.dtype.str}
    payload = json.dumps(doc, indent=1, sort_keys=True, default=_json_default).encode("utf-8")
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(_META, payload)
                for name, arr in arrays.items():
                    buf = io.BytesIO()
                    arr = np.asarray(arr)  # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
                    np.lib.format.write_array(buf, arr if arr.flags.c_contiguous else arr.copy(order="C"),
                                              allow_pickle=False)
                    zf.writestr(f"{name}.npy", buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temporary file in ``path``'s directory (created if needed), or one clear ArtifactError."""
    if path.is_dir():
        raise ArtifactError(f"cannot write model file {str(path)!r}: it is a directory; give a file name such as "
                            f"{str(path / 'model.npz')!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ArtifactError(f"cannot write model file {str(path)!r} ({exc.strerror or exc}); choose another "
                            f"location with --out") from None


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, with one line, if a model file cannot be written at ``path`` (before minutes of fitting)."""
    path = Path(path)
    fd, tmp = _temp_beside(path)
    os.close(fd)
    os.unlink(tmp)
    return path


def read_artifact(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file written by :func:`write_artifact`.

    Returns
    -------
    meta : dict
    arrays : dict of str to ndarray

    Raises
    ------
    ArtifactError
        Missing, truncated, foreign (a pickle, another zip, another format
        version) or corrupt files. Nothing in the file is ever executed.
    """
    path = Path(path)
    what = f"model file {str(path)!r}"
    if not path.exists():
        raise ArtifactError(f"{what} does not exist; create one with `recsys fit --out {path}`")
    if path.is_dir():
        raise ArtifactError(f"{what} is a directory; give the file written by `recsys fit`")
    if not zipfile.is_zipfile(path):
        raise ArtifactError(f"{what} is not a recsys model (not a zip/npz archive; pickles and other formats are "
                            f"refused and never loaded); re-create it with `recsys fit`")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _META not in names:
                raise ArtifactError(f"{what} is an archive without {_META}: not a recsys model; re-create it with "
                                    f"`recsys fit`")
            try:
                meta = json.loads(zf.read(_META).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ArtifactError(f"{what} has an unreadable {_META} ({exc}); re-create it with `recsys fit`") from None
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ArtifactError(f"{what} is not a recsys model (format {meta.get('format') if isinstance(meta, dict) else None!r}); "
                                    f"re-create it with `recsys fit`")
            version = meta.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ArtifactError(f"{what} has format version {version!r}; this recsys {__version__} reads "
                                    f"versions up to {FORMAT_VERSION}: upgrade recsys or re-fit the model")
            arrays = {}
            for name, info in (meta.get("arrays") or {}).items():
                member = f"{name}.npy"
                if not _NAME.match(str(name)) or member not in names:
                    raise ArtifactError(f"{what} lacks array {name!r}; the file is damaged: re-create it with `recsys fit`")
                with zf.open(member) as fh:
                    arr = np.lib.format.read_array(fh, allow_pickle=False)
                if list(arr.shape) != list(info.get("shape", [])):
                    raise ArtifactError(f"{what}: array {name!r} has shape {arr.shape}, expected {info.get('shape')}")
                arrays[name] = arr
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError, zlib_error()) as exc:
        raise ArtifactError(f"{what} is damaged or truncated ({type(exc).__name__}: {exc}); re-create it with "
                            f"`recsys fit`") from None
    return meta, arrays


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
