"""Named reference zoos: importers on the real files, and the RECSYS_DATA_DIR → cache → download chain.

Downloads are tested against a local HTTP server on 127.0.0.1; any other
connection fails the test.
"""

from __future__ import annotations

import functools
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys import datasets
from recsys.errors import ZooError


# -- a local mirror ------------------------------------------------------------------


class _Server:
    """A directory served on 127.0.0.1, counting the requests it answers."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server naming)
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def no_internet(monkeypatch):
    """Any connection to a host other than 127.0.0.1 fails the test."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def mirror(data_dir, no_internet):
    server = _Server(data_dir)
    yield server
    server.close()


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache and no RECSYS_DATA_DIR: the only way to a named zoo is the download."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(cache))
    monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)
    monkeypatch.delenv("RECSYS_DATA_URL", raising=False)
    return cache


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


# -- downloads -------------------------------------------------------------------------


def test_download_lands_in_cache_then_no_more_requests(mirror, fresh_cache, domainnet):
    raw = datasets.fetch("domainnet-270", base_url=f"{mirror.url}/domainnet-270/")
    assert raw == fresh_cache / "data" / "domainnet-270"
    assert sorted(mirror.requests) == sorted(f"/domainnet-270/{f}" for f in datasets.REGISTRY["domainnet-270"].files)
    assert _files(fresh_cache / "data") == ["domainnet-270"] + [f"domainnet-270/{f}" for f in
                                                                sorted(datasets.REGISTRY["domainnet-270"].files)]
    zoo = datasets.load("domainnet-270")  # from the cache: the server is not asked again
    assert len(mirror.requests) == 3
    assert zoo.fingerprint() == domainnet.fingerprint()


def test_mirror_variable(mirror, fresh_cache, monkeypatch, transfergraph):
    monkeypatch.setenv("RECSYS_DATA_URL", mirror.url + "/")
    zoo = datasets.load("transfergraph-image")
    assert len(mirror.requests) == 4 and all(r.startswith("/transfergraph-image/") for r in mirror.requests)
    assert zoo.fingerprint() == transfergraph.fingerprint()
    datasets.load("transfergraph-image")
    assert len(mirror.requests) == 4


def test_corrupt_cached_file_is_downloaded_again(mirror, fresh_cache, monkeypatch):
    monkeypatch.setenv("RECSYS_DATA_URL", mirror.url)
    raw = datasets.fetch("domainnet-270")
    (raw / "source_model_meta_data.csv").write_text("tampered\n")
    datasets.fetch("domainnet-270")
    assert mirror.requests[3:] == ["/domainnet-270/source_model_meta_data.csv"]  # only the bad file
    assert datasets.load("domainnet-270").summary()["models"] == 10


def test_tampered_download_fails_sha256_and_keeps_nothing(tmp_path, data_dir, fresh_cache, no_internet):
    evil = tmp_path / "evil" / "domainnet-270"
    shutil.copytree(data_dir / "domainnet-270", evil)
    record = evil / "record_domainnet_10_270.csv"
    record.chmod(0o644)
    record.write_text(record.read_text().replace("0.83", "0.99", 1))
    server = _Server(tmp_path / "evil")
    try:
        with pytest.raises(ZooError, match=r"^check RECSYS_DATA_URL .*: record_domainnet_10_270.csv downloaded "
                                            r"from .* does not match its pinned sha256 .*nothing was kept") as info:
            datasets.fetch("domainnet-270", base_url=f"{server.url}/domainnet-270")
    finally:
        server.close()
    assert "\n" not in str(info.value)
    # no half-written file, no staging directory; the good files did not land either (all or nothing)
    assert _files(fresh_cache) in ([], ["data"])


def test_download_error_is_a_zoo_error(fresh_cache, no_internet):
    server = _Server(fresh_cache.parent)  # serves a directory without the files: 404
    try:
        with pytest.raises(ZooError, match=r"^set RECSYS_DATA_DIR .* or RECSYS_DATA_URL .*: could not download "
                                            r".* of zoo 'domainnet-270' .*\(HTTP 404") as info:
            datasets.fetch("domainnet-270", base_url=server.url)
    finally:
        server.close()
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    assert _files(fresh_cache) in ([], ["data"])


