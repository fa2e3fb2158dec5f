"""Simulator side of the RTL co-simulation backend (host/backends/rtl.py): a cocotb test that serves requests.

It runs inside the simulator process (Verilator or Icarus, started by cocotb's runner). It drives the clock and
reset of the generated top, puts cocotbext-axi's ``AxiLiteMaster`` on the register slave and ``AxiRam`` on the
AXI4 master (the DDR that ``allocate`` hands out), connects back to the host process over a Unix socket and
then serves its requests from blocking code: the serve loop is turned into a coroutine with
``cocotb.bridge`` and calls the bus models through ``cocotb.resume``, so simulated time advances only while
a request needs it (a register access, an interrupt wait, a polling pause).

Requests are ``(op, *args)`` tuples; every reply is ``("ok", value)`` or ``("error", text)``:

==========  =====================  ===========================================================
``rd``      offset                 AXI-Lite read of a 32-bit register -> value
``wr``      offset, value          AXI-Lite write
``mw``      address, bytes         host -> DDR (backdoor: the cache flush of the board)
``mr``      address, nbytes        DDR -> host (backdoor: the invalidate) -> bytes
``irq``     max_ns                 wait until ``irq`` is high or ``max_ns`` passed -> irq level
``run``     ns                     let the simulation run (the polling pause)
``time``                           simulated time in ns
``stop``                           end the test
==========  =====================  ===========================================================

Configuration comes in environment variables (``ULTRATRAIN_COSIM_*``, set by rtl.py).
"""

from __future__ import annotations

import os
import traceback
from multiprocessing.connection import Client

import cocotb
from cocotb.clock import Clock
from cocotb.handle import Immediate
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer

from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam  # noqa: I001


def _env(name: str, default=None) -> str:
    value = os.environ.get(f"ULTRATRAIN_COSIM_{name}", default)
    if value is None:
        raise RuntimeError(f"ULTRATRAIN_COSIM_{name} is not set: this module is started by host/backends/rtl.py")
    return value


@cocotb.test()
async def serve(dut):
    period_ns = float(_env("PERIOD_NS", "10"))
    lite_prefix, master_prefix = _env("LITE_PREFIX"), _env("MASTER_PREFIX")
    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, lite_prefix, bus_separator="__"), dut.clk, dut.rst)
    if _env("MEMORY", "axiram") == "axiram":
        ram = AxiRam(AxiBus.from_prefix(dut, master_prefix, bus_separator="__"), dut.clk, dut.rst, size=1 << 32)
        mem_write = lambda addr, data: ram.write(addr, bytes(data))       # noqa: E731
        mem_read = lambda addr, n: bytes(ram.read(addr, n))               # noqa: E731
    else:
        mem_write, mem_read = _verilog_memory(dut.ddr, int(_env("DDR_BASE")))
    irq = getattr(dut, _env("IRQ", "irq"), None)
    for _ in range(8):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)

    async def reg_read(offset):
        resp = await axil.read(offset, 4)
        if int(resp.resp) != 0:
            raise RuntimeError(f"AXI-Lite read of {offset:#x} answered {resp.resp!r}")
        return int.from_bytes(resp.data, "little")

    async def reg_write(offset, value):
        resp = await axil.write(offset, int(value).to_bytes(4, "little"))
        if int(resp.resp) != 0:
            raise RuntimeError(f"AXI-Lite write of {offset:#x} answered {resp.resp!r}")

    async def wait_irq(max_ns):
        if irq is None:
            raise RuntimeError("the top has no irq output")
        await ReadOnly()
        if not int(irq.value):
            await First(RisingEdge(irq), Timer(max_ns, unit="ns"))
        await RisingEdge(dut.clk)      # leave the read-only phase at a clock edge, like a register access
        return int(irq.value)

    async def run_for(ns):
        await Timer(ns, unit="ns")
        await RisingEdge(dut.clk)

    blocking = {"rd": resume(reg_read), "wr": resume(reg_write), "irq": resume(wait_irq), "run": resume(run_for)}
    backdoor = {"mw": mem_write, "mr": mem_read, "time": _sim_ns}

    def serve_loop():
        conn = Client(_env("SOCKET"), family="AF_UNIX", authkey=bytes.fromhex(_env("AUTHKEY")))
        try:
            while True:
                try:
                    request = conn.recv()
                except EOFError:
                    return "host went away"
                op, args = request[0], request[1:]
                if op == "stop":
                    conn.send(("ok", None))
                    return "stopped"
                try:
                    # The simulator is paused while this thread runs: backdoor memory access needs no resume.
                    handler = blocking.get(op) or backdoor[op]
                    conn.send(("ok", handler(*args)))
                except Exception:
                    conn.send(("error", traceback.format_exc(limit=4)))
        finally:
            conn.close()

    outcome = await bridge(serve_loop)()
    dut._log.info("co-simulation server: %s at %.0f ns", outcome, _sim_ns())


def _verilog_memory(ddr, base: int):
    """Backdoor byte access to ``cosim_ddr.mem`` (words of ``DATA_BITS``, little-endian) through VPI.

    Writes are immediate (not inertial): a partial word is read, merged and written back within one request.
    """
    mem = ddr.mem
    word = len(mem[0].value) // 8

    def locate(addr: int, n: int):
        if addr < base:
            raise ValueError(f"address {addr:#x} below the DDR model's base {base:#x}")
        first, last = (addr - base) // word, (addr - base + n - 1) // word
        return first, last, (addr - base) - first * word

    def get(i: int) -> bytes:
        return mem[i].value.to_unsigned().to_bytes(word, "little")

    def put(i: int, raw: bytes) -> None:
        mem[i].set(Immediate(int.from_bytes(raw, "little")))

    def write(addr: int, data) -> None:
        data = bytes(data)
        if not data:
            return
        first, last, skip = locate(addr, len(data))
        image = bytearray((last - first + 1) * word)
        if skip:
            image[:word] = get(first)                  # keep the bytes before the range
        if (skip + len(data)) % word:
            image[-word:] = get(last)                  # and after it
        image[skip:skip + len(data)] = data
        for k, i in enumerate(range(first, last + 1)):
            put(i, bytes(image[k * word:(k + 1) * word]))

    def read(addr: int, n: int) -> bytes:
        if n == 0:
            return b""
        first, last, skip = locate(addr, n)
        raw = b"".join(get(i) for i in range(first, last + 1))
        return raw[skip:skip + n]

    return write, read


def _sim_ns() -> float:
    return float(get_sim_time("ns"))
