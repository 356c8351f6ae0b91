#!/usr/bin/env python
"""Scale benchmark: synthetic zoos from 10 x 270 to 10,000 x 100,000 (10 M records), every engine.

    python benchmarks/scale.py                               # every size, every engine -> benchmarks/results/
    python benchmarks/scale.py --sizes 10k,30k --engines additive,als
    python benchmarks/scale.py --sizes 2000x5000@0.5% --max-records 1e6
    python benchmarks/scale.py --smoke --out DIR             # a few seconds (the tests run it)

For each size a seeded synthetic zoo is generated once and cached by (size, seed)
(``--cache-dir``, default ``$RECSYS_SCALE_CACHE`` or ``<tmp>/recsys-scale-cache``); see
:func:`generate` for its structure. 10% of its records are hidden before fitting (the
hold-out). For each engine, every measurement runs in its own child process, under a
wall-clock timeout and a memory cap, so an engine that fails is recorded ("timeout",
"out of memory", or its one-line error) and the benchmark goes on; an engine that fails
at one size is not run at the larger ones.

Measured per (size, engine):

- whole-process ``recsys fit --zoo DIR --engine E --out FILE --seed 0`` (text encoder,
  selection and calibration included): wall time, peak RSS of that child alone
  (``os.wait4``), model file size;
- in-process, after ``recsys.load_model``: median latency of ``rec.topk(dataset, k=10)``
  over known datasets and of ``rec.topk_new(metadata, k=10)`` over brand-new datasets
  drawn from the same generator; hold-out Pearson (mean over datasets with >= 3 hidden
  records of the Pearson correlation between predicted and hidden accuracies; a seeded
  sample of datasets on the large zoos) and its difference to ``additive``;
- whole-process ``recsys topk`` (median of 3) as a ratio to the interpreter floor
  ``python -c "import numpy, click, json"`` measured in the same run;
- whole-process ``recsys predict --format csv`` of the whole matrix, streamed into a pipe
  that counts its lines (so a 10^9-cell matrix needs no disk).

Writes ``scale.md`` (table, hardware line, command, fitted growth exponents), ``scale.csv``
(every figure) and ``scale.png`` (log-log fit time and peak memory against records).
Linux only (``os.wait4``, ``resource`` in the launcher, ``/proc`` for the memory watchdog).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("scale")

#: bump when the generator changes: cached zoos of another version are not reused
GENERATOR_VERSION = 1
HOLDOUT = 0.1


# ---------------------------------------------------------------------------
# sizes


@dataclasses.dataclass(frozen=True)
class Size:
    """A zoo size: ``models`` x ``datasets`` with ``records`` observed cells (hold-out included)."""

    name: str
    models: int
    datasets: int
    records: int
    ladder: bool = True  # on the growth ladder (False: another shape, left out of the growth exponents)

    @property
    def density(self) -> float:
        return self.records / (self.models * self.datasets)

    @property
    def fitted(self) -> int:
        """Records left for fitting once the hold-out is hidden."""
        return self.records - _n_holdout(self.records)

    def label(self) -> str:
        return f"{self.models:,} x {self.datasets:,}"


def _n_holdout(n: int) -> int:
    return int(round(HOLDOUT * n))


#: the sizes of issue 12 (records = the observed cells, 10% of which are hidden for the hold-out)
SIZES = {s.name: s for s in [
    Size("smoke", 40, 12, 384, False),    # for the tests: a few datasets with >= 3 hidden records
    Size("2.7k", 10, 270, 2_700),          # DomainNet-270's shape, every cell known
    Size("10k", 50, 1_000, 10_000),        # 20%
    Size("30k", 200, 3_000, 30_000),       # 5%
    Size("real", 1_300, 36, 46_000, False),  # the shape of a public record set of Hugging Face checkpoints
    Size("100k", 500, 10_000, 100_000),    # 2%
    Size("300k", 1_000, 30_000, 300_000),  # 1%
    Size("1m", 5_000, 100_000, 1_000_000),  # 0.2%
    Size("10m", 10_000, 100_000, 10_000_000),  # 1%
]}
DEFAULT_SIZES = ["2.7k", "10k", "30k", "real", "100k", "300k", "1m", "10m"]


def parse_size(spec: str) -> Size:
    """A size by name (``SIZES``) or as ``MxD@DENSITY``.

    ``DENSITY`` is a fraction (``0.01``), a percentage (``1%``) or a record count
    (``46000``, ``46k``, ``1m``).

    Examples
    --------
    >>> parse_size("500x10000@2%").records
    100000
    >>> parse_size("1300x36@46k").records
    46000
    """
    spec = spec.strip()
    if spec.lower() in SIZES:
        return SIZES[spec.lower()]
    m = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)\s*@\s*([0-9.eE+]+)\s*([%kKmM]?)", spec)
    if not m:
        raise ValueError(f"size {spec!r}: give a name ({', '.join(SIZES)}) or MxD@DENSITY, e.g. 500x10000@2%, "
                         f"500x10000@0.02 or 1300x36@46000")
    n_m, n_d, value, unit = int(m[1]), int(m[2]), float(m[3]), m[4].lower()
    cells = n_m * n_d
    if unit == "%":
        records = value / 100 * cells
    elif unit in ("k", "m"):
        records = value * (1e3 if unit == "k" else 1e6)
    elif value <= 1:
        records = value * cells
    else:
        records = value
    records = int(round(records))
    if not 1 <= records <= cells or n_m < 2 or n_d < 2:
        raise ValueError(f"size {spec!r}: needs at least 2 models, 2 datasets and 1 .. {cells} records")
    return Size(spec, n_m, n_d, records)


# ---------------------------------------------------------------------------
# the synthetic zoo

RANK = 8
FAMILIES = ["resnet", "vit", "convnext", "efficientnet", "deit", "swin", "mobilenet", "regnet", "beit", "densenet",
            "mlp-mixer", "poolformer", "levit", "coatnet", "maxvit", "eva", "dinov2", "clip-vit", "convnextv2",
            "edgenext", "resnext", "inception", "xception", "ghostnet", "mobilevit", "cait", "twins", "pvt"]
ORGS = ["timm", "google", "facebook", "microsoft", "openai", "nvidia", "apple", "hf-community"]
PRETRAINING = ["imagenet-1k", "imagenet-21k", "laion-2b", "jft-300m", "instagram-3.5b", "openimages",
               "places365", "inaturalist-2021"]
PRETRAINING_P = [0.40, 0.25, 0.10, 0.05, 0.05, 0.06, 0.04, 0.05]
DOMAINS = ["natural", "medical", "satellite", "sketch", "document", "microscopy", "food", "vehicles",
           "texture", "faces", "art", "industrial"]
DOMAINS_P = [0.22, 0.10, 0.08, 0.07, 0.06, 0.05, 0.07, 0.08, 0.05, 0.04, 0.08, 0.10]
#: label names per topic: a dataset's label list is drawn from its topic, and the topic moves its factors
TOPICS = {
    "animals": "cat dog horse cow sheep elephant bear zebra giraffe lion tiger wolf fox deer rabbit squirrel "
               "monkey kangaroo panda camel goat pig hamster otter raccoon",
    "birds": "sparrow robin eagle hawk owl parrot penguin flamingo pelican heron swan duck goose crow raven "
             "magpie finch warbler woodpecker hummingbird kingfisher albatross puffin crane",
    "vehicles": "car truck bus motorcycle bicycle van ambulance tractor train tram airplane helicopter boat "
                "ship submarine scooter taxi limousine pickup minivan jeep fire_engine trolleybus",
    "food": "pizza burger sushi ramen pasta salad steak taco burrito dumpling pancake waffle donut cake "
            "ice_cream sandwich curry paella croissant bagel omelette soup risotto",
    "plants": "rose tulip daisy sunflower orchid lily lotus cactus fern maple oak pine birch palm bamboo "
              "moss ivy lavender poppy iris magnolia dandelion clover",
    "medical": "normal pneumonia tumor nodule fracture effusion edema cardiomegaly melanoma nevus carcinoma "
               "lesion polyp hemorrhage infarct cyst calcification atelectasis fibrosis",
    "land_use": "forest river highway residential industrial pasture crop lake sea_ice desert beach farmland "
                "airport harbor parking stadium bridge meadow wetland mountain",
    "objects": "chair table lamp bottle cup keyboard laptop phone clock book scissors umbrella backpack "
               "guitar piano camera television microwave toaster vase candle pillow",
    "textures": "striped dotted braided bubbly cracked woven marbled knitted porous scaly wrinkled pleated "
                "honeycombed zigzagged grooved lined meshed perforated paisley frilly",
    "documents": "invoice letter form resume memo email report receipt handwritten scientific_publication "
                 "news_article questionnaire budget specification advertisement presentation file_folder",
    "cells": "neutrophil eosinophil lymphocyte monocyte basophil platelet erythroblast mitosis apoptosis "
             "nucleus cytoplasm mitochondria vesicle membrane",
    "defects": "scratch dent crack stain hole rust burr misalignment contamination chip bent_lead "
               "missing_part short_circuit open_circuit spur corrosion",
}
TOPIC_NAMES = list(TOPICS)
#: each domain draws its topics from a few related ones (first most often)
DOMAIN_TOPICS = {
    "natural": ["animals", "birds", "plants", "objects"], "medical": ["medical", "cells"],
    "satellite": ["land_use", "vehicles"], "sketch": ["objects", "animals", "vehicles"],
    "document": ["documents"], "microscopy": ["cells", "medical"], "food": ["food", "plants"],
    "vehicles": ["vehicles", "objects"], "texture": ["textures", "defects"], "faces": ["objects", "animals"],
    "art": ["objects", "animals", "plants", "birds"], "industrial": ["defects", "textures", "objects"],
}
N_NEW = 20  # brand-new datasets (metadata only) for topk_new


def _zs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _models(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Model metadata, latent factors (n, RANK), accuracy bias (n,) and recording popularity (n,)."""
    n_fam = int(np.clip(round(n / 20), 3, 60))
    fam_names = [FAMILIES[i % len(FAMILIES)] + (f"-v{i // len(FAMILIES) + 1}" if i >= len(FAMILIES) else "")
                 for i in range(n_fam)]
    fam_p = 1.0 / np.arange(1, n_fam + 1) ** 0.8  # a few big families, a long tail
    fam = rng.choice(n_fam, size=n, p=fam_p / fam_p.sum())
    pre = rng.choice(len(PRETRAINING), size=n, p=PRETRAINING_P)
    log_params = rng.normal(np.log(40), 0.8, n_fam)[fam] + rng.normal(0, 0.5, n)  # millions
    fam_quality = rng.normal(0, 1, n_fam)
    top1 = 0.76 + 0.035 * _zs(log_params) + 0.02 * fam_quality[fam] + rng.normal(0, 0.02, n)
    top1 = np.clip(top1, 0.45, 0.92)
    # Factors partly explained by the metadata: family, pretraining data, size and ImageNet accuracy.
    U = (0.7 * rng.normal(size=(n_fam, RANK))[fam] + 0.5 * rng.normal(size=(len(PRETRAINING), RANK))[pre]
         + np.outer(_zs(log_params), rng.normal(0, 0.3, RANK)) + np.outer(_zs(top1), rng.normal(0, 0.3, RANK))
         + 0.6 * rng.normal(size=(n, RANK)))
    U /= U.std(0, keepdims=True)
    bias = 0.45 * _zs(top1) + 0.25 * fam_quality[fam] + 0.25 * rng.normal(size=n)
    popularity = np.exp(0.8 * _zs(bias) + 0.6 * rng.normal(size=n))  # good models are fine-tuned more often
    top1_cell = np.round(top1 * 100, 2)
    top1_cell[rng.random(n) < 0.1] = np.nan  # not every model card reports it
    names = [f"{ORGS[o]}/{fam_names[f]}-{i:05d}" for i, (o, f) in
             enumerate(zip(rng.integers(0, len(ORGS), n), fam))]
    frame = pd.DataFrame({"model": names, "family": np.asarray(fam_names, dtype=object)[fam],
                          "pretraining": np.asarray(PRETRAINING, dtype=object)[pre],
                          "params_millions": np.round(np.exp(log_params), 2), "imagenet_top1": top1_cell})
    return frame, U, bias, popularity


