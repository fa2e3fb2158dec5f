"""AXI4 and AXI4-Lite signatures (flat, master's view), and the DMA command/data stream layouts.

The signatures are flat so that Amaranth's Verilog names become ``<prefix>__awaddr`` etc., which cocotbext-axi
finds with ``AxiBus.from_prefix(dut, prefix, bus_separator="__")`` and Vivado's interface inference maps to
the Zynq UltraScale+ ``S_AXI_HP`` / ``M_AXI_HPM`` ports (AMBA AXI4 spec, IHI 0022, sections A2-A3).

The internal DMA interface (``ReadCommand`` / ``WriteCommand``) describes a 2-D access pattern
(``rows`` runs of ``beats`` data beats, ``stride`` bytes apart); the AXI master splits it into INCR bursts.
"""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4Signature", "AXI4LiteSignature", "ReadCommand", "WriteCommand", "read_data_layout",
           "write_data_layout", "BURST_INCR", "SIZE_16B"]

BURST_INCR = 0b01
SIZE_16B = 0b100        # AxSIZE for 16-byte beats


class AXI4Signature(wiring.Signature):
    """AXI4 master port (all five channels), data ``data_width`` bits, ``id_width``-bit IDs."""

    def __init__(self, addr_width: int = 32, data_width: int = 128, id_width: int = 6):
        if data_width not in (32, 64, 128, 256):
            raise ValueError(f"data_width must be 32, 64, 128 or 256, not {data_width}")
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        members = {}
        for ch in ("aw", "ar"):
            members.update({
                f"{ch}id": Out(id_width), f"{ch}addr": Out(addr_width), f"{ch}len": Out(8), f"{ch}size": Out(3),
                f"{ch}burst": Out(2), f"{ch}lock": Out(1), f"{ch}cache": Out(4), f"{ch}prot": Out(3),
                f"{ch}qos": Out(4), f"{ch}valid": Out(1), f"{ch}ready": In(1),
            })
        members.update({
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1), "wvalid": Out(1),
            "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
            "rready": Out(1),
        })
        super().__init__(members)


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite master port (flip it for a slave): 32-bit data."""

    def __init__(self, addr_width: int = 8, data_width: int = 32):
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class ReadCommand(data.Struct):
    """``rows`` runs of ``beats`` beats from ``addr`` (beat aligned), ``stride`` bytes apart; ``tag`` comes back
    with every data beat so that a unit can interleave operands on one stream."""
    addr: 32
    beats: 16
    rows: 16
    stride: 32
    tag: 2


class WriteCommand(data.Struct):
    addr: 32
    beats: 16
    rows: 16
    stride: 32


def read_data_layout(data_width: int = 128) -> data.StructLayout:
    """A returned beat: ``last`` marks the last beat of its command."""
    return data.StructLayout({"data": data_width, "tag": 2, "last": 1})


def write_data_layout(data_width: int = 128) -> data.StructLayout:
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


def read_port_signature(data_width: int = 128) -> wiring.Signature:
    """A unit's read side (unit's view): commands out, beats in."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(ReadCommand)),
        "data": In(stream.Signature(read_data_layout(data_width))),
    })


def write_port_signature(data_width: int = 128) -> wiring.Signature:
    """A unit's write side (unit's view): commands and beats out; ``idle`` once every write is acknowledged."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(WriteCommand)),
        "data": Out(stream.Signature(write_data_layout(data_width))),
        "idle": In(1),
    })
