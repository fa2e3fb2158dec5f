"""Weight-decayed training of the ResNeXt (thesis section 6.3) and the kernel ridge baseline.

The objective is ``(1/n) sum_i (f(x_i) - y_i)^2 + lam_res * sum ||W_res||_F^2 + lam_out * ||W_out||_F^2``,
the penalized form of the constraints ``B_res``, ``B_out`` of Definition 6.1, minimized by full-batch Adam.
We train on the unclipped output and clip to [0, 1] when predicting: clipping is a projection onto an
interval that contains f0, so it can only lower the error, while clipping inside the loss would cut the
gradient of every sample predicted outside [0, 1].

The baseline is kernel ridge regression with a Gaussian kernel on the ambient coordinates; both methods
are tuned over a grid by the test error (the oracle tuning of thesis section 5.9.3, "minimum MSE over
different choices of lambda").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .resnext import ResNeXt, ConvResNeXt

__all__ = ["ResNeXtConfig", "build_model", "train_resnext", "predict", "kernel_ridge_best"]


@dataclass
class ResNeXtConfig:
    """Architecture and training settings (Definition 6.1: N blocks, M paths, L layers, width w)."""

    n_blocks: int = 2
    n_paths: int = 8
    path_depth: int = 3
    width: int = 16
    conv: bool = False
    kernel_size: int = 3
    steps: int = 2000
    lr: float = 3e-3
    lam_out_ratio: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lam_out_ratio < 0:
            raise ValueError(f"lam_out_ratio must be non-negative, got {self.lam_out_ratio}")


def build_model(cfg: ResNeXtConfig, ambient_dim: int) -> torch.nn.Module:
    """The (Conv)ResNeXt of ``cfg`` for inputs in R^ambient_dim."""
    if cfg.conv:
        return ConvResNeXt(ambient_dim, cfg.n_blocks, cfg.n_paths, cfg.path_depth, cfg.width, cfg.kernel_size,
                           seed=cfg.seed)
    return ResNeXt(ambient_dim, cfg.n_blocks, cfg.n_paths, cfg.path_depth, cfg.width, seed=cfg.seed)


def train_resnext(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, lam: float, cfg: ResNeXtConfig) -> float:
    """Minimize the weight-decayed squared loss with full-batch Adam (cosine learning-rate decay).

    Parameters
    ----------
    model : ResNeXt or ConvResNeXt
    x : numpy.ndarray, shape (n, D)
    y : numpy.ndarray, shape (n,)
    lam : float
        Weight decay on the residual blocks; the output layer gets ``lam * cfg.lam_out_ratio``.
    cfg : ResNeXtConfig

    Returns
    -------
    float
        Final training objective.
    """
    if lam < 0:
        raise ValueError(f"lam must be non-negative, got {lam}")
    torch.manual_seed(cfg.seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    if xt.ndim != 2 or yt.shape != (xt.shape[0],):
        raise ValueError(f"x must be (n, D) and y (n,), got {tuple(xt.shape)} and {tuple(yt.shape)}")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps, eta_min=cfg.lr * 0.02)
    for _ in range(cfg.steps):
        optimizer.zero_grad(set_to_none=True)
        objective = torch.mean((model(xt, clip=False) - yt) ** 2)
        if lam > 0:
            objective = objective + lam * (model.residual_penalty() + cfg.lam_out_ratio * model.output_penalty())
        objective.backward()
        optimizer.step()
        schedule.step()
    return float(objective.detach())


@torch.no_grad()
def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Clipped predictions in [0, 1]."""
    return model(torch.as_tensor(x, dtype=torch.float32), clip=True).double().numpy()


@dataclass
class KernelRidgeResult:
    """Best test MSE of Gaussian kernel ridge over the grid, and the (gamma, alpha) that reached it."""

    mse: float
    gamma: float
    alpha: float


def kernel_ridge_best(x_train, y_train, x_test, f0_test, gammas=None, alphas=None) -> KernelRidgeResult:
    """Gaussian kernel ridge regression tuned by test MSE over ``gammas x alphas``.

    Solves ``(K + alpha I) c = y`` (sklearn's KernelRidge convention) through one eigendecomposition of K
    per bandwidth, so the whole ridge grid costs one O(n^3) step per gamma. ``gammas`` default to
    ``c / median squared pairwise distance`` for c in 2^[-2..8]; ``alphas`` to 10^[-6..0]. Predictions
    are clipped to [0, 1] like the network's.
    """
    from sklearn.metrics.pairwise import euclidean_distances
    from threadpoolctl import threadpool_limits

    x_train = np.asarray(x_train, dtype=float)
    x_test = np.asarray(x_test, dtype=float)
    y_train = np.asarray(y_train, dtype=float)
    f0_test = np.asarray(f0_test, dtype=float)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError("x_train and x_test must be 2-D with the same number of columns")
    if y_train.shape != (x_train.shape[0],) or f0_test.shape != (x_test.shape[0],):
        raise ValueError("y_train and f0_test must match the rows of x_train and x_test")
    sq_train = euclidean_distances(x_train, squared=True)
    sq_test = euclidean_distances(x_test, x_train, squared=True)
    if gammas is None:
        median = float(np.median(sq_train[sq_train > 0]))
        gammas = [2.0**k / median for k in range(-2, 9)]
    if alphas is None:
        alphas = [10.0**k for k in range(-6, 1)]
    best = KernelRidgeResult(np.inf, np.nan, np.nan)
    # one BLAS thread: on a shared 2-core machine a second thread only waits for the first
    with threadpool_limits(limits=1):
        for gamma in gammas:
            best = _best_over_alphas(gamma, alphas, sq_train, sq_test, y_train, f0_test, best)
    return best


def _best_over_alphas(gamma, alphas, sq_train, sq_test, y_train, f0_test, best):
    """Update ``best`` with every ridge value at one bandwidth (one eigendecomposition)."""
    eigvals, eigvecs = np.linalg.eigh(np.exp(-gamma * sq_train))
    projected = eigvecs.T @ y_train
    k_test = np.exp(-gamma * sq_test)
    for alpha in alphas:
        coef = eigvecs @ (projected / (np.maximum(eigvals, 0.0) + alpha))
        mse = float(np.mean((np.clip(k_test @ coef, 0, 1) - f0_test) ** 2))
        if mse < best.mse:
            best = KernelRidgeResult(mse, float(gamma), float(alpha))
    return best
