"""Claims of Telgarsky's notes checked on the constructions in ultratrain.sw.telgarsky."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from ultratrain.sw.telgarsky import barron, constructions as C, ntk, piecewise as P
from ultratrain.sw.telgarsky.depth_separation import fit_shallow, theorem44_architectures

torch.set_num_threads(1)


# ------------------------------------------------------------------------ section 4.1: triangle map

@pytest.mark.parametrize("depth", range(1, 11))
def test_triangle_composition_has_exactly_2_to_the_L_pieces(depth):
    f = P.propagate(C.triangle_network(depth), 0, 1, exact=True)
    assert f.count_pieces() == 2 ** depth
    # breakpoints are the dyadic points k / 2^L, 0 < k < 2^L
    assert list(f.breakpoints()) == [Fraction(k, 2 ** depth) for k in range(1, 2 ** depth)]
    assert sum(len(b) for _, b in C.triangle_network(depth)[:-1]) == 3 * depth


def test_triangle_network_matches_closed_form_and_fractal_property():
    x = np.linspace(-0.5, 1.5, 20001)
    for L in (1, 2, 5, 9):
        net = P.evaluate(C.triangle_network(L), x)[:, 0]
        assert np.allclose(net, C.triangle(x, L), atol=1e-12)
        inside = (x >= 0) & (x <= 1)
        assert np.allclose(C.triangle_fractal(x[inside], L), C.triangle(x[inside], L), atol=1e-12)


def test_triangle_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        C.triangle_network(0)


@pytest.mark.parametrize("log2_dim", [1, 2, 3, 4])
def test_parity_network_is_exact_on_the_whole_cube(log2_dim):
    d = 2 ** log2_dim
    X = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
    out = P.evaluate(C.parity_network(log2_dim), X)[:, 0]
    assert np.array_equal(np.round(out, 9), X.prod(axis=1))


def test_books_uncorrected_parity_formula_fails():
    # the notes' Delta^(L-1)((d + sum x) / (2d)) is not the parity (this is why the corrected form is used)
    d, L = 4, 2
    X = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
    book = C.triangle((d + X.sum(1)) / (2 * d), L - 1)
    assert not np.allclose(book, X.prod(1))


@pytest.mark.parametrize("order", range(1, 9))
def test_squaring_sup_error_is_exactly_four_to_minus_i_plus_one(order):
    f = P.propagate(C.squaring_network(order), 0, 1, exact=True)
    mids = [((a + b) / 2) ** 2 - (va + vb) / 2
            for a, b, va, vb in zip(f.knots[:-1], f.knots[1:], f.values[:-1, 0], f.values[1:, 0])]
    assert max(abs(m) for m in mids) == Fraction(1, 4 ** (order + 1))
    x = np.linspace(0, 1, 4097)
    assert np.allclose(P.evaluate(C.squaring_network(order), x)[:, 0], C.squaring_reference(x, order), atol=1e-14)


def test_product_by_polarization_within_four_to_minus_i():
    rng = np.random.default_rng(0)
    x, y = rng.random(20000), rng.random(20000)
    for i in (2, 4, 6):
        assert np.abs(C.product_approx(x, y, i) - x * y).max() <= 3 * 4.0 ** -(i + 1)
        assert np.abs(C.product_approx(x, y, i, form="zero_preserving") - x * y).max() <= 6 * 4.0 ** -(i + 2)
    z = rng.random(5)
    # Corollary 4.3's "g(x, 0) = 0" fails for the notes' formula but holds for the variant
    assert np.abs(C.product_approx(np.zeros(5), z, 3)).max() > 1e-3
    assert np.all(C.product_approx(np.zeros(5), z, 3, form="zero_preserving") == 0)
    assert np.all(C.product_approx(z, np.zeros(5), 3, form="zero_preserving") == 0)


# ------------------------------------------------------------------- section 4.2: depth separation

def test_piece_counts_of_random_networks_respect_lemma_4_9():
    rng = np.random.default_rng(1)
    for widths in [(3,), (5,), (2, 3), (4, 4), (3, 2, 3)]:
        for _ in range(5):
            dims = (1, *widths, 1)
            layers = [(rng.normal(size=(dims[i + 1], dims[i])), rng.normal(size=dims[i + 1]))
                      for i in range(len(dims) - 1)]
            f = P.propagate(layers, -50.0, 50.0)
            layerwise, amgm = P.affine_piece_bound(widths)
            assert f.count_pieces() <= layerwise <= amgm + 1e-9
            x = np.linspace(-50, 50, 100001)
            assert np.allclose(f(x)[:, 0], P.evaluate(layers, x)[:, 0], atol=1e-8)


def test_l1_distance_is_exact():
    half = P.PiecewiseAffine(P._as_exact([Fraction(0), Fraction(1)]), P._as_exact([[Fraction(1, 2)], [Fraction(1, 2)]]))
    for k in (1, 3, 6):
        f = P.propagate(C.triangle_network(k), 0, 1, exact=True)
        assert P.l1_distance(f, half) == 0.25


def test_shallow_interpolant_needs_2_to_the_k_nodes_for_delta_k():
    for k in (2, 5, 8):
        f = P.propagate(C.triangle_network(k), 0.0, 1.0)
        net = C.shallow_interpolant(f)
        assert net[0][0].shape[0] == 2 ** k
        x = np.linspace(0, 1, 10001)
        assert np.allclose(P.evaluate(net, x)[:, 0], C.triangle(x, k), atol=1e-9)


def test_trained_shallow_networks_cannot_beat_the_theorem_4_4_floor():
    # the trainer is able: 4 ReLUs fit Delta^1 (2 pieces) almost exactly ...
    easy = fit_shallow(1, (4,), seed=0, steps=600)
    assert easy.l1 < 0.02
    # ... but with <= 2^L nodes in <= L layers it stays >= 1/32 from Delta^(L^2 + 2)
    for widths in theorem44_architectures(2):
        hard = fit_shallow(6, widths, seed=0, steps=600)
        assert hard.l1 >= 1 / 32
        assert hard.pieces <= P.affine_piece_bound(widths)[0]
    assert P.l1_distance(P.propagate(C.triangle_network(6), 0.0, 1.0),
                         P.propagate(C.triangle_network(6), 0.0, 1.0)) == 0.0


# --------------------------------------------------------------- chapter 2: universal approximation

def test_proposition_2_1_threshold_network():
    g = lambda x: np.sin(2 * np.pi * x)  # noqa: E731
    x = np.linspace(0, 1, 100001)
    for eps in (0.2, 0.05):
        net = C.threshold_network(g, 2 * np.pi, eps)
        assert net.nodes == math.ceil(2 * np.pi / eps)
        assert np.abs(net(x) - g(x)).max() <= eps
    with pytest.raises(ValueError, match="eps"):
        C.threshold_network(g, 1.0, 0.0)


def test_theorem_2_3_box_network_l1_error():
    g = lambda X: np.sin(2 * X[:, 0]) * np.cos(3 * X[:, 1])  # noqa: E731
    n = 300
    u = (np.arange(n) + 0.5) / n
    grid = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    for eps in (0.4, 0.2):
        net = C.box_network(g, math.sqrt(13), eps, 2)
        assert net.k == math.ceil(math.sqrt(13) * math.sqrt(2) / eps)
        assert np.abs(net(grid) - g(grid)).mean() <= 2 * eps


def test_theorem_2_5_exp_then_relu_construction():
    g = lambda X: np.sin(2 * np.pi * X[:, 0]) * X[:, 1]  # noqa: E731
    net = C.exp_relu_network(g, 2, eps=0.1, features=80, scale=2.0)
    u = np.linspace(0, 1, 101)
    grid = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    step1 = np.abs(net.exp_features(grid) - g(grid)).max()
    assert step1 <= 0.05
    assert np.abs(net(grid) - g(grid)).max() <= 0.1
    r = np.linspace(-net.radius, net.radius, 777)
    assert np.allclose(net.relu_interp(r), np.interp(r, net.knots, np.exp(net.knots)), rtol=1e-9)
    assert np.abs(net.relu_interp(r) - np.exp(r)).max() <= net.interp_error_bound()


# ------------------------------------------------------------------------- section 2.4: sampling

def _sampling_mse(kind, widths, repeats, points, dim=1):
    out = []
    for w in widths:
        errs = []
        for r in range(repeats):
            rng = np.random.default_rng(7919 * w + r)
            if kind == "univariate":
                net = barron.sample_univariate(lambda t: 2 * np.pi * np.cos(2 * np.pi * t), 0.0, w, rng)
                errs.append(barron.l2_error(net, lambda x: np.sin(2 * np.pi * x[:, 0]), points) ** 2)
            else:
                net = barron.sample_gaussian_barron(dim, w, rng)
                errs.append(barron.l2_error(net, barron.gaussian_bump, points) ** 2)
        out.append(np.mean(errs))
    return np.array(out)


def test_univariate_sampling_error_follows_one_over_sqrt_m_and_maurey_bound():
    pts = np.linspace(0, 1, 1001)[:, None]
    widths = np.array([16, 64, 256, 1024, 4096])
    mse = _sampling_mse("univariate", widths, 40, pts)
    slope = np.polyfit(np.log(widths), np.log(np.sqrt(mse)), 1)[0]
    assert -0.6 < slope < -0.4
    Z = barron.univariate_mass(lambda t: 2 * np.pi * np.cos(2 * np.pi * t))
    assert abs(Z - 4.0) < 1e-6
    assert np.all(mse <= Z ** 2 / widths)


def test_gaussian_barron_sampling_matches_maurey_variance_identity():
    rng = np.random.default_rng(3)
    d = 3
    pts = barron.uniform_ball(500, d, rng)
    widths = np.array([16, 128, 1024, 4096])
    mse = _sampling_mse("gaussian", widths, 60, pts, dim=d)
    second = barron.gaussian_barron_second_moment(pts, rng, samples=400000)
    target_sq = np.mean((barron.gaussian_bump(pts) - 1) ** 2)
    predicted = (second - target_sq) / widths
    # mean of 60 squared errors: relative sd about sqrt(2/60) ~ 0.2 at worst
    assert np.all(np.abs(mse / predicted - 1) < 0.45)
    assert np.all(mse <= second / widths * 1.45)
    slope = np.polyfit(np.log(widths), np.log(np.sqrt(mse)), 1)[0]
    assert -0.6 < slope < -0.4
    # Theorem 2.12's mass bound: ||mu||_1 <= 2 int ||grad g~|| = 4 pi E||w||
    mass = barron.gaussian_barron_mass(d, rng)
    w = rng.normal(0, 1 / math.sqrt(2 * math.pi), size=(400000, d))
    assert mass <= 4 * math.pi * np.linalg.norm(w, axis=1).mean()


def test_gaussian_barron_estimator_is_unbiased():
    rng = np.random.default_rng(4)
    x = barron.uniform_ball(50, 2, rng)
    net = barron.sample_gaussian_barron(2, 400000, rng)
    assert np.abs(net(x) - barron.gaussian_bump(x)).max() < 0.05


# ------------------------------------------------------------------------ chapter 3: NTK

def test_empirical_ntk_converges_to_proposition_3_23():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 4))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    K = ntk.ntk_relu(x, x)
    assert np.allclose(np.diag(K), 0.5)
    errs = [np.abs(ntk.empirical_ntk(ntk.init_two_layer(m, 4, np.random.default_rng(6)), x, x) - K).max()
            for m in (1000, 100000)]
    assert errs[1] < 0.01 and errs[1] < errs[0] / 3
    with pytest.raises(ValueError, match="unit"):
        ntk.ntk_relu(2 * x, x)


def test_linearization_gap_after_training_shrinks_with_width():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(20, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2]
    Xt = rng.normal(size=(300, 3))
    Xt /= np.linalg.norm(Xt, axis=1, keepdims=True)
    gaps, radii = [], []
    for m in (32, 2048):
        init = ntk.init_two_layer(m, 3, np.random.default_rng(8))
        V = ntk.train_first_layer(init, X, Y, steps=400, lr=0.5)
        gaps.append(np.abs(init.forward(Xt, V) - init.linearized(Xt, V)).max())
        radii.append(np.linalg.norm(V - init.V0))
        assert np.mean((init.forward(X, V) - Y) ** 2) < 0.1 * np.mean(Y ** 2)
        assert gaps[-1] <= ntk.prop37_bound(m, radii[-1], 0.01)
    assert gaps[1] < gaps[0] / 4
    assert radii[1] < 3 * radii[0]  # the Frobenius distance stays O(1) as width grows


def test_theorem_3_10_construction_proof_constants():
    d, tau, m, delta = 2, 0.3, 14000, 0.01
    init = ntk.init_two_layer(m, d, np.random.default_rng(9))
    ang = np.array([0.3, 2.0, 4.0])
    betas = np.stack([np.cos(ang), np.sin(ang)], 1)
    alphas = np.array([1.0, -0.5, 0.8])
    res = ntk.signal_to_noise_construction(init, alphas, betas, tau)
    rng = np.random.default_rng(10)
    th = rng.random(2000) * 2 * np.pi
    x = np.stack([np.cos(th), np.sin(th)], 1) * np.sqrt(rng.random((2000, 1)))
    F = init.forward_unscaled(x, res.V)
    F0 = init.forward_unscaled(x) + math.sqrt(m) * (init.linearized(x, res.V) - init.forward(x))
    assert np.abs(F - F0).max() < 1e-8  # gates unchanged: F(.; V) = F_0(.; V)
    g = np.maximum(x @ betas.T, 0) @ alphas
    assert np.abs(F - res.c0 * g).max() <= math.sqrt(m) * (16 * d * math.log(m / delta) + np.abs(alphas).sum())
    # the deterministic part of the proof: |F - c0 g| <= |F(x; w0)| + c tau |U| ||alpha||_1
    det = np.abs(init.forward_unscaled(x)) + res.c * tau * len(res.groups[0]) * np.abs(alphas).sum()
    assert np.all(np.abs(F - res.c0 * g) <= det + 1e-9)
    move = np.linalg.norm(res.V - init.V0, axis=1)
    assert math.isclose(move.max(), res.c * np.abs(alphas).max(), rel_tol=1e-12)
    # the statement's max-row bound is violated by the construction (erratum recorded in the docs)
    assert move.max() > 2 ** (d + 1) * np.abs(alphas).max() / (tau ** (d - 1) * math.sqrt(m))
    with pytest.raises(ValueError, match="tau"):
        ntk.signal_to_noise_construction(init, alphas, betas, 1.0)


@pytest.mark.slow
def test_quick_experiment_reproduces_the_panels(tmp_path):
    from ultratrain.sw.telgarsky import exp_telgarsky

    res = exp_telgarsky.main(["--quick", "--out", str(tmp_path), "--workers", "1"])
    assert all(r["pieces"] == 2 ** r["depth"] for r in res["triangle"]["rows"])
    assert res["depth_separation"]["min_l1"] >= 1 / 32
    for name, r in res["barron"].items():
        assert -0.6 < r["rms_slope"] < -0.4, name
    assert res["ntk"]["gap_slope"] < -0.3
    assert (tmp_path / "triangle_depth_separation.png").exists()
    assert (tmp_path / "squaring_barron_ntk.png").exists()
