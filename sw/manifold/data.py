"""Data on a low-dimensional manifold embedded in R^D (the experiment thesis chapter 6 lacks).

* A closed curve (intrinsic dimension d = 1) ``gamma(t) = r(t) (cos 2 pi t, sin 2 pi t)`` lifted to R^4 by a
  second harmonic, then mapped into R^D (D >= 4) by a fixed random matrix with orthonormal columns. The
  embedding is an isometry, so the curve, its length, curvature and the target function on it are the
  same for every D: only the ambient dimension changes.
* A 2-torus (d = 2) in R^4, ``(cos 2 pi s, sin 2 pi s, cos 2 pi t, sin 2 pi t) / sqrt 2``, mapped the same way.
* Targets in [0, 1] with heterogeneous smoothness, functions of the intrinsic coordinates: on the curve the
  "vary" function of section 5.9.1 (periodic: vary(0) = vary(1) = 0); on the torus the product
  ``vary(s) * vary(t)`` (also in [0, 1]: vary peaks at exactly 1).
* Samples: intrinsic coordinates uniform, labels ``f0 + sigma * eps``; errors are measured against f0 on
  an independent test sample (random design).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ultratrain.sw.parallel.targets import vary

__all__ = ["MANIFOLDS", "ManifoldData", "embedding_matrix", "sample_manifold"]

MANIFOLDS = ("curve", "torus")


def embedding_matrix(ambient_dim: int, intrinsic_ambient: int = 4, seed: int = 1234) -> np.ndarray:
    """A (intrinsic_ambient, D) matrix with orthonormal rows: an isometric map of R^4 into R^D."""
    if int(ambient_dim) != ambient_dim or ambient_dim < intrinsic_ambient:
        raise ValueError(f"ambient_dim must be an integer >= {intrinsic_ambient}, got {ambient_dim!r}")
    rng = np.random.default_rng(seed + int(ambient_dim))
    q, _ = np.linalg.qr(rng.standard_normal((int(ambient_dim), intrinsic_ambient)))
    return q.T


def _curve(t: np.ndarray) -> np.ndarray:
    # a closed curve in R^4 with varying curvature; length ~ 2 pi, coordinates within [-1, 1]
    return np.stack([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t),
                     0.5 * np.cos(4 * np.pi * t), 0.5 * np.sin(4 * np.pi * t)], axis=1) / np.sqrt(1.25)


def _torus(st: np.ndarray) -> np.ndarray:
    s, t = st[:, 0], st[:, 1]
    return np.stack([np.cos(2 * np.pi * s), np.sin(2 * np.pi * s),
                     np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], axis=1) / np.sqrt(2.0)


@dataclass(frozen=True)
class ManifoldData:
    """Samples ``x`` in R^D on the manifold, clean ``f0`` and noisy ``y``, intrinsic coordinates ``coords``."""

    x: np.ndarray
    f0: np.ndarray
    y: np.ndarray
    coords: np.ndarray
    manifold: str
    ambient_dim: int
    sigma: float


def target_on_manifold(manifold: str, coords: np.ndarray) -> np.ndarray:
    """The target f0 in [0, 1] as a function of the intrinsic coordinates."""
    if manifold == "curve":
        return vary(coords[:, 0])
    if manifold == "torus":
        # vary peaks at exactly 1 (x = 0.01), so the product already spans [0, 1]; the chapter assumes
        # f0 in [0, 1] and both estimators clip to it, so any rescaling up would put an error floor in
        return vary(coords[:, 0]) * vary(coords[:, 1])
    raise ValueError(f"manifold must be one of {MANIFOLDS}, got {manifold!r}")


def sample_manifold(manifold: str, n: int, ambient_dim: int, seed: int, sigma: float = 0.1) -> ManifoldData:
    """Draw ``n`` labelled points on ``manifold`` embedded isometrically in R^ambient_dim.

    Parameters
    ----------
    manifold : {"curve", "torus"}
    n : int
    ambient_dim : int
        D >= 4; the same curve/torus for every D, rotated into R^D.
    seed : int
        Seed of the sample (the embedding depends on D only).
    sigma : float
        Label noise standard deviation.
    """
    if manifold not in MANIFOLDS:
        raise ValueError(f"manifold must be one of {MANIFOLDS}, got {manifold!r}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if sigma < 0:
        raise ValueError(f"sigma must be non-negative, got {sigma}")
    rng = np.random.default_rng(seed)
    intrinsic = 1 if manifold == "curve" else 2
    coords = rng.uniform(0.0, 1.0, size=(int(n), intrinsic))
    points = _curve(coords[:, 0]) if manifold == "curve" else _torus(coords)
    x = points @ embedding_matrix(ambient_dim)
    f0 = target_on_manifold(manifold, coords)
    y = f0 + sigma * rng.standard_normal(int(n))
    return ManifoldData(x=x, f0=f0, y=y, coords=coords, manifold=manifold, ambient_dim=int(ambient_dim),
                        sigma=float(sigma))
