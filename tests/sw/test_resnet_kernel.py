"""Allen-Zhu & Li (seed 003): concept class, learners, kernel baselines, and the ResNet-beats-kernels claim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ultratrain.sw.resnet_kernel import concept as C, kernels as K, learners as Lr

torch.set_num_threads(1)


def test_parity_concept_thresholds_are_exact():
    c = C.ParityConcept()
    x, y = c.sample(2000, np.random.default_rng(0))
    assert set(np.unique(c.base(x))) == {-1.0, 1.0}
    # G(F(x)) = (-1)^i y1 y2 y3 y4: the first output has sign -1
    assert np.allclose(c.composite(c.base(x))[:, 0], -np.prod(x[:, :8], axis=1))
    # learning F but not G leaves exactly k alpha^2 = 1.35 on every sample; zero predictor 16.35 on average
    assert np.allclose(np.sum((y - c.base(x)) ** 2, axis=1), 1.35)
    assert math.isclose(c.base_only_error, 1.35) and math.isclose(c.zero_error, 16.35)
    # ||y||^2 = k + k alpha^2 + 2 alpha <F, G(F)>; the cross term has mean zero
    assert abs(np.mean(np.sum(y ** 2, axis=1)) - 16.35) < 0.1
    with pytest.raises(ValueError, match="dim"):
        C.ParityConcept(dim=7)


def test_smooth_concept_member_is_normalised():
    c = C.SmoothConcept(dim=10, outputs=4, seed=1)
    x, y = c.sample(3000, np.random.default_rng(2))
    assert y.shape == (3000, 4)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0)
    assert abs(np.mean(np.sum(c.base(x) ** 2, axis=1)) - 1.0) < 0.1
    assert np.allclose(y, c.base(x) + 0.3 * c.composite(c.base(x)))


def test_bottleneck_resnet_is_equation_2_1_with_U_equal_V_A():
    torch.manual_seed(0)
    net = Lr.build("resnet3", 6, 11, 3, seed=0)
    x = torch.randn(5, 6)
    h = torch.relu(x @ net.W.T + net.b1)
    U = net.U @ net.A  # (m, k) @ (k, m)
    expected = (h + torch.relu(h @ U.T + net.b2)) @ net.A.T
    assert torch.allclose(net(x), expected, atol=1e-6)
    full = Lr.build("resnet3_full", 6, 11, 3, seed=0)
    assert full.U.shape == (11, 11)
    with pytest.raises(ValueError, match="arch"):
        Lr.build("resnet4", 6, 11, 3, seed=0)


class _NTKTwoLayer(torch.nn.Module):
    """f(x) = sqrt(2/m) sum_j a_j relu(w_j . x), a, w ~ N(0, 1): NTK parameterisation."""

    def __init__(self, dim, width, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(width, dim, generator=g, dtype=torch.float64))
        self.a = torch.nn.Parameter(torch.randn(width, generator=g, dtype=torch.float64))

    def forward(self, x):
        x = x.double()
        return (math.sqrt(2.0 / len(self.a)) * torch.relu(x @ self.w.T) @ self.a)[:, None]


def test_analytic_ntk_matches_wide_network_empirical_ntk():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    J = K.empirical_ntk_features(_NTKTwoLayer(5, 20000, seed=4), x)
    assert np.abs(J @ J.T - K.ntk_relu_kernel(x, x, depth=2)).max() < 0.05
    # on the sphere the diagonal of the depth-L NTK is L (each layer adds Sigma = 1 times Sigma_dot = 1)
    assert np.allclose(np.diag(K.ntk_relu_kernel(x, x, depth=3)), 3.0)


def test_kernel_ridge_interpolates_with_vanishing_ridge():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 4))
    y = rng.normal(size=(30, 2))
    Kx = K.ntk_relu_kernel(x / 2, x / 2, depth=2, bias=0.5)
    assert np.allclose(K.kernel_ridge(Kx, y, Kx, 1e-12), y, atol=1e-5)


def test_resnet_learner_beats_kernel_baselines_on_the_concept_class():
    """Section 8.1 at N = 500 (short training): the ResNet's test error is below every kernel's."""
    from ultratrain.sw.resnet_kernel.exp_resnet_vs_kernels import run, summarize

    results = run(ns=[500], seeds=[0], width=100, epochs_at_500=150, max_steps=1500, lr=0.05, wd=5e-3,
                  decay_at=2.0, workers=1, kernels=("ntk2", "rf", "resnet3_last"), nets=("resnet3",))
    s = summarize(results)
    resnet = s["resnet3"]["500"]
    kernels = {m: v["500"] for m, v in s.items() if m != "resnet3"}
    assert resnet < min(kernels.values()), (resnet, kernels)
    # and the kernels have not even learned the base signal F at this N
    assert min(kernels.values()) > 1.35


@pytest.mark.slow
def test_resnet_learns_part_of_the_composite_signal():
    """Full-length training at N = 500: only the ResNet gets below k alpha^2 = 1.35."""
    c = C.ParityConcept()
    x, y = c.sample(500, np.random.default_rng(0))
    xt, yt = c.sample(4000, np.random.default_rng(1))
    errs = {}
    for arch in ("resnet3", "fc2"):
        net = Lr.build(arch, 30, 200, 15, seed=0)
        r = Lr.train_sgd(net, x, y, Lr.TrainConfig(epochs=400, lr=0.05, weight_decay=5e-3, decay_at=2.0), xt, yt)
        errs[arch] = r["test_error"]
    assert errs["resnet3"] < 1.35 < errs["fc2"]
