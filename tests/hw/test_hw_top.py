"""RTL regression of the accelerator top (tests/hw/tb_top.py, tests/hw/tb_programs.py) against the golden model."""

import pytest

from .rtl import run_bench

pytestmark = pytest.mark.rtl


def top():
    from ultratrain.hw.top import Top
    return Top()


def test_top_programs_registers_errors():
    run_bench("ultratrain_top", top, "tb_top")


def test_training_step_small_network():
    """One compiled training step (load, forward, backward) of a two-layer TT network, bit for bit."""
    run_bench("ultratrain_top", top, "tb_programs", extra_env={"ULTRATRAIN_NETWORK": "small"})


@pytest.mark.slow
def test_training_step_thesis_network():
    """The Table 3.3 network (7x4x2x16 -> 4x4x2x16 -> 16, ranks 16), batch 8: ~1850 descriptors."""
    run_bench("ultratrain_top", top, "tb_programs", extra_env={"ULTRATRAIN_NETWORK": "thesis"})
