"""CIFAR-10 input path for Table 2.1's CNN rows (thesis section 2.4.2).

CIFAR-10 is not on our machines; :func:`load_cifar10` reads a user's copy in the official "python version" layout
(``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, pickled dicts with ``b"data"`` uint8 ``(N, 3072)`` and
``b"labels"``). :func:`write_synthetic_cifar` writes a tiny synthetic image set in the same layout so the tests
exercise the whole path (loader, TT convolutions, MAP, SGHMC) without the real data.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "load_cifar10", "cifar_tensors", "write_synthetic_cifar"]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"


def _resolve(directory) -> Path:
    directory = Path(directory)
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    if not directory.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder {directory} does not exist")
    return directory


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (missing key {err})") from err
    if data.ndim != 2 or data.shape[1] % 3 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"{path}: data {data.shape} and labels {labels.shape} do not form a CIFAR batch")
    side = int(round((data.shape[1] // 3) ** 0.5))
    if 3 * side * side != data.shape[1]:
        raise ValueError(f"{path}: rows of {data.shape[1]} bytes are not square RGB images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, side, side), labels


def load_cifar10(directory, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, H, W), labels int64 (N,))`` of one split from the python-version batches.

    A training split may have fewer than five batch files (the synthetic test set has one).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    directory = _resolve(directory)
    names = _TRAIN_FILES if split == "train" else (_TEST_FILE,)
    paths = [directory / name for name in names if (directory / name).is_file()]
    if not paths:
        raise FileNotFoundError(f"no CIFAR-10 {split} batches ({', '.join(names)}) in {directory}")
    parts = [_read_batch(p) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cifar_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel standardized float32 images and int64 labels."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    mean = torch.tensor(CIFAR_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).reshape(1, 3, 1, 1)
    return (x - mean) / std, torch.from_numpy(labels.astype(np.int64))


def write_synthetic_cifar(directory, n_train: int = 200, n_test: int = 100, side: int = 32, seed: int = 0) -> Path:
    """Write a learnable 10-class image set in the CIFAR-10 python layout (one train batch + test batch).

    Class ``c`` is a bright square at one of 10 positions with a class-specific colour, on noise.
    """
    if n_train < 1 or n_test < 1 or side < 8:
        raise ValueError("n_train, n_test must be >= 1 and side >= 8")
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    colours = rng.integers(60, 255, size=(10, 3))
    cell = side // 4

    def make(n):
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 90, size=(n, 3, side, side)).astype(np.uint8)
        for i, c in enumerate(labels):
            r, q = divmod(int(c), 4)
            images[i, :, r * cell:(r + 1) * cell, q * cell:(q + 1) * cell] = colours[c][:, None, None]
        return {b"data": images.reshape(n, -1), b"labels": labels.tolist()}

    for name, n in (("data_batch_1", n_train), (_TEST_FILE, n_test)):
        with open(directory / name, "wb") as f:
            pickle.dump(make(n), f)
    return directory
