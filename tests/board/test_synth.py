"""scripts/synth.py: primitive counting as Vivado reports it, the fit verdicts, and one real Yosys run."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_synth():
    spec = importlib.util.spec_from_file_location("ultratrain_scripts_synth", REPO / "scripts" / "synth.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


synth = load_synth()


def test_counting_follows_vivado_conventions():
    cells = {"LUT6": 10, "LUT2": 5, "LUT6_2": 1, "RAM64M": 2, "SRLC32E": 3, "FDRE": 40, "FDCE": 2, "CARRY8": 4,
             "DSP48E2": 7, "RAMB36E2": 3, "RAMB18E2": 3, "MUXF7": 9, "BUFG": 1}
    counts = synth.count_resources(cells)
    assert counts["LUT"] == 10 + 5 + 1 + 2 * 4 + 3 and counts["LUT_logic"] == 16 and counts["LUT_memory"] == 11
    assert counts["FF"] == 42 and counts["DSP"] == 7 and counts["BRAM"] == 4.5 and counts["CARRY"] == 4


def test_fit_and_thesis_verdicts():
    fits = synth.compare({"LUT": 56000, "FF": 30000, "DSP": 278, "BRAM": 77})
    assert fits["fits"] and fits["dsp_within_table_3_5"]
    assert fits["utilization"]["DSP"] == pytest.approx(278 / 360)
    # Table 3.5's 77 BRAM are RAMB18 (out of 432): 38.5 RAMB36, the unit we count.
    assert fits["vs_table_3_5"]["BRAM"] == pytest.approx(77 / 38.5)
    over = synth.compare({"LUT": 70561, "FF": 1, "DSP": 300, "BRAM": 1})
    assert not over["fits"] and not over["dsp_within_table_3_5"]
    report = {"LUT": 70561, "FF": 1, "DSP": 300, "BRAM": 1, "LUT_logic": 1, "LUT_memory": 0, **over}
    text = synth.table(report)
    assert "DOES NOT FIT" in text and "| DSP | 300 | 360 | 83.3 % | 278 | 1.08x |" in text


@pytest.mark.skipif(shutil.which("yosys") is None and not Path("/usr/bin/yosys").exists(), reason="no yosys")
def test_yosys_run_on_a_small_design(tmp_path):
    verilog = tmp_path / "small.v"
    verilog.write_text("""
module small(input clk, input [15:0] a, input [3:0] b, input [9:0] addr, input we, input [31:0] d,
             output reg [31:0] q, output reg [23:0] p);
  reg [31:0] mem [0:1023];
  always @(posedge clk) begin
    p <= $signed(a) * $signed(b) + p;
    if (we) mem[addr] <= d;
    q <= mem[addr];
  end
endmodule
""")
    out = tmp_path / "synth.json"
    rc = synth.main(["--verilog", str(verilog), "--top", "small", "--out", str(out), "--no-generate"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["DSP"] == 1 and report["BRAM"] == 1 and report["FF"] >= 24 and report["LUT"] >= 1
    assert report["fits"] and "synth_xilinx -family xcup" in report["tool"]
    assert "| BRAM36 | 1 | 216 |" in out.with_suffix(".md").read_text()
