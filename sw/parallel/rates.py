"""Empirical convergence rates: least-squares slope of log MSE against log n (Fig. 5.3(h)(i)).

Reference rates for BV(m) in 1-D (thesis section 5.3.2): minimax ``n^(-(2m+2)/(2m+3))`` and best linear
``n^(-(2m+1)/(2m+2))``; for m = 1 these are the ``n^(-4/5)`` and ``n^(-3/4)`` of Fig. 5.3(i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RateFit", "fit_rate", "minimax_rate_bv", "linear_minimax_rate_bv", "trimmed_mean"]


@dataclass(frozen=True)
class RateFit:
    """``MSE ~ C n^slope``: slope, log-intercept and the slope's standard error (nan for 2 points)."""

    slope: float
    intercept: float
    slope_stderr: float


def fit_rate(ns, mses) -> RateFit:
    """Least-squares fit of ``log mse = intercept + slope * log n``.

    Parameters
    ----------
    ns, mses : array_like
        Sample sizes (>= 2 distinct) and the positive errors measured at them.
    """
    ns = np.asarray(ns, dtype=float)
    mses = np.asarray(mses, dtype=float)
    if ns.shape != mses.shape or ns.ndim != 1:
        raise ValueError(f"ns and mses must be 1-D of equal length, got {ns.shape} and {mses.shape}")
    if np.unique(ns).size < 2:
        raise ValueError("ns must hold at least two distinct sample sizes")
    if np.any(ns <= 0) or np.any(mses <= 0):
        raise ValueError("ns and mses must be positive")
    design = np.column_stack([np.ones_like(ns), np.log(ns)])
    coef, *_ = np.linalg.lstsq(design, np.log(mses), rcond=None)
    residual = np.log(mses) - design @ coef
    dof = ns.size - 2
    if dof > 0:
        cov = np.sum(residual**2) / dof * np.linalg.inv(design.T @ design)
        stderr = float(np.sqrt(cov[1, 1]))
    else:
        stderr = float("nan")
    return RateFit(slope=float(coef[1]), intercept=float(coef[0]), slope_stderr=stderr)


def minimax_rate_bv(m: int) -> float:
    """Exponent of the minimax MSE rate of BV(m) in 1-D: ``-(2m+2)/(2m+3)``."""
    return -(2 * m + 2) / (2 * m + 3)


def linear_minimax_rate_bv(m: int) -> float:
    """Exponent of the best MSE rate of linear smoothers on BV(m) in 1-D: ``-(2m+1)/(2m+2)``."""
    return -(2 * m + 1) / (2 * m + 2)


def trimmed_mean(values, factor: float = 1.5) -> float:
    """Mean after dropping runs above ``factor`` times the mean (the outlier rule of section 5.9.3)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("values must be non-empty")
    kept = values[values <= factor * values.mean()]
    return float(kept.mean()) if kept.size else float(values.mean())
