"""Analytic NTKs of the binary-weight (quasi) and ReLU networks, the comparison kernels, the empirical NTK
(thesis ch. 4, sections 4.3.2, 4.5 and Lemma 4.11).

Lemma 4.11: ``K(x, x') = ((c/d)<x, x'> + beta^2) Sigma0 + Sigma1`` with ``Sigma0 = E[sigma~'(nu) sigma~'(nu')]``,
``Sigma1 = E[sigma~(nu) sigma~(nu')]`` over the Gaussian pre-activations of the quasi network. Writing
``sigma~(nu) = E[relu(nu + s eps)]`` turns both into arc-cosine kernels of the *noisy* pre-activation
``u = nu + s eps``, whose variance is ``(c/d)(Var theta + 1 - Var theta) = c/d`` (unit inputs) and whose
correlation between two inputs is ``rho = Var(theta) t`` (the independent rounding noise does not correlate)::

    k0(rho) = (pi - arccos rho) / (2 pi)                            = P(u > 0, u' > 0)
    k1(rho) = (sqrt(1 - rho^2) + rho (pi - arccos rho)) / (2 pi)    = E[relu(u) relu(u')] / (c/d)
    K_BWNN(t) = ((c/d) t + beta^2) k0(Var(theta) t) + (c/d) k1(Var(theta) t)                      on the sphere

The real-weight ReLU NTK is the same expression with ``Var theta = 1`` (no rounding noise). The term of the
output bias ``b2`` (a constant ``beta^2``) is left out, as in (4.8). The thesis gives no closed form (it goes
through the spherical-harmonic series of sigma~); this one is derived in docs/theory/chapter4_ntk_bwnn.md and
checked against quadrature and the empirical NTK in tests/sw/test_ntk_kernels.py.

Comparison kernels (section 4.3.2, 4.5.2): Gaussian ``exp(-||x - x'||^2 / xi^2)``, Laplace
``exp(-||x - x'||_2 / s)`` (Euclidean norm; scikit-learn's ``laplacian_kernel`` uses the L1 norm) and the
random-scale Gaussian ``K_RGauss(x, x') = E_kappa[K_Gauss(kappa x, kappa x')]`` with ``kappa ~ chi_d``, which on
the sphere has the closed form ``(1 + 4 (1 - t) / xi^2)^(-d/2)`` (moment generating function of chi^2_d).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import gammaln

from .networks import BinaryWeightNet, sigma_tilde, sigma_tilde_grad

__all__ = ["arccos_kernel0", "arccos_kernel1", "ntk_bwnn", "ntk_relu", "ntk_bwnn_gram", "ntk_relu_gram",
           "gaussian_kernel", "laplace_kernel", "gaussian_on_sphere", "laplace_on_sphere",
           "random_scale_gaussian_on_sphere", "ntk_bwnn_taylor", "gaussian_taylor", "random_scale_gaussian_taylor",
           "empirical_ntk", "pairwise_distances", "median_distance"]


def _check_var_theta(var_theta: float) -> None:
    if not 0 < var_theta <= 1:
        raise ValueError(f"var_theta must be in (0, 1] (theta lies in [-1, 1]), got {var_theta!r}")


def arccos_kernel0(rho):
    """Degree-0 arc-cosine kernel ``(pi - arccos rho) / (2 pi)`` = P(u > 0, u' > 0) for unit-variance u, u'."""
    rho = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    return (np.pi - np.arccos(rho)) / (2 * np.pi)


def arccos_kernel1(rho):
    """Degree-1 arc-cosine kernel ``(sqrt(1 - rho^2) + rho (pi - arccos rho)) / (2 pi)`` = E[relu(u) relu(u')]."""
    rho = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    return (np.sqrt(1 - rho ** 2) + rho * (np.pi - np.arccos(rho))) / (2 * np.pi)


def ntk_bwnn(t, *, var_theta: float = 1 / 3, c: float = 1.0, d: int, beta: float = 0.1):
    """NTK (4.8) of the two-layer binary-weight network on the unit sphere, as a function of ``t = <x, x'>``.

    Parameters
    ----------
    t : array_like
        Cosine of the angle between the inputs, in [-1, 1].
    var_theta : float, default 1/3
        Variance of the initial buffer (1/3 for U[-1, 1]); ``1`` gives the real-weight ReLU NTK.
    c : float
        Layer scale of (4.2).
    d : int
        Input dimension.
    beta : float
        Bias scale of (4.2).
    """
    _check_var_theta(var_theta)
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d!r}")
    t = np.asarray(t, dtype=float)
    if np.any(np.abs(t) > 1 + 1e-12):
        raise ValueError("t must lie in [-1, 1] (inputs on the unit sphere)")
    rho = var_theta * t
    return (c / d * t + beta ** 2) * arccos_kernel0(rho) + c / d * arccos_kernel1(rho)


def ntk_relu(t, *, c: float = 1.0, d: int, beta: float = 0.1):
    """NTK of the same network with real Gaussian weights (``Var = 1``), on the unit sphere."""
    return ntk_bwnn(t, var_theta=1.0, c=c, d=d, beta=beta)


def ntk_bwnn_gram(x, y=None, *, var_theta: float = 1 / 3, c: float = 1.0, beta: float = 0.1):
    """NTK Gram matrix for inputs of any norm (the quasi network with the limit variance of Theorem 4.4).

    With norms ``a = ||x||``, ``b = ||x'||`` and cosine ``t``: ``((c/d)<x, x'> + beta^2) k0(Var(theta) t) +
    (c/d) a b k1(Var(theta) t)``; equal to :func:`ntk_bwnn` on the sphere.

    Parameters
    ----------
    x : array_like (N, d)
    y : array_like (M, d), optional (default: ``x``)

    Returns
    -------
    numpy.ndarray (N, M)
    """
    _check_var_theta(var_theta)
    x = np.asarray(x, dtype=float)
    y = x if y is None else np.asarray(y, dtype=float)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be 2-D with the same number of columns, got {x.shape} and {y.shape}")
    d = x.shape[1]
    gram = x @ y.T
    norms = np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1))
    cos = np.divide(gram, norms, out=np.zeros_like(gram), where=norms > 0)
    rho = var_theta * np.clip(cos, -1, 1)
    return (c / d * gram + beta ** 2) * arccos_kernel0(rho) + c / d * norms * arccos_kernel1(rho)


