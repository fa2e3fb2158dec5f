"""Descriptor decoder and legality check: the hardware twin of ``Descriptor.decode`` + ``check_descriptor``.

Takes words 0-7 of a 64-byte descriptor (sim/contract.py gives the encoding) and returns the fields and the
:class:`~ultratrain.sim.contract.ErrorCode` the contract prescribes, with the same priority: decode errors
(illegal opcode, reserved bits, unknown flags, bad out_fmt) first, then shape, alignment, memory range and
flags. An illegal descriptor therefore stops the device with exactly the code the golden executor reports.
Purely combinational; the controller registers the result.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import (DEFAULT_CONFIG, OPERAND_ALIGN, WMEM_LANES, ErrorCode, HardwareConfig, PE3_FLAGS,
                            Opcode, OutFormat)
from .arith import narrow_product

__all__ = ["DescriptorFields", "Decoder"]


class DescriptorFields(data.Struct):
    opcode: 4
    flags: 8
    out_fmt: 2
    shift: signed(8)
    a: 16
    b: 16
    c: 16
    d: 16
    src_a: 32
    src_b: 32
    dst: 32
    wofs: 16
    bofs: 8
    bias_shift: signed(8)
    stride_a: 16
    stride_b: 16


class Decoder(wiring.Component):
    """``words`` (8 x 32 bits, word 0 lowest) -> ``fields`` and ``error`` (an ErrorCode value)."""

    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        super().__init__({"words": In(256), "fields": Out(DescriptorFields), "error": Out(8)})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        w = [self.words[32 * i:32 * (i + 1)] for i in range(8)]
        f = self.fields
        m.d.comb += [
            f.opcode.eq(w[0][0:4]), f.flags.eq(w[0][8:16]), f.out_fmt.eq(w[0][16:18]), f.shift.eq(w[0][24:32]),
            f.a.eq(w[1][0:16]), f.b.eq(w[1][16:32]), f.c.eq(w[2][0:16]), f.d.eq(w[2][16:32]),
            f.src_a.eq(w[3]), f.src_b.eq(w[4]), f.dst.eq(w[5]),
            f.wofs.eq(w[6][0:16]), f.bofs.eq(w[6][16:24]), f.bias_shift.eq(w[6][24:32]),
            f.stride_a.eq(w[7][0:16]), f.stride_b.eq(w[7][16:32]),
        ]
        op = f.opcode
        is_ = {o: Signal(name=f"is_{o.name.lower()}") for o in Opcode}
        for o, sig in is_.items():
            m.d.comb += sig.eq(op == int(o))
        lanes = WMEM_LANES
        c_bad = f.c[:(lanes - 1).bit_length()] != 0        # c % 16
        mis = lambda addr: addr[:(OPERAND_ALIGN - 1).bit_length()] != 0   # noqa: E731

        # Shape
        zero_abcd = (f.a == 0) | (f.b == 0) | (f.c == 0) | (f.d == 0)
        zero_acd = (f.a == 0) | (f.c == 0) | (f.d == 0)
        zero_ac = (f.a == 0) | (f.c == 0)
        # PE1 needs b c <= pe1_row_elems with c % 16 == 0, i.e. b (c / 16) <= limit16: compare the factors
        # first so that the product is only ever formed of small ones (arith.py: no DSP for it).
        limit16 = cfg.pe1_row_words
        c16 = f.c >> 4
        bc16 = Signal(32)
        m.d.comb += bc16.eq(narrow_product(f.b[:limit16.bit_length()], c16[:limit16.bit_length()]))
        pe1_buf_bad = (f.b > limit16) | (c16 > limit16) | (bc16 > limit16)
        pe2_bad = (f.b > cfg.pe2_buf_rows) | (f.d > cfg.pe2_rows * cfg.pe2_acc_depth)
        # PE3 row groups: B's row holds the G groups' columns (stride_b >= G d), column groups: A's row holds
        # the H groups' columns (stride_a >= H c); G, H = contract.pe3_row_groups(b), pe3_column_groups(b).
        row_groups, col_groups = Signal(8), Signal(8)
        m.d.comb += [row_groups.eq(Mux(f.b[:8] == 0, 1, f.b[:8])), col_groups.eq(Mux(f.b[8:] == 0, 1, f.b[8:]))]
        g_d, h_c = Signal(32), Signal(32)
        m.d.comb += [g_d.eq(narrow_product(row_groups, f.d[:cfg.pe3_max_d.bit_length()])),
                     h_c.eq(narrow_product(f.c, col_groups))]
        pe3_bad = (f.d > cfg.pe3_max_d) | (f.stride_a < h_c) | (f.stride_b < g_d)
        shape_bad = Signal()
        with m.If(is_[Opcode.PE1]):
            m.d.comb += shape_bad.eq(zero_abcd | c_bad | pe1_buf_bad)
        with m.Elif(is_[Opcode.PE2]):
            m.d.comb += shape_bad.eq(zero_abcd | c_bad | pe2_bad)
        with m.Elif(is_[Opcode.PE3]):
            m.d.comb += shape_bad.eq(zero_acd | c_bad | pe3_bad)
        with m.Else():
            m.d.comb += shape_bad.eq(zero_ac | c_bad)

        # Alignment
        align_bad = Signal()
        needs_b = is_[Opcode.PE3] | is_[Opcode.ACT_BWD]
        strides_bad = is_[Opcode.PE3] & ((f.stride_a[:4] != 0) | (f.stride_b[:4] != 0)
                                         | (f.b[:8] > 1) & (f.d[:4] != 0))     # group g's B: src_b + 2 g d
        m.d.comb += align_bad.eq(mis(f.src_a) | mis(f.dst) | (needs_b & mis(f.src_b)) | strides_bad)

        # Memory range (evaluated only when the shape is legal, so the products stay small)
        pe1_words = Signal(32)
        m.d.comb += pe1_words.eq(narrow_product(f.d, bc16[:limit16.bit_length()]))     # b c d / 16
        pitch = Signal(16)
        m.d.comb += pitch.eq(((f.d + cfg.pe2_rows - 1) // cfg.pe2_rows) * cfg.pe2_rows)
        pe2_words = Signal(32)
        pitch_bits = (cfg.pe2_rows * cfg.pe2_acc_depth).bit_length()     # d <= pe2_rows * pe2_acc_depth
        b_bits = cfg.pe2_buf_rows.bit_length()                           # b <= pe2_buf_rows
        m.d.comb += pe2_words.eq((narrow_product(pitch[:pitch_bits], f.b[:b_bits]) + lanes - 1) >> 4)
        range_bad = Signal()
        with m.If(is_[Opcode.PE1]):
            m.d.comb += range_bad.eq(f.wofs + pe1_words > cfg.wmem_words)
        with m.Elif(is_[Opcode.PE2]):
            m.d.comb += range_bad.eq(f.wofs + pe2_words > cfg.wmem_words)
        with m.Elif(is_[Opcode.ACT_FWD] | is_[Opcode.ACT_BWD]):
            m.d.comb += range_bad.eq(f.bofs + (f.c >> 4) > cfg.bmem_words)

        flags_bad = (f.flags != 0) & ~(is_[Opcode.PE3] & ((f.flags & ~int(PE3_FLAGS) & 0xFF) == 0))

        err = self.error
        with m.If(op > max(Opcode)):
            m.d.comb += err.eq(ErrorCode.ILLEGAL_OPCODE)
        with m.Elif((w[0] & 0x00FC00F0) != 0):
            m.d.comb += err.eq(ErrorCode.RESERVED)
        with m.Elif((f.flags & ~int(PE3_FLAGS) & 0xFF) != 0):
            m.d.comb += err.eq(ErrorCode.RESERVED)
        with m.Elif(f.out_fmt > max(OutFormat)):
            m.d.comb += err.eq(ErrorCode.BAD_FORMAT)
        with m.Elif(is_[Opcode.END]):
            m.d.comb += err.eq(ErrorCode.NONE)
        with m.Elif(is_[Opcode.LOAD_W] | is_[Opcode.LOAD_B]):
            with m.If(f.a == 0):
                m.d.comb += err.eq(ErrorCode.BAD_SHAPE)
            with m.Elif(mis(f.src_a)):
                m.d.comb += err.eq(ErrorCode.BAD_ALIGN)
            with m.Elif(is_[Opcode.LOAD_W] & (f.wofs + f.a > cfg.wmem_words)):
                m.d.comb += err.eq(ErrorCode.MEM_RANGE)
            with m.Elif(is_[Opcode.LOAD_B] & (f.bofs + f.a > cfg.bmem_words)):
                m.d.comb += err.eq(ErrorCode.MEM_RANGE)
            with m.Elif(f.flags != 0):
                m.d.comb += err.eq(ErrorCode.RESERVED)
        with m.Elif(shape_bad):
            m.d.comb += err.eq(ErrorCode.BAD_SHAPE)
        with m.Elif(align_bad):
            m.d.comb += err.eq(ErrorCode.BAD_ALIGN)
        with m.Elif(range_bad):
            m.d.comb += err.eq(ErrorCode.MEM_RANGE)
        with m.Elif(flags_bad):
            m.d.comb += err.eq(ErrorCode.RESERVED)
        return m
