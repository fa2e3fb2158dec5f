"""The hardware/software contract: defined here once, imported by sim/ (golden model), hw/ (RTL) and host/.

It fixes (docs/architecture.md, "The contract" and "Decisions", explains each choice against thesis sections
3.5 and 3.8):

* :class:`HardwareConfig` — array shapes and memory sizes (thesis defaults: PE1 8x16, PE2 16x8, PE3 16 lanes,
  128-bit AXI). The RTL is generated from it, the compiler checks programs against it, and the host compares
  it with what the bitstream reports in the ``HWCFG*`` registers.
* DRAM layout — every tensor is dense, row-major (C order), little-endian **int16**, its base aligned to
  :data:`TENSOR_ALIGN` bytes. 8-bit activations are stored sign/zero-extended in int16 ("in forward
  propagation only the 8 LSB are used", section 3.4.3).
* The instruction (descriptor) encoding — 64-byte descriptors in a ring in DRAM; the device writes each one's
  status, statistics and cycle count back into its last 32 bytes. The device reads the ring one descriptor
  ahead (the fetch of ``PC + 1`` overlaps instruction ``PC``), so no instruction may write words 0-7 of a
  descriptor of its own program.
* Weight and bias memory images — 4-bit weights packed 16 to a 64-bit word, 8-bit biases 16 to a 128-bit word.
* The AXI4-Lite register map (:data:`REGISTERS`).

Instruction semantics (the golden executor in ``sim/executor.py`` is their executable definition). ``R`` is
``saturate(round_shift(acc, shift), out_fmt)`` from ``sim/formats.py``; accumulation is exact.

========  ===========================================================================  ==========================
opcode    result                                                                       thesis
========  ===========================================================================  ==========================
PE1       ``dst[a,d]   = R(sum_{b,c} A[a,b,c] * W[b,d,c])``                              abc x bdc -> ad (3.5.2)
PE2       ``dst[a,d,c] = R(sum_b A[a,b,c] * W[b,d])``                                  abc x bd -> adc
PE3       ``dst[d,c]   = R(sum_a B[a,d] * A[a,c])`` (+ old ``dst`` if ACC)                 outer product, batch-summed
ACT_FWD   ``dst[a,c]   = R(sat16(A[a,c] + round_shift(bias[c], bias_shift)))``             bias + eq. 3.7
ACT_BWD   ``dst[a,c]   = B[a,c] if mask(z) else 0``, z recomputed from A and bias as above  eq. 3.8
REDUCE    ``dst[c]     = R(sum_a A[a,c])``                                                  bias gradient
LOAD_W    ``a`` 64-bit words from ``src_a`` into weight memory at word ``wofs``
LOAD_B    ``a`` 128-bit words from ``src_a`` into bias memory at word ``bofs``
END       stop: the program is done
========  ===========================================================================  ==========================

PE3's operands are row-strided (``stride_a``, ``stride_b`` in elements), which lets one instruction pick a
(n_d x m_d) block of the full weight gradient out of batch-major activations and gradients (eq. 3.15's
``n1 m1 ... nd md`` layout, see ``sim/compiler.py``); all other operands are dense. With ``Flag.CHUNKS`` PE3
stores its result chunk-major, ``dst[c // 16][d][c % 16]``: each 16-column chunk (one pass of the 16 lanes)
as one contiguous ``d x 16`` block, which is how consecutive blocks of the weight gradient lie in memory when
the last input mode is 16 (one instruction then forms several blocks; ``ACC`` reads the old ``dst`` in the
same order).

PE3's ``b`` counts row groups ``G`` in bits 7:0 (contract 1.2) and column groups ``H`` in bits 15:8
(contract 1.3); 0 and 1 both mean one. The instruction is the ``H G`` single-group instructions
:meth:`Descriptor.pe3_blocks` lists, run in order, column groups outer: block ``(h, g)`` takes the ``c``
columns of ``A`` after column group ``h - 1``'s (``src_a + 2 h c``), the ``d`` columns of ``B`` after row
group ``g - 1``'s (``src_b + 2 g d``), and stores its ``d x c`` result right after the previous block's
(``dst + 2 (h G + g) d c``) in the layout the flags say. So one instruction forms a run of weight-gradient
blocks that differ in an ``n`` digit (row groups) and in the ``m`` digit outside it (column groups), and the
unit overlaps one block's drain with the next one's sweep as it does between chunks. Legal when
``stride_b >= G d``, ``stride_a >= H c`` and, once ``G > 1``, ``d % 16 == 0`` (every group's ``B`` starts on
an operand boundary). The result must not overlap the operands: the unit reads ahead of its writes.
"""

