"""Sampling finite networks from infinite-width ones (Telgarsky's notes, sections 2.3-2.4).

Two infinite-width threshold networks with closed-form weight distributions:

* Proposition 2.8 (univariate): g(x) - g(0) = int_0^1 g'(b) 1[x >= b] db. Sample b ~ |g'| / Z with
  Z = int_0^1 |g'|, and output weights Z sgn(g'(b_j)) / m.
* Theorem 2.12 (Barron) for g(x) = exp(-pi ||x||^2), which is its own Fourier transform (the notes'
  convention g~(w) = int exp(-2 pi i w.x) g(x) dx), so theta = 0 and the parameter density is
  q(w, b) = -4 pi g~(w) sin(2 pi b) 1[0 <= b <= ||w||]. Sampling w ~ g~ = N(0, I / (2 pi)) and
  b ~ U[0, ||w||] gives the unbiased estimate g(x) - 1 = E[-4 pi ||w|| sin(2 pi b) 1[w.x >= b]].

Maurey's lemma (2.16/2.17): with V the per-sample function, E ||g - mean_j V_j||^2 = (E||V||^2 - ||g||^2)/m
<= E||V||^2 / m, so the L2(P) error falls like 1/sqrt(m). Here P is an empirical measure on evaluation
points, so both sides can be computed and the identity itself (not only the bound) can be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class ThresholdSample:
    """A sampled threshold network x -> sum_j weights_j 1[<w_j, x> >= b_j] (+ offset)."""

    directions: np.ndarray  # (m, d)
    biases: np.ndarray  # (m,)
    weights: np.ndarray  # (m,)
    offset: float = 0.0

    def __call__(self, x) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        return self.offset + (x @ self.directions.T >= self.biases).astype(float) @ self.weights


def _check_width(width) -> int:
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    return int(width)


def sample_univariate(g_prime: Callable[[np.ndarray], np.ndarray], g0: float, width: int,
                      rng: np.random.Generator, grid: int = 20001) -> ThresholdSample:
    """Proposition 2.8 sampling on [0, 1]: b_j ~ |g'|/Z (inverse CDF on a fine grid), a_j = Z sgn(g'(b_j))/m."""
    width = _check_width(width)
    t = np.linspace(0.0, 1.0, grid)
    dens = np.abs(np.asarray(g_prime(t), dtype=float))
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(t))])
    Z = float(cdf[-1])
    if Z <= 0:
        raise ValueError("g_prime vanishes on [0, 1]: nothing to sample")
    b = np.interp(rng.random(width) * Z, cdf, t)
    a = Z * np.sign(g_prime(b)) / width
    return ThresholdSample(np.ones((width, 1)), b, a, offset=g0)


def univariate_mass(g_prime: Callable[[np.ndarray], np.ndarray], grid: int = 20001) -> float:
    """Z = int_0^1 |g'(b)| db, the mass of Proposition 2.8's measure (Maurey bound Z^2 / m)."""
    t = np.linspace(0.0, 1.0, grid)
    dens = np.abs(np.asarray(g_prime(t), dtype=float))
    return float(np.sum((dens[1:] + dens[:-1]) / 2 * np.diff(t)))


def gaussian_bump(x) -> np.ndarray:
    """g(x) = exp(-pi ||x||^2); its Fourier transform (notes' convention) is exp(-pi ||w||^2)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    return np.exp(-math.pi * np.sum(x * x, axis=1))


def sample_gaussian_barron(dim: int, width: int, rng: np.random.Generator) -> ThresholdSample:
    """Theorem 2.12 sampling for exp(-pi ||x||^2): w ~ N(0, I/(2 pi)), b ~ U[0, ||w||],
    weight -4 pi ||w|| sin(2 pi b) / m, offset g(0) = 1."""
    if int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    width = _check_width(width)
    w = rng.normal(0.0, 1.0 / math.sqrt(2 * math.pi), size=(width, dim))
    norm = np.linalg.norm(w, axis=1)
    b = rng.random(width) * norm
    weights = -4 * math.pi * norm * np.sin(2 * math.pi * b) / width
    return ThresholdSample(w, b, weights, offset=1.0)


def gaussian_barron_second_moment(points: np.ndarray, rng: np.random.Generator, samples: int = 200000) -> float:
    """E ||V||^2_{L2(P)} for the single-sample estimator V(x) = -4 pi ||w|| sin(2 pi b) 1[w.x >= b],
    P uniform on ``points`` (Monte Carlo over (w, b), exact over P)."""
    points = np.atleast_2d(points)
    dim = points.shape[1]
    acc = 0.0
    done = 0
    while done < samples:
        n = min(20000, samples - done)
        w = rng.normal(0.0, 1.0 / math.sqrt(2 * math.pi), size=(n, dim))
        norm = np.linalg.norm(w, axis=1)
        b = rng.random(n) * norm
        coef2 = (4 * math.pi * norm * np.sin(2 * math.pi * b)) ** 2
        frac_active = (points @ w.T >= b).mean(axis=0)  # ||1[w.x >= b]||^2_{L2(P)}
        acc += float(np.sum(coef2 * frac_active))
        done += n
    return acc / samples


def gaussian_barron_mass(dim: int, rng: np.random.Generator, samples: int = 400000) -> float:
    """||mu||_1 = int int |q(w, b)| db dw = E_w[4 pi int_0^||w|| |sin(2 pi b)| db] (Monte Carlo over w).

    Theorem 2.12 bounds it by 2 int ||grad g~|| = 4 pi E||w|| for w ~ N(0, I / (2 pi)).
    """
    w = rng.normal(0.0, 1.0 / math.sqrt(2 * math.pi), size=(samples, dim))
    r = np.linalg.norm(w, axis=1)
    # int_0^r |sin 2 pi b| db = (floor(2r) * 2 + (1 - cos(2 pi frac)) ) / (2 pi) with frac the half-period remainder
    half = np.floor(2 * r)
    rem = 2 * r - half
    integral = (2 * half + (1 - np.cos(math.pi * rem))) / (2 * math.pi)
    return float(np.mean(4 * math.pi * integral))


def l2_error(f_hat: Callable[[np.ndarray], np.ndarray], f: Callable[[np.ndarray], np.ndarray], points) -> float:
    """||f_hat - f||_{L2(P)} with P uniform on ``points``."""
    diff = np.asarray(f_hat(points), dtype=float) - np.asarray(f(points), dtype=float)
    return float(np.sqrt(np.mean(diff ** 2)))


def uniform_ball(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniform in the unit ball of R^dim (the notes' support ||x|| <= 1)."""
    g = rng.normal(size=(n, dim))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g * rng.random((n, 1)) ** (1.0 / dim)
