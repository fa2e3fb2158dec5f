#!/usr/bin/env bash
# System packages UltraTrain needs beyond Python: Icarus Verilog (second simulator), Yosys (synth_xilinx
# resource reports) and Debian's Fashion-MNIST. Installs them with apt-get on Debian as root; elsewhere
# says exactly what to install. Idempotent: does nothing when everything is present.
set -euo pipefail

missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v yosys    >/dev/null 2>&1 || missing+=(yosys)
[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || missing+=(dataset-fashion-mnist)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ -f /etc/debian_version ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
fi

cat >&2 <<MSG
setup: these system packages are missing: ${missing[*]}
  Debian/Ubuntu:  sudo apt-get install iverilog yosys dataset-fashion-mnist
  macOS (brew):   brew install icarus-verilog yosys     (Fashion-MNIST: ultratrain downloads it, or pass --data DIR)
  Other:          Icarus Verilog >= 11 and Yosys >= 0.23 on PATH.
Python-only work (golden model, trainer on the emulated device, sw/ references) runs without them;
the Icarus regression and 'make synth' need them.
MSG
exit 0
