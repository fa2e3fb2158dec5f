"""The schedule compiler (sim/compiler.py) run by the golden executor through host/runtime.py.

Float mode checks the index arithmetic of every schedule against dense algebra and torch.autograd; fixed mode
checks the layer forward against an independent einsum chain with the same rescale rule.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from ultratrain.host.backends.emulated import EmulatedBackend
from ultratrain.host.runtime import NetworkRuntime
from ultratrain.sim.compiler import (NetworkSpec, ShapeError, TTLayerSpec, compile_network, thesis_table33_network)
from ultratrain.sim.contract import Flag, HardwareConfig, Opcode, OutFormat
from ultratrain.sim.formats import rescale, round_shift


def zeros_exps(spec):
    return [[0] * layer.d for layer in spec.layers], [0] * len(spec.layers)


def torch_dense(layer, cores):
    out = torch.ones(1, 1, 1, dtype=torch.float64)
    for k, core in enumerate(cores):
        R0, m, n, R1 = layer.core_shape(k)
        out = torch.einsum("ijr,rmns->imjns", out, core).reshape(out.shape[0] * m, out.shape[1] * n, R1)
    return out[:, :, 0]


def check_float_network(spec, batch, seed):
    rng = np.random.default_rng(seed)
    net = compile_network(spec, batch)
    rt = NetworkRuntime(net, EmulatedBackend(size=16 << 20, float_mode=True))
    cores = [[rng.normal(0, 0.5, layer.core_shape(k)) for k in range(layer.d)] for layer in spec.layers]
    biases = [rng.normal(0, 0.1, layer.out_features) for layer in spec.layers]
    we, be = zeros_exps(spec)
    rt.upload_parameters(cores, biases, we, be)
    x = rng.random((batch, spec.layers[0].in_features))
    logits = rt.forward(x, {}, we, be)

    # Reference 1: dense W reconstructed independently from the cores, float64.
    h = x
    for li, layer in enumerate(spec.layers):
        h = h @ layer.dense_weight(cores[li]) + biases[li]
        if layer.activation == "relu":
            h = np.maximum(h, 0)
    np.testing.assert_allclose(logits, h, rtol=1e-9, atol=1e-12 * np.abs(h).max())

    # Reference 2: torch.autograd for every factor and bias gradient.
    t_cores = [[torch.tensor(c, requires_grad=True) for c in layer_cores] for layer_cores in cores]
    t_bias = [torch.tensor(b, requires_grad=True) for b in biases]
    t_h = torch.tensor(x)
    for li, layer in enumerate(spec.layers):
        t_h = t_h @ torch_dense(layer, t_cores[li]) + t_bias[li]
        if layer.activation == "relu":
            t_h = torch.relu(t_h)
    grad_logits = rng.normal(size=t_h.shape)
    (t_h * torch.tensor(grad_logits)).sum().backward()
    factor_grads, bias_grads = rt.backward(grad_logits, {}, we, be)
    for li, layer in enumerate(spec.layers):
        np.testing.assert_allclose(bias_grads[li], t_bias[li].grad.numpy(), rtol=1e-9, atol=1e-12)
        for k in range(layer.d):
            ref = t_cores[li][k].grad.numpy()
            np.testing.assert_allclose(factor_grads[li][k], ref, rtol=1e-9, atol=1e-10 * np.abs(ref).max())


def test_thesis_model_float_equals_dense_and_autograd():
    check_float_network(thesis_table33_network(16), batch=3, seed=0)


def test_table_3_6_shapes_for_three_cores():
    """The d = 3 example of section 3.8: the compiled ops have Table 3.6's PE and (a, b, c, d)."""
    m1, m2, m3, n1, n2, n3, r1, r2, B = 2, 3, 16, 4, 5, 16, 16, 16, 1
    spec = NetworkSpec((TTLayerSpec((m1, m2, m3), (n1, n2, n3), (r1, r2), "none"),))
    net = compile_network(spec, batch=B)
    fwd = [(op.opcode.name, op.a, op.b, op.c, op.d) for op in net.programs["forward"] if op.opcode.name.startswith("PE")]
    assert fwd == [("PE1", m1 * m2, 1, m3, r2 * n3),             # (3.9)
                   ("PE2", m1, m2 * r2, n3, r1 * n2),            # (3.10)
                   ("PE2", 1, m1 * r1, n2 * n3, n1)]             # (3.11)
    bwd = [(op.opcode.name, op.a, op.b, op.c, op.d) for op in net.programs["backward"]
           if op.opcode in (Opcode.PE1, Opcode.PE2)]
    assert bwd == [("PE1", n1 * m1 * n2 * m2, 1, n3 * m3, r2),  # (3.15)
                   ("PE1", n1 * m1, 1, n2 * m2 * r2, r1),        # (3.16) -> dG1
                   ("PE2", 1, n1 * m1, n2 * m2 * r2, r1),        # (3.17) -> dG2
                   ("PE2", 1, n1 * m1, n2 * m2 * n3 * m3, r1),   # (3.18)
                   ("PE2", 1, r1 * n2 * m2, n3 * m3, r2)]        # (3.19) -> dG3
    # dW in merged blocks (n2 n3 x m3): pair 2 stored m-major, so that for each n1 the m1 m2 blocks follow
    # each other and one PE3 row group forms all of them chunk-major (m3 = 16 lanes); the n1 values are the
    # row groups of one instruction: one PE3 instruction instead of the thesis' n1 m1 n2 m2. Core 1 is read
    # m-major by the sweeps and its gradient is m-major.
    pe3 = [op for op in net.programs["backward"] if op.opcode == Opcode.PE3]
    assert [(op.a, op.b, op.c, op.d, op.flags) for op in pe3] == [(B, n1, m1 * m2 * m3, n2 * n3, Flag.CHUNKS)]
    assert (pe3[0].dst_offset, pe3[0].src_b_offset, pe3[0].src_a_offset) == (0, 0, 0)
    assert sum(op.macs() for op in pe3) == B * m1 * m2 * m3 * n1 * n2 * n3
    assert net.factor_grad_layouts[0] == ["nm", "mn", "nm"]
    assert [op.weight for op in net.programs["backward"] if op.opcode in (Opcode.PE1, Opcode.PE2)] == [
        (0, 2, "canon"), (0, 1, "canon_mn"), (0, 0, "canon"), (0, 0, "canon"), (0, 1, "canon_mn")]


