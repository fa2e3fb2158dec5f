"""Training throughput (issue 4): ``train_samples_per_s_emulated`` and ``train_samples_per_s_float``.

* ``train_samples_per_s_emulated``: the host trainer (host/trainer.py), fixed point, on the emulated device
  (the golden executor), batch 32, Table 3.3 model at rank 16 with the prior: whole training steps (upload,
  forward and backward programs, softmax cross-entropy, Adam, eq. 3.4, scale tracking) on Fashion-MNIST
  images (the full training set when installed, else the committed subset: key ``train_data``), after a
  warm-up in which the exponents settle. The target is >= 333 (one 60,000-image epoch in
  <= 3 minutes).
* ``train_samples_per_s_float``: the PyTorch float32 reference (sw/tt/train.py), batch 32, one thread.

Wall-clock rates depend on other load on the machine; ``*_per_cpu_s`` divide by this process' CPU time
instead, which is what the wall clock approaches on a quiet machine. ``emulated_epoch_minutes_cpu`` is the
60,000-image epoch time that the CPU rate implies.
"""

from __future__ import annotations

import sys
import time

import numpy as np

SUBSET = "tests/data/fashion-mnist-subset"


def _timed(step, n_steps: int):
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n_steps):
        step(i)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(warmup: int = 60, steps: int = 90) -> dict:
    import torch
    from ultratrain.host.cli import load_training_data
    from ultratrain.host.data import DatasetError
    from ultratrain.host.trainer import TrainConfig, Trainer
    from ultratrain.sw.tt.train import FloatTrainer

    torch.set_num_threads(1)
    # The full training set when it is installed: the committed 3,000-image subset measured ~35 % slower per
    # step than the 60,000 images the target is about (a data-dependent cost not traced yet). Without the
    # dataset the subset stands in, and the key train_data says so.
    try:
        data, source = load_training_data(None), "fashion-mnist"
    except DatasetError:
        data, source = load_training_data(SUBSET), "subset"
    batch = 32
    n = len(data[1]) // batch

    def batches(i):
        idx = np.arange((i % n) * batch, (i % n) * batch + batch)
        return data[0][idx], data[1][idx]

    trainer = Trainer(TrainConfig(precision="fixed", prior=True), data, progress=False)
    for i in range(warmup):
        trainer.train_step(*batches(i))
    wall, cpu = _timed(lambda i: trainer.train_step(*batches(warmup + i)), steps)
    print(f"bench_train: emulated {steps * batch / wall:.0f} img/s wall, {steps * batch / cpu:.0f} img/s cpu",
          file=sys.stderr)
    ref = FloatTrainer(TrainConfig(precision="float", prior=True), data, dtype=torch.float32, log=lambda m: None)
    for i in range(warmup):
        ref.train_step(*batches(i))
    fwall, fcpu = _timed(lambda i: ref.train_step(*batches(warmup + i)), 4 * steps)
    return {
        "train_samples_per_s_emulated": round(steps * batch / wall, 1),
        "train_samples_per_cpu_s_emulated": round(steps * batch / cpu, 1),
        "emulated_epoch_minutes_cpu": round(60000 / (steps * batch / cpu) / 60, 2),
        "train_samples_per_s_float": round(4 * steps * batch / fwall, 1),
        "train_samples_per_cpu_s_float": round(4 * steps * batch / fcpu, 1),
        "train_data": source,
    }


if __name__ == "__main__":
    print(run())
