"""Explicit ReLU constructions of Telgarsky's notes, chapters 2 and 4, as weight matrices.

Networks use the ``(W, b)`` list format of :mod:`ultratrain.sw.telgarsky.piecewise` (hidden layers
followed by ReLU, last layer affine), so they can be evaluated with floats or propagated exactly.

Implemented:

* triangle map Delta(x) = 2 relu(x) - 4 relu(x - 1/2) + 2 relu(x - 1) (section 4.1) and its
  compositions Delta^L (L hidden layers of width 3; Delta^L has exactly 2^L affine pieces on [0, 1]);
* parity on {-1, +1}^d, d = 2^L, with the corrected formula prod_i x_i = 1 - 2 Delta^L((d + sum_i x_i)/(2d))
  (the notes' item 2 of section 4.1 writes Delta^(L-1) without the affine correction, which is wrong);
* squaring h_i(x) = x - sum_{j<=i} Delta^j(x) / 4^j (Theorem 4.2) with sup error exactly 4^-(i+1), and
  approximate products by polarization (Corollary 4.3; its claim g_i(x, 0) = 0 fails for the notes'
  formula, a zero-preserving variant is provided);
* the univariate threshold network of Proposition 2.1, the 3-layer box network of Theorem 2.3 (with the
  grid k = ceil(rho sqrt(d) / eps); the proof's k = ceil(rho / (eps sqrt d)) does not give error eps),
  and a constructive version of Theorem 2.5 (exponential features fitted by least squares, then each
  exp replaced by its ReLU interpolant, with the proof's error budget);
* the one-hidden-layer network that represents a given piecewise-affine function exactly (used in the
  depth-separation comparison: Delta^k needs 2^k shallow nodes against 3k deep ones).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .piecewise import Layer, PiecewiseAffine

_TRI_OUT = np.array([[2.0, -4.0, 2.0]])
_TRI_BIAS = np.array([0.0, -0.5, -1.0])


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def triangle_network(depth: int) -> list[Layer]:
    """Delta^depth as a ReLU network: ``depth`` hidden layers of width 3 (3 * depth ReLU nodes).

    Layer j computes relu(Delta^(j-1)(x) - c) for c in (0, 1/2, 1); the next layer's pre-activation
    folds the output combination 2, -4, 2 into its weights.
    """
    depth = _check_positive_int("depth", depth)
    layers: list[Layer] = [(np.ones((3, 1)), _TRI_BIAS.copy())]
    for _ in range(depth - 1):
        layers.append((np.ones((3, 1)) @ _TRI_OUT, _TRI_BIAS.copy()))
    layers.append((_TRI_OUT.copy(), np.zeros(1)))
    return layers


def triangle(x, depth: int = 1) -> np.ndarray:
    """Delta^depth(x) by direct iteration of the closed form (reference for the network)."""
    depth = _check_positive_int("depth", depth, minimum=0)
    y = np.asarray(x, dtype=float)
    for _ in range(depth):
        y = np.where((y >= 0) & (y < 0.5), 2 * y, np.where((y >= 0.5) & (y < 1), 2 - 2 * y, 0.0))
    return y


def triangle_fractal(x, depth: int) -> np.ndarray:
    """Proposition 4.1: Delta^L(x) = Delta(frac(2^(L-1) x)) for x in [0, 1]."""
    depth = _check_positive_int("depth", depth)
    x = np.asarray(x, dtype=float)
    z = 2.0 ** (depth - 1) * x
    frac = z - np.floor(z)
    return triangle(frac, 1)


def parity_network(log2_dim: int) -> list[Layer]:
    """ReLU network for prod_i x_i on {-1, +1}^d with d = 2^log2_dim (corrected formula).

    With k the number of -1 entries, (d + sum x) / (2d) = 1 - k/d, and Delta^L at multiples of 2^-L is
    1 at odd and 0 at even multiples, so 1 - 2 Delta^L(.) = (-1)^k.
    """
    L = _check_positive_int("log2_dim", log2_dim)
    d = 2 ** L
    tri = triangle_network(L)
    W1, b1 = tri[0]
    # fold the input map x -> (d + sum x) / (2d) into the first layer
    first = (W1 @ np.full((1, d), 1.0 / (2 * d)), b1 + W1[:, 0] * 0.5)
    Wout, bout = tri[-1]
    last = (-2.0 * Wout, 1.0 - 2.0 * bout)
    return [first, *tri[1:-1], last]


def squaring_network(order: int) -> list[Layer]:
    """h_order(x) = x - sum_{j<=order} Delta^j(x)/4^j as a pure ReLU network on [0, 1].

    ``order`` hidden layers of width 4: three triangle units plus an accumulator holding h_(j-1), which
    passes the ReLU unchanged because h_j >= x^2 >= 0 on [0, 1] (the notes use a fifth node; on [0, 1]
    four suffice). Theorem 4.2: sup_[0,1] |h_i(x) - x^2| = 4^-(i+1).
    """
    order = _check_positive_int("order", order)
    # hidden layer 1: relu(x), relu(x - 1/2), relu(x - 1), accumulator relu(x) = x = h_0
    layers: list[Layer] = [(np.ones((4, 1)), np.array([0.0, -0.5, -1.0, 0.0]))]
    for j in range(1, order):
        W = np.zeros((4, 4))
        W[:3, :3] = np.ones((3, 1)) @ _TRI_OUT  # Delta^(j+1) input is Delta^j
        W[3, :3] = -_TRI_OUT[0] / 4.0 ** j  # h_j = h_(j-1) - Delta^j / 4^j
        W[3, 3] = 1.0
        layers.append((W, np.array([0.0, -0.5, -1.0, 0.0])))
    Wout = np.zeros((1, 4))
    Wout[0, :3] = -_TRI_OUT[0] / 4.0 ** order
    Wout[0, 3] = 1.0
    layers.append((Wout, np.zeros(1)))
    return layers


def squaring_reference(x, order: int) -> np.ndarray:
    """h_order by its definition: the piecewise-affine interpolant of x^2 on the grid k / 2^order."""
    order = _check_positive_int("order", order, minimum=0)
    grid = np.linspace(0.0, 1.0, 2 ** order + 1)
    return np.interp(np.asarray(x, dtype=float), grid, grid ** 2)


def product_approx(x, y, order: int, form: str = "notes") -> np.ndarray:
    """Approximate products on [0, 1]^2 by polarization (Corollary 4.3).

    ``form="notes"``: g_i(x, y) = (4 h_i((x + y)/2) - h_i(x) - h_i(y)) / 2, with |g_i - xy| <= 3 * 4^-(i+1).
    The corollary also claims g_i(x, 0) = 0, which is false for this form (4 h_i(x/2) = h_(i-1)(x) != h_i(x)).
    ``form="zero_preserving"``: g_i(x, y) = 2 (h_(i+1)((x + y)/2) - h_(i+1)(x/2) - h_(i+1)(y/2)), which is
    exactly 0 when x = 0 or y = 0 and has |g_i - xy| <= 6 * 4^-(i+2) < 4^-i (one more layer per h).
    """
    from .piecewise import evaluate

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if form == "notes":
        net = squaring_network(order)
        h = lambda z: evaluate(net, z.ravel())[:, 0].reshape(z.shape)  # noqa: E731
        return 0.5 * (4 * h((x + y) / 2) - h(x) - h(y))
    if form == "zero_preserving":
        net = squaring_network(order + 1)
        h = lambda z: evaluate(net, z.ravel())[:, 0].reshape(z.shape)  # noqa: E731
        return 2.0 * (h((x + y) / 2) - h(x / 2) - h(y / 2))
    raise ValueError(f"form must be 'notes' or 'zero_preserving', got {form!r}")


def shallow_interpolant(f: PiecewiseAffine, channel: int = 0) -> list[Layer]:
    """One-hidden-layer ReLU network equal to the piecewise-affine ``f`` on its interval.

    f(x) = f(lo) + s_0 relu(x - lo) + sum_k (s_k - s_(k-1)) relu(x - t_k) over the breakpoints t_k:
    N_A(f) hidden nodes, the fewest a one-hidden-layer network can use to represent it exactly
    (each ReLU adds at most one breakpoint).
    """
    knots = f.knots.astype(float)
    vals = f.values[:, channel].astype(float)
    slopes = np.diff(vals) / np.diff(knots)
    keep = np.concatenate([[True], np.abs(np.diff(slopes)) > 1e-12 * max(1.0, np.abs(slopes).max())])
    starts = knots[:-1][keep]
    s = slopes[keep]
    jumps = np.concatenate([[s[0]], np.diff(s)])
    W1 = np.ones((len(starts), 1))
    b1 = -starts
    W2 = jumps[None, :]
    b2 = np.array([vals[0]])
    return [(W1, b1), (W2, b2)]


# ---------------------------------------------------------------- chapter 2: universal approximation

@dataclass
class ThresholdNetwork:
    """Proposition 2.1: f(x) = sum_i a_i 1[x >= b_i] with b_i = (i - 1) eps / rho, ceil(rho/eps) nodes."""

    biases: np.ndarray
    weights: np.ndarray

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return (x[..., None] >= self.biases).astype(float) @ self.weights

    @property
    def nodes(self) -> int:
        return len(self.biases)


def threshold_network(g: Callable[[np.ndarray], np.ndarray], lipschitz: float, eps: float) -> ThresholdNetwork:
    """Build Proposition 2.1's network for a ``lipschitz``-Lipschitz g on [0, 1]; sup error <= eps."""
    if lipschitz <= 0:
        raise ValueError(f"lipschitz must be positive, got {lipschitz}")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    m = math.ceil(lipschitz / eps)
    b = np.arange(m) * eps / lipschitz
    gb = np.asarray(g(b), dtype=float)
    a = np.concatenate([[gb[0]], np.diff(gb)])
    return ThresholdNetwork(b, a)


