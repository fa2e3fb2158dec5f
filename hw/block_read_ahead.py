"""Run-ahead control of a block loader feeding a ping-pong buffer (PE1 and PE2 input blocks, thesis 3.5.2).

The loaders read one block per command into an input half. If a block's read command could only go out once
its half is free, every block would pay the DRAM latency whenever the array is as fast as the loads (PE2's
left-sweep blocks at batch 1: 56 beats against 56 compute cycles; docs/hardware.md). So commands run up to
``max_ahead`` blocks ahead of the blocks fully received, independently of the halves, and the half of the
next block to arrive is acquired as soon as it is free; until then the loader holds the read data channel
(RREADY low: legal AXI backpressure, the beats wait in the master and the interconnect). The beats arrive in
command order (one AXI ID), so halves are acquired, filled and committed in that order.

Nothing else reads DRAM while a unit runs except the controller's read-ahead of the next descriptor, which
is issued before the unit starts and so arrives ahead of the unit's beats: holding RREADY cannot block it.
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BlockReadAhead"]


class BlockReadAhead(wiring.Component):
    """Members
    -------
    clear : In
        A new instruction starts: nothing outstanding, nothing acquired.
    cmd_fire : In
        A block's read command was accepted this cycle.
    block_done : In
        The last beat of the oldest outstanding block was accepted this cycle.
    half_free : In
        The ping-pong half the producer acquires next is EMPTY (``PingPongBuffer.w_ready``).
    cmd_allow : Out
        Fewer than ``max_ahead`` blocks are commanded and not fully received: another command may go out.
    acquire : Out
        Acquire the next half now (to ``PingPongBuffer.w_acquire``): a commanded block has no half yet.
    beat_ready : Out
        The oldest outstanding block has its half: accept its beats (to the read data ``ready``).
    """

    def __init__(self, max_ahead: int = 2):
        if not isinstance(max_ahead, int) or max_ahead < 1:
            raise ValueError(f"BlockReadAhead: max_ahead must be a positive int, not {max_ahead!r}")
        self.max_ahead = max_ahead
        super().__init__({
            "clear": In(1), "cmd_fire": In(1), "block_done": In(1), "half_free": In(1),
            "cmd_allow": Out(1), "acquire": Out(1), "beat_ready": Out(1),
        })

    def attach(self, m, *, start, inbuf, rd) -> None:
        """Wire this controller between a loader's read port ``rd`` and its :class:`PingPongBuffer` ``inbuf``
        (``start`` clears it): the acquire strobe, the command and last-beat handshakes, the half's state. The
        loader gates its command valid with ``cmd_allow`` and its data ready with ``beat_ready``."""
        beat = rd.data
        m.d.comb += [self.clear.eq(start), self.half_free.eq(inbuf.w_ready), inbuf.w_acquire.eq(self.acquire),
                     self.cmd_fire.eq(rd.cmd.valid & rd.cmd.ready),
                     self.block_done.eq(beat.valid & beat.ready & beat.payload.last & ~start)]

    def elaborate(self, platform):
        m = Module()
        outstanding = Signal(range(self.max_ahead + 1))   # commanded, last beat not yet received
        acquired = Signal(range(3))                        # of those, how many hold a half (two halves)
        m.d.comb += [
            self.cmd_allow.eq(outstanding < self.max_ahead),
            self.acquire.eq((outstanding > acquired) & self.half_free & ~self.clear),
            self.beat_ready.eq(acquired != 0),
        ]
        with m.If(self.clear):
            m.d.sync += [outstanding.eq(0), acquired.eq(0)]
        with m.Else():
            m.d.sync += [outstanding.eq(outstanding + self.cmd_fire - self.block_done),
                         acquired.eq(acquired + self.acquire - self.block_done)]
        return m
