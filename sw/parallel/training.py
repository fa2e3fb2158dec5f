"""Training schedule of thesis section 5.9.2: layer-wise pretraining without weight decay, then weight decay.

* :func:`layerwise_pretrain`: start from a depth-2 network, train it, grow it one layer at a time
  (:meth:`ParallelReLUNet.grown`) and train again until the target depth is reached; no weight decay.
* :func:`train_penalized`: minimize the objective of eq. (5.4),
  ``(1/n) sum_i (f(x_i) - y_i)^2 + lambda * sum ||W||_F^2`` (biases not penalized), full batch.
* :func:`fit_lambda_path`: one pretraining, then the penalized problem for every lambda of a grid, each
  started from the pretrained weights ("independent") or from the previous lambda's solution
  ("continuation", lambdas in increasing order).

The thesis uses Adam with learning rate 1e-3 and trains "until convergence"; the step counts, the
learning rate and its cosine decay are parameters here because a 2-core CPU cannot afford the thesis's
budget (see docs/theory/chapter5_parallel.md for what each mode uses).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from .network import ParallelReLUNet, VanillaReLUNet, vanilla_width_for, parallel_param_count

__all__ = ["TrainConfig", "make_network", "layerwise_pretrain", "solve_output_layer", "train_penalized", "LambdaPath",
           "fit_lambda_path"]


@dataclass
class TrainConfig:
    """Architecture and optimizer settings of one network fit.

    Attributes
    ----------
    kind : {"parallel", "vanilla"}
        Parallel network, or the dense network with the same parameter count.
    n_subnets, width, depth : int
        M, w, L of the parallel network (the vanilla network takes its width from the count).
    lr : float
        Adam learning rate at the start of every phase (cosine-decayed to ``lr * lr_floor``).
    pretrain_steps : int
        Adam steps of every stage of the layer-wise pretraining (depth 2, 3, ..., L).
    decay_steps : int
        Adam steps of the weight-decayed phase, per lambda.
    grow_mode : {"random", "identity"}
        How a stage's network is grown by one layer (:meth:`ParallelReLUNet.grown`).
    dtype : str
        Torch dtype name of the parameters.
    seed : int
    lr_floor : float
        Final learning rate of each phase over ``lr`` (1 = constant).
    input_scale : float
        Initial first-layer slope scale (:class:`ParallelReLUNet`).
    solve_every : int
        Exact output-layer solve every that many Adam steps (0: plain Adam as in the thesis); see
        :func:`train_penalized`.
    rebalance : bool
        Rebalance the layer norms (Prop. 5.5: same f, smallest penalty) before the weight-decayed phase.
    """

    kind: str = "parallel"
    n_subnets: int = 64
    width: int = 8
    depth: int = 5
    lr: float = 1e-3
    pretrain_steps: int = 1000
    decay_steps: int = 2000
    grow_mode: str = "identity"
    dtype: str = "float32"
    seed: int = 0
    lr_floor: float = 0.1
    input_scale: float = 1.0
    solve_every: int = 100
    rebalance: bool = True

    def __post_init__(self):
        if self.kind not in ("parallel", "vanilla"):
            raise ValueError(f"kind must be 'parallel' or 'vanilla', got {self.kind!r}")
        if self.depth < 2:
            raise ValueError(f"depth must be >= 2, got {self.depth}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.pretrain_steps < 0 or self.decay_steps < 0:
            raise ValueError("pretrain_steps and decay_steps must be non-negative")
        if not 0 < self.lr_floor <= 1:
            raise ValueError(f"lr_floor must be in (0, 1], got {self.lr_floor}")
        if not hasattr(torch, self.dtype):
            raise ValueError(f"dtype must name a torch dtype, got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def vanilla_width(self) -> int:
        """Width of the dense network with the parallel network's parameter count (section 5.9.2)."""
        return vanilla_width_for(parallel_param_count(self.n_subnets, self.width, self.depth), self.depth)


def make_network(cfg: TrainConfig, depth: int, domain=(0.0, 1.0)) -> torch.nn.Module:
    """Fresh network of ``cfg.kind`` and the given depth."""
    if cfg.kind == "parallel":
        net = ParallelReLUNet(cfg.n_subnets, cfg.width, depth, domain=domain, seed=cfg.seed,
                              input_scale=cfg.input_scale)
    else:
        net = VanillaReLUNet(cfg.vanilla_width(), depth, domain=domain, seed=cfg.seed,
                             input_scale=cfg.input_scale)
    return net.to(cfg.torch_dtype)


