"""Fake-quantized TT network in PyTorch that equals the fixed-point device bit for bit (thesis section 3.4).

Every value the device writes is rounded to its format (round half to even, saturate; sim/formats.py) at the
points where the device writes it: after each PE instruction of the compiled schedule (sim/compiler.py,
eq. 3.9-3.19), after the bias add and clipped ReLU (eq. 3.7) and the bias-gradient reduction. Float64
holds all these values exactly (products of <= 16-bit integers summed far below 2**53) and the device's
accumulation is exact, so the only thing that matters for bit equality is *where* the rounding happens,
not the contraction order. The backward pass is the device's: straight-through for the TT intermediates,
the eq. 3.8 mask for the activation, and the factor gradients through the full weight gradient
(eq. 3.15-3.19).

Tensors are named as in sim/compiler.py (``L0.T3``, ``L0.y``, ``A0``, ``logits``, ``G1``, ``L1.dW``,
``L1.V1``, ``L0.S3_0``, ``L0.dG3``, ``L1.U0``, ``L1.dx``, ...); ``exps`` maps each name to its exponent.
"""

from __future__ import annotations

import torch
from torch import nn

from ...sim.compiler import NetworkSpec
from ...sim.contract import OutFormat

__all__ = ["fake_quantize", "fq_forward", "fq_backward", "FakeQuantNet", "fake_quant_net"]

_RANGES = {OutFormat.S16: (-32768, 32767), OutFormat.S8: (-128, 127), OutFormat.U8: (0, 255)}


def fake_quantize(x: torch.Tensor, kind: OutFormat, exp: int) -> torch.Tensor:
    """``clamp(round_half_even(x / 2**exp)) * 2**exp`` in the range of ``kind``."""
    lo, hi = _RANGES[OutFormat(kind)]
    return torch.clamp(torch.round(torch.ldexp(x, torch.tensor(-int(exp), dtype=x.dtype))), lo, hi) * 2.0 ** exp


def _round_to(x: torch.Tensor, exp: int) -> torch.Tensor:
    return torch.round(x * 2.0 ** -exp) * 2.0 ** exp


def _layer_forward(x, cores, layer, li, exps, inter: OutFormat):
    """Eq. 3.9-3.11 with the device's rounding: returns the pre-activation ``L{li}.y`` (B, N)."""
    d, batch = layer.d, x.shape[0]
    t = x.reshape(batch, *layer.in_modes, 1)
    for k in range(d - 1, -1, -1):
        t = torch.tensordot(t, cores[k], dims=([k + 1, k + 2], [1, 3]))
        n_tail = d - 1 - k
        t = t.permute(*(list(range(k + 1)) + [k + 1 + n_tail, k + 2 + n_tail] + list(range(k + 1, k + 1 + n_tail))))
        name, kind = (f"L{li}.y", OutFormat.S16) if k == 0 else (f"L{li}.T{k}", inter)
        t = fake_quantize(t, kind, exps[name])
    return t.reshape(batch, layer.out_features)


def _activation(y, bias, li, exps, out_name, kind: OutFormat):
    """ACT_FWD: ``z = sat16(y + bias aligned to y's exponent)``, then rescale into ``kind`` (eq. 3.7 for u8).
    Returns the output and the eq. 3.8 mask."""
    e_y = exps[f"L{li}.y"]
    z = fake_quantize(y + _round_to(bias, e_y), OutFormat.S16, e_y)
    out = fake_quantize(z, kind, exps[out_name])
    if kind == OutFormat.U8:
        mask = (z >= 0) & (torch.round(z * 2.0 ** -exps[out_name]) <= 255)
    else:
        mask = torch.ones_like(z, dtype=torch.bool)
    return out, mask


def fq_forward(x, cores, biases, spec: NetworkSpec, exps: dict, intermediate=OutFormat.S8):
    """Device forward program on real values. ``x`` (B, M) and every core/bias must be representable in their
    formats (x = pixels / 256, cores = int4 * 2**e, biases = int8 * 2**e). Returns ``(logits, cache)``."""
    cache = {"x": [x], "mask": []}
    a = x
    for li, layer in enumerate(spec.layers):
        y = _layer_forward(a, cores[li], layer, li, exps, OutFormat(intermediate))
        last = li == len(spec.layers) - 1
        name, kind = ("logits", OutFormat.S16) if last else (f"A{li}", OutFormat.U8)
        a, mask = _activation(y, biases[li], li, exps, name, kind)
        cache["mask"].append(mask)
        if not last:
            cache["x"].append(a)
    return a, cache


def _factor_grads(x, g, cores, layer, li, exps):
    """Eq. 3.15-3.19 as the compiler schedules them; gradients in core shape (R_k, m_k, n_k, R_{k+1})."""
    d, batch = layer.d, x.shape[0]
    m, n = layer.in_modes, layer.out_modes
    q = lambda t, name: fake_quantize(t, OutFormat.S16, exps[f"L{li}.{name}"])  # noqa: E731
    # dW[n_0, m_0, ..., n_{d-1}, m_{d-1}] = sum_b g[b, n...] x[b, m...]  (PE3)
    dW = torch.einsum("bn,bm->nm", g, x).reshape(*n, *m)
    dW = dW.permute(*[ax for k in range(d) for ax in (k, d + k)])
    V = {d: q(dW, "dW").unsqueeze(-1)}                    # [p_0 .. p_{d-1}, r_d = 1], p_k = (n_k, m_k)
    for k in range(d - 1, 0, -1):                          # right sweep, PE1: V_k = V_{k+1} x core k
        # contract (n_k, m_k, r_{k+1}) of V_{k+1} with core k (r_k, m_k, n_k, r_{k+1})
        V[k] = q(torch.tensordot(V[k + 1], cores[k], dims=([2 * k, 2 * k + 1, 2 * k + 2], [2, 1, 3])), f"V{k}")
    grads = [V[1].reshape(n[0], m[0], -1).permute(1, 0, 2).unsqueeze(0)]
    for k in range(1, d):                                  # left sweep, PE2
        cur = V[k + 1].unsqueeze(0)                        # [r_0 = 1, p_0 .. p_k, r_{k+1}]
        for j in range(k):
            # contract (r_j, n_j, m_j) with core j (r_j, m_j, n_j, r_{j+1}) -> [p_{j+1} .. p_k, r_{k+1}, r_{j+1}]
            cur = torch.tensordot(cur, cores[j], dims=([0, 1, 2], [0, 2, 1]))
            cur = cur.permute(cur.dim() - 1, *range(cur.dim() - 1))
            cur = q(cur, f"dG{k}" if j == k - 1 else f"S{k}_{j}")
        grads.append(cur.permute(0, 2, 1, 3))             # [r_k, n_k, m_k, r_{k+1}] -> core shape
    return grads


