"""cocotb bench for the ping-pong buffer (hw/pingpong.py, thesis section 3.5.2) against a cycle-exact Python model.

The model (:class:`PingPongModel`) is the contract of :class:`~ultratrain.hw.pingpong.PingPongBuffer` written
out: two halves, each EMPTY, FILLING or FULL; ``w_acquire`` takes half ``w_next`` only when it is EMPTY;
writes land only in a FILLING half (per ``granularity``-bit lane); ``w_commit`` turns a FILLING half FULL;
``r_release`` empties half ``r_half`` only when it is FULL; reads return the half ``r_half`` the cycle after
``r_en`` (read-first). Every cycle the bench compares ``w_ready``, ``w_next``, ``r_ready``, ``r_half``,
``r_filling`` and every read's data with the model, so a swap that lets the two sides touch the same half, or
a write that reaches a half it must not, shows up as a wrong word.

* ``pingpong_random_traffic`` drives every input at random, legal or not (acquire/commit/release when not
  allowed, writes into EMPTY or FULL halves, reads of a half that is not FULL), with the strobe
  probabilities redrawn every few dozen cycles so that all state combinations occur (both halves FILLING: a
  pipelined producer; both FULL: a slow consumer).
* ``pingpong_streaming`` is the intended use: a producer that fills block i+1 (acquiring it before it has
  committed block i, like PE1's pipelined array) while a consumer drains block i, both with random stalls
  and random swap timing. It checks that the consumer receives every block, in order, exactly as written,
  and that loading and draining really overlap.

Parameters come from the environment (``PP_WIDTH``, ``PP_DEPTH``, ``PP_GRAN``; set by test_hw_pingpong.py);
the seed is ``cocotb.RANDOM_SEED`` (printed by tests/hw/rtl.py).
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from tbcommon import CLOCK_NS, iterations

EMPTY, FILLING, FULL = 0, 1, 2
NAMES = {EMPTY: "EMPTY", FILLING: "FILLING", FULL: "FULL"}


class PingPongModel:
    """What the buffer must do, one clock edge at a time."""

    def __init__(self, width: int, depth: int, granularity: int):
        self.width, self.depth, self.gran = width, depth, granularity
        self.lanes = width // granularity
        self.state = [EMPTY, EMPTY]
        self.w_next = 0
        self.r_half = 0
        self.mem = [[0] * depth for _ in range(2)]
        self.r_data = 0
        self.r_data_valid = False       # the last edge had r_en: r_data is a read result to check
        self.r_data_half = 0
        self.r_data_addr = 0
        self.r_data_checked_full = False

    @property
    def w_ready(self) -> int:
        return int(self.state[self.w_next] == EMPTY)

    @property
    def r_ready(self) -> int:
        return int(self.state[self.r_half] == FULL)

    @property
    def r_filling(self) -> int:
        return int(self.state[self.r_half] == FILLING)

    def write_lands(self, sel: int, w_en: int) -> bool:
        return w_en != 0 and self.state[sel] == FILLING

    def edge(self, inp: dict) -> dict:
        """Apply one rising edge with inputs ``inp``; returns what happened (for coverage)."""
        ev = {}
        acquire = inp["w_acquire"] and self.w_ready
        release = inp["r_release"] and self.r_ready
        ev["acquire"], ev["acquire_refused"] = acquire, inp["w_acquire"] and not acquire
        ev["release"], ev["release_refused"] = release, inp["r_release"] and not release
        commit_sel = inp["w_commit_sel"]
        commit = inp["w_commit"] and self.state[commit_sel] == FILLING
        ev["commit"], ev["commit_ignored"] = commit, inp["w_commit"] and not commit
        # Read first: the read port sees the memory before this edge's write.
        if inp["r_en"]:
            self.r_data = self.mem[self.r_half][inp["r_addr"]]
            self.r_data_valid, self.r_data_half, self.r_data_addr = True, self.r_half, inp["r_addr"]
            self.r_data_checked_full = self.r_ready
        else:
            self.r_data_valid = False
        ev["read_full"] = inp["r_en"] and self.r_ready
        sel, w_en = inp["w_sel"], inp["w_en"]
        ev["write"] = self.write_lands(sel, w_en)
        ev["write_dropped"] = w_en != 0 and not ev["write"]
        ev["write_dropped_full"] = ev["write_dropped"] and self.state[sel] == FULL
        ev["overlap"] = ev["write"] and ev["read_full"]
        if ev["write"]:
            old, new = self.mem[sel][inp["w_addr"]], inp["w_data"]
            mask = 0
            for lane in range(self.lanes):
                if w_en >> lane & 1:
                    mask |= ((1 << self.gran) - 1) << (lane * self.gran)
            self.mem[sel][inp["w_addr"]] = (old & ~mask) | (new & mask)
        new_state = list(self.state)
        for h in range(2):
            if acquire and self.w_next == h:
                new_state[h] = FILLING
            elif commit and commit_sel == h:
                new_state[h] = FULL
            elif release and self.r_half == h:
                new_state[h] = EMPTY
        self.state = new_state
        if acquire:
            self.w_next ^= 1
        if release:
            self.r_half ^= 1
        ev["both_filling"] = self.state == [FILLING, FILLING]
        ev["both_full"] = self.state == [FULL, FULL]
        return ev


class PingPongTB:
    """Clock, reset, the model, and a per-cycle driver that checks the DUT against the model."""

    INPUTS = ("w_acquire", "w_commit", "w_commit_sel", "w_sel", "w_addr", "w_data", "w_en", "r_release",
              "r_addr", "r_en")

    def __init__(self, dut):
        self.dut = dut
        self.width = int(os.environ.get("PP_WIDTH", len(dut.w_data)))
        self.depth = int(os.environ["PP_DEPTH"])
        self.gran = int(os.environ.get("PP_GRAN", self.width))
        assert len(dut.w_data) == self.width and len(dut.w_en) == self.width // self.gran, "parameters vs DUT ports"
        self.seed = cocotb.RANDOM_SEED
        self.rng = random.Random(self.seed)
        self.log = dut._log
        self.log.info("seed %d; width %d, depth %d, granularity %d", self.seed, self.width, self.depth, self.gran)
        self.model = PingPongModel(self.width, self.depth, self.gran)
        self.cycle = 0
        self.events = {}
        Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)

    def idle_inputs(self) -> dict:
        return {name: 0 for name in self.INPUTS}

    async def reset(self) -> None:
        for name, value in self.idle_inputs().items():
            getattr(self.dut, name).value = value
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await FallingEdge(self.dut.clk)
        self.check_outputs()

    def check_outputs(self) -> None:
        """At a falling edge: the registered outputs and the last read equal the model's."""
        dut, m = self.dut, self.model
        got = {"w_ready": int(dut.w_ready.value), "w_next": int(dut.w_next.value),
               "r_ready": int(dut.r_ready.value), "r_half": int(dut.r_half.value),
               "r_filling": int(dut.r_filling.value)}
        ref = {"w_ready": m.w_ready, "w_next": m.w_next, "r_ready": m.r_ready, "r_half": m.r_half,
               "r_filling": m.r_filling}
        assert got == ref, (f"cycle {self.cycle}: control outputs {got} != model {ref} "
                            f"(model halves {[NAMES[s] for s in m.state]})")
        if m.r_data_valid:
            data = int(dut.r_data.value)
            assert data == m.r_data, (
                f"cycle {self.cycle}: read of half {m.r_data_half} address {m.r_data_addr} "
                f"({'FULL' if m.r_data_checked_full else 'not FULL'}) returned {data:#x}, "
                f"last written value {m.r_data:#x}")

    async def step(self, inp: dict) -> dict:
        """Drive ``inp`` for one cycle (from a falling edge), advance the model, check at the next falling edge."""
        for name, value in inp.items():
            getattr(self.dut, name).value = value
        ev = self.model.edge(inp)
        for key, hit in ev.items():
            self.events[key] = self.events.get(key, 0) + int(bool(hit))
        await FallingEdge(self.dut.clk)
        self.cycle += 1
        self.check_outputs()
        return ev

    def random_word(self) -> int:
        # Mostly random bits, sometimes all-zero / all-one words (a stuck lane or bit shows either way).
        pick = self.rng.random()
        if pick < 0.05:
            return 0
        if pick < 0.1:
            return (1 << self.width) - 1
        return self.rng.getrandbits(self.width)


