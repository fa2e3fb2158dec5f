"""Exact piecewise-affine calculus for univariate ReLU networks (Telgarsky's notes, section 4.2).

Definition 4.8 counts the affine pieces N_A(f) of a univariate function; Lemmas 4.9 and 4.11 bound
N_A of ReLU networks. Sampling a network on a grid can miss or invent pieces, so this module propagates
the network symbolically: every neuron is kept as a continuous piecewise-affine function on a common
sorted knot set, and each ReLU inserts the exact zero crossings of its input. With ``exact=True`` the
arithmetic runs on :class:`fractions.Fraction`, so piece counts of the triangle map are exact integers
rather than float comparisons.

The network format used throughout :mod:`ultratrain.sw.telgarsky` is a list of ``(W, b)`` pairs, each
hidden layer followed by a ReLU and the last layer affine: ``W`` has shape (fan_out, fan_in).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

Layer = tuple[np.ndarray, np.ndarray]


def _as_exact(array) -> np.ndarray:
    """Copy of ``array`` as an object array of Fractions (exact from float64 bit patterns)."""
    arr = np.asarray(array)
    out = np.empty(arr.shape, dtype=object)
    for idx, value in np.ndenumerate(arr):
        out[idx] = value if isinstance(value, Fraction) else Fraction(value)
    return out


@dataclass
class PiecewiseAffine:
    """Continuous piecewise-affine functions on ``[knots[0], knots[-1]]``, several at once.

    Attributes
    ----------
    knots : ndarray, shape (K,)
        Strictly increasing breakpoint candidates (a superset of the true breakpoints).
    values : ndarray, shape (K, C)
        Value of each of the C functions at each knot; affine in between.
    """

    knots: np.ndarray
    values: np.ndarray

    def __post_init__(self):
        self.values = np.asarray(self.values)
        if self.values.ndim == 1:
            self.values = self.values[:, None]
        if self.knots.ndim != 1 or len(self.knots) < 2:
            raise ValueError("knots must be a 1-D array with at least two entries")
        if self.values.shape[0] != len(self.knots):
            raise ValueError(f"values has {self.values.shape[0]} rows for {len(self.knots)} knots")

    @property
    def exact(self) -> bool:
        return self.knots.dtype == object

    def __call__(self, x) -> np.ndarray:
        """Evaluate at points ``x`` (float), shape (len(x), C)."""
        x = np.asarray(x, dtype=float)
        knots = self.knots.astype(float)
        vals = self.values.astype(float)
        return np.stack([np.interp(x, knots, vals[:, c]) for c in range(vals.shape[1])], axis=1)

    def slopes(self) -> np.ndarray:
        """Slope of each function on each knot interval, shape (K - 1, C)."""
        dx = np.diff(self.knots)
        return np.diff(self.values, axis=0) / dx[:, None]

    def count_pieces(self, channel: int = 0, rtol: float = 1e-9) -> int:
        """N_A restricted to the knot interval: the number of maximal affine pieces of one function.

        Exact (Fraction) data is compared exactly; float data with a relative tolerance on slopes.
        """
        s = self.slopes()[:, channel]
        if self.exact:
            changes = sum(1 for a, b in zip(s[:-1], s[1:]) if a != b)
        else:
            s = s.astype(float)
            scale = max(1.0, float(np.max(np.abs(s)))) if len(s) else 1.0
            changes = int(np.sum(np.abs(np.diff(s)) > rtol * scale))
        return 1 + changes

    def breakpoints(self, channel: int = 0, rtol: float = 1e-9) -> np.ndarray:
        """Interior knots where the slope of ``channel`` changes."""
        s = self.slopes()[:, channel]
        if self.exact:
            keep = np.array([a != b for a, b in zip(s[:-1], s[1:])], dtype=bool)
        else:
            s = s.astype(float)
            scale = max(1.0, float(np.max(np.abs(s))))
            keep = np.abs(np.diff(s)) > rtol * scale
        return self.knots[1:-1][keep]

    def affine(self, W, b) -> "PiecewiseAffine":
        """The functions ``W @ f(x) + b`` (W shape (C_out, C), b shape (C_out,))."""
        W = np.asarray(W)
        b = np.asarray(b)
        if W.ndim != 2 or W.shape[1] != self.values.shape[1]:
            raise ValueError(f"W must have shape (fan_out, {self.values.shape[1]}), got {W.shape}")
        if b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape ({W.shape[0]},), got {b.shape}")
        if self.exact:
            W, b = _as_exact(W), _as_exact(b)
        return PiecewiseAffine(self.knots, self.values @ W.T + b[None, :])

    def relu(self) -> "PiecewiseAffine":
        """Elementwise ReLU, inserting every zero crossing as a new knot (exact in Fraction mode)."""
        v0, v1 = self.values[:-1], self.values[1:]
        x0, x1 = self.knots[:-1], self.knots[1:]
        cross = (v0 * v1) < 0  # a strict sign change inside the interval
        new = []
        for k, c in zip(*np.nonzero(cross)):
            t = v0[k, c] / (v0[k, c] - v1[k, c])
            new.append(x0[k] + (x1[k] - x0[k]) * t)
        knots = self.knots
        if new:
            merged = np.concatenate([self.knots, np.array(new, dtype=self.knots.dtype)])
            knots = np.array(sorted(set(merged.tolist())), dtype=self.knots.dtype)
        vals = self.at_knots(knots)
        zero = Fraction(0) if self.exact else 0.0
        out = np.where(vals > zero, vals, zero)
        if self.exact:
            out = out.astype(object)
        return PiecewiseAffine(knots, out)

    def at_knots(self, points: np.ndarray) -> np.ndarray:
        """Values at arbitrary points inside the interval, computed in this object's arithmetic."""
        idx = np.searchsorted(self.knots, points, side="right") - 1
        idx = np.clip(idx, 0, len(self.knots) - 2)
        x0, x1 = self.knots[idx], self.knots[idx + 1]
        t = (points - x0) / (x1 - x0)
        v0, v1 = self.values[idx], self.values[idx + 1]
        return v0 + (v1 - v0) * t[:, None]

    def simplify(self, rtol: float = 1e-12) -> "PiecewiseAffine":
        """Drop knots where no function changes slope (keeps the two end knots)."""
        s = self.slopes()
        if self.exact:
            keep_mid = np.array([any(a != b for a, b in zip(r0, r1)) for r0, r1 in zip(s[:-1], s[1:])],
                                dtype=bool)
        else:
            s = s.astype(float)
            scale = max(1.0, float(np.max(np.abs(s))))
            keep_mid = np.any(np.abs(np.diff(s, axis=0)) > rtol * scale, axis=1)
        keep = np.concatenate([[True], keep_mid, [True]])
        return PiecewiseAffine(self.knots[keep], self.values[keep])


