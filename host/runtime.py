"""Run compiled networks on a device backend: memory plan, weight upload, forward and backward programs.

This is the part of the host driver that is the same for every backend (emulated, RTL co-simulation, PYNQ
board). A backend provides ``alloc(nbytes) -> addr``, ``write/read`` (int16 or float elements),
``write_bytes/read_bytes`` and ``run(prog_addr, count)`` (raising on a device error); see
``host/backends/``. Numpy only: it runs on the board's ARM core.

Exponents (section 3.4.3) are given per tensor; descriptors are re-assembled only when an exponent of the
program changes, so a training step costs two ``run`` calls and the tensor transfers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sim.compiler import CompiledNetwork, assemble
from ..sim.contract import DESCRIPTOR_BYTES, encode_program, pack_bias_words, pack_weight_words

__all__ = ["NetworkRuntime", "TensorStats", "WriteBackError"]


class WriteBackError(RuntimeError):
    """A descriptor's write-back does not say done: not executed, or a stale copy was read."""


@dataclass
class TensorStats:
    """What the device reported about one tensor in the last run (summed over its descriptors)."""
    sum_abs: int = 0
    saturated: int = 0
    cycles: int = 0

    def mean_abs(self, size: int) -> float:
        return self.sum_abs / size if size else 0.0


