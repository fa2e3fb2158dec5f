"""Networks near initialization: linearization, the NTK, and the signal-to-noise construction
(Telgarsky's notes, chapter 3).

Model (section 3.2 scaling): F(x; V) = (rho / sqrt(m)) sum_j a_j relu(v_j^T x) with a_j ~ U{-1, +1}
fixed and v_{0,j} ~ N(0, I_d); only V is trained. The linearization at V_0 (Definition 3.1) is
F_0(x; V) = F(x; V_0) + <dF(x; V_0), V - V_0> = (rho / sqrt(m)) sum_j a_j 1[v_{0,j}^T x >= 0] v_j^T x.

* :func:`ntk_relu` — Proposition 3.23, k(x, x') = rho^2 <x, x'> (pi - arccos <x, x'>) / (2 pi) for unit
  vectors; :func:`empirical_ntk` is the width-m kernel of Theorem 3.19 that converges to it.
* :func:`train_first_layer` — full-batch gradient descent on V for a least-squares task, returning the
  trained V so that sup_x |F(x; V) - F_0(x; V)| and ||V - V_0||_F can be measured against width
  (Proposition 3.7: the gap is at most ||a||_inf m^(1/3) (4 B^(4/3) + 2 B ln(1/delta)^(1/4)) with
  ||a||_inf = rho / sqrt(m), so it shrinks like m^(-1/6) at a fixed radius B).
* :func:`signal_to_noise_construction` — the proof of Theorem 3.10: amplify the initial nodes whose
  directions lie within tau of each beta_i, so that F(.; V) = F_0(.; V) exactly and F is close to
  c_0 g with c_0 = sqrt(m)/tau. The statement's max-row bound 2^(d+1) ||alpha||_inf / (tau^(d-1) sqrt m)
  is smaller than what the construction moves (c ||alpha||_inf with c = 2^(d+2) / (tau^d sqrt m)), so
  the proof's constants are the ones reported and tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TwoLayerInit:
    """Initial parameters: signs a (m,) in {-1, +1}, first layer V0 (m, d), temperature rho."""

    a: np.ndarray
    V0: np.ndarray
    rho: float = 1.0

    @property
    def width(self) -> int:
        return len(self.a)

    def forward(self, x: np.ndarray, V: np.ndarray | None = None) -> np.ndarray:
        """F(x; V) (V defaults to V0)."""
        V = self.V0 if V is None else V
        return (self.rho / math.sqrt(self.width)) * (np.maximum(x @ V.T, 0.0) @ self.a)

    def forward_unscaled(self, x: np.ndarray, V: np.ndarray | None = None) -> np.ndarray:
        """sum_j a_j relu(v_j^T x): the unscaled network of Theorem 3.10 and Lemma 3.15."""
        V = self.V0 if V is None else V
        return np.maximum(x @ V.T, 0.0) @ self.a

    def linearized(self, x: np.ndarray, V: np.ndarray) -> np.ndarray:
        """F_0(x; V) = F(x; V0) + <dF(x; V0), V - V0>; for the ReLU this is sum_j a_j 1[v0_j.x >= 0] v_j.x."""
        gate = (x @ self.V0.T >= 0).astype(float)
        return (self.rho / math.sqrt(self.width)) * ((gate * (x @ V.T)) @ self.a)


def init_two_layer(width: int, dim: int, rng: np.random.Generator, rho: float = 1.0) -> TwoLayerInit:
    """a_j ~ U{-1, +1}, v_{0,j} ~ N(0, I_d) (Remark 3.2's convention for this chapter)."""
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    a = rng.choice([-1.0, 1.0], size=width)
    V0 = rng.normal(size=(width, dim))
    return TwoLayerInit(a=a, V0=V0, rho=rho)


def ntk_relu(x: np.ndarray, y: np.ndarray, rho: float = 1.0) -> np.ndarray:
    """Proposition 3.23: k(x, y) = rho^2 <x, y> (pi - arccos <x, y>) / (2 pi), rows of x, y unit vectors."""
    x = np.atleast_2d(x)
    y = np.atleast_2d(y)
    for name, arr in (("x", x), ("y", y)):
        if not np.allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-8):
            raise ValueError(f"rows of {name} must be unit vectors (Proposition 3.23)")
    c = np.clip(x @ y.T, -1.0, 1.0)
    return rho ** 2 * c * (math.pi - np.arccos(c)) / (2 * math.pi)


