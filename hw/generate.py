"""Write the accelerator top as Verilog: ``python -m ultratrain.hw.generate --out build/ultratrain_top.v``.

The file holds the Amaranth design (module ``ultratrain_top``, ports ``clk``, ``rst`` (synchronous, active
high), ``s_axil__*``, ``m_axi__*``, ``irq``) followed by the RAM templates of :mod:`~ultratrain.hw.ram`.
``--config`` takes a JSON object of :class:`~ultratrain.sim.contract.HardwareConfig` fields to override.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from amaranth.back import verilog

from ..sim.contract import HardwareConfig
from .ram import RAM_VERILOG
from .top import Top

__all__ = ["generate", "main", "TOP_NAME"]

TOP_NAME = "ultratrain_top"


def generate(cfg: HardwareConfig | None = None, name: str = TOP_NAME) -> str:
    """The Verilog text of the top for ``cfg`` (default: the thesis configuration)."""
    cfg = cfg or HardwareConfig()
    text = verilog.convert(Top(cfg), name=name, emit_src=False)
    return text + RAM_VERILOG


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate the UltraTrain accelerator top as Verilog")
    parser.add_argument("--out", default="build/ultratrain_top.v", help="output file")
    parser.add_argument("--config", default=None, help="JSON object of HardwareConfig overrides")
    parser.add_argument("--name", default=TOP_NAME, help="top module name")
    args = parser.parse_args(argv)
    overrides = json.loads(args.config) if args.config else {}
    try:
        cfg = HardwareConfig(**overrides)
    except TypeError as err:
        parser.error(f"--config: {err}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(generate(cfg, args.name))
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB, top module {args.name})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
