"""Target functions and data of thesis section 5.9.1 (paper 002, appendix H.1).

* ``cardinal_bspline(x, m)``: the cardinal B-spline M_m of eq. (5.2), supported on [0, m+1].
  The thesis sums j = 1..m+1; that drops the j = 0 term (x)_+^m and gives a function that is not
  compactly supported.  We sum j = 0..m+1 (the textbook definition, see the theory digest erratum).
* ``doppler(x) = sin(4 / (x + 0.01)) + 1.5``, noise sigma 0.4.
* ``vary(x)``: four first-order plus four third-order B-spline bumps of growing width, noise sigma 0.1.
* ``make_dataset``: the fixed design x_i = (i - 1) / (n - 1) on [0, 1] with i.i.d. Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb, factorial
from typing import Callable

import numpy as np

__all__ = ["cardinal_bspline", "doppler", "vary", "TARGETS", "NOISE_SIGMA", "Dataset", "make_dataset"]


def cardinal_bspline(x, m: int) -> np.ndarray:
    """Cardinal B-spline of order ``m`` (degree m), eq. (5.2) with the j = 0 term restored.

    Parameters
    ----------
    x : array_like
        Evaluation points.
    m : int
        Order, ``m >= 0``; M_m is a piecewise polynomial of degree m supported on [0, m + 1].

    Returns
    -------
    numpy.ndarray
        M_m(x), same shape as ``x``.
    """
    if int(m) != m or m < 0:
        raise ValueError(f"m must be a non-negative integer, got {m!r}")
    m = int(m)
    x = np.asarray(x, dtype=float)
    # M_m(x) = M_m(m + 1 - x): evaluate the truncated-power sum on the left half only. On the right half
    # the alternating sum of large powers cancels to ~1e-14 (negative round-off at and beyond x = m + 1).
    # M_0 is a step, continuous nowhere to reflect: keep its half-open (0, 1] as the sum defines it.
    t = np.where(x > (m + 1) / 2, m + 1 - x, x) if m >= 1 else x
    total = np.zeros_like(t)
    for j in range(m + 2):
        shifted = np.maximum(t - j, 0.0)
        # (x - j)_+^0 is the Heaviside step; 0**0 would give 1 left of the knot
        power = (shifted > 0).astype(float) if m == 0 else shifted**m
        total += (-1) ** j * comb(m + 1, j) * power
    return total / factorial(m)


def doppler(x) -> np.ndarray:
    """Doppler function of section 5.9.1: ``sin(4 / (x + 0.01)) + 1.5``."""
    x = np.asarray(x, dtype=float)
    return np.sin(4.0 / (x + 0.01)) + 1.5


_VARY_TERMS = (  # (order, shift, scale): M_order((x - shift) / scale)
    (1, 0.00, 0.01), (1, 0.02, 0.02), (1, 0.06, 0.03), (1, 0.12, 0.04),
    (3, 0.20, 0.02), (3, 0.28, 0.04), (3, 0.44, 0.06), (3, 0.68, 0.08),
)


def vary(x) -> np.ndarray:
    """The "vary" function of section 5.9.1: piecewise linear then piecewise cubic bumps."""
    x = np.asarray(x, dtype=float)
    return sum(cardinal_bspline((x - shift) / scale, order) for order, shift, scale in _VARY_TERMS)


TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"doppler": doppler, "vary": vary}
NOISE_SIGMA: dict[str, float] = {"doppler": 0.4, "vary": 0.1}


@dataclass(frozen=True)
class Dataset:
    """Fixed-design regression data: inputs ``x``, clean values ``f0``, noisy labels ``y``."""

    x: np.ndarray
    f0: np.ndarray
    y: np.ndarray
    sigma: float
    name: str


def make_dataset(name: str, n: int, seed: int, sigma: float | None = None) -> Dataset:
    """Sample ``y_i = f0(x_i) + sigma * eps_i`` on the uniform grid of ``n`` points in [0, 1].

    Parameters
    ----------
    name : {"doppler", "vary"}
        Target function.
    n : int
        Number of samples, at least 8.
    seed : int
        Seed of the noise.
    sigma : float, optional
        Noise standard deviation; default is the thesis value (0.4 Doppler, 0.1 vary).
    """
    if name not in TARGETS:
        raise ValueError(f"name must be one of {sorted(TARGETS)}, got {name!r}")
    if int(n) != n or n < 8:
        raise ValueError(f"n must be an integer >= 8, got {n!r}")
    sigma = NOISE_SIGMA[name] if sigma is None else float(sigma)
    if sigma < 0:
        raise ValueError(f"sigma must be non-negative, got {sigma!r}")
    x = np.linspace(0.0, 1.0, int(n))
    f0 = TARGETS[name](x)
    rng = np.random.default_rng(seed)
    y = f0 + sigma * rng.standard_normal(int(n))
    return Dataset(x=x, f0=f0, y=y, sigma=sigma, name=name)