from __future__ import annotations

import enum
import functools
import struct
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from .formats import Format

__all__ = [
    "CONTRACT_VERSION", "HardwareConfig", "DEFAULT_CONFIG", "Opcode", "OutFormat", "Flag", "PE3_FLAGS", "ErrorCode",
    "Descriptor", "DESCRIPTOR_BYTES", "DescriptorError", "encode_program", "decode_program", "instruction_macs",
    "pe3_row_groups", "pe3_column_groups", "pe3_block_count", "pe3_group_field", "PE3_GROUPS_MAX",
    "read_writeback", "Writeback",
    "TENSOR_ALIGN", "ELEMENT_BYTES", "WMEM_LANES", "BMEM_LANES", "pack_weight_words", "unpack_weight_words",
    "pack_bias_words", "unpack_bias_words", "pe2_row_pitch",
    "check_descriptor", "weight_tile_words", "OPERAND_ALIGN",
    "Register", "REGISTERS", "REG", "CTRL_START", "CTRL_RESET", "CTRL_IRQ_ENABLE",
    "STATUS_BUSY", "STATUS_DONE", "STATUS_ERROR", "DEVICE_ID", "FIELD_MAX",
]

CONTRACT_VERSION = (1, 3)      # 1.1: Flag.CHUNKS; 1.2: PE3 row groups (field b); 1.3: PE3 column groups


# ---------------------------------------------------------------------------------------------------------
# DRAM layout
ELEMENT_BYTES = 2          # every tensor element in DRAM is an int16
TENSOR_ALIGN = 64          # base address alignment of every tensor and of the descriptor ring (a cache line)
OPERAND_ALIGN = 32         # PE/VEC operand addresses: one 16-element run
WMEM_LANES = 16            # weights per weight-memory word (and the array width)
BMEM_LANES = 16            # biases per bias-memory word
FIELD_MAX = 0xFFFF         # sizes a, b, c, d and strides are 16-bit fields


