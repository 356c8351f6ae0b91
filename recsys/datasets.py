"""Named reference zoos: where to find them, and importers into the zoo format.

Four public fine-tuning histories are known by name:

``domainnet-270``
    10 torchvision ImageNet models x 270 DomainNet subsets ("retrain head"
    accuracies), from davechenxy/ModelRecommendation (Chen et al., 2024).
``transfergraph-image``
    185 Hugging Face image models (180 with records) x 13 datasets, with LogME
    and Reg-H-Score transferability scores, from TransferGraph/transfergraph (Li et al., 2024).
``vtab-hf``
    292 Hugging Face image models x 19 VTAB-1k tasks (best run per pair), from
    zLizy/transferability_graph (a predecessor of TransferGraph by the same group).
``parc-71``
    71 (architecture, source checkpoint) backbones x 7 classification targets,
    from dbolya/parc (Bolya et al., 2021).

:func:`load` resolves a name in this order, and downloads nothing when an
earlier place holds the files:

1. ``$RECSYS_DATA_DIR/<name>/`` (the raw files as published);
2. the user cache, ``<cache>/data/<name>/`` (see :func:`recsys.paths.cache_dir`);
3. a download with pooch from the pinned commit URLs, each file sha256-checked,
   into the user cache.

The raw files are then converted by the zoo's importer (:func:`import_domainnet`,
:func:`import_transfergraph`, :func:`import_vtab_hf`, :func:`import_parc`) into a
:class:`~recsys.zoo.Zoo`. A path to a
directory in the canonical zoo format is loaded as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from .errors import ZooError, closest
from .paths import cache_dir
from .zoo import Zoo, load_zoo

__all__ = ["ZooSource", "REGISTRY", "load", "fetch", "import_domainnet", "import_transfergraph", "import_vtab_hf",
           "import_parc", "resolve_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZooSource:
    """Where a named zoo's raw files live and how to import them."""

    name: str
    base_url: str
    files: Mapping[str, str]  # file name -> sha256
    importer: Callable[[Path], Zoo]
    description: str = ""


def import_domainnet(raw: Path) -> Zoo:
    """DomainNet-270 raw files → :class:`Zoo`.

    Column ``j`` of the record matrix is row ``j`` of the dataset metadata (the
    files name them differently: ``task{t}_{domain}_{num_pre_class}`` versus
    ``{index}_{domain}_{categories}``); the join is by position and checked on
    domain and samples per class.
    """
    raw = Path(raw)
    models = pd.read_csv(raw / "source_model_meta_data.csv")
    datasets = pd.read_csv(raw / "target_dataset_meta_data.csv")
    matrix = pd.read_csv(raw / "record_domainnet_10_270.csv", index_col=0)
    if matrix.shape[1] != len(datasets):
        raise ZooError(f"use domainnet-270's files of the pinned commit (they do not belong together): the record "
                       f"matrix has {matrix.shape[1]} columns but the dataset metadata {len(datasets)} rows")
    for j, (col, (_, row)) in enumerate(zip(matrix.columns, datasets.iterrows())):
        parts = str(col).split("_")
        name_parts = str(row["dataset name"]).split("_")
        n_labels = len([lb for lb in str(row["Labels"]).split(",") if lb.strip()])
        if (len(parts) != 3 or parts[1] != row["domain"] or parts[2] != str(row["num_pre_class"])
                or len(name_parts) != 3 or name_parts[1] != row["domain"]
                or name_parts[2] != str(row["categories"]) or n_labels != row["categories"]):
            raise ZooError(f"use domainnet-270's files of the pinned commit (they do not belong together): record "
                           f"column {j} ({col!r}) does not match dataset row {j} ({row['dataset name']!r}, domain "
                           f"{row['domain']}, {row['num_pre_class']} per class, {row['categories']} categories, "
                           f"{n_labels} labels)")
    unknown = sorted(set(matrix.index) - set(models["model name"]))
    if unknown:
        raise ZooError(f"use domainnet-270's files of the pinned commit (they do not belong together): record rows "
                       f"{unknown} are not in source_model_meta_data.csv")
    models = models.rename(columns={"model name": "model"})[
        ["model", "Architecure_family", "# of parameters", "acc@1 (on ImageNet-1K)", "GFLOPS"]]
    datasets = datasets.rename(columns={"dataset name": "dataset"})[
        ["dataset", "domain", "num_pre_class", "categories", "Sample_Size", "Labels"]]
    values = matrix.to_numpy(dtype=float)
    mi, dj = np.nonzero(~np.isnan(values))
    records = pd.DataFrame({"model": matrix.index.to_numpy(str)[mi],
                            "dataset": datasets["dataset"].to_numpy(str)[dj],
                            "accuracy": values[mi, dj]})
    roles = {
        "models": {"id": "model", "categorical": ["Architecure_family"],
                   "numeric": ["# of parameters", "acc@1 (on ImageNet-1K)", "GFLOPS"],
                   "text": [], "log": ["# of parameters", "GFLOPS"]},
        "datasets": {"id": "dataset", "categorical": ["domain"],
                     "numeric": ["num_pre_class", "categories", "Sample_Size"],
                     "text": ["domain", "Labels"], "log": ["num_pre_class", "categories", "Sample_Size"]},
    }
    return Zoo.from_frames(models, datasets, records[["model", "dataset", "accuracy"]], None,
                           name="domainnet-270", roles=roles, path=raw)


