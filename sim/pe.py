"""Golden operations of the processing elements and the vector unit (thesis section 3.5.2 and 3.8).

Each function computes exactly what the RTL computes, on integer arrays: products and sums are exact (wide
accumulation, order-free), then one :func:`~ultratrain.sim.formats.rescale` per output element. The same
functions run in *float mode* (float64 arrays, no rescale, no saturation) so that the compiler's index
arithmetic can be checked against a dense ``W @ x`` independently of quantization.

Exactness of the float64 kernels. The integer products are summed with BLAS in float64. That is exact when
every partial sum stays below 2**53 in magnitude. The contract bounds every operand: data are int16
(|x| <= 2**15), weights int4 (|w| <= 2**3), and sizes are 16-bit fields. So

* PE1: at most b*c <= 2**32 terms of magnitude <= 2**18: |sum| <= 2**50,
* PE2: at most b <= 2**16 terms of magnitude <= 2**18: |sum| <= 2**34,
* PE3: at most a <= 2**16 terms of magnitude <= 2**30 (data x data): |sum| <= 2**46,
* REDUCE: at most 2**16 terms of magnitude <= 2**15,

all below 2**53, whatever the summation order (tests/test_pe.py checks the extreme cases against Python ints).
"""

from __future__ import annotations

import numpy as np

from .formats import Format, rescale, round_shift, saturate

__all__ = ["pe1", "pe2", "pe3", "reduce_rows", "act_forward", "act_backward", "act_mask", "output_stage",
           "WIDE16_FMT"]

WIDE16_FMT = Format(16, True, 0)


def _as_operand(x, integer: bool) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _finish(acc: np.ndarray, integer: bool, raw: bool = False) -> np.ndarray:
    # raw: keep the exact float64 accumulator (the executor's fast path rescales it without an int64 round trip)
    return acc.astype(np.int64) if integer and not raw else acc


def pe1(A, W, integer: bool = True, raw: bool = False) -> np.ndarray:
    """PE1, contraction along the last dimension: ``abc x bdc -> ad`` (exact accumulator, no rescale)."""
    A, W = np.asarray(A), np.asarray(W)
    if A.ndim != 3 or W.ndim != 3 or A.shape[1] != W.shape[0] or A.shape[2] != W.shape[2]:
        raise ValueError(f"pe1 needs A (a,b,c) and W (b,d,c); got {A.shape} and {W.shape}")
    a, b, c = A.shape
    d = W.shape[1]
    acc = _as_operand(A, integer).reshape(a, b * c) @ _as_operand(W, integer).transpose(0, 2, 1).reshape(b * c, d)
    return _finish(acc, integer, raw)


def pe2(A, W, integer: bool = True, raw: bool = False) -> np.ndarray:
    """PE2, contraction along another dimension: ``abc x bd -> adc``."""
    A, W = np.asarray(A), np.asarray(W)
    if A.ndim != 3 or W.ndim != 2 or A.shape[1] != W.shape[0]:
        raise ValueError(f"pe2 needs A (a,b,c) and W (b,d); got {A.shape} and {W.shape}")
    # Broadcast matmul (d x b) @ (a, b x c): measured 5-10x faster here than one GEMM after transposing A.
    acc = np.matmul(_as_operand(W, integer).T, _as_operand(A, integer))
    return _finish(acc, integer, raw)


def pe3(A, B, integer: bool = True, raw: bool = False) -> np.ndarray:
    """PE3, batch-summed outer product: ``dst[d, c] = sum_k B[k, d] * A[k, c]`` (A: activations, B: gradients)."""
    A, B = np.asarray(A), np.asarray(B)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"pe3 needs A (k,c) and B (k,d) with the same k; got {A.shape} and {B.shape}")
    acc = _as_operand(B, integer).T @ _as_operand(A, integer)
    return _finish(acc, integer, raw)


