"""The networks of thesis section 2.4: the 784x500x10 Fashion-MNIST MLP (2.4.1) and the 6-layer CIFAR-10 CNN (2.4.2)
in dense, tensor-train, Tucker and "BF" (Bayesian low-rank prior) variants, as in Table 2.1.

The thesis gives the tensor orders (FC1 8th order and FC2 4th order for TT, 4th and 3rd order for Tucker) but not
the mode sizes or the initial ranks. The choices below (recorded in docs/theory/chapter2_bayesian_tt.md) put the
parameter counts next to Table 2.1's: TT-NN 2.61e4 (thesis 2.63e4), Tucker-NN 2.56e5 (2.57e5). The BF variants start
from the same shapes and ranks and shrink them during the MAP run (section 2.4.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .tensor_formats import TTConv2d, TTLinear, TuckerLinear, tensorized_layers

__all__ = ["FASHION_KINDS", "CIFAR_KINDS", "DENSE_FASHION_PARAMETERS", "FashionConfig", "fashion_model",
           "cifar_model", "count_parameters", "layer_ranks", "balanced_factors"]

FASHION_KINDS = ("NN", "TT-NN", "BF-TT-NN", "Tucker-NN", "BF-Tucker-NN")
CIFAR_KINDS = ("CNN", "TT-CNN", "BF-TT-CNN")
DENSE_FASHION_PARAMETERS = 784 * 500 + 500 + 500 * 10 + 10  # 3.97e5, Table 2.1's "1x"


@dataclass
class FashionConfig:
    """Shapes and prior constants of the Fashion-MNIST models (section 2.4.1)."""
    # TT: FC1 784 = 4*7*4*7 (rows of the 28x28 image split 4*7, then columns), 500 = 5*5*4*5 -> 8th order tensor
    tt_fc1_in: tuple = (4, 7, 4, 7)
    tt_fc1_out: tuple = (5, 5, 4, 5)
    tt_fc1_ranks: tuple = (20, 20, 20)
    # FC2 500 = 20*25, 10 = 2*5 -> 4th order tensor
    tt_fc2_in: tuple = (20, 25)
    tt_fc2_out: tuple = (2, 5)
    tt_fc2_ranks: tuple = (25,)
    # Tucker: FC1 as 28x28x20x25 (4th order), FC2 as 20x25x10 (3rd order)
    tucker_fc1_in: tuple = (28, 28)
    tucker_fc1_out: tuple = (20, 25)
    tucker_fc1_ranks: tuple = (28, 28, 20, 16)
    tucker_fc2_in: tuple = (20, 25)
    tucker_fc2_out: tuple = (10,)
    tucker_fc2_ranks: tuple = (12, 12, 10)
    # Gamma(alpha, beta) (rate) hyper-prior of the BF models and the Tucker core variance scale of (2.17).
    # alpha for TT: with alpha = 1 the MAP run pruned nothing in 10 epochs, with alpha = 1000 it cut the middle
    # rank of FC1 to 1; 300 was the first choice. 240 was chosen on the validation split (alpha 200 on 50,000
    # training images, scaled by 60,000 / 50,000 to keep the prior-to-likelihood balance on the full set) with
    # the 120-epoch BF-TT-NN MAP run (docs/theory/chapter2_bayesian_tt.md, "Longer MAP runs"). Only the BF
    # models read it (the TT-NN row has no hyper-prior).
    alpha: float = 240.0
    beta: float = 1.0
    tucker_alpha: float = 1.0
    tucker_beta: float = 1.0
    tucker_core_scale: float = 1.0
    tucker_core_precision: str = "product"   # eq. (2.17); "geometric" is this project's variant (priors.py)
    hidden: int = field(default=500, init=False)


def fashion_model(kind: str, config: FashionConfig | None = None, seed: int = 0) -> nn.Sequential:
    """Two-layer network 784 -> 500 (ReLU) -> 10 of section 2.4.1 in the format named by ``kind``.

    ``kind`` is one of :data:`FASHION_KINDS`. The output is the logits (softmax lives in the likelihood).
    """
    if kind not in FASHION_KINDS:
        raise ValueError(f"kind must be one of {FASHION_KINDS}, got {kind!r}")
    c = config or FashionConfig()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # nn.Linear's own initialization
    bf = kind.startswith("BF-")
    if kind == "NN":
        fc1, fc2 = nn.Linear(784, 500), nn.Linear(500, 10)
    elif kind.endswith("TT-NN"):
        fc1 = TTLinear(c.tt_fc1_in, c.tt_fc1_out, c.tt_fc1_ranks, low_rank_prior=bf, alpha=c.alpha, beta=c.beta,
                       generator=gen)
        fc2 = TTLinear(c.tt_fc2_in, c.tt_fc2_out, c.tt_fc2_ranks, low_rank_prior=bf, alpha=c.alpha, beta=c.beta,
                       generator=gen)
    else:
        kw = dict(low_rank_prior=bf, alpha=c.tucker_alpha, beta=c.tucker_beta, core_scale=c.tucker_core_scale,
                  generator=gen, core_precision=c.tucker_core_precision)
        fc1 = TuckerLinear(c.tucker_fc1_in, c.tucker_fc1_out, c.tucker_fc1_ranks, **kw)
        fc2 = TuckerLinear(c.tucker_fc2_in, c.tucker_fc2_out, c.tucker_fc2_ranks, **kw)
    return nn.Sequential(fc1, nn.ReLU(), fc2)


def balanced_factors(n: int, k: int) -> tuple[int, ...]:
    """``k`` integers with product ``n``, as equal as the prime factors allow (largest first)."""
    if n < 1 or k < 1:
        raise ValueError(f"n and k must be >= 1, got n={n}, k={k}")
    primes, m, p = [], n, 2
    while m > 1:
        while m % p == 0:
            primes.append(p)
            m //= p
        p += 1
    factors = [1] * k
    for prime in sorted(primes, reverse=True):
        factors[factors.index(min(factors))] *= prime
    return tuple(sorted(factors, reverse=True))


def cifar_model(kind: str, width_scale: float = 1.0, image_size: int = 32, conv_rank: int | None = None,
                fc_rank: int | None = None,
                alpha: float = 1.0, beta: float = 1.0, seed: int = 0) -> nn.Sequential:
    """The 6-layer CNN of section 2.4.2: 4 conv 3x3 (128, 256, 256, 256 channels; pad 1), max-pool 2x2 after
    the 2nd and 4th, FC 512 and FC 10; batch norm and ReLU after every conv and after FC1.

    ``kind`` is one of :data:`CIFAR_KINDS`; TT layers replace all four convolutions (eq. 2.2, ``K = 2``) and both
    FC layers (eq. 2.1; FC1 ``K = 4``, FC2 ``K = 2``) as in Fig. 2.2(c). ``width_scale`` shrinks every width (the
    tests run the path at 1/16 width); ``width_scale=1`` is the thesis network: 9.88e6 parameters dense (thesis
    9.91e6), 6.85e5 with the default TT ranks (thesis TT-CNN 6.93e5). The default ranks, 48 for the convolutions and
    64 for the FC layers, are scaled by ``width_scale`` too.
    """
    if kind not in CIFAR_KINDS:
        raise ValueError(f"kind must be one of {CIFAR_KINDS}, got {kind!r}")
    if not width_scale > 0:
        raise ValueError(f"width_scale must be > 0, got {width_scale}")
    if image_size % 4 or image_size < 4:
        raise ValueError(f"image_size must be a positive multiple of 4, got {image_size}")
    conv_rank = conv_rank if conv_rank is not None else max(4, int(round(48 * width_scale)))
    fc_rank = fc_rank if fc_rank is not None else max(4, int(round(64 * width_scale)))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    channels = [3] + [max(2, int(round(c * width_scale))) for c in (128, 256, 256, 256)]
    hidden = max(4, int(round(512 * width_scale)))
    flat = channels[-1] * (image_size // 4) ** 2
    tt = kind != "CNN"
    bf = kind.startswith("BF-")
    layers: list[nn.Module] = []
    for i in range(4):
        c_in, c_out = channels[i], channels[i + 1]
        if tt:
            layers.append(TTConv2d(balanced_factors(c_in, 2), balanced_factors(c_out, 2), conv_rank, kernel_size=3,
                                   padding=1, low_rank_prior=bf, alpha=alpha, beta=beta, generator=gen))
        else:
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
        layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
        if i in (1, 3):
            layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    if tt:
        layers.append(TTLinear(balanced_factors(flat, 4), balanced_factors(hidden, 4), fc_rank, low_rank_prior=bf,
                               alpha=alpha, beta=beta, generator=gen))
    else:
        layers.append(nn.Linear(flat, hidden))
    layers += [nn.BatchNorm1d(hidden), nn.ReLU()]
    if tt:
        layers.append(TTLinear(balanced_factors(hidden, 2), (2, 5), fc_rank, low_rank_prior=bf, alpha=alpha, beta=beta,
                               generator=gen))
    else:
        layers.append(nn.Linear(hidden, 10))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Trainable weights, biases and batch-norm affine parameters; the rank hyper-parameters ``lambda`` are not
    counted (they are not needed at prediction time)."""
    hyper = set()
    for _, layer in tensorized_layers(model):
        lams = getattr(layer, "log_lambdas", None) or getattr(getattr(layer, "tt", None), "log_lambdas", None)
        if lams is None and hasattr(layer, "log_lambda"):
            lams = [layer.log_lambda]
        hyper.update(id(p) for p in (lams or []))
    return sum(p.numel() for p in model.parameters() if id(p) not in hyper)


def layer_ranks(model: nn.Module) -> dict[str, list[int]]:
    """Current ranks of every tensorized layer (TT interior ranks, Tucker multilinear ranks)."""
    return {name: list(layer.ranks) for name, layer in tensorized_layers(model)}
