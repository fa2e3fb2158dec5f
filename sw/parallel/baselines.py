"""Classical baselines of thesis section 5.6 / 5.9.2: trend filtering, smoothing spline, wavelet denoising.

Each ``*_path`` function fits one data set along a grid of regularization strengths and returns a
:class:`BaselinePath` (fits and degrees of freedom), so the oracle-tuned MSE and the MSE-vs-DoF curves of
Fig. 5.3(b)(e) come out of one call.

* Trend filtering of order k (Tibshirani 2014): ``min 1/2 ||y - theta||^2 + lam ||D^(k+1) theta||_1`` with
  D^(k+1) the (k+1)-th difference matrix (uniform design). The thesis uses MOSEK; we use CVXPY with the
  open CLARABEL solver (fallback SCS), the penalty a CVXPY parameter so the problem compiles once.
  DoF = number of knots (nonzeros of D^(k+1) theta) + k + 1 (Tibshirani & Taylor 2012), the thesis's
  "number of nonzero knots" made unbiased.
* Smoothing spline: SciPy's cubic ``make_smoothing_spline`` (replaces R's smooth.spline); DoF = trace of
  the linear smoother matrix, computed exactly by smoothing the identity.
* Wavelet denoising: PyWavelets sym4, periodized orthogonal transform, soft threshold of the detail
  coefficients; DoF = number of surviving coefficients (Stein's formula for soft thresholding in an
  orthogonal basis; exact when n is divisible by 2**level).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BaselinePath",
    "difference_matrix",
    "trend_filtering_path",
    "smoothing_spline_path",
    "wavelet_path",
]


@dataclass
class BaselinePath:
    """Fits of one method along its regularization grid.

    Attributes
    ----------
    method : str
    strengths : numpy.ndarray, shape (K,)
        The regularization parameter of each fit (lambda, or wavelet threshold).
    fits : numpy.ndarray, shape (K, n)
        Fitted values at the design points.
    dof : numpy.ndarray, shape (K,)
        Degrees of freedom of each fit.
    """

    method: str
    strengths: np.ndarray
    fits: np.ndarray
    dof: np.ndarray
    info: dict = field(default_factory=dict)

    def mse(self, f0: np.ndarray) -> np.ndarray:
        """Mean squared error of every fit against the clean values ``f0``."""
        return np.mean((self.fits - np.asarray(f0)[None, :]) ** 2, axis=1)


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly increasing")
    return x, y


def difference_matrix(n: int, order: int) -> np.ndarray:
    """The ``order``-th forward difference matrix, shape (n - order, n)."""
    if order < 1 or order >= n:
        raise ValueError(f"order must be in [1, n-1] = [1, {n - 1}], got {order}")
    d = np.eye(n)
    for _ in range(order):
        d = d[1:] - d[:-1]
    return d


def trend_filtering_path(x, y, order: int = 3, n_lambdas: int = 24, lambda_ratio: float | None = None,
                         solver: str = "CLARABEL", knot_tol: float = 1e-6) -> BaselinePath:
    """Trend filtering of order ``order`` along a log grid of penalties, largest first.

    The grid runs from ``lambda_max`` (above which the fit is a global polynomial of degree ``order``)
    down to ``lambda_ratio * lambda_max``. ``x`` must be equally spaced.

    Parameters
    ----------
    x, y : array_like, shape (n,)
    order : int
        Polynomial degree k of the pieces (thesis: 3); the penalty uses differences of order k + 1.
    n_lambdas : int
    lambda_ratio : float, optional
        Smallest over largest penalty, in (0, 1). Default ``10^-(2 + 3 k)``: lambda_max grows like the
        inverse of the (k+1)-th differences, so higher orders need a wider grid (for k = 3 and Doppler
        the optimum sits near 1e-7 lambda_max).
    solver : str
        CVXPY solver name (CLARABEL, SCS, OSQP); SCS is tried if it fails.
    knot_tol : float
        A difference counts as a knot when larger than ``knot_tol`` times the range of ``y``. The scale
        must come from the data: the (k+1)-th differences of a knot-free stretch are solver round-off
        (mostly 1e-12..1e-7 of the range with CLARABEL), and a threshold relative to the largest
        difference counts every one of them as a knot when the fit has no knot at all (an exact cubic
        gave DoF 42 of 60). On Doppler and "vary" (n = 60..512) most differences fall either below 1e-7
        or above 1e-4 of the range; the few in between make the count uncertain by a few knots.
    """
    import cvxpy as cp

    x, y = _check_xy(x, y)
    spacing = np.diff(x)
    if not np.allclose(spacing, spacing[0], rtol=1e-6):
        raise ValueError("trend_filtering_path needs an equally spaced x")
    if lambda_ratio is None:
        lambda_ratio = 10.0 ** (-(2 + 3 * order))
    if not 0 < lambda_ratio < 1:
        raise ValueError(f"lambda_ratio must be in (0, 1), got {lambda_ratio}")
    if n_lambdas < 1:
        raise ValueError(f"n_lambdas must be positive, got {n_lambdas}")
    n = x.size
    dmat = difference_matrix(n, order + 1)
    # dual feasibility: theta = polynomial iff lam >= ||(D D^T)^{-1} D y||_inf
    lam_max = float(np.max(np.abs(np.linalg.solve(dmat @ dmat.T, dmat @ y))))
    lambdas = lam_max * np.logspace(0, np.log10(lambda_ratio), n_lambdas)
    theta = cp.Variable(n)
    lam = cp.Parameter(nonneg=True)
    # scale the data term by 1/n so the solver sees O(1) numbers at every n; the penalty scales with it
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(y - theta) / n
                                     + lam / n * cp.norm1(dmat @ theta)))
    knot_floor = knot_tol * max(float(np.ptp(y)), float(np.max(np.abs(y))) * 1e-12, 1e-300)
    fits, dofs = [], []
    for value in lambdas:
        lam.value = value
        try:
            problem.solve(solver=solver)
        except cp.error.SolverError:
            problem.solve(solver="SCS", eps=1e-7, max_iters=200000)
        if theta.value is None:
            raise RuntimeError(f"trend filtering failed at lambda={value:g}: {problem.status}")
        fit = np.asarray(theta.value).copy()
        knots = int(np.sum(np.abs(dmat @ fit) > knot_floor))
        fits.append(fit)
        dofs.append(knots + order + 1)
    return BaselinePath("trend_filtering", lambdas, np.array(fits), np.array(dofs, dtype=float),
                        {"order": order, "lambda_max": lam_max, "solver": solver})


def smoothing_spline_path(x, y, n_lambdas: int = 40, log10_range: tuple[float, float] = (-12.0, 0.0)
                          ) -> BaselinePath:
    """Cubic smoothing spline (penalty on the second derivative) along a log grid of ``lam``.

    Parameters
    ----------
    x, y : array_like, shape (n,)
    n_lambdas : int
    log10_range : (float, float)
        ``log10`` of the smallest and largest ``lam`` passed to ``scipy.interpolate.make_smoothing_spline``.
    """
    from scipy.interpolate import make_smoothing_spline

    x, y = _check_xy(x, y)
    if n_lambdas < 1:
        raise ValueError(f"n_lambdas must be positive, got {n_lambdas}")
    lo, hi = log10_range
    if not lo < hi:
        raise ValueError(f"log10_range must be increasing, got {log10_range}")
    lambdas = np.logspace(hi, lo, n_lambdas)
    identity = np.eye(x.size)
    fits, dofs = [], []
    for lam in lambdas:
        fits.append(make_smoothing_spline(x, y, lam=lam)(x))
        # the smoother is linear in y: its DoF is the trace of the hat matrix
        dofs.append(float(np.trace(make_smoothing_spline(x, identity, lam=lam)(x))))
    return BaselinePath("smoothing_spline", lambdas, np.array(fits), np.array(dofs))


def wavelet_path(x, y, wavelet: str = "sym4", n_thresholds: int = 40, level: int | None = None
                 ) -> BaselinePath:
    """Soft-threshold wavelet denoising along a grid of thresholds (coarse approximation kept).

    Parameters
    ----------
    x, y : array_like, shape (n,)
    wavelet : str
        PyWavelets wavelet name (thesis: sym4).
    n_thresholds : int
        Thresholds run geometrically from the largest detail coefficient down to 1e-4 of it.
    level : int, optional
        Decomposition depth; default is the largest PyWavelets allows.
    """
    import pywt

    x, y = _check_xy(x, y)
    if n_thresholds < 1:
        raise ValueError(f"n_thresholds must be positive, got {n_thresholds}")
    mode = "periodization"  # orthogonal transform: soft thresholding has DoF = #nonzero coefficients
    max_level = pywt.dwt_max_level(y.size, pywt.Wavelet(wavelet).dec_len)
    level = max_level if level is None else int(level)
    if not 1 <= level <= max(max_level, 1):
        raise ValueError(f"level must be in [1, {max_level}], got {level}")
    coeffs = pywt.wavedec(y, wavelet, mode=mode, level=level)
    top = max(float(np.max(np.abs(c))) for c in coeffs[1:])
    thresholds = top * np.logspace(0, -4, n_thresholds)
    fits, dofs = [], []
    for t in thresholds:
        kept = [coeffs[0]] + [pywt.threshold(c, t, mode="soft") for c in coeffs[1:]]
        fits.append(pywt.waverec(kept, wavelet, mode=mode)[: y.size])
        dofs.append(coeffs[0].size + sum(int(np.count_nonzero(c)) for c in kept[1:]))
    return BaselinePath("wavelet_" + wavelet, thresholds, np.array(fits), np.array(dofs, dtype=float),
                        {"level": level})
