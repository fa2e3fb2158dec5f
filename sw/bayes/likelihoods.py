"""Likelihoods of thesis section 2.2.3 and the potential energy U of eq. (2.10), (2.11) and (2.14).

* Classification (2.4)-(2.5): ``-log P(y_i | Theta) = <y_i, -log softmax(f(x_i; Theta))>`` (one-hot ``y_i``).
* Regression (2.6)-(2.7): ``-log P(y_i | Theta) = (y_i - f(x_i; Theta))^2 / (2 sigma^2)`` + constant; the text calls
  ``sigma`` "the variance" while using it as a standard deviation: we take it as the standard deviation. A
  learned noise precision ``tau = exp(tau_hat)`` with the log-Gamma prior (2.20) is supported as well.
* Potential: ``U(Theta) = sum_n loss(y_n, g(x_n, Theta)) - log P(Theta)`` (2.14) and its stochastic estimate on a
  mini-batch ``B``: ``U~ = N / |B| sum_{i in B} loss_i - log P(Theta)`` (2.11).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import priors
from .tensor_formats import tensorized_layers

__all__ = ["classification_nll", "regression_nll", "model_neg_log_prior", "potential", "stochastic_potential"]


def classification_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed ``-log P(y_i | Theta)`` of eq. (2.5); ``targets`` are class indices or one-hot/probability rows."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, classes), got shape {tuple(logits.shape)}")
    log_probs = F.log_softmax(logits, dim=1)
    if targets.dim() == 1:
        if targets.shape[0] != logits.shape[0]:
            raise ValueError("targets and logits disagree on the batch size")
        return -log_probs.gather(1, targets.long()[:, None]).sum()
    if targets.shape != logits.shape:
        raise ValueError(f"one-hot targets must have the shape of logits {tuple(logits.shape)}, "
                         f"got {tuple(targets.shape)}")
    return -(targets * log_probs).sum()


def regression_nll(prediction: torch.Tensor, target: torch.Tensor, sigma: float | None = 1.0,
                   log_tau: torch.Tensor | None = None) -> torch.Tensor:
    """Summed Gaussian ``-log P(y_i | Theta)`` (eq. 2.7) including the normalizing constant.

    Give either a fixed noise standard deviation ``sigma`` or a noise log-precision ``log_tau`` (then ``sigma``
    is ignored).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    sq = (target - prediction) ** 2
    n = sq.numel()
    if log_tau is not None:
        return 0.5 * torch.exp(log_tau) * sq.sum() - 0.5 * n * log_tau + n * 0.5 * math.log(2 * math.pi)
    if sigma is None or not sigma > 0:
        raise ValueError(f"sigma must be > 0 when log_tau is not given, got {sigma}")
    return 0.5 * sq.sum() / sigma ** 2 + n * (math.log(sigma) + 0.5 * math.log(2 * math.pi))


def model_neg_log_prior(model: nn.Module, default_precision: float = 1.0) -> torch.Tensor:
    """``-log P(Theta)`` of a whole network.

    Tensorized layers contribute their own low-rank prior (eq. 2.8, 2.16-2.17, 2.18); every other parameter
    (biases, dense weights, batch-norm affine parameters) gets ``N(0, 1 / default_precision)``.
    """
    if not default_precision > 0:
        raise ValueError(f"default_precision must be > 0, got {default_precision}")
    owned = set()
    params = list(model.parameters())
    total = params[0].new_zeros(()) if params else torch.zeros(())
    for _, layer in tensorized_layers(model):
        total = total + layer.neg_log_prior()
        owned.update(id(p) for p in layer.prior_parameters())
    log_prec = math.log(default_precision)
    for p in params:
        if id(p) not in owned:
            total = total + priors.gaussian_neg_log_pdf(p, log_prec)
    return total


def potential(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, default_precision: float = 1.0,
              likelihood: str = "classification", sigma: float = 1.0) -> torch.Tensor:
    """Full-data ``U(Theta)`` of eq. (2.14) on the given ``(inputs, targets)``."""
    return stochastic_potential(model, inputs, targets, len(targets), default_precision, likelihood, sigma)


def stochastic_potential(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, dataset_size: int,
                         default_precision: float = 1.0, likelihood: str = "classification",
                         sigma: float = 1.0) -> torch.Tensor:
    """Unbiased mini-batch estimate ``U~(Theta)`` of eq. (2.11): ``N/|B| sum_B loss - log P(Theta)``."""
    if dataset_size < len(targets) or len(targets) == 0:
        raise ValueError(f"dataset_size ({dataset_size}) must be >= the batch size ({len(targets)}) > 0")
    out = model(inputs)
    if likelihood == "classification":
        nll = classification_nll(out, targets)
    elif likelihood == "regression":
        nll = regression_nll(out.reshape(targets.shape), targets, sigma=sigma)
    else:
        raise ValueError(f"likelihood must be 'classification' or 'regression', got {likelihood!r}")
    return dataset_size / len(targets) * nll + model_neg_log_prior(model, default_precision)
