"""Degrees of freedom of a fitted regression (thesis section 5.9.3, eqs. (5.31)-(5.32), Prop. 5.20).

Definition (Tibshirani 2015), eq. (5.31): ``2 sigma^2 df = E||y' - yhat||^2 - E||y - yhat||^2`` with y' an
independent copy of the labels. Sampling it directly carries the full noise ``||eps||^2`` twice; eq. (5.32)
subtracts a control variate with the same noise and known mean:

    2 sigma^2 df_hat = ||f0 - yhat||^2 - ||y - yhat||^2 + ||y - c||^2 - ||f0 - c||^2,

with c the mean of the target f0 over its domain (any constant gives the same expectation,
``E||y - c||^2 - ||f0 - c||^2 = n sigma^2``); its expectation over data sets is (5.31) (Prop. 5.20).
A constant predictor ``yhat = c`` gets exactly df_hat = 0.

Algebraically (5.32) is ``<yhat - c, eps> / sigma^2``; for a linear smoother S its variance is
``||S f0 - c||^2 / sigma^2 + 2 tr(S^2)``, while (5.31) sampled directly carries ``||eps'||^2 - ||eps||^2``
(spread ~ sqrt(n)) plus the bias term. So (5.32) wins where the thesis needs it, at small df (fits near a
constant), and can lose at large df on a high signal-to-noise target (tests/sw/test_parallel_core.py).

Also here: the covariance formula ``df = sum_i Cov(yhat_i, y_i) / sigma^2`` over repeated data sets, and the
isotonic denoising of the DoF-vs-lambda curve the thesis applies for small lambda (section 5.9.4).
"""

from __future__ import annotations

import numpy as np

__all__ = ["dof_control_variate", "dof_independent_copy", "dof_covariance", "isotonic_in_lambda"]


def _as_matching(*arrays):
    out = [np.asarray(a, dtype=float) for a in arrays]
    try:
        return np.broadcast_arrays(*out)
    except ValueError:
        raise ValueError(f"arrays must broadcast to one shape, got {[b.shape for b in out]}") from None


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return sigma


def dof_control_variate(y, y_hat, f0, sigma: float, center: float | None = None) -> np.ndarray:
    """Eq. (5.32): the DoF estimate of one fit (or of each row of a batch of fits).

    Parameters
    ----------
    y : array_like, shape (..., n)
        Noisy labels the fit was trained on.
    y_hat : array_like, shape (..., n)
        Fitted values at the design points.
    f0 : array_like, shape (..., n)
        Clean target values.
    sigma : float
        Noise standard deviation.
    center : float, optional
        The constant c (mean of f0 over its domain); default: the mean of ``f0`` over the design points.

    Returns
    -------
    numpy.ndarray
        df_hat per fit (shape ``y.shape[:-1]``); average over data sets to estimate df.
    """
    y, y_hat, f0 = _as_matching(y, y_hat, f0)
    sigma = _check_sigma(sigma)
    c = np.mean(f0, axis=-1, keepdims=True) if center is None else float(center)
    total = (np.sum((f0 - y_hat) ** 2, axis=-1) - np.sum((y - y_hat) ** 2, axis=-1)
             + np.sum((y - c) ** 2, axis=-1) - np.sum((f0 - c) ** 2, axis=-1))
    return total / (2 * sigma**2)


def dof_independent_copy(y, y_hat, y_prime, sigma: float) -> np.ndarray:
    """Eq. (5.31) sampled directly with an independent copy ``y_prime`` of the labels (noisier)."""
    y, y_hat, y_prime = _as_matching(y, y_hat, y_prime)
    sigma = _check_sigma(sigma)
    return (np.sum((y_prime - y_hat) ** 2, axis=-1) - np.sum((y - y_hat) ** 2, axis=-1)) / (2 * sigma**2)


def dof_covariance(ys, y_hats, sigma: float) -> float:
    """Covariance formula ``sum_i Cov(yhat_i, y_i) / sigma^2`` from R repeated data sets, shape (R, n)."""
    ys, y_hats = _as_matching(ys, y_hats)
    sigma = _check_sigma(sigma)
    if ys.ndim != 2 or ys.shape[0] < 2:
        raise ValueError(f"ys must have shape (R >= 2, n), got {ys.shape}")
    centered_y = ys - ys.mean(axis=0)
    centered_fit = y_hats - y_hats.mean(axis=0)
    return float(np.sum(centered_y * centered_fit) / (ys.shape[0] - 1) / sigma**2)


def isotonic_in_lambda(lambdas, dofs) -> np.ndarray:
    """DoF curve made non-increasing in lambda by isotonic regression (thesis section 5.9.4)."""
    from sklearn.isotonic import IsotonicRegression

    lambdas, dofs = _as_matching(lambdas, dofs)
    if lambdas.ndim != 1:
        raise ValueError("lambdas and dofs must be 1-D")
    return IsotonicRegression(increasing=False).fit_transform(lambdas, dofs)
