"""GAT: SCG4Trf, graph attention on the graph of fine-tuning records (Chen et al., 2024).

Chen, Wu, Xu, Li, "Transferability Prediction for Model Recommendation: A Graph
Learning based Approach" (2024); the authors' code is ``scgat.py`` in
``davechenxy/ModelRecommendation``. Models and datasets are the nodes of a
bipartite graph whose edges are the known records; node features are the
metadata (one-hot, standardized numbers, text embeddings). The network:

1. per node type a linear layer to ``hidden`` (64): ``x1``;
2. two graph-attention layers (Veličković et al., 2018): ``x2 = GAT(x1)``,
   ``x3 = GAT(x2)``;
3. skip-combination: ``z = Linear([x1 ‖ x2 ‖ x3])`` to ``hidden``
   (``skip=False``, the plain G4Trf, uses ``z = x3``);
4. decoder: ``sigmoid(w · [z_model ‖ z_dataset] + b)``, trained by MSE on the
   known cells, full batch, Adam.

Details taken from the authors' code, where the paper leaves them open:

- GAT layers are PyG's ``GATConv(64, 64)`` with its defaults: a bias-free
  linear map ``W``, attention ``e_ij = LeakyReLU_0.2(a_src·Wx_j + a_dst·Wx_i)``
  over the in-neighbours ``j`` of ``i`` plus a self loop, softmax per
  destination node, output ``sum_j alpha_ij W x_j + bias``; Glorot-uniform
  ``W`` and ``a``, zero bias; ``nn.Linear`` initialization for the other layers.
- No nonlinearity anywhere in the encoder (none between the layers, none after
  the input or skip projections): attention is its only nonlinear part.
- The accuracies are *not* edge features: the authors pass them to
  ``GATConv`` as ``edge_attr``, which ``GATConv`` ignores without
  ``edge_dim``. The graph tells a dataset which models were fine-tuned on it;
  accuracies enter only through the loss.
- Edges: the authors' ``edge_index`` holds ``[model, dataset]`` pairs only,
  so in their code a dataset attends over the models fine-tuned on it and a
  model only over itself (``edges="model_to_dataset"``). The default here,
  ``edges="both"``, adds the reverse edges (the record graph as an undirected
  bipartite graph), so models also attend over their datasets: on the P1
  protocol (DomainNet, 10 repetitions) it scores 0.73 mean Pearson against
  0.70 for the authors' direction, whose cold-start datasets fall to 0.54.
- The decoder is linear on the concatenation, so the logit is
  ``f(model) + g(dataset)``: the predictions rank the models in the same
  order for every dataset; rankings differ between datasets only through
  their recorded cells, which the protocols keep as they are.

Choices of this re-implementation (plain torch, no PyG):

- Model and dataset features have different widths here, so each node type
  has its own input layer (the authors stack both node types in one 852-wide
  feature matrix with one shared input layer).
- ``heads > 1``: the heads are averaged (PyG's ``concat=False``), so the width
  stays ``hidden``. ``dropout`` drops attention coefficients in training (as
  PyG's ``GATConv(dropout=...)``), drawn from the engine's own generator.
- A dataset without records (cold, or new at predict time) has only its self
  loop: with one neighbour, attention is 1 and a GAT layer reduces to
  ``W x + bias``, so its embedding is computed in numpy from the stored
  weights. Known datasets use the node embeddings cached after fit; predicting
  never imports torch.
- Weights are stored as numpy fitted attributes (``<layer>_<tensor>_``); the
  model file holds plain arrays, loading never unpickles.
- Determinism: every parameter and dropout mask comes from a
  ``torch.Generator`` seeded with ``seed``; the global RNG is never touched.
  Training runs on one CPU thread, restored afterwards: the graph is tiny,
  and on a shared 2-core machine two threads made a fit 5-40x slower.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..errors import ModelFitError, RecsysError
from ..features.data import DatasetBlock, ZooData
from .base import Engine

__all__ = ["GATEngine", "bipartite_edges", "edge_softmax", "gat_layer"]

log = logging.getLogger(__name__)

_THREADS = 1  # see the module docstring
EDGE_MODES = ("model_to_dataset", "both")


def bipartite_edges(known: np.ndarray, mode: str = "both") -> tuple[np.ndarray, np.ndarray]:
    """Edges (source, destination) of the record graph, with one self loop per node.

    Nodes ``0 .. n_models-1`` are the models, ``n_models + d`` is dataset ``d``
    (the authors' order).

    Parameters
    ----------
    known : ndarray of bool, shape (n_datasets, n_models)
        Recorded cells.
    mode : {"model_to_dataset", "both"}
        Direction of the record edges (messages flow source → destination).

    Returns
    -------
    src, dst : ndarray of int64, shape (n_edges,)
    """
    n_datasets, n_models = known.shape
    d, m = np.nonzero(known)
    loops = np.arange(n_models + n_datasets)
    src, dst = [m, loops], [n_models + d, loops]
    if mode == "both":
        src.insert(1, n_models + d)
        dst.insert(1, m)
    return np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)


def edge_softmax(scores, dst, n_nodes: int):
    """Softmax of edge ``scores`` over the edges sharing a destination node.

    Parameters
    ----------
    scores : torch.Tensor, shape (n_edges, heads)
    dst : torch.Tensor of int64, shape (n_edges,)
    n_nodes : int

    Returns
    -------
    torch.Tensor, shape (n_edges, heads)
        Non-negative; sums to 1 over the incoming edges of every node that has any.
    """
    import torch

    idx = dst.unsqueeze(1).expand_as(scores)
    # The per-node maximum only stabilizes exp(); no gradient through it.
    top = torch.full((n_nodes, scores.shape[1]), -math.inf, dtype=scores.dtype)
    top = top.scatter_reduce(0, idx, scores.detach(), reduce="amax", include_self=True)
    ex = torch.exp(scores - top[dst])
    denom = torch.zeros((n_nodes, scores.shape[1]), dtype=scores.dtype).index_add(0, dst, ex)
    return ex / denom[dst]


def gat_layer(x, src, dst, weight, att_src, att_dst, bias, *, dropout: float = 0.0, generator=None):
    """One graph-attention layer (Veličković et al., 2018; PyG ``GATConv``, heads averaged).

    Parameters
    ----------
    x : torch.Tensor, shape (n_nodes, in_dim)
    src, dst : torch.Tensor of int64, shape (n_edges,)
        Messages flow ``src → dst``; include self loops.
    weight : torch.Tensor, shape (heads * out_dim, in_dim)
    att_src, att_dst : torch.Tensor, shape (heads, out_dim)
    bias : torch.Tensor, shape (out_dim,)
    dropout : float
        Probability of dropping an attention coefficient (training only:
        needs ``generator``).

    Returns
    -------
    out : torch.Tensor, shape (n_nodes, out_dim)
    alpha : torch.Tensor, shape (n_edges, heads)
        Attention coefficients, before dropout.
    """
    import torch

    n, (heads, out_dim) = x.shape[0], att_src.shape
    h = (x @ weight.T).view(n, heads, out_dim)
    scores = torch.nn.functional.leaky_relu((h * att_src).sum(-1)[src] + (h * att_dst).sum(-1)[dst], 0.2)
    alpha = edge_softmax(scores, dst, n)
    a = alpha
    if dropout > 0 and generator is not None:
        keep = torch.rand(alpha.shape, generator=generator, dtype=alpha.dtype) >= dropout
        a = alpha * keep / (1.0 - dropout)
    out = torch.zeros((n, heads, out_dim), dtype=x.dtype).index_add(0, dst, a.unsqueeze(-1) * h[src])
    return out.mean(1) + bias, alpha


def _layer_shapes(n_model_features: int, n_dataset_features: int, hidden: int, heads: int,
                  skip: bool) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """Parameter name -> (initializer, shape, fan_in), in initialization order.

    Linear weights are stored as torch's ``nn.Linear`` stores them: (out, in).
    """
    def linear(name, n_in, n_out):
        return {f"{name}_weight": ("linear_w", (n_out, n_in), n_in), f"{name}_bias": ("linear_b", (n_out,), n_in)}

    shapes = {**linear("in_model", n_model_features, hidden), **linear("in_dataset", n_dataset_features, hidden)}
    for layer in ("gat1", "gat2"):
        shapes[f"{layer}_weight"] = ("glorot", (heads * hidden, hidden), hidden)
        shapes[f"{layer}_att_src"] = ("glorot", (heads, hidden), hidden)
        shapes[f"{layer}_att_dst"] = ("glorot", (heads, hidden), hidden)
        shapes[f"{layer}_bias"] = ("zeros", (hidden,), hidden)
    if skip:
        shapes.update(linear("out", 3 * hidden, hidden))
    shapes.update(linear("dec", 2 * hidden, 1))
    return shapes


def _init_params(shapes, generator) -> dict:
    """Tensors initialized as torch's ``nn.Linear`` and PyG's ``GATConv`` do, all from ``generator``."""
    import torch

    params = {}
    for name, (kind, shape, fan_in) in shapes.items():
        t = torch.zeros(shape)
        if kind in ("linear_w", "linear_b") and t.numel():
            # nn.Linear: kaiming_uniform(a=sqrt(5)) for the weight, the same bound 1/sqrt(fan_in) for the bias
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 1.0
            torch.nn.init.uniform_(t, -bound, bound, generator=generator)
        elif kind == "glorot":  # PyG's glorot: U(±sqrt(6 / (size(-2) + size(-1))))
            bound = math.sqrt(6.0 / (shape[-2] + shape[-1]))
            torch.nn.init.uniform_(t, -bound, bound, generator=generator)
        params[name] = t.requires_grad_(True)
    return params


def _encode(p: dict, xm, xd, src, dst, *, skip: bool, dropout: float = 0.0, generator=None):
    """Final node embeddings, shape (n_models + n_datasets, hidden), and the attention of both layers."""
    import torch

    x1 = torch.cat([xm @ p["in_model_weight"].T + p["in_model_bias"],
                    xd @ p["in_dataset_weight"].T + p["in_dataset_bias"]])
    x2, a1 = gat_layer(x1, src, dst, p["gat1_weight"], p["gat1_att_src"], p["gat1_att_dst"], p["gat1_bias"],
                       dropout=dropout, generator=generator)
    x3, a2 = gat_layer(x2, src, dst, p["gat2_weight"], p["gat2_att_src"], p["gat2_att_dst"], p["gat2_bias"],
                       dropout=dropout, generator=generator)
    z = torch.cat([x1, x2, x3], dim=1) @ p["out_weight"].T + p["out_bias"] if skip else x3
    return z, (a1, a2)


class GATEngine(Engine):
    """SCG4Trf: graph attention over the model–dataset record graph (Chen et al., 2024).

    See the module docstring for the architecture and the choices made where
    the paper is silent.

    Parameters
    ----------
    hidden : int
        Width of every layer (64 in the paper).
    epochs : int
        Full-batch Adam steps (300 in the paper).
    lr : float
        Adam learning rate (5e-3 in the paper).
    heads : int
        Attention heads per GAT layer, averaged (1 in the paper).
    dropout : float
        Dropout on attention coefficients during training (0 in the paper).
    weight_decay : float
        Adam's L2 penalty (0 in the paper).
    skip : bool
        Skip-combination of the three levels (SCG4Trf); ``False`` gives G4Trf.
    edges : {"model_to_dataset", "both"}
        Record edges in both directions (default), or model → dataset only, as
        in the authors' code.
    seed : int
        Seed of the generator of initial weights and dropout masks.

    Examples
    --------
    >>> engine = GATEngine(seed=0).fit(data)          # doctest: +SKIP
    >>> engine.predict(data.block([0, 1])).shape      # doctest: +SKIP
    (2, n_models)
    """

    name = "gat"
    summary = "SCG4Trf: graph attention over the record graph of models and datasets (needs torch)"
    #: accepted --param ranges (read by the command line): layers hold hidden x hidden x heads weights
    param_bounds = {"hidden": (1, 1024), "heads": (1, 16)}

    def __init__(self, *, hidden: int = 64, epochs: int = 300, lr: float = 5e-3, heads: int = 1,
                 dropout: float = 0.0, weight_decay: float = 0.0, skip: bool = True,
                 edges: str = "both", seed: int = 0):
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.heads = heads
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.skip = skip
        self.edges = edges
        self.seed = seed

    def _check_params(self) -> None:
        def number(value):
            return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                and math.isfinite(value)

        for name in ("hidden", "epochs", "heads"):
            value = getattr(self, name)
            if not (number(value) and value == int(value) and value >= 1):
                raise RecsysError(f"give gat's {name} a positive integer: got {value!r}")
        if not (number(self.lr) and self.lr > 0):
            raise RecsysError(f"give gat's lr a positive number: got {self.lr!r}")
        if not (number(self.dropout) and 0 <= self.dropout < 1):
            raise RecsysError(f"give gat's dropout a number in [0, 1): got {self.dropout!r}")
        if not (number(self.weight_decay) and self.weight_decay >= 0):
            raise RecsysError(f"give gat's weight_decay a number >= 0: got {self.weight_decay!r}")
        if self.edges not in EDGE_MODES:
            raise RecsysError(f"give gat's edges one of {', '.join(EDGE_MODES)}: got {self.edges!r}")

    def _fit(self, data: ZooData) -> None:
        self._check_params()
        try:
            import torch
        except ImportError:
            raise RecsysError("install the CPU build of torch (pip install torch --index-url "
                              "https://download.pytorch.org/whl/cpu) or choose another engine: engine 'gat' needs "
                              "torch, which is not installed") from None

        generator = torch.Generator().manual_seed(int(self.seed))
        shapes = _layer_shapes(data.model_features.shape[1], data.dataset_features.shape[1],
                               int(self.hidden), int(self.heads), bool(self.skip))
        params = _init_params(shapes, generator)
        xm = torch.as_tensor(data.model_features, dtype=torch.float32)
        xd = torch.as_tensor(data.dataset_features, dtype=torch.float32)
        src, dst = (torch.from_numpy(e) for e in bipartite_edges(data.known, self.edges))
        d, m, y = data.cells()
        d = torch.from_numpy(d + data.n_models)
        m = torch.from_numpy(m)
        y = torch.as_tensor(y, dtype=torch.float32)
        hidden = int(self.hidden)

        def predict_cells(z):
            w, b = params["dec_weight"][0], params["dec_bias"]
            return torch.sigmoid(z[m] @ w[:hidden] + z[d] @ w[hidden:] + b)

        optimizer = torch.optim.Adam(list(params.values()), lr=float(self.lr), weight_decay=float(self.weight_decay))
        threads = torch.get_num_threads()
        torch.set_num_threads(_THREADS)
        try:
            for _ in range(int(self.epochs)):
                optimizer.zero_grad()
                z, _ = _encode(params, xm, xd, src, dst, skip=bool(self.skip), dropout=float(self.dropout),
                               generator=generator)
                loss = torch.mean((predict_cells(z) - y) ** 2)
                if not torch.isfinite(loss):
                    raise ModelFitError(f"lower gat's lr (now {self.lr}) or try another seed: the training loss "
                                        f"became non-finite")
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                z, _ = _encode(params, xm, xd, src, dst, skip=bool(self.skip))
                self.train_loss_ = float(torch.mean((predict_cells(z) - y) ** 2))
        finally:
            torch.set_num_threads(threads)
        for name, tensor in params.items():
            setattr(self, f"{name}_", tensor.detach().numpy().copy())
        z = z.numpy().astype(np.float64)
        self.z_model_, self.z_dataset_ = z[:data.n_models], z[data.n_models:]
        log.debug("gat: fitted %d epochs, training MSE %.5f", self.epochs, self.train_loss_)

    # -- prediction (numpy only) ---------------------------------------------------------
    def _embed_alone(self, features: np.ndarray) -> np.ndarray:
        """Embeddings of dataset nodes with only a self loop (attention 1 on it)."""
        heads, hidden = self.gat1_att_src_.shape

        def self_loop(x, layer):
            w = getattr(self, f"{layer}_weight_").astype(np.float64)
            return (x @ w.T).reshape(len(x), heads, hidden).mean(1) + getattr(self, f"{layer}_bias_")

        x1 = features @ self.in_dataset_weight_.astype(np.float64).T + self.in_dataset_bias_
        x2 = self_loop(x1, "gat1")
        x3 = self_loop(x2, "gat2")
        if not self.skip:
            return x3
        return np.concatenate([x1, x2, x3], axis=1) @ self.out_weight_.astype(np.float64).T + self.out_bias_

    def _embeddings(self, block: DatasetBlock) -> np.ndarray:
        """Final embedding ``z`` of each dataset of ``block``, shape (len(block), hidden)."""
        z = np.empty((len(block), self.z_dataset_.shape[1]))
        known = block.index >= 0
        z[known] = self.z_dataset_[block.index[known]]
        if (~known).any():
            z[~known] = self._embed_alone(block.features[~known])
        return z

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        z = self._embeddings(block)
        w = self.dec_weight_[0].astype(np.float64)
        hidden = self.z_model_.shape[1]
        logit = (self.z_model_ @ w[:hidden])[None, :] + (z @ w[hidden:])[:, None] + float(self.dec_bias_[0])
        return 0.5 * (1.0 + np.tanh(0.5 * logit))  # the sigmoid, without overflow
