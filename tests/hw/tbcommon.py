"""cocotb side of the RTL regression: testbench classes and the scoreboard against the golden model.

Every bench owns its clock, reset and bus models (``TB``); DRAM is cocotbext-axi's ``AxiRam`` with random
pauses on every channel (latency and backpressure), mirrored by a golden :class:`~ultratrain.sim.executor.Memory`
that the golden executor runs on. Seeds come from ``cocotb.RANDOM_SEED`` (set and printed by tests/hw/rtl.py).
A mismatch names the tensor, its first differing index and both values.
"""

from __future__ import annotations

import logging
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
from cocotbext.axi import AxiBus, AxiRam

from ultratrain.hw.decoder import DescriptorFields
from ultratrain.sim.contract import DEFAULT_CONFIG, Descriptor, pack_weight_words, unpack_bias_words, \
    unpack_weight_words
from ultratrain.sim.executor import GoldenDevice, Memory

CLOCK_NS = 10
_FIELDS = DescriptorFields.as_shape()


def iterations(default: int) -> int:
    """How many random cases a bench runs (``ULTRATRAIN_RTL_ITERS`` scales it for the slow regression)."""
    scale = float(os.environ.get("ULTRATRAIN_RTL_SCALE", "1"))
    return max(1, int(round(default * scale)))


def pack_fields(desc: Descriptor) -> int:
    """A Descriptor as the bits of the RTL's ``DescriptorFields`` struct."""
    value = 0
    for name, field in _FIELDS:
        raw = int(getattr(desc, name)) & ((1 << field.width) - 1)
        value |= raw << field.offset
    return value


def random_pauses(rng: random.Random, probability: float):
    while True:
        yield rng.random() < probability


def first_mismatch(name: str, got, ref) -> str | None:
    """None if equal, else a message with the first differing index and both values."""
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        return f"{name}: shape {got.shape} != golden {ref.shape}"
    diff = np.argwhere(got != ref)
    if diff.size == 0:
        return None
    idx = tuple(int(i) for i in diff[0])
    return (f"{name}: first mismatch at index {idx}: rtl={got[idx]} golden={ref[idx]} "
            f"({len(diff)} of {got.size} elements differ)")


def assert_tensor_equal(name: str, got, ref) -> None:
    message = first_mismatch(name, got, ref)
    if message:
        raise AssertionError(message)


class TB:
    """Clock, reset, an AxiRam on ``m_axi`` with random stalls, and its golden mirror."""

    def __init__(self, dut, ram_size: int = 1 << 20, pause: float | None = None, cfg=DEFAULT_CONFIG):
        self.dut, self.cfg = dut, cfg
        self.seed = cocotb.RANDOM_SEED
        self.rng = np.random.default_rng(self.seed)
        self.prng = random.Random(self.seed)
        self.log = dut._log
        self.log.info("seed %d", self.seed)
        Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi", bus_separator="__"), dut.clk, dut.rst, size=ram_size)
        for model in (self.ram.write_if, self.ram.read_if):
            model.log.setLevel(logging.WARNING)     # one INFO line per burst otherwise
        pause = float(os.environ.get("ULTRATRAIN_AXI_PAUSE", "0.25")) if pause is None else pause
        self.set_pauses(pause)
        self.memory = Memory(ram_size, base=0)
        self.golden = GoldenDevice(self.memory, cfg)

    def set_pauses(self, probability: float) -> None:
        channels = (self.ram.write_if.aw_channel, self.ram.write_if.w_channel, self.ram.write_if.b_channel,
                    self.ram.read_if.ar_channel, self.ram.read_if.r_channel)
        for ch in channels:
            if probability > 0:
                ch.set_pause_generator(random_pauses(random.Random(self.prng.random()), probability))
            else:
                ch.clear_pause_generator()

    async def reset(self) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    # -- DRAM (both copies) ----------------------------------------------------------------------------
    def write_bytes(self, addr: int, data) -> None:
        data = bytes(np.asarray(data, dtype=np.uint8).tobytes() if isinstance(data, np.ndarray) else data)
        self.ram.write(addr, data)
        self.memory.write_bytes(addr, data)

    def write_tensor(self, addr: int, values) -> None:
        self.write_bytes(addr, np.asarray(values, dtype=np.int16).ravel().view(np.uint8))

    def read_tensor(self, addr: int, count: int) -> np.ndarray:
        return np.frombuffer(self.ram.read(addr, 2 * count), dtype=np.int16).astype(np.int64)

    def golden_tensor(self, addr: int, count: int) -> np.ndarray:
        return self.memory.read(addr, count).astype(np.int64)


