"""Registers ``ultratrain program`` (host/program_listing.py) with the command registry of host/cli.py."""

from .cli import register_command
from .program_listing import add_arguments, run_command

register_command("program", "list the instructions of one training step with their modelled cycles (thesis or "
                 "optimized schedule)", add_arguments, run_command)