def test_offline_first_run_is_one_line_that_leads_with_the_fix(fresh_cache, no_internet, monkeypatch):
    """No network (no name resolution), a refused connection, a server that never answers: one short line that
    says first to set RECSYS_DATA_DIR or RECSYS_DATA_URL, then why, without the chain of urllib3 exceptions."""
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with monkeypatch.context() as m:
        m.setattr(socket, "getaddrinfo", no_dns)
        with pytest.raises(ZooError) as info:
            datasets.load("parc-71")
    causes = {"no-dns": str(info.value)}
    monkeypatch.setenv("RECSYS_DATA_URL", "http://127.0.0.1:9/mirror")  # nothing listens on port 9
    with pytest.raises(ZooError) as info:
        datasets.load("parc-71")
    causes["refused"] = str(info.value)
    silent = socket.socket()  # accepts connections (the kernel does), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setenv("RECSYS_DATA_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/mirror")
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT", (0.2, 0.2))
    try:
        with pytest.raises(ZooError) as info:
            datasets.load("parc-71")
    finally:
        silent.close()
    causes["silent"] = str(info.value)
    for why, text in (("no-dns", "does not resolve"), ("refused", "connection refused"), ("silent", "in time")):
        line = causes[why]
        assert line.startswith("set RECSYS_DATA_DIR to a directory holding parc-71/"), line
        assert "RECSYS_DATA_URL" in line.split(":")[0] and text in line and "\n" not in line, line
        assert "urllib3" not in line and "Max retries" not in line and len(line) < 400, line
    assert _files(fresh_cache) in ([], ["data"])


def test_no_download_when_refused(fresh_cache):
    with pytest.raises(ZooError, match="not available locally"):
        datasets.load("domainnet-270", download=False)


def test_data_dir_means_no_request_at_all(mirror, monkeypatch, data_dir, domainnet):
    monkeypatch.setenv("RECSYS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RECSYS_DATA_URL", mirror.url)
    assert datasets.fetch("domainnet-270") == data_dir / "domainnet-270"
    zoo = datasets.load("domainnet-270")
    datasets.load("transfergraph-image")
    assert mirror.requests == []
    assert zoo.fingerprint() == domainnet.fingerprint()


# -- names -------------------------------------------------------------------------------


def test_unknown_name_suggests():
    with pytest.raises(ZooError, match=r"give a named zoo \(domainnet-270, .*'domainnet-27' is neither a named zoo "
                                       r"\(did you mean 'domainnet-270'\?\) nor an existing directory"):
        datasets.load("domainnet-27")


def test_load_a_directory(tiny_zoo_dir):
    assert datasets.load(tiny_zoo_dir).summary()["records"] == 7
    assert datasets.load(str(tiny_zoo_dir)).name == "tiny"
    with pytest.raises(ZooError, match="is neither a named zoo nor an existing directory"):
        datasets.load(str(tiny_zoo_dir / "nope"))


# -- importers on the real files -------------------------------------------------------


