"""Weight memory: every TT core stays on chip for the whole training run (thesis section 3.5.3).

``wmem_words`` words of 16 four-bit two's-complement weights (64 bits, weight ``i`` in bits ``4i..4i+3``, the
packing of ``sim.contract.pack_weight_words``). The host fills it with LOAD_W, two words per cycle (one AXI
beat); PE1 reads one word (16 weights, one per array column) per cycle, PE2 half a word (8 weights, one per
array row). The thesis gives each
multiplier its own small block memory; one wide RAM is the same storage with one address for all of them,
which is all the dataflow needs (every column reads the same weight row in the same cycle).
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import WMEM_LANES
from .ram import SyncRAM

__all__ = ["WeightMemory", "WEIGHT_WORD_BITS"]

WEIGHT_WORD_BITS = 4 * WMEM_LANES


class WeightMemory(wiring.Component):
    """Two 64-bit weight words written per cycle (LOAD_W takes one 128-bit beat per cycle), one word read per
    cycle (PE1/PE2, data the cycle after ``r_en``): even and odd words live in two banks of ``words / 2``.

    ``w_addr`` is the word address of ``w_data[:64]``; ``w_data[64:]`` goes to ``w_addr + 1``; ``w_en`` bit 0
    writes the first word, bit 1 the second.
    """

    def __init__(self, words: int):
        if words <= 0 or words % 2:
            raise ValueError(f"WeightMemory: words must be a positive even number, not {words}")
        self.words = words
        super().__init__({
            "w_addr": In(range(words)), "w_data": In(2 * WEIGHT_WORD_BITS), "w_en": In(2),
            "r_addr": In(range(words)), "r_en": In(1), "r_data": Out(WEIGHT_WORD_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        banks = [SyncRAM(WEIGHT_WORD_BITS, self.words // 2) for _ in range(2)]
        m.submodules.even, m.submodules.odd = banks
        first, second = self.w_data[:WEIGHT_WORD_BITS], self.w_data[WEIGHT_WORD_BITS:]
        odd_start = self.w_addr[0]
        # An even start puts the first word in the even bank, both at w_addr / 2; an odd start puts it in the
        # odd bank at w_addr / 2 and the second word in the even bank one row on.
        m.d.comb += [
            banks[0].w_addr.eq((self.w_addr >> 1) + odd_start),
            banks[0].w_data.eq(Mux(odd_start, second, first)),
            banks[0].w_en.eq(Mux(odd_start, self.w_en[1], self.w_en[0])),
            banks[1].w_addr.eq(self.w_addr >> 1),
            banks[1].w_data.eq(Mux(odd_start, first, second)),
            banks[1].w_en.eq(Mux(odd_start, self.w_en[0], self.w_en[1])),
        ]
        read_odd = Signal()
        with m.If(self.r_en):
            m.d.sync += read_odd.eq(self.r_addr[0])
        for bank in banks:
            m.d.comb += [bank.r_addr.eq(self.r_addr >> 1), bank.r_en.eq(self.r_en)]
        m.d.comb += self.r_data.eq(Mux(read_odd, banks[1].r_data, banks[0].r_data))
        return m
