"""Parallel ReLU network of thesis section 5.4 (Fig. 5.2) and its vanilla counterpart.

* :class:`ParallelReLUNet`: ``f(x) = sum_{j=1}^M f_j(x)``, each ``f_j`` an L-layer ReLU MLP of width w
  (L counts weight layers: input layer, L - 2 hidden layers, output layer). The M subnetworks are stored
  as stacked tensors and evaluated with batched matrix products (the block-diagonal view of Fig. 5.2(c)).
* Weight decay of eq. (5.4): ``lambda * sum_j sum_l ||W_l^(j)||_F^2``, biases not penalized.
* Proposition 5.5: rescaling the layers of each subnetwork to equal Frobenius norm leaves f unchanged and
  turns the penalty into ``L * sum_j a_j^(2/L)`` with ``a_j = prod_l ||W_l^(j)||_F`` (AM-GM), i.e. an
  l_{2/L} quasi-norm on the subnetwork scales: :meth:`ParallelReLUNet.rebalance`, :meth:`subnet_scales`.
* Active subnetworks (Fig. 5.3(c)(f)): those whose output is not constant on the domain.
* :class:`VanillaReLUNet`: a dense L-layer ReLU MLP; :func:`vanilla_width_for` picks the width that matches
  the parameter count of a parallel network (thesis: M=500, w=10, L=10 -> width 240).
* :meth:`ParallelReLUNet.grown`: the depth-(k+1) network of the layer-wise schedule (section 5.9.2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ParallelReLUNet", "VanillaReLUNet", "parallel_param_count", "vanilla_param_count",
           "vanilla_width_for"]


def _check_domain_and_scale(domain, input_scale) -> tuple[tuple[float, float], float]:
    lo, hi = domain
    if not lo < hi:
        raise ValueError(f"domain must be an increasing pair, got {domain!r}")
    if not input_scale > 0:
        raise ValueError(f"input_scale must be positive, got {input_scale}")
    return (float(lo), float(hi)), float(input_scale)


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def parallel_param_count(n_subnets: int, width: int, depth: int, in_dim: int = 1) -> int:
    """Number of weights and biases of a parallel network (M subnetworks, width w, depth L)."""
    per_subnet = (in_dim + 1) * width + (depth - 2) * (width + 1) * width + width + 1
    return n_subnets * per_subnet


def vanilla_param_count(width: int, depth: int, in_dim: int = 1) -> int:
    """Number of weights and biases of a dense ReLU MLP of the given width and depth."""
    return (in_dim + 1) * width + (depth - 2) * (width + 1) * width + width + 1


def vanilla_width_for(n_params: int, depth: int, in_dim: int = 1) -> int:
    """Smallest width whose dense MLP of ``depth`` layers has at least ``n_params`` parameters."""
    depth = _check_positive_int("depth", depth, 2)
    width = 1
    while vanilla_param_count(width, depth, in_dim) < n_params:
        width += 1
    return width


def _uniform(shape, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


GROW_MODES = ("random", "identity")


@torch.no_grad()
def _copy_grown(small: nn.Module, big: nn.Module, mode: str, batched: bool) -> None:
    """Fill the depth-(L+1) network ``big`` from the trained depth-L network ``small``."""
    if mode not in GROW_MODES:
        raise ValueError(f"mode must be one of {GROW_MODES}, got {mode!r}")
    depth = small.depth
    for layer in range(depth - 1):
        big.weights[layer].copy_(small.weights[layer])
        big.biases[layer].copy_(small.biases[layer])
    if mode == "identity":
        eye = torch.eye(small.width, dtype=big.weights[0].dtype)
        big.weights[depth - 1].copy_(eye.expand_as(big.weights[depth - 1]) if batched else eye)
        big.biases[depth - 1].zero_()
        big.weights[depth].copy_(small.weights[depth - 1])
        big.biases[depth].copy_(small.biases[depth - 1])


class ParallelReLUNet(nn.Module):
    """Sum of M independent L-layer ReLU MLPs of width w (thesis eq. (5.4)).

    Parameters
    ----------
    n_subnets : int
        M, number of subnetworks.
    width : int
        w, width of every hidden layer of a subnetwork.
    depth : int
        L >= 2, number of weight layers of each subnetwork.
    in_dim : int
        Input dimension d.
    domain : (float, float)
        Interval of the (1-D) inputs; first-layer kinks are initialized uniformly inside it so that
        every subnetwork starts with breakpoints where the data are.
    seed : int
        Seed of the initialization.
    input_scale : float
        First-layer slopes start uniform in [-input_scale, input_scale]. Steep targets (Doppler's slope
        reaches ~300) need products of layer weights of that size; Adam moves each weight by about its
        learning rate per step, so starting the slopes large saves thousands of steps. The minimizer of
        (5.4) does not depend on the initialization.
    """

    def __init__(self, n_subnets: int, width: int, depth: int, in_dim: int = 1,
                 domain: tuple[float, float] = (0.0, 1.0), seed: int = 0, input_scale: float = 1.0):
        super().__init__()
        self.n_subnets = _check_positive_int("n_subnets", n_subnets)
        self.width = _check_positive_int("width", width)
        self.depth = _check_positive_int("depth", depth, 2)
        self.in_dim = _check_positive_int("in_dim", in_dim)
        self.domain, self.input_scale = _check_domain_and_scale(domain, input_scale)
        lo, hi = self.domain
        gen = torch.Generator().manual_seed(int(seed))
        m, w = self.n_subnets, self.width
        weights, biases = [], []
        # input layer: slopes of size input_scale, kinks -b/w placed uniformly in the domain
        w_in = _uniform((m, in_dim, w), self.input_scale, gen)
        kinks = lo + (hi - lo) * torch.rand((m, 1, w), generator=gen, dtype=torch.float64)
        weights.append(w_in)
        biases.append(-(kinks * w_in.sum(dim=1, keepdim=True)))
        for _ in range(self.depth - 2):
            weights.append(_uniform((m, w, w), 1 / math.sqrt(w), gen))
            biases.append(_uniform((m, 1, w), 1 / math.sqrt(w), gen))
        # output layer: the fan-in of the summed output is M*w (block-diagonal view)
        weights.append(_uniform((m, w, 1), 1 / math.sqrt(m * w), gen))
        biases.append(torch.zeros((m, 1, 1), dtype=torch.float64))
        self.weights = nn.ParameterList([nn.Parameter(t) for t in weights])
        self.biases = nn.ParameterList([nn.Parameter(t) for t in biases])

    def subnet_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every subnetwork, shape (M, n), for inputs ``x`` of shape (n,) or (n, d)."""
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (n,) or (n, {self.in_dim}), got {tuple(x.shape)}")
        h = x.to(self.weights[0].dtype).unsqueeze(0).expand(self.n_subnets, -1, -1)
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias, h, weight)
            if layer < self.depth - 1:
                h = torch.relu(h)
        return h.squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.subnet_outputs(x).sum(dim=0)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden features of all subnetworks side by side, shape (n, M*w): f is linear in them."""
        if x.ndim == 1:
            x = x[:, None]
        h = x.to(self.weights[0].dtype).unsqueeze(0).expand(self.n_subnets, -1, -1)
        for weight, bias in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.relu(torch.baddbmm(bias, h, weight))
        return h.permute(1, 0, 2).reshape(x.shape[0], -1)

    @torch.no_grad()
    def set_output_layer(self, coefficients: torch.Tensor, intercept: float) -> None:
        """Write the output layer from a (M*w,) coefficient vector and one total output bias."""
        self.weights[-1].copy_(coefficients.view(self.n_subnets, self.width, 1))
        self.biases[-1].zero_()
        self.biases[-1][0, 0, 0] = intercept

    def weight_penalty(self) -> torch.Tensor:
        """``sum_j sum_l ||W_l^(j)||_F^2`` of eq. (5.4) (biases excluded)."""
        return sum(weight.pow(2).sum() for weight in self.weights)

    def layer_norms(self) -> torch.Tensor:
        """Frobenius norms ``||W_l^(j)||_F``, shape (M, L)."""
        return torch.stack([weight.pow(2).sum(dim=(1, 2)).sqrt() for weight in self.weights], dim=1)

    def subnet_scales(self) -> torch.Tensor:
        """``a_j = prod_l ||W_l^(j)||_F``: the coefficients of the equivalent l_{2/L} model (Prop. 5.5)."""
        return self.layer_norms().prod(dim=1)

    def lp_penalty(self) -> torch.Tensor:
        """``L * ||a||_{2/L}^{2/L}``: the smallest weight penalty over all rescalings (Prop. 5.5)."""
        return self.depth * self.subnet_scales().pow(2.0 / self.depth).sum()

    @torch.no_grad()
    def rebalance(self) -> None:
        """Rescale every subnetwork's layers to equal norm ``a_j^(1/L)`` without changing f (Prop. 5.5).

        Layer l is multiplied by ``c_l = a_j^(1/L) / ||W_l||``; ReLU is positively 1-homogeneous, so the
        bias of layer l is multiplied by ``c_1 ... c_l`` and ``prod_l c_l = 1`` leaves the output unchanged.
        Subnetworks with a zero layer are left as they are.
        """
        norms = self.layer_norms()
        scales = norms.prod(dim=1)
        ok = scales > 0
        target = scales.clamp_min(1e-300).pow(1.0 / self.depth)
        factors = torch.where(ok[:, None], target[:, None] / norms.clamp_min(1e-300), torch.ones_like(norms))
        cumulative = torch.ones_like(scales)
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            cumulative = cumulative * factors[:, layer]
            weight.mul_(factors[:, layer].view(-1, 1, 1))
            bias.mul_(cumulative.view(-1, 1, 1))

    @torch.no_grad()
    def active_mask(self, grid: torch.Tensor | None = None, rel_tol: float = 1e-3,
                    scale: float | None = None) -> torch.Tensor:
        """Boolean mask of the subnetworks whose output is not constant on the domain.

        A subnetwork is active when its range over ``grid`` (default: 2001 points of the domain) exceeds
        ``rel_tol * scale``. ``scale`` should be the range of the signal (fit_lambda_path passes the range
        of the labels); by default it is the range of the whole network's output, which cannot tell a
        network that collapsed to a constant from a healthy one. Weight-decayed dead subnetworks sit
        orders of magnitude below either tolerance.
        """
        if not 0 < rel_tol < 1:
            raise ValueError(f"rel_tol must be in (0, 1), got {rel_tol}")
        if grid is None:
            grid = torch.linspace(*self.domain, 2001, dtype=self.weights[0].dtype)
        outs = self.subnet_outputs(grid)
        spans = outs.max(dim=1).values - outs.min(dim=1).values
        if scale is None:
            total = outs.sum(dim=0)
            scale = float((total.max() - total.min()).clamp_min(1e-12))
        elif not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        return spans > rel_tol * scale

    def count_active(self, grid: torch.Tensor | None = None, rel_tol: float = 1e-3,
                     scale: float | None = None) -> int:
        """Number of active (non-constant) subnetworks, see :meth:`active_mask`."""
        return int(self.active_mask(grid, rel_tol, scale).sum())

    @torch.no_grad()
    def grown(self, seed: int = 0, mode: str = "random") -> "ParallelReLUNet":
        """The depth-(L+1) network of the layer-wise schedule (thesis section 5.9.2).

        The trained layers except the output layer are copied into the deeper network. ``mode`` says what
        the two remaining layers are:

        * ``"random"``: a new hidden layer and a new output layer drawn at random, the literal reading of
          the text ("initializing the first layer using the trained two layer one"): the deeper network
          starts from the learned features, not from the learned function;
        * ``"identity"``: the new hidden layer is the identity (its input is a ReLU output, so
          ``relu(I h) = h``) and the trained output layer is kept: the deeper network computes exactly
          the same function and training continues from there.
        """
        bigger = ParallelReLUNet(self.n_subnets, self.width, self.depth + 1, self.in_dim, self.domain, seed,
                                 self.input_scale)
        _copy_grown(self, bigger, mode, batched=True)
        return bigger.to(self.weights[0].dtype)


class VanillaReLUNet(nn.Module):
    """Dense L-layer ReLU MLP with scalar output (the "NN" baseline of Fig. 5.3).

    Parameters
    ----------
    width : int
    depth : int
        Number of weight layers, >= 2.
    in_dim : int
    domain : (float, float)
        Input interval; first-layer kinks start uniformly inside it as for :class:`ParallelReLUNet`.
    seed : int
    input_scale : float
        First-layer slopes start uniform in [-input_scale, input_scale] (see :class:`ParallelReLUNet`).
    """

    def __init__(self, width: int, depth: int, in_dim: int = 1, domain: tuple[float, float] = (0.0, 1.0),
                 seed: int = 0, input_scale: float = 1.0):
        super().__init__()
        self.width = _check_positive_int("width", width)
        self.depth = _check_positive_int("depth", depth, 2)
        self.in_dim = _check_positive_int("in_dim", in_dim)
        self.domain, self.input_scale = _check_domain_and_scale(domain, input_scale)
        lo, hi = self.domain
        gen = torch.Generator().manual_seed(int(seed))
        w = self.width
        w_in = _uniform((in_dim, w), self.input_scale, gen)
        kinks = lo + (hi - lo) * torch.rand((1, w), generator=gen, dtype=torch.float64)
        weights = [w_in]
        biases = [-(kinks * w_in.sum(dim=0, keepdim=True)).squeeze(0)]
        for _ in range(self.depth - 2):
            weights.append(_uniform((w, w), 1 / math.sqrt(w), gen))
            biases.append(_uniform((w,), 1 / math.sqrt(w), gen))
        weights.append(_uniform((w, 1), 1 / math.sqrt(w), gen))
        biases.append(torch.zeros(1, dtype=torch.float64))
        self.weights = nn.ParameterList([nn.Parameter(t) for t in weights])
        self.biases = nn.ParameterList([nn.Parameter(t) for t in biases])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (n,) or (n, {self.in_dim}), got {tuple(x.shape)}")
        h = x.to(self.weights[0].dtype)
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.addmm(bias, h, weight)
            if layer < self.depth - 1:
                h = torch.relu(h)
        return h.squeeze(-1)

    def weight_penalty(self) -> torch.Tensor:
        """Sum of squared Frobenius norms of the weight matrices (biases excluded)."""
        return sum(weight.pow(2).sum() for weight in self.weights)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden features, shape (n, width): f is linear in them."""
        if x.ndim == 1:
            x = x[:, None]
        h = x.to(self.weights[0].dtype)
        for weight, bias in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.relu(torch.addmm(bias, h, weight))
        return h

    @torch.no_grad()
    def set_output_layer(self, coefficients: torch.Tensor, intercept: float) -> None:
        """Write the output layer from a (width,) coefficient vector and the output bias."""
        self.weights[-1].copy_(coefficients.view(self.width, 1))
        self.biases[-1].fill_(intercept)

    @torch.no_grad()
    def rebalance(self) -> None:
        """Rescale the layers to equal Frobenius norm without changing f (Prop. 5.5 for one network)."""
        norms = torch.stack([weight.pow(2).sum().sqrt() for weight in self.weights])
        if torch.any(norms == 0):
            return
        factors = norms.prod().pow(1.0 / self.depth) / norms
        cumulative = torch.ones((), dtype=norms.dtype)
        for factor, weight, bias in zip(factors, self.weights, self.biases):
            cumulative = cumulative * factor
            weight.mul_(factor)
            bias.mul_(cumulative)

    @torch.no_grad()
    def grown(self, seed: int = 0, mode: str = "random") -> "VanillaReLUNet":
        """Depth-(L+1) network for the layer-wise schedule; same rules as :meth:`ParallelReLUNet.grown`."""
        bigger = VanillaReLUNet(self.width, self.depth + 1, self.in_dim, self.domain, seed, self.input_scale)
        _copy_grown(self, bigger, mode, batched=False)
        return bigger.to(self.weights[0].dtype)
