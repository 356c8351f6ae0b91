"""Seeded synthetic zoos in the canonical format: low-rank accuracies partly explained by metadata.

:func:`generate` documents the structure; :func:`cached_zoo` generates a zoo once per (size, seed) and
reuses it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .sizes import Size, n_holdout

log = logging.getLogger("scale")

#: bump when the generator changes: cached zoos of another version are not reused
GENERATOR_VERSION = 1

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
    hold[rng.choice(len(cells), size=n_holdout(len(cells)), replace=False)] = True
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