def empirical_ntk(init: TwoLayerInit, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k_m(x, y) = (rho^2 / m) sum_j <x, y> 1[v_j.x >= 0] 1[v_j.y >= 0] (first-layer gradients only)."""
    gx = (x @ init.V0.T >= 0).astype(float)
    gy = (y @ init.V0.T >= 0).astype(float)
    return init.rho ** 2 * (x @ y.T) * (gx @ gy.T) / init.width


def train_first_layer(init: TwoLayerInit, x: np.ndarray, y: np.ndarray, steps: int, lr: float) -> np.ndarray:
    """Full-batch gradient descent on (1/2n) sum_i (F(x_i; V) - y_i)^2 over V only; returns V_T.

    With the rho/sqrt(m) scaling the NTK is O(1), so one step size works for every width.
    """
    if steps < 0 or lr <= 0:
        raise ValueError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    X = torch.as_tensor(x, dtype=torch.float64)
    Y = torch.as_tensor(y, dtype=torch.float64)
    a = torch.as_tensor(init.a, dtype=torch.float64)
    V = torch.as_tensor(init.V0.copy(), dtype=torch.float64).requires_grad_(True)
    scale = init.rho / math.sqrt(init.width)
    # Under the rho/sqrt(m) scaling the tangent kernel sum_j ||dF/dv_j||^2 is O(1), so a fixed step size
    # gives width-independent progress in function space while each row moves only O(1/sqrt m).
    opt = torch.optim.SGD([V], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        pred = scale * (torch.relu(X @ V.T) @ a)
        loss = 0.5 * torch.mean((pred - Y) ** 2)
        loss.backward()
        opt.step()
    return V.detach().numpy()


def prop37_bound(width: int, radius: float, delta: float, rho: float = 1.0) -> float:
    """Proposition 3.7's right side with ||a||_inf = rho / sqrt(m)."""
    return rho / math.sqrt(width) * width ** (1 / 3) * (4 * radius ** (4 / 3) + 2 * radius * math.log(1 / delta) ** 0.25)


@dataclass
class SignalToNoiseResult:
    """Outcome of Theorem 3.10's construction."""

    V: np.ndarray
    groups: list[np.ndarray]  # U_i: indices of the amplified nodes for each beta_i
    c: float  # per-node amplification 1 / (tau tau_d sqrt m)
    c0: float  # overall scale sqrt(m) / tau
    tau_d: float  # tau^(d-1) / 2^(d+2)


def signal_to_noise_construction(init: TwoLayerInit, alphas: np.ndarray, betas: np.ndarray, tau: float) -> SignalToNoiseResult:
    """Proof of Theorem 3.10 (rho = 1, as in the theorem): embed g(x) = sum_i alpha_i relu(beta_i.x) near V0.

    For each i, S_i = {j : ||beta_i - v0_j/||v0_j|| || <= tau, sgn a_j = sgn alpha_i}; U_i are the first
    floor(m tau_d) members. Nodes in U_i are stretched along their own direction by c |alpha_i|, so the
    ReLU gates do not change and F(.; V) = F_0(.; V).

    Raises
    ------
    ValueError
        If some |S_i| < m tau_d (the width is below what the theorem's probability bound needs).
    """
    if init.rho != 1.0:
        raise ValueError("Theorem 3.10 is stated for the unscaled network: use rho = 1")
    betas = np.atleast_2d(betas)
    alphas = np.asarray(alphas, dtype=float)
    if betas.shape[0] != len(alphas):
        raise ValueError(f"alphas has {len(alphas)} entries for {betas.shape[0]} betas")
    if not np.allclose(np.linalg.norm(betas, axis=1), 1.0):
        raise ValueError("betas must be unit vectors")
    if len(betas) > 1:
        gaps = [np.linalg.norm(betas[i] - betas[j]) for i in range(len(betas)) for j in range(i)]
        if not tau < min(gaps) / 2:
            raise ValueError(f"tau={tau} must be below min_i!=j ||beta_i - beta_j|| / 2 = {min(gaps) / 2:.4f}")
    m, d = init.V0.shape
    tau_d = tau ** (d - 1) / 2 ** (d + 2)
    c = 1.0 / (tau * tau_d * math.sqrt(m))
    c0 = c * tau_d * m
    per_group = int(math.floor(m * tau_d))
    if per_group < 1:
        raise ValueError(f"width {m} too small: m * tau_d = {m * tau_d:.3f} < 1")
    norms = np.linalg.norm(init.V0, axis=1)
    unit = init.V0 / norms[:, None]
    V = init.V0.copy()
    groups = []
    for alpha, beta in zip(alphas, betas):
        close = np.linalg.norm(unit - beta, axis=1) <= tau
        same_sign = np.sign(init.a) == np.sign(alpha)
        S = np.nonzero(close & same_sign)[0]
        if len(S) < per_group:
            raise ValueError(f"|S_i| = {len(S)} < m tau_d = {m * tau_d:.1f}: increase the width")
        U = S[:per_group]
        V[U] += c * abs(alpha) * unit[U]
        groups.append(U)
    # the proof uses exactly m tau_d nodes; with floor() the constant c0 uses the realised count
    c0 = c * per_group
    return SignalToNoiseResult(V=V, groups=groups, c=c, c0=c0, tau_d=tau_d)