def test_domainnet_import(domainnet, data_dir):
    zoo = domainnet
    s = zoo.summary()
    assert (s["models"], s["datasets"], s["records"], s["density"]) == (10, 270, 2700, 1.0)
    assert s["datasets_without_records"] == 0 and s["metrics"] == []
    row = zoo.datasets.loc["269_clipart_32"]
    assert row["domain"] == "clipart" and row["categories"] == 32 and row["num_pre_class"] == 50
    labels = [x.strip() for x in row["Labels"].split(",")]
    assert len(labels) == 32 and labels[:3] == ["tornado", "harp", "elephant"] and labels[-1] == "birthday_cake"
    table = zoo.accuracy_table()
    # column 268 of the record matrix (task14_clipart_50) is row 268 of the metadata (269_clipart_32)
    assert table.loc["269_clipart_32", "convnext_small"] == pytest.approx(0.83)
    assert table.loc["269_clipart_32", "efficientnet_b0"] == pytest.approx(0.74)
    assert table.loc["1_painting_2", "convnext_small"] == pytest.approx(1.0)
    raw = pd.read_csv(data_dir / "domainnet-270" / "record_domainnet_10_270.csv", index_col=0)
    np.testing.assert_array_equal(table.loc[:, raw.index].to_numpy(), raw.to_numpy().T)
    assert zoo.models.loc["resnet50", "Architecure_family"] == "resnet"
    assert zoo.models["# of parameters"].dtype == np.float64
    assert set(zoo.dataset_roles.text) == {"domain", "Labels"}


def test_domainnet_position_join_is_checked(tmp_path, data_dir):
    raw = tmp_path / "domainnet-270"
    shutil.copytree(data_dir / "domainnet-270", raw)
    meta = pd.read_csv(raw / "target_dataset_meta_data.csv")
    meta.iloc[[0, 100]] = meta.iloc[[100, 0]].to_numpy()  # swap two rows of different domains
    (raw / "target_dataset_meta_data.csv").chmod(0o644)
    meta.to_csv(raw / "target_dataset_meta_data.csv", index=False)
    with pytest.raises(ZooError, match=r"^use domainnet-270's files of the pinned commit \(they do not belong "
                                       r"together\): record column 0 \('task1_painting_10'\) does not match "
                                       r"dataset row 0"):
        datasets.import_domainnet(raw)


def test_transfergraph_import(transfergraph, data_dir):
    zoo = transfergraph
    s = zoo.summary()
    assert (s["models"], s["datasets"], s["records"]) == (185, 13, 2254)
    assert s["metrics"] == ["LOG_ME", "REG_H_SCORE"]
    assert zoo.records["model"].nunique() == 180  # 5 models have scores or metadata only
    assert "food101" in zoo.dataset_ids and zoo.datasets.loc["food101"].isna().all()  # no metadata row
    assert (zoo.records["dataset"] == "food101").sum() > 0
    assert zoo.datasets.loc["cifar100", "number_of_classes"] == 100
    assert zoo.models.loc["google/vit-base-patch16-224", "architectures"] == "ViTForImageClassification"
    # scores: published duplicates averaged, truncated lines dropped, prefix removed
    raw = pd.read_csv(data_dir / "transfergraph-image" / "transferability_score_records.csv", index_col=0)
    raw = raw.dropna(subset=["model", "target_dataset", "metric", "score"])
    key = ["model", "target_dataset", "metric"]
    dups = raw[raw.duplicated(key, keep=False)]
    assert len(dups) > 0
    (m, d, metric), group = next(iter(dups.groupby(key)))
    got = zoo.scores[(zoo.scores["model"] == m) & (zoo.scores["dataset"] == d)
                     & (zoo.scores["metric"] == metric.split(".")[-1])]
    assert len(got) == 1 and got["score"].iloc[0] == pytest.approx(group["score"].mean())
    assert len(zoo.scores) == len(raw.drop_duplicates(key)) == 2346
    assert not zoo.scores.duplicated(["model", "dataset", "metric"]).any()
    acc = zoo.accuracy_table().loc["cifar100", "google/vit-base-patch16-224"]
    assert acc == pytest.approx(0.9172666668891908)


def test_raw_files_with_another_layout(tmp_path, data_dir, monkeypatch):
    local = tmp_path / "data" / "transfergraph-image"
    shutil.copytree(data_dir / "transfergraph-image", local)
    (local / "records.csv").chmod(0o644)
    (local / "records.csv").write_text("model,dataset,acc\nx,y,0.5\n")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ZooError, match=r"the raw files of zoo 'transfergraph-image' in .* do not have the published "
                                       r"layout \(KeyError"):
        datasets.load("transfergraph-image")


