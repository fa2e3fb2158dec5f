"""A board-free accelerator behind PYNQ's own device abstraction, recording every transaction.

PYNQ's test suite mocks hardware by subclassing ``pynq.Device`` (``MockRegisterDevice.check_transactions``,
``MockAllocateDevice.check_memops``); :class:`RecordingDevice` does the same for the accelerator:

* ``REGISTER_RW`` capability: ``pynq.MMIO`` (and so ``DefaultIP.read/write``) reaches
  :meth:`read_registers` / :meth:`write_registers`; the register file of ``sim/contract.REGISTERS`` is
  modelled here and START runs the golden executor on the device-side DRAM.
* ``allocate`` returns real ``PynqBuffer`` objects over host memory; the device-side DRAM is a *separate*
  copy that only ``flush`` fills and only ``invalidate`` reads back. After each program every host copy is
  overwritten with a poison pattern (what stale cache lines look like), so a driver that forgets a flush
  computes on stale data and one that forgets an invalidate reads poison.
* ``log`` lists every operation in order: ``("write", reg, value)``, ``("read", reg, value)``,
  ``("allocate", addr, nbytes)``, ``("flush", addr, nbytes)``, ``("invalidate", addr, nbytes)``,
  ``("start", prog_addr, count)``.
"""

from __future__ import annotations

import struct

import numpy as np
import pynq

from ultratrain.host.backends.pynq import UltraTrainIP, host_buffer
from ultratrain.sim.contract import (CONTRACT_VERSION, CTRL_IRQ_ENABLE, CTRL_RESET, CTRL_START, DEFAULT_CONFIG,
                                     DEVICE_ID, REG, STATUS_BUSY, STATUS_DONE, STATUS_ERROR, HardwareConfig)
from ultratrain.sim.executor import GoldenDevice, Memory

NAMES = {offset: name for name, offset in REG.items()}
IP_BASE = 0xA000_0000
DDR_BASE = 0x6000_0000
POISON = 0xA5


