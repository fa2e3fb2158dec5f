"""cocotb bench: whole descriptor programs on the accelerator top, DRAM (AxiRam) without stalls.

``ULTRATRAIN_PERF_PROGRAMS`` names a JSON file ``{"ram_size": n, "programs": [{"name", "addr", "hex"}]}`` (rings
assembled by tests/perf/calibrate.py from compiled networks; every tensor the rings point at lies in the RAM and
starts as zeros: timing does not depend on values). The programs run in order (``load`` first fills the weight
memory); for each the CYCLES register and every descriptor's write-back cycles go to ``ULTRATRAIN_PERF_OUT``.
"""

import json
import os

import cocotb

from tbcommon import TopTB
from ultratrain.sim.contract import DESCRIPTOR_BYTES, read_writeback


@cocotb.test()
async def measure_programs(dut):
    with open(os.environ["ULTRATRAIN_PERF_PROGRAMS"]) as f:
        spec = json.load(f)
    tb = TopTB(dut, ram_size=spec["ram_size"], pause=0.0)
    await tb.reset()
    results = []
    for prog in spec["programs"]:
        raw = bytes.fromhex(prog["hex"])
        count = len(raw) // DESCRIPTOR_BYTES
        tb.write_bytes(prog["addr"], raw)
        regs = await tb.run_program(prog["addr"], count, timeout_cycles=50_000_000)
        ring = tb.ram.read(prog["addr"], count * DESCRIPTOR_BYTES)
        wbs = [read_writeback(ring, i) for i in range(count)]
        assert (regs["STATUS"] >> 1) & 1 and all(wb.done for wb in wbs), f"{prog['name']}: STATUS {regs['STATUS']:#x}"
        results.append({"name": prog["name"], "cycles": regs["CYCLES"], "writeback_cycles": [wb.cycles for wb in wbs],
                        "busy": {k: regs[k] for k in ("PE1_BUSY", "PE2_BUSY", "PE3_BUSY", "VEC_BUSY", "LOAD_BUSY",
                                                        "AXI_STALL")}})
        tb.log.info("%s: %d descriptors, %d cycles", prog["name"], count, regs["CYCLES"])
    with open(os.environ["ULTRATRAIN_PERF_OUT"], "w") as out:
        json.dump(results, out)
