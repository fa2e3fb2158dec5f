"""``ultratrain program`` (host/program_listing.py): the step's instructions with their modelled cycles."""

import json

import pytest

from ultratrain.host import cli
from ultratrain.host.program_listing import format_listing, listing, run_command
from ultratrain.sim.compiler import compile_network, thesis_table33_network
from ultratrain.sim.cycle_model import CycleModel
from ultratrain.sim.optimizer import network_cost


@pytest.mark.parametrize("batch, latency", [(1, 0), (3, 24)])
def test_listing_totals_equal_the_network_cost_and_no_row_beats_its_roofline(batch, latency):
    result = listing(batch=batch, rd_latency=latency)
    net = compile_network(thesis_table33_network(16), batch)
    cost = network_cost(net, CycleModel().with_params(rd_latency=latency))
    assert result["cycles"] == cost["cycles"] and result["macs"] == cost["macs"]
    assert len(result["rows"]) == sum(len(net.programs[p]) for p in ("load", "forward", "backward"))
    for name, total in result["programs"].items():
        assert total["instructions"] == len(net.programs[name]) + 1          # its instructions and the END
    for row in result["rows"]:
        assert row["cycles"] >= row["roofline"], row
    # Layer 0's weight gradient in row and column groups: 4 PE3 instructions of 7 x 4 groups (contract 1.3).
    grouped = [r for r in result["rows"] if r["op"] == "PE3" and r["row_groups"] == 4]
    assert len(grouped) == 4 and all(r["flags"] == "CHUNKS" and r["dst"] == "L0.dW" and r["column_groups"] == 7
                                     for r in grouped)
    assert " 7x4 " in format_listing(result)


def test_listing_of_one_program_and_the_optimized_schedule():
    thesis = listing(batch=1, programs=("backward",))
    optimized = listing(batch=1, schedule="optimized", programs=("backward",))
    assert {r["program"] for r in thesis["rows"]} == {"backward"} and list(thesis["programs"]) == ["backward"]
    assert optimized["cycles"] < thesis["cycles"]
    text = format_listing(thesis)
    assert text.count("\n") > len(thesis["rows"]) and "backward: " in text and "L0.dW <- x, G0" in text


@pytest.mark.parametrize("kwargs, match", [({"batch": 0}, "batch"), ({"schedule": "fast"}, "schedule"),
                                           ({"programs": ("train",)}, "program"), ({"network": "vgg"}, "network"),
                                           ({"rd_latency": -1}, "rd_latency"),
                                           ({"params": {"pe2_gap": 0}}, "unknown cycle-model parameter"),
                                           ({"params": {"rd_latency": 3}}, "--latency"),
                                           ({"params": {"issue": -1}}, ">= 0"),
                                           ({"params": {"pe1_pipe": 1.5}}, "whole cycles")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        listing(**kwargs)


def test_command_line(capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["program", "--batch", "2", "--program", "forward", "--json"])
    assert cli.COMMANDS["program"].run is run_command
    assert run_command(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["batch"] == 2 and {r["program"] for r in out["rows"]} == {"forward"}
    assert cli.main(["program", "--batch", "-3"]) == 2
    assert "batch must be a positive int" in capsys.readouterr().err


def test_plot_draws_the_step_and_names_an_unwritable_path(tmp_path, capsys):
    png = tmp_path / "step.png"
    assert cli.main(["program", "--batch", "3", "--latency", "24", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert f"wrote {png}" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["program", "--batch", "1", "--plot", str(blocker / "step.png")]) == 2
    assert "cannot write the plot" in capsys.readouterr().err


def test_rows_name_the_unit_the_cycle_model_charges():
    result = listing(batch=1)
    units = {r["op"]: r["unit"] for r in result["rows"]}
    assert units["PE1"] == "PE1" and units["PE3"] == "PE3" and units["ACT_FWD"] == "VEC"
    assert units["LOAD_W"] == "LOAD"
    per_unit, totals = {}, {}
    for r in result["rows"]:
        per_unit[r["unit"]] = per_unit.get(r["unit"], 0) + r["cycles"]
    for program in result["programs"].values():
        for unit, v in program["by_unit"].items():
            totals[unit] = totals.get(unit, 0) + v["cycles"]
    # the model's per-unit totals also charge each program's END (CTRL), which has no row
    assert per_unit == {u: c for u, c in totals.items() if u != "CTRL"}


def test_params_price_a_change_of_the_rtl():
    base = listing(batch=3, rd_latency=24)
    # one more cycle of issue per descriptor costs exactly one cycle per descriptor, the ENDs included
    slower = listing(batch=3, rd_latency=24, params={"issue": CycleModel().params.issue + 1})
    descriptors = sum(p["instructions"] for p in base["programs"].values())
    assert slower["cycles"] - base["cycles"] == descriptors
    # removing the idle compute cycle between PE1/PE2 blocks only touches PE1 and PE2 rows, and saves cycles
    faster = listing(batch=3, rd_latency=24, params={"pe1_block_gap": 0, "pe2_block_gap": 0})
    assert faster["cycles"] < base["cycles"] and faster["params"] == {"pe1_block_gap": 0, "pe2_block_gap": 0}
    for old, new in zip(base["rows"], faster["rows"]):
        assert new["cycles"] == old["cycles"] if old["unit"] not in ("PE1", "PE2") else new["cycles"] <= old["cycles"]
    assert "pe1_block_gap = 0" in format_listing(faster).splitlines()[0]
    assert cli.main(["program", "--batch", "3", "--param", "pe1_block_gap"]) == 2
