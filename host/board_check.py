"""``ultratrain board-check``: every instruction kind on random data, device vs golden executor.

Thesis section 3.5.2 defines the instructions; ``sim/executor.py`` is their executable definition. For each
kind (PE1, PE2, PE3 with and without ACC, with row strides and in row and column groups, ACT_FWD, ACT_BWD,
REDUCE, the LOAD_W/LOAD_B that feed them, an empty program, and an illegal descriptor) this writes random
operands into device memory, runs a short program on the device *and* on the golden executor over an
identical memory image, and compares the output tensor bit for bit plus every write-back (done, error code,
saturation count, sum of |outputs|).
It prints one line per instruction with pass/fail and the cycles the device measured.

Works on any backend of ``host/runtime.py``: ``--backend pynq`` on the board, ``rtl`` in co-simulation,
``emulated`` as a self-check of the command. Numpy only (runs on the board's ARM core).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..sim.contract import (DEFAULT_CONFIG, DESCRIPTOR_BYTES, BMEM_LANES, Descriptor, ErrorCode, Flag,
                            HardwareConfig, Opcode, OutFormat, encode_program, pack_bias_words, pack_weight_words,
                            pe2_row_pitch, pe3_column_groups, pe3_group_field, pe3_row_groups,
                            read_writeback)
from ..sim.executor import DeviceError, GoldenDevice, Memory

__all__ = ["CASES", "CaseResult", "run_board_check", "format_results", "main", "add_arguments", "run_command"]

REGION_BYTES = 256 << 10      # operands, outputs, weights and the program of one case
PROGRAM_OFFSET = 0            # the ring sits at the start of the region
DATA_OFFSET = 4096


@dataclass
class Case:
    """One check: ``build(rng, base) -> (writes, descriptors, outputs)``.

    ``writes`` are ``(address, bytes)`` put into both memories first; ``descriptors`` the program (END
    appended here); ``outputs`` the ``(address, nbytes)`` ranges compared after the run.
    """
    name: str
    build: object


@dataclass
class CaseResult:
    name: str
    passed: bool
    cycles: int = 0              # device write-back cycles of the instruction under test
    total_cycles: int = 0        # the device's CYCLES counter for the whole program (0 if not reported)
    detail: str = ""
    seconds: float = 0.0
    trials: int = 1
    failures: list = field(default_factory=list)


class _Layout:
    """Bump allocation of operands inside the case's region (32-byte operand alignment kept at 64)."""

    def __init__(self, base: int):
        self.next = base + DATA_OFFSET
        self.writes: list[tuple[int, bytes]] = []

    def put(self, raw: bytes) -> int:
        addr = self.next
        self.next += -(-len(raw) // 64) * 64
        self.writes.append((addr, bytes(raw)))
        return addr

    def tensor(self, values) -> int:
        return self.put(np.asarray(values, dtype="<i2").tobytes())

    def output(self, n_elements: int, fill: int = 0) -> tuple[int, int]:
        # Outputs are pre-filled (PE3 ACC reads them; the others must overwrite every element).
        nbytes = 2 * n_elements
        return self.put(np.full(n_elements, fill, dtype="<i2").tobytes()), nbytes


def _int16(rng, shape, bits=16):
    lim = 1 << (bits - 1)
    return rng.integers(-lim, lim, shape)


def _fmt(rng):
    return OutFormat(int(rng.integers(0, 3)))


def _load_w(lay: _Layout, weights, wofs=0):
    words = pack_weight_words(weights)
    return Descriptor(Opcode.LOAD_W, a=len(words), src_a=lay.put(words.view(np.uint8).tobytes()), wofs=wofs)


def _load_b(lay: _Layout, biases, bofs=0):
    words = pack_bias_words(biases)
    return Descriptor(Opcode.LOAD_B, a=len(words), src_a=lay.put(words.tobytes()), bofs=bofs)


def _pe1(rng, base, cfg):
    lay = _Layout(base)
    a, b, c, d = cfg.pe1_rows + 3, 2, 32, 24
    wofs = int(rng.integers(0, 16))
    load = _load_w(lay, rng.integers(-8, 8, b * d * c), wofs)
    dst, n = lay.output(a * d, fill=0x5555)
    op = Descriptor(Opcode.PE1, a=a, b=b, c=c, d=d, src_a=lay.tensor(_int16(rng, a * b * c)), dst=dst, wofs=wofs,
                    shift=int(rng.integers(4, 16)), out_fmt=_fmt(rng))
    return lay.writes, [load, op], [(dst, n)]


def _pe2(rng, base, cfg):
    lay = _Layout(base)
    a, b, c, d = 3, 16, 32, 12
    pitch = pe2_row_pitch(d, cfg.pe2_rows)
    load = _load_w(lay, rng.integers(-8, 8, b * pitch))
    dst, n = lay.output(a * d * c, fill=0x5555)
    op = Descriptor(Opcode.PE2, a=a, b=b, c=c, d=d, src_a=lay.tensor(_int16(rng, a * b * c)), dst=dst,
                    shift=int(rng.integers(2, 12)), out_fmt=_fmt(rng))
    return lay.writes, [load, op], [(dst, n)]


def _pe3(rng, base, cfg, strided=False, acc=False, groups=0):
    lay = _Layout(base)
    a, c, d = 20, 32, 16
    G, H = pe3_row_groups(groups), pe3_column_groups(groups)
    sa, sb = (H * c + 16, G * d + 32) if strided else (H * c, G * d)
    A, B = lay.tensor(_int16(rng, a * sa)), lay.tensor(_int16(rng, a * sb))
    dst, n = lay.output(H * G * d * c, fill=int(rng.integers(-2000, 2000)) if acc else 0x5555)
    flags = (Flag.ACC if acc else Flag.NONE) | (Flag.CHUNKS if groups else Flag.NONE)
    op = Descriptor(Opcode.PE3, a=a, b=groups, c=c, d=d, src_a=A, src_b=B, dst=dst, stride_a=sa, stride_b=sb,
                    shift=int(rng.integers(14, 24)), out_fmt=OutFormat.S16 if acc else _fmt(rng), flags=flags)
    return lay.writes, [op], [(dst, n)]


def _act(rng, base, cfg, backward=False):
    lay = _Layout(base)
    a, c = 5, 48
    bofs = int(rng.integers(0, 4))
    load = _load_b(lay, rng.integers(-128, 128, c), bofs)
    Y = lay.tensor(_int16(rng, a * c, bits=12))
    dst, n = lay.output(a * c, fill=0x5555)
    common = dict(a=a, c=c, src_a=Y, dst=dst, bofs=bofs, bias_shift=int(rng.integers(-2, 5)),
                  shift=int(rng.integers(0, 6)), out_fmt=OutFormat.U8)
    if backward:
        op = Descriptor(Opcode.ACT_BWD, src_b=lay.tensor(_int16(rng, a * c)), **common)
    else:
        op = Descriptor(Opcode.ACT_FWD, **common)
    return lay.writes, [load, op], [(dst, n)]


def _reduce(rng, base, cfg):
    lay = _Layout(base)
    a, c = 24, 32
    dst, n = lay.output(c, fill=0x5555)
    op = Descriptor(Opcode.REDUCE, a=a, c=c, src_a=lay.tensor(_int16(rng, a * c)), dst=dst,
                    shift=int(rng.integers(0, 6)), out_fmt=_fmt(rng))
    return lay.writes, [op], [(dst, n)]


def _empty(rng, base, cfg):
    return [], [], []


def _illegal(rng, base, cfg):
    # c not a multiple of the array width: BAD_SHAPE at descriptor 1, after a legal REDUCE.
    lay = _Layout(base)
    dst, n = lay.output(16, fill=0x5555)
    ok = Descriptor(Opcode.REDUCE, a=4, c=16, src_a=lay.tensor(_int16(rng, 64)), dst=dst)
    bad = Descriptor(Opcode.PE1, a=8, b=1, c=24, d=8, src_a=dst, dst=dst)
    return lay.writes, [ok, bad], [(dst, n)]


CASES = [
    Case("LOAD_W+PE1", _pe1),
    Case("LOAD_W+PE2", _pe2),
    Case("PE3", _pe3),
    Case("PE3 strided", lambda rng, base, cfg: _pe3(rng, base, cfg, strided=True)),
    Case("PE3 ACC", lambda rng, base, cfg: _pe3(rng, base, cfg, strided=True, acc=True)),
    Case("PE3 row groups", lambda rng, base, cfg: _pe3(rng, base, cfg, strided=True, acc=True, groups=3)),
    Case("PE3 column groups", lambda rng, base, cfg: _pe3(rng, base, cfg, strided=True,
                                                          groups=pe3_group_field(2, 3))),
    Case("LOAD_B+ACT_FWD", _act),
    Case("LOAD_B+ACT_BWD", lambda rng, base, cfg: _act(rng, base, cfg, backward=True)),
    Case("REDUCE", _reduce),
    Case("END", _empty),
    Case("illegal (BAD_SHAPE)", _illegal),
]


def _run_one(backend, golden: GoldenDevice, base: int, case: Case, rng, cfg) -> tuple[bool, str, int, int]:
    writes, descriptors, outputs = case.build(rng, base, cfg)
    program = list(descriptors) + [Descriptor(Opcode.END)]
    ring = encode_program(program)
    if len(ring) > DATA_OFFSET:
        raise AssertionError(f"{case.name}: program too long for the ring area")
    mem = golden.memory
    mem.bytes[:] = 0
    for addr, raw in [(base + PROGRAM_OFFSET, ring)] + writes:
        mem.write_bytes(addr, raw)
        backend.write_bytes(addr, raw)
    count = len(program)
    expected_error = None
    try:
        golden.run(base, count, raise_on_error=True)
    except DeviceError as err:
        expected_error = err
    got_error = None
    try:
        backend.run(base, count)
    except DeviceError as err:
        got_error = err
    problems = []
    if (expected_error is None) != (got_error is None):
        problems.append(f"device {'raised ' + str(got_error) if got_error else 'ran'}, golden "
                        f"{'raised ' + str(expected_error) if expected_error else 'ran'}")
    elif expected_error is not None and (expected_error.code, expected_error.pc) != (got_error.code, got_error.pc):
        problems.append(f"device error {got_error.code.name}@{got_error.pc}, golden "
                        f"{expected_error.code.name}@{expected_error.pc}")
    for addr, nbytes in outputs:
        want = np.frombuffer(bytes(mem.read_bytes(addr, nbytes)), dtype="<i2")
        got = np.frombuffer(backend.read_bytes(addr, nbytes), dtype="<i2")
        bad = np.flatnonzero(want != got)
        if bad.size:
            i = int(bad[0])
            problems.append(f"{bad.size} of {want.size} outputs differ (first at {i}: device {got[i]}, golden {want[i]})")
    device_ring = backend.read_bytes(base, count * DESCRIPTOR_BYTES)
    golden_ring = bytes(mem.read_bytes(base, count * DESCRIPTOR_BYTES))
    cycles = 0
    last_index = expected_error.pc if expected_error is not None else count - 1
    for i in range(last_index + 1):
        wd, wg = read_writeback(device_ring, i), read_writeback(golden_ring, i)
        if (wd.done, wd.error, wd.saturated, wd.sum_abs) != (wg.done, wg.error, wg.saturated, wg.sum_abs):
            problems.append(f"write-back {i}: device (done={wd.done}, error={wd.error.name}, sat={wd.saturated}, "
                            f"sum={wd.sum_abs}) vs golden (done={wg.done}, error={wg.error.name}, "
                            f"sat={wg.saturated}, sum={wg.sum_abs})")
    if descriptors:
        under_test = len(descriptors) - 1 if expected_error is None else min(last_index, len(descriptors) - 1)
        cycles = read_writeback(device_ring, under_test).cycles
    counters = getattr(backend, "last_counters", None) or {}
    return not problems, "; ".join(problems), cycles, int(counters.get("cycles", 0))


def run_board_check(backend, seed: int = 0, repeats: int = 1, cfg: HardwareConfig = DEFAULT_CONFIG,
                    cases=None, log=None) -> list[CaseResult]:
    """Run every case ``repeats`` times on ``backend``; returns one :class:`CaseResult` per case."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, not {repeats!r}")
    base = backend.alloc(REGION_BYTES)
    golden = GoldenDevice(Memory(REGION_BYTES, base=base), cfg)
    results = []
    for index, case in enumerate(cases or CASES):
        result = CaseResult(case.name, True, trials=repeats)
        start = time.perf_counter()
        for trial in range(repeats):
            rng = np.random.default_rng([seed, index, trial])
            ok, detail, cycles, total = _run_one(backend, golden, base, case, rng, cfg)
            result.cycles, result.total_cycles = max(result.cycles, cycles), max(result.total_cycles, total)
            if not ok:
                result.passed = False
                result.failures.append(f"trial {trial}: {detail}")
        result.seconds = time.perf_counter() - start
        result.detail = result.failures[0] if result.failures else ""
        results.append(result)
        if log is not None:
            log(format_line(result))
    return results


def format_line(r: CaseResult) -> str:
    total = f"{r.total_cycles:>9}" if r.total_cycles else f"{'-':>9}"
    line = f"{r.name:<22}{'pass' if r.passed else 'FAIL':<6}{r.cycles:>9}{total}"
    return line + (f"  {r.detail}" if r.detail else "")


def format_results(results) -> str:
    head = f"{'instruction':<22}{'result':<6}{'cycles':>9}{'program':>9}"
    return "\n".join([head] + [format_line(r) for r in results])


# ---------------------------------------------------------------------------------------------------------
# command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="pynq", help="device to check: pynq (the board, default), rtl "
                   "(co-simulation) or emulated (self-check)")
    p.add_argument("--seed", type=int, default=0, help="random operands seed (default 0)")
    p.add_argument("--repeats", type=int, default=3, help="random trials per instruction (default 3)")
    p.add_argument("--bitstream", default=None, help="the .bit to load (pynq; default $ULTRATRAIN_BITSTREAM "
                   "or bitstreams/ultratrain.bit, with its .hwh and manifest beside it)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per program on the board (default 10)")


def _make_backend(args):
    if args.backend == "pynq":
        from .backends.pynq import PynqBackend
        return PynqBackend.from_bitstream(args.bitstream, timeout_s=args.timeout)
    from .trainer import make_backend
    return make_backend(args.backend, "fixed")


def run_command(args) -> int:
    """``ultratrain board-check``: prints a table; exit status 0 if every instruction passed."""
    try:
        backend = _make_backend(args)
    except (ValueError, RuntimeError, OSError) as err:   # BoardError, BitstreamError, HardwareMismatch...
        print(f"ultratrain board-check: error: {err}", file=sys.stderr)
        return 2
    ident = getattr(backend, "identity", None)
    print(f"board-check on {getattr(backend, 'name', args.backend)}"
          + (f", device ID {ident['ID']:#010x} version {ident['VERSION'] >> 16}.{ident['VERSION'] & 0xFFFF}"
             if ident else "")
          + (f", fabric clock {backend.clock_mhz:.2f} MHz" if getattr(backend, "clock_mhz", None) else ""))
    print(f"{'instruction':<22}{'result':<6}{'cycles':>9}{'program':>9}", flush=True)
    try:
        results = run_board_check(backend, seed=args.seed, repeats=args.repeats,
                                  log=lambda line: print(line, flush=True))
    except RuntimeError as err:                           # DeviceTimeout and other device failures
        print(f"ultratrain board-check: error: {err}", file=sys.stderr)
        return 1
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    failed = [r.name for r in results if not r.passed]
    print(f"{len(results) - len(failed)}/{len(results)} instructions pass"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ultratrain board-check", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run_command(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
