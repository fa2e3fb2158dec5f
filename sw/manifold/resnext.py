"""(Conv)ResNeXt of thesis chapter 6, Definition 6.1, with the Lipschitz bounds of section 6.6.

``f = W_out . (1 + sum_m f_{N,m}) o ... o (1 + sum_m f_{1,m}) (pad(x))``, output clipped to [0, 1], where
each path ``f_{n,m} = W_L * ReLU(W_{L-1} * ... ReLU(W_1 * z))`` is bias free:

* feedforward paths (:class:`ResNeXt`): ``W_1 : h -> w``, ``W_l : w -> w``, ``W_L : w -> h``; the input
  x in R^D is padded with a constant 1 (in place of biases) and a 0 (the channel that accumulates the
  output), so the hidden dimension is ``h = D + 2``;
* convolutional paths (:class:`ConvResNeXt`): 1-D convolutions of kernel size K over ``D + 1`` positions
  (x and the constant 1) with ``h = 2`` channels in the residual stream (data, and a 0 channel), ``w``
  channels inside a path, zero "same" padding.

Weight decay is applied to the residual blocks and to W_out separately (``B_res``, ``B_out`` of the text):
:meth:`ResNeXt.residual_penalty` and :meth:`ResNeXt.output_penalty`.

Checkable statements (section 6.6.9):

* Prop. 6.19 / 6.20: a bias-free L-layer path with ``sum_l ||W_l||_F^2 <= B`` is ``(K B / L)^(L/2)``-Lipschitz
  (K = 1 for feedforward paths): :func:`path_lipschitz_bound`.
* Prop. 6.22: the residual stack is ``exp(sum_blocks (K B_block / L)^(L/2))``-Lipschitz, hence
  ``exp((K B_res / L)^(L/2))``-Lipschitz: :meth:`ResNeXt.stack_lipschitz_bound`.
* Prop. 6.21: removing one path changes the output by at most ``L_pre L_path L_post ||x||``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ResNeXt", "ConvResNeXt", "path_lipschitz_bound"]


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def path_lipschitz_bound(squared_norm_sum: float, depth: int, kernel_size: int = 1) -> float:
    """``(K B / L)^(L/2)``: Lipschitz bound of a bias-free ReLU path (Props. 6.19, 6.20)."""
    if squared_norm_sum < 0:
        raise ValueError(f"squared_norm_sum must be non-negative, got {squared_norm_sum}")
    depth = _positive_int("depth", depth)
    kernel_size = _positive_int("kernel_size", kernel_size)
    return (kernel_size * squared_norm_sum / depth) ** (depth / 2)


class _ResidualBase(nn.Module):
    """Shared residual-stack logic; subclasses define the paths, padding and readout."""

    kernel_size = 1
    n_blocks: int
    n_paths: int
    path_depth: int
    clip_output: bool

    def pad(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def path_forward(self, block: int, path: int, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def path_weights(self, block: int, path: int) -> list[torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def readout(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def block_forward(self, block: int, z: torch.Tensor, skip_path: int | None = None) -> torch.Tensor:
        """``z + sum_m f_{block,m}(z)``, optionally without path ``skip_path`` (Prop. 6.21)."""
        out = z
        for path in range(self.n_paths):
            if path != skip_path:
                out = out + self.path_forward(block, path, z)
        return out

    def features(self, x: torch.Tensor, removed: tuple[int, int] | None = None) -> torch.Tensor:
        """Residual stream after the last block (before W_out); ``removed=(block, path)`` drops one path."""
        z = self.pad(x)
        for block in range(self.n_blocks):
            skip = removed[1] if removed is not None and removed[0] == block else None
            z = self.block_forward(block, z, skip)
        return z

    def forward(self, x: torch.Tensor, clip: bool | None = None,
                removed: tuple[int, int] | None = None) -> torch.Tensor:
        """Network output; clipped to [0, 1] unless ``clip=False`` (default: the constructor's choice)."""
        out = self.readout(self.features(x, removed))
        clip = self.clip_output if clip is None else clip
        return out.clamp(0.0, 1.0) if clip else out

    def path_squared_norms(self) -> torch.Tensor:
        """``sum_l ||W_l||_F^2`` of every path, shape (N, M)."""
        return torch.stack([
            torch.stack([sum(w.pow(2).sum() for w in self.path_weights(b, m)) for m in range(self.n_paths)])
            for b in range(self.n_blocks)])

    def residual_penalty(self) -> torch.Tensor:
        """``sum_{n,m,l} ||W_l^(n,m)||_F^2`` (the quantity bounded by B_res)."""
        return self.path_squared_norms().sum()

    def output_penalty(self) -> torch.Tensor:
        """``||W_out||_F^2`` (the quantity bounded by B_out)."""
        return self.w_out.pow(2).sum()

    @torch.no_grad()
    def stack_lipschitz_bound(self) -> float:
        """``prod_blocks (1 + sum_m (K B_{n,m}/L)^(L/2)) <= exp(sum (K B/L)^(L/2))`` (Prop. 6.22).

        The per-block factor uses the triangle inequality over the block's paths; the product over blocks
        is the bound of the residual stack in the 2-norm of the padded stream.
        """
        norms = self.path_squared_norms()
        per_path = (self.kernel_size * norms / self.path_depth).pow(self.path_depth / 2)
        return float(torch.prod(1 + per_path.sum(dim=1)))

    @torch.no_grad()
    def active_paths(self, x: torch.Tensor, rel_tol: float = 1e-3) -> torch.Tensor:
        """Mask (N, M) of paths whose removal changes the unclipped output by more than ``rel_tol``
        times the output's spread on ``x`` (the block sparsity of Remark 6.1)."""
        base = self.forward(x, clip=False)
        spread = (base.max() - base.min()).clamp_min(1e-12)
        mask = torch.zeros(self.n_blocks, self.n_paths, dtype=torch.bool)
        for b in range(self.n_blocks):
            for m in range(self.n_paths):
                change = (self.forward(x, clip=False, removed=(b, m)) - base).abs().max()
                mask[b, m] = change > rel_tol * spread
        return mask


class ResNeXt(_ResidualBase):
    """Feedforward ResNeXt of Definition 6.1 (bias free, input padded with 1 and 0).

    Parameters
    ----------
    in_dim : int
        Ambient dimension D.
    n_blocks : int
        N residual blocks.
    n_paths : int
        M parallel paths per block.
    path_depth : int
        L layers per path (>= 2).
    width : int
        w, hidden width inside a path.
    clip_output : bool
        Clip the output to [0, 1] (the text assumes f0 in [0, 1]).
    init_scale : float
        Multiplies the default (fan-in) initialization of the path weights; the last layer of every path
        is further divided by ``sqrt(N M)`` so the initial residual branches sum to O(1).
    seed : int
    """

    def __init__(self, in_dim: int, n_blocks: int = 2, n_paths: int = 8, path_depth: int = 3, width: int = 16,
                 clip_output: bool = True, init_scale: float = 1.0, seed: int = 0):
        super().__init__()
        self.in_dim = _positive_int("in_dim", in_dim)
        self.n_blocks = _positive_int("n_blocks", n_blocks)
        self.n_paths = _positive_int("n_paths", n_paths)
        self.path_depth = _positive_int("path_depth", path_depth, 2)
        self.width = _positive_int("width", width)
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        self.clip_output = bool(clip_output)
        self.hidden = self.in_dim + 2
        gen = torch.Generator().manual_seed(int(seed))
        count = self.n_blocks * self.n_paths
        dims = [self.hidden] + [self.width] * (self.path_depth - 1) + [self.hidden]
        self.layers = nn.ParameterList()
        for layer, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            bound = init_scale * math.sqrt(6.0 / fan_in) / math.sqrt(2.0)
            if layer == self.path_depth - 1:
                bound /= math.sqrt(count)
            # layout (N*M, fan_in, fan_out): all paths of all blocks evaluated as one batched product per block
            tensor = (torch.rand((count, fan_in, fan_out), generator=gen) * 2 - 1) * bound
            self.layers.append(nn.Parameter(tensor))
        self.w_out = nn.Parameter((torch.rand((self.hidden, 1), generator=gen) * 2 - 1) / math.sqrt(self.hidden))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (n, {self.in_dim}), got {tuple(x.shape)}")
        x = x.to(self.w_out.dtype)
        ones = torch.ones(x.shape[0], 1, dtype=x.dtype)
        zeros = torch.zeros(x.shape[0], 1, dtype=x.dtype)
        return torch.cat([x, ones, zeros], dim=1)

    def _block_weights(self, block: int) -> list[torch.Tensor]:
        sl = slice(block * self.n_paths, (block + 1) * self.n_paths)
        return [layer[sl] for layer in self.layers]

    def path_weights(self, block: int, path: int) -> list[torch.Tensor]:
        index = block * self.n_paths + path
        return [layer[index] for layer in self.layers]

    def path_forward(self, block: int, path: int, z: torch.Tensor) -> torch.Tensor:
        h = z
        weights = self.path_weights(block, path)
        for layer, weight in enumerate(weights):
            h = h @ weight
            if layer < len(weights) - 1:
                h = torch.relu(h)
        return h

    def block_forward(self, block: int, z: torch.Tensor, skip_path: int | None = None) -> torch.Tensor:
        weights = self._block_weights(block)
        h = z.unsqueeze(0).expand(self.n_paths, -1, -1)
        for layer, weight in enumerate(weights):
            h = torch.bmm(h, weight)
            if layer < len(weights) - 1:
                h = torch.relu(h)
        if skip_path is not None:
            keep = torch.ones(self.n_paths, dtype=torch.bool)
            keep[skip_path] = False
            h = h[keep]
        return z + h.sum(dim=0)

    def path_squared_norms(self) -> torch.Tensor:
        per_layer = [layer.pow(2).sum(dim=(1, 2)) for layer in self.layers]
        return torch.stack(per_layer).sum(dim=0).view(self.n_blocks, self.n_paths)

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.w_out).squeeze(-1)


