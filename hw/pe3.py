"""PE3: batch-summed outer product, ``dst[d, c] = R(sum_a B[a, d] * A[a, c])`` (+ old ``dst`` with Flag.ACC)
(thesis 3.5.2 and 3.8.2: the full weight gradient ``m1m2m3 x n1n2n3 -> n1m1n2m2n3m3``).

A one-dimensional array of ``pe3_lanes`` (16) multipliers along ``c``. The thesis: "Elements of the second
operand is cached, while the first operand is read from DRAM directly" — here one row ``B[a, :]``
(``d <= pe3_max_d``) is cached with the matching 16 elements ``A[a, c0:c0+16]``; the row is then swept,
one ``d`` per cycle, into an accumulator memory per lane (``d`` words), so the sum over the batch ``a``
happens on chip and each output is written once. Row caches are double-buffered (the next row loads
while this one is swept) and so are the accumulators (the previous c-chunk drains while the next computes).

Operands are row-strided (``stride_a``, ``stride_b`` elements), which picks one ``(n_d x m_d)`` block of
the full weight gradient out of batch-major activations and gradients (sim/compiler.py).

Per row: ``d`` cycles of 16 MACs against ``2 + ceil(d/8)`` beats read, so the lanes are the bottleneck
for ``d >= 3``; per c-chunk ``2d`` beats are written.

The result is stored row-major, ``dst[d][c]``, or with Flag.CHUNKS chunk-major, ``dst[c // 16][d][16]``: the
same write commands (``d`` rows of two beats per chunk), only the row and chunk pitches differ.

With row groups (field ``b``, contract 1.2) the chunk sequence simply goes on into the next group: ``B``'s
row address moves on by ``d`` columns and ``dst`` by one group's result (``2 d c`` bytes, formed once per
instruction without a DSP, hw/arith.py), so a group's first sweep overlaps the previous group's last drain
and only the instruction's first read latency and last drain are exposed. Column groups (``b[15:8]``,
contract 1.3) are one loop further out: after the last row group ``A`` moves on by ``c`` columns, ``B``
starts again at ``src_b``, and ``dst`` goes on after the previous group's result, so the whole of a weight
gradient whose blocks differ in an ``n`` and the ``m`` digit outside it is one run of chunks.

Accumulator width: at most ``a <= 2**16 - 1`` products of two int16 (magnitude ``<= 2**30``): 47 signed bits.
With Flag.ACC the drain reads the old ``dst`` rows too and adds them after the rescale (saturating).

The accumulators (2 x 512 words x 376 bits) are synchronous-read RAMs so that synthesis puts them in block RAM:
as distributed RAM they took ~12,000 LUTs and pushed the design past the XCZU3EG (docs/hardware.md). The
read-modify-write is therefore split over two stages: the read is issued in s1 and the sum written in s2, and
a word written in s2 is forwarded to the next s2 when it reads the same address (``d == 1``), because the
RAM is read-first. The drain reads its own copy (one write port, two read ports, like the thesis' per-lane
block memories) one cycle ahead of the output stage.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, FIELD_MAX, Flag, HardwareConfig
from .arith import narrow_product
from .output_stage import OutputStage, connect_beats_to_axi
from .pingpong import PingPongControl
from .ram import AsyncRAM, SyncRAM
from .unit import unit_members

__all__ = ["PE3", "pe3_acc_width"]

TAG_A, TAG_B, TAG_OLD = 0, 1, 2


def pe3_acc_width(cfg: HardwareConfig = DEFAULT_CONFIG) -> int:
    return (FIELD_MAX * (1 << 30)).bit_length() + 1


class PE3(wiring.Component):
    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        self.lanes = cfg.pe3_lanes
        self.max_d = cfg.pe3_max_d
        self.acc_width = pe3_acc_width(cfg)
        super().__init__(unit_members(cfg.axi_data_bits))

    def elaborate(self, platform):
        m = Module()
        cfg, lanes, max_d, aw = self.cfg, self.lanes, self.max_d, self.acc_width
        desc = self.desc
        beat_elems = cfg.axi_data_bits // 16                # 8
        halves = lanes // beat_elems                        # 2 beats per 16 lanes
        b_words = -(-max_d // beat_elems)                   # B row cache words per slot
        dbits = (max_d - 1).bit_length()

        m.submodules.slots = slots = PingPongControl()
        m.submodules.bcache = bcache = AsyncRAM(cfg.axi_data_bits, 2 * b_words)
        m.submodules.banks = banks = PingPongControl()
        accs, drain_copies = [], []
        for p in range(halves):
            m.submodules[f"acc{p}"] = ram = SyncRAM(beat_elems * aw, 2 * max_d)
            m.submodules[f"acc{p}_drain"] = copy = SyncRAM(beat_elems * aw, 2 * max_d)
            accs.append(ram)
            drain_copies.append(copy)
        m.submodules.ostage = ost = OutputStage(beat_elems, aw, with_add=True)
        m.submodules.ofifo = ofifo = fifo.SyncFIFOBuffered(width=cfg.axi_data_bits, depth=8)
        m.submodules.oldfifo = oldfifo = fifo.SyncFIFOBuffered(width=cfg.axi_data_bits, depth=8)

        acc_flag = (desc.flags & int(Flag.ACC)) != 0
        # dst layout: row-major dst[d][c] (a chunk's rows are c elements apart, chunks 16 apart) or, with
        # Flag.CHUNKS, chunk-major dst[c // 16][d][16] (rows 16 apart, chunks d x 16 apart).
        chunk_major = (desc.flags & int(Flag.CHUNKS)) != 0
        dst_row_bytes = Mux(chunk_major, 2 * lanes, desc.c << 1)
        dst_chunk_bytes = Mux(chunk_major, desc.d << (2 * lanes).bit_length() - 1, 2 * lanes)   # lanes: 2**k
        d_beats = Signal(range(b_words + 1))
        c16 = Signal(12)
        # Row groups (contract 1.2, field b): group g reads B from src_b + 2 g d and writes its d x c result
        # group_bytes = 2 d c after the previous group's; the chunks of all groups run as one sequence.
        group_bytes = Signal(32)
        with m.If(self.start):
            m.d.sync += [d_beats.eq((desc.d + beat_elems - 1) >> 3), c16.eq(desc.c >> 4), self.busy.eq(1),
                         group_bytes.eq(narrow_product(desc.c, desc.d[:dbits + 1]) << 1)]

        # Column groups (contract 1.3, b[15:8]) are the outer loop: after the last row group, A moves on by c
        # columns, B starts again at src_b, dst simply continues. 0 and 1 both mean one group.
        def last_row_group(g):
            return g + 1 >= desc.b[:8]

        def last_group(g, h):
            return last_row_group(g) & (h + 1 >= desc.b[8:])

        def next_group(g, h):
            # The counters of the group after (g, h) (after the last group they are not read again).
            with m.If(last_row_group(g)):
                m.d.sync += [g.eq(0), h.eq(h + 1)]
            with m.Else():
                m.d.sync += g.eq(g + 1)
        m.d.comb += [ost.clear.eq(self.start), ost.shift.eq(desc.shift), ost.fmt.eq(desc.out_fmt),
                     ost.add.eq(acc_flag), ost.i_mask.eq((1 << beat_elems) - 1)]

        # ---- command issue: per c-chunk, per row: A[a, c0:c0+16] then B[a, :]; then (ACC) the old dst rows --
        is_cj = Signal(12)
        is_ai = Signal(16)
        a_row = Signal(32)
        a_chunk = Signal(32)
        b_row = Signal(32)
        is_dst = Signal(32)
        is_g = Signal(8)
        is_h = Signal(8)
        a_group = Signal(32)
        b_group = Signal(32)
        is_group_dst = Signal(32)
        with m.If(self.start):
            m.d.sync += [is_cj.eq(0), is_ai.eq(0), a_row.eq(desc.src_a), a_chunk.eq(desc.src_a),
                         b_row.eq(desc.src_b), is_dst.eq(desc.dst), is_g.eq(0), is_h.eq(0), a_group.eq(desc.src_a),
                         b_group.eq(desc.src_b), is_group_dst.eq(desc.dst)]
        cmd = self.rd.cmd
        with m.FSM(name="issue"):
            with m.State("IDLE"):
                with m.If(self.busy & ~self.start):
                    m.next = "A"
            with m.State("A"):
                m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(a_row), cmd.payload.beats.eq(halves),
                             cmd.payload.rows.eq(1), cmd.payload.tag.eq(TAG_A)]
                with m.If(cmd.ready):
                    m.next = "B"
            with m.State("B"):
                m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(b_row), cmd.payload.beats.eq(d_beats),
                             cmd.payload.rows.eq(1), cmd.payload.tag.eq(TAG_B)]
                with m.If(cmd.ready):
                    with m.If(is_ai == desc.a - 1):
                        m.d.sync += [is_ai.eq(0), a_row.eq(a_chunk + 32), a_chunk.eq(a_chunk + 32),
                                     b_row.eq(b_group)]
                        m.next = "OLD"
                    with m.Else():
                        m.d.sync += [is_ai.eq(is_ai + 1), a_row.eq(a_row + (desc.stride_a << 1)),
                                     b_row.eq(b_row + (desc.stride_b << 1))]
                        m.next = "A"
            with m.State("OLD"):
                with m.If(acc_flag):
                    m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(is_dst), cmd.payload.beats.eq(halves),
                                 cmd.payload.rows.eq(desc.d), cmd.payload.stride.eq(dst_row_bytes),
                                 cmd.payload.tag.eq(TAG_OLD)]
                with m.If(cmd.ready | ~acc_flag):
                    m.d.sync += [is_cj.eq(is_cj + 1), is_dst.eq(is_dst + dst_chunk_bytes)]
                    with m.If((is_cj == c16 - 1) & last_group(is_g, is_h)):
                        m.next = "DONE"
                    with m.Else():
                        with m.If(is_cj == c16 - 1):
                            next_dst = is_group_dst + group_bytes
                            m.d.sync += [is_cj.eq(0), is_group_dst.eq(next_dst), is_dst.eq(next_dst)]
                            next_group(is_g, is_h)
                            with m.If(last_row_group(is_g)):
                                next_a = a_group + (desc.c << 1)
                                m.d.sync += [a_group.eq(next_a), a_row.eq(next_a), a_chunk.eq(next_a),
                                             b_group.eq(desc.src_b), b_row.eq(desc.src_b)]
                            with m.Else():
                                next_b = b_group + (desc.d << 1)
                                m.d.sync += [a_row.eq(a_group), a_chunk.eq(a_group), b_group.eq(next_b),
                                             b_row.eq(next_b)]
                        m.next = "A"
            with m.State("DONE"):
                with m.If(self.start):
                    m.next = "IDLE"

        # ---- receive: fill the row caches (slots); old dst beats go to oldfifo --------------------------------
        a_regs = [Signal(16 * lanes, name=f"a_slot{s}") for s in range(2)]
        rx_slot = Signal()
        rx_have = Signal()
        rx_beat = Signal(range(b_words))
        beat = self.rd.data
        tag = beat.payload.tag
        m.d.comb += [oldfifo.w_data.eq(beat.payload.data),
                     bcache.w_addr.eq(Cat(rx_beat[:(b_words - 1).bit_length()], rx_slot)),
                     bcache.w_data.eq(beat.payload.data)]
        with m.If(tag == TAG_OLD):
            m.d.comb += [beat.ready.eq(oldfifo.w_rdy), oldfifo.w_en.eq(beat.valid)]
        with m.Else():
            m.d.comb += beat.ready.eq(rx_have | slots.w_ready)
            with m.If(beat.valid & beat.ready):
                slot = Mux(rx_have, rx_slot, slots.w_next)
                with m.If(~rx_have):
                    m.d.comb += slots.w_acquire.eq(1)
                    m.d.sync += [rx_slot.eq(slots.w_next), rx_have.eq(1)]
                with m.If(tag == TAG_A):
                    for s in range(2):
                        with m.If(slot == s):
                            with m.If(rx_beat[0]):
                                m.d.sync += a_regs[s][16 * beat_elems:].eq(beat.payload.data)
                            with m.Else():
                                m.d.sync += a_regs[s][:16 * beat_elems].eq(beat.payload.data)
                    m.d.sync += rx_beat.eq(Mux(beat.payload.last, 0, rx_beat + 1))
                with m.Else():
                    m.d.comb += bcache.w_en.eq(1)
                    m.d.sync += rx_beat.eq(rx_beat + 1)
                    with m.If(beat.payload.last):
                        m.d.comb += [slots.w_commit.eq(1), slots.w_commit_sel.eq(slot)]
                        m.d.sync += [rx_have.eq(0), rx_beat.eq(0)]

        # ---- compute: sweep the cached row over d into accumulator bank ----------------------------------
        cp_cj = Signal(12)
        cp_g = Signal(8)
        cp_h = Signal(8)
        cp_done = Signal()
        cp_ai = Signal(16)
        dd = Signal(range(max_d))
        bank = Signal()
        issue = Signal()
        with m.If(self.start):
            m.d.sync += [cp_cj.eq(0), cp_g.eq(0), cp_h.eq(0), cp_done.eq(0)]
        last_dd = dd == desc.d - 1
        last_row = cp_ai == desc.a - 1
        with m.FSM(name="compute"):
            with m.State("IDLE"):
                with m.If(self.busy & ~self.start & ~cp_done & banks.w_ready):
                    m.d.comb += banks.w_acquire.eq(1)
                    m.d.sync += [bank.eq(banks.w_next), cp_ai.eq(0), dd.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += issue.eq(slots.r_ready)
                with m.If(issue):
                    with m.If(last_dd):
                        m.d.comb += slots.r_release.eq(1)
                        m.d.sync += [dd.eq(0), cp_ai.eq(cp_ai + 1)]
                        with m.If(last_row):
                            m.d.sync += cp_cj.eq(cp_cj + 1)
                            with m.If(cp_cj == c16 - 1):
                                m.d.sync += [cp_cj.eq(0), cp_done.eq(last_group(cp_g, cp_h))]
                                next_group(cp_g, cp_h)
                            # The next chunk's bank is acquired here when it is free, so its first row is
                            # swept in the next cycle; IDLE only waits for a bank still being drained.
                            finishing = (cp_cj == c16 - 1) & last_group(cp_g, cp_h)
                            with m.If(~finishing & banks.w_ready):
                                m.d.comb += banks.w_acquire.eq(1)
                                m.d.sync += [bank.eq(banks.w_next), cp_ai.eq(0)]
                            with m.Else():
                                m.next = "IDLE"
                    with m.Else():
                        m.d.sync += dd.eq(dd + 1)
        m.d.comb += [bcache.r0_addr.eq(Cat((dd >> 3)[:(b_words - 1).bit_length()], slots.r_half)),
                     self.array_busy.eq(issue)]

        def stage(prev, name):
            regs = {k: Signal.like(v, name=f"{name}_{k}") for k, v in prev.items()}
            m.d.sync += [regs[k].eq(v) for k, v in prev.items()]
            return regs

        s0 = {"valid": issue, "first": cp_ai == 0, "dd": dd, "bank": bank, "block_last": last_dd & last_row,
              "bval": bcache.r0_data.word_select(dd[:3], 16),
              "alanes": Mux(slots.r_half, a_regs[1], a_regs[0])}
        s1 = stage(s0, "s1")
        s2 = stage({k: v for k, v in s1.items() if k not in ("bval", "alanes")}, "s2")
        products = [Signal(signed(32), name=f"p{j}") for j in range(lanes)]
        for j in range(lanes):
            m.d.sync += products[j].eq(s1["bval"].as_signed() * s1["alanes"][16 * j:16 * (j + 1)].as_signed())
        acc_addr = Signal(range(2 * max_d))
        read_addr = Signal(range(2 * max_d))
        m.d.comb += [acc_addr.eq(Cat(s2["dd"][:dbits], s2["bank"])), read_addr.eq(Cat(s1["dd"][:dbits], s1["bank"]))]
        forward = Signal()
        m.d.sync += forward.eq(s2["valid"] & (acc_addr == read_addr))
        for p in range(halves):
            ram, copy = accs[p], drain_copies[p]
            written = Signal(beat_elems * aw, name=f"acc_written{p}")
            current = Mux(forward, written, ram.r_data)
            new = []
            for i in range(beat_elems):
                old = current[aw * i:aw * (i + 1)].as_signed()
                v = Signal(signed(aw), name=f"accnew{p}_{i}")
                m.d.comb += v.eq(Mux(s2["first"], 0, old) + products[p * beat_elems + i])
                new.append(v)
            m.d.sync += written.eq(Cat(*new))
            m.d.comb += [ram.r_addr.eq(read_addr), ram.r_en.eq(1)]
            for r in (ram, copy):
                m.d.comb += [r.w_addr.eq(acc_addr), r.w_data.eq(Cat(*new)), r.w_en.eq(s2["valid"])]
        with m.If(s2["valid"] & s2["block_last"]):
            m.d.comb += [banks.w_commit.eq(1), banks.w_commit_sel.eq(s2["bank"])]

        # ---- drain: bank -> output stage (+ old dst) -> dst[:, c0:c0+16] -----------------------------------
        dr_cj = Signal(12)
        dr_g = Signal(8)
        dr_h = Signal(8)
        dr_done = Signal()
        dr_dst = Signal(32)
        dr_group_dst = Signal(32)
        with m.If(self.start):
            m.d.sync += [dr_cj.eq(0), dr_g.eq(0), dr_h.eq(0), dr_done.eq(0), dr_dst.eq(desc.dst),
                         dr_group_dst.eq(desc.dst)]
        ddr = Signal(range(max_d))
        part = Signal(range(halves))
        dr_issue = Signal()
        # one cycle of RAM read, then the output stage
        in_flight = OutputStage.latency + 1
        pipe = Signal(in_flight)
        m.d.sync += pipe.eq(Cat(dr_issue, pipe[:-1]))
        pending = Signal(range(in_flight + 1))
        m.d.comb += pending.eq(sum(pipe[i] for i in range(in_flight)))
        with m.FSM(name="drain") as drain_fsm:
            with m.State("IDLE"):
                # The chunk's write command goes out as soon as its bank is complete (one cycle per chunk
                # between drains).
                wcmd = self.wr.cmd
                with m.If(self.busy & ~self.start & ~dr_done & banks.r_ready):
                    m.d.comb += [wcmd.valid.eq(1), wcmd.payload.addr.eq(dr_dst), wcmd.payload.beats.eq(halves),
                                 wcmd.payload.rows.eq(desc.d), wcmd.payload.stride.eq(dst_row_bytes)]
                    with m.If(wcmd.ready):
                        m.d.sync += [ddr.eq(0), part.eq(0), dr_cj.eq(dr_cj + 1),
                                     dr_dst.eq(dr_dst + dst_chunk_bytes)]
                        with m.If(dr_cj == c16 - 1):
                            next_dst = dr_group_dst + group_bytes
                            m.d.sync += [dr_cj.eq(0), dr_done.eq(last_group(dr_g, dr_h)),
                                         dr_group_dst.eq(next_dst), dr_dst.eq(next_dst)]
                            next_group(dr_g, dr_h)
                        m.next = "READ"
            with m.State("READ"):
                with m.If((ofifo.level + pending < ofifo.depth - 1) & (~acc_flag | oldfifo.r_rdy)):
                    m.d.comb += [dr_issue.eq(1), oldfifo.r_en.eq(acc_flag)]
                    with m.If(part == halves - 1):
                        m.d.sync += [part.eq(0), ddr.eq(ddr + 1)]
                        with m.If(ddr == desc.d - 1):
                            m.d.comb += banks.r_release.eq(1)
                            m.next = "IDLE"
                    with m.Else():
                        m.d.sync += part.eq(part + 1)
        for p in range(halves):
            m.d.comb += [drain_copies[p].r_addr.eq(Cat(ddr[:dbits], banks.r_half)), drain_copies[p].r_en.eq(1)]
        read_part = Signal.like(part)
        addend = Signal(cfg.axi_data_bits)
        m.d.sync += [read_part.eq(part), addend.eq(oldfifo.r_data)]
        word = Signal(beat_elems * aw)
        with m.Switch(read_part):
            for p in range(halves):
                with m.Case(p):
                    m.d.comb += word.eq(drain_copies[p].r_data)
        for i in range(beat_elems):
            m.d.comb += [ost.i_acc[i].eq(word[aw * i:aw * (i + 1)].as_signed()),
                         ost.i_addend[i].eq(addend[16 * i:16 * (i + 1)].as_signed())]
        m.d.comb += ost.i_valid.eq(pipe[0])
        connect_beats_to_axi(m, ost, ofifo, self.wr.data)

        m.d.comb += [self.saturated.eq(ost.saturated), self.sum_abs.eq(ost.sum_abs)]
        with m.If(self.busy & ~self.start & dr_done & drain_fsm.ongoing("IDLE") & (pending == 0)
                  & ~ofifo.r_rdy & self.wr.idle):
            m.d.sync += self.busy.eq(0)
        return m
