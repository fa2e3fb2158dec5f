"""Data and training for the x -> sum x_i^2 experiments (seed 004, sections 4.1 and 4.3).

Data (section 4.1): x ~ U[-1, 1]^d, each row sorted (the paper enforces permutation symmetry by
sorting), target f*(x) = (1/d) sum_i x_i^2 (eq. 2). Losses are reported on the original scale,
MSE_original = d^2 MSE_scaled (eq. 21).

Training (section 4.2): Adam with learning rate 0.01 and Keras' epsilon 1e-7, mini-batch =
(training + validation samples) / 100 (at least 8 here, since the smallest sample sizes of the sweep
would otherwise give batches of one or two), the model with the lowest validation loss is kept (the
paper's early stopping); an optional cosine decay of the learning rate is available (``cosine=True``) but
off by default, because at a few hundred steps it slowed progress more than it lowered the Adam noise
floor. Training + validation = 80 % of the samples in the paper (64 % / 16 %); here the
sweep variable n counts training samples, a validation set of n/4 is drawn on top, and the test set is
a separate large sample. Explicit regularization adds lambda * penalty (path norm eq. 22, L1 or L2 of the
weights, biases excluded) to the scaled MSE, as in eq. (11).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from .networks import REGULARIZERS, build


def sample(n: int, dim: int, rng: np.random.Generator, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """n rows of U[-1, 1]^dim (sorted within each row) and the scaled target (1/d) sum x_i^2."""
    if n < 1 or dim < 1:
        raise ValueError(f"n and dim must be positive, got n={n}, dim={dim}")
    x = rng.uniform(-1.0, 1.0, size=(n, dim))
    if sort:
        x = np.sort(x, axis=1)
    return x, np.sum(x * x, axis=1) / dim


@dataclass
class FitConfig:
    arch: str = "GN"
    alpha: int = 10
    regularizer: str = "none"  # "none", "path", "l1", "l2"
    lam: float = 0.0
    epochs: int = 200
    lr: float = 0.01
    min_batch: int = 8  # batch = max(min_batch, (train + validation) / 100), capped at n_train
    max_steps: int | None = None  # cap on optimizer steps (keeps large-n runs affordable)
    cosine: bool = False  # cosine learning-rate decay to zero over the run (the paper keeps 0.01 constant)
    seed: int = 0


@dataclass
class FitResult:
    test_mse: float  # original scale, d^2 * scaled MSE
    train_mse: float
    val_mse: float
    path_norm: float
    best_step: int
    steps: int


def _mse(model, X, Y) -> float:
    with torch.no_grad():
        return float(torch.mean((model(X) - Y) ** 2))


def fit(dim: int, n_train: int, cfg: FitConfig, data_seed: int = 0, n_test: int = 10000) -> FitResult:
    """Train one network on n_train samples; return original-scale test/train/validation MSE."""
    from .networks import path_norm

    if cfg.regularizer not in REGULARIZERS:
        raise ValueError(f"regularizer must be one of {sorted(REGULARIZERS)}, got {cfg.regularizer!r}")
    if cfg.regularizer != "none" and cfg.lam <= 0:
        raise ValueError(f"lam must be positive with regularizer {cfg.regularizer!r}, got {cfg.lam}")
    rng = np.random.default_rng(data_seed)
    n_val = max(4, n_train // 4)
    x, y = sample(n_train + n_val, dim, rng)
    xt, yt = sample(n_test, dim, np.random.default_rng(10 ** 6 + data_seed))
    X = torch.as_tensor(x[:n_train], dtype=torch.float32)
    Y = torch.as_tensor(y[:n_train], dtype=torch.float32)
    Xv = torch.as_tensor(x[n_train:], dtype=torch.float32)
    Yv = torch.as_tensor(y[n_train:], dtype=torch.float32)
    Xt = torch.as_tensor(xt, dtype=torch.float32)
    Yt = torch.as_tensor(yt, dtype=torch.float32)
    torch.manual_seed(cfg.seed)
    model = build(cfg.arch, dim, cfg.alpha, cfg.seed)
    penalty = REGULARIZERS[cfg.regularizer]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-7)
    batch = min(n_train, max(cfg.min_batch, (n_train + n_val) // 100))
    gen = torch.Generator().manual_seed(cfg.seed)
    best = (float("inf"), None, -1)
    steps = 0
    total = cfg.epochs * math.ceil(n_train / batch)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    # validate about once per epoch, but at least 50 times in a run (full-batch runs have 1 step per epoch)
    eval_every = max(1, min(math.ceil(n_train / batch), total // 50))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total) if cfg.cosine else None
    perm = torch.randperm(n_train, generator=gen)
    cursor = 0
    while steps < total:
        if cursor >= n_train:
            perm = torch.randperm(n_train, generator=gen)
            cursor = 0
        idx = perm[cursor:cursor + batch]
        cursor += batch
        opt.zero_grad()
        loss = torch.mean((model(X[idx]) - Y[idx]) ** 2)
        if penalty is not None:
            loss = loss + cfg.lam * penalty(model)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        steps += 1
        if steps % eval_every == 0 or steps == total:
            val = _mse(model, Xv, Yv)
            if val < best[0]:
                best = (val, copy.deepcopy(model.state_dict()), steps)
    model.load_state_dict(best[1])
    d2 = dim * dim
    with torch.no_grad():
        pn = float(path_norm(model))
    return FitResult(test_mse=d2 * _mse(model, Xt, Yt), train_mse=d2 * _mse(model, X, Y), val_mse=d2 * best[0],
                     path_norm=pn, best_step=best[2], steps=steps)
