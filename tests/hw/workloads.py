"""Complete compiled programs for the RTL: one training step of a TT network, recorded on the golden device.

:class:`RecordingBackend` is the emulated device (sim/executor.py behind host/backends/emulated.py) with DRAM
at address 0 — where the benches' AxiRam and the bench memory model live — that keeps, for every program
run, the DRAM image before and after. :func:`training_step` drives the real host code (``DeviceSession`` of
host/trainer.py: calibration, parameter upload, forward, loss, backward) on it for one batch, so the recorded
runs are the ``load``, ``forward`` and ``backward`` programs the compiler (sim/compiler.py) emits for that
network, with realistic exponents. An RTL bench replays each run: it writes the "before" image into its
DRAM, runs the program and compares the result with the "after" image (write-back cycle counts aside).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ultratrain.host.backends.emulated import EmulatedBackend
from ultratrain.sim.compiler import NetworkSpec, TTLayerSpec, thesis_table33_network
from ultratrain.sim.contract import (DEFAULT_CONFIG, DESCRIPTOR_BYTES, WMEM_LANES, Descriptor, Flag, HardwareConfig,
                                     Opcode, decode_program, encode_program)
from ultratrain.sim.executor import GoldenDevice, Memory

__all__ = ["RecordingBackend", "RecordedRun", "Workload", "training_step", "small_network", "mask_cycles",
           "NETWORKS", "pe3_multi_chunk", "PE3_MULTI_CHUNK_SHAPES"]


@dataclass
class RecordedRun:
    name: str
    prog_addr: int
    count: int
    before: np.ndarray          # uint8 DRAM image [0, used)
    after: np.ndarray

    def descriptors(self) -> list[Descriptor]:
        raw = self.before[self.prog_addr:self.prog_addr + self.count * DESCRIPTOR_BYTES].tobytes()
        return decode_program(raw)


class RecordingBackend(EmulatedBackend):
    """The golden device with DRAM at [0, size) that records every program run."""

    def __init__(self, size: int = 16 << 20, cfg: HardwareConfig = DEFAULT_CONFIG):
        super().__init__(size=64, cfg=cfg)
        self.memory = Memory(size, base=0)
        self.device = GoldenDevice(self.memory, cfg)
        self._next = 0x1000          # keep address 0 free: a zero pointer is then always a bug
        self.runs: list[RecordedRun] = []
        self.next_name = "run"

    def run(self, prog_addr: int, count: int):
        used = self._next
        before = self.memory.bytes[:used].copy()
        result = self.device.run(prog_addr, count, raise_on_error=True)
        self.runs.append(RecordedRun(self.next_name, prog_addr, count, before, self.memory.bytes[:used].copy()))
        return result


def mask_cycles(image: np.ndarray, prog_addr: int, count: int) -> np.ndarray:
    """A copy of ``image`` with the write-back cycle and stall words (w12, w13) of the ring zeroed."""
    image = image.copy()
    for i in range(count):
        start = prog_addr + i * DESCRIPTOR_BYTES + 48
        image[start:start + 8] = 0
    return image


@dataclass
class Workload:
    spec: NetworkSpec | None       # None for a synthetic program (pe3_multi_chunk)
    batch: int
    runs: list[RecordedRun]
    regions: dict = field(default_factory=dict)     # name -> (addr, nbytes), for mismatch reports

    def region_of(self, addr: int) -> str:
        for name, (start, nbytes) in self.regions.items():
            if start <= addr < start + nbytes:
                return f"{name}[{(addr - start) // 2}]"
        return f"address {addr:#x}"

    def macs(self) -> int:
        return sum(d.macs() for run in self.runs for d in run.descriptors())


def small_network() -> NetworkSpec:
    """A two-layer TT network that exercises every program path (a 3-core layer included) in few cycles."""
    return NetworkSpec((
        TTLayerSpec((2, 2, 16), (2, 2, 16), (16, 16), "relu", "L0"),
        TTLayerSpec((4, 16), (1, 16), (16,), "none", "L1"),
    ))


NETWORKS = {"small": small_network, "thesis": lambda: thesis_table33_network(16)}


def training_step(network: str = "small", batch: int = 8, seed: int = 0) -> Workload:
    """Record one training step (load, forward, backward) of ``network`` on the golden device."""
    from ultratrain.host.model import TTModel
    from ultratrain.host.trainer import DeviceSession

    spec = NETWORKS[network]()
    rng = np.random.default_rng(seed)
    backend = RecordingBackend()
    session = DeviceSession(spec, backend, batch=batch, eval_batch=batch, precision="fixed")
    model = TTModel(spec, rng)
    for li, layer in enumerate(spec.layers):      # non-zero biases, so ACT_FWD/ACT_BWD see them
        model.biases[li] = rng.normal(0.0, 0.05, size=layer.out_features)
    features = spec.layers[0].in_features
    images = rng.integers(0, 256, size=(batch, features), dtype=np.int64).astype(np.uint8)
    labels = rng.integers(0, 10, size=batch)
    session.calibrate(model, images, labels)
    # train_step uploads (load), runs forward, then backward; name each recorded run after its program.
    original_run = session.runtime.run

    def named_run(program, *args, **kwargs):
        backend.next_name = program
        return original_run(program, *args, **kwargs)

    session.runtime.run = named_run
    session.train_step(model, images, labels)
    regions = {}
    for runtime in (session.runtime,):
        for name, addr in runtime.addresses.items():
            regions[name] = (addr, runtime.net.tensors[name].nbytes)
        for name, addr in runtime.rings.items():
            regions[f"ring:{name}"] = (addr, (len(runtime.net.programs[name]) + 1) * DESCRIPTOR_BYTES)
    return Workload(spec, batch, backend.runs, regions)


# (a, c, d, ACC): outer products wider than one 16-lane chunk. The training programs' PE3 instructions are all
# single chunks (c = 16: one dW block of the last core each), so the benchmark adds these to measure PE3 on
# "operations larger than one buffer" (issue 3): the batch of 32, the last-core block height of 16, and the
# extremes of the chunk pipeline (a short sweep d = 4 that the reads limit, a long drain d = 64, ACC).
PE3_MULTI_CHUNK_SHAPES = ((32, 64, 16, False), (32, 256, 16, False), (32, 128, 64, False), (32, 128, 4, False),
                          (8, 256, 16, False), (32, 128, 16, True), (32, 64, 4, True))


def pe3_multi_chunk(seed: int = 0, shapes=PE3_MULTI_CHUNK_SHAPES) -> Workload:
    """One program of PE3 instructions with several 16-wide chunks on random data, recorded on the golden device."""
    rng = np.random.default_rng(seed)
    backend = RecordingBackend(size=4 << 20)
    descriptors, regions = [], {}
    for i, (a, c, d, acc) in enumerate(shapes):
        pitch_b = -(-d // WMEM_LANES) * WMEM_LANES       # PE3 strides are whole lanes (check_descriptor)
        src_a, src_b, dst = backend.alloc(2 * a * c), backend.alloc(2 * a * pitch_b), backend.alloc(2 * d * c)
        backend.write(src_a, rng.integers(-512, 512, size=a * c))
        backend.write(src_b, rng.integers(-512, 512, size=a * pitch_b))
        backend.write(dst, rng.integers(-4096, 4096, size=d * c))
        regions.update({f"pe3_{i}.A": (src_a, 2 * a * c), f"pe3_{i}.B": (src_b, 2 * a * pitch_b),
                        f"pe3_{i}.dst": (dst, 2 * d * c)})
        descriptors.append(Descriptor(Opcode.PE3, a=a, c=c, d=d, src_a=src_a, src_b=src_b, dst=dst, shift=6,
                                      stride_a=c, stride_b=pitch_b, flags=Flag.ACC if acc else Flag.NONE))
    raw = encode_program(descriptors + [Descriptor(Opcode.END)])
    prog = backend.alloc(len(raw))
    backend.write_bytes(prog, raw)
    backend.next_name = "pe3_multi_chunk"
    backend.run(prog, len(descriptors) + 1)
    regions["ring:pe3_multi_chunk"] = (prog, len(raw))
    return Workload(None, 0, backend.runs, regions)
