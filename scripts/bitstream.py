#!/usr/bin/env python3
"""``make bitstream``: the Vivado batch flow for the Ultra96-V2 (thesis section 3.6.2, Tables 3.4-3.5).

Subcommands:

``tcl``       write ``build/vivado/ultratrain.tcl`` and the AXI wrapper ``build/vivado/ultratrain.v`` (no Vivado
              needed; ``tests/board/test_bitstream_tcl.py`` runs the script under tclsh with stub commands);
``build``     the above, then ``vivado -mode batch -source ultratrain.tcl``; on success copies
              ``ultratrain.bit``, ``ultratrain.hwh``, the utilization and timing reports into ``bitstreams/``
              and writes ``ultratrain.manifest.json`` (hashes of the pair, checked at load by the driver);
``manifest``  write the manifest for an existing ``.bit``/``.hwh`` pair you trust.

The block design (bitstreams/README.md): Zynq UltraScale+ PS (board preset when the Avnet board files are
installed), PL clock 0 at 100 MHz, the accelerator's AXI4 master through a SmartConnect on ``S_AXI_HP0_FPD``,
its AXI4-Lite slave (4 KiB at 0xA000_0000) and an ``axi_intc`` on ``M_AXI_HPM0_FPD`` through a SmartConnect,
the accelerator's ``irq`` into the ``axi_intc`` (PYNQ's ``Interrupt`` needs an AXI interrupt controller),
whose output drives ``pl_ps_irq0``. The generated Verilog top is wrapped in a small module (``ultratrain``)
that renames its ports to Vivado's AXI conventions and declares the interfaces with ``X_INTERFACE_INFO``,
so that inference never depends on Amaranth's ``__`` port names; the block design instantiates that wrapper
as a module reference (VLNV ``xilinx.com:module_ref:ultratrain:1.0``, which the driver binds to).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PART = "xczu3eg-sbva484-1-i"
BOARD_PART_GLOB = "avnet.com:ultra96v2:part0:*"
TOP = "ultratrain_top"
WRAPPER = "ultratrain"          # module reference name -> VLNV xilinx.com:module_ref:ultratrain:1.0
BD_NAME = "ultratrain_bd"
CTL_BASE = 0xA000_0000         # start of the M_AXI_HPM0_FPD window
CTL_RANGE = "4K"


@dataclass(frozen=True)
class Port:
    direction: str   # "input" / "output"
    name: str
    width: int


_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):(\d+)\]\s+)?(\\?[\w$]+)\s*;", re.M)


def parse_ports(verilog_text: str, module: str) -> list[Port]:
    """The ports of ``module`` in Verilog-2001 text as Amaranth writes it (declarations in the body)."""
    match = re.search(rf"^\s*module\s+{re.escape(module)}\s*\(", verilog_text, re.M)
    if not match:
        raise ValueError(f"module {module!r} not found in the Verilog")
    end = verilog_text.find("endmodule", match.end())
    body = verilog_text[match.end():end if end >= 0 else None]
    ports = []
    for direction, msb, lsb, name in _PORT_RE.findall(body):
        width = int(msb) - int(lsb) + 1 if msb else 1
        ports.append(Port(direction, name, width))
    if not ports:
        raise ValueError(f"module {module!r} declares no ports")
    return ports


def _bus(ports: list[Port], prefix: str) -> dict[str, Port]:
    return {p.name[len(prefix):]: p for p in ports if p.name.startswith(prefix)}


def axi_prefixes(ports: list[Port]) -> tuple[str, str]:
    """``(master prefix, lite-slave prefix)`` of the top: the bus with ``awlen`` is the AXI4 master, the one
    whose ``awaddr`` is an input the AXI-Lite slave."""
    master = lite = None
    for p in ports:
        base, sep, sig = p.name.rpartition("__")
        if not sep:
            continue
        if sig == "awlen" and p.direction == "output":
            master = base + "__"
        if sig == "awaddr" and p.direction == "input":
            lite = base + "__"
    if master is None or lite is None:
        raise ValueError(f"the top needs an AXI4 master (an output <bus>__awlen) and an AXI-Lite slave (an input "
                         f"<bus>__awaddr); found master={master}, slave={lite}")
    return master, lite


AXI4_SIGNALS = ("awid awaddr awlen awsize awburst awlock awcache awprot awqos awvalid awready "
                "wdata wstrb wlast wvalid wready bid bresp bvalid bready "
                "arid araddr arlen arsize arburst arlock arcache arprot arqos arvalid arready "
                "rid rdata rresp rlast rvalid rready").split()
AXIL_SIGNALS = ("awaddr awprot awvalid awready wdata wstrb wvalid wready bresp bvalid bready "
                "araddr arprot arvalid arready rdata rresp rvalid rready").split()


def wrapper_verilog(ports: list[Port], top: str = TOP, clock_mhz: float = 100.0) -> str:
    """A Verilog wrapper with Vivado interface declarations around the generated top.

    ``aclk`` / ``aresetn`` (active low, as the PS reset block drives it) become Amaranth's ``clk`` / ``rst``
    (synchronous, active high); the AXI-Lite address is widened to 12 bits (a 4 KiB window) and truncated to
    the top's width.
    """
    names = {p.name: p for p in ports}
    for required in ("clk", "rst", "irq"):
        if required not in names:
            raise ValueError(f"the top {top} has no port {required!r} (ports: {sorted(names)})")
    mp, lp = axi_prefixes(ports)
    master, lite = _bus(ports, mp), _bus(ports, lp)
    missing = [s for s in AXI4_SIGNALS if s not in master] + [s for s in AXIL_SIGNALS if s not in lite]
    if missing:
        raise ValueError(f"the top's AXI ports lack {missing}")
    lite_addr = lite["awaddr"].width
    if lite_addr > 12:
        raise ValueError(f"the AXI-Lite slave has {lite_addr} address bits; the block design maps 4 KiB")
    freq = int(round(clock_mhz * 1e6))
    lines = [f"// Generated by scripts/bitstream.py from {top}: Vivado interface declarations. Do not edit.",
             "`timescale 1ns / 1ps", f"module {WRAPPER} ("]
    decl = []

    def port(direction, width, name, info=None, param=None):
        attrs = ""
        if info:
            attrs += f'(* X_INTERFACE_INFO = "{info}" *) '
        if param:
            attrs += f'(* X_INTERFACE_PARAMETER = "{param}" *) '
        rng = f"[{width - 1}:0] " if width > 1 else ""
        decl.append(f"  {attrs}{direction} wire {rng}{name}")

    port("input", 1, "aclk", "xilinx.com:signal:clock:1.0 aclk CLK",
         f"ASSOCIATED_BUSIF m_axi:s_axi, ASSOCIATED_RESET aresetn, FREQ_HZ {freq}")
    port("input", 1, "aresetn", "xilinx.com:signal:reset:1.0 aresetn RST", "POLARITY ACTIVE_LOW")
    port("output", 1, "irq", "xilinx.com:signal:interrupt:1.0 irq INTERRUPT", "SENSITIVITY LEVEL_HIGH")
    m_param = (f"XIL_INTERFACENAME m_axi, PROTOCOL AXI4, DATA_WIDTH {master['wdata'].width}, "
               f"ADDR_WIDTH {master['awaddr'].width}, ID_WIDTH {master['awid'].width}, SUPPORTS_NARROW_BURST 0, "
               f"MAX_BURST_LENGTH 256, FREQ_HZ {freq}")
    for i, sig in enumerate(AXI4_SIGNALS):
        p = master[sig]
        port(p.direction, p.width, f"m_axi_{sig}", f"xilinx.com:interface:aximm:1.0 m_axi {sig.upper()}",
             m_param if i == 0 else None)
    s_param = f"XIL_INTERFACENAME s_axi, PROTOCOL AXI4LITE, DATA_WIDTH 32, ADDR_WIDTH 12, FREQ_HZ {freq}"
    for i, sig in enumerate(AXIL_SIGNALS):
        p = lite[sig]
        width = 12 if sig in ("awaddr", "araddr") else p.width
        port(p.direction, width, f"s_axi_{sig}", f"xilinx.com:interface:aximm:1.0 s_axi {sig.upper()}",
             s_param if i == 0 else None)
    lines.append(",\n".join(decl))
    lines.append(");")
    conns = [".clk(aclk)", ".rst(~aresetn)", ".irq(irq)"]
    for sig in AXI4_SIGNALS:
        conns.append(f".{mp}{sig}(m_axi_{sig})")
    for sig in AXIL_SIGNALS:
        if sig in ("awaddr", "araddr") and lite_addr < 12:
            conns.append(f".{lp}{sig}(s_axi_{sig}[{lite_addr - 1}:0])")
        else:
            conns.append(f".{lp}{sig}(s_axi_{sig})")
    extra = [p for p in ports if p.name not in {"clk", "rst", "irq"} and not p.name.startswith((mp, lp))]
    for p in extra:
        if p.direction == "input":
            conns.append(f".{p.name}({p.width}'d0)")     # debug inputs of the top: tied off
        else:
            conns.append(f".{p.name}()")
    lines.append(f"  {top} core (\n    " + ",\n    ".join(conns) + "\n  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def vivado_tcl(sources: list[Path], proj_dir: Path, out_dir: Path, clock_mhz: float = 100.0, jobs: int = 2,
               part: str = PART) -> str:
    """The Vivado batch script (see the module docstring for the block design)."""
    src = " ".join("{" + str(p) + "}" for p in sources)
    return f"""# Generated by scripts/bitstream.py: Vivado batch flow for the Ultra96-V2. Do not edit.
