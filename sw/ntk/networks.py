"""Binary-weight network, BinaryConnect and the quasi neural network (thesis ch. 4, sections 4.3.3-4.4).

The network of section 4.4.2 (written as in the thesis, with x of unit norm under Assumption 4.3)::

    x1_i = 1/sqrt(d) * sum_k w0_ki x_k + b0_i                 fixed random "additional layer"
    y1_j = sqrt(c/d1) * sum_i w1_ij x1_i + beta b1_j          w1_ij = +-1 drawn by stochastic rounding (4.1)
    x2_j = relu(y1_j)
    y    = 1/sqrt(d2) * sum_j w2_j x2_j + beta b2              real-valued last layer

Stochastic rounding (4.1): ``w = +1`` with probability ``(theta + 1)/2``, so ``E[w | theta] = theta``.
BinaryConnect (eq. 3.5-3.6 with Q = stochastic rounding) keeps the real buffer ``theta``, computes the
gradient with the sampled binary weights and applies it to ``theta``, which is then clipped to [-1, 1]
(the projection Assumption 4.2 says training should not need).

The quasi neural network (4.2) replaces the sampled layer by its conditional mean ``nu1 = sqrt(c/d1) theta^T x1 +
beta b1`` and the ReLU by the closed-form activation (4.6)::

    sigma~(nu) = s phi(nu/s) + nu Phi(nu/s) = E[relu(nu + s eps)],  eps ~ N(0, 1),   sigma~'(nu) = Phi(nu/s)  (4.7)

with ``s`` either the limit of Theorem 4.4, ``s^2 = (c/d)(1 - Var theta) ||x||^2`` (``variance="limit"``, the
thesis' quasi network; ``||x|| = 1`` under Assumption 4.3), or the finite-width conditional variance of
Lemma 4.2, ``s_j^2 = (c/d1) sum_i (1 - theta_ij^2) x1_i^2`` (``variance="exact"``). Lemma 4.3 gives the mean and
variance of ``relu(y1)``; its printed variance ends in ``- nu^2`` and should end in ``- mu^2`` (erratum, see
docs/theory/chapter4_ntk_bwnn.md).

The gradient equivalence (Theorems 4.5-4.6): the expectation over stochastic roundings of the BinaryConnect
gradient (``d y / d w1`` applied to ``theta``) tends to the gradient of the quasi network; see
:func:`binaryconnect_gradients` and :func:`quasi_gradients`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["stochastic_binarize", "sigma_tilde", "sigma_tilde_grad", "relu_gaussian_moments",
           "BinaryWeightNet", "monte_carlo_outputs", "binaryconnect_gradients", "quasi_gradients",
           "train_network"]

_SQRT2 = math.sqrt(2.0)


def stochastic_binarize(theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw binary weights by stochastic rounding, eq. (4.1).

    Parameters
    ----------
    theta : torch.Tensor
        Real-valued buffer, every entry in [-1, 1].
    generator : torch.Generator, optional
        Source of randomness (for reproducible draws).

    Returns
    -------
    torch.Tensor
        Tensor of the same shape and dtype with entries +1 (probability ``(theta + 1)/2``) or -1.
    """
    if not torch.is_tensor(theta):
        raise ValueError("theta must be a torch.Tensor")
    if theta.numel() and (theta.min() < -1 or theta.max() > 1):
        raise ValueError(f"theta must lie in [-1, 1]; got range [{float(theta.min()):.3g}, {float(theta.max()):.3g}]")
    uniform = torch.rand(theta.shape, generator=generator, dtype=theta.dtype, device=theta.device)
    return torch.where(uniform < (theta + 1) / 2, 1.0, -1.0).to(theta.dtype)


def _normal_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-z / _SQRT2)