def ntk_relu_gram(x, y=None, *, c: float = 1.0, beta: float = 0.1):
    """Real-weight ReLU NTK Gram matrix (:func:`ntk_bwnn_gram` with ``var_theta = 1``)."""
    return ntk_bwnn_gram(x, y, var_theta=1.0, c=c, beta=beta)


def pairwise_distances(x, y=None):
    """Euclidean distances between the rows of ``x`` and ``y`` (N, M)."""
    x = np.asarray(x, dtype=float)
    y = x if y is None else np.asarray(y, dtype=float)
    sq = (x ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.maximum(sq, 0.0))


def median_distance(x) -> float:
    """Median of the pairwise Euclidean distances between distinct rows (the bandwidth unit of section 4.9.1)."""
    dist = pairwise_distances(x)
    upper = dist[np.triu_indices(len(dist), k=1)]
    if upper.size == 0:
        raise ValueError("need at least two rows to take a median distance")
    return float(np.median(upper))


def gaussian_kernel(x, y=None, *, xi: float):
    """Gaussian kernel ``exp(-||x - x'||^2 / xi^2)`` (section 4.3.2, gamma = 2, c = 1/xi)."""
    if xi <= 0:
        raise ValueError(f"xi must be > 0, got {xi!r}")
    return np.exp(-pairwise_distances(x, y) ** 2 / xi ** 2)


