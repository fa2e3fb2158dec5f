"""Fixed-point formats (sim/formats.py) against plain-Python integer references: random, extreme and tie inputs."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ultratrain.sim.formats import (ACTIVATION, BC_CLIP, GRADIENT, WEIGHT, Format, ScaleTracker,
                                    binaryconnect_update, clipped_relu, clipped_relu_ste_mask,
                                    exponent_for_mean_abs, rescale, round_shift, round_shift_reference, saturate)


def py_round_half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rem = value - floor
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


def py_round_shift(x: int, shift: int) -> int:
    return x << -shift if shift <= 0 else py_round_half_even(Fraction(x, 1 << shift))


def test_table_3_2_formats():
    assert (WEIGHT.bits, WEIGHT.signed, WEIGHT.min_value, WEIGHT.max_value) == (4, True, -1.0, 0.875)
    assert (ACTIVATION.bits, ACTIVATION.signed) == (8, False)
    assert GRADIENT.bits == 16 and GRADIENT.signed
    assert ACTIVATION.quantize(np.arange(256) / 256).tolist() == list(range(256))   # pixels exactly


@pytest.mark.parametrize("shift", [-5, 0, 1, 2, 3, 7, 15, 31])
def test_round_shift_matches_python_on_random_and_ties(shift):
    rng = np.random.default_rng(shift + 100)
    x = rng.integers(-(1 << 40), 1 << 40, 2000)
    if shift > 0:   # exact ties, both parities, both signs
        x[:200] = (rng.integers(-(1 << 20), 1 << 20, 200) * 2 + 1) << (shift - 1)
    got = round_shift(x, shift)
    ref = [py_round_shift(int(v), shift) for v in x]
    assert got.tolist() == ref
    assert round_shift_reference(x, shift).tolist() == ref


def test_ties_go_to_even():
    assert round_shift(np.array([1, 3, 5, -1, -3, -5]), 1).tolist() == [0, 2, 2, 0, -2, -2]
    assert Format(8, True, 0).quantize([0.5, 1.5, 2.5, -0.5, -1.5]).tolist() == [0, 2, 2, 0, -2]


@given(st.lists(st.integers(-(1 << 50), 1 << 50), min_size=1, max_size=50), st.integers(-2, 40))
@settings(max_examples=200, deadline=None)
def test_round_shift_property(values, shift):
    if shift <= 0:
        values = [v >> 3 for v in values]
    assert round_shift(np.array(values), shift).tolist() == [py_round_shift(v, shift) for v in values]


@pytest.mark.parametrize("fmt", [Format(4, True), Format(8, False), Format(8, True), Format(16, True)])
def test_rescale_saturates_and_reports(fmt):
    acc = np.array([-(1 << 30), -1, 0, 1, 1 << 30, fmt.max_int << 2, (fmt.min_int << 2) - 1])
    out, sat = rescale(acc, 2, fmt)
    ref = [min(max(py_round_shift(int(v), 2), fmt.min_int), fmt.max_int) for v in acc]
    assert out.tolist() == ref
    assert sat.tolist() == [py_round_shift(int(v), 2) != r for v, r in zip(acc, ref)]


def test_quantize_saturates_and_roundtrips():
    fmt = Format(8, True, -4)
    assert fmt.quantize([100.0, -100.0]).tolist() == [127, -128]
    q = np.arange(-128, 128)
    assert np.array_equal(fmt.quantize(fmt.dequantize(q)), q)


def test_format_rejects_nonsense():
    with pytest.raises(ValueError, match="bits"):
        Format(1)
    with pytest.raises(ValueError, match="exp"):
        Format(8, True, 0.5)


@given(st.floats(1e-9, 1e9), st.sampled_from([(4, True), (8, False), (8, True), (16, True)]))
def test_exponent_for_mean_abs_lands_in_window(mean_abs, kind):
    bits, signed = kind
    exp = exponent_for_mean_abs(mean_abs, bits, signed)
    ratio = mean_abs / Format(bits, signed, exp).full_scale
    assert 0.1 <= ratio <= 0.3


def test_scale_tracker_moves_only_outside_window():
    tracker = ScaleTracker(Format(16, True, -10), momentum=0.0)
    fs_int = 1 << 15
    assert tracker.observe(0.2 * fs_int) == -10          # inside: unchanged
    new = tracker.observe(0.9 * fs_int)                   # too large: coarser
    assert new > -10
    assert 0.1 <= tracker.mean_abs / tracker.fmt.full_scale <= 0.3
    small = tracker.observe(1.0)                           # tiny values: finer
    assert small < new


def test_scale_tracker_widens_on_saturation():
    tracker = ScaleTracker(Format(16, True, -10), momentum=0.0)
    assert tracker.observe(0.2 * (1 << 15), saturated_fraction=0.05) == -9


def test_binaryconnect_clip_and_quantize():
    buffer = np.array([0.0, 0.9, -0.9, 0.5])
    new, q = binaryconnect_update(buffer, np.array([-0.5, -0.5, 0.5, 0.01]))
    assert np.allclose(new, [0.5, BC_CLIP, -BC_CLIP, 0.49])
    assert q.tolist() == [4, 7, -7, 4]                     # 0.91 -> 0.875 and -0.91 -> -0.875: symmetric
    # steps smaller than a quantization step accumulate in the buffer
    b = np.zeros(1)
    for _ in range(10):
        b, q = binaryconnect_update(b, np.array([-0.02]))
    assert q.tolist() == [2] and np.isclose(b[0], 0.2)


def test_binaryconnect_clip_scales_with_weight_exponent():
    fmt = WEIGHT.with_exp(-5)
    new, _ = binaryconnect_update(np.zeros(1), np.array([-1.0]), fmt)
    assert np.isclose(new[0], BC_CLIP * 0.25)


def test_clipped_relu_and_mask():
    fmt = Format(8, False, -4)
    x = np.array([-1.0, -0.01, 0.0, 0.03, 0.5, 15.9, 15.97, 16.2])
    assert clipped_relu(x, fmt).tolist() == [0, 0, 0, 0, 8, 254, 255, 255]
    assert clipped_relu_ste_mask(x, fmt).tolist() == [False, False, True, True, True, True, False, False]
    with pytest.raises(ValueError):
        clipped_relu(x, Format(8, True, -4))


def test_saturate():
    assert saturate(np.array([-300, 300]), Format(8, True)).tolist() == [-128, 127]