_TG_METRIC = {"TransferabilityMethod.LOG_ME": "LOG_ME", "TransferabilityMethod.REG_H_SCORE": "REG_H_SCORE"}


def import_transfergraph(raw: Path) -> Zoo:
    """TransferGraph image-classification raw files → :class:`Zoo`.

    Datasets with records but no row in ``target_dataset_features.csv``
    (food101) are kept with empty metadata. Duplicated score rows for one
    (model, dataset, metric) are averaged; metric names lose their
    ``TransferabilityMethod.`` prefix (``LOG_ME``, ``REG_H_SCORE``).
    """
    raw = Path(raw)
    rec = pd.read_csv(raw / "records.csv", index_col=0)
    mod = pd.read_csv(raw / "model_config_dataset.csv")
    feat = pd.read_csv(raw / "target_dataset_features.csv")
    sc = pd.read_csv(raw / "transferability_score_records.csv", index_col=0)

    records = rec.rename(columns={"finetuned_dataset": "dataset", "eval_accuracy": "accuracy"})
    records = records[["model", "dataset", "accuracy"]].dropna()
    # The history holds one run per pair; should a pair repeat, keep the mean.
    records = records.groupby(["model", "dataset"], as_index=False, sort=False)["accuracy"].mean()

    models = _hf_models(mod, records["model"])

    datasets = feat.rename(columns={"finetune_dataset": "dataset"})
    extra = sorted(set(records["dataset"]) - set(datasets["dataset"]))
    if extra:
        datasets = pd.concat([datasets, pd.DataFrame({"dataset": extra})], ignore_index=True)

    # Two lines of the published file are truncated (no metric, model or score): drop them.
    scores = sc.rename(columns={"target_dataset": "dataset"})[["model", "dataset", "metric", "score"]].dropna()
    scores["metric"] = scores["metric"].map(lambda m: _TG_METRIC.get(m, str(m).split(".")[-1]))
    scores = scores.groupby(["model", "dataset", "metric"], as_index=False, sort=False)["score"].mean()
    scores = scores[scores["model"].isin(models["model"]) & scores["dataset"].isin(datasets["dataset"])]

    roles = {
        "models": _HF_MODEL_ROLES,
        "datasets": {"id": "dataset", "categorical": [], "numeric": ["size", "number_of_classes"], "text": [],
                     "log": ["size", "number_of_classes"]},
    }
    return Zoo.from_frames(models, datasets, records, scores, name="transfergraph-image", roles=roles, path=raw)


#: VTAB task of a run: (dataset, label column or preprocessing) -> task name. Runs not listed here use
#: their dataset's name (the dataset's default label).
_VTAB_TASKS = {
    ("clevr", "clevr_count"): "clevr_count",
    ("clevr", "clevr_distance"): "clevr_distance",
    ("dsprites", "dsprites_orientation"): "dsprites_orientation",
    ("dsprites", "dsprites_location"): "dsprites_location",
    ("smallnorb", "label_azimuth"): "smallnorb_label_azimuth",
    ("smallnorb", "label_elevation"): "smallnorb_label_elevation",
}
#: finetune_dataset_config.csv spells some tasks differently from the runs
_VTAB_CONFIG_NAMES = {"svhn": "svhn_cropped", "pets": "oxford_iiit_pet", "flowers": "oxford_flowers102"}
#: the VTAB-1k regime: 800 training images (and 200 for validation)
_VTAB_TRAIN_SLICE = ":800"


