"""Simulation-only DRAM for benchmarks: an AXI4 slave RAM in Verilog, and a bench top around the accelerator.

cocotbext-axi's AxiRam (used by every correctness bench, with random stalls) runs Python for each beat; to
measure the simulation speed of the RTL itself (``rtl_sim_cycles_per_s``) and to run whole training steps
quickly, :class:`BenchTop` connects :class:`~ultratrain.hw.top.Top` to ``ut_axi_ram_model``: reads return one
beat per cycle ``LATENCY`` cycles after their AR handshake (up to 16 bursts queued, so latency overlaps
like on a real HP port), writes land on the W handshake and are acknowledged right after the last beat. The
testbench loads and inspects ``ram.mem`` directly (backdoor). Not synthesizable as a DRAM, of course.
"""

from amaranth import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import DEFAULT_CONFIG, HardwareConfig
from .axi import AXI4LiteSignature
from .top import AXI_ID_WIDTH, Top

__all__ = ["AXI_RAM_MODEL_VERILOG", "BenchTop"]

AXI_RAM_MODEL_VERILOG = r"""
// UltraTrain benchmark DRAM model (hw/axi_ram_model.py): AXI4 slave, 128-bit, INCR bursts, fixed read latency.
module ut_axi_ram_model #(parameter WORDS_LOG2 = 20, parameter LATENCY = 24, parameter IDW = 6) (
    input  wire clk, input wire rst,
    input  wire [IDW-1:0] awid, input wire [31:0] awaddr, input wire [7:0] awlen, input wire [2:0] awsize,
    input  wire [1:0] awburst, input wire awlock, input wire [3:0] awcache, input wire [2:0] awprot,
    input  wire [3:0] awqos, input wire awvalid, output wire awready,
    input  wire [127:0] wdata, input wire [15:0] wstrb, input wire wlast, input wire wvalid, output wire wready,
    output wire [IDW-1:0] bid, output wire [1:0] bresp, output wire bvalid, input wire bready,
    input  wire [IDW-1:0] arid, input wire [31:0] araddr, input wire [7:0] arlen, input wire [2:0] arsize,
    input  wire [1:0] arburst, input wire arlock, input wire [3:0] arcache, input wire [2:0] arprot,
    input  wire [3:0] arqos, input wire arvalid, output wire arready,
    output wire [IDW-1:0] rid, output wire [127:0] rdata, output wire [1:0] rresp, output wire rlast,
    output wire rvalid, input wire rready
);
    reg [127:0] mem [0:(1 << WORDS_LOG2) - 1] /*verilator public_flat_rw*/;   // the testbench's backdoor (VPI)
    reg [31:0] now;
    always @(posedge clk) now <= rst ? 32'd0 : now + 32'd1;

    // Reads: queue of bursts, each eligible LATENCY cycles after its AR handshake.
    reg [WORDS_LOG2-1:0] rq_addr [0:15];
    reg [7:0]            rq_len  [0:15];
    reg [31:0]           rq_time [0:15];
    reg [3:0] rq_head, rq_tail;
    reg [4:0] rq_count;
    reg r_active;
    reg [WORDS_LOG2-1:0] r_addr;
    reg [7:0] r_left;
    wire ar_fire = arvalid && arready;
    wire r_fire = rvalid && rready;
    wire r_done = r_fire && r_left == 8'd0;
    wire can_load = rq_count != 5'd0 && now >= rq_time[rq_head];
    wire load = (!r_active || r_done) && can_load;
    assign arready = rq_count < 5'd16;
    assign rvalid = r_active;
    assign rdata = mem[r_addr];
    assign rlast = r_left == 8'd0;
    assign rid = {IDW{1'b0}};
    assign rresp = 2'b00;
    always @(posedge clk) begin
        if (rst) begin
            rq_head <= 4'd0; rq_tail <= 4'd0; rq_count <= 5'd0; r_active <= 1'b0;
        end else begin
            if (ar_fire) begin
                rq_addr[rq_tail] <= araddr[WORDS_LOG2+3:4];
                rq_len[rq_tail] <= arlen;
                rq_time[rq_tail] <= now + LATENCY;
                rq_tail <= rq_tail + 4'd1;
            end
            if (load) begin
                r_active <= 1'b1; r_addr <= rq_addr[rq_head]; r_left <= rq_len[rq_head];
                rq_head <= rq_head + 4'd1;
            end else if (r_done) begin
                r_active <= 1'b0;
            end else if (r_fire) begin
                r_addr <= r_addr + 1'b1; r_left <= r_left - 8'd1;
            end
            rq_count <= rq_count + {4'd0, ar_fire} - {4'd0, load};
        end
    end

    // Writes: queue of bursts; W beats are written as they arrive, B follows the last beat.
    reg [WORDS_LOG2-1:0] wq_addr [0:15];
    reg [3:0] wq_head, wq_tail;
    reg [4:0] wq_count;
    reg [WORDS_LOG2-1:0] w_offset;
    reg [7:0] b_pending;
    wire aw_fire = awvalid && awready;
    wire w_fire = wvalid && wready;
    assign awready = wq_count < 5'd16;
    assign wready = wq_count != 5'd0;
    assign bvalid = b_pending != 8'd0;
    assign bid = {IDW{1'b0}};
    assign bresp = 2'b00;
    integer i;
    always @(posedge clk) begin
        if (rst) begin
            wq_head <= 4'd0; wq_tail <= 4'd0; wq_count <= 5'd0; w_offset <= 0; b_pending <= 8'd0;
        end else begin
            if (aw_fire) begin
                wq_addr[wq_tail] <= awaddr[WORDS_LOG2+3:4];
                wq_tail <= wq_tail + 4'd1;
            end
            if (w_fire) begin
                for (i = 0; i < 16; i = i + 1)
                    if (wstrb[i]) mem[wq_addr[wq_head] + w_offset][i*8 +: 8] <= wdata[i*8 +: 8];
                if (wlast) begin
                    w_offset <= 0; wq_head <= wq_head + 4'd1;
                end else begin
                    w_offset <= w_offset + 1'b1;
                end
            end
            wq_count <= wq_count + {4'd0, aw_fire} - {4'd0, w_fire && wlast};
            b_pending <= b_pending + {7'd0, w_fire && wlast} - {7'd0, bvalid && bready};
        end
    end
endmodule
"""


class BenchTop(wiring.Component):
    """:class:`Top` with ``ut_axi_ram_model`` (``2**words_log2`` words of 16 bytes) on its AXI master."""

    def __init__(self, cfg: HardwareConfig = DEFAULT_CONFIG, words_log2: int = 20, latency: int = 24):
        self.cfg, self.words_log2, self.latency = cfg, words_log2, latency
        super().__init__({"s_axil": In(AXI4LiteSignature(8, 32)), "irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = top = Top(self.cfg)
        wiring.connect(m, wiring.flipped(self.s_axil), top.s_axil)
        m.d.comb += self.irq.eq(top.irq)
        ports = {}
        for name, member in top.m_axi.signature.members.items():
            signal = getattr(top.m_axi, name)
            # The master's outputs are the model's inputs.
            ports[("i_" if member.flow == wiring.Out else "o_") + name] = signal
        m.submodules.ram = Instance("ut_axi_ram_model", p_WORDS_LOG2=self.words_log2, p_LATENCY=self.latency,
                                    p_IDW=AXI_ID_WIDTH, i_clk=ClockSignal(), i_rst=ResetSignal(), **ports)
        return m
