"""cocotb bench for the accelerator top: hand-built descriptor programs, illegal descriptors, registers,
interrupt, soft reset and AXI errors, all compared with the golden executor."""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from tbcommon import TopTB, iterations
from ultratrain.sim.contract import (CONTRACT_VERSION, DEFAULT_CONFIG, DEVICE_ID, Descriptor, ErrorCode, Flag,
                                     Opcode, OutFormat, check_descriptor, pack_bias_words, pack_weight_words,
                                     pe2_row_pitch, pe3_group_field)


class Allocator:
    def __init__(self, base=0x1000):
        self.next = base

    def __call__(self, nbytes):
        addr = self.next
        self.next += -(-nbytes // 64) * 64 + 64
        return addr


def mixed_program(tb, alloc, rng):
    """LOAD_W, LOAD_B, then one instruction of every kind with random shapes; returns (descriptors, regions)."""
    weights = rng.integers(-8, 8, size=16 * 600)
    words = pack_weight_words(weights)
    biases = rng.integers(-128, 128, size=16 * 8)
    w_addr = alloc(words.size * 8)
    b_addr = alloc(biases.size)
    tb.write_bytes(w_addr, words.view(np.uint8))
    tb.write_bytes(b_addr, pack_bias_words(biases).ravel())
    # An odd start and an odd count: the last word is written alone, the first into the odd bank.
    prog = [Descriptor(Opcode.LOAD_W, a=int(words.size) - 1, src_a=w_addr, wofs=99),
            Descriptor(Opcode.LOAD_B, a=8, src_a=b_addr, bofs=2)]
    regions = {}

    def tensor(name, shape, lo=-500, hi=500):
        size = int(np.prod(shape))
        addr = alloc(2 * size)
        tb.write_tensor(addr, rng.integers(lo, hi, size=size))
        regions[name] = (addr, size, shape)
        return addr

    a, b, c, d = int(rng.integers(1, 12)), int(rng.integers(1, 4)), 16 * int(rng.integers(1, 3)), int(rng.integers(1, 20))
    x = tensor("pe1.src", (a, b, c))
    y = tensor("pe1.dst", (a, d))
    prog.append(Descriptor(Opcode.PE1, a=a, b=b, c=c, d=d, src_a=x, dst=y, wofs=100, shift=4))
    a2, b2, d2 = int(rng.integers(1, 4)), int(rng.integers(1, 20)), int(rng.integers(1, 20))
    x2 = tensor("pe2.src", (a2, b2, c))
    y2 = tensor("pe2.dst", (a2, d2, c))
    prog.append(Descriptor(Opcode.PE2, a=a2, b=b2, c=c, d=d2, src_a=x2, dst=y2, wofs=120, shift=3,
                           out_fmt=OutFormat.S8))
    n3 = int(rng.integers(1, 10))
    xa = tensor("pe3.a", (n3, 32))
    gb = tensor("pe3.b", (n3, 16))
    w3 = tensor("pe3.dst", (16, 32))
    prog.append(Descriptor(Opcode.PE3, a=n3, c=32, d=16, src_a=xa, src_b=gb, dst=w3, stride_a=32, stride_b=16,
                           shift=6, flags=Flag.ACC))
    av, cv = int(rng.integers(1, 6)), 16 * int(rng.integers(1, 5))
    yv = tensor("act.y", (av, cv))
    av_out = tensor("act.out", (av, cv))
    gv = tensor("act.g", (av, cv))
    gv_out = tensor("act.gout", (av, cv))
    red = tensor("reduce.dst", (cv,))
    prog += [Descriptor(Opcode.ACT_FWD, a=av, c=cv, src_a=yv, dst=av_out, bofs=2, bias_shift=-2, shift=2,
                        out_fmt=OutFormat.U8),
             Descriptor(Opcode.ACT_BWD, a=av, c=cv, src_a=yv, src_b=gv, dst=gv_out, bofs=2, bias_shift=-2, shift=2,
                        out_fmt=OutFormat.U8),
             Descriptor(Opcode.REDUCE, a=av, c=cv, src_a=gv, dst=red, shift=1),
             Descriptor(Opcode.END)]
    return prog, regions


@cocotb.test()
async def top_mixed_programs(dut):
    """Every instruction kind in one program, random shapes, with AXI stalls."""
    tb = TopTB(dut)
    await tb.reset()
    for it in range(iterations(2)):
        alloc = Allocator(0x1000 + it * 0x40000)
        prog, regions = mixed_program(tb, alloc, tb.rng)
        ring = alloc(64 * len(prog))
        tb.write_program(ring, prog)
        regs = await tb.check_program(ring, len(prog), regions, f"mixed{it}")
        wb = regs["writebacks"]
        tb.log.info("mixed%d: %d cycles; per instruction %s; busy PE1/2/3/VEC/LOAD %d/%d/%d/%d/%d, stalls %d", it,
                    regs["CYCLES"], [w.cycles for w in wb], regs["PE1_BUSY"], regs["PE2_BUSY"], regs["PE3_BUSY"],
                    regs["VEC_BUSY"], regs["LOAD_BUSY"], regs["AXI_STALL"])
        assert regs["PE1_BUSY"] > 0 and regs["PE2_BUSY"] > 0 and regs["PE3_BUSY"] > 0 and regs["VEC_BUSY"] > 0
        assert all(w.cycles > 0 for w in wb[:-1]) and wb[-1].cycles == 0


def illegal_cases():
    cfg = DEFAULT_CONFIG
    ok = dict(src_a=0x1000, dst=0x2000)
    return [
        ("opcode", 0x0000000F, ErrorCode.ILLEGAL_OPCODE),
        ("reserved", 0x00000011 | 1 << 20, ErrorCode.RESERVED),
        ("flags", 0x00000401, ErrorCode.RESERVED),
        ("out_fmt", 0x00030001, ErrorCode.BAD_FORMAT),
        ("pe1_c", Descriptor(Opcode.PE1, a=1, b=1, c=8, d=1, **ok), ErrorCode.BAD_SHAPE),
        ("pe1_buf", Descriptor(Opcode.PE1, a=1, b=33, c=16, d=1, **ok), ErrorCode.BAD_SHAPE),
        # b and c / 16 each within the buffer, their product not (the decoder's narrow product, hw/arith.py)
        ("pe1_buf_bc", Descriptor(Opcode.PE1, a=1, b=3, c=176, d=1, **ok), ErrorCode.BAD_SHAPE),
        ("pe1_buf_c", Descriptor(Opcode.PE1, a=1, b=1, c=16 * 33, d=1, **ok), ErrorCode.BAD_SHAPE),
        ("pe2_b", Descriptor(Opcode.PE2, a=1, b=cfg.pe2_buf_rows + 1, c=16, d=1, **ok), ErrorCode.BAD_SHAPE),
        ("pe2_d", Descriptor(Opcode.PE2, a=1, b=1, c=16, d=cfg.pe2_rows * cfg.pe2_acc_depth + 1, **ok),
         ErrorCode.BAD_SHAPE),
        ("pe3_stride", Descriptor(Opcode.PE3, a=1, c=32, d=1, stride_a=16, stride_b=16, src_b=0x3000, **ok),
         ErrorCode.BAD_SHAPE),
        ("pe3_d", Descriptor(Opcode.PE3, a=1, c=16, d=257, stride_a=16, stride_b=272, src_b=0x3000, **ok),
         ErrorCode.BAD_SHAPE),
        # row groups: B's rows must hold G d columns (the decoder's narrow product G x d) ...
        ("pe3_groups", Descriptor(Opcode.PE3, a=1, b=250, c=16, d=32, stride_a=16, stride_b=7984, src_b=0x3000,
                                  **ok), ErrorCode.BAD_SHAPE),
        # ... and column groups: A's rows must hold H c columns (the decoder's narrow product c x H)
        ("pe3_column_groups", Descriptor(Opcode.PE3, a=1, b=pe3_group_field(1, 200), c=48, d=16, stride_a=9584,
                                         stride_b=16, src_b=0x3000, **ok), ErrorCode.BAD_SHAPE),
        ("zero", Descriptor(Opcode.REDUCE, a=0, c=16, **ok), ErrorCode.BAD_SHAPE),
        ("align", Descriptor(Opcode.ACT_FWD, a=1, c=16, src_a=0x1010, dst=0x2000), ErrorCode.BAD_ALIGN),
        ("stride_align", Descriptor(Opcode.PE3, a=1, c=16, d=1, stride_a=24, stride_b=16, src_b=0x3000, **ok),
         ErrorCode.BAD_ALIGN),
        # ... and start on operand boundaries (d % 16 == 0 once there are two groups)
        ("pe3_groups_align", Descriptor(Opcode.PE3, a=1, b=2, c=16, d=8, stride_a=16, stride_b=16, src_b=0x3000,
                                        **ok), ErrorCode.BAD_ALIGN),
        ("wrange", Descriptor(Opcode.PE1, a=1, b=1, c=16, d=16, wofs=cfg.wmem_words - 15, **ok), ErrorCode.MEM_RANGE),
        ("wrange_bcd", Descriptor(Opcode.PE1, a=1, b=2, c=256, d=8, wofs=cfg.wmem_words - 255, **ok),
         ErrorCode.MEM_RANGE),
        ("wrange_pe2", Descriptor(Opcode.PE2, a=1, b=100, c=16, d=9, wofs=cfg.wmem_words - 99, **ok),
         ErrorCode.MEM_RANGE),
        ("brange", Descriptor(Opcode.ACT_FWD, a=1, c=32, bofs=cfg.bmem_words - 1, **ok), ErrorCode.MEM_RANGE),
        ("load_range", Descriptor(Opcode.LOAD_W, a=2, src_a=0x1000, wofs=cfg.wmem_words - 1), ErrorCode.MEM_RANGE),
        ("load_zero", Descriptor(Opcode.LOAD_B, a=0, src_a=0x1000), ErrorCode.BAD_SHAPE),
        ("acc_flag", Descriptor(Opcode.PE1, a=1, b=1, c=16, d=1, flags=Flag.ACC, **ok), ErrorCode.RESERVED),
        ("chunks_flag", Descriptor(Opcode.PE2, a=1, b=1, c=16, d=8, flags=Flag.CHUNKS, **ok), ErrorCode.RESERVED),
    ]


@cocotb.test()
async def top_illegal_descriptors(dut):
    """Each illegal descriptor stops the run with its ErrorCode, written back, PC on it; never a hang."""
    import struct
    tb = TopTB(dut)
    await tb.reset()
    tb.write_tensor(0x1000, tb.rng.integers(-100, 100, size=2048))
    good = Descriptor(Opcode.ACT_FWD, a=1, c=16, src_a=0x1000, dst=0x2000, out_fmt=OutFormat.S16)
    ring = 0x8000
    for name, bad, code in illegal_cases():
        if isinstance(bad, Descriptor):
            assert check_descriptor(bad) == code, f"{name}: the contract says {check_descriptor(bad)!r}"
        raw = bad.encode() if isinstance(bad, Descriptor) else struct.pack("<16I", bad, *([0] * 15))
        tb.write_bytes(ring, good.encode() + raw + Descriptor(Opcode.END).encode())
        regs = await tb.check_program(ring, 3, {}, f"illegal {name}")
        assert regs["PC"] == 1 and (regs["STATUS"] >> 8) == int(code), f"{name}: STATUS {regs['STATUS']:#x}"
    # Running off the end of the ring without END.
    tb.write_bytes(ring, good.encode() * 2)
    regs = await tb.check_program(ring, 2, {}, "no_end")
    assert (regs["STATUS"] >> 8) == int(ErrorCode.NO_END) and regs["PC"] == 2
    regs = await tb.check_program(ring, 0, {}, "empty")
    assert (regs["STATUS"] >> 8) == int(ErrorCode.NO_END) and regs["PC"] == 0


@cocotb.test()
async def top_registers(dut):
    """Constant registers, HWCFG, W1C status bits, IRQ enable, START ignored while busy."""
    tb = TopTB(dut)
    await tb.reset()
    assert await tb.read_reg("ID") == DEVICE_ID
    assert await tb.read_reg("VERSION") == CONTRACT_VERSION[0] << 16 | CONTRACT_VERSION[1]
    for name, value in DEFAULT_CONFIG.hwcfg_registers().items():
        assert await tb.read_reg(name) == value, name
    await tb.write_reg("PROG_ADDR", 0x12345640)
    assert await tb.read_reg("PROG_ADDR") == 0x12345640
    await tb.axil.write(0x10, b"\xc0", )           # byte write (WSTRB = 0001)
    assert await tb.read_reg("PROG_ADDR") == 0x123456C0
    assert await tb.read_reg("STATUS") == 0 and not int(dut.irq.value)
    # An END-only program without IRQ enable: DONE set, irq stays low; enabling IRQ raises it; W1C clears.
    tb.write_bytes(0x4000, Descriptor(Opcode.END).encode())
    await tb.start(0x4000, 1, irq=False)
    await ClockCycles(dut.clk, 200)
    status = await tb.read_reg("STATUS")
    assert status & 0b111 == 0b010, f"STATUS {status:#x}"
    assert not int(dut.irq.value)
    await tb.write_reg("CTRL", 0b100)
    await ClockCycles(dut.clk, 2)
    assert int(dut.irq.value) and await tb.read_reg("CTRL") == 0b100
    await tb.write_reg("STATUS", 0b010)
    await ClockCycles(dut.clk, 2)
    assert await tb.read_reg("STATUS") == 0 and not int(dut.irq.value)
    cycles = await tb.read_reg("CYCLES_LO")
    assert 0 < cycles < 200 and await tb.read_reg("CYCLES_HI") == 0


@cocotb.test()
async def top_soft_reset_and_axi_error(dut):
    """RESET aborts a long run cleanly (AXI bursts completed); an operand outside DRAM ends with AXI_ERROR."""
    tb = TopTB(dut, ram_size=1 << 20)
    await tb.reset()
    rng = tb.rng
    tb.write_tensor(0x10000, rng.integers(-100, 100, size=64 * 1024))
    long = [Descriptor(Opcode.REDUCE, a=2048, c=32, src_a=0x10000, dst=0x50000, shift=3)] * 4 + [Descriptor(Opcode.END)]
    tb.write_program(0x8000, long)
    await tb.start(0x8000, len(long))
    await ClockCycles(dut.clk, 3000)
    assert (await tb.read_reg("STATUS")) & 1, "should still be busy"
    await tb.write_reg("CTRL", 0b10)
    for _ in range(200):
        await ClockCycles(dut.clk, 20)
        if not (await tb.read_reg("STATUS")) & 1:
            break
    assert (await tb.read_reg("STATUS")) == 0 and await tb.read_reg("PC") == 0
    # The device works normally after the abort.
    prog = [Descriptor(Opcode.REDUCE, a=4, c=32, src_a=0x10000, dst=0x50000, shift=1), Descriptor(Opcode.END)]
    tb.write_program(0x9000, prog)
    await tb.check_program(0x9000, 2, {"reduce": (0x50000, 32, (32,))}, "after_reset")
    # A read the slave answers with SLVERR (addresses from 0xC0000 on fail): the run stops with AXI_ERROR.
    original = tb.ram.read_if._read

    async def faulty_read(address, length):
        if address >= 0xC0000:
            raise IndexError(f"no memory at {address:#x}")
        return await original(address, length)

    tb.ram.read_if._read = faulty_read
    bad = [Descriptor(Opcode.ACT_FWD, a=1, c=16, src_a=0xC0000, dst=0x50000), Descriptor(Opcode.END)]
    tb.write_program(0xA000, bad)
    regs = await tb.run_program(0xA000, 2)
    assert regs["STATUS"] >> 8 == int(ErrorCode.AXI_ERROR) and regs["STATUS"] & 4 and regs["PC"] == 0, \
        f"STATUS {regs['STATUS']:#x} PC {regs['PC']}"
    from ultratrain.sim.contract import read_writeback
    wb = read_writeback(tb.ram.read(0xA000, 64), 0)
    assert not wb.done and wb.error == ErrorCode.AXI_ERROR, wb
    tb.ram.read_if._read = original
    await tb.check_program(0x9000, 2, {"reduce": (0x50000, 32, (32,))}, "after_axi_error")