def _vtab_task(dataset: str, configs: str) -> str:
    import ast

    try:
        cfg = ast.literal_eval(configs) if isinstance(configs, str) else {}
    except (ValueError, SyntaxError):
        cfg = {}
    if not isinstance(cfg, dict):
        cfg = {}
    for key in (cfg.get("preprocess"), cfg.get("label_name")):
        if (dataset, key) in _VTAB_TASKS:
            return _VTAB_TASKS[(dataset, key)]
    return dataset


def import_vtab_hf(raw: Path) -> Zoo:
    """vtab-hf raw files → :class:`Zoo` (Hugging Face image models on VTAB-1k tasks).

    The history holds several runs per (model, dataset); the rule that turns
    them into one accuracy per (model, task):

    1. **Task** = dataset + the label it predicts: ``clevr`` (count, distance),
       ``dsprites`` (orientation, x position) and ``smallnorb`` (azimuth,
       elevation) are two tasks each (VTAB counts them so: a backbone good at
       counting objects need not be good at their distance); every other
       dataset is one task (its default label). 19 tasks.
    2. **Regime**: only VTAB-1k runs (``train_slice`` ``:800``, 800 training
       images) count. Runs on 80% or all of the training set are another data
       regime (their accuracies correlate 0.54 with the VTAB-1k ones of the
       same pairs); mixing them would make a record depend on which regime
       happened to be run. They are dropped, with a logged count.
    3. **Hyper-parameters**: of a pair's VTAB-1k runs (learning rates 0.01 and
       0.1, batch sizes), the best test accuracy is the record, as a
       practitioner who tunes the learning rate would report it.

    Models without a row in ``model_config_dataset.csv`` keep their records
    (empty metadata); task metadata (size, classes) come from
    ``finetune_dataset_config.csv`` where it has the task.
    """
    raw = Path(raw)
    runs = pd.read_csv(raw / "ftrecords_img.csv", index_col=0)
    mod = pd.read_csv(raw / "model_config_dataset.csv")
    cfg = pd.read_csv(raw / "finetune_dataset_config.csv")
    runs = runs.dropna(subset=["model_identifier", "train_dataset_name", "test_accuracy"])
    runs = runs.assign(task=[_vtab_task(d, c) for d, c in zip(runs["train_dataset_name"], runs["configs"])])
    regime = runs["train_slice"].astype(str).str.strip() == _VTAB_TRAIN_SLICE
    if (~regime).any():
        pairs_all = runs.groupby(["model_identifier", "task"]).ngroups
        pairs_kept = runs[regime].groupby(["model_identifier", "task"]).ngroups
        log.info("vtab-hf: dropped %d of %d runs outside the VTAB-1k regime (train_slice other than %s); "
                 "%d of %d (model, task) pairs had no VTAB-1k run", int((~regime).sum()), len(runs),
                 _VTAB_TRAIN_SLICE, pairs_all - pairs_kept, pairs_all)
    runs = runs[regime]
    records = (runs.groupby(["model_identifier", "task"], as_index=False, sort=True)["test_accuracy"].max()
               .rename(columns={"model_identifier": "model", "task": "dataset", "test_accuracy": "accuracy"}))
    n_runs = int(regime.sum())
    log.info("vtab-hf: %d VTAB-1k runs -> %d records (the best run of each (model, task) pair)", n_runs,
             len(records))

    models = _hf_models(mod, records["model"])
    cfg = cfg.rename(columns={"finetune_dataset": "dataset"})
    cfg["dataset"] = cfg["dataset"].map(lambda d: _VTAB_CONFIG_NAMES.get(d, d))
    tasks = pd.DataFrame({"dataset": sorted(records["dataset"].unique())})
    tasks["source_dataset"] = [t.split("_label_")[0] if t.startswith("smallnorb") else
                               ("clevr" if t.startswith("clevr") else "dsprites" if t.startswith("dsprites") else t)
                               for t in tasks["dataset"]]
    datasets = tasks.merge(cfg[["dataset", "size", "number_of_classes"]], on="dataset", how="left")
    roles = {
        "models": _HF_MODEL_ROLES,
        "datasets": {"id": "dataset", "categorical": ["source_dataset"], "numeric": ["size", "number_of_classes"],
                     "text": [], "log": ["size", "number_of_classes"]},
    }
    return Zoo.from_frames(models, datasets, records, None, name="vtab-hf", roles=roles, path=raw)


