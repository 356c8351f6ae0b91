"""FeatureBuilder: side features, new datasets, persistence, and the embedding cache."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, write_zoo
from recsys.errors import NotFittedError, RecsysError, UnknownNameError
from recsys.features import FeatureBuilder, HashingEncoder, TrainData, embed, get_encoder
from recsys.features.text import DEFAULT_ENCODER, TextEncoder, _cache_file
from recsys.zoo import load_zoo

EXAMPLE = ROOT / "data" / "example-zoo"


class CountingEncoder(TextEncoder):
    """Hashing features, counting every text it is asked to encode."""

    def __init__(self, key="counting:32", dim=32):
        self.key = key
        self.spec = "hashing:32"
        self.inner = HashingEncoder(dim)
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.inner.encode(texts)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def dn_builder(domainnet):
    return FeatureBuilder(text_encoder="hashing").fit(domainnet)


# -- side features ------------------------------------------------------------------


def test_domainnet_features(domainnet, dn_builder, dn_data):
    fb, data = dn_builder, dn_data
    assert data.Y.shape == (270, 10) and not np.isnan(data.Y).any()
    assert data.model_features.shape[0] == 10 and data.dataset_features.shape[0] == 270
    data.check()
    g = data.dataset_groups
    assert set(g) == {"categorical:domain", "numeric:num_pre_class", "numeric:categories", "numeric:Sample_Size",
                      "text:domain", "text:Labels"}
    onehot = data.dataset_features[:, g["categorical:domain"]]
    assert onehot.shape[1] == 6 and (onehot.sum(1) == 1).all()
    assert fb.dataset_spec_.names[g["categorical:domain"]][0] == "domain=clipart"
    # numerics: log of heavy-tailed counts, standardized over the zoo
    for col in ("num_pre_class", "categories", "Sample_Size"):
        z = data.dataset_features[:, g[f"numeric:{col}"]][:, 0]
        assert z.mean() == pytest.approx(0, abs=1e-9) and z.std() == pytest.approx(1)
        expected = np.log(domainnet.datasets[col].to_numpy())
        np.testing.assert_allclose(z, (expected - expected.mean()) / expected.std())
    assert "log(# of parameters)" in fb.model_spec_.names and "acc@1 (on ImageNet-1K)" in fb.model_spec_.names
    # text: PCA directions with unit variance over the zoo
    text = data.dataset_features[:, g["text:Labels"]]
    assert text.shape[1] == 8
    np.testing.assert_allclose(text.std(0), 1, rtol=1e-6)
    assert 1 <= data.dataset_features[:, g["text:domain"]].shape[1] <= 5  # 6 distinct domains: at most 5 directions


def test_missing_values_and_indicator(transfergraph, tg_data):
    g = tg_data.dataset_groups
    i = tg_data.dataset_ids.index("food101")
    size = tg_data.dataset_features[:, g["numeric:size"]]
    assert size.shape[1] == 2  # value + missing indicator (the zoo has a gap)
    assert size[i].tolist() == [0.0, 1.0]
    assert (size[np.arange(13) != i, 1] == 0).all()
    assert np.isfinite(tg_data.model_features).all()
    assert set(tg_data.scores) == {"LOG_ME", "REG_H_SCORE"}
    assert tg_data.scores["LOG_ME"].shape == (13, 185)
    # LogME was computed for 8 datasets only
    assert (~np.isnan(tg_data.scores["LOG_ME"])).any(1).sum() == 8


def test_missing_categorical_and_inferred_log(tmp_path):
    models = pd.DataFrame({"model": ["a", "b", "c", "d"], "family": ["x", None, "y", "x"],
                           "params": [1e6, 5e6, 2e7, 3e8], "depth": [10, 12, 14, 16]})
    records = pd.DataFrame({"model": ["a"], "dataset": ["birds"], "accuracy": [0.5]})
    zoo = load_zoo(write_zoo(tmp_path / "z", models=models, records=records))
    fb = FeatureBuilder(text_encoder="hashing").fit(zoo)
    assert fb.model_spec_.names == ["family=x", "family=y", "log(params)", "depth"]
    f = fb.model_features_
    assert f[1, :2].tolist() == [0, 0]  # missing level: zeros
    assert f[:, 3].mean() == pytest.approx(0) and f[:, 3].std() == pytest.approx(1)


def test_constant_numeric_column_is_not_blown_up(tmp_path):
    models = pd.DataFrame({"model": ["a", "b", "c"], "size": [0.1, 0.1, 0.1]})
    roles = {"models": {"numeric": ["size"]}}
    zoo = load_zoo(write_zoo(tmp_path / "z", models=models, zoo_json=roles,
                             records=pd.DataFrame({"model": ["a"], "dataset": ["birds"], "accuracy": [0.5]})))
    fb = FeatureBuilder(text_encoder="hashing").fit(zoo)
    np.testing.assert_allclose(fb.model_features_, 0, atol=1e-12)


def test_no_text(domainnet):
    fb = FeatureBuilder(text_encoder=False).fit(domainnet)
    assert not [n for n in fb.dataset_spec_.names if n.startswith("text(")]
    assert fb.to_state()[0]["text_encoder"] is None
    fb = FeatureBuilder(text_encoder="hashing", text_dims=0).fit(domainnet)
    assert not fb.dataset_spec_.text
    with pytest.raises(RecsysError, match="text_dims must be an integer >= 0"):
        FeatureBuilder(text_encoder="hashing", text_dims=-1).fit(domainnet)


# -- new datasets ---------------------------------------------------------------------


def test_zoo_rows_given_as_new_get_their_features(domainnet, dn_builder, dn_data):
    names = ["269_clipart_32", "1_painting_2", domainnet.dataset_ids[149]]
    rows = domainnet.datasets.loc[names].reset_index()
    block = dn_builder.new_datasets(rows)
    assert (block.index == -1).all() and block.scores == {}
    np.testing.assert_allclose(block.features, dn_data.dataset_features[dn_builder.dataset_index(names)],
                               atol=1e-12)
    # the same values typed as strings (CLI --set) or as JSON numbers
    as_strings = {k: (str(int(v)) if isinstance(v, float) else v) for k, v in rows.iloc[0].to_dict().items()}
    np.testing.assert_allclose(dn_builder.new_datasets(as_strings).features[0], block.features[0], atol=1e-12)


def test_example_new_dataset_file(dn_builder):
    meta = json.loads((ROOT / "data" / "new-dataset.json").read_text())
    block = dn_builder.new_datasets(meta)
    assert block.features.shape == (1, dn_builder.dataset_features_.shape[1])
    assert np.isfinite(block.features).all()
    g = dn_builder.dataset_spec_.groups["categorical:domain"]
    assert dn_builder.dataset_spec_.names[g][int(block.features[0, g].argmax())] == "domain=sketch"


def test_unknown_columns_are_rejected(dn_builder):
    with pytest.raises(RecsysError, match=r"unknown dataset column\(s\) \['domian'\] \(did you mean 'domain'\?\); "
                                          r"accepted columns: domain, num_pre_class, categories, Sample_Size, Labels"):
        dn_builder.new_datasets({"domian": "sketch"})


def test_unseen_level_warns_and_contributes_zeros(dn_builder, caplog):
    with caplog.at_level(logging.WARNING, logger="recsys.features.builder"):
        block = dn_builder.new_datasets({"domain": "watercolor", "num_pre_class": 10, "categories": 4,
                                         "Sample_Size": 40, "Labels": "cat, dog, bird, fish"})
    assert "domain='watercolor' was not seen in the zoo" in caplog.text
    g = dn_builder.dataset_spec_.groups["categorical:domain"]
    assert (block.features[0, g] == 0).all()
    assert np.isfinite(block.features).all()


def test_absent_columns_are_missing(dn_builder, caplog):
    with caplog.at_level(logging.WARNING, logger="recsys.features.builder"):
        block = dn_builder.new_datasets({"domain": "sketch"})
    assert "lacks column(s)" in caplog.text
    spec = dn_builder.dataset_spec_
    assert (block.features[0, spec.groups["numeric:categories"]] == 0).all()
    assert (block.features[0, spec.groups["text:Labels"]] == 0).all()


def test_bad_new_values(dn_builder):
    with pytest.raises(RecsysError, match="column 'categories' is numeric but got 'many'"):
        dn_builder.new_datasets({"domain": "sketch", "categories": "many"})
    with pytest.raises(RecsysError, match="column 'categories' must be > 0"):
        dn_builder.new_datasets({"domain": "sketch", "categories": 0})
    with pytest.raises(RecsysError, match="no new dataset given"):
        dn_builder.new_datasets(pd.DataFrame(columns=["domain"]))


def test_new_dataset_scores(transfergraph, tg_data):
    fb = FeatureBuilder(text_encoder="hashing").fit(transfergraph)
    scores = pd.DataFrame({"model": ["google/vit-base-patch16-224", "not/a-model"], "metric": ["LOG_ME", "LOG_ME"],
                           "score": [1.5, 2.0]})
    block = fb.new_datasets({"size": 1000, "number_of_classes": 10}, scores=scores)
    j = fb.model_index(["google/vit-base-patch16-224"])[0]
    assert block.scores["LOG_ME"].shape == (1, 185) and block.scores["LOG_ME"][0, j] == 1.5
    assert np.isnan(block.scores["REG_H_SCORE"]).all()
    with pytest.raises(RecsysError, match="scores have no column 'dataset'"):
        fb.new_datasets([{"size": 1}, {"size": 2}], scores=scores)


def test_names_to_indices(dn_builder):
    assert dn_builder.model_index(["resnet18", "resnet50"]).tolist() == [8, 7]
    with pytest.raises(UnknownNameError, match=r"unknown dataset '296_clipart_32'; did you mean '269_clipart_32'"):
        dn_builder.dataset_index(["296_clipart_32"])
    with pytest.raises(NotFittedError):
        FeatureBuilder().new_datasets({"domain": "sketch"})


# -- persistence ------------------------------------------------------------------------


def test_state_round_trip(domainnet, dn_builder, dn_data):
    meta, arrays = dn_builder.to_state()
    meta = json.loads(json.dumps(meta))  # must be plain JSON
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    fb = FeatureBuilder.from_state(meta, arrays)
    assert fb.dataset_spec_.names == dn_builder.dataset_spec_.names
    data = fb.train_data(domainnet)
    np.testing.assert_array_equal(data.dataset_features, dn_data.dataset_features)
    new = {"domain": "sketch", "num_pre_class": 30, "categories": 8, "Sample_Size": 240, "Labels": "cat, dog"}
    np.testing.assert_array_equal(fb.new_datasets(new).features, dn_builder.new_datasets(new).features)


def test_train_data_rejects_misshapen_features():
    with pytest.raises(ValueError, match="model_features has shape"):
        TrainData(Y=np.zeros((4, 3)), model_features=np.zeros((4, 3)), dataset_features=np.zeros((4, 2)))
    data = TrainData(Y=np.zeros((4, 3)), model_features=np.zeros((3, 0)), dataset_features=[])
    assert data.dataset_features.shape == (4, 0)


# -- the embedding cache --------------------------------------------------------------


def test_second_fit_does_not_encode(fresh_cache):
    zoo = load_zoo(EXAMPLE)
    enc = CountingEncoder()
    first = FeatureBuilder(text_encoder=enc).fit(zoo)
    assert sum(len(c) for c in enc.calls) == 8 + 5  # 8 label lists, 5 distinct domains
    assert first.dataset_spec_.groups["text:labels"].stop > first.dataset_spec_.groups["text:labels"].start
    again = CountingEncoder()  # a fresh encoder with the same key: only the disk cache can answer
    second = FeatureBuilder(text_encoder=again).fit(zoo)
    assert again.calls == []
    np.testing.assert_array_equal(second.dataset_features_, first.dataset_features_)
    # one more text: only it is encoded
    embed(["photo", "a brand new text"], again)
    assert again.calls == [["a brand new text"]]


def test_cache_is_keyed_by_encoder(fresh_cache):
    a, b = CountingEncoder("counting:a"), CountingEncoder("counting:b")
    embed(["x y"], a)
    embed(["x y"], b)
    assert a.calls == [["x y"]] and b.calls == [["x y"]]
    assert _cache_file(a) != _cache_file(b)


def test_corrupt_cache_is_rebuilt(fresh_cache, caplog):
    enc = CountingEncoder()
    v = embed(["some text"], enc)
    _cache_file(enc).write_bytes(b"not an npz file")
    with caplog.at_level(logging.WARNING):
        w = embed(["some text"], enc)
    assert "ignoring unreadable embedding cache" in caplog.text
    np.testing.assert_array_equal(v, w)
    assert len(enc.calls) == 2
    embed(["some text"], enc)
    assert len(enc.calls) == 2  # rebuilt


def test_bad_encoder_output_is_rejected(fresh_cache):
    class Broken(CountingEncoder):
        def encode(self, texts):
            return np.zeros((len(texts) + 1, 4))

    with pytest.raises(RecsysError, match="must return one finite vector per text"):
        embed(["a"], Broken("broken"))


def test_warm_cache_needs_no_torch(fresh_cache):
    """With every text cached, fitting with the default MiniLM neither runs it nor imports torch.

    The cache is warmed here under the real encoder's key (so the test stays fast); the
    slow test in test_text_encoder.py does the same after a real encoding.
    """
    zoo = load_zoo(EXAMPLE)
    key = get_encoder(None).key
    assert key.startswith(DEFAULT_ENCODER)
    fake = CountingEncoder(key=key, dim=384)
    texts = [str(v) for col in ("domain", "labels") for v in zoo.datasets[col]]
    embed(texts, fake)
    code = textwrap.dedent(f"""
        import json, sys
        from recsys.features import FeatureBuilder, TransformerEncoder
        from recsys.zoo import load_zoo
        def refuse(self, texts):
            raise SystemExit("encode called for " + repr(texts[:3]))
        TransformerEncoder.encode = refuse
        fb = FeatureBuilder().fit(load_zoo({str(EXAMPLE)!r}))
        print(json.dumps({{"torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules,
                          "text": len(fb.dataset_spec_.text)}}))
    """)
    env = {**os.environ, "RECSYS_CACHE_DIR": str(fresh_cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"torch": False, "transformers": False, "text": 2}


def test_names_with_commas_slashes_spaces_end_to_end(tiny_zoo_dir):
    zoo = load_zoo(tiny_zoo_dir)
    fb = FeatureBuilder(text_encoder="hashing").fit(zoo)
    data = fb.train_data(zoo)
    i = fb.dataset_index(["flowers/102"])[0]
    j = fb.model_index(["convnext, tiny"])[0]
    assert data.Y[i, j] == pytest.approx(0.93)
    assert np.isnan(data.Y[fb.dataset_index(["new sketches"])[0]]).all()
    assert data.dataset_ids[i] == "flowers/102" and data.model_ids[fb.model_index(["vit b/16"])[0]] == "vit b/16"