class RecordingDevice(pynq.Device):
    """The accelerator as a ``pynq.Device`` (see the module docstring).

    Parameters
    ----------
    busy_polls : int
        STATUS reads that still report BUSY after START (exercises the polling loop).
    hang : bool
        Never finish (exercises the timeout).
    identity : dict
        Overrides of ID / VERSION / HWCFG* register values (exercises the identity check).
    alloc_limit : int
        Bytes ``allocate`` hands out in total before it fails like an exhausted CMA pool.
    """

    capabilities = {"REGISTER_RW": True}

    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG, busy_polls: int = 2, hang: bool = False,
                 identity: dict | None = None, ddr_bytes: int = 64 << 20, alloc_limit: int | None = None,
                 cycle_model=None):
        super().__init__("ultratrain-mock")
        self.cfg, self.busy_polls, self.hang = cfg, busy_polls, hang
        self.ddr = Memory(ddr_bytes, base=DDR_BASE)
        self.golden = GoldenDevice(self.ddr, cfg, cycle_model or (lambda desc: (100 + desc.macs() // 128, 3)))
        self.alloc_limit = ddr_bytes if alloc_limit is None else alloc_limit
        self._next = DDR_BASE
        self.buffers: list[tuple[int, np.ndarray]] = []     # (device address, host storage)
        self.log: list[tuple] = []
        major, minor = CONTRACT_VERSION
        self.regs = {"ID": DEVICE_ID, "VERSION": major << 16 | minor, **cfg.hwcfg_registers()}
        self.regs.update(identity or {})
        self._reset_state()
        self.ctrl_irq = False

    # -- pynq.Device interface ------------------------------------------------------------------------------

    def allocate(self, shape, dtype, **kwargs):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self._next + nbytes > DDR_BASE + self.alloc_limit:
            raise RuntimeError(f"mock CMA exhausted ({nbytes} bytes asked)")
        addr = self._next
        self._next += -(-nbytes // 4096) * 4096
        storage = np.zeros(nbytes, dtype=np.uint8)
        self.buffers.append((addr, storage))
        self.log.append(("allocate", addr, nbytes))
        return host_buffer(storage, self, addr, bo=len(self.buffers) - 1).view(dtype).reshape(shape)

    def flush(self, bo, offset, ptr, size):
        addr, storage = self.buffers[bo]
        self.ddr.write_bytes(addr + offset, storage[offset:offset + size].copy())
        self.log.append(("flush", addr + offset, size))

    def invalidate(self, bo, offset, ptr, size):
        addr, storage = self.buffers[bo]
        storage[offset:offset + size] = self.ddr.read_bytes(addr + offset, size)
        self.log.append(("invalidate", addr + offset, size))

    def read_registers(self, address, length):
        name = NAMES[address - IP_BASE]
        value = self._read(name)
        self.log.append(("read", name, value))
        return struct.pack("<I", value)[:length]

    def write_registers(self, address, data):
        name = NAMES[address - IP_BASE]
        value = struct.unpack("<I", bytes(data))[0]
        self.log.append(("write", name, value))
        self._write(name, value)

    # -- the register file ----------------------------------------------------------------------------------

    def _reset_state(self):
        self.status, self.pc, self.cycles, self.polls_left = 0, 0, 0, 0
        self.pending = None          # status to report once the BUSY polls are used up

    def _read(self, name: str) -> int:
        if name == "STATUS":
            if self.pending is not None:
                if self.hang or self.polls_left > 0:
                    self.polls_left -= 1
                    return STATUS_BUSY
                self.status, self.pending = self.pending, None
            return self.status
        if name == "PC":
            return self.pc
        if name == "CYCLES_LO":
            return self.cycles & 0xFFFF_FFFF if self.pending is None else 0
        if name == "CYCLES_HI":
            return self.cycles >> 32 if self.pending is None else 0
        if name in ("PE1_BUSY", "PE2_BUSY", "PE3_BUSY", "VEC_BUSY", "LOAD_BUSY", "AXI_STALL"):
            return 7 if self.pending is None else 0
        return int(self.regs.get(name, 0))

    def _write(self, name: str, value: int) -> None:
        if name == "CTRL":
            self.ctrl_irq = bool(value & CTRL_IRQ_ENABLE)
            if value & CTRL_RESET:
                self._reset_state()
            if value & CTRL_START and self.pending is None and not self.status & STATUS_BUSY:
                self._start()
        elif name == "STATUS":
            self.status &= ~(value & (STATUS_DONE | STATUS_ERROR))
            if not self.status & (STATUS_DONE | STATUS_ERROR):
                self.status &= ~0xFF00
        elif name in ("PROG_ADDR", "PROG_COUNT"):
            self.regs[name] = value

    def _start(self):
        prog_addr, count = self.regs.get("PROG_ADDR", 0), self.regs.get("PROG_COUNT", 0)
        self.log.append(("start", prog_addr, count))
        result = self.golden.run(prog_addr, count)
        # Every host copy is now stale (as if the ARM's caches held old lines): only invalidate makes the
        # device's writes visible, and the host's own earlier writes are in DDR only if they were flushed.
        for _, storage in self.buffers:
            storage[:] = POISON
        self.pc = result.pc
        self.cycles = 1000 + 10 * (result.pc + 1)
        self.polls_left = self.busy_polls
        code = int(result.error)
        self.pending = STATUS_DONE if code == 0 else STATUS_ERROR | code << 8

    # -- helpers for tests ----------------------------------------------------------------------------------

    def ip(self) -> UltraTrainIP:
        """The driver as ``Overlay`` would build it from a ``.hwh`` description (no interrupt wired)."""
        return UltraTrainIP({"phys_addr": IP_BASE, "addr_range": 0x1000, "device": self,
                             "fullpath": "ultratrain_0", "type": UltraTrainIP.bindto[0]})

    def events(self, *kinds):
        return [e for e in self.log if e[0] in kinds]


class FakeInterrupt:
    """``pynq.Interrupt``'s interface (``async wait()``) for a device that raises its line at once."""

    def __init__(self, device: RecordingDevice):
        self.device, self.waits = device, 0

    async def wait(self):
        self.waits += 1
        self.device.log.append(("irq_wait",))
        self.device.polls_left = 0      # the line rises when the program is done


class FakeClocks:
    """``pynq.Clocks``' ``fclk0_mhz`` property; ``actual`` simulates a PL clock source that misses."""

    def __init__(self, actual=None):
        self._set, self.actual = None, actual

    @property
    def fclk0_mhz(self):
        return self.actual if self.actual is not None else self._set

    @fclk0_mhz.setter
    def fclk0_mhz(self, value):
        self._set = value
