"""The fake-quantized PyTorch network (sw/tt/fakequant.py) equals the golden executor bit for bit: forward
logits, the gradient handed to each layer, every factor gradient and bias gradient, on a real batch."""

import numpy as np
import pytest
import torch

from ultratrain.host.cli import load_training_data
from ultratrain.host.trainer import TrainConfig, Trainer
from ultratrain.sim.formats import Format
from ultratrain.sw.tt.fakequant import FakeQuantNet, fake_quantize, fq_backward, fq_forward
from ultratrain.sw.tt.layers import TTNet
from ultratrain.sim.contract import OutFormat

SUBSET = "tests/data/fashion-mnist-subset"


@pytest.fixture(scope="module")
def trained_session():
    data = load_training_data(SUBSET, train_limit=256, test_limit=16)
    tr = Trainer(TrainConfig(eval_batch=16), data, progress=False)
    for i in range(4):                       # a few steps: exponents and weights away from their initial values
        idx = np.arange(32 * i, 32 * i + 32)
        tr.train_step(data[0][idx], data[1][idx])
    return tr, data


@pytest.mark.parametrize("intermediate", ["s8", "s16"])
def test_fake_quant_forward_backward_equal_device(trained_session, intermediate):
    tr, data = trained_session
    if intermediate == "s16":
        from ultratrain.host.trainer import DeviceSession
        s16 = DeviceSession(tr.spec, tr.backend, 32, 16, "fixed", "s16")
        s16.load_state_dict(tr.session.state_dict())
        session = s16
    else:
        session = tr.session
    idx = np.arange(128, 160)
    exps = session.exps()
    bexp = session.bias_exps(tr.model, exps)
    cores = [[torch.tensor(c) for c in layer] for layer in tr.model.real_cores()]
    biases = [torch.tensor(Format(8, True, e).fake_quantize(b)) for b, e in zip(tr.model.biases, bexp)]
    _, _, core_grads, bias_grads = session.train_step(tr.model, data[0][idx], data[1][idx])
    rt = session.runtime

    inter = OutFormat.S8 if intermediate == "s8" else OutFormat.S16
    logits, cache = fq_forward(torch.tensor(data[0][idx] / 256.0), cores, biases, tr.spec, exps, inter)
    for name in ("logits", "A0"):
        device = np.ldexp(rt.read_tensor(name).astype(float), exps[name])
        mine = (logits if name == "logits" else cache["x"][1]).numpy()
        assert np.array_equal(mine, device), name
    G1 = torch.tensor(np.ldexp(rt.read_tensor("G1").astype(float), exps["G1"]))
    factor, bias = fq_backward(G1, cache, cores, tr.spec, exps)
    for li in range(2):
        assert np.array_equal(bias[li].numpy(), bias_grads[li])
        for k, g in enumerate(factor[li]):
            assert np.array_equal(g.numpy(), core_grads[li][k]), f"layer {li} core {k}"
            assert np.abs(core_grads[li][k]).max() > 0


def test_fake_quant_module_autograd_gives_device_gradients(trained_session):
    """loss.backward() through FakeQuantNet: unit-parameter gradients = device factor gradients x 2**-s."""
    tr, data = trained_session
    session = tr.session
    idx = np.arange(160, 192)
    exps = session.exps()
    bexp = session.bias_exps(tr.model, exps)
    net = TTNet(tr.spec)
    with torch.no_grad():
        for layer, cores, bias in zip(net.layers, tr.model.cores, tr.model.biases):
            for p, c in zip(layer.cores, cores):
                p.copy_(torch.tensor(c))
            layer.bias.copy_(torch.tensor(bias))
    _, _, core_grads, bias_grads = session.train_step(tr.model, data[0][idx], data[1][idx])
    G1 = np.ldexp(session.runtime.read_tensor("G1").astype(float), exps["G1"])
    fq = FakeQuantNet(net, exps, bexp)
    logits = fq(torch.tensor(data[0][idx] / 256.0))
    (logits * torch.tensor(G1[:, :10])).sum().backward()     # dLoss/dlogits = G1, already in its format
    for li, layer in enumerate(net.layers):
        for k, p in enumerate(layer.cores):
            expected = core_grads[li][k] * 2.0 ** -tr.model.shifts[li][k]
            assert np.array_equal(p.grad.numpy(), expected)
        assert np.array_equal(layer.bias.grad.numpy(), bias_grads[li])


def test_fake_quantize_rounds_half_even_and_saturates():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0], dtype=torch.float64)
    assert fake_quantize(x, OutFormat.S8, 0).tolist() == [0, 2, 2, -0, -2, 127, -128]
    assert fake_quantize(x, OutFormat.U8, 0).tolist() == [0, 2, 2, 0, 0, 255, 0]
    assert fake_quantize(torch.tensor([3.0]), OutFormat.S16, 1).tolist() == [4.0]   # 1.5 -> 2 (even) * 2
