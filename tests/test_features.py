"""FeatureBuilder: side features, new datasets, persistence, and the embedding cache."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, write_zoo
from recsys.errors import NotFittedError, RecsysError, UnknownNameError
from recsys.features import FeatureBuilder, HashingEncoder, Ids, ZooData, embed, get_encoder, new_dataset_frame
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


def _new(builder, data, metadata, scores=None):
    """The block of brand-new datasets, as the recommender asks for it."""
    return builder.new_datasets(new_dataset_frame(metadata), data.model_ids, scores)


# -- side features ------------------------------------------------------------------


def test_domainnet_features(domainnet, dn_builder, dn_data):
    fb, data = dn_builder, dn_data
    assert data.Y.shape == (270, 10) and not np.isnan(data.Y).any()
    assert data.model_features.shape[0] == 10 and data.dataset_features.shape[0] == 270
    data.check()
    lay = data.datasets.layout
    assert lay.to_json() == {"categorical": [["domain", 0, 6]],
                             "numeric": [["num_pre_class", 6, 7], ["categories", 7, 8], ["Sample_Size", 8, 9]],
                             "text_dims": [["domain", 9, 13], ["Labels", 13, 21]]}
    onehot = data.datasets.categorical["domain"]
    assert onehot.shape[1] == 6 and (onehot.sum(1) == 1).all()
    assert fb.dataset_spec_.names[lay.span("categorical", "domain")][0] == "domain=clipart"
    assert sorted(data.datasets.tokens) == ["Labels", "domain"] and sorted(data.datasets.text) == ["Labels", "domain"]
    # numerics: log of heavy-tailed counts, standardized over the zoo
    for col in ("num_pre_class", "categories", "Sample_Size"):
        z = data.datasets.numeric[col]
        assert z.mean() == pytest.approx(0, abs=1e-9) and z.std() == pytest.approx(1)
        expected = np.log(domainnet.datasets[col].to_numpy())
        np.testing.assert_allclose(z, (expected - expected.mean()) / expected.std())
    assert "log(# of parameters)" in fb.model_spec_.names and "acc@1 (on ImageNet-1K)" in fb.model_spec_.names
    # text: PCA directions with unit variance over the zoo
    text = data.dataset_features[:, lay.span("text_dims", "Labels")]
    assert text.shape[1] == 8
    np.testing.assert_allclose(text.std(0), 1, rtol=1e-6)
    assert 1 <= data.dataset_features[:, lay.span("text_dims", "domain")].shape[1] <= 5  # 6 domains: <= 5 directions


def test_missing_values_and_indicator(transfergraph, tg_data):
    i = tg_data.dataset_ids.index("food101")
    size = tg_data.dataset_features[:, tg_data.datasets.layout.span("numeric", "size")]
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
    f = fb.zoo_data(zoo).model_features
    assert f[1, :2].tolist() == [0, 0]  # missing level: zeros
    assert f[:, 3].mean() == pytest.approx(0) and f[:, 3].std() == pytest.approx(1)


def test_constant_numeric_column_is_not_blown_up(tmp_path):
    models = pd.DataFrame({"model": ["a", "b", "c"], "size": [0.1, 0.1, 0.1]})
    roles = {"models": {"numeric": ["size"]}}
    zoo = load_zoo(write_zoo(tmp_path / "z", models=models, zoo_json=roles,
                             records=pd.DataFrame({"model": ["a"], "dataset": ["birds"], "accuracy": [0.5]})))
    fb = FeatureBuilder(text_encoder="hashing").fit(zoo)
    np.testing.assert_allclose(fb.zoo_data(zoo).model_features, 0, atol=1e-12)


def test_no_text(domainnet):
    fb = FeatureBuilder(text_encoder=False).fit(domainnet)
    assert not [n for n in fb.dataset_spec_.names if n.startswith("text(")]
    assert fb.to_state()[0]["text_encoder"] is None
    fb = FeatureBuilder(text_encoder="hashing", text_dims=0).fit(domainnet)
    assert not fb.dataset_spec_.text
    with pytest.raises(RecsysError, match="give text_dims an integer >= 0"):
        FeatureBuilder(text_encoder="hashing", text_dims=-1).fit(domainnet)


# -- new datasets ---------------------------------------------------------------------


def test_zoo_rows_given_as_new_get_their_features(domainnet, dn_builder, dn_data):
    names = ["269_clipart_32", "1_painting_2", domainnet.dataset_ids[149]]
    rows = domainnet.datasets.loc[names].reset_index()
    block = _new(dn_builder, dn_data, rows)
    assert (block.index == -1).all() and block.scores == {}
    rows_in_zoo = dn_data.dataset_ids.indices(names)
    np.testing.assert_allclose(block.features, dn_data.dataset_features[rows_in_zoo], atol=1e-12)
    for col in ("Labels", "domain"):  # token sets and full embeddings too
        assert [t.tolist() for t in map(block.side.tokens[col].row, range(3))] == \
            [dn_data.datasets.tokens[col].row(i).tolist() for i in rows_in_zoo]
        np.testing.assert_allclose(block.side.text[col], dn_data.datasets.text[col][rows_in_zoo], atol=1e-12)
    # the same values typed as strings (CLI --set) or as JSON numbers
    as_strings = {k: (str(int(v)) if isinstance(v, float) else v) for k, v in rows.iloc[0].to_dict().items()}
    np.testing.assert_allclose(_new(dn_builder, dn_data, as_strings).features[0], block.features[0], atol=1e-12)


def test_example_new_dataset_file(dn_builder, dn_data):
    meta = json.loads((ROOT / "data" / "new-dataset.json").read_text())
    block = _new(dn_builder, dn_data, meta)
    assert block.features.shape == (1, dn_data.dataset_features.shape[1])
    assert np.isfinite(block.features).all()
    g = dn_builder.dataset_spec_.layout.span("categorical", "domain")
    assert dn_builder.dataset_spec_.names[g][int(block.features[0, g].argmax())] == "domain=sketch"


def test_unknown_columns_are_rejected(dn_builder, dn_data):
    with pytest.raises(RecsysError, match=r"describe new datasets with the zoo's dataset columns \(domain, "
                                          r"num_pre_class, categories, Sample_Size, Labels\); unknown column\(s\) "
                                          r"\['domian'\] \(did you mean 'domain'\?\)"):
        _new(dn_builder, dn_data, {"domian": "sketch"})


def test_unseen_level_warns_and_contributes_zeros(dn_builder, dn_data, caplog):
    with caplog.at_level(logging.WARNING, logger="recsys.features.builder"):
        block = _new(dn_builder, dn_data, {"domain": "watercolor", "num_pre_class": 10, "categories": 4,
                                           "Sample_Size": 40, "Labels": "cat, dog, bird, fish"})
    assert "domain='watercolor' was not seen in the zoo" in caplog.text
    g = dn_builder.dataset_spec_.layout.span("categorical", "domain")
    assert (block.features[0, g] == 0).all()
    assert np.isfinite(block.features).all()


def test_absent_columns_are_missing(dn_builder, dn_data, caplog):
    with caplog.at_level(logging.WARNING, logger="recsys.features.builder"):
        block = _new(dn_builder, dn_data, {"domain": "sketch"})
    assert "lacks column(s)" in caplog.text
    lay = dn_builder.dataset_spec_.layout
    assert (block.features[0, lay.span("numeric", "categories")] == 0).all()
    assert (block.features[0, lay.span("text_dims", "Labels")] == 0).all()
    assert block.side.tokens["Labels"].sizes().tolist() == [0] and not block.side.text["Labels"].any()


def test_bad_new_values(dn_builder, dn_data):
    with pytest.raises(RecsysError, match="^give column 'categories' a number or leave it out: it is numeric and got "
                                          "'many'"):
        _new(dn_builder, dn_data, {"domain": "sketch", "categories": "many"})
    with pytest.raises(RecsysError, match="give column 'categories' a value > 0"):
        _new(dn_builder, dn_data, {"domain": "sketch", "categories": 0})
    with pytest.raises(RecsysError, match="describe at least one new dataset"):
        _new(dn_builder, dn_data, pd.DataFrame(columns=["domain"]))
    with pytest.raises(RecsysError, match="give each new dataset its own name: 'x' names several"):
        new_dataset_frame([{"dataset": "x"}, {"dataset": "x "}])


def test_new_values_outside_the_zoos_range_warn_with_column_value_and_range(dn_builder, dn_data, caplog):
    """num_classes=1e9 on a zoo of 2-32 passes the 100-standard-deviation check of the log scale; it gets a warning
    (the predictions extrapolate); a value inside the range gets none; the range travels in the model file."""
    meta = {"dataset": "huge", "domain": "sketch", "num_pre_class": 10, "categories": 1e9, "Sample_Size": 40,
            "Labels": "cat, dog"}
    with caplog.at_level(logging.WARNING, logger="recsys.features.builder"):
        _new(dn_builder, dn_data, meta)
    assert "huge: column 'categories' = 1e+09 is outside the zoo's range (2 to 32)" in caplog.text
    assert "extrapolate" in caplog.text and "Sample_Size" not in caplog.text
    caplog.clear()
    restored = FeatureBuilder.from_state(*dn_builder.to_state())
    with caplog.at_level(logging.WARNING, logger="recsys.features.builder"):
        _new(restored, dn_data, {**meta, "categories": 4, "num_pre_class": 51})
    assert caplog.text.count("outside the zoo's range") == 1 and "'num_pre_class' = 51" in caplog.text
    caplog.clear()
    old = FeatureBuilder.from_state(*dn_builder.to_state())  # a model file written before the range was stored
    for n in old.dataset_spec_.numeric:
        n.pop("min"), n.pop("max")
    with caplog.at_level(logging.WARNING, logger="recsys.features.builder"):
        _new(old, dn_data, meta)
    assert "outside the zoo's range" not in caplog.text


@pytest.mark.parametrize("value", ["1e154", "1e200", "-1e308"])
def test_a_zoo_value_whose_square_overflows_is_one_line(tmp_path, value):
    """A value of 1e154 or more once ended in LightFM's "Not all input values are finite" (its square overflows)."""
    models = pd.DataFrame({"model": ["a", "b", "c"], "depth": ["10", value, "14"]})
    zoo = load_zoo(write_zoo(tmp_path / "z", models=models, zoo_json={"models": {"numeric": ["depth"]}},
                             records=pd.DataFrame({"model": ["a"], "dataset": ["birds"], "accuracy": [0.5]})))
    line = f"correct the value of column 'depth' (model 'b'), or leave it empty: {float(value):g} is beyond"
    with pytest.raises(RecsysError, match="^" + re.escape(line)):
        FeatureBuilder(text_encoder="hashing").fit(zoo)