# vivado -mode batch -source ultratrain.tcl
set part {{{part}}}
set proj_dir {{{proj_dir}}}
set out_dir {{{out_dir}}}
set sources [list {src}]
set clock_mhz {clock_mhz:g}
set jobs {jobs}
set bd {BD_NAME}

proc ipdef {{name}} {{
    # The newest version of a Xilinx IP in this installation (versions change between Vivado releases).
    set defs [lsort -dictionary [get_ipdefs -all -filter "VLNV =~ xilinx.com:ip:${{name}}:*"]]
    if {{[llength $defs] == 0}} {{ error "IP $name is not in this Vivado installation" }}
    return [lindex $defs end]
}}

file mkdir $out_dir
create_project -force ultratrain $proj_dir -part $part
set board [get_board_parts -quiet -latest_file_version {{{BOARD_PART_GLOB}}}]
if {{[llength $board] > 0}} {{
    set_property board_part [lindex $board 0] [current_project]
}} else {{
    puts "WARNING: Avnet Ultra96-V2 board files not installed: PS configured from the part only (PYNQ boots the PS itself)"
}}
add_files -norecurse $sources
update_compile_order -fileset sources_1

create_bd_design $bd
set ps [create_bd_cell -type ip -vlnv [ipdef zynq_ultra_ps_e] zynq_ultra_ps_e_0]
if {{[llength $board] > 0}} {{
    apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {{apply_board_preset "1"}} $ps
}}
set_property -dict [list \\
    CONFIG.PSU__USE__M_AXI_GP0 {{1}} CONFIG.PSU__MAXIGP0__DATA_WIDTH {{32}} \\
    CONFIG.PSU__USE__M_AXI_GP1 {{0}} CONFIG.PSU__USE__M_AXI_GP2 {{0}} \\
    CONFIG.PSU__USE__S_AXI_GP2 {{1}} CONFIG.PSU__SAXIGP2__DATA_WIDTH {{128}} \\
    CONFIG.PSU__FPGA_PL0_ENABLE {{1}} CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz \\
    CONFIG.PSU__USE__IRQ0 {{1}} \\
] $ps

