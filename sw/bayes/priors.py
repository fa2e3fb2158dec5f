"""Low-rank priors of thesis chapter 2 and the rank-pruning rule of section 2.2.4.

* Tensor-train (eq. 2.8): ``G(k)(i, :, j) ~ N(0, (c_k lambda_i(k-1) lambda_j(k))^-1)`` with ``c_k = 1`` (the thesis
  never defines ``c_k``), ``lambda(0) = lambda(K) = 1`` and ``lambda_r(k) ~ Gamma(alpha, beta)``.
* Tucker (eq. 2.16-2.17) and CP (eq. 2.18-2.22) priors.
* Gamma is parametrized by shape and **rate** everywhere (the thesis mixes rate and scale: the CP prior (2.18)
  reads as a rate, the pruning threshold's ``+ log beta`` as a scale). Rank parameters are sampled as
  ``lambda_hat = log lambda`` (section 2.3.2), whose density is the log-Gamma
  ``p(lambda_hat) = beta^alpha / Gamma(alpha) * exp(alpha lambda_hat - beta exp(lambda_hat))`` (the Jacobian
  ``lambda`` is included). The CP section's inverse-Gamma variance form (2.21) is provided for comparison.
* Pruning (section 2.2.4, corrected for the rate): the conditional posterior of ``lambda_r`` given the weights is
  ``Gamma(alpha + n_r / 2, beta + s_r / 2)``, ``n_r`` the number of weights ``lambda_r`` governs and ``s_r`` their
  precision-weighted squared norm, so ``lambda_hat_r <= log(alpha + n_r / 2) - log(beta)`` with equality only
  when the slice is zero. A slice is removed once ``lambda_hat_r >= log(alpha + n_r/2) - log(beta) - eps``,
  i.e. (at the conditional optimum) once ``s_r <= 2 beta (exp(eps) - 1)``.

All negative log densities below are normalized (they include the constants) so tests can compare them with
``scipy.stats``; the potential U only needs them up to a constant.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["gaussian_neg_log_pdf", "gamma_neg_log_pdf", "log_gamma_neg_log_pdf", "inverse_gamma_neg_log_pdf",
           "pruning_threshold", "pruning_mask", "tt_neg_log_prior", "tucker_neg_log_prior", "cp_neg_log_prior",
           "cp_neg_log_prior_variance", "noise_precision_neg_log_prior", "TUCKER_CORE_PRECISIONS",
           "tucker_core_lambda_power"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def gaussian_neg_log_pdf(x: torch.Tensor, log_precision) -> torch.Tensor:
    """``-sum log N(x | 0, exp(log_precision)^-1)``; ``log_precision`` broadcasts against ``x``."""
    log_precision = torch.as_tensor(log_precision, dtype=x.dtype, device=x.device)
    return (0.5 * torch.exp(log_precision) * x ** 2 - 0.5 * log_precision + _HALF_LOG_2PI).sum()


def gamma_neg_log_pdf(x: torch.Tensor, shape: float, rate: float) -> torch.Tensor:
    """``-sum log Gamma(x | shape, rate)`` for ``x > 0``."""
    _check_positive("shape", shape)
    _check_positive("rate", rate)
    return (-(shape - 1) * torch.log(x) + rate * x + math.lgamma(shape) - shape * math.log(rate)).sum()


def log_gamma_neg_log_pdf(log_x: torch.Tensor, shape: float, rate: float) -> torch.Tensor:
    """``-sum log p(log_x)`` when ``exp(log_x) ~ Gamma(shape, rate)``: the log-Gamma prior of section 2.3.2.

    Also the prior (2.20) of the noise log-precision ``tau_hat = log tau`` (with the rate reading of (2.19)).
    """
    _check_positive("shape", shape)
    _check_positive("rate", rate)
    return (-shape * log_x + rate * torch.exp(log_x) + math.lgamma(shape) - shape * math.log(rate)).sum()


noise_precision_neg_log_prior = log_gamma_neg_log_pdf


def inverse_gamma_neg_log_pdf(v: torch.Tensor, shape: float, scale: float) -> torch.Tensor:
    """``-sum log InvGamma(v | shape, scale)`` (eq. 2.21): the law of ``1 / lambda`` for ``lambda ~ Gamma(shape, scale)``
    with ``scale`` read as the Gamma *rate*."""
    _check_positive("shape", shape)
    _check_positive("scale", scale)
    return ((shape + 1) * torch.log(v) + scale / v + math.lgamma(shape) - shape * math.log(scale)).sum()


def pruning_threshold(n_r, alpha: float, beta: float, eps: float) -> torch.Tensor:
    """``log(alpha + n_r / 2) - log(beta) - eps``: the largest value ``lambda_hat_r`` can reach, minus ``eps``."""
    _check_positive("alpha", alpha)
    _check_positive("beta", beta)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    n_r = torch.as_tensor(n_r, dtype=torch.float64)
    if (n_r < 0).any():
        raise ValueError("n_r (entries per slice) must be >= 0")
    return torch.log(alpha + n_r / 2) - math.log(beta) - eps


def pruning_mask(log_lambda: torch.Tensor, n_r, alpha: float, beta: float, eps: float,
                 min_keep: int = 1) -> torch.Tensor:
    """Boolean mask of the slices to delete: ``lambda_hat_r >= threshold_r`` (section 2.2.4).

    At least ``min_keep`` slices survive (a zero rank would cut the network): if the rule would remove more,
    the flagged slices with the smallest ``lambda_hat`` (the least shrunk) are kept.
    """
    if min_keep < 0:
        raise ValueError(f"min_keep must be >= 0, got {min_keep}")
    log_lambda = log_lambda.detach().to(torch.float64).flatten()
    n_r = torch.as_tensor(n_r, dtype=torch.float64).flatten()
    if n_r.numel() == 1:
        n_r = n_r.expand_as(log_lambda)
    if n_r.shape != log_lambda.shape:
        raise ValueError(f"n_r has {n_r.numel()} entries but log_lambda has {log_lambda.numel()}")
    remove = log_lambda >= pruning_threshold(n_r, alpha, beta, eps)
    surplus = min_keep - int((~remove).sum())
    if surplus > 0:
        flagged = remove.nonzero().flatten()
        rescue = flagged[torch.argsort(log_lambda[flagged])[:surplus]]
        remove[rescue] = False
    return remove


def tt_neg_log_prior(cores: Sequence[torch.Tensor], lambda_hats: Sequence[torch.Tensor], alpha: float, beta: float,
                     hyper_prior: bool = True) -> torch.Tensor:
    """``-log P(Theta)`` of eq. (2.8) for 3-way cores ``(R_{k-1}, S_k, R_k)``.

    ``lambda_hats`` has ``K + 1`` vectors: the boundary ones (length 1, value 0, i.e. ``lambda = 1``) and the
    ``K - 1`` interior log-precisions. With ``hyper_prior`` the log-Gamma terms of the interior ones are added.
    """
    if len(lambda_hats) != len(cores) + 1:
        raise ValueError(f"need len(cores) + 1 = {len(cores) + 1} lambda_hat vectors, got {len(lambda_hats)}")
    total = cores[0].new_zeros(())
    for k, core in enumerate(cores):
        lp = lambda_hats[k][:, None] + lambda_hats[k + 1][None, :]  # log of lambda_i(k-1) lambda_j(k)
        if lp.shape != (core.shape[0], core.shape[2]):
            raise ValueError(f"lambda_hats[{k}], lambda_hats[{k + 1}] do not match core {k} of shape "
                             f"{tuple(core.shape)}")
        squares = (core ** 2).sum(dim=1)
        total = total + (0.5 * torch.exp(lp) * squares - 0.5 * core.shape[1] * lp).sum() \
            + core.numel() * _HALF_LOG_2PI
    if hyper_prior:
        for lh in lambda_hats[1:-1]:
            total = total + log_gamma_neg_log_pdf(lh, alpha, beta)
    return total


TUCKER_CORE_PRECISIONS = ("product", "geometric")


def tucker_core_lambda_power(core_precision: str, order: int) -> float:
    """The power to which each mode's ``lambda_r`` enters a Tucker core entry's precision: 1 in (2.17)'s
    product, ``1 / order`` in the geometric variant (see :func:`tucker_neg_log_prior`)."""
    if core_precision not in TUCKER_CORE_PRECISIONS:
        raise ValueError(f"core_precision must be one of {TUCKER_CORE_PRECISIONS}, got {core_precision!r}")
    return 1.0 if core_precision == "product" else 1.0 / order


def tucker_neg_log_prior(core: torch.Tensor, factors: Sequence[torch.Tensor], lambda_hats: Sequence[torch.Tensor],
                         alpha: float, beta: float, core_scale: float = 1.0, hyper_prior: bool = True,
                         core_precision: str = "product") -> torch.Tensor:
    """``-log P(Theta)`` of eq. (2.16)-(2.17): ``U(k)[i, :] ~ N(0, Lambda(k)^-1)``,
    ``G[r_1..r_d] ~ N(0, core_scale * prod_k lambda_{r_k}(k)^-1)``, log-Gamma hyper-priors.

    ``core_precision="geometric"`` (not the thesis') gives core entries the precision
    ``(prod_k lambda_{r_k}(k))^(1/d) / core_scale`` instead: the product of (2.17) multiplies d learned
    precisions, and measured on Fashion-MNIST it drives FC1's core to an rms of 4e-4 within three epochs
    (docs/theory/chapter2_bayesian_tt.md)."""
    _check_positive("core_scale", core_scale)
    d = core.dim()
    power = tucker_core_lambda_power(core_precision, d)
    if len(factors) != d or len(lambda_hats) != d:
        raise ValueError(f"need {d} factors and {d} lambda_hat vectors for a core of order {d}")
    total = core.new_zeros(())
    core_lp = core.new_full((), -math.log(core_scale))
    for k in range(d):
        lh = lambda_hats[k]
        total = total + gaussian_neg_log_pdf(factors[k], lh[None, :])
        core_lp = core_lp + power * lh.reshape((1,) * k + (-1,) + (1,) * (d - k - 1))
    total = total + gaussian_neg_log_pdf(core, core_lp.expand_as(core))
    if hyper_prior:
        for lh in lambda_hats:
            total = total + log_gamma_neg_log_pdf(lh, alpha, beta)
    return total


def cp_neg_log_prior(factors: Sequence[torch.Tensor], log_lambda: torch.Tensor, alpha: float, beta: float,
                     hyper_prior: bool = True) -> torch.Tensor:
    """``-log P(A(1..d), lambda_hat)``: eq. (2.18) in log-precision form, each column ``A(k)[:, r]`` with
    precision ``lambda_r`` (the spurious inner ``sum_k`` of (2.18) removed)."""
    total = log_lambda.new_zeros(())
    for factor in factors:
        total = total + gaussian_neg_log_pdf(factor, log_lambda[None, :])
    if hyper_prior:
        total = total + log_gamma_neg_log_pdf(log_lambda, alpha, beta)
    return total


def cp_neg_log_prior_variance(factors: Sequence[torch.Tensor], variances: torch.Tensor, a: float,
                              b: float) -> torch.Tensor:
    """Eq. (2.22) without the noise term: the CP prior in the variance ``lambda_hat_r = 1 / lambda_r``, with the
    inverse-Gamma(a, b) prior (2.21) on it (normalized)::

        sum_r [ 1/2 sum_k ( |A(k)[:, r]|^2 / v_r + I_k log v_r + I_k log 2 pi ) + (a + 1) log v_r + b / v_r ]
            + R (log Gamma(a) - a log b)

    It equals :func:`cp_neg_log_prior` at ``log_lambda = -log v`` plus ``log v`` summed (the two Jacobians).
    """
    total = variances.new_zeros(())
    for factor in factors:
        total = total + 0.5 * ((factor ** 2).sum(dim=0) / variances + factor.shape[0] * torch.log(variances)).sum() \
            + factor.numel() * _HALF_LOG_2PI
    return total + inverse_gamma_neg_log_pdf(variances, a, b)