def test_canonical_zoo_inside_data_dir(tmp_path, tiny_zoo_dir, monkeypatch):
    shutil.copytree(tiny_zoo_dir, tmp_path / "data" / "my-zoo")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))
    assert datasets.load("my-zoo").name == "my-zoo"


def test_vtab_hf_import(data_dir, caplog):
    import ast
    import logging

    with caplog.at_level(logging.INFO, logger="recsys.datasets"):
        zoo = datasets.load("vtab-hf")
    s = zoo.summary()
    assert (s["models"], s["datasets"], s["records"]) == (292, 19, 5090)
    assert s["metrics"] == [] and s["datasets_without_records"] == 0
    # every drop is logged with its reason
    assert "dropped 1019 of 6971 runs outside the VTAB-1k regime" in caplog.text
    assert "107 recorded model(s) have no metadata row" in caplog.text
    two_label = {"clevr_count", "clevr_distance", "dsprites_orientation", "dsprites_location",
                 "smallnorb_label_azimuth", "smallnorb_label_elevation"}
    assert two_label <= set(zoo.dataset_ids) and "clevr" not in zoo.dataset_ids
    # independent recomputation of one record: best test accuracy of the pair's VTAB-1k runs
    raw = pd.read_csv(data_dir / "vtab-hf" / "ftrecords_img.csv")
    label = raw["configs"].map(lambda c: ast.literal_eval(c).get("label_name"))
    runs = raw[(raw["model_identifier"] == "google/vit-base-patch16-224") & (raw["train_dataset_name"] == "smallnorb")
               & (label == "label_elevation") & (raw["train_slice"] == ":800")]
    assert len(runs) >= 1
    table = zoo.accuracy_table()
    assert table.loc["smallnorb_label_elevation", "google/vit-base-patch16-224"] == pytest.approx(
        runs["test_accuracy"].max())
    cifar = raw[(raw["model_identifier"] == "google/vit-base-patch16-224") & (raw["train_dataset_name"] == "cifar100")
                & (raw["train_slice"] == ":800")]
    assert len(cifar) >= 2  # several learning rates: the best one is the record
    assert table.loc["cifar100", "google/vit-base-patch16-224"] == pytest.approx(cifar["test_accuracy"].max())
    # task metadata from finetune_dataset_config.csv, spelt as the runs spell the task
    assert zoo.datasets.loc["oxford_iiit_pet", "number_of_classes"] == 37
    assert zoo.datasets.loc["svhn_cropped", "size"] == 73257
    assert zoo.datasets.loc["clevr_count", "source_dataset"] == "clevr"


def test_parc_import(data_dir, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="recsys.datasets"):
        zoo = datasets.load("parc-71")
    raw = pd.read_csv(data_dir / "parc-71" / "all.csv")
    s = zoo.summary()
    n_models = raw.groupby(["Architecture", "Source Dataset"]).ngroups
    assert (s["models"], s["datasets"]) == (n_models, 7)
    assert s["records"] == int((raw["Oracle"] >= 0).sum()) == len(raw) - 10
    assert "dropped 10 run(s) marked -1" in caplog.text
    row = raw.iloc[0]
    name = f"{row['Architecture']}/{row['Source Dataset']}"
    assert zoo.accuracy_table().loc[row["Target Dataset"], name] == pytest.approx(row["Oracle"] / 100)
    assert zoo.records["accuracy"].between(0, 1).all()
    assert zoo.models.loc[name, "architecture"] == row["Architecture"]
    assert zoo.datasets.loc["cub200", "num_classes"] == 200


@pytest.mark.parametrize("name", ["vtab-hf", "parc-71"])
def test_new_zoos_download_from_a_mirror(name, mirror, fresh_cache, monkeypatch):
    monkeypatch.setenv("RECSYS_DATA_URL", mirror.url)
    zoo = datasets.load(name)
    assert sorted(mirror.requests) == sorted(f"/{name}/{f}" for f in datasets.REGISTRY[name].files)
    assert zoo.name == name