def identity_on(lo, hi, exact: bool = False) -> PiecewiseAffine:
    """The input x -> x on [lo, hi] as a one-channel piecewise-affine function."""
    if not hi > lo:
        raise ValueError(f"need lo < hi, got lo={lo}, hi={hi}")
    if exact:
        knots = _as_exact([Fraction(lo), Fraction(hi)])
    else:
        knots = np.array([float(lo), float(hi)])
    return PiecewiseAffine(knots, knots.copy()[:, None])


def propagate(layers: Sequence[Layer], lo=0.0, hi=1.0, exact: bool = False) -> PiecewiseAffine:
    """Exact piecewise-affine form of a univariate ReLU network on [lo, hi].

    Parameters
    ----------
    layers : sequence of (W, b)
        Hidden layers are followed by a ReLU, the last layer is affine. The first W has one column.
    lo, hi : float or Fraction
        The interval.
    exact : bool
        Use Fraction arithmetic (weights are converted exactly from their float64 values).

    Returns
    -------
    PiecewiseAffine
        The network output (one channel per output unit).
    """
    if len(layers) == 0:
        raise ValueError("layers must contain at least one (W, b) pair")
    f = identity_on(lo, hi, exact=exact)
    for i, (W, b) in enumerate(layers):
        f = f.affine(W, b)
        if i < len(layers) - 1:
            f = f.relu()
    return f


def propagate_layerwise(layers: Sequence[Layer], lo=0.0, hi=1.0, exact: bool = False) -> list[PiecewiseAffine]:
    """Like :func:`propagate` but return the post-ReLU activations of every hidden layer, then the output."""
    f = identity_on(lo, hi, exact=exact)
    outs = []
    for i, (W, b) in enumerate(layers):
        f = f.affine(W, b)
        if i < len(layers) - 1:
            f = f.relu()
        outs.append(f)
    return outs


def evaluate(layers: Sequence[Layer], x) -> np.ndarray:
    """Float evaluation of a ReLU network in the ``(W, b)`` format at inputs ``x`` (shape (n, fan_in) or (n,))."""
    h = np.asarray(x, dtype=float)
    if h.ndim == 1:
        h = h[:, None]
    for i, (W, b) in enumerate(layers):
        h = h @ np.asarray(W, dtype=float).T + np.asarray(b, dtype=float)
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def l1_distance(f: PiecewiseAffine, g: PiecewiseAffine, channel_f: int = 0, channel_g: int = 0) -> float:
    """Exact integral of |f - g| over the common interval (both piecewise affine).

    The difference is refined at the union of knots and at its own zero crossings, after which
    |f - g| is affine on every interval and the trapezoid rule is exact.
    """
    if f.exact != g.exact:
        raise ValueError("f and g must both be exact or both be float")
    lo, hi = f.knots[0], f.knots[-1]
    if g.knots[0] != lo or g.knots[-1] != hi:
        raise ValueError("f and g must live on the same interval")
    knots = np.array(sorted(set(f.knots.tolist()) | set(g.knots.tolist())), dtype=f.knots.dtype)
    diff = f.at_knots(knots)[:, channel_f] - g.at_knots(knots)[:, channel_g]
    h = PiecewiseAffine(knots, diff[:, None]).relu()
    h_neg = PiecewiseAffine(knots, -diff[:, None]).relu()
    total = 0
    for part in (h, h_neg):
        dx = np.diff(part.knots)
        v = part.values[:, 0]
        total = total + np.sum(dx * (v[:-1] + v[1:]) / 2)
    return float(total)


def affine_piece_bound(widths: Sequence[int]) -> tuple[int, float]:
    """Lemma 4.9 bounds on N_A for a network with hidden widths (m_1, ..., m_L).

    Returns ``(2^L prod m_j, (2 m / L)^L)`` with ``m = sum m_j``; the first is the layer-wise bound
    of the lemma's proof, the second its AM-GM relaxation.
    """
    widths = list(widths)
    if not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be positive integers, got {widths}")
    L = len(widths)
    return int(2 ** L * np.prod(widths)), float((2 * sum(widths) / L) ** L)
