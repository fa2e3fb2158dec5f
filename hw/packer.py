"""Element packer: a stream of partial words (1-8 int16 elements each) -> dense 128-bit write beats.

PE1 computes its output block as ``rows x d`` and stores it row-major, so the rows are back to back in DRAM.
When ``d`` is not a multiple of 8 a row ends inside a beat; the store engine reads each row word by word
(the last word of a row holds ``d mod 8`` elements) and this packer closes the gaps, like a gearbox. A word
flagged ``last`` ends the block: the final partial beat goes out with only its elements' byte strobes set.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import write_data_layout

__all__ = ["Packer", "packer_input_layout"]

LANES = 8


def packer_input_layout() -> data.StructLayout:
    return data.StructLayout({"data": 16 * LANES, "count": 4, "last": 1})


class Packer(wiring.Component):
    """``i`` (words with ``count`` valid low elements) -> ``o`` (full beats, strobes on the last partial one).

    ``idle`` is high when nothing is held back (every element taken has gone out).
    """

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(packer_input_layout())),
            "o": Out(stream.Signature(write_data_layout(16 * LANES))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        buf = Signal(16 * LANES)
        level = Signal(range(LANES))
        flush = Signal()
        can_emit = ~self.o.valid | self.o.ready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        count = self.i.payload.count
        total = Signal(range(2 * LANES))
        m.d.comb += total.eq(level + count)
        low = Signal(16 * LANES)
        m.d.comb += low.eq((Const(1, 16 * LANES + 1) << (level * 16)) - 1)
        window = Signal(2 * 16 * LANES)
        m.d.comb += window.eq((buf & low) | (Cat(self.i.payload.data, Const(0, 16 * LANES)) << (level * 16)))

        def strobes(n):
            return ((Const(1, 2 * LANES + 1) << (n * 2)) - 1)[:2 * LANES]

        m.d.comb += self.i.ready.eq(can_emit & ~flush)
        m.d.comb += self.idle.eq(~flush & (level == 0) & ~self.o.valid)
        with m.If(flush):
            with m.If(can_emit):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(buf & low),
                             self.o.payload.strb.eq(strobes(level)), level.eq(0), flush.eq(0)]
        with m.Elif(self.i.valid & self.i.ready):
            with m.If(total >= LANES):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(window[:16 * LANES]),
                             self.o.payload.strb.eq(strobes(LANES)),
                             buf.eq(window[16 * LANES:]), level.eq(total - LANES)]
                with m.If(self.i.payload.last & (total != LANES)):
                    m.d.sync += flush.eq(1)
            with m.Elif(self.i.payload.last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(window[:16 * LANES]),
                             self.o.payload.strb.eq(strobes(total)), level.eq(0)]
            with m.Else():
                m.d.sync += [buf.eq(window[:16 * LANES]), level.eq(total)]
        return m
