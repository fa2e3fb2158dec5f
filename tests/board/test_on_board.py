"""On the Ultra96-V2 itself: `make board-test ULTRATRAIN_BOARD=ultra96v2` (as root, PYNQ image).

Skipped everywhere else. Loads bitstreams/ultratrain.bit (or $ULTRATRAIN_BITSTREAM) with its .hwh and manifest,
checks the identity registers and the fabric clock, runs every instruction kind against the golden executor
(the board-check), and shows that training steps on the board equal the emulated device bit for bit. Needs
only numpy and pynq, which the PYNQ image has.
"""

import os

import pytest

pytestmark = [pytest.mark.board,
              pytest.mark.skipif(not os.environ.get("ULTRATRAIN_BOARD"),
                                 reason="needs the board: set ULTRATRAIN_BOARD (make board-test on the Ultra96-V2)")]


@pytest.fixture(scope="module")
def backend():
    from ultratrain.host.backends.pynq import PynqBackend
    backend = PynqBackend.from_bitstream()
    yield backend
    backend.close()


def test_identity_clock_and_interrupt(backend):
    from ultratrain.sim.contract import DEVICE_ID
    assert backend.identity["ID"] == DEVICE_ID
    assert abs(backend.clock_mhz - 100.0) < 1.0
    assert backend.interrupt is not None, "the .hwh wires no interrupt: the driver would poll"


def test_board_check_passes(backend):
    from ultratrain.host.board_check import format_results, run_board_check
    results = run_board_check(backend, seed=1, repeats=5)
    print(format_results(results))
    assert all(r.passed for r in results), format_results(results)
    assert all(r.cycles > 0 for r in results if r.name not in ("END", "illegal (BAD_SHAPE)"))


def test_runtime_steps_equal_emulated(backend):
    from .workloads import assert_same, reference_run, run_small_net
    assert_same(run_small_net(backend, steps=3), reference_run(steps=3))


def test_trainer_steps_equal_emulated(backend):
    from ultratrain.host.backends.emulated import EmulatedBackend

    from .workloads import assert_same, trainer_steps
    board = trainer_steps(backend, steps=3, batch=32)
    emulated = trainer_steps(EmulatedBackend(size=128 << 20), steps=3, batch=32)
    assert board[0] == emulated[0] and board[2] == emulated[2]
    assert_same(board[1], emulated[1])
