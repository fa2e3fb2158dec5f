"""The emulated device: the golden executor (sim/executor.py) behind the backend interface of host/runtime.py."""

from __future__ import annotations

from ...sim.contract import DEFAULT_CONFIG, TENSOR_ALIGN, HardwareConfig
from ...sim.executor import DeviceError, GoldenDevice, Memory

__all__ = ["EmulatedBackend"]


class EmulatedBackend:
    """DRAM is a :class:`Memory`; ``alloc`` is a bump allocator (buffers live as long as the backend)."""

    name = "emulated"

    def __init__(self, size: int = 64 << 20, cfg: HardwareConfig = DEFAULT_CONFIG, float_mode: bool = False,
                 cycle_model=None):
        self.memory = Memory(size, float_mode=float_mode)
        self.device = GoldenDevice(self.memory, cfg, cycle_model)
        self.cfg, self.float_mode = cfg, float_mode
        self._next = self.memory.base

    def alloc(self, nbytes: int) -> int:
        addr = self._next
        end = addr + -(-nbytes // TENSOR_ALIGN) * TENSOR_ALIGN
        if end > self.memory.base + self.memory.size:
            raise MemoryError(f"emulated DRAM exhausted: asked for {nbytes} bytes, "
                              f"{self.memory.base + self.memory.size - addr} left of {self.memory.size}")
        self._next = end
        return addr

    def write(self, addr: int, values) -> None:
        self.memory.write(addr, values)

    def read(self, addr: int, count: int):
        return self.memory.read(addr, count).copy()

    def write_bytes(self, addr: int, data) -> None:
        self.memory.write_bytes(addr, data)

    def read_bytes(self, addr: int, n: int) -> bytes:
        return bytes(self.memory.read_bytes(addr, n))

    def run(self, prog_addr: int, count: int):
        """Run a program; raises :class:`DeviceError` if the device stops with an error."""
        return self.device.run(prog_addr, count, raise_on_error=True)

    def close(self) -> None:
        pass


DeviceError = DeviceError
