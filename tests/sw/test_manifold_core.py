"""Unit checks of ultratrain.sw.manifold: embedding, ResNeXt algebra and the Lipschitz bounds of section 6.6."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: extra intra-op threads only add synchronisation on a shared CPU

from ultratrain.sw.manifold.data import embedding_matrix, sample_manifold, target_on_manifold
from ultratrain.sw.manifold.resnext import ConvResNeXt, ResNeXt, path_lipschitz_bound
from ultratrain.sw.manifold.training import ResNeXtConfig, build_model, kernel_ridge_best, predict, train_resnext


def test_embedding_is_an_isometry_so_only_D_changes():
    a = sample_manifold("curve", 50, 4, seed=0)
    b = sample_manifold("curve", 50, 48, seed=0)
    np.testing.assert_allclose(a.coords, b.coords)
    np.testing.assert_allclose(a.f0, b.f0)
    da = np.linalg.norm(a.x[:, None] - a.x[None], axis=-1)
    db = np.linalg.norm(b.x[:, None] - b.x[None], axis=-1)
    np.testing.assert_allclose(da, db, atol=1e-10)
    q = embedding_matrix(16)
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-12)
    torus = sample_manifold("torus", 200, 8, seed=1)
    assert torus.coords.shape == (200, 2)
    for data in (a, b, torus):
        assert np.all(np.abs(data.x) <= 1) and data.f0.min() >= 0 and data.f0.max() <= 1
    with pytest.raises(ValueError, match="ambient_dim"):
        sample_manifold("curve", 10, 3, seed=0)
    with pytest.raises(ValueError, match="manifold"):
        sample_manifold("sphere", 10, 8, seed=0)


@pytest.mark.parametrize("cls", [ResNeXt, ConvResNeXt])
def test_resnext_is_bias_free_and_clipped(cls):
    model = cls(6, n_blocks=2, n_paths=3, path_depth=3, seed=0)
    names = [name for name, _ in model.named_parameters()]
    assert all(name.startswith("layers.") or name == "w_out" for name in names)
    x = 3 * torch.randn(64, 6)
    out = model(x).detach()
    assert out.shape == (64,) and float(out.min()) >= 0 and float(out.max()) <= 1
    z = model.pad(x)
    manual = z + sum(model.path_forward(0, p, z) for p in range(model.n_paths))
    torch.testing.assert_close(model.block_forward(0, z), manual, rtol=1e-5, atol=1e-5)
    # the block without path 2 is the block minus that path's output (Prop. 6.21's f_other)
    torch.testing.assert_close(model.block_forward(0, z, skip_path=2), manual - model.path_forward(0, 2, z),
                               rtol=1e-5, atol=1e-5)


def _max_jacobian_norm(fn, points: torch.Tensor) -> float:
    worst = 0.0
    for point in points:
        jac = torch.autograd.functional.jacobian(fn, point.unsqueeze(0)).reshape(-1, point.numel())
        worst = max(worst, float(torch.linalg.matrix_norm(jac, ord=2)))
    return worst


@pytest.mark.parametrize("conv", [False, True])
def test_path_lipschitz_bound_prop_6_19_6_20(conv):
    torch.manual_seed(0)
    model = (ConvResNeXt(7, 1, 2, 4, channels=5, kernel_size=3, init_scale=2.0, seed=3) if conv
             else ResNeXt(7, 1, 2, 4, width=9, init_scale=2.0, seed=3))
    z = model.pad(torch.randn(12, 7))
    bound = path_lipschitz_bound(float(model.path_squared_norms()[0, 0].detach()), model.path_depth, model.kernel_size)
    measured = _max_jacobian_norm(lambda v: model.path_forward(0, 0, v.view(1, *z.shape[1:])).flatten(), z)
    assert 0 < measured <= bound * (1 + 1e-5)


def test_stack_and_removal_bounds_prop_6_21_6_22():
    torch.manual_seed(1)
    model = ResNeXt(5, n_blocks=3, n_paths=4, path_depth=3, width=6, init_scale=1.5, seed=2)
    x = torch.randn(30, 5)
    z = model.pad(x)
    stack = model.stack_lipschitz_bound()
    assert stack <= float(torch.exp((model.path_squared_norms().detach() / 3).pow(1.5).sum())) * (1 + 1e-6)

    def stream(v):
        out = v.view(1, -1)
        for block in range(model.n_blocks):
            out = model.block_forward(block, out)
        return out.flatten()

    assert _max_jacobian_norm(stream, z) <= stack * (1 + 1e-5)
    # Prop. 6.21: dropping path (1, 2) moves the output by at most ||W_out|| L_post L_path L_pre ||pad(x)||
    norms = model.path_squared_norms().detach()
    per_block = 1 + (norms / 3).pow(1.5).sum(dim=1)
    l_pre, l_post = float(per_block[:1].prod()), float(per_block[2:].prod())
    l_path = path_lipschitz_bound(float(norms[1, 2]), 3)
    with torch.no_grad():
        change = (model(x, clip=False, removed=(1, 2)) - model(x, clip=False)).abs()
    bound = float(model.w_out.detach().norm()) * l_pre * l_path * l_post * z.norm(dim=1)
    assert torch.all(change <= bound * (1 + 1e-5))
    assert float(change.max()) > 0


def test_weight_decay_shrinks_and_sparsifies_the_residual_blocks():
    data = sample_manifold("curve", 100, 6, seed=0)
    cfg = ResNeXtConfig(n_blocks=2, n_paths=4, path_depth=3, width=6, steps=200, lr=1e-2)
    norms, active, errors = [], [], []
    for lam in (1e-5, 3e-2):
        model = build_model(cfg, 6)
        train_resnext(model, data.x, data.y, lam, cfg)
        norms.append(float(model.residual_penalty().detach()))
        active.append(int(model.active_paths(torch.as_tensor(data.x, dtype=torch.float32)).sum()))
        errors.append(float(np.mean((predict(model, data.x) - data.f0) ** 2)))
    assert norms[1] < 0.3 * norms[0]
    assert active[1] <= active[0]
    assert errors[0] < np.var(data.f0)
    with pytest.raises(ValueError, match="lam"):
        train_resnext(build_model(cfg, 6), data.x, data.y, -1.0, cfg)


def test_kernel_ridge_baseline_learns():
    train = sample_manifold("curve", 150, 8, seed=0)
    test = sample_manifold("curve", 300, 8, seed=1)
    result = kernel_ridge_best(train.x, train.y, test.x, test.f0, alphas=[1e-4, 1e-2])
    assert result.mse < 0.2 * np.var(test.f0)
    with pytest.raises(ValueError):
        kernel_ridge_best(train.x, train.y, test.x[:, :3], test.f0)


def test_cases_option_parses_and_rejects_bad_pairs():
    from ultratrain.sw.manifold.exp_resnext_manifold import parse_cases

    assert parse_cases("curve:4, torus:32") == [("curve", 4), ("torus", 32)]
    for bad in ("sphere:4", "curve:3", "curve", "torus:x"):
        with pytest.raises(ValueError, match="manifold:D"):
            parse_cases(bad)


def test_targets_stay_in_the_unit_interval_the_estimators_clip_to():
    """Theorem 6.3 assumes f0 in [0, 1] and predictions are clipped to it: a target above 1 anywhere would
    put an error floor under every estimator. A fine grid through the peak of vary (x = 0.01) checks it."""
    u = np.unique(np.concatenate([np.linspace(0, 1, 2001), [0.01]]))
    curve = target_on_manifold("curve", u[:, None])
    s, t = np.meshgrid(u[::4], u[::4], indexing="ij")
    torus = target_on_manifold("torus", np.stack([s.ravel(), t.ravel()], axis=1))
    for f0 in (curve, torus):
        assert f0.min() >= 0 and f0.max() <= 1 + 1e-12
        assert f0.max() > 0.99  # and they use the interval