def laplace_kernel(x, y=None, *, s: float):
    """Laplace kernel ``exp(-||x - x'||_2 / s)`` (section 4.3.2, gamma = 1; Euclidean, not scikit-learn's L1)."""
    if s <= 0:
        raise ValueError(f"s must be > 0, got {s!r}")
    return np.exp(-pairwise_distances(x, y) / s)


def gaussian_on_sphere(t, *, xi: float):
    """Gaussian kernel of unit vectors as a function of ``t``: ``exp(-(2 - 2t) / xi^2)``."""
    if xi <= 0:
        raise ValueError(f"xi must be > 0, got {xi!r}")
    return np.exp(-(2 - 2 * np.asarray(t, dtype=float)) / xi ** 2)


def laplace_on_sphere(t, *, s: float):
    """Laplace kernel of unit vectors: ``exp(-sqrt(2 - 2t) / s)``."""
    if s <= 0:
        raise ValueError(f"s must be > 0, got {s!r}")
    return np.exp(-np.sqrt(np.maximum(2 - 2 * np.asarray(t, dtype=float), 0.0)) / s)


def random_scale_gaussian_on_sphere(t, *, xi: float, d: int):
    """``K_RGauss`` of section 4.5.2 on the sphere: ``E_kappa exp(-kappa^2 (2 - 2t)/xi^2) = (1 + 4(1 - t)/xi^2)^(-d/2)``
    for ``kappa ~ chi_d`` (so ``kappa^2 ~ chi^2_d`` with MGF ``(1 - 2u)^(-d/2)``)."""
    if xi <= 0 or d < 1:
        raise ValueError(f"xi must be > 0 and d >= 1, got xi={xi!r}, d={d!r}")
    return (1 + 4 * (1 - np.asarray(t, dtype=float)) / xi ** 2) ** (-d / 2)


def _arcsine_series(n_max: int) -> np.ndarray:
    """A_m = (2m)! / (4^m m!^2) for m = 0..n_max (computed by the ratio A_m = A_{m-1} (2m - 1)/(2m))."""
    a = np.ones(n_max + 1)
    for m in range(1, n_max + 1):
        a[m] = a[m - 1] * (2 * m - 1) / (2 * m)
    return a


