"""Bias memory: ``bmem_words`` words of 16 signed 8-bit biases (128 bits, bias ``i`` in byte ``i``), the packing of
``sim.contract.pack_bias_words``; on chip for the whole run like the weights (thesis section 3.5.3).

LOAD_B writes it one word per cycle; the vector unit reads it combinationally (it is small: 64 words fit in
distributed RAM), so the bias of a column is ready in the same cycle as the data beat it is added to.
"""

from amaranth import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..sim.contract import BMEM_LANES

__all__ = ["BiasMemory", "BIAS_WORD_BITS"]

BIAS_WORD_BITS = 8 * BMEM_LANES


class BiasMemory(wiring.Component):
    def __init__(self, words: int):
        if words <= 0:
            raise ValueError(f"BiasMemory: words must be positive, not {words}")
        self.words = words
        super().__init__({
            "w_addr": In(range(words)), "w_data": In(BIAS_WORD_BITS), "w_en": In(1),
            "r_addr": In(range(words)), "r_data": Out(BIAS_WORD_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=BIAS_WORD_BITS, depth=self.words, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="comb")
        m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                     rp.addr.eq(self.r_addr), self.r_data.eq(rp.data)]
        return m
