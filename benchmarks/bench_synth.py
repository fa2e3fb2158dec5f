"""Yosys resource use of the accelerator top for the XCZU3EG (issue 5): ``synth = {LUT, FF, DSP, BRAM}``.

BRAM in RAMB36 equivalents. Counted by ``scripts/synth.py`` (``synth_xilinx -family xcup``), the same numbers
``make synth`` tabulates against the device and the thesis' Table 3.5. A ``build/synth.json`` newer than every
hardware source (hw/*.py, sim/contract.py) is reused, since synthesizing the whole top takes minutes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "build" / "synth.json"


def _synth_module():
    spec = importlib.util.spec_from_file_location("ultratrain_scripts_synth", REPO / "scripts" / "synth.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fresh(report: Path) -> bool:
    if not report.exists():
        return False
    sources = list((REPO / "hw").glob("*.py")) + [REPO / "sim" / "contract.py"]
    return all(report.stat().st_mtime >= s.stat().st_mtime for s in sources if s.exists())


def run() -> dict:
    synth = _synth_module()
    if _fresh(REPORT):
        import json
        report = json.loads(REPORT.read_text())
        print(f"bench_synth: reusing {REPORT}", file=sys.stderr)
    else:
        report = synth.synthesize(REPO / "build" / "ultratrain_top.v", "ultratrain_top", REPORT)
    return {"synth": {k: report[k] for k in ("LUT", "FF", "DSP", "BRAM")}}
