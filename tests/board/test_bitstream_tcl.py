"""The Vivado flow (scripts/bitstream.py) without Vivado: the generated batch script runs under tclsh against
stub Vivado commands (tests/board/vivado_stub.tcl) that know the real pins, interfaces and CONFIG names of
the IP it uses, so that a typo in a command, pin or property stops here instead of in a Vivado run."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ultratrain.host.backends.pynq import VLNV, verify_bitstream

REPO = Path(__file__).resolve().parents[2]
STUB = Path(__file__).with_name("vivado_stub.tcl")

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed (apt-get install tcl)")


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"ultratrain_scripts_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bitstream = load_script("bitstream")


def toy_top_verilog() -> str:
    """A top with the accelerator's interface (AXI4 master, AXI-Lite slave, irq) and a little logic."""
    from amaranth import Module, Signal
    from amaranth.back import verilog
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from ultratrain.hw.axi import AXI4LiteSignature, AXI4Signature

    class Toy(wiring.Component):
        def __init__(self):
            super().__init__({"m_axi": Out(AXI4Signature(32, 128, 6)), "s_axil": In(AXI4LiteSignature(8)),
                              "irq": Out(1)})

        def elaborate(self, platform):
            m = Module()
            r = Signal(8)
            m.d.sync += r.eq(r + self.s_axil.awaddr)
            m.d.comb += self.irq.eq(r[0])
            return m
    return verilog.convert(Toy(), name=bitstream.TOP, emit_src=False)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    work = tmp_path_factory.mktemp("vivado")
    top = work / f"{bitstream.TOP}.v"
    top.write_text(toy_top_verilog())
    tcl = bitstream.generate(top, work)
    return work, top, tcl


def run_tcl(tcl: Path, work: Path, env_extra=None):
    driver = work / "driver.tcl"
    driver.write_text(f"source {{{STUB}}}\nsource {{{tcl}}}\n")
    env = dict(os.environ, STUB_LOG=str(work / "stub.log"), **(env_extra or {}))
    proc = subprocess.run(["tclsh", str(driver)], capture_output=True, text=True, env=env, timeout=60)
    return proc, (work / "stub.log").read_text() if (work / "stub.log").exists() else ""


def test_generated_script_runs_against_stub_vivado(flow):
    work, top, tcl = flow
    proc, log = run_tcl(tcl, work)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "STUB ERROR" not in log
    assert "create_project -force ultratrain" in log and "-part xczu3eg-sbva484-1-i" in log
    assert "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ 100" in log
    assert "CONFIG.PSU__USE__S_AXI_GP2 1" in log and "CONFIG.PSU__SAXIGP2__DATA_WIDTH 128" in log
    assert "connect_bd_intf_net axi_mem/M00_AXI zynq_ultra_ps_e_0/S_AXI_HP0_FPD" in log
    assert "connect_bd_intf_net zynq_ultra_ps_e_0/M_AXI_HPM0_FPD axi_ctl/S00_AXI" in log
    assert "connect_bd_intf_net axi_ctl/M00_AXI ultratrain_0/s_axi" in log
    assert "connect_bd_net ultratrain_0/irq axi_intc_0/intr" in log
    assert "connect_bd_net axi_intc_0/irq zynq_ultra_ps_e_0/pl_ps_irq0" in log
    assert "-offset 0xa0000000 -range 4K" in log
    assert "create_bd_cell -type module -reference ultratrain ultratrain_0" in log
    assert VLNV == f"xilinx.com:module_ref:{bitstream.WRAPPER}:1.0"
    out = work / "out"
    for name in ("ultratrain.bit", "ultratrain.hwh", "ultratrain_utilization.txt", "ultratrain_timing.txt"):
        assert (out / name).is_file(), name
    summary = bitstream.read_summary(out / "ultratrain_summary.txt")
    assert summary == {"part": "xczu3eg-sbva484-1-i", "clock_mhz": "100", "wns_ns": "0.412", "vivado": "2023.2"}
    # collect: the pair lands beside its manifest, which the driver accepts.
    dest = work / "bitstreams"
    assert bitstream.collect(work, dest) == 0
    manifest = verify_bitstream(dest / "ultratrain.bit")
    assert manifest["build"]["wns_ns"] == "0.412" and manifest["build"]["clock_mhz"] == 100.0