def _datasets(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Dataset metadata, latent factors (n, RANK), difficulty (n,) and recording weight (n,)."""
    dom = rng.choice(len(DOMAINS), size=n, p=DOMAINS_P)
    topic_of = np.empty(n, dtype=np.int64)
    for k, d in enumerate(DOMAINS):  # a domain picks among its related topics, the first most often
        rows = np.flatnonzero(dom == k)
        options = [TOPIC_NAMES.index(t) for t in DOMAIN_TOPICS[d]]
        w = 0.5 ** np.arange(len(options))
        topic_of[rows] = np.asarray(options)[rng.choice(len(options), size=len(rows), p=w / w.sum())]
    classes = np.round(np.exp(rng.uniform(np.log(2), np.log(1000), n))).astype(np.int64)
    samples = np.maximum(10, np.round(classes * np.exp(rng.normal(np.log(60), 1.2, n)))).astype(np.int64)
    # Label lists come from a limited pool (about 3 sqrt(n) distinct lists, each of one topic): real
    # zoos reuse label sets (DomainNet-270 has 15 for 270 datasets), which bounds the text encoding.
    n_pool = int(min(n, max(10, math.ceil(3 * math.sqrt(n)))))
    pool_topic = rng.integers(0, len(TOPIC_NAMES), n_pool)
    pool_topic[:len(TOPIC_NAMES)] = np.arange(min(n_pool, len(TOPIC_NAMES)))  # every topic has a list
    pool = []
    for t in pool_topic:
        words = TOPICS[TOPIC_NAMES[t]].split()
        k = int(rng.integers(2, min(len(words), 24) + 1))
        pool.append(", ".join(w.replace("_", " ") for w in rng.choice(words, size=k, replace=False)))
    labels = np.empty(n, dtype=object)
    for t in range(len(TOPIC_NAMES)):
        rows = np.flatnonzero(topic_of == t)
        options = np.flatnonzero(pool_topic == t)
        if len(rows):
            labels[rows] = np.asarray(pool, dtype=object)[options[rng.integers(0, len(options), len(rows))]]
    lc, ls = _zs(np.log(classes)), _zs(np.log(samples))
    V = (0.7 * rng.normal(size=(len(DOMAINS), RANK))[dom] + 0.7 * rng.normal(size=(len(TOPIC_NAMES), RANK))[topic_of]
         + np.outer(lc, rng.normal(0, 0.3, RANK)) + np.outer(ls, rng.normal(0, 0.3, RANK))
         + 0.6 * rng.normal(size=(n, RANK)))
    V /= V.std(0, keepdims=True)
    difficulty = -0.5 * lc + 0.25 * ls + 0.4 * rng.normal(size=len(DOMAINS))[dom] + 0.3 * rng.normal(size=n)
    weight = np.sqrt(samples) * np.exp(0.5 * rng.normal(size=n))  # big datasets are fine-tuned on more often
    names = [f"{DOMAINS[d]}/{TOPIC_NAMES[t]}-{i:06d}" for i, (d, t) in enumerate(zip(dom, topic_of))]
    frame = pd.DataFrame({"dataset": names, "domain": np.asarray(DOMAINS, dtype=object)[dom],
                          "num_classes": classes, "train_samples": samples, "labels": labels})
    return frame, V, difficulty, weight


def _observe(n_m: int, n_d: int, n: int, p: np.ndarray, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct cells (flat index ``d * n_m + m``), cell (m, d) drawn with weight ``p[m] q[d]``."""
    cells = n_m * n_d
    if n >= cells:
        return np.arange(cells, dtype=np.int64)
    p, q = p / p.sum(), q / q.sum()
    if cells <= 10_000_000:
        # Exact weighted sampling without replacement (Efraimidis-Spirakis keys).
        keys = rng.exponential(size=cells) / np.outer(q, p).ravel()
        return np.sort(np.argpartition(keys, n - 1)[:n]).astype(np.int64)
    # Sparse zoos: i.i.d. draws, duplicates removed, until there are enough; then a uniform subset.
    # (np.unique is ~30x slower than a sort here with numpy 2.4; searchsorted on the cumulative
    # weights is rng.choice(p=...) without its per-call checks.)
    cq, cp = np.cumsum(q), np.cumsum(p)
    have = np.empty(0, dtype=np.int64)
    while len(have) < n:
        k = int((n - len(have)) * 1.15) + 1000
        d = np.minimum(np.searchsorted(cq, rng.random(k) * cq[-1], side="right"), n_d - 1)
        m = np.minimum(np.searchsorted(cp, rng.random(k) * cp[-1], side="right"), n_m - 1)
        have = np.sort(np.concatenate([have, d.astype(np.int64) * n_m + m]))
        have = have[np.concatenate([[True], have[1:] != have[:-1]])]
    if len(have) > n:
        have = np.sort(rng.choice(have, size=n, replace=False))
    return have


def generate(size: Size, seed: int, directory: Path) -> dict:
    """Write a synthetic zoo of ``size`` into ``directory``; returns what was generated.

    Structure (all seeded by ``seed``):

    - **models**: ``family`` (categorical; about M/20 families, Zipf-sized), ``pretraining``
      (categorical, 8 values), ``params_millions`` (log-normal per family), ``imagenet_top1``
      (grows with size and family; 10% missing). Latent factors (rank 8) are family +
      pretraining + size + ImageNet-accuracy effects plus model noise of similar weight, so the
      metadata explain them partly.
    - **datasets**: ``domain`` (categorical, 12 values), ``num_classes`` (log-uniform 2..1000),
      ``train_samples`` (classes x log-normal per-class count), ``labels`` (comma-separated label
      names of one topic, related to the domain; drawn from a pool of about 3 sqrt(D) label
      lists, so lists repeat across datasets as in real zoos). Latent factors: domain + topic +
      classes + samples effects plus noise.
    - **accuracy** of an observed cell: ``sigmoid(0.8 + b_m + c_d + 0.8 u_m.v_d / sqrt(8) + e)``,
      ``b_m`` a model quality bias (ImageNet accuracy, family, noise), ``c_d`` a dataset difficulty
      (more classes harder, more samples easier, domain, noise), ``e ~ N(0, 0.15^2)``; rounded to
      4 decimals.
    - **which cells are recorded**: ``size.records`` distinct cells drawn with weight
      ``popularity_m x weight_d``: a model's popularity grows with its quality (log-normal,
      sd 0.8 + 0.6), a dataset's weight with sqrt(train_samples); so popular models and big
      datasets are recorded more, and some datasets of sparse zoos have no record (cold start).
    - **hold-out**: 10% of the recorded cells (uniform) go to ``holdout.csv``, not to the zoo.

    Files: ``zoo/`` (models.csv, datasets.csv, records.csv, zoo.json: the canonical format of
    data/README.md), ``holdout.csv`` (model,dataset,accuracy), ``new_datasets.json`` (metadata of
    20 brand-new datasets from the same process), ``generated.json`` (this summary).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, size.models, size.datasets, size.records, GENERATOR_VERSION])
    models, U, bias, popularity = _models(size.models, rng)
    datasets, V, difficulty, weight = _datasets(size.datasets + N_NEW, rng)
    new, datasets = datasets.iloc[size.datasets:], datasets.iloc[:size.datasets]
    cells = _observe(size.models, size.datasets, size.records, popularity, weight[:size.datasets], rng)
    di, mi = np.divmod(cells, size.models)
    acc = np.empty(len(cells))
    for lo in range(0, len(cells), 1 << 20):  # chunks keep the (n, RANK) temporaries small
        d, m = di[lo:lo + (1 << 20)], mi[lo:lo + (1 << 20)]
        z = (0.8 + bias[m] + difficulty[d] + 0.8 * np.einsum("ij,ij->i", U[m], V[d]) / math.sqrt(RANK)
             + rng.normal(0, 0.15, len(d)))
        acc[lo:lo + len(d)] = _sigmoid(z)
    acc = np.round(acc, 4)
    order = rng.permutation(len(cells))  # records arrive as runs finish, in no particular order
    hold = np.zeros(len(cells), dtype=bool)
    hold[rng.choice(len(cells), size=_n_holdout(len(cells)), replace=False)] = True
    t_gen = time.perf_counter() - t0

    from recsys.fileio import write_atomic  # every file whole or not at all; generated.json, last, marks a zoo done

    zoo_dir = directory / "zoo"
    write_atomic(zoo_dir / "models.csv", models.to_csv(index=False, lineterminator="\n"))
    write_atomic(zoo_dir / "datasets.csv", datasets.to_csv(index=False, lineterminator="\n"))
    model_names = np.asarray(models["model"], dtype=object)
    dataset_names = np.asarray(datasets["dataset"], dtype=object)
    for rows, file in ((order[~hold[order]], zoo_dir / "records.csv"), (order[hold[order]], directory / "holdout.csv")):
        _write_records(file, model_names, dataset_names, mi[rows], di[rows], acc[rows])
    roles = {"name": f"synthetic-{size.models}x{size.datasets}-{size.records}",
             "description": f"benchmarks/scale.py generator v{GENERATOR_VERSION}, seed {seed}",
             "models": {"id": "model", "categorical": ["family", "pretraining"],
                        "numeric": ["params_millions", "imagenet_top1"], "text": [], "log": ["params_millions"]},
             "datasets": {"id": "dataset", "categorical": ["domain"], "numeric": ["num_classes", "train_samples"],
                          "text": ["domain", "labels"], "log": ["num_classes", "train_samples"]}}
    write_atomic(zoo_dir / "zoo.json", json.dumps(roles, indent=2) + "\n")
    new_meta = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                for row in new.assign(dataset=[f"new/{i:02d}" for i in range(len(new))]).to_dict("records")]
    write_atomic(directory / "new_datasets.json", json.dumps(new_meta, indent=1) + "\n")
    info = {"size": dataclasses.asdict(size), "seed": seed, "generator_version": GENERATOR_VERSION,
            "records": int((~hold).sum()), "holdout": int(hold.sum()),
            "label_lists": int(datasets["labels"].nunique()),
            "datasets_without_records": int(size.datasets - len(np.unique(di[~hold]))),
            "accuracy_mean": float(acc.mean()), "accuracy_sd": float(acc.std()),
            "generate_s": round(t_gen, 2), "write_s": round(time.perf_counter() - t0 - t_gen, 2)}
    write_atomic(directory / "generated.json", json.dumps(info, indent=2) + "\n")
    return info


def _write_records(file: Path, models: np.ndarray, datasets: np.ndarray, mi: np.ndarray, di: np.ndarray,
                   acc: np.ndarray) -> None:
    """``model,dataset,accuracy`` rows; accuracies have 4 decimals."""
    from recsys.fileio import write_atomic

    if any(_needs_quotes(x) for x in (*models, *datasets)):  # not with this generator's names
        write_atomic(file, pd.DataFrame({"model": models[mi], "dataset": datasets[di], "accuracy": acc}).to_csv(
            index=False, lineterminator="\n"))
        return
    # Joining strings taken from small lookup tables is about 3x faster than DataFrame.to_csv
    # (10 M rows in ~10 s): every cell is one of M, D or 10,001 distinct strings.
    cells = np.array([repr(i / 1e4) for i in range(10_001)], dtype=object)
    ai = np.rint(acc * 1e4).astype(np.int64)

    def write(fh) -> None:
        fh.write(b"model,dataset,accuracy\n")
        for lo in range(0, len(mi), 1 << 18):
            part = slice(lo, lo + (1 << 18))
            rows = zip(models[mi[part]].tolist(), datasets[di[part]].tolist(), cells[ai[part]].tolist())
            fh.write(("\n".join(map(",".join, rows)) + "\n").encode("utf-8"))

    write_atomic(file, write)


def _needs_quotes(text: str) -> bool:
    return any(c in text for c in ',"\r\n') or text != text.strip()


def cached_zoo(size: Size, seed: int, cache_dir: Path) -> tuple[Path, dict]:
    """The directory holding ``size``'s zoo (generated on first use, then reused) and its summary."""
    key = f"zoo-{size.models}x{size.datasets}-r{size.records}-s{seed}-v{GENERATOR_VERSION}"
    final = cache_dir / key
    if (final / "generated.json").is_file():
        return final, json.loads((final / "generated.json").read_text())
    info = generate(size, seed, final)  # an interrupted run's files are replaced, each atomically
    log.info("generated %s (%s models x %s datasets, %s records + %s hidden) in %.1f s + %.1f s writing", key,
             f"{size.models:,}", f"{size.datasets:,}", f"{info['records']:,}", f"{info['holdout']:,}",
             info["generate_s"], info["write_s"])
    return final, info


# ---------------------------------------------------------------------------
# children under a timeout and a memory cap


@dataclasses.dataclass
class Run:
    """One child process: how it ended, its wall time and its own peak RSS."""

    status: str  # "ok", "timeout (> N s)", "out of memory (...)", "error: <last line of stderr>"
    wall_s: float
    peak_rss_mb: float | None
    stdout: str = ""
    stdout_bytes: int = 0
    stdout_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MiB from /proc (VmRSS, VmHWM); zeros when it is gone."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


# A process's peak RSS as Linux accounts it (ru_maxrss) includes the memory of the process that
# forked it, up to its exec. The benchmark's own process holds generated zoos and pandas, so its
# children are started by this small launcher (a Python without site-packages, ~10 MiB): the
# command's ru_maxrss is then its own. The launcher also times the command itself (no
# interpreter start of its own, no polling step) and limits its address space.
_LAUNCHER = """
import json, os, resource, subprocess, sys, time
out, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[3:])
with open(out, "w") as fh:
    fh.write(f"{proc.pid}\\n")
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
with open(out, "a") as fh:
    fh.write(json.dumps({"wall": wall, "status": status, "maxrss_kb": usage.ru_maxrss}) + "\\n")
"""


def run_child(cmd: list[str], *, timeout: float, mem_cap_mb: float, env: dict | None = None,
              stdout: str = "capture") -> Run:
    """Run ``cmd``; kill it past ``timeout`` seconds or ``mem_cap_mb`` MiB resident.

    ``stdout``: ``"capture"`` keeps the text, ``"count"`` only counts bytes and lines (a
    streamed prediction of 10^9 cells needs no disk). The command runs under a small
    launcher (see ``_LAUNCHER``), which reports its wall time and its own peak RSS
    (``os.wait4``), so children measured one after the other do not mix and the benchmark's
    memory is not counted. Its address space is limited to twice the cap plus 2 GiB (virtual
    overhead), a backstop for single huge allocations; the cap itself is watched here.
    """
    err = tempfile.TemporaryFile()
    fd, report = tempfile.mkstemp(prefix="recsys-scale-run-", suffix=".txt")
    os.close(fd)
    counts = {"bytes": 0, "lines": 0}
    chunks: list[bytes] = []

    def reader(pipe):
        for block in iter(lambda: pipe.read(1 << 20), b""):
            counts["bytes"] += len(block)
            counts["lines"] += block.count(b"\n")
            if stdout == "capture":
                chunks.append(block)

    limit = int((2 * mem_cap_mb + 2048) * 2**20)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-S", "-E", "-c", _LAUNCHER, report, str(limit), *cmd],
                            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    thread = threading.Thread(target=reader, args=(proc.stdout,), daemon=True)
    thread.start()
    killed, child, peak = None, None, 0.0
    try:
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - t0
            if child is None:
                text = Path(report).read_text()
                child = int(text.split()[0]) if text.endswith("\n") else None
            rss, hwm = _memory_mb(child) if child else (0.0, 0.0)
            peak = max(peak, hwm)
            if killed is None and (rss > mem_cap_mb or elapsed > timeout):
                killed = (f"out of memory (> {_size_text(mem_cap_mb)} resident, killed)" if rss > mem_cap_mb
                          else f"timeout (> {timeout:g} s)")
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01 if elapsed < 5 else 0.05)
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): take the child down too
        os.killpg(proc.pid, signal.SIGKILL)
        os.wait4(proc.pid, 0)
        Path(report).unlink(missing_ok=True)
        raise
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    thread.join(timeout=10)
    proc.stdout.close()
    err.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    err.close()
    lines = Path(report).read_text().splitlines()
    Path(report).unlink(missing_ok=True)
    done = json.loads(lines[1]) if len(lines) > 1 else None
    if done:  # the launcher saw the command end: its own figures
        code, wall, peak = os.waitstatus_to_exitcode(done["status"]), done["wall"], done["maxrss_kb"] / 1024
    else:  # killed here (or the launcher failed): the last polled high-water mark
        code = proc.returncode
    if killed:
        result = killed
    elif code == 0:
        result = "ok"
    elif re.search(r"MemoryError|Unable to allocate|std::bad_alloc|Cannot allocate memory|out of memory", stderr):
        result = "out of memory (" + _last_line(stderr, r"MemoryError|allocate|bad_alloc|out of memory") + ")"
    elif code == -signal.SIGKILL:
        result = "out of memory (killed by the system)"
    else:
        result = "error: " + _last_line(stderr)
    return Run(result, wall, peak or None, b"".join(chunks).decode("utf-8", "replace"), counts["bytes"],
               counts["lines"])


