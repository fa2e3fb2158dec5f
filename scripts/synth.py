#!/usr/bin/env python3
"""``make synth``: Yosys ``synth_xilinx`` resource report of the accelerator top for the XCZU3EG.

Thesis section 3.6.2, Table 3.5 reports the Vivado implementation of the accelerator on the Ultra96-V2
(56,131 LUT, 30,155 FF, 278 DSP, 77 of 432 BRAM18 = 38.5 BRAM36). This script synthesizes the generated Verilog top with Debian's
Yosys (``synth_xilinx -family xcup``: UltraScale+ primitives; the yowasp build was seen to stop silently in
ABC), counts the primitives as Vivado's utilization report does (LUTs used as logic plus LUTs used as
distributed RAM or shift registers; BRAM in RAMB36 equivalents, a RAMB18 counting one half), and compares
them with the device (70,560 LUT, 141,120 FF, 360 DSP, 216 BRAM36) and with Table 3.5.

Writes ``build/synth.json`` and ``build/synth.md`` (the table) and prints the table. Exit status 1 if the
design does not fit the device (``--strict-dsp`` also fails when it uses more DSP than Table 3.5).

Yosys counts are not Vivado's: no cross-boundary optimization with the block design, and its LUT mapping
differs by some tens of percent; they are a fit check and a regression number, not a sign-off
(docs/board.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DEVICE = {"name": "XCZU3EG (Ultra96-V2, xczu3eg-sbva484-1-i)", "LUT": 70560, "FF": 141120, "DSP": 360,
          "BRAM": 216}
# Table 3.5 counts BRAM out of 432, i.e. in RAMB18 blocks: its 77 are 38.5 of the RAMB36 equivalents we count.
TABLE_3_5 = {"LUT": 56131, "FF": 30155, "DSP": 278, "BRAM": 77 / 2}

# LUT sites used per primitive (UG574): distributed RAM and SRLs occupy LUTs too ("LUT as Memory").
LUT_WEIGHTS = {
    **{f"LUT{i}": 1 for i in range(1, 7)}, "LUT6_2": 1,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM64X1S": 1, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
    "RAM256X1S": 4, "RAM256X1D": 8, "RAM512X1S": 8, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
}
LUT_LOGIC = {f"LUT{i}" for i in range(1, 7)} | {"LUT6_2"}
FF_CELLS = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}
DSP_CELLS = {"DSP48E2": 1, "DSP48E1": 1}
BRAM_CELLS = {"RAMB36E2": 1.0, "RAMB36E1": 1.0, "RAMB18E2": 0.5, "RAMB18E1": 0.5}
RESOURCES = ("LUT", "FF", "DSP", "BRAM")


def count_resources(cells: dict) -> dict:
    """Primitive counts (``stat -json``'s ``num_cells_by_type``) -> LUT, FF, DSP, BRAM36 and a breakdown."""
    lut = sum(LUT_WEIGHTS.get(k, 0) * v for k, v in cells.items())
    lut_logic = sum(v for k, v in cells.items() if k in LUT_LOGIC)
    bram = sum(BRAM_CELLS.get(k, 0) * v for k, v in cells.items())
    return {
        "LUT": int(lut), "FF": int(sum(v for k, v in cells.items() if k in FF_CELLS)),
        "DSP": int(sum(DSP_CELLS.get(k, 0) * v for k, v in cells.items())),
        "BRAM": bram if bram != int(bram) else int(bram),
        "LUT_logic": int(lut_logic), "LUT_memory": int(lut - lut_logic),
        "CARRY": int(sum(v for k, v in cells.items() if k.startswith("CARRY"))),
    }


def compare(counts: dict) -> dict:
    """Utilization of the device and ratio to Table 3.5 per resource, and the verdicts."""
    util = {k: counts[k] / DEVICE[k] for k in RESOURCES}
    vs_thesis = {k: counts[k] / TABLE_3_5[k] for k in RESOURCES}
    return {"utilization": util, "vs_table_3_5": vs_thesis,
            "fits": all(counts[k] <= DEVICE[k] for k in RESOURCES),
            "dsp_within_table_3_5": counts["DSP"] <= TABLE_3_5["DSP"]}


def table(report: dict) -> str:
    rows = ["| resource | Yosys (this design) | XCZU3EG | used | Table 3.5 (thesis) | vs thesis |",
            "|---|---:|---:|---:|---:|---:|"]
    for k in RESOURCES:
        rows.append(f"| {k}{'36' if k == 'BRAM' else ''} | {report[k]:,} | {DEVICE[k]:,} | "
                    f"{100 * report['utilization'][k]:.1f} % | {TABLE_3_5[k]:,} | "
                    f"{report['vs_table_3_5'][k]:.2f}x |")
    verdict = "fits" if report["fits"] else "DOES NOT FIT"
    rows.append("")
    rows.append(f"{verdict} the {DEVICE['name']}; DSP {'within' if report['dsp_within_table_3_5'] else 'ABOVE'} "
                f"Table 3.5's {TABLE_3_5['DSP']}. LUT = {report['LUT_logic']:,} logic + {report['LUT_memory']:,} "
                f"memory/SRL. {report.get('tool', '')}, {report.get('seconds', 0):.0f} s.")
    return "\n".join(rows) + "\n"


def find_yosys(explicit: str | None) -> str:
    for cand in (explicit, os.environ.get("YOSYS"), "/usr/bin/yosys", shutil.which("yosys")):
        if cand and shutil.which(cand):
            return cand
    raise SystemExit("synth: no yosys found: `apt-get install yosys` (Debian's 0.23 works; the yowasp build "
                     "was seen to stop silently in ABC) or pass --yosys")


def run_yosys(verilog: list[Path], top: str, yosys: str, workdir: Path, log=sys.stderr) -> tuple[dict, str]:
    """Run ``synth_xilinx -family xcup`` on ``verilog``; returns ``(num_cells_by_type, yosys version)``."""
    workdir.mkdir(parents=True, exist_ok=True)
    stat = workdir / "synth_stat.json"
    if stat.exists():
        stat.unlink()
    reads = "; ".join(f"read_verilog -sv {p}" for p in verilog)
    # -noiopad: the top sits inside a block design (no pins); -flatten: count the whole hierarchy once.
    script = (f"{reads}; synth_xilinx -family xcup -top {top} -flatten -noiopad; "
              f"tee -q -o {stat} stat -json")
    cmd = [yosys, "-q", "-l", str(workdir / "synth_yosys.log"), "-p", script]
    print(f"synth: {' '.join(cmd[:4])} -p '...synth_xilinx -family xcup -top {top}...'", file=log, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not stat.exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise SystemExit(f"synth: yosys failed (exit {proc.returncode}); log in {workdir / 'synth_yosys.log'}:\n{tail}")
    data = json.loads(stat.read_text())
    modules = data.get("modules", {})
    design = data.get("design") or (next(iter(modules.values())) if len(modules) == 1 else None)
    if design is None:
        raise SystemExit(f"synth: {stat} has no design summary")
    version = subprocess.run([yosys, "-V"], capture_output=True, text=True).stdout.strip()
    return dict(design["num_cells_by_type"]), version


def generate_verilog(out: Path) -> None:
    cmd = [sys.executable, "-m", "ultratrain.hw.generate", "--out", str(out)]
    print(f"synth: {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def synthesize(verilog: Path, top: str, out: Path, yosys: str | None = None, generate: bool = True) -> dict:
    """The whole flow ((re)generate the Verilog, Yosys, count, compare); writes ``out`` and ``.md``."""
    if generate:
        generate_verilog(verilog)
    elif not verilog.exists():
        raise SystemExit(f"synth: {verilog} does not exist (make verilog)")
    start = time.time()
    cells, version = run_yosys([verilog], top, find_yosys(yosys), out.parent)
    report = count_resources(cells)
    report.update(compare(report))
    report.update({"top": top, "verilog": str(verilog), "tool": f"{version}, synth_xilinx -family xcup",
                   "seconds": time.time() - start, "cells": cells, "device": DEVICE, "table_3_5": TABLE_3_5})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    out.with_suffix(".md").write_text(table(report))
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--verilog", type=Path, default=REPO / "build" / "ultratrain_top.v")
    p.add_argument("--top", default="ultratrain_top")
    p.add_argument("--out", type=Path, default=REPO / "build" / "synth.json")
    p.add_argument("--yosys", default=None, help="yosys binary (default: $YOSYS, /usr/bin/yosys)")
    p.add_argument("--no-generate", action="store_true",
                   help="synthesize --verilog as it is (default: regenerate it from hw/ first)")
    p.add_argument("--strict-dsp", action="store_true", help="also fail if DSP use exceeds Table 3.5's 278")
    args = p.parse_args(argv)
    report = synthesize(args.verilog, args.top, args.out, args.yosys, generate=not args.no_generate)
    print(table(report))
    print(f"synth: wrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    if not report["fits"]:
        over = [k for k in RESOURCES if report[k] > DEVICE[k]]
        print(f"synth: the design does not fit the XCZU3EG ({', '.join(over)} over)", file=sys.stderr)
        return 1
    if args.strict_dsp and not report["dsp_within_table_3_5"]:
        print(f"synth: {report['DSP']} DSP > Table 3.5's {TABLE_3_5['DSP']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
