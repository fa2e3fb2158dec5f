"""Sequencer: fetches descriptors from the ring in DRAM, checks and dispatches them, writes each one back.

Program run (the golden executor ``sim/executor.py`` is the reference, descriptor encoding in sim/contract.py):

1. START (CTRL bit 0) clears the counters and sets PC = 0.
2. FETCH: if PC = PROG_COUNT the run stops with NO_END (nothing is written back, PC = PROG_COUNT); else the
   64-byte descriptor at ``PROG_ADDR + 64 PC`` is read (four 128-bit beats) — unless it was fetched ahead.
3. Decode (once the descriptor's last beat is in): :class:`~ultratrain.hw.decoder.Decoder` gives the fields
   and the ErrorCode. An illegal descriptor gets the write-back ``done = 0, error = code`` and the run stops
   with STATUS.ERROR. END gets ``done = 1`` and the run stops with STATUS.DONE.
4. Read-ahead (in CHECK, as the unit is picked): the read of descriptor PC + 1 is issued (when
   PC + 1 < PROG_COUNT). Its four beats come back ahead of the unit's first read (the AXI read channel
   returns one ID in order), so the next descriptor is on chip by the time this instruction ends and its
   fetch latency is hidden. The ring is therefore read one descriptor ahead: a program must not write its
   own descriptor words 0-7 (the compiler never does; sim/contract.py states the rule).
5. EXEC: the unit of the opcode gets ``start`` and owns the AXI master until it is idle again (its last
   write acknowledged); only the prefetched beats are claimed by the sequencer meanwhile. Cycles and stall
   cycles (unit active but its array idle) are counted.
6. WRITE-BACK: words 8-15 of the descriptor (status, saturated count, sum |out|, cycles, stalls) are written.
   The next instruction starts without waiting for the write response: the next unit reports idle only once
   every write is acknowledged, and the last write-back (END, error) is awaited before DONE or ERROR is set,
   so the host still sees every write-back once the run stops. An AXI error response during the instruction
   (or during the previous instruction's posted write-back) turns it into ``done = 0, error = AXI_ERROR``
   and stops the run.

A soft reset (CTRL bit 1) aborts: units are held in reset, the AXI master finishes the bursts already issued
(discarding read data, writing nothing), then everything returns to idle; weights and biases are kept.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, DESCRIPTOR_BYTES, ErrorCode, HardwareConfig, Opcode
from .axi import read_port_signature, write_port_signature
from .decoder import Decoder, DescriptorFields

__all__ = ["Controller", "UNITS", "OWNER_CTRL"]

# Execution units in dispatch order; owner index 0 is the controller itself.
UNITS = ("pe1", "pe2", "pe3", "vec", "load")
OWNER_CTRL = 0


def unit_of(opcode) -> int:
    """Owner index (1 + position in UNITS) of the unit that runs ``opcode``."""
    return {Opcode.PE1: 1, Opcode.PE2: 2, Opcode.PE3: 3, Opcode.ACT_FWD: 4, Opcode.ACT_BWD: 4, Opcode.REDUCE: 4,
            Opcode.LOAD_W: 5, Opcode.LOAD_B: 5}[Opcode(opcode)]


class Controller(wiring.Component):
    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        n = len(UNITS)
        super().__init__({
            "start": In(1), "soft_reset": In(1), "prog_addr": In(32), "prog_count": In(32),
            "busy": Out(1), "set_done": Out(1), "set_error": Out(1), "error_code": Out(8), "pc": Out(32),
            "clear": Out(1),
            "desc": Out(DescriptorFields), "owner": Out(range(n + 1)), "unit_start": Out(1),
            "unit_busy": In(1), "unit_array_busy": In(1), "unit_saturated": In(32), "unit_sum_abs": In(64),
            "units_reset": Out(1),
            "rd": Out(read_port_signature(cfg.axi_data_bits)), "wr": Out(write_port_signature(cfg.axi_data_bits)),
            "rd_claim": Out(1),
            "dma_error": In(1), "dma_clear_error": Out(1), "dma_abort": Out(1), "dma_quiet": In(1),
            "cycles": Out(64), "stall_total": Out(32),
            "array_busy_counts": Out(32).array(n),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.decoder = dec = Decoder(cfg)
        words = Signal(4 * cfg.axi_data_bits)
        beat_no = Signal(2)
        desc_addr = Signal(32)
        error = Signal(8)
        is_end = Signal()
        instr_cycles = Signal(32)
        instr_stall = Signal(32)
        wb_done = Signal()
        wb_error = Signal(8)
        wb_sat = Signal(32)
        wb_abs = Signal(64)
        stop = Signal()
        ahead_issued = Signal()     # the read of descriptor PC + 1 was issued during this instruction
        claim_beat = Signal(2)
        m.d.comb += dec.words.eq(words[:256])
        m.d.comb += [self.set_done.eq(0), self.set_error.eq(0)]

        counting = Signal()
        with m.If(counting):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # A descriptor read (the first fetch, or the read-ahead, whose beats arrive before any of the unit's:
        # one AXI ID, in order) claims the read data until its last beat; the top routes it to the sequencer.
        with m.If(self.rd_claim):
            m.d.comb += self.rd.data.ready.eq(1)
            with m.If(self.rd.data.valid):
                m.d.sync += [words.word_select(claim_beat, cfg.axi_data_bits).eq(self.rd.data.payload.data),
                             claim_beat.eq(claim_beat + 1)]
                with m.If(self.rd.data.payload.last):
                    m.d.sync += self.rd_claim.eq(0)

        def read_descriptor(addr):
            # Issue the 4-beat read of the descriptor at `addr` and claim its beats; returns the handshake.
            cmd = self.rd.cmd
            m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(addr),
                         cmd.payload.beats.eq(DESCRIPTOR_BYTES * 8 // cfg.axi_data_bits),
                         cmd.payload.rows.eq(1), cmd.payload.stride.eq(0), cmd.payload.tag.eq(0)]
            with m.If(cmd.ready):
                m.d.sync += [self.rd_claim.eq(1), claim_beat.eq(0)]
            return cmd.ready

        def decode():
            # Register the decoder's view of `words` (a fetched or read-ahead descriptor), then CHECK.
            m.d.sync += [self.desc.eq(dec.fields), error.eq(dec.error),
                         is_end.eq(dec.fields.opcode == int(Opcode.END))]
            with m.If(self.dma_error):
                m.d.sync += error.eq(ErrorCode.AXI_ERROR)
            m.next = "CHECK"

        def abortable():
            with m.If(self.soft_reset):
                m.d.sync += self.busy.eq(1)
                m.next = "ABORT"

        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [self.clear.eq(1), self.dma_clear_error.eq(1)]
                    m.d.sync += [self.pc.eq(0), self.busy.eq(1), self.cycles.eq(0), self.stall_total.eq(0)]
                    m.d.sync += [c.eq(0) for c in self.array_busy_counts]
                    m.d.sync += [self.rd_claim.eq(0), ahead_issued.eq(0)]
                    m.next = "FETCH"
                abortable()
            with m.State("FETCH"):
                m.d.comb += counting.eq(1)
                with m.If(self.pc >= self.prog_count):
                    m.d.comb += [self.set_error.eq(1), self.error_code.eq(ErrorCode.NO_END)]
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    addr = self.prog_addr + (self.pc << 6)
                    with m.If(read_descriptor(addr)):
                        m.d.sync += desc_addr.eq(addr)
                        m.next = "FETCH_DATA"
                abortable()
            with m.State("FETCH_DATA"):
                m.d.comb += counting.eq(1)
                with m.If(~self.rd_claim):
                    decode()
                abortable()
            with m.State("CHECK"):
                m.d.comb += counting.eq(1)
                m.d.sync += [wb_sat.eq(0), wb_abs.eq(0), instr_cycles.eq(0), instr_stall.eq(0)]
                with m.If(error != 0):
                    m.d.sync += [wb_done.eq(0), wb_error.eq(error), stop.eq(1)]
                    m.next = "WB_CMD"
                with m.Elif(is_end):
                    m.d.sync += [wb_done.eq(1), wb_error.eq(0), stop.eq(1)]
                    m.next = "WB_CMD"
                with m.Else():
                    # Dispatch, issuing the read-ahead of the next descriptor first: the owner is still the
                    # sequencer, so the command goes out before the unit's first one.
                    owner = Signal.like(self.owner)
                    with m.Switch(self.desc.opcode):
                        for op in (Opcode.PE1, Opcode.PE2, Opcode.PE3, Opcode.ACT_FWD, Opcode.ACT_BWD,
                                   Opcode.REDUCE, Opcode.LOAD_W, Opcode.LOAD_B):
                            with m.Case(int(op)):
                                m.d.comb += owner.eq(unit_of(op))
                    with m.If(self.pc + 1 < self.prog_count):
                        with m.If(read_descriptor(desc_addr + DESCRIPTOR_BYTES)):
                            m.d.sync += [ahead_issued.eq(1), self.owner.eq(owner), stop.eq(0)]
                            m.next = "START"
                    with m.Else():
                        m.d.sync += [ahead_issued.eq(0), self.owner.eq(owner), stop.eq(0)]
                        m.next = "START"
                abortable()
            with m.State("START"):
                m.d.comb += [counting.eq(1), self.unit_start.eq(1)]
                m.next = "EXEC"
                abortable()
            with m.State("EXEC"):
                m.d.comb += counting.eq(1)
                m.d.sync += [instr_cycles.eq(instr_cycles + 1)]
                with m.If(~self.unit_array_busy):
                    m.d.sync += [instr_stall.eq(instr_stall + 1), self.stall_total.eq(self.stall_total + 1)]
                with m.If(~self.unit_busy):
                    m.d.sync += [wb_sat.eq(self.unit_saturated), wb_abs.eq(self.unit_sum_abs),
                                 wb_done.eq(~self.dma_error),
                                 wb_error.eq(Mux(self.dma_error, ErrorCode.AXI_ERROR, 0)),
                                 stop.eq(self.dma_error), self.owner.eq(OWNER_CTRL)]
                    m.next = "WB_CMD"
                abortable()
            with m.State("WB_CMD"):
                m.d.comb += counting.eq(1)
                wcmd = self.wr.cmd
                m.d.comb += [wcmd.valid.eq(1), wcmd.payload.addr.eq(desc_addr + DESCRIPTOR_BYTES // 2),
                             wcmd.payload.beats.eq(DESCRIPTOR_BYTES // 2 * 8 // cfg.axi_data_bits),
                             wcmd.payload.rows.eq(1), wcmd.payload.stride.eq(0)]
                with m.If(wcmd.ready):
                    m.d.sync += beat_no.eq(0)
                    m.next = "WB_DATA"
                abortable()
            with m.State("WB_DATA"):
                m.d.comb += counting.eq(1)
                wb_words = Cat(wb_done, Const(0, 7), wb_error, Const(0, 16), wb_sat, wb_abs,
                               Mux(is_end | (wb_error != 0) & ~wb_done, 0, instr_cycles),
                               Mux(is_end | (wb_error != 0) & ~wb_done, 0, instr_stall), Const(0, 64))
                data = self.wr.data
                m.d.comb += [data.valid.eq(1), data.payload.data.eq(wb_words.word_select(beat_no[0], 128)),
                             data.payload.strb.eq(0xFFFF)]
                with m.If(data.ready):
                    m.d.sync += beat_no.eq(beat_no + 1)
                    with m.If(beat_no[0]):
                        # Posted: only the last write-back of a run is awaited (WB_WAIT).
                        with m.If(stop | self.dma_error):
                            m.next = "WB_WAIT"
                        with m.Else():
                            m.d.sync += self.pc.eq(self.pc + 1)
                            m.next = "NEXT"
                abortable()
            with m.State("NEXT"):
                m.d.comb += counting.eq(1)
                with m.If(~ahead_issued):
                    m.next = "FETCH"
                with m.Elif(~self.rd_claim):
                    m.d.sync += [desc_addr.eq(desc_addr + DESCRIPTOR_BYTES), ahead_issued.eq(0)]
                    decode()
                abortable()
            with m.State("WB_WAIT"):
                m.d.comb += counting.eq(1)
                # Reached only when the run stops (END, an error, an AXI error response): every write-back,
                # the posted ones before it included, is acknowledged before DONE or ERROR is set.
                with m.If(self.wr.idle):
                    with m.If(wb_done & ~self.dma_error):
                        m.d.comb += self.set_done.eq(1)
                    with m.Else():
                        m.d.comb += [self.set_error.eq(1),
                                     self.error_code.eq(Mux(self.dma_error, ErrorCode.AXI_ERROR, wb_error))]
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"
                abortable()
            with m.State("ABORT"):
                m.d.comb += [self.dma_abort.eq(1), self.units_reset.eq(1)]
                m.d.sync += [self.rd_claim.eq(0), ahead_issued.eq(0)]   # the master discards read data now
                with m.If(self.dma_quiet):
                    m.d.comb += [self.clear.eq(1), self.dma_clear_error.eq(1)]
                    m.d.sync += [self.busy.eq(0), self.pc.eq(0), self.owner.eq(OWNER_CTRL), self.cycles.eq(0),
                                 self.stall_total.eq(0)]
                    m.d.sync += [c.eq(0) for c in self.array_busy_counts]
                    m.next = "IDLE"

        # Per-unit array activity (the PEn_BUSY, VEC_BUSY, LOAD_BUSY counters).
        for i, counter in enumerate(self.array_busy_counts):
            with m.If(self.unit_array_busy & (self.owner == i + 1)):
                m.d.sync += counter.eq(counter + 1)
        return m
