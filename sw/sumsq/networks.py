"""Dense and sparse networks for x -> sum_i x_i^2 (Zhang, Zepeda-Nunez, Yao, Lin; seed 004, section 4.2).

All three have two hidden ReLU layers of d * alpha nodes and divide the output by d (they learn the
scaled target f*(x) = (1/d) sum_i x_i^2, eq. 2):

* :class:`GlobalNetwork` (GN, Algorithm 1): dense layers d -> d alpha -> d alpha -> 1 (no output bias).
* :class:`LocallyConnectedNetwork` (LCN, Algorithm 2): the same weights restricted to block-diagonal
  matrices, one independent block 1 -> alpha -> alpha -> 1 per coordinate.
* :class:`LocalNetwork` (LN, Algorithm 3): LCN with the blocks shared (a width-1 convolution),
  f(x) = (1/d) sum_i g(x_i; theta).

Keras' defaults are reproduced where they matter: Glorot-uniform weights and zero biases. Every model
can express its weights as the three dense matrices of the GN (``dense_weights``), which gives one
implementation of the path norm (eq. 22) for all three, ||theta||_P = (1/d) sum_{i,j,k} |w1_ij| |w2_jk| |w3_k|
(biases excluded, as in the paper), and the LN -> GN embedding of Fig. 2.
"""

from __future__ import annotations

import math

import torch


def _glorot_(t: torch.Tensor, fan_in: int, fan_out: int, generator: torch.Generator) -> None:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-limit, limit, generator=generator)


class GlobalNetwork(torch.nn.Module):
    """Dense (GN) network of Algorithm 1."""

    def __init__(self, dim: int, alpha: int, generator: torch.Generator):
        super().__init__()
        if dim < 1 or alpha < 1:
            raise ValueError(f"dim and alpha must be positive, got {dim}, {alpha}")
        self.dim, self.alpha = dim, alpha
        width = dim * alpha
        self.W1 = torch.nn.Parameter(torch.empty(width, dim))
        self.b1 = torch.nn.Parameter(torch.zeros(width))
        self.W2 = torch.nn.Parameter(torch.empty(width, width))
        self.b2 = torch.nn.Parameter(torch.zeros(width))
        self.W3 = torch.nn.Parameter(torch.empty(1, width))
        _glorot_(self.W1, dim, width, generator)
        _glorot_(self.W2, width, width, generator)
        _glorot_(self.W3, width, 1, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x @ self.W1.T + self.b1)
        h = torch.relu(h @ self.W2.T + self.b2)
        return (h @ self.W3.T)[:, 0] / self.dim

    def dense_weights(self):
        return self.W1, self.W2, self.W3[0]

    def weight_tensors(self):
        return [self.W1, self.W2, self.W3]


class LocallyConnectedNetwork(torch.nn.Module):
    """Locally connected (LCN) network of Algorithm 2: an independent 1 -> alpha -> alpha -> 1 block per input."""

    def __init__(self, dim: int, alpha: int, generator: torch.Generator):
        super().__init__()
        if dim < 1 or alpha < 1:
            raise ValueError(f"dim and alpha must be positive, got {dim}, {alpha}")
        self.dim, self.alpha = dim, alpha
        self.w1 = torch.nn.Parameter(torch.empty(dim, alpha))
        self.b1 = torch.nn.Parameter(torch.zeros(dim, alpha))
        self.w2 = torch.nn.Parameter(torch.empty(dim, alpha, alpha))
        self.b2 = torch.nn.Parameter(torch.zeros(dim, alpha))
        self.w3 = torch.nn.Parameter(torch.empty(dim, alpha))
        # Keras LocallyConnected1D: per-position kernels with the per-position fan-in/fan-out
        _glorot_(self.w1, 1, alpha, generator)
        _glorot_(self.w2, alpha, alpha, generator)
        _glorot_(self.w3, alpha, 1, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x[:, :, None] * self.w1 + self.b1)
        h = torch.relu(torch.einsum("nia,iab->nib", h, self.w2) + self.b2)
        return torch.einsum("nia,ia->n", h, self.w3) / self.dim

    def dense_weights(self):
        return _block_dense(self.w1, self.w2, self.w3)

    def weight_tensors(self):
        return [self.w1, self.w2, self.w3]


