"""Workloads shared by the driver, co-simulation and on-board tests: a small TT network through
host/runtime.NetworkRuntime, and a few steps of the trainer (host/trainer.py), on any backend."""

from __future__ import annotations

import numpy as np

from ultratrain.host.runtime import NetworkRuntime
from ultratrain.sim.compiler import NetworkSpec, TTLayerSpec, compile_network

# Two TT layers (d = 2): every instruction kind of a training step, a few thousand MACs per sample.
SMALL = NetworkSpec((TTLayerSpec((4, 16), (2, 16), (16,), name="L0"),
                     TTLayerSpec((2, 16), (1, 16), (16,), activation="none", name="L1")))
SUBSET = "tests/data/fashion-mnist-subset"


def run_small_net(backend, steps=2, seed=0, batch=16):
    """Upload random parameters, then per step a forward and a backward pass on random data; returns
    everything the host read back (logits, factor and bias gradients, write-back statistics)."""
    rng = np.random.default_rng(seed)
    net = compile_network(SMALL, batch)
    rt = NetworkRuntime(net, backend)
    cores = [[rng.integers(-8, 8, layer.core_shape(k)) for k in range(layer.d)] for layer in SMALL.layers]
    biases = [rng.integers(-128, 128, layer.out_features) for layer in SMALL.layers]
    wexp = [[-3] * layer.d for layer in SMALL.layers]
    rt.upload_parameters(cores, biases, wexp, [-6, -6])
    exps = {name: -6 for name in net.tensors}
    exps["x"] = -8
    out = []
    for _ in range(steps):
        x = rng.integers(0, 256, (batch, SMALL.layers[0].in_features))
        out.append(rt.forward(x, exps, wexp, [-6, -6]))
        g = rng.integers(-3000, 3000, (batch, SMALL.layers[-1].out_features))
        fgrads, bgrads = rt.backward(g, exps, wexp, [-6, -6])
        out.extend(fg for layer in fgrads for fg in layer)
        out.extend(bgrads)
        out.append(np.array([s.sum_abs for s in rt.last_stats.values()]))
        out.append(np.array([s.saturated for s in rt.last_stats.values()]))
    return out


def reference_run(steps=2, seed=0, batch=16):
    from ultratrain.host.backends.emulated import EmulatedBackend
    return run_small_net(EmulatedBackend(size=16 << 20), steps, seed, batch)


def assert_same(a, b):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, f"item {i}: shape {x.shape} vs {y.shape}"
        bad = np.flatnonzero(x.ravel() != y.ravel())
        assert not bad.size, f"item {i}: {bad.size} of {x.size} differ, first at {bad[0]}: {x.ravel()[bad[0]]} " \
                             f"vs {y.ravel()[bad[0]]}"


def trainer_steps(backend, steps=3, batch=16, ranks="16", seed=0):
    """``steps`` optimizer steps of host/trainer.Trainer (the Table 3.3 model at ``ranks``) on ``backend``;
    returns the losses, the quantized cores and the scale exponents after them."""
    from ultratrain.host.cli import load_training_data
    from ultratrain.host.trainer import TrainConfig, Trainer
    data = load_training_data(SUBSET, train_limit=steps * batch, test_limit=batch)
    config = TrainConfig(epochs=1, batch_size=batch, ranks=ranks, eval_batch=batch, seed=seed)
    trainer = Trainer(config, data, backend=backend, progress=False, log=lambda msg: None)
    losses = [trainer.train_step(data[0][i * batch:(i + 1) * batch], data[1][i * batch:(i + 1) * batch])
              for i in range(steps)]
    cores = [c.copy() for layer in trainer.model.quantized_cores() for c in layer]
    return losses, cores, trainer.session.exps()
