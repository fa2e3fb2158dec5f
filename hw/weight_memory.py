"""Weight memory: every TT core stays on chip for the whole training run (thesis section 3.5.3).

``wmem_words`` words of 16 four-bit two's-complement weights (64 bits, weight ``i`` in bits ``4i..4i+3``, the
packing of ``sim.contract.pack_weight_words``). The host fills it with LOAD_W; PE1 reads one word (16 weights,
one per array column) per cycle, PE2 half a word (8 weights, one per array row). The thesis gives each
multiplier its own small block memory; one wide RAM is the same storage with one address for all of them,
which is all the dataflow needs (every column reads the same weight row in the same cycle).
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import WMEM_LANES
from .ram import SyncRAM

__all__ = ["WeightMemory", "WEIGHT_WORD_BITS"]

WEIGHT_WORD_BITS = 4 * WMEM_LANES


class WeightMemory(wiring.Component):
    """One write port (LOAD_W), one synchronous read port (PE1/PE2, data the cycle after ``r_en``)."""

    def __init__(self, words: int):
        if words <= 0:
            raise ValueError(f"WeightMemory: words must be positive, not {words}")
        self.words = words
        super().__init__({
            "w_addr": In(range(words)), "w_data": In(WEIGHT_WORD_BITS), "w_en": In(1),
            "r_addr": In(range(words)), "r_en": In(1), "r_data": Out(WEIGHT_WORD_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = SyncRAM(WEIGHT_WORD_BITS, self.words)
        m.d.comb += [ram.w_addr.eq(self.w_addr), ram.w_data.eq(self.w_data), ram.w_en.eq(self.w_en),
                     ram.r_addr.eq(self.r_addr), ram.r_en.eq(self.r_en), self.r_data.eq(ram.r_data)]
        return m
