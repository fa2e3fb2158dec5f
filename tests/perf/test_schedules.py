"""Alternative schedules (sim/schedules.py) compute what the thesis schedule computes.

* Float mode: every candidate the optimizer may pick gives the thesis schedule's logits and gradients (and
  torch.autograd's) to float64 rounding, on the Table 3.3 model and on random legal shapes.
* Fixed point: each alternative's instructions are bit-exact against an independent integer einsum chain with
  one contract rescale per step, and its end results stay as close to the float reference as the thesis
  schedule's (the only difference is where the rounding happens).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from ultratrain.host.backends.emulated import EmulatedBackend
from ultratrain.host.runtime import NetworkRuntime
from ultratrain.sim.compiler import NetworkSpec, ShapeError, TTLayerSpec, compile_network, thesis_table33_network
from ultratrain.sim.contract import OutFormat
from ultratrain.sim.formats import rescale
from ultratrain.sim.optimizer import layer_candidates
from ultratrain.sim.schedules import LayerSchedule, Schedule, compile_schedule, layer_plans

SMALL = NetworkSpec((TTLayerSpec((2, 3, 16), (2, 2, 16), (16, 16), "relu", "L0"),
                     TTLayerSpec((4, 16), (1, 16), (16,), "none", "L1")))


def run_float(spec, batch, schedule, cores, biases, x, g):
    net = compile_schedule(spec, batch, schedule, float_mode=True)
    rt = NetworkRuntime(net, EmulatedBackend(size=32 << 20, float_mode=True))
    we, be = [[0] * layer.d for layer in spec.layers], [0] * len(spec.layers)
    rt.upload_parameters(cores, biases, we, be)
    logits = rt.forward(x, {}, we, be)
    factor_grads, bias_grads = rt.backward(g, {}, we, be)
    return logits, factor_grads, bias_grads


def random_float_problem(spec, batch, seed):
    rng = np.random.default_rng(seed)
    cores = [[rng.normal(0, 0.5, layer.core_shape(k)) for k in range(layer.d)] for layer in spec.layers]
    biases = [rng.normal(0, 0.1, layer.out_features) for layer in spec.layers]
    x = rng.random((batch, spec.layers[0].in_features))
    g = rng.normal(size=(batch, spec.layers[-1].out_features))
    return cores, biases, x, g


def assert_same(result, reference, rtol=1e-9):
    logits, fg, bg = result
    ref_logits, ref_fg, ref_bg = reference
    np.testing.assert_allclose(logits, ref_logits, rtol=rtol, atol=rtol * np.abs(ref_logits).max())
    for li in range(len(ref_fg)):
        np.testing.assert_allclose(bg[li], ref_bg[li], rtol=rtol, atol=rtol * np.abs(ref_bg[li]).max())
        for a, b in zip(fg[li], ref_fg[li]):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def autograd_reference(spec, cores, biases, x, g):
    t_cores = [[torch.tensor(c, requires_grad=True) for c in layer] for layer in cores]
    t_bias = [torch.tensor(b, requires_grad=True) for b in biases]
    h = torch.tensor(x)
    for li, layer in enumerate(spec.layers):
        w = torch.ones(1, 1, 1, dtype=torch.float64)
        for k, core in enumerate(t_cores[li]):
            R0, m, n, R1 = layer.core_shape(k)
            w = torch.einsum("ijr,rmns->imjns", w, core).reshape(w.shape[0] * m, w.shape[1] * n, R1)
        h = h @ w[:, :, 0] + t_bias[li]
        if layer.activation == "relu":
            h = torch.relu(h)
    (h * torch.tensor(g)).sum().backward()
    return (h.detach().numpy(), [[c.grad.numpy() for c in layer] for layer in t_cores],
            [b.grad.numpy() for b in t_bias])


def test_thesis_schedule_is_compile_network():
    for spec, batch in ((thesis_table33_network(16), 1), (thesis_table33_network(16), 32), (SMALL, 3)):
        a, b = compile_network(spec, batch), compile_schedule(spec, batch)
        assert a.programs == b.programs
        assert a.weight_tiles == b.weight_tiles and a.tensors == b.tensors and a.factor_grads == b.factor_grads


@pytest.mark.parametrize("which", ["L0", "L1"])
def test_every_candidate_equals_thesis_in_float_mode(which):
    """All candidates of one layer (the other keeps an alternative schedule) on the Table 3.3 model."""
    spec = thesis_table33_network(16)
    problem = random_float_problem(spec, 2, seed=1)
    reference = run_float(spec, 2, Schedule.thesis(spec), *problem)
    assert_same(reference, autograd_reference(spec, *problem))
    li = 0 if which == "L0" else 1
    other = LayerSchedule("lr", "rl") if li == 0 else LayerSchedule("lr", "lr", (0, 3))
    candidates = list(layer_candidates(spec.layers[li], li, float_mode=True))
    assert len(candidates) == (3 * 1 * 15 if li == 0 else 3 * 3 * 2)   # fwd x input-grad x backward plans
    ran = 0
    for cand in candidates:
        layers = (cand, other) if li == 0 else (other, cand)
        try:
            result = run_float(spec, 2, Schedule(layers), *problem)
        except ShapeError as err:     # layer 0's dense weight does not fit the weight memory
            assert li == 0 and "dense" in (cand.forward, cand.input_grad) and "weight-memory" in str(err)
            continue
        assert_same(result, reference)
        ran += 1
    assert ran == (30 if li == 0 else 18)


layer_shapes = st.integers(1, 3).flatmap(lambda d: st.tuples(
    st.tuples(*[st.integers(1, 3)] * (d - 1), st.sampled_from([16, 32])),
    st.tuples(*[st.integers(1, 3)] * (d - 1), st.sampled_from([16])),
    st.tuples(*[st.sampled_from([16, 32])] * (d - 1))))


@given(layer_shapes, st.integers(1, 3), st.integers(0, 2 ** 16), st.data())
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_shapes_and_schedules_float(shape, batch, seed, data):
    m, n, r = shape
    hidden = TTLayerSpec(m, n, r, "relu", "L0")
    out = TTLayerSpec((math.prod(n) // 16, 16), (1, 16), (16,), "none", "L1")
    spec = NetworkSpec((hidden, out))
    problem = random_float_problem(spec, batch, seed)
    layers = []
    for li, layer in enumerate(spec.layers):
        meetings, servers = data.draw(st.sampled_from(layer_plans(layer.d)))
        layers.append(LayerSchedule(data.draw(st.sampled_from(["rl", "lr"])),
                                    data.draw(st.sampled_from(["lr", "rl"])), meetings, servers))
    try:
        result = run_float(spec, batch, Schedule(tuple(layers)), *problem)
    except ShapeError as err:       # e.g. PE1's buffer: R_{d-1} m_{d-1} > 512 in the LR forward's last step
        assert "PE1" in str(err) or "PE2" in str(err)
        return
    assert_same(result, autograd_reference(spec, *problem))


def test_dense_needs_float_mode_and_bad_schedules_are_rejected():
    spec = thesis_table33_network(16)
    with pytest.raises(ShapeError, match="float_mode"):
        compile_schedule(spec, 4, Schedule((LayerSchedule(), LayerSchedule("dense"))))
    with pytest.raises(ShapeError, match="weight-memory"):     # layer 0's dense W has 458,752 weights
        compile_schedule(spec, 4, Schedule((LayerSchedule("dense"), LayerSchedule())), float_mode=True)
    with pytest.raises(ValueError, match="meetings must contain 0"):
        LayerSchedule(meetings=(1,))
    with pytest.raises(ValueError, match="servers"):
        LayerSchedule(meetings=(0, 2), servers=(0, 2, 2, 2)).resolved_servers(4)
    with pytest.raises(ValueError, match="forward"):
        LayerSchedule(forward="middle")


# ---------------------------------------------------------------------------------------------------------
# Fixed point

def calibrated_exps(spec, net, cores_q, biases_q, x_q, g_q, weight_exps, bias_exps, g_exp):
    """Exponents that put every tensor's largest value just inside its format (from a float run)."""
    cores_f = [[c * 2.0 ** weight_exps[li][k] for k, c in enumerate(layer)] for li, layer in enumerate(cores_q)]
    biases_f = [b * 2.0 ** bias_exps[li] for li, b in enumerate(biases_q)]
    rt = NetworkRuntime(net, EmulatedBackend(size=32 << 20, float_mode=True))
    zero_w, zero_b = [[0] * layer.d for layer in spec.layers], [0] * len(spec.layers)
    rt.upload_parameters(cores_f, biases_f, zero_w, zero_b)
    rt.forward(x_q * 2.0 ** -8, {}, zero_w, zero_b)
    rt.backward(g_q * 2.0 ** g_exp, {}, zero_w, zero_b)
    exps = {}
    for name, tensor in net.tensors.items():
        if tensor.role == "image":
            continue
        peak = float(np.abs(rt.read_tensor(name)).max())
        top = tensor.kind.format().max_int
        exps[name] = math.ceil(math.log2(peak / top)) if peak > 0 else -12
    exps["x"], exps[f"G{len(spec.layers) - 1}"] = -8, g_exp
    for li in range(1, len(spec.layers)):
        exps[f"G{li - 1}"] = exps[f"L{li}.dx"]
    return exps


