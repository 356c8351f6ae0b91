"""The SCG4Trf engine (``gat``): attention, determinism, persistence, cold and new datasets, quality."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from recsys.artifact import read_artifact, write_artifact
from recsys.errors import RecsysError
from recsys.features.data import DatasetBlock

import torch  # a hard dependency: a broken install fails here, it does not skip the GAT tests

from recsys.engines import make_engine
from recsys.engines.gat import GATEngine, bipartite_edges, edge_softmax, gat_layer


def _hide(data, frac, seed):
    """``data`` with a seeded random ``frac`` of its cells hidden, and the mask of hidden cells."""
    hide = np.random.default_rng(seed).random(data.Y.shape) < frac
    return data.with_Y(np.where(hide, np.nan, data.Y)), hide


def _mean_pearson(truth, filled, rows):
    r = [np.corrcoef(t, f)[0, 1] for t, f in zip(truth[rows], filled[rows]) if t.std() > 0 and f.std() > 0]
    return float(np.mean(r))


# -- the attention layer ---------------------------------------------------------------
@pytest.mark.parametrize("mode", ["both", "model_to_dataset"])
def test_attention_sums_to_one_per_destination(dn_data, mode):
    src, dst = bipartite_edges(dn_data.known, mode)
    n_nodes = dn_data.n_models + dn_data.n_datasets
    assert (np.bincount(dst, minlength=n_nodes) >= 1).all()  # every node has its self loop
    g = torch.Generator().manual_seed(0)
    heads, dim = 3, 8
    x = torch.randn(n_nodes, 5, generator=g)
    params = [torch.randn(heads * dim, 5, generator=g), torch.randn(heads, dim, generator=g),
              torch.randn(heads, dim, generator=g), torch.zeros(dim)]
    out, alpha = gat_layer(x, torch.from_numpy(src), torch.from_numpy(dst), *params)
    assert out.shape == (n_nodes, dim) and alpha.shape == (len(src), heads)
    assert (alpha >= 0).all()
    sums = torch.zeros(n_nodes, heads, dtype=alpha.dtype).index_add(0, torch.from_numpy(dst), alpha)
    np.testing.assert_allclose(sums.numpy(), 1.0, atol=1e-5)


def test_edge_softmax_matches_dense_softmax_and_is_stable():
    dst = torch.tensor([0, 0, 0, 1, 2, 2])
    scores = torch.tensor([[1.0], [2.0], [3.0], [5.0], [800.0], [799.0]])  # 800: exp() overflows without the shift
    alpha = edge_softmax(scores, dst, 3)[:, 0].numpy()
    np.testing.assert_allclose(alpha[:3], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)
    assert alpha[3] == pytest.approx(1.0)
    np.testing.assert_allclose(alpha[4:], [1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))], rtol=1e-6)


def test_self_loop_only_node_is_a_linear_map():
    # With one in-edge the attention is 1: the layer is W x + bias (heads averaged).
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, generator=g)
    w, a_s, a_d, b = (torch.randn(2 * 3, 4, generator=g), torch.randn(2, 3, generator=g),
                      torch.randn(2, 3, generator=g), torch.randn(3, generator=g))
    out, alpha = gat_layer(x, torch.tensor([0]), torch.tensor([0]), w, a_s, a_d, b)
    assert alpha.numpy() == pytest.approx(1.0)
    np.testing.assert_allclose(out.numpy(), (x @ w.T).view(1, 2, 3).mean(1).numpy() + b.numpy(), rtol=1e-6)


def test_edges_follow_the_records():
    known = np.array([[True, False], [False, False], [True, True]])  # 3 datasets x 2 models
    src, dst = bipartite_edges(known, "model_to_dataset")
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert pairs == {(0, 2), (0, 4), (1, 4)} | {(i, i) for i in range(5)}
    src, dst = bipartite_edges(known, "both")
    assert set(zip(src.tolist(), dst.tolist())) == pairs | {(2, 0), (4, 0), (4, 1)}


# -- the engine ------------------------------------------------------------------------------
def test_registered_and_validates_parameters(tg_data):
    assert isinstance(make_engine("gat", heads=2), GATEngine)
    for bad, message in (({"edges": "sideways"}, "^give gat's edges one of model_to_dataset, both: got 'sideways'$"),
                         ({"dropout": 1.0}, r"^give gat's dropout a number in \[0, 1\): got 1.0$"),
                         ({"hidden": 0}, "^give gat's hidden a positive integer: got 0$"),
                         ({"lr": -1.0}, "^give gat's lr a positive number: got -1.0$"),
                         ({"epochs": 2.5}, "^give gat's epochs a positive integer: got 2.5$")):
        with pytest.raises(RecsysError, match=message):
            GATEngine(**bad).fit(tg_data)


def test_same_seed_same_predictions_and_global_rng_untouched(dn_data):
    # dropout and heads > 1 exercise every draw from the engine's generator
    params = dict(epochs=40, heads=2, dropout=0.2, seed=3)
    torch_state, np_state, threads = torch.random.get_rng_state(), np.random.get_state(), torch.get_num_threads()
    a = GATEngine(**params).fit(dn_data).predict(dn_data.block())
    b = GATEngine(**params).fit(dn_data).predict(dn_data.block())
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(a, b)
    c = GATEngine(**{**params, "seed": 4}).fit(dn_data).predict(dn_data.block())
    assert not np.allclose(a, c)


def test_outputs_on_transfergraph(tg_data):
    engine = GATEngine(epochs=60).fit(tg_data)
    pred = engine.predict(tg_data.block())
    assert pred.shape == (tg_data.n_datasets, tg_data.n_models)
    assert np.isfinite(pred).all() and (pred >= 0).all() and (pred <= 1).all()
    assert np.isfinite(engine.train_loss_)


def test_cold_and_new_datasets(dn_data):
    rng = np.random.default_rng(0)
    cold = rng.choice(dn_data.n_datasets, 20, replace=False)
    Y = dn_data.Y.copy()
    Y[cold] = np.nan
    train = dn_data.with_Y(Y)
    engine = GATEngine(epochs=60).fit(train)

    # A cold training dataset is a node with only a self loop: the same as a new dataset with its features.
    by_index = engine.predict(train.block(cold))
    as_new = engine.predict(DatasetBlock(index=np.full(len(cold), -1), features=train.dataset_features[cold]))
    np.testing.assert_allclose(by_index, as_new, atol=1e-5)
    assert (as_new >= 0).all() and (as_new <= 1).all()

    # A known dataset uses its graph embedding, not its features alone.
    warm = np.setdiff1d(np.arange(dn_data.n_datasets), cold)[:20]
    warm_alone = engine.predict(DatasetBlock(index=np.full(len(warm), -1), features=train.dataset_features[warm]))
    assert not np.allclose(engine.predict(train.block(warm)), warm_alone, atol=1e-4)

    # A mixed block, and brand-new feature vectors.
    mixed = DatasetBlock(index=np.array([warm[0], -1, cold[0]]),
                         features=np.vstack([train.dataset_features[[warm[0]]],
                                             rng.normal(size=(1, train.dataset_features.shape[1])),
                                             train.dataset_features[[cold[0]]]]))
    pred = engine.predict(mixed)
    assert pred.shape == (3, dn_data.n_models) and np.isfinite(pred).all()
    np.testing.assert_allclose(pred[0], engine.predict(train.block([warm[0]]))[0])


@pytest.mark.parametrize("skip", [True, False])
def test_model_file_round_trip(tg_data, tmp_path, skip):
    engine = GATEngine(epochs=30, heads=2, skip=skip, seed=5).fit(tg_data)
    meta, arrays = engine.get_state()
    assert all(a.dtype.kind == "f" for a in arrays.values())
    path = write_artifact(tmp_path / "gat.npz", meta, arrays)
    meta2, arrays2 = read_artifact(path)
    loaded = GATEngine.from_state(meta2, arrays2, tg_data)
    assert loaded.get_params() == engine.get_params()
    new = DatasetBlock(index=np.array([-1, 0]), features=tg_data.dataset_features[[3, 0]])
    for block in (tg_data.block(), new):
        np.testing.assert_array_equal(loaded.predict(block), engine.predict(block))


def test_predicting_from_a_model_file_never_imports_torch(tg_data, tmp_path):
    engine = GATEngine(epochs=5).fit(tg_data)
    path = write_artifact(tmp_path / "gat.npz", *engine.get_state())
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from recsys.artifact import read_artifact
        from recsys.engines import get_engine_class
        from recsys.features.data import DatasetBlock
        meta, arrays = read_artifact({str(path)!r})
        engine = get_engine_class(meta["name"]).from_state(meta, arrays, None)  # (gat keeps what it answers from)
        features = np.zeros((2, {tg_data.dataset_features.shape[1]}))
        pred = engine.predict(DatasetBlock(index=np.array([0, -1]), features=features))
        assert pred.shape == (2, {tg_data.n_models}), pred.shape
        assert "torch" not in sys.modules, "torch was imported"
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=900)


# -- quality -----------------------------------------------------------------------------------
#: Mean per-dataset Pearson after hiding a seeded 30% of DomainNet's cells (mask seed 0) and
#: filling them with predictions. Measured with engine seed 0: 0.831 (SCG4Trf) and 0.821 (G4Trf).
#: Engine seeds 0-4 give 0.829-0.837 (SCG4Trf) but 0.749-0.821 (G4Trf, less stable); mask seeds
#: 0-2 give 0.816-0.840 (SCG4Trf). The additive baseline scores 0.832 on this mask.
PEARSON_FLOOR = {True: 0.80, False: 0.72}


@pytest.mark.parametrize("skip", [True, False])
def test_quality_floor_on_domainnet(dn_data, skip):
    train, hide = _hide(dn_data, 0.3, seed=0)
    engine = GATEngine(skip=skip).fit(train)
    filled = np.where(hide, engine.predict(train.block()), dn_data.Y)
    score = _mean_pearson(dn_data.Y, filled, hide.any(1))
    assert score > PEARSON_FLOOR[skip]