@dataclass(frozen=True)
class HardwareConfig:
    """Array shapes and memory sizes of one accelerator build (defaults: thesis section 3.5.2).

    The numbers that bound a legal instruction live here; ``check_*`` methods of the compiler and the
    executor's instruction checks read them, so a program that passes here runs on the RTL built from the
    same config.
    """

    pe1_rows: int = 8          # parallel along a (one accumulator per row)
    pe1_cols: int = 16         # parallel along c (the contracted last dimension)
    pe2_rows: int = 8          # parallel along d (weights shared along a row)
    pe2_cols: int = 16         # parallel along c (data shared along a column)
    pe3_lanes: int = 16        # parallel along c
    vec_lanes: int = 16        # bias / activation / reduce unit
    axi_data_bits: int = 128   # like the Zynq UltraScale+ HP ports
    wmem_words: int = 4096     # weight memory: words of WMEM_LANES 4-bit weights (64K weights)
    bmem_words: int = 64       # bias memory: words of BMEM_LANES 8-bit biases (1024 biases)
    pe1_buf_elems: int = 4096  # one ping-pong half of PE1: holds A[a:a+rows, :, :], so rows*b*c <= this
    pe2_buf_rows: int = 512    # one ping-pong half of PE2: holds A[a, :, c:c+cols], so b <= this
    pe2_acc_depth: int = 64    # accumulator memory per PE2 multiplier: d <= rows * depth (512: layer 2 dx)
    pe3_max_d: int = 256       # PE3 caches one row of B[a, :]: d <= this

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"HardwareConfig.{f.name} must be a positive int, not {value!r}")
        if self.axi_data_bits not in (32, 64, 128, 256):
            raise ValueError(f"HardwareConfig.axi_data_bits must be 32, 64, 128 or 256, not {self.axi_data_bits}")
        for name in ("pe1_cols", "pe2_cols", "pe3_lanes", "vec_lanes"):
            if getattr(self, name) != WMEM_LANES:
                raise ValueError(f"HardwareConfig.{name} must equal the array width {WMEM_LANES} "
                                 f"(memory words and DRAM alignment are built around it), not {getattr(self, name)}")
        if self.pe1_buf_elems % (self.pe1_rows * self.pe1_cols):
            raise ValueError("HardwareConfig.pe1_buf_elems must be a multiple of pe1_rows * pe1_cols")

    @property
    def lanes(self) -> int:
        return WMEM_LANES

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.pe1_rows * self.pe1_cols

    @property
    def pe1_row_elems(self) -> int:
        """Largest ``b c`` of a PE1 instruction: one row ``A[a, :, :]`` of a block of ``pe1_rows`` in a half."""
        return self.pe1_buf_elems // self.pe1_rows

    @property
    def pe1_row_words(self) -> int:
        """``pe1_row_elems`` in words of ``pe1_cols`` elements (the depth of PE1's input half)."""
        return self.pe1_row_elems // self.pe1_cols

    def as_dict(self) -> dict:
        return asdict(self)

    def hwcfg_registers(self) -> dict[str, int]:
        """The values the RTL exposes in its read-only HWCFG registers (the host checks them at load)."""
        return {
            "HWCFG0": self.pe1_rows | self.pe1_cols << 8 | self.pe2_rows << 16 | self.pe2_cols << 24,
            "HWCFG1": self.pe3_lanes | self.vec_lanes << 8 | (self.axi_data_bits // 8) << 16,
            "HWCFG2": self.wmem_words | self.bmem_words << 16,
            "HWCFG3": self.pe1_buf_elems | self.pe2_buf_rows << 16,
            "HWCFG4": self.pe2_acc_depth | self.pe3_max_d << 16,
        }


DEFAULT_CONFIG = HardwareConfig()

class Opcode(enum.IntEnum):
    END = 0
    PE1 = 1
    PE2 = 2
    PE3 = 3
    ACT_FWD = 4
    ACT_BWD = 5
    REDUCE = 6
    LOAD_W = 7
    LOAD_B = 8


class OutFormat(enum.IntEnum):
    """Destination format of a rescale: the saturation range (values are stored as int16 either way)."""
    S16 = 0
    S8 = 1
    U8 = 2

    def format(self, exp: int = 0) -> Format:
        return {OutFormat.S16: Format(16, True, exp), OutFormat.S8: Format(8, True, exp),
                OutFormat.U8: Format(8, False, exp)}[self]

    @classmethod
    def of(cls, fmt: Format) -> "OutFormat":
        for member, (bits, signed) in ((cls.S16, (16, True)), (cls.S8, (8, True)), (cls.U8, (8, False))):
            if (fmt.bits, fmt.signed) == (bits, signed):
                return member
        raise ValueError(f"no destination format for {fmt}: the device writes s16, s8 or u8")


class Flag(enum.IntFlag):
    NONE = 0
    ACC = 1        # PE3 only: add the rescaled result to what dst holds (saturating)
    CHUNKS = 2     # PE3 only: store dst chunk-major, dst[c // 16][d][c % 16] (see the module docstring)


PE3_FLAGS = Flag.ACC | Flag.CHUNKS     # the flags PE3 accepts, alone or together; no other opcode takes any


class ErrorCode(enum.IntEnum):
    """Why the device stopped with STATUS.ERROR (also written into the failing descriptor's write-back)."""
    NONE = 0
    ILLEGAL_OPCODE = 1
    BAD_SHAPE = 2        # a size is zero, not a multiple of the array width, or exceeds a buffer
    BAD_ALIGN = 3        # an address or stride breaks the alignment rules
    MEM_RANGE = 4        # weight / bias memory access outside the memory
    AXI_ERROR = 5        # SLVERR/DECERR on the AXI master
    RESERVED = 6         # a reserved field or flag is not zero
    BAD_FORMAT = 7       # out_fmt is not one of OutFormat
    NO_END = 8           # PROG_COUNT descriptors ran without an END


class DescriptorError(ValueError):
    """A descriptor cannot be encoded, or decodes to something illegal; ``code`` is what the device reports."""

    def __init__(self, message: str, code: "ErrorCode" = None):
        super().__init__(message)
        self.code = ErrorCode.RESERVED if code is None else code


# Descriptor: 16 little-endian u32 words. Words 0-7 are written by the host; words 8-15 belong to the device.
#   w0  [3:0] opcode  [7:4] reserved  [15:8] flags  [17:16] out_fmt  [23:18] reserved  [31:24] shift (int8)
#   w1  a | b << 16          w2  c | d << 16
#   w3  src_a                w4  src_b                w5  dst           (byte addresses, 32-bit)
#   w6  wofs (u16) | bofs (u8) << 16 | bias_shift (int8) << 24
#   w7  stride_a | stride_b << 16  (elements)
#   w8  status: bit0 done, [15:8] error code     w9  saturated outputs
#   w10-11  sum of |outputs| (u64)               w12  cycles    w13  cycles stalled on AXI    w14-15 reserved
DESCRIPTOR_BYTES = 64
DESCRIPTOR_WORDS = 16
WRITEBACK_WORD = 8
_SIZE_FIELDS = ("a", "b", "c", "d")


@dataclass(frozen=True)
class Descriptor:
    """One instruction. Sizes are in elements, addresses in bytes, ``wofs``/``bofs`` in memory words."""

    opcode: Opcode
    a: int = 0
    b: int = 0
    c: int = 0
    d: int = 0
    src_a: int = 0
    src_b: int = 0
    dst: int = 0
    wofs: int = 0
    bofs: int = 0
    shift: int = 0
    bias_shift: int = 0
    out_fmt: OutFormat = OutFormat.S16
    flags: Flag = Flag.NONE
    stride_a: int = 0
    stride_b: int = 0

    def __post_init__(self):
        object.__setattr__(self, "opcode", Opcode(self.opcode))
        object.__setattr__(self, "out_fmt", OutFormat(self.out_fmt))
        object.__setattr__(self, "flags", Flag(self.flags))
        for name, bits in (("a", 16), ("b", 16), ("c", 16), ("d", 16), ("src_a", 32), ("src_b", 32),
                           ("dst", 32), ("wofs", 16), ("bofs", 8), ("stride_a", 16), ("stride_b", 16)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 0 <= value < (1 << bits):
                raise DescriptorError(f"{self.opcode.name}: field {name}={value!r} does not fit {bits} unsigned bits")
        for name in ("shift", "bias_shift"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not -128 <= value <= 127:
                raise DescriptorError(f"{self.opcode.name}: field {name}={value!r} does not fit a signed byte")

    def encode(self) -> bytes:
        words = [0] * DESCRIPTOR_WORDS
        words[0] = int(self.opcode) | int(self.flags) << 8 | int(self.out_fmt) << 16 | (self.shift & 0xFF) << 24
        words[1] = self.a | self.b << 16
        words[2] = self.c | self.d << 16
        words[3], words[4], words[5] = self.src_a, self.src_b, self.dst
        words[6] = self.wofs | self.bofs << 16 | (self.bias_shift & 0xFF) << 24
        words[7] = self.stride_a | self.stride_b << 16
        return struct.pack("<16I", *words)

    @classmethod
    def decode(cls, raw: bytes) -> "Descriptor":
        """Decode host-written words 0-7 (the device-owned write-back words 8-15 are ignored)."""
        return _decode_cached(bytes(raw[:DESCRIPTOR_BYTES // 2]), len(raw))

    @classmethod
    def _decode(cls, raw: bytes, length: int) -> "Descriptor":
        if length != DESCRIPTOR_BYTES:
            raise DescriptorError(f"a descriptor is {DESCRIPTOR_BYTES} bytes, got {len(raw)}")
        words = struct.unpack("<8I", raw)
        w0 = words[0]
        opcode = w0 & 0xF
        if opcode not in Opcode._value2member_map_:
            raise DescriptorError(f"illegal opcode {opcode} (word 0 = {w0:#010x})", ErrorCode.ILLEGAL_OPCODE)
        if w0 & 0x00FC00F0:
            raise DescriptorError(f"reserved bits of word 0 are set ({w0:#010x})")
        flags = (w0 >> 8) & 0xFF
        if flags & ~int(PE3_FLAGS):
            raise DescriptorError(f"unknown flags {flags:#04x}")
        out_fmt = (w0 >> 16) & 0x3
        if out_fmt not in OutFormat._value2member_map_:
            raise DescriptorError(f"illegal out_fmt {out_fmt}", ErrorCode.BAD_FORMAT)
        return cls(opcode=Opcode(opcode), flags=Flag(flags), out_fmt=OutFormat(out_fmt),
                   shift=_signed8(w0 >> 24), a=words[1] & 0xFFFF, b=words[1] >> 16, c=words[2] & 0xFFFF,
                   d=words[2] >> 16, src_a=words[3], src_b=words[4], dst=words[5], wofs=words[6] & 0xFFFF,
                   bofs=(words[6] >> 16) & 0xFF, bias_shift=_signed8(words[6] >> 24),
                   stride_a=words[7] & 0xFFFF, stride_b=words[7] >> 16)

    def macs(self) -> int:
        """Useful multiply-accumulates of this instruction (what utilization is measured against)."""
        return instruction_macs(self.opcode, self.a, self.b, self.c, self.d)

    @property
    def pe3_groups(self) -> int:
        """PE3's row groups ``G`` (:func:`pe3_row_groups` of field ``b``)."""
        return pe3_row_groups(self.b)

    @property
    def pe3_column_groups(self) -> int:
        """PE3's column groups ``H`` (:func:`pe3_column_groups` of field ``b``)."""
        return pe3_column_groups(self.b)

    def pe3_blocks(self) -> list["Descriptor"]:
        """A PE3 instruction as the single-group instructions it is defined to equal, in the order it runs them:
        block ``(h, g)`` (column groups outer) reads ``A`` columns ``[h c, (h + 1) c)`` and ``B`` columns
        ``[g d, (g + 1) d)`` and writes the ``d c`` elements after the previous block's result."""
        if self.opcode != Opcode.PE3:
            raise ValueError(f"pe3_blocks: {self.opcode.name} is not PE3")
        G, H = self.pe3_groups, self.pe3_column_groups
        return [replace(self, b=0, src_a=self.src_a + 2 * h * self.c, src_b=self.src_b + 2 * g * self.d,
                        dst=self.dst + 2 * (h * G + g) * self.d * self.c)
                for h in range(H) for g in range(G)]


PE3_GROUPS_MAX = 0xFF          # row groups and column groups each have 8 bits of PE3's field b


def pe3_row_groups(b: int) -> int:
    """PE3's row groups ``G`` from bits 7:0 of its field ``b``: 0 and 1 both mean one (before contract 1.2 PE3
    left ``b`` unused, so its programs have 0 there)."""
    return max(b & PE3_GROUPS_MAX, 1)


def pe3_column_groups(b: int) -> int:
    """PE3's column groups ``H`` from bits 15:8 of its field ``b`` (contract 1.3): 0 and 1 both mean one."""
    return max(b >> 8, 1)


def pe3_block_count(b: int) -> int:
    """How many single-group blocks (``d x c`` results) a PE3 instruction with field ``b`` forms: ``H G``."""
    return pe3_row_groups(b) * pe3_column_groups(b)


def pe3_group_field(row_groups: int = 1, column_groups: int = 1) -> int:
    """PE3's field ``b`` for ``G`` row groups and ``H`` column groups (0 when both are one)."""
    for name, value in (("row_groups", row_groups), ("column_groups", column_groups)):
        if not isinstance(value, (int, np.integer)) or not 1 <= value <= PE3_GROUPS_MAX:
            raise DescriptorError(f"PE3: {name}={value!r} must be in [1, {PE3_GROUPS_MAX}]", ErrorCode.BAD_SHAPE)
    if row_groups == column_groups == 1:
        return 0
    return row_groups | (column_groups << 8 if column_groups > 1 else 0)   # a 1.2 program's b when H is one


def instruction_macs(opcode, a: int, b: int, c: int, d: int) -> int:
    """Useful multiply-accumulates of an instruction with these sizes (PE3: ``b`` holds its groups)."""
    opcode = int(opcode)
    if opcode in (Opcode.PE1, Opcode.PE2):
        return a * b * c * d
    if opcode == Opcode.PE3:
        return a * c * d * pe3_block_count(b)
    return 0


@functools.lru_cache(maxsize=16384)
def _decode_cached(raw: bytes, length: int) -> Descriptor:
    # Programs are re-run every training step: decoding each distinct descriptor once is enough.
    return Descriptor._decode(raw, length)


def _signed8(value: int) -> int:
    value &= 0xFF
    return value - 256 if value & 0x80 else value


def encode_program(descriptors) -> bytes:
    return b"".join(d.encode() for d in descriptors)


def decode_program(raw: bytes) -> list[Descriptor]:
    if len(raw) % DESCRIPTOR_BYTES:
        raise DescriptorError(f"program length {len(raw)} is not a multiple of {DESCRIPTOR_BYTES} bytes")
    return [Descriptor.decode(raw[i:i + DESCRIPTOR_BYTES]) for i in range(0, len(raw), DESCRIPTOR_BYTES)]


@dataclass(frozen=True)
class Writeback:
    """What the device wrote into one descriptor after running it."""
    done: bool
    error: ErrorCode
    saturated: int
    sum_abs: int
    cycles: int
    stall_cycles: int

    def pack(self) -> bytes:
        return struct.pack("<IIQII8x", int(self.done) | int(self.error) << 8, self.saturated, self.sum_abs,
                           self.cycles, self.stall_cycles)

    @classmethod
    def unpack(cls, raw: bytes) -> "Writeback":
        status, saturated, sum_abs, cycles, stall = struct.unpack("<IIQII8x", raw)
        return cls(done=bool(status & 1), error=ErrorCode((status >> 8) & 0xFF), saturated=saturated,
                   sum_abs=sum_abs, cycles=cycles, stall_cycles=stall)


def read_writeback(ring: bytes, index: int) -> Writeback:
    start = index * DESCRIPTOR_BYTES + WRITEBACK_WORD * 4
    return Writeback.unpack(bytes(ring[start:start + DESCRIPTOR_BYTES - WRITEBACK_WORD * 4]))


# ---------------------------------------------------------------------------------------------------------
# Weight and bias memory images

def pe2_row_pitch(d: int, rows: int = DEFAULT_CONFIG.pe2_rows) -> int:
    """PE2 weight tiles store W[b, :] in rows padded to a multiple of the PE2 row count (8)."""
    return -(-d // rows) * rows


def pack_weight_words(values) -> np.ndarray:
    """4-bit two's-complement weights (ints in [-8, 7]) -> little-endian 64-bit words, element i in bits 4i..4i+3.

    The input is padded with zeros to a whole number of words. Returns uint64 words.
    """
    values = np.asarray(values, dtype=np.int64).ravel()
    if values.size and (values.min() < -8 or values.max() > 7):
        raise ValueError(f"weights must be 4-bit integers in [-8, 7]; got range [{values.min()}, {values.max()}]")
    n_words = -(-values.size // WMEM_LANES)
    nibbles = np.zeros(n_words * WMEM_LANES, dtype=np.uint64)
    nibbles[:values.size] = (values & 0xF).astype(np.uint64)
    nibbles = nibbles.reshape(n_words, WMEM_LANES)
    shifts = (np.arange(WMEM_LANES, dtype=np.uint64) * np.uint64(4))
    return np.bitwise_or.reduce(nibbles << shifts, axis=1).astype(np.uint64)


def unpack_weight_words(words) -> np.ndarray:
    words = np.asarray(words, dtype=np.uint64).ravel()
    shifts = np.arange(WMEM_LANES, dtype=np.uint64) * np.uint64(4)
    nibbles = ((words[:, None] >> shifts) & np.uint64(0xF)).astype(np.int64)
    return np.where(nibbles >= 8, nibbles - 16, nibbles).ravel()


def pack_bias_words(values) -> np.ndarray:
    """8-bit signed biases -> 16-byte words as a uint8 array of shape (n_words, 16)."""
    values = np.asarray(values, dtype=np.int64).ravel()
    if values.size and (values.min() < -128 or values.max() > 127):
        raise ValueError(f"biases must be 8-bit integers; got range [{values.min()}, {values.max()}]")
    n_words = -(-values.size // BMEM_LANES)
    out = np.zeros(n_words * BMEM_LANES, dtype=np.uint8)
    out[:values.size] = (values & 0xFF).astype(np.uint8)
    return out.reshape(n_words, BMEM_LANES)


def unpack_bias_words(words) -> np.ndarray:
    return np.asarray(words, dtype=np.uint8).ravel().astype(np.int8).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# AXI4-Lite register map (32-bit registers, byte offsets)

@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str   # "ro", "rw", "w1c" (write 1 to clear), "wo" (self-clearing strobes)
    doc: str


DEVICE_ID = 0x55545231   # "UTR1"
CTRL_START = 1 << 0      # write 1: fetch descriptors from PROG_ADDR (ignored while busy)
CTRL_RESET = 1 << 1      # write 1: abort, clear status, counters and the PC (weights and biases are kept)
CTRL_IRQ_ENABLE = 1 << 2
STATUS_BUSY = 1 << 0
STATUS_DONE = 1 << 1     # W1C
STATUS_ERROR = 1 << 2    # W1C; STATUS[15:8] holds the ErrorCode

REGISTERS = (
    Register("ID", 0x00, "ro", "constant DEVICE_ID"),
    Register("VERSION", 0x04, "ro", "contract version: major << 16 | minor"),
    Register("CTRL", 0x08, "rw", "bit0 START (strobe), bit1 RESET (strobe), bit2 IRQ_ENABLE"),
    Register("STATUS", 0x0C, "w1c", "bit0 BUSY (ro), bit1 DONE, bit2 ERROR, [15:8] error code"),
    Register("PROG_ADDR", 0x10, "rw", "byte address of the descriptor ring (64-byte aligned)"),
    Register("PROG_COUNT", 0x14, "rw", "descriptors in the ring; running past them without END is an error"),
    Register("PC", 0x18, "ro", "index of the descriptor being (or last) executed"),
    Register("CYCLES_LO", 0x20, "ro", "cycles busy since START, low word"),
    Register("CYCLES_HI", 0x24, "ro", "cycles busy since START, high word"),
    Register("PE1_BUSY", 0x28, "ro", "cycles PE1's array computed"),
    Register("PE2_BUSY", 0x2C, "ro", "cycles PE2's array computed"),
    Register("PE3_BUSY", 0x30, "ro", "cycles PE3's lanes computed"),
    Register("VEC_BUSY", 0x34, "ro", "cycles the vector unit computed"),
    Register("LOAD_BUSY", 0x38, "ro", "cycles spent loading weight / bias memory"),
    Register("AXI_STALL", 0x3C, "ro", "cycles a unit waited on the AXI master"),
    Register("HWCFG0", 0x40, "ro", "pe1_rows | pe1_cols << 8 | pe2_rows << 16 | pe2_cols << 24"),
    Register("HWCFG1", 0x44, "ro", "pe3_lanes | vec_lanes << 8 | axi_data_bytes << 16"),
    Register("HWCFG2", 0x48, "ro", "wmem_words | bmem_words << 16"),
    Register("HWCFG3", 0x4C, "ro", "pe1_buf_elems | pe2_buf_rows << 16"),
    Register("HWCFG4", 0x50, "ro", "pe2_acc_depth | pe3_max_d << 16"),
)
REG = {r.name: r.offset for r in REGISTERS}


# ---------------------------------------------------------------------------------------------------------
# Legality: which descriptors a device built from `cfg` runs; anything else stops it with the ErrorCode.

def weight_tile_words(desc: Descriptor, cfg: HardwareConfig = DEFAULT_CONFIG) -> int:
    """Weight-memory words the instruction reads from ``wofs`` on (0 for instructions without weights)."""
    if desc.opcode == Opcode.PE1:
        return desc.b * desc.d * desc.c // WMEM_LANES
    if desc.opcode == Opcode.PE2:
        return -(-desc.b * pe2_row_pitch(desc.d, cfg.pe2_rows) // WMEM_LANES)
    return 0


def check_descriptor(desc: Descriptor, cfg: HardwareConfig = DEFAULT_CONFIG) -> ErrorCode:
    """The error a device built from ``cfg`` reports for ``desc`` before running it (NONE if legal).

    Checked in this order, the first failure wins: shape, alignment, memory range, flags.
    """
    op = desc.opcode
    if op == Opcode.END:
        return ErrorCode.NONE
    lanes = WMEM_LANES
    if op in (Opcode.LOAD_W, Opcode.LOAD_B):
        if desc.a == 0:
            return ErrorCode.BAD_SHAPE
        if desc.src_a % OPERAND_ALIGN:
            return ErrorCode.BAD_ALIGN
        if op == Opcode.LOAD_W and desc.wofs + desc.a > cfg.wmem_words:
            return ErrorCode.MEM_RANGE
        if op == Opcode.LOAD_B and desc.bofs + desc.a > cfg.bmem_words:
            return ErrorCode.MEM_RANGE
        return ErrorCode.RESERVED if desc.flags else ErrorCode.NONE

    sizes = {"PE1": "abcd", "PE2": "abcd", "PE3": "acd", "ACT_FWD": "ac", "ACT_BWD": "ac", "REDUCE": "ac"}[op.name]
    if any(getattr(desc, s) == 0 for s in sizes) or desc.c % lanes:
        return ErrorCode.BAD_SHAPE
    if op == Opcode.PE1 and desc.b * desc.c > cfg.pe1_row_elems:
        return ErrorCode.BAD_SHAPE
    if op == Opcode.PE2 and (desc.b > cfg.pe2_buf_rows or desc.d > cfg.pe2_rows * cfg.pe2_acc_depth):
        return ErrorCode.BAD_SHAPE
    if op == Opcode.PE3 and (desc.d > cfg.pe3_max_d or desc.stride_a < desc.pe3_column_groups * desc.c
                             or desc.stride_b < desc.pe3_groups * desc.d):
        return ErrorCode.BAD_SHAPE

    addresses = [desc.src_a, desc.dst]
    if op in (Opcode.PE3, Opcode.ACT_BWD):
        addresses.append(desc.src_b)
    if any(addr % OPERAND_ALIGN for addr in addresses):
        return ErrorCode.BAD_ALIGN
    if op == Opcode.PE3 and (desc.stride_a % lanes or desc.stride_b % lanes
                             or desc.pe3_groups > 1 and desc.d % lanes):     # group g's B: src_b + 2 g d
        return ErrorCode.BAD_ALIGN

    if op in (Opcode.PE1, Opcode.PE2) and desc.wofs + weight_tile_words(desc, cfg) > cfg.wmem_words:
        return ErrorCode.MEM_RANGE
    if op in (Opcode.ACT_FWD, Opcode.ACT_BWD) and desc.bofs + desc.c // lanes > cfg.bmem_words:
        return ErrorCode.MEM_RANGE

    if desc.flags and not (op == Opcode.PE3 and not desc.flags & ~PE3_FLAGS):
        return ErrorCode.RESERVED
    return ErrorCode.NONE
