"""The golden executor's observable behaviour (sim/executor.py): error stops, write-backs, PE3 batching."""

from dataclasses import replace

import numpy as np
import pytest

from ultratrain.sim import pe
from ultratrain.sim.contract import (DESCRIPTOR_BYTES, Descriptor, ErrorCode, Flag, Opcode, OutFormat,
                                     encode_program, pack_weight_words, pe3_group_field, read_writeback)
from ultratrain.sim.executor import DeviceError, GoldenDevice, Memory
from ultratrain.sim.formats import rescale

BASE = 0x1000_0000


def setup(program, size=1 << 20):
    mem = Memory(size, base=BASE)
    dev = GoldenDevice(mem)
    mem.write_bytes(BASE, encode_program(program))
    return mem, dev


def test_run_writes_back_statistics():
    rng = np.random.default_rng(0)
    A = rng.integers(-1000, 1000, (3, 2, 16))
    W = rng.integers(-8, 8, (2, 4, 16))
    program = [Descriptor(Opcode.LOAD_W, a=len(pack_weight_words(W)), src_a=BASE + 0x4000),
               Descriptor(Opcode.PE1, a=3, b=2, c=16, d=4, src_a=BASE + 0x1000, dst=BASE + 0x2000, shift=6,
                          out_fmt=OutFormat.S8),
               Descriptor(Opcode.END)]
    mem, dev = setup(program)
    mem.write(BASE + 0x1000, A)
    mem.write_bytes(BASE + 0x4000, pack_weight_words(W).view(np.uint8))
    result = dev.run(BASE, 3)
    assert result.ok and result.pc == 2
    out, sat = rescale(pe.pe1(A, W), 6, OutFormat.S8.format())
    np.testing.assert_array_equal(mem.read(BASE + 0x2000, 12).reshape(3, 4), out)
    wb = read_writeback(mem.read_bytes(BASE, 3 * DESCRIPTOR_BYTES), 1)
    assert wb.done and wb.error == ErrorCode.NONE
    assert wb.saturated == sat.sum() and wb.sum_abs == np.abs(out).sum()


@pytest.mark.parametrize("bad, code", [
    (Descriptor(Opcode.PE1, a=1, b=1, c=8, d=1), ErrorCode.BAD_SHAPE),
    (Descriptor(Opcode.PE2, a=1, b=1, c=16, d=1, src_a=BASE + 8), ErrorCode.BAD_ALIGN),
    (Descriptor(Opcode.LOAD_B, a=65), ErrorCode.MEM_RANGE),
])
def test_illegal_descriptor_stops_with_its_error(bad, code):
    program = [Descriptor(Opcode.REDUCE, a=1, c=16, src_a=BASE + 0x1000, dst=BASE + 0x2000), bad,
               Descriptor(Opcode.REDUCE, a=1, c=16, src_a=BASE + 0x1000, dst=BASE + 0x3000), Descriptor(Opcode.END)]
    mem, dev = setup(program)
    mem.write(BASE + 0x1000, np.arange(16))
    result = dev.run(BASE, 4)
    assert (result.error, result.pc) == (code, 1)
    ring = mem.read_bytes(BASE, 4 * DESCRIPTOR_BYTES)
    assert read_writeback(ring, 0).done
    assert read_writeback(ring, 1).error == code and not read_writeback(ring, 1).done
    assert not read_writeback(ring, 2).done                       # nothing after the error ran
    assert not mem.read(BASE + 0x3000, 16).any()
    with pytest.raises(DeviceError, match=code.name):
        dev.run(BASE, 4, raise_on_error=True)


def test_corrupt_opcode_and_missing_end():
    mem, dev = setup([Descriptor(Opcode.END)])
    mem.write_bytes(BASE, bytes([0x0E]) + bytes(63))
    assert dev.run(BASE, 1).error == ErrorCode.ILLEGAL_OPCODE
    mem, dev = setup([Descriptor(Opcode.LOAD_B, a=1, src_a=BASE + 0x1000)])
    assert dev.run(BASE, 1).error == ErrorCode.NO_END


