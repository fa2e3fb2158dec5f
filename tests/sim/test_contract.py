"""The hardware/software contract (sim/contract.py): encode/decode round trips, legality, memory images."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ultratrain.sim.contract import (DEFAULT_CONFIG, DESCRIPTOR_BYTES, REG, REGISTERS, Descriptor, DescriptorError,
                                     ErrorCode, Flag, HardwareConfig, Opcode, OutFormat, Writeback,
                                     check_descriptor, decode_program, encode_program, pack_bias_words,
                                     pack_weight_words, pe3_group_field, unpack_bias_words, unpack_weight_words)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
s8 = st.integers(-128, 127)

descriptors = st.builds(Descriptor, opcode=st.sampled_from(list(Opcode)), a=u16, b=u16, c=u16, d=u16,
                        src_a=u32, src_b=u32, dst=u32, wofs=u16, bofs=st.integers(0, 255), shift=s8,
                        bias_shift=s8, out_fmt=st.sampled_from(list(OutFormat)),
                        flags=st.sampled_from([Flag.NONE, Flag.ACC]), stride_a=u16, stride_b=u16)


@given(descriptors)
def test_descriptor_roundtrip(desc):
    raw = desc.encode()
    assert len(raw) == DESCRIPTOR_BYTES
    assert Descriptor.decode(raw) == desc
    assert raw[32:] == bytes(32)          # the write-back half is the device's


@given(st.lists(descriptors, max_size=5))
def test_program_roundtrip(program):
    assert decode_program(encode_program(program)) == program


def test_decode_ignores_writeback_words():
    desc = Descriptor(Opcode.PE1, a=1, b=1, c=16, d=1)
    raw = bytearray(desc.encode())
    raw[32:] = Writeback(True, ErrorCode.NONE, 3, 12345, 99, 7).pack()
    assert Descriptor.decode(bytes(raw)) == desc


def test_writeback_roundtrip():
    wb = Writeback(True, ErrorCode.BAD_SHAPE, 5, (1 << 40) + 3, 1234, 56)
    assert Writeback.unpack(wb.pack()) == wb and len(wb.pack()) == 32


@pytest.mark.parametrize("word0, code", [(0x0000000F, ErrorCode.ILLEGAL_OPCODE), (0x00000010, ErrorCode.RESERVED),
                                         (0x00000401, ErrorCode.RESERVED), (0x00030001, ErrorCode.BAD_FORMAT),
                                         (0x00040001, ErrorCode.RESERVED)])
def test_corrupt_descriptors_are_rejected(word0, code):
    raw = word0.to_bytes(4, "little") + bytes(60)
    with pytest.raises(DescriptorError) as err:
        Descriptor.decode(raw)
    assert err.value.code == code


@pytest.mark.parametrize("field, value", [("a", 1 << 16), ("shift", 128), ("bias_shift", -129), ("bofs", 256),
                                          ("src_a", 1 << 32), ("d", -1)])
def test_fields_out_of_range_are_rejected(field, value):
    with pytest.raises(DescriptorError, match=field):
        Descriptor(Opcode.PE1, **{field: value})


def test_decode_wrong_length():
    with pytest.raises(DescriptorError, match="64 bytes"):
        Descriptor.decode(bytes(32))
    with pytest.raises(DescriptorError, match="multiple"):
        decode_program(bytes(65))


LEGAL_PE1 = dict(opcode=Opcode.PE1, a=9, b=2, c=32, d=5, src_a=0x1000, dst=0x2000)


@pytest.mark.parametrize("change, code", [
    ({}, ErrorCode.NONE),
    ({"c": 24}, ErrorCode.BAD_SHAPE),                      # not a multiple of the array width
    ({"a": 0}, ErrorCode.BAD_SHAPE),
    ({"b": 17}, ErrorCode.BAD_SHAPE),                      # 8 * 17 * 32 > PE1 buffer
    ({"src_a": 0x1010}, ErrorCode.BAD_ALIGN),
    ({"wofs": 4095}, ErrorCode.MEM_RANGE),
    ({"flags": Flag.ACC}, ErrorCode.RESERVED),             # ACC is PE3's only
    ({"flags": Flag.CHUNKS}, ErrorCode.RESERVED),          # and so is CHUNKS
])
def test_pe1_legality(change, code):
    assert check_descriptor(Descriptor(**{**LEGAL_PE1, **change})) == code


def test_other_legality_rules():
    cfg = DEFAULT_CONFIG
    pe2 = Descriptor(Opcode.PE2, a=1, b=cfg.pe2_buf_rows + 1, c=16, d=8)
    assert check_descriptor(pe2) == ErrorCode.BAD_SHAPE
    pe2 = Descriptor(Opcode.PE2, a=1, b=4, c=16, d=cfg.pe2_rows * cfg.pe2_acc_depth + 1)
    assert check_descriptor(pe2) == ErrorCode.BAD_SHAPE
    pe3 = Descriptor(Opcode.PE3, a=4, c=16, d=16, stride_a=16, stride_b=24)
    assert check_descriptor(pe3) == ErrorCode.BAD_ALIGN
    for flags in (Flag.ACC, Flag.CHUNKS, Flag.ACC | Flag.CHUNKS):
        assert check_descriptor(Descriptor(Opcode.PE3, a=4, c=32, d=16, stride_a=32, stride_b=16,
                                           flags=flags)) == ErrorCode.NONE
        assert Descriptor.decode(Descriptor(Opcode.PE3, a=4, c=32, d=16, flags=flags).encode()).flags == flags
    # PE3 row groups (b): the G groups' B columns must fit in a row of B ...
    def pe3(b, d, stride_b):
        return check_descriptor(Descriptor(Opcode.PE3, a=4, b=b, c=32, d=d, stride_a=32, stride_b=stride_b))
    assert pe3(3, 16, 48) == ErrorCode.NONE and pe3(4, 16, 48) == ErrorCode.BAD_SHAPE
    # ... and each group's B columns start on an operand boundary: d % 16 == 0 once there are two groups.
    assert pe3(2, 8, 16) == ErrorCode.BAD_ALIGN and pe3(1, 8, 16) == ErrorCode.NONE
    # PE3 column groups (b[15:8], contract 1.3): the H groups' A columns must fit in a row of A; they need no
    # alignment of their own (c is a multiple of 16). Row groups count only b[7:0] now.
    def pe3_cols(H, stride_a, G=1):
        return check_descriptor(Descriptor(Opcode.PE3, a=4, b=pe3_group_field(G, H), c=32, d=16,
                                           stride_a=stride_a, stride_b=16 * G))
    assert pe3_cols(3, 96) == ErrorCode.NONE and pe3_cols(3, 80) == ErrorCode.BAD_SHAPE
    assert pe3_cols(2, 64, G=5) == ErrorCode.NONE and pe3_cols(2, 48, G=5) == ErrorCode.BAD_SHAPE
    assert pe3(0x100 | 3, 16, 48) == ErrorCode.NONE          # H = 1 written as 1: the same as b = 3
    grouped = Descriptor(Opcode.PE3, a=4, b=pe3_group_field(5, 7), c=32, d=16, stride_a=224, stride_b=80)
    assert (grouped.pe3_groups, grouped.pe3_column_groups, grouped.macs()) == (5, 7, 35 * 4 * 32 * 16)
    assert Descriptor.decode(grouped.encode()) == grouped
    assert pe3_group_field() == 0 and pe3_group_field(4) == 4 and pe3_group_field(1, 2) == 0x201
    for bad in ((0, 1), (1, 0), (256, 1), (1, 256), (2.0, 1)):
        with pytest.raises(DescriptorError, match="groups"):
            pe3_group_field(*bad)
    act = Descriptor(Opcode.ACT_FWD, a=2, c=16, bofs=cfg.bmem_words)
    assert check_descriptor(act) == ErrorCode.MEM_RANGE
    assert check_descriptor(Descriptor(Opcode.LOAD_W, a=cfg.wmem_words + 1)) == ErrorCode.MEM_RANGE
    assert check_descriptor(Descriptor(Opcode.END)) == ErrorCode.NONE


@given(st.lists(st.integers(-8, 7), max_size=100))
def test_weight_packing_roundtrip(values):
    words = pack_weight_words(values)
    assert words.dtype == np.uint64 and len(words) == -(-len(values) // 16)
    assert unpack_weight_words(words)[:len(values)].tolist() == values


def test_weight_packing_nibble_order():
    assert int(pack_weight_words([1, 2, -1])[0]) == 0xF21
    with pytest.raises(ValueError, match="4-bit"):
        pack_weight_words([8])


@given(st.lists(st.integers(-128, 127), max_size=40))
def test_bias_packing_roundtrip(values):
    assert unpack_bias_words(pack_bias_words(values))[:len(values)].tolist() == values


def test_register_map_is_consistent():
    offsets = [r.offset for r in REGISTERS]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
    assert len({r.name for r in REGISTERS}) == len(REGISTERS)
    assert set(DEFAULT_CONFIG.hwcfg_registers()) <= set(REG)


def test_hardware_config_validation():
    with pytest.raises(ValueError, match="pe1_rows"):
        HardwareConfig(pe1_rows=0)
    with pytest.raises(ValueError, match="array width"):
        HardwareConfig(pe2_cols=8)
