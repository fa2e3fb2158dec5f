"""Table 3.4 of the thesis, modeled: training-step time of the Table 3.3 model on the accelerator at 100 MHz
(thesis schedule vs the optimized one, sim/optimizer.py) against a PyTorch float TT training step on this CPU.

Key ``schedule``: ``speedup_batch32`` (thesis-schedule cycles / optimized cycles), ``seconds_per_batch32_optimized``
and ``..._thesis`` (at 100 MHz), ``cpu_seconds_per_batch32``, and ``rows``: per batch size (1, 8, 32, 128) the
MACs, modeled cycles and seconds of both schedules, utilization of the 128 MAC/cycle peak, the MAC lower bound
(MACs / 128) and the per-unit bound (PE3 has 16 multipliers), the optimized schedule's choices and the CPU time.
A step is the ``load`` (weights change every step), ``forward`` and ``backward`` programs; the thesis times
"only forward and backward propagation", so ``seconds_fwd_bwd_*`` leave the load out.

The CPU baseline is sw/tt/layers.TTNet (right-to-left TT contraction, never forming ``W``) in float32:
forward, softmax cross-entropy, backward; best of repeated steps with ``torch.set_num_threads(2)`` (and 1).
"""

from __future__ import annotations

import time

import numpy as np

from ultratrain.sim.compiler import compile_network, thesis_table33_network
from ultratrain.sim.cycle_model import CycleModel
from ultratrain.sim.optimizer import network_cost, optimize, pe3_floor
from ultratrain.sim.schedules import compile_schedule

BATCHES = (1, 8, 32, 128)
CLOCK_HZ = 100e6
THESIS_TABLE_3_4 = {"rpi3b_seconds_per_batch": 5.34, "fpga_seconds_per_batch": 0.09, "clock_hz": 100e6}


def cpu_step_seconds(batch: int, repeats: int = 20, threads: int = 2) -> float:
    """Best wall time of one float32 forward + cross-entropy + backward of the Table 3.3 TT model.

    The minimum over ``repeats`` steps (after warm-up) is the least disturbed by other load on the machine.
    """
    import torch

    from ultratrain.sw.tt.layers import TTNet
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        net = TTNet(thesis_table33_network(16), seed=0, dtype=torch.float32)
        x = torch.rand(batch, 896)
        y = torch.randint(0, 10, (batch,))
        times = []
        for i in range(repeats + 3):
            start = time.perf_counter()
            net.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            if i >= 3:                       # warm-up steps excluded
                times.append(time.perf_counter() - start)
        return float(np.min(times))
    finally:
        torch.set_num_threads(previous)


def schedule_rows(model: CycleModel | None = None, batches=BATCHES, cpu: bool = True) -> dict:
    model = model or CycleModel(clock_hz=CLOCK_HZ)
    spec = thesis_table33_network(16)
    rows = []
    for batch in batches:
        thesis = network_cost(compile_network(spec, batch), model)
        thesis_fb = network_cost(compile_network(spec, batch), model, ("forward", "backward"))
        opt = optimize(spec, batch, model)
        net = compile_schedule(spec, batch, opt.schedule)
        best = network_cost(net, model)
        best_fb = network_cost(net, model, ("forward", "backward"))
        row = {
            "batch": batch,
            "macs_thesis": thesis["macs"], "macs_optimized": best["macs"],
            "cycles_thesis": thesis["cycles"], "cycles_optimized": best["cycles"],
            "seconds_thesis": thesis["seconds"], "seconds_optimized": best["seconds"],
            "seconds_fwd_bwd_thesis": thesis_fb["seconds"], "seconds_fwd_bwd_optimized": best_fb["seconds"],
            "utilization_thesis": thesis["utilization"], "utilization_optimized": best["utilization"],
            "mac_bound_cycles_optimized": best["mac_bound_cycles"],
            "unit_bound_cycles_optimized": best["unit_bound_cycles"],
            "cycles_over_mac_bound_optimized": best["cycles"] / best["mac_bound_cycles"],
            "pe3_cycles_thesis": thesis["per_unit"].get("PE3", {}).get("cycles", 0),
            "pe3_cycles_optimized": best["per_unit"].get("PE3", {}).get("cycles", 0),
            "speedup": thesis["cycles"] / best["cycles"],
            # PE3's floor over every batch contraction family (sim/optimizer.pe3_floor), at its full 16 lanes
            "pe3_floor_cycles_any_method": sum(pe3_floor(layer, batch)[0] for layer in spec.layers)
                                           // model.cfg.pe3_lanes,
            "optimized_schedule": [s.describe() for s in opt.schedule.layers],
            "instructions_thesis": thesis["instructions"], "instructions_optimized": best["instructions"],
        }
        if cpu:
            row["cpu_seconds"] = cpu_step_seconds(batch)
            row["cpu_seconds_1thread"] = cpu_step_seconds(batch, threads=1)
        rows.append(row)
    return {"rows": rows, "params": model.params.as_dict(), "clock_hz": model.clock_hz}


def run() -> dict:
    result = schedule_rows()
    by_batch = {r["batch"]: r for r in result["rows"]}
    b32 = by_batch[32]
    return {"schedule": {
        "speedup_batch32": b32["speedup"],
        "seconds_per_batch32_optimized": b32["seconds_optimized"],
        "seconds_per_batch32_thesis": b32["seconds_thesis"],
        "cpu_seconds_per_batch32": b32["cpu_seconds"],
        "cpu_over_optimized_batch32": b32["cpu_seconds"] / b32["seconds_optimized"],
        "cycles_over_mac_bound_batch32": b32["cycles_over_mac_bound_optimized"],
        # speedup_batch32 cannot exceed this on 16 PE3 lanes, whatever the schedule (docs/results/performance.md)
        "max_speedup_batch32_pe3_floor": b32["cycles_thesis"] / b32["pe3_floor_cycles_any_method"],
        "thesis_table_3_4": THESIS_TABLE_3_4,
        **result,
    }}


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))
