"""Thesis ch. 4, section 4.5: analytic NTKs, empirical NTK, Mercer eigenvalues on the sphere and their decay."""

import math

import numpy as np
import pytest
import torch

from ultratrain.sw.ntk.kernels import (empirical_ntk, gaussian_kernel, gaussian_on_sphere, gaussian_taylor,
                                       laplace_kernel, laplace_on_sphere, ntk_bwnn, ntk_bwnn_gram, ntk_bwnn_taylor,
                                       ntk_relu, ntk_relu_gram, random_scale_gaussian_on_sphere,
                                       random_scale_gaussian_taylor)
from ultratrain.sw.ntk.mercer import (fit_exponential_decay, fit_polynomial_decay, harmonic_dimension,
                                      legendre_polynomials, mercer_coefficients_quadrature,
                                      mercer_coefficients_taylor, reconstruct_kernel)
from ultratrain.sw.ntk.networks import BinaryWeightNet, sigma_tilde, sigma_tilde_grad

torch.set_num_threads(1)


def unit_inputs(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("var_theta", [1 / 3, 0.8])
def test_closed_form_ntk_equals_lemma_4_11_expectations(var_theta):
    """K = ((c/d) t + beta^2) E[s~'(nu) s~'(nu')] + E[s~(nu) s~(nu')], nu ~ N(0, (c/d) Var theta [[1, t], [t, 1]])."""
    d, c, beta = 5, 2.0, 0.3
    nodes, weights = np.polynomial.hermite_e.hermegauss(150)
    weights = np.outer(weights, weights) / (2 * np.pi)
    std_nu, s = math.sqrt(c / d * var_theta), math.sqrt(c / d * (1 - var_theta))
    for t in (-0.95, -0.4, 0.0, 0.3, 0.9):
        nu1 = torch.tensor(std_nu * nodes[:, None] + 0 * nodes[None, :])
        nu2 = torch.tensor(std_nu * (t * nodes[:, None] + math.sqrt(1 - t * t) * nodes[None, :]))
        sigma0 = np.sum(weights * (sigma_tilde_grad(nu1, s) * sigma_tilde_grad(nu2, s)).numpy())
        sigma1 = np.sum(weights * (sigma_tilde(nu1, s) * sigma_tilde(nu2, s)).numpy())
        expected = (c / d * t + beta ** 2) * sigma0 + sigma1
        assert ntk_bwnn(t, var_theta=var_theta, c=c, d=d, beta=beta) == pytest.approx(expected, abs=1e-5)


def test_gram_versions_agree_with_sphere_versions_and_scale_correctly():
    x = unit_inputs(6, 4, 0)
    t = np.clip(x @ x.T, -1, 1)
    assert np.allclose(ntk_bwnn_gram(x, beta=0.2), ntk_bwnn(t, d=4, beta=0.2))
    assert np.allclose(ntk_relu_gram(x), ntk_relu(t, d=4))
    # without biases the ReLU NTK is positively 2-homogeneous in the inputs
    assert np.allclose(ntk_relu_gram(3 * x, beta=0.0), 9 * ntk_relu_gram(x, beta=0.0))
    assert np.allclose(gaussian_kernel(x, xi=0.7), gaussian_on_sphere(t, xi=0.7))
    assert np.allclose(laplace_kernel(x, s=0.7), laplace_on_sphere(t, s=0.7))
    # Euclidean Laplace, not scikit-learn's L1 version
    from sklearn.metrics.pairwise import laplacian_kernel
    assert not np.allclose(laplace_kernel(x, s=0.7), laplacian_kernel(x, gamma=1 / 0.7))
    # positive semi-definite
    assert np.linalg.eigvalsh(ntk_bwnn_gram(unit_inputs(40, 3, 1))).min() > -1e-10


def test_random_scale_gaussian_closed_form_matches_sampling_the_scale():
    d, xi = 6, 1.5
    from scipy import integrate, stats

    kappa = np.sqrt(np.random.default_rng(2).chisquare(d, size=200000))
    for t in (-0.5, 0.2, 0.8):
        # kappa ~ chi_d, i.e. kappa^2 ~ chi^2_d: integrate over the chi^2 density, and sample it
        integral = integrate.quad(lambda q: stats.chi2.pdf(q, d) * np.exp(-q * (2 - 2 * t) / xi ** 2), 0, np.inf)[0]
        sampled = np.mean(np.exp(-kappa ** 2 * (2 - 2 * t) / xi ** 2))
        assert random_scale_gaussian_on_sphere(t, xi=xi, d=d) == pytest.approx(integral, rel=1e-8)
        assert random_scale_gaussian_on_sphere(t, xi=xi, d=d) == pytest.approx(sampled, rel=2e-2)


@pytest.mark.parametrize("series, kernel", [
    (lambda: ntk_bwnn_taylor(300, d=5, beta=0.2), lambda t: ntk_bwnn(t, d=5, beta=0.2)),
    (lambda: gaussian_taylor(200, xi=1.2), lambda t: gaussian_on_sphere(t, xi=1.2)),
    (lambda: random_scale_gaussian_taylor(1500, xi=2.0, d=5),
     lambda t: random_scale_gaussian_on_sphere(t, xi=2.0, d=5)),
])
def test_taylor_series_sum_to_the_kernel(series, kernel):
    t = np.linspace(-1, 1, 21)
    assert np.allclose(np.polynomial.polynomial.polyval(t, series()), kernel(t), atol=1e-12)


def test_empirical_ntk_factored_equals_autograd():
    x = torch.tensor(unit_inputs(5, 6, 3))
    for weights in ("binary", "real"):
        net = BinaryWeightNet(6, 32, 48, c=3.0, beta=0.4, seed=4, weights=weights, dtype=torch.float64)
        with torch.no_grad():
            net.b1.normal_()
        auto = empirical_ntk(net, x, method="autograd")
        fact = empirical_ntk(net, x)
        assert torch.allclose(auto, fact, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weights", ["binary", "real"])
def test_empirical_ntk_converges_to_analytic_ntk_with_width(weights):
    d = 8
    x = unit_inputs(10, d, 5)
    analytic = ntk_bwnn_gram(x, var_theta=1 / 3 if weights == "binary" else 1.0, c=1.0, beta=0.1)
    errors = []
    for width in (64, 4096):
        errs = []
        for seed in range(3):
            net = BinaryWeightNet(d, width, width, c=1.0, beta=0.1, seed=seed, weights=weights,
                                  dtype=torch.float64)
            emp = empirical_ntk(net, torch.tensor(x)).numpy()
            errs.append(np.linalg.norm(emp - analytic) / np.linalg.norm(analytic))
        errors.append(np.mean(errs))
    # fluctuations shrink like width^-1/2: a factor 8 for 64 -> 4096; ask for 3
    assert errors[1] < errors[0] / 3
    assert errors[1] < 0.06


def test_legendre_polynomials_are_orthogonal_with_the_right_norm():
    from scipy.special import roots_jacobi

    for d in (3, 5, 8):
        nodes, weights = roots_jacobi(200, (d - 3) / 2, (d - 3) / 2)
        p = legendre_polynomials(12, nodes, d)
        gram = (p * weights) @ p.T
        ratio = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))  # omega_{d-2}/omega_{d-1}
        expected = np.diag(1 / (ratio * harmonic_dimension(d, np.arange(13))))
        assert np.allclose(gram, expected, atol=1e-12)
        assert np.allclose(legendre_polynomials(12, [1.0], d)[:, 0], 1.0)
    assert harmonic_dimension(3, 4) == 9  # 2k + 1 on the 2-sphere


