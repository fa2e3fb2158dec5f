"""Fixed-point formats and the integer arithmetic every part of UltraTrain shares (thesis section 3.4, Table 3.2).

A value is stored as an integer ``q`` and means ``q * 2**exp``: every scale is a power of two (section 3.4.3),
so changing scale is a shift. The formats of Table 3.2:

=============  =====  ========  ===================================================================
what           bits   signed    exponent
=============  =====  ========  ===================================================================
weights        4      yes       fixed per TT core, default -3: range [-1, 0.875] (section 3.4.3)
activations    8      no        chosen on the fly; post-ReLU values are >= 0, so unsigned (decision)
biases         8      yes       chosen on the fly (the thesis: "the same representation as activation")
gradients      16     yes       chosen on the fly
=============  =====  ========  ===================================================================

Two operations are the contract between the golden model, the RTL and the host (docs/formats.md):

* :func:`round_shift` — multiply by ``2**-shift``: for ``shift > 0`` an arithmetic right shift that rounds to
  nearest with ties to even; for ``shift <= 0`` an exact left shift.
* :func:`saturate` — clamp into a format's integer range.

:meth:`Format.quantize` (real -> integer) is round-to-nearest-even plus saturation, the ``Q`` of eq. 3.6 and
the ``sigma`` of eq. 3.7 when the format is unsigned. Everything else here (scale selection, BinaryConnect,
the clipped-ReLU STE) is built from those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "Format", "WEIGHT", "ACTIVATION", "BIAS", "GRADIENT", "INTERMEDIATE8", "WIDE16",
    "round_shift", "round_shift_reference", "saturate", "rescale",
    "ScaleTracker", "exponent_for_mean_abs", "SCALE_WINDOW",
    "BC_CLIP", "binaryconnect_update", "clipped_relu", "clipped_relu_ste_mask",
]


@dataclass(frozen=True)
class Format:
    """A fixed-point format: ``bits`` wide, signed or not, value = integer * 2**exp."""

    bits: int
    signed: bool = True
    exp: int = 0

    def __post_init__(self):
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 32:
            raise ValueError(f"Format.bits must be an int in [2, 32], not {self.bits!r}")
        if not isinstance(self.exp, (int, np.integer)):
            raise ValueError(f"Format.exp must be an int (a power-of-two exponent), not {self.exp!r}")

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def scale(self) -> float:
        """The real value of one integer step (the ``Delta`` of section 3.4.1)."""
        return math.ldexp(1.0, self.exp)

    @property
    def full_scale(self) -> float:
        """Largest magnitude the range reaches: 2**(bits-1) steps if signed, 2**bits if not."""
        return math.ldexp(1.0, self.exp + (self.bits - 1 if self.signed else self.bits))

    @property
    def min_value(self) -> float:
        return self.min_int * self.scale

    @property
    def max_value(self) -> float:
        return self.max_int * self.scale

    def with_exp(self, exp: int) -> "Format":
        return replace(self, exp=int(exp))

    def quantize(self, x) -> np.ndarray:
        """Nearest representable integer (ties to even), saturated: ``Q`` of eq. 3.6."""
        scaled = np.ldexp(np.asarray(x, dtype=np.float64), -self.exp)
        return np.clip(np.rint(scaled), self.min_int, self.max_int).astype(np.int64)

    def dequantize(self, q) -> np.ndarray:
        return np.ldexp(np.asarray(q, dtype=np.float64), self.exp)

    def fake_quantize(self, x) -> np.ndarray:
        """``dequantize(quantize(x))``: the value the hardware would hold."""
        return self.dequantize(self.quantize(x))

    def saturates(self, q) -> np.ndarray:
        q = np.asarray(q)
        return (q < self.min_int) | (q > self.max_int)


# Table 3.2. Exponents here are defaults; activations, biases and gradients get theirs from ScaleTracker.
WEIGHT = Format(4, signed=True, exp=-3)         # [-1, 0.875], section 3.4.3
ACTIVATION = Format(8, signed=False, exp=-8)    # ReLU outputs and the input pixels (x / 256 exactly)
BIAS = Format(8, signed=True, exp=-6)
GRADIENT = Format(16, signed=True, exp=-20)
INTERMEDIATE8 = Format(8, signed=True, exp=-4)  # signed forward intermediates of the TT contraction
WIDE16 = Format(16, signed=True, exp=-8)        # 16-bit signed: pre-activations, logits


_EXACT_FLOAT = float(2 ** 53)


def round_shift(x, shift: int) -> np.ndarray:
    """``x * 2**-shift`` for integer ``x``: right shift rounding to nearest, ties to even; left shift if <= 0.

    The RTL implements the rule as written in :func:`round_shift_reference`. Here, for speed, integers below
    2**53 in magnitude (every accumulator the contract allows, see sim/pe.py) take a float64 path that is
    exact: scaling by a power of two is exact, and ``rint`` rounds half to even. tests/sim/test_formats.py
    checks the two agree, ties included.
    """
    x = np.asarray(x)
    shift = int(shift)
    if x.size and -60 < shift < 60:
        as_float = x.astype(np.float64, copy=False)
        if float(np.max(np.abs(as_float))) * 2.0 ** max(0, -shift) < _EXACT_FLOAT:
            return np.rint(np.ldexp(as_float, -shift)).astype(np.int64)
    return round_shift_reference(x, shift)


_INT64_MAX = np.int64(np.iinfo(np.int64).max)
_INT64_MIN = np.int64(np.iinfo(np.int64).min)


def round_shift_reference(x, shift: int) -> np.ndarray:
    """The bit-level rule (what the RTL does): with ``q = x >> s`` (arithmetic) and remainder
    ``r = x - (q << s)``, round up if ``r > 2**(s-1)``, or if ``r == 2**(s-1)`` and ``q`` is odd."""
    x = np.asarray(x, dtype=np.int64)
    shift = int(shift)
    if shift <= 0:
        # Exact where the result fits int64; beyond that saturate instead of wrapping (numpy wraps, and gives 0
        # for shifts >= 64). Every caller saturates to <= 16 bits next, so this is the exact final result for
        # any int8 shift the descriptors allow (the RTL clamps the shift amount the same way).
        k = -shift
        if k == 0:
            return x.copy()
        if k >= 63:
            return np.where(x > 0, _INT64_MAX, np.where(x < 0, _INT64_MIN, 0)).astype(np.int64)
        limit = np.int64(1) << np.int64(63 - k)
        clipped = np.clip(x, -limit, limit - 1)
        return np.where(x >= limit, _INT64_MAX, np.where(x < -limit, _INT64_MIN, clipped << np.int64(k)))
    if shift >= 64:
        # |x| <= 2**63 <= 2**(shift-1): |x * 2**-shift| <= 1/2, and the one tie (-2**63 >> 64 = -1/2) goes to 0.
        return np.zeros(x.shape, dtype=np.int64)
    q = x >> np.int64(shift)
    r = x - (q << np.int64(shift))
    half = np.int64(1) << np.int64(shift - 1)
    up = (r > half) | ((r == half) & ((q & 1) == 1))
    return q + up.astype(np.int64)


def saturate(x, fmt: Format) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.int64), fmt.min_int, fmt.max_int)


def rescale(acc, shift: int, fmt: Format) -> tuple[np.ndarray, np.ndarray]:
    """The output stage of every PE: ``saturate(round_shift(acc, shift), fmt)`` and the saturation mask."""
    rounded = round_shift(acc, shift)
    out = saturate(rounded, fmt)
    return out, out != rounded


# Section 3.4.3: keep mean |x| / full scale within [0.1, 0.3].
SCALE_WINDOW = (0.1, 0.3)


def exponent_for_mean_abs(mean_abs: float, bits: int, signed: bool = True,
                          window: tuple[float, float] = SCALE_WINDOW) -> int:
    """The exponent that puts ``mean_abs / full_scale`` inside ``window`` (the middle of it, in log scale).

    A power-of-two step changes the ratio by 2 and the window spans a factor of 3, so one always exists.
    For ``mean_abs == 0`` (nothing measured yet, or an all-zero tensor) there is no information: we return
    the exponent that makes full scale 1.0.
    """
    if not (0 < window[0] < window[1] and window[1] / window[0] >= 2):
        raise ValueError(f"scale window {window} must satisfy 0 < lo < hi and hi/lo >= 2")
    mantissa_bits = bits - 1 if signed else bits
    if not mean_abs > 0 or not math.isfinite(mean_abs):
        return -mantissa_bits
    # ratio(e) = mean_abs / 2**(e + mantissa_bits); the smallest e with ratio <= hi keeps ratio > hi/2 >= lo.
    return math.ceil(math.log2(mean_abs / window[1])) - mantissa_bits


class ScaleTracker:
    """Automatic power-of-two scale selection for one tensor (section 3.4.3).

    Holds the tensor's current exponent. After each step the device reports the mean absolute value of the
    integers it wrote (from the descriptor write-back); :meth:`observe` converts that to a real mean, keeps
    an exponential moving average of it, and moves the exponent only when the ratio leaves the window —
    so the scale is stable while it is good, and a single step corrects it when it is not.
    """

    def __init__(self, fmt: Format, momentum: float = 0.9, window=SCALE_WINDOW):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), not {momentum}")
        self.fmt = fmt
        self.momentum = momentum
        self.window = tuple(window)
        self.mean_abs: float | None = None

    @property
    def exp(self) -> int:
        return self.fmt.exp

    def ratio(self, mean_abs: float | None = None) -> float:
        mean_abs = self.mean_abs if mean_abs is None else mean_abs
        return 0.0 if not mean_abs else mean_abs / self.fmt.full_scale

    def observe(self, mean_abs_int: float, saturated_fraction: float = 0.0) -> int:
        """Record the mean |integer| the device wrote at the current exponent; returns the new exponent."""
        real = float(mean_abs_int) * self.fmt.scale
        self.mean_abs = real if self.mean_abs is None else self.momentum * self.mean_abs + (1 - self.momentum) * real
        lo, hi = self.window
        ratio = self.ratio()
        if saturated_fraction > 0.01 and ratio <= hi:
            # Saturation makes the measured mean an underestimate: widen by one step.
            self.fmt = self.fmt.with_exp(self.fmt.exp + 1)
        elif ratio and not lo <= ratio <= hi:
            self.fmt = self.fmt.with_exp(exponent_for_mean_abs(self.mean_abs, self.fmt.bits, self.fmt.signed,
                                                               self.window))
        return self.fmt.exp

    def calibrate(self, values) -> int:
        """Set the exponent from real values (the first batch, before the device has reported anything)."""
        values = np.asarray(values, dtype=np.float64)
        self.mean_abs = float(np.mean(np.abs(values))) if values.size else 0.0
        self.fmt = self.fmt.with_exp(exponent_for_mean_abs(self.mean_abs, self.fmt.bits, self.fmt.signed,
                                                           self.window))
        return self.fmt.exp

    def state_dict(self) -> dict:
        return {"exp": self.fmt.exp, "mean_abs": self.mean_abs}

    def load_state_dict(self, state: dict) -> None:
        self.fmt = self.fmt.with_exp(state["exp"])
        self.mean_abs = state["mean_abs"]


# Eq. 3.5-3.6 and section 3.4.3: the high-precision buffer is clipped to [-0.91, 0.91] of the weights' unit
# range after each update. We state the clip relative to full scale so that it holds for any weight exponent.
BC_CLIP = 0.91


def binaryconnect_update(buffer, step, fmt: Format = WEIGHT, clip: float = BC_CLIP):
    """One BinaryConnect update: ``buffer - step`` clipped to ``+-clip * full_scale`` (eq. 3.5), then Q (eq. 3.6).

    Returns ``(new_buffer, quantized_integers)``. ``step`` is what the optimizer computed (for plain SGD,
    ``lr * mean gradient``; for Adam, its update). The buffer keeps the precision the quantized weights lack,
    so steps smaller than one quantization step still accumulate.
    """
    bound = clip * fmt.full_scale
    new_buffer = np.clip(np.asarray(buffer, dtype=np.float64) - np.asarray(step, dtype=np.float64), -bound, bound)
    return new_buffer, fmt.quantize(new_buffer)


def clipped_relu(x, fmt: Format = ACTIVATION) -> np.ndarray:
    """Quantized clipped ReLU of eq. 3.7 on real ``x``: nearest of {0, Delta, ..., B}, returned as integers."""
    if fmt.signed:
        raise ValueError("the clipped ReLU output format must be unsigned")
    return fmt.quantize(x)


def clipped_relu_ste_mask(x, fmt: Format = ACTIVATION) -> np.ndarray:
    """Straight-through mask of eq. 3.8: 1 where ``0 <= x`` and x rounds to at most B (no saturation).

    Decision (docs/formats.md): the upper edge is judged after rounding, exactly as the hardware sees it,
    so the mask is 1 precisely where the activation neither clipped at 0 from below nor saturated at B.
    """
    x = np.asarray(x, dtype=np.float64)
    return (x >= 0) & (np.rint(np.ldexp(x, -fmt.exp)) <= fmt.max_int)
