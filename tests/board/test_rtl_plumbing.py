"""The co-simulation backend's plumbing (host/backends/rtl.py + rtl_server.py) on a stand-in top.

``tests/board/data/stub_top.v`` has the accelerator's ports and register map; START copies 16 bytes of the
ring through its AXI4 master. This checks, independently of hw/, that the unchanged PYNQ driver reaches the
simulation: AXI-Lite registers through AxiLiteMaster, buffers through AxiRam with flush/invalidate, the
interrupt wait and the polling pause, error status and the identity check. Icarus compiles the stub in a
second, so this runs in the default CI; the real top is exercised in test_rtl_cosim.py.
"""

import shutil
from pathlib import Path

import pytest

from ultratrain.host.backends.pynq import HardwareMismatch, PynqBackend
from ultratrain.host.backends.rtl import CosimError, RtlBackend, RtlSimulation, bus_prefixes
from ultratrain.sim.contract import CONTRACT_VERSION, DEFAULT_CONFIG, DEVICE_ID, ErrorCode, HardwareConfig
from ultratrain.sim.executor import DeviceError

STUB = Path(__file__).parent / "data" / "stub_top.v"


def stub_verilog(directory: Path) -> Path:
    """The stub with its identity registers defined from the contract (ID, VERSION, HWCFG0-4)."""
    values = {"UT_ID": DEVICE_ID, "UT_VERSION": CONTRACT_VERSION[0] << 16 | CONTRACT_VERSION[1],
              **{f"UT_{name}": value for name, value in DEFAULT_CONFIG.hwcfg_registers().items()}}
    defines = "".join(f"`define {name} 32'h{value:08x}\n" for name, value in values.items())
    path = directory / "stub_top.v"
    path.write_text(defines + STUB.read_text())
    return path

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")


@pytest.fixture(scope="module", params=["verilog", "axiram"])
def backend(request, tmp_path_factory):
    sim = RtlSimulation(verilog=stub_verilog(tmp_path_factory.mktemp("stub")), simulator="icarus",
                        memory=request.param, ddr_bytes=1 << 20)
    backend = RtlBackend(sim, timeout_s=60, arena_bytes=1 << 16)
    yield backend
    backend.close()
    assert sim.conn is None


def test_registers_memory_and_interrupt_reach_the_simulation(backend):
    assert backend.identity["ID"] == 0x55545231
    addr = backend.alloc(128)
    backend.write_bytes(addr, bytes(range(64)))
    waits = backend.interrupt.waits
    t0 = backend.sim.sim_time_ns()
    counters = backend.run(addr, 1)
    # The stub copied ring[0:16] to ring[32:48] over AXI: the host sees it only through invalidate.
    assert backend.read_bytes(addr, 64) == bytes(range(32)) + bytes(range(16)) + bytes(range(48, 64))
    assert counters["cycles"] > 20 and backend.interrupt.waits > waits
    assert backend.sim.sim_time_ns() - t0 >= 10 * counters["cycles"]
    assert backend.device.bytes_flushed >= 64 and backend.device.bytes_invalidated >= 64


def test_polling_pause_advances_simulated_time(backend):
    poller = PynqBackend(backend.ip, device=backend.device, interrupt=None, sleep=backend.device.advance,
                         poll_interval_s=1e-7, arena_bytes=1 << 16)
    addr = poller.alloc(64)
    poller.write_bytes(addr, bytes(range(100, 164)))
    poller.run(addr, 1)
    assert poller.read_bytes(addr + 32, 16) == bytes(range(100, 116))


def test_error_status_becomes_device_error(backend):
    addr = backend.alloc(64)
    with pytest.raises(DeviceError) as err:
        backend.run(addr, 0)
    assert err.value.code == ErrorCode.NO_END
    backend.run(addr, 1)                     # RESET before the next program clears the error


def test_identity_is_checked_against_the_config(backend):
    with pytest.raises(HardwareMismatch, match="pe1_rows: device 8 vs host 4"):
        PynqBackend(backend.ip, device=backend.device, cfg=HardwareConfig(pe1_rows=4))


def test_bad_inputs():
    with pytest.raises(ValueError, match="simulator"):
        RtlSimulation(simulator="vcs")
    with pytest.raises(CosimError, match="AXI-Lite slave"):
        bus_prefixes("module ultratrain_top(input clk); endmodule")
    assert bus_prefixes(STUB.read_text()) == ("s_axil", "m_axi")
    with pytest.raises(CosimError, match="not running"):
        RtlSimulation(verilog=STUB).call("rd", 0)


def test_unaligned_transfers_keep_their_neighbours(backend):
    addr = backend.alloc(64)
    backend.write_bytes(addr, bytes(range(64)))
    backend.write_bytes(addr + 5, b"\xff" * 7)           # inside one 16-byte word
    backend.write_bytes(addr + 30, b"\xee" * 20)         # across words, unaligned at both ends
    want = bytearray(range(64))
    want[5:12] = b"\xff" * 7
    want[30:50] = b"\xee" * 20
    assert backend.sim.call("mr", addr, 64) == bytes(want)       # what the device sees
    assert backend.sim.call("mr", addr + 3, 30) == bytes(want[3:33])