def test_new_dataset_frame_names_each_row_once():
    assert new_dataset_frame({" domain ": "sketch"}).to_dict("records") == [{"domain": "sketch",
                                                                               "dataset": "new-dataset"}]
    frame = new_dataset_frame([{"domain": "a"}, {"domain": "b", "dataset": " mine "}, {"dataset": float("nan")}])
    assert frame["dataset"].tolist() == ["new-dataset-1", "mine", "new-dataset-3"]


def test_new_dataset_scores(transfergraph, tg_data):
    fb = FeatureBuilder(text_encoder="hashing").fit(transfergraph)
    scores = pd.DataFrame({"model": ["google/vit-base-patch16-224", "not/a-model"], "metric": ["LOG_ME", "LOG_ME"],
                           "score": [1.5, 2.0]})
    block = _new(fb, tg_data, {"size": 1000, "number_of_classes": 10}, scores)
    j = tg_data.model_ids.index("google/vit-base-patch16-224")
    assert block.scores["LOG_ME"].shape == (1, 185) and block.scores["LOG_ME"][0, j] == 1.5
    assert np.isnan(block.scores["REG_H_SCORE"]).all()
    with pytest.raises(RecsysError, match="^name each score's dataset in a column 'dataset'"):
        _new(fb, tg_data, [{"size": 1}, {"size": 2}], scores)


