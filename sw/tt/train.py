"""Float training of the TT network in PyTorch (Algorithm 2 with the prior of eq. 3.3-3.4): the reference the
host trainer's ``--precision float`` runs are checked against, and the "standard floating point computation
in Pytorch" of Table 3.3.

It follows host/trainer.py step for step: the same initialization (host/model.py), data order
(``epoch_order``), learning-rate schedule, Adam, prior weight and pruning rule, so that a float run on the
emulated device and this loop agree to rounding (tests/sw/test_tt_train.py). Pruning removes slices
physically (ranks shrink) and keeps the Adam state of the surviving ones.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from ...host.trainer import TrainConfig, epoch_order, learning_rate
from .layers import TTNet
from .prior import lambda_update, prior_penalty, prune_keep_masks

__all__ = ["FloatTrainer", "train_float"]


class FloatTrainer:
    """Algorithm 2 in PyTorch. ``data = (train_x, train_y, test_x, test_y)``, images padded to (N, 896) uint8."""

    def __init__(self, config: TrainConfig, data, dtype=torch.float32, log=None):
        self.config, self.dtype = config, dtype
        self.train_x, self.train_y, self.test_x, self.test_y = data
        self.net = TTNet(config.network(), seed=config.seed, dtype=dtype)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
        self.lambdas = [lambda_update(layer.cores) for layer in self.net.layers]
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_y) // self.config.batch_size)

    @property
    def prior_weight(self) -> float:
        return self.config.prior_weight / len(self.train_y) if self.config.prior else 0.0

    def _x(self, images_u8) -> torch.Tensor:
        # pixels are exactly x / 256 (the u8 input format at exponent -8)
        return torch.as_tensor(np.asarray(images_u8), dtype=self.dtype) / 256.0

    def train_step(self, images_u8, labels) -> tuple[float, int]:
        logits = self.net(self._x(images_u8))
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        loss = F.cross_entropy(logits, y)
        objective = loss
        if self.config.prior:
            objective = loss + self.prior_weight * sum(prior_penalty(layer.cores, lam)
                                                       for layer, lam in zip(self.net.layers, self.lambdas))
        self.opt.zero_grad(set_to_none=True)
        objective.backward()
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(self.config, self.step, self.steps_per_epoch)
        self.opt.step()
        if self.config.prior:
            self.lambdas = [lambda_update(layer.cores) for layer in self.net.layers]
        self.step += 1
        return float(loss.detach()), int((logits.argmax(1) == y).sum())

    @torch.no_grad()
    def evaluate(self, images=None, labels=None, batch: int = 1000) -> tuple[float, float]:
        images = self.test_x if images is None else images
        labels = self.test_y if labels is None else labels
        total, correct = 0.0, 0
        for s in range(0, len(labels), batch):
            logits = self.net(self._x(images[s:s + batch]))
            y = torch.as_tensor(np.asarray(labels[s:s + batch]), dtype=torch.long)
            total += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        return total / len(labels), correct / len(labels)

    @torch.no_grad()
    def prune(self, threshold: float) -> list[dict]:
        """Remove the slices below the threshold (physically) and carry the optimizer state of the others."""
        events = []
        old_state = {id(p): s for p, s in self.opt.state.items()}
        for li, (layer, lams) in enumerate(zip(self.net.layers, self.lambdas)):
            for n, keep in enumerate(prune_keep_masks(lams, threshold), start=1):
                if keep.all():
                    continue
                for k in torch.nonzero(~keep).flatten().tolist():
                    events.append({"layer": li, "rank": n, "slice": k, "lam": float(lams[n - 1][k])})
                for idx, index in ((n - 1, (Ellipsis, keep)), (n, (keep,))):
                    p_old = layer.cores[idx]
                    p_new = torch.nn.Parameter(p_old.data[index].clone())
                    if id(p_old) in old_state:
                        st = old_state.pop(id(p_old))
                        old_state[id(p_new)] = {key: (v[index].clone() if torch.is_tensor(v) and v.dim() else v)
                                                for key, v in st.items()}
                    layer.cores[idx] = p_new
        new_opt = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, betas=(0.9, 0.999), eps=1e-8)
        for p in self.net.parameters():
            if id(p) in old_state:
                new_opt.state[p] = old_state[id(p)]
        self.opt = new_opt
        self.lambdas = [lambda_update(layer.cores) for layer in self.net.layers]
        return events

    def train_epoch(self, progress: bool = False) -> dict:
        cfg = self.config
        order = epoch_order(cfg.seed, self.epoch, len(self.train_y))
        start = time.time()
        total_loss, total_correct = 0.0, 0
        iterator = range(self.steps_per_epoch)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False, file=sys.stderr)
        for b in iterator:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            loss, correct = self.train_step(self.train_x[idx], self.train_y[idx])
            total_loss += loss * len(idx)
            total_correct += correct
        seconds = time.time() - start
        pruned = self.prune(cfg.prune_threshold) if cfg.prior and cfg.prune_threshold > 0 else []
        test_loss, test_acc = self.evaluate()
        self.epoch += 1
        n = len(self.train_y)
        ranks = self.net.ranks()
        from ...host.model import memory_bits
        return {"epoch": self.epoch, "step": self.step, "lr": learning_rate(cfg, self.step, self.steps_per_epoch),
                "train_loss": total_loss / n, "train_acc": total_correct / n, "test_loss": test_loss,
                "test_acc": test_acc, "ranks": ranks, "params": self.net.n_params(),
                "memory_bits": memory_bits(self.net.spec, ranks, "float"), "pruned": pruned,
                "epoch_seconds": time.time() - start, "train_samples_per_s": n / seconds}

    def fit(self, progress: bool = False) -> list[dict]:
        while self.epoch < self.config.epochs:
            m = self.train_epoch(progress)
            self.history.append(m)
            self.log(f"[torch float] epoch {m['epoch']}: loss {m['train_loss']:.4f} train {m['train_acc']:.4f} "
                     f"test {m['test_acc']:.4f} ranks {m['ranks']} params {m['params']} "
                     f"({m['train_samples_per_s']:.0f} img/s)")
        return self.history


def train_float(config: TrainConfig, data, dtype=torch.float32, progress: bool = False, log=None) -> list[dict]:
    """Run :class:`FloatTrainer` to ``config.epochs``; returns the per-epoch metrics."""
    return FloatTrainer(config, data, dtype=dtype, log=log).fit(progress)