def _normal_pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def sigma_tilde(nu: torch.Tensor, s) -> torch.Tensor:
    """Closed-form activation of the quasi network, eq. (4.6): ``E[relu(nu + s eps)]``, eps ~ N(0, 1).

    Parameters
    ----------
    nu : torch.Tensor
        Conditional mean of the pre-activation.
    s : float or torch.Tensor
        Conditional standard deviation (broadcast against ``nu``), >= 0; ``s = 0`` gives the ReLU.

    Returns
    -------
    torch.Tensor
        ``s phi(nu/s) + nu Phi(nu/s)``; autograd differentiates it to ``Phi(nu/s)``, eq. (4.7).
    """
    s = torch.as_tensor(s, dtype=nu.dtype, device=nu.device)
    if (s < 0).any():
        raise ValueError("s (the conditional standard deviation) must be >= 0")
    safe_s = torch.where(s > 0, s, torch.ones_like(s))
    z = nu / safe_s
    smooth = safe_s * _normal_pdf(z) + nu * _normal_cdf(z)
    return torch.where(s > 0, smooth, torch.relu(nu))


def sigma_tilde_grad(nu: torch.Tensor, s) -> torch.Tensor:
    """Derivative of :func:`sigma_tilde` in ``nu``, eq. (4.7): ``Phi(nu/s)`` (the step function for s = 0)."""
    s = torch.as_tensor(s, dtype=nu.dtype, device=nu.device)
    if (s < 0).any():
        raise ValueError("s (the conditional standard deviation) must be >= 0")
    safe_s = torch.where(s > 0, s, torch.ones_like(s))
    return torch.where(s > 0, _normal_cdf(nu / safe_s), (nu > 0).to(nu.dtype))


def relu_gaussian_moments(nu: torch.Tensor, varsigma: torch.Tensor):
    """Mean and variance of ``relu(y)`` for ``y ~ N(nu, varsigma^2)``, Lemma 4.3 (corrected).

    Returns
    -------
    (mean, variance) : tuple of torch.Tensor
        ``mu = varsigma g + nu s`` and ``(varsigma^2 + nu^2) s + nu varsigma g - mu^2`` with
        ``g = phi(nu/varsigma)``, ``s = Phi(nu/varsigma)``. The thesis prints ``- nu^2`` as the last term;
        ``- mu^2`` is what the derivation gives (E[x^2] - E[x]^2).
    """
    varsigma = torch.as_tensor(varsigma, dtype=nu.dtype)
    if (varsigma <= 0).any():
        raise ValueError("varsigma must be > 0")
    z = nu / varsigma
    g, s = _normal_pdf(z), _normal_cdf(z)
    mean = varsigma * g + nu * s
    second = (varsigma ** 2 + nu ** 2) * s + nu * varsigma * g
    return mean, second - mean ** 2


