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
    """Write a cache file (``np.savez``) atomically (:func:`recsys.fileio.write_atomic`).

    A cache that cannot be written (read-only, full disk) is not fatal: a warning naming ``what`` and the
    file, and False.
    """
    import logging

    import numpy as np

    from .errors import RecsysError
    from .fileio import write_atomic

    try:
        write_atomic(file, lambda fh: np.savez(fh, **arrays), what=what,
                     elsewhere="set RECSYS_CACHE_DIR to a directory you may write to")
        return True
    except RecsysError as exc:
        logging.getLogger("recsys.paths").warning("%s", exc)
        return False
