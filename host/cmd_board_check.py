"""Registers ``ultratrain board-check`` (host/board_check.py) with the command registry of host/cli.py."""

from .board_check import add_arguments, run_command
from .cli import register_command

register_command("board-check", "run every instruction kind on random data on the device and compare with "
                 "the golden executor (pass/fail and cycles per instruction)", add_arguments, run_command)
