"""AXI4 master: turns the units' 2-D read/write commands into INCR bursts (AMBA AXI4, IHI 0022 A3.4).

One read engine and one write engine run independently (AXI's read and write channels are independent), so a
unit can load its next block while it stores the previous one (the ping-pong overlap of thesis section 3.5.2).

* Bursts are at most ``max_burst`` beats (16: what the Zynq UltraScale+ HP ports take without splitting) and
  never cross a 4 KiB boundary. Beats are the full bus width (AxSIZE = log2(bytes)); addresses must be beat
  aligned (the contract aligns every operand to 32 bytes).
* IDs are 0 (responses return in order), AxCACHE = 0b0011 (normal non-cacheable bufferable, what the HP ports
  expect from PL masters), AxPROT = 0, no locks, QoS 0.
* Up to ``max_outstanding`` bursts per direction are in flight; a FIFO per direction remembers what each
  burst is (read: the command's tag and whether it ends the command; write: its length for WLAST).
* ``abort`` stops issuing new bursts and completes the ones already issued: read data are discarded, write
  bursts are finished with WSTRB = 0 (writing nothing). ``quiet`` is high when nothing is in flight.
* Any SLVERR/DECERR response sets the sticky ``error`` output until ``clear_error``.
"""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, AXI4Signature, read_port_signature, write_port_signature

__all__ = ["AxiMaster", "BurstGenerator"]


