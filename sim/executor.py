"""The golden executor: runs a descriptor program on a memory image, as the accelerator does.

It is the *emulated device* the trainer runs on when no board is attached, and the reference every RTL test
compares with bit for bit. It follows the device's observable behaviour (``sim/contract.py``): descriptors
are fetched from DRAM in order until END; an illegal one stops the run with STATUS.ERROR and its ErrorCode
written into that descriptor; each executed descriptor gets its write-back (done, saturation count, sum of
|outputs|, cycles). Cycles come from an optional cycle model (``cycle_model(desc) -> (cycles, stalls)``);
without one they are 0.

Two modes share the code: *fixed* (int16 DRAM, 4-bit weight memory, exact integer results) and *float*
(float64 DRAM and weights, no rescale) for checking the compiler's index arithmetic against dense algebra.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import pe
from .contract import (BMEM_LANES, DEFAULT_CONFIG, DESCRIPTOR_BYTES, WMEM_LANES, WRITEBACK_WORD, Descriptor,
                       DescriptorError, ErrorCode, Flag, HardwareConfig, Opcode, Writeback, check_descriptor,
                       pe2_row_pitch, pe3_block_count, unpack_bias_words, unpack_weight_words)

__all__ = ["Memory", "GoldenDevice", "RunResult", "DeviceError"]

_check = functools.lru_cache(maxsize=16384)(check_descriptor)


class DeviceError(RuntimeError):
    """The device stopped with an error status; ``code`` and ``pc`` say which descriptor and why."""

    def __init__(self, code: ErrorCode, pc: int, desc: Descriptor | None, detail: str = ""):
        what = f"{desc.opcode.name} " if desc is not None else ""
        super().__init__(f"device error {code.name} at descriptor {pc} ({what}{detail})".rstrip())
        self.code, self.pc, self.desc = code, pc, desc


class Memory:
    """A DRAM window ``[base, base + size)``: bytes for descriptors and weight words, int16 (or float64) tensors.

    In fixed mode tensors are int16 views of the same bytes. In float mode tensor elements live in a separate
    float64 array indexed by the same element addresses (``(addr - base) // 2``), so that one address map
    serves both modes.
    """

    def __init__(self, size: int, base: int = 0x1000_0000, float_mode: bool = False):
        if size <= 0 or size % 64:
            raise ValueError(f"memory size must be a positive multiple of 64 bytes, not {size}")
        if base % 64:
            raise ValueError(f"memory base {base:#x} must be 64-byte aligned")
        self.base, self.size, self.float_mode = base, size, float_mode
        self.bytes = np.zeros(size, dtype=np.uint8)
        self.elements = np.zeros(size // 2, dtype=np.float64) if float_mode else self.bytes.view(np.int16)

    def _offset(self, addr: int, nbytes: int) -> int:
        offset = addr - self.base
        if offset < 0 or offset + nbytes > self.size:
            raise IndexError(f"access [{addr:#x}, {addr + nbytes:#x}) outside memory "
                             f"[{self.base:#x}, {self.base + self.size:#x})")
        return offset

    def read_bytes(self, addr: int, n: int) -> np.ndarray:
        offset = self._offset(addr, n)
        return self.bytes[offset:offset + n]

    def write_bytes(self, addr: int, data) -> None:
        data = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
        offset = self._offset(addr, data.size)
        self.bytes[offset:offset + data.size] = data.ravel()

    def read(self, addr: int, count: int) -> np.ndarray:
        """``count`` consecutive tensor elements from ``addr`` (a view)."""
        offset = self._offset(addr, 2 * count) // 2
        return self.elements[offset:offset + count]

    def write(self, addr: int, values) -> None:
        values = np.asarray(values).ravel()
        offset = self._offset(addr, 2 * values.size) // 2
        if not self.float_mode:
            if values.size and (values.min() < -32768 or values.max() > 32767):
                raise OverflowError(f"values outside int16 written at {addr:#x}")
        self.elements[offset:offset + values.size] = values

    def store(self, addr: int, values) -> None:
        """Like :meth:`write` without the int16 range check, for values already saturated to 16 bits or less."""
        values = np.asarray(values).ravel()
        offset = self._offset(addr, 2 * values.size) // 2
        self.elements[offset:offset + values.size] = values

    def read_rows(self, addr: int, rows: int, cols: int, stride: int) -> np.ndarray:
        """``rows`` runs of ``cols`` elements, ``stride`` elements apart (a copy)."""
        self._offset(addr, 2 * ((rows - 1) * stride + cols))
        start = (addr - self.base) // 2
        index = start + np.arange(rows)[:, None] * stride + np.arange(cols)[None, :]
        return self.elements[index]


@dataclass
class RunResult:
    """How a program ended: ``pc`` is the END's index (or the failing descriptor's). The per-descriptor
    write-backs are in the ring in DRAM (``contract.read_writeback``), as on the device."""
    error: ErrorCode
    pc: int

    @property
    def ok(self) -> bool:
        return self.error == ErrorCode.NONE


class GoldenDevice:
    """The emulated accelerator: weight and bias memories plus a DRAM :class:`Memory`."""

    def __init__(self, memory: Memory, cfg: HardwareConfig = DEFAULT_CONFIG, cycle_model=None):
        self.memory, self.cfg, self.cycle_model = memory, cfg, cycle_model
        self.float_mode = memory.float_mode
        dtype = np.float64 if self.float_mode else np.int64
        self.wmem = np.zeros(cfg.wmem_words * WMEM_LANES, dtype=dtype)
        self.bmem = np.zeros(cfg.bmem_words * BMEM_LANES, dtype=dtype)

    # -- program execution ---------------------------------------------------------------------------------

    def run(self, prog_addr: int, count: int, raise_on_error: bool = False) -> RunResult:
        """Execute descriptors from ``prog_addr`` until END (at most ``count``); write back each one."""
        result = RunResult(ErrorCode.NONE, 0)
        pc = 0
        pending_pe3 = _PE3Group()
        while True:
            if pc >= count:
                self._flush_pe3(prog_addr, pending_pe3, result)
                result.error, result.pc = ErrorCode.NO_END, pc
                break
            raw = bytes(self.memory.read_bytes(prog_addr + pc * DESCRIPTOR_BYTES, DESCRIPTOR_BYTES))
            try:
                desc = Descriptor.decode(raw)
                error = _check(desc, self.cfg)
            except DescriptorError as err:
                desc, error = None, err.code
            if pending_pe3 and (error or not pending_pe3.admits(desc)):
                self._flush_pe3(prog_addr, pending_pe3, result)
            if error:
                self._write_back(prog_addr, pc, Writeback(False, error, 0, 0, 0, 0))
                result.error, result.pc = error, pc
                break
            if desc.opcode == Opcode.END:
                self._write_back(prog_addr, pc, Writeback(True, ErrorCode.NONE, 0, 0, 0, 0))
                result.pc = pc
                break
            if desc.opcode == Opcode.PE3 and not desc.flags & Flag.ACC:
                # Consecutive PE3 blocks of one weight gradient run as one batched product (same results).
                pending_pe3.add(pc, desc)
            else:
                saturated, sum_abs = self._execute(desc)
                self._finish(prog_addr, pc, desc, saturated, sum_abs, result)
            pc += 1
        if raise_on_error and result.error:
            failing = None
            if result.error != ErrorCode.NO_END:
                try:
                    failing = Descriptor.decode(bytes(self.memory.read_bytes(
                        prog_addr + result.pc * DESCRIPTOR_BYTES, DESCRIPTOR_BYTES)))
                except DescriptorError:
                    failing = None
            raise DeviceError(result.error, result.pc, failing)
        return result

    def _finish(self, prog_addr, pc, desc, saturated, sum_abs, result):
        cycles, stalls = self.cycle_model(desc) if self.cycle_model else (0, 0)
        self._write_back(prog_addr, pc, Writeback(True, ErrorCode.NONE, int(saturated), int(sum_abs),
                                                  int(cycles), int(stalls)))

    def _write_backs(self, prog_addr: int, first_pc: int, descs, saturated, sum_abs) -> None:
        """Write-backs of consecutive descriptors in one store (the PE3 batches have thousands)."""
        n = len(descs)
        words = np.zeros((n, 8), dtype=np.uint32)
        words[:, 0] = 1
        words[:, 1] = saturated
        sum_abs = np.asarray(sum_abs, dtype=np.uint64)
        words[:, 2] = (sum_abs & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        words[:, 3] = (sum_abs >> np.uint64(32)).astype(np.uint32)
        if self.cycle_model:
            words[:, 4:6] = [self.cycle_model(desc) for desc in descs]
        start = first_pc * DESCRIPTOR_BYTES
        ring = self.memory.read_bytes(prog_addr + start, n * DESCRIPTOR_BYTES).reshape(n, DESCRIPTOR_BYTES)
        ring[:, WRITEBACK_WORD * 4:] = words.view(np.uint8).reshape(n, 32)

    def _write_back(self, prog_addr: int, pc: int, wb: Writeback) -> None:
        self.memory.write_bytes(prog_addr + pc * DESCRIPTOR_BYTES + WRITEBACK_WORD * 4, wb.pack())

    # -- one instruction -------------------------------------------------------------------------------------

    def _weights(self, desc: Descriptor) -> np.ndarray:
        start = desc.wofs * WMEM_LANES
        if desc.opcode == Opcode.PE1:
            return self.wmem[start:start + desc.b * desc.d * desc.c].reshape(desc.b, desc.d, desc.c)
        pitch = pe2_row_pitch(desc.d, self.cfg.pe2_rows)
        return self.wmem[start:start + desc.b * pitch].reshape(desc.b, pitch)[:, :desc.d]

    def _bias(self, desc: Descriptor) -> np.ndarray:
        start = desc.bofs * BMEM_LANES
        return self.bmem[start:start + desc.c]

    def _store(self, desc: Descriptor, acc) -> tuple[int, int]:
        integer = not self.float_mode
        out, sat = pe.output_stage(acc, desc.shift, desc.out_fmt.format(), integer)
        self.memory.store(desc.dst, out)      # in range by construction: saturated to a <= 16-bit format
        return (0, 0) if self.float_mode else (int(sat.sum()), int(np.abs(out).sum()))

    def _execute(self, desc: Descriptor) -> tuple[int, int]:
        op, mem, integer = desc.opcode, self.memory, not self.float_mode
        a, b, c, d = desc.a, desc.b, desc.c, desc.d
        if op == Opcode.PE1:
            return self._store(desc, pe.pe1(mem.read(desc.src_a, a * b * c).reshape(a, b, c), self._weights(desc),
                                            integer, raw=True))
        if op == Opcode.PE2:
            return self._store(desc, pe.pe2(mem.read(desc.src_a, a * b * c).reshape(a, b, c), self._weights(desc),
                                            integer, raw=True))
        if op == Opcode.PE3 and pe3_block_count(desc.b) > 1:
            stats = [self._execute(block) for block in desc.pe3_blocks()]
            return sum(s for s, _ in stats), sum(t for _, t in stats)
        if op == Opcode.PE3:
            A = mem.read_rows(desc.src_a, a, c, desc.stride_a)
            B = mem.read_rows(desc.src_b, a, d, desc.stride_b)
            acc = pe.pe3_memory_order(pe.pe3(A, B, integer), bool(desc.flags & Flag.CHUNKS), self.cfg.pe3_lanes)
            if desc.flags & Flag.ACC:
                acc_out, _ = pe.output_stage(acc, desc.shift, desc.out_fmt.format(), integer)
                old = mem.read(desc.dst, d * c).reshape(acc.shape)
                total = acc_out + old
                fmt = desc.out_fmt.format()
                out = total if not integer else np.clip(total, fmt.min_int, fmt.max_int)
                mem.write(desc.dst, out)
                return (0, 0) if not integer else (int((out != total).sum()), int(np.abs(out).sum()))
            return self._store(desc, acc)
        if op == Opcode.REDUCE:
            return self._store(desc, pe.reduce_rows(mem.read(desc.src_a, a * c).reshape(a, c), integer))
        if op == Opcode.ACT_FWD:
            Y = mem.read(desc.src_a, a * c).reshape(a, c)
            out, sat = pe.act_forward(Y, self._bias(desc), desc.bias_shift, desc.shift, desc.out_fmt.format(), integer)
            mem.write(desc.dst, out)
            return (0, 0) if not integer else (int(sat.sum()), int(np.abs(out).sum()))
        if op == Opcode.ACT_BWD:
            Y = mem.read(desc.src_a, a * c).reshape(a, c)
            G = mem.read(desc.src_b, a * c).reshape(a, c)
            out = pe.act_backward(Y, G, self._bias(desc), desc.bias_shift, desc.shift, desc.out_fmt.format(), integer)
            mem.write(desc.dst, out)
            return (0, 0) if not integer else (0, int(np.abs(out).sum()))
        if op == Opcode.LOAD_W:
            start = desc.wofs * WMEM_LANES
            if self.float_mode:
                self.wmem[start:start + a * WMEM_LANES] = mem.read(desc.src_a, a * WMEM_LANES)
            else:
                words = mem.read_bytes(desc.src_a, 8 * a).view(np.uint64)
                self.wmem[start:start + a * WMEM_LANES] = unpack_weight_words(words)
            return 0, 0
        if op == Opcode.LOAD_B:
            start = desc.bofs * BMEM_LANES
            if self.float_mode:
                self.bmem[start:start + a * BMEM_LANES] = mem.read(desc.src_a, a * BMEM_LANES)
            else:
                self.bmem[start:start + a * BMEM_LANES] = unpack_bias_words(mem.read_bytes(desc.src_a, 16 * a))
            return 0, 0
        raise AssertionError(f"unhandled opcode {op!r}")  # check_descriptor rejects everything else

    def _flush_pe3(self, prog_addr: int, group: list, result: RunResult) -> None:
        """Run a group of compatible PE3 descriptors at once (same results as one by one).

        The common case, every block of one weight gradient (sim/compiler.py), reads sub-blocks of the same two
        row-strided matrices: then one GEMM forms the whole outer product and the blocks are sliced out of it.
        Otherwise the blocks are gathered and multiplied as a batch.
        """
        if not group:
            return
        first = group[0][1]             # the entries are single-group blocks (Descriptor.pe3_blocks)
        a, c, d = first.a, first.c, first.d
        mem, integer = self.memory, not self.float_mode
        elems, base = mem.elements, mem.base
        off_a = np.array([(g.src_a - base) // 2 for _, g in group])
        off_b = np.array([(g.src_b - base) // 2 for _, g in group])
        for offs, stride, width in ((off_a, first.stride_a, c), (off_b, first.stride_b, d)):
            if offs.min() < 0 or offs.max() + (a - 1) * stride + width > elems.size:
                raise IndexError("PE3 operand outside memory")
        lo_a, lo_b = off_a.min(), off_b.min()
        col_a, col_b = off_a - lo_a, off_b - lo_b
        if col_a.max() + c <= first.stride_a and col_b.max() + d <= first.stride_b:
            A_all = elems[lo_a: lo_a + (a - 1) * first.stride_a + first.stride_a]
            B_all = elems[lo_b: lo_b + (a - 1) * first.stride_b + first.stride_b]
            if A_all.size < a * first.stride_a or B_all.size < a * first.stride_b:
                A_all = np.concatenate([A_all, np.zeros(a * first.stride_a - A_all.size, A_all.dtype)])
                B_all = np.concatenate([B_all, np.zeros(a * first.stride_b - B_all.size, B_all.dtype)])
            full = (B_all.reshape(a, first.stride_b).astype(np.float64).T
                    @ A_all.reshape(a, first.stride_a).astype(np.float64))
            acc = full[col_b[:, None, None] + np.arange(d)[None, :, None],
                       col_a[:, None, None] + np.arange(c)[None, None, :]]
        else:
            rows = np.arange(a)
            A = elems[off_a[:, None, None] + rows[None, :, None] * first.stride_a + np.arange(c)[None, None, :]]
            B = elems[off_b[:, None, None] + rows[None, :, None] * first.stride_b + np.arange(d)[None, None, :]]
            acc = np.matmul(B.astype(np.float64).transpose(0, 2, 1), A.astype(np.float64))
        acc = pe.pe3_memory_order(acc, bool(first.flags & Flag.CHUNKS), self.cfg.pe3_lanes)
        out, sat = pe.output_stage(acc, first.shift, first.out_fmt.format(), integer)
        dsts = np.array([g.dst for _, g in group])
        if np.all(np.diff(dsts) == 2 * c * d):
            mem.store(group[0][1].dst, out)
        else:
            for i, (_, desc) in enumerate(group):
                mem.store(desc.dst, out[i])
        if integer:
            sat_counts = sat.reshape(len(group), -1).sum(axis=1)
            sums = np.abs(out).reshape(len(group), -1).sum(axis=1).astype(np.int64)
        else:
            sat_counts = sums = np.zeros(len(group), dtype=np.int64)
        # One write-back per descriptor: the statistics of its groups summed.
        pcs = np.array([pc for pc, _ in group])
        starts = np.flatnonzero(np.r_[True, pcs[1:] != pcs[:-1]])
        self._write_backs(prog_addr, group[0][0], [group.descriptors[pc] for pc in pcs[starts]],
                          np.add.reduceat(sat_counts, starts), np.add.reduceat(sums, starts))
        group.reset()


class _PE3Group(list):
    """Consecutive PE3 descriptors of one shape, run together as ``(pc, single-group block)`` entries (a
    descriptor with row groups adds one per group); tracks the byte range they write."""

    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.clear()
        self.descriptors = {}           # pc -> the descriptor, for its write-back
        self.dst_lo = self.dst_hi = None

    def add(self, pc: int, desc: Descriptor) -> None:
        self.descriptors[pc] = desc
        for block in desc.pe3_blocks():
            end = block.dst + 2 * block.c * block.d
            self.dst_lo = block.dst if self.dst_lo is None else min(self.dst_lo, block.dst)
            self.dst_hi = end if self.dst_hi is None else max(self.dst_hi, end)
            self.append((pc, block))

    def _reads_clear(self, block: Descriptor) -> bool:
        reads = ((block.src_a, block.src_a + 2 * ((block.a - 1) * block.stride_a + block.c)),
                 (block.src_b, block.src_b + 2 * ((block.a - 1) * block.stride_b + block.d)))
        return all(hi <= self.dst_lo or lo >= self.dst_hi for lo, hi in reads)

    def admits(self, desc: Descriptor) -> bool:
        """Same shape, and reads nothing the batch writes (batching reads all before writing any)."""
        first = self[0][1]
        if desc.opcode != Opcode.PE3 or desc.flags & Flag.ACC:
            return False
        if ((desc.a, desc.c, desc.d, desc.stride_a, desc.stride_b, desc.shift, desc.out_fmt, desc.flags) !=
                (first.a, first.c, first.d, first.stride_a, first.stride_b, first.shift, first.out_fmt, first.flags)):
            return False
        return all(self._reads_clear(block) for block in desc.pe3_blocks())
