"""Shared fixtures: the real reference zoos (skipped without them), isolated caches, small synthetic zoos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.datasets import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str, module: str | None = None):
    """The script ``benchmarks/<name>.py`` imported as a module (named ``module``, default ``name``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(module or name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
# Every named zoo: a test that reads one asks for the data_dir fixture (or one built on it), which skips it,
# with NO_DATA as its reason, when the reference data is absent.
REFERENCE_ZOOS = tuple(REGISTRY)
NO_DATA = ("reference data not found (RECSYS_DATA_DIR unset or an empty directory, no ../shared/data, nothing "
           "downloaded yet): run `make data` to download it into the user cache, or set RECSYS_DATA_DIR to a "
           f"directory holding {', '.join(z + '/' for z in REFERENCE_ZOOS)}")


def _find_data_dir() -> Path | None:
    """The reference zoos' raw files: $RECSYS_DATA_DIR (CI: ../shared/data), ../shared/data, or the user cache.

    An existing empty directory as RECSYS_DATA_DIR means "no data" (`make test-nodata`): the tests that need
    it are skipped, and nothing looks further (not ../shared/data, not the cache, never the network).
    """
    explicit = os.environ.get("RECSYS_DATA_DIR")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if path.is_dir() and not any(path.iterdir()):
            return None
        return path
    from recsys.paths import cache_dir

    for candidate in (ROOT.parent / "shared" / "data", cache_dir() / "data"):
        if all((candidate / z).is_dir() for z in REFERENCE_ZOOS):
            return candidate.resolve()
    return None


def pytest_sessionstart(session):
    if DATA_DIR is not None and not all((DATA_DIR / z).is_dir() for z in REFERENCE_ZOOS):
        # Set on purpose but wrong (CI sets it): say so once, instead of skipping every test that needs the data.
        missing = [z + "/" for z in REFERENCE_ZOOS if not (DATA_DIR / z).is_dir()]
        pytest.exit(f"point RECSYS_DATA_DIR to the reference data, or unset it (or set it to an empty directory) to "
                    f"skip the tests that need it: RECSYS_DATA_DIR={DATA_DIR} holds no {', '.join(missing)}",
                    returncode=4)


# Property-based tests (Hypothesis) run a fixed budget: `make test` a few dozen examples per property, `make fuzz`
# (RECSYS_HYPOTHESIS_PROFILE=fuzz) thousands; the mutation runs (`make mutate`) the same few, derandomized, so
# that a mutant's verdict does not hang on the draw. No deadline: this machine is shared, and a slow example
# is not a failure.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("mutation", max_examples=25, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("RECSYS_HYPOTHESIS_PROFILE", "default"))

DATA_DIR = _find_data_dir()
if DATA_DIR is not None:
    os.environ["RECSYS_DATA_DIR"] = str(DATA_DIR)
else:
    # Tests never use the network: a test that loads a named zoo without the data_dir fixture fails at once here.
    os.environ.pop("RECSYS_DATA_DIR", None)
    os.environ["RECSYS_DATA_URL"] = "http://127.0.0.1:9/no-reference-data"


#: seconds a test marked slow may take (others: pyproject.toml's timeout); the slowest, the README's walkthrough,
#: takes about two minutes on a busy 2-core machine
SLOW_TIMEOUT = 900


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Caches and default model files of a test never touch the user's."""
    cache = tmp_path_factory.getbasetemp() / "recsys-cache"
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(cache))
    monkeypatch.setenv("RECSYS_MODEL", str(tmp_path_factory.getbasetemp() / "default-model.npz"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """Small matrices everywhere: one BLAS thread (a threaded BLAS beside other work is many times slower)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _logger_state():
    import logging

    logger = logging.getLogger("recsys")
    return logger, (logger.handlers[:], logger.level, logger.propagate)


_PRISTINE_LOGGER = _logger_state()[1]


@pytest.fixture(autouse=True)
def _recsys_logger_restored():
    """The CLI (run in-process by CliRunner) sets up the 'recsys' logger for a terminal: its own handler, no
    propagation. Each test starts and ends with the logger as it was before any test (a module fixture that ran
    the CLI, set up before this one, would otherwise leave it so), so caplog sees the library's warnings."""
    logger, _ = _logger_state()
    logger.handlers[:], logger.level, logger.propagate = _PRISTINE_LOGGER[0][:], *_PRISTINE_LOGGER[1:]
    yield
    logger.handlers[:], logger.level, logger.propagate = _PRISTINE_LOGGER[0][:], *_PRISTINE_LOGGER[1:]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The reference data; tests that need it are skipped, with one reason, when it is not there."""
    if DATA_DIR is None:
        pytest.skip(NO_DATA)
    return DATA_DIR


@pytest.fixture(scope="session")
def domainnet(data_dir):
    from recsys import datasets

    return datasets.load("domainnet-270")


@pytest.fixture(scope="session")
def transfergraph(data_dir):
    from recsys import datasets

    return datasets.load("transfergraph-image")


def _hashing_data(zoo):
    from recsys.features import FeatureBuilder

    fb = FeatureBuilder(text_encoder="hashing").fit(zoo)
    return fb.zoo_data(zoo)


@pytest.fixture(scope="session")
def dn_data(domainnet):
    """DomainNet-270 as ZooData, text through the fast hashing encoder."""
    return _hashing_data(domainnet)


@pytest.fixture(scope="session")
def tg_data(transfergraph):
    """TransferGraph image zoo as ZooData (has LOG_ME and REG_H_SCORE scores)."""
    return _hashing_data(transfergraph)


def planted_low_rank(n_datasets=60, n_models=12, rank=2, density=0.6, noise=0.0, seed=0):
    """A ZooData whose full matrix is low rank and explained by the features.

    Returns (data with some cells hidden, full truth matrix).
    """
    from recsys.features.data import ZooData

    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_datasets, rank))
    V = rng.normal(size=(n_models, rank))
    logits = U @ V.T * 0.6 + rng.normal(size=n_models)[None, :] * 0.5
    full = 1 / (1 + np.exp(-logits)) * 0.8 + 0.1
    full = np.clip(full + noise * rng.normal(size=full.shape), 0, 1)
    mask = rng.random(full.shape) < density
    mask[np.arange(n_datasets), rng.integers(0, n_models, n_datasets)] = True
    Y = np.where(mask, full, np.nan)
    return ZooData(Y=Y, model_features=V, dataset_features=U), full


@pytest.fixture
def planted():
    return planted_low_rank()


def write_zoo(directory: Path, *, models=None, datasets=None, records=None, scores=None, zoo_json=None) -> Path:
    """Write a small zoo in the canonical format (defaults: a valid 3x4 zoo)."""
    directory.mkdir(parents=True, exist_ok=True)
    models = models if models is not None else pd.DataFrame(
        {"model": ["resnet50", "vit b/16", "convnext, tiny"], "family": ["resnet", "vit", "convnext"],
         "params": [25e6, 86e6, 28e6]})
    datasets = datasets if datasets is not None else pd.DataFrame(
        {"dataset": ["birds", "cars 196", "flowers/102", "new sketches"], "domain": ["photo", "photo", "photo", "sketch"],
         "classes": [200, 196, 102, 10], "labels": ["sparrow, crow", "sedan, coupe", "rose, tulip", "cat, dog"]})
    records = records if records is not None else pd.DataFrame(
        {"model": ["resnet50", "vit b/16", "convnext, tiny", "resnet50", "vit b/16", "convnext, tiny", "resnet50"],
         "dataset": ["birds", "birds", "birds", "cars 196", "cars 196", "flowers/102", "flowers/102"],
         "accuracy": [0.71, 0.83, 0.79, 0.65, 0.81, 0.93, 0.88]})
    if isinstance(models, pd.DataFrame):
        models.to_csv(directory / "models.csv", index=False)
    if isinstance(datasets, pd.DataFrame):
        datasets.to_csv(directory / "datasets.csv", index=False)
    if isinstance(records, pd.DataFrame):
        records.to_csv(directory / "records.csv", index=False)
    elif isinstance(records, str):
        (directory / "records.csv").write_text(records)
    if isinstance(scores, pd.DataFrame):
        scores.to_csv(directory / "scores.csv", index=False)
    if zoo_json is not None:
        import json

        (directory / "zoo.json").write_text(json.dumps(zoo_json))
    return directory


@pytest.fixture
def tiny_zoo_dir(tmp_path):
    return write_zoo(tmp_path / "tiny")


def expected_regret(truth, pred, k: int) -> float:
    """Regret@k (x100) computed by its definition, independently of recsys.evaluation.metrics: the true best minus
    the best truth among the k models ranked first by ``pred``, averaged over every way to break the ties at the
    cut (each subset of the tied group that fills the k places)."""
    import itertools

    t, p = np.asarray(truth, float), np.asarray(pred, float)
    k = min(k, len(t))
    cut = np.sort(p)[::-1][k - 1]
    fixed, tied = list(t[p > cut]), list(t[p == cut])
    bests = [max(fixed + list(pick)) for pick in itertools.combinations(tied, k - len(fixed))]
    return float(100 * (t.max() - np.mean(bests)))


def mean_pearson_hidden(pred: np.ndarray, Y: np.ndarray, truth: np.ndarray) -> float:
    """Mean over datasets with >= 3 hidden cells of Pearson(pred, truth) on them (0 for a flat prediction)."""
    hidden = np.isnan(Y)
    rs = []
    for i in np.flatnonzero(hidden.sum(1) >= 3):
        p, t = pred[i, hidden[i]], truth[i, hidden[i]]
        rs.append(np.corrcoef(p, t)[0, 1] if p.std() > 0 and t.std() > 0 else 0.0)
    return float(np.mean(rs))


def flip_bit(path: Path, member: str, at: int) -> None:
    """One bit of a model file's stored (uncompressed) member flipped in place, ``at`` bytes into its array: the
    zip directory keeps the old CRC-32 (what a lazy read must catch)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "r+b") as fh:
        fh.seek(info.header_offset)
        n_name, n_extra = struct.unpack("<HH", fh.read(30)[26:30])
        start = info.header_offset + 30 + n_name + n_extra
        fh.seek(start)
        header = len(fh.read(4096).split(b"\n", 1)[0]) + 1  # the .npy header ends in a newline
        fh.seek(start + header + at)
        byte = fh.read(1)
        fh.seek(start + header + at)
        fh.write(bytes([byte[0] ^ 0x04]))
