"""cocotb bench for PE3 (batch-summed outer product, strided operands, Flag.ACC, Flag.CHUNKS, row and column
groups) against the golden executor."""

import cocotb
import numpy as np

from tbcommon import UnitTB, iterations
from ultratrain.sim.contract import Descriptor, Flag, Opcode, OutFormat, pe3_group_field


async def one_case(tb, a, c, d, stride_a, stride_b, shift, fmt, acc, extreme, label, chunks=False, groups=0,
                   col_groups=1):
    rng = tb.rng
    if extreme:
        A = rng.choice([-32768, 32767, -1, 0, 1], size=(a, stride_a))
        B = rng.choice([-32768, 32767, -1, 0, 1], size=(a, stride_b))
    else:
        A = rng.integers(-3000, 3000, size=(a, stride_a))
        B = rng.integers(-3000, 3000, size=(a, stride_b))
    src_a = 0x1000
    src_b = src_a + ((A.size * 2 + 63) // 64) * 64 + 32 * int(rng.integers(0, 3))
    dst = src_b + ((B.size * 2 + 63) // 64) * 64 + 32 * int(rng.integers(0, 3))
    tb.write_tensor(src_a, A)
    tb.write_tensor(src_b, B)
    out = col_groups * max(groups, 1) * d * c
    old = rng.choice([-32768, 32767, 0, 5, -5], size=out) if extreme else rng.integers(-2000, 2000, size=out)
    tb.write_tensor(dst, old)
    b = pe3_group_field(max(groups, 1), col_groups) or groups     # b = 1 (one row group) stays 1
    desc = Descriptor(Opcode.PE3, a=a, b=b, c=c, d=d, src_a=src_a, src_b=src_b, dst=dst, stride_a=stride_a,
                      stride_b=stride_b, shift=shift, out_fmt=fmt,
                      flags=(Flag.ACC if acc else Flag.NONE) | (Flag.CHUNKS if chunks else Flag.NONE))
    cycles = await tb.check(desc, dst, out, label)
    tb.log.info("%s: a=%d groups=%d x %d c=%d d=%d strides=%d,%d shift=%d fmt=%s acc=%d chunks=%d: %d cycles "
                "(%.1f MAC/cycle)", label, a, col_groups, groups, c, d, stride_a, stride_b, shift,
                OutFormat(fmt).name, acc, chunks, cycles, desc.macs() / cycles)


@cocotb.test()
async def pe3_random_shapes(dut):
    tb = UnitTB(dut)
    await tb.reset()
    for it in range(iterations(6)):
        rng = tb.rng
        a = int(rng.integers(1, 30))
        c = 16 * int(rng.integers(1, 4))
        # a third of the cases in row groups (contract 1.2): then d is whole operand runs
        groups = int(rng.choice([0, 1, 2, 3, 4, 5]))
        d = int(rng.integers(1, 40)) if groups < 2 else 16 * int(rng.integers(1, 3))
        # a third in column groups (contract 1.3), with or without row groups
        col_groups = int(rng.choice([1, 1, 2, 3]))
        stride_a = col_groups * c + 16 * int(rng.integers(0, 3))
        stride_b = max(groups, 1) * 16 * (-(-d // 16)) + 16 * int(rng.integers(0, 2))
        await one_case(tb, a, c, d, stride_a, stride_b, int(rng.integers(4, 14)), int(rng.integers(0, 3)),
                       bool(rng.integers(0, 2)), False, f"random{it}", chunks=bool(rng.integers(0, 2)), groups=groups,
                       col_groups=col_groups)


@cocotb.test()
async def pe3_extremes(dut):
    """Saturation (also of the ACC sum), the largest cached row (d = 256), extreme shifts."""
    tb = UnitTB(dut)
    await tb.reset()
    cases = [(3, 16, 256, 16, 256, 0, OutFormat.S16, False), (5, 32, 7, 32, 16, 127, OutFormat.S8, True),
             (2, 16, 1, 16, 16, -128, OutFormat.U8, False), (9, 16, 16, 48, 32, 20, OutFormat.S16, True),
             (1, 48, 3, 64, 16, -1, OutFormat.S16, True),
             # d == 1: consecutive rows read-modify-write the same accumulator word (the forwarding path)
             (29, 32, 1, 32, 16, 2, OutFormat.S16, False)]
    for i, (a, c, d, sa, sb, shift, fmt, acc) in enumerate(cases):
        await one_case(tb, a, c, d, sa, sb, shift, int(fmt), acc, True, f"extreme{i}")
    # chunk-major stores: the largest row with several chunks, and ACC reading the old result chunk-major
    for i, (a, c, d, sa, sb, acc) in enumerate([(2, 48, 256, 48, 256, False), (4, 64, 9, 64, 16, True)]):
        await one_case(tb, a, c, d, sa, sb, 3, int(OutFormat.S16), acc, True, f"chunks{i}", chunks=True)
    # row groups: the largest rows in two groups (both layouts), and ACC over several single-chunk groups
    for i, (a, g, c, d, sa, sb, acc, chunks) in enumerate([(2, 2, 32, 256, 32, 512, False, True),
                                                          (3, 2, 32, 256, 48, 528, True, False),
                                                          (1, 6, 16, 16, 16, 96, True, True)]):
        await one_case(tb, a, c, d, sa, sb, 4, int(OutFormat.S16), acc, True, f"groups{i}", chunks=chunks, groups=g)
    # column groups: the largest rows in row and column groups (both layouts, ACC), and column groups alone
    for i, (a, h, g, c, d, sa, sb, acc, chunks) in enumerate([(2, 2, 2, 32, 256, 80, 512, False, True),
                                                             (3, 3, 2, 16, 128, 48, 256, True, False),
                                                             (4, 5, 1, 32, 7, 160, 16, True, True)]):
        await one_case(tb, a, c, d, sa, sb, 4, int(OutFormat.S16), acc, True, f"col_groups{i}", chunks=chunks,
                       groups=g, col_groups=h)
