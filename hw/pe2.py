"""PE2: contraction along a dimension other than the last, ``dst[a, d, c] = R(sum_b A[a,b,c] * W[b,d])``
(thesis 3.5.2, Fig. 3.3b, Algorithm 4).

A ``cols x rows`` (16 x 8) multiply-accumulate array: column ``j`` takes ``c = c0 + j`` (data shared down a
column), row ``k`` takes ``d = 8 t + k`` (weight shared along a row). Every multiplier has an accumulator
memory of ``2 x pe2_acc_depth`` words (two banks, see below); word ``t`` of bank ``z`` holds the partial sum of
output ``d = 8 t + k``. Per cycle one buffer row ``A[a, b, c0:c0+16]`` meets eight weights ``W[b, 8t:8t+8]`` (half
a weight-memory word: PE2 weight rows are padded to a multiple of 8, ``pe2_row_pitch``), so the weight address
is simply a counter.

Dataflow per block ``(a, c0)`` (Algorithm 4, c-chunks outer, a inner):

* load ``A[a, :, c0:c0+16]`` (``b`` runs of two beats, ``c`` elements apart) into an input ping-pong half
  (the read command goes out as soon as the half is free, behind the previous block's beats);
* compute ``b x ceil(d/8)`` cycles into accumulator bank ``z``, streaming: row ``b`` is computed as soon as
  its two beats are in the half, so a block's compute overlaps its own load (the half is released only once
  it is FULL and every row computed), and the next block follows in the next cycle when its bank is free;
* drain bank ``z`` while the next block computes into the other bank: ``d`` rows of 16 outputs, through the
  output stage, to ``dst[a, :, c0:c0+16]`` (``d`` runs of two beats).

Per block: ``b ceil(d/8)`` compute cycles, ``2b`` beats in, ``2d`` beats out. The accumulators are read and
written in the same cycle (combinational read), so consecutive updates of one word need no forwarding.

Accumulator width: at most ``b <= pe2_buf_rows`` (512) products of magnitude ``<= 2**18``: 29 signed bits.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, HardwareConfig
from .block_read_ahead import BlockReadAhead
from .output_stage import OutputStage, connect_beats_to_axi
from .pingpong import PingPongBuffer, PingPongControl
from .ram import AsyncRAM
from .unit import unit_members
from .weight_memory import WEIGHT_WORD_BITS

__all__ = ["PE2", "pe2_acc_width"]

PRODUCT_MAX = (1 << 15) * (1 << 3)


def pe2_acc_width(cfg: HardwareConfig = DEFAULT_CONFIG) -> int:
    return (cfg.pe2_buf_rows * PRODUCT_MAX).bit_length() + 1


class PE2(wiring.Component):
    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        self.rows, self.cols = cfg.pe2_rows, cfg.pe2_cols
        self.acc_width = pe2_acc_width(cfg)
        self.depth = cfg.pe2_acc_depth
        members = unit_members(cfg.axi_data_bits)
        members.update({"wmem_addr": Out(range(cfg.wmem_words)), "wmem_en": Out(1),
                        "wmem_data": In(WEIGHT_WORD_BITS)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, rows, cols, depth = self.cfg, self.rows, self.cols, self.depth
        desc = self.desc
        aw = self.acc_width
        beat_elems = cfg.axi_data_bits // 16
        halves = cols // beat_elems                       # beats per buffer row (2)

        m.submodules.inbuf = inbuf = PingPongBuffer(16 * cols, cfg.pe2_buf_rows, granularity=cfg.axi_data_bits)
        m.submodules.banks = banks = PingPongControl()
        accs = []
        for k in range(rows):
            ram = AsyncRAM(cols * aw, 2 * depth)
            m.submodules[f"acc{k}"] = ram
            accs.append(ram)
        m.submodules.ostage = ost = OutputStage(beat_elems, aw)
        m.submodules.ofifo = ofifo = fifo.SyncFIFOBuffered(width=cfg.axi_data_bits, depth=8)

        # ---- parameters ----------------------------------------------------------------------------------
        t_count = Signal(range(depth + 1))          # ceil(d / 8)
        c16 = Signal(12)
        bc2 = Signal(32)                            # bytes of A[a, :, :]
        dc2 = Signal(32)                            # bytes of dst[a, :, :]
        with m.If(self.start):
            m.d.sync += [t_count.eq((desc.d + rows - 1) >> 3), c16.eq(desc.c >> 4),
                         bc2.eq((desc.b * desc.c) << 1), dc2.eq((desc.d * desc.c) << 1), self.busy.eq(1)]
        m.d.comb += [ost.clear.eq(self.start), ost.shift.eq(desc.shift), ost.fmt.eq(desc.out_fmt),
                     ost.i_mask.eq((1 << beat_elems) - 1)]

        # A block walker: (c-chunk, a) with c-chunks outer, and the block's byte offsets in A and dst.
        def walker(name, base_a_bytes, base_dst_bytes):
            ai = Signal(16, name=f"{name}_ai")
            cj = Signal(12, name=f"{name}_cj")
            src = Signal(32, name=f"{name}_src")
            src_c = Signal(32, name=f"{name}_src_c")
            dst = Signal(32, name=f"{name}_dst")
            dst_c = Signal(32, name=f"{name}_dst_c")
            finished = Signal(name=f"{name}_finished")
            with m.If(self.start):
                m.d.sync += [ai.eq(0), cj.eq(0), src.eq(desc.src_a), src_c.eq(desc.src_a), dst.eq(desc.dst),
                             dst_c.eq(desc.dst), finished.eq(0)]

            def advance():
                with m.If(ai == desc.a - 1):
                    m.d.sync += [ai.eq(0), cj.eq(cj + 1), src.eq(src_c + 32), src_c.eq(src_c + 32),
                                 dst.eq(dst_c + 32), dst_c.eq(dst_c + 32)]
                    with m.If(cj == c16 - 1):
                        m.d.sync += finished.eq(1)
                with m.Else():
                    m.d.sync += [ai.eq(ai + 1), src.eq(src + bc2), dst.eq(dst + dc2)]
            return src, dst, finished, advance

        # ---- loader --------------------------------------------------------------------------------------
        # Read commands run ahead of the free halves (hw/block_read_ahead.py), so the DRAM latency hides even
        # when a block loads as fast as it computes; `ld_half` follows the beats (they arrive in order).
        m.submodules.read_ahead = ahead = BlockReadAhead()
        ld_src, _, ld_done, ld_advance = walker("ld", 0, 0)
        ld_half = Signal()
        ld_beat = Signal(range(2 * cfg.pe2_buf_rows))
        with m.If(self.start):
            m.d.sync += [ld_half.eq(inbuf.w_next), ld_beat.eq(0)]
        cmd = self.rd.cmd
        beat = self.rd.data
        ahead.attach(m, start=self.start, inbuf=inbuf, rd=self.rd)
        with m.If(self.busy & ~ld_done & ~self.start):
            m.d.comb += [cmd.valid.eq(ahead.cmd_allow), cmd.payload.addr.eq(ld_src),
                         cmd.payload.beats.eq(halves), cmd.payload.rows.eq(desc.b),
                         cmd.payload.stride.eq(desc.c << 1), cmd.payload.tag.eq(0)]
            with m.If(cmd.valid & cmd.ready):
                ld_advance()
        m.d.comb += [beat.ready.eq(ahead.beat_ready), inbuf.w_sel.eq(ld_half), inbuf.w_addr.eq(ld_beat >> 1),
                     inbuf.w_data.eq(beat.payload.data.replicate(halves))]
        with m.If(beat.valid & beat.ready & ~self.start):
            m.d.comb += inbuf.w_en.eq(1 << ld_beat[0])
            m.d.sync += ld_beat.eq(ld_beat + 1)
            with m.If(beat.payload.last):
                m.d.comb += [inbuf.w_commit.eq(1), inbuf.w_commit_sel.eq(ld_half)]
                m.d.sync += [ld_half.eq(~ld_half), ld_beat.eq(0)]

        # ---- compute issue -------------------------------------------------------------------------------
        cp_blocks_left = Signal(32)
        with m.If(self.start):
            m.d.sync += cp_blocks_left.eq(desc.a * (desc.c >> 4))
        bb = Signal(range(cfg.pe2_buf_rows))
        t = Signal(range(depth))
        h = Signal(17)                              # weight half-word (8 weights) index
        bank = Signal()
        issue = Signal()
        last_t = t == t_count - 1
        last_b = bb == desc.b - 1
        # Streaming: row bb of the block can be computed once it is in the buffer, the whole half being FULL
        # or, while the loader still fills it, its first ld_beat / 2 rows (a half being read while FILLING is
        # the one the loader fills: the loader and the compute take halves in the same order).
        row_in = inbuf.r_ready | (inbuf.r_filling & (bb < (ld_beat >> 1)))

        def take_bank():
            m.d.comb += banks.w_acquire.eq(1)
            m.d.sync += [bank.eq(banks.w_next), bb.eq(0), t.eq(0), h.eq(desc.wofs << 1)]

        with m.FSM(name="compute"):
            with m.State("IDLE"):
                with m.If(self.busy & (cp_blocks_left != 0) & banks.w_ready & ~self.start):
                    take_bank()
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += issue.eq(row_in)
                with m.If(issue):
                    m.d.sync += h.eq(h + 1)
                    with m.If(last_t):
                        m.d.sync += [t.eq(0), bb.eq(bb + 1)]
                        with m.If(last_b):
                            m.d.comb += inbuf.r_release.eq(1)
                            m.d.sync += cp_blocks_left.eq(cp_blocks_left - 1)
                            # Straight on into the next block when its accumulator bank is free.
                            with m.If((cp_blocks_left != 1) & banks.w_ready):
                                take_bank()
                            with m.Else():
                                m.next = "IDLE"
                    with m.Else():
                        m.d.sync += t.eq(t + 1)
        m.d.comb += [inbuf.r_en.eq(issue), inbuf.r_addr.eq(bb), self.wmem_en.eq(issue),
                     self.wmem_addr.eq(h >> 1), self.array_busy.eq(issue)]

        # ---- compute pipeline: S1 memory data -> S2 products -> accumulate (read-modify-write) -------------
        def stage(prev, name):
            regs = {k: Signal.like(v, name=f"{name}_{k}") for k, v in prev.items()}
            m.d.sync += [regs[k].eq(v) for k, v in prev.items()]
            return regs

        s0 = {"valid": issue, "first": bb == 0, "t": t, "bank": bank, "odd": h[0], "block_last": last_t & last_b}
        s1 = stage(s0, "s1")
        s2 = stage(s1, "s2")
        weights = Signal(32)
        m.d.comb += weights.eq(Mux(s1["odd"], self.wmem_data[32:], self.wmem_data[:32]))
        products = [[Signal(signed(20), name=f"p{k}_{j}") for j in range(cols)] for k in range(rows)]
        for k in range(rows):
            w = weights[4 * k:4 * (k + 1)].as_signed()
            for j in range(cols):
                x = inbuf.r_data[16 * j:16 * (j + 1)].as_signed()
                m.d.sync += products[k][j].eq(x * w)
        acc_addr = Signal(range(2 * depth))
        m.d.comb += acc_addr.eq(Cat(s2["t"][:(depth - 1).bit_length()], s2["bank"]))
        for k in range(rows):
            ram = accs[k]
            new = []
            for j in range(cols):
                old = ram.r0_data[aw * j:aw * (j + 1)].as_signed()
                v = Signal(signed(aw), name=f"accnew{k}_{j}")
                m.d.comb += v.eq(Mux(s2["first"], 0, old) + products[k][j])
                new.append(v)
            m.d.comb += [ram.r0_addr.eq(acc_addr), ram.w_addr.eq(acc_addr), ram.w_data.eq(Cat(*new)),
                         ram.w_en.eq(s2["valid"])]
        with m.If(s2["valid"] & s2["block_last"]):
            m.d.comb += [banks.w_commit.eq(1), banks.w_commit_sel.eq(s2["bank"])]

        # ---- drain: accumulator bank -> output stage -> AXI ----------------------------------------------
        _, dr_dst, dr_done, dr_advance = walker("dr", 0, 0)
        dd = Signal(16)
        part = Signal(range(halves))
        dr_issue = Signal()
        pending = Signal(range(OutputStage.latency + 1))
        pipe = Signal(OutputStage.latency)
        m.d.sync += pipe.eq(Cat(dr_issue, pipe[:-1]))
        m.d.comb += pending.eq(sum(pipe[i] for i in range(OutputStage.latency)))
        with m.FSM(name="drain") as drain_fsm:
            with m.State("IDLE"):
                with m.If(self.busy & ~dr_done & banks.r_ready & ~self.start):
                    m.next = "CMD"
            with m.State("CMD"):
                cmd = self.wr.cmd
                m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(dr_dst), cmd.payload.beats.eq(halves),
                             cmd.payload.rows.eq(desc.d), cmd.payload.stride.eq(desc.c << 1)]
                with m.If(cmd.ready):
                    dr_advance()
                    m.d.sync += [dd.eq(0), part.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                with m.If(ofifo.level + pending < ofifo.depth - 1):
                    m.d.comb += dr_issue.eq(1)
                    with m.If(part == halves - 1):
                        m.d.sync += [part.eq(0), dd.eq(dd + 1)]
                        with m.If(dd == desc.d - 1):
                            m.d.comb += banks.r_release.eq(1)
                            m.next = "IDLE"
                    with m.Else():
                        m.d.sync += part.eq(part + 1)
        dr_addr = Signal(range(2 * depth))
        m.d.comb += dr_addr.eq(Cat((dd >> 3)[:(depth - 1).bit_length()], banks.r_half))
        row_word = Signal(cols * aw)
        with m.Switch(dd[:3]):
            for k in range(rows):
                with m.Case(k):
                    m.d.comb += row_word.eq(accs[k].r1_data)
        for k in range(rows):
            m.d.comb += accs[k].r1_addr.eq(dr_addr)
        for i in range(beat_elems):
            lane = row_word.word_select(part * beat_elems + i, aw)
            m.d.comb += ost.i_acc[i].eq(lane.as_signed())
        m.d.comb += ost.i_valid.eq(dr_issue)
        connect_beats_to_axi(m, ost, ofifo, self.wr.data)

        # ---- done ----------------------------------------------------------------------------------------
        m.d.comb += [self.saturated.eq(ost.saturated), self.sum_abs.eq(ost.sum_abs)]
        with m.If(self.busy & ~self.start & dr_done & drain_fsm.ongoing("IDLE") & (pending == 0) & ~ofifo.r_rdy
                  & self.wr.idle):
            m.d.sync += self.busy.eq(0)
        return m