@torch.no_grad()
def solve_output_layer(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float,
                       jitter: float = 1e-7) -> None:
    """Exact minimization of eq. (5.4) over the output layer, the other layers fixed.

    f is linear in the output weights v and the (unpenalized) output bias, so the block minimizer is the
    ridge solution ``v = (Hc^T Hc / n + lam I)^{-1} Hc^T yc / n`` on centred features Hc and labels yc.
    ``jitter`` stands in for lam when lam = 0 (minimum-norm least squares, no weight decay).
    """
    features = net.penultimate(x).double()
    target = y.double()
    mean_h = features.mean(dim=0)
    centred = features - mean_h
    n = features.shape[0]
    gram = centred.T @ centred / n
    ridge = max(float(lam), float(jitter) * float(torch.diagonal(gram).mean().clamp_min(1e-12)))
    gram += ridge * torch.eye(gram.shape[0], dtype=gram.dtype)
    coefficients = torch.linalg.solve(gram, centred.T @ (target - target.mean()) / n)
    intercept = float(target.mean() - mean_h @ coefficients)
    net.set_output_layer(coefficients.to(net.weights[-1].dtype), intercept)


def train_penalized(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float, steps: int,
                    lr: float, lr_floor: float = 0.1, solve_every: int = 0) -> float:
    """Minimize the eq. (5.4) objective with full-batch Adam; returns the final objective.

    Parameters
    ----------
    net : module with ``weight_penalty()``
    x, y : torch.Tensor, shape (n,)
    lam : float
        Weight-decay factor lambda >= 0 of eq. (5.4).
    steps : int
    lr : float
        Initial learning rate, cosine-decayed to ``lr * lr_floor``.
    solve_every : int
        If positive, every ``solve_every`` steps (and after the last) the output layer is set to its exact
        block minimizer (:func:`solve_output_layer`): block-coordinate descent on the same objective. The
        output layer is a ridge regression on ReLU features that are strongly correlated; Adam's diagonal
        preconditioning converges on it in tens of thousands of steps, the solve in one. With
        ``lam > 0`` each solve is followed by the Prop. 5.5 rebalancing (same f, smallest penalty) and
        a reset of Adam's moments: without it the large weights of the unpenalized pretraining shrink by
        only ~lr per step and a strongly decayed network keeps all its subnetworks.
    """
    if lam < 0:
        raise ValueError(f"lam must be non-negative, got {lam}")
    if solve_every < 0:
        raise ValueError(f"solve_every must be non-negative, got {solve_every}")
    if steps <= 0:
        return float("nan")
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr * lr_floor)
    # Adam moves each weight by about lr per step whatever the penalty, so weight decay alone needs
    # ~|W| / lr steps to shrink the large weights an unpenalized pretraining leaves behind. After the
    # exact output solve, the Prop. 5.5 rescaling moves the same f to its smallest penalty in one step.
    rebalance = lam > 0 and solve_every > 0 and hasattr(net, "rebalance")
    for step in range(steps):
        if solve_every and step % solve_every == 0:
            solve_output_layer(net, x, y, lam)
            if rebalance:
                net.rebalance()
                optimizer.state.clear()  # the rescaled layers' gradient scales changed: stale moments
        optimizer.zero_grad(set_to_none=True)
        objective = torch.mean((net(x) - y) ** 2)
        if lam > 0:
            objective = objective + lam * net.weight_penalty()
        objective.backward()
        optimizer.step()
        schedule.step()
    if solve_every:
        solve_output_layer(net, x, y, lam)
        if rebalance:
            net.rebalance()
        with torch.no_grad():
            objective = torch.mean((net(x) - y) ** 2) + lam * net.weight_penalty()
    return float(objective.detach())


def layerwise_pretrain(cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor,
                       on_stage: Callable[[int, float], None] | None = None) -> torch.nn.Module:
    """Layer-wise training without weight decay (section 5.9.2): depth 2, 3, ..., ``cfg.depth``.

    ``on_stage(depth, loss)`` is called after every stage (progress reporting).
    """
    net = make_network(cfg, 2)
    for depth in range(2, cfg.depth + 1):
        if depth > 2:
            net = net.grown(seed=cfg.seed + depth, mode=cfg.grow_mode)
        loss = train_penalized(net, x, y, 0.0, cfg.pretrain_steps, cfg.lr, cfg.lr_floor, cfg.solve_every)
        if on_stage is not None:
            on_stage(depth, loss)
    return net


