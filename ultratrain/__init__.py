"""UltraTrain: on-FPGA low-precision tensor-train training (thesis chapter 3).

Subpackages map onto the repository's folders:
``ultratrain.sim`` (sim/, golden model and hardware/software contract), ``ultratrain.hw`` (hw/, Amaranth),
``ultratrain.host`` (host/, driver and trainer), ``ultratrain.sw`` (sw/, PyTorch references).
"""

__version__ = "0.1.0"