set accel [create_bd_cell -type module -reference {WRAPPER} {WRAPPER}_0]
set rst [create_bd_cell -type ip -vlnv [ipdef proc_sys_reset] rst_pl0]
set intc [create_bd_cell -type ip -vlnv [ipdef axi_intc] axi_intc_0]
set_property -dict [list CONFIG.C_IRQ_CONNECTION {{1}}] $intc
set ctl [create_bd_cell -type ip -vlnv [ipdef smartconnect] axi_ctl]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{2}}] $ctl
set mem [create_bd_cell -type ip -vlnv [ipdef smartconnect] axi_mem]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] $mem

# One fabric clock (PL0) for everything; the PS reset block releases the fabric.
connect_bd_net [get_bd_pins zynq_ultra_ps_e_0/pl_clk0] \\
    [get_bd_pins zynq_ultra_ps_e_0/maxihpm0_fpd_aclk] [get_bd_pins zynq_ultra_ps_e_0/saxihp0_fpd_aclk] \\
    [get_bd_pins {WRAPPER}_0/aclk] [get_bd_pins rst_pl0/slowest_sync_clk] [get_bd_pins axi_intc_0/s_axi_aclk] \\
    [get_bd_pins axi_ctl/aclk] [get_bd_pins axi_mem/aclk]