def test_quadrature_and_exact_taylor_eigenvalues_agree_and_rebuild_the_kernel():
    d = 5
    quad = mercer_coefficients_quadrature(lambda t: ntk_bwnn(t, d=d), d, 12)
    exact = mercer_coefficients_taylor(ntk_bwnn_taylor(400, d=d), d, 40)
    big = quad > 1e-12
    assert np.allclose(quad[big], exact[:13][big], rtol=1e-6)
    t = np.linspace(-1, 1, 9)
    assert np.allclose(reconstruct_kernel(exact, d, t), ntk_bwnn(t, d=d), atol=1e-14)
    # calibration points of the notes (d = 5, Var theta = 1/3, beta = 0.1, c = 1)
    assert exact[[2, 4, 8, 12]] == pytest.approx([7.2e-4, 1.6e-6, 1.5e-10, 3.7e-14], rel=0.05)


def test_odd_eigenvalues_vanish_only_without_bias():
    """Lemma 4.12 says the odd coefficients vanish; with beta > 0 they do not (erratum), with beta = 0 they do."""
    d = 5
    with_bias = mercer_coefficients_taylor(ntk_bwnn_taylor(300, d=d, beta=0.1), d, 15)
    without = mercer_coefficients_taylor(ntk_bwnn_taylor(300, d=d, beta=0.0), d, 15)
    assert np.all(with_bias[3::2] > 1e-3 * with_bias[2:-1:2] * 1e-3)
    assert np.all(with_bias[3::2] > 0)
    assert np.all(np.abs(without[3::2]) < 1e-25)


