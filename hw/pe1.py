"""PE1: contraction along the last dimension, ``dst[a, d] = R(sum_{b,c} A[a,b,c] * W[b,d,c])`` (thesis 3.5.2,
Fig. 3.3a, Algorithm 3).

An array of ``rows x cols`` (8 x 16) multipliers: column ``j`` takes ``c = c0 + j``, row ``i`` takes
``a = a0 + i``; every column's weight comes from the same weight-memory word (16 weights = W[b, d, c0:c0+16]),
every row has an adder tree and an exact accumulator. Per cycle: 128 MACs.

Dataflow per block of 8 rows (Algorithm 3, pipelined with two ping-pong buffers):

* load: ``A[a0:a0+8, :, :]`` (contiguous in DRAM, ``8 b c`` elements) into the input ping-pong half; the read
  command goes out as soon as that half is free, while the previous block's beats still arrive, so the DRAM
  latency is paid once per instruction rather than once per block;
* compute: for each ``d``, for each of the ``b c / 16`` words of a row: 8 rows x 16 products; after the last
  word the 8 sums go through the output stage into the output ping-pong half (element ``d`` of each row);
* store: the output half holds ``dst[a0:a0+8, :]``, contiguous in DRAM; it is read row by row and packed
  into beats (rows need not end on a beat boundary: :class:`~ultratrain.hw.packer.Packer`).

Compute time per block is ``b c d / 16`` cycles against ``b c`` beats loaded and ``d`` beats stored, so the
array is the bottleneck whenever ``d >= 16``, and load/store hide behind it.

Accumulator width: at most ``b c <= pe1_row_elems`` (512) products of magnitude ``<= 2**15 * 2**3``
(int16 data x int4 weight, the extreme being (-2**15)(-2**3)), so ``|acc| <= 2**27``: 29 signed bits.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, WMEM_LANES, HardwareConfig
from .arith import narrow_product
from .block_read_ahead import BlockReadAhead
from .output_stage import OutputStage
from .packer import Packer
from .pingpong import PingPongBuffer
from .unit import unit_members
from .weight_memory import WEIGHT_WORD_BITS

__all__ = ["PE1", "pe1_acc_width"]

PRODUCT_MAX = (1 << 15) * (1 << 3)


def pe1_acc_width(cfg: HardwareConfig = DEFAULT_CONFIG) -> int:
    return (cfg.pe1_row_elems * PRODUCT_MAX).bit_length() + 1


class PE1(wiring.Component):
    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        self.rows, self.cols = cfg.pe1_rows, cfg.pe1_cols
        self.words_per_row = cfg.pe1_row_words                              # input half: words of 16 per row
        # d <= wmem_words * 16 / (b c) and b c >= 16, so d <= wmem_words: the output half's depth in 8-element words.
        self.d_max = cfg.wmem_words
        self.out_words = -(-self.d_max // 8)
        self.acc_width = pe1_acc_width(cfg)
        members = unit_members(cfg.axi_data_bits)
        members.update({"wmem_addr": Out(range(cfg.wmem_words)), "wmem_en": Out(1),
                        "wmem_data": In(WEIGHT_WORD_BITS)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, rows, cols = self.cfg, self.rows, self.cols
        desc = self.desc
        beat_elems = cfg.axi_data_bits // 16            # 8
        lane_bits = 16 * cols                           # one row's buffer word

        m.submodules.inbuf = inbuf = PingPongBuffer(rows * lane_bits, self.words_per_row, granularity=cfg.axi_data_bits)
        m.submodules.outbuf = outbuf = PingPongBuffer(rows * 16 * beat_elems, self.out_words, granularity=16)
        m.submodules.ostage = ost = OutputStage(rows, self.acc_width)
        m.submodules.packer = packer = Packer()
        # Depth 8: the store reads ahead while level + in flight < depth - 1; with depth 4 that throttled it to 3
        # words in 4 cycles (measured), 8 covers the read-to-FIFO round trip at one word per cycle.
        m.submodules.dfifo = dfifo = fifo.SyncFIFOBuffered(width=16 * beat_elems + 5, depth=8)

        # ---- parameters latched at start ------------------------------------------------------------------
        words_per_row_max = self.words_per_row
        bc = Signal(range(cfg.pe1_row_elems + 1))
        row_words = Signal(range(words_per_row_max + 1))           # b c / 16
        row_beats = Signal(range(2 * words_per_row_max + 1))       # b c / 8
        c16 = Signal(12)
        dc16 = Signal(32)
        nblocks = Signal(14)
        d_words = Signal(range(self.out_words + 1))                # ceil(d / 8)
        d_last = Signal(4)                                         # elements in a row's last word (1..8)
        # Legal PE1 shapes have b (c / 16) <= words_per_row_max (decoder): b and c / 16 are small.
        b_bits = (words_per_row_max * cols).bit_length()
        c16_bits = words_per_row_max.bit_length()
        with m.If(self.start):
            prod = Signal(32)
            desc_c16 = (desc.c >> 4)[:c16_bits]
            m.d.comb += prod.eq(narrow_product(desc.b[:b_bits], desc_c16) << 4)
            m.d.sync += [
                bc.eq(prod), row_words.eq(prod >> 4), row_beats.eq(prod >> 3), c16.eq(desc.c >> 4),
                dc16.eq(narrow_product(desc.d, desc_c16)), nblocks.eq((desc.a + rows - 1) >> 3),
                d_words.eq((desc.d + 7) >> 3), d_last.eq(((desc.d - 1) & 7) + 1),
                self.busy.eq(1),
            ]
        m.d.comb += ost.clear.eq(self.start)
        m.d.comb += [ost.shift.eq(desc.shift), ost.fmt.eq(desc.out_fmt)]

        def rows_in(rows_left):
            return Mux(rows_left >= rows, rows, rows_left[:4])

        # ---- loader: A[a0:a0+8] -> input half ------------------------------------------------------------
        # Read commands run ahead of the free halves (hw/block_read_ahead.py), so the DRAM latency hides even
        # when a block loads as fast as it computes (both halves may be FILLING: the beats arrive in command
        # order and `ld_half` follows them).
        m.submodules.read_ahead = ahead = BlockReadAhead()
        ld_block = Signal(14)
        ld_rows_left = Signal(16)
        ld_addr = Signal(32)
        ld_half = Signal()
        ld_i = Signal(range(rows))
        ld_p = Signal(range(2 * words_per_row_max))
        with m.If(self.start):
            m.d.sync += [ld_block.eq(0), ld_rows_left.eq(desc.a), ld_addr.eq(desc.src_a),
                         ld_half.eq(inbuf.w_next), ld_i.eq(0), ld_p.eq(0)]
        beat = self.rd.data
        ahead.attach(m, start=self.start, inbuf=inbuf, rd=self.rd)
        with m.If(self.busy & (ld_block != nblocks) & ~self.start):
            m.d.comb += [self.rd.cmd.valid.eq(ahead.cmd_allow),
                         self.rd.cmd.payload.addr.eq(ld_addr),
                         self.rd.cmd.payload.beats.eq(narrow_product(row_beats, rows_in(ld_rows_left))),
                         self.rd.cmd.payload.rows.eq(1), self.rd.cmd.payload.stride.eq(0),
                         self.rd.cmd.payload.tag.eq(0)]
            with m.If(self.rd.cmd.valid & self.rd.cmd.ready):
                m.d.sync += [ld_block.eq(ld_block + 1), ld_rows_left.eq(ld_rows_left - rows),
                             ld_addr.eq(ld_addr + (bc << 4))]
        m.d.comb += [beat.ready.eq(ahead.beat_ready), inbuf.w_sel.eq(ld_half), inbuf.w_addr.eq(ld_p >> 1),
                     inbuf.w_data.eq(beat.payload.data.replicate(rows * lane_bits // cfg.axi_data_bits))]
        with m.If(beat.valid & beat.ready & ~self.start):
            m.d.comb += inbuf.w_en.eq(1 << Cat(ld_p[0], ld_i))
            with m.If(ld_p == row_beats - 1):
                m.d.sync += [ld_p.eq(0), ld_i.eq(ld_i + 1)]
            with m.Else():
                m.d.sync += ld_p.eq(ld_p + 1)
            with m.If(beat.payload.last):
                m.d.comb += [inbuf.w_commit.eq(1), inbuf.w_commit_sel.eq(ld_half)]
                m.d.sync += [ld_half.eq(~ld_half), ld_i.eq(0), ld_p.eq(0)]

        # ---- compute: issue stage ------------------------------------------------------------------------
        cp_block = Signal(14)
        cp_rows_left = Signal(16)
        cp_half = Signal()
        cp_mask = Signal(rows)
        dd = Signal(16)
        mw = Signal(range(words_per_row_max))
        cw = Signal(12)
        w_dd = Signal(32)        # weight word of (b=0, d=dd, c0=0)
        w_row = Signal(32)       # weight word of (b, d=dd, c0=0)
        w_addr = Signal(32)
        issue = Signal()
        with m.If(self.start):
            m.d.sync += [cp_block.eq(0), cp_rows_left.eq(desc.a)]
        last_word = mw == row_words - 1
        last_d = dd == desc.d - 1
        with m.FSM(name="compute"):
            with m.State("IDLE"):
                with m.If(self.busy & (cp_block != nblocks) & inbuf.r_ready & outbuf.w_ready & ~self.start):
                    m.d.comb += outbuf.w_acquire.eq(1)
                    n = rows_in(cp_rows_left)
                    m.d.sync += [cp_half.eq(outbuf.w_next), cp_mask.eq((Const(1, rows + 1) << n) - 1),
                                 dd.eq(0), mw.eq(0), cw.eq(0), w_dd.eq(desc.wofs), w_row.eq(desc.wofs),
                                 w_addr.eq(desc.wofs)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += issue.eq(1)
                with m.If(last_word):
                    m.d.sync += [mw.eq(0), cw.eq(0)]
                    with m.If(last_d):
                        m.d.comb += inbuf.r_release.eq(1)
                        m.d.sync += [cp_block.eq(cp_block + 1), cp_rows_left.eq(cp_rows_left - rows)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [dd.eq(dd + 1), w_dd.eq(w_dd + c16), w_row.eq(w_dd + c16),
                                     w_addr.eq(w_dd + c16)]
                with m.Else():
                    m.d.sync += mw.eq(mw + 1)
                    with m.If(cw == c16 - 1):
                        m.d.sync += [cw.eq(0), w_row.eq(w_row + dc16), w_addr.eq(w_row + dc16)]
                    with m.Else():
                        m.d.sync += [cw.eq(cw + 1), w_addr.eq(w_addr + 1)]
        m.d.comb += [inbuf.r_en.eq(issue), inbuf.r_addr.eq(mw),
                     self.wmem_en.eq(issue), self.wmem_addr.eq(w_addr),
                     self.array_busy.eq(issue)]

        # ---- compute: pipeline ---------------------------------------------------------------------------
        # S1: memory data; S2: products; S3: row sums -> accumulate; S3 + latency: output stage -> output half.
        def stage(prev, name):
            regs = {k: Signal.like(v, name=f"{name}_{k}") for k, v in prev.items()}
            m.d.sync += [regs[k].eq(v) for k, v in prev.items()]
            return regs

        s0 = {"valid": issue, "first": mw == 0, "last": last_word, "dd": dd, "half": cp_half, "mask": cp_mask,
              "block_last": last_word & last_d}
        s1 = stage(s0, "s1")
        s2 = stage(s1, "s2")
        products = []
        for i in range(rows):
            for j in range(cols):
                x = inbuf.r_data[i * lane_bits + 16 * j: i * lane_bits + 16 * (j + 1)].as_signed()
                w = self.wmem_data[4 * j: 4 * (j + 1)].as_signed()
                p = Signal(signed(20), name=f"p{i}_{j}")
                m.d.sync += p.eq(x * w)
                products.append(p)
        s3 = stage(s2, "s3")
        sums = []
        for i in range(rows):
            total = Signal(signed(24), name=f"rowsum{i}")
            m.d.sync += total.eq(sum(products[i * cols:(i + 1) * cols]))
            sums.append(total)
        accs = [Signal(signed(self.acc_width), name=f"acc{i}") for i in range(rows)]
        for i in range(rows):
            new = Signal(signed(self.acc_width), name=f"acc_next{i}")
            m.d.comb += [new.eq(Mux(s3["first"], 0, accs[i]) + sums[i]), ost.i_acc[i].eq(new)]
            with m.If(s3["valid"]):
                m.d.sync += accs[i].eq(new)
        m.d.comb += [ost.i_valid.eq(s3["valid"] & s3["last"]), ost.i_mask.eq(s3["mask"])]
        tail = {k: s3[k] for k in ("dd", "half", "block_last")}
        for n in range(OutputStage.latency):
            tail = stage(tail, f"t{n}")
        # Output half: row i's element dd is 16-bit granule i*8 + dd%8 of word dd/8.
        elem = tail["dd"][:3]
        m.d.comb += [outbuf.w_sel.eq(tail["half"]), outbuf.w_addr.eq(tail["dd"] >> 3),
                     outbuf.w_data.eq(Cat(*[ost.o_data[i].as_unsigned().replicate(beat_elems) for i in range(rows)]))]
        with m.If(ost.o_valid):
            m.d.comb += outbuf.w_en.eq(Cat(*[(1 << elem)[:beat_elems] & ost.o_mask[i].replicate(beat_elems)
                                            for i in range(rows)]))
            with m.If(tail["block_last"]):
                m.d.comb += [outbuf.w_commit.eq(1), outbuf.w_commit_sel.eq(tail["half"])]

        # ---- store: output half -> packer -> AXI ---------------------------------------------------------
        st_block = Signal(14)
        st_rows_left = Signal(16)
        st_addr = Signal(32)
        st_i = Signal(range(rows))
        st_w = Signal(range(self.out_words))
        st_n = Signal(4)
        with m.If(self.start):
            m.d.sync += [st_block.eq(0), st_rows_left.eq(desc.a), st_addr.eq(desc.dst)]
        inflight = Signal()
        inflight_tag = Signal(5)
        rd_issue = Signal()
        m.d.sync += [inflight.eq(rd_issue)]
        row_last_word = st_w == d_words - 1
        with m.FSM(name="store") as store_fsm:
            with m.State("IDLE"):
                with m.If(self.busy & (st_block != nblocks) & outbuf.r_ready & ~self.start):
                    m.next = "CMD"
            with m.State("CMD"):
                n_rows = rows_in(st_rows_left)
                m.d.comb += [self.wr.cmd.valid.eq(1), self.wr.cmd.payload.addr.eq(st_addr),
                             self.wr.cmd.payload.beats.eq((narrow_product(desc.d, n_rows) + beat_elems - 1) >> 3),
                             self.wr.cmd.payload.rows.eq(1), self.wr.cmd.payload.stride.eq(0)]
                with m.If(self.wr.cmd.ready):
                    m.d.sync += [st_i.eq(0), st_w.eq(0), st_n.eq(n_rows - 1),
                                 st_block.eq(st_block + 1), st_rows_left.eq(st_rows_left - rows),
                                 st_addr.eq(st_addr + (desc.d << 4))]
                    m.next = "READ"
            with m.State("READ"):
                with m.If(dfifo.level + inflight < dfifo.depth - 1):
                    m.d.comb += [rd_issue.eq(1), outbuf.r_en.eq(1), outbuf.r_addr.eq(st_w)]
                    block_done = row_last_word & (st_i == st_n)
                    m.d.sync += inflight_tag.eq(Cat(Mux(row_last_word, d_last, 8), block_done))
                    with m.If(row_last_word):
                        m.d.sync += [st_w.eq(0), st_i.eq(st_i + 1)]
                    with m.Else():
                        m.d.sync += st_w.eq(st_w + 1)
                    with m.If(block_done):
                        m.d.comb += outbuf.r_release.eq(1)
                        m.next = "IDLE"
        read_row = Signal(range(rows))
        m.d.sync += read_row.eq(st_i)
        row_word = outbuf.r_data.word_select(read_row, 16 * beat_elems)
        m.d.comb += [dfifo.w_en.eq(inflight), dfifo.w_data.eq(Cat(row_word, inflight_tag))]
        m.d.comb += [packer.i.valid.eq(dfifo.r_rdy), dfifo.r_en.eq(packer.i.ready),
                     packer.i.payload.data.eq(dfifo.r_data[:16 * beat_elems]),
                     packer.i.payload.count.eq(dfifo.r_data[16 * beat_elems:16 * beat_elems + 4]),
                     packer.i.payload.last.eq(dfifo.r_data[16 * beat_elems + 4])]
        wiring.connect(m, packer.o, wiring.flipped(self.wr.data))

        # ---- done ----------------------------------------------------------------------------------------
        m.d.comb += [self.saturated.eq(ost.saturated), self.sum_abs.eq(ost.sum_abs)]
        with m.If(self.busy & ~self.start & (st_block == nblocks) & store_fsm.ongoing("IDLE") & ~dfifo.r_rdy
                  & ~inflight & packer.idle & self.wr.idle):
            m.d.sync += self.busy.eq(0)
        return m