def quantized_problem(spec, batch, seed):
    rng = np.random.default_rng(seed)
    cores = [[rng.integers(-8, 8, layer.core_shape(k)) for k in range(layer.d)] for layer in spec.layers]
    biases = [rng.integers(-128, 128, layer.out_features) for layer in spec.layers]
    x = rng.integers(0, 256, (batch, spec.layers[0].in_features))
    g = rng.integers(-3000, 3000, (batch, spec.layers[-1].out_features))
    return cores, biases, x, g


def run_fixed(spec, batch, schedule, problem, exps_override=None):
    cores, biases, x, g = problem
    we, be = [[-3] * layer.d for layer in spec.layers], [-7] * len(spec.layers)
    net = compile_schedule(spec, batch, schedule)
    exps = calibrated_exps(spec, net, cores, biases, x, g, we, be, g_exp=-14)
    exps.update({k: v for k, v in (exps_override or {}).items() if k in exps})
    rt = NetworkRuntime(net, EmulatedBackend(size=32 << 20))
    rt.upload_parameters(cores, biases, we, be)
    rt.forward(x, exps, we, be)
    fg, bg = rt.backward(g, exps, we, be)
    return rt, exps, (fg, bg)


def gradient_errors(spec, rt, exps, grads, cores):
    """Relative errors of the device's factor and bias gradients against float64 gradients of the *same*
    layer input and output gradient (read back from the device): what the gradient schedule itself adds."""
    fg, bg = grads
    errs = {}
    for li, layer in enumerate(spec.layers):
        x_name = "x" if li == 0 else f"A{li - 1}"
        x = torch.tensor(rt.read_tensor(x_name) * 2.0 ** exps[x_name])
        g = torch.tensor(rt.read_tensor(f"G{li}") * 2.0 ** exps[f"G{li}"])
        t_cores = [torch.tensor(c * 2.0 ** -3, requires_grad=True) for c in cores[li]]
        w = torch.ones(1, 1, 1, dtype=torch.float64)
        for k, core in enumerate(t_cores):
            R0, m, n, R1 = layer.core_shape(k)
            w = torch.einsum("ijr,rmns->imjns", w, core).reshape(w.shape[0] * m, w.shape[1] * n, R1)
        ((x.reshape(x.shape[0], -1) @ w[:, :, 0]) * g.reshape(g.shape[0], -1)).sum().backward()
        for k, core in enumerate(t_cores):
            ref = core.grad.numpy()
            got = fg[li][k] * 2.0 ** exps[rt.net.factor_grads[li][k]]
            errs[f"L{li}.dG{k}"] = np.abs(got - ref).max() / np.abs(ref).max()
        ref_b = g.reshape(g.shape[0], -1).sum(0).numpy()
        errs[f"L{li}.db"] = np.abs(bg[li] * 2.0 ** exps[f"L{li}.db"] - ref_b).max() / max(np.abs(ref_b).max(), 1e-30)
    return errs


