"""The output stage every unit shares: ``saturate(round_shift(acc, shift), out_fmt)`` plus statistics.

``round_shift`` (sim/formats.py) multiplies by ``2**-shift``: for ``shift > 0`` an arithmetic right shift
rounding to nearest, ties to even (``q = x >> s``; round up if bit ``s-1`` is set and either a lower bit is set
or ``q`` is odd); for ``shift <= 0`` an exact left shift. Shift amounts are clamped without changing the
result: a right shift by ``s >= W`` of a ``W``-bit value rounds to 0, exactly as ``s = W`` does, and a left
shift by more than 17 saturates every non-zero 16-bit-or-wider value just as a shift by 17 does (the result
is always saturated to at most 16 bits next).

:class:`OutputStage` is ``lanes`` of that plus the per-instruction statistics of the descriptor write-back
(thesis section 3.4.3: the host tracks mean |x| to pick the next exponent): the number of saturated outputs
and the sum of |output|. With ``add`` (PE3's ACC flag) each lane adds a 16-bit ``addend`` after rescaling and
saturates again; only that second saturation is counted, as in the golden executor.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["round_shift_logic", "saturate_logic", "OutputStage", "connect_beats_to_axi", "FMT_S16", "FMT_S8",
           "FMT_U8", "LEFT_SHIFT_CLAMP"]

FMT_S16, FMT_S8, FMT_U8 = 0, 1, 2
LEFT_SHIFT_CLAMP = 17


def round_shift_logic(m: Module, x, shift, name: str = "rs") -> Signal:
    """Combinational ``round_shift(x, shift)`` for a signed ``x`` and a signed 8-bit ``shift``.

    Returns a signed signal of ``len(x) + LEFT_SHIFT_CLAMP + 1`` bits holding the exact result (or, for left
    shifts beyond the clamp, a value that saturates the same way).
    """
    width = len(x)
    x = x.as_signed()
    out = Signal(signed(width + LEFT_SHIFT_CLAMP + 1), name=f"{name}_out")
    right = Signal(range(width + 1), name=f"{name}_right")      # clamped right-shift amount, >= 1 when used
    left = Signal(range(LEFT_SHIFT_CLAMP + 1), name=f"{name}_left")
    with m.If(shift > width):
        m.d.comb += right.eq(width)
    with m.Elif(shift > 0):
        m.d.comb += right.eq(shift[:len(right)])
    with m.If(shift < -LEFT_SHIFT_CLAMP):
        m.d.comb += left.eq(LEFT_SHIFT_CLAMP)
    with m.Elif(shift <= 0):
        m.d.comb += left.eq((-shift)[:len(left)])
    below = Signal(range(width), name=f"{name}_below")
    m.d.comb += below.eq(right - 1)
    q = Signal(signed(width), name=f"{name}_q")
    m.d.comb += q.eq(x >> right)
    round_bit = (x.as_unsigned() >> below)[0]
    sticky = (x.as_unsigned() & ((Const(1, width + 1) << below) - 1)[:width]) != 0
    up = round_bit & (sticky | q[0])
    with m.If(shift > 0):
        m.d.comb += out.eq(q + up)
    with m.Else():
        m.d.comb += out.eq(x << left)
    return out


def saturate_logic(m: Module, value, fmt, name: str = "sat"):
    """``(clamped signed(16), saturated flag)`` of ``value`` into out_fmt ``fmt`` (S16, S8 or U8)."""
    lo = Signal(signed(17), name=f"{name}_lo")
    hi = Signal(signed(17), name=f"{name}_hi")
    with m.Switch(fmt):
        with m.Case(FMT_S8):
            m.d.comb += [lo.eq(-128), hi.eq(127)]
        with m.Case(FMT_U8):
            m.d.comb += [lo.eq(0), hi.eq(255)]
        with m.Default():
            m.d.comb += [lo.eq(-32768), hi.eq(32767)]
    out = Signal(signed(16), name=f"{name}_v")
    flag = Signal(name=f"{name}_flag")
    with m.If(value < lo):
        m.d.comb += [out.eq(lo), flag.eq(1)]
    with m.Elif(value > hi):
        m.d.comb += [out.eq(hi), flag.eq(1)]
    with m.Else():
        m.d.comb += out.eq(value)
    return out, flag


class OutputStage(wiring.Component):
    """``lanes`` rescale-and-saturate lanes, two pipeline stages (:attr:`latency`), and the statistics.

    Members
    -------
    i_valid, i_acc, i_mask : In
        One group of accumulators; ``i_mask`` selects the lanes that are real outputs (only those count).
    i_addend : In
        Added after the rescale when ``add`` is high (PE3 with Flag.ACC).
    shift, fmt, add : In
        Held constant through an instruction.
    o_valid, o_data, o_mask : Out
        ``latency`` cycles after the input.
    clear : In
        Zeroes ``saturated`` and ``sum_abs`` (at the start of an instruction).
    saturated, sum_abs : Out
        Running totals over the instruction (settled one cycle after the last ``o_valid``).
    """

    latency = 2

    def __init__(self, lanes: int, acc_width: int, with_add: bool = False):
        if lanes < 1 or acc_width < 2:
            raise ValueError(f"OutputStage needs lanes >= 1 and acc_width >= 2, got {lanes}, {acc_width}")
        self.lanes, self.acc_width, self.with_add = lanes, acc_width, with_add
        members = {
            "i_valid": In(1), "i_acc": In(data.ArrayLayout(signed(acc_width), lanes)),
            "i_mask": In(lanes), "shift": In(signed(8)), "fmt": In(2),
            "o_valid": Out(1), "o_data": Out(data.ArrayLayout(signed(16), lanes)), "o_mask": Out(lanes),
            "clear": In(1), "saturated": Out(32), "sum_abs": Out(64),
        }
        if with_add:
            members.update({"i_addend": In(data.ArrayLayout(signed(16), lanes)), "add": In(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        # Stage 1: rounding.
        s1_valid = Signal()
        s1_mask = Signal(lanes)
        s1_round = [Signal(signed(self.acc_width + LEFT_SHIFT_CLAMP + 1), name=f"s1_round{i}") for i in range(lanes)]
        s1_addend = [Signal(signed(16), name=f"s1_addend{i}") for i in range(lanes)]
        m.d.sync += [s1_valid.eq(self.i_valid), s1_mask.eq(self.i_mask)]
        for i in range(lanes):
            r = round_shift_logic(m, self.i_acc[i], self.shift, name=f"rs{i}")
            m.d.sync += s1_round[i].eq(r)
            if self.with_add:
                m.d.sync += s1_addend[i].eq(self.i_addend[i])
        # Stage 2: saturation (twice with an addend), statistics terms.
        sat_bits = []
        abs_terms = []
        m.d.sync += [self.o_valid.eq(s1_valid), self.o_mask.eq(s1_mask)]
        for i in range(lanes):
            v1, f1 = saturate_logic(m, s1_round[i], self.fmt, name=f"sat{i}")
            if self.with_add:
                total = Signal(signed(18), name=f"total{i}")
                m.d.comb += total.eq(v1 + s1_addend[i])
                v2, f2 = saturate_logic(m, total, self.fmt, name=f"satacc{i}")
                value = Signal(signed(16), name=f"value{i}")
                flag = Signal(name=f"flag{i}")
                m.d.comb += [value.eq(Mux(self.add, v2, v1)), flag.eq(Mux(self.add, f2, f1))]
            else:
                value, flag = v1, f1
            m.d.sync += self.o_data[i].eq(value)
            sat_bits.append(flag & s1_mask[i])
            magnitude = Signal(16, name=f"abs{i}")
            m.d.comb += magnitude.eq(Mux(s1_mask[i], Mux(value < 0, -value, value), 0))
            abs_terms.append(magnitude)
        # Stage 3: fold into the running totals (registered, one cycle after o_valid).
        group_sat = Signal(range(lanes + 1))
        group_abs = Signal(16 + (lanes - 1).bit_length() + 1)
        m.d.sync += [group_sat.eq(sum(sat_bits)),
                     group_abs.eq(sum(abs_terms))]
        group_valid = Signal()
        m.d.sync += group_valid.eq(s1_valid)
        with m.If(self.clear):
            m.d.sync += [self.saturated.eq(0), self.sum_abs.eq(0)]
        with m.Elif(group_valid):
            m.d.sync += [self.saturated.eq(self.saturated + group_sat), self.sum_abs.eq(self.sum_abs + group_abs)]
        return m


def connect_beats_to_axi(m: Module, ost: "OutputStage", beat_fifo, wr_data) -> None:
    """Output stage -> ``beat_fifo`` -> the write-data stream of a DMA port, for units whose output-stage lanes
    form one whole beat (PE2 and PE3: 8 lanes of 16 bits, all byte strobes set). The unit issues output-stage
    inputs only while the FIFO has room for what is already in flight (it counts them itself)."""
    lanes = ost.lanes
    m.d.comb += [beat_fifo.w_en.eq(ost.o_valid),
                 beat_fifo.w_data.eq(Cat(*[ost.o_data[i].as_unsigned() for i in range(lanes)])),
                 wr_data.valid.eq(beat_fifo.r_rdy), wr_data.payload.data.eq(beat_fifo.r_data),
                 wr_data.payload.strb.eq((1 << (len(wr_data.payload.data) // 8)) - 1),
                 beat_fifo.r_en.eq(wr_data.ready)]