def _hf_models(mod: pd.DataFrame, recorded: pd.Series) -> pd.DataFrame:
    """Model metadata in TransferGraph's layout → the zoo's ``models.csv`` (recorded models without a row kept)."""
    models = mod[["model", "architectures", "model_type", "dataset", "input_shape", "output_shape", "#labels",
                  "accuracy", "number_of_parameters", "memory_consumption"]]
    models = models.rename(columns={"dataset": "pretrain_dataset", "accuracy": "reported_accuracy"})
    models = models.drop_duplicates("model")
    # "['ViTForImageClassification']" → "ViTForImageClassification" (missing values stay missing)
    models = models.assign(architectures=models["architectures"].map(
        lambda v: v.strip("[]'\" ") if isinstance(v, str) else v))
    missing = sorted(set(recorded) - set(models["model"]))
    if missing:
        log.info("%d recorded model(s) have no metadata row; they keep their records with empty metadata",
                 len(missing))
        models = pd.concat([models, pd.DataFrame({"model": missing})], ignore_index=True)
    return models


_HF_MODEL_ROLES = {"id": "model", "categorical": ["architectures", "model_type", "pretrain_dataset"],
                   "numeric": ["input_shape", "output_shape", "#labels", "reported_accuracy",
                               "number_of_parameters", "memory_consumption"],
                   "text": [], "log": ["#labels", "number_of_parameters", "memory_consumption"]}

#: Number of classes of PARC's targets (from each dataset's definition; the raw file has no dataset metadata).
_PARC_CLASSES = {"cifar10": 10, "oxford_pets": 37, "cub200": 200, "caltech101": 101, "stanford_dogs": 120,
                 "nabird": 555, "voc2007": 20}


def import_parc(raw: Path) -> Zoo:
    """parc-71 raw files → :class:`Zoo` (PARC's fine-tuning oracle, Bolya et al. 2021).

    ``all.csv`` only (``controlled.csv`` is a subset of its rows). A model is
    the pair (architecture, source checkpoint), named ``architecture/source``;
    its metadata are those two columns. ``Oracle`` is an accuracy in percent:
    divided by 100; ``-1`` marks a missing run and is dropped (logged). Each
    target gets its number of classes (from the dataset's definition: the file
    has no dataset metadata).
    """
    raw = Path(raw)
    df = pd.read_csv(raw / "all.csv")
    df = df.rename(columns=lambda c: str(c).strip())
    df["model"] = df["Architecture"].astype(str).str.strip() + "/" + df["Source Dataset"].astype(str).str.strip()
    df["dataset"] = df["Target Dataset"].astype(str).str.strip()
    missing = df["Oracle"] < 0
    if missing.any():
        log.info("parc-71: dropped %d run(s) marked -1 (missing) in all.csv", int(missing.sum()))
    models = (df[["model", "Architecture", "Source Dataset"]].drop_duplicates("model")
              .rename(columns={"Architecture": "architecture", "Source Dataset": "source"})
              .sort_values("model").reset_index(drop=True))
    rec = df[~missing]
    records = pd.DataFrame({"model": rec["model"], "dataset": rec["dataset"], "accuracy": rec["Oracle"] / 100.0})
    names = sorted(df["dataset"].unique())
    datasets = pd.DataFrame({"dataset": names, "num_classes": [_PARC_CLASSES.get(d, np.nan) for d in names]})
    roles = {
        "models": {"id": "model", "categorical": ["architecture", "source"], "numeric": [], "text": []},
        "datasets": {"id": "dataset", "categorical": [], "numeric": ["num_classes"], "text": [],
                     "log": ["num_classes"]},
    }
    return Zoo.from_frames(models, datasets, records, None, name="parc-71", roles=roles, path=raw)


