"""The low-rank prior of thesis section 3.3 in PyTorch: regularizer (eq. 3.3), rank-parameter update (eq. 3.4)
and rank pruning.

Core ``n`` of a layer has shape ``(r_{n-1}, i_n, j_n, r_n)``; the rank parameter ``lambda^(n)_k`` belongs to its
last-axis slice ``k`` (``n = 1 .. d-1``: the internal ranks; the last core's trailing rank is 1 and has none).

* eq. 3.3: ``sum_n sum_k ||g^(n)_{:,:,:,k}||_F^2 / lambda^(n)_k + (1 + r_{n-1} i_n j_n) / 2 * log lambda^(n)_k``
* eq. 3.4: ``lambda^(n)_k = 2 / (1 + r_{n-1} i_n j_n) * sum_{r,i,j} g^(n)_{r,i,j,k}^2``, the exact minimizer
  of eq. 3.3 over ``lambda`` (set the derivative ``-S/lambda^2 + c/lambda`` to zero: ``lambda = S / c``).
* pruning: a slice whose lambda falls under ``threshold * max_k lambda_k`` is removed (see TTLinear).

The same formulas in numpy serve the host trainer (host/model.py); tests check that both agree.
"""

from __future__ import annotations

import torch

__all__ = ["slice_sq_norms", "lambda_update", "low_rank_prior", "prior_penalty", "prune_keep_masks",
           "prune_layer"]


def slice_sq_norms(core: torch.Tensor) -> torch.Tensor:
    """``||g_{:,:,:,k}||_F^2`` for every last-axis slice ``k``."""
    return (core * core).sum(dim=(0, 1, 2))


def _c(core: torch.Tensor) -> float:
    return (1 + core.shape[0] * core.shape[1] * core.shape[2]) / 2


def lambda_update(cores) -> list[torch.Tensor]:
    """Eq. 3.4 for every internal rank of one layer (detached)."""
    return [slice_sq_norms(core.detach()) / _c(core) for core in list(cores)[:-1]]


def low_rank_prior(cores, lambdas) -> torch.Tensor:
    """Eq. 3.3 for one layer, both terms (differentiable in the cores)."""
    total = 0.0
    for core, lam in zip(list(cores)[:-1], lambdas):
        total = total + (slice_sq_norms(core) / lam).sum() + _c(core) * torch.log(lam).sum()
    return total


def prior_penalty(cores, lambdas) -> torch.Tensor:
    """The part of eq. 3.3 that depends on the cores (what the optimizer sees): ``sum ||g_k||^2 / lambda_k``."""
    total = 0.0
    for core, lam in zip(list(cores)[:-1], lambdas):
        total = total + (slice_sq_norms(core) / lam).sum()
    return total


def prune_keep_masks(lambdas, threshold: float) -> list[torch.Tensor]:
    """Per internal rank: True for the slices to keep (``lambda >= threshold * max lambda``; never none)."""
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), not {threshold}")
    keep = []
    for lam in lambdas:
        k = lam >= threshold * lam.max()
        if not k.any():
            k[torch.argmax(lam)] = True
        keep.append(k)
    return keep


def prune_layer(layer, threshold: float) -> list[tuple[int, int]]:
    """Remove the slices of ``layer`` (a TTLinear) whose eq. 3.4 lambda is below ``threshold * max``.

    Returns ``[(n, k), ...]``: internal rank ``n`` (1-based) and slice index ``k`` (in the ranks before this call).
    """
    lambdas = lambda_update(layer.cores)
    removed = []
    for n, keep in enumerate(prune_keep_masks(lambdas, threshold), start=1):
        if keep.all():
            continue
        removed += [(n, int(k)) for k in torch.nonzero(~keep).flatten()]
        layer.remove_slices(n, keep)
    return removed
