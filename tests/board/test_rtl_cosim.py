"""The PYNQ driver on the co-simulated accelerator top (host/backends/rtl.py): bit for bit equal to the
emulated device, through host/runtime.NetworkRuntime, the board-check, and the trainer.

Builds the generated top with Verilator once (cached under sim_build/cosim/ per source hash). The short
checks run in the default CI; whole-trainer runs of the Table 3.3 model are marked slow.
"""

import subprocess
import sys
import time

import pytest

pytest.importorskip("ultratrain.hw.top", reason="the accelerator top (hw/top.py) has not landed yet")

from ultratrain.host.backends.emulated import EmulatedBackend  # noqa: E402
from ultratrain.host.backends.rtl import RtlBackend  # noqa: E402
from ultratrain.host.board_check import format_results, run_board_check  # noqa: E402

from .workloads import SUBSET, assert_same, reference_run, run_small_net, trainer_steps  # noqa: E402

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def backend():
    backend = RtlBackend()
    yield backend
    backend.close()


def test_runtime_steps_equal_emulated(backend):
    start = time.perf_counter()
    got = run_small_net(backend, steps=3, seed=7)
    seconds = time.perf_counter() - start
    assert_same(got, reference_run(steps=3, seed=7))
    print(f"co-sim: 3 forward+backward steps of the small TT model in {seconds:.1f} s, "
          f"{backend.total_cycles} device cycles")
    assert backend.total_cycles > 0


def test_every_instruction_matches_the_golden_executor(backend):
    results = run_board_check(backend, seed=11, repeats=1)
    assert all(r.passed for r in results), format_results(results)
    assert all(r.cycles > 0 for r in results if r.name not in ("END", "illegal (BAD_SHAPE)"))


def test_polling_driver_equals_emulated(backend):
    from ultratrain.host.backends.pynq import PynqBackend
    poller = PynqBackend(backend.ip, device=backend.device, interrupt=None, sleep=backend.device.advance,
                         poll_interval_s=2e-6, arena_bytes=1 << 20, timeout_s=600)
    assert_same(run_small_net(poller, steps=1, seed=3), reference_run(steps=1, seed=3))


@pytest.mark.slow
def test_trainer_steps_equal_emulated(backend):
    start = time.perf_counter()
    rtl = trainer_steps(backend, steps=3, batch=16)
    seconds = time.perf_counter() - start
    emulated = trainer_steps(EmulatedBackend(size=64 << 20), steps=3, batch=16)
    assert rtl[0] == emulated[0] and rtl[2] == emulated[2]
    assert_same(rtl[1], emulated[1])
    print(f"co-sim: 3 trainer steps of the Table 3.3 model (batch 16) in {seconds:.1f} s")


@pytest.mark.slow
def test_cli_train_on_rtl(tmp_path):
    cmd = [sys.executable, "-m", "ultratrain.host.cli", "train", "--backend", "rtl", "--epochs", "1",
           "--batch-size", "16", "--eval-batch", "16", "--train-limit", "32", "--test-limit", "16",
           "--data", SUBSET, "--out", str(tmp_path), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "checkpoint.npz").exists() and "final epoch 1" in proc.stdout
