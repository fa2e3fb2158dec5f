"""The cycle model (sim/cycle_model.py): its pipeline solver, its use as the executor's cycle model, and its
agreement with the RTL's cycle counts (within 5% per instruction on fresh random descriptors)."""

import os
import random

import numpy as np
import pytest

from ultratrain.host.backends.emulated import EmulatedBackend
from ultratrain.host.runtime import NetworkRuntime
from ultratrain.sim.compiler import NetworkSpec, TTLayerSpec, compile_network, thesis_table33_network
from ultratrain.sim.contract import Descriptor, Flag, Opcode
from ultratrain.sim.cycle_model import CycleModel, mac_lower_bound, pipeline_cycles, unit_lower_bound
from ultratrain.sim.optimizer import optimize
from ultratrain.sim.schedules import LayerSchedule, Schedule


def brute_force_pipeline(n, load, compute, store, pipe, gap, last, lead=0, acquire=0, stream=None):
    """Block by block: commands two blocks ahead of the received ones, beats once the half is acquired; with
    ``stream = (row_beats, row_cycles, lag)`` the compute takes the block row by row, each row ``lag`` cycles
    after its last beat (beats one per cycle from the block's first)."""
    cmd, le, ce, se = [], [], [], []
    for i in range(n):
        L, C, S = (load, compute, store) if i < n - 1 else last
        cmd.append(max(cmd[i - 1] + 1 if i else 0, le[i - 2] + 1 if i >= 2 else 0))
        le.append(max(cmd[i] + lead, le[i - 1] if i else 0, ce[i - 2] + acquire if i >= 2 else 0) + L)
        free = max(ce[i - 1] + gap if i else 0, se[i - 2] if i >= 2 else 0)
        if stream is None:
            ce.append(max(le[i], free) + C)
        else:
            row_beats, row_cycles, lag = stream
            first_beat = le[i] - 1 - L                 # the whole-block convention: le is 1 after the last beat
            t = free
            for r in range(L // row_beats):
                t = max(t, first_beat + (r + 1) * row_beats + lag) + row_cycles
            ce.append(t)
        se.append(max(ce[i] + pipe, se[i - 1] if i else 0) + S)
    return se[-1]


def test_pipeline_solver_is_exact():
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.randint(1, 80)
        load, compute, store = (rng.randint(1, 50) for _ in range(3))
        last = (load, compute, store) if rng.random() < 0.5 else tuple(rng.randint(1, 50) for _ in range(3))
        pipe, gap, lead = rng.randint(0, 10), rng.randint(0, 3), rng.choice((0, rng.randint(1, 40)))
        acquire = rng.randint(0, 4)
        assert pipeline_cycles(n, load, compute, store, pipe, gap, last, lead, acquire) == \
            brute_force_pipeline(n, load, compute, store, pipe, gap, last, lead, acquire)
    # Streaming (PE2): the closed form per block equals row-by-row timing, in both the load- and the
    # compute-bound regime (rows of two beats, 1-4 cycles a row).
    for _ in range(1000):
        n, rows, row_cycles = rng.randint(1, 60), rng.randint(1, 40), rng.randint(1, 4)
        load, compute, store = 2 * rows, rows * row_cycles, rng.randint(1, 50)
        pipe, lead, acquire, lag = rng.randint(0, 10), rng.choice((0, rng.randint(1, 40))), rng.randint(0, 4), \
            rng.randint(0, 3)
        stream = (2, row_cycles, lag)
        assert pipeline_cycles(n, load, compute, store, pipe, 0, None, lead, acquire, stream) == \
            brute_force_pipeline(n, load, compute, store, pipe, 0, (load, compute, store), lead, acquire, stream)
    # Streaming hides a block's load behind its own compute: one block costs about max(load, compute).
    assert pipeline_cycles(1, 200, 200, 8, stream=(2, 2, 2)) < pipeline_cycles(1, 200, 200, 8) - 150
    # The extrapolated long case equals the block-by-block solution.
    assert pipeline_cycles(5000, 16, 257, 256, 10, 1, lead=28) == \
        brute_force_pipeline(5000, 16, 257, 256, 10, 1, (16, 257, 256), lead=28)
    # Load-bound: the read latency is paid once, not per block.
    assert pipeline_cycles(100, 64, 32, 8, lead=28) == 28 + 100 * 64 + 32 + 8
    # Load as fast as compute: with the commands running ahead the latency is not paid per block either.
    assert pipeline_cycles(200, 56, 56, 32, lead=28, acquire=2) < 28 + 200 * 60


def test_bounds_and_regimes():
    model = CycleModel()
    big = Descriptor(Opcode.PE1, a=1024, b=1, c=256, d=16)       # compute-bound: close to 128 MAC/cycle
    cost = model.cost(big)
    assert big.macs() / 128 <= cost.total <= 1.05 * big.macs() / 128
    pe3 = Descriptor(Opcode.PE3, a=32, c=16, d=16, stride_a=896, stride_b=512)
    assert model.cost(pe3).total >= pe3.macs() / 16                 # PE3 has 16 multipliers
    wide = Descriptor(Opcode.PE3, a=32, c=64, d=16, stride_a=896, stride_b=512)
    acc = Descriptor(Opcode.PE3, a=32, c=64, d=16, stride_a=896, stride_b=512, flags=Flag.ACC)
    assert model.cost(acc).total > model.cost(wide).total        # ACC: the old-result read holds back the next chunk
    slim = Descriptor(Opcode.PE2, a=32, b=512, c=16, d=1)           # one row of eight used: 1/8 utilization
    assert model.cost(slim).busy == 32 * 512
    net = compile_network(thesis_table33_network(16), 32)
    ops = net.programs["forward"] + net.programs["backward"]
    assert unit_lower_bound(ops) > mac_lower_bound(net.macs("forward") + net.macs("backward"))


def test_model_drives_the_emulated_device_write_backs():
    """GoldenDevice(cycle_model=...) writes the model's per-instruction cycles (the units' runs, as the RTL
    writes them back); NetworkRuntime sums them per program."""
    spec = thesis_table33_network(16)
    net = compile_network(spec, 2)
    model = CycleModel()
    rt = NetworkRuntime(net, EmulatedBackend(cycle_model=model))
    rng = np.random.default_rng(0)
    we, be = [[-3] * layer.d for layer in spec.layers], [-6, -6]
    rt.upload_parameters([[rng.integers(-8, 8, layer.core_shape(k)) for k in range(layer.d)] for layer in spec.layers],
                         [rng.integers(-100, 100, layer.out_features) for layer in spec.layers], we, be)
    exps = {name: (-8 if t.kind.name == "U8" else -6) for name, t in net.tensors.items()}
    exps["G0"] = exps["L1.dx"]
    rt.forward(rng.integers(0, 256, (2, 896)), exps, we, be)
    rt.backward(rng.integers(-500, 500, (2, 16)), exps, we, be)
    for program in ("load", "forward", "backward"):
        ops = net.programs[program]
        assert rt.last_cycles[program] == sum(model.cost(op).exec for op in ops) > 0
        assert model.program(ops).cycles == (rt.last_cycles[program] + model.params.issue * (len(ops) + 1)
                                             + model.params.run_overhead + model.params.rd_latency)


# ---------------------------------------------------------------------------------------------------------
# Against the RTL: the accelerator top (tests/perf/tb_perf_top.py), AxiRam without stalls

def assert_within(model_cycles, rtl_cycles, what, rel=0.05, slack_cycles=8):
    """Within ``rel`` (or ``slack_cycles`` on the tiniest instructions, where one FSM cycle is a few percent)."""
    err = model_cycles / rtl_cycles - 1
    assert abs(err) <= max(rel, slack_cycles / rtl_cycles), f"{what}: model {model_cycles} vs rtl {rtl_cycles} ({err:+.1%})"


def random_program(seed: int) -> list[dict]:
    """The random program of ``seed``: every unit's regimes (:func:`calibrate.random_cases`) plus PE3 ``ACC``
    descriptors with small ``d`` (:func:`calibrate.pe3_acc_cases`) and PE3 without ``ACC`` with small ``a``,
    ``d`` and several chunks (:func:`calibrate.pe3_small_cases`) drawn every time, in a shuffled order."""
    from .calibrate import UNITS, pe3_acc_cases, pe3_small_cases, random_cases
    rng = np.random.default_rng(seed)
    cases = [f for unit in UNITS for f in random_cases(unit, rng, 6, max_cycles=12_000)]
    cases += pe3_acc_cases(rng, 4, max_cycles=12_000)
    cases += pe3_small_cases(rng, 3, max_cycles=12_000)     # after the ACC draws: older seeds replay as before
    random.Random(seed).shuffle(cases)
    return cases


def random_seeds() -> list[int]:
    """``$ULTRATRAIN_SEED`` (comma-separated: several programs, one simulation) replays earlier runs;
    otherwise one fresh seed. ``$ULTRATRAIN_PERF_SEED`` is the older name of the same override."""
    text = os.environ.get("ULTRATRAIN_SEED") or os.environ.get("ULTRATRAIN_PERF_SEED")
    if text:
        return [int(s) for s in text.split(",") if s.strip()]
    return [random.SystemRandom().randrange(1 << 30)]


@pytest.mark.rtl
def test_model_matches_rtl_on_random_instructions():
    """A fresh random program (seed printed and in every failure message) of every unit's instructions,
    PE3 ACC with small d and PE3 with small a, d and several chunks always among them: write-backs and
    CYCLES within 5%."""
    from .calibrate import measure_many_on_top
    seeds = random_seeds()
    print(f"[perf] random program seeds={seeds} (replay: ULTRATRAIN_SEED={','.join(map(str, seeds))})")
    programs = [random_program(seed) for seed in seeds]
    assert all(any(f["opcode"] == Opcode.PE3 and f["flags"] & Flag.ACC and f["d"] <= 4 for f in cases) and
               any(f["opcode"] == Opcode.PE3 and f["flags"] & Flag.ACC and 5 <= f["d"] <= 16 for f in cases) and
               any(f["opcode"] == Opcode.PE3 and not f["flags"] and f["a"] <= 8 and f["c"] >= 48 for f in cases)
               for cases in programs)
    model = CycleModel()
    for seed, cases, (rows, program) in zip(seeds, programs, measure_many_on_top(programs)):
        errors = [model.cost(Descriptor(**row["desc"])).exec / row["cycles"] - 1 for row in rows]
        worst = max(range(len(rows)), key=lambda i: abs(errors[i]))
        acc = [abs(e) for e, row in zip(errors, rows) if row["desc"]["opcode"] == Opcode.PE3 and row["desc"]["flags"]]
        plain = [abs(e) for e, row in zip(errors, rows) if row["desc"]["opcode"] == Opcode.PE3 and not row["desc"]["flags"]]
        print(f"[perf] seed={seed}: {len(rows)} instructions, max |error| {abs(errors[worst]):.2%} "
              f"({rows[worst]['desc']}); PE3 ACC: {len(acc)}, max |error| {max(acc):.2%}; "
              f"PE3 without ACC: {len(plain)}, max |error| {max(plain):.2%}")
        for row in rows:
            assert_within(model.cost(Descriptor(**row["desc"])).exec, row["cycles"],
                          f"seed {seed} (replay: ULTRATRAIN_SEED={seed}): write-back of {row['desc']}")
        assert_within(model.program([Descriptor(**f) for f in cases]).cycles, program["cycles"],
                      f"seed {seed} (replay: ULTRATRAIN_SEED={seed}): CYCLES")


def check_layer_programs(spec, batch, schedule):
    from .calibrate import measure_programs, program_image
    image, programs = program_image(spec, batch, schedule)
    model = CycleModel()
    for result in measure_programs(image):
        ops = programs[result["name"]]
        for op, cycles in zip(ops, result["writeback_cycles"]):
            assert_within(model.cost(op).exec, cycles, f"{result['name']}: {op.opcode.name} -> {op.dst}")
        cost = model.program(ops)
        assert_within(cost.cycles, result["cycles"], f"{result['name']} CYCLES", slack_cycles=0)
        for unit in ("PE1", "PE2", "PE3"):     # array-busy counters: the model's compute structure, exactly
            busy = sum(model.cost(op).busy for op in ops if model.cost(op).unit == unit)
            assert busy == result["busy"][f"{unit}_BUSY"], (result["name"], unit, busy, result["busy"])


SMALL = NetworkSpec((TTLayerSpec((2, 3, 16), (2, 2, 16), (16, 16), "relu", "L0"),
                     TTLayerSpec((4, 16), (1, 16), (16,), "none", "L1")))


@pytest.mark.rtl
@pytest.mark.parametrize("schedule", ["thesis", "alternative"])
def test_model_matches_rtl_on_layer_programs(schedule):
    """Load, forward and backward programs of a two-layer TT network: every write-back and each CYCLES."""
    sched = None if schedule == "thesis" else Schedule((LayerSchedule("lr", "lr", (0, 2)), LayerSchedule("lr", "rl")))
    check_layer_programs(SMALL, 2, sched)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
def test_model_matches_rtl_on_table33_programs(batch):
    """The Table 3.3 model, thesis and optimized schedules (about 2,000 instructions each backward)."""
    spec = thesis_table33_network(16)
    check_layer_programs(spec, batch, None)
    check_layer_programs(spec, batch, optimize(spec, batch).schedule)
