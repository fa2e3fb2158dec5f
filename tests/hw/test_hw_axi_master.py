"""RTL regression of the AXI4 master alone (tests/hw/tb_axi_master.py) against cocotbext-axi's AxiRam.

:class:`~ultratrain.hw.axi_master.AxiMaster` converts to Verilog as it is (its AXI port comes out as
``axi__<signal>``, which ``AxiBus.from_prefix`` finds), so no test top is needed. The quick run uses the
defaults of the accelerator (128-bit data, bursts up to 16 beats, 16 bursts outstanding per direction);
the slow sweep shortens the bursts and the outstanding limit so that the limit itself is hit and every
command is split many times.
"""

import pytest

from .rtl import run_bench

pytestmark = pytest.mark.rtl


def _run(max_burst: int = 16, max_outstanding: int = 16) -> None:
    def factory():
        from ultratrain.hw.axi_master import AxiMaster
        return AxiMaster(128, max_burst=max_burst, max_outstanding=max_outstanding)

    run_bench(f"axi_master_b{max_burst}_o{max_outstanding}", factory, "tb_axi_master",
              extra_env={"AXI_MAX_BURST": str(max_burst), "AXI_MAX_OUTSTANDING": str(max_outstanding)})


def test_axi_master():
    _run()


@pytest.mark.slow
@pytest.mark.parametrize("max_burst, max_outstanding", [(4, 2), (1, 4), (256, 16)])
def test_axi_master_params(max_burst, max_outstanding):
    _run(max_burst, max_outstanding)