def forward_error(spec, rt, exps, problem):
    cores, biases, x, _ = problem
    h = x * 2.0 ** -8
    for li, layer in enumerate(spec.layers):
        h = h @ layer.dense_weight([c * 2.0 ** -3 for c in cores[li]]) + biases[li] * 2.0 ** -7
        if layer.activation == "relu":
            h = np.maximum(h, 0)
    logits = rt.read_tensor("logits") * 2.0 ** exps["logits"]
    return np.abs(logits - h).max() / np.abs(h).max()


@pytest.mark.parametrize("batch, layers", [
    (8, (LayerSchedule("lr", "lr", (0, 3)), LayerSchedule("lr", "rl"))),
    (32, (LayerSchedule("lr", "lr"), LayerSchedule("lr", "rl"))),
    (8, (LayerSchedule("rl", "lr", (0, 2, 3), (0, 0, 2, 3)), LayerSchedule("rl", "rl", (0, 1)))),
])
def test_fixed_point_alternatives_as_accurate_as_thesis(batch, layers):
    """Same inputs and shared exponents: the alternative's rounding error is the thesis schedule's size."""
    spec = thesis_table33_network(16)
    problem = quantized_problem(spec, batch, seed=batch)
    rt_t, exps_t, grads_t = run_fixed(spec, batch, Schedule.thesis(spec), problem)
    rt_a, exps_a, grads_a = run_fixed(spec, batch, Schedule(layers), problem, exps_override=exps_t)
    e_t = gradient_errors(spec, rt_t, exps_t, grads_t, problem[0])
    e_a = gradient_errors(spec, rt_a, exps_a, grads_a, problem[0])
    e_t["logits"], e_a["logits"] = forward_error(spec, rt_t, exps_t, problem), forward_error(spec, rt_a, exps_a, problem)
    for name, err in e_a.items():       # gradients: ~1e-4 (16-bit), logits: a few % (8-bit activations)
        assert err <= 2 * e_t[name] + (2 ** -9 if name == "logits" else 5e-4), (name, err, e_t[name])
    assert max(e_a.values()) < 0.1