@dataclass
class LambdaPath:
    """Weight-decayed fits of one network along a lambda grid.

    Attributes
    ----------
    lambdas : numpy.ndarray, shape (K,)
    fits : numpy.ndarray, shape (K, n)
        Fitted values at the design points.
    grid_fits : numpy.ndarray, shape (K, G)
        Fitted values on the plotting grid ``grid``.
    active : numpy.ndarray, shape (K,)
        Number of active subnetworks (parallel networks; -1 for vanilla).
    train_loss : numpy.ndarray, shape (K,)
    """

    lambdas: np.ndarray
    fits: np.ndarray
    grid: np.ndarray
    grid_fits: np.ndarray
    active: np.ndarray
    train_loss: np.ndarray
    subnet_grid_outputs: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def mse(self, f0: np.ndarray) -> np.ndarray:
        """MSE of every fit against the clean values ``f0``."""
        return np.mean((self.fits - np.asarray(f0)[None, :]) ** 2, axis=1)


def fit_lambda_path(x: np.ndarray, y: np.ndarray, lambdas, cfg: TrainConfig, path_mode: str = "independent",
                    grid_points: int = 1001, keep_subnets: bool = False,
                    on_stage: Callable[[str, float], None] | None = None) -> LambdaPath:
    """Pretrain once, then solve the weight-decayed problem (5.4) for every lambda.

    Parameters
    ----------
    x, y : numpy.ndarray, shape (n,)
    lambdas : sequence of float
        Weight-decay factors (>= 0). With ``path_mode="continuation"`` they are visited in increasing
        order, each started from the previous solution; otherwise each starts from the pretrained net.
    cfg : TrainConfig
    path_mode : {"independent", "continuation"}
    grid_points : int
        Size of the plotting grid on [min x, max x].
    keep_subnets : bool
        Store the active subnetworks' outputs on the grid for every lambda (Fig. 5.3(c)(f)).
    on_stage : callable, optional
        ``on_stage(label, loss)`` after every training phase.
    """
    if path_mode not in ("independent", "continuation"):
        raise ValueError(f"path_mode must be 'independent' or 'continuation', got {path_mode!r}")
    lambdas = np.asarray(lambdas, dtype=float)
    if lambdas.ndim != 1 or lambdas.size == 0 or np.any(lambdas < 0):
        raise ValueError("lambdas must be a non-empty 1-D sequence of non-negative numbers")
    torch.manual_seed(cfg.seed)
    dtype = cfg.torch_dtype
    xt = torch.as_tensor(np.asarray(x, dtype=float), dtype=dtype)
    yt = torch.as_tensor(np.asarray(y, dtype=float), dtype=dtype)
    domain = (float(np.min(x)), float(np.max(x)))
    grid = torch.linspace(domain[0], domain[1], grid_points, dtype=dtype)

    def stage_report(depth, loss):
        if on_stage is not None:
            on_stage(f"pretrain depth {depth}", loss)

    pretrained = layerwise_pretrain(cfg, xt, yt, stage_report)
    order = np.argsort(lambdas) if path_mode == "continuation" else np.arange(lambdas.size)
    fits = np.zeros((lambdas.size, xt.numel()))
    grid_fits = np.zeros((lambdas.size, grid_points))
    active = np.full(lambdas.size, -1)
    losses = np.zeros(lambdas.size)
    subnets: list = [None] * lambdas.size
    net = pretrained
    for k in order:
        net = net if path_mode == "continuation" else copy.deepcopy(pretrained)
        if cfg.rebalance:
            net.rebalance()
        losses[k] = train_penalized(net, xt, yt, float(lambdas[k]), cfg.decay_steps, cfg.lr, cfg.lr_floor,
                                    cfg.solve_every)
        with torch.no_grad():
            fits[k] = net(xt).double().numpy()
            grid_fits[k] = net(grid).double().numpy()
            if isinstance(net, ParallelReLUNet):
                mask = net.active_mask(grid, scale=float(np.ptp(y)))
                active[k] = int(mask.sum())
                if keep_subnets:
                    subnets[k] = net.subnet_outputs(grid)[mask].double().numpy()
        if on_stage is not None:
            on_stage(f"lambda {lambdas[k]:.3g}", losses[k])
    return LambdaPath(lambdas, fits, grid.double().numpy(), grid_fits, active, losses,
                      subnets if keep_subnets else [], asdict(cfg))