def test_names_to_indices(dn_data):
    assert dn_data.model_ids.indices(["resnet18", "resnet50"]).tolist() == [8, 7]
    many = [dn_data.dataset_ids[i] for i in range(0, 270, 20)]  # (more than a few names: through an index)
    assert dn_data.dataset_ids.indices(many).tolist() == list(range(0, 270, 20))
    for names in (["296_clipart_32"], [*many, "296_clipart_32"]):
        with pytest.raises(UnknownNameError, match=r"unknown dataset '296_clipart_32'; did you mean '269_clipart_32'"):
            dn_data.dataset_ids.indices(names)
    assert "269_clipart_32" in dn_data.dataset_ids and "296_clipart_32" not in dn_data.dataset_ids
    # names are compared as the zoo's ids are stored: stripped, Unicode NFC (macOS file names are NFD)
    ids = Ids(["café", "b"], "dataset")
    assert ids.index("cafe\u0301") == 0 and ids.indices([" b ", "caf\u00e9"]).tolist() == [1, 0]
    with pytest.raises(NotFittedError, match=r"^call fit\(zoo\) first: this FeatureBuilder is not fitted$"):
        FeatureBuilder().new_datasets(new_dataset_frame({"domain": "sketch"}), dn_data.model_ids)


# -- persistence ------------------------------------------------------------------------