@cocotb.test()
async def pingpong_random_traffic(dut):
    """Random (legal and illegal) traffic on both sides; cycle-exact comparison with the model."""
    tb = PingPongTB(dut)
    await tb.reset()
    rng, lanes = tb.rng, tb.width // tb.gran
    cycles = iterations(4000)
    p = {}
    for cyc in range(cycles):
        if cyc % 50 == 0:
            # New phase: redraw how eager each side is, so that slow/fast producer and consumer all occur.
            p = {k: rng.choice([0.02, 0.1, 0.3, 0.7]) for k in ("acquire", "commit", "release", "write", "read")}
            p["sel_own"] = rng.choice([0.5, 0.9, 1.0])
        m = tb.model
        inp = tb.idle_inputs()
        inp["w_acquire"] = int(rng.random() < p["acquire"])
        inp["w_commit"] = int(rng.random() < p["commit"])
        filling = [h for h in range(2) if m.state[h] == FILLING]
        # Mostly commit a half that is filling; sometimes one that is not (must be ignored).
        inp["w_commit_sel"] = rng.choice(filling) if filling and rng.random() < 0.8 else rng.getrandbits(1)
        inp["r_release"] = int(rng.random() < p["release"])
        if rng.random() < p["write"]:
            own = filling and rng.random() < p["sel_own"]
            inp["w_sel"] = rng.choice(filling) if own else rng.getrandbits(1)
            inp["w_addr"] = rng.randrange(tb.depth)
            inp["w_data"] = tb.random_word()
            inp["w_en"] = (1 << lanes) - 1 if rng.random() < 0.6 else rng.randrange(1, 1 << lanes)
        else:
            # Data and address wiggle with no enable: nothing may be written.
            inp["w_sel"], inp["w_addr"], inp["w_data"] = rng.getrandbits(1), rng.randrange(tb.depth), tb.random_word()
        if rng.random() < p["read"]:
            inp["r_en"], inp["r_addr"] = 1, rng.randrange(tb.depth)
        else:
            inp["r_addr"] = rng.randrange(tb.depth)
        await tb.step(inp)
    ev = tb.events
    tb.log.info("%d cycles; events %s", cycles, dict(sorted(ev.items())))
    # The run must have reached every situation the contract talks about, or it proved little (the overlap of
    # writing and reading is asserted by pingpong_streaming, where it is the point).
    for key in ("acquire", "acquire_refused", "commit", "commit_ignored", "release", "release_refused", "write",
                "write_dropped", "write_dropped_full", "read_full", "both_filling", "both_full"):
        assert ev.get(key, 0) > 0, f"random traffic never produced '{key}' in {cycles} cycles (seed {tb.seed})"