class BurstGenerator(wiring.Component):
    """Walks one 2-D command and emits bursts ``(addr, len-1, last_of_command)`` one per handshake.

    ``next_ready`` says the command port may accept a new command; the generator takes the next command in
    the cycle its last burst is taken, so back-to-back commands leave no bubble.
    """

    def __init__(self, beat_bytes: int = 16, max_burst: int = 16):
        if max_burst < 1 or max_burst > 256 or max_burst & (max_burst - 1):
            raise ValueError(f"max_burst must be a power of two in [1, 256], not {max_burst}")
        self.beat_bytes, self.max_burst = beat_bytes, max_burst
        super().__init__({
            "cmd_valid": In(1), "cmd_ready": Out(1),
            "cmd_addr": In(32), "cmd_beats": In(16), "cmd_rows": In(16), "cmd_stride": In(32), "cmd_tag": In(2),
            "stop": In(1),
            "burst_valid": Out(1), "burst_ready": In(1),
            "burst_addr": Out(32), "burst_len": Out(8), "burst_last": Out(1), "burst_tag": Out(2),
            "active": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shift = (self.beat_bytes - 1).bit_length()
        row_addr = Signal(32)
        cur = Signal(32)
        beats_left = Signal(16)
        row_beats = Signal(16)
        rows_left = Signal(16)
        stride = Signal(32)
        tag = Signal(2)

        to_4k = Signal(range(4096 // self.beat_bytes + 1))
        m.d.comb += to_4k.eq((4096 - cur[:12]) >> shift)
        capped = Signal(range(self.max_burst + 1))
        m.d.comb += capped.eq(Mux(beats_left < self.max_burst, beats_left, self.max_burst))
        length = Signal(range(self.max_burst + 1))
        m.d.comb += length.eq(Mux(to_4k < capped, to_4k, capped))
        ends_row = beats_left == length
        ends_cmd = ends_row & (rows_left == 1)

        m.d.comb += [
            self.burst_valid.eq(self.active),
            self.burst_addr.eq(cur),
            self.burst_len.eq(length - 1),
            self.burst_last.eq(ends_cmd),
            self.burst_tag.eq(tag),
        ]
        fire = self.burst_valid & self.burst_ready
        finishing = ~self.active | (fire & ends_cmd)
        m.d.comb += self.cmd_ready.eq(finishing & ~self.stop)

        with m.If(fire):
            with m.If(ends_row):
                m.d.sync += [rows_left.eq(rows_left - 1), row_addr.eq(row_addr + stride),
                             cur.eq(row_addr + stride), beats_left.eq(row_beats)]
            with m.Else():
                m.d.sync += [cur.eq(cur + (length << shift)), beats_left.eq(beats_left - length)]
            with m.If(ends_cmd):
                m.d.sync += self.active.eq(0)
        with m.If(self.cmd_valid & self.cmd_ready):
            # A command with zero beats or rows would never finish: treat it as one row of one beat less...
            # Units never issue those (check_descriptor rejects empty shapes); guard anyway by skipping it.
            with m.If((self.cmd_beats != 0) & (self.cmd_rows != 0)):
                m.d.sync += [self.active.eq(1), row_addr.eq(self.cmd_addr), cur.eq(self.cmd_addr),
                             beats_left.eq(self.cmd_beats), row_beats.eq(self.cmd_beats),
                             rows_left.eq(self.cmd_rows), stride.eq(self.cmd_stride), tag.eq(self.cmd_tag)]
        with m.If(self.stop & ~(self.burst_valid & ~self.burst_ready)):
            # AXI: a raised AxVALID must stay up until taken, so stop only between bursts.
            m.d.sync += self.active.eq(0)
        return m


class AxiMaster(wiring.Component):
    """The DMA engine between the units (``rd``/``wr`` ports) and one AXI4 master port (``axi``)."""

    def __init__(self, data_width: int = 128, addr_width: int = 32, id_width: int = 6, max_burst: int = 16,
                 max_outstanding: int = 16):
        self.data_width, self.max_burst, self.max_outstanding = data_width, max_burst, max_outstanding
        self.beat_bytes = data_width // 8
        super().__init__({
            "axi": Out(AXI4Signature(addr_width, data_width, id_width)),
            "rd": In(read_port_signature(data_width)),
            "wr": In(write_port_signature(data_width)),
            "abort": In(1),
            "quiet": Out(1),
            "error": Out(1),
            "clear_error": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        size = (self.beat_bytes - 1).bit_length()
        for ch in ("ar", "aw"):
            m.d.comb += [getattr(axi, f"{ch}id").eq(0), getattr(axi, f"{ch}size").eq(size),
                         getattr(axi, f"{ch}burst").eq(BURST_INCR), getattr(axi, f"{ch}lock").eq(0),
                         getattr(axi, f"{ch}cache").eq(0b0011), getattr(axi, f"{ch}prot").eq(0),
                         getattr(axi, f"{ch}qos").eq(0)]

        # ---- read engine ---------------------------------------------------------------------------------
        m.submodules.ar_gen = ar_gen = BurstGenerator(self.beat_bytes, self.max_burst)
        m.submodules.r_info = r_info = fifo.SyncFIFO(width=3, depth=self.max_outstanding)
        cmd = self.rd.cmd
        m.d.comb += [
            ar_gen.cmd_valid.eq(cmd.valid), cmd.ready.eq(ar_gen.cmd_ready),
            ar_gen.cmd_addr.eq(cmd.payload.addr), ar_gen.cmd_beats.eq(cmd.payload.beats),
            ar_gen.cmd_rows.eq(cmd.payload.rows), ar_gen.cmd_stride.eq(cmd.payload.stride),
            ar_gen.cmd_tag.eq(cmd.payload.tag), ar_gen.stop.eq(self.abort),
            axi.araddr.eq(ar_gen.burst_addr), axi.arlen.eq(ar_gen.burst_len),
            axi.arvalid.eq(ar_gen.burst_valid & r_info.w_rdy),
            ar_gen.burst_ready.eq(axi.arready & r_info.w_rdy),
            r_info.w_en.eq(axi.arvalid & axi.arready),
            r_info.w_data.eq(Cat(ar_gen.burst_tag, ar_gen.burst_last)),
        ]
        rdata = self.rd.data
        m.d.comb += [
            rdata.payload.data.eq(axi.rdata),
            rdata.payload.tag.eq(r_info.r_data[:2]),
            rdata.payload.last.eq(axi.rlast & r_info.r_data[2]),
            rdata.valid.eq(axi.rvalid & r_info.r_rdy & ~self.abort),
            axi.rready.eq(Mux(self.abort, 1, rdata.ready & r_info.r_rdy)),
            r_info.r_en.eq(axi.rvalid & axi.rready & axi.rlast),
        ]

        # ---- write engine --------------------------------------------------------------------------------
        m.submodules.aw_gen = aw_gen = BurstGenerator(self.beat_bytes, self.max_burst)
        m.submodules.w_info = w_info = fifo.SyncFIFO(width=8, depth=self.max_outstanding)
        outstanding = Signal(range(self.max_outstanding + 1))
        wcmd = self.wr.cmd
        room = outstanding < self.max_outstanding
        m.d.comb += [
            aw_gen.cmd_valid.eq(wcmd.valid), wcmd.ready.eq(aw_gen.cmd_ready),
            aw_gen.cmd_addr.eq(wcmd.payload.addr), aw_gen.cmd_beats.eq(wcmd.payload.beats),
            aw_gen.cmd_rows.eq(wcmd.payload.rows), aw_gen.cmd_stride.eq(wcmd.payload.stride),
            aw_gen.cmd_tag.eq(0), aw_gen.stop.eq(self.abort),
            axi.awaddr.eq(aw_gen.burst_addr), axi.awlen.eq(aw_gen.burst_len),
            axi.awvalid.eq(aw_gen.burst_valid & w_info.w_rdy & room),
            aw_gen.burst_ready.eq(axi.awready & w_info.w_rdy & room),
            w_info.w_en.eq(axi.awvalid & axi.awready),
            w_info.w_data.eq(aw_gen.burst_len),
        ]
        wcount = Signal(8)
        wdat = self.wr.data
        m.d.comb += [
            axi.wvalid.eq(w_info.r_rdy & (wdat.valid | self.abort)),
            axi.wdata.eq(wdat.payload.data),
            axi.wstrb.eq(Mux(self.abort, 0, wdat.payload.strb)),
            axi.wlast.eq(wcount == w_info.r_data),
            wdat.ready.eq(w_info.r_rdy & axi.wready & ~self.abort),
        ]
        w_fire = axi.wvalid & axi.wready
        with m.If(w_fire):
            m.d.sync += wcount.eq(Mux(axi.wlast, 0, wcount + 1))
        m.d.comb += w_info.r_en.eq(w_fire & axi.wlast)

        m.d.comb += axi.bready.eq(1)
        aw_fire = axi.awvalid & axi.awready
        b_fire = axi.bvalid & axi.bready
        m.d.sync += outstanding.eq(outstanding + aw_fire - b_fire)
        m.d.comb += self.wr.idle.eq(~aw_gen.active & ~w_info.r_rdy & (outstanding == 0))

        # ---- status --------------------------------------------------------------------------------------
        m.d.comb += self.quiet.eq(self.wr.idle & ~ar_gen.active & ~r_info.r_rdy)
        bad_r = axi.rvalid & axi.rready & (axi.rresp != 0)
        bad_b = b_fire & (axi.bresp != 0)
        with m.If(self.clear_error):
            m.d.sync += self.error.eq(0)
        with m.If(bad_r | bad_b):
            m.d.sync += self.error.eq(1)
        return m
