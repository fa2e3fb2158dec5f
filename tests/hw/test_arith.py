"""hw/arith.py's narrow_product equals the integer product (Amaranth's simulator, no HDL build)."""

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from ultratrain.hw.arith import narrow_product


@pytest.mark.parametrize("wide_bits,narrow_bits", [(16, 1), (16, 4), (10, 6), (16, 10)])
def test_narrow_product_is_the_product(wide_bits, narrow_bits):
    wide, narrow = Signal(wide_bits), Signal(narrow_bits)
    product = Signal(wide_bits + narrow_bits)
    m = Module()
    m.d.comb += product.eq(narrow_product(wide, narrow))
    rng = np.random.default_rng(wide_bits * 100 + narrow_bits)
    cases = [(0, 0), ((1 << wide_bits) - 1, (1 << narrow_bits) - 1), (1, (1 << narrow_bits) - 1)]
    cases += [(int(rng.integers(0, 1 << wide_bits)), int(rng.integers(0, 1 << narrow_bits))) for _ in range(200)]

    async def bench(ctx):
        for x, y in cases:
            ctx.set(wide, x)
            ctx.set(narrow, y)
            assert ctx.get(product) == x * y, (x, y)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_narrow_product_rejects_signed_factors():
    from amaranth import signed
    with pytest.raises(TypeError):
        narrow_product(Signal(signed(8)), Signal(3))
