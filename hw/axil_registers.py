"""AXI4-Lite slave with the register map of the contract (``sim.contract.REGISTERS``).

* CTRL: bit0 START and bit1 RESET are self-clearing strobes (read back as 0), bit2 IRQ_ENABLE is stored.
* STATUS: bit0 BUSY (read-only), bit1 DONE and bit2 ERROR are write-1-to-clear; [15:8] the ErrorCode. START
  also clears DONE and ERROR, so a status read after START never shows the previous run's result.
* Reading CYCLES_LO latches CYCLES_HI, so LO-then-HI reads give one consistent 64-bit value.
* Unmapped addresses read 0; writes to read-only registers are ignored; every response is OKAY.
* Write strobes are honoured byte by byte on the read-write registers.

Writes accept AW and W in either order (AXI4-Lite allows both); one transaction is handled at a time.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import (CONTRACT_VERSION, CTRL_IRQ_ENABLE, CTRL_RESET, CTRL_START, DEFAULT_CONFIG, DEVICE_ID,
                            REG, STATUS_BUSY, STATUS_DONE, STATUS_ERROR, HardwareConfig)
from .axi import AXI4LiteSignature

__all__ = ["AxilRegisters", "COUNTERS"]

COUNTERS = ("PE1_BUSY", "PE2_BUSY", "PE3_BUSY", "VEC_BUSY", "LOAD_BUSY", "AXI_STALL")


class AxilRegisters(wiring.Component):
    """Members: ``axil`` (slave), control outputs (``start``, ``soft_reset``, ``irq_enable``, ``prog_addr``,
    ``prog_count``), status inputs (``busy``, ``set_done``, ``set_error`` + ``error_code``, ``pc``, ``cycles``
    and the busy/stall counters) and ``irq``."""

    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        members = {
            "axil": In(AXI4LiteSignature(8, 32)),
            "start": Out(1), "soft_reset": Out(1), "irq_enable": Out(1),
            "prog_addr": Out(32), "prog_count": Out(32),
            "busy": In(1), "set_done": In(1), "set_error": In(1), "error_code": In(8), "pc": In(32),
            "cycles": In(64), "clear": In(1),
            "irq": Out(1), "done": Out(1), "error": Out(1),
        }
        for name in COUNTERS:
            members[name.lower()] = In(32)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        status_code = Signal(8)
        cycles_hi_latch = Signal(32)

        # ---- write channel -------------------------------------------------------------------------------
        aw_have, w_have = Signal(), Signal()
        w_addr = Signal(8)
        w_data = Signal(32)
        w_strb = Signal(4)
        m.d.comb += [bus.awready.eq(~aw_have & ~bus.bvalid), bus.wready.eq(~w_have & ~bus.bvalid), bus.bresp.eq(0)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_have.eq(1), w_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_have.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        do_write = aw_have & w_have & ~bus.bvalid
        with m.If(do_write):
            m.d.sync += [bus.bvalid.eq(1), aw_have.eq(0), w_have.eq(0)]

        def masked(old):
            mask = Cat(*[w_strb[i].replicate(8) for i in range(4)])
            return (old & ~mask) | (w_data & mask)

        m.d.sync += [self.start.eq(0), self.soft_reset.eq(0)]
        clear_bits = Signal(2)          # W1C of DONE, ERROR
        with m.If(do_write):
            with m.Switch(w_addr[2:8]):
                with m.Case(REG["CTRL"] >> 2):
                    with m.If(w_strb[0]):
                        m.d.sync += [self.start.eq(w_data[0] & ~self.busy), self.soft_reset.eq(w_data[1]),
                                     self.irq_enable.eq(w_data[2])]
                with m.Case(REG["STATUS"] >> 2):
                    with m.If(w_strb[0]):
                        m.d.comb += clear_bits.eq(Cat(w_data[1], w_data[2]))
                with m.Case(REG["PROG_ADDR"] >> 2):
                    m.d.sync += self.prog_addr.eq(masked(self.prog_addr))
                with m.Case(REG["PROG_COUNT"] >> 2):
                    m.d.sync += self.prog_count.eq(masked(self.prog_count))

        # ---- status flags --------------------------------------------------------------------------------
        with m.If(self.set_done):
            m.d.sync += self.done.eq(1)
        with m.Elif(clear_bits[0] | self.start | self.clear):
            m.d.sync += self.done.eq(0)
        with m.If(self.set_error):
            m.d.sync += [self.error.eq(1), status_code.eq(self.error_code)]
        with m.Elif(clear_bits[1] | self.start | self.clear):
            m.d.sync += [self.error.eq(0), status_code.eq(0)]
        m.d.comb += self.irq.eq(self.irq_enable & (self.done | self.error))

        # ---- read channel --------------------------------------------------------------------------------
        values = {
            "ID": Const(DEVICE_ID, 32),
            "VERSION": Const(CONTRACT_VERSION[0] << 16 | CONTRACT_VERSION[1], 32),
            "CTRL": Mux(self.irq_enable, CTRL_IRQ_ENABLE, 0),
            "STATUS": Cat(self.busy, self.done, self.error, Const(0, 5), status_code),
            "PROG_ADDR": self.prog_addr, "PROG_COUNT": self.prog_count, "PC": self.pc,
            "CYCLES_LO": self.cycles[:32], "CYCLES_HI": cycles_hi_latch,
        }
        for name in COUNTERS:
            values[name] = getattr(self, name.lower())
        for name, value in self.cfg.hwcfg_registers().items():
            values[name] = Const(value, 32)
        assert STATUS_BUSY == 1 and STATUS_DONE == 2 and STATUS_ERROR == 4 and CTRL_START == 1 and CTRL_RESET == 2
        m.d.comb += [bus.arready.eq(~bus.rvalid), bus.rresp.eq(0)]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0)]
            with m.Switch(bus.araddr[2:8]):
                for name, value in values.items():
                    with m.Case(REG[name] >> 2):
                        m.d.sync += bus.rdata.eq(value)
                        if name == "CYCLES_LO":
                            m.d.sync += cycles_hi_latch.eq(self.cycles[32:])
        return m