REGISTRY: dict[str, ZooSource] = {
    "domainnet-270": ZooSource(
        name="domainnet-270",
        base_url="https://raw.githubusercontent.com/davechenxy/ModelRecommendation/"
                 "4f49c629bc8ac1fd605f90972c4c0751437e18c3/",
        files={
            "source_model_meta_data.csv": "246f0e10f62c2bb7a6400298ba35d35d3682a79d2ca74fa82d4a6a9eb6ff5886",
            "target_dataset_meta_data.csv": "e2b29e05c0e12b656fb4806bd976e60fea4d3ff3f7c049e6ff9a91ea18c96350",
            "record_domainnet_10_270.csv": "8af7ac2d88c452198ba1999830e09cdabb229c738f5b6351085544bf2219cacb",
        },
        importer=import_domainnet,
        description="10 ImageNet models x 270 DomainNet subsets (Chen et al., 2024)",
    ),
    "transfergraph-image": ZooSource(
        name="transfergraph-image",
        base_url="https://raw.githubusercontent.com/TransferGraph/transfergraph/"
                 "0458aff3ae6832926bed0bac515f243f99a98df0/resources/experiments/image_classification/",
        files={
            "records.csv": "0850df5da3bfd8ac3bf730ab985cac37362b68bcd16c4fc88eb7cdb5914861de",
            "model_config_dataset.csv": "ae18ff2ece00fef61cda755038122f306a499b6c8d82d36530765e862ab2747b",
            "target_dataset_features.csv": "9270a0f342b184d76a0069ff22d0286cc06e920c219a1f983badb1c28bc08ccf",
            "transferability_score_records.csv": "5803e4e3c08c53d95a6e451fc1509eb2a83494ea3ff1094db278e0f0a1875de9",
        },
        importer=import_transfergraph,
        description="185 Hugging Face image models x 13 datasets, LogME / Reg-H-Score (Li et al., 2024)",
    ),
    "vtab-hf": ZooSource(
        name="vtab-hf",
        base_url="https://raw.githubusercontent.com/zLizy/transferability_graph/"
                 "9c220479aa4daddb1f22a9b957f79092a8eda4d4/doc/",
        files={
            "ftrecords_img.csv": "ec7e0dbe538a1509e1b4a25ff14f0e65ffd8862ccc6b93da0f1fe79cb67203a7",
            "model_config_dataset.csv": "ae18ff2ece00fef61cda755038122f306a499b6c8d82d36530765e862ab2747b",
            "finetune_dataset_config.csv": "9270a0f342b184d76a0069ff22d0286cc06e920c219a1f983badb1c28bc08ccf",
        },
        importer=import_vtab_hf,
        description="292 Hugging Face image models x 19 VTAB-1k tasks, best run per pair (zLizy/transferability_graph)",
    ),
    "parc-71": ZooSource(
        name="parc-71",
        base_url="https://raw.githubusercontent.com/dbolya/parc/ddfca43a84d35328897d107d6f86e860b11801ce/oracles/",
        files={
            "all.csv": "1edb1115e9bffbf260c694843089946947e9ff97a16e83ab210fecfdf3763436",
        },
        importer=import_parc,
        description="71 (architecture, source) backbones x 7 classification targets (PARC, Bolya et al., 2021)",
    ),
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _complete(directory: Path, source: ZooSource, *, verify: bool) -> bool:
    if not all((directory / f).is_file() for f in source.files):
        return False
    bad = [f for f, sha in source.files.items() if _sha256(directory / f) != sha]
    if bad and verify:
        log.warning("%s: %s differ from the pinned sha256; downloading them again", directory, ", ".join(bad))
        return False
    if bad:
        log.warning("%s: %s differ from the pinned sha256 of %s; using them as they are", directory,
                    ", ".join(bad), source.name)
    return True


def fetch(name: str, *, download: bool = True, base_url: str | None = None) -> Path:
    """Directory holding the raw files of the named zoo (downloading them if needed).

    Looks in ``$RECSYS_DATA_DIR/<name>/`` first (used as it is), then in the
    user cache (``<cache>/data/<name>/``, each file sha256-checked), and only
    then downloads with pooch. Downloads go to a staging directory beside the
    cache and are moved in once every file passed its sha256 check, so a failed
    or tampered download leaves the cache as it was.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY`.
    download : bool
        When False, raise instead of downloading.
    base_url : str, optional
        URL of a directory holding the files, instead of the pinned one (the same
        sha256 apply). Default: ``$RECSYS_DATA_URL/<name>/`` when that variable is
        set (a mirror of the whole data tree), else the pinned commit URL.

    Returns
    -------
    pathlib.Path
        Directory holding every file of ``REGISTRY[name].files``.

    Raises
    ------
    ZooError
        Unknown name, download refused or failed, checksum mismatch.
    """
    source = _source(name)
    name = source.name
    env = os.environ.get("RECSYS_DATA_DIR")
    if env:
        local = Path(env).expanduser() / name
        try:
            found = _complete(local, source, verify=False)
        except OSError as exc:
            raise ZooError(f"fix the permissions of RECSYS_DATA_DIR, or unset it to use the cache or a download: "
                           f"cannot read RECSYS_DATA_DIR={env} ({exc.strerror or exc}: {exc.filename})") from None
        if found:
            log.info("using %s from RECSYS_DATA_DIR (%s)", name, local)
            return local
        log.info("RECSYS_DATA_DIR=%s has no complete %s/; looking further", env, name)
    cached = cache_dir() / "data" / name
    try:
        found = _complete(cached, source, verify=True)
    except OSError as exc:
        raise ZooError(f"fix the permissions of the data cache, or set RECSYS_CACHE_DIR to another directory: cannot "
                       f"read {cached} ({exc.strerror or exc})") from None
    if found:
        log.info("using %s from the cache (%s)", name, cached)
        return cached
    if not download:
        raise ZooError(f"set RECSYS_DATA_DIR to a directory holding {name}/, or allow the download: zoo {name!r} is "
                       f"not available locally")
    mirror = os.environ.get("RECSYS_DATA_URL")
    url = base_url or (f"{mirror.rstrip('/')}/{name}/" if mirror else source.base_url)
    _download(source, url.rstrip("/") + "/", cached)
    return cached


def _download(source: ZooSource, url: str, cached: Path) -> None:
    """Download every file of ``source`` missing or stale in ``cached``, all-or-nothing."""
    import shutil
    import tempfile

    import pooch

    cached.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{source.name}.", suffix=".partial", dir=cached.parent))
    pooch_log = pooch.get_logger()
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)  # pooch prints every download on stderr; we log it ourselves
    try:
        todo = [f for f, sha in source.files.items()
                if not ((cached / f).is_file() and _sha256(cached / f) == sha)]
        for fname in todo:
            sha = source.files[fname]
            log.info("downloading %s of zoo %s from %s", fname, source.name, url)
            try:
                pooch.retrieve(url=url + fname, known_hash=f"sha256:{sha}", fname=fname, path=stage,
                               progressbar=False, downloader=pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT))
            except ValueError as exc:  # pooch reports a hash mismatch as ValueError
                if "hash" not in str(exc).lower():
                    raise _download_failed(source.name, fname, url, exc) from None
                raise ZooError(f"check RECSYS_DATA_URL or use a trusted copy via RECSYS_DATA_DIR: {fname} downloaded "
                               f"from {url} for zoo {source.name!r} does not match its pinned sha256 "
                               f"({sha[:12]}...); the source changed or the download is corrupt, and nothing was "
                               f"kept") from None
            except Exception as exc:  # network errors: requests / urllib3 / OS
                raise _download_failed(source.name, fname, url, exc) from None
            if _sha256(stage / fname) != sha:  # belt and braces: never trust an unverified file
                raise ZooError(f"check RECSYS_DATA_URL or use a trusted copy via RECSYS_DATA_DIR: {fname} for zoo "
                               f"{source.name!r} failed its sha256 check after download; nothing was kept")
        cached.mkdir(parents=True, exist_ok=True)
        for fname in todo:
            os.replace(stage / fname, cached / fname)
    finally:
        pooch_log.setLevel(level)
        shutil.rmtree(stage, ignore_errors=True)


