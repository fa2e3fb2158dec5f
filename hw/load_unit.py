"""Load unit: LOAD_W and LOAD_B copy packed parameters from DRAM into the on-chip weight and bias memories
(thesis 3.5.3: "all the tensor factors (and bias) [stay] on-chip through the entire training process"; the host
reloads them after each optimizer step on the ARM core).

LOAD_W: ``a`` 64-bit words (two per 128-bit beat) from ``src_a`` to weight words ``wofs..wofs+a-1``;
LOAD_B: ``a`` 128-bit words to bias words ``bofs..``. One beat per cycle: the weight memory takes both words
of a beat at once (hw/weight_memory.py). Loads run once per training step, so at batch 1 they were worth
the second write port (LOAD_W was 0.7 % of the step at one word per cycle).
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, HardwareConfig, Opcode
from .bias_memory import BIAS_WORD_BITS
from .unit import unit_members
from .weight_memory import WEIGHT_WORD_BITS

__all__ = ["LoadUnit"]


class LoadUnit(wiring.Component):
    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        if cfg.axi_data_bits != 2 * WEIGHT_WORD_BITS or BIAS_WORD_BITS != cfg.axi_data_bits:
            raise ValueError("LoadUnit assumes 128-bit AXI data (two weight words or one bias word per beat)")
        self.cfg = cfg
        members = unit_members(cfg.axi_data_bits)
        members.update({
            "wmem_w_addr": Out(range(cfg.wmem_words)), "wmem_w_data": Out(2 * WEIGHT_WORD_BITS),
            "wmem_w_en": Out(2),
            "bmem_w_addr": Out(range(cfg.bmem_words)), "bmem_w_data": Out(BIAS_WORD_BITS), "bmem_w_en": Out(1),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        desc = self.desc
        is_w = desc.opcode == int(Opcode.LOAD_W)
        left = Signal(16)          # words still to write
        addr = Signal(16)
        m.d.comb += [self.saturated.eq(0), self.sum_abs.eq(0), self.array_busy.eq(self.busy),
                     self.wr.cmd.valid.eq(0), self.wr.cmd.payload.eq(0), self.wr.data.valid.eq(0),
                     self.wr.data.payload.eq(0)]
        with m.FSM(name="load"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), left.eq(desc.a), addr.eq(Mux(is_w, desc.wofs, desc.bofs))]
                    m.next = "CMD"
            with m.State("CMD"):
                cmd = self.rd.cmd
                m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(desc.src_a),
                             cmd.payload.beats.eq(Mux(is_w, (desc.a + 1) >> 1, desc.a)), cmd.payload.rows.eq(1),
                             cmd.payload.stride.eq(0), cmd.payload.tag.eq(0)]
                with m.If(cmd.ready):
                    m.next = "DATA"
            with m.State("DATA"):
                beat = self.rd.data
                last = Mux(is_w, left <= 2, left == 1)       # this beat carries the last word(s)
                m.d.comb += [self.wmem_w_addr.eq(addr), self.bmem_w_addr.eq(addr), beat.ready.eq(1),
                             self.wmem_w_data.eq(beat.payload.data), self.bmem_w_data.eq(beat.payload.data)]
                with m.If(is_w):
                    # Both words of the beat, or only the lower one when it is the last word of an odd count.
                    m.d.comb += self.wmem_w_en.eq(Mux(beat.valid, Mux(left == 1, 0b01, 0b11), 0))
                with m.Else():
                    m.d.comb += self.bmem_w_en.eq(beat.valid)
                with m.If(beat.valid):
                    m.d.sync += [addr.eq(addr + Mux(is_w, 2, 1)), left.eq(left - Mux(is_w & (left != 1), 2, 1))]
                    with m.If(last):
                        m.d.sync += self.busy.eq(0)
                        m.next = "IDLE"
        return m
