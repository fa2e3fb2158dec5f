"""cocotb bench for the AXI4 master (hw/axi_master.py; AMBA AXI4 IHI 0022 A3.4) against cocotbext-axi's AxiRam.

The units' side of :class:`~ultratrain.hw.axi_master.AxiMaster` is driven from Python: 2-D read and write
commands (``rows`` runs of ``beats`` 16-byte beats, ``stride`` bytes apart) on the ``rd.cmd`` / ``wr.cmd``
streams, write beats with random byte strobes on ``wr.data``, and a read-data sink with random
backpressure. DRAM is AxiRam with random pauses on all five channels (AW, W, B, AR, R), redrawn every round.
A byte-array model of the memory is the scoreboard:

* every beat returned on ``rd.data`` equals the model's bytes at its address, with the command's tag and
  ``last`` on exactly the command's final beat;
* after every round the whole AxiRam equals the model (writes with their strobes applied in order);
* a monitor on the AXI port checks each burst: INCR, 16-byte beats, at most ``max_burst`` beats, never
  across a 4 KiB boundary, AxVALID held with a stable address until AxREADY, WLAST on exactly the
  (AWLEN+1)-th beat, no more than ``max_outstanding`` bursts in flight per direction, and the bursts'
  beat addresses, concatenated, are exactly the commands' beat addresses in order (so a split is lossless);
* ``abort`` (``axi_abort``): no read beat reaches the unit once it is raised, at most the one burst per
  direction that the engine was already presenting is issued afterwards, the bursts in flight finish (W
  beats with WSTRB = 0: memory holds exactly the beats the unit handed over before the abort), ``quiet``
  comes up, and the next round works normally.

Commands include one-beat transfers, exactly one maximal burst (``max_burst`` beats), one beat less and
more, 31/32/33 beats, long rows, multi-row commands (strides larger than, equal to, smaller than the row
and zero for reads), starts just below a 4 KiB boundary and starts on one. Each cycle the bench drives its
inputs at the falling edge and samples every handshake in the ReadOnly phase after it (the AXI master has
combinational paths from the unit side to the AXI side). The seed is ``cocotb.RANDOM_SEED`` (printed by
tests/hw/rtl.py).
"""

from __future__ import annotations

import logging
import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly
from cocotbext.axi import AxiBus, AxiRam

from tbcommon import CLOCK_NS, iterations, random_pauses
from ultratrain.hw.axi import ReadCommand, WriteCommand, read_data_layout, write_data_layout

BEAT = 16                  # bytes per beat (128-bit data)
MAX_BURST = int(os.environ.get("AXI_MAX_BURST", "16"))               # AxiMaster's parameters
MAX_OUTSTANDING = int(os.environ.get("AXI_MAX_OUTSTANDING", "16"))
RAM_SIZE = 1 << 16         # 16 pages of 4 KiB
PAGE = 4096


def _fields(layout) -> dict:
    return {name: (field.offset, field.width) for name, field in layout}


RD_CMD, WR_CMD = _fields(ReadCommand.as_shape()), _fields(WriteCommand.as_shape())
RD_DATA, WR_DATA = _fields(read_data_layout(8 * BEAT)), _fields(write_data_layout(8 * BEAT))


def pack(fields: dict, **values) -> int:
    word = 0
    for name, (offset, width) in fields.items():
        word |= (values.get(name, 0) & ((1 << width) - 1)) << offset
    return word


def unpack(fields: dict, word: int) -> dict:
    return {name: (word >> offset) & ((1 << width) - 1) for name, (offset, width) in fields.items()}


def beat_addresses(cmd: dict) -> list[tuple[int, int]]:
    """(beat address, row number) of every beat of a command, in order."""
    return [(cmd["addr"] + row * cmd["stride"] + BEAT * b, row)
            for row in range(cmd["rows"]) for b in range(cmd["beats"])]


