"""Writing a file whole or not at all: the one atomic writer of recsys.

Model files, zoo files, ``--out`` files and the caches all go through
:func:`write_atomic`: a temporary file beside the target, fsync, rename. A crash,
a reader or a full disk never sees half a file, and a failed write leaves the
previous file as it was, with one line that says so.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from .errors import RecsysError

__all__ = ["write_atomic", "file_kind", "why", "FORMULA_START", "spreadsheet_safe"]

log = logging.getLogger(__name__)

#: when this process started (close enough: recsys imports this module at start-up); temporary files
#: older than this were left by a process that died and are removed on the next write
_STARTED = time.time()
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def write_atomic(path: str | os.PathLike, content: bytes | str | Callable[[BinaryIO], None] | None, *,
                 what: str = "file", example: str = "", elsewhere: str = "choose another location with --out",
                 error: type[RecsysError] = RecsysError, inputs: Mapping[str | os.PathLike, str] | None = None) -> Path:
    """Replace ``path`` by ``content`` atomically (temp file beside it, fsync, rename).

    Parameters
    ----------
    path : str or path-like
    content : bytes, str, callable or None
        The bytes (a str is written as UTF-8, line ends as given), or a function
        that writes them to the binary file object it is given. None only checks,
        without changing anything, that ``path`` could be written (before minutes
        of work whose result would be lost).
    what : str
        Names the file in messages ("model file", "scores file" ...).
    example : str
        A file name to suggest when ``path`` is a directory (``model.npz``).
    elsewhere : str
        How to write somewhere else, ending every message about a place that
        cannot be written ("choose another location with --out").
    error : type
        The :class:`~recsys.errors.RecsysError` subclass raised.
    inputs : mapping of path to str, optional
        What the command writing ``path`` reads (a file, or a directory whose
        files it reads), each with the words that name it in a message ("the
        zoo's records.csv"): ``path`` may not be one of them, nor inside one.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    RecsysError
        (or ``error``) One line: an empty name, a directory or another
        non-regular file in the way, a read-only file, one of ``inputs``, or a
        failed write (no space, no permission ...); the previous file is left
        as it was.

    Notes
    -----
    A symlink is written through (its target is replaced, the link stays); an
    existing target that is not a regular file, or is read-only, is refused (a
    rename could replace it, but its mode says not to); the new file keeps
    the permission bits of the file it replaces (a new one gets the umask's
    default); temporary files (``.NAME.PID-XXXX.tmp``) left by a process that
    died are removed.
    """
    if os.fspath(path) == "":
        raise error(f"give a file name such as {example or 'out.txt'}: the {what} name is empty")
    path = Path(path)
    target, existed = _target(path, what, example, elsewhere, error)
    if existed and inputs:
        _not_an_input(path, target, inputs, elsewhere, error)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(target)
        # The pid in the name tells a later writer whether the file's owner is still alive.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            if content is None:
                return path  # a probe: the temporary file is removed below
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        kept = "the previous file is unchanged" if existed else "nothing was written"
        raise error(f"{_fix(exc, elsewhere)}: cannot write {what} {str(path)!r} ({why(exc)}); {kept}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


#: first characters that make a spreadsheet read a CSV cell as a formula (=HYPERLINK(...), +cmd, -2+3, @SUM, a tab
#: or a carriage return before one)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value) -> str:
    """A text cell of a CSV file meant for people: one that a spreadsheet would evaluate as a formula gets a
    leading apostrophe (OWASP's advice for CSV injection), every other one is left as it is.

    Used for what recsys writes for people to open (``predict`` / ``topk --format csv``, evaluation
    tables); not for the files recsys reads back (a zoo's CSV files, ``recsys score``'s scores.csv), where
    the names must stay exactly as given.
    """
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def why(exc: OSError) -> str:
    """The reason an OS call failed, for a message ("No space left on device")."""
    return exc.strerror or str(exc) or type(exc).__name__


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is ("a FIFO", "a character device" ...), from its ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "a directory"
    return next((k for test, k in _KINDS if test(mode)), "not a regular file")


def _fix(exc: OSError, elsewhere: str) -> str:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"free some disk space or {elsewhere}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"check the permissions of the directory, or {elsewhere}"
    return elsewhere


def _target(path: Path, what: str, example: str, elsewhere: str, error: type[RecsysError]) -> tuple[Path, bool]:
    """(the file written for ``path``: a symlink's target, whether it exists); non-regular files refused."""
    try:
        if path.is_symlink():
            path = Path(os.path.realpath(path))
        st = path.stat()
    except FileNotFoundError:
        return path, False
    except OSError as exc:
        raise error(f"{_fix(exc, elsewhere)}: cannot write {what} {str(path)!r} ({why(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        such = f" such as {str(path / example)!r}" if example else ""
        raise error(f"give a file name{such}: cannot write {what} {str(path)!r}, a directory")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{elsewhere}: cannot write {what} {str(path)!r}, which exists and is {file_kind(st.st_mode)} "
                    f"(recsys only replaces regular files)")
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        # (root may write anything: the mode bits still say "keep")
        raise error(f"make {str(path)!r} writable (chmod u+w) or {elsewhere}: the {what} exists and is read-only, "
                    f"and recsys does not replace a read-only file")
    return path, True


def _not_an_input(path: Path, target: Path, inputs: Mapping, elsewhere: str, error: type[RecsysError]) -> None:
    """Refuse to write over a file the command reads (the same file, through any link, or inside an input folder)."""
    for src, name in inputs.items():
        try:
            src = Path(os.path.realpath(src))
            hit = (src.is_dir() and Path(os.path.realpath(target)).is_relative_to(src)) or \
                (src.is_file() and os.path.samefile(target, src))
        except OSError:
            continue
        if hit:
            inside = "inside " if src.is_dir() else ""
            raise error(f"{elsewhere}: {str(path)!r} is {inside}{name}, which this command reads; recsys never writes "
                        f"over its own input")


def _mode_for(target: Path) -> int:
    """Permission bits for the file replacing ``target``: its own, else the umask's default for a new file."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def _clean_stale(path: Path) -> None:
    """Remove ``.NAME.*.tmp`` files beside ``path`` left by writers that died (kill -9, power loss)."""
    prefix, suffix = f".{path.name}.", ".tmp"
    try:
        entries = os.listdir(path.parent)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(suffix)):
            continue
        file = path.parent / entry
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another recsys is writing this file right now
        try:
            if file.lstat().st_mtime < _STARTED and stat.S_ISREG(file.lstat().st_mode):
                file.unlink()
                log.info("removed %s, left by an interrupted write", file)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


# ---------------------------------------------------------------------------
# reading: every input file is a regular file, read within a size limit

#: the largest table read (bytes): zoo CSV files, ``--scores``, a ``--new`` CSV; raise it with
#: $RECSYS_MAX_INPUT_BYTES (10 M records take about 470 MB)
MAX_INPUT_BYTES = 4 << 30
#: the largest JSON document read (bytes): ``zoo.json``, a ``--new`` JSON file; $RECSYS_MAX_JSON_BYTES
MAX_JSON_BYTES = 64 << 20
#: the most digits of an integer in JSON (Python's own limit for converting digits to an int)
MAX_INT_DIGITS = 4300


def _limit(json_doc: bool) -> tuple[int, str]:
    env = "RECSYS_MAX_JSON_BYTES" if json_doc else "RECSYS_MAX_INPUT_BYTES"
    value = os.environ.get(env, "").strip()
    default = MAX_JSON_BYTES if json_doc else MAX_INPUT_BYTES
    if not value:
        return default, env
    try:
        return max(int(float(value)), 0), env
    except ValueError:
        raise RecsysError(f"set {env} to a number of bytes, e.g. {env}={default * 2}: it is {value[:40]!r}") from None


def check_input(path: str | os.PathLike, what: str, *, json_doc: bool = False, missing: str | None = None,
                error: type[RecsysError] = RecsysError) -> int:
    """The size of the input file ``path``, or one line saying why it cannot be read.

    It must be a regular file (not a directory, a FIFO that would block, a device such as
    /dev/zero that never ends, a symlink loop) of at most ``MAX_INPUT_BYTES`` (a JSON
    document: ``MAX_JSON_BYTES``), which ``$RECSYS_MAX_INPUT_BYTES`` (``$RECSYS_MAX_JSON_BYTES``)
    raises. ``missing``: the message when it does not exist; ``what`` names it in the others.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(missing or f"give an existing file as {what}: {str(path)!r} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"give a file as {what}, not a symlink loop: {str(path)!r} links back to itself") from None
        raise  # (no permission on a directory on the way: the caller knows which one to name)
    if not stat.S_ISREG(st.st_mode):
        raise error(f"give a regular file as {what}: {str(path)!r} is {file_kind(st.st_mode)}")
    limit, env = _limit(json_doc)
    if st.st_size > limit:
        raise error(f"raise {env} (now {limit:,} bytes) to read {what} {str(path)!r}: it holds {st.st_size:,} "
                    f"bytes")
    return st.st_size


def load_json(text: str, what: str, *, error: type[RecsysError] = RecsysError):
    """``json.loads`` that refuses what it would take silently or fail on with a traceback.

    A key given twice in an object (the last would win), an integer of more than
    :data:`MAX_INT_DIGITS` digits, nesting too deep to parse and a lone UTF-16 surrogate
    (``"\\ud800"``: half a character, which cannot be written out) are one line each; invalid
    JSON raises :class:`json.JSONDecodeError` for the caller to explain.
    """
    import json

    class Refused(Exception):
        pass

    def pairs(items):
        keys = [k for k, _ in items]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise Refused(f"give each key once in {what}: {twice[0]!r} appears {keys.count(twice[0])} times in "
                          f"one object")
        return dict(items)

    def integer(digits: str):
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise Refused(f"write numbers of at most {MAX_INT_DIGITS:,} digits in {what}: one has "
                          f"{len(digits.lstrip('-')):,}")
        return int(digits)

    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_int=integer)
    except Refused as exc:
        raise error(str(exc)) from None
    except RecursionError:
        raise error(f"give {what} as a flat JSON document: it is nested too deeply to read") from None
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"remove the lone surrogate {exc.object[exc.start:exc.end]!r} from {what}: it is half of a "
                    f"UTF-16 pair, not a character") from None
    return obj
