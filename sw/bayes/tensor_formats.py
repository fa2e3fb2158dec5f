"""Tensorized layers of thesis chapter 2: tensor-train (eq. 2.1 fully connected, eq. 2.2 convolution),
Tucker (eq. 2.15) and CP (section 2.3.3), each with the low-rank prior of its section and rank pruning.

Conventions (the thesis leaves them open; docs/theory/chapter2_bayesian_tt.md records the choices):

* A fully connected weight is ``W`` of shape ``(M, J)`` acting as ``y = x @ W + b``; ``M = prod(in_modes)``,
  ``J = prod(out_modes)`` and every multi-index is row-major (the first mode varies slowest).
* Every tensor-train core is stored as a 3-way array ``(R_{k-1}, S_k, R_k)`` with ``R_0 = R_K = 1``; ``S_k`` is
  the product of the physical modes the core carries (``m_k * j_k`` for a TT-matrix core, eq. 2.1; ``m_k`` or
  ``j_k`` for the alternating convolution cores of eq. 2.2, the last one also carrying the ``H x W`` window).
  One code path (:class:`TTCores`) then serves the prior (2.8) and the pruning rule for both layer kinds.
* Rank parameters are stored as log-precisions ``lambda_hat = log lambda`` (section 2.3.2). Without the
  low-rank prior ("TT-NN", "Tucker-NN" in Table 2.1) they are fixed buffers at 0, i.e. ``lambda = 1``: a plain
  ``N(0, 1)`` prior on every core entry.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import priors

__all__ = ["TTCores", "TTLinear", "TTConv2d", "TuckerLinear", "CPLinear",
           "tt_full", "tt_matrix_full", "tucker_full", "cp_full", "tt_svd", "hosvd",
           "tensorized_layers"]


# ----------------------------------------------------------------------------------------------------------
# Argument checks


def _positive_ints(name: str, values, allow_empty: bool = False) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except TypeError as err:
        raise ValueError(f"{name} must be a sequence of positive integers, got {values!r}") from err
    if (not out and not allow_empty) or any(v < 1 for v in out) or any(int(v) != v for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {values!r}")
    return out


def _check_prior_args(alpha: float, beta: float) -> None:
    if not alpha > 0:
        raise ValueError(f"alpha (Gamma shape) must be > 0, got {alpha}")
    if not beta > 0:
        raise ValueError(f"beta (Gamma rate) must be > 0, got {beta}")


# ----------------------------------------------------------------------------------------------------------
# Plain reconstructions (functions of tensors; the layers call these)


def tt_full(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Contract a chain of 3-way TT cores ``(R_{k-1}, S_k, R_k)`` into the full tensor ``(S_1, ..., S_K)``.

    This is the tensor-train product ``[[G(1), ..., G(K)]]_TT`` of eq. (2.1)-(2.2):
    ``X[s_1, ..., s_K] = G(1)[:, s_1, :] G(2)[:, s_2, :] ... G(K)[:, s_K, :]``.
    """
    if len(cores) == 0:
        raise ValueError("cores must hold at least one core")
    for k, core in enumerate(cores):
        if core.dim() != 3:
            raise ValueError(f"cores[{k}] must be 3-way (R_prev, S, R_next), got shape {tuple(core.shape)}")
    if cores[0].shape[0] != 1 or cores[-1].shape[2] != 1:
        raise ValueError("the boundary ranks R_0 and R_K must be 1")
    sizes = [core.shape[1] for core in cores]
    left = cores[0].reshape(sizes[0], cores[0].shape[2])
    for k in range(1, len(cores)):
        core = cores[k]
        if core.shape[0] != left.shape[1]:
            raise ValueError(f"rank mismatch between cores[{k - 1}] and cores[{k}]")
        left = (left @ core.reshape(core.shape[0], -1)).reshape(-1, core.shape[2])
    return left.reshape(sizes)


