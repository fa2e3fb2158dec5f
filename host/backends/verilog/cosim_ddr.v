// DDR model of the co-simulation (host/backends/rtl.py): an AXI4 slave memory in Verilog, so that DMA bursts
// run at simulator speed with no Python in the per-beat path (cocotbext-axi's AxiRam is the alternative).
// INCR bursts of full-width beats (the accelerator's AXI master issues only those, hw/axi_master.py); one
// read and one write burst in flight; address outside [BASE, BASE + 16 * WORDS) answers SLVERR. The host
// reaches `mem` through the simulator's VPI (flush/invalidate backdoor).
`timescale 1ns / 1ps
module cosim_ddr #(
  parameter DATA_BITS = 128,
  parameter ID_BITS = 6,
  parameter ADDR_BITS = 32,
  parameter WORDS = 1 << 20,
  parameter [ADDR_BITS-1:0] BASE = 32'h1000_0000
) (
  input clk, input rst,
  input [ID_BITS-1:0] awid, input [ADDR_BITS-1:0] awaddr, input [7:0] awlen, input awvalid, output reg awready,
  input [DATA_BITS-1:0] wdata, input [DATA_BITS/8-1:0] wstrb, input wlast, input wvalid, output reg wready,
  output reg [ID_BITS-1:0] bid, output reg [1:0] bresp, output reg bvalid, input bready,
  input [ID_BITS-1:0] arid, input [ADDR_BITS-1:0] araddr, input [7:0] arlen, input arvalid, output reg arready,
  output reg [ID_BITS-1:0] rid, output [DATA_BITS-1:0] rdata, output reg [1:0] rresp, output rlast,
  output reg rvalid, input rready
);
  localparam BYTES = DATA_BITS / 8;
  localparam SHIFT = $clog2(BYTES);
  reg [DATA_BITS-1:0] mem [0:WORDS-1] /*verilator public_flat_rw*/;   // the host's backdoor (VPI)
  integer i;
  initial for (i = 0; i < WORDS; i = i + 1) mem[i] = {DATA_BITS{1'b0}};   // DRAM the host never wrote reads 0

  function in_range(input [ADDR_BITS-1:0] addr, input [7:0] len);
    in_range = addr >= BASE && ((addr - BASE) >> SHIFT) + len < WORDS;
  endfunction

  // Read: address phase, then len+1 beats read combinationally from the array.
  reg [31:0] ridx; reg [7:0] rleft; reg rok;
  assign rdata = rok ? mem[ridx] : {DATA_BITS{1'b0}};
  assign rlast = rleft == 0;
  always @(posedge clk) begin
    if (rst) begin
      arready <= 1; rvalid <= 0;
    end else if (arvalid && arready) begin
      arready <= 0; rvalid <= 1; rid <= arid; rleft <= arlen;
      rok <= in_range(araddr, arlen); rresp <= in_range(araddr, arlen) ? 2'b00 : 2'b10;
      ridx <= (araddr - BASE) >> SHIFT;
    end else if (rvalid && rready) begin
      if (rlast) begin rvalid <= 0; arready <= 1; end
      else begin rleft <= rleft - 1; ridx <= ridx + 1; end
    end
  end

  // Write: address phase, beats until wlast (bytes by wstrb), then the response.
  reg [31:0] widx; reg wok; integer b;
  always @(posedge clk) begin
    if (rst) begin
      awready <= 1; wready <= 0; bvalid <= 0;
    end else begin
      if (awvalid && awready) begin
        awready <= 0; wready <= 1; bid <= awid; widx <= (awaddr - BASE) >> SHIFT;
        wok <= in_range(awaddr, awlen);
      end
      if (wvalid && wready) begin
        if (wok)
          for (b = 0; b < BYTES; b = b + 1)
            if (wstrb[b]) mem[widx][8 * b +: 8] <= wdata[8 * b +: 8];
        widx <= widx + 1;
        if (wlast) begin wready <= 0; bvalid <= 1; bresp <= wok ? 2'b00 : 2'b10; end
      end
      if (bvalid && bready) begin bvalid <= 0; awready <= 1; end
    end
  end
endmodule
