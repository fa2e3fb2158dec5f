// A stand-in for the accelerator top with the same ports and register map (sim/contract.py), used to test
// the co-simulation plumbing (host/backends/rtl.py) independently of hw/: START copies the first 16 bytes of
// the descriptor ring to ring+32 (one AXI4 read burst, one write burst), then sets DONE and raises irq
// when IRQ_ENABLE is set. PROG_COUNT == 0 reports ERROR with code NO_END (8). The identity registers (ID,
// VERSION, HWCFG0-4) come from sim/contract.py as the macros UT_*: tests/board/test_rtl_plumbing.py defines
// them in front of this file, so the stub never carries a second copy of the contract's values.
`timescale 1ns / 1ps
module ultratrain_top(
  input clk, input rst, output irq,
  input [7:0] s_axil__awaddr, input [2:0] s_axil__awprot, input s_axil__awvalid, output reg s_axil__awready,
  input [31:0] s_axil__wdata, input [3:0] s_axil__wstrb, input s_axil__wvalid, output reg s_axil__wready,
  output [1:0] s_axil__bresp, output reg s_axil__bvalid, input s_axil__bready,
  input [7:0] s_axil__araddr, input [2:0] s_axil__arprot, input s_axil__arvalid, output reg s_axil__arready,
  output reg [31:0] s_axil__rdata, output [1:0] s_axil__rresp, output reg s_axil__rvalid, input s_axil__rready,
  output [5:0] m_axi__awid, output reg [31:0] m_axi__awaddr, output [7:0] m_axi__awlen, output [2:0] m_axi__awsize,
  output [1:0] m_axi__awburst, output m_axi__awlock, output [3:0] m_axi__awcache, output [2:0] m_axi__awprot,
  output [3:0] m_axi__awqos, output reg m_axi__awvalid, input m_axi__awready,
  output reg [127:0] m_axi__wdata, output [15:0] m_axi__wstrb, output m_axi__wlast, output reg m_axi__wvalid,
  input m_axi__wready,
  input [5:0] m_axi__bid, input [1:0] m_axi__bresp, input m_axi__bvalid, output m_axi__bready,
  output [5:0] m_axi__arid, output reg [31:0] m_axi__araddr, output [7:0] m_axi__arlen, output [2:0] m_axi__arsize,
  output [1:0] m_axi__arburst, output m_axi__arlock, output [3:0] m_axi__arcache, output [2:0] m_axi__arprot,
  output [3:0] m_axi__arqos, output reg m_axi__arvalid, input m_axi__arready,
  input [5:0] m_axi__rid, input [127:0] m_axi__rdata, input [1:0] m_axi__rresp, input m_axi__rlast,
  input m_axi__rvalid, output m_axi__rready
);
  assign s_axil__bresp = 2'b00;
  assign s_axil__rresp = 2'b00;
  assign m_axi__awid = 0; assign m_axi__awlen = 0; assign m_axi__awsize = 3'b100; assign m_axi__awburst = 2'b01;
  assign m_axi__awlock = 0; assign m_axi__awcache = 0; assign m_axi__awprot = 0; assign m_axi__awqos = 0;
  assign m_axi__wstrb = 16'hFFFF; assign m_axi__wlast = 1'b1; assign m_axi__bready = 1'b1;
  assign m_axi__arid = 0; assign m_axi__arlen = 0; assign m_axi__arsize = 3'b100; assign m_axi__arburst = 2'b01;
  assign m_axi__arlock = 0; assign m_axi__arcache = 0; assign m_axi__arprot = 0; assign m_axi__arqos = 0;
  assign m_axi__rready = 1'b1;

  reg [31:0] prog_addr, prog_count, cycles;
  reg irq_en, busy, done, error;
  reg [7:0] code;
  reg [2:0] state;      // 0 idle, 1 read addr, 2 read data, 3 write addr+data, 4 wait B, 5 wait 20 cycles
  reg [4:0] delay;
  reg [7:0] awaddr_q; reg aw_full; reg [31:0] wdata_q; reg w_full;
  assign irq = irq_en & (done | error);

  wire do_write = aw_full & w_full & ~s_axil__bvalid;
  wire start = do_write && awaddr_q == 8'h08 && wdata_q[0];
  wire reset_strobe = do_write && awaddr_q == 8'h08 && wdata_q[1];

  always @(posedge clk) begin
    if (rst) begin
      s_axil__awready <= 0; s_axil__wready <= 0; s_axil__bvalid <= 0; s_axil__arready <= 0; s_axil__rvalid <= 0;
      aw_full <= 0; w_full <= 0; prog_addr <= 0; prog_count <= 0; irq_en <= 0; busy <= 0; done <= 0; error <= 0;
      code <= 0; state <= 0; cycles <= 0; m_axi__arvalid <= 0; m_axi__awvalid <= 0; m_axi__wvalid <= 0;
    end else begin
      // AXI-Lite write: accept address and data independently, respond once both are in.
      s_axil__awready <= ~aw_full & ~s_axil__awready;
      if (s_axil__awvalid & s_axil__awready) begin awaddr_q <= s_axil__awaddr; aw_full <= 1; s_axil__awready <= 0; end
      s_axil__wready <= ~w_full & ~s_axil__wready;
      if (s_axil__wvalid & s_axil__wready) begin wdata_q <= s_axil__wdata; w_full <= 1; s_axil__wready <= 0; end
      if (do_write) begin
        aw_full <= 0; w_full <= 0; s_axil__bvalid <= 1;
        case (awaddr_q)
          8'h08: irq_en <= wdata_q[2];
          8'h0C: begin if (wdata_q[1]) done <= 0; if (wdata_q[2]) begin error <= 0; code <= 0; end end
          8'h10: prog_addr <= wdata_q;
          8'h14: prog_count <= wdata_q;
          default: ;
        endcase
      end
      if (s_axil__bvalid & s_axil__bready) s_axil__bvalid <= 0;
      // AXI-Lite read
      s_axil__arready <= ~s_axil__rvalid & ~s_axil__arready;
      if (s_axil__arvalid & s_axil__arready) begin
        s_axil__arready <= 0; s_axil__rvalid <= 1;
        case (s_axil__araddr)
          8'h00: s_axil__rdata <= `UT_ID;
          8'h04: s_axil__rdata <= `UT_VERSION;
          8'h08: s_axil__rdata <= {29'd0, irq_en, 2'b00};
          8'h0C: s_axil__rdata <= {16'd0, code, 5'd0, error, done, busy};
          8'h10: s_axil__rdata <= prog_addr;
          8'h14: s_axil__rdata <= prog_count;
          8'h18: s_axil__rdata <= 0;
          8'h20: s_axil__rdata <= cycles;
          8'h40: s_axil__rdata <= `UT_HWCFG0;
          8'h44: s_axil__rdata <= `UT_HWCFG1;
          8'h48: s_axil__rdata <= `UT_HWCFG2;
          8'h4C: s_axil__rdata <= `UT_HWCFG3;
          8'h50: s_axil__rdata <= `UT_HWCFG4;
          default: s_axil__rdata <= 0;
        endcase
      end
      if (s_axil__rvalid & s_axil__rready) s_axil__rvalid <= 0;
      // The "program": copy 16 bytes from prog_addr to prog_addr + 32.
      if (busy) cycles <= cycles + 1;
      if (reset_strobe) begin
        busy <= 0; done <= 0; error <= 0; code <= 0; state <= 0; cycles <= 0;
        m_axi__arvalid <= 0; m_axi__awvalid <= 0; m_axi__wvalid <= 0;
      end else if (start & ~busy) begin
        if (prog_count == 0) begin error <= 1; code <= 8; end
        else begin busy <= 1; state <= 1; cycles <= 0; m_axi__araddr <= prog_addr; m_axi__arvalid <= 1; end
      end else case (state)
        1: if (m_axi__arready) begin m_axi__arvalid <= 0; state <= 2; end
        2: if (m_axi__rvalid) begin
             m_axi__wdata <= m_axi__rdata; m_axi__awaddr <= prog_addr + 32;
             m_axi__awvalid <= 1; m_axi__wvalid <= 1; state <= 3;
           end
        3: begin
             if (m_axi__awready) m_axi__awvalid <= 0;
             if (m_axi__wready) m_axi__wvalid <= 0;
             if ((~m_axi__awvalid | m_axi__awready) & (~m_axi__wvalid | m_axi__wready)) state <= 4;
           end
        4: if (m_axi__bvalid) begin state <= 5; delay <= 20; end
        5: if (delay == 0) begin busy <= 0; done <= 1; state <= 0; end else delay <= delay - 1;
        default: ;
      endcase
    end
  end
endmodule
