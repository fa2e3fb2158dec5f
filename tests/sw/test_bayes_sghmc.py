"""SGHMC with thermostats (thesis Algorithm 1, eq. 2.12-2.13): a known 2-D Gaussian posterior and the thermostat."""

import math

import pytest
import torch

from ultratrain.sw.bayes import SGHMC, autograd_gradient

torch.set_num_threads(1)
D = torch.float64
PRECISION = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=D)  # U = (x - mu)^T A (x - mu) / 2
MEAN = torch.tensor([1.0, -1.0], dtype=D)


def _gaussian_chain(seed, resample_momentum=True, num_samples=4000):
    theta = torch.zeros(2, dtype=D)
    sampler = SGHMC([theta], step_size=0.05, num_inner=20, resample_momentum=resample_momentum,
                    generator=torch.Generator().manual_seed(seed))
    samples = []
    sampler.sample(lambda batch: [PRECISION @ (theta - MEAN)], lambda: None, num_samples, burn_in=50,
                   callback=lambda t: samples.append(theta.clone()))
    return torch.stack(samples), sampler


def test_sghmc_samples_a_2d_gaussian_with_the_right_mean_and_covariance():
    samples, sampler = _gaussian_chain(seed=0)
    target = torch.linalg.inv(PRECISION)  # variances 0.840, 1.681; covariance -0.756
    cov = torch.cov(samples.T)
    assert (samples.mean(0) - MEAN).abs().max() < 0.1
    assert torch.allclose(torch.diagonal(cov), torch.diagonal(target), rtol=0.1)
    assert abs(cov[0, 1] - target[0, 1]) < 0.1
    # correlation sign and size are right, not just the marginals
    corr = cov[0, 1] / torch.sqrt(cov[0, 0] * cov[1, 1])
    assert abs(corr - target[0, 1] / math.sqrt(target[0, 0] * target[1, 1])) < 0.05


def test_without_momentum_refresh_the_deterministic_thermostat_over_disperses():
    """Algorithm 1 refreshes p every outer step; without it (no injected noise) the Nose-Hoover chain is not
    ergodic on a Gaussian and its variances come out about 2x too large."""
    samples, _ = _gaussian_chain(seed=0, resample_momentum=False)
    ratio = torch.diagonal(torch.cov(samples.T)) / torch.diagonal(torch.linalg.inv(PRECISION))
    assert (ratio > 1.4).all()


def _noisy_chain(thermostat, seed=1, dim=100, noise=5.0, steps=300):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.zeros(dim, dtype=D)
    scales = torch.linspace(0.5, 2.0, dim, dtype=D)

    def noisy_gradient(batch):
        # exact gradient of a diagonal Gaussian plus mini-batch-like noise of std `noise`
        return [scales * theta + noise * torch.randn(dim, generator=gen, dtype=D)]
    sampler = SGHMC([theta], step_size=0.02, num_inner=20, resample_momentum=False, thermostat=thermostat,
                    generator=torch.Generator().manual_seed(seed + 1))
    sampler.sample(noisy_gradient, lambda: None, steps)
    return sampler


def test_thermostat_keeps_the_mean_kinetic_energy_at_its_target_under_gradient_noise():
    sampler = _noisy_chain(thermostat=True)
    trace = torch.tensor(sampler.kinetic_trace)
    second_half = trace[len(trace) // 2:]
    # target: p^T M^-1 p / |Theta| = 1 (kinetic energy |Theta|/2)
    assert abs(float(second_half.mean()) - 1.0) < 0.05
    # the friction settled to a positive value that absorbs the injected heat
    assert float(torch.tensor(sampler.friction_trace[len(trace) // 2:]).mean()) > 0.05
    frozen = _noisy_chain(thermostat=False)
    assert float(torch.tensor(frozen.kinetic_trace[len(trace) // 2:]).mean()) > 3.0


def test_one_batch_per_outer_step_and_m_plus_one_gradients_per_sample():
    calls = {"batch": 0, "grad": 0}
    theta = torch.zeros(3, dtype=D)

    def draw():
        calls["batch"] += 1
        return calls["batch"]

    def grad(batch):
        calls["grad"] += 1
        return [theta.clone()]
    SGHMC([theta], 0.1, num_inner=7, generator=torch.Generator().manual_seed(0)).sample(grad, draw, 5, burn_in=2)
    assert calls == {"batch": 7, "grad": 7 * 8}
    calls.update(batch=0, grad=0)
    SGHMC([theta], 0.1, num_inner=7, generator=torch.Generator().manual_seed(0)).sample(grad, draw, 5,
                                                                                         batch_per_step=True)
    assert calls == {"batch": 5 * 8, "grad": 5 * 8}


def test_autograd_gradient_drives_the_same_trajectory_as_the_analytic_gradient():
    runs = []
    for use_autograd in (False, True):
        theta = torch.zeros(2, dtype=D, requires_grad=use_autograd)

        def energy(batch):
            return 0.5 * (theta - MEAN) @ PRECISION @ (theta - MEAN)
        gradient = autograd_gradient(energy, [theta]) if use_autograd else \
            (lambda batch: [PRECISION @ (theta.detach() - MEAN)])
        sampler = SGHMC([theta], 0.05, 10, generator=torch.Generator().manual_seed(3))
        out = []
        sampler.sample(gradient, lambda: None, 20, callback=lambda t: out.append(theta.detach().clone()))
        runs.append(torch.stack(out))
    assert torch.allclose(runs[0], runs[1], atol=1e-12)


def test_divergence_and_bad_arguments_raise_clear_errors():
    theta = torch.zeros(2, dtype=D)
    sampler = SGHMC([theta], step_size=5.0, num_inner=50, generator=torch.Generator().manual_seed(0))
    with pytest.raises(FloatingPointError, match="step_size"):
        # leapfrog is unstable for eps * sqrt(curvature) > 2
        sampler.sample(lambda b: [1e3 * theta], lambda: None, 50)
    with pytest.raises(ValueError, match="step_size"):
        SGHMC([theta], step_size=0.0, num_inner=1)
    with pytest.raises(ValueError, match="num_inner"):
        SGHMC([theta], step_size=0.1, num_inner=0)
    with pytest.raises(ValueError, match="params"):
        SGHMC([], step_size=0.1, num_inner=1)