def test_pe3_chunk_major_store_is_the_row_major_result_rearranged():
    """Flag.CHUNKS stores dst[c // 16][d][c % 16]; with ACC the old result is read in the same order."""
    rng = np.random.default_rng(2)
    K, c, d = 3, 48, 5
    X, G = rng.integers(-600, 600, (K, 64)), rng.integers(-600, 600, (K, 32))
    for acc in (False, True):
        results = {}
        for flags in (Flag.NONE, Flag.CHUNKS):
            desc = Descriptor(Opcode.PE3, a=K, c=c, d=d, src_a=BASE + 0x1000, src_b=BASE + 0x8000, dst=BASE + 0x10000,
                              stride_a=64, stride_b=32, shift=2, flags=flags | (Flag.ACC if acc else Flag.NONE))
            mem, dev = setup([desc, Descriptor(Opcode.END)])
            mem.write(BASE + 0x1000, X)
            mem.write(BASE + 0x8000, G)
            old = np.arange(c * d) - 100
            mem.write(BASE + 0x10000, old if flags == Flag.NONE else old.reshape(d, 3, 16).transpose(1, 0, 2).ravel())
            assert dev.run(BASE, 2).ok
            results[flags] = mem.read(BASE + 0x10000, c * d).copy()
        row_major = results[Flag.NONE].reshape(d, c)
        np.testing.assert_array_equal(results[Flag.CHUNKS], row_major.reshape(d, 3, 16).transpose(1, 0, 2).ravel())


@pytest.mark.parametrize("H", [1, 3])
@pytest.mark.parametrize("flags", [Flag.NONE, Flag.CHUNKS, Flag.ACC, Flag.ACC | Flag.CHUNKS])
def test_pe3_row_groups_equal_their_single_group_blocks(flags, H):
    """PE3 with G row groups (b[7:0]) and H column groups (b[15:8]) is the H G single-group instructions
    Descriptor.pe3_blocks lists (contract 1.2, 1.3), column groups outer: the same results in DRAM and one
    write-back holding the statistics of all blocks. Some outputs saturate."""
    rng = np.random.default_rng(3)
    K, c, d, G = 3, 48, 16, 4
    X, Gr = rng.integers(-900, 900, (K, 160)), rng.integers(-900, 900, (K, 64))
    old = rng.integers(-30000, 30000, H * G * c * d)       # what dst holds before (ACC adds to it)
    grouped = Descriptor(Opcode.PE3, a=K, b=pe3_group_field(G, H), c=c, d=d, src_a=BASE + 0x1000,
                         src_b=BASE + 0x8000, dst=BASE + 0x10000, stride_a=160, stride_b=64, shift=1, flags=flags)
    assert grouped.macs() == H * G * K * c * d
    assert [(blk.src_a, blk.src_b, blk.dst, blk.b) for blk in grouped.pe3_blocks()] == [
        (BASE + 0x1000 + 2 * h * c, BASE + 0x8000 + 2 * g * d, BASE + 0x10000 + 2 * (h * G + g) * d * c, 0)
        for h in range(H) for g in range(G)]
    G = G * H                                              # blocks per instruction, below
    # Twice in one program, so that the batched path (consecutive PE3 without ACC) runs a grouped descriptor too.
    second = replace(grouped, dst=BASE + 0x20000)
    runs = {}
    for name, program in (("grouped", [grouped, second]),
                          ("blocks", grouped.pe3_blocks() + second.pe3_blocks())):
        mem, dev = setup(program + [Descriptor(Opcode.END)])
        mem.write(BASE + 0x1000, X)
        mem.write(BASE + 0x8000, Gr)
        mem.write(BASE + 0x10000, old)
        mem.write(BASE + 0x20000, old)
        assert dev.run(BASE, len(program) + 1).ok
        ring = mem.read_bytes(BASE, len(program) * DESCRIPTOR_BYTES)
        wbs = [read_writeback(ring, i) for i in range(len(program))]
        runs[name] = (mem.read(BASE + 0x10000, G * c * d).copy(), mem.read(BASE + 0x20000, G * c * d).copy(), wbs)
    np.testing.assert_array_equal(runs["grouped"][0], runs["blocks"][0])
    np.testing.assert_array_equal(runs["grouped"][1], runs["blocks"][1])
    for i, wb in enumerate(runs["grouped"][2]):
        blocks = runs["blocks"][2][i * G:(i + 1) * G]
        assert wb.done and wb.saturated == sum(b.saturated for b in blocks)
        assert wb.sum_abs == sum(b.sum_abs for b in blocks)
    assert runs["grouped"][2][0].saturated > 0


