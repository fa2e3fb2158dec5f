# Hardware: generated Verilog, Verilator lint, cocotb RTL regression (hw/, tests/hw/; docs/hardware.md).
HW_TOP_V   := $(BUILD)/ultratrain_top.v
HW_SOURCES := $(wildcard hw/*.py) sim/contract.py
SIM        ?= verilator

verilog: setup $(HW_TOP_V)

$(HW_TOP_V): $(HW_SOURCES)
	@mkdir -p $(BUILD)
	$(PY) -m ultratrain.hw.generate --out $@

# -Wall with the waivers of hw/verilator_waivers.vlt (each one explained there and in docs/hardware.md).
lint: setup $(HW_TOP_V)
	$(VERILATOR_ENV) verilator --lint-only -Wall --top-module ultratrain_top hw/verilator_waivers.vlt $(HW_TOP_V)
	@echo "lint: clean (with the documented waivers)"

# The whole RTL regression, slow runs included (make test runs the quick subset). SIM=icarus for Icarus.
sim: setup
	$(VERILATOR_ENV) SIM=$(SIM) $(PYTEST) -n $(JOBS) -m "not board" tests/hw

# After an RTL change, first: every unit and the top on random and extreme cases, bit for bit (about a minute
# with the builds cached); `make sim` adds the slow runs (the Table 3.3 step on the top, parameter sweeps).
sim-quick: setup
	$(VERILATOR_ENV) SIM=$(SIM) $(PYTEST) -n $(JOBS) -m "not board and not slow" tests/hw
