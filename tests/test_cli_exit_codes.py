"""The command line's error paths, exactly (issue 21: mutants of recsys/cli.py that survived the other tests).

Which model file a command reads (the default one, or none yet), how lazily, and what an unknown dataset's
message says about the model it asked (its file, its zoo, a dataset it holds), down to the defaults used when
the model does not know them.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from click.testing import CliRunner

import recsys.artifact as artifact
from recsys import cli
from recsys.cli import main
from recsys.errors import RecsysError, UnknownNameError, UsageError

from conftest import ROOT

EXAMPLE = ROOT / "data" / "example-zoo"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """The example zoo fitted once (hashing encoder, no calibration), its arrays stored as mappable (from 256 bytes)."""
    path = tmp_path_factory.mktemp("cli-model") / "example.npz"
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 256):
        res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing",
                                        "--no-calibrate", "--out", str(path)])
    assert res.exit_code == 0, res.stderr
    return path


def test_load_model_reads_eagerly_unless_asked(model):
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 256):
        assert cli._load_model(str(model))._lazy is False
        assert cli._load_model(str(model), lazy=True)._lazy is True


def test_the_default_model_file_when_there_is_one_and_when_there_is_none(model, tmp_path, monkeypatch):
    missing = tmp_path / "none" / "model.npz"
    monkeypatch.setenv("RECSYS_MODEL", str(missing))
    res = CliRunner().invoke(main, ["-q", "topk", "--dataset", "cub birds"])
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"error: no model file at {missing}; run `recsys fit` first, or pass --model FILE")
    monkeypatch.setenv("RECSYS_MODEL", str(model))
    res = CliRunner().invoke(main, ["-q", "topk", "--dataset", "cub birds", "-k", "2", "--format", "csv"])
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 3
    assert cli._load_model(None).dataset_ids[0] == "cub birds"  # the default model file, when there is one


@pytest.fixture
def _default_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_MODEL", str(tmp_path / "missing.npz"))


def test_load_model_without_a_default_model(_default_is_missing):
    with pytest.raises(RecsysError, match=r"no model file at .*missing\.npz; run `recsys fit` first"):
        cli._load_model(None)


def test_an_unknown_dataset_names_the_model_file_its_zoo_and_a_dataset_it_holds(model):
    res = CliRunner().invoke(main, ["-q", "topk", "--model", str(model), "--dataset", "cub bird"])
    assert res.exit_code == 2
    assert res.stderr.strip().endswith(
        f"(model file {str(model)!r} was fitted on zoo 'example-zoo': 8 datasets such as 'cub birds'; give one of "
        f"them, or --model FILE fitted on the zoo you mean)")


def test_ask_without_a_zoo_name_or_a_path_says_so():
    def unknown():
        raise UnknownNameError("dataset", "x", [])

    rec = SimpleNamespace(dataset_ids=["first", "second"])  # no zoo_, no path_
    with pytest.raises(UsageError) as err:
        cli._ask(rec, unknown)
    assert str(err.value) == ("unknown dataset 'x' (model file '?' was fitted on zoo '?': 2 datasets such as 'first'; "
                              "give one of them, or --model FILE fitted on the zoo you mean)")
    rec = SimpleNamespace(dataset_ids=["first"], zoo_={}, path_=Path("m.npz"))
    with pytest.raises(UsageError, match=r"model file 'm\.npz' was fitted on zoo '\?'"):
        cli._ask(rec, unknown)
