"""cocotb bench for the vector unit (ACT_FWD, ACT_BWD, REDUCE) against the golden executor."""

import cocotb
import numpy as np

from tbcommon import UnitTB, iterations
from ultratrain.sim.contract import Descriptor, Opcode, OutFormat


async def act_case(tb, op, a, c, bofs, bias_shift, shift, fmt, extreme, label):
    rng = tb.rng
    if extreme:
        Y = rng.choice([-32768, 32767, -1, 0, 1, 255, 256], size=(a, c))
        bias = rng.choice([-128, 127, 0, 1], size=c)
    else:
        Y = rng.integers(-2000, 2000, size=(a, c))
        bias = rng.integers(-128, 128, size=c)
    G = rng.integers(-32768, 32768, size=(a, c))
    await tb.load_biases(bofs, bias)
    src_a, src_b = 0x1000, 0x1000 + ((a * c * 2 + 63) // 64) * 64
    dst = src_b + ((a * c * 2 + 63) // 64) * 64 + 32 * int(rng.integers(0, 3))
    tb.write_tensor(src_a, Y)
    tb.write_tensor(src_b, G)
    tb.write_tensor(dst, rng.integers(-5, 5, size=a * c))
    desc = Descriptor(op, a=a, c=c, src_a=src_a, src_b=src_b if op == Opcode.ACT_BWD else 0, dst=dst, bofs=bofs,
                      bias_shift=bias_shift, shift=shift, out_fmt=fmt)
    cycles = await tb.check(desc, dst, a * c, label)
    tb.log.info("%s: %s a=%d c=%d bias_shift=%d shift=%d fmt=%s: %d cycles", label, op.name, a, c, bias_shift, shift,
                OutFormat(fmt).name, cycles)


async def reduce_case(tb, a, c, shift, fmt, extreme, label):
    rng = tb.rng
    A = rng.choice([-32768, 32767], size=(a, c)) if extreme else rng.integers(-3000, 3000, size=(a, c))
    src, dst = 0x1000, 0x1000 + ((a * c * 2 + 63) // 64) * 64
    tb.write_tensor(src, A)
    tb.write_tensor(dst, rng.integers(-5, 5, size=c))
    desc = Descriptor(Opcode.REDUCE, a=a, c=c, src_a=src, dst=dst, shift=shift, out_fmt=fmt)
    cycles = await tb.check(desc, dst, c, label)
    tb.log.info("%s: REDUCE a=%d c=%d shift=%d fmt=%s: %d cycles", label, a, c, shift, OutFormat(fmt).name, cycles)


@cocotb.test()
async def vec_random(dut):
    tb = UnitTB(dut)
    await tb.reset()
    rng = tb.rng
    for it in range(iterations(4)):
        for op in (Opcode.ACT_FWD, Opcode.ACT_BWD):
            c = 16 * int(rng.integers(1, 40))
            bofs = int(rng.integers(0, 64 - c // 16 + 1))
            await act_case(tb, op, int(rng.integers(1, 12)), c, bofs, int(rng.integers(-6, 6)),
                           int(rng.integers(0, 8)), int(rng.choice([0, 1, 2, 2])), False, f"{op.name}{it}")
        await reduce_case(tb, int(rng.integers(1, 40)), 16 * int(rng.integers(1, 40)), int(rng.integers(0, 6)),
                          int(rng.integers(0, 3)), False, f"reduce{it}")


@cocotb.test()
async def vec_extremes(dut):
    """Saturation, extreme shifts and bias shifts, the whole bias memory (c = 1024), REDUCE in two chunks."""
    tb = UnitTB(dut)
    await tb.reset()
    await act_case(tb, Opcode.ACT_FWD, 3, 1024, 0, -128, 127, int(OutFormat.U8), True, "fwd_edge")
    await act_case(tb, Opcode.ACT_BWD, 2, 64, 60, 127, -128, int(OutFormat.U8), True, "bwd_edge")
    await act_case(tb, Opcode.ACT_FWD, 2, 32, 3, -9, -3, int(OutFormat.S8), True, "fwd_s8")
    await act_case(tb, Opcode.ACT_BWD, 2, 48, 1, 2, 1, int(OutFormat.S16), True, "bwd_s16")
    await reduce_case(tb, 3, 272, 127, int(OutFormat.S16), True, "reduce_shift")
    await reduce_case(tb, 2, 16, -128, int(OutFormat.U8), True, "reduce_left")