connect_bd_net [get_bd_pins zynq_ultra_ps_e_0/pl_resetn0] [get_bd_pins rst_pl0/ext_reset_in]
connect_bd_net [get_bd_pins rst_pl0/peripheral_aresetn] [get_bd_pins {WRAPPER}_0/aresetn] \\
    [get_bd_pins axi_intc_0/s_axi_aresetn] [get_bd_pins axi_ctl/aresetn] [get_bd_pins axi_mem/aresetn]

# Control: HPM0 -> accelerator registers and the interrupt controller. Data: accelerator -> HP0 -> DDR.
connect_bd_intf_net [get_bd_intf_pins zynq_ultra_ps_e_0/M_AXI_HPM0_FPD] [get_bd_intf_pins axi_ctl/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_ctl/M00_AXI] [get_bd_intf_pins {WRAPPER}_0/s_axi]
connect_bd_intf_net [get_bd_intf_pins axi_ctl/M01_AXI] [get_bd_intf_pins axi_intc_0/s_axi]
connect_bd_intf_net [get_bd_intf_pins {WRAPPER}_0/m_axi] [get_bd_intf_pins axi_mem/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_mem/M00_AXI] [get_bd_intf_pins zynq_ultra_ps_e_0/S_AXI_HP0_FPD]

# Interrupt: accelerator -> axi_intc -> PS (PYNQ's Interrupt class talks to the axi_intc).
connect_bd_net [get_bd_pins {WRAPPER}_0/irq] [get_bd_pins axi_intc_0/intr]
connect_bd_net [get_bd_pins axi_intc_0/irq] [get_bd_pins zynq_ultra_ps_e_0/pl_ps_irq0]

# Addresses: the accelerator at a fixed 4 KiB window, the rest (interrupt controller, DDR for HP0) automatic.
assign_bd_address -offset {CTL_BASE:#x} -range {CTL_RANGE} \\
    -target_address_space [get_bd_addr_spaces zynq_ultra_ps_e_0/Data] [get_bd_addr_segs {WRAPPER}_0/s_axi/reg0]
assign_bd_address

validate_bd_design
save_bd_design
set wrapper [make_wrapper -files [get_files $bd.bd] -top]
add_files -norecurse $wrapper
set_property top ${{bd}}_wrapper [current_fileset]
update_compile_order -fileset sources_1

launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] != "100%"}} {{
    error "implementation did not finish: see the logs under $proj_dir/ultratrain.runs"
}}
open_run impl_1
report_utilization -file $out_dir/ultratrain_utilization.txt
report_utilization -hierarchical -file $out_dir/ultratrain_utilization_hier.txt
report_timing_summary -file $out_dir/ultratrain_timing.txt
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
set summary [open $out_dir/ultratrain_summary.txt w]
puts $summary "part $part"
puts $summary "clock_mhz $clock_mhz"
puts $summary "wns_ns $wns"
puts $summary "vivado [version -short]"
close $summary