def tt_matrix_full(cores: Sequence[torch.Tensor], in_modes: Sequence[int], out_modes: Sequence[int]) -> torch.Tensor:
    """The ``(M, J)`` matrix of a TT-matrix (eq. 2.1) whose core ``k`` has middle size ``m_k * j_k``."""
    K = len(in_modes)
    full = tt_full(cores).reshape([v for pair in zip(in_modes, out_modes) for v in pair])
    # (m1, j1, ..., mK, jK) -> (m1, ..., mK, j1, ..., jK)
    full = full.permute(*range(0, 2 * K, 2), *range(1, 2 * K, 2))
    return full.reshape(math.prod(in_modes), math.prod(out_modes))


def tucker_full(core: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``X = G x_1 U(1) x_2 ... x_d U(d)`` (eq. 2.15); ``U(k)`` is ``(n_k, R_k)``, ``G`` is ``(R_1, ..., R_d)``."""
    if core.dim() != len(factors):
        raise ValueError(f"core has order {core.dim()} but {len(factors)} factors were given")
    out = core
    for k, factor in enumerate(factors):
        if factor.dim() != 2 or factor.shape[1] != core.shape[k]:
            raise ValueError(f"factors[{k}] must be (n_{k + 1}, {core.shape[k]}), got {tuple(factor.shape)}")
        # contracting the leading axis and appending the new one cycles the axes back into order after d steps
        out = torch.tensordot(out, factor, dims=([0], [1]))
    return out


def cp_full(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``X = sum_r a_r(1) o ... o a_r(d) = [[A(1), ..., A(d)]]`` with ``A(k)`` of shape ``(n_k, R)``."""
    if len(factors) == 0:
        raise ValueError("factors must hold at least one factor matrix")
    rank = factors[0].shape[1]
    if any(f.dim() != 2 or f.shape[1] != rank for f in factors):
        raise ValueError("every CP factor must be 2-D with the same number of columns (the CP rank)")
    out = factors[0]
    for factor in factors[1:]:
        # (n_1, ..., n_k, 1, R) * (n_{k+1}, R) -> (n_1, ..., n_{k+1}, R)
        out = out.unsqueeze(-2) * factor
    return out.sum(dim=-1)


def tt_svd(tensor: torch.Tensor, max_rank: int | None = None, rel_tol: float = 0.0) -> list[torch.Tensor]:
    """TT-SVD (Oseledets 2011): sequential truncated SVDs giving 3-way cores ``(R_{k-1}, S_k, R_k)``.

    With ``max_rank=None`` and ``rel_tol=0`` the decomposition is exact, which the reconstruction tests use.
    """
    if tensor.dim() < 1:
        raise ValueError("tensor must have at least one mode")
    sizes = tensor.shape
    cores = []
    rest = tensor.reshape(1, -1)
    rank_prev = 1
    for k in range(len(sizes) - 1):
        mat = rest.reshape(rank_prev * sizes[k], -1)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        keep = s.numel()
        if rel_tol > 0:
            keep = max(1, int((s > rel_tol * s[0]).sum()))
        if max_rank is not None:
            keep = min(keep, int(max_rank))
        cores.append(u[:, :keep].reshape(rank_prev, sizes[k], keep))
        rest = s[:keep, None] * vh[:keep]
        rank_prev = keep
    cores.append(rest.reshape(rank_prev, sizes[-1], 1))
    return cores


def hosvd(tensor: torch.Tensor, ranks: Sequence[int] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Truncated higher-order SVD: factors from each unfolding's left singular vectors, core by projection."""
    factors = []
    for k in range(tensor.dim()):
        unfolding = tensor.movedim(k, 0).reshape(tensor.shape[k], -1)
        u = torch.linalg.svd(unfolding, full_matrices=False)[0]
        rank = u.shape[1] if ranks is None else min(int(ranks[k]), u.shape[1])
        factors.append(u[:, :rank])
    core = tensor
    for factor in factors:
        core = torch.tensordot(core, factor, dims=([0], [0]))
    return core, factors


# ----------------------------------------------------------------------------------------------------------
# Tensor-train cores with the prior (2.8) and the pruning rule (section 2.2.4)


class TTCores(nn.Module):
    """A tensor-train chain of 3-way cores with the Gaussian-Gamma low-rank prior of eq. (2.8).

    Parameters
    ----------
    sizes : sequence of int
        Middle sizes ``S_k`` of the cores.
    ranks : sequence of int
        Interior TT ranks ``R_1, ..., R_{K-1}`` (``R_0 = R_K = 1`` are implied).
    low_rank_prior : bool
        If True the log-precisions ``lambda_hat(k)`` are parameters with a log-Gamma(alpha, beta) prior
        (the "BF" rows of Table 2.1); otherwise they are fixed at 0 (``lambda = 1``).
    alpha, beta : float
        Gamma shape and *rate* of the hyper-prior on every ``lambda_r(k)``.
    init_std : float
        Standard deviation of the initial core entries.
    """

    def __init__(self, sizes: Sequence[int], ranks: Sequence[int], low_rank_prior: bool = False,
                 alpha: float = 1.0, beta: float = 1.0, init_std: float = 0.1, generator=None):
        super().__init__()
        sizes = _positive_ints("sizes", sizes)
        ranks = _positive_ints("ranks", ranks, allow_empty=True)
        if len(ranks) != len(sizes) - 1:
            raise ValueError(f"ranks must have len(sizes) - 1 = {len(sizes) - 1} entries, got {len(ranks)}")
        _check_prior_args(alpha, beta)
        if not init_std > 0:
            raise ValueError(f"init_std must be > 0, got {init_std}")
        self.sizes = sizes
        self.low_rank_prior = bool(low_rank_prior)
        self.alpha, self.beta = float(alpha), float(beta)
        full_ranks = (1,) + ranks + (1,)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(full_ranks[k], sizes[k], full_ranks[k + 1], generator=generator) * init_std)
            for k in range(len(sizes)))
        if self.low_rank_prior:
            self.log_lambdas = nn.ParameterList(nn.Parameter(torch.zeros(r)) for r in ranks)
        else:
            self.log_lambdas = [torch.zeros(r) for r in ranks]  # fixed lambda = 1, not parameters

    @property
    def ranks(self) -> tuple[int, ...]:
        """Interior ranks ``R_1 .. R_{K-1}``."""
        return tuple(int(core.shape[2]) for core in self.cores[:-1])

    def full(self) -> torch.Tensor:
        return tt_full(list(self.cores))

    def num_parameters(self) -> int:
        """Core entries only (the rank parameters are hyper-parameters, not weights)."""
        return sum(core.numel() for core in self.cores)

    def _lambda_hats(self) -> list[torch.Tensor]:
        device = self.cores[0].device
        one = torch.zeros(1, device=device, dtype=self.cores[0].dtype)
        inner = [lh if isinstance(lh, nn.Parameter) else lh.to(device=device, dtype=one.dtype)
                 for lh in self.log_lambdas]
        return [one] + inner + [one]

    def neg_log_prior(self) -> torch.Tensor:
        """``-log P(G, Lambda)`` of eq. (2.8) with ``c_k = 1``, normalized (constants included)."""
        return priors.tt_neg_log_prior(list(self.cores), self._lambda_hats(), self.alpha, self.beta,
                                       hyper_prior=self.low_rank_prior)

    def slice_sizes(self) -> list[torch.Tensor]:
        """``n_r`` for every interior rank: ``S_k R_{k-1} + S_{k+1} R_{k+1}`` entries governed by ``lambda_r(k)``."""
        full_ranks = (1,) + self.ranks + (1,)
        out = []
        for k in range(1, len(self.sizes)):
            n = self.sizes[k - 1] * full_ranks[k - 1] + self.sizes[k] * full_ranks[k + 1]
            out.append(torch.full((full_ranks[k],), float(n)))
        return out

    @torch.no_grad()
    def prune(self, eps: float, min_rank: int = 1) -> list[list[int]]:
        """Delete the rank slices whose ``lambda_hat`` passed the threshold of section 2.2.4.

        For interior rank ``k`` a slice ``r`` is removed when
        ``lambda_hat_r(k) >= log(alpha + n_r / 2) - log(beta) - eps`` (see :func:`priors.pruning_mask`):
        the horizontal slice ``G(k)[:, :, r]`` and the frontal slice ``G(k+1)[r, :, :]`` go. All thresholds of
        one call use the ranks before the call. Returns the removed indices per interior rank.
        """
        if not self.low_rank_prior:
            raise ValueError("prune() needs low_rank_prior=True (the threshold is defined by the Gamma prior)")
        removed_all = []
        masks = [priors.pruning_mask(lh.detach(), n, self.alpha, self.beta, eps, min_keep=min_rank)
                 for lh, n in zip(self.log_lambdas, self.slice_sizes())]
        for k, remove in enumerate(masks):
            keep = (~remove).nonzero().flatten()
            removed_all.append(remove.nonzero().flatten().tolist())
            if bool(remove.any()):
                self.cores[k] = nn.Parameter(self.cores[k][:, :, keep].clone())
                self.cores[k + 1] = nn.Parameter(self.cores[k + 1][keep].clone())
                self.log_lambdas[k] = nn.Parameter(self.log_lambdas[k][keep].clone())
        return removed_all


