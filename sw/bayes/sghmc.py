"""SGHMC with thermostats: thesis Algorithm 1 with the dynamics (2.12) and the leapfrog variant (2.13).

One outer step of Algorithm 1::

    p ~ N(0, M)                                     (momentum resampled; ``resample_momentum``)
    draw a mini-batch B, giving U~ (eq. 2.11)       (one batch for the whole inner loop, as written)
    repeat m times (eq. 2.13):
        p_half = p - eps/2 (grad U~(Theta) + c p)
        Theta  = Theta + eps M^-1 p_half
        p      = p_half - eps/2 (grad U~(Theta_new) + c p_half)
        c      = c + eps (p^T M^-1 p / |Theta| - 1)
    store Theta

Decisions where the text is silent or inconsistent (docs/theory/chapter2_bayesian_tt.md):

* The position update of (2.13) has no ``M^-1``; (2.12) has it. We use ``M^-1 p_half`` and default ``M = I``
  (a scalar ``mass``), where both agree.
* The thermostat update uses the new momentum ``p_{t+eps}``; ``c`` starts at ``c0 = 0`` and is *not* reset at the
  momentum refresh (Algorithm 1 resets only ``p``).
* (2.13) injects no noise (it relies on the gradient noise and the momentum refresh); ``diffusion = A > 0``
  adds the SGNHT term ``sqrt(2 A eps) N(0, M)`` to the momentum after each step (off by default).
* ``batch_per_step=True`` draws a new mini-batch for every inner step instead of one per outer step.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

__all__ = ["SGHMC", "autograd_gradient"]


def autograd_gradient(potential: Callable[..., torch.Tensor], params: Sequence[torch.Tensor]):
    """Turn ``potential(batch) -> scalar U`` into ``gradient(batch) -> list of dU/dparam`` via autograd."""
    params = list(params)

    def gradient(batch):
        with torch.enable_grad():
            value = potential(batch)
            return list(torch.autograd.grad(value, params, allow_unused=True))
    return gradient


class SGHMC:
    """Stochastic-gradient HMC with a Nose-Hoover thermostat (thesis Algorithm 1, eq. 2.12-2.13).

    Parameters
    ----------
    params : sequence of tensors
        The variables ``Theta``; updated in place.
    step_size : float
        Leapfrog step ``eps``.
    num_inner : int
        Leapfrog steps ``m`` per sample.
    mass : float
        Scalar mass ``M`` (``M = mass * I``).
    c0 : float
        Initial friction (thermostat variable) ``c``.
    diffusion : float
        Optional injected-noise strength ``A`` (0: exactly eq. 2.13).
    resample_momentum : bool
        Draw ``p ~ N(0, M)`` at every outer step (Algorithm 1); False gives a pure thermostat (SGNHT-like) chain.
    thermostat : bool
        False freezes ``c`` at ``c0`` (used to show what the thermostat does).
    generator : torch.Generator, optional
        Source of the momentum and noise draws.
    """

    def __init__(self, params: Sequence[torch.Tensor], step_size: float, num_inner: int, mass: float = 1.0,
                 c0: float = 0.0, diffusion: float = 0.0, resample_momentum: bool = True, thermostat: bool = True,
                 generator: torch.Generator | None = None):
        self.params = list(params)
        if not self.params:
            raise ValueError("params must hold at least one tensor")
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if int(num_inner) < 1:
            raise ValueError(f"num_inner must be >= 1, got {num_inner}")
        if not mass > 0:
            raise ValueError(f"mass must be > 0, got {mass}")
        if not diffusion >= 0:
            raise ValueError(f"diffusion must be >= 0, got {diffusion}")
        self.step_size, self.num_inner, self.mass = float(step_size), int(num_inner), float(mass)
        self.diffusion, self.resample_momentum, self.thermostat = float(diffusion), bool(resample_momentum), thermostat
        self.generator = generator
        self.c = float(c0)
        self.dim = sum(p.numel() for p in self.params)
        self.momenta = [self._normal_like(p) * math.sqrt(self.mass) for p in self.params]
        self.kinetic_trace: list[float] = []  # p^T M^-1 p / |Theta| after every leapfrog step
        self.friction_trace: list[float] = []

    def _normal_like(self, p: torch.Tensor) -> torch.Tensor:
        return torch.randn(p.shape, generator=self.generator, dtype=p.dtype, device=p.device)

    def kinetic_per_dim(self) -> float:
        """``p^T M^-1 p / |Theta|``: the thermostat's target is 1 (twice the kinetic energy per dimension)."""
        return sum(float((m * m).sum()) for m in self.momenta) / (self.mass * self.dim)

    @torch.no_grad()
    def outer_step(self, gradient: Callable[[object], Sequence[torch.Tensor]], batch=None,
                   draw_batch: Callable[[], object] | None = None) -> None:
        """One iteration of Algorithm 1's outer loop (without storing the sample).

        ``gradient(batch)`` returns ``grad U~`` for ``batch``. Pass the outer step's ``batch``; with
        ``draw_batch`` given instead, a fresh batch is drawn for every inner step.
        """
        eps, mass = self.step_size, self.mass
        if self.resample_momentum:
            self.momenta = [self._normal_like(p) * math.sqrt(mass) for p in self.params]
        if draw_batch is not None:
            batch = draw_batch()
        grads = self._grads(gradient, batch)
        for _ in range(self.num_inner):
            c = self.c
            half = [m - 0.5 * eps * (g + c * m) for m, g in zip(self.momenta, grads)]
            for p, h in zip(self.params, half):
                p.add_(h, alpha=eps / mass)
            if draw_batch is not None:
                batch = draw_batch()
            grads = self._grads(gradient, batch)
            self.momenta = [h - 0.5 * eps * (g + c * h) for h, g in zip(half, grads)]
            if self.diffusion > 0:
                scale = math.sqrt(2 * self.diffusion * eps * mass)
                self.momenta = [m + scale * self._normal_like(m) for m in self.momenta]
            kinetic = self.kinetic_per_dim()
            if self.thermostat:
                self.c = c + eps * (kinetic - 1.0)
            self.kinetic_trace.append(kinetic)
            self.friction_trace.append(self.c)

    def _grads(self, gradient, batch) -> list[torch.Tensor]:
        grads = gradient(batch)
        if len(grads) != len(self.params):
            raise ValueError(f"gradient returned {len(grads)} tensors for {len(self.params)} parameters")
        return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(self.params, grads)]

    def sample(self, gradient: Callable[[object], Sequence[torch.Tensor]], draw_batch: Callable[[], object],
               num_samples: int, burn_in: int = 0, callback: Callable[[int], None] | None = None,
               batch_per_step: bool = False, progress=None) -> None:
        """Run Algorithm 1: ``burn_in`` discarded outer steps, then ``num_samples`` samples.

        After each kept sample ``callback(t)`` is called with the parameters set to ``Theta(t)`` (it can copy
        them or accumulate predictions, which avoids holding T copies of a large network).
        """
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(burn_in) < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in}")
        steps = range(int(burn_in) + int(num_samples))
        if progress is not None:
            steps = progress(steps)
        for t in steps:
            if batch_per_step:
                self.outer_step(gradient, draw_batch=draw_batch)
            else:
                self.outer_step(gradient, batch=draw_batch())
            if not all(bool(torch.isfinite(p).all()) for p in self.params):
                raise FloatingPointError(f"SGHMC diverged at outer step {t} (non-finite parameters): "
                                         f"reduce step_size (now {self.step_size})")
            if t >= burn_in and callback is not None:
                callback(t - int(burn_in))
