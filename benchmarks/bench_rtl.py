"""RTL benchmark: one training step of the Table 3.3 TT network on the Verilator-simulated accelerator.

Keys (issue 3):

* ``rtl_cycles`` — cycles per instruction kind (summed over the step, from the descriptor write-backs) and
  ``training_step`` (the CYCLES register over the load, forward and backward programs);
* ``pe_utilization`` — useful MACs / (128 MAC x cycles), same keys (the vector and load kinds do no MACs);
* ``pe_roofline_fraction`` — per kind and for the step, the roofline cycles over the measured ones. An
  instruction's roofline is the largest of its array time (MACs / array width: 128 for PE1/PE2, 16 for PE3)
  and the beats it must move on the AXI read and write channels (128 bits each per cycle) for the operand
  reuse of its dataflow;
* ``pe_roofline_fraction_multi_block`` — the same over only the PE instructions larger than one buffer
  (issue 3's target: ">= 90 % of its roofline on operations larger than one buffer"): PE1 with more than one
  block of ``pe1_rows`` rows, PE2 with more than one ``(a, 16-column)`` block, PE3 with more than one
  16-column chunk or row group — the ones where the ping-pong overlap can hide the loads and stores at all.
  Besides the step's, the bench runs, after the step and outside its totals, one program of multi-chunk PE3
  instructions at batch-32 sizes (tests/hw/workloads.py ``PE3_MULTI_CHUNK_SHAPES``, random data,
  write-backs checked against the golden device like the step's);
* ``rtl_sim_cycles_per_s`` — simulated cycles per wall-clock second while the programs run (Verilator,
  no Python per cycle: see tests/hw/tb_bench.py);
* ``rtl_training_step_by_batch`` — the same step at batch 1, 2, 3 and 4, each against issue 3's whole-step
  target (>= 70 % of the peak where the roofline allows it): ``of_peak``, ``roofline_allows``,
  ``of_roofline``, ``target_applies``, ``target_met`` and the multi-block fractions of its own instructions.

Setup: ``ut_axi_ram_model`` as DRAM (read latency 24 cycles, one beat per cycle per channel), batch 32 (the
trainer's default), exponents from the host's own calibration (tests/hw/workloads.py).
``ULTRATRAIN_BENCH_NETWORK`` / ``ULTRATRAIN_BENCH_BATCH`` override the workload,
``ULTRATRAIN_BENCH_SMALL_BATCHES`` the small batches (comma-separated, empty for none);
``ULTRATRAIN_BENCH_PE3_MULTI_CHUNK=0`` leaves out the multi-chunk PE3 program.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict

from ultratrain.sim import cycle_model
from ultratrain.sim.contract import DEFAULT_CONFIG, Opcode, pe3_block_count

PEAK = DEFAULT_CONFIG.peak_macs_per_cycle


def roofline_cycles(e: dict) -> float:
    """Cycles an instruction needs at least (sim/cycle_model.roofline_cycles) for a bench entry."""
    return cycle_model.roofline_cycles(Opcode[e["op"]], e["a"], e["b"], e["c"], e["d"], e.get("flags", 0))


def larger_than_one_buffer(e: dict) -> bool:
    """Whether a PE instruction needs more than one buffer fill (so ping-pong overlap applies)."""
    op, a, c = e["op"], e["a"], e["c"]
    if op == "PE1":
        return a > DEFAULT_CONFIG.pe1_rows
    if op == "PE2":
        return a * (c // DEFAULT_CONFIG.pe2_cols) > 1
    if op == "PE3":
        # several chunks, row groups or column groups
        return c > DEFAULT_CONFIG.pe3_lanes or pe3_block_count(e["b"]) > 1
    return False


def summarize(result: dict) -> dict:
    cycles, macs, roof = defaultdict(int), defaultdict(int), defaultdict(float)
    big_cycles, big_roof, big_count = defaultdict(int), defaultdict(float), defaultdict(int)
    step_runs = [r for r in result["runs"] if not r.get("extra")]
    step_cycles = sum(r["cycles"] for r in step_runs)
    for run in result["runs"]:
        for e in run["descriptors"]:
            if e["op"] == "END":
                continue
            bound = roofline_cycles(e)
            if larger_than_one_buffer(e):
                big_cycles[e["op"]] += e["cycles"]
                big_roof[e["op"]] += bound
                big_count[e["op"]] += 1
            if not run.get("extra"):
                cycles[e["op"]] += e["cycles"]
                macs[e["op"]] += e["macs"]
                roof[e["op"]] += bound
    kinds = sorted(cycles)
    rtl_cycles = {k: cycles[k] for k in kinds}
    rtl_cycles["training_step"] = step_cycles
    util = {k: round(macs[k] / (PEAK * cycles[k]), 4) for k in kinds if cycles[k]}
    total_macs = sum(macs.values())
    util["training_step"] = round(total_macs / (PEAK * step_cycles), 4)
    fraction = {k: round(roof[k] / cycles[k], 4) for k in kinds if cycles[k]}
    fraction["training_step"] = round(sum(roof.values()) / step_cycles, 4)
    wall = sum(r["wall_s"] for r in step_runs)
    return {
        "rtl_cycles": rtl_cycles,
        "pe_utilization": util,
        "pe_roofline_fraction": fraction,
        "pe_roofline_fraction_multi_block": {k: round(big_roof[k] / big_cycles[k], 4) for k in sorted(big_cycles)},
        "rtl_sim_cycles_per_s": round(step_cycles / wall),
        "rtl_workload": {"network": result["network"], "batch": result["batch"], "macs": total_macs,
                         "descriptors": sum(len(r["descriptors"]) for r in step_runs),
                         "roofline_cycles": round(sum(roof.values())),
                         "multi_block_instructions": dict(sorted(big_count.items())),
                         "dram_model": "ut_axi_ram_model, latency 24"},
    }


STEP_TARGET = 0.70          # issue 3: a whole step >= 70 % of the peak where the roofline allows it


def step_summary(result: dict) -> dict:
    """Issue 3's whole-step target for one simulated step: the fraction of the 128 MAC/cycle peak it reaches,
    the fraction its roofline allows, and whether the target (>= 70 % of peak) applies and is met."""
    s = summarize(result)
    macs, roof = s["rtl_workload"]["macs"], s["rtl_workload"]["roofline_cycles"]
    allows = macs / (PEAK * roof)
    reached = s["pe_utilization"]["training_step"]
    return {"cycles": s["rtl_cycles"]["training_step"], "of_peak": reached, "roofline_allows": round(allows, 4),
            "of_roofline": s["pe_roofline_fraction"]["training_step"],
            "multi_block": s["pe_roofline_fraction_multi_block"],
            "target_applies": allows >= STEP_TARGET, "target_met": reached >= STEP_TARGET}


def _simulate(run_bench, batch: str, network: str, pe3_extra: bool) -> dict:
    from ultratrain.hw.axi_ram_model import AXI_RAM_MODEL_VERILOG, BenchTop

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        env = {"ULTRATRAIN_BENCH_OUT": out, "ULTRATRAIN_NETWORK": network, "ULTRATRAIN_BATCH": batch,
               "ULTRATRAIN_BENCH_PE3_MULTI_CHUNK": "1" if pe3_extra else "0"}
        run_bench("bench_top", BenchTop, "tb_bench", extra_env=env, sim="verilator",
                  extra_verilog=AXI_RAM_MODEL_VERILOG, seed=1)
        with open(out) as f:
            return json.load(f)


def run() -> dict:
    """The batch-32 step (with the multi-chunk PE3 program) and, as ``rtl_training_step_by_batch``, the step
    at the small batches where the whole-step target can apply (``ULTRATRAIN_BENCH_SMALL_BATCHES``, default
    1,2,3,4; empty: none)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "hw"))
    from rtl import run_bench   # tests/hw/rtl.py: build once per source hash, run a cocotb module

    network = os.environ.get("ULTRATRAIN_BENCH_NETWORK", "thesis")
    pe3_extra = os.environ.get("ULTRATRAIN_BENCH_PE3_MULTI_CHUNK", "1") == "1"
    main = summarize(_simulate(run_bench, os.environ.get("ULTRATRAIN_BENCH_BATCH", "32"), network, pe3_extra))
    small = [b for b in os.environ.get("ULTRATRAIN_BENCH_SMALL_BATCHES", "1,2,3,4").split(",") if b.strip()]
    main["rtl_training_step_by_batch"] = {b.strip(): step_summary(_simulate(run_bench, b.strip(), network, False))
                                          for b in small}
    return main


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
