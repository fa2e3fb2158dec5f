"""The low-rank prior (eq. 3.3), its closed-form rank update (eq. 3.4) and rank pruning, in PyTorch
(sw/tt/prior.py) and numpy (host/model.py)."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from ultratrain.host import model as host_model
from ultratrain.sim.compiler import NetworkSpec, TTLayerSpec
from ultratrain.sw.tt.layers import TTLinear, dense_weight
from ultratrain.sw.tt.prior import lambda_update, low_rank_prior, prune_layer

SPEC = TTLayerSpec((7, 4, 2, 16), (4, 4, 2, 16), (16, 16, 16), "relu", "L0")


def _cores(seed=0):
    rng = np.random.default_rng(seed)
    cores = [rng.standard_normal(SPEC.core_shape(k)) * rng.uniform(0.01, 1, size=SPEC.core_shape(k)[-1])
             for k in range(SPEC.d)]
    return [torch.tensor(c) for c in cores]


def test_eq34_minimizes_eq33():
    cores = _cores()
    lam = lambda_update(cores)
    best = float(low_rank_prior(cores, lam))
    rng = np.random.default_rng(1)
    for _ in range(50):                                   # any other positive lambda is worse
        other = [l_ * torch.tensor(np.exp(rng.normal(0, 0.3, size=l_.shape))) for l_ in lam]
        assert float(low_rank_prior(cores, other)) > best
    # one coordinate at a time, against a numerical 1-D minimizer of eq. 3.3
    for n in range(SPEC.d - 1):
        for k in (0, 5, 15):
            def f(log_l):
                trial = [l_.clone() for l_ in lam]
                trial[n][k] = float(np.exp(log_l))
                return float(low_rank_prior(cores, trial))
            res = minimize_scalar(f, bracket=(np.log(float(lam[n][k])) - 1, np.log(float(lam[n][k])) + 1),
                                  tol=1e-12)
            assert np.exp(res.x) == pytest.approx(float(lam[n][k]), rel=1e-5)
    # the gradient of eq. 3.3 in lambda vanishes there
    lam_var = [l_.clone().requires_grad_(True) for l_ in lam]
    low_rank_prior(cores, lam_var).backward()
    for n, l_ in enumerate(lam_var):
        # d/dlambda = -S/lambda^2 + c/lambda: scaled by lambda / c it is a relative error
        c = (1 + np.prod(cores[n].shape[:3])) / 2
        assert float((l_.grad * l_.detach()).abs().max()) < 1e-10 * c


def test_numpy_and_torch_prior_agree():
    cores = _cores(2)
    np_cores = [c.numpy() for c in cores]
    lam_t = lambda_update(cores)
    lam_n = host_model.lambda_update(np_cores)
    for a, b in zip(lam_t, lam_n):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-13)
    assert host_model.prior_value(np_cores, lam_n) == pytest.approx(float(low_rank_prior(cores, lam_t)), rel=1e-12)
    grads = host_model.prior_grad(np_cores, lam_n)
    cores_var = [c.clone().requires_grad_(True) for c in cores]
    low_rank_prior(cores_var, lam_t).backward()
    assert cores_var[-1].grad is None and not grads[-1].any()     # the last core carries no lambda
    for g, c in zip(grads[:-1], cores_var[:-1]):
        np.testing.assert_allclose(g, c.grad.numpy(), rtol=1e-12, atol=1e-14)


def _layer_with_weak_slices():
    rng = np.random.default_rng(3)
    unit = [rng.uniform(-0.9, 0.9, size=SPEC.core_shape(k)) for k in range(SPEC.d)]
    weak = {0: [2, 7], 1: [0, 15], 2: [4]}                 # internal rank index (0-based) -> weak slices
    for n, ks in weak.items():
        for k in ks:
            unit[n][..., k] *= 1e-3
    return TTLinear(SPEC, [0, 0, 0, 0], unit), weak


def test_pruning_removes_exactly_the_slices_below_threshold_and_keeps_the_function():
    layer, weak = _layer_with_weak_slices()
    threshold = 1e-3
    lam = lambda_update(layer.cores)
    expected = {(n + 1, k) for n, l_ in enumerate(lam) for k in range(16) if float(l_[k]) < threshold * float(l_.max())}
    assert expected == {(n + 1, k) for n, ks in weak.items() for k in ks}
    # the reference: the same layer with those slices zeroed (not removed)
    zeroed = [c.detach().clone() for c in layer.cores]
    for n, k in expected:
        zeroed[n - 1][..., k] = 0
        zeroed[n][k] = 0
    x = torch.rand(8, SPEC.in_features, dtype=torch.float64)
    before = x @ dense_weight(zeroed) + layer.bias.detach()

    removed = prune_layer(layer, threshold)
    assert set(removed) == expected
    assert layer.ranks == tuple(16 - len(weak[n]) for n in range(3))
    torch.testing.assert_close(layer(x).detach(), before, rtol=0, atol=1e-12)


def test_host_pruning_zeroes_the_same_slices_and_keeps_hardware_ranks():
    layer, weak = _layer_with_weak_slices()
    spec = NetworkSpec((SPEC, TTLayerSpec((32, 16), (1, 16), (16,), "none", "L1")))
    model = host_model.TTModel(spec, np.random.default_rng(0), precision="float")
    model.cores[0] = [c.detach().numpy().copy() for c in layer.cores]
    model.update_lambdas()
    events = model.prune(1e-3)
    assert {(e.layer, e.rank, e.slice) for e in events} == {(0, n + 1, k) for n, ks in weak.items() for k in ks}
    assert model.effective_ranks() == [[14, 14, 15], [16]]
    assert [c.shape for c in model.cores[0]] == [SPEC.core_shape(k) for k in range(SPEC.d)]   # hardware ranks
    for n, ks in weak.items():
        for k in ks:
            assert not model.cores[0][n][..., k].any() and not model.cores[0][n + 1][k].any()
    prune_layer(layer, 1e-3)
    W_host = SPEC.dense_weight(model.cores[0])                 # unit cores (TTLinear above has shifts 0)
    W_torch = dense_weight([c.detach() for c in layer.cores]).numpy()
    np.testing.assert_allclose(W_host, W_torch, rtol=0, atol=1e-12)
    # effective sizes follow the effective ranks
    r = [14, 14, 15]
    cores = 28 * r[0] + 16 * r[0] * r[1] + 4 * r[1] * r[2] + 256 * r[2] + 288 * 16
    assert model.effective_params() == cores + 512 + 16
    assert host_model.memory_bits(spec, model.effective_ranks(), "fixed") == 4 * cores + 8 * 528