class LocalNetwork(torch.nn.Module):
    """Local (LN) network of Algorithm 3: one shared block g, f(x) = (1/d) sum_i g(x_i)."""

    def __init__(self, dim: int, alpha: int, generator: torch.Generator):
        super().__init__()
        if dim < 1 or alpha < 1:
            raise ValueError(f"dim and alpha must be positive, got {dim}, {alpha}")
        self.dim, self.alpha = dim, alpha
        self.w1 = torch.nn.Parameter(torch.empty(alpha))
        self.b1 = torch.nn.Parameter(torch.zeros(alpha))
        self.w2 = torch.nn.Parameter(torch.empty(alpha, alpha))
        self.b2 = torch.nn.Parameter(torch.zeros(alpha))
        self.w3 = torch.nn.Parameter(torch.empty(alpha))
        _glorot_(self.w1, 1, alpha, generator)
        _glorot_(self.w2, alpha, alpha, generator)
        _glorot_(self.w3, alpha, 1, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x[:, :, None] * self.w1 + self.b1)
        h = torch.relu(h @ self.w2 + self.b2)
        return (h @ self.w3).sum(dim=1) / self.dim

    def dense_weights(self):
        d = self.dim
        return _block_dense(self.w1.expand(d, -1), self.w2.expand(d, -1, -1), self.w3.expand(d, -1))

    def weight_tensors(self):
        return [self.w1, self.w2, self.w3]


def _block_dense(w1, w2, w3):
    """GN matrices (W1 (d a, d), W2 (d a, d a), w3 (d a,)) of block-diagonal per-coordinate weights."""
    d, a = w1.shape
    W1 = torch.zeros(d * a, d, dtype=w1.dtype)
    for i in range(d):
        W1[i * a:(i + 1) * a, i] = w1[i]
    W2 = torch.block_diag(*[w2[i].T for i in range(d)])
    return W1, W2, w3.reshape(-1)


def path_norm(model: torch.nn.Module) -> torch.Tensor:
    """Eq. (22): (1/d) sum_{i,j,k} |w1_ij| |w2_jk| |w3_k|, differentiable, biases excluded."""
    W1, W2, w3 = model.dense_weights()
    return (w3.abs() @ W2.abs() @ W1.abs()).sum() / model.dim


def l1_norm(model: torch.nn.Module) -> torch.Tensor:
    """Sum of |weights| over all weight tensors (biases excluded, as Keras' kernel_regularizer)."""
    return sum(t.abs().sum() for t in model.weight_tensors())


def l2_norm(model: torch.nn.Module) -> torch.Tensor:
    return sum((t ** 2).sum() for t in model.weight_tensors())


def embed_local_into_global(local: torch.nn.Module, generator: torch.Generator) -> GlobalNetwork:
    """Copy an LN or LCN into a GN of the same size (Fig. 2): block-diagonal weights, zeros elsewhere."""
    gn = GlobalNetwork(local.dim, local.alpha, generator)
    W1, W2, w3 = local.dense_weights()
    d, a = local.dim, local.alpha
    b1 = local.b1.expand(d, a) if local.b1.dim() == 1 else local.b1
    b2 = local.b2.expand(d, a) if local.b2.dim() == 1 else local.b2
    with torch.no_grad():
        gn.W1.copy_(W1)
        gn.W2.copy_(W2)
        gn.W3.copy_(w3[None])
        gn.b1.copy_(b1.reshape(-1))
        gn.b2.copy_(b2.reshape(-1))
    return gn


ARCHITECTURES = {"GN": GlobalNetwork, "LCN": LocallyConnectedNetwork, "LN": LocalNetwork}
REGULARIZERS = {"none": None, "path": path_norm, "l1": l1_norm, "l2": l2_norm}


def build(arch: str, dim: int, alpha: int, seed: int) -> torch.nn.Module:
    """``arch`` in {"GN", "LCN", "LN"}."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](dim, alpha, torch.Generator().manual_seed(seed))
