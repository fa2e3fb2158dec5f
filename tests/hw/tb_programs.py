"""cocotb bench: complete compiled programs (one training step: load, forward, backward) on the top.

The workload (tests/hw/workloads.py) is recorded on the golden device by the real host code; each run is
replayed here with its DRAM image in AxiRam, and every byte of DRAM afterwards (every tensor, every
write-back but its cycle counts) must equal the golden result. ``ULTRATRAIN_NETWORK`` picks the network
("small" by default, "thesis" for the Table 3.3 model), ``ULTRATRAIN_BATCH`` the batch size.
"""

import os

import cocotb
import numpy as np

from tbcommon import TopTB
from workloads import mask_cycles, training_step


@cocotb.test()
async def training_step_matches_golden(dut):
    network = os.environ.get("ULTRATRAIN_NETWORK", "small")
    batch = int(os.environ.get("ULTRATRAIN_BATCH", "8"))
    tb = TopTB(dut, ram_size=16 << 20)
    await tb.reset()
    work = training_step(network, batch, seed=tb.seed % (1 << 32))
    tb.log.info("%s network, batch %d: %d runs, %d MACs", network, batch, len(work.runs), work.macs())
    total_cycles = 0
    for run in work.runs:
        tb.ram.write(0, run.before.tobytes())
        regs = await tb.run_program(run.prog_addr, run.count, timeout_cycles=50_000_000)
        assert regs["STATUS"] & 0b110 == 0b010, f"{run.name}: STATUS {regs['STATUS']:#x} (PC {regs['PC']})"
        got = np.frombuffer(tb.ram.read(0, run.after.size), dtype=np.uint8)
        got = mask_cycles(got, run.prog_addr, run.count)
        ref = mask_cycles(run.after, run.prog_addr, run.count)
        diff = np.flatnonzero(got != ref)
        if diff.size:
            addr = int(diff[0]) & ~1
            rtl = int(np.frombuffer(got[addr:addr + 2].tobytes(), dtype=np.int16)[0])
            gold = int(np.frombuffer(ref[addr:addr + 2].tobytes(), dtype=np.int16)[0])
            raise AssertionError(f"{run.name}: first mismatch in {work.region_of(addr)}: rtl={rtl} golden={gold} "
                                 f"({diff.size} bytes differ)")
        total_cycles += regs["CYCLES"]
        tb.log.info("%s: %d descriptors, %d cycles, busy PE1/PE2/PE3/VEC/LOAD %d/%d/%d/%d/%d, stalls %d", run.name,
                    run.count, regs["CYCLES"], regs["PE1_BUSY"], regs["PE2_BUSY"], regs["PE3_BUSY"], regs["VEC_BUSY"],
                    regs["LOAD_BUSY"], regs["AXI_STALL"])
    tb.log.info("training step: %d cycles, %.1f MAC/cycle", total_cycles, work.macs() / total_cycles)