def test_binary_weight_ntk_spectrum_decays_faster_than_relu_ntk():
    """Thm 4.10 vs Geifman et al.: exponential decay C^-k for the BWNN NTK, polynomial k^-d for the ReLU NTK."""
    d = 5
    k = np.arange(10, 41, 2)
    bwnn = mercer_coefficients_taylor(ntk_bwnn_taylor(500, d=d), d, 40)[k]
    relu = mercer_coefficients_quadrature(lambda t: ntk_relu(t, d=d), d, 40, n_nodes=4000)[k]
    exp_bwnn, poly_bwnn = fit_exponential_decay(k, bwnn), fit_polynomial_decay(k, bwnn)
    exp_relu, poly_relu = fit_exponential_decay(k, relu), fit_polynomial_decay(k, relu)
    assert exp_bwnn["r2"] > 0.999 and exp_bwnn["r2"] > poly_bwnn["r2"]   # a straight line in k
    assert poly_relu["r2"] > 0.999 and poly_relu["r2"] > exp_relu["r2"]  # a straight line in log k
    assert poly_relu["exponent"] == pytest.approx(4.72, abs=0.1)         # about d (calibration: -4.72)
    assert poly_bwnn["exponent"] > 5 * poly_relu["exponent"]
    assert exp_bwnn["rate"] > 5 * exp_relu["rate"]
    # the ratio BWNN / ReLU keeps falling
    ratio = bwnn / relu
    assert np.all(np.diff(np.log(ratio)) < 0) and ratio[-1] < 1e-20


def test_comparison_kernels_decay_like_the_thesis_says():
    d = 5
    k = np.arange(10, 41)
    rgauss = mercer_coefficients_taylor(random_scale_gaussian_taylor(1500, xi=2.0, d=d), d, 40)[k]
    laplace = mercer_coefficients_quadrature(lambda t: laplace_on_sphere(t, s=1.0), d, 40, n_nodes=4000)[k]
    fit_rg = fit_exponential_decay(k, rgauss)
    assert fit_rg["r2"] > 0.9999  # eq. (4.11): A C^-k
    # analytic with its nearest singularity at t0 = 2 (xi = 2): C = t0 + sqrt(t0^2 - 1)
    assert fit_rg["base"] == pytest.approx(2 + math.sqrt(3), rel=0.02)
    fit_lap = fit_polynomial_decay(k, laplace)
    assert fit_lap["r2"] > 0.999 and fit_lap["exponent"] == pytest.approx(d, abs=0.5)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="var_theta"):
        ntk_bwnn(0.5, var_theta=1.5, d=3)
    with pytest.raises(ValueError, match="t must"):
        ntk_bwnn(1.5, d=3)
    with pytest.raises(ValueError, match="xi"):
        gaussian_kernel(np.zeros((2, 2)), xi=0)
    with pytest.raises(ValueError, match="d "):
        mercer_coefficients_quadrature(np.cos, 1, 4)
    with pytest.raises(ValueError, match="k_max"):
        mercer_coefficients_taylor([1.0, 0.5], 3, 4)
    with pytest.raises(ValueError, match="> 0"):
        fit_exponential_decay([1, 2, 3], [1.0, 0.0, 0.1])
    with pytest.raises(ValueError, match="output_dim"):
        empirical_ntk(BinaryWeightNet(3, 4, 4, 2), torch.zeros(2, 3))