def pe3_memory_order(out, chunk_major: bool, lanes: int = 16) -> np.ndarray:
    """PE3's result ``(..., d, c)`` in the order it is stored: row-major ``dst[d][c]``, or with Flag.CHUNKS
    chunk-major ``dst[c // lanes][d][c % lanes]`` (one contiguous ``d x lanes`` block per pass of the lanes)."""
    out = np.asarray(out)
    if not chunk_major:
        return out
    *lead, d, c = out.shape
    return np.swapaxes(out.reshape(*lead, d, c // lanes, lanes), -3, -2)


def reduce_rows(A, integer: bool = True) -> np.ndarray:
    """The bias gradient: ``dst[c] = sum_k A[k, c]``."""
    A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"reduce needs A (k,c); got {A.shape}")
    return A.astype(np.int64).sum(axis=0) if integer else A.astype(np.float64).sum(axis=0)


def output_stage(acc, shift: int, fmt: Format, integer: bool = True):
    """Rescale + saturate (integer mode) or identity (float mode). Returns ``(values, saturated_mask)``.

    A float64 ``acc`` in integer mode is an exact accumulator (|acc| < 2**53, see the module docstring): it is
    rounded and clipped in float64, which equals :func:`rescale` exactly (power-of-two scaling is exact, rint
    rounds half to even, and clipping is exact); the values come back as float64 integers.
    """
    if not integer:
        return np.asarray(acc, dtype=np.float64), np.zeros(np.shape(acc), dtype=bool)
    if isinstance(acc, np.ndarray) and acc.dtype == np.float64:
        rounded = np.rint(np.ldexp(acc, -int(shift)))
        out = np.clip(rounded, fmt.min_int, fmt.max_int)
        return out, out != rounded
    return rescale(acc, shift, fmt)


def _pre_activation(Y, bias, bias_shift: int, integer: bool) -> np.ndarray:
    if not integer:
        return np.asarray(Y, dtype=np.float64) + np.asarray(bias, dtype=np.float64)
    # The aligned bias is added to the 16-bit PE output and the sum saturated to 16 bits (the stored width).
    z = np.asarray(Y, dtype=np.int64) + round_shift(np.asarray(bias, dtype=np.int64), bias_shift)
    return saturate(z, WIDE16_FMT)


def act_forward(Y, bias, bias_shift: int, shift: int, fmt: Format, integer: bool = True):
    """Bias add and activation: ``R(sat16(Y + round_shift(bias, bias_shift)), shift)`` into ``fmt``.

    With an unsigned ``fmt`` the saturation *is* the quantized clipped ReLU of eq. 3.7 (nearest of
    {0, Delta, ..., B}); with a signed one it is a plain bias add (the logits). In float mode: ReLU (no clip)
    for an unsigned ``fmt``, identity otherwise.
    """
    z = _pre_activation(Y, bias, bias_shift, integer)
    if not integer:
        out = np.maximum(z, 0.0) if not fmt.signed else z
        return out, np.zeros(z.shape, dtype=bool)
    return rescale(z, shift, fmt)


def act_mask(Y, bias, bias_shift: int, shift: int, fmt: Format, integer: bool = True) -> np.ndarray:
    """Straight-through mask of eq. 3.8 for the activation computed by :func:`act_forward` with the same args.

    1 where the pre-activation is >= 0 and its rescaled value does not exceed ``fmt``'s maximum: the
    activation was neither clipped at 0 nor saturated at B. For a signed ``fmt`` (no ReLU) the mask is all
    ones. Float mode: ``z >= 0`` for ReLU.
    """
    z = _pre_activation(Y, bias, bias_shift, integer)
    if fmt.signed:
        return np.ones(z.shape, dtype=bool)
    if not integer:
        return z >= 0
    return (z >= 0) & (round_shift(z, shift) <= fmt.max_int)


def act_backward(Y, G, bias, bias_shift: int, shift: int, fmt: Format, integer: bool = True) -> np.ndarray:
    """``G`` where :func:`act_mask` is 1, else 0 (gradient keeps its format)."""
    mask = act_mask(Y, bias, bias_shift, shift, fmt, integer)
    G = np.asarray(G, dtype=np.int64 if integer else np.float64)
    return np.where(mask, G, 0)
