"""Measure instruction cycles on the RTL and fit the cycle model's parameters (sim/cycle_model.py).

``python -m tests.perf.calibrate --cases 40 --out results_local/perf`` runs random legal descriptors of each
unit as one program on the accelerator top (AxiRam without stalls, the model's DRAM) through the cocotb bench
``tests/perf/tb_perf_top.py``, reads every descriptor's write-back cycles and the CYCLES register, fits :class:`~ultratrain.sim.cycle_model.CycleParams` by coordinate
descent (sum of squared relative errors, then the largest one) and writes ``measurements.json`` and
``fit.json``. The fitted values are then copied into ``CycleParams``' defaults by hand (reviewed, not
automatic); tests/perf/test_cycle_model.py checks the defaults against fresh measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ultratrain.sim.contract import Descriptor, Opcode
from ultratrain.sim.cycle_model import CycleModel, CycleParams

UNITS = ("PE1", "PE2", "PE3", "VEC", "LOAD")
SRC_A, SRC_B, DST = 0x1000, 0x40000, 0x100000
MAX_BYTES = 240_000          # operands stay below SRC_B / DST in the bench's 2 MiB AxiRam


def random_cases(unit: str, rng: np.random.Generator, n: int, max_cycles: int = 30_000) -> list[dict]:
    """``n`` legal descriptors of ``unit`` covering its regimes (compute-, load- and store-bound)."""
    model = CycleModel()
    cases = []
    while len(cases) < n:
        i = len(cases)
        if unit == "PE1":
            c = 16 * int(rng.integers(1, 9))
            b = int(rng.integers(1, 512 // c + 1))
            regime = i % 3
            d = int(rng.integers(1, 300)) if regime == 0 else int(rng.integers(1, 16)) if regime == 1 else \
                int(rng.integers(1, 400))
            if regime == 2:
                b, c = 1, 16
            a = int(rng.integers(1, 80))
            fields = dict(opcode=Opcode.PE1, a=a, b=b, c=c, d=d)
            if b * d * c > 4096 * 16 or a * b * c * 2 > MAX_BYTES or a * d * 2 > MAX_BYTES:
                continue
        elif unit == "PE2":
            c = 16 * int(rng.integers(1, 9))
            regime = i % 3
            b = int(rng.integers(1, 200)) if regime != 2 else int(rng.integers(1, 12))
            d = int(rng.integers(1, 100)) if regime != 1 else int(rng.integers(1, 9))
            a = int(rng.integers(1, 20))
            fields = dict(opcode=Opcode.PE2, a=a, b=b, c=c, d=d)
            if a * b * c * 2 > MAX_BYTES or a * d * c * 2 > MAX_BYTES:
                continue
        elif unit == "PE3":
            c = 16 * int(rng.integers(1, 9))
            regime = i % 4
            d = int(rng.integers(1, 33)) if regime == 0 else 16 if regime == 3 else int(rng.integers(1, 257))
            a = int(rng.integers(1, 70)) if regime < 2 else int(rng.integers(1, 9))     # 2: drain-bound, 3: dW-like
            c = 16 if regime == 3 else c
            stride_a = c + 16 * int(rng.integers(0, 3))
            stride_b = -(-d // 16) * 16 + 16 * int(rng.integers(0, 2))
            fields = dict(opcode=Opcode.PE3, a=a, c=c, d=d, stride_a=stride_a, stride_b=stride_b, flags=int(i % 5 == 0))
            if a * stride_a * 2 > MAX_BYTES or a * stride_b * 2 > MAX_BYTES:
                continue
        elif unit == "LOAD":
            op = (Opcode.LOAD_W, Opcode.LOAD_B)[i % 2]
            a = int(rng.integers(1, 4096)) if op == Opcode.LOAD_W else int(rng.integers(1, 65))
            fields = dict(opcode=op, a=a)
        else:
            op = (Opcode.ACT_FWD, Opcode.ACT_BWD, Opcode.REDUCE)[i % 3]
            c = 16 * int(rng.integers(1, 40))
            a = int(rng.integers(1, 60))
            if op == Opcode.REDUCE:
                c = min(c, 256)
            fields = dict(opcode=op, a=a, c=c, bofs=0, out_fmt=0 if op == Opcode.REDUCE else 2)
        fields.update(src_a=SRC_A, src_b=SRC_B, dst=DST)
        fields = {k: int(v) for k, v in fields.items()}
        if model.cost(Descriptor(**fields)).total > max_cycles:
            continue
        cases.append(fields)
    return cases


def pe3_acc_cases(rng: np.random.Generator, n: int, max_cycles: int = 30_000) -> list[dict]:
    """``n`` PE3 descriptors with Flag.ACC and small ``d``, alternating ``d <= 4`` (the old result fits in
    PE3's 8-beat old-result FIFO) and ``5 <= d <= 16`` (it does not): the two timings of the ACC branch,
    which :func:`random_cases` (ACC on one PE3 case in five, ``d`` up to 256) samples only now and then."""
    model = CycleModel()
    cases = []
    while len(cases) < n:
        d = int(rng.integers(1, 5)) if len(cases) % 2 == 0 else int(rng.integers(5, 17))
        a, c = int(rng.integers(1, 70)), 16 * int(rng.integers(1, 9))
        fields = dict(opcode=int(Opcode.PE3), a=a, c=c, d=d, stride_a=c + 16 * int(rng.integers(0, 3)),
                      stride_b=16 * int(rng.integers(1, 3)), flags=1, src_a=SRC_A, src_b=SRC_B, dst=DST)
        if a * fields["stride_a"] * 2 > MAX_BYTES or model.cost(Descriptor(**fields)).total > max_cycles:
            continue
        cases.append(fields)
    return cases


def pe3_small_cases(rng: np.random.Generator, n: int, max_cycles: int = 30_000) -> list[dict]:
    """``n`` PE3 descriptors without ACC, small ``a`` (1-8) and ``d`` (1-12), three to eight chunks: the
    shapes where the chunks overlap most (reads, sweeps and drains of neighbouring chunks), which
    :func:`random_cases` draws only now and then."""
    model = CycleModel()
    cases = []
    while len(cases) < n:
        a, d, c = int(rng.integers(1, 9)), int(rng.integers(1, 13)), 16 * int(rng.integers(3, 9))
        fields = dict(opcode=int(Opcode.PE3), a=a, c=c, d=d, stride_a=c + 16 * int(rng.integers(0, 3)),
                      stride_b=-(-d // 16) * 16 + 16 * int(rng.integers(0, 2)), flags=0,
                      src_a=SRC_A, src_b=SRC_B, dst=DST)
        if model.cost(Descriptor(**fields)).total > max_cycles:
            continue
        cases.append(fields)
    return cases


def unit_errors(measurements: list[dict], params: CycleParams) -> list[float]:
    """Relative errors of the modeled write-back cycles against measured ones (``{"desc", "cycles"}``)."""
    model = CycleModel(params=params)
    return [model.cost(Descriptor(**m["desc"])).exec / m["cycles"] - 1 for m in measurements]


RING = 0x180000


def measure_on_top(cases: list[dict], seed: int = 1) -> tuple[list[dict], dict]:
    """Run ``cases`` as one program on the accelerator top; per descriptor its write-back cycles, and the
    program's CYCLES register (``{"cycles", "instructions"}``)."""
    return measure_many_on_top([cases], seed)[0]


def measure_many_on_top(case_lists: list[list[dict]], seed: int = 1) -> list[tuple[list[dict], dict]]:
    """:func:`measure_on_top` for several programs in one simulation (one build and start-up for all),
    run one after another; a ``(rows, program)`` pair per list."""
    from ultratrain.sim.contract import DESCRIPTOR_BYTES, encode_program
    programs, addr = [], RING
    for i, cases in enumerate(case_lists):
        raw = encode_program([Descriptor(**f) for f in cases] + [Descriptor(Opcode.END)])
        programs.append({"name": f"random{i}", "addr": addr, "hex": raw.hex()})
        addr += -(-len(raw) // 4096) * 4096
    if addr + DESCRIPTOR_BYTES > 1 << 22:
        raise ValueError("the rings do not fit in the bench's 4 MiB RAM")
    out = []
    for cases, result in zip(case_lists, measure_programs({"ram_size": 1 << 22, "programs": programs}, seed)):
        rows = [{"desc": f, "cycles": c} for f, c in zip(cases, result["writeback_cycles"])]
        out.append((rows, {"cycles": result["cycles"], "instructions": len(cases) + 1}))
    return out


GRID = {
    "rd_latency": range(0, 16), "wr_latency": range(0, 16),
    "pe1_load_gap": range(0, 8), "pe1_load_cpb": [1.0, 1.125, 1.25, 1.5, 2.0],
    "pe1_store_gap": range(0, 10), "pe1_store_cpw": [1.0, 1.25, 4 / 3, 1.5, 2.0],
    "pe1_block_gap": range(0, 4), "pe1_pipe": range(0, 14),
    "pe2_load_gap": range(0, 8), "pe2_load_cpb": [1.0, 1.125, 1.25, 1.5, 2.0],
    "pe2_store_gap": range(0, 10), "pe2_store_cpb": [1.0, 1.25, 4 / 3, 1.5, 2.0, 2.5, 3.0],
    "pe2_block_gap": range(0, 4), "pe2_pipe": range(0, 14), "pe1_acquire": range(0, 6), "pe2_acquire": range(0, 6),
    "pe3_row_gap": range(0, 4), "pe3_chunk_gap": range(0, 6), "pe3_bank_wait": range(0, 4), "pe3_pipe": range(0, 14),
    "pe3_drain_gap": range(0, 6), "pe3_drain_tail": range(0, 10),
    "pe3_acc_cpb": [0.75, 1.0, 1.25, 4 / 3, 1.5, 1.75, 2.0, 2.5], "pe3_store_cpb": [1.0, 1.125, 1.25, 4 / 3, 1.5, 2.0],
    "pe3_ahead": range(0, 6),
    "pe3_old_fifo": range(0, 17), "pe3_acc_restart": range(0, 12), "pe3_acc_pipe": range(0, 14),
    "vec_pipe": range(0, 20), "vec_reduce_row_gap": range(0, 3),
}


def fit(measurements: list[dict], start: CycleParams = CycleParams(), sweeps: int = 7) -> CycleParams:
    """Coordinate descent over :data:`GRID`: 4 sweeps on the squared error, then on the largest error."""
    def score(params, by_max):
        errs = unit_errors(measurements, params)
        sq, worst = sum(e * e for e in errs), max(abs(e) for e in errs)
        return (worst, sq) if by_max else (sq, worst)

    params = start
    for sweep in range(sweeps):
        by_max = sweep >= 4
        best = score(params, by_max)
        for name, values in GRID.items():
            for value in values:
                trial = CycleParams(**{**asdict(params), name: value})
                s = score(trial, by_max)
                if s < best:
                    best, params = s, trial
    return params


def _split(measurements, programs):
    out, i = [], 0
    for program in programs:
        n = program["instructions"] - 1
        out.append(measurements[i:i + n])
        i += n
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40, help="random descriptors per unit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--units", default=",".join(UNITS))
    parser.add_argument("--out", default="results_local/perf")
    parser.add_argument("--validate", default="", help="comma-separated batch sizes: instead of fitting, compare the "
                        "model with the RTL on the Table 3.3 model's programs (thesis and optimized schedules)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.validate:
        from ultratrain.sim.compiler import thesis_table33_network
        from ultratrain.sim.optimizer import optimize
        spec = thesis_table33_network(16)
        rows = []
        for batch in (int(b) for b in args.validate.split(",")):
            rows += validate_programs(spec, batch, None, "thesis")
            rows += validate_programs(spec, batch, optimize(spec, batch).schedule, "optimized")
            (out / "validation.json").write_text(json.dumps(rows, indent=1))
        for r in rows:
            print(f"{r['label']:9s} B={r['batch']:3d} {r['program']:8s} {r['instructions']:5d} instr  rtl {r['rtl_cycles']:9d}"
                  f"  model {r['model_cycles']:9d}  {r['error']:+.3%}  (worst instruction {r['max_instruction_error']:.2%})")
        return 0
    rng = np.random.default_rng(args.seed)
    measurements, programs = [], []
    for unit in args.units.split(","):
        rows, program = measure_on_top(random_cases(unit, rng, args.cases))
        measurements += rows
        programs.append(program)
    (out / "measurements.json").write_text(json.dumps({"instructions": measurements, "programs": programs}))
    params = fit(measurements)
    # issue and run_overhead: the controller cycles outside the units' runs (CYCLES minus the write-backs'
    # cycles) = issue * instructions + run_overhead + rd_latency, least squares over the programs when they
    # differ in length (here one per unit, all --cases + 1 long, so run_overhead keeps its default).
    counts, overheads = [], []
    for unit_rows, program in zip(_split(measurements, programs), programs):
        counts.append(program["instructions"])
        overheads.append(program["cycles"] - sum(r["cycles"] for r in unit_rows) - params.rd_latency)
    if len(set(counts)) > 1:
        issue, run = np.linalg.lstsq(np.stack([counts, np.ones(len(counts))], 1), overheads, rcond=None)[0]
    else:   # one program length: the per-run part cannot be separated, keep it
        run = params.run_overhead
        issue = (np.mean(overheads) - run) / counts[0]
    params = CycleParams(**{**asdict(params), "issue": round(float(issue)), "run_overhead": round(float(run))})
    errors = unit_errors(measurements, params)
    (out / "fit.json").write_text(json.dumps({"params": asdict(params), "max_rel_error": max(map(abs, errors)),
                                              "n": len(errors)}, indent=2))
    print(json.dumps(asdict(params), indent=2))
    print(f"max |relative error| {max(map(abs, errors)):.3%} over {len(errors)} instructions")
    return 0



# ---------------------------------------------------------------------------------------------------------
# Whole programs on the accelerator top

def program_image(spec, batch: int, schedule=None, base: int = 0x1000) -> tuple[dict, dict]:
    """Rings of the ``load``, ``forward`` and ``backward`` programs of ``spec`` at ``batch`` (zero exponents,
    addresses from a bump allocator in a RAM starting at 0); returns ``(bench input, {name: ops})``."""
    from ultratrain.sim.compiler import assemble
    from ultratrain.sim.contract import DESCRIPTOR_BYTES, TENSOR_ALIGN, encode_program
    from ultratrain.sim.schedules import compile_schedule
    net = compile_schedule(spec, batch, schedule)
    addr = base
    addresses = {}
    for name, tensor in net.tensors.items():
        addresses[name] = addr
        addr += -(-tensor.nbytes // TENSOR_ALIGN) * TENSOR_ALIGN
    weight_exps = [[0] * layer.d for layer in spec.layers]
    bias_exps = [0] * len(spec.layers)
    programs = []
    for name in ("load", "forward", "backward"):
        exps = {n: 0 for n in addresses}
        descriptors = assemble(net, name, addresses, exps, weight_exps, bias_exps)
        programs.append({"name": name, "addr": addr, "hex": encode_program(descriptors).hex()})
        addr += len(descriptors) * DESCRIPTOR_BYTES
    ram_size = 1 << max(20, (addr + 4096).bit_length())
    return {"ram_size": ram_size, "programs": programs}, dict(net.programs)


def measure_programs(image: dict, seed: int = 1) -> list[dict]:
    """Run the rings of :func:`program_image` on the top; per program the CYCLES register and write-backs."""
    from tests.hw.rtl import run_bench

    def top():
        from ultratrain.hw.top import Top
        return Top()

    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = os.path.join(tmp, "programs.json"), os.path.join(tmp, "out.json")
        Path(in_path).write_text(json.dumps(image))
        run_bench("ultratrain_top", top, "tests.perf.tb_perf_top", seed=seed,
                  extra_env={"ULTRATRAIN_PERF_PROGRAMS": in_path, "ULTRATRAIN_PERF_OUT": out_path})
        return json.loads(Path(out_path).read_text())


def validate_programs(spec, batch: int, schedule=None, label: str = "") -> list[dict]:
    """Model vs RTL for the ``load``, ``forward`` and ``backward`` programs of ``spec`` at ``batch``."""
    image, programs = program_image(spec, batch, schedule)
    model = CycleModel()
    rows = []
    for result in measure_programs(image):
        ops = programs[result["name"]]
        errors = [model.cost(op).exec / c - 1 for op, c in zip(ops, result["writeback_cycles"])]
        modeled = model.program(ops).cycles
        rows.append({"label": label, "batch": batch, "program": result["name"], "instructions": len(ops) + 1,
                     "rtl_cycles": result["cycles"], "model_cycles": modeled,
                     "error": modeled / result["cycles"] - 1, "max_instruction_error": max(map(abs, errors))})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