set bits [glob -nocomplain [get_property DIRECTORY [get_runs impl_1]]/*.bit]
if {{[llength $bits] != 1}} {{ error "expected one bitstream in the impl_1 run, found: $bits" }}
file copy -force [lindex $bits 0] $out_dir/ultratrain.bit
set hwhs [glob -nocomplain $proj_dir/ultratrain.gen/sources_1/bd/$bd/hw_handoff/$bd.hwh \\
                           $proj_dir/ultratrain.srcs/sources_1/bd/$bd/hw_handoff/$bd.hwh]
if {{[llength $hwhs] == 0}} {{ error "no $bd.hwh written by Vivado under $proj_dir" }}
file copy -force [lindex $hwhs 0] $out_dir/ultratrain.hwh
if {{$wns < 0}} {{
    error "timing not met at $clock_mhz MHz: WNS $wns ns (see $out_dir/ultratrain_timing.txt)"
}}
puts "ultratrain: bitstream written to $out_dir"
"""


def generate(verilog: Path, work: Path, clock_mhz: float = 100.0, jobs: int = 2) -> Path:
    """Write the wrapper and the Tcl under ``work``; returns the Tcl path."""
    if not verilog.is_file():
        raise SystemExit(f"bitstream: {verilog} does not exist: run `make verilog` first")
    ports = parse_ports(verilog.read_text(), TOP)
    work.mkdir(parents=True, exist_ok=True)
    wrapper = work / f"{WRAPPER}.v"
    wrapper.write_text(wrapper_verilog(ports, TOP, clock_mhz))
    ram = verilog.with_name("ultratrain_ram.v")
    sources = [verilog.resolve(), wrapper.resolve()] + ([ram.resolve()] if ram.is_file() else [])
    tcl = work / "ultratrain.tcl"
    tcl.write_text(vivado_tcl(sources, (work / "project").resolve(), (work / "out").resolve(), clock_mhz, jobs))
    return tcl


def read_summary(path: Path) -> dict:
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            out[key] = value
    return out


def build(verilog: Path, work: Path, dest: Path, clock_mhz: float, jobs: int, vivado: str | None) -> int:
    tcl = generate(verilog, work, clock_mhz, jobs)
    exe = vivado or os.environ.get("VIVADO") or shutil.which("vivado")
    if not exe or not shutil.which(exe):
        print(f"bitstream: Vivado is not on PATH. The batch script is ready: {tcl}\n"
              f"  source <Vivado>/settings64.sh && vivado -mode batch -source {tcl}\n"
              f"  then: python scripts/bitstream.py collect --work {work}\n"
              f"(or set VIVADO=/path/to/vivado and run make bitstream again)", file=sys.stderr)
        return 2
    proc = subprocess.run([exe, "-mode", "batch", "-nojournal", "-notrace", "-source", str(tcl)], cwd=work)
    if proc.returncode != 0:
        print(f"bitstream: Vivado failed (exit {proc.returncode}); see {work}/vivado.log", file=sys.stderr)
        return 1
    return collect(work, dest)


def collect(work: Path, dest: Path) -> int:
    """Copy Vivado's outputs from ``work/out`` into ``dest`` and write the manifest."""
    sys.path.insert(0, str(REPO))
    from ultratrain.host.backends.pynq import write_manifest
    out = work / "out"
    for name in ("ultratrain.bit", "ultratrain.hwh"):
        if not (out / name).is_file():
            print(f"bitstream: {out / name} missing: did the Vivado run finish?", file=sys.stderr)
            return 1
    dest.mkdir(parents=True, exist_ok=True)
    for path in out.glob("ultratrain*"):
        shutil.copy2(path, dest / path.name)
    summary = read_summary(out / "ultratrain_summary.txt")
    manifest = write_manifest(dest / "ultratrain.bit", part=summary.get("part", PART),
                              clock_mhz=float(summary.get("clock_mhz", 100)), wns_ns=summary.get("wns_ns"),
                              vivado=summary.get("vivado"))
    print(f"bitstream: {dest / 'ultratrain.bit'}, .hwh and {manifest.name} written", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Vivado batch flow for the Ultra96-V2 (see the module docstring)")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("tcl", "build"):
        s = sub.add_parser(name)
        s.add_argument("--verilog", type=Path, default=REPO / "build" / f"{TOP}.v")
        s.add_argument("--work", type=Path, default=REPO / "build" / "vivado")
        s.add_argument("--clock-mhz", type=float, default=100.0)
        s.add_argument("--jobs", type=int, default=2)
        if name == "build":
            s.add_argument("--out", type=Path, default=REPO / "bitstreams")
            s.add_argument("--vivado", default=None)
    s = sub.add_parser("collect", help="copy a finished Vivado run's outputs into --out with a manifest")
    s.add_argument("--work", type=Path, default=REPO / "build" / "vivado")
    s.add_argument("--out", type=Path, default=REPO / "bitstreams")
    s = sub.add_parser("manifest", help="record the hashes of BIT and its .hwh beside them")
    s.add_argument("bit", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "tcl":
        print(generate(args.verilog, args.work, args.clock_mhz, args.jobs))
        return 0
    if args.cmd == "build":
        return build(args.verilog, args.work, args.out, args.clock_mhz, args.jobs, args.vivado)
    if args.cmd == "collect":
        return collect(args.work, args.out)
    sys.path.insert(0, str(REPO))
    from ultratrain.host.backends.pynq import write_manifest
    print(write_manifest(args.bit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
