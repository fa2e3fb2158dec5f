"""Zhang, Zepeda-Nunez, Yao, Lin (seed 004): networks, path norm, embedding, data and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultratrain.sw.sumsq import networks as N
from ultratrain.sw.sumsq.exp_sample_complexity import main as sample_complexity_main
from ultratrain.sw.sumsq.exp_sample_complexity import method_spec, samples_to_reach
from ultratrain.sw.sumsq.train import FitConfig, fit, sample

torch.set_num_threads(1)


def test_data_is_sorted_and_scaled():
    x, y = sample(500, 6, np.random.default_rng(0))
    assert np.all(np.diff(x, axis=1) >= 0)
    assert np.all((x >= -1) & (x <= 1))
    assert np.allclose(y, np.sum(x ** 2, axis=1) / 6)
    with pytest.raises(ValueError, match="dim"):
        sample(10, 0, np.random.default_rng(0))


@pytest.mark.parametrize("arch", ["GN", "LCN", "LN"])
def test_dense_weights_reproduce_the_network(arch):
    d, a = 5, 4
    net = N.build(arch, d, a, seed=1)
    with torch.no_grad():  # non-zero biases so the check covers them
        for name, p in net.named_parameters():
            if name.startswith("b"):
                p.normal_()
    x = torch.rand(7, d) * 2 - 1
    W1, W2, w3 = net.dense_weights()
    b1 = net.b1.expand(d, a).reshape(-1) if arch == "LN" else net.b1.reshape(-1)
    b2 = net.b2.expand(d, a).reshape(-1) if arch == "LN" else net.b2.reshape(-1)
    h = torch.relu(x @ W1.T + b1)
    h = torch.relu(h @ W2.T + b2)
    assert torch.allclose(net(x), (h @ w3) / d, atol=1e-6)


def test_path_norm_matches_equation_22_by_brute_force():
    d, a = 3, 2
    net = N.build("GN", d, a, seed=2)
    W1, W2, w3 = (t.detach().numpy() for t in net.dense_weights())
    brute = sum(abs(W1[j, i]) * abs(W2[k, j]) * abs(w3[k])
                for i in range(d) for j in range(d * a) for k in range(d * a)) / d
    assert np.isclose(float(N.path_norm(net)), brute, rtol=1e-6)


def test_local_network_embeds_into_global_network():
    d, a = 4, 3
    ln = N.build("LN", d, a, seed=3)
    with torch.no_grad():
        ln.b1.normal_()
        ln.b2.normal_()
    gn = N.embed_local_into_global(ln, torch.Generator().manual_seed(0))
    x = torch.rand(50, d) * 2 - 1
    assert torch.allclose(ln(x), gn(x), atol=1e-6)
    assert torch.isclose(N.path_norm(ln), N.path_norm(gn))
    # the embedded GN is block-diagonal: the sparse pattern of Fig. 2
    assert int((gn.W2 != 0).sum()) <= d * a * a


def test_samples_to_reach_interpolates_in_log_log():
    assert samples_to_reach([10, 100], [1.0, 0.01], 0.1) == pytest.approx(10 ** 1.5)
    assert samples_to_reach([10, 100], [0.05, 0.01], 0.1) == 10
    assert np.isnan(samples_to_reach([10, 100], [1.0, 0.5], 0.1))


def test_path_norm_regularization_lowers_the_path_norm():
    base = fit(4, 128, FitConfig(arch="GN", alpha=10, max_steps=300, epochs=10 ** 9, min_batch=32))
    reg = fit(4, 128, FitConfig(arch="GN", alpha=10, regularizer="path", lam=1e-4, max_steps=300, epochs=10 ** 9,
                                min_batch=32))
    assert reg.path_norm < 0.6 * base.path_norm
    with pytest.raises(ValueError, match="lam"):
        fit(4, 16, FitConfig(regularizer="path", lam=0.0))


def test_sparse_local_network_beats_dense_at_equal_samples():
    """Section 4.2's architectural bias: LN reaches a much lower test loss than GN with the same data."""
    ln = [fit(4, 128, FitConfig(arch="LN", alpha=10, max_steps=400, epochs=10 ** 9, min_batch=32, seed=s),
              data_seed=s).test_mse for s in range(2)]
    gn = [fit(4, 128, FitConfig(arch="GN", alpha=10, max_steps=400, epochs=10 ** 9, min_batch=32, seed=s),
              data_seed=s).test_mse for s in range(2)]
    assert max(ln) < min(gn)


def test_method_names_can_set_the_penalty_strength():
    assert method_spec("GN+path") == {"arch": "GN", "regularizer": "path", "lam": 1e-6}
    assert method_spec("GN+path=1e-5")["lam"] == 1e-5 and method_spec("GN+l1=2e-8")["regularizer"] == "l1"
    for bad, message in (("MLP", "unknown method"), ("GN=1e-5", "no penalty"), ("GN+path=x", "number"),
                         ("GN+path=0", "positive")):
        with pytest.raises(ValueError, match=message):
            method_spec(bad)


def test_command_line_overrides_run_the_grid_they_name(tmp_path):
    res = sample_complexity_main(["--out", str(tmp_path), "--workers", "1", "--dims", "2", "--ns", "16,32",
                                  "--methods", "GN,GN+path=1e-5", "--seeds", "1", "--alpha", "2", "--steps", "5"])
    assert sorted({(r["method"], r["n"]) for r in res["runs"]}) == [
        ("GN", 16), ("GN", 32), ("GN+path=1e-5", 16), ("GN+path=1e-5", 32)]
    assert res["config"]["alpha"] == 2 and res["config"]["steps"] == 5 and res["config"]["seeds"] == [0]
    assert (tmp_path / "results.json").exists() and (tmp_path / "sample_complexity.png").stat().st_size > 1000
    for argv, message in ((["--ns", "32,16"], "increase"), (["--dims", "0"], "positive"),
                          (["--methods", "GN,XX"], "unknown method"), (["--steps", "0"], "steps")):
        with pytest.raises(ValueError, match=message):
            sample_complexity_main(["--out", str(tmp_path / "bad")] + argv)
    assert not (tmp_path / "bad").exists()
