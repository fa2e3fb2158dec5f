"""The training pipeline of thesis section 2.4.3: a MAP run (Adam on the negative log posterior U, eq. 2.14) with rank
shrinking by the rule of section 2.2.4, then SGHMC (Algorithm 1) from the MAP point and the posterior predictive
from the T samples:

* predictive probability ``p(y | x, D) ~= 1/T sum_t softmax(g(x, Theta(t)))_y``;
* predictive log-likelihood ``LL = 1/N_test sum_n log p(y_n | x_n, D)`` (Table 2.1's "LL", larger is better) and
  accuracy of ``argmax_y p(y | x, D)``. The MAP columns use ``p(y | x, Theta_MAP)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .likelihoods import stochastic_potential
from .models import count_parameters, layer_ranks
from .sghmc import SGHMC, autograd_gradient
from .tensor_formats import tensorized_layers

__all__ = ["MapConfig", "SghmcConfig", "standardize_images", "predict_proba", "predictive_metrics", "train_map",
           "sample_posterior", "recalibrate_batchnorm"]

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530  # pixel statistics of the Fashion-MNIST training set


@dataclass
class MapConfig:
    """Adam MAP run (section 2.4.3). The thesis gives none of these numbers."""
    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-3
    lambda_lr: float = 1e-2  # Adam step for the log-precisions lambda_hat
    cosine: bool = False  # cosine decay of both learning rates to 0 (off: plain Adam, as in the thesis)
    prune_eps: float = 0.05  # eps of the threshold log(alpha + n_r/2) - log(beta) - eps
    prune_from_epoch: int = 2  # prune after every epoch from this one on (BF models only)
    default_precision: float = 1.0  # N(0, 1/precision) on every parameter without a low-rank prior
    # Epochs after ``epochs`` with pruning off and both learning rates cosine-annealed to 0: the ranks are fixed by
    # then, and annealing settles the MAP point that SGHMC starts from (0: the thesis' plain Adam run).
    anneal_epochs: int = 0

    def __post_init__(self):
        if self.anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be >= 0, got {self.anneal_epochs}")
        if self.anneal_epochs and self.cosine:
            raise ValueError("anneal_epochs and cosine both anneal the learning rate: choose one")


@dataclass
class SghmcConfig:
    """Algorithm 1 settings (thesis: T = 450; eps, m, batch and burn-in are not given)."""
    num_samples: int = 450
    burn_in: int = 50
    num_inner: int = 10
    step_size: float = 1e-4  # 1e-3 degraded single samples badly on the full set (N = 60000)
    batch_size: int = 100
    batch_per_step: bool = False
    diffusion: float = 0.0

    def __post_init__(self):
        for name in ("num_samples", "num_inner", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.burn_in < 0:
            raise ValueError(f"burn_in must be >= 0, got {self.burn_in}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive, got {self.step_size}")
        if self.diffusion < 0:
            raise ValueError(f"diffusion must be >= 0, got {self.diffusion}")


def standardize_images(images: np.ndarray, mean: float = FASHION_MEAN, std: float = FASHION_STD) -> torch.Tensor:
    """uint8 images ``(N, H, W)`` or ``(N, C, H, W)`` -> float32, scaled to [0, 1] and standardized."""
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return (x - mean) / std


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Class probabilities (float64) of ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    out = torch.cat([torch.softmax(model(x[i:i + batch_size]).double(), dim=1) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def predictive_metrics(probs: torch.Tensor, y: torch.Tensor) -> dict:
    """``{"ll": mean log p(y|x), "accuracy": percent}`` of predictive probabilities ``probs``."""
    if probs.shape[0] != y.shape[0]:
        raise ValueError(f"probs has {probs.shape[0]} rows but y has {y.shape[0]} labels")
    p_true = probs.gather(1, y.long()[:, None]).squeeze(1).clamp_min(1e-300)
    return {"ll": float(torch.log(p_true).mean()),
            "accuracy": 100.0 * float((probs.argmax(dim=1) == y.long()).double().mean())}


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> None:
    """Recompute batch-norm running statistics as exact averages over ``x`` (no-op without batch norm).

    The exponential running averages lag behind the weights after few or large steps; the MAP point is evaluated
    with statistics of its own weights.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i:i + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def _is_hyper(name: str) -> bool:
    return "log_lambda" in name


def _make_optimizer(model: nn.Module, cfg: MapConfig) -> torch.optim.Optimizer:
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not _is_hyper(n)], "lr": cfg.lr, "base_lr": cfg.lr}]
    hyper = [p for n, p in named if _is_hyper(n)]
    if hyper:
        groups.append({"params": hyper, "lr": cfg.lambda_lr, "base_lr": cfg.lambda_lr})
    return torch.optim.Adam(groups)


def _scale_learning_rates(opt: torch.optim.Optimizer, step: int, steps: int) -> None:
    """Cosine schedule: every group's rate at ``step`` of ``steps``, from its ``base_lr`` down to 0."""
    scale = 0.5 * (1 + math.cos(math.pi * step / steps))
    for group in opt.param_groups:
        group["lr"] = group["base_lr"] * scale


