"""cocotb bench for PE1 (``abc x bdc -> ad``) in its unit harness, against the golden executor."""

import cocotb
import numpy as np

from tbcommon import UnitTB, iterations
from ultratrain.sim.contract import Descriptor, Opcode, OutFormat

BUF_ROW_ELEMS = 512      # pe1_buf_elems / pe1_rows


def random_case(rng, extreme=False):
    c = 16 * int(rng.integers(1, 5))
    b = int(rng.integers(1, BUF_ROW_ELEMS // c + 1))
    d = int(rng.integers(1, 41))
    while b * c * d > 4096 * 16:
        d = max(1, d // 2)
    a = int(rng.integers(1, 26))
    return a, b, c, d


async def one_case(tb, a, b, c, d, shift, fmt, extreme, label):
    rng = tb.rng
    if extreme:
        A = rng.choice([-32768, 32767, -1, 0, 1], size=(a, b, c))
        W = rng.choice([-8, 7], size=(b, d, c))
    else:
        A = rng.integers(-300, 300, size=(a, b, c))
        W = rng.integers(-8, 8, size=(b, d, c))
    src, dst = 0x1000, 0x1000 + ((a * b * c * 2 + 63) // 64) * 64 + 64 * int(rng.integers(0, 4))
    wofs = int(rng.integers(0, 4096 - b * d * c // 16 + 1))
    tb.write_tensor(src, A)
    tb.write_tensor(dst, rng.integers(-5, 5, size=a * d))    # stale output must be overwritten
    await tb.load_weights(wofs, W.ravel())
    desc = Descriptor(Opcode.PE1, a=a, b=b, c=c, d=d, src_a=src, dst=dst, wofs=wofs, shift=shift, out_fmt=fmt)
    cycles = await tb.check(desc, dst, a * d, label)
    tb.log.info("%s: a=%d b=%d c=%d d=%d shift=%d fmt=%s: %d cycles (%.1f MAC/cycle)", label, a, b, c, d, shift,
                OutFormat(fmt).name, cycles, a * b * c * d / cycles)


@cocotb.test()
async def pe1_random_shapes(dut):
    tb = UnitTB(dut)
    await tb.reset()
    for it in range(iterations(6)):
        a, b, c, d = random_case(tb.rng)
        shift = int(tb.rng.integers(0, 10))
        await one_case(tb, a, b, c, d, shift, int(tb.rng.integers(0, 3)), False, f"random{it}")


@cocotb.test()
async def pe1_extremes(dut):
    """Saturating data and weights, the largest buffer (b c = 512), extreme shifts, every out_fmt."""
    tb = UnitTB(dut)
    await tb.reset()
    cases = [(9, 32, 16, 8, 0, OutFormat.S16), (8, 1, 512, 3, 127, OutFormat.S8), (3, 4, 128, 5, -128, OutFormat.U8),
             (17, 2, 256, 7, -3, OutFormat.S16), (1, 1, 16, 1, 20, OutFormat.S16), (11, 1, 16, 64, 1, OutFormat.U8)]
    for i, (a, b, c, d, shift, fmt) in enumerate(cases):
        await one_case(tb, a, b, c, d, shift, int(fmt), True, f"extreme{i}")
