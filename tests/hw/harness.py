"""Amaranth test harnesses: one execution unit with its own AXI master and parameter memories.

The unit benches drive ``start`` and the descriptor fields directly (no descriptor fetch), preload the weight
and bias memories through ``wmem_*`` / ``bmem_*`` ports, and serve DRAM with cocotbext-axi's AxiRam on
``m_axi``. The unit's wiring to the memories is the same as in :class:`~ultratrain.hw.top.Top`.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ultratrain.hw.axi import AXI4Signature
from ultratrain.hw.axi_master import AxiMaster
from ultratrain.hw.bias_memory import BIAS_WORD_BITS, BiasMemory
from ultratrain.hw.decoder import DescriptorFields
from ultratrain.hw.weight_memory import WEIGHT_WORD_BITS, WeightMemory
from ultratrain.sim.contract import DEFAULT_CONFIG, HardwareConfig

__all__ = ["UnitHarness"]


class UnitHarness(wiring.Component):
    def __init__(self, unit_factory, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.unit_factory, self.cfg = unit_factory, cfg
        super().__init__({
            "m_axi": Out(AXI4Signature(32, cfg.axi_data_bits, 6)),
            "start": In(1), "desc": In(DescriptorFields), "busy": Out(1), "array_busy": Out(1),
            "saturated": Out(32), "sum_abs": Out(64), "axi_error": Out(1),
            "wmem_addr": In(range(cfg.wmem_words)), "wmem_data": In(WEIGHT_WORD_BITS), "wmem_en": In(1),
            "bmem_addr": In(range(cfg.bmem_words)), "bmem_data": In(BIAS_WORD_BITS), "bmem_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.unit = unit = self.unit_factory(cfg)
        m.submodules.dma = dma = AxiMaster(cfg.axi_data_bits)
        m.submodules.wmem = wmem = WeightMemory(cfg.wmem_words)
        m.submodules.bmem = bmem = BiasMemory(cfg.bmem_words)
        wiring.connect(m, dma.axi, wiring.flipped(self.m_axi))
        wiring.connect(m, unit.rd, dma.rd)
        wiring.connect(m, unit.wr, dma.wr)
        m.d.comb += [unit.start.eq(self.start), unit.desc.eq(self.desc), self.busy.eq(unit.busy),
                     self.array_busy.eq(unit.array_busy), self.saturated.eq(unit.saturated),
                     self.sum_abs.eq(unit.sum_abs), self.axi_error.eq(dma.error)]
        members = unit.signature.members
        m.d.comb += [wmem.w_addr.eq(self.wmem_addr), wmem.w_data.eq(self.wmem_data), wmem.w_en.eq(self.wmem_en),
                     bmem.w_addr.eq(self.bmem_addr), bmem.w_data.eq(self.bmem_data), bmem.w_en.eq(self.bmem_en)]
        if "wmem_addr" in members:
            m.d.comb += [wmem.r_addr.eq(unit.wmem_addr), wmem.r_en.eq(unit.wmem_en), unit.wmem_data.eq(wmem.r_data)]
        if "bmem_addr" in members:
            m.d.comb += [bmem.r_addr.eq(unit.bmem_addr), unit.bmem_data.eq(bmem.r_data)]
        if "wmem_w_addr" in members:   # the load unit writes the memories itself
            m.d.comb += [wmem.w_addr.eq(unit.wmem_w_addr), wmem.w_data.eq(unit.wmem_w_data),
                         wmem.w_en.eq(unit.wmem_w_en | self.wmem_en),
                         bmem.w_addr.eq(unit.bmem_w_addr), bmem.w_data.eq(unit.bmem_w_data),
                         bmem.w_en.eq(unit.bmem_w_en | self.bmem_en)]
        return m