def _last_line(text: str, pattern: str | None = None, width: int = 160) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if pattern:
        lines = [ln for ln in lines if re.search(pattern, ln)] or lines
    line = lines[-1] if lines else "(no message)"
    return line if len(line) <= width else line[:width - 3] + "..."


def median_wall(cmd: list[str], repeats: int, env: dict, timeout: float, mem_cap_mb: float) -> tuple[float | None, str]:
    """Median wall time of ``repeats`` runs (None and the status if one fails)."""
    times = []
    for _ in range(repeats):
        run = run_child(cmd, timeout=timeout, mem_cap_mb=mem_cap_mb, env=env)
        if not run.ok:
            return None, run.status
        times.append(run.wall_s)
    return float(np.median(times)), "ok"


# ---------------------------------------------------------------------------
# in-process measurements (run in a child: `scale.py --probe JSON`)


def probe(args: dict) -> dict:
    """Load a model file; time topk and topk_new; hold-out Pearson. Runs inside a child process."""
    import recsys

    t0 = time.perf_counter()
    rec = recsys.load_model(args["model"])
    out = {"load_s": time.perf_counter() - t0}
    info = rec.info()
    out["timing"] = info.get("timing", {})
    rng = np.random.default_rng(args["seed"])
    ids = list(rec.dataset_ids)
    known = [ids[i] for i in rng.choice(len(ids), size=min(len(ids), args["repeats"] + 1), replace=False)]
    times = []
    for name in known:
        t = time.perf_counter()
        rec.topk(name, k=10)
        times.append(time.perf_counter() - t)
    out["topk_ms"] = 1000 * float(np.median(times[1:] if len(times) > 1 else times))  # the first warms caches
    new = json.loads(Path(args["new"]).read_text())[:args["repeats"] + 1]
    times = []
    for meta in new:
        t = time.perf_counter()
        rec.topk_new(meta, k=10)
        times.append(time.perf_counter() - t)
    out["topk_new_ms"] = 1000 * float(np.median(times[1:] if len(times) > 1 else times))
    out.update(holdout_pearson(rec, Path(args["holdout"]), args["max_datasets"], rng))
    return out