class AxiMasterTB:
    def __init__(self, dut):
        self.dut = dut
        self.seed = cocotb.RANDOM_SEED
        self.rng = random.Random(self.seed)
        self.log = dut._log
        self.log.info("seed %d", self.seed)
        Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "axi", bus_separator="__"), dut.clk, dut.rst, size=RAM_SIZE)
        for model in (self.ram.write_if, self.ram.read_if):
            model.log.setLevel(logging.WARNING)
        self.mem = bytearray(self.rng.getrandbits(8) for _ in range(RAM_SIZE))
        self.ram.write(0, bytes(self.mem))
        self.cycle = 0
        self.stats = {"ar_bursts": 0, "aw_bursts": 0, "max_bursts": 0, "split_4k": 0, "rd_beats": 0,
                      "wr_beats": 0, "max_outstanding_r": 0, "max_outstanding_w": 0, "rd_cmds": 0, "wr_cmds": 0}
        # AXI monitor state
        self.exp_ar = deque()      # beat addresses (addr, cmd id, row) the AR bursts must cover, in order
        self.exp_aw = deque()
        self.w_lens = deque()      # AWLEN+1 of the write bursts whose W beats are still due
        self.w_count = 0
        self.out_r = self.out_w = 0
        self.prev = {}
        self.cmd_ids = 0

    async def reset(self) -> None:
        dut = self.dut
        for sig in (dut.rd__cmd__valid, dut.rd__cmd__payload, dut.rd__data__ready, dut.wr__cmd__valid,
                    dut.wr__cmd__payload, dut.wr__data__valid, dut.wr__data__payload, dut.abort, dut.clear_error):
            sig.value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 4)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 2)

    def set_pauses(self) -> dict:
        """New random pause probability per AXI channel (0 = no stalls) for the next round."""
        chans = {"aw": self.ram.write_if.aw_channel, "w": self.ram.write_if.w_channel,
                 "b": self.ram.write_if.b_channel, "ar": self.ram.read_if.ar_channel, "r": self.ram.read_if.r_channel}
        probs = {}
        for name, ch in chans.items():
            p = self.rng.choice([0.0, 0.2, 0.5, 0.8])
            probs[name] = p
            if p:
                ch.set_pause_generator(random_pauses(random.Random(self.rng.random()), p))
            else:
                # cocotbext-axi 0.1.28 leaves ``pause`` as the killed generator left it: un-pause by hand, or a
                # channel caught paused would stall for good.
                ch.clear_pause_generator()
                ch.pause = False
        return probs

    # -- command generation ----------------------------------------------------------------------------
    def random_command(self, write: bool) -> dict:
        rng = self.rng
        mb = MAX_BURST
        beats = rng.choice([1, 1, 2, 3, rng.randint(4, 15), mb, mb, max(1, mb - 1), mb + 1, 31, 32, 33,
                            rng.randint(34, 96)])
        rows = rng.choice([1, 1, 1, 2, 3])
        stride = beats * BEAT
        if rows > 1:
            choice = rng.random()
            if choice < 0.5:
                stride = beats * BEAT + BEAT * rng.randint(0, 40)
            elif not write and choice < 0.6:
                stride = 0                                     # the same row again
            elif choice < 0.8 and beats > 1:
                stride = BEAT * rng.randint(1, beats - 1)      # overlapping rows (writes: later rows win)
        span = (rows - 1) * stride + beats * BEAT
        if rng.random() < 0.4:
            # Just below a 4 KiB boundary, so that the first burst must stop there.
            page = rng.randint(1, RAM_SIZE // PAGE - 1)
            addr = page * PAGE - BEAT * rng.randint(1, min(beats, MAX_BURST + 1))
        elif rng.random() < 0.2:
            # Page-aligned: the only start from which a 4 KiB burst (max_burst = 256) can be issued whole.
            addr = PAGE * rng.randrange(RAM_SIZE // PAGE)
        else:
            addr = BEAT * rng.randrange(RAM_SIZE // BEAT)
        addr = max(0, min(addr, RAM_SIZE - span))
        addr -= addr % BEAT
        cmd = {"addr": addr, "beats": beats, "rows": rows, "stride": stride, "tag": 0 if write else rng.randrange(4)}
        return cmd

    def random_strobe(self) -> int:
        pick = self.rng.random()
        if pick < 0.7:
            return (1 << BEAT) - 1
        if pick < 0.8:
            return 0
        return self.rng.getrandbits(BEAT)

    def make_round(self, n_writes: int, n_reads: int, big: bool = False):
        """Write commands (with their beats) and read commands that touch none of the written beats."""
        writes, beats = [], []
        footprint = set()
        for _ in range(n_writes):
            cmd = self.random_command(True)
            if big:
                cmd.update(beats=self.rng.randint(40, 96), rows=2, stride=BEAT * 100)
                cmd["addr"] = BEAT * self.rng.randrange((RAM_SIZE - 300 * BEAT) // BEAT)
            writes.append(cmd)
            for addr, _ in beat_addresses(cmd):
                beats.append((addr, self.rng.getrandbits(8 * BEAT), self.random_strobe()))
                footprint.add(addr)
        reads = []
        tries = 0
        while len(reads) < n_reads and tries < 200:
            tries += 1
            cmd = self.random_command(False)
            if big:
                cmd.update(beats=self.rng.randint(40, 96), rows=2, stride=BEAT * 100)
                cmd["addr"] = BEAT * self.rng.randrange((RAM_SIZE - 300 * BEAT) // BEAT)
            if not any(addr in footprint for addr, _ in beat_addresses(cmd)):
                reads.append(cmd)
        return writes, beats, reads

    # -- the AXI monitor -------------------------------------------------------------------------------
    def monitor(self, s: dict, aborting: bool) -> None:
        """Protocol checks on the values sampled in ReadOnly (the handshakes of the coming rising edge)."""
        for ch in ("ar", "aw"):
            prev = self.prev.get(ch)
            if prev and prev["valid"] and not prev["ready"]:
                assert s[f"{ch}valid"], f"cycle {self.cycle}: {ch.upper()}VALID dropped before {ch.upper()}READY"
                assert (s[f"{ch}addr"], s[f"{ch}len"]) == (prev["addr"], prev["len"]), \
                    f"cycle {self.cycle}: {ch.upper()}ADDR/LEN changed while waiting for {ch.upper()}READY"
            self.prev[ch] = {"valid": s[f"{ch}valid"], "ready": s[f"{ch}ready"], "addr": s[f"{ch}addr"],
                             "len": s[f"{ch}len"]}
            if s[f"{ch}valid"] and s[f"{ch}ready"]:
                self.check_burst(ch, s[f"{ch}addr"], s[f"{ch}len"], s[f"{ch}size"], s[f"{ch}burst"], s[f"{ch}id"])
        if s["wvalid"] and s["wready"]:
            assert self.w_lens, f"cycle {self.cycle}: W beat before its AW burst"
            self.w_count += 1
            last = self.w_count == self.w_lens[0]
            assert s["wlast"] == last, (f"cycle {self.cycle}: WLAST={s['wlast']} on beat {self.w_count} of a "
                                        f"{self.w_lens[0]}-beat burst")
            if aborting:
                assert s["wstrb"] == 0, f"cycle {self.cycle}: W beat with WSTRB {s['wstrb']:#x} during abort"
            if last:
                self.w_lens.popleft()
                self.w_count = 0
        if s["bvalid"] and s["bready"]:
            assert s["bresp"] == 0, f"cycle {self.cycle}: BRESP {s['bresp']}"
            self.out_w -= 1
            assert self.out_w >= 0, f"cycle {self.cycle}: B response without a write burst"
        if s["rvalid"] and s["rready"]:
            assert s["rresp"] == 0, f"cycle {self.cycle}: RRESP {s['rresp']}"
            if s["rlast"]:
                self.out_r -= 1

    def check_burst(self, ch: str, addr: int, length: int, size: int, burst: int, ident: int) -> None:
        n = length + 1
        where = f"cycle {self.cycle}: {ch.upper()} burst addr {addr:#x} len {n}"
        assert (size, burst, ident) == (4, 1, 0), f"{where}: AxSIZE {size}, AxBURST {burst}, AxID {ident}"
        assert n <= MAX_BURST, f"{where}: longer than {MAX_BURST} beats"
        assert addr % BEAT == 0, f"{where}: not beat aligned"
        assert addr // PAGE == (addr + n * BEAT - 1) // PAGE, f"{where}: crosses a 4 KiB boundary"
        expected = self.exp_ar if ch == "ar" else self.exp_aw
        assert len(expected) >= n, f"{where}: more beats than the commands asked for ({len(expected)} left)"
        got = [addr + BEAT * i for i in range(n)]
        want = [expected.popleft() for _ in range(n)]
        assert got == [w[0] for w in want], f"{where}: covers {[hex(a) for a in got]}, commands say " \
                                            f"{[hex(w[0]) for w in want]}"
        if n == MAX_BURST:
            self.stats["max_bursts"] += 1
        if expected and expected[0][1:] == want[-1][1:] and (addr + n * BEAT) % PAGE == 0 and n < MAX_BURST:
            self.stats["split_4k"] += 1         # the row goes on, but the burst had to stop at the page end
        if ch == "ar":
            self.stats["ar_bursts"] += 1
            self.out_r += 1
            self.stats["max_outstanding_r"] = max(self.stats["max_outstanding_r"], self.out_r)
            assert self.out_r <= MAX_OUTSTANDING, f"{where}: {self.out_r} read bursts outstanding"
        else:
            self.stats["aw_bursts"] += 1
            self.w_lens.append(n)
            self.out_w += 1
            self.stats["max_outstanding_w"] = max(self.stats["max_outstanding_w"], self.out_w)
            assert self.out_w <= MAX_OUTSTANDING, f"{where}: {self.out_w} write bursts outstanding"

    def sample(self) -> dict:
        """Handshake signals always; the payload of a channel only while its VALID is high (under Icarus the
        AxiRam's response fields and the master's FIFO outputs are X/Z before their first use)."""
        dut = self.dut
        s = {}
        for name in ("arvalid", "arready", "awvalid", "awready", "wvalid", "wready", "bvalid", "bready", "rvalid",
                     "rready"):
            s[name] = int(getattr(dut, f"axi__{name}").value)
        payload = {"arvalid": ("araddr", "arlen", "arsize", "arburst", "arid"),
                   "awvalid": ("awaddr", "awlen", "awsize", "awburst", "awid"),
                   "wvalid": ("wlast", "wstrb"), "bvalid": ("bresp",), "rvalid": ("rlast", "rresp")}
        for valid, names in payload.items():
            for name in names:
                s[name] = int(getattr(dut, f"axi__{name}").value) if s[valid] else None
        for name in ("rd__cmd__valid", "rd__cmd__ready", "rd__data__valid", "rd__data__ready", "wr__cmd__valid",
                     "wr__cmd__ready", "wr__data__valid", "wr__data__ready", "quiet", "wr__idle", "error"):
            s[name] = int(getattr(dut, name).value)
        if s["rd__data__valid"] and s["rd__data__ready"]:
            s["rd_beat"] = unpack(RD_DATA, int(dut.rd__data__payload.value))
        return s

    # -- one round of traffic --------------------------------------------------------------------------
    async def run_round(self, writes, beats, reads, abort_at: int | None = None, timeout: int | None = None) -> dict:
        """Issue the commands and beats with random gaps and backpressure until all is done (or aborted).

        The liveness bound grows with the beats: with a W channel paused 80 % of the time and the unit's
        beats 70 % late, a beat takes about 17 cycles on average, so 40 per beat leaves room for the worst draws.
        """
        dut, rng = self.dut, self.rng
        if timeout is None:
            timeout = 10_000 + 40 * (len(beats) + sum(len(beat_addresses(c)) for c in reads))
        rd_q, wr_q, wb_q = deque(reads), deque(writes), deque(beats)
        rd_expect = deque()            # (address, tag, last) of every read beat, in order
        for cmd in reads:
            addrs = beat_addresses(cmd)
            for i, (addr, _) in enumerate(addrs):
                rd_expect.append((addr, cmd["tag"], i == len(addrs) - 1))
        p = {k: rng.choice([0.0, 0.3, 0.7]) for k in ("rd_gap", "wr_gap", "wd_gap", "rd_stall")}
        rd_cur = wr_cur = wd_cur = None
        s = None
        start = self.cycle
        aborting = False
        abort_state = {}
        taken_beats = 0
        while True:
            await FallingEdge(dut.clk)
            self.cycle += 1
            assert self.cycle - start < timeout, (
                f"round did not finish in {timeout} cycles: {len(rd_q)} read and {len(wr_q)} write commands, "
                f"{len(wb_q)} write beats, {len(rd_expect)} read beats left; pending command/beat "
                f"{rd_cur}/{wr_cur}/{wd_cur and hex(wd_cur[0])}; W bursts due {list(self.w_lens)}, "
                f"outstanding {self.out_r} read / {self.out_w} write; last sample {s}")
            # What the last rising edge took:
            if s is not None:
                if s["rd__cmd__valid"] and s["rd__cmd__ready"]:
                    for addr, row in beat_addresses(rd_cur):
                        self.exp_ar.append((addr, rd_cur["id"], row))
                    self.stats["rd_cmds"] += 1
                    rd_cur = None
                if s["wr__cmd__valid"] and s["wr__cmd__ready"]:
                    for addr, row in beat_addresses(wr_cur):
                        self.exp_aw.append((addr, wr_cur["id"], row))
                    self.stats["wr_cmds"] += 1
                    wr_cur = None
                if s["wr__data__valid"] and s["wr__data__ready"]:
                    addr, data, strb = wd_cur
                    raw = data.to_bytes(BEAT, "little")
                    for i in range(BEAT):
                        if strb >> i & 1:
                            self.mem[addr + i] = raw[i]
                    self.stats["wr_beats"] += 1
                    taken_beats += 1
                    wd_cur = None
                if "rd_beat" in s:
                    beat = s["rd_beat"]
                    assert rd_expect, f"cycle {self.cycle}: a read beat nobody asked for"
                    addr, tag, last = rd_expect.popleft()
                    want = int.from_bytes(self.mem[addr:addr + BEAT], "little")
                    assert beat["data"] == want, (f"cycle {self.cycle}: read beat at {addr:#x} returned "
                                                  f"{beat['data']:#034x}, memory holds {want:#034x}")
                    assert (beat["tag"], beat["last"]) == (tag, int(last)), \
                        f"cycle {self.cycle}: read beat at {addr:#x}: tag/last {beat['tag']}/{beat['last']}, " \
                        f"want {tag}/{int(last)}"
                    self.stats["rd_beats"] += 1
            if abort_at is not None and not aborting and self.cycle - start >= abort_at:
                aborting = True
                dut.abort.value = 1
                # The unit gives up too: nothing more is offered; what was not taken is never written.
                rd_q.clear(), wr_q.clear(), wb_q.clear(), rd_expect.clear()
                rd_cur = wr_cur = wd_cur = None
            if aborting:
                dut.rd__cmd__valid.value = 0
                dut.wr__cmd__valid.value = 0
                dut.wr__data__valid.value = 0
                dut.rd__data__ready.value = rng.getrandbits(1)
            else:
                if rd_cur is None and rd_q and rng.random() >= p["rd_gap"]:
                    rd_cur = rd_q.popleft()
                    rd_cur["id"] = self.cmd_ids = self.cmd_ids + 1
                    dut.rd__cmd__payload.value = pack(RD_CMD, **rd_cur)
                dut.rd__cmd__valid.value = int(rd_cur is not None)
                if wr_cur is None and wr_q and rng.random() >= p["wr_gap"]:
                    wr_cur = wr_q.popleft()
                    wr_cur["id"] = self.cmd_ids = self.cmd_ids + 1
                    dut.wr__cmd__payload.value = pack(WR_CMD, **wr_cur)
                dut.wr__cmd__valid.value = int(wr_cur is not None)
                if wd_cur is None and wb_q and rng.random() >= p["wd_gap"]:
                    wd_cur = wb_q.popleft()
                    dut.wr__data__payload.value = pack(WR_DATA, data=wd_cur[1], strb=wd_cur[2])
                dut.wr__data__valid.value = int(wd_cur is not None)
                dut.rd__data__ready.value = int(rng.random() >= p["rd_stall"])
            await ReadOnly()
            s = self.sample()
            self.monitor(s, aborting)
            if aborting:
                assert not s["rd__data__valid"], f"cycle {self.cycle}: read beat offered to the unit during abort"
                for ch in ("ar", "aw"):
                    # Only the burst already presented when the abort came may still be issued (AXI: a raised
                    # AxVALID stays until taken), and at most one.
                    if ch not in abort_state:
                        abort_state[ch] = 0
                    abort_state[ch] += s[f"{ch}valid"] and s[f"{ch}ready"]
                    assert abort_state[ch] <= 1, f"cycle {self.cycle}: a second {ch.upper()} burst after abort"
            done = not (rd_q or wr_q or wb_q or rd_expect or rd_cur or wr_cur or wd_cur)
            if done and s["quiet"] and s["wr__idle"]:
                break
        await FallingEdge(dut.clk)
        self.cycle += 1
        if aborting:
            dut.abort.value = 0
            assert not self.w_lens and self.out_r == 0 and self.out_w == 0, \
                f"quiet after abort with bursts in flight ({self.out_r} read, {self.out_w} write)"
            self.exp_ar.clear(), self.exp_aw.clear()
        assert not self.exp_ar and not self.exp_aw, \
            f"commands left {len(self.exp_ar)} read / {len(self.exp_aw)} write beats never requested on AXI"
        assert not int(dut.error.value), "AxiMaster flagged an AXI error"
        got = self.ram.read(0, RAM_SIZE)
        if got != bytes(self.mem):
            first = next(i for i in range(RAM_SIZE) if got[i] != self.mem[i])
            raise AssertionError(f"memory differs from the model first at byte {first:#x} (beat {first // BEAT:#x}): "
                                 f"AxiRam {got[first]:#04x}, model {self.mem[first]:#04x}")
        return {"cycles": self.cycle - start, "taken_beats": taken_beats}


@cocotb.test()
async def axi_random_traffic(dut):
    """Random read/write commands under random AXI latency and backpressure; data, memory and protocol."""
    tb = AxiMasterTB(dut)
    await tb.reset()
    rounds = iterations(12)
    for r in range(rounds):
        pauses = tb.set_pauses()
        writes, beats, reads = tb.make_round(tb.rng.randint(0, 4), tb.rng.randint(1, 5))
        if r == 0:
            # One maximal burst each way from a page start, whatever the draw: with max_burst = 256 a random
            # command is rarely both 256 beats long and page-aligned.
            used = {addr // PAGE for addr, _, _ in beats} | {a // PAGE for c in reads for a, _ in beat_addresses(c)}
            free = [page for page in range(RAM_SIZE // PAGE) if page not in used]
            assert len(free) >= 2, "the first round's draw left no two pages free"
            for page, write in zip(free[-2:], (True, False)):
                cmd = {"addr": page * PAGE, "beats": MAX_BURST, "rows": 1, "stride": MAX_BURST * BEAT, "tag": 0}
                if write:
                    writes.append(cmd)
                    beats += [(addr, tb.rng.getrandbits(8 * BEAT), tb.random_strobe())
                              for addr, _ in beat_addresses(cmd)]
                else:
                    reads.append(cmd)
        res = await tb.run_round(writes, beats, reads)
        tb.log.info("round %d: %d write / %d read commands, %d cycles; pauses %s", r, len(writes), len(reads),
                    res["cycles"], pauses)
    st = tb.stats
    tb.log.info("totals: %s", st)
    assert not tb.w_lens and tb.out_r == tb.out_w == 0
    # (With one-beat bursts no burst is cut short by a page end.)
    for key in ("max_bursts", "rd_beats", "wr_beats") + (("split_4k",) if MAX_BURST > 1 else ()):
        assert st[key] > 0, f"the random traffic never produced {key} (seed {tb.seed})"
    assert st["max_outstanding_r"] > 1 and st["max_outstanding_w"] > 1, "bursts were never pipelined"


@cocotb.test()
async def axi_abort(dut):
    """Abort in the middle of long transfers: drain, no data to the unit, exact memory; then normal traffic."""
    tb = AxiMasterTB(dut)
    await tb.reset()
    for r in range(iterations(4)):
        tb.set_pauses()
        writes, beats, reads = tb.make_round(2, 2, big=True)
        res = await tb.run_round(writes, beats, reads, abort_at=tb.rng.randint(5, 120))
        tb.log.info("abort round %d: %d of %d write beats handed over before the abort; drained in %d cycles",
                    r, res["taken_beats"], len(beats), res["cycles"])
        writes, beats, reads = tb.make_round(2, 3)
        await tb.run_round(writes, beats, reads)
