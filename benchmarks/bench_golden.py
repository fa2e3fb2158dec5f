"""Golden executor throughput on the Table 3.3 model (issue 2): ``macs_per_sample`` and ``golden_macs_per_s``.

``macs_per_sample`` counts the useful multiply-accumulates of one training step (forward + backward: PE1, PE2,
PE3 instructions of the compiled programs) at rank 16, divided by the batch. ``golden_macs_per_s`` runs the
fixed-point forward and backward programs on the emulated device at batch 32 with random in-range data and
reports MACs / wall seconds (best of several steps; other load on the machine lowers it), and MACs per CPU
second of this process (``golden_macs_per_cpu_s``), which is what a quiet machine's wall clock approaches.
"""

from __future__ import annotations

import time

import numpy as np

from ultratrain.host.backends.emulated import EmulatedBackend
from ultratrain.host.runtime import NetworkRuntime
from ultratrain.sim.compiler import compile_network, thesis_table33_network
from ultratrain.sim.contract import OutFormat


def make_runtime(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    spec = thesis_table33_network(16)
    net = compile_network(spec, batch)
    rt = NetworkRuntime(net, EmulatedBackend())
    weight_exps = [[-3] * layer.d for layer in spec.layers]
    bias_exps = [-6] * len(spec.layers)
    exps = {}
    for name, tensor in net.tensors.items():
        if tensor.kind == OutFormat.U8:
            exps[name] = -8
        elif tensor.role in ("grad", "weight_grad", "bias_grad"):
            exps[name] = -14
        else:
            exps[name] = -2
    exps["G0"] = exps["L1.dx"]
    cores = [[rng.integers(-8, 8, layer.core_shape(k)) for k in range(layer.d)] for layer in spec.layers]
    biases = [rng.integers(-128, 128, layer.out_features) for layer in spec.layers]
    rt.upload_parameters(cores, biases, weight_exps, bias_exps)
    x = rng.integers(0, 256, (batch, spec.layers[0].in_features))
    g = rng.integers(-4000, 4000, (batch, spec.layers[-1].out_features))
    return net, rt, (x, g, exps, weight_exps, bias_exps)


def run() -> dict:
    batch = 32
    net, rt, (x, g, exps, we, be) = make_runtime(batch)
    macs = net.macs("forward") + net.macs("backward")
    best = best_cpu = float("inf")
    for _ in range(8):
        start, start_cpu = time.perf_counter(), time.process_time()
        rt.forward(x, exps, we, be)
        rt.backward(g, exps, we, be)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return {
        "macs_per_sample": macs // batch,
        "golden_macs_per_s": macs / best,
        "golden_macs_per_cpu_s": macs / best_cpu,
        "golden_step_seconds_batch32": best,
    }