def holdout_pearson(rec, holdout: Path, max_datasets: int, rng: np.random.Generator) -> dict:
    """Mean over datasets with >= 3 hidden records of Pearson(predicted, hidden accuracy).

    Datasets whose prediction or truth is constant on their hidden cells have no correlation:
    they are counted, not scored. At most ``max_datasets`` datasets (a seeded sample).
    """
    from recsys.evaluation.metrics import pearson

    hidden = pd.read_csv(holdout, dtype={"model": "category", "dataset": "category"})
    counts = hidden["dataset"].value_counts()
    eligible = np.asarray(counts.index[counts.to_numpy() >= 3].astype(str))
    chosen = eligible if len(eligible) <= max_datasets else rng.choice(eligible, size=max_datasets, replace=False)
    hidden = hidden[hidden["dataset"].isin(chosen)]
    rs, undefined = [], 0
    for lo in range(0, len(chosen), 256):
        batch = [str(d) for d in chosen[lo:lo + 256]]
        pred = rec.predict(batch, uncertainty=False)[["model", "dataset", "predicted"]]
        part = hidden[hidden["dataset"].isin(batch)].astype({"model": str, "dataset": str})
        both = part.merge(pred.astype({"model": str, "dataset": str}), on=["model", "dataset"], how="left")
        for _, g in both.groupby("dataset", sort=False):
            r = pearson(g["accuracy"].to_numpy(float), g["predicted"].to_numpy(float))  # NaN: constant
            if np.isfinite(r):
                rs.append(r)
            else:
                undefined += 1
    return {"pearson": float(np.mean(rs)) if rs else None, "pearson_datasets": len(rs),
            "pearson_undefined": undefined, "pearson_eligible": int(len(eligible))}


