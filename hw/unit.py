"""What every execution unit (PE1, PE2, PE3, vector unit, load unit) shares with the controller.

A unit gets the decoded descriptor (``desc``, held constant while it runs), a ``start`` strobe, and reports
``busy`` until its last result is written and acknowledged on AXI. ``array_busy`` is high in the cycles its
array (or vector lanes) did useful work: the controller sums it into the PEn_BUSY / VEC_BUSY counters, and
counts the other cycles of the instruction as stalls (waiting for the AXI master or for a buffer).
``saturated`` and ``sum_abs`` are the write-back statistics of the instruction (OutputStage).
"""

from amaranth.lib.wiring import In, Out

from .axi import read_port_signature, write_port_signature
from .decoder import DescriptorFields

__all__ = ["unit_members"]


def unit_members(data_width: int = 128) -> dict:
    return {
        "start": In(1),
        "desc": In(DescriptorFields),
        "busy": Out(1),
        "array_busy": Out(1),
        "saturated": Out(32),
        "sum_abs": Out(64),
        "rd": Out(read_port_signature(data_width)),
        "wr": Out(write_port_signature(data_width)),
    }