#: seconds to connect to, and then to hear from, the download server: an offline machine fails in seconds
#: (one attempt per file, no retries)
DOWNLOAD_TIMEOUT = (5, 10)


def _download_failed(zoo: str, fname: str, url: str, exc: BaseException) -> ZooError:
    """One line, the fix first, then the short cause (not the chain of urllib3 exceptions behind it)."""
    return ZooError(f"set RECSYS_DATA_DIR to a directory holding {zoo}/ (its raw files), or RECSYS_DATA_URL to a "
                    f"mirror of the data: could not download {fname} of zoo {zoo!r} from {url} "
                    f"({_network_cause(exc)})")


def _network_cause(exc: BaseException) -> str:
    """The root of a download failure in a few words: no such host, refused, timed out, an HTTP status."""
    import socket

    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the reasons wrapped inside requests' and urllib3's exceptions
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__ or next((a for a in getattr(e, "args", ()) if isinstance(a, BaseException)),
                                                 None) or getattr(e, "reason", None)
        if not isinstance(e, BaseException):
            e = None
    names = " ".join(type(x).__name__ for x in chain)
    text = " ".join(str(x) for x in chain)
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return f"HTTP {response.status_code} {getattr(response, 'reason', '') or ''}".strip()
    if "NameResolution" in names or any(isinstance(x, socket.gaierror) for x in chain) \
            or "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "the server's name does not resolve: no network?"
    if "ConnectTimeout" in names or "timed out" in text.lower() or "Timeout" in names:
        return "the server did not answer in time: no network?"
    if any(isinstance(x, ConnectionRefusedError) for x in chain) or "Connection refused" in text:
        return "connection refused"
    first = next((x for x in reversed(chain) if str(x)), exc)
    return f"{type(first).__name__}: {(str(first).splitlines() or [''])[0][:160]}"