def pe3_program(blocks, K, dst, acc=False, shift=3):
    return [Descriptor(Opcode.PE3, a=K, c=16, d=16, src_a=BASE + 0x1000 + 32 * i, src_b=BASE + 0x8000 + 32 * j,
                       dst=dst + 512 * n, stride_a=64, stride_b=32, shift=shift, flags=Flag.ACC if acc else Flag.NONE)
            for n, (i, j) in enumerate(blocks)]


def test_pe3_batched_equals_one_by_one_and_acc_accumulates():
    rng = np.random.default_rng(1)
    K = 5
    X, G = rng.integers(-600, 600, (K, 64)), rng.integers(-600, 600, (K, 32))   # some blocks saturate
    blocks = [(i, j) for j in range(2) for i in range(4)]
    mem, dev = setup(pe3_program(blocks, K, BASE + 0x10000) + [Descriptor(Opcode.END)])
    mem.write(BASE + 0x1000, X)
    mem.write(BASE + 0x8000, G)
    assert dev.run(BASE, len(blocks) + 1).ok
    batched = mem.read(BASE + 0x10000, 256 * len(blocks)).copy()
    for n, (i, j) in enumerate(blocks):
        ref, _ = rescale(pe.pe3(X[:, 16 * i:16 * i + 16], G[:, 16 * j:16 * j + 16]), 3, OutFormat.S16.format())
        np.testing.assert_array_equal(batched[256 * n:256 * (n + 1)].reshape(16, 16), ref)
    # ACC: running the same blocks again with ACC adds (saturating) onto what is there.
    mem.write_bytes(BASE, encode_program(pe3_program(blocks, K, BASE + 0x10000, acc=True) + [Descriptor(Opcode.END)]))
    assert dev.run(BASE, len(blocks) + 1).ok
    np.testing.assert_array_equal(mem.read(BASE + 0x10000, 256 * len(blocks)), np.clip(2 * batched.astype(np.int64), -32768, 32767))


def test_pe3_group_does_not_read_what_it_writes():
    # Block 1 reads (as B) what block 0 writes: it must see block 0's result, as the hardware would.
    K = 1
    program = [Descriptor(Opcode.PE3, a=K, c=16, d=16, src_a=BASE + 0x1000, src_b=BASE + 0x8000, dst=BASE + 0x9000,
                          stride_a=16, stride_b=16),
               Descriptor(Opcode.PE3, a=K, c=16, d=16, src_a=BASE + 0x1000, src_b=BASE + 0x9000, dst=BASE + 0xA000,
                          stride_a=16, stride_b=16),
               Descriptor(Opcode.END)]
    mem, dev = setup(program)
    mem.write(BASE + 0x1000, np.arange(16))
    mem.write(BASE + 0x8000, np.ones(16, dtype=np.int64))
    assert dev.run(BASE, 3).ok
    first = np.outer(np.ones(16), np.arange(16))
    np.testing.assert_array_equal(mem.read(BASE + 0xA000, 256).reshape(16, 16),
                                  np.outer(first[0, :16], np.arange(16)))


def test_memory_bounds_and_int16_range():
    mem = Memory(4096, base=BASE)
    with pytest.raises(IndexError, match="outside memory"):
        mem.read(BASE + 4090, 8)
    with pytest.raises(OverflowError):
        mem.write(BASE, [40000])
    with pytest.raises(ValueError):
        Memory(100)