# ---------------------------------------------------------------------------
# the benchmark


@dataclasses.dataclass
class Config:
    out: Path
    cache_dir: Path
    engines: list[str]
    sizes: list[Size]
    seed: int = 0
    text_encoder: str | None = None
    timeout: float = 1200.0
    mem_cap_mb: float = 8 * 1024
    repeats: int = 20  # topk calls timed in-process (after one warm-up)
    cli_repeats: int = 3
    floor_repeats: int = 5
    warm: bool = True  # warm the text-embedding cache before the timed fits
    pearson_datasets: int = 2000
    project: bool = True  # skip steps projected from smaller sizes to overrun the timeout
    max_predict_cells: float = float("inf")  # predict-all only on matrices up to this many cells
    command: str = ""


def recsys_cmd() -> list[str]:
    """The ``recsys`` console script beside this interpreter (what users run), else ``python -m recsys.cli``."""
    script = Path(sys.executable).with_name("recsys")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "recsys.cli"]


def child_env(cfg: Config) -> dict:
    env = dict(os.environ)
    # The children import the recsys of this checkout.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def default_engines() -> list[str]:
    """Every registered engine that can fit a zoo without transferability scores (the synthetic zoos have none)."""
    sys.path.insert(0, str(ROOT))
    from recsys.engines import DEFAULT_ENGINE, ENGINES, get_engine_class

    names = []
    for name in ENGINES:
        try:
            if get_engine_class(name).requires_scores:
                continue
        except ImportError:  # an optional dependency is missing
            continue
        names.append(name)
    return [DEFAULT_ENGINE] + sorted(n for n in names if n != DEFAULT_ENGINE)


