"""The accelerator top (thesis Fig. 3.2): AXI4-Lite registers, descriptor sequencer, AXI4 master, on-chip
weight and bias memories, and the execution units PE1, PE2, PE3, vector unit and load unit.

Block diagram and the reasoning behind it: docs/hardware.md. One instruction runs at a time; the unit that
runs it (or the sequencer, for fetches and write-backs) owns the AXI master, through a multiplexer selected by
``Controller.owner``, except for the read data of the next descriptor, which the sequencer fetches ahead
while the unit runs (``Controller.rd_claim``). Ports: ``s_axil`` (AXI4-Lite slave, registers of
``sim.contract.REGISTERS``), ``m_axi``
(AXI4 master, 128-bit, to a Zynq UltraScale+ HP port), ``irq`` (level: IRQ_ENABLE and (DONE or ERROR)).
"""

from amaranth import Module, Mux, ResetInserter
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, HardwareConfig
from .axi import AXI4LiteSignature, AXI4Signature
from .axi_master import AxiMaster
from .axil_registers import COUNTERS, AxilRegisters
from .bias_memory import BiasMemory
from .controller import OWNER_CTRL, UNITS, Controller
from .load_unit import LoadUnit
from .pe1 import PE1
from .pe2 import PE2
from .pe3 import PE3
from .vec_unit import VecUnit
from .weight_memory import WeightMemory

__all__ = ["Top", "AXI_ID_WIDTH"]

AXI_ID_WIDTH = 6          # the Zynq UltraScale+ S_AXI_HP ports' ID width


class Top(wiring.Component):
    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        super().__init__({
            "s_axil": In(AXI4LiteSignature(8, 32)),
            "m_axi": Out(AXI4Signature(32, cfg.axi_data_bits, AXI_ID_WIDTH)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.regs = regs = AxilRegisters(cfg)
        m.submodules.ctrl = ctrl = Controller(cfg)
        m.submodules.dma = dma = AxiMaster(cfg.axi_data_bits, 32, AXI_ID_WIDTH)
        m.submodules.wmem = wmem = WeightMemory(cfg.wmem_words)
        m.submodules.bmem = bmem = BiasMemory(cfg.bmem_words)
        classes = {"pe1": PE1, "pe2": PE2, "pe3": PE3, "vec": VecUnit, "load": LoadUnit}
        units = {}
        for name in UNITS:
            unit = classes[name](cfg)
            m.submodules[name] = ResetInserter(ctrl.units_reset)(unit)
            units[name] = unit

        wiring.connect(m, wiring.flipped(self.s_axil), regs.axil)
        wiring.connect(m, dma.axi, wiring.flipped(self.m_axi))
        m.d.comb += [
            ctrl.start.eq(regs.start), ctrl.soft_reset.eq(regs.soft_reset), ctrl.prog_addr.eq(regs.prog_addr),
            ctrl.prog_count.eq(regs.prog_count),
            regs.busy.eq(ctrl.busy), regs.set_done.eq(ctrl.set_done), regs.set_error.eq(ctrl.set_error),
            regs.error_code.eq(ctrl.error_code), regs.pc.eq(ctrl.pc), regs.cycles.eq(ctrl.cycles),
            regs.clear.eq(ctrl.clear), self.irq.eq(regs.irq),
            regs.axi_stall.eq(ctrl.stall_total),
            dma.abort.eq(ctrl.dma_abort), ctrl.dma_quiet.eq(dma.quiet), ctrl.dma_error.eq(dma.error),
            dma.clear_error.eq(ctrl.dma_clear_error),
        ]
        for i, name in enumerate(UNITS):
            m.d.comb += getattr(regs, f"{name}_busy").eq(ctrl.array_busy_counts[i])
        assert [f"{n.upper()}_BUSY" for n in UNITS] + ["AXI_STALL"] == list(COUNTERS)

        # Units: shared descriptor, start to the owner, status from the owner.
        owners = [ctrl] + [units[n] for n in UNITS]
        for i, name in enumerate(UNITS):
            unit = units[name]
            m.d.comb += [unit.desc.eq(ctrl.desc), unit.start.eq(ctrl.unit_start & (ctrl.owner == i + 1))]
        with m.Switch(ctrl.owner):
            for i, name in enumerate(UNITS):
                unit = units[name]
                with m.Case(i + 1):
                    m.d.comb += [ctrl.unit_busy.eq(unit.busy), ctrl.unit_array_busy.eq(unit.array_busy),
                                 ctrl.unit_saturated.eq(unit.saturated), ctrl.unit_sum_abs.eq(unit.sum_abs)]

        # The AXI master's read and write ports, multiplexed by owner; the read data goes to the sequencer
        # while it claims a descriptor's beats (the read-ahead's precede the unit's, in order).
        with m.Switch(Mux(ctrl.rd_claim, OWNER_CTRL, ctrl.owner)):
            for i, owner in enumerate(owners):
                with m.Case(i):
                    m.d.comb += [owner.rd.data.valid.eq(dma.rd.data.valid), dma.rd.data.ready.eq(owner.rd.data.ready)]
        with m.Switch(ctrl.owner):
            for i, owner in enumerate(owners):
                with m.Case(i):
                    m.d.comb += [
                        dma.rd.cmd.valid.eq(owner.rd.cmd.valid), dma.rd.cmd.payload.eq(owner.rd.cmd.payload),
                        owner.rd.cmd.ready.eq(dma.rd.cmd.ready),
                        dma.wr.cmd.valid.eq(owner.wr.cmd.valid), dma.wr.cmd.payload.eq(owner.wr.cmd.payload),
                        owner.wr.cmd.ready.eq(dma.wr.cmd.ready),
                        dma.wr.data.valid.eq(owner.wr.data.valid), dma.wr.data.payload.eq(owner.wr.data.payload),
                        owner.wr.data.ready.eq(dma.wr.data.ready),
                    ]
        for owner in owners:
            m.d.comb += [owner.rd.data.payload.eq(dma.rd.data.payload), owner.wr.idle.eq(dma.wr.idle)]

        # Parameter memories: PE1/PE2 read weights (only the owner's enable is ever high), the vector unit
        # reads biases, the load unit writes both.
        pe1, pe2, vec, load = units["pe1"], units["pe2"], units["vec"], units["load"]
        m.d.comb += [
            wmem.r_en.eq(pe1.wmem_en | pe2.wmem_en),
            wmem.r_addr.eq(Mux(ctrl.owner == 1 + UNITS.index("pe2"), pe2.wmem_addr, pe1.wmem_addr)),
            pe1.wmem_data.eq(wmem.r_data), pe2.wmem_data.eq(wmem.r_data),
            bmem.r_addr.eq(vec.bmem_addr), vec.bmem_data.eq(bmem.r_data),
            wmem.w_addr.eq(load.wmem_w_addr), wmem.w_data.eq(load.wmem_w_data), wmem.w_en.eq(load.wmem_w_en),
            bmem.w_addr.eq(load.bmem_w_addr), bmem.w_data.eq(load.bmem_w_data), bmem.w_en.eq(load.bmem_w_en),
        ]
        return m
