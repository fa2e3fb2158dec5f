"""The PyTorch float reference (sw/tt/train.py) and the host trainer in float mode on the emulated device run
the same algorithm: same initialization, data order, Adam, prior, lambda update and pruning."""

import numpy as np
import torch

from ultratrain.host.cli import load_training_data
from ultratrain.host.trainer import TrainConfig, Trainer
from ultratrain.sw.tt.layers import TTNet, dense_weight, tt_contract
from ultratrain.sw.tt.prior import lambda_update
from ultratrain.sim.compiler import thesis_table33_network

SUBSET = "tests/data/fashion-mnist-subset"


def test_tt_contract_equals_dense_weight_and_counts_table33():
    spec = thesis_table33_network(16)
    net = TTNet(spec, seed=3)
    x = torch.rand(4, 896, dtype=torch.float64)
    for layer, lspec in zip(net.layers, spec.layers):
        W = dense_weight(layer.real_cores())
        torch.testing.assert_close(tt_contract(x[:, :lspec.in_features], layer.real_cores(), layer.in_modes,
                                               layer.out_modes), x[:, :lspec.in_features] @ W, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(W.detach().numpy(), lspec.dense_weight([c.detach().numpy() for c in layer.real_cores()]),
                                   rtol=1e-12, atol=1e-14)
    assert net.n_params() == 14800            # Table 3.3 "w/o prior": 1.48e4 parameters
    assert net(x).shape == (4, 10)


def test_torch_float_reference_tracks_host_float_trainer():
    from ultratrain.sw.tt.train import FloatTrainer
    data = load_training_data(SUBSET, train_limit=96, test_limit=50)
    cfg = TrainConfig(precision="float", prior=True, prior_weight=200.0, epochs=2, batch_size=32,
                      prune_threshold=0.05, eval_batch=50)
    host = Trainer(cfg, data, progress=False)
    ref = FloatTrainer(cfg, data, dtype=torch.float64, log=lambda m: None)
    # Make one slice weak so that pruning has something to remove at the end of epoch 1.
    host.model.cores[0][2][..., 5] *= 1e-2
    host.model.cores[0][3][5] *= 1e-2
    host.model.update_lambdas()
    with torch.no_grad():
        ref.net.layers[0].cores[2][..., 5] *= 1e-2
        ref.net.layers[0].cores[3][5] *= 1e-2
    ref.lambdas = [lambda_update(layer.cores) for layer in ref.net.layers]
    h_hist = host.fit()
    r_hist = ref.fit()
    for h, r in zip(h_hist, r_hist):
        assert abs(h["train_loss"] - r["train_loss"]) < 1e-9
        assert abs(h["test_loss"] - r["test_loss"]) < 1e-9
        assert h["ranks"] == r["ranks"] and h["params"] == r["params"]
    assert h_hist[0]["pruned"] and h_hist[0]["ranks"][0][2] < 16
    # the surviving parameters agree (the host keeps hardware ranks with zeroed slices)
    keep = host.model.masks[0][2]
    np.testing.assert_allclose(host.model.cores[0][3][keep], ref.net.layers[0].cores[3].detach().numpy(),
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(host.model.biases[1], ref.net.layers[1].bias.detach().numpy(), rtol=0, atol=1e-9)