def resolve_name(name: str) -> str:
    """Canonical registry key of ``name``, or a ZooError naming the closest ones."""
    if name in REGISTRY:
        return name
    raise _no_such_zoo(name)


def _no_such_zoo(name: str) -> ZooError:
    """The one message for a --zoo that names nothing: neither a named zoo nor a directory."""
    hint = closest(name, REGISTRY)
    hint = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
    return ZooError(f"give a named zoo ({', '.join(REGISTRY)}) or a zoo directory (models.csv, datasets.csv, "
                    f"records.csv): {name!r} is neither a named zoo{hint} nor an existing directory")


def _raw_files_of(path: Path) -> ZooSource | None:
    """The named zoo whose raw files (as published) ``path`` holds, if any."""
    try:
        if (path / "models.csv").exists():
            return None
        return next((s for s in REGISTRY.values() if all((path / f).is_file() for f in s.files)), None)
    except OSError:  # (a folder without permission: load_zoo says so)
        return None


def _source(name: str) -> ZooSource:
    return REGISTRY[resolve_name(name)]


def load(name_or_path: str | os.PathLike = "domainnet-270", *, download: bool = True) -> Zoo:
    """The zoo named ``name_or_path`` (see :data:`REGISTRY`) or read from a directory.

    Parameters
    ----------
    name_or_path : str or path-like
        A key of :data:`REGISTRY`, a directory in the zoo format, or the name
        of such a directory inside ``$RECSYS_DATA_DIR``.
    download : bool
        Allow downloading a named zoo that is found neither in
        ``$RECSYS_DATA_DIR`` nor in the cache.

    Returns
    -------
    Zoo

    Raises
    ------
    ZooError
        Unknown name (with the closest ones), missing or invalid files.

    Examples
    --------
    >>> zoo = load("domainnet-270")          # doctest: +SKIP
    >>> zoo.summary()["models"], zoo.summary()["datasets"]  # doctest: +SKIP
    (10, 270)
    """
    key = str(name_or_path)
    if key not in REGISTRY:
        path = Path(key).expanduser()
        if path.is_dir() or isinstance(name_or_path, os.PathLike) or os.sep in key or key.startswith((".", "~")):
            if not os.path.lexists(path):
                raise _no_such_zoo(key)
            source = _raw_files_of(path)
            if source is not None:
                where = (f"RECSYS_DATA_DIR={str(path.parent)!r}" if path.name == source.name else
                         f"the folder named {source.name!r} inside RECSYS_DATA_DIR")
                raise ZooError(f"give the name {source.name!r} instead, with {where}: {str(path)!r} holds the raw "
                               f"files of that named zoo, not a zoo in the canonical format (models.csv ...)")
            return load_zoo(path)
        env = os.environ.get("RECSYS_DATA_DIR")
        try:
            in_data_dir = bool(env) and (Path(env) / key / "records.csv").is_file()
        except OSError as exc:
            raise ZooError(f"cannot read RECSYS_DATA_DIR={env} ({exc.strerror or exc}); fix its permissions, or "
                           f"unset it") from None
        if in_data_dir:
            return load_zoo(Path(env) / key)
    source = _source(key)
    raw = fetch(source.name, download=download)
    try:
        return source.importer(raw)
    except ZooError:
        raise
    except (OSError, KeyError, ValueError, IndexError, pd.errors.ParserError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ZooError(f"the raw files of zoo {source.name!r} in {raw} do not have the published layout "
                       f"({type(exc).__name__}: {msg}); use the files at the pinned commit "
                       f"(delete them to download again)") from None