def _he_core_std(fan_in: int, ranks: Sequence[int], n_cores: int, gain: float = 2.0) -> float:
    """Core std giving entries of the reconstructed weight variance ``gain / fan_in`` (He init).

    A weight entry is a sum over ``prod(R_k)`` paths of products of ``K`` core entries, so its variance is
    ``prod(R_k) * std^(2K)``.
    """
    return (gain / fan_in / max(1, math.prod(ranks))) ** (1.0 / (2 * n_cores))


class TTLinear(nn.Module):
    """Fully connected layer with a TT-matrix weight (eq. 2.1): ``W (M x J) = [[G(1), ..., G(K)]]_TT``.

    Core ``k`` has shape ``(R_{k-1}, m_k * j_k, R_k)``; ``forward`` reconstructs ``W`` and multiplies (cheaper
    than sequential contraction at the batch sizes used here).
    """

    def __init__(self, in_modes: Sequence[int], out_modes: Sequence[int], ranks, bias: bool = True,
                 low_rank_prior: bool = False, alpha: float = 1.0, beta: float = 1.0, generator=None):
        super().__init__()
        self.in_modes = _positive_ints("in_modes", in_modes)
        self.out_modes = _positive_ints("out_modes", out_modes)
        if len(self.in_modes) != len(self.out_modes):
            raise ValueError(f"in_modes and out_modes must have the same length, got {in_modes} and {out_modes}")
        K = len(self.in_modes)
        ranks = (int(ranks),) * (K - 1) if isinstance(ranks, int) else tuple(ranks)
        self.in_features, self.out_features = math.prod(self.in_modes), math.prod(self.out_modes)
        std = _he_core_std(self.in_features, ranks, K) if all(r > 0 for r in ranks) else 0.1
        self.tt = TTCores([m * j for m, j in zip(self.in_modes, self.out_modes)], ranks, low_rank_prior,
                          alpha, beta, init_std=std, generator=generator)
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    def weight(self) -> torch.Tensor:
        return tt_matrix_full(list(self.tt.cores), self.in_modes, self.out_modes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected inputs with {self.in_features} features, got {x.shape[-1]}")
        out = x @ self.weight()
        return out + self.bias if self.bias is not None else out

    ranks = property(lambda self: self.tt.ranks)

    def prior_parameters(self) -> list[nn.Parameter]:
        """Parameters whose prior this layer owns (the bias is left to the model's default Gaussian)."""
        return list(self.tt.cores) + (list(self.tt.log_lambdas) if self.tt.low_rank_prior else [])

    def neg_log_prior(self) -> torch.Tensor:
        return self.tt.neg_log_prior()

    def prune(self, eps: float, min_rank: int = 1):
        return self.tt.prune(eps, min_rank)

    def num_weight_parameters(self) -> int:
        return self.tt.num_parameters() + (self.bias.numel() if self.bias is not None else 0)

    def extra_repr(self) -> str:
        return f"in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={self.ranks}"


class TTConv2d(nn.Module):
    """Convolution whose kernel ``C (M x J x H x W)`` is a TT of ``2K`` cores (eq. 2.2).

    Core shapes ``m1 x R1, R1 x j1 x R2, ..., R_{2K-2} x mK x R_{2K-1}, R_{2K-1} x jK x H x W``; the window
    stays uncompressed inside the last core, as in the thesis.
    """

    def __init__(self, in_modes: Sequence[int], out_modes: Sequence[int], ranks, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, bias: bool = True, low_rank_prior: bool = False,
                 alpha: float = 1.0, beta: float = 1.0, generator=None):
        super().__init__()
        self.in_modes = _positive_ints("in_modes", in_modes)
        self.out_modes = _positive_ints("out_modes", out_modes)
        if len(self.in_modes) != len(self.out_modes):
            raise ValueError(f"in_modes and out_modes must have the same length, got {in_modes} and {out_modes}")
        if int(kernel_size) < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        K = len(self.in_modes)
        ranks = (int(ranks),) * (2 * K - 1) if isinstance(ranks, int) else tuple(ranks)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.in_channels, self.out_channels = math.prod(self.in_modes), math.prod(self.out_modes)
        sizes = []
        for m, j in zip(self.in_modes, self.out_modes):
            sizes += [m, j]
        sizes[-1] *= self.kernel_size ** 2
        std = _he_core_std(self.in_channels * self.kernel_size ** 2, ranks, 2 * K)
        self.tt = TTCores(sizes, ranks, low_rank_prior, alpha, beta, init_std=std, generator=generator)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None

    def kernel(self) -> torch.Tensor:
        """The kernel ``C`` as ``(M, J, H, W)`` (thesis order)."""
        K = len(self.in_modes)
        h = self.kernel_size
        full = self.tt.full().reshape([v for pair in zip(self.in_modes, self.out_modes) for v in pair] + [h, h])
        full = full.permute(*range(0, 2 * K, 2), *range(1, 2 * K, 2), 2 * K, 2 * K + 1)
        return full.reshape(self.in_channels, self.out_channels, h, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.kernel().transpose(0, 1)  # torch wants (out, in, H, W)
        return F.conv2d(x, weight, self.bias, stride=self.stride, padding=self.padding)

    ranks = property(lambda self: self.tt.ranks)
    prior_parameters = TTLinear.prior_parameters
    neg_log_prior = TTLinear.neg_log_prior
    prune = TTLinear.prune
    num_weight_parameters = TTLinear.num_weight_parameters

    def extra_repr(self) -> str:
        return (f"in_modes={self.in_modes}, out_modes={self.out_modes}, kernel_size={self.kernel_size}, "
                f"ranks={self.ranks}")


# ----------------------------------------------------------------------------------------------------------
# Tucker (eq. 2.15-2.17)


class TuckerLinear(nn.Module):
    """Fully connected layer whose weight, reshaped to ``in_modes + out_modes``, is a Tucker tensor (eq. 2.15).

    Prior (eq. 2.16-2.17): rows of ``U(k)`` are ``N(0, Lambda(k)^-1)``; core entries are
    ``N(0, core_scale * prod_k lambda_{r_k}(k)^-1)``; ``lambda_r(k) ~ Gamma(alpha, beta)`` (rate), shared by
    ``U(k)`` and the core. ``core_scale`` is the thesis' constant ``beta`` of (2.17), renamed to avoid the clash
    with the Gamma rate. ``core_precision="geometric"`` replaces the product by its d-th root (not the thesis';
    see :func:`~ultratrain.sw.bayes.priors.tucker_neg_log_prior`).
    """

    def __init__(self, in_modes: Sequence[int], out_modes: Sequence[int], ranks: Sequence[int], bias: bool = True,
                 low_rank_prior: bool = False, alpha: float = 1.0, beta: float = 1.0, core_scale: float = 1.0,
                 generator=None, core_precision: str = "product"):
        super().__init__()
        self.in_modes = _positive_ints("in_modes", in_modes)
        self.out_modes = _positive_ints("out_modes", out_modes)
        self.modes = self.in_modes + self.out_modes
        ranks = _positive_ints("ranks", ranks)
        if len(ranks) != len(self.modes):
            raise ValueError(f"ranks must have one entry per mode ({len(self.modes)}), got {len(ranks)}")
        if any(r > n for r, n in zip(ranks, self.modes)):
            raise ValueError(f"Tucker ranks {ranks} cannot exceed the mode sizes {self.modes}")
        _check_prior_args(alpha, beta)
        if not core_scale > 0:
            raise ValueError(f"core_scale must be > 0, got {core_scale}")
        # the order never changes (pruning removes slices, not modes): checked and fixed once
        self._core_lambda_power = priors.tucker_core_lambda_power(core_precision, len(ranks))
        self.core_precision = core_precision
        self.in_features, self.out_features = math.prod(self.in_modes), math.prod(self.out_modes)
        self.low_rank_prior = bool(low_rank_prior)
        self.alpha, self.beta, self.core_scale = float(alpha), float(beta), float(core_scale)
        # orthonormal-ish factors (std 1/sqrt(n_k)) keep the weight variance equal to the core's; He scale
        self.factors = nn.ParameterList(
            nn.Parameter(torch.randn(n, r, generator=generator) / math.sqrt(n)) for n, r in zip(self.modes, ranks))
        core_std = math.sqrt(2.0 / self.in_features * math.prod(self.modes) / math.prod(ranks))
        self.core = nn.Parameter(torch.randn(*ranks, generator=generator) * core_std)
        if self.low_rank_prior:
            self.log_lambdas = nn.ParameterList(nn.Parameter(torch.zeros(r)) for r in ranks)
        else:
            self.log_lambdas = [torch.zeros(r) for r in ranks]
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(int(r) for r in self.core.shape)

    def weight(self) -> torch.Tensor:
        return tucker_full(self.core, list(self.factors)).reshape(self.in_features, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected inputs with {self.in_features} features, got {x.shape[-1]}")
        out = x @ self.weight()
        return out + self.bias if self.bias is not None else out

    def _lambda_hats(self):
        return [lh if isinstance(lh, nn.Parameter) else lh.to(self.core) for lh in self.log_lambdas]

    def prior_parameters(self) -> list[nn.Parameter]:
        return [self.core] + list(self.factors) + (list(self.log_lambdas) if self.low_rank_prior else [])

    def neg_log_prior(self) -> torch.Tensor:
        return priors.tucker_neg_log_prior(self.core, list(self.factors), self._lambda_hats(), self.alpha,
                                           self.beta, self.core_scale, hyper_prior=self.low_rank_prior,
                                           core_precision=self.core_precision)

    def slice_sizes(self) -> list[torch.Tensor]:
        """``n_r = n_k + prod_{j != k} R_j``: entries of ``U(k)[:, r]`` and of the core slice ``r_k = r`` (with the
        geometric core precision each core entry carries ``lambda_r`` to the power 1/d, so the slice counts 1/d)."""
        ranks = self.ranks
        share = self._core_lambda_power
        return [torch.full((ranks[k],), float(self.modes[k] + share * (math.prod(ranks) // ranks[k])))
                for k in range(len(ranks))]

    @torch.no_grad()
    def prune(self, eps: float, min_rank: int = 1) -> list[list[int]]:
        """Remove column ``r`` of ``U(k)`` and core slice ``r`` along mode ``k`` where ``lambda_hat`` passed the
        threshold (the thesis gives no Tucker rule; this is the TT rule with this format's ``n_r``)."""
        if not self.low_rank_prior:
            raise ValueError("prune() needs low_rank_prior=True")
        masks = [priors.pruning_mask(lh.detach(), n, self.alpha, self.beta, eps, min_keep=min_rank)
                 for lh, n in zip(self.log_lambdas, self.slice_sizes())]
        removed_all = []
        core = self.core.detach()
        for k, remove in enumerate(masks):
            keep = (~remove).nonzero().flatten()
            removed_all.append(remove.nonzero().flatten().tolist())
            if bool(remove.any()):
                core = core.index_select(k, keep)
                self.factors[k] = nn.Parameter(self.factors[k][:, keep].clone())
                self.log_lambdas[k] = nn.Parameter(self.log_lambdas[k][keep].clone())
        if any(bool(m.any()) for m in masks):
            self.core = nn.Parameter(core.clone())
        return removed_all

    def num_weight_parameters(self) -> int:
        return (self.core.numel() + sum(f.numel() for f in self.factors)
                + (self.bias.numel() if self.bias is not None else 0))

    def extra_repr(self) -> str:
        return f"in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={self.ranks}"


# ----------------------------------------------------------------------------------------------------------
# CP (eq. 2.18-2.22)


class CPLinear(nn.Module):
    """Fully connected layer whose weight, reshaped to ``in_modes + out_modes``, is a CP tensor.

    Prior (eq. 2.18 with the spurious inner sum removed): ``A(k)[:, r] ~ N(0, lambda_r^-1 I)`` for every mode,
    ``lambda_r ~ Gamma(alpha, beta)`` (rate), sampled as ``log lambda_r``. :func:`priors.cp_neg_log_prior_variance`
    gives the same prior in the thesis' inverse-Gamma variance form (2.21-2.22).
    """

    def __init__(self, in_modes: Sequence[int], out_modes: Sequence[int], rank: int, bias: bool = True,
                 low_rank_prior: bool = False, alpha: float = 1.0, beta: float = 1.0, generator=None):
        super().__init__()
        self.in_modes = _positive_ints("in_modes", in_modes)
        self.out_modes = _positive_ints("out_modes", out_modes)
        self.modes = self.in_modes + self.out_modes
        if int(rank) < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        _check_prior_args(alpha, beta)
        self.in_features, self.out_features = math.prod(self.in_modes), math.prod(self.out_modes)
        self.low_rank_prior = bool(low_rank_prior)
        self.alpha, self.beta = float(alpha), float(beta)
        d = len(self.modes)
        std = (2.0 / self.in_features / int(rank)) ** (1.0 / (2 * d))
        self.factors = nn.ParameterList(nn.Parameter(torch.randn(n, int(rank), generator=generator) * std)
                                        for n in self.modes)
        self.log_lambda = nn.Parameter(torch.zeros(int(rank))) if self.low_rank_prior else torch.zeros(int(rank))
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    @property
    def ranks(self) -> tuple[int, ...]:
        return (int(self.factors[0].shape[1]),)

    def weight(self) -> torch.Tensor:
        return cp_full(list(self.factors)).reshape(self.in_features, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected inputs with {self.in_features} features, got {x.shape[-1]}")
        out = x @ self.weight()
        return out + self.bias if self.bias is not None else out

    def prior_parameters(self) -> list[nn.Parameter]:
        return list(self.factors) + ([self.log_lambda] if self.low_rank_prior else [])

    def neg_log_prior(self) -> torch.Tensor:
        lh = self.log_lambda if self.low_rank_prior else self.log_lambda.to(self.factors[0])
        return priors.cp_neg_log_prior(list(self.factors), lh, self.alpha, self.beta, hyper_prior=self.low_rank_prior)

    def slice_sizes(self) -> list[torch.Tensor]:
        return [torch.full(self.ranks, float(sum(self.modes)))]

    @torch.no_grad()
    def prune(self, eps: float, min_rank: int = 1) -> list[list[int]]:
        """Remove rank-1 terms ``r`` (column ``r`` of every ``A(k)``) whose ``lambda_hat_r`` passed the threshold."""
        if not self.low_rank_prior:
            raise ValueError("prune() needs low_rank_prior=True")
        remove = priors.pruning_mask(self.log_lambda.detach(), self.slice_sizes()[0], self.alpha, self.beta, eps,
                                     min_keep=min_rank)
        keep = (~remove).nonzero().flatten()
        if bool(remove.any()):
            for k in range(len(self.factors)):
                self.factors[k] = nn.Parameter(self.factors[k][:, keep].clone())
            self.log_lambda = nn.Parameter(self.log_lambda[keep].clone())
        return [remove.nonzero().flatten().tolist()]

    def num_weight_parameters(self) -> int:
        return sum(f.numel() for f in self.factors) + (self.bias.numel() if self.bias is not None else 0)

    def extra_repr(self) -> str:
        return f"in_modes={self.in_modes}, out_modes={self.out_modes}, rank={self.ranks[0]}"


def tensorized_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` for every tensorized layer of ``model`` (the ones owning a ``neg_log_prior``)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, (TTLinear, TTConv2d, TuckerLinear, CPLinear))]