class BinaryWeightNet(nn.Module):
    """The three-layer network of section 4.4.2; the middle layer binary (BinaryConnect) or real.

    Parameters
    ----------
    input_dim : int
        ``d``, the input dimension.
    projection_dim : int
        ``d1``, width of the fixed random "additional layer" (weights N(0, 1), never trained).
    hidden_dim : int
        ``d2``, width of the hidden ReLU layer.
    output_dim : int, default 1
        Number of outputs (the thesis has one; classification experiments use one per class).
    c : float, default 1.0
        Scale of the binary layer, ``sqrt(c/d1)`` in (4.2); the pre-activation variance is ``c ||x||^2/d``.
    beta : float, default 0.1
        Bias scale (``beta b`` in (4.2)); biases start at 0.
    weights : {"binary", "real"}
        ``"binary"``: ``theta1`` is the BinaryConnect buffer, initialised U[-theta_bound, theta_bound] (Remark 4.2);
        ``"real"``: ``theta1`` holds ordinary real weights, initialised N(0, 1) (the real-weight ReLU network).
    theta_bound : float, default 1.0
        Half-width of the uniform initialisation of the buffer, in (0, 1]; ``Var theta = theta_bound^2 / 3``.
    seed : int, default 0
        Seed of the initialisation.
    dtype : torch.dtype, default torch.float32
    """

    def __init__(self, input_dim: int, projection_dim: int, hidden_dim: int, output_dim: int = 1, *,
                 c: float = 1.0, beta: float = 0.1, weights: str = "binary", theta_bound: float = 1.0,
                 seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        for name, value in (("input_dim", input_dim), ("projection_dim", projection_dim),
                            ("hidden_dim", hidden_dim), ("output_dim", output_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if weights not in ("binary", "real"):
            raise ValueError(f"weights must be 'binary' or 'real', got {weights!r}")
        if not 0 < theta_bound <= 1:
            raise ValueError(f"theta_bound must be in (0, 1], got {theta_bound!r}")
        if c <= 0:
            raise ValueError(f"c must be > 0, got {c!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.input_dim, self.projection_dim, self.hidden_dim = int(input_dim), int(projection_dim), int(hidden_dim)
        self.output_dim, self.c, self.beta, self.weights = int(output_dim), float(c), float(beta), weights
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("w0", torch.randn(input_dim, projection_dim, generator=gen, dtype=dtype))
        self.register_buffer("b0", torch.zeros(projection_dim, dtype=dtype))
        if weights == "binary":
            theta = (2 * torch.rand(projection_dim, hidden_dim, generator=gen, dtype=dtype) - 1) * theta_bound
            # Var theta of the initial distribution; Theorem 4.4's limit variance uses it for the whole run (Lemma 4.8).
            self.var_theta = theta_bound ** 2 / 3
        else:
            theta = torch.randn(projection_dim, hidden_dim, generator=gen, dtype=dtype)
            self.var_theta = 1.0
        self.theta1 = nn.Parameter(theta)
        self.b1 = nn.Parameter(torch.zeros(hidden_dim, dtype=dtype))
        self.w2 = nn.Parameter(torch.randn(hidden_dim, output_dim, generator=gen, dtype=dtype))
        self.b2 = nn.Parameter(torch.zeros(output_dim, dtype=dtype))

    @property
    def is_binary(self) -> bool:
        return self.weights == "binary"

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Output ``x1`` of the fixed additional layer."""
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"x must have shape (N, {self.input_dim}), got {tuple(x.shape)}")
        return x.to(self.w0.dtype) @ self.w0 / math.sqrt(self.input_dim) + self.b0

    def sample_weights(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One stochastic rounding of the buffer (eq. 4.1); for a real network its weights."""
        if not self.is_binary:
            return self.theta1.detach()
        return stochastic_binarize(self.theta1.detach(), generator)

    def _layer1_weights(self, binary_weights, generator):
        if not self.is_binary:
            return self.theta1
        w = self.sample_weights(generator) if binary_weights is None else binary_weights
        # BinaryConnect: the forward pass uses w, the gradient w.r.t. w lands on theta (straight through).
        return self.theta1 + (w - self.theta1).detach()

    def forward_projected(self, x1: torch.Tensor, binary_weights: torch.Tensor | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Network output from the additional layer's output ``x1`` (one rounding for the whole batch)."""
        w1 = self._layer1_weights(binary_weights, generator)
        y1 = math.sqrt(self.c / self.projection_dim) * x1 @ w1 + self.beta * self.b1
        return torch.relu(y1) @ self.w2 / math.sqrt(self.hidden_dim) + self.beta * self.b2

    def forward(self, x: torch.Tensor, binary_weights: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Output ``y`` with sampled binary weights (binary mode) or the real weights (real mode)."""
        return self.forward_projected(self.project(x), binary_weights, generator)

    def conditional_moments(self, x1: torch.Tensor):
        """Conditional mean ``nu1`` and variance ``varsigma1^2`` of ``y1`` given theta, eq. (4.3) (Lemma 4.2)."""
        nu = math.sqrt(self.c / self.projection_dim) * x1 @ self.theta1 + self.beta * self.b1
        if not self.is_binary:
            return nu, torch.zeros_like(nu)
        var = self.c / self.projection_dim * (x1 ** 2) @ (1 - self.theta1 ** 2)
        return nu, var

    def limit_std(self, x: torch.Tensor) -> torch.Tensor:
        """Theorem 4.4's limit ``sqrt((c/d)(1 - Var theta)) ||x||`` of the conditional std, one per input (N, 1)."""
        return self._limit_std_from_norm2((x.to(self.w0.dtype) ** 2).sum(dim=1, keepdim=True))

    def _limit_std_from_norm2(self, norm2: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.c / self.input_dim * (1 - self.var_theta) * norm2)

    def quasi_forward(self, x: torch.Tensor, variance: str = "limit", return_hidden: bool = False):
        """Output ``y_bar`` of the quasi neural network (4.2).

        Parameters
        ----------
        x : torch.Tensor
            Inputs (N, d).
        variance : {"limit", "exact"}
            Conditional std used in sigma~: Theorem 4.4's data-independent limit (the thesis' quasi network) or
            Lemma 4.2's finite-width value.
        return_hidden : bool
            Also return ``(nu1, s)``.
        """
        norm2 = (x.to(self.w0.dtype) ** 2).sum(dim=1, keepdim=True)
        return self.quasi_forward_projected(self.project(x), norm2, variance, return_hidden)

    def quasi_forward_projected(self, x1: torch.Tensor, norm2: torch.Tensor, variance: str = "limit",
                                return_hidden: bool = False):
        """:meth:`quasi_forward` from the additional layer's output ``x1`` and the squared input norms (N, 1)."""
        if variance not in ("limit", "exact"):
            raise ValueError(f"variance must be 'limit' or 'exact', got {variance!r}")
        nu, var = self.conditional_moments(x1)
        if not self.is_binary:
            s = torch.zeros_like(nu)
        elif variance == "exact":
            s = torch.sqrt(var)
        else:
            s = self._limit_std_from_norm2(norm2).expand_as(nu)
        mu2 = sigma_tilde(nu, s)
        out = mu2 @ self.w2 / math.sqrt(self.hidden_dim) + self.beta * self.b2
        return (out, nu, s) if return_hidden else out

    def clip_buffer_(self) -> None:
        """Project the BinaryConnect buffer back onto [-1, 1] (no-op for a real network)."""
        if self.is_binary:
            with torch.no_grad():
                self.theta1.clamp_(-1.0, 1.0)

    def trainable_parameters(self) -> dict:
        """The parameters of the NTK (4.8): theta1, b1 and w2 (b2 is left out as in the thesis)."""
        return {"theta1": self.theta1, "b1": self.b1, "w2": self.w2}


@torch.no_grad()
def monte_carlo_outputs(net: BinaryWeightNet, x: torch.Tensor, n_samples: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Outputs of the binary network under ``n_samples`` independent stochastic roundings.

    Returns
    -------
    torch.Tensor
        Shape (n_samples, N, output_dim); every rounding is shared by all N inputs.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not net.is_binary:
        raise ValueError("net must be a binary-weight network (weights='binary')")
    x1 = net.project(x)
    return torch.stack([net.forward_projected(x1, generator=generator) for _ in range(n_samples)])


def _loss(output: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    if target is None:
        return output.sum()
    return 0.5 * ((output - target.reshape(output.shape)) ** 2).sum()


def binaryconnect_gradients(net: BinaryWeightNet, x: torch.Tensor, n_samples: int,
                            target: torch.Tensor | None = None,
                            generator: torch.Generator | None = None) -> dict:
    """Mean over stochastic roundings of the BinaryConnect gradients (left sides of Theorems 4.5 and 4.6).

    Parameters
    ----------
    net : BinaryWeightNet
        A binary-weight network.
    x : torch.Tensor
        Inputs (N, d); the gradient is that of the sum over inputs.
    n_samples : int
        Number of roundings averaged.
    target : torch.Tensor, optional
        If given, the gradient of the MSE loss ``0.5 sum (y - z)^2`` (Theorem 4.6); otherwise of ``sum y``
        (Theorem 4.5).

    Returns
    -------
    dict
        ``{"theta1": ..., "b1": ..., "w2": ...}``, detached tensors.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not net.is_binary:
        raise ValueError("net must be a binary-weight network (weights='binary')")
    params = net.trainable_parameters()
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    x1 = net.project(x)
    for _ in range(n_samples):
        loss = _loss(net.forward_projected(x1, generator=generator), target)
        grads = torch.autograd.grad(loss, list(params.values()))
        for name, g in zip(params, grads):
            total[name] += g
    return {name: g / n_samples for name, g in total.items()}


def quasi_gradients(net: BinaryWeightNet, x: torch.Tensor, target: torch.Tensor | None = None,
                    variance: str = "limit") -> dict:
    """Gradients of the quasi network (right sides of Theorems 4.5 and 4.6); same conventions as
    :func:`binaryconnect_gradients`."""
    params = net.trainable_parameters()
    loss = _loss(net.quasi_forward(x, variance=variance), target)
    grads = torch.autograd.grad(loss, list(params.values()))
    return {name: g.detach() for name, g in zip(params, grads)}


def train_network(net: BinaryWeightNet, x: torch.Tensor, labels: torch.Tensor, *, mode: str, steps: int,
                  lr: float, batch_size: int | None = None, optimizer: str = "adam", loss: str = "ce",
                  weight_decay: float = 0.0, seed: int = 0, progress: bool = False) -> list:
    """Train ``net`` and return the training-loss history (one value per step).

    Parameters
    ----------
    net : BinaryWeightNet
    x : torch.Tensor
        Inputs (N, d); projected once by the fixed layer.
    labels : torch.Tensor
        Class indices (N,) for ``loss="ce"``, targets (N, output_dim) or (N,) for ``loss="mse"``.
    mode : {"binaryconnect", "quasi", "real"}
        ``"binaryconnect"``: forward/backward with a fresh stochastic rounding per step, update of the buffer,
        clip to [-1, 1] (eq. 3.5-3.6); ``"quasi"``: gradient descent on the quasi network (4.2), as in
        section 4.6.1; ``"real"``: ordinary training of a real-weight network.
    steps : int
        Number of optimiser steps.
    lr : float
        Learning rate.
    batch_size : int, optional
        Minibatch size (sampled without replacement, reshuffled each epoch); None = full batch.
    optimizer : {"adam", "sgd"}
    loss : {"ce", "mse"}
    weight_decay : float
        L2 penalty coefficient (section 4.6.1 uses 1e-3 to keep theta inside [-1, 1]).
    seed : int
        Seed of the batch order and of the roundings.
    progress : bool
        Show a tqdm bar.
    """
    if mode not in ("binaryconnect", "quasi", "real"):
        raise ValueError(f"mode must be 'binaryconnect', 'quasi' or 'real', got {mode!r}")
    if mode == "real" and net.is_binary or mode != "real" and not net.is_binary:
        raise ValueError(f"mode {mode!r} does not match a network with weights={net.weights!r}")
    if loss not in ("ce", "mse"):
        raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
    if steps < 0 or lr <= 0:
        raise ValueError(f"steps must be >= 0 and lr > 0, got steps={steps}, lr={lr}")
    if optimizer == "adam":
        opt = torch.optim.Adam(net.trainable_parameters().values(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(net.trainable_parameters().values(), lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    n = x.shape[0]
    batch = n if batch_size is None else min(int(batch_size), n)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x1_all = net.project(x)
        norm2_all = (x.to(net.w0.dtype) ** 2).sum(dim=1, keepdim=True)
    order, cursor, history = torch.randperm(n, generator=gen), 0, []
    iterator = range(steps)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc=f"train {mode}", leave=False)
    for _ in iterator:
        if cursor + batch > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor:cursor + batch]
        cursor += batch
        if mode == "quasi":
            out = net.quasi_forward_projected(x1_all[idx], norm2_all[idx])
        else:
            out = net.forward_projected(x1_all[idx], generator=gen)
        if loss == "ce":
            value = nn.functional.cross_entropy(out, labels[idx].long())
        else:
            value = 0.5 * ((out - labels[idx].reshape(out.shape).to(out.dtype)) ** 2).mean()
        opt.zero_grad()
        value.backward()
        opt.step()
        net.clip_buffer_()
        history.append(value.item())
    return history


def numpy_seed_everything(seed: int) -> None:
    """Fix numpy's and torch's global seeds (experiment scripts)."""
    np.random.seed(seed)
    torch.manual_seed(seed)
