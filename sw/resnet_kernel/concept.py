"""The concept class of Allen-Zhu & Li, "What can ResNet learn efficiently, going beyond kernels?" (seed 003).

Concept 1 (section 5): H(x) = F(x) + alpha G(F(x)) with F, G : two-layer networks with smooth
activations, F_r(x) = sum_i a*_{F,r,i} phi_{r,i}(<w*_{r,i}, x>), G_r(h) = sum_i a*_{G,r,i} psi_{r,i}(<v*_{r,i}, h>),
||w*|| = ||v*|| = 1/sqrt(2) and a* in [-1, 1]. :class:`SmoothConcept` draws a random member.

Section 8.1's experiment uses a parity instance: x ~ U{-1, +1}^30, k = 15 outputs,
F(x) = (x1 x2, x3 x4, ..., x29 x30) and G_i(y) = (-1)^i y1 y2 y3 y4 (i = 1..15), alpha = 0.3; Figure 3
generalises it to H = beta F + alpha G(F). A predictor that learns F but not G has error k alpha^2 = 1.35
(the error is the squared Euclidean distance summed over the k outputs); the zero predictor has
k (beta^2 + alpha^2) = 16.35.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ParityConcept:
    """Section 8.1's target: H(x) = beta F(x) + alpha G(F(x)) with degree-2 and degree-4 parities."""

    dim: int = 30
    alpha: float = 0.3
    beta: float = 1.0

    def __post_init__(self):
        if self.dim < 8 or self.dim % 2:
            raise ValueError(f"dim must be even and >= 8 (G reads F_1..F_4), got {self.dim}")

    @property
    def outputs(self) -> int:
        return self.dim // 2

    def base(self, x: np.ndarray) -> np.ndarray:
        """F(x) = (x1 x2, x3 x4, ...)."""
        return x[:, 0::2] * x[:, 1::2]

    def composite(self, f: np.ndarray) -> np.ndarray:
        """G(y)_i = (-1)^i y1 y2 y3 y4 for i = 1..k (1-based, so the first output has sign -1)."""
        prod = np.prod(f[:, :4], axis=1, keepdims=True)
        signs = (-1.0) ** np.arange(1, self.outputs + 1)
        return prod * signs[None, :]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        f = self.base(x)
        return self.beta * f + self.alpha * self.composite(f)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n inputs uniform on {-1, +1}^dim and their labels."""
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        x = rng.choice([-1.0, 1.0], size=(n, self.dim))
        return x, self(x)

    @property
    def base_only_error(self) -> float:
        """Test error of the predictor beta F (learned F, missed G): k alpha^2."""
        return self.outputs * self.alpha ** 2

    @property
    def zero_error(self) -> float:
        return self.outputs * (self.alpha ** 2 + self.beta ** 2)


def _smooth_activations():
    return [np.tanh, np.sin, lambda z: z ** 2 / 2, lambda z: np.exp(z) - 1, lambda z: np.cos(z) - 1 + z]


@dataclass
class SmoothConcept:
    """A random member of Concept 1 with smooth activations drawn from a small dictionary.

    Inputs are unit vectors (the paper assumes ||x|| = 1); F is rescaled so that E||F(x)||^2 = 1 on the
    sphere (the paper assumes ||F(x)|| = 1), which keeps G's inputs of order one.
    """

    dim: int
    outputs: int
    width_f: int = 4
    width_g: int = 4
    alpha: float = 0.3
    seed: int = 0
    _params: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.dim < 1 or self.outputs < 1:
            raise ValueError(f"dim and outputs must be positive, got {self.dim}, {self.outputs}")
        rng = np.random.default_rng(self.seed)
        acts = _smooth_activations()

        def unit(shape):
            v = rng.normal(size=shape)
            return v / np.linalg.norm(v, axis=-1, keepdims=True) / np.sqrt(2)

        self._params = {
            "wF": unit((self.outputs, self.width_f, self.dim)),
            "aF": rng.uniform(-1, 1, size=(self.outputs, self.width_f)),
            "actF": rng.integers(len(acts), size=(self.outputs, self.width_f)),
            "vG": unit((self.outputs, self.width_g, self.outputs)),
            "aG": rng.uniform(-1, 1, size=(self.outputs, self.width_g)),
            "actG": rng.integers(len(acts), size=(self.outputs, self.width_g)),
            "scale": 1.0,
        }
        x = self.sample_inputs(4000, np.random.default_rng(self.seed + 1))
        self._params["scale"] = 1.0 / np.sqrt(np.mean(np.sum(self._raw_base(x) ** 2, axis=1)))

    def _apply(self, z, act_idx, coef):
        acts = _smooth_activations()
        out = np.zeros(z.shape[:-1])
        for j, act in enumerate(acts):
            mask = act_idx == j
            out += np.sum(np.where(mask, coef * act(z), 0.0), axis=-1)
        return out

    def _raw_base(self, x):
        p = self._params
        z = np.einsum("rid,nd->nri", p["wF"], x)
        return self._apply(z, p["actF"][None], p["aF"][None])

    def base(self, x: np.ndarray) -> np.ndarray:
        return self._params["scale"] * self._raw_base(x)

    def composite(self, f: np.ndarray) -> np.ndarray:
        p = self._params
        z = np.einsum("rik,nk->nri", p["vG"], f)
        return self._apply(z, p["actG"][None], p["aG"][None])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        f = self.base(x)
        return f + self.alpha * self.composite(f)

    def sample_inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        x = rng.normal(size=(n, self.dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = self.sample_inputs(n, rng)
        return x, self(x)
