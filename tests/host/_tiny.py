"""Tiny networks and data for the host tests (the device programs stay small, the tests fast)."""

import numpy as np

from ultratrain.sim.compiler import NetworkSpec, TTLayerSpec


def one_core_net() -> NetworkSpec:
    """One layer, one core: y = x @ G[0, :, :, 0] + b (16 inputs, 16 outputs)."""
    return NetworkSpec((TTLayerSpec((16,), (16,), (), "none", "L0"),))


def two_core_net() -> NetworkSpec:
    """One layer, two cores, rank 16: 32 inputs = 2x16, 16 outputs = 1x16."""
    return NetworkSpec((TTLayerSpec((2, 16), (1, 16), (16,), "none", "L0"),))


def two_layer_net() -> NetworkSpec:
    """Two TT layers with a ReLU: 32 = 2x16 -> 32 = 2x16 -> 16 = 1x16, ranks 16."""
    return NetworkSpec((TTLayerSpec((2, 16), (2, 16), (16,), "relu", "L0"),
                        TTLayerSpec((2, 16), (1, 16), (16,), "none", "L1")))


def random_data(n_train: int, n_test: int, features: int, seed: int = 0):
    """Learnable random data: the label is the argmax of a fixed random projection of the pixels."""
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((features, 10))
    x = rng.integers(0, 256, size=(n_train + n_test, features)).astype(np.uint8)
    y = np.argmax((x / 255.0 - 0.5) @ proj, axis=1).astype(np.int64)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
