"""Vector unit: bias + activation (ACT_FWD), its straight-through backward mask (ACT_BWD) and the bias
gradient (REDUCE) — thesis eq. 3.7-3.8 and section 3.4.3; semantics in sim/pe.py.

* ACT_FWD  ``dst[a,c] = R(sat16(A[a,c] + round_shift(bias[c], bias_shift)))``: with out_fmt U8 the
  saturation *is* the quantized clipped ReLU.
* ACT_BWD  ``dst[a,c] = B[a,c]`` where the activation above was neither clipped at 0 nor saturated at the
  top (``z >= 0`` and ``round_shift(z, shift) <= 255`` for U8; always for signed formats), else 0.
* REDUCE   ``dst[c] = R(sum_a A[a,c])`` over column chunks of up to 256 (one accumulator word per beat).

Eight lanes (one 128-bit beat) per cycle: these operations stream once through DRAM, so the AXI bandwidth
and not the lane count bounds them (``vec_lanes`` = 16 is the width of a bias word; two beats use one).
ACT_BWD reads its two operands in alternating 16-beat chunks. The bias of a column is read combinationally
from the bias memory; ``round_shift(bias, bias_shift)`` is formed exactly and clamped at +-2**17 first,
which cannot change ``sat16(y + bias)`` for an int16 ``y``.

REDUCE accumulators: ``a <= 2**16 - 1`` int16 terms fit 32 signed bits.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, FIELD_MAX, HardwareConfig, Opcode
from .bias_memory import BIAS_WORD_BITS
from .output_stage import FMT_S16, FMT_U8, OutputStage, round_shift_logic
from .ram import AsyncRAM
from .unit import unit_members

__all__ = ["VecUnit", "REDUCE_CHUNK", "reduce_acc_width"]

REDUCE_CHUNK = 256          # columns per REDUCE pass (accumulator words x 8 lanes)
BWD_CHUNK = 16              # beats per ACT_BWD operand chunk
TAG_A, TAG_B = 0, 1


def reduce_acc_width() -> int:
    return (FIELD_MAX * (1 << 15)).bit_length() + 1


class VecUnit(wiring.Component):
    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        self.acc_width = reduce_acc_width()
        members = unit_members(cfg.axi_data_bits)
        members.update({"bmem_addr": Out(range(cfg.bmem_words)), "bmem_data": In(BIAS_WORD_BITS)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, desc, aw = self.cfg, self.desc, self.acc_width
        lanes = cfg.axi_data_bits // 16               # 8 elements per beat
        chunk_words = REDUCE_CHUNK // lanes           # 32

        is_fwd = desc.opcode == int(Opcode.ACT_FWD)
        is_bwd = desc.opcode == int(Opcode.ACT_BWD)
        is_red = desc.opcode == int(Opcode.REDUCE)

        m.submodules.ostage = ost = OutputStage(lanes, aw)
        m.submodules.ofifo = ofifo = fifo.SyncFIFOBuffered(width=cfg.axi_data_bits, depth=8)
        m.submodules.afifo = afifo = fifo.SyncFIFOBuffered(width=cfg.axi_data_bits, depth=2 * BWD_CHUNK)
        m.submodules.racc = racc = AsyncRAM(lanes * aw, chunk_words)

        row_beats = Signal(13)                        # c / 8
        total = Signal(32)                            # a c / 8 beats (ACT)
        with m.If(self.start):
            m.d.sync += [row_beats.eq(desc.c >> 3), total.eq((desc.a * desc.c) >> 3), self.busy.eq(1)]
        m.d.comb += ost.clear.eq(self.start)

        # Credits: beats in flight between acceptance and the output FIFO (S1 + output stage).
        depth_in_flight = 1 + OutputStage.latency
        pipe = Signal(depth_in_flight)
        take = Signal()                               # a beat enters the pipeline this cycle
        m.d.sync += pipe.eq(Cat(take, pipe[:-1]))
        pending = Signal(range(depth_in_flight + 1))
        m.d.comb += pending.eq(sum(pipe[i] for i in range(depth_in_flight)))
        credit = ofifo.level + pending < ofifo.depth - 1

        # ---- read commands ----------------------------------------------------------------------------
        rd_ofs = Signal(32)                           # ACT_BWD: beats issued so far
        red_c0 = Signal(16)                           # REDUCE: first column of the chunk
        red_cw = Signal(range(chunk_words + 1))       # REDUCE: beats per row in the chunk
        red_go = Signal()                             # REDUCE: start the next chunk's command
        cmd = self.rd.cmd
        left = total - rd_ofs
        bwd_len = Mux(left < BWD_CHUNK, left, BWD_CHUNK)
        with m.FSM(name="issue"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [rd_ofs.eq(0), red_c0.eq(0)]
                    m.next = "START"
            with m.State("START"):
                with m.If(is_fwd):
                    m.next = "FWD"
                with m.Elif(is_bwd):
                    m.next = "BWD_A"
                with m.Else():
                    m.next = "RED"
            with m.State("FWD"):
                m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(desc.src_a), cmd.payload.beats.eq(row_beats),
                             cmd.payload.rows.eq(desc.a), cmd.payload.stride.eq(desc.c << 1),
                             cmd.payload.tag.eq(TAG_A)]
                with m.If(cmd.ready):
                    m.next = "IDLE"
            with m.State("BWD_A"):
                m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(desc.src_a + (rd_ofs << 4)),
                             cmd.payload.beats.eq(bwd_len), cmd.payload.rows.eq(1), cmd.payload.tag.eq(TAG_A)]
                with m.If(cmd.ready):
                    m.next = "BWD_B"
            with m.State("BWD_B"):
                m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(desc.src_b + (rd_ofs << 4)),
                             cmd.payload.beats.eq(bwd_len), cmd.payload.rows.eq(1), cmd.payload.tag.eq(TAG_B)]
                with m.If(cmd.ready):
                    m.d.sync += rd_ofs.eq(rd_ofs + bwd_len)
                    with m.If(left == bwd_len):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BWD_A"
            with m.State("RED"):
                cols_left = desc.c - red_c0
                width = Mux(cols_left < REDUCE_CHUNK, cols_left, REDUCE_CHUNK)
                with m.If(red_go):
                    m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(desc.src_a + (red_c0 << 1)),
                                 cmd.payload.beats.eq(width >> 3), cmd.payload.rows.eq(desc.a),
                                 cmd.payload.stride.eq(desc.c << 1), cmd.payload.tag.eq(TAG_A)]
                    with m.If(cmd.ready):
                        m.d.sync += [red_cw.eq(width >> 3), red_c0.eq(red_c0 + width)]
                        with m.If(cols_left == width):
                            m.next = "IDLE"

        # ---- ACT path: beat(s) -> S0 bias add -> S1 (z, g) -> mask / output stage -------------------------
        beat = self.rd.data
        col = Signal(13)                               # beat index within the row (bias word / half)
        m.d.comb += self.bmem_addr.eq(desc.bofs + (col >> 1))
        bias_bytes = Mux(col[0], self.bmem_data[64:], self.bmem_data[:64])
        y_word = Mux(is_bwd, afifo.r_data, beat.payload.data)
        s1_valid = Signal()
        s1_z = [Signal(signed(16), name=f"z{i}") for i in range(lanes)]
        s1_g = [Signal(signed(16), name=f"g{i}") for i in range(lanes)]
        act_take = Signal()
        m.d.sync += s1_valid.eq(act_take)
        for i in range(lanes):
            bias = bias_bytes[8 * i:8 * (i + 1)].as_signed()
            shifted = round_shift_logic(m, bias, desc.bias_shift, name=f"bias{i}")
            y = y_word[16 * i:16 * (i + 1)].as_signed()
            z = Signal(signed(len(shifted) + 1), name=f"zwide{i}")
            m.d.comb += z.eq(y + shifted)
            with m.If(act_take):
                m.d.sync += [s1_z[i].eq(Mux(z > 32767, 32767, Mux(z < -32768, -32768, z))),
                             s1_g[i].eq(beat.payload.data[16 * i:16 * (i + 1)])]

        with m.If(is_fwd & ~is_red):
            m.d.comb += [act_take.eq(beat.valid & credit & self.busy), beat.ready.eq(credit & self.busy)]
        with m.Elif(is_bwd):
            with m.If(beat.payload.tag == TAG_A):
                m.d.comb += [beat.ready.eq(afifo.w_rdy), afifo.w_en.eq(beat.valid), afifo.w_data.eq(beat.payload.data)]
            with m.Else():
                m.d.comb += [act_take.eq(beat.valid & credit & afifo.r_rdy),
                             beat.ready.eq(credit & afifo.r_rdy), afifo.r_en.eq(act_take)]
        with m.If(act_take):
            m.d.sync += col.eq(Mux(col == row_beats - 1, 0, col + 1))
        with m.If(self.start):
            m.d.sync += col.eq(0)

        # ---- REDUCE path: accumulate rows into racc, then drain ------------------------------------------
        red_beat = Signal(range(chunk_words))
        red_row = Signal(16)
        red_take = Signal()
        new_words = []
        for i in range(lanes):
            old = racc.r0_data[aw * i:aw * (i + 1)].as_signed()
            v = Signal(signed(aw), name=f"racc_new{i}")
            m.d.comb += v.eq(Mux(red_row == 0, 0, old) + beat.payload.data[16 * i:16 * (i + 1)].as_signed())
            new_words.append(v)
        m.d.comb += [racc.r0_addr.eq(red_beat), racc.w_addr.eq(red_beat), racc.w_data.eq(Cat(*new_words)),
                     racc.w_en.eq(red_take)]
        red_drain = Signal()
        red_word = Signal(range(chunk_words))
        red_dst = Signal(32)
        m.d.comb += racc.r1_addr.eq(red_word)
        with m.FSM(name="reduce"):
            with m.State("IDLE"):
                with m.If(self.start & is_red):
                    m.d.sync += red_dst.eq(desc.dst)
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += red_go.eq(1)
                with m.If(cmd.valid & cmd.ready):
                    m.d.sync += [red_beat.eq(0), red_row.eq(0)]
                    m.next = "ACC"
            with m.State("ACC"):
                m.d.comb += [beat.ready.eq(1), red_take.eq(beat.valid)]
                with m.If(beat.valid):
                    with m.If(red_beat == red_cw - 1):
                        m.d.sync += [red_beat.eq(0), red_row.eq(red_row + 1)]
                    with m.Else():
                        m.d.sync += red_beat.eq(red_beat + 1)
                    with m.If(beat.payload.last):
                        m.next = "WCMD"
            with m.State("WCMD"):
                wcmd = self.wr.cmd
                m.d.comb += [wcmd.valid.eq(1), wcmd.payload.addr.eq(red_dst), wcmd.payload.beats.eq(red_cw),
                             wcmd.payload.rows.eq(1)]
                with m.If(wcmd.ready):
                    m.d.sync += [red_word.eq(0), red_dst.eq(red_dst + (red_cw << 4))]
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(credit):
                    m.d.comb += red_drain.eq(1)
                    m.d.sync += red_word.eq(red_word + 1)
                    with m.If(red_word == red_cw - 1):
                        with m.If(red_c0 == desc.c):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "CMD"

        # ---- output stage input ---------------------------------------------------------------------------
        m.d.comb += take.eq(act_take | red_drain)
        mask_ok = []
        for i in range(lanes):
            r = round_shift_logic(m, s1_z[i], desc.shift, name=f"mask{i}")
            ok = Signal(name=f"keep{i}")
            m.d.comb += ok.eq((desc.out_fmt != FMT_U8) | ((s1_z[i] >= 0) & (r <= 255)))
            mask_ok.append(ok)
        with m.If(is_red):
            m.d.comb += [ost.i_valid.eq(red_drain), ost.shift.eq(desc.shift), ost.fmt.eq(desc.out_fmt)]
            for i in range(lanes):
                m.d.comb += ost.i_acc[i].eq(racc.r1_data[aw * i:aw * (i + 1)].as_signed())
        with m.Elif(is_fwd):
            m.d.comb += [ost.i_valid.eq(s1_valid), ost.shift.eq(desc.shift), ost.fmt.eq(desc.out_fmt)]
            for i in range(lanes):
                m.d.comb += ost.i_acc[i].eq(s1_z[i])
        with m.Else():
            m.d.comb += [ost.i_valid.eq(s1_valid), ost.shift.eq(0), ost.fmt.eq(FMT_S16)]
            for i in range(lanes):
                m.d.comb += ost.i_acc[i].eq(Mux(mask_ok[i], s1_g[i], 0))
        m.d.comb += ost.i_mask.eq((1 << lanes) - 1)
        m.d.comb += [ofifo.w_en.eq(ost.o_valid),
                     ofifo.w_data.eq(Cat(*[ost.o_data[i].as_unsigned() for i in range(lanes)])),
                     self.wr.data.valid.eq(ofifo.r_rdy), self.wr.data.payload.data.eq(ofifo.r_data),
                     self.wr.data.payload.strb.eq((1 << (cfg.axi_data_bits // 8)) - 1),
                     ofifo.r_en.eq(self.wr.data.ready)]
        m.d.comb += self.array_busy.eq(take)

        # ---- ACT write command, completion ----------------------------------------------------------------
        written = Signal(32)
        with m.If(self.start):
            m.d.sync += written.eq(0)
        act_cmd_sent = Signal()
        with m.If(self.start):
            m.d.sync += act_cmd_sent.eq(0)
        with m.If(self.busy & ~is_red & ~act_cmd_sent & ~self.start):
            wcmd = self.wr.cmd
            m.d.comb += [wcmd.valid.eq(1), wcmd.payload.addr.eq(desc.dst), wcmd.payload.beats.eq(row_beats),
                         wcmd.payload.rows.eq(desc.a), wcmd.payload.stride.eq(desc.c << 1)]
            with m.If(wcmd.ready):
                m.d.sync += act_cmd_sent.eq(1)
        with m.If(self.wr.data.valid & self.wr.data.ready):
            m.d.sync += written.eq(written + 1)
        outputs = Mux(is_red, desc.c >> 3, total)
        m.d.comb += [self.saturated.eq(ost.saturated), self.sum_abs.eq(ost.sum_abs)]
        with m.If(self.busy & ~self.start & (written == outputs) & self.wr.idle & (pending == 0)
                  & (is_red | act_cmd_sent)):
            m.d.sync += self.busy.eq(0)
        return m
