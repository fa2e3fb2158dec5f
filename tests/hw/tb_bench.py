"""cocotb side of ``make bench`` (benchmarks/bench_rtl.py): one training step on BenchTop (Verilator).

No Python runs per cycle: the clock is cocotb's GPI clock, DRAM is the Verilog model ``ut_axi_ram_model``
loaded and read through the backdoor (``ram.mem``), and the test only waits for ``irq``. Every descriptor's
write-back is checked against the golden one (done, saturation count, sum |out|), and the per-descriptor
cycle counts go into the JSON file named by ``ULTRATRAIN_BENCH_OUT``.
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from workloads import pe3_multi_chunk, training_step
from ultratrain.sim.contract import CTRL_IRQ_ENABLE, CTRL_START, DESCRIPTOR_BYTES, REG, read_writeback

WORD = 16


class Backdoor:
    """Word access to the model's ``mem`` array; tracks what it holds to write only changed words."""

    def __init__(self, mem, words):
        self.mem = mem
        self.shadow = np.zeros((words, WORD), dtype=np.uint8)

    def load(self, image: np.ndarray) -> int:
        n = -(-image.size // WORD)
        padded = np.zeros(n * WORD, dtype=np.uint8)
        padded[:image.size] = image
        padded = padded.reshape(n, WORD)
        changed = np.flatnonzero(np.any(padded != self.shadow[:n], axis=1))
        for i in changed:
            self.mem[int(i)].value = int.from_bytes(padded[i].tobytes(), "little")
        self.shadow[:n] = padded
        return changed.size

    def read(self, addr: int, nbytes: int) -> bytes:
        first, last = addr // WORD, -(-(addr + nbytes) // WORD)
        raw = b"".join(int(self.mem[i].value).to_bytes(WORD, "little") for i in range(first, last))
        return raw[addr - first * WORD: addr - first * WORD + nbytes]


@cocotb.test()
async def bench_training_step(dut):
    network = os.environ.get("ULTRATRAIN_NETWORK", "thesis")
    batch = int(os.environ.get("ULTRATRAIN_BATCH", "32"))
    out = os.environ["ULTRATRAIN_BENCH_OUT"]
    # The clock toggles inside the simulator (cocotb's C++ clock), not in a Python coroutine: no Python runs per
    # cycle while a program executes (the test only wakes on irq).
    Clock(dut.clk, 10, unit="ns", impl="gpi").start(start_high=False)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    work = training_step(network, batch, seed=1)
    # After the step, PE3 instructions of several chunks (the step has single-chunk ones only): "extra" runs,
    # which the benchmark keeps out of the step's totals.
    runs = [(run, False) for run in work.runs]
    if os.environ.get("ULTRATRAIN_BENCH_PE3_MULTI_CHUNK", "1") == "1":
        runs += [(run, True) for run in pe3_multi_chunk(seed=1).runs]
    mem = Backdoor(dut.ram.mem, 1 << int(os.environ.get("ULTRATRAIN_RAM_WORDS_LOG2", "20")))
    result = {"network": network, "batch": batch, "runs": []}
    for run, extra in runs:
        loaded = mem.load(run.before)
        await axil.write_dword(REG["PROG_ADDR"], run.prog_addr)
        await axil.write_dword(REG["PROG_COUNT"], run.count)
        start = time.perf_counter()
        await axil.write_dword(REG["CTRL"], CTRL_START | CTRL_IRQ_ENABLE)
        await ReadOnly()
        if not int(dut.irq.value):
            await RisingEdge(dut.irq)
        await RisingEdge(dut.clk)
        wall = time.perf_counter() - start
        status = await axil.read_dword(REG["STATUS"])
        regs = {name: await axil.read_dword(REG[name]) for name in
                ("CYCLES_LO", "CYCLES_HI", "PE1_BUSY", "PE2_BUSY", "PE3_BUSY", "VEC_BUSY", "LOAD_BUSY", "AXI_STALL")}
        await axil.write_dword(REG["STATUS"], 0b110)
        assert status & 0b110 == 0b010, f"{run.name}: STATUS {status:#x}"
        ring = mem.read(run.prog_addr, run.count * DESCRIPTOR_BYTES)
        golden_ring = run.after[run.prog_addr:run.prog_addr + run.count * DESCRIPTOR_BYTES].tobytes()
        descs = run.descriptors()
        entries = []
        for i, desc in enumerate(descs):
            got, ref = read_writeback(ring, i), read_writeback(golden_ring, i)
            assert (got.done, got.error, got.saturated, got.sum_abs) == (ref.done, ref.error, ref.saturated,
                                                                         ref.sum_abs), \
                f"{run.name} descriptor {i} ({desc.opcode.name}): rtl {got} != golden {ref}"
            entries.append({"op": desc.opcode.name, "a": desc.a, "b": desc.b, "c": desc.c, "d": desc.d,
                            "flags": int(desc.flags), "macs": desc.macs(), "cycles": got.cycles,
                            "stalls": got.stall_cycles})
        cycles = regs["CYCLES_LO"] | regs["CYCLES_HI"] << 32
        result["runs"].append({"name": run.name, "extra": extra, "cycles": cycles, "wall_s": wall,
                               "words_loaded": loaded, "registers": regs, "descriptors": entries})
        dut._log.info("%s: %d descriptors, %d cycles in %.2f s (%.0f cycles/s)", run.name, run.count, cycles, wall,
                      cycles / wall)
    with open(out, "w") as f:
        json.dump(result, f)