def test_board_preset_applied_when_board_files_exist(flow, tmp_path):
    work, top, tcl = flow
    proc, log = run_tcl(tcl, tmp_path, {"STUB_BOARD": "avnet.com:ultra96v2:part0:1.2"})
    assert proc.returncode == 0, proc.stderr
    assert "set_property board_part avnet.com:ultra96v2:part0:1.2 ultratrain" in log
    assert "apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e" in log


@pytest.mark.parametrize("old, new, message", [
    ("pl_ps_irq0", "pl_ps_irq", "has no pin pl_ps_irq"),
    ("connect_bd_intf_net [get_bd_intf_pins axi_mem", "conect_bd_intf_net [get_bd_intf_pins axi_mem",
     "unknown command: conect_bd_intf_net"),
    ("PSU__SAXIGP2__DATA_WIDTH", "PSU__SAXIGP2_DATA_WIDTH", "has no property CONFIG.PSU__SAXIGP2_DATA_WIDTH"),
    ("ipdef smartconnect] axi_mem", "ipdef smart_connect] axi_mem", "IP smart_connect is not in this Vivado"),
    ("S_AXI_HP0_FPD", "S_AXI_HP0", "has no interface S_AXI_HP0"),
    ("-to_step write_bitstream", "-to-step write_bitstream", "unknown option -to-step"),
])
def test_stub_catches_typos(flow, tmp_path, old, new, message):
    work, top, tcl = flow
    text = tcl.read_text()
    assert old in text
    broken = tmp_path / "broken.tcl"
    broken.write_text(text.replace(old, new, 1))
    proc, log = run_tcl(broken, tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_timing_failure_stops_the_flow(flow, tmp_path):
    work, top, tcl = flow
    proc, _ = run_tcl(tcl, tmp_path, {"STUB_WNS": "-0.250"})
    assert proc.returncode != 0 and "timing not met at 100 MHz: WNS -0.250 ns" in proc.stderr


def test_wrapper_compiles_and_maps_every_port(flow, tmp_path):
    work, top, tcl = flow
    wrapper = (work / "ultratrain.v").read_text()
    ports = bitstream.parse_ports(top.read_text(), bitstream.TOP)
    assert {"clk", "rst", "irq", "m_axi__awaddr", "s_axil__rdata"} <= {p.name for p in ports}
    assert 'X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 m_axi AWADDR"' in wrapper
    assert "PROTOCOL AXI4LITE" in wrapper and "DATA_WIDTH 128" in wrapper and ".rst(~aresetn)" in wrapper
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.skip("iverilog not installed")
    proc = subprocess.run([iverilog, "-o", str(tmp_path / "a.out"), "-s", bitstream.WRAPPER, str(work / "ultratrain.v"),
                           str(top)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_build_without_vivado_is_a_clear_message(flow, tmp_path, capsys, monkeypatch):
    work, top, tcl = flow
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("VIVADO", raising=False)
    rc = bitstream.build(top, tmp_path / "w", tmp_path / "bits", 100.0, 2, None)
    assert rc == 2
    err = capsys.readouterr().err
    assert "Vivado is not on PATH" in err and "vivado -mode batch -source" in err
    assert not (tmp_path / "bits").exists()


def test_bad_top_is_rejected():
    with pytest.raises(ValueError, match="module 'ultratrain_top' not found"):
        bitstream.parse_ports("module other(a); input a; endmodule", bitstream.TOP)
    ports = [bitstream.Port("input", "clk", 1), bitstream.Port("input", "rst", 1)]
    with pytest.raises(ValueError, match="no port 'irq'"):
        bitstream.wrapper_verilog(ports)