class ConvResNeXt(_ResidualBase):
    """ConvResNeXt of Definition 6.1: 1-D convolutional paths over the D + 1 input positions.

    Parameters
    ----------
    in_dim : int
        Ambient dimension D (the sequence length is D + 1: x and a constant 1).
    n_blocks, n_paths, path_depth : int
        N, M, L as in :class:`ResNeXt`.
    channels : int
        w, channels inside a path.
    kernel_size : int
        K, odd, for "same" zero padding.
    clip_output, init_scale, seed
        As in :class:`ResNeXt`.
    """

    def __init__(self, in_dim: int, n_blocks: int = 2, n_paths: int = 4, path_depth: int = 3, channels: int = 8,
                 kernel_size: int = 3, clip_output: bool = True, init_scale: float = 1.0, seed: int = 0):
        super().__init__()
        self.in_dim = _positive_int("in_dim", in_dim)
        self.n_blocks = _positive_int("n_blocks", n_blocks)
        self.n_paths = _positive_int("n_paths", n_paths)
        self.path_depth = _positive_int("path_depth", path_depth, 2)
        self.channels = _positive_int("channels", channels)
        kernel_size = _positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        self.kernel_size = kernel_size
        self.clip_output = bool(clip_output)
        self.hidden = 2
        self.length = self.in_dim + 1
        gen = torch.Generator().manual_seed(int(seed))
        count = self.n_blocks * self.n_paths
        dims = [self.hidden] + [self.channels] * (self.path_depth - 1) + [self.hidden]
        self.layers = nn.ParameterList()
        for layer, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            bound = init_scale * math.sqrt(3.0 / (c_in * kernel_size))
            if layer == self.path_depth - 1:
                bound /= math.sqrt(count)
            # grouped convolution: the N*M... paths of one block run as one conv with groups = M
            tensor = (torch.rand((count, c_out, c_in, kernel_size), generator=gen) * 2 - 1) * bound
            self.layers.append(nn.Parameter(tensor))
        self.w_out = nn.Parameter((torch.rand((self.hidden * self.length, 1), generator=gen) * 2 - 1)
                                  / math.sqrt(self.hidden * self.length))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (n, {self.in_dim}), got {tuple(x.shape)}")
        x = x.to(self.w_out.dtype)
        data = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
        return torch.stack([data, torch.zeros_like(data)], dim=1)  # (n, channels=2, D+1)

    def path_weights(self, block: int, path: int) -> list[torch.Tensor]:
        index = block * self.n_paths + path
        return [layer[index] for layer in self.layers]

    def path_forward(self, block: int, path: int, z: torch.Tensor) -> torch.Tensor:
        h = z
        weights = self.path_weights(block, path)
        for layer, weight in enumerate(weights):
            h = nn.functional.conv1d(h, weight, padding=self.kernel_size // 2)
            if layer < len(weights) - 1:
                h = torch.relu(h)
        return h

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        return (z.flatten(1) @ self.w_out).squeeze(-1)
