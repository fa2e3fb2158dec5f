"""Each tensor format of thesis ch. 2 reconstructs the dense weight it claims (eq. 2.1, 2.2, 2.15, CP)."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from ultratrain.sw.bayes import (CPLinear, TTConv2d, TTLinear, TuckerLinear, cp_full, hosvd, tt_full,
                                 tt_matrix_full, tt_svd, tucker_full)

torch.set_num_threads(1)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_tt_full_matches_explicit_product_of_core_slices():
    g = _gen()
    sizes, ranks = (3, 4, 2, 5), (1, 2, 3, 2, 1)
    cores = [torch.randn(ranks[k], sizes[k], ranks[k + 1], generator=g, dtype=torch.float64) for k in range(4)]
    full = tt_full(cores)
    assert full.shape == sizes
    for idx in itertools.product(*(range(s) for s in sizes)):
        prod = torch.eye(1, dtype=torch.float64)
        for k, i in enumerate(idx):
            prod = prod @ cores[k][:, i, :]
        assert torch.allclose(full[idx], prod[0, 0], atol=1e-12)


def test_tt_linear_weight_entries_follow_eq_2_1_index_convention():
    g = _gen(1)
    layer = TTLinear((2, 3, 2), (3, 2, 2), ranks=(2, 3), generator=g).double()
    W = layer.weight()
    assert W.shape == (12, 12)
    cores = [c.reshape(c.shape[0], m, j, c.shape[2]) for c, m, j in zip(layer.tt.cores, (2, 3, 2), (3, 2, 2))]
    for i in itertools.product(range(2), range(3), range(2)):
        for j in itertools.product(range(3), range(2), range(2)):
            prod = torch.eye(1, dtype=torch.float64)
            for k in range(3):
                prod = prod @ cores[k][:, i[k], j[k], :]
            row = (i[0] * 3 + i[1]) * 2 + i[2]
            col = (j[0] * 2 + j[1]) * 2 + j[2]
            assert torch.allclose(W[row, col], prod[0, 0], atol=1e-12)


def test_tt_svd_of_a_dense_matrix_is_exact_and_tt_linear_reproduces_it():
    g = _gen(2)
    in_modes, out_modes = (4, 7), (5, 2)
    dense = torch.randn(28, 10, generator=g, dtype=torch.float64)
    # the TT-matrix tensor pairs mode m_k with j_k: (m1, j1, m2, j2)
    tensor = dense.reshape(4, 7, 5, 2).permute(0, 2, 1, 3).reshape(20, 14)
    cores = tt_svd(tensor)
    assert torch.allclose(tt_matrix_full(cores, in_modes, out_modes), dense, atol=1e-10)
    layer = TTLinear(in_modes, out_modes, ranks=(cores[0].shape[2],)).double()
    with torch.no_grad():
        for k, core in enumerate(cores):
            layer.tt.cores[k].copy_(core)
        layer.bias.copy_(torch.arange(10.0))
    x = torch.randn(6, 28, generator=g, dtype=torch.float64)
    assert torch.allclose(layer(x), x @ dense + torch.arange(10.0), atol=1e-10)


def test_truncated_tt_svd_has_the_requested_ranks_and_error_decreases_with_rank():
    g = _gen(3)
    tensor = torch.randn(4, 5, 6, 3, generator=g, dtype=torch.float64)
    errors = []
    for r in (1, 2, 4, 8, 100):
        cores = tt_svd(tensor, max_rank=r)
        assert all(c.shape[2] <= r for c in cores[:-1])
        errors.append(float((tt_full(cores) - tensor).norm()))
    assert all(a >= b - 1e-12 for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-10 < errors[0]


def test_tt_conv2d_kernel_has_the_eq_2_2_core_shapes_and_convolves_like_conv2d():
    g = _gen(4)
    layer = TTConv2d((2, 3), (4, 2), ranks=(3, 2, 4), kernel_size=3, padding=1, generator=g).double()
    shapes = [tuple(c.shape) for c in layer.tt.cores]
    # m1 x R1, R1 x j1 x R2, R2 x m2 x R3, R3 x (j2 H W)
    assert shapes == [(1, 2, 3), (3, 4, 2), (2, 3, 4), (4, 2 * 9, 1)]
    C = layer.kernel()
    assert C.shape == (6, 8, 3, 3)
    c = [layer.tt.cores[0][0], layer.tt.cores[1], layer.tt.cores[2], layer.tt.cores[3].reshape(4, 2, 3, 3)]
    for m1, j1, m2, j2, h, w in itertools.product(range(2), range(4), range(3), range(2), range(3), range(3)):
        value = c[0][m1] @ c[1][:, j1, :] @ c[2][:, m2, :] @ c[3][:, j2, h, w]
        assert torch.allclose(C[m1 * 3 + m2, j1 * 2 + j2, h, w], value, atol=1e-12)
    x = torch.randn(2, 6, 5, 5, generator=g, dtype=torch.float64)
    expected = F.conv2d(x, C.transpose(0, 1), layer.bias, padding=1)
    assert torch.allclose(layer(x), expected, atol=1e-12)


def test_tucker_full_matches_the_mode_product_sum_and_hosvd_is_exact_at_full_rank():
    g = _gen(5)
    core = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    factors = [torch.randn(n, r, generator=g, dtype=torch.float64) for n, r in ((4, 2), (5, 3), (3, 2))]
    full = tucker_full(core, factors)
    expected = torch.einsum("abc,ia,jb,kc->ijk", core, *factors)
    assert torch.allclose(full, expected, atol=1e-12)
    tensor = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    core2, factors2 = hosvd(tensor)
    assert torch.allclose(tucker_full(core2, factors2), tensor, atol=1e-10)


def test_tucker_linear_weight_is_the_reshaped_tucker_tensor():
    g = _gen(6)
    layer = TuckerLinear((4, 7), (5, 2), ranks=(3, 4, 2, 2), generator=g).double()
    W = layer.weight()
    expected = torch.einsum("abcd,ia,jb,kc,ld->ijkl", layer.core, *layer.factors).reshape(28, 10)
    assert torch.allclose(W, expected, atol=1e-12)
    x = torch.randn(3, 28, generator=g, dtype=torch.float64)
    assert torch.allclose(layer(x), x @ expected + layer.bias, atol=1e-12)
    assert layer.num_weight_parameters() == 3 * 4 * 2 * 2 + 4 * 3 + 7 * 4 + 5 * 2 + 2 * 2 + 10


def test_cp_full_is_a_sum_of_outer_products_and_cp_linear_uses_it():
    g = _gen(7)
    factors = [torch.randn(n, 3, generator=g, dtype=torch.float64) for n in (4, 2, 5)]
    expected = sum(torch.einsum("i,j,k->ijk", factors[0][:, r], factors[1][:, r], factors[2][:, r]) for r in range(3))
    assert torch.allclose(cp_full(factors), expected, atol=1e-12)
    layer = CPLinear((4, 2), (5,), rank=3).double()
    with torch.no_grad():
        for f, src in zip(layer.factors, factors):
            f.copy_(src)
    x = torch.randn(3, 8, generator=g, dtype=torch.float64)
    assert torch.allclose(layer(x), x @ expected.reshape(8, 5) + layer.bias, atol=1e-12)


def test_parameter_counts_of_the_formats():
    tt = TTLinear((4, 7, 4, 7), (5, 5, 4, 5), ranks=(3, 4, 2))
    assert tt.num_weight_parameters() == 1 * 20 * 3 + 3 * 35 * 4 + 4 * 16 * 2 + 2 * 35 * 1 + 500
    cp = CPLinear((28, 28), (20, 25), rank=6)
    assert cp.num_weight_parameters() == 6 * (28 + 28 + 20 + 25) + 500


def test_tt_initialization_gives_he_scaled_weights():
    layer = TTLinear((4, 7, 4, 7), (5, 5, 4, 5), ranks=10, generator=_gen(8))
    var = float(layer.weight().detach().var())
    assert 0.5 * 2 / 784 < var < 2 * 2 / 784


@pytest.mark.parametrize("bad", [dict(in_modes=(4, 0), out_modes=(2, 2), ranks=2),
                                 dict(in_modes=(4, 2), out_modes=(2,), ranks=2),
                                 dict(in_modes=(4, 2), out_modes=(2, 2), ranks=(2, 2))])
def test_tt_linear_rejects_bad_shapes(bad):
    with pytest.raises(ValueError):
        TTLinear(**bad)


def test_layers_reject_inputs_of_the_wrong_width_and_bad_prior_arguments():
    with pytest.raises(ValueError, match="features"):
        TTLinear((2, 2), (2, 2), ranks=2)(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="beta"):
        TTLinear((2, 2), (2, 2), ranks=2, low_rank_prior=True, beta=0.0)
    with pytest.raises(ValueError, match="exceed"):
        TuckerLinear((2, 2), (3,), ranks=(3, 2, 3))
    assert math.isfinite(float(CPLinear((2, 2), (3,), rank=2).neg_log_prior()))
