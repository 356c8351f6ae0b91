"""Where recsys keeps its files: caches (downloads, text embeddings) and the default model.

Both honour an environment variable first, then the platform's user directories
(``platformdirs``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "default_model_path"]


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