def _input_grad(g, cores, layer, li, exps):
    """Eq. 3.12-3.14: ``dx`` (B, M) with the device's rounding after each instruction."""
    d, batch = layer.d, g.shape[0]
    cur = g.reshape(batch, 1, *layer.out_modes)            # [B, (m_0..m_{k-1}), r_k, n_k, ..., n_{d-1}]
    for k in range(d):
        # contract (r_k, n_k) with core k (r_k, m_k, n_k, r_{k+1}) -> [B, m_<k, n_{k+1}.., m_k, r_{k+1}]
        cur = torch.tensordot(cur, cores[k], dims=([k + 1, k + 2], [0, 2]))
        n_tail = d - 1 - k
        cur = cur.permute(*(list(range(k + 1)) + [cur.dim() - 2, cur.dim() - 1]
                            + list(range(k + 1, k + 1 + n_tail))))
        name = f"L{li}.dx" if k == d - 1 else f"L{li}.U{k}"
        cur = fake_quantize(cur, OutFormat.S16, exps[name])
    return cur.reshape(batch, layer.in_features)


def fq_backward(grad_logits, cache, cores, spec: NetworkSpec, exps: dict):
    """Device backward program. ``grad_logits`` must already be in its format (``G{last}``).

    Returns ``(factor_grads, bias_grads)`` per layer, real-valued, w.r.t. the real cores and biases.
    """
    g = grad_logits
    factor_grads, bias_grads = [None] * len(spec.layers), [None] * len(spec.layers)
    for li in range(len(spec.layers) - 1, -1, -1):
        layer = spec.layers[li]
        bias_grads[li] = fake_quantize(g.sum(0), OutFormat.S16, exps[f"L{li}.db"])
        factor_grads[li] = _factor_grads(cache["x"][li], g, cores[li], layer, li, exps)
        if li > 0:
            dx = _input_grad(g, cores[li], layer, li, exps)
            g = torch.where(cache["mask"][li - 1], dx, torch.zeros_like(dx))   # ACT_BWD, eq. 3.8
    return factor_grads, bias_grads


class _FakeQuantFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec, exps, intermediate, n_cores, *params):
        cores, biases, i = [], [], 0
        for layer in spec.layers:
            cores.append(list(params[i:i + layer.d]))
            i += layer.d
        biases = list(params[i:])
        logits, cache = fq_forward(x, cores, biases, spec, exps, intermediate)
        ctx.spec, ctx.exps, ctx.cache, ctx.cores = spec, exps, cache, cores
        return logits

    @staticmethod
    def backward(ctx, grad_logits):
        spec, exps = ctx.spec, ctx.exps
        g = fake_quantize(grad_logits, OutFormat.S16, exps[f"G{len(spec.layers) - 1}"])
        factor_grads, bias_grads = fq_backward(g, ctx.cache, ctx.cores, spec, exps)
        flat = [gk for layer_grads in factor_grads for gk in layer_grads] + list(bias_grads)
        return (None, None, None, None, None, *flat)


class FakeQuantNet(nn.Module):
    """Wraps a :class:`~ultratrain.sw.tt.layers.TTNet`: 4-bit cores (BinaryConnect quantization of the unit
    parameters with straight-through gradient, eq. 3.6), 8-bit biases at ``bias_exps``, and the device's
    forward/backward. ``loss.backward()`` then gives the unit parameters exactly the gradients the host
    trainer derives from the device (factor gradient x ``2**-s``)."""

    def __init__(self, net, exps: dict, bias_exps, intermediate=OutFormat.S8):
        super().__init__()
        self.net, self.exps, self.bias_exps, self.intermediate = net, dict(exps), list(bias_exps), intermediate

    def quantized_parameters(self):
        cores, biases = [], []
        for layer, be in zip(self.net.layers, self.bias_exps):
            for k, u in enumerate(layer.cores):
                q = torch.clamp(torch.round(u * 8.0), -8, 7) / 8.0          # WEIGHT: 4 bits at exponent -3
                cores.append((u + (q - u).detach()) * layer.scales[k])      # straight-through (eq. 3.5-3.6)
            b = layer.bias
            bq = torch.clamp(torch.round(b * 2.0 ** -be), -128, 127) * 2.0 ** be
            biases.append(b + (bq - b).detach())
        return cores, biases

    def forward(self, x):
        cores, biases = self.quantized_parameters()
        logits = _FakeQuantFunction.apply(x, self.net.spec, self.exps, self.intermediate, len(cores),
                                          *cores, *biases)
        return logits[:, :self.net.n_classes]


def fake_quant_net(net, exps, bias_exps, intermediate=OutFormat.S8) -> FakeQuantNet:
    return FakeQuantNet(net, exps, bias_exps, intermediate)
