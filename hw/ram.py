"""Block and distributed RAM templates, instantiated from Amaranth as black boxes.

Amaranth 0.5 writes every memory's initial contents into the netlist word by word, which made converting
the accelerator's ~2.5 Mbit of buffers take minutes; these two small Verilog templates (written into the same
file as the design by :mod:`~ultratrain.hw.generate`) are the usual vendor-inferable RAM descriptions and
are initialised to zero by a loop instead:

* ``ut_ram_sdp``: simple dual-port RAM, one write port with per-``GRAN``-bit enables, one synchronous read
  port (read-first). Vivado infers block RAM (byte enables for ``GRAN`` 8/16) or UltraRAM.
* ``ut_ram_async``: one synchronous write port, two asynchronous read ports: the small accumulator memories
  of PE2/PE3 and the reduce unit, read-modify-written in one cycle (distributed RAM, like the thesis' "small
  block memory" per multiplier).

The read data register of ``ut_ram_sdp`` starts at zero, so no X reaches the datapath in Icarus
(amaranth#1625 is about exactly that register in Amaranth's own memories).
"""

from amaranth import ClockSignal, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SyncRAM", "AsyncRAM", "RAM_VERILOG"]

RAM_VERILOG = r"""
// UltraTrain RAM templates (hw/ram.py). Zero-initialised; vendor tools infer BRAM / LUTRAM.
module ut_ram_sdp #(parameter WIDTH = 8, parameter DEPTH = 16, parameter ABITS = 4, parameter GRAN = 8) (
    input  wire                    clk,
    input  wire [ABITS-1:0]        waddr,
    input  wire [WIDTH-1:0]        wdata,
    input  wire [WIDTH/GRAN-1:0]   wen,
    input  wire [ABITS-1:0]        raddr,
    input  wire                    ren,
    output reg  [WIDTH-1:0]        rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i, g;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
        rdata = {WIDTH{1'b0}};
    end
    always @(posedge clk) begin
        for (g = 0; g < WIDTH / GRAN; g = g + 1)
            if (wen[g]) mem[waddr][g*GRAN +: GRAN] <= wdata[g*GRAN +: GRAN];
        if (ren) rdata <= mem[raddr];
    end
endmodule

module ut_ram_async #(parameter WIDTH = 8, parameter DEPTH = 16, parameter ABITS = 4) (
    input  wire                    clk,
    input  wire [ABITS-1:0]        waddr,
    input  wire [WIDTH-1:0]        wdata,
    input  wire                    wen,
    input  wire [ABITS-1:0]        raddr0,
    output wire [WIDTH-1:0]        rdata0,
    input  wire [ABITS-1:0]        raddr1,
    output wire [WIDTH-1:0]        rdata1
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i;
    initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
    always @(posedge clk) if (wen) mem[waddr] <= wdata;
    assign rdata0 = mem[raddr0];
    assign rdata1 = mem[raddr1];
endmodule
"""


def _abits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


class SyncRAM(wiring.Component):
    """``depth`` x ``width`` bits, write enables per ``granularity`` bits, read data the cycle after ``r_en``."""

    def __init__(self, width: int, depth: int, granularity: int | None = None):
        granularity = width if granularity is None else granularity
        if width <= 0 or depth <= 0 or granularity <= 0 or width % granularity:
            raise ValueError(f"SyncRAM: width {width} must be a positive multiple of granularity {granularity}; "
                             f"depth {depth} must be positive")
        self.width, self.depth, self.granularity = width, depth, granularity
        abits = _abits(depth)
        super().__init__({
            "w_addr": In(abits), "w_data": In(width), "w_en": In(width // granularity),
            "r_addr": In(abits), "r_en": In(1), "r_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = Instance(
            "ut_ram_sdp", p_WIDTH=self.width, p_DEPTH=self.depth, p_ABITS=_abits(self.depth),
            p_GRAN=self.granularity,
            i_clk=ClockSignal(), i_waddr=self.w_addr, i_wdata=self.w_data, i_wen=self.w_en,
            i_raddr=self.r_addr, i_ren=self.r_en, o_rdata=self.r_data)
        return m


class AsyncRAM(wiring.Component):
    """``depth`` x ``width`` bits, one synchronous write port, two combinational read ports."""

    def __init__(self, width: int, depth: int):
        if width <= 0 or depth <= 0:
            raise ValueError(f"AsyncRAM: width {width} and depth {depth} must be positive")
        self.width, self.depth = width, depth
        abits = _abits(depth)
        super().__init__({
            "w_addr": In(abits), "w_data": In(width), "w_en": In(1),
            "r0_addr": In(abits), "r0_data": Out(width), "r1_addr": In(abits), "r1_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = Instance(
            "ut_ram_async", p_WIDTH=self.width, p_DEPTH=self.depth, p_ABITS=_abits(self.depth),
            i_clk=ClockSignal(), i_waddr=self.w_addr, i_wdata=self.w_data, i_wen=self.w_en,
            i_raddr0=self.r0_addr, o_rdata0=self.r0_data, i_raddr1=self.r1_addr, o_rdata1=self.r1_data)
        return m
