"""The PYNQ backend: the accelerator on the Ultra96-V2 behind the backend interface of ``host/runtime.py``.

Thesis section 3.5.1: the ARM core writes a program into DRAM, starts the programmable logic, waits for it
and reads the results. This module is that driver, written against PYNQ's own abstractions so that one code
path runs on the board, on a recording mock (``tests/board/``) and on the RTL co-simulation
(``host/backends/rtl.py``):

* :class:`UltraTrainIP` — a ``pynq.DefaultIP`` bound (``bindto``) to the accelerator's VLNV; register
  offsets come from ``sim/contract.REG`` (an RTL module reference has no register map in its ``.hwh``).
* :class:`PynqBackend` — buffers from ``pynq.allocate`` (a few large arenas allocated once and carved into
  tensors, so the contiguous-memory budget is used once and reused every step), a cache flush after every
  host write and an invalidate before every host read, START then an interrupt wait (polling with a
  timeout where no interrupt is wired), the accelerator RESET before every program so that nothing leaks
  from one call into the next, and the cycle counters read after each run.
* :func:`verify_bitstream` / :func:`write_manifest` — the ``.bit`` and its ``.hwh`` ship side by side with a
  manifest recording their SHA-256 hashes; a mismatch is a clear error, never wrong numbers.
* :meth:`PynqBackend.from_bitstream` — loads the overlay, sets the fabric clock explicitly and reads it
  back (Zynq UltraScale+ clock-source pitfalls, PYNQ issue 1607), and checks the ``ID``, ``VERSION`` and
  ``HWCFG*`` registers against the :class:`~ultratrain.sim.contract.HardwareConfig` the host compiles for.

Numpy and the standard library only (plus ``pynq``): it runs on the board's ARM core.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...sim.contract import (CONTRACT_VERSION, CTRL_IRQ_ENABLE, CTRL_RESET, CTRL_START, DEFAULT_CONFIG,
                             DESCRIPTOR_BYTES, DEVICE_ID, REG, REGISTERS, STATUS_BUSY, STATUS_DONE, STATUS_ERROR,
                             TENSOR_ALIGN, Descriptor, DescriptorError, ErrorCode, HardwareConfig)
from ...sim.executor import DeviceError

try:  # pynq imports on x86 too (the mock and co-simulation devices subclass pynq.Device)
    import pynq
    from pynq import DefaultIP
    from pynq.buffer import PynqBuffer
except ImportError as _err:  # pragma: no cover - pynq is a dev dependency and on every PYNQ image
    pynq = None
    DefaultIP = object
    PynqBuffer = None
    _PYNQ_IMPORT_ERROR = _err
else:
    _PYNQ_IMPORT_ERROR = None

__all__ = ["VLNV", "REGISTER_SPAN", "DEFAULT_BITSTREAM", "DEFAULT_CLOCK_MHZ", "BoardError", "BitstreamError",
           "HardwareMismatch", "DeviceTimeout", "AllocationError", "DeviceError", "UltraTrainIP", "PynqBackend",
           "verify_bitstream", "write_manifest", "manifest_path", "find_accelerator", "decode_hwcfg",
           "host_buffer", "make_backend", "MANIFEST_FORMAT"]

# The Vivado block design instantiates the wrapper ``ultratrain`` around the generated top as a module
# reference, whose VLNV Vivado fixes as xilinx.com:module_ref:<module>:1.0 (scripts/bitstream.py).
VLNV = "xilinx.com:module_ref:ultratrain:1.0"
REGISTER_SPAN = max(r.offset for r in REGISTERS) + 4
DEFAULT_BITSTREAM = Path(__file__).resolve().parents[2] / "bitstreams" / "ultratrain.bit"
DEFAULT_CLOCK_MHZ = 100.0
CLOCK_TOLERANCE = 0.01      # the PS dividers reach 100 MHz exactly from the usual PLLs; 1 % catches a wrong source
MANIFEST_FORMAT = 1


class BoardError(RuntimeError):
    """Something about the board, the bitstream or the device stops the run (the message says what to do)."""


class BitstreamError(BoardError):
    """The ``.bit``, its ``.hwh`` or the manifest recording their hashes is missing or does not match."""


class HardwareMismatch(BoardError):
    """The loaded design is not the accelerator the host compiles for (ID, VERSION, HWCFG or register map)."""


class DeviceTimeout(BoardError):
    """The device did not finish a program in time; it has been reset."""


class AllocationError(MemoryError):
    """``pynq.allocate`` could not provide the contiguous memory asked for."""


# ---------------------------------------------------------------------------------------------------------
# Bitstream files: <name>.bit, <name>.hwh and <name>.manifest.json side by side.

def manifest_path(bitfile: str | os.PathLike) -> Path:
    return Path(bitfile).with_suffix(".manifest.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(bitfile: str | os.PathLike, cfg: HardwareConfig = DEFAULT_CONFIG, **extra) -> Path:
    """Record the hashes of ``bitfile`` and its ``.hwh`` (and what they were built for) beside them.

    ``extra`` (part, clock, tool version, utilization...) is stored under ``"build"``. Returns the path.
    """
    bit = Path(bitfile)
    hwh = bit.with_suffix(".hwh")
    for path in (bit, hwh):
        if not path.is_file():
            raise BitstreamError(f"cannot write a manifest: {path} does not exist")
    manifest = {
        "format": MANIFEST_FORMAT,
        "bit": {"file": bit.name, "sha256": _sha256(bit), "bytes": bit.stat().st_size},
        "hwh": {"file": hwh.name, "sha256": _sha256(hwh), "bytes": hwh.stat().st_size},
        "vlnv": VLNV,
        "contract_version": list(CONTRACT_VERSION),
        "hwcfg": cfg.hwcfg_registers(),
        "build": extra,
    }
    out = manifest_path(bit)
    out.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def verify_bitstream(bitfile: str | os.PathLike, cfg: HardwareConfig = DEFAULT_CONFIG,
                     check_hash: bool = True) -> dict:
    """Check that ``bitfile``, its ``.hwh`` and their manifest exist and agree; return the manifest.

    Raises
    ------
    BitstreamError
        A file is missing, a hash differs (the ``.hwh`` was not built with this ``.bit``, or either was
        edited), or the manifest was written for another contract version or hardware configuration.
    """
    bit = Path(bitfile)
    hwh = bit.with_suffix(".hwh")
    if not bit.is_file():
        raise BitstreamError(f"no bitstream at {bit}: build it with `make bitstream` (needs Vivado) or copy "
                             f"ultratrain.bit, ultratrain.hwh and ultratrain.manifest.json into {bit.parent}")
    if not hwh.is_file():
        raise BitstreamError(f"{bit} has no {hwh.name} beside it: PYNQ needs the .hwh of the same build to find "
                             f"the accelerator and its interrupt; copy both files from the same `make bitstream`")
    mpath = manifest_path(bit)
    if not mpath.is_file():
        raise BitstreamError(f"{bit} has no manifest {mpath.name}: it records the hashes of the .bit/.hwh pair; "
                             f"`python scripts/bitstream.py manifest {bit}` writes one for a pair you trust")
    try:
        manifest = json.loads(mpath.read_text())
        bit_entry, hwh_entry = manifest["bit"], manifest["hwh"]
    except (ValueError, KeyError, TypeError) as err:
        raise BitstreamError(f"{mpath} is not a bitstream manifest ({err})") from err
    if manifest.get("format") != MANIFEST_FORMAT:
        raise BitstreamError(f"{mpath}: manifest format {manifest.get('format')!r}, expected {MANIFEST_FORMAT}")
    if check_hash:
        for path, entry in ((bit, bit_entry), (hwh, hwh_entry)):
            actual = _sha256(path)
            if actual != entry.get("sha256"):
                raise BitstreamError(
                    f"{path.name} does not match its manifest {mpath.name} (sha256 {actual[:16]}... recorded "
                    f"{str(entry.get('sha256'))[:16]}...): the .bit and .hwh come from different builds or were "
                    f"modified; copy the pair written together by `make bitstream`")
    if tuple(manifest.get("contract_version", ())) != tuple(CONTRACT_VERSION):
        raise BitstreamError(f"{bit.name} was built for contract version {manifest.get('contract_version')}, "
                             f"the host speaks {list(CONTRACT_VERSION)}: rebuild the bitstream")
    if manifest.get("hwcfg") != cfg.hwcfg_registers():
        raise BitstreamError(f"{bit.name} was built for another hardware configuration "
                             f"({decode_hwcfg(manifest.get('hwcfg') or {})} vs the host's {cfg.as_dict()})")
    return manifest


def decode_hwcfg(values: dict) -> dict:
    """``HWCFG*`` register values -> the :class:`HardwareConfig` fields they encode (inverse of hwcfg_registers)."""
    layout = {
        "HWCFG0": (("pe1_rows", 0, 8), ("pe1_cols", 8, 8), ("pe2_rows", 16, 8), ("pe2_cols", 24, 8)),
        "HWCFG1": (("pe3_lanes", 0, 8), ("vec_lanes", 8, 8), ("axi_data_bytes", 16, 16)),
        "HWCFG2": (("wmem_words", 0, 16), ("bmem_words", 16, 16)),
        "HWCFG3": (("pe1_buf_elems", 0, 16), ("pe2_buf_rows", 16, 16)),
        "HWCFG4": (("pe2_acc_depth", 0, 16), ("pe3_max_d", 16, 16)),
    }
    out = {}
    for reg, fields in layout.items():
        if reg not in values:
            continue
        for name, lsb, bits in fields:
            out[name] = (int(values[reg]) >> lsb) & ((1 << bits) - 1)
    if "axi_data_bytes" in out:
        out["axi_data_bits"] = out.pop("axi_data_bytes") * 8
    return out


def find_accelerator(ip_dict: dict) -> str:
    """The name of the accelerator in an overlay's ``ip_dict`` (checked against the register map).

    Raises
    ------
    HardwareMismatch
        No IP of type :data:`VLNV` (wrong ``.hwh``), several, or an address window too small for the
        register map of ``sim/contract.py``.
    """
    vln = VLNV.rpartition(":")[0]
    hits = [name for name, ip in ip_dict.items() if str(ip.get("type", "")).rpartition(":")[0] == vln]
    if not hits:
        types = sorted({str(ip.get("type")) for ip in ip_dict.values()})
        raise HardwareMismatch(f"the overlay's .hwh has no accelerator of type {VLNV} (it lists {types}): it was "
                               f"not built by `make bitstream` from this repository")
    if len(hits) > 1:
        raise HardwareMismatch(f"the overlay has {len(hits)} accelerators ({hits}); the driver runs one")
    ip = ip_dict[hits[0]]
    span = int(ip.get("addr_range") or 0)
    if span < REGISTER_SPAN:
        raise HardwareMismatch(f"{hits[0]}: its AXI-Lite window is {span:#x} bytes but the register map needs "
                               f"{REGISTER_SPAN:#x} (registers up to {max(REG, key=REG.get)}): the .hwh does not "
                               f"match sim/contract.REGISTERS")
    return hits[0]


# ---------------------------------------------------------------------------------------------------------
# The IP driver


class UltraTrainIP(DefaultIP):
    """Register-level driver of the accelerator (``bindto`` makes ``Overlay`` instantiate it).

    Offsets are those of ``sim/contract.REGISTERS``: the Verilog top is packaged as a module reference,
    whose ``.hwh`` carries no register map, so the host keeps the one it shares with the RTL.
    """

    bindto = [VLNV]

    def __init__(self, description):
        if pynq is None:  # pragma: no cover
            raise BoardError(f"the PYNQ backend needs the pynq package ({_PYNQ_IMPORT_ERROR})")
        super().__init__(description)

    # Named register access: one place where names become offsets.
    def read_reg(self, name: str) -> int:
        return int(self.read(REG[name]))

    def write_reg(self, name: str, value: int) -> None:
        self.write(REG[name], int(value) & 0xFFFF_FFFF)

    @property
    def interrupt(self):
        """The interrupt PYNQ wired from the ``.hwh`` (``None`` when the line is not connected)."""
        for pin in getattr(self, "_interrupts", {}) or {}:
            irq = getattr(self, pin, None)
            if irq is not None:
                return irq
        return None

    def identity(self) -> dict:
        """``ID``, ``VERSION`` and the ``HWCFG*`` registers."""
        out = {"ID": self.read_reg("ID"), "VERSION": self.read_reg("VERSION")}
        for name in ("HWCFG0", "HWCFG1", "HWCFG2", "HWCFG3", "HWCFG4"):
            out[name] = self.read_reg(name)
        return out

    def check_identity(self, cfg: HardwareConfig = DEFAULT_CONFIG) -> dict:
        """Raise :class:`HardwareMismatch` unless the device is the accelerator built from ``cfg``."""
        ident = self.identity()
        if ident["ID"] != DEVICE_ID:
            raise HardwareMismatch(f"the IP at this address reads ID {ident['ID']:#010x}, not the accelerator's "
                                   f"{DEVICE_ID:#010x}: wrong overlay, or the fabric is not clocked")
        version = (ident["VERSION"] >> 16, ident["VERSION"] & 0xFFFF)
        if version != tuple(CONTRACT_VERSION):
            raise HardwareMismatch(f"the bitstream implements contract version {version[0]}.{version[1]}, the host "
                                   f"{CONTRACT_VERSION[0]}.{CONTRACT_VERSION[1]}: rebuild the bitstream")
        expected = cfg.hwcfg_registers()
        got = {k: ident[k] for k in expected}
        if got != expected:
            have, want = decode_hwcfg(got), decode_hwcfg(expected)
            diff = ", ".join(f"{k}: device {have[k]} vs host {want[k]}" for k in want if have.get(k) != want[k])
            raise HardwareMismatch(f"the bitstream was built with another HardwareConfig ({diff}): compile for "
                                   f"the device's configuration or rebuild the bitstream")
        return ident

    def counters(self) -> dict:
        """The cycle counters of the last program (``sim/contract.REGISTERS``)."""
        # The device stops counting at DONE, so LO and HI are consistent once it is idle.
        lo, hi = self.read_reg("CYCLES_LO"), self.read_reg("CYCLES_HI")
        out = {"cycles": lo | hi << 32}
        for name in ("PE1_BUSY", "PE2_BUSY", "PE3_BUSY", "VEC_BUSY", "LOAD_BUSY", "AXI_STALL"):
            out[name.lower()] = self.read_reg(name)
        return out


# ---------------------------------------------------------------------------------------------------------
# Buffers


def host_buffer(storage: np.ndarray, device, device_address: int, bo=None) -> "PynqBuffer":
    """A ``PynqBuffer`` over host memory ``storage`` (uint8) that the device sees at ``device_address``.

    Mock and co-simulation devices return these from ``allocate``: ``flush``/``invalidate`` then reach
    ``device.flush(bo, offset, ptr, nbytes)`` exactly as on the board, with ``offset`` counted from the
    start of the allocation.
    """
    if storage.dtype != np.uint8 or storage.ndim != 1:
        raise ValueError(f"storage must be a 1-D uint8 array, not {storage.dtype} {storage.shape}")
    buf = PynqBuffer(storage.shape, np.uint8, buffer=storage, device=device, device_address=device_address,
                     bo=bo, coherent=False)
    return buf


@dataclass
class _Arena:
    buf: object          # PynqBuffer of uint8
    base: int            # device (physical) address
    used: int = 0

    @property
    def size(self) -> int:
        return int(self.buf.nbytes)


# ---------------------------------------------------------------------------------------------------------
# The backend


class PynqBackend:
    """The backend interface of ``host/runtime.py`` on a PYNQ device.

    Parameters
    ----------
    ip : UltraTrainIP
        The accelerator's driver (``overlay.<name>``, or built from a description for tests/co-simulation).
    device : pynq.Device, optional
        Where buffers are allocated (default: the IP's device).
    cfg : HardwareConfig
        What the host compiles for; checked against the ``HWCFG*`` registers.
    arena_bytes : int
        Size of each contiguous allocation carved into tensors (tensors larger than this get their own).
    max_bytes : int
        Contiguous-memory budget of this backend: an ``alloc`` beyond it fails with a message naming sizes.
    timeout_s : float
        Wall-clock limit of one program; the device is reset and :class:`DeviceTimeout` raised past it.
    poll_interval_s : float
        Pause between ``STATUS`` reads when polling.
    interrupt : "auto", None or an object with ``async wait()``
        "auto" uses the interrupt PYNQ wired for the IP if any; ``None`` forces polling.
    sleep : callable
        The pause used while polling (``time.sleep``; the co-simulation advances simulated time instead).
    """

    name = "pynq"
    float_mode = False

    def __init__(self, ip, *, device=None, cfg: HardwareConfig = DEFAULT_CONFIG, arena_bytes: int = 16 << 20,
                 max_bytes: int = 256 << 20, timeout_s: float = 10.0, poll_interval_s: float = 1e-4,
                 interrupt="auto", sleep=time.sleep, overlay=None, check_identity: bool = True):
        if pynq is None:  # pragma: no cover
            raise BoardError(f"the PYNQ backend needs the pynq package ({_PYNQ_IMPORT_ERROR})")
        for name, value in (("arena_bytes", arena_bytes), ("max_bytes", max_bytes)):
            if not isinstance(value, int) or value <= 0 or value % TENSOR_ALIGN:
                raise ValueError(f"{name} must be a positive multiple of {TENSOR_ALIGN}, not {value!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        if not poll_interval_s >= 0:
            raise ValueError(f"poll_interval_s must be >= 0, not {poll_interval_s!r}")
        self.ip, self.cfg, self.overlay = ip, cfg, overlay
        self.device = device if device is not None else ip.device
        self.arena_bytes, self.max_bytes = arena_bytes, max_bytes
        self.timeout_s, self.poll_interval_s, self._sleep = float(timeout_s), float(poll_interval_s), sleep
        self.interrupt = ip.interrupt if interrupt == "auto" else interrupt
        self._loop = None
        self._arenas: list[_Arena] = []
        self.identity = ip.check_identity(cfg) if check_identity else None
        self.last_counters: dict = {}
        self.total_cycles = 0
        self.runs = 0
        self.ip.write_reg("CTRL", CTRL_RESET)

    # -- construction from files -----------------------------------------------------------------------------

    @classmethod
    def from_bitstream(cls, bitfile: str | os.PathLike | None = None, cfg: HardwareConfig = DEFAULT_CONFIG,
                       clock_mhz: float = DEFAULT_CLOCK_MHZ, check_hash: bool = True, download: bool = True,
                       clocks=None, **kwargs) -> "PynqBackend":
        """Load the overlay (``.bit`` + ``.hwh``), set the fabric clock, check the device, return the backend.

        ``bitfile`` defaults to ``$ULTRATRAIN_BITSTREAM`` or ``bitstreams/ultratrain.bit``.
        """
        if pynq is None:  # pragma: no cover
            raise BoardError(f"the PYNQ backend needs the pynq package ({_PYNQ_IMPORT_ERROR})")
        bitfile = Path(bitfile or os.environ.get("ULTRATRAIN_BITSTREAM") or DEFAULT_BITSTREAM)
        manifest = verify_bitstream(bitfile, cfg, check_hash=check_hash)
        try:
            overlay = pynq.Overlay(str(bitfile), download=download)
        except Exception as err:
            raise BitstreamError(f"PYNQ could not load {bitfile} ({type(err).__name__}: {err}); is this the "
                                 f"board, and are you root (sudo -E)?") from err
        name = find_accelerator(overlay.ip_dict)
        clocks = clocks if clocks is not None else pynq.Clocks
        actual = set_fabric_clock(clocks, clock_mhz)
        backend = cls(getattr(overlay, name), cfg=cfg, overlay=overlay, **kwargs)
        backend.manifest, backend.clock_mhz = manifest, actual
        return backend

    # -- memory ---------------------------------------------------------------------------------------------

    def alloc(self, nbytes: int) -> int:
        """Reserve ``nbytes`` (rounded up to a cache line) in a contiguous arena; returns the device address."""
        if not isinstance(nbytes, (int, np.integer)) or nbytes <= 0:
            raise ValueError(f"nbytes must be a positive int, not {nbytes!r}")
        size = -(-int(nbytes) // TENSOR_ALIGN) * TENSOR_ALIGN
        for arena in self._arenas[-1:]:
            if arena.used + size <= arena.size:
                addr = arena.base + arena.used
                arena.used += size
                return addr
        arena = self._new_arena(max(self.arena_bytes, size), nbytes)
        arena.used = size
        return arena.base

    def _new_arena(self, size: int, asked: int) -> _Arena:
        held = sum(a.size for a in self._arenas)
        if held + size > self.max_bytes:
            raise AllocationError(f"allocating {asked} bytes would need a new {size}-byte buffer, beyond this "
                                  f"backend's contiguous-memory budget ({held} of max_bytes={self.max_bytes} "
                                  f"held in {len(self._arenas)} buffers)")
        try:
            buf = pynq.allocate((size,), dtype=np.uint8, target=self.device)
        except Exception as err:
            raise AllocationError(f"pynq.allocate could not get {size} bytes of physically contiguous memory "
                                  f"(asked for {asked} bytes; {held} bytes already held in {len(self._arenas)} "
                                  f"buffers): free other PYNQ buffers or overlays, or raise the CMA size "
                                  f"({type(err).__name__}: {err})") from err
        base = int(buf.device_address)
        if base % TENSOR_ALIGN:
            raise AllocationError(f"pynq.allocate returned address {base:#x}, not {TENSOR_ALIGN}-byte aligned")
        if base + size > 1 << 32:
            raise AllocationError(f"pynq.allocate returned [{base:#x}, {base + size:#x}), above 4 GiB: descriptors "
                                  f"hold 32-bit addresses")
        arena = _Arena(buf, base)
        self._arenas.append(arena)
        return arena

    def _view(self, addr: int, nbytes: int):
        for arena in self._arenas:
            if arena.base <= addr and addr + nbytes <= arena.base + arena.used:
                off = addr - arena.base
                return arena.buf[off:off + nbytes]
        raise IndexError(f"[{addr:#x}, {addr + nbytes:#x}) is not inside a buffer allocated by this backend")

    def write_bytes(self, addr: int, data) -> None:
        raw = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else \
            np.ascontiguousarray(data).view(np.uint8).ravel()
        if raw.size == 0:
            return
        view = self._view(addr, raw.size)
        view[:] = raw
        view.flush()          # the device reads DRAM, not the ARM's caches

    def read_bytes(self, addr: int, n: int) -> bytes:
        view = self._view(addr, n)
        view.invalidate()     # drop cache lines that predate the device's writes
        return bytes(view)

    def write(self, addr: int, values) -> None:
        values = np.asarray(values).ravel()
        if values.size and (values.min() < -32768 or values.max() > 32767):
            raise OverflowError(f"values outside int16 written at {addr:#x}")
        self.write_bytes(addr, values.astype("<i2"))

    def read(self, addr: int, count: int) -> np.ndarray:
        return np.frombuffer(self.read_bytes(addr, 2 * count), dtype="<i2").astype(np.int16)

    # -- programs -------------------------------------------------------------------------------------------

    def run(self, prog_addr: int, count: int) -> dict:
        """Run ``count`` descriptors from ``prog_addr``; returns the cycle counters.

        Raises
        ------
        DeviceError
            The device stopped with ``STATUS.ERROR`` (its code and the failing descriptor are named).
        DeviceTimeout
            It did not finish within ``timeout_s``; it has been reset.
        """
        ip = self.ip
        self._view(prog_addr, count * DESCRIPTOR_BYTES)   # the ring must be one of our (flushed) buffers
        ip.write_reg("CTRL", CTRL_RESET)                  # nothing of the previous program survives
        status = ip.read_reg("STATUS")
        if status & (STATUS_BUSY | STATUS_DONE | STATUS_ERROR):
            raise BoardError(f"the accelerator did not come out of RESET (STATUS {status:#x})")
        ip.write_reg("PROG_ADDR", prog_addr)
        ip.write_reg("PROG_COUNT", count)
        use_irq = self.interrupt is not None
        ip.write_reg("CTRL", CTRL_START | (CTRL_IRQ_ENABLE if use_irq else 0))
        status = self._wait_interrupt() if use_irq else self._poll()
        ip.write_reg("STATUS", status & (STATUS_DONE | STATUS_ERROR))   # W1C: drop the interrupt line
        self.last_counters = ip.counters()
        self.total_cycles += self.last_counters["cycles"]
        self.runs += 1
        if status & STATUS_ERROR:
            code = (status >> 8) & 0xFF
            pc = ip.read_reg("PC")
            raise self._device_error(code, pc, prog_addr, count)
        return self.last_counters

    def _poll(self) -> int:
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = self.ip.read_reg("STATUS")
            if status & (STATUS_DONE | STATUS_ERROR):
                return status
            if time.monotonic() > deadline:
                self._abort(status)
            self._sleep(self.poll_interval_s)

    def _wait_interrupt(self) -> int:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = self.ip.read_reg("STATUS")
            if status & (STATUS_DONE | STATUS_ERROR):
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                self._abort(status)
            try:
                self._loop.run_until_complete(asyncio.wait_for(self.interrupt.wait(), left))
            except asyncio.TimeoutError:
                pass    # the STATUS read above decides (and aborts past the deadline)

    def _abort(self, status: int):
        pc = self.ip.read_reg("PC")
        self.ip.write_reg("CTRL", CTRL_RESET)
        raise DeviceTimeout(f"the accelerator did not finish within {self.timeout_s:g} s (STATUS {status:#x}, "
                            f"at descriptor {pc}); it has been reset. A hang points at the bitstream or a "
                            f"wrong fabric clock; a long program needs a larger timeout_s")

    def _device_error(self, code: int, pc: int, prog_addr: int, count: int) -> DeviceError:
        try:
            error = ErrorCode(code)
        except ValueError:
            error = ErrorCode.RESERVED
        desc = None
        if 0 <= pc < count and error != ErrorCode.NO_END:
            try:
                desc = Descriptor.decode(self.read_bytes(prog_addr + pc * DESCRIPTOR_BYTES, DESCRIPTOR_BYTES))
            except DescriptorError:
                desc = None
        return DeviceError(error, pc, desc, "" if error == code else f"unknown error code {code}")

    def close(self) -> None:
        """Give the contiguous buffers back (the overlay stays loaded)."""
        for arena in self._arenas:
            free = getattr(arena.buf, "freebuffer", None)
            if free is not None:
                free()
        self._arenas.clear()
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    @property
    def allocated_bytes(self) -> int:
        return sum(a.size for a in self._arenas)


def set_fabric_clock(clocks, mhz: float) -> float:
    """Set PL clock 0 to ``mhz`` and read it back; raise if the PS could not reach it.

    On Zynq UltraScale+ the PL clock dividers hang off a PLL chosen in the PS configuration; if that source
    is not the one PYNQ assumes, the set value and the real one differ (PYNQ issue 1607). Reading it back
    turns that into an error instead of a design running at an unknown speed.
    """
    clocks.fclk0_mhz = mhz
    actual = float(clocks.fclk0_mhz)
    if abs(actual - mhz) > CLOCK_TOLERANCE * mhz:
        raise BoardError(f"the fabric clock reads {actual:.3f} MHz after setting {mhz:g} MHz: the PL0 clock "
                         f"source or divider is not what PYNQ expects (see docs/board.md, 'Fabric clock')")
    return actual


def make_backend(precision: str = "fixed", **kwargs) -> PynqBackend:
    """``--backend pynq``: the overlay named by ``$ULTRATRAIN_BITSTREAM`` or ``bitstreams/ultratrain.bit``."""
    if precision != "fixed":
        raise ValueError(f"the board runs fixed point only, not precision={precision!r}")
    return PynqBackend.from_bitstream(**kwargs)