class NetworkRuntime:
    """One compiled network on one backend: buffers are allocated once and reused every step."""

    def __init__(self, net: CompiledNetwork, backend):
        self.net, self.backend = net, backend
        self.float_mode = bool(getattr(backend, "float_mode", False))
        self.addresses = {name: backend.alloc(spec.nbytes) for name, spec in net.tensors.items()}
        self.rings = {name: backend.alloc((len(ops) + 1) * DESCRIPTOR_BYTES) for name, ops in net.programs.items()}
        self._assembled: dict[str, tuple] = {}
        self.last_stats: dict[str, TensorStats] = {}
        self.last_cycles: dict[str, int] = {}
        self._names: dict[str, list] = {}
        self._dsts: dict[str, tuple] = {}

    # -- weights -------------------------------------------------------------------------------------------

    def upload_parameters(self, cores_per_layer, biases, weight_exps=None, bias_exps=None) -> None:
        """Quantized cores (ints in [-8, 7], or floats in float mode) and biases -> weight and bias memory."""
        net = self.net
        for li, layer in enumerate(net.spec.layers):
            if len(cores_per_layer[li]) != layer.d:
                raise ValueError(f"layer {li} has {layer.d} cores, got {len(cores_per_layer[li])}")
            for k, core in enumerate(cores_per_layer[li]):
                if np.size(core) != np.prod(layer.core_shape(k)):
                    raise ValueError(f"layer {li} core {k}: expected shape {layer.core_shape(k)}, "
                                     f"got {np.shape(core)}")
        w_image = net.weight_image(cores_per_layer)
        b_image = net.bias_image(biases)
        if self.float_mode:
            self.backend.write(self.addresses["weights"], w_image.astype(np.float64))
            self.backend.write(self.addresses["biases"], b_image.astype(np.float64))
        else:
            self.backend.write_bytes(self.addresses["weights"], pack_weight_words(w_image).view(np.uint8))
            self.backend.write_bytes(self.addresses["biases"], pack_bias_words(b_image).ravel())
        self.run("load", {}, weight_exps or _zeros(net), bias_exps or [0] * len(net.spec.layers))

    # -- tensors -------------------------------------------------------------------------------------------

    def write_tensor(self, name: str, values) -> None:
        spec = self.net.tensors[name]
        values = np.asarray(values)
        if values.size != spec.size:
            raise ValueError(f"tensor {name}: expected {spec.shape} ({spec.size} elements), got {values.shape}")
        self.backend.write(self.addresses[name], values.ravel())

    def read_tensor(self, name: str) -> np.ndarray:
        spec = self.net.tensors[name]
        return np.asarray(self.backend.read(self.addresses[name], spec.size)).reshape(spec.shape)

    # -- programs ------------------------------------------------------------------------------------------

    def _program(self, name: str, exps: dict, weight_exps, bias_exps):
        ops = self.net.programs[name]
        names = self._names.get(name)
        if names is None:
            names = self._names[name] = sorted({n for op in ops for n in (op.dst, op.src_a, op.src_b, op.mask_of)
                                                if n})
        key = (tuple(exps.get(n, 0) for n in names), tuple(map(tuple, weight_exps)), tuple(bias_exps))
        cached = self._assembled.get(name)
        if cached is None or cached[0] != key:
            full_exps = {n: exps.get(n, 0) for n in names}
            descriptors = assemble(self.net, name, self.addresses, full_exps, weight_exps, bias_exps)
            cached = (key, encode_program(descriptors), len(descriptors))
            self._assembled[name] = cached
        return cached[1], cached[2]

    def run(self, name: str, exps: dict, weight_exps, bias_exps) -> dict[str, TensorStats]:
        """Assemble (if exponents changed), write the ring, run; returns per-tensor statistics."""
        ring, count = self._program(name, exps, weight_exps, bias_exps)
        addr = self.rings[name]
        self.backend.write_bytes(addr, ring)
        self.backend.run(addr, count)
        raw = self.backend.read_bytes(addr, count * DESCRIPTOR_BYTES)
        # Write-back words of every descriptor at once (layout of contract.Writeback: w9 saturated, w10-11
        # sum of |outputs|, w12 cycles), summed per destination tensor.
        ops = self.net.programs[name]
        all_words = np.frombuffer(bytes(raw), dtype="<u4").reshape(count, DESCRIPTOR_BYTES // 4)
        # Every descriptor up to END must say done without error (w8 == 1). Anything else means the device did
        # not run it, or one side saw a stale copy of the ring (a cache not flushed/invalidated on the board):
        # statistics from it would silently steer the scale selection wrong.
        bad = np.flatnonzero(all_words[:, 8] != 1)
        if bad.size:
            i = int(bad[0])
            raise WriteBackError(f"program {name!r}: descriptor {i} of {count} has write-back status "
                                 f"{int(all_words[i, 8]):#010x} instead of done (0x1): the device did not finish "
                                 f"it, or one side saw a stale ring (cache not flushed before the run or not invalidated after it)")
        words = all_words[:len(ops)]
        saturated = words[:, 9].astype(np.int64)
        sum_abs = words[:, 10].astype(np.int64) | (words[:, 11].astype(np.int64) << 32)
        cycles = words[:, 12].astype(np.int64)
        dst_names, dst_index = self._destinations(name)
        stats: dict[str, TensorStats] = {}
        for column, field_name in ((sum_abs, "sum_abs"), (saturated, "saturated"), (cycles, "cycles")):
            totals = np.zeros(len(dst_names) + 1, dtype=np.int64)
            np.add.at(totals, dst_index, column)
            for j, dst in enumerate(dst_names):
                setattr(stats.setdefault(dst, TensorStats()), field_name, int(totals[j]))
        self.last_stats.update(stats)
        self.last_cycles[name] = int(cycles.sum())
        return stats

    def _destinations(self, name: str):
        """Destination tensors of a program and, per instruction, its destination's index (last: none)."""
        cached = self._dsts.get(name)
        if cached is None:
            ops = self.net.programs[name]
            dst_names = list(dict.fromkeys(op.dst for op in ops if op.dst))
            position = {dst: j for j, dst in enumerate(dst_names)}
            cached = self._dsts[name] = (dst_names, np.array([position.get(op.dst, len(dst_names)) for op in ops],
                                                              dtype=np.int64))
        return cached

    def forward(self, x, exps, weight_exps, bias_exps) -> np.ndarray:
        """Write the input batch, run the forward program, return the logits (ints or floats)."""
        self.write_tensor("x", x)
        self.run("forward", exps, weight_exps, bias_exps)
        return self.read_tensor("logits")

    def backward(self, grad_logits, exps, weight_exps, bias_exps):
        """Write dLoss/dlogits, run the backward program; returns ``(factor_grads, bias_grads)`` per layer.

        Factor gradients are returned in the core shape ``(R_k, m_k, n_k, R_k+1)``.
        """
        last = len(self.net.spec.layers) - 1
        self.write_tensor(f"G{last}", grad_logits)
        self.run("backward", exps, weight_exps, bias_exps)
        factor_grads, bias_grads = [], []
        for li, layer in enumerate(self.net.spec.layers):
            grads = []
            for k, name in enumerate(self.net.factor_grads[li]):
                R0, m, n, R1 = layer.core_shape(k)
                if self.net.factor_grad_layouts[li][k] == "mn":      # stored [R_k][m][n][R_k+1] already
                    grads.append(self.read_tensor(name).reshape(R0, m, n, R1))
                else:                                                # canonical [R_k][n][m][R_k+1]
                    grads.append(self.read_tensor(name).reshape(R0, n, m, R1).transpose(0, 2, 1, 3))
            factor_grads.append(grads)
            bias_grads.append(self.read_tensor(f"L{li}.db"))
        return factor_grads, bias_grads


def _zeros(net: CompiledNetwork):
    return [[0] * layer.d for layer in net.spec.layers]