def train_map(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: MapConfig, seed: int = 0,
              progress=None, evaluate=None) -> list[dict]:
    """Minimize ``U / N`` with Adam; for models with a low-rank prior, prune after each epoch from
    ``cfg.prune_from_epoch`` on. Returns one record per epoch (ranks, parameters, objective, ``evaluate(model)``).

    The optimizer is rebuilt after a pruning step (the tensors change shape); Adam's moments restart.
    """
    n = len(y)
    if n == 0:
        raise ValueError("empty training set")
    gen = torch.Generator().manual_seed(seed)
    bf = any(getattr(layer, "low_rank_prior", False) or getattr(getattr(layer, "tt", None), "low_rank_prior", False)
             for _, layer in tensorized_layers(model))
    opt = _make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    anneal_steps = cfg.anneal_epochs * steps_per_epoch
    last_epoch = cfg.epochs + cfg.anneal_epochs
    history, step = [], 0
    epochs = range(last_epoch)
    if progress is not None:
        epochs = progress(epochs)
    for epoch in epochs:
        model.train()
        perm = torch.randperm(n, generator=gen)
        running, start = 0.0, time.time()
        for i in range(0, n, cfg.batch_size):
            if step >= total_steps:                 # annealing phase
                _scale_learning_rates(opt, step - total_steps, anneal_steps)
            elif cfg.cosine:
                _scale_learning_rates(opt, step, total_steps)
            idx = perm[i:i + cfg.batch_size]
            loss = stochastic_potential(model, x[idx], y[idx], n, cfg.default_precision) / n
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach())
            step += 1
        record = {"epoch": epoch + 1, "objective": running / steps_per_epoch, "seconds": time.time() - start}
        if bf and cfg.prune_from_epoch <= epoch + 1 <= cfg.epochs:
            removed = sum(len(r) for _, layer in tensorized_layers(model) for r in layer.prune(cfg.prune_eps))
            record["removed_slices"] = removed
            if removed:
                opt_state_lr = [g["lr"] for g in opt.param_groups]
                opt = _make_optimizer(model, cfg)
                for group, lr in zip(opt.param_groups, opt_state_lr):
                    group["lr"] = lr
        if evaluate is not None or epoch + 1 == last_epoch:
            recalibrate_batchnorm(model, x)
        record["ranks"] = layer_ranks(model)
        record["parameters"] = count_parameters(model)
        if evaluate is not None:
            record.update(evaluate(model))
        history.append(record)
    return history


def sample_posterior(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
                     y_test: torch.Tensor, cfg: SghmcConfig, seed: int = 0, default_precision: float = 1.0,
                     progress=None) -> dict:
    """Run Algorithm 1 from the model's current (MAP) parameters and evaluate the posterior predictive.

    Predictions are accumulated online (no copies of the T parameter sets are kept). Returns LL and accuracy of
    the T-sample average, their evolution with the number of samples, and the thermostat's diagnostics.
    """
    n = len(y)
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]

    def draw_batch():
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        return x[idx], y[idx]

    def energy(batch):
        return stochastic_potential(model, batch[0], batch[1], n, default_precision)

    sampler = SGHMC(params, cfg.step_size, cfg.num_inner, diffusion=cfg.diffusion,
                    generator=torch.Generator().manual_seed(seed + 1))
    prob_sum = torch.zeros(len(y_test), int(predict_proba(model, x_test[:1]).shape[1]), dtype=torch.float64)
    trace = {"samples": [], "ll": [], "accuracy": [], "single_ll": [], "single_accuracy": []}
    checkpoints = set(np.unique(np.geomspace(1, cfg.num_samples, 25).astype(int)).tolist())

    def collect(t):
        nonlocal prob_sum
        probs = predict_proba(model, x_test)
        prob_sum += probs
        if t + 1 in checkpoints:
            avg = predictive_metrics(prob_sum / (t + 1), y_test)
            single = predictive_metrics(probs, y_test)
            trace["samples"].append(t + 1)
            trace["ll"].append(avg["ll"])
            trace["accuracy"].append(avg["accuracy"])
            trace["single_ll"].append(single["ll"])
            trace["single_accuracy"].append(single["accuracy"])

    model.train()
    start = time.time()
    sampler.sample(autograd_gradient(energy, params), draw_batch, cfg.num_samples, cfg.burn_in, callback=collect,
                   batch_per_step=cfg.batch_per_step, progress=progress)
    final = predictive_metrics(prob_sum / cfg.num_samples, y_test)
    kinetic = np.asarray(sampler.kinetic_trace)
    return {**final, "trace": trace, "seconds": time.time() - start, "config": asdict(cfg),
            "mean_kinetic_per_dim": float(kinetic.mean()), "final_friction": sampler.c,
            "mean_friction": float(np.mean(sampler.friction_trace))}
