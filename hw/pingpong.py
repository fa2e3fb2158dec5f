"""Ping-pong buffers: two halves of one RAM, a producer filling one while a consumer drains the other.

Thesis section 3.5.2: "Making use of the ping-pong buffer, the second step, multiply-and-accumulate, can be
executed in parallel with other steps." PE1 and PE2 use one for their input blocks (the loader fills block
i+1 while the array computes block i); PE1 uses one for its output blocks (the array fills block i+1 while
the store engine writes block i to DRAM), and PE2/PE3 use the bare :class:`PingPongControl` for their
double-banked accumulator memories.

Hazard-free swap. Each half is EMPTY, FILLING or FULL:

* the producer *acquires* the next half (``w_acquire``; allowed when ``w_ready``, i.e. that half is EMPTY),
  writes it (writes land only in a FILLING half) and *commits* it (``w_commit`` with ``w_commit_sel``: FULL).
  Acquire and commit are separate strobes because a pipelined producer (PE1's array) starts the next block
  before the last results of the previous one reach the buffer;
* the consumer reads the half ``r_half`` while it is FULL (``r_ready``) and *releases* it (``r_release``:
  EMPTY), then moves to the other half. A streaming consumer (PE2) may also read ``r_half`` while it is
  still FILLING (``r_filling``), but only words it knows the producer has written: the buffer does not track
  words, so that rule is the consumer's (PE2 compares its row counter with the loader's beats); it releases
  the half only once it is FULL.

So a half is never written while it is read, neither side overtakes the other, and the halves are used in
strict alternation on both sides.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .ram import SyncRAM

__all__ = ["PingPongControl", "PingPongBuffer", "EMPTY", "FILLING", "FULL"]

EMPTY, FILLING, FULL = 0, 1, 2


class PingPongControl(wiring.Component):
    """The half-state machine of a ping-pong buffer (no storage).

    Members
    -------
    w_ready : Out
        The half the producer acquires next (``w_next``) is EMPTY.
    w_acquire : In
        Take ``w_next`` (ignored unless ``w_ready``); ``w_next`` flips.
    w_commit, w_commit_sel : In
        Mark half ``w_commit_sel`` FULL (ignored unless it is FILLING).
    r_ready : Out
        Half ``r_half`` is FULL.
    r_release : In
        Mark ``r_half`` EMPTY (ignored unless ``r_ready``); ``r_half`` flips.
    r_filling : Out
        Half ``r_half`` is FILLING (a streaming consumer may read the words already written).
    filling : Out
        One bit per half: it is FILLING (writes to it are allowed).
    """

    def __init__(self):
        super().__init__({
            "w_ready": Out(1), "w_acquire": In(1), "w_next": Out(1),
            "w_commit": In(1), "w_commit_sel": In(1),
            "r_ready": Out(1), "r_release": In(1), "r_half": Out(1), "r_filling": Out(1),
            "filling": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        state = [Signal(2, name=f"state{h}") for h in range(2)]
        # Mux, not m.If: Yosys writes m.If as an ``always @*`` block, which Icarus (-g2012) may never run when
        # its inputs keep their initial values through reset, leaving w_ready X for good (tests/hw/tb_pingpong.py).
        m.d.comb += [self.w_ready.eq(Mux(self.w_next, state[1] == EMPTY, state[0] == EMPTY)),
                     self.r_ready.eq(Mux(self.r_half, state[1] == FULL, state[0] == FULL)),
                     self.r_filling.eq(Mux(self.r_half, state[1] == FILLING, state[0] == FILLING))]
        m.d.comb += self.filling.eq((state[0] == FILLING) | ((state[1] == FILLING) << 1))
        acquire = self.w_acquire & self.w_ready
        release = self.r_release & self.r_ready
        with m.If(acquire):
            m.d.sync += self.w_next.eq(~self.w_next)
        with m.If(release):
            m.d.sync += self.r_half.eq(~self.r_half)
        for h in range(2):
            with m.If(acquire & (self.w_next == h)):
                m.d.sync += state[h].eq(FILLING)
            with m.Elif(self.w_commit & (self.w_commit_sel == h) & (state[h] == FILLING)):
                m.d.sync += state[h].eq(FULL)
            with m.Elif(release & (self.r_half == h)):
                m.d.sync += state[h].eq(EMPTY)
        return m


class PingPongBuffer(wiring.Component):
    """``2 x depth`` words of ``width`` bits with write enables per ``granularity`` bits; synchronous reads.

    Members (besides those of :class:`PingPongControl`)
    -------
    w_sel, w_addr, w_data, w_en : In
        Write into half ``w_sel`` (dropped unless that half is FILLING).
    r_addr, r_en : In; r_data : Out
        Read half ``r_half``; data on ``r_data`` one cycle after ``r_en``.
    """

    def __init__(self, width: int, depth: int, granularity: int | None = None):
        granularity = width if granularity is None else granularity
        if width <= 0 or depth <= 0 or granularity <= 0 or width % granularity:
            raise ValueError(f"PingPongBuffer: width {width} must be a positive multiple of granularity "
                             f"{granularity}, depth {depth} positive")
        self.width, self.depth, self.granularity = width, depth, granularity
        super().__init__({
            "w_ready": Out(1), "w_acquire": In(1), "w_next": Out(1), "w_commit": In(1), "w_commit_sel": In(1),
            "w_sel": In(1), "w_addr": In(range(depth)), "w_data": In(width), "w_en": In(width // granularity),
            "r_ready": Out(1), "r_release": In(1), "r_half": Out(1), "r_filling": Out(1),
            "r_addr": In(range(depth)), "r_en": In(1), "r_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl = ctrl = PingPongControl()
        m.d.comb += [
            self.w_ready.eq(ctrl.w_ready), ctrl.w_acquire.eq(self.w_acquire), self.w_next.eq(ctrl.w_next),
            ctrl.w_commit.eq(self.w_commit), ctrl.w_commit_sel.eq(self.w_commit_sel),
            self.r_ready.eq(ctrl.r_ready), ctrl.r_release.eq(self.r_release), self.r_half.eq(ctrl.r_half),
            self.r_filling.eq(ctrl.r_filling),
        ]
        m.submodules.ram = ram = SyncRAM(self.width, 2 * self.depth, self.granularity)
        allowed = ctrl.filling.bit_select(self.w_sel, 1)
        m.d.comb += [
            ram.w_addr.eq(self.w_sel * self.depth + self.w_addr), ram.w_data.eq(self.w_data),
            ram.w_en.eq(Mux(allowed, self.w_en, 0)),
            ram.r_addr.eq(ctrl.r_half * self.depth + self.r_addr), ram.r_en.eq(self.r_en),
            self.r_data.eq(ram.r_data),
        ]
        return m

