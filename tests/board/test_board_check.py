"""``ultratrain board-check`` (host/board_check.py) on the recording PYNQ device and on broken devices."""

import numpy as np
import pytest

from ultratrain.host import board_check
from ultratrain.host.backends.emulated import EmulatedBackend
from ultratrain.host.backends.pynq import PynqBackend
from ultratrain.sim.contract import DESCRIPTOR_BYTES, Opcode

from .mock_device import RecordingDevice


def test_every_instruction_passes_through_the_pynq_driver():
    device = RecordingDevice()
    backend = PynqBackend(device.ip(), poll_interval_s=0.0, arena_bytes=1 << 20)
    lines = []
    results = board_check.run_board_check(backend, seed=3, repeats=2, log=lines.append)
    assert [r.name for r in results] == [c.name for c in board_check.CASES]
    assert all(r.passed for r in results), board_check.format_results(results)
    # The mock's cycle model: 100 + macs/128 per instruction; the program counter from the CYCLES registers.
    pe1 = results[0]
    assert pe1.cycles == 100 + (11 * 2 * 32 * 24) // 128 and pe1.total_cycles > 0
    assert len(lines) == len(results) and lines[0].startswith("LOAD_W+PE1            pass")
    # Each case is one program: RESET before every START.
    assert len(device.events("start")) == 2 * len(results)


class CorruptingBackend(EmulatedBackend):
    """Runs correctly, then flips one output element of the given opcode: board-check must notice."""

    def __init__(self, opcode):
        super().__init__(size=4 << 20)
        self.opcode = opcode

    def run(self, prog_addr, count):
        from ultratrain.sim.contract import Descriptor
        result = super().run(prog_addr, count)
        for i in range(count):
            desc = Descriptor.decode(self.read_bytes(prog_addr + i * DESCRIPTOR_BYTES, DESCRIPTOR_BYTES))
            if desc.opcode == self.opcode:
                value = self.read(desc.dst, 1)
                self.write(desc.dst, np.asarray(value, dtype=np.int64) ^ 1)
        return result


@pytest.mark.parametrize("opcode, failing", [(Opcode.PE2, {"LOAD_W+PE2"}),
                                             (Opcode.PE3, {"PE3", "PE3 strided", "PE3 ACC", "PE3 row groups",
                                                          "PE3 column groups"}),
                                             (Opcode.REDUCE, {"REDUCE"})])
def test_a_wrong_result_fails_its_instruction(opcode, failing):
    results = board_check.run_board_check(CorruptingBackend(opcode), repeats=1)
    assert {r.name for r in results if not r.passed} == failing
    bad = next(r for r in results if r.name in failing)
    assert "outputs differ (first at 0" in bad.detail


def test_command_line(capsys):
    assert board_check.main(["--backend", "emulated", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "12/12 instructions pass" in out and "PE3 ACC" in out and "PE3 row groups" in out \
        and "PE3 column groups" in out
    assert board_check.main(["--backend", "nonexistent"]) == 2
    assert "unknown" in capsys.readouterr().err
    with pytest.raises(ValueError, match="repeats"):
        board_check.run_board_check(EmulatedBackend(size=1 << 20), repeats=0)


def test_registered_as_ultratrain_subcommand():
    from ultratrain.host import cli
    parser = cli.build_parser()
    args = parser.parse_args(["board-check", "--backend", "emulated", "--repeats", "1", "--seed", "5"])
    assert cli.COMMANDS[args.command].run is board_check.run_command and args.seed == 5
