"""Unit checks of ultratrain.sw.parallel: targets, network algebra (Prop. 5.5), DoF (eq. 5.32), baselines."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: extra intra-op threads only add synchronisation on a shared CPU

from ultratrain.sw.parallel.baselines import (smoothing_spline_path, trend_filtering_path, wavelet_path,
                                              difference_matrix)
from ultratrain.sw.parallel.dof import dof_control_variate, dof_independent_copy, dof_covariance, isotonic_in_lambda
from ultratrain.sw.parallel.network import (ParallelReLUNet, VanillaReLUNet, parallel_param_count,
                                            vanilla_width_for)
from ultratrain.sw.parallel.rates import fit_rate, minimax_rate_bv, linear_minimax_rate_bv, trimmed_mean
from ultratrain.sw.parallel.targets import cardinal_bspline, doppler, make_dataset, vary
from ultratrain.sw.parallel.training import TrainConfig, fit_lambda_path, solve_output_layer, train_penalized


# ---------------------------------------------------------------- targets
@pytest.mark.parametrize("m", [0, 1, 2, 3])
def test_cardinal_bspline_is_a_partition_of_unity_with_unit_integral(m):
    x = np.linspace(0, 1, 101)
    total = sum(cardinal_bspline(x + k, m) for k in range(-1, m + 3))
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    grid = np.linspace(-1, m + 2, 30001)
    assert abs(np.trapz(cardinal_bspline(grid, m), grid) - 1.0) < 1e-3
    assert np.all(cardinal_bspline(np.array([-0.5, m + 1.5]), m) == 0)


def test_cardinal_bspline_order_one_is_the_hat():
    np.testing.assert_allclose(cardinal_bspline(np.array([0.0, 0.5, 1.0, 1.5, 2.0]), 1), [0, 0.5, 1, 0.5, 0])


def test_targets_and_dataset():
    x = np.linspace(0, 1, 2001)
    v = vary(x)
    assert v.min() >= 0 and 0.6 < v.max() <= 1.0 + 1e-12
    assert abs(vary(np.array([0.0, 1.0]))).max() < 1e-12
    np.testing.assert_allclose(doppler(np.array([0.0])), np.sin(400.0) + 1.5)
    d = make_dataset("doppler", 500, seed=3)
    assert d.sigma == 0.4 and d.x[0] == 0 and d.x[-1] == 1
    assert 0.3 < np.std(d.y - d.f0) < 0.5
    with pytest.raises(ValueError, match="name"):
        make_dataset("sine", 100, 0)
    with pytest.raises(ValueError, match="n must"):
        make_dataset("vary", 3, 0)


# ---------------------------------------------------------------- network
def _loop_forward(net: ParallelReLUNet, x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for j in range(net.n_subnets):
        h = x[:, None]
        for layer in range(net.depth):
            h = h @ net.weights[layer][j] + net.biases[layer][j]
            if layer < net.depth - 1:
                h = torch.relu(h)
        total += h[:, 0]
    return total


def test_parallel_forward_matches_per_subnetwork_loop():
    net = ParallelReLUNet(5, 4, 4, seed=1)
    x = torch.linspace(0, 1, 37, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), _loop_forward(net, x))
        assert net.subnet_outputs(x).shape == (5, 37)
        assert net.penultimate(x).shape == (37, 20)


def test_rebalance_keeps_f_and_reaches_the_lp_penalty():
    net = ParallelReLUNet(6, 5, 5, seed=2)
    with torch.no_grad():  # unbalance the layers on purpose
        net.weights[0].mul_(7.0)
        net.weights[2].mul_(0.2)
    x = torch.linspace(0, 1, 101, dtype=torch.float64)
    before = net(x).detach().clone()
    penalty_before = float(net.weight_penalty())
    lp_before = float(net.lp_penalty())
    net.rebalance()
    torch.testing.assert_close(net(x).detach(), before, rtol=1e-10, atol=1e-10)
    norms = net.layer_norms().detach()
    torch.testing.assert_close(norms, norms[:, :1].expand_as(norms), rtol=1e-10, atol=0)
    assert float(net.weight_penalty()) == pytest.approx(lp_before, rel=1e-10)
    assert float(net.weight_penalty()) < penalty_before
    assert float(net.lp_penalty()) == pytest.approx(lp_before, rel=1e-10)


def test_vanilla_rebalance_keeps_f():
    net = VanillaReLUNet(7, 4, seed=0)
    with torch.no_grad():
        net.weights[1].mul_(5.0)
    x = torch.linspace(0, 1, 50, dtype=torch.float64)
    before = net(x).detach().clone()
    penalty = float(net.weight_penalty())
    net.rebalance()
    torch.testing.assert_close(net(x).detach(), before, rtol=1e-10, atol=1e-10)
    assert float(net.weight_penalty()) < penalty


@pytest.mark.parametrize("cls", ["parallel", "vanilla"])
def test_identity_growth_preserves_f_and_random_growth_keeps_features(cls):
    net = ParallelReLUNet(4, 6, 3, seed=0) if cls == "parallel" else VanillaReLUNet(6, 3, seed=0)
    x = torch.linspace(0, 1, 64, dtype=torch.float64)
    deeper = net.grown(seed=5, mode="identity")
    assert deeper.depth == 4
    torch.testing.assert_close(deeper(x).detach(), net(x).detach())
    other = net.grown(seed=5, mode="random")
    torch.testing.assert_close(other.weights[0].detach(), net.weights[0].detach())
    assert not torch.allclose(other(x), net(x))
    with pytest.raises(ValueError, match="mode"):
        net.grown(mode="copy")


def test_vanilla_width_matches_the_thesis_parameter_counts():
    # section 5.9.2: PNN (M=500, w=10, L=10) ~ NN width 240; (M=2000, w=10, L=12) ~ width 470
    assert abs(vanilla_width_for(parallel_param_count(500, 10, 10), 10) - 240) <= 3
    assert abs(vanilla_width_for(parallel_param_count(2000, 10, 12), 12) - 470) <= 8


def test_active_count_sees_zeroed_subnetworks():
    net = ParallelReLUNet(10, 4, 3, seed=0)
    with torch.no_grad():
        net.weights[-1][[1, 4, 7]] = 0.0
    assert net.count_active() == 7
    with pytest.raises(ValueError):
        net.count_active(rel_tol=2.0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="depth"):
        ParallelReLUNet(3, 3, 1)
    with pytest.raises(ValueError, match="n_subnets"):
        ParallelReLUNet(0, 3, 3)
    with pytest.raises(ValueError, match="x must"):
        ParallelReLUNet(2, 3, 3)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="kind"):
        TrainConfig(kind="cnn")


# ---------------------------------------------------------------- training
def test_output_layer_solve_is_the_block_minimizer():
    torch.manual_seed(0)
    net = ParallelReLUNet(4, 5, 3, seed=0)
    x = torch.linspace(0, 1, 80, dtype=torch.float64)
    y = torch.sin(6 * x) + 0.1 * torch.randn(80, dtype=torch.float64)
    lam = 1e-3
    solve_output_layer(net, x, y, lam)
    objective = torch.mean((net(x) - y) ** 2) + lam * net.weight_penalty()
    objective.backward()
    assert float(net.weights[-1].grad.abs().max()) < 1e-8
    assert abs(float(net.biases[-1].grad.sum())) < 1e-8
    # any other layer still has a gradient: the solve touched only the last block
    assert float(net.weights[0].grad.abs().max()) > 1e-6


def test_weight_decay_path_shrinks_the_network():
    d = make_dataset("vary", 64, seed=0)
    cfg = TrainConfig(n_subnets=8, width=4, depth=3, lr=3e-3, pretrain_steps=60, decay_steps=200,
                      dtype="float64")
    path = fit_lambda_path(d.x, d.y, [0.0, 1e-2, 1.0], cfg)
    assert path.fits.shape == (3, 64) and path.grid_fits.shape[0] == 3
    # lambda = 1 is far above the data term: the fit collapses towards a constant and subnetworks die
    spread = np.ptp(path.fits, axis=1)
    assert spread[2] < 0.2 * spread[0]
    assert path.active[2] < path.active[0]
    assert np.all(np.isfinite(path.train_loss))


def test_train_penalized_lowers_the_objective():
    d = make_dataset("vary", 64, seed=1)
    x = torch.tensor(d.x)
    y = torch.tensor(d.y)
    net = ParallelReLUNet(4, 4, 3, seed=0)
    start = float(torch.mean((net(x) - y) ** 2) + 1e-3 * net.weight_penalty())
    end = train_penalized(net, x, y, 1e-3, steps=150, lr=3e-3, solve_every=50)
    assert end < 0.5 * start


# ---------------------------------------------------------------- degrees of freedom
def test_dof_of_a_constant_predictor_is_zero():
    d = make_dataset("vary", 200, seed=0)
    c = float(np.mean(d.f0))
    assert dof_control_variate(d.y, np.full(200, c), d.f0, d.sigma) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("lam", [1e-6, 1e-1])
def test_dof_estimators_agree_with_the_trace_of_a_linear_smoother(lam):
    """A linear smoother S has df = tr(S); eq. (5.32) must estimate it without bias at any df.

    For yhat = S y, eq. (5.32) equals <yhat - c, eps> / sigma^2, whose variance is
    ||S f0 - c||^2 / sigma^2 + 2 tr(S^2) (S symmetric); sampling (5.31) directly carries the noise energy
    ||eps'||^2 - ||eps||^2 and the bias ||(I - S) f0|| instead. So (5.32) is the better estimator exactly
    where the thesis uses it, at small df (heavy smoothing: lam = 0.1, df ~ 3), but not at large df on a
    high-SNR target (lam = 1e-6, df ~ 36): there ||S f0 - c|| / sigma ~ 25 exceeds the naive spread.
    """
    from scipy.interpolate import make_smoothing_spline

    n, sigma, repeats = 100, 0.1, 400
    x = np.linspace(0, 1, n)
    f0 = vary(x)
    smoother = make_smoothing_spline(x, np.eye(n), lam=lam)(x)
    trace = np.trace(smoother)
    rng = np.random.default_rng(0)
    ys = f0 + sigma * rng.standard_normal((repeats, n))
    y_prime = f0 + sigma * rng.standard_normal((repeats, n))
    fits = make_smoothing_spline(x, ys.T, lam=lam)(x).T
    cv = dof_control_variate(ys, fits, np.broadcast_to(f0, ys.shape), sigma)
    naive = dof_independent_copy(ys, fits, y_prime, sigma)
    assert abs(cv.mean() - trace) < 4 * cv.std() / np.sqrt(repeats)
    assert abs(naive.mean() - trace) < 4 * naive.std() / np.sqrt(repeats)
    assert abs(dof_covariance(ys, fits, sigma) - trace) < 0.15 * trace
    predicted_std = np.sqrt(np.sum((smoother @ f0 - f0.mean()) ** 2) / sigma**2
                            + 2 * np.trace(smoother @ smoother))
    assert cv.std() == pytest.approx(predicted_std, rel=0.15)
    if trace < 5:  # the point of eq. (5.32): far less spread than sampling (5.31) when df is small
        assert cv.std() < 0.5 * naive.std()


def test_isotonic_denoising_is_monotone():
    lambdas = np.logspace(-6, -2, 8)
    dofs = np.array([30, 34, 31, 25, 20, 21, 9, 3], dtype=float)
    smooth = isotonic_in_lambda(lambdas, dofs)
    assert np.all(np.diff(smooth) <= 1e-12)


# ---------------------------------------------------------------- baselines
def test_trend_filtering_reproduces_a_cubic_and_counts_knots():
    x = np.linspace(0, 1, 60)
    cubic = 1 - 2 * x + 3 * x**3
    path = trend_filtering_path(x, cubic, order=3, n_lambdas=3)
    np.testing.assert_allclose(path.fits[0], cubic, atol=1e-5)
    assert path.dof[0] == 4  # polynomial of degree 3: no knots
    d = make_dataset("vary", 128, seed=0)
    path = trend_filtering_path(d.x, d.y, order=3, n_lambdas=8)
    assert path.dof[-1] > path.dof[0]
    assert path.mse(d.f0).min() < 0.5 * np.var(d.f0)
    assert difference_matrix(10, 4).shape == (6, 10)


def test_smoothing_spline_and_wavelet_paths():
    d = make_dataset("doppler", 256, seed=0)
    spline = smoothing_spline_path(d.x, d.y, n_lambdas=12)
    assert np.all(np.diff(spline.dof) > 0)  # lambdas run from large to small
    assert 2 - 1e-6 < spline.dof[0] < 256 and spline.dof[-1] <= 256 + 1e-6
    wavelet = wavelet_path(d.x, d.y, n_thresholds=10)
    assert wavelet.dof[0] < wavelet.dof[-1]
    for path in (spline, wavelet):
        assert path.mse(d.f0).min() < np.mean((d.y - d.f0) ** 2)


def test_baselines_reject_bad_input():
    with pytest.raises(ValueError, match="equally spaced"):
        trend_filtering_path(np.array([0, 0.1, 0.5, 0.6, 0.9, 1.0]), np.zeros(6), order=1)
    with pytest.raises(ValueError, match="increasing"):
        smoothing_spline_path(np.array([0.0, 0.0, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="shapes"):
        wavelet_path(np.arange(8.0), np.zeros(7))


# ---------------------------------------------------------------- rates
def test_fit_rate_recovers_a_power_law():
    ns = np.array([100, 200, 400, 800])
    fit = fit_rate(ns, 3.0 * ns ** -0.8)
    assert fit.slope == pytest.approx(-0.8)
    assert minimax_rate_bv(1) == pytest.approx(-0.8) and linear_minimax_rate_bv(1) == pytest.approx(-0.75)
    assert trimmed_mean([1.0, 1.1, 0.9, 10.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fit_rate([100, 100], [1.0, 2.0])