def fit_cmd(cfg: Config, zoo: Path, engine: str, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [*recsys_cmd(), "-q", "fit", "--zoo", str(zoo), "--engine", engine, "--out", str(out), "--seed",
           str(cfg.seed), *extra]
    return cmd + (["--text-encoder", cfg.text_encoder] if cfg.text_encoder else [])


def warm_text_cache(cfg: Config, zoo: Path, work: Path, env: dict) -> Run:
    """Fill the embedding cache with the zoo's texts (a quick fit on its metadata and 1,000 records).

    Timed on its own: it is the cold cost of the text encoder (loading it and encoding every
    distinct text once) that the timed fits then do not pay.
    """
    mini = work / "warm-zoo"
    mini.mkdir(parents=True, exist_ok=True)
    for name in ("models.csv", "datasets.csv", "zoo.json"):
        shutil.copyfile(zoo / name, mini / name)
    with open(zoo / "records.csv") as src, open(mini / "records.csv", "w") as dst:
        for i, line in enumerate(src):
            if i > 1000:
                break
            dst.write(line)
    return run_child(fit_cmd(cfg, mini, "popularity", work / "warm.npz", ("--no-calibrate",)),
                     timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb, env=env)


_LOAD_SNIPPET = """
import json, sys, time
import recsys
t0 = time.perf_counter()
zoo = recsys.load_zoo(sys.argv[1])
t1 = time.perf_counter()
zoo.fingerprint()
print(json.dumps({"load_s": t1 - t0, "fingerprint_s": time.perf_counter() - t1, "records": len(zoo.records)}))
"""


def measure_load(cfg: Config, zoo: Path, env: dict) -> dict:
    """``recsys.load_zoo`` (read + validate) and ``Zoo.fingerprint()`` in a child: times and its peak RSS."""
    run = run_child([sys.executable, "-c", _LOAD_SNIPPET, str(zoo)], timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb,
                    env=env)
    out = {"load": run.status, "load_rss_mb": run.peak_rss_mb}
    if run.ok:
        out.update(json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def projected_fit_s(rows: list[dict], engine: str, records: int) -> float | None:
    """Fit time of ``engine`` at ``records``, extrapolated from its two largest finished ladder sizes.

    Growth at least linear: ``t1 (records / n1) ** max(1, slope)``; None without a finished size.
    """
    done = sorted((r["records"], r["fit_s"]) for r in rows if r["engine"] == engine and r.get("fit") == "ok"
                  and r.get("ladder", True) and r["records"] < records)
    if not done:
        return None
    slope = 1.0
    if len(done) >= 2 and done[-1][0] > done[-2][0]:
        slope = max(1.0, math.log(done[-1][1] / done[-2][1]) / math.log(done[-1][0] / done[-2][0]))
    n1, t1 = done[-1]
    return t1 * (records / n1) ** slope


def projected_predict_s(rows: list[dict], engine: str, cells: int) -> float | None:
    """Predict-all time of ``engine`` for ``cells``, linear in cells from its largest finished one."""
    done = sorted((r["models"] * r["datasets"], r["predict_s"]) for r in rows if r["engine"] == engine
                  and r.get("predict") == "ok" and r["models"] * r["datasets"] < cells)
    return done[-1][1] * cells / done[-1][0] if done else None


def measure(cfg: Config, size: Size, engine: str, zoo_dir: Path, work: Path, env: dict,
            rows: list[dict] = ()) -> dict:
    """Every figure for one (size, engine); a failure is recorded and stops that engine's later steps.

    With ``cfg.project``, a fit projected (from ``rows``, the smaller sizes) to take more than twice
    the timeout, or a predict-all projected to take more than the timeout, is not run: the row
    says so and gives the projection.
    """
    zoo, model = zoo_dir / "zoo", work / f"{engine}.npz"
    row: dict = {"size": size.name, "models": size.models, "datasets": size.datasets, "records": size.fitted,
                 "ladder": size.ladder, "engine": engine}
    guess = projected_fit_s(rows, engine, size.fitted) if cfg.project and size.ladder else None
    if guess is not None and guess > 2 * cfg.timeout:
        row["fit"] = f"not run (projected {guess:,.0f} s from smaller sizes)"
        log.info("%s %s: %s", size.name, engine, row["fit"])
        return row
    fit = run_child(fit_cmd(cfg, zoo, engine, model), timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb, env=env)
    row.update(fit=fit.status, fit_s=fit.wall_s, fit_rss_mb=fit.peak_rss_mb)
    log.info("%s %s: fit %s in %.1f s, peak %.0f MiB", size.name, engine, fit.status, fit.wall_s, fit.peak_rss_mb)
    if not fit.ok:
        return row
    row["model_mb"] = model.stat().st_size / 2**20
    args = {"model": str(model), "new": str(zoo_dir / "new_datasets.json"), "holdout": str(zoo_dir / "holdout.csv"),
            "seed": cfg.seed, "repeats": cfg.repeats, "max_datasets": cfg.pearson_datasets}
    pr = run_child([sys.executable, str(Path(__file__).resolve()), "--probe", json.dumps(args)],
                   timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb, env=env)
    row.update(probe=pr.status, probe_rss_mb=pr.peak_rss_mb)
    if pr.ok:
        found = json.loads(pr.stdout.strip().splitlines()[-1])
        timing = found.pop("timing", {}) or {}
        row.update(found)
        row.update({k: v for k, v in timing.items() if isinstance(v, (int, float))})  # features_s, engine_s ...
    name = _a_known_dataset(zoo)
    row["cli_topk_s"], row["cli_topk"] = median_wall(
        [*recsys_cmd(), "topk", "--model", str(model), "--dataset", name, "-k", "10"], cfg.cli_repeats, env,
        cfg.timeout, cfg.mem_cap_mb)
    cells = size.models * size.datasets
    guess = projected_predict_s(rows, engine, cells) if cfg.project else None
    if cells > cfg.max_predict_cells:
        status = f"not run (over --max-predict-cells {cfg.max_predict_cells:,.0f})"
    elif guess is not None and guess > cfg.timeout:
        status = f"not run (projected {guess:,.0f} s)"
    else:
        pred = run_child([*recsys_cmd(), "predict", "--model", str(model), "--format", "csv"], timeout=cfg.timeout,
                         mem_cap_mb=cfg.mem_cap_mb, env=env, stdout="count")
        status = pred.status
        if pred.ok and pred.stdout_lines - 1 != cells:
            status = f"incomplete: {pred.stdout_lines - 1:,} rows for {cells:,} cells"
        row.update(predict_s=pred.wall_s, predict_rss_mb=pred.peak_rss_mb, predict_mb=pred.stdout_bytes / 2**20)
    row["predict"] = status
    log.info("%s %s: probe %s (Pearson %s), CLI topk %s, predict-all %s in %s", size.name, engine, pr.status,
             _fmt(row.get("pearson"), ".3f"), row["cli_topk"], status, _secs(row.get("predict_s")))
    model.unlink(missing_ok=True)
    return row


def _a_known_dataset(zoo: Path) -> str:
    with open(zoo / "records.csv") as fh:
        next(fh)
        return next(fh).rstrip("\n").split(",")[1]


def run(cfg: Config) -> list[dict]:
    """The whole benchmark; writes the report after every size, so a long run can be read as it goes."""
    env = child_env(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now()
    # Byte-compile recsys, as installing a wheel does: an editable install under PYTHONDONTWRITEBYTECODE
    # (as here) would otherwise compile every module it imports at each start (~0.1 s), where numpy and
    # click, installed from wheels, do not.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "recsys")], check=False,
                   stdout=subprocess.DEVNULL)
    floor, status = median_wall([sys.executable, "-c", "import numpy, click, json"], cfg.floor_repeats, env, 60,
                                cfg.mem_cap_mb)
    meta = {"started": started.isoformat(timespec="seconds"), "hardware": hardware_line(), "code": _code_version(),
            "load_start": os.getloadavg(), "floor_s": floor, "zoos": []}
    log.info("interpreter floor %.3f s (%s)", floor or float("nan"), status)
    rows: list[dict] = []
    failed: dict[str, str] = {}
    for size in cfg.sizes:
        zoo_dir, info = cached_zoo(size, cfg.seed, cfg.cache_dir)
        with tempfile.TemporaryDirectory(dir=cfg.cache_dir, prefix=".run-") as tmp:
            work = Path(tmp)
            # A fresh text-embedding cache per zoo: the warm-up pays the cold encoding (timed in
            # the zoo table), the timed fits find every text encoded; the user's cache is untouched.
            env = {**child_env(cfg), "RECSYS_CACHE_DIR": str(work / "recsys-cache")}
            warm = warm_text_cache(cfg, zoo_dir / "zoo", work, env) if cfg.warm else None
            meta["zoos"].append({**info, "name": size.name, "warm_s": warm.wall_s if warm else None,
                                 "warm": warm.status if warm else "not run"})
            if warm:
                log.info("%s: text warm-up %s in %.1f s", size.name, warm.status, warm.wall_s)
            meta["zoos"][-1].update(measure_load(cfg, zoo_dir / "zoo", env))
            log.info("%s: load_zoo %s in %s, peak %s", size.name, meta["zoos"][-1]["load"],
                     _secs(meta["zoos"][-1].get("load_s")), _size_text(meta["zoos"][-1]["load_rss_mb"]))
            for engine in cfg.engines:
                if engine in failed:
                    rows.append({"size": size.name, "models": size.models, "datasets": size.datasets,
                                 "records": size.fitted, "ladder": size.ladder, "engine": engine,
                                 "fit": f"not run ({failed[engine]})"})
                    continue
                row = measure(cfg, size, engine, zoo_dir, work, env, rows)
                rows.append(row)
                if row["fit"].startswith(("timeout", "out of memory")):
                    failed[engine] = f"{row['fit'].split(' (')[0]} at {size.name}"
        meta["load_end"] = os.getloadavg()
        meta["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        write_report(cfg, rows, meta)
    return rows


# ---------------------------------------------------------------------------
# report


def hardware_line() -> str:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    cpu, mem = platform.processor() or platform.machine(), None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
        with open("/proc/meminfo") as fh:
            mem = int(next(ln for ln in fh if ln.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        pass
    mem_text = f", {mem:.0f} GiB RAM" if mem else ""
    return (f"{cores} CPU cores ({cpu}){mem_text}, no GPU used — {platform.platform()}, Python "
            f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}")


def growth(rows: list[dict], key: str) -> dict[str, tuple[float, int]]:
    """Per engine: slope of log(key) on log(records) (least squares) over its finished ladder sizes, and their count."""
    out = {}
    for engine in dict.fromkeys(r["engine"] for r in rows):
        pts = [(r["records"], r[key]) for r in rows if r["engine"] == engine and r.get("fit") == "ok"
               and r.get(key) and r.get("ladder", True)]
        if len({n for n, _ in pts}) >= 3:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[engine] = (float(np.polyfit(x, y, 1)[0]), len(pts))
    return out


def _fmt(v, spec: str, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:{spec}}{unit}"


def _secs(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.2f} s" if v < 10 else f"{v:.1f} s" if v < 1000 else f"{v:,.0f} s"


def _size_text(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1024:.2f} GiB" if v >= 1024 else f"{v:.0f} MiB" if v >= 10 else f"{v:.2f} MiB"


def _code_version() -> str | None:
    """The checkout's commit (and whether it had uncommitted changes) the children import."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"commit {head}" + (" with uncommitted changes" if dirty else "") if head else None


def write_report(cfg: Config, rows: list[dict], meta: dict) -> None:
    """``scale.md``, ``scale.csv`` and ``scale.png`` in ``cfg.out``."""
    pd.DataFrame(rows).to_csv(cfg.out / "scale.csv", index=False, float_format="%.6g")
    additive = {r["size"]: r.get("pearson") for r in rows if r["engine"] == "additive"}
    floor = meta.get("floor_s")
    lines = [
        "# Scale benchmark",
        "",
        "Synthetic zoos (`benchmarks/scale.py`, generator v{v}, seed {s}): low-rank accuracies partly explained by "
        "model metadata (family, pretraining data, parameters, ImageNet accuracy) and dataset metadata (domain, "
        "classes, samples, label-name text), popular models and big datasets recorded more often; 10% of each "
        "zoo's records hidden before fitting (the hold-out). Every figure below is measured by the command at the "
        "end, each in its own child process.".format(v=GENERATOR_VERSION, s=cfg.seed),
        "",
        f"- Hardware: {meta['hardware']}",
        f"- Code: {meta.get('code') or 'unknown'}",
        f"- Run: {meta['started']} → {meta.get('finished', '…')}; load average {_load(meta.get('load_start'))} at the "
        f"start, {_load(meta.get('load_end'))} at the end (the machine is shared: times are noisy).",
        f"- Limits per child: {cfg.timeout:.0f} s wall, {cfg.mem_cap_mb / 1024:.0f} GiB resident (killed above it); an "
        f"engine that times out or runs out of memory is not run at larger sizes"
        + (", nor is a fit projected from the smaller sizes (at least linear growth) to take over twice the "
           "timeout, or a predict-all projected (linear in cells) to take over the timeout." if cfg.project else "."),
        f"- Text encoder: {cfg.text_encoder or 'the default (all-MiniLM-L6-v2)'}"
        + ("; each zoo starts with an empty embedding cache that a warm-up fit fills (its time, in the zoo "
           "table, is the cold cost: loading the encoder and encoding every distinct text once), so the timed fits "
           "exclude encoding." if cfg.warm else "."),
        f"- Interpreter floor `python -c \"import numpy, click, json\"`: {_fmt(floor, '.3f', ' s')} (median of "
        f"{cfg.floor_repeats}); recsys byte-compiled first (`python -m compileall`), as a wheel install is, like "
        f"numpy and click.",
        "",
        "## Zoos",
        "",
        "`recsys.load_zoo` reads and validates the zoo directory; `fingerprint` is the zoo's content hash that "
        "every fit stores; both in a child of their own (peak memory: that child's).",
        "",
        "| size | models × datasets | density | records fitted + hidden | distinct label lists | datasets without "
        "records | generated + written | load_zoo (peak memory) | fingerprint | text warm-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for z in meta["zoos"]:
        s = z["size"]
        load = (f"{_secs(z['load_s'])} ({_size_text(z['load_rss_mb'])})" if z.get("load") == "ok"
                else z.get("load", "—"))
        warm = (_secs(z["warm_s"]) if z["warm"] == "ok" else
                z["warm"] if z["warm_s"] is None else f"{z['warm']} after {z['warm_s']:.0f} s")
        lines.append(f"| {z['name']} | {s['models']:,} × {s['datasets']:,} | "
                     f"{s['records'] / (s['models'] * s['datasets']):.2%} | {z['records']:,} + {z['holdout']:,} | "
                     f"{z['label_lists']:,} | {z['datasets_without_records']:,} | "
                     f"{z['generate_s']:.1f} + {z['write_s']:.1f} s | {load} | "
                     f"{_secs(z.get('fingerprint_s'))} | {warm} |")
    lines += [
        "",
        "## Results",
        "",
        "Whole-process `recsys fit` (selection and calibration included): wall time, the split recorded in the "
        "model file (features / engine / calibration), the child's peak resident memory. `topk` in-process: "
        "median of rec.topk(dataset, k=10) over 20 known datasets, and of rec.topk_new(metadata, k=10) over 20 "
        "brand-new ones. CLI topk: whole-process `recsys topk`, median of "
        f"{cfg.cli_repeats}, and its ratio to the interpreter floor. Predict-all: whole-process `recsys predict "
        "--format csv` of every (model, dataset) pair, streamed into a pipe. Hold-out Pearson: mean over datasets "
        "with ≥ 3 hidden records (at most "
        f"{cfg.pearson_datasets:,}, a seeded sample) of Pearson(predicted, hidden accuracy); Δ is the engine minus "
        "`additive` on the same zoo.",
        "",
        "| size | records | engine | fit | features / engine / calibration | peak memory | model file | topk known / "
        "new | CLI topk | predict-all | hold-out Pearson (Δ additive) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['size']} | {r['records']:,} | {r['engine']} |"
        if r.get("fit") != "ok":
            fit = r.get("fit", "")
            after = f" after {r['fit_s']:.0f} s, peak {_size_text(r.get('fit_rss_mb'))}" if "fit_s" in r else ""
            lines.append(f"{head} {fit}{after} | | | | | | | |")
            continue
        split = " / ".join(_secs(r.get(k)).removesuffix(" s") for k in ("features_s", "engine_s", "calibration_s"))
        topk = (f"{_fmt(r.get('topk_ms'), '.1f')} / {_fmt(r.get('topk_new_ms'), '.1f')} ms" if r.get("probe") == "ok"
                else r.get("probe", ""))
        cli = (f"{r['cli_topk_s']:.2f} s ({r['cli_topk_s'] / floor:.1f}×)" if r.get("cli_topk_s") and floor
               else r.get("cli_topk", ""))
        predict = (f"{_secs(r['predict_s'])}, {_size_text(r['predict_mb'])}" if r.get("predict") == "ok"
                   else r.get("predict", "") + (f" after {r['predict_s']:.0f} s" if r.get("predict_s") else ""))
        pearson = r.get("pearson")
        base = additive.get(r["size"])
        delta = f" ({pearson - base:+.3f})" if pearson is not None and base is not None and r["engine"] != "additive" \
            else ""
        lines.append(f"{head} {_secs(r['fit_s'])} | {split} s | {_size_text(r.get('fit_rss_mb'))} | "
                     f"{_size_text(r.get('model_mb'))} | {topk} | {cli} | {predict} | "
                     f"{_fmt(pearson, '.3f')}{delta} |")
    t_exp, m_exp = growth(rows, "fit_s"), growth(rows, "fit_rss_mb")
    lines += ["", "## Growth", "",
              "Least-squares slope of log(fit wall time) and log(peak memory) on log(records fitted), over the sizes "
              "of the ladder (not `real` or `smoke`, which have other shapes) each engine finished (≥ 3). The memory "
              "slope is flattened by the interpreter's fixed few hundred MiB.",
              "", "| engine | fit time ∝ records^a | peak memory ∝ records^b | sizes |", "|---|---|---|---|"]
    for engine, (a, n) in t_exp.items():
        b = m_exp.get(engine, (float("nan"), 0))[0]
        lines.append(f"| {engine} | {a:.2f} | {b:.2f} | {n} |")
    if not t_exp:
        lines.append("| (fewer than 3 sizes finished) | | | |")
    if plot(rows, cfg.out / "scale.png", t_exp, m_exp):
        lines += ["", "![fit time and peak memory against records](scale.png)"]
    lines += ["", "## Command", "", f"```\n{cfg.command}\n```", ""]
    (cfg.out / "scale.md").write_text("\n".join(lines))


def _load(v) -> str:
    return "/".join(f"{x:.1f}" for x in v) if v else "—"


def plot(rows: list[dict], file: Path, t_exp: dict, m_exp: dict) -> bool:
    """Log-log fit time and peak memory against records fitted, one line per engine."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine in dict.fromkeys(r["engine"] for r in rows):
        ok = sorted((r["records"], r["fit_s"], r["fit_rss_mb"] / 1024) for r in rows
                    if r["engine"] == engine and r.get("fit") == "ok")
        if not ok:
            continue
        n, t, m = zip(*ok)
        axes[0].plot(n, t, "o-", label=engine + (f" (∝ N^{t_exp[engine][0]:.2f})" if engine in t_exp else ""))
        axes[1].plot(n, m, "o-", label=engine + (f" (∝ N^{m_exp[engine][0]:.2f})" if engine in m_exp else ""))
    for ax, title in zip(axes, ("whole-process fit time (s)", "peak resident memory (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records fitted")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------
# command line


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="sizes: " + ", ".join(f"{k} = {s.label()} with {s.records:,} records"
                                                              for k, s in SIZES.items()))
    ap.add_argument("--sizes", default=None, help="comma-separated size names or MxD@DENSITY (default: "
                                                  + ",".join(DEFAULT_SIZES) + ")")
    ap.add_argument("--engines", default=None, help="comma-separated engines (default: every engine that needs no "
                                                    "transferability scores)")
    ap.add_argument("--max-records", type=float, default=None, help="skip sizes with more records than this")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default benchmarks/results; with --smoke a new temporary directory)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="generated zoos (default $RECSYS_SCALE_CACHE, else <tmp>/recsys-scale-cache)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--text-encoder", default=None, help="passed to recsys fit (default: the shipped MiniLM)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per child process (default 1200)")
    ap.add_argument("--mem-cap-gb", type=float, default=8, help="resident memory per child, GiB (default 8)")
    ap.add_argument("--max-predict-cells", type=float, default=float("inf"),
                    help="run predict-all only on matrices of at most this many cells (default: every size "
                         "the projection allows)")
    ap.add_argument("--no-projection", action="store_true",
                    help="run every step even when smaller sizes project it past the timeout")
    ap.add_argument("--smoke", action="store_true",
                    help="a few seconds: the smoke size, additive (or --engines), hashing text encoder, no warm-up")
    ap.add_argument("--generate-only", action="store_true", help="generate (or find) the zoos and stop")
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: in-process measurements
    return ap.parse_args(argv)


def config(args: argparse.Namespace, argv: list[str]) -> Config:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None
    if args.smoke:  # every step once, on a tiny zoo: the tests run it
        sizes, engines = [SIZES["smoke"]], engines or ["additive"]
        encoder, repeats, cli_repeats, floor_repeats = args.text_encoder or "hashing", 3, 1, 1
    else:
        sizes = [parse_size(s) for s in (args.sizes.split(",") if args.sizes else DEFAULT_SIZES) if s.strip()]
        engines = engines or default_engines()
        encoder, repeats, cli_repeats, floor_repeats = args.text_encoder, 20, 3, 5
    if args.max_records is not None:
        sizes = [s for s in sizes if s.records <= args.max_records]
    out = args.out or (Path(tempfile.mkdtemp(prefix="recsys-scale-")) if args.smoke
                       else ROOT / "benchmarks" / "results")
    cache = args.cache_dir or Path(os.environ.get("RECSYS_SCALE_CACHE")
                                   or Path(tempfile.gettempdir()) / "recsys-scale-cache")
    command = "python benchmarks/scale.py " + " ".join(shlex.quote(a) for a in argv)
    return Config(out=out, cache_dir=cache, engines=engines, sizes=sorted(sizes, key=lambda s: s.records),
                  seed=args.seed, text_encoder=encoder, timeout=args.timeout, mem_cap_mb=args.mem_cap_gb * 1024,
                  repeats=repeats, cli_repeats=cli_repeats, floor_repeats=floor_repeats, warm=not args.smoke,
                  project=not args.no_projection, max_predict_cells=args.max_predict_cells,
                  command=command.strip())


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # so that run_child's handler kills the running child


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.probe is not None:
        print(json.dumps(probe(json.loads(args.probe))))
        return 0
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.INFO, format="scale: %(message)s", stream=sys.stderr)
    try:
        cfg = config(args, argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.generate_only:
        for size in cfg.sizes:
            path, info = cached_zoo(size, cfg.seed, cfg.cache_dir)
            print(path)
        return 0
    t0 = time.perf_counter()
    run(cfg)
    log.info("wrote %s (%.0f s)", cfg.out / "scale.md", time.perf_counter() - t0)
    print(cfg.out / "scale.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
