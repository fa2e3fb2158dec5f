"""Small products of descriptor fields, kept out of the DSP slices.

Every PE latches a few sizes at the start of an instruction (``b c``, ``d c / 16``, beats per block) and the
decoder checks memory ranges with products of the same fields. Written as ``*``, synthesis gives each one a
DSP48E2 of its own: Yosys put 10 of them beside the 272 data multipliers (282 against the thesis' 278,
Table 3.5). In every one of these products one factor is bounded by the legality rules of the contract
(sim/contract.py: ``b c <= pe1_row_elems`` for PE1, at most ``pe1_rows`` rows per block), so it
has only a few bits, and a sum of that many shifted copies of the other factor costs a few dozen LUTs.
"""

from amaranth import Mux, Value

__all__ = ["narrow_product"]


def narrow_product(wide, narrow) -> Value:
    """``wide * narrow`` as one shifted, masked copy of ``wide`` per bit of ``narrow``.

    Exact for any values; cheap (and DSP-free) only because the caller slices ``narrow`` to the few bits that
    the legality rules leave it, e.g. ``narrow_product(desc.b[:10], (desc.c >> 4)[:6])``.
    """
    wide, narrow = Value.cast(wide), Value.cast(narrow)
    if len(narrow) == 0:
        raise ValueError("narrow_product: the narrow factor has no bits")
    if narrow.shape().signed or wide.shape().signed:
        raise TypeError("narrow_product: both factors must be unsigned (sizes and counts)")
    terms = [Mux(narrow[i], wide << i, 0) for i in range(len(narrow))]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