def test_state_round_trip(domainnet, dn_builder, dn_data):
    meta, arrays = dn_builder.to_state()
    meta = json.loads(json.dumps(meta))  # must be plain JSON
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    fb = FeatureBuilder.from_state(meta, arrays)
    assert fb.dataset_spec_.names == dn_builder.dataset_spec_.names
    data = fb.zoo_data(domainnet)
    np.testing.assert_array_equal(data.dataset_features, dn_data.dataset_features)
    new = {"domain": "sketch", "num_pre_class": 30, "categories": 8, "Sample_Size": 240, "Labels": "cat, dog"}
    np.testing.assert_array_equal(_new(fb, dn_data, new).features, _new(dn_builder, dn_data, new).features)


def test_train_data_rejects_misshapen_features():
    with pytest.raises(ValueError, match="model_features has shape"):
        ZooData(Y=np.zeros((4, 3)), model_features=np.zeros((4, 3)), dataset_features=np.zeros((4, 2)))
    data = ZooData(Y=np.zeros((4, 3)), model_features=np.zeros((3, 0)), dataset_features=[])
    assert data.dataset_features.shape == (4, 0)


# -- the embedding cache --------------------------------------------------------------


def test_second_fit_does_not_encode(fresh_cache):
    zoo = load_zoo(EXAMPLE)
    enc = CountingEncoder()
    first = FeatureBuilder(text_encoder=enc).fit(zoo)
    assert sum(len(c) for c in enc.calls) == 8 + 5  # 8 label lists, 5 distinct domains
    span = first.dataset_spec_.layout.span("text_dims", "labels")
    assert span.stop > span.start
    again = CountingEncoder()  # a fresh encoder with the same key: only the disk cache can answer
    second = FeatureBuilder(text_encoder=again).fit(zoo)
    assert again.calls == []
    np.testing.assert_array_equal(second.zoo_data(zoo).dataset_features, first.zoo_data(zoo).dataset_features)
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

    with pytest.raises(RecsysError, match="^use an encoder that returns one finite vector per text"):
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
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"torch": False, "transformers": False, "text": 2}


def test_names_with_commas_slashes_spaces_end_to_end(tiny_zoo_dir):
    zoo = load_zoo(tiny_zoo_dir)
    fb = FeatureBuilder(text_encoder="hashing").fit(zoo)
    data = fb.zoo_data(zoo)
    i = data.dataset_ids.index("flowers/102")
    j = data.model_ids.index("convnext, tiny")
    assert data.Y[i, j] == pytest.approx(0.93)
    assert np.isnan(data.Y[data.dataset_ids.index("new sketches")]).all()
    assert data.dataset_ids[i] == "flowers/102" and data.model_ids[data.model_ids.index("vit b/16")] == "vit b/16"
