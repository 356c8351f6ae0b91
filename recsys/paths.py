"""Where recsys keeps its files: caches (downloads, text embeddings) and the default model.

Both honour an environment variable first, then the platform's user directories
(``platformdirs``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "default_model_path", "write_cache_npz"]


def cache_dir() -> Path:
    """``$RECSYS_CACHE_DIR``, else the user cache directory: downloaded zoos and text embeddings."""
    env = os.environ.get("RECSYS_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("recsys"))


def default_model_path() -> Path:
    """``$RECSYS_MODEL``, else ``model.npz`` in the user data directory: what `recsys fit` writes by default."""
    env = os.environ.get("RECSYS_MODEL")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("recsys")) / "model.npz"


def write_cache_npz(file: Path, what: str, **arrays) -> bool:
    """Write a cache file (``np.savez``) atomically: temporary file + rename, so a reader never sees half a file.

    A cache that cannot be written (read-only, full disk) is not fatal: a warning naming ``what`` and the
    file, and False.
    """
    import logging
    import tempfile

    import numpy as np

    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, file)
        tmp = None
        return True
    except OSError as exc:
        logging.getLogger("recsys.paths").warning("could not write the %s %s (%s)", what, file, exc)
        return False
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