def ntk_bwnn_taylor(n_max: int, *, var_theta: float = 1 / 3, c: float = 1.0, d: int, beta: float = 0.1) -> np.ndarray:
    """Taylor coefficients ``a_n`` of ``K_BWNN(t) = sum_n a_n t^n`` for n = 0..n_max (all >= 0).

    Uses ``k0(r) = 1/4 + arcsin(r)/(2 pi)`` and
    ``k1(r) = (1 + (pi/2) r + sum_{m>=1} A_{m-1} r^{2m} / (2m(2m-1)))/(2 pi)``
    with ``arcsin r = sum_m A_m r^{2m+1}/(2m+1)``; the ``sqrt(1 - r^2)`` and ``r arcsin r`` series are combined
    term by term so no cancellation occurs. Exact Mercer coefficients follow from
    :func:`ultratrain.sw.ntk.mercer.mercer_coefficients_taylor` far below the float64 floor of quadrature.
    """
    _check_var_theta(var_theta)
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max!r}")
    big = n_max + 2
    a_m = _arcsine_series(big)
    k0 = np.zeros(big + 1)
    k1 = np.zeros(big + 1)
    k0[0] = 0.25
    k1[0] = 1 / (2 * np.pi)
    k1[1] = 0.25
    for m in range(0, big // 2 + 1):
        if 2 * m + 1 <= big:
            k0[2 * m + 1] = a_m[m] / (2 * m + 1) / (2 * np.pi)
        if m >= 1 and 2 * m <= big:
            k1[2 * m] = a_m[m - 1] / (2 * m * (2 * m - 1)) / (2 * np.pi)
    powers = var_theta ** np.arange(big + 1, dtype=float)
    k0 *= powers
    k1 *= powers
    coeffs = beta ** 2 * k0 + c / d * k1
    coeffs[1:] += c / d * k0[:-1]
    return coeffs[:n_max + 1]


def gaussian_taylor(n_max: int, *, xi: float) -> np.ndarray:
    """Taylor coefficients of :func:`gaussian_on_sphere`: ``exp(-2/xi^2) (2/xi^2)^n / n!``."""
    if xi <= 0:
        raise ValueError(f"xi must be > 0, got {xi!r}")
    n = np.arange(n_max + 1)
    q = 2 / xi ** 2
    return np.exp(-q + n * np.log(q) - gammaln(n + 1))


def random_scale_gaussian_taylor(n_max: int, *, xi: float, d: int) -> np.ndarray:
    """Taylor coefficients of :func:`random_scale_gaussian_on_sphere`:
    ``(1 + 4/xi^2)^(-d/2) Gamma(n + d/2) / (Gamma(d/2) n!) q^n`` with ``q = (4/xi^2) / (1 + 4/xi^2)``."""
    if xi <= 0 or d < 1:
        raise ValueError(f"xi must be > 0 and d >= 1, got xi={xi!r}, d={d!r}")
    n = np.arange(n_max + 1)
    p = 4 / xi ** 2
    q = p / (1 + p)
    return np.exp(-d / 2 * math.log1p(p) + gammaln(n + d / 2) - gammaln(d / 2) - gammaln(n + 1) + n * math.log(q))


def empirical_ntk(net: BinaryWeightNet, x: torch.Tensor, y: torch.Tensor | None = None, *,
                  method: str = "factored") -> torch.Tensor:
    """Empirical NTK ``sum_p d y_bar(x)/d p * d y_bar(x')/d p`` of the quasi network (4.8) at its current parameters.

    The parameters are theta1, b1 and w2 (not b2, as in (4.8)); a real-weight network gives the ReLU NTK. The
    quasi network uses Theorem 4.4's limit variance.

    Parameters
    ----------
    net : BinaryWeightNet
        Network with ``output_dim == 1``.
    x, y : torch.Tensor
        Inputs (N, d) and (M, d); ``y`` defaults to ``x``.
    method : {"factored", "autograd"}
        ``"autograd"`` stacks per-input gradients (memory N x #parameters, for small widths);
        ``"factored"`` evaluates the same sum through the two-layer structure,
        ``(c/d1) <x1, x1'> G W G'^T / d2 + beta^2 G W G'^T / d2 + M M'^T / d2`` with ``G = sigma~'(nu)``,
        ``M = sigma~(nu)``, ``W = diag(w2^2)`` -- equal to autograd up to rounding, and cheap at large width.
    """
    if net.output_dim != 1:
        raise ValueError(f"empirical_ntk needs a network with output_dim == 1, got {net.output_dim}")
    if method not in ("factored", "autograd"):
        raise ValueError(f"method must be 'factored' or 'autograd', got {method!r}")
    y = x if y is None else y
    if method == "autograd":
        params = list(net.trainable_parameters().values())

        def jacobian(inputs):
            rows = []
            for row in inputs:
                out = net.quasi_forward(row[None, :])[0, 0]
                grads = torch.autograd.grad(out, params)
                rows.append(torch.cat([g.reshape(-1) for g in grads]))
            return torch.stack(rows)

        jx = jacobian(x)
        jy = jx if y is x else jacobian(y)
        return (jx @ jy.T).detach()

    with torch.no_grad():
        def parts(inputs):
            _, nu, s = net.quasi_forward(inputs, return_hidden=True)
            return net.project(inputs), sigma_tilde_grad(nu, s), sigma_tilde(nu, s)

        x1, gx, mx = parts(x)
        y1, gy, my = parts(y)
        w2sq = net.w2[:, 0] ** 2
        d1, d2 = net.projection_dim, net.hidden_dim
        gwg = (gx * w2sq) @ gy.T / d2
        return net.c / d1 * (x1 @ y1.T) * gwg + net.beta ** 2 * gwg + mx @ my.T / d2