def test_fixed_point_alternative_is_bit_exact_against_integer_chain():
    """LR forward, RL input gradient, and meetings at every core: einsum + one rescale per instruction."""
    spec, batch = SMALL, 3
    layers = (LayerSchedule("lr", "lr", (0, 1, 2)), LayerSchedule("lr", "rl", (0, 1)))
    problem = quantized_problem(spec, batch, seed=11)
    rt, exps, _ = run_fixed(spec, batch, Schedule(layers), problem)
    cores, biases, x, g = problem
    wexp = -3

    def R(acc, dst, acc_exp, kind=OutFormat.S16):
        return rescale(acc, exps[dst] - acc_exp, kind.format())[0]

    def T(name):
        return rt.read_tensor(name)

    # Layer 0 forward, left to right: P1 = x x G0 over m0, P2 = P1 x G1 over (R1, m1), y = P2 x G2 over (R2, m2).
    G = cores[0]
    t = x.reshape(batch, 2, 3, 16)
    p1 = R(np.einsum("bmij,mnr->bnrij", t, G[0][0]), "L0.P1", -8 + wexp)   # 16-bit: reused by H_1
    np.testing.assert_array_equal(T("L0.P1").ravel(), p1.ravel())
    p2 = R(np.einsum("bnrmj,rmps->bnpsj", p1, G[1]), "L0.P2", exps["L0.P1"] + wexp)
    np.testing.assert_array_equal(T("L0.P2").ravel(), p2.ravel())
    y0 = R(np.einsum("bnpsj,sjq->bnpq", p2, G[2][:, :, :, 0]), "L0.y", exps["L0.P2"] + wexp)
    np.testing.assert_array_equal(T("L0.y").ravel(), y0.ravel())

    # Layer 1 input gradient, right to left: Q1 = g x G1 over n1, dx = Q1 x G0 over (n0, R1).
    G1 = cores[1]
    g1 = g.reshape(batch, 1, 16)
    q1 = R(np.einsum("bpn,smn->bpsm", g1, G1[1][:, :, :, 0]), "L1.Q1", exps["G1"] + wexp)
    np.testing.assert_array_equal(T("L1.Q1").ravel(), q1.ravel())
    dx = R(np.einsum("bpsm,ips->bim", q1, G1[0][0]), "L1.dx", exps["L1.Q1"] + wexp)
    np.testing.assert_array_equal(T("L1.dx").ravel(), dx.ravel())

    # Layer 0 gradients. G0 = masked dx; H_2 = sum_{b, n0 n1} P2 (x) G0 is dG2 itself; H_1 then a right sweep.
    g0 = T("G0").reshape(batch, 2, 2, 16)
    h2 = R(np.einsum("bnpsj,bnpq->sqj", p2, g0), "L0.H2", exps["L0.P2"] + exps["G0"])
    np.testing.assert_array_equal(T("L0.H2").ravel(), h2.ravel())
    h1 = R(np.einsum("bnrij,bnpq->rpiqj", p1, g0), "L0.H1", exps["L0.P1"] + exps["G0"])
    np.testing.assert_array_equal(T("L0.H1").ravel(), h1.ravel())
    v = R(np.einsum("rpiqj,sjq->rpis", h1, G[2][:, :, :, 0]), "L0.V1.2", exps["L0.H1"] + wexp)
    np.testing.assert_array_equal(T("L0.V1.2").ravel(), v.ravel())
    grads, _ = rt.backward(g, exps, [[wexp] * 3, [wexp] * 2], [-7, -7])
    np.testing.assert_array_equal(grads[0][1], v.transpose(0, 2, 1, 3))    # canonical [R][n][m][R'] -> core shape
    np.testing.assert_array_equal(grads[0][2], h2.reshape(16, 16, 16, 1).transpose(0, 2, 1, 3))