class UnitTB(TB):
    """A unit harness (tests/hw/harness.py): descriptor fields and start driven directly."""

    def __init__(self, dut, **kwargs):
        super().__init__(dut, **kwargs)
        for sig in (dut.start, dut.wmem_en, dut.bmem_en, dut.wmem_addr, dut.wmem_data, dut.bmem_addr,
                    dut.bmem_data, dut.desc):
            sig.value = 0

    async def load_weights(self, offset: int, weights) -> None:
        """4-bit weights (ints in [-8, 7]) into weight memory words ``offset..`` (and the golden copy)."""
        words = pack_weight_words(weights)
        for i, word in enumerate(words):
            self.dut.wmem_addr.value = offset + i
            self.dut.wmem_data.value = int(word)
            self.dut.wmem_en.value = 1
            await RisingEdge(self.dut.clk)
        self.dut.wmem_en.value = 0
        self.golden.wmem[offset * 16:(offset + len(words)) * 16] = unpack_weight_words(words)

    async def load_biases(self, offset: int, biases) -> None:
        from ultratrain.sim.contract import pack_bias_words
        words = pack_bias_words(biases)
        for i, word in enumerate(words):
            self.dut.bmem_addr.value = offset + i
            self.dut.bmem_data.value = int.from_bytes(bytes(word), "little")
            self.dut.bmem_en.value = 1
            await RisingEdge(self.dut.clk)
        self.dut.bmem_en.value = 0
        self.golden.bmem[offset * 16:(offset + len(words)) * 16] = unpack_bias_words(words)

    async def run(self, desc: Descriptor, timeout_cycles: int = 2_000_000) -> int:
        """Run one descriptor on the unit; returns the cycles from start to not busy."""
        dut = self.dut
        dut.desc.value = pack_fields(desc)
        await RisingEdge(dut.clk)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        start = cocotb.utils.get_sim_time("ns")
        await RisingEdge(dut.clk)
        if int(dut.busy.value):
            await with_timeout(FallingEdge(dut.busy), timeout_cycles * CLOCK_NS, "ns")
        return int((cocotb.utils.get_sim_time("ns") - start) // CLOCK_NS)

    async def check(self, desc: Descriptor, out_addr: int, out_count: int, label: str = "") -> int:
        """Run on RTL and on the golden executor; compare the output tensor and the statistics."""
        cycles = await self.run(desc)
        saturated, sum_abs = self.golden._execute(desc)
        got = self.read_tensor(out_addr, out_count)
        ref = self.golden_tensor(out_addr, out_count)
        assert_tensor_equal(f"{label or desc.opcode.name} dst", got, ref)
        rtl_sat, rtl_abs = int(self.dut.saturated.value), int(self.dut.sum_abs.value)
        assert (rtl_sat, rtl_abs) == (saturated, sum_abs), \
            f"{label}: statistics rtl (saturated={rtl_sat}, sum_abs={rtl_abs}) != golden ({saturated}, {sum_abs})"
        assert not int(self.dut.axi_error.value), f"{label}: AXI error"
        return cycles


class TopTB(TB):
    """The accelerator top: AxiLiteMaster on ``s_axil``, AxiRam on ``m_axi``, the golden device beside it."""

    def __init__(self, dut, **kwargs):
        super().__init__(dut, **kwargs)
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"), dut.clk, dut.rst)
        self.axil.write_if.log.setLevel(logging.WARNING)
        self.axil.read_if.log.setLevel(logging.WARNING)

    async def read_reg(self, name_or_offset) -> int:
        from ultratrain.sim.contract import REG
        offset = REG[name_or_offset] if isinstance(name_or_offset, str) else name_or_offset
        return await self.axil.read_dword(offset)

    async def write_reg(self, name_or_offset, value: int) -> None:
        from ultratrain.sim.contract import REG
        offset = REG[name_or_offset] if isinstance(name_or_offset, str) else name_or_offset
        await self.axil.write_dword(offset, value)

    async def start(self, prog_addr: int, count: int, irq: bool = True) -> None:
        from ultratrain.sim.contract import CTRL_IRQ_ENABLE, CTRL_START
        await self.write_reg("PROG_ADDR", prog_addr)
        await self.write_reg("PROG_COUNT", count)
        await self.write_reg("CTRL", CTRL_START | (CTRL_IRQ_ENABLE if irq else 0))

    async def run_program(self, prog_addr: int, count: int, timeout_cycles: int = 5_000_000) -> dict:
        """START, wait for the interrupt, return the status registers."""
        from cocotb.triggers import First, ReadOnly, Timer
        await self.start(prog_addr, count)
        await ReadOnly()
        if not int(self.dut.irq.value):
            await with_timeout(RisingEdge(self.dut.irq), timeout_cycles * CLOCK_NS, "ns")
        await RisingEdge(self.dut.clk)
        status = await self.read_reg("STATUS")
        regs = {"STATUS": status, "PC": await self.read_reg("PC"),
                "CYCLES": await self.read_reg("CYCLES_LO") | await self.read_reg("CYCLES_HI") << 32}
        for name in ("PE1_BUSY", "PE2_BUSY", "PE3_BUSY", "VEC_BUSY", "LOAD_BUSY", "AXI_STALL"):
            regs[name] = await self.read_reg(name)
        await self.write_reg("STATUS", 0b110)          # W1C: DONE, ERROR (drops irq)
        return regs

    def write_program(self, addr: int, descriptors) -> int:
        from ultratrain.sim.contract import encode_program
        self.write_bytes(addr, encode_program(descriptors))
        return len(descriptors)

    async def check_program(self, prog_addr: int, count: int, regions: dict, label: str = "program") -> dict:
        """Run on RTL and golden; compare status, PC, every write-back (but cycles) and every named region."""
        from ultratrain.sim.contract import DESCRIPTOR_BYTES, read_writeback
        regs = await self.run_program(prog_addr, count)
        result = self.golden.run(prog_addr, count)
        code = (regs["STATUS"] >> 8) & 0xFF
        done, error = bool(regs["STATUS"] & 2), bool(regs["STATUS"] & 4)
        assert (done, error, code) == (result.ok, not result.ok, int(result.error)), \
            f"{label}: STATUS {regs['STATUS']:#x} but golden ended with {result.error.name}"
        assert regs["PC"] == result.pc, f"{label}: PC {regs['PC']} != golden {result.pc}"
        n = min(count, result.pc + 1)
        rtl_ring = self.ram.read(prog_addr, n * DESCRIPTOR_BYTES)
        gold_ring = bytes(self.memory.read_bytes(prog_addr, n * DESCRIPTOR_BYTES))
        for i in range(n):
            got, ref = read_writeback(rtl_ring, i), read_writeback(gold_ring, i)
            assert (got.done, got.error, got.saturated, got.sum_abs) == (ref.done, ref.error, ref.saturated,
                                                                         ref.sum_abs), \
                f"{label}: write-back of descriptor {i}: rtl {got} != golden {ref}"
            assert rtl_ring[i * 64:i * 64 + 32] == gold_ring[i * 64:i * 64 + 32], \
                f"{label}: descriptor {i} words 0-7 changed"
        for name, (addr, count_elems, shape) in regions.items():
            got = self.read_tensor(addr, count_elems).reshape(shape)
            ref = self.golden_tensor(addr, count_elems).reshape(shape)
            assert_tensor_equal(f"{label}: {name}", got, ref)
        regs["writebacks"] = [read_writeback(rtl_ring, i) for i in range(n)]
        return regs
