"""Mercer decomposition of zonal kernels on the sphere S^{d-1} and fits of the eigenvalue decay
(thesis ch. 4, eq. 4.9-4.11, section 4.8.2).

A kernel ``K(x, x') = f(<x, x'>)`` on the unit sphere decomposes as (4.9)
``f(t) = sum_k u_k N(d, k) P_k(t)`` with ``P_k`` the Legendre (Gegenbauer) polynomial of dimension d normalised
to ``P_k(1) = 1`` and ``N(d, k) = (2k + d - 2)(k + d - 3)! / (k! (d - 2)!)`` the number of spherical harmonics of
degree k; ``u_k`` is the eigenvalue of each degree-k harmonic. From the orthogonality relation of section 4.8.2::

    u_k = (omega_{d-2} / omega_{d-1}) * int_{-1}^{1} f(t) P_k(t) (1 - t^2)^{(d-3)/2} dt,
    omega_{d-2} / omega_{d-1} = Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)).

Two ways to evaluate it:

* :func:`mercer_coefficients_quadrature` -- Gauss-Jacobi quadrature with weight (1 - t^2)^{(d-3)/2}; accurate
  down to about 1e-16 * f(1) (float64), enough for polynomial decays (ReLU NTK, Laplace kernel).
* :func:`mercer_coefficients_taylor` -- for ``f(t) = sum_n a_n t^n`` uses the exact moment
  ``(omega_{d-2}/omega_{d-1}) int t^n P_k (1 - t^2)^{(d-3)/2} dt
  = Gamma(d/2)/sqrt(pi) 2^{-k} n!/(n-k)! Gamma((n-k+1)/2) / Gamma((n-k)/2 + k + d/2)`` (n >= k, n - k even;
  zero otherwise), obtained from Rodrigues' formula and k integrations by parts as in (4.38). With non-negative
  ``a_n`` no cancellation occurs, so exponentially small eigenvalues (binary-weight NTK, Gaussian kernels)
  come out accurate far below the float64 floor of quadrature.

The polynomial recurrence ``(k + d - 2) P_{k+1} = (2k + d - 2) t P_k - k P_{k-1}`` is stable on [-1, 1].
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, roots_jacobi

__all__ = ["harmonic_dimension", "legendre_polynomials", "mercer_coefficients_quadrature",
           "mercer_coefficients_taylor", "reconstruct_kernel", "fit_exponential_decay", "fit_polynomial_decay"]


def _check_dimension(d: int) -> None:
    if int(d) != d or d < 2:
        raise ValueError(f"d (the ambient dimension of the sphere S^(d-1)) must be an integer >= 2, got {d!r}")


def harmonic_dimension(d: int, k) -> np.ndarray:
    """``N(d, k)``, the number of linearly independent spherical harmonics of degree k on S^{d-1}."""
    _check_dimension(d)
    k = np.asarray(k, dtype=float)
    if d == 2:
        return np.where(k == 0, 1.0, 2.0)
    # (2k + d - 2) (k + d - 3)! / (k! (d - 2)!), in log form to stay finite for large k
    # an integer; the log form keeps it finite for large k and rint removes the round-off of exp/log
    return np.rint(np.exp(np.log(2 * k + d - 2) + gammaln(k + d - 2) - gammaln(k + 1) - gammaln(d - 1)))


def legendre_polynomials(k_max: int, t, d: int) -> np.ndarray:
    """``P_0 .. P_{k_max}`` of dimension d at ``t`` (normalised ``P_k(1) = 1``), shape (k_max + 1, len(t))."""
    _check_dimension(d)
    if k_max < 0:
        raise ValueError(f"k_max must be >= 0, got {k_max!r}")
    t = np.atleast_1d(np.asarray(t, dtype=float))
    p = np.zeros((k_max + 1, t.size))
    p[0] = 1.0
    if k_max >= 1:
        p[1] = t
    for k in range(1, k_max):
        p[k + 1] = ((2 * k + d - 2) * t * p[k] - k * p[k - 1]) / (k + d - 2)
    return p


def _sphere_ratio(d: int) -> float:
    """omega_{d-2} / omega_{d-1}: surface of S^{d-2} over surface of S^{d-1}."""
    return math.exp(gammaln(d / 2) - 0.5 * math.log(math.pi) - gammaln((d - 1) / 2))


def mercer_coefficients_quadrature(kernel, d: int, k_max: int, n_nodes: int = 4000) -> np.ndarray:
    """Eigenvalues ``u_0 .. u_{k_max}`` of a zonal kernel by Gauss-Jacobi quadrature.

    Parameters
    ----------
    kernel : callable
        ``f(t)`` for ``t`` in [-1, 1], vectorised.
    d : int
        Ambient dimension (sphere S^{d-1}), >= 2.
    k_max : int
        Highest degree.
    n_nodes : int, default 4000
        Quadrature nodes (>= 2000 recommended: the non-smooth kernels converge slowly at t = +-1).
    """
    _check_dimension(d)
    if n_nodes < k_max + 2:
        raise ValueError(f"n_nodes must exceed k_max + 1, got n_nodes={n_nodes}, k_max={k_max}")
    alpha = (d - 3) / 2
    nodes, weights = roots_jacobi(int(n_nodes), alpha, alpha)
    values = np.asarray(kernel(nodes), dtype=float)
    if values.shape != nodes.shape:
        raise ValueError("kernel must map an array of t to an array of the same shape")
    return _sphere_ratio(d) * legendre_polynomials(k_max, nodes, d) @ (weights * values)


def _log_moment(n: np.ndarray, k: int, d: int) -> np.ndarray:
    """log of (omega_{d-2}/omega_{d-1}) int t^n P_k(t) (1 - t^2)^{(d-3)/2} dt for n >= k, n - k even."""
    m = (n - k) / 2
    return (gammaln(d / 2) - 0.5 * math.log(math.pi) - k * math.log(2) + gammaln(n + 1) - gammaln(n - k + 1)
            + gammaln(m + 0.5) - gammaln(m + k + d / 2))


def mercer_coefficients_taylor(taylor_coefficients, d: int, k_max: int) -> np.ndarray:
    """Eigenvalues ``u_0 .. u_{k_max}`` of ``f(t) = sum_n a_n t^n`` from its Taylor coefficients, exactly.

    Parameters
    ----------
    taylor_coefficients : array_like
        ``a_0 .. a_{n_max}``; the series must have converged at n_max (the tail is dropped).
    d : int
        Ambient dimension (sphere S^{d-1}), >= 2.
    k_max : int
        Highest degree, <= n_max.
    """
    _check_dimension(d)
    a = np.asarray(taylor_coefficients, dtype=float)
    if a.ndim != 1 or k_max >= a.size:
        raise ValueError(f"need a 1-D array of more than k_max = {k_max} Taylor coefficients, got shape {a.shape}")
    n_all = np.arange(a.size)
    u = np.zeros(k_max + 1)
    for k in range(k_max + 1):
        n = n_all[k::2]
        u[k] = np.sum(a[n] * np.exp(_log_moment(n, k, d)))
    return u


def reconstruct_kernel(u, d: int, t) -> np.ndarray:
    """``sum_k u_k N(d, k) P_k(t)``, the kernel rebuilt from its eigenvalues (truncated series)."""
    u = np.asarray(u, dtype=float)
    k = np.arange(u.size)
    return (u * harmonic_dimension(d, k)) @ legendre_polynomials(u.size - 1, t, d)


def _linear_fit(x, y):
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1 - np.sum(residual ** 2) / total if total > 0 else 1.0
    return float(slope), float(intercept), float(r2)


def _positive(k, u):
    k = np.asarray(k, dtype=float)
    u = np.asarray(u, dtype=float)
    if k.shape != u.shape or k.size < 3:
        raise ValueError("k and u must have the same shape and at least 3 entries")
    if np.any(u <= 0):
        raise ValueError("eigenvalues must be > 0 to fit a decay (drop zero or round-off entries first)")
    return k, u


def fit_exponential_decay(k, u, with_power: bool = False) -> dict:
    """Least-squares fit ``log u_k = a - k log C`` (eq. 4.11, ``u_k ~ C^-k``), or with ``with_power`` the
    form of eq. 4.10, ``log u_k = a + p log k - k log C`` (``u_k ~ Poly(k) C^-k``).

    Returns
    -------
    dict
        ``rate`` (= log C, per unit of k), ``base`` (C), ``r2`` of the fit in log space; with ``with_power``
        also ``power`` (p).
    """
    k, u = _positive(k, u)
    if not with_power:
        slope, intercept, r2 = _linear_fit(k, np.log(u))
        return {"rate": -slope, "base": math.exp(-slope), "intercept": intercept, "r2": r2}
    if np.any(k <= 0):
        raise ValueError("k must be > 0 for a fit with a power of k")
    design = np.column_stack([np.ones_like(k), np.log(k), k])
    coef, *_ = np.linalg.lstsq(design, np.log(u), rcond=None)
    residual = np.log(u) - design @ coef
    total = np.sum((np.log(u) - np.log(u).mean()) ** 2)
    r2 = 1 - np.sum(residual ** 2) / total if total > 0 else 1.0
    return {"rate": -coef[2], "base": math.exp(-coef[2]), "power": coef[1], "intercept": coef[0], "r2": float(r2)}


def fit_polynomial_decay(k, u) -> dict:
    """Least-squares fit ``log u_k = a - p log k`` (``u_k ~ k^-p``, the ReLU NTK / Laplace kernel with p = d).

    Returns
    -------
    dict
        ``exponent`` (p), ``slope`` (-p, the log-log slope), ``r2`` of the fit.
    """
    k, u = _positive(k, u)
    if np.any(k <= 0):
        raise ValueError("k must be > 0 for a log-log fit")
    slope, intercept, r2 = _linear_fit(np.log(k), np.log(u))
    return {"exponent": -slope, "slope": slope, "intercept": intercept, "r2": r2}
