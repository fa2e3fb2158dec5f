"""TT-matrix layers in PyTorch (thesis section 3.3 and 3.8): cores as parameters, no dense weight in forward.

A layer with cores ``G_k`` of shape ``(R_k, m_k, n_k, R_{k+1})`` computes ``y = x @ W + b`` with
``W[(m_0..m_{d-1}), (n_0..n_{d-1})] = G_0[:, m_0, n_0, :] ... G_{d-1}[:, m_{d-1}, n_{d-1}, :]`` (the convention of
sim/compiler.py), contracting the input with one core at a time from the last to the first (eq. 3.9-3.11).

The parametrization is the one the host trainer uses (host/model.py): each core is ``u_k * 2**-s_k`` with a
*unit* parameter ``u_k`` and a fixed power-of-two shift ``s_k``, so that float and fixed-point runs share the
initialization, the learning rate and the prior. Rank pruning removes slices physically here (the ranks
shrink); the host keeps hardware ranks and zeroes the slices instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...host.model import INIT_BOUND, N_CLASSES, init_unit_cores, weight_shifts
from ...sim.compiler import NetworkSpec, TTLayerSpec

__all__ = ["tt_contract", "TTLinear", "TTNet", "dense_weight"]


def tt_contract(x: torch.Tensor, cores, in_modes, out_modes) -> torch.Tensor:
    """``x @ W`` for the TT-matrix ``W`` of ``cores``, right to left (eq. 3.9-3.11), never forming ``W``.

    ``x`` is ``(B, prod in_modes)``; returns ``(B, prod out_modes)``.
    """
    d = len(cores)
    batch = x.shape[0]
    # t holds (B, m_0 .. m_{k-1}, r_k, n_k .. n_{d-1}) after contracting cores k..d-1 (r_d = 1 at the start).
    t = x.reshape(batch, *in_modes, 1)
    for k in range(d - 1, -1, -1):
        # contract m_k (axis k + 1) and r_{k+1} (axis k + 2) with core k (r_k, m_k, n_k, r_{k+1})
        t = torch.tensordot(t, cores[k], dims=([k + 1, k + 2], [1, 3]))
        # now (B, m_0..m_{k-1}, n_{k+1}..n_{d-1}, r_k, n_k): move (r_k, n_k) in front of n_{k+1}..
        n_tail = d - 1 - k
        perm = list(range(k + 1)) + [k + 1 + n_tail, k + 2 + n_tail] + list(range(k + 1, k + 1 + n_tail))
        t = t.permute(*perm)
    return t.reshape(batch, math.prod(out_modes))


def dense_weight(cores) -> torch.Tensor:
    """The dense ``(prod m, prod n)`` weight of a TT-matrix (for tests only)."""
    out = torch.ones(1, 1, 1, dtype=cores[0].dtype)
    for core in cores:
        r0, m, n, r1 = core.shape
        out = torch.einsum("ijr,rmns->imjns", out, core).reshape(out.shape[0] * m, out.shape[1] * n, r1)
    return out[:, :, 0]


class TTLinear(nn.Module):
    """A TT-matrix layer with unit-scale core parameters and fixed per-core power-of-two shifts."""

    def __init__(self, spec: TTLayerSpec, shifts, unit_cores=None, bias=None, dtype=torch.float64):
        super().__init__()
        self.in_modes, self.out_modes = tuple(spec.in_modes), tuple(spec.out_modes)
        if len(shifts) != spec.d:
            raise ValueError(f"shifts: {spec.d} cores need {spec.d} shifts, got {len(shifts)}")
        self.register_buffer("scales", torch.tensor([2.0 ** -int(s) for s in shifts], dtype=dtype))
        if unit_cores is None:
            unit_cores = [np.zeros(spec.core_shape(k)) for k in range(spec.d)]
        self.cores = nn.ParameterList([nn.Parameter(torch.as_tensor(np.asarray(c), dtype=dtype).clone())
                                       for c in unit_cores])
        b = torch.zeros(spec.out_features, dtype=dtype) if bias is None else torch.as_tensor(bias, dtype=dtype)
        self.bias = nn.Parameter(b.clone())

    @property
    def d(self) -> int:
        return len(self.cores)

    @property
    def ranks(self) -> tuple:
        return tuple(int(c.shape[0]) for c in self.cores[1:])

    def real_cores(self):
        return [c * self.scales[k] for k, c in enumerate(self.cores)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tt_contract(x, self.real_cores(), self.in_modes, self.out_modes) + self.bias

    def n_params(self) -> int:
        return sum(c.numel() for c in self.cores) + self.bias.numel()

    @torch.no_grad()
    def remove_slices(self, n: int, keep: torch.Tensor) -> None:
        """Keep only the slices ``keep`` (bool, length R_n) of internal rank ``n`` (1-based): core ``n-1``'s
        last axis and core ``n``'s first axis shrink. The parameters are replaced (re-create the optimizer)."""
        if not 1 <= n < self.d:
            raise ValueError(f"rank index n must be in [1, {self.d - 1}], not {n}")
        keep = torch.as_tensor(keep, dtype=torch.bool)
        if keep.numel() != self.cores[n].shape[0]:
            raise ValueError(f"keep has {keep.numel()} entries, rank R_{n} is {self.cores[n].shape[0]}")
        self.cores[n - 1] = nn.Parameter(self.cores[n - 1].data[..., keep].clone())
        self.cores[n] = nn.Parameter(self.cores[n].data[keep].clone())


class TTNet(nn.Module):
    """The network of a :class:`NetworkSpec` (ReLU between layers; logits = the first ``n_classes`` outputs)."""

    def __init__(self, spec: NetworkSpec, seed: int = 0, init_bound: float = INIT_BOUND,
                 n_classes: int = N_CLASSES, dtype=torch.float64):
        super().__init__()
        shifts = weight_shifts(spec, init_bound)
        unit = init_unit_cores(spec, np.random.default_rng(seed), init_bound)
        self.spec, self.n_classes = spec, n_classes
        self.layers = nn.ModuleList([TTLinear(layer, s, u, dtype=dtype)
                                     for layer, s, u in zip(spec.layers, shifts, unit)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x[:, :self.n_classes]

    def ranks(self) -> list[list[int]]:
        return [list(layer.ranks) for layer in self.layers]

    def n_params(self) -> int:
        """Core entries plus biases (Table 3.3's count; host/model.py effective_params)."""
        return sum(layer.n_params() for layer in self.layers)
