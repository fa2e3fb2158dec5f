"""One training step of the trainer on the emulated device against a step computed by hand (Algorithm 2,
eq. 3.2-3.6), in fixed point (integer arithmetic written out) and in float (dense algebra, with the prior)."""

import numpy as np
import pytest

from ultratrain.host.model import lambda_update
from ultratrain.host.trainer import TrainConfig, Trainer

from ._tiny import one_core_net, random_data, two_core_net


def _half_even_shift(values, shift):
    """int * 2**-shift rounded half to even, written with Python integers (independent of sim/formats.py)."""
    out = []
    for v in np.asarray(values, dtype=np.int64).ravel().tolist():
        if shift <= 0:
            out.append(v << -shift)
            continue
        q, r = divmod(v, 1 << shift)          # floor division: q rounds toward -inf, 0 <= r < 2**shift
        half = 1 << (shift - 1)
        out.append(q + (1 if r > half or (r == half and q % 2) else 0))
    return np.array(out, dtype=np.int64).reshape(np.shape(values))


def _sat(v, bits):
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _adam_first_step(u, g, lr):
    m, v = 0.1 * g, 0.001 * g * g
    return u - lr * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)


def test_fixed_point_step_matches_hand_computation():
    data = random_data(32, 8, 16)
    cfg = TrainConfig(precision="fixed", prior=False, epochs=1, batch_size=32, lr=0.01, lr_schedule="constant",
                      eval_batch=8)
    tr = Trainer(cfg, data, progress=False, spec=one_core_net())
    x, labels = data[0], data[1]
    tr.session.calibrate(tr.model, x, labels)
    exps = tr.session.exps()
    bexp = tr.session.bias_exps(tr.model, exps)[0]
    u0, b0 = tr.model.cores[0][0].copy(), tr.model.biases[0].copy()
    s = tr.model.shifts[0][0]
    wexp = -3 - s

    # By hand: 4-bit weights, u8 pixels at 2**-8, every device write rounded half-even and saturated.
    q = np.clip(np.rint(u0 * 8), -8, 7).astype(np.int64).reshape(16, 16)          # [m][n]
    b_int = np.clip(np.rint(b0 * 2.0 ** -bexp), -128, 127).astype(np.int64)
    acc = x.astype(np.int64) @ q                                                     # exponent -8 + wexp
    y = _sat(_half_even_shift(acc, exps["L0.y"] - (-8 + wexp)), 16)
    z = _sat(y + _half_even_shift(b_int, exps["L0.y"] - bexp), 16)
    logits_int = _sat(_half_even_shift(z, exps["logits"] - exps["L0.y"]), 16)
    logits = logits_int[:, :10] * 2.0 ** exps["logits"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = p.copy()
    g[np.arange(32), labels] -= 1
    g /= 32
    G = np.zeros((32, 16), dtype=np.int64)
    G[:, :10] = _sat(np.rint(g * 2.0 ** -exps["G0"]), 16)
    db = _sat(_half_even_shift(G.sum(0), exps["L0.db"] - exps["G0"]), 16) * 2.0 ** exps["L0.db"]
    dW = _sat(_half_even_shift(G.T @ x.astype(np.int64), exps["L0.dW"] - (exps["G0"] - 8)), 16)   # [n][m]
    dcore = dW.T.reshape(1, 16, 16, 1) * 2.0 ** exps["L0.dW"]
    u1 = np.clip(_adam_first_step(u0, dcore * 2.0 ** -s, 0.01), -0.91, 0.91)
    b1 = _adam_first_step(b0, db, 0.01)

    loss, correct = tr.train_step(x, labels)
    rt = tr.session.runtime
    assert np.array_equal(rt.read_tensor("logits"), logits_int)
    assert np.array_equal(rt.read_tensor("G0"), G)
    assert np.array_equal(rt.read_tensor("L0.dW").reshape(16, 16), dW)
    assert np.array_equal(rt.read_tensor("L0.db") * 2.0 ** exps["L0.db"], db)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(32), labels])), rel=1e-12)
    assert correct == int((logits.argmax(1) == labels).sum())
    np.testing.assert_allclose(tr.model.cores[0][0], u1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.model.biases[0], b1, rtol=0, atol=1e-12)
    assert np.any(tr.model.cores[0][0] != u0)


def test_float_step_with_prior_matches_dense_algebra():
    data = random_data(32, 8, 32, seed=1)
    cfg = TrainConfig(precision="float", prior=True, prior_weight=50.0, epochs=1, batch_size=32, lr=0.003,
                      lr_schedule="constant", eval_batch=8)
    tr = Trainer(cfg, data, progress=False, spec=two_core_net())
    x, labels = data[0], data[1]
    (u0, u1), b = [c.copy() for c in tr.model.cores[0]], tr.model.biases[0].copy()
    s0, s1 = tr.model.shifts[0]
    c0, c1 = u0 * 2.0 ** -s0, u1 * 2.0 ** -s1                 # (1, 2, 1, 16), (16, 16, 16, 1)
    W = np.einsum("amnr,rpqb->mpnq", c0, c1).reshape(32, 16)
    logits = (x / 256.0) @ W + b
    p = np.exp(logits[:, :10] - logits[:, :10].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = np.zeros((32, 16))
    g[:, :10] = p
    g[np.arange(32), labels] -= 1
    g /= 32
    dW = ((x / 256.0).T @ g).reshape(2, 16, 1, 16)              # [m0, m1, n0, n1]
    d0 = np.einsum("mpnq,rpqb->mnr", dW, c1)[None]              # (1, m0, n0, r)
    d1 = np.einsum("mpnq,amnr->rpqa", dW, c0)                   # (r, m1, n1, 1)
    lam = lambda_update([u0, u1])[0]
    weight = 50.0 / 32
    g0 = d0 * 2.0 ** -s0 + weight * 2 * u0 / lam               # eq. 3.3 gradient on slices of core 0
    g1 = d1 * 2.0 ** -s1
    new0, new1 = _adam_first_step(u0, g0, 0.003), _adam_first_step(u1, g1, 0.003)
    new_b = _adam_first_step(b, g.sum(0), 0.003)

    tr.train_step(x, labels)
    rt = tr.session.runtime
    grad0, grad1 = (rt.read_tensor(name) for name in rt.net.factor_grads[0])   # canonical [R][n][m][R']
    np.testing.assert_allclose(grad0.reshape(1, 2, 16).transpose(1, 0, 2)[None], d0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad1.reshape(16, 16, 16).transpose(0, 2, 1)[..., None], d1, rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(tr.model.cores[0][0], new0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.model.cores[0][1], new1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.model.biases[0], new_b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.model.lambdas[0][0], lambda_update([new0, new1])[0], rtol=1e-12)
