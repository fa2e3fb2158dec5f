"""Golden PE operations (sim/pe.py) against plain-Python integer loops, including the float64 exactness bound."""

import itertools

import numpy as np
import pytest

from ultratrain.sim import pe
from ultratrain.sim.formats import Format, rescale


def py_pe1(A, W):
    a, b, c = A.shape
    d = W.shape[1]
    return [[sum(int(A[i, j, k]) * int(W[j, o, k]) for j in range(b) for k in range(c)) for o in range(d)]
            for i in range(a)]


def py_pe2(A, W):
    a, b, c = A.shape
    d = W.shape[1]
    return [[[sum(int(A[i, j, k]) * int(W[j, o]) for j in range(b)) for k in range(c)] for o in range(d)]
            for i in range(a)]


def py_pe3(A, B):
    return [[sum(int(B[k, o]) * int(A[k, i]) for k in range(A.shape[0])) for i in range(A.shape[1])]
            for o in range(B.shape[1])]


def operands(rng, shape, extreme):
    if extreme:
        return rng.choice([-32768, 32767, -1, 0], size=shape)
    return rng.integers(-32768, 32768, size=shape)


@pytest.mark.parametrize("extreme", [False, True])
def test_pe1_pe2_pe3_match_python(extreme):
    rng = np.random.default_rng(7 + extreme)
    A = operands(rng, (3, 2, 16), extreme)
    W1 = rng.choice([-8, 7], size=(2, 5, 16)) if extreme else rng.integers(-8, 8, (2, 5, 16))
    W2 = rng.integers(-8, 8, (2, 5))
    assert pe.pe1(A, W1).tolist() == py_pe1(A, W1)
    assert pe.pe2(A, W2).tolist() == py_pe2(A, W2)
    X, G = operands(rng, (6, 16), extreme), operands(rng, (6, 3), extreme)
    assert pe.pe3(X, G).tolist() == py_pe3(X, G)
    assert pe.reduce_rows(X).tolist() == [sum(int(v) for v in X[:, i]) for i in range(16)]


def test_float64_accumulation_is_exact_at_the_contract_bounds():
    # PE3: 2**16 - 1 terms of (-2**15)**2 = 2**30 each: the largest legal |sum| of any instruction, > 2**45.
    K = 0xFFFF
    A = np.full((K, 16), -32768)
    B = np.full((K, 1), -32768)
    assert int(pe.pe3(A, B)[0, 0]) == K * (1 << 30)
    # Alternating signs exercise cancellation at full magnitude.
    A[1::2] = 32767
    exact = sum((-32768 if k % 2 == 0 else 32767) * -32768 for k in range(K))
    assert int(pe.pe3(A, B)[0, 0]) == exact
    # PE1 with a long contraction: 2**20 terms of 2**18.
    A1 = np.full((1, 64, 16384), -32768)
    W1 = np.full((64, 1, 16384), -8)
    assert int(pe.pe1(A1, W1)[0, 0]) == 64 * 16384 * (1 << 18)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="pe1 needs"):
        pe.pe1(np.zeros((2, 3, 16)), np.zeros((2, 3, 16)))
    with pytest.raises(ValueError, match="pe2 needs"):
        pe.pe2(np.zeros((2, 3, 16)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="pe3 needs"):
        pe.pe3(np.zeros((2, 16)), np.zeros((3, 2)))


def test_activation_forward_is_bias_add_then_clipped_relu():
    fmt = Format(8, False)
    Y = np.array([[-300, -2, 0, 5, 1000, 1022, 1023, 4000]])
    bias = np.array([1, 1, 1, 1, 1, 1, 1, 1])
    out, sat = pe.act_forward(Y, bias, bias_shift=-1, shift=2, fmt=fmt)     # bias << 1, then / 4
    # z = Y + 2 = [-298, 0, 2, 7, 1002, 1024, 1025, 4002]; z / 4 = [-74.5, 0, .5, 1.75, 250.5, 256, 256.25, 1000.5]
    # rounded half-to-even: [-74, 0, 0, 2, 250, 256, 256, 1000]; clipped to [0, 255]:
    assert out[0].tolist() == [0, 0, 0, 2, 250, 255, 255, 255]
    assert sat[0].tolist() == [True, False, False, False, False, True, True, True]
    mask = pe.act_mask(Y, bias, -1, 2, fmt)          # z >= 0 and no saturation at the top
    assert mask[0].tolist() == [False, True, True, True, True, False, False, False]
    G = np.arange(8)[None, :] + 100
    assert pe.act_backward(Y, G, bias, -1, 2, fmt)[0].tolist() == [0, 101, 102, 103, 104, 0, 0, 0]


def test_pre_activation_saturates_to_16_bits():
    out, _ = pe.act_forward(np.array([[32767]]), np.array([127]), bias_shift=-8, shift=0, fmt=Format(16, True))
    assert out.tolist() == [[32767]]


def test_float_mode_is_plain_algebra():
    rng = np.random.default_rng(3)
    A, W = rng.normal(size=(3, 2, 16)), rng.normal(size=(2, 4))
    assert np.allclose(pe.pe2(A, W, integer=False), np.einsum("abc,bd->adc", A, W))
    out, sat = pe.output_stage(np.array([0.3]), 5, Format(8, True), integer=False)
    assert out.tolist() == [0.3] and not sat.any()


@pytest.mark.parametrize("shift", [0, 3, 9])
def test_output_stage_equals_rescale(shift):
    acc = np.array(list(itertools.chain(range(-40, 40), [1 << 20, -(1 << 20)])))
    assert pe.output_stage(acc, shift, Format(8, True))[0].tolist() == rescale(acc, shift, Format(8, True))[0].tolist()