def _contraction_operands(layer, cores, x, dy, k):
    """P_k (x through cores < k) and T_k (dy through cores > k) as einsum operands with named axes."""
    d = layer.d
    m, n = layer.in_modes, layer.out_modes
    batch = x.shape[0]
    P = x.reshape(batch, *m)[:, None]                       # [b, R_0 = 1, m_0 .. m_{d-1}]
    for j in range(k):                                      # -> [b, n_0 .. n_j, R_{j+1}, m_{j+1} ..]
        P = np.einsum(P, [0, *range(10, 10 + j), 1, 2, *range(30 + j + 1, 30 + d)],
                      cores[j], [1, 2, 10 + j, 3],
                      [0, *range(10, 10 + j + 1), 3, *range(30 + j + 1, 30 + d)])
    T = dy.reshape(batch, *n)[..., None]                    # [b, n_0 .. n_{d-1}, R_d = 1]
    for j in range(d - 1, k, -1):                           # -> [b, n_0 .. n_{j-1}, R_j, m_j .. m_{d-1}]
        T = np.einsum(T, [0, *range(10, 10 + j + 1), 1, *range(30 + j + 1, 30 + d)],
                      cores[j], [2, 30 + j, 10 + j, 1],
                      [0, *range(10, 10 + j), 2, *range(30 + j, 30 + d)])
    return P, T


