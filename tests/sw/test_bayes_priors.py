"""Priors (eq. 2.8, 2.16-2.22), the pruning rule (section 2.2.4), likelihoods (2.5, 2.7) and U (2.11, 2.14)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, stats
from torch import nn

from ultratrain.sw.bayes import (CPLinear, TTLinear, TuckerLinear, classification_nll, model_neg_log_prior,
                                 potential, pruning_mask, pruning_threshold, regression_nll, stochastic_potential)
from ultratrain.sw.bayes import priors

torch.set_num_threads(1)
D = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- densities


def test_gamma_family_densities_match_scipy():
    x = torch.tensor([0.1, 0.7, 2.5, 9.0], dtype=D)
    a, b = 2.5, 0.7
    assert math.isclose(float(priors.gamma_neg_log_pdf(x, a, b)),
                        -stats.gamma.logpdf(x.numpy(), a, scale=1 / b).sum(), rel_tol=1e-12)
    # log-Gamma: density of log(lambda) = Gamma density times the Jacobian lambda
    expected = -(stats.gamma.logpdf(x.numpy(), a, scale=1 / b) + np.log(x.numpy())).sum()
    assert math.isclose(float(priors.log_gamma_neg_log_pdf(torch.log(x), a, b)), expected, rel_tol=1e-12)
    assert math.isclose(float(priors.inverse_gamma_neg_log_pdf(x, a, b)),
                        -stats.invgamma.logpdf(x.numpy(), a, scale=b).sum(), rel_tol=1e-12)
    g = torch.tensor([-1.0, 0.3, 2.0], dtype=D)
    assert math.isclose(float(priors.gaussian_neg_log_pdf(g, math.log(4.0))),
                        -stats.norm.logpdf(g.numpy(), scale=0.5).sum(), rel_tol=1e-12)


def test_log_gamma_density_integrates_to_one():
    a, b = 1.5, 0.2
    value, _ = integrate.quad(lambda t: math.exp(-float(priors.log_gamma_neg_log_pdf(torch.tensor(t, dtype=D), a, b))),
                              -40, 10, limit=200)
    assert abs(value - 1) < 1e-8


def test_cp_variance_form_2_22_equals_the_log_precision_form_up_to_the_jacobians():
    g = _gen(1)
    factors = [torch.randn(n, 3, generator=g, dtype=D) for n in (4, 5, 6)]
    log_lambda = torch.tensor([-0.5, 0.2, 1.3], dtype=D)
    a, b = 2.0, 0.5
    variance_form = priors.cp_neg_log_prior_variance(factors, torch.exp(-log_lambda), a, b)
    precision_form = priors.cp_neg_log_prior(factors, log_lambda, a, b)
    # v = 1/lambda: -log p_v = -log p_loglambda + sum log v
    assert math.isclose(float(variance_form), float(precision_form - log_lambda.sum()), rel_tol=1e-12)


def test_tt_prior_equals_the_explicit_sum_over_fibres_of_eq_2_8():
    g = _gen(2)
    layer = TTLinear((2, 3, 2), (2, 2, 3), ranks=(3, 2), low_rank_prior=True, alpha=1.5, beta=0.5, generator=g).double()
    with torch.no_grad():
        layer.tt.log_lambdas[0].copy_(torch.tensor([0.1, -0.4, 0.9]))
        layer.tt.log_lambdas[1].copy_(torch.tensor([1.2, -0.3]))
    lam = [np.ones(1), np.exp(layer.tt.log_lambdas[0].detach().numpy()),
           np.exp(layer.tt.log_lambdas[1].detach().numpy()), np.ones(1)]
    expected = 0.0
    for k, core in enumerate(layer.tt.cores):
        c = core.detach().numpy()
        for i in range(c.shape[0]):
            for j in range(c.shape[2]):
                expected -= stats.norm.logpdf(c[i, :, j], scale=1 / math.sqrt(lam[k][i] * lam[k + 1][j])).sum()
    for lk in lam[1:3]:
        expected -= (stats.gamma.logpdf(lk, 1.5, scale=1 / 0.5) + np.log(lk)).sum()
    assert math.isclose(float(layer.neg_log_prior().detach()), expected, rel_tol=1e-10)


@pytest.mark.parametrize("core_precision", ["product", "geometric"])
def test_tucker_prior_equals_the_explicit_sum_of_eq_2_16_2_17(core_precision):
    g = _gen(3)
    layer = TuckerLinear((3, 2), (4,), ranks=(2, 2, 3), low_rank_prior=True, alpha=2.0, beta=0.3, core_scale=0.7,
                         generator=g, core_precision=core_precision).double()
    with torch.no_grad():
        for lh in layer.log_lambdas:
            lh.copy_(torch.linspace(-0.5, 0.8, lh.numel()))
    lam = [np.exp(lh.detach().numpy()) for lh in layer.log_lambdas]
    expected = 0.0
    for k, U in enumerate(layer.factors):
        expected -= stats.norm.logpdf(U.detach().numpy(), scale=1 / np.sqrt(lam[k])[None, :]).sum()
    core = layer.core.detach().numpy()
    for idx in np.ndindex(core.shape):
        precision = np.prod([lam[k][r] for k, r in enumerate(idx)])
        # (2.17)'s product, or its cube root (three modes) in this project's geometric variant
        var = 0.7 / (precision if core_precision == "product" else precision ** (1 / 3))
        expected -= stats.norm.logpdf(core[idx], scale=math.sqrt(var))
    for lk in lam:
        expected -= (stats.gamma.logpdf(lk, 2.0, scale=1 / 0.3) + np.log(lk)).sum()
    assert math.isclose(float(layer.neg_log_prior().detach()), expected, rel_tol=1e-10)
    # n_r: the column of U(k) plus the core slice, which carries lambda_r to the power 1 (product) or 1/3
    share = 1.0 if core_precision == "product" else 1 / 3
    assert [n.tolist() for n in layer.slice_sizes()] == [
        pytest.approx([3 + share * 6] * 2), pytest.approx([2 + share * 6] * 2), pytest.approx([4 + share * 4] * 3)]
    with pytest.raises(ValueError, match="core_precision"):
        TuckerLinear((3, 2), (4,), ranks=(2, 2, 3), low_rank_prior=True, core_precision="mean")


# ---------------------------------------------------------------- pruning rule


def test_pruning_threshold_uses_the_rate_parametrization():
    # log(alpha + n/2) - log(beta) - eps
    assert math.isclose(float(pruning_threshold(40, 2.0, 0.5, 0.1)), math.log(22.0) - math.log(0.5) - 0.1)
    with pytest.raises(ValueError, match="beta"):
        pruning_threshold(4, 1.0, -1.0, 0.1)
    with pytest.raises(ValueError, match="eps"):
        pruning_threshold(4, 1.0, 1.0, -0.1)


def test_pruning_mask_removes_exactly_the_slices_at_or_above_the_threshold():
    n = torch.tensor([10.0, 10.0, 30.0, 30.0, 30.0])
    thr = pruning_threshold(n, 1.0, 0.1, 0.05)
    lh = thr + torch.tensor([-1e-9, 0.0, 1e-3, -1e-3, -2.0], dtype=D)
    assert pruning_mask(lh, n, 1.0, 0.1, 0.05).tolist() == [False, True, True, False, False]
    # all flagged: min_keep rescues the least shrunk slice (smallest lambda_hat)
    lh_all = thr + torch.tensor([0.5, 0.1, 0.3, 0.2, 0.4], dtype=D)
    assert pruning_mask(lh_all, n, 1.0, 0.1, 0.05, min_keep=1).tolist() == [True, False, True, True, True]
    with pytest.raises(ValueError, match="n_r"):
        pruning_mask(lh, torch.ones(3), 1.0, 0.1, 0.05)


def test_tt_pruning_removes_the_right_slices_with_the_right_n_r_and_keeps_the_weight():
    g = _gen(4)
    alpha, beta, eps = 1.0, 0.2, 0.1
    layer = TTLinear((2, 3, 2), (3, 2, 2), ranks=(4, 3), low_rank_prior=True, alpha=alpha, beta=beta,
                     generator=g).double()
    # n_r for interior rank 1: S_1 R_0 + S_2 R_2 = 6*1 + 6*3; interior rank 2: S_2 R_1 + S_3 R_3 = 6*4 + 4*1
    n1, n2 = [n[0].item() for n in layer.tt.slice_sizes()]
    assert (n1, n2) == (24.0, 28.0)
    t1, t2 = float(pruning_threshold(n1, alpha, beta, eps)), float(pruning_threshold(n2, alpha, beta, eps))
    with torch.no_grad():
        layer.tt.log_lambdas[0].copy_(torch.tensor([t1 + 0.01, t1 - 0.01, 0.0, t1], dtype=D))
        layer.tt.log_lambdas[1].copy_(torch.tensor([0.0, t2 + 1.0, t2 - 1e-6], dtype=D))
        # the slices that go are zero, so the weight must not change
        layer.tt.cores[0][:, :, [0, 3]] = 0.0
        layer.tt.cores[1][[0, 3]] = 0.0
        layer.tt.cores[1][:, :, 1] = 0.0
        layer.tt.cores[2][1] = 0.0
    before = layer.weight().detach().clone()
    removed = layer.prune(eps)
    assert removed == [[0, 3], [1]]
    assert layer.ranks == (2, 2)
    assert [tuple(c.shape) for c in layer.tt.cores] == [(1, 6, 2), (2, 6, 2), (2, 4, 1)]
    assert torch.allclose(layer.weight(), before, atol=1e-14)
    assert torch.allclose(layer.tt.log_lambdas[0].detach(), torch.tensor([t1 - 0.01, 0.0], dtype=D))


def test_tt_lambda_conditional_optimum_reaches_the_threshold_bound_only_for_a_zero_slice():
    """The threshold is the sup of lambda_hat's conditional mode; only an all-zero slice attains it."""
    g = _gen(5)
    alpha, beta = 1.0, 0.05
    layer = TTLinear((4, 3), (2, 5), ranks=(3,), low_rank_prior=True, alpha=alpha, beta=beta, generator=g).double()
    with torch.no_grad():
        layer.tt.cores[0][:, :, 2] = 0.0
        layer.tt.cores[1][2] = 0.0
    lh = layer.tt.log_lambdas[0]
    opt = torch.optim.LBFGS([lh], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = layer.neg_log_prior()
        value.backward()
        return value
    opt.step(closure)
    n = layer.tt.slice_sizes()[0]
    squares = (layer.tt.cores[0] ** 2).sum(dim=(0, 1)) + (layer.tt.cores[1] ** 2).sum(dim=(1, 2))
    closed_form = torch.log((alpha + n / 2) / (beta + squares.detach() / 2))
    assert torch.allclose(lh.detach(), closed_form, atol=1e-6)
    assert layer.prune(eps=1e-4) == [[2]]
    assert layer.ranks == (2,)


def test_tucker_and_cp_pruning_remove_the_flagged_components_and_keep_the_weight():
    g = _gen(6)
    tucker = TuckerLinear((4, 3), (5,), ranks=(3, 3, 4), low_rank_prior=True, alpha=1.0, beta=0.5, generator=g).double()
    n = [v[0].item() for v in tucker.slice_sizes()]
    assert n == [4 + 12, 3 + 12, 5 + 9]
    with torch.no_grad():
        tucker.log_lambdas[2][1] = float(pruning_threshold(n[2], 1.0, 0.5, 0.0)) + 0.1
        tucker.core[:, :, 1] = 0.0
    before = tucker.weight().detach().clone()
    assert tucker.prune(eps=0.0) == [[], [], [1]]
    assert tucker.ranks == (3, 3, 3) and tucker.factors[2].shape == (5, 3)
    assert torch.allclose(tucker.weight(), before, atol=1e-14)

    cp = CPLinear((4, 3), (5,), rank=4, low_rank_prior=True, alpha=1.0, beta=0.5, generator=g).double()
    assert cp.slice_sizes()[0][0].item() == 12
    with torch.no_grad():
        cp.log_lambda[[0, 2]] = float(pruning_threshold(12, 1.0, 0.5, 0.0))
        cp.factors[1][:, [0, 2]] = 0.0
    before = cp.weight().detach().clone()
    assert cp.prune(eps=0.0) == [[0, 2]]
    assert cp.ranks == (2,)
    assert torch.allclose(cp.weight(), before, atol=1e-14)


def test_pruning_needs_the_low_rank_prior():
    with pytest.raises(ValueError, match="low_rank_prior"):
        TTLinear((2, 2), (2, 2), ranks=2).prune(0.1)


# ---------------------------------------------------------------- likelihoods and U


def test_classification_nll_is_eq_2_5_for_indices_and_one_hot_targets():
    g = _gen(7)
    logits = torch.randn(6, 4, generator=g, dtype=D)
    y = torch.tensor([0, 3, 1, 1, 2, 0])
    expected = F.cross_entropy(logits, y, reduction="sum")
    assert torch.allclose(classification_nll(logits, y), expected)
    assert torch.allclose(classification_nll(logits, F.one_hot(y, 4).to(D)), expected)
    with pytest.raises(ValueError):
        classification_nll(logits, y[:3])


def test_regression_nll_is_eq_2_7_with_sigma_as_standard_deviation():
    g = _gen(8)
    f, y = torch.randn(5, generator=g, dtype=D), torch.randn(5, generator=g, dtype=D)
    assert math.isclose(float(regression_nll(f, y, sigma=0.3)), -stats.norm.logpdf(y, f, 0.3).sum(), rel_tol=1e-12)
    log_tau = torch.tensor(math.log(4.0), dtype=D)
    assert math.isclose(float(regression_nll(f, y, log_tau=log_tau)), -stats.norm.logpdf(y, f, 0.5).sum(),
                        rel_tol=1e-12)
    with pytest.raises(ValueError, match="sigma"):
        regression_nll(f, y, sigma=0.0)


def test_stochastic_potential_is_unbiased_and_the_prior_covers_every_parameter():
    g = _gen(9)
    torch.manual_seed(0)
    model = nn.Sequential(TTLinear((2, 4), (3, 2), ranks=2, low_rank_prior=True), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(12, 8, generator=g, dtype=D)
    y = torch.randint(0, 3, (12,), generator=g)
    full = potential(model, x, y)
    batches = [stochastic_potential(model, x[i:i + 4], y[i:i + 4], dataset_size=12) for i in range(0, 12, 4)]
    assert torch.allclose(sum(batches) / 3, full)
    # the TT layer's own prior + N(0, 1) on the TT bias and on the dense layer's weight and bias
    plain = [model[0].bias, model[2].weight, model[2].bias]
    expected = model[0].neg_log_prior() + sum(priors.gaussian_neg_log_pdf(p, 0.0) for p in plain)
    assert torch.allclose(model_neg_log_prior(model), expected)
    assert torch.allclose(full - model_neg_log_prior(model), classification_nll(model(x), y))
    with pytest.raises(ValueError, match="likelihood"):
        stochastic_potential(model, x, y, 12, likelihood="poisson")
