"""cocotb bench for PE2 (``abc x bd -> adc``) in its unit harness, against the golden executor."""

import cocotb
import numpy as np

from tbcommon import UnitTB, iterations
from ultratrain.sim.contract import Descriptor, Opcode, OutFormat, pe2_row_pitch


async def one_case(tb, a, b, c, d, shift, fmt, extreme, label):
    rng = tb.rng
    if extreme:
        A = rng.choice([-32768, 32767, -1, 0, 1], size=(a, b, c))
        W = rng.choice([-8, 7], size=(b, d))
    else:
        A = rng.integers(-300, 300, size=(a, b, c))
        W = rng.integers(-8, 8, size=(b, d))
    pitch = pe2_row_pitch(d)
    tile = rng.integers(-8, 8, size=(b, pitch))          # padding columns hold junk the PE must ignore
    tile[:, :d] = W
    words = -(-b * pitch // 16)
    src = 0x1000
    dst = src + ((a * b * c * 2 + 63) // 64) * 64 + 64 * int(rng.integers(0, 4))
    wofs = int(rng.integers(0, 4096 - words + 1))
    tb.write_tensor(src, A)
    tb.write_tensor(dst, rng.integers(-5, 5, size=a * d * c))
    await tb.load_weights(wofs, tile.ravel())
    desc = Descriptor(Opcode.PE2, a=a, b=b, c=c, d=d, src_a=src, dst=dst, wofs=wofs, shift=shift, out_fmt=fmt)
    cycles = await tb.check(desc, dst, a * d * c, label)
    tb.log.info("%s: a=%d b=%d c=%d d=%d shift=%d fmt=%s: %d cycles (%.1f MAC/cycle)", label, a, b, c, d, shift,
                OutFormat(fmt).name, cycles, a * b * c * d / cycles)


@cocotb.test()
async def pe2_random_shapes(dut):
    tb = UnitTB(dut)
    await tb.reset()
    for it in range(iterations(6)):
        a = int(tb.rng.integers(1, 5))
        b = int(tb.rng.integers(1, 40))
        c = 16 * int(tb.rng.integers(1, 4))
        d = int(tb.rng.integers(1, 40))
        await one_case(tb, a, b, c, d, int(tb.rng.integers(0, 10)), int(tb.rng.integers(0, 3)), False,
                       f"random{it}")


@cocotb.test()
async def pe2_extremes(dut):
    """Saturation, the largest buffer (b = 512) and accumulator depth (d = 512), extreme shifts."""
    tb = UnitTB(dut)
    await tb.reset()
    cases = [(1, 512, 16, 3, 0, OutFormat.S16), (1, 2, 16, 512, 127, OutFormat.S8), (2, 5, 32, 9, -128, OutFormat.U8),
             (3, 1, 16, 1, -2, OutFormat.S16), (1, 64, 48, 64, 4, OutFormat.U8)]
    for i, (a, b, c, d, shift, fmt) in enumerate(cases):
        await one_case(tb, a, b, c, d, shift, int(fmt), True, f"extreme{i}")
