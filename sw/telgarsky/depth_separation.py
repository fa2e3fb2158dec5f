"""Depth separation by affine-piece counting (Telgarsky's notes, Theorem 4.4 and Lemma 4.9).

Theorem 4.4: Delta^(L^2+2) is a ReLU network with 3L^2 + 6 nodes, yet every ReLU network with at most
2^L nodes in at most L layers has int_0^1 |Delta^(L^2+2) - g| >= 1/32. This module trains such shallow
networks as hard as it reasonably can (Adam on the L1 loss over a dense grid, several restarts) and
measures the exact L1 distance with :func:`ultratrain.sw.telgarsky.piecewise.l1_distance`, so the
theorem's floor and Lemma 4.9's piece bound can be compared with what optimisation actually reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .constructions import triangle_network
from .piecewise import Layer, affine_piece_bound, l1_distance, propagate


@dataclass
class ShallowFit:
    widths: tuple[int, ...]
    seed: int
    l1: float  # exact int_0^1 |f - g|
    pieces: int  # N_A(g) on [0, 1]
    piece_bound: int  # Lemma 4.9: 2^L prod m_j
    layers: list[Layer]


def _mlp(widths, generator) -> torch.nn.Sequential:
    mods = []
    fan_in = 1
    for w in widths:
        lin = torch.nn.Linear(fan_in, w, dtype=torch.float64)
        # spread the kinks over [0, 1] so the fit can place pieces where the target has them
        with torch.no_grad():
            lin.weight.normal_(0.0, 1.0 if fan_in == 1 else 1.0 / np.sqrt(fan_in), generator=generator)
            if fan_in == 1:
                lin.bias.copy_(-lin.weight[:, 0] * torch.rand(w, generator=generator, dtype=torch.float64))
            else:
                lin.bias.zero_()
        mods += [lin, torch.nn.ReLU()]
        fan_in = w
    out = torch.nn.Linear(fan_in, 1, dtype=torch.float64)
    # from `generator` too (PyTorch's default init would draw from the global RNG and make a fit depend on
    # whatever ran before it in the process); the same U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as that default
    bound = 1.0 / np.sqrt(fan_in)
    with torch.no_grad():
        out.weight.uniform_(-bound, bound, generator=generator)
        out.bias.uniform_(-bound, bound, generator=generator)
    mods.append(out)
    return torch.nn.Sequential(*mods)


def _layers_of(model: torch.nn.Sequential) -> list[Layer]:
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
            for m in model if isinstance(m, torch.nn.Linear)]


def fit_shallow(target_depth: int, widths: tuple[int, ...], seed: int, steps: int = 3000,
                grid: int = 8192, lr: float = 1e-2) -> ShallowFit:
    """Fit a ReLU network with hidden ``widths`` to Delta^target_depth on [0, 1] by Adam on the L1 loss."""
    if target_depth < 1:
        raise ValueError(f"target_depth must be >= 1, got {target_depth}")
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths must be positive, got {widths}")
    gen = torch.Generator().manual_seed(seed)
    model = _mlp(widths, gen)
    x = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)[:, None]
    target = torch.as_tensor(propagate(triangle_network(target_depth), 0.0, 1.0)(x.numpy()[:, 0]))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean(torch.abs(model(x) - target))
        loss.backward()
        opt.step()
        sched.step()
    layers = _layers_of(model)
    g = propagate(layers, 0.0, 1.0)
    f = propagate(triangle_network(target_depth), 0.0, 1.0)
    return ShallowFit(widths=tuple(widths), seed=seed, l1=l1_distance(f, g), pieces=g.count_pieces(),
                      piece_bound=affine_piece_bound(widths)[0], layers=layers)


def theorem44_architectures(L: int) -> list[tuple[int, ...]]:
    """Hidden-width tuples with at most 2^L nodes in at most L layers (one per depth, nodes split evenly)."""
    archs = []
    for depth in range(1, L + 1):
        base, extra = divmod(2 ** L, depth)
        if base == 0:
            continue
        archs.append(tuple(base + (1 if i < extra else 0) for i in range(depth)))
    return archs