def test_full_weight_gradient_blocks_stay_per_pair_where_merging_cannot_help_or_fit():
    """n_{d-2} = 1 (nothing to merge) or n_{d-2} n_{d-1} > pe3_max_d (PE3 cannot hold the block): the thesis'
    (n_{d-1} x m_{d-1}) blocks in the interleaved layout, every core read and returned canonical; the m_{d-2}
    blocks of one prefix still follow each other, so one chunk-major instruction forms them, with the n_{d-2}
    and m_{d-3} digits as its row and column groups. With a last input mode other than 16 there are no chunks,
    and the m_{d-2} blocks are the column groups of one row-major instruction."""
    for n_modes in ((3, 1, 16), (2, 32, 16)):
        spec = NetworkSpec((TTLayerSpec((2, 3, 16), n_modes, (16, 16), "none"),))
        net = compile_network(spec, batch=2)
        pe3 = [op for op in net.programs["backward"] if op.opcode == Opcode.PE3]
        # Digits n0 m0 n1 | m1 (folded into chunks): the n1 values are row groups and the m0 values, whose x
        # columns follow the chunks' (the next 48), column groups (contract 1.3): one instruction per n0.
        groups, col_groups = n_modes[1], 2
        assert [(op.b, op.c, op.d, op.flags) for op in pe3] == [(groups | col_groups << 8, 48, 16, Flag.CHUNKS)] * \
            n_modes[0]
        assert [op.dst_offset for op in pe3] == [i * col_groups * groups * 3 * 256 for i in range(len(pe3))]
        assert [op.src_a_offset for op in pe3] == [0] * len(pe3)
        assert sum(op.macs() for op in pe3) == 2 * 2 * 3 * 16 * math.prod(n_modes)
        assert net.factor_grad_layouts[0] == ["nm"] * 3
        assert all(t.layout != "canon_mn" for t in net.weight_tiles)
    spec = NetworkSpec((TTLayerSpec((2, 3, 32), (2, 1, 16), (16, 16), "none"),))
    pe3 = [op for op in compile_network(spec, batch=2).programs["backward"] if op.opcode == Opcode.PE3]
    # m1 is the last prefix digit and its blocks follow each other in dW: the column groups of one instruction.
    assert [(op.b, op.c, op.d, op.flags) for op in pe3] == [(1 | 3 << 8, 32, 16, Flag.NONE)] * (2 * 2)


layer_shapes = st.integers(1, 3).flatmap(lambda d: st.tuples(
    st.tuples(*[st.integers(1, 3)] * (d - 1), st.sampled_from([16, 32])),
    st.tuples(*[st.integers(1, 3)] * (d - 1), st.sampled_from([16])),
    st.tuples(*[st.sampled_from([16, 32])] * (d - 1))))


