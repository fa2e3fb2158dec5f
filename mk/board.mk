# Board area (docs/board.md): Yosys resource report, Vivado bitstream, tests on the Ultra96-V2.
TOP_V      ?= $(BUILD)/ultratrain_top.v
BOARD_PY   ?= python3

.PHONY: board-test bitstream-tcl

# Regenerates the Verilog top, runs Yosys synth_xilinx -family xcup, writes $(BUILD)/synth.json and .md;
# fails if the design does not fit the XCZU3EG or uses more DSP than the thesis' Table 3.5 (278).
synth: setup
	$(PY) scripts/synth.py --strict-dsp --verilog $(TOP_V) --out $(BUILD)/synth.json

# The Vivado batch script alone (no Vivado needed): $(BUILD)/vivado/ultratrain.tcl.
bitstream-tcl: setup
	$(PY) -m ultratrain.hw.generate --out $(TOP_V)
	$(PY) scripts/bitstream.py tcl --verilog $(TOP_V) --work $(BUILD)/vivado

# bitstreams/ultratrain.{bit,hwh,manifest.json} + utilization/timing reports; stops with a clear message
# where Vivado is not on PATH (set VIVADO=/path/to/vivado).
bitstream: setup
	$(PY) -m ultratrain.hw.generate --out $(TOP_V)
	$(PY) scripts/bitstream.py build --verilog $(TOP_V) --work $(BUILD)/vivado --out bitstreams --jobs $(JOBS)

# On the board (PYNQ image, as root): make board-test ULTRATRAIN_BOARD=ultra96v2
# No `setup` dependency: the board runs the PYNQ image's Python, not the development venv.
board-test:
	@test -n "$(ULTRATRAIN_BOARD)" || { echo "board-test: set ULTRATRAIN_BOARD (e.g. ultra96v2) on the board"; exit 2; }
	ULTRATRAIN_BOARD=$(ULTRATRAIN_BOARD) $(BOARD_PY) -m pytest -m board -p no:cacheprovider -s tests/board/test_on_board.py