@pytest.mark.parametrize("k", [0, 1, 2])
def test_direct_factor_gradient_contraction_is_the_gradient_and_its_mac_count(k):
    from ultratrain.sim.optimizer import pe3_contractions

    layer = TTLayerSpec((3, 2, 4), (2, 5, 3), (4, 3), "none")
    rng = np.random.default_rng(k)
    cores = [rng.normal(size=layer.core_shape(j)) for j in range(layer.d)]
    batch = 5
    x, dy = rng.normal(size=(batch, layer.in_features)), rng.normal(size=(batch, layer.out_features))
    t_cores = [torch.tensor(c, requires_grad=True) for c in cores]
    w = torch.ones(1, 1, 1, dtype=torch.float64)
    for j, core in enumerate(t_cores):
        R0, mj, nj, R1 = layer.core_shape(j)
        w = torch.einsum("ijr,rmns->imjns", w, core).reshape(w.shape[0] * mj, w.shape[1] * nj, R1)
    ((torch.tensor(x) @ w[:, :, 0]) * torch.tensor(dy)).sum().backward()

    P, T = _contraction_operands(layer, cores, x, dy, k)
    d = layer.d
    # D_k: sum over b, n_<k and m_>k of P_k[b, n_<k, R_k, m_k, m_>k] T_k[b, n_<k, n_k, R_k+1, m_>k]
    p_axes = [0, *range(10, 10 + k), 1, 30 + k, *range(30 + k + 1, 30 + d)]
    t_axes = [0, *range(10, 10 + k), 10 + k, 2, *range(30 + k + 1, 30 + d)]
    grad = np.einsum(P, p_axes, T, t_axes, [1, 30 + k, 10 + k, 2])
    np.testing.assert_allclose(grad, t_cores[k].grad.numpy(), rtol=1e-10, atol=1e-10)
    sizes = {0: batch, 1: P.shape[1 + k], 2: T.shape[2 + k]}
    sizes.update({10 + j: layer.out_modes[j] for j in range(d)})
    sizes.update({30 + j: layer.in_modes[j] for j in range(d)})
    macs = math.prod(sizes[a] for a in set(p_axes) | set(t_axes))
    assert dict((name, c) for name, _, _, c in pe3_contractions(layer, batch))[f"D_{k}"] == macs


def test_pe3_floor_is_the_minimum_interval_cover():
    import itertools

    from ultratrain.sim.optimizer import pe3_contractions, pe3_floor

    rng = np.random.default_rng(3)
    for _ in range(40):
        d = int(rng.integers(1, 5))
        layer = TTLayerSpec(rng.integers(1, 9, d), rng.integers(1, 9, d), rng.integers(1, 17, d - 1), "none")
        batch = int(rng.integers(1, 40))
        cands = pe3_contractions(layer, batch)
        names = {name: c for name, _, _, c in cands}
        assert names["H_0"] == names[f"H'_{d - 1}"] == batch * layer.in_features * layer.out_features  # dW
        assert names["H'_0"] == names["D_0"] and names[f"H_{d - 1}"] == names[f"D_{d - 1}"]
        brute = min(sum(c for *_, c in subset) for r in range(1, len(cands) + 1)
                    for subset in itertools.combinations(cands, r)
                    if set(range(d)) <= {k for _, a, b, _ in subset for k in range(a, b + 1)}) if d <= 3 else None
        macs, cover = pe3_floor(layer, batch)
        assert macs == sum(names[n] for n in cover) and macs <= names["H_0"]
        assert set(range(d)) <= {k for name, a, b, _ in cands if name in cover for k in range(a, b + 1)}
        if brute is not None:
            assert macs == brute


def test_no_schedule_halves_the_thesis_step_at_batch_32_on_16_pe3_lanes():
    # Issue 6's 2x target against PE3's floor: every factor gradient needs a batch contraction on PE3, and the
    # cheapest cover of the Table 3.3 layers is the thesis' own dW, 933,888 cycles on 16 lanes.
    from ultratrain.sim.cycle_model import CycleModel
    from ultratrain.sim.optimizer import network_cost, pe3_floor

    spec, batch = thesis_table33_network(16), 32
    model = CycleModel()
    floor = [pe3_floor(layer, batch) for layer in spec.layers]
    assert [cover for _, cover in floor] == [("H_0",), ("H_0",)]
    floor_cycles = sum(macs for macs, _ in floor) / model.cfg.pe3_lanes
    assert floor_cycles == 933_888
    thesis_cycles = network_cost(compile_network(spec, batch), model)["cycles"]
    assert thesis_cycles / floor_cycles < 2.0