@given(layer_shapes, st.integers(1, 3), st.integers(0, 2 ** 16))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_legal_shapes_float(shape, batch, seed):
    m, n, r = shape
    hidden = TTLayerSpec(m, n, r, "relu", "L0")
    out = TTLayerSpec((math.prod(n) // 16, 16), (1, 16), (16,), "none", "L1")
    check_float_network(NetworkSpec((hidden, out)), batch, seed)


def test_fixed_forward_equals_independent_integer_chain():
    rng = np.random.default_rng(5)
    layer = TTLayerSpec((3, 2, 16), (2, 2, 16), (16, 16), "none", "L0")
    spec = NetworkSpec((layer,))
    B = 4
    net = compile_network(spec, B, forward_intermediate=OutFormat.S8)
    rt = NetworkRuntime(net, EmulatedBackend(size=8 << 20))
    cores = [rng.integers(-8, 8, layer.core_shape(k)) for k in range(3)]
    bias = rng.integers(-128, 128, layer.out_features)
    we, be = [[-3, -3, -3]], [-6]
    rt.upload_parameters([cores], [bias], we, be)
    x = rng.integers(0, 256, (B, layer.in_features))
    exps = {"x": -8, "L0.T2": -6, "L0.T1": -5, "L0.y": -4, "logits": -4}
    logits = rt.forward(x, exps, we, be)
    # Independent chain: einsum on the cores in their natural layout, one rescale per step.
    t = x.reshape(B, 3, 2, 16)
    t = np.einsum("bijm,rmn->bijrn", t, cores[2][:, :, :, 0])        # contract m3
    t = rescale(t, exps["L0.T2"] - (-8 - 3), OutFormat.S8.format())[0]
    t = np.einsum("bijrn,sjpr->bispn", t, cores[1])                   # contract m2, R2
    t = rescale(t, exps["L0.T1"] - (exps["L0.T2"] - 3), OutFormat.S8.format())[0]
    t = np.einsum("bispn,iqs->bqpn", t, cores[0][0])                  # contract m1, R1
    y = rescale(t.reshape(B, -1), exps["L0.y"] - (exps["L0.T1"] - 3), OutFormat.S16.format())[0]
    np.testing.assert_array_equal(rt.read_tensor("L0.y").reshape(B, -1), y)
    z = np.clip(y + round_shift(bias, 2), -32768, 32767)              # bias exp -6 -> -4: 2 bits coarser
    np.testing.assert_array_equal(logits, rescale(z, 0, OutFormat.S16.format())[0])
    assert rt.last_stats["L0.y"].sum_abs == np.abs(y).sum()


@pytest.mark.parametrize("layer, match", [
    (TTLayerSpec((7, 4, 2, 28), (4, 4, 2, 16), (16, 16, 16)), "m_4 = 28"),
    (TTLayerSpec((7, 4, 2, 16), (4, 4, 2, 10), (16, 16, 16)), "n_4 = 10"),
    (TTLayerSpec((7, 4, 2, 16), (4, 4, 2, 16), (16, 12, 16)), "R_2 = 12"),
])
def test_illegal_shapes_name_the_dimension(layer, match):
    with pytest.raises(ShapeError, match=match):
        layer.validate()


def test_spec_errors():
    with pytest.raises(ShapeError, match="internal ranks"):
        TTLayerSpec((2, 16), (2, 16), ())
    with pytest.raises(ShapeError, match="same"):
        TTLayerSpec((2, 16), (16,), ())
    with pytest.raises(ShapeError, match="outputs"):
        NetworkSpec((TTLayerSpec((16,), (32,), ()), TTLayerSpec((16,), (16,), (), "none")))
    with pytest.raises(ShapeError, match="batch"):
        compile_network(thesis_table33_network(), 0)


def test_weight_memory_overflow_is_reported():
    with pytest.raises(ShapeError, match="weight-memory words"):
        compile_network(thesis_table33_network(16), 8, HardwareConfig(wmem_words=512))


def test_field_overflow_is_reported():
    with pytest.raises(ShapeError, match="16-bit"):
        compile_network(thesis_table33_network(16), 2048)


def test_table33_model_size():
    spec = thesis_table33_network(16)
    assert spec.n_params == 14272            # Table 3.3: 1.48e4 parameters at rank 16 (with the biases: 14800)
    assert spec.n_params + 512 + 16 == 14800
