"""RTL regression of the processing elements (cocotb benches in tests/hw/tb_*.py) against the golden model."""

import pytest

from .harness import UnitHarness
from .rtl import run_bench

pytestmark = pytest.mark.rtl


def pe1_harness():
    from ultratrain.hw.pe1 import PE1
    return UnitHarness(PE1)


def test_pe1():
    run_bench("pe1_harness", pe1_harness, "tb_pe1")


def pe2_harness():
    from ultratrain.hw.pe2 import PE2
    return UnitHarness(PE2)


def test_pe2():
    run_bench("pe2_harness", pe2_harness, "tb_pe2")


def pe3_harness():
    from ultratrain.hw.pe3 import PE3
    return UnitHarness(PE3)


def test_pe3():
    run_bench("pe3_harness", pe3_harness, "tb_pe3")


def vec_harness():
    from ultratrain.hw.vec_unit import VecUnit
    return UnitHarness(VecUnit)


def test_vec():
    run_bench("vec_harness", vec_harness, "tb_vec")
