"""The pieces around the RTL benches that run without a simulator: the Icarus build fix of tests/hw/rtl.py,
the multi-chunk PE3 workload, and how benchmarks/bench_rtl.py sums a bench's runs."""

import re

from benchmarks.bench_rtl import larger_than_one_buffer, roofline_cycles, step_summary, summarize
from ultratrain.sim.contract import Flag, Opcode, instruction_macs

from .rtl import icarus_time0
from .workloads import PE3_MULTI_CHUNK_SHAPES, pe3_multi_chunk

YOSYS_MODULE = """module m(a, y);
  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;
  reg keep = 0;
  input a; wire a;
  output y; reg y;
  always @* begin
    if (\\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end
    y = a;
  end
endmodule
"""


def test_icarus_time0_moves_the_trigger_initialiser_to_an_initial_block():
    out = icarus_time0(YOSYS_MODULE)
    name = "\\$auto$verilog_backend.cc:2355:dump_module$1"
    assert f"reg {name} ;" in out and f"initial #0 {name} = 1'h0;" in out
    assert not re.search(r"dump_module\$1\s+=\s*0;", out.split("initial")[0])     # no declaration initialiser left
    assert "reg keep = 0;" in out                                                    # other regs untouched
    assert icarus_time0(out) == out                                                  # applying it twice is harmless
    assert out.count("if (" + name + " ) begin end") == 1                          # the always block still reads it


def test_pe3_multi_chunk_workload_is_legal_and_records_the_golden_result():
    work = pe3_multi_chunk(seed=3)
    (run,) = work.runs
    descs = run.descriptors()
    assert [(d.a, d.c, d.d, bool(d.flags & Flag.ACC)) for d in descs[:-1]] == list(PE3_MULTI_CHUNK_SHAPES)
    assert descs[-1].opcode == Opcode.END
    assert all(d.c > 16 for d in descs[:-1])                        # every one is larger than one chunk
    assert (run.before != run.after).any()                          # the golden device wrote the results
    assert work.macs() == sum(a * c * d for a, c, d, _ in PE3_MULTI_CHUNK_SHAPES)


def _entry(op, a=0, b=0, c=0, d=0, cycles=0, flags=0):
    macs = instruction_macs(Opcode[op], a, b, c, d)
    return {"op": op, "a": a, "b": b, "c": c, "d": d, "flags": flags, "macs": macs, "cycles": cycles}


def test_summarize_keeps_extra_runs_out_of_the_step_but_in_the_multi_block_fractions():
    step = {"name": "backward", "extra": False, "cycles": 10_000, "wall_s": 1.0,
            "descriptors": [_entry("PE1", 64, 1, 256, 16, cycles=2_200), _entry("PE3", 32, 1, 16, 16, cycles=600),
                            _entry("END")]}
    extra = {"name": "pe3_multi_chunk", "extra": True, "cycles": 50_000, "wall_s": 9.0,
             "descriptors": [_entry("PE3", 32, 1, 64, 16, cycles=2_200), _entry("END")]}
    s = summarize({"network": "thesis", "batch": 32, "runs": [step, extra]})
    assert s["rtl_cycles"]["training_step"] == 10_000
    assert s["rtl_cycles"]["PE3"] == 600                              # the extra PE3 instruction is not in it
    assert s["rtl_sim_cycles_per_s"] == 10_000                         # nor is its wall time
    assert s["rtl_workload"]["descriptors"] == 3
    assert s["rtl_workload"]["multi_block_instructions"] == {"PE1": 1, "PE3": 1}
    assert s["pe_roofline_fraction_multi_block"]["PE3"] == round(32 * 64 * 16 / 16 / 2_200, 4)
    assert s["pe_roofline_fraction_multi_block"]["PE1"] == round(64 * 256 * 16 / 128 / 2_200, 4)


def test_pe3_roofline_counts_the_old_result_read_of_acc():
    plain = _entry("PE3", 1, 1, 64, 64)
    acc = dict(plain, flags=int(Flag.ACC))
    # a = 1 row: 4 chunks x (2 + 8) beats read; ACC adds the 64 x 64 old result, 512 beats, so reads dominate.
    assert roofline_cycles(plain) == 512            # the 512 beats written
    assert roofline_cycles(acc) == 40 + 512         # the reads, old result included


def test_pe3_roofline_and_multi_block_count_row_groups():
    one = _entry("PE3", 1, 1, 16, 64)
    four = _entry("PE3", 1, 4, 16, 64)
    assert four["macs"] == 4 * one["macs"]
    assert roofline_cycles(one) == 128 and roofline_cycles(four) == 4 * 128      # the d x c writes of each group
    assert not larger_than_one_buffer(one) and larger_than_one_buffer(four)


def test_step_summary_says_where_the_whole_step_target_applies_and_whether_it_is_met():
    # One PE1 instruction: 64 x 256 x 16 MACs = 2,048 cycles at the peak; read-bound at 2,048 beats.
    def step(cycles, d):
        e = _entry("PE1", 64, 1, 256, d, cycles=cycles)
        return {"network": "t", "batch": 1, "runs": [{"name": "forward", "extra": False, "cycles": cycles,
                                                      "wall_s": 1.0, "descriptors": [e, _entry("END")]}]}
    met = step_summary(step(cycles=2_900, d=16))            # roofline 2,048 = the MAC time: allows 1.0
    assert met["roofline_allows"] == 1.0 and met["target_applies"] and met["target_met"]
    assert met["of_peak"] == round(2_048 / 2_900, 4) and met["cycles"] == 2_900
    missed = step_summary(step(cycles=3_000, d=16))
    assert missed["target_applies"] and not missed["target_met"]
    # d = 8: half the MACs against the same 2,048 read beats, so the roofline allows only 0.5.
    bound = step_summary(step(cycles=2_100, d=8))
    assert bound["roofline_allows"] == 0.5 and not bound["target_applies"] and not bound["target_met"]
