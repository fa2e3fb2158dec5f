"""``ultratrain program``: the instructions of one training step, with what the cycle model says each costs.

For RTL and compiler work: which instructions a step of the Table 3.3 network (thesis section 3.6.1) is made
of under the thesis' schedule (Table 3.6, eq. 3.9-3.19) or the optimizer's, their sizes, flags and row groups
(sim/contract.py), the tensors they read and write (sim/compiler.py), their MACs, and the cycles the
calibrated cycle model (sim/cycle_model.py) gives each, against the roofline of its dataflow. The model is
exact on the RTL to a few hundredths of a percent per step (docs/results/performance.md), so the listing
shows where a step's cycles go without running a simulator. ``--json`` writes the same rows for scripts,
``--plot`` draws them (host/plots.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..sim.compiler import ShapeError, compile_network, thesis_table33_network
from ..sim.contract import Flag, Opcode, pe3_column_groups, pe3_row_groups
from ..sim.cycle_model import CycleModel, CycleParams, roofline_cycles

__all__ = ["listing", "format_listing", "add_arguments", "run_command", "PROGRAMS"]

PROGRAMS = ("load", "forward", "backward")


def listing(network: str = "thesis", batch: int = 32, schedule: str = "thesis", programs=PROGRAMS,
            rank: int = 16, rd_latency: int = 0, params: dict | None = None) -> dict:
    """The rows of ``programs`` for one step: one dict per instruction, and totals per program and unit.

    ``params`` changes :class:`~ultratrain.sim.cycle_model.CycleParams` fields (say ``{"pe2_block_gap": 0}``):
    the step as an RTL change that saves those cycles would make it, priced before it is built."""
    if network != "thesis":
        raise ValueError(f"unknown network {network!r}: only 'thesis' (Table 3.3) is built in")
    if not isinstance(batch, int) or batch <= 0:
        raise ValueError(f"batch must be a positive int, not {batch!r}")
    unknown = [p for p in programs if p not in PROGRAMS]
    if unknown:
        raise ValueError(f"unknown program(s) {unknown}: choose from {list(PROGRAMS)}")
    if rd_latency < 0:
        raise ValueError(f"rd_latency must be >= 0, not {rd_latency}")
    params = dict(params or {})
    known = set(CycleParams.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown cycle-model parameter(s) {unknown}: choose from {sorted(known - {'rd_latency'})}")
    if "rd_latency" in params:
        raise ValueError("set the DRAM read latency with --latency (rd_latency), not as a parameter")
    bad = {k: v for k, v in params.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0}
    if bad:
        raise ValueError(f"cycle-model parameters must be numbers >= 0, not {bad}")
    fields = CycleParams.__dataclass_fields__
    fractional = sorted(k for k, v in params.items() if str(fields[k].type) == "int" and v != int(v))
    if fractional:
        raise ValueError(f"{fractional} count whole cycles: give integers")
    params = {k: int(v) if str(fields[k].type) == "int" else float(v) for k, v in params.items()}
    model = CycleModel().with_params(rd_latency=rd_latency, **params)
    spec = thesis_table33_network(rank)
    if schedule == "thesis":
        net = compile_network(spec, batch)
    elif schedule == "optimized":
        from ..sim.optimizer import optimize
        from ..sim.schedules import compile_schedule
        net = compile_schedule(spec, batch, optimize(spec, batch, model).schedule)
    else:
        raise ValueError(f"unknown schedule {schedule!r}: 'thesis' or 'optimized'")
    rows, totals = [], {}
    for name in programs:
        cost = model.program(net.programs[name])
        for index, op in enumerate(net.programs[name]):
            c = model.cost(op)
            rows.append({
                "program": name, "index": index, "op": op.opcode.name, "unit": c.unit, "a": op.a, "b": op.b, "c": op.c,
                "d": op.d, "flags": str(Flag(op.flags).name) if op.flags else "-", "dst": op.dst, "src_a": op.src_a,
                "src_b": op.src_b, "weight": "/".join(map(str, op.weight)) if op.weight else "",
                "macs": op.macs(), "cycles": c.total,
                "roofline": round(roofline_cycles(op.opcode, op.a, op.b, op.c, op.d, op.flags, net.cfg), 1),
            })
            if op.opcode == Opcode.PE3:
                rows[-1].update(row_groups=pe3_row_groups(op.b), column_groups=pe3_column_groups(op.b))
        # cost.instructions counts the END the model charges as well
        totals[name] = {"cycles": cost.cycles, "macs": cost.macs, "instructions": cost.instructions,
                        "by_unit": {u: {"cycles": v[0], "macs": v[1], "instructions": v[2]}
                                    for u, v in sorted(cost.by_unit.items())}}
    step = sum(t["cycles"] for t in totals.values())
    macs = sum(t["macs"] for t in totals.values())
    return {"network": network, "batch": batch, "schedule": schedule, "rd_latency": rd_latency, "params": params,
            "rows": rows, "programs": totals, "cycles": step, "macs": macs,
            "utilization": macs / (net.cfg.peak_macs_per_cycle * step) if step else 0.0,
            "clock_hz": model.clock_hz}


def format_listing(result: dict) -> str:
    """A table per program (one line per instruction), then the totals per unit."""
    lines = [f"{result['network']} network, batch {result['batch']}, {result['schedule']} schedule, modelled "
             f"with {result['rd_latency']} cycles of DRAM read latency"
             + "".join(f", {k} = {v}" for k, v in result.get("params", {}).items())]
    header = (f"{'#':>4} {'op':<7} {'a':>5} {'b':>5} {'c':>6} {'d':>4} {'flags':<10} {'MACs':>10} {'cycles':>9} "
              f"{'of roof':>7}  dst <- sources")
    for name, total in result["programs"].items():
        lines += ["", f"{name}: {total['instructions']} descriptors (END included), {total['cycles']:,} cycles, "
                      f"{total['macs']:,} MACs", header]
        for r in (r for r in result["rows"] if r["program"] == name):
            share = f"{r['roofline'] / r['cycles']:.3f}" if r["roofline"] else ""
            sources = ", ".join(s for s in (r["src_a"], r["src_b"], r["weight"] and f"W{r['weight']}") if s)
            # PE3's b holds its groups: shown as column groups x row groups
            b = f"{r['column_groups']}x{r['row_groups']}" if r.get("column_groups", 1) > 1 else r["b"]
            lines.append(f"{r['index']:>4} {r['op']:<7} {r['a']:>5} {b:>5} {r['c']:>6} {r['d']:>4} "
                         f"{r['flags']:<10} {r['macs']:>10,} {r['cycles']:>9,} {share:>7}  "
                         f"{r['dst'] or '-'} <- {sources or '-'}")
    lines += ["", f"{'unit':<6} {'instr.':>7} {'cycles':>11} {'share':>6} {'MACs':>13}"]
    units = {}
    for total in result["programs"].values():
        for unit, v in total["by_unit"].items():
            u = units.setdefault(unit, [0, 0, 0])
            u[0] += v["cycles"]
            u[1] += v["macs"]
            u[2] += v["instructions"]
    for unit, (cycles, macs, count) in sorted(units.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{unit:<6} {count:>7} {cycles:>11,} {cycles / result['cycles']:>6.1%} {macs:>13,}")
    seconds = result["cycles"] / result["clock_hz"]
    lines.append(f"{' + '.join(result['programs'])}: {result['cycles']:,} cycles ({seconds * 1e3:.2f} ms at "
                 f"{result['clock_hz'] / 1e6:.0f} MHz), {result['utilization']:.1%} of the 128 MAC/cycle peak")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", default="thesis", help="network to compile (default: thesis, Table 3.3)")
    parser.add_argument("--rank", type=int, default=16, help="TT rank of every core (default 16)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--schedule", choices=("thesis", "optimized"), default="thesis",
                        help="the thesis' contraction schedule or the optimizer's (default thesis)")
    parser.add_argument("--program", choices=PROGRAMS, action="append",
                        help="list only this program (repeatable; default: load, forward and backward)")
    parser.add_argument("--latency", type=int, default=0,
                        help="DRAM read latency in cycles for the model (default 0; the RTL bench uses 24)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="change a cycle-model parameter (sim/cycle_model.CycleParams, e.g. pe2_block_gap=0; "
                             "repeatable) to price an RTL change before building it")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--plot", metavar="PNG", help="also draw the step as a timeline of instructions against "
                                                     "their rooflines, and the cycles per unit (needs matplotlib)")


def _parse_params(items) -> dict:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        try:
            params[name] = float(value) if any(ch in value for ch in ".eE") else int(value)
        except ValueError:
            raise ValueError(f"--param {item!r}: the value must be a number") from None
    return params


def run_command(args: argparse.Namespace) -> int:
    try:
        result = listing(args.network, args.batch, args.schedule, tuple(args.program or PROGRAMS), args.rank,
                         args.latency, _parse_params(args.param))
    except (ValueError, ShapeError) as err:
        print(f"ultratrain program: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.json else format_listing(result))
    if args.plot:
        from .plots import plot_program
        try:
            path = plot_program(result, args.plot)
        except OSError as err:
            print(f"ultratrain program: cannot write the plot {args.plot}: {err}", file=sys.stderr)
            return 2
        print(f"wrote {path}", file=sys.stderr)
    return 0
