"""Analytic cycle model of every instruction (thesis sections 3.5.2-3.5.3; the microarchitecture of hw/).

Each instruction runs alone (the controller dispatches the next descriptor when the unit of the previous one
reports idle), so a program's cycles are the sum of its instructions' cycles plus a fixed cost per run. An
instruction costs

    issue + unit time

where ``issue`` covers decoding and starting the unit and writing the 32-byte write-back (the controller
reads each next descriptor while the unit runs, and does not wait for the write-back's response, so neither
the fetch nor the write latency is in it); a run adds ``run_overhead + rd_latency``: the first descriptor's
fetch and the wait for the last write-back's response. The unit time depends on the unit:

* **PE1 / PE2** (ping-pong buffered, thesis Algorithms 3 and 4): the operand is split into blocks (PE1: 8 rows
  ``A[a0:a0+8, :, :]``; PE2: one ``A[i, :, j:j+16]``). Each block is loaded (a read command, issued as soon
  as its buffer half is free, then the AXI read latency, which hides behind the previous block's beats, and
  one cycle per 128-bit beat), computed (PE1: ``d * b * c / 16`` cycles for up to 8 rows; PE2:
  ``b * ceil(d / 8)`` cycles) and stored (one cycle per beat, plus the command). Load, compute and store of
  consecutive blocks overlap through two buffer halves on each side; :func:`pipeline_cycles` solves the
  resulting recurrence exactly (it extrapolates once the schedule is periodic).
* **PE3** (no buffer, 16 lanes): for each 16-wide chunk of ``c`` it streams the ``a`` rows of ``B[a, :d]``
  and ``A[a, chunk]`` (``2 + ceil(d/8)`` beats each, into two row slots) and accumulates ``d x 16`` sums
  (``d`` cycles per row), then drains the ``d x 16`` result (``2 d`` beats) from one accumulator bank while
  the next chunk computes into the other. The rows stream across chunk boundaries, so a chunk takes the
  slowest of its reads, its sweep and the previous drain; :meth:`CycleModel._pe3_plain` follows the row
  slots and banks event by event (exact on the RTL). With ``ACC`` the old result (``2 d`` beats) is read
  behind each chunk's rows on the one read channel into an 8-beat FIFO that only the drain empties, so the
  next chunk's rows wait for that read: when ``2 d`` exceeds the FIFO the read stalls until the drain
  starts and the chunks serialize (compute, drain, next row), otherwise it only costs ``2 d`` read-channel
  cycles behind the last row (:meth:`CycleModel._pe3_acc`).
* **Vector unit** (ACT_FWD, ACT_BWD, REDUCE): streams its operands at one beat per cycle.
* **LOAD_W / LOAD_B**: stream ``a`` 64-bit (128-bit) words.

The parameters (:class:`CycleParams`) are latencies and per-block overheads of the RTL; their values come
from the microarchitecture in hw/ and are calibrated against the RTL cycle counters (tests/perf,
docs/results/performance.md records the fit and the residuals). :class:`CycleModel` is callable as the
golden executor's ``cycle_model(desc) -> (cycles, stalls)``, where ``stalls`` are the cycles the unit's array
did not compute (the device's AXI_STALL + idle cycles).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace

from .contract import (DEFAULT_CONFIG, WMEM_LANES, Flag, HardwareConfig, Opcode, instruction_macs,
                       pe3_block_count)

__all__ = ["CycleParams", "CycleModel", "InstructionCost", "pipeline_cycles", "ProgramCost", "DEFAULT_PARAMS",
           "mac_lower_bound", "unit_lower_bound", "roofline_cycles"]


@dataclass(frozen=True)
class CycleParams:
    """Latencies and overheads (cycles of the accelerator clock) of one build of the RTL."""

    issue: int = 7              # controller: decode, check + read-ahead command, start, write-back (posted)
    run_overhead: int = 9       # per run, beyond rd_latency: first descriptor fetch, last write-back's response
    rd_latency: int = 0         # AR handshake -> first R beat (the DRAM's latency: AxiRam in simulation)
    wr_latency: int = 10         # last W beat -> B response (beyond what the unit's done condition overlaps)
    pe1_load_gap: int = 5       # block's read command -> its first beat (AXI master), beyond rd_latency
    pe1_load_cpb: float = 1.0   # cycles per loaded beat
    pe1_store_gap: int = 0      # store FSM cycles around each block's write command
    pe1_store_cpw: float = 1.0  # cycles per output-buffer word (8 elements of one row) read into the packer
    pe1_block_gap: int = 1      # compute FSM cycles between blocks
    pe1_pipe: int = 5          # compute end -> first store (memory read, products, row sums, output stage)
    pe1_acquire: int = 2       # compute releases an input half -> the next block's first beat can land in it
    pe2_load_gap: int = 3
    pe2_load_cpb: float = 1.0   # cycles per loaded beat (runs of two beats, one burst each)
    pe2_store_gap: int = 2
    pe2_store_cpb: float = 1.0  # cycles per stored beat (accumulator bank -> output stage -> FIFO -> AXI)
    pe2_block_gap: int = 0      # compute cycles between blocks when the next bank is free (taken in RUN)
    pe2_pipe: int = 1
    pe2_acquire: int = 2       # as pe1_acquire
    pe2_stream_lag: int = 2     # a row's last beat -> its first compute cycle, beyond the whole-block timing
    pe3_row_gap: int = 0        # extra cycles per streamed row of a chunk
    pe3_chunk_gap: int = 0      # compute cycles between chunks when the next bank is free (acquired in RUN)
    pe3_bank_wait: int = 1      # a bank released by the drain -> acquired by the compute FSM's IDLE
    pe3_pipe: int = 4           # last sweep cycle -> first drain read (s1, s2, bank commit, drain IDLE + CMD)
    pe3_drain_gap: int = 1      # drain FSM cycles between chunks (IDLE, which issues the write command)
    pe3_drain_tail: int = 4     # last drain read -> last W beat (accumulator RAM read, output stage, FIFO)
    pe3_acc_cpb: float = 1.0    # ACC: cycles per drained beat (the old result is read back alongside)
    pe3_old_fifo: int = 8       # ACC: beats of the old result buffered ahead of the drain (hw/pe3.py oldfifo)
    pe3_acc_restart: int = 4    # ACC: chunk compute end -> the stalled old read moves again (commit, drain FSM)
    pe3_acc_pipe: int = 6       # ACC: last drained beat -> last write issued (RAM read, output stage, FIFO, W)
    pe3_store_cpb: float = 1.0  # cycles per drained beat
    pe3_ahead: int = 1          # the controller's read-ahead beats, just ahead of PE3's first row on the channel
    vec_pipe: int = 3
    vec_reduce_row_gap: int = 0   # REDUCE: cycles per row of a column chunk beyond its beats
    load_pipe: int = 6           # command -> last write (the read-ahead beats ahead of the first included)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_PARAMS = CycleParams()


@dataclass(frozen=True)
class InstructionCost:
    """Cycles of one instruction: ``total`` = ``issue`` + ``exec``; ``exec`` is what the device writes back
    (cycles its unit ran), ``busy`` the cycles the array computed."""
    total: int
    busy: int
    unit: str
    load: int = 0        # beats the unit read
    store: int = 0       # beats the unit wrote
    issue: int = 0

    @property
    def exec(self) -> int:
        return self.total - self.issue

    @property
    def stalls(self) -> int:
        return self.exec - self.busy


@dataclass
class ProgramCost:
    """Sum over a program: cycles, array-busy cycles and MACs, per unit and in total."""
    cycles: int = 0
    busy: int = 0
    macs: int = 0
    instructions: int = 0
    by_unit: dict = field(default_factory=dict)      # unit -> [cycles, macs, instructions]

    def add(self, cost: InstructionCost, macs: int) -> None:
        self.cycles += cost.total
        self.busy += cost.busy
        self.macs += macs
        self.instructions += 1
        entry = self.by_unit.setdefault(cost.unit, [0, 0, 0])
        entry[0] += cost.total
        entry[1] += macs
        entry[2] += 1

    def __iadd__(self, other: "ProgramCost") -> "ProgramCost":
        self.cycles += other.cycles
        self.busy += other.busy
        self.macs += other.macs
        self.instructions += other.instructions
        for unit, (c, m, n) in other.by_unit.items():
            entry = self.by_unit.setdefault(unit, [0, 0, 0])
            entry[0] += c
            entry[1] += m
            entry[2] += n
        return self


def pipeline_cycles(n: int, load: int, compute: int, store: int, pipe: int = 0, gap: int = 0,
                    last: tuple | None = None, lead: int = 0, acquire: int = 0,
                    stream: tuple[int, int, int] | None = None) -> int:
    """Cycles from the first read command until the last store of ``n`` blocks through a 3-stage double-buffered
    pipeline.

    Block ``i``'s read command goes out one cycle after block ``i-1``'s, once block ``i-2``'s last beat is in
    (the loaders run two blocks ahead, hw/block_read_ahead.py); its ``load`` beats arrive from ``lead`` cycles
    after the command, behind those of block ``i-1`` (the read channel is in order), and once its half is
    acquired, ``acquire`` cycles after the compute of block ``i-2`` released it. So the latency hides behind
    the beats of the block before and behind the compute that frees the half. Block ``i`` computes once it is
    loaded, block ``i-1`` computed (plus ``gap``) and the store of block ``i-2`` drained its output half, and
    stores ``pipe`` cycles after its compute ends, once the store of block ``i-1`` finished. ``last`` gives the
    ``(load, compute, store)`` of a shorter final block. Exact; once three consecutive full blocks advance by
    the same period the rest is extrapolated.

    ``stream = (row_beats, row_cycles, lag)`` models a compute that streams its block (PE2): row ``r`` is
    computed, in ``row_cycles`` cycles, from ``lag`` cycles after its ``row_beats`` beats are in, so a block's
    compute starts behind its first row and ends no earlier than ``row_cycles + lag`` after its last beat.
    """
    if n <= 0:
        return 0
    last = (load, compute, store) if last is None else last
    neg = -10**18
    ce = [neg, neg]          # compute ends of blocks i-2, i-1
    se = [neg, neg]          # store ends of blocks i-2, i-1
    le = [neg, neg]          # last beats of blocks i-2, i-1
    cmd_prev = neg
    periods = []
    i = 0
    full = n - 1 if last != (load, compute, store) else n
    while i < n:
        L, C, S = (load, compute, store) if i < full else last
        cmd = max(cmd_prev + 1, le[0] + 1, 0)
        le_i = max(cmd + lead, le[1], ce[0] + acquire) + L
        if stream is None:
            cs = max(le_i, ce[1] + gap, se[0])
            ce_i = cs + C
        else:
            # le_i - 1: the cycle after the block's last beat (the whole-block convention: computed from le_i).
            row_beats, row_cycles, lag = stream
            cs = max(le_i - 1 - L + row_beats + lag, ce[1] + gap, se[0])
            ce_i = max(cs + C, le_i - 1 + row_cycles + lag)
        ss = max(ce_i + pipe, se[1])
        se_i = ss + S
        if i >= 1 and i < full:
            periods.append(se_i - se[1])
            if len(periods) >= 4 and periods[-1] == periods[-2] == periods[-3] == periods[-4] and \
                    ce_i - ce[1] == periods[-1] and le_i - le[1] == periods[-1] and cmd - cmd_prev == periods[-1]:
                # Periodic: every time of blocks i+1 .. full-1 is this block's plus a multiple of the period.
                skip = full - 1 - i
                if skip > 0:
                    p = periods[-1] * skip
                    ce = [ce[1] + p, ce_i + p]
                    se = [se[1] + p, se_i + p]
                    le = [le[1] + p, le_i + p]
                    cmd_prev = cmd + p
                    i = full
                    continue
        ce = [ce[1], ce_i]
        se = [se[1], se_i]
        le = [le[1], le_i]
        cmd_prev = cmd
        i += 1
    return se[1]


def _beats(elements: int, cfg: HardwareConfig) -> int:
    return -(-elements // (cfg.axi_data_bits // 16))


class CycleModel:
    """Cycles of each instruction on a device built from ``cfg`` with timing ``params``.

    ``model(desc)`` returns ``(cycles, stalls)`` (the golden executor's cycle_model interface); ``cost(desc)``
    the full :class:`InstructionCost`; ``program(ops)`` a :class:`ProgramCost`. Instructions may be
    :class:`~ultratrain.sim.contract.Descriptor` or :class:`~ultratrain.sim.compiler.Op` (same fields).
    """

    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG, params: CycleParams = DEFAULT_PARAMS,
                 clock_hz: float = 100e6):
        if clock_hz <= 0:
            raise ValueError(f"clock_hz must be positive, not {clock_hz}")
        self.cfg, self.params, self.clock_hz = cfg, params, clock_hz
        self._cached = functools.lru_cache(maxsize=65536)(self._cost)

    def with_params(self, **changes) -> "CycleModel":
        return CycleModel(self.cfg, replace(self.params, **changes), self.clock_hz)

    def __call__(self, desc) -> tuple[int, int]:
        """``(cycles, stalls)`` as the device writes them back (the unit's run, without fetch and write-back)."""
        cost = self.cost(desc)
        return cost.exec, cost.stalls

    def cost(self, desc) -> InstructionCost:
        flags = int(getattr(desc, "flags", 0))
        return self._cached(int(desc.opcode), desc.a, desc.b, desc.c, desc.d, flags)

    def seconds(self, cycles: int) -> float:
        return cycles / self.clock_hz

    def program(self, ops, end: bool = True) -> ProgramCost:
        """Cycles of a program as the CYCLES register counts them: every instruction's issue and run, plus the
        END's issue (added when ``end`` and the list does not end with END, like the compiler's Op lists) and
        the run's own overhead (first fetch, last write response)."""
        total = ProgramCost()
        total.cycles += self.params.run_overhead + self.params.rd_latency
        last = None
        for op in ops:
            total.add(self.cost(op), _macs(op))
            last = op
        if end and (last is None or int(last.opcode) != Opcode.END):
            total.add(self._cached(int(Opcode.END), 0, 0, 0, 0, 0), 0)
        return total

    # -- per unit ------------------------------------------------------------------------------------------

    def _cost(self, opcode: int, a: int, b: int, c: int, d: int, flags: int) -> InstructionCost:
        op = Opcode(opcode)
        p, cfg = self.params, self.cfg
        if op == Opcode.PE1:
            return self._pe1(a, b, c, d)
        if op == Opcode.PE2:
            return self._pe2(a, b, c, d)
        if op == Opcode.PE3:
            # Row and column groups run back to back like further chunks (hw/pe3.py): H G groups of c / 16
            # chunks each.
            return self._pe3(a, c * pe3_block_count(b), d, bool(flags & Flag.ACC))
        if op in (Opcode.ACT_FWD, Opcode.ACT_BWD):
            reads = _beats(a * c, cfg) * (2 if op == Opcode.ACT_BWD else 1)
            writes = _beats(a * c, cfg)
            unit = max(reads, writes) + p.rd_latency + p.vec_pipe + p.wr_latency
            return InstructionCost(p.issue + unit, _beats(a * c, cfg), "VEC", reads, writes, p.issue)
        if op == Opcode.REDUCE:
            # Column chunks of up to 256 (one accumulator word per beat); each streams all a rows.
            chunks = [min(256, c - j) for j in range(0, c, 256)]
            reads = sum(a * _beats(w, cfg) for w in chunks)
            unit = sum(a * (_beats(w, cfg) + p.vec_reduce_row_gap) + _beats(w, cfg) + p.rd_latency + p.vec_pipe
                       for w in chunks) + p.wr_latency
            return InstructionCost(p.issue + unit, a * c // cfg.vec_lanes, "VEC", reads, _beats(c, cfg), p.issue)
        if op in (Opcode.LOAD_W, Opcode.LOAD_B):
            # One beat per cycle (LOAD_W: two 64-bit weight words per beat, both written at once; LOAD_B one
            # bias word).
            word_bits = 4 * WMEM_LANES if op == Opcode.LOAD_W else 8 * WMEM_LANES
            beats = -(-a * word_bits // cfg.axi_data_bits)
            unit = beats + p.rd_latency + p.load_pipe
            return InstructionCost(p.issue + unit, beats, "LOAD", beats, 0, p.issue)
        return InstructionCost(p.issue, 0, "CTRL", 0, 0, p.issue)

    def _pe1(self, a: int, b: int, c: int, d: int) -> InstructionCost:
        p, cfg = self.params, self.cfg
        rows = cfg.pe1_rows
        n = -(-a // rows)
        tail_rows = a - (n - 1) * rows

        words_per_row = _beats(d, cfg)

        def block(r):
            load = round(_beats(r * b * c, cfg) * p.pe1_load_cpb)
            compute = d * b * c // cfg.pe1_cols
            store = round(p.pe1_store_gap + max(r * words_per_row * p.pe1_store_cpw, _beats(r * d, cfg)))
            return load, compute, store

        full, tail = block(rows), block(tail_rows)
        unit = pipeline_cycles(n, *full, pipe=p.pe1_pipe, gap=p.pe1_block_gap, last=tail,
                               lead=p.pe1_load_gap + p.rd_latency, acquire=p.pe1_acquire) + p.wr_latency
        busy = n * full[1]
        return InstructionCost(p.issue + unit, busy, "PE1", n * full[0], n * full[2], p.issue)

    def _pe2(self, a: int, b: int, c: int, d: int) -> InstructionCost:
        p, cfg = self.params, self.cfg
        n = a * (c // cfg.pe2_cols)
        load = round(_beats(b * cfg.pe2_cols, cfg) * p.pe2_load_cpb)
        row_cycles = -(-d // cfg.pe2_rows)
        compute = b * row_cycles
        store = round(p.pe2_store_gap + _beats(d * cfg.pe2_cols, cfg) * p.pe2_store_cpb)
        # The compute streams its block: each buffer row (two beats) is computed as soon as it is in.
        unit = pipeline_cycles(n, load, compute, store, pipe=p.pe2_pipe, gap=p.pe2_block_gap,
                               lead=p.pe2_load_gap + p.rd_latency, acquire=p.pe2_acquire,
                               stream=(_beats(cfg.pe2_cols, cfg), row_cycles, p.pe2_stream_lag)) + p.wr_latency
        return InstructionCost(p.issue + unit, n * compute, "PE2", n * load, n * store, p.issue)

    def _pe3(self, a: int, c: int, d: int, acc: bool) -> InstructionCost:
        p, cfg = self.params, self.cfg
        lanes = cfg.pe3_lanes
        chunks = c // lanes
        beats_out = _beats(d * lanes, cfg)
        if acc:
            unit = p.rd_latency + p.pe3_ahead + self._pe3_acc(a, chunks, d) + p.wr_latency
        else:
            unit = p.rd_latency + p.pe3_ahead + self._pe3_plain(a, chunks, d) + p.wr_latency
        busy = chunks * a * d
        return InstructionCost(p.issue + unit, busy, "PE3", chunks * a * (_beats(d, cfg) + 2),
                               chunks * beats_out, p.issue)

    def _pe3_plain(self, a: int, chunks: int, d: int) -> int:
        """PE3 without ACC, from the first read beat to the last write beat (hw/pe3.py, event by event).

        Rows (``A`` then ``B``, ``R = 2 + ceil(d/8)`` beats) arrive one beat per cycle, across chunk
        boundaries, into two row slots: a row's first beat waits for the slot of the row two back to be
        released (at its last sweep cycle). A row is swept ``d`` cycles from the cycle after its last beat,
        after the previous row; a chunk's first row follows the previous chunk's last sweep cycle directly when
        its accumulator bank is free, and otherwise waits for the drain of the chunk two back to release the
        bank (then one IDLE cycle acquires it). A chunk's drain reads its ``2 d``
        beats ``pe3_pipe`` cycles after its last sweep cycle and ``pe3_drain_gap`` cycles after the previous
        drain. The recurrence is max-plus linear, so once a row (inside a chunk) or one or two chunks advance
        every time by the same amount the rest is extrapolated exactly.
        """
        p, cfg = self.params, self.cfg
        R = _beats(d, cfg) + _beats(cfg.pe3_lanes, cfg) + p.pe3_row_gap
        drain = round(2 * d * p.pe3_store_cpb)
        neg = -(1 << 60)
        # State: last beat of the previous row, releases of the rows two back and one back, last sweep cycle
        # of the previous chunk, drain ends of the chunks two back and one back.
        L, rel0, rel1, F, E0, E1 = neg, neg, neg, neg, neg, neg
        history = []
        j = 0
        while j < chunks:
            i = 0
            while i < a:
                first = max(L + 1, rel0 + 1, 0)
                L_i = first + R - 1
                if i == 0:
                    start = max(L_i + 1, F + 1 + p.pe3_chunk_gap, E0 + 1 + p.pe3_bank_wait)
                else:
                    start = max(L_i + 1, rel1 + 1)
                step = (L_i - L, start + d - 1 - rel1, rel1 - rel0)
                L, rel0, rel1 = L_i, rel1, start + d - 1
                i += 1
                if i >= 3 and step[0] == step[1] == step[2] and i < a:
                    # Periodic inside the chunk: rows i .. a-1 repeat row i-1 shifted by the period.
                    shift = step[0] * (a - i)
                    L, rel0, rel1 = L + shift, rel0 + shift, rel1 + shift
                    i = a
            F = rel1
            D = max(F + p.pe3_pipe, E1 + 1 + p.pe3_drain_gap)
            E0, E1 = E1, D + drain - 1
            j += 1
            state = (L, rel0, rel1, F, E0, E1)
            history.append(state)
            for lag in (1, 2):
                if j >= 3 + lag and j + lag <= chunks:
                    diff = {x - y for x, y in zip(state, history[-1 - lag])}
                    if len(diff) == 1:
                        # Periodic over ``lag`` chunks: jump whole periods, simulate what is left.
                        periods = (chunks - j) // lag
                        shift = diff.pop() * periods
                        L, rel0, rel1, F, E0, E1 = (x + shift for x in state)
                        j += periods * lag
                        history = [(L, rel0, rel1, F, E0, E1)]
                        break
        return E1 + p.pe3_drain_tail

    def _pe3_acc(self, a: int, chunks: int, d: int) -> int:
        """PE3 with Flag.ACC, from the first read to the last write issued (hw/pe3.py; calibrated in tests/perf).

        One read channel carries, per chunk, each row's ``A`` (2 beats) and ``B`` (``ceil(d/8)`` beats) and then
        the chunk's old result (``2 d`` beats, into ``oldfifo``). A row loads once a row slot is free (two
        slots: row ``i`` waits for row ``i-2`` to be swept) and is swept in ``d`` cycles. The next chunk's
        first row comes after the old result on the read channel: if the old result fits in ``oldfifo`` it
        streams right behind the last row; otherwise the read stalls until the drain of this chunk (which
        starts after the compute and takes the old beats one per cycle) has made room, so the chunk's compute,
        the rest of the old read and the next row's load follow one another.
        """
        p, cfg = self.params, self.cfg
        row_load = _beats(d, cfg) + _beats(cfg.pe3_lanes, cfg) + p.pe3_row_gap
        old = _beats(d * cfg.pe3_lanes, cfg)
        # First chunk: its first row loads, then rows are swept as fast as the slower of load and sweep.
        first_end = max(row_load + a * d, a * row_load + d)
        # Chunk start to chunk start: the read channel (last row loaded, the old result, the next first row) ...
        last_loaded = 0 if a == 1 else max((a - 1) * row_load, (a - 2) * d + row_load)
        period = last_loaded + old + row_load
        if old > p.pe3_old_fifo:
            # ... or, when the old read stalls, the sweep of all rows, the drain's restart and the old beats
            # beyond the FIFO, then the next first row.
            period = max(period, a * d + p.pe3_acc_restart + round((old - p.pe3_old_fifo) * p.pe3_acc_cpb)
                         + row_load)
        return first_end + (chunks - 1) * period + round(old * p.pe3_acc_cpb) + p.pe3_acc_pipe


def roofline_cycles(opcode, a: int, b: int, c: int, d: int, flags: int = 0, cfg: HardwareConfig = DEFAULT_CONFIG,
                    ) -> float:
    """Cycles an instruction needs at least: its array time (MACs / array width: 128 for PE1/PE2, 16 for PE3)
    or the beats it must move on the AXI read and write channels (one per cycle each) for the operand reuse
    of its dataflow, the larger. The ``pe_roofline_fraction`` of ``make bench`` divides this by measured
    cycles."""
    op = Opcode(int(opcode))
    beat = cfg.axi_data_bits // 16
    macs = instruction_macs(op, a, b, c, d)
    if op == Opcode.PE1:
        return max(macs / cfg.peak_macs_per_cycle, a * b * c / beat, a * d / beat)
    if op == Opcode.PE2:
        return max(macs / cfg.peak_macs_per_cycle, a * b * c / beat, a * d * c / beat)
    if op == Opcode.PE3:
        groups = pe3_block_count(b)                      # H G blocks of d x c (contract 1.2, 1.3)
        reads = groups * a * (c // cfg.pe3_lanes) * (2 + -(-d // beat))
        if int(flags) & Flag.ACC:
            reads += groups * d * c / beat               # the old result, read back to be added
        return max(macs / cfg.pe3_lanes, reads, groups * d * c / beat)
    if op in (Opcode.ACT_FWD, Opcode.REDUCE):
        return a * c / beat
    if op == Opcode.ACT_BWD:
        return 2 * a * c / beat
    if op == Opcode.LOAD_W:
        return a * 4 * WMEM_LANES / cfg.axi_data_bits
    if op == Opcode.LOAD_B:
        return a * 8 * WMEM_LANES / cfg.axi_data_bits
    return 0.0


def _macs(op) -> int:
    return instruction_macs(op.opcode, op.a, op.b, op.c, op.d)


def mac_lower_bound(macs: int, cfg: HardwareConfig = DEFAULT_CONFIG) -> float:
    """Cycles at the 128 MAC/cycle peak of PE1 (= PE2): the roofline of a program with ``macs`` MACs."""
    return macs / cfg.peak_macs_per_cycle


def unit_lower_bound(ops, cfg: HardwareConfig = DEFAULT_CONFIG) -> float:
    """Cycles if every PE ran at its own peak: PE1/PE2 MACs / 128 + PE3 MACs / 16 (PE3 has 16 multipliers)."""
    pe12 = sum(_macs(op) for op in ops if int(op.opcode) in (Opcode.PE1, Opcode.PE2))
    pe3 = sum(_macs(op) for op in ops if int(op.opcode) == Opcode.PE3)
    return pe12 / cfg.peak_macs_per_cycle + pe3 / cfg.pe3_lanes