@dataclass
class BoxNetwork:
    """Theorem 2.3's 3-layer ReLU network: sum_j a_j relu(sum_i trap_{j,i}(x_i) - (d - 1)).

    Each of the m = k^d cubes uses 4d first-layer ReLUs (the trapezoids) and one second-layer ReLU.
    """

    k: int
    dim: int
    gamma: float
    heights: np.ndarray  # shape (k,)*dim, a_j = g(lower corner of cube j)

    @property
    def nodes(self) -> int:
        return self.k ** self.dim * (4 * self.dim + 1)

    def _trapezoid(self, z: np.ndarray, cell: np.ndarray) -> np.ndarray:
        u = cell / self.k
        v = (cell + 1) / self.k
        g = self.gamma
        r = lambda t: np.maximum(t, 0.0)  # noqa: E731
        return r((z - (u - g)) / g) - r((z - u) / g) - r((z - v) / g) + r((z - (v + g)) / g)

    def __call__(self, x) -> np.ndarray:
        """Evaluate at points x of shape (n, dim); only cubes adjacent to x's cube can be nonzero (gamma < 1/k)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have {self.dim} columns, got {x.shape[1]}")
        cell = np.clip(np.floor(x * self.k).astype(int), 0, self.k - 1)
        out = np.zeros(len(x))
        for offset in itertools.product((-1, 0, 1), repeat=self.dim):
            c = cell + np.array(offset)
            valid = np.all((c >= 0) & (c < self.k), axis=1)
            cc = np.clip(c, 0, self.k - 1)
            s = sum(self._trapezoid(x[:, i], cc[:, i]) for i in range(self.dim))
            bump = np.maximum(s - (self.dim - 1), 0.0)
            out += np.where(valid, self.heights[tuple(cc.T)] * bump, 0.0)
        return out


def box_network(g: Callable[[np.ndarray], np.ndarray], lipschitz: float, eps: float, dim: int) -> BoxNetwork:
    """Theorem 2.3 with the corrected grid k = ceil(rho sqrt(d) / eps), so that |g(u_j) - g(x)| <= eps.

    gamma is chosen so that sum_j |a_j| (prod_i (1/k + 2 gamma) - k^-d) <= eps, which with the
    piecewise-constant error eps gives the theorem's L1 bound 2 eps.
    """
    dim = _check_positive_int("dim", dim)
    if lipschitz <= 0 or eps <= 0:
        raise ValueError(f"lipschitz and eps must be positive, got {lipschitz}, {eps}")
    k = math.ceil(lipschitz * math.sqrt(dim) / eps)
    corners = np.stack(np.meshgrid(*[np.arange(k) / k] * dim, indexing="ij"), axis=-1)
    heights = np.asarray(g(corners.reshape(-1, dim)), dtype=float).reshape((k,) * dim)
    mass = float(np.abs(heights).sum())
    tau = eps / mass if mass > 0 else 1.0
    # smallest-cost gamma: solve (1/k + 2 gamma)^d - k^-d = tau, and stay below 1/(2k) so only neighbours overlap
    gamma = ((tau + k ** -dim) ** (1.0 / dim) - 1.0 / k) / 2.0
    gamma = min(gamma, 0.49 / k)
    return BoxNetwork(k=k, dim=dim, gamma=gamma, heights=heights)


@dataclass
class ExpReluNetwork:
    """Theorem 2.5, made constructive: h(x) = a^T exp(Vx), then exp -> ReLU interpolant p on [-R, R].

    f(x) = sum_j a_j p(v_j^T x) = sum_j a_j (p(-R) + sum_k c_k relu(v_j^T x - t_k)), a 2-layer biased
    ReLU network with m * n_knots hidden nodes.
    """

    V: np.ndarray  # (m, d)
    a: np.ndarray  # (m,)
    knots: np.ndarray  # t_0 = -R < ... < t_n = R
    radius: float

    def exp_features(self, x) -> np.ndarray:
        return np.exp(np.atleast_2d(x) @ self.V.T) @ self.a

    def relu_interp(self, r: np.ndarray) -> np.ndarray:
        """p(r): the ReLU network interpolating exp at the knots (constant-slope extension outside)."""
        t = self.knots
        vals = np.exp(t)
        slopes = np.diff(vals) / np.diff(t)
        jumps = np.concatenate([[slopes[0]], np.diff(slopes)])
        return vals[0] + np.maximum(r[..., None] - t[:-1], 0.0) @ jumps

    def __call__(self, x) -> np.ndarray:
        # |v^T x| <= R on [0, 1]^d, where the ReLU sum equals linear interpolation: np.interp is the
        # same function without materialising (points, m, knots) activations
        r = np.atleast_2d(x) @ self.V.T
        return np.interp(r, self.knots, np.exp(self.knots)) @ self.a

    @property
    def nodes(self) -> int:
        return self.V.shape[0] * (len(self.knots) - 1)

    def interp_error_bound(self) -> float:
        """sup_[-R,R] |p - exp| <= h^2 e^R / 8 (linear interpolation, h the knot spacing)."""
        h = float(np.max(np.diff(self.knots)))
        return h * h * math.exp(self.radius) / 8.0


def exp_relu_network(g: Callable[[np.ndarray], np.ndarray], dim: int, eps: float, features: int = 40,
                     scale: float = 2.0, fit_points: int = 4000, seed: int = 0) -> ExpReluNetwork:
    """Constructive Theorem 2.5 on [0, 1]^dim.

    Step 1 (Lemma 2.7, Stone-Weierstrass made concrete): random V ~ N(0, scale^2 I), a by ridge-regularized
    least squares of g on random points. Step 2: knots fine enough that sum_j |a_j| * sup|p - exp| <= eps/2,
    so sup|f - g| <= sup|h - g| + eps/2 (the proof's triangle inequality).
    """
    dim = _check_positive_int("dim", dim)
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    rng = np.random.default_rng(seed)
    V = rng.normal(0.0, scale, size=(features, dim))
    X = rng.random((fit_points, dim))
    y = np.asarray(g(X), dtype=float)
    Phi = np.exp(X @ V.T)
    col = np.linalg.norm(Phi, axis=0)
    A = Phi / col
    a = np.linalg.solve(A.T @ A + 1e-10 * np.eye(features), A.T @ y) / col
    R = float(np.max(np.abs(V).sum(axis=1)))  # |v^T x| <= ||v||_1 on [0, 1]^d
    budget = eps / (2.0 * max(np.abs(a).sum(), 1e-12))
    h = math.sqrt(8.0 * budget / math.exp(R))
    n = max(2, math.ceil(2 * R / h))
    knots = np.linspace(-R, R, n + 1)
    return ExpReluNetwork(V=V, a=a, knots=knots, radius=R)