@cocotb.test()
async def pingpong_streaming(dut):
    """A pipelined producer and a consumer with random stalls stream blocks through the buffer."""
    tb = PingPongTB(dut)
    await tb.reset()
    rng, depth = tb.rng, tb.depth
    n_blocks = iterations(64)
    block_len = max(1, min(depth, 16))        # the words of each block that are written and read
    # Producer: acquire -> write block (random order, random gaps, some words rewritten) -> commit later.
    produced = []                  # the expected contents of each block, in order
    prod = {"state": "acquire", "half": 0, "todo": [], "block": None}
    commits = []                   # (cycle at which to commit, half): the producer's pipelined commits
    # Consumer: wait r_ready -> read every word of the block (random order, gaps) -> release after a delay.
    cons = {"state": "wait", "todo": [], "pending": None, "release_at": None}
    received = 0
    stall = {"prod": 0.0, "cons": 0.0}
    overlap_cycles = busy_cycles = 0
    limit = n_blocks * (8 * block_len + 60) + 2000
    while received < n_blocks:
        assert tb.cycle < limit, (f"streaming stalled: {received} of {n_blocks} blocks after {tb.cycle} cycles "
                                  f"(producer {prod['state']}, consumer {cons['state']}, model halves "
                                  f"{[NAMES[s] for s in tb.model.state]})")
        if tb.cycle % 64 == 0:
            stall = {"prod": rng.choice([0.0, 0.2, 0.6]), "cons": rng.choice([0.0, 0.2, 0.6])}
        m = tb.model
        inp = tb.idle_inputs()
        inp["r_addr"] = rng.randrange(depth)
        # -- consumer: the data of last cycle's read
        if cons["pending"] is not None:
            block, addr = cons["pending"]        # the block may already be released (release with last read)
            assert m.r_data_valid
            data = int(dut.r_data.value)
            want = produced[block][addr]
            assert data == want, (f"block {block} word {addr}: consumer read {data:#x}, producer wrote "
                                  f"{want:#x} (cycle {tb.cycle})")
            cons["pending"] = None
        if cons["state"] == "wait" and int(dut.r_ready.value) and received < len(produced):
            cons["state"], cons["todo"] = "read", rng.sample(range(block_len), block_len)
        if cons["state"] == "read" and rng.random() >= stall["cons"]:
            addr = cons["todo"].pop()
            inp["r_en"], inp["r_addr"] = 1, addr
            cons["pending"] = (received, addr)
            if not cons["todo"]:
                cons["state"], cons["release_at"] = "release", tb.cycle + rng.choice([0, 0, 1, 3])
        if cons["state"] == "release" and tb.cycle >= cons["release_at"]:
            # Releasing in the cycle of the last read is allowed: that read still sees the old half.
            assert int(dut.r_ready.value), "consumer's half stopped being FULL before its release"
            inp["r_release"] = 1
            received += 1
            cons["state"] = "wait"
        # -- producer
        if prod["state"] == "acquire" and len(produced) < n_blocks and rng.random() >= stall["prod"]:
            if int(dut.w_ready.value):
                inp["w_acquire"] = 1
                prod["half"] = int(dut.w_next.value)
                prod["block"] = [None] * depth
                order = rng.sample(range(block_len), block_len)
                order += [rng.randrange(block_len) for _ in range(rng.randrange(3))]     # rewrites: last wins
                prod["todo"], prod["state"] = order, "first"
        elif prod["state"] == "first":
            prod["state"] = "write"          # the half becomes FILLING at the acquire edge: write from now on
        if prod["state"] == "write" and rng.random() >= stall["prod"]:
            addr, word = prod["todo"].pop(0), tb.random_word()
            inp.update(w_sel=prod["half"], w_addr=addr, w_data=word, w_en=(1 << (tb.width // tb.gran)) - 1)
            prod["block"][addr] = word
            if not prod["todo"]:
                # Commit 0-6 cycles later; the producer may already acquire and fill the next half meanwhile.
                # The block is expected from the cycle of its last write on, in order (commits stay in order).
                produced.append(prod["block"])
                commits.append((tb.cycle + rng.choice([0, 0, 1, 2, 6]), prod["half"]))
                prod["state"] = "acquire"
        if commits and tb.cycle >= commits[0][0]:
            at, half = commits.pop(0)
            inp["w_commit"], inp["w_commit_sel"] = 1, half
        ev = await tb.step(inp)
        if ev["write"] or ev["read_full"]:
            busy_cycles += 1
            overlap_cycles += int(ev["overlap"])
    tb.log.info("%d blocks of %d words in %d cycles; producer and consumer both active in %d of %d busy cycles "
                "(%.0f%%); both halves FILLING in %d cycles", n_blocks, block_len, tb.cycle, overlap_cycles,
                busy_cycles, 100 * overlap_cycles / max(1, busy_cycles), tb.events.get("both_filling", 0))
    assert overlap_cycles > 0, "the producer never wrote while the consumer read: no ping-pong overlap"
    assert tb.events.get("both_filling", 0) > 0, "the pipelined producer never held both halves"
