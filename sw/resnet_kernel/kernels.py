"""Kernel baselines for the Allen-Zhu & Li comparison (seed 003, section 8.1).

The paper compares the trained ResNet with two kernel methods derived from the same networks:

* the conjugate kernel ("last"): train only the output layer A on the frozen random features of the
  network at initialisation. Least squares on fixed features is convex, so it is solved in closed form
  by ridge regression (:func:`random_features_ridge`) instead of SGD; the ridge is chosen on a held-out
  split of the training set.
* the neural tangent kernel ("NTK"): the network linearised at initialisation. :func:`ntk_relu_kernel` is
  the infinite-width NTK of a fully connected ReLU network of a given depth (arc-cosine recursion,
  Jacot et al. / Arora et al.), and :func:`kernel_ridge` fits it. :func:`empirical_ntk_features` gives the
  finite-width NTK feature map of any torch model (the gradient of each output w.r.t. all parameters),
  for checking the analytic kernel and for a linearised-ResNet baseline on small problems.

Inputs in {-1, +1}^d are scaled to the unit sphere (x / sqrt d) before the analytic kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def _arccos_step(sigma_xy, sigma_xx, sigma_yy):
    """One ReLU layer of the NNGP recursion with its derivative kernel (c_sigma = 2 normalisation)."""
    norm = np.sqrt(np.outer(sigma_xx, sigma_yy))
    rho = np.clip(sigma_xy / norm, -1.0, 1.0)
    theta = np.arccos(rho)
    new = norm * (np.sin(theta) + (math.pi - theta) * np.cos(theta)) / math.pi
    deriv = (math.pi - theta) / math.pi
    return new, deriv


def ntk_relu_kernel(x: np.ndarray, y: np.ndarray, depth: int = 2, bias: float = 0.0) -> np.ndarray:
    """Infinite-width NTK of a ReLU network with ``depth - 1`` hidden layers (He scaling, c_sigma = 2).

    Sigma^(0) = <x, y> + bias^2; Sigma^(h) = 2 E[relu(u) relu(v)], Sigma_dot^(h) = 2 E[1[u>0] 1[v>0]];
    Theta^(h) = Sigma^(h) + Theta^(h-1) Sigma_dot^(h) (+ bias^2 for the layer's bias).
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    x = np.atleast_2d(x)
    y = np.atleast_2d(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    b2 = bias ** 2
    sxy = x @ y.T + b2
    sxx = np.sum(x * x, axis=1) + b2
    syy = np.sum(y * y, axis=1) + b2
    theta = sxy.copy()
    for _ in range(depth - 1):
        new, deriv = _arccos_step(sxy, sxx, syy)
        theta = new + theta * deriv + b2
        sxy = new + b2
        sxx = sxx + b2  # the diagonal of the arc-cosine map is the identity (c_sigma = 2)
        syy = syy + b2
    return theta


def kernel_ridge(K_train: np.ndarray, y_train: np.ndarray, K_test: np.ndarray, ridge: float) -> np.ndarray:
    """Predictions K_test (K_train + ridge n I)^-1 y_train (multi-output, one solve)."""
    n = len(K_train)
    coef = np.linalg.solve(K_train + ridge * n * np.eye(n), y_train)
    return K_test @ coef


def _holdout_split(n: int, rng: np.random.Generator, frac: float = 0.2):
    perm = rng.permutation(n)
    cut = max(1, int(round(frac * n)))
    return perm[cut:], perm[:cut]


@dataclass
class KernelFit:
    ridge: float
    test_error: float
    train_error: float


def _sqerr(pred, y):
    return float(np.mean(np.sum((pred - y) ** 2, axis=1)))


def fit_kernel(kernel, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
               ridges=(1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), seed: int = 0) -> KernelFit:
    """Kernel ridge regression with the ridge picked on a 20 % hold-out of the training set, then refit."""
    rng = np.random.default_rng(seed)
    tr, va = _holdout_split(len(x), rng)
    Ktr = kernel(x[tr], x[tr])
    Kva = kernel(x[va], x[tr])
    best = min(ridges, key=lambda r: _sqerr(kernel_ridge(Ktr, y[tr], Kva, r), y[va]))
    K = kernel(x, x)
    pred_test = kernel_ridge(K, y, kernel(x_test, x), best)
    pred_train = kernel_ridge(K, y, K, best)
    return KernelFit(ridge=best, test_error=_sqerr(pred_test, y_test), train_error=_sqerr(pred_train, y))


def random_features_ridge(features, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                          ridges=(1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), seed: int = 0) -> KernelFit:
    """Train only the output layer on frozen features (the conjugate kernel), ridge chosen on a hold-out.

    ``features`` maps an (n, d) array to (n, p) features. Solved in the primal when p < n, else in the dual.
    """
    rng = np.random.default_rng(seed)
    Phi = features(x)
    Phi_t = features(x_test)
    scale = np.sqrt(np.mean(np.sum(Phi ** 2, axis=1)))  # make the ridge grid scale-free
    Phi, Phi_t = Phi / scale, Phi_t / scale
    kernel_from = lambda a, b: a @ b.T  # noqa: E731
    tr, va = _holdout_split(len(x), rng)
    Ktr = kernel_from(Phi[tr], Phi[tr])
    Kva = kernel_from(Phi[va], Phi[tr])
    best = min(ridges, key=lambda r: _sqerr(kernel_ridge(Ktr, y[tr], Kva, r), y[va]))
    K = kernel_from(Phi, Phi)
    pred_test = kernel_ridge(K, y, kernel_from(Phi_t, Phi), best)
    pred_train = kernel_ridge(K, y, K, best)
    return KernelFit(ridge=best, test_error=_sqerr(pred_test, y_test), train_error=_sqerr(pred_train, y))


def relu_random_features(dim: int, count: int, seed: int = 0):
    """x -> relu(W x / sqrt(d) + b) with W ~ N(0, I), b ~ N(0, 1): the random-features model of a
    two-layer ReLU network whose output layer alone is trained."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(count, dim))
    b = rng.normal(size=count)
    return lambda x: np.maximum(x @ W.T / math.sqrt(dim) + b, 0.0)


def model_features(model: torch.nn.Module):
    """The frozen last hidden layer of a torch learner (its conjugate-kernel feature map)."""
    def f(x):
        with torch.no_grad():
            return model.features(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    return f


def empirical_ntk_features(model: torch.nn.Module, x: np.ndarray, output: int = 0) -> np.ndarray:
    """Rows d out_output(x_i) / d theta for all parameters theta (the finite-width NTK feature map)."""
    params = [p for p in model.parameters()]
    rows = []
    for xi in torch.as_tensor(x, dtype=torch.float32):
        out = model(xi[None])[0, output]
        grads = torch.autograd.grad(out, params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).double().numpy())
    return np.stack(rows)
