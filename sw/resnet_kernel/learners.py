"""Learner networks of Allen-Zhu & Li (seed 003) and their SGD training (section 8.1).

* :class:`ResNet3` — eq. (2.1): out(x) = A (relu(W x + b1) + relu(U relu(W x + b1) + b2)), the single-skip
  three-layer ResNet, W in R^{m x d}, U in R^{m x m}, A in R^{k x m}.
* :class:`FullyConnected` — two- and three-layer fully connected ReLU networks (the paper's 2layer/3layer).

Initialisation: the text says entries are "i.i.d. from N(1, 1/m)"; a mean of one makes every ReLU active
and the output of order m, so this is read as N(0, 1/m) for every weight and bias (footnote 15 describes
a zero-mean scale); with it the first-layer pre-activations have variance d/m.

Training (section 8.1): PyTorch SGD, momentum 0.9, mini-batch 50, learning rate divided by 10 half-way
(epoch 400 of 800), weight decay; ``train="all"`` trains every layer, ``"hidden"`` only W, U (and biases).
The training loss is PyTorch's default MSELoss (mean over batch and outputs; "the default SGD optimizer of
pytorch" suggests the default loss too), or optionally the paper's (1/2)||out - y||^2 per sample; with
weight decay the choice matters, because it sets how strong the decay is relative to the data term.
The reported test error is E ||out(x) - y||^2 summed over outputs, the scale on which k alpha^2 = 1.35
is the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


class ResNet3(torch.nn.Module):
    """Eq. (2.1) of the paper; ``bottleneck=True`` uses section 6's re-parameterisation U = V A.

    With the bottleneck, out(x) = out1(x) + A relu(V out1(x) + b2) with out1(x) = A relu(W x + b1): the
    second block reads the k-dimensional first-block output (the learned F) instead of the m hidden units.
    """

    def __init__(self, dim: int, width: int, outputs: int, generator: torch.Generator | None = None,
                 bottleneck: bool = True):
        super().__init__()
        if min(dim, width, outputs) < 1:
            raise ValueError(f"dim, width and outputs must be positive, got {dim}, {width}, {outputs}")
        g = generator
        self.bottleneck = bottleneck
        self.W = torch.nn.Parameter(torch.randn(width, dim, generator=g) / math.sqrt(width))
        self.b1 = torch.nn.Parameter(torch.randn(width, generator=g) / math.sqrt(width))
        inner = outputs if bottleneck else width
        self.U = torch.nn.Parameter(torch.randn(width, inner, generator=g) / math.sqrt(width))
        self.b2 = torch.nn.Parameter(torch.randn(width, generator=g) / math.sqrt(width))
        self.A = torch.nn.Parameter(torch.randn(outputs, width, generator=g) / math.sqrt(width))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden representation relu(Wx + b1) + relu(U relu(Wx + b1) + b2) (U = V A with the bottleneck)."""
        h = torch.relu(x @ self.W.T + self.b1)
        inner = h @ self.A.T if self.bottleneck else h
        return h + torch.relu(inner @ self.U.T + self.b2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) @ self.A.T

    def hidden_parameters(self):
        return [self.W, self.b1, self.U, self.b2]


class FullyConnected(torch.nn.Module):
    """ReLU network with ``depth - 1`` hidden layers of width m (depth 2 or 3 in the paper)."""

    def __init__(self, dim: int, width: int, outputs: int, depth: int = 2, generator: torch.Generator | None = None):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        g = generator
        dims = [dim] + [width] * (depth - 1)
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(dims[i + 1], dims[i], generator=g) / math.sqrt(width))
             for i in range(depth - 1)])
        self.biases = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(dims[i + 1], generator=g) / math.sqrt(width)) for i in range(depth - 1)])
        self.A = torch.nn.Parameter(torch.randn(outputs, width, generator=g) / math.sqrt(width))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for W, b in zip(self.weights, self.biases):
            h = torch.relu(h @ W.T + b)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) @ self.A.T

    def hidden_parameters(self):
        return list(self.weights) + list(self.biases)


@dataclass
class TrainConfig:
    epochs: int = 800
    lr: float = 0.05
    weight_decay: float = 5e-3
    batch: int = 50
    momentum: float = 0.9
    train: str = "all"  # "all" or "hidden"
    decay_at: float = 0.5  # fraction of the epochs after which the learning rate is divided by 10 (>= 1: never)
    loss: str = "half_sum"  # "mse": torch MSELoss (mean over batch and outputs); "half_sum": (1/2)||.||^2 per sample
    seed: int = 0


def build(arch: str, dim: int, width: int, outputs: int, seed: int) -> torch.nn.Module:
    """``arch`` in {"resnet3" (bottleneck U = V A), "resnet3_full" (dense m x m U), "fc2", "fc3"}."""
    g = torch.Generator().manual_seed(seed)
    if arch == "resnet3":
        return ResNet3(dim, width, outputs, generator=g, bottleneck=True)
    if arch == "resnet3_full":
        return ResNet3(dim, width, outputs, generator=g, bottleneck=False)
    if arch == "fc2":
        return FullyConnected(dim, width, outputs, depth=2, generator=g)
    if arch == "fc3":
        return FullyConnected(dim, width, outputs, depth=3, generator=g)
    raise ValueError(f"arch must be 'resnet3', 'resnet3_full', 'fc2' or 'fc3', got {arch!r}")


def prediction_error(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """E ||out(x) - y||^2 over the given sample."""
    with torch.no_grad():
        pred = model(torch.as_tensor(x, dtype=torch.float32))
        return float(torch.mean(torch.sum((pred - torch.as_tensor(y, dtype=torch.float32)) ** 2, dim=1)))


def train_sgd(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig,
              x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
              log_every: int = 0) -> dict:
    """SGD with momentum, step decay /10 at half the epochs; returns final train/test error and a curve."""
    if cfg.train not in ("all", "hidden"):
        raise ValueError(f"cfg.train must be 'all' or 'hidden', got {cfg.train!r}")
    if cfg.loss not in ("mse", "half_sum"):
        raise ValueError(f"cfg.loss must be 'mse' or 'half_sum', got {cfg.loss!r}")
    if cfg.epochs < 1 or cfg.batch < 1:
        raise ValueError(f"epochs and batch must be positive, got {cfg.epochs}, {cfg.batch}")
    params = list(model.parameters()) if cfg.train == "all" else model.hidden_parameters()
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, int(cfg.decay_at * cfg.epochs))], gamma=0.1)
    X = torch.as_tensor(x, dtype=torch.float32)
    Y = torch.as_tensor(y, dtype=torch.float32)
    gen = torch.Generator().manual_seed(cfg.seed)
    curve = []
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X), cfg.batch):
            idx = perm[start:start + cfg.batch]
            opt.zero_grad()
            diff2 = (model(X[idx]) - Y[idx]) ** 2
            loss = diff2.mean() if cfg.loss == "mse" else 0.5 * diff2.sum(dim=1).mean()
            loss.backward()
            opt.step()
        sched.step()
        if log_every and x_test is not None and (epoch + 1) % log_every == 0:
            curve.append((epoch + 1, prediction_error(model, x_test, y_test)))
    out = {"train_error": prediction_error(model, x, y), "curve": curve}
    if x_test is not None:
        out["test_error"] = prediction_error(model, x_test, y_test)
    return out
