"""The trainable state of a TT network on the host (thesis section 3.3-3.4, Algorithm 2), numpy only.

What lives here is what the ARM core keeps between device calls:

* the BinaryConnect high-precision buffer of every TT core (eq. 3.5), stored in *unit* scale: the buffer ``u``
  holds values in the 4-bit weight format's range, the device gets ``q = WEIGHT.quantize(u)`` (eq. 3.6) and
  the core's fixed power-of-two exponent ``-3 - s_k``, so the real core is ``Q(u) * 2**-s_k``;
* the biases (real values; quantized to 8 bits with a per-layer exponent at upload, Table 3.2);
* the rank parameters lambda of the low-rank prior (eq. 3.3), updated in closed form (eq. 3.4);
* the rank masks: a pruned slice is zeroed and frozen. The device keeps ranks that are multiples of 16
  (sim/compiler.py rejects others), so pruning never changes the compiled shapes; the *effective* ranks,
  parameter counts and model memory are reported from the masks;
* a numpy Adam (the thesis' optimizer) acting on the buffer.

Decisions (docs/training.md gives the reasons):

* Fixed per-core weight exponents (section 3.4.3 "the scaling factors of the weights are fixed"): ``s_k`` is
  chosen once from the layer shape so that the initial dense weight has He variance (``2 / fan_in``, or
  ``1 / fan_in`` for the logits layer). Every core's buffer then lives in the same unit range and one Adam
  learning rate fits all cores.
* The prior acts on the unit buffers. Eq. 3.3 and 3.4 are invariant to a fixed per-core scale (lambda
  scales with it), so this is the same regularizer as on the real cores. It is weighted ``1 / N_train``
  against the mean cross-entropy, which is eq. 3.2 + 3.3 divided by the number of training samples (the
  negative log posterior per sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..sim.compiler import NetworkSpec
from ..sim.formats import BC_CLIP, WEIGHT, Format

__all__ = ["INIT_BOUND", "N_CLASSES", "weight_shifts", "init_unit_cores", "Adam", "lambda_update",
           "prior_value", "prior_grad", "TTModel", "effective_params", "memory_bits", "parse_ranks"]

N_CLASSES = 10                 # Fashion-MNIST; the network's extra outputs (16 - 10) are ignored
INIT_BOUND = BC_CLIP           # "randomly uniformly initialize weights" over the whole clipped weight range
LAMBDA_FLOOR = 1e-30           # eq. 3.4 of an all-zero slice is 0: keep the division finite


def weight_shifts(spec: NetworkSpec, init_bound: float = INIT_BOUND) -> list[list[int]]:
    """Per-core power-of-two shifts ``s_k`` so that the initial dense weight has He variance.

    With unit cores uniform in ``[-b, b]`` (variance ``b**2 / 3``) a dense weight entry is a sum of
    ``prod R_n`` products of ``d`` core entries, so ``Var W = prod(R_n) * (b**2/3)**d * 4**-sum(s)``. The total
    shift ``S = sum(s)`` is the nearest integer to what makes that ``gain / fan_in`` (gain 2 before a ReLU,
    1 for logits); it is spread over the cores as evenly as possible.
    """
    shifts = []
    unit_var = init_bound ** 2 / 3
    for layer in spec.layers:
        gain = 2.0 if layer.activation == "relu" else 1.0
        raw_var = math.prod(layer.ranks) * unit_var ** layer.d
        total = max(0, round(math.log(raw_var * layer.in_features / gain, 4)))
        shifts.append([total // layer.d + (1 if k < total % layer.d else 0) for k in range(layer.d)])
    return shifts


def init_unit_cores(spec: NetworkSpec, rng: np.random.Generator, init_bound: float = INIT_BOUND):
    """Uniform unit buffers (Algorithm 2: "randomly uniformly initialize weights")."""
    return [[rng.uniform(-init_bound, init_bound, size=layer.core_shape(k)) for k in range(layer.d)]
            for layer in spec.layers]


def parse_ranks(text, n_layers_ranks: list[int]) -> list[tuple]:
    """``--ranks``: one int for every internal rank, or one comma list per layer separated by ``/``.

    ``n_layers_ranks`` is the number of internal ranks of each layer (``d - 1``). Every rank must be a
    positive multiple of 16 (the array width; sim/compiler.py).
    """
    text = str(text).strip()
    try:
        if "/" not in text and "," not in text:
            value = int(text)
            per_layer = [(value,) * n for n in n_layers_ranks]
        else:
            groups = text.split("/")
            if len(groups) != len(n_layers_ranks):
                raise ValueError(f"--ranks {text!r}: {len(groups)} layer groups given, the network has "
                                 f"{len(n_layers_ranks)} layers (separate layers with '/')")
            per_layer = []
            for li, (group, n) in enumerate(zip(groups, n_layers_ranks)):
                values = tuple(int(v) for v in group.split(",") if v.strip())
                if len(values) == 1 and n > 1:
                    values = values * n
                if len(values) != n:
                    raise ValueError(f"--ranks {text!r}: layer {li} has {n} internal ranks, got {len(values)}")
                per_layer.append(values)
    except ValueError as err:
        if "--ranks" in str(err):
            raise
        raise ValueError(f"--ranks {text!r} is not an int or a list like '16,16,16/16'") from err
    for li, values in enumerate(per_layer):
        for r in values:
            if r <= 0 or r % 16:
                raise ValueError(f"--ranks {text!r}: rank {r} of layer {li} must be a positive multiple of 16 "
                                 f"(the accelerator's array width; pruning lowers the effective rank below it)")
    return per_layer


# ---------------------------------------------------------------------------------------------------------
# Adam (Kingma & Ba), the optimizer of Algorithm 2


class Adam:
    """Adam on a list of float64 arrays; ``step(grads, lr)`` returns the update to *subtract*."""

    def __init__(self, shapes, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1 and eps > 0):
            raise ValueError(f"Adam needs 0 <= beta1, beta2 < 1 and eps > 0, got {beta1}, {beta2}, {eps}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]
        self.t = 0

    def step(self, grads, lr: float) -> list[np.ndarray]:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        steps = []
        for m, v, g in zip(self.m, self.v, grads):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            steps.append(lr * (m / c1) / (np.sqrt(v / c2) + self.eps))
        return steps


# ---------------------------------------------------------------------------------------------------------
# The low-rank prior, eq. 3.3 and 3.4. Core n has shape (r_{n-1}, i_n, j_n, r_n); lambda^(n)_k belongs to
# its last-axis slice k (n = 1 .. d-1: the internal ranks).


def _slice_sq_norms(core: np.ndarray) -> np.ndarray:
    return np.einsum("rijk,rijk->k", core, core)


def _slice_size(core: np.ndarray) -> int:
    return core.shape[0] * core.shape[1] * core.shape[2]


def lambda_update(cores, masks=None) -> list[np.ndarray]:
    """Eq. 3.4: ``lambda_k = 2 / (1 + r_{n-1} i_n j_n) * sum g[..., k]**2`` for every internal rank.

    ``cores`` are one layer's cores; returns one array per internal rank (``len(cores) - 1``). Pruned
    slices (``masks[n][k]`` False) get lambda 0.
    """
    out = []
    for n, core in enumerate(cores[:-1]):
        lam = 2.0 / (1 + _slice_size(core)) * _slice_sq_norms(core)
        if masks is not None:
            lam = np.where(masks[n], lam, 0.0)
        out.append(lam)
    return out


def prior_value(cores, lambdas, masks=None) -> float:
    """Eq. 3.3 for one layer: ``sum_n sum_k ||g^(n)_k||^2 / lambda_k + (1 + r i j)/2 log lambda_k``."""
    total = 0.0
    for n, (core, lam) in enumerate(zip(cores[:-1], lambdas)):
        active = np.ones(lam.shape, bool) if masks is None else np.asarray(masks[n], bool)
        lam_a = np.maximum(lam[active], LAMBDA_FLOOR)
        total += float(np.sum(_slice_sq_norms(core)[active] / lam_a)
                       + (1 + _slice_size(core)) / 2 * np.sum(np.log(lam_a)))
    return total


def prior_grad(cores, lambdas, masks=None) -> list[np.ndarray]:
    """Gradient of eq. 3.3 with respect to the cores (the log term does not depend on them): ``2 g / lambda``."""
    grads = []
    for n, core in enumerate(cores):
        if n == len(cores) - 1:
            grads.append(np.zeros_like(core))
            continue
        lam = np.maximum(lambdas[n], LAMBDA_FLOOR)
        g = 2.0 * core / lam
        if masks is not None:
            g = g * masks[n]
        grads.append(g)
    return grads


# ---------------------------------------------------------------------------------------------------------
# Sizes


def effective_params(spec: NetworkSpec, ranks_per_layer) -> int:
    """Parameters at the given (effective) internal ranks: core entries plus every bias the device holds.

    For the Table 3.3 model at rank 16 this is 14272 + 512 + 16 = 14800: the thesis' 1.48e4, 6.13e4 bits
    (fixed) and 4.74e5 bits (float) all round from it.
    """
    return effective_params_cores(spec, ranks_per_layer) + sum(layer.out_features for layer in spec.layers)


def memory_bits(spec: NetworkSpec, ranks_per_layer, precision: str) -> int:
    """Model memory of Table 3.3: fixed point 4 bits per core entry and 8 per bias (Table 3.2); float 32 each."""
    params = effective_params(spec, ranks_per_layer)
    if precision == "float":
        return 32 * params
    core_params = effective_params_cores(spec, ranks_per_layer)
    return 4 * core_params + 8 * (params - core_params)


def effective_params_cores(spec: NetworkSpec, ranks_per_layer) -> int:
    total = 0
    for layer, ranks in zip(spec.layers, ranks_per_layer):
        full = (1,) + tuple(int(r) for r in ranks) + (1,)
        total += sum(full[k] * layer.in_modes[k] * layer.out_modes[k] * full[k + 1] for k in range(layer.d))
    return total


# ---------------------------------------------------------------------------------------------------------


@dataclass
class PruneEvent:
    layer: int
    rank: int          # internal rank index n (between cores n-1 and n; 1-based as in eq. 3.3)
    slice: int
    lam: float


class TTModel:
    """Host-side parameters of a TT network: unit core buffers, biases, lambdas, rank masks, Adam."""

    def __init__(self, spec: NetworkSpec, rng: np.random.Generator, precision: str = "fixed",
                 init_bound: float = INIT_BOUND, weight_format: Format = WEIGHT):
        if precision not in ("fixed", "float"):
            raise ValueError(f"precision must be 'fixed' or 'float', not {precision!r}")
        self.spec, self.precision, self.weight_format = spec, precision, weight_format
        self.shifts = weight_shifts(spec, init_bound)
        self.cores = init_unit_cores(spec, rng, init_bound)
        self.biases = [np.zeros(layer.out_features) for layer in spec.layers]
        self.masks = [[np.ones(r, dtype=bool) for r in layer.ranks] for layer in spec.layers]
        self.lambdas = [lambda_update(cores) for cores in self.cores]
        self.adam = Adam([c.shape for cores in self.cores for c in cores] + [b.shape for b in self.biases])

    # -- views the device needs ------------------------------------------------------------------------------

    def weight_exps(self) -> list[list[int]]:
        return [[self.weight_format.exp - s for s in shifts] for shifts in self.shifts]

    def quantized_cores(self) -> list[list[np.ndarray]]:
        """The 4-bit integers the device holds (eq. 3.6)."""
        return [[self.weight_format.quantize(c) for c in cores] for cores in self.cores]

    def real_cores(self) -> list[list[np.ndarray]]:
        """The cores as real numbers: ``Q(u) * 2**-s`` in fixed point, ``u * 2**-s`` in float."""
        out = []
        for cores, shifts in zip(self.cores, self.shifts):
            if self.precision == "fixed":
                out.append([np.ldexp(self.weight_format.fake_quantize(c), -s) for c, s in zip(cores, shifts)])
            else:
                out.append([np.ldexp(c, -s) for c, s in zip(cores, shifts)])
        return out

    # -- the update (Algorithm 2) --------------------------------------------------------------------------

    def apply_gradients(self, core_grads_real, bias_grads_real, lr: float, prior_weight: float = 0.0) -> None:
        """One Adam step on the buffers from gradients w.r.t. the *real* cores and biases.

        The chain rule through ``real = Q(u) * 2**-s`` with the straight-through ``dQ/du = 1`` scales a core
        gradient by ``2**-s``. ``prior_weight`` (0: no prior) multiplies the eq. 3.3 gradient. In fixed point
        the buffer is clipped to ``+-0.91`` of the weight range (eq. 3.5, section 3.4.3).
        """
        grads = []
        for li, (cores, shifts) in enumerate(zip(self.cores, self.shifts)):
            g_prior = prior_grad(cores, self.lambdas[li], self.masks[li]) if prior_weight else None
            for k, (g, s) in enumerate(zip(core_grads_real[li], shifts)):
                g = np.ldexp(np.asarray(g, dtype=np.float64), -s)
                if g_prior is not None:
                    g = g + prior_weight * g_prior[k]
                grads.append(g)
        grads += [np.asarray(g, dtype=np.float64) for g in bias_grads_real]
        steps = self.adam.step(grads, lr)
        n_cores = len(grads) - len(self.biases)
        i = 0
        bound = BC_CLIP * self.weight_format.full_scale
        for cores in self.cores:
            for k in range(len(cores)):
                new = cores[k] - steps[i]
                cores[k] = np.clip(new, -bound, bound) if self.precision == "fixed" else new
                i += 1
        for li in range(len(self.biases)):
            self.biases[li] = self.biases[li] - steps[n_cores + li]
        self._apply_masks()

    def update_lambdas(self) -> None:
        """Eq. 3.4 for every layer (alternating with the Adam step, Algorithm 2)."""
        self.lambdas = [lambda_update(cores, masks) for cores, masks in zip(self.cores, self.masks)]

    def prior(self) -> float:
        return sum(prior_value(c, lam, m) for c, lam, m in zip(self.cores, self.lambdas, self.masks))

    # -- rank pruning ----------------------------------------------------------------------------------------

    def prune(self, threshold: float) -> list[PruneEvent]:
        """Remove (zero and freeze) rank slices whose lambda is below ``threshold * max lambda`` of their rank.

        Slice ``k`` of internal rank ``n`` is the last-axis slice ``k`` of core ``n-1`` and the first-axis
        slice ``k`` of core ``n``; both are zeroed, and so is their Adam state. At least one slice is kept.
        """
        events = []
        for li in range(len(self.spec.layers)):
            for n, lam in enumerate(self.lambdas[li]):
                mask = self.masks[li][n]
                if not mask.any():
                    continue
                cut = threshold * lam[mask].max()
                remove = mask & (lam < cut)
                if remove.all():
                    remove[np.argmax(np.where(mask, lam, -1))] = False
                for k in np.flatnonzero(remove):
                    events.append(PruneEvent(li, n + 1, int(k), float(lam[k])))
                mask &= ~remove
        self._apply_masks()
        self.update_lambdas()
        return events

    def _apply_masks(self) -> None:
        offsets = np.cumsum([0] + [len(c) for c in self.cores])
        for li, cores in enumerate(self.cores):
            for n, mask in enumerate(self.masks[li]):
                if mask.all():
                    continue
                for arrays in ([cores], [self.adam.m[offsets[li]:offsets[li + 1]]],
                               [self.adam.v[offsets[li]:offsets[li + 1]]]):
                    for cs in arrays:
                        cs[n][..., ~mask] = 0.0
                        cs[n + 1][~mask, ...] = 0.0

    def effective_ranks(self) -> list[list[int]]:
        return [[int(m.sum()) for m in masks] for masks in self.masks]

    def effective_params(self) -> int:
        return effective_params(self.spec, self.effective_ranks())

    def memory_bits(self) -> int:
        return memory_bits(self.spec, self.effective_ranks(), self.precision)

    # -- checkpoints -----------------------------------------------------------------------------------------

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for li, cores in enumerate(self.cores):
            for k, c in enumerate(cores):
                out[f"core.{li}.{k}"] = c
            out[f"bias.{li}"] = self.biases[li]
            for n, m in enumerate(self.masks[li]):
                out[f"mask.{li}.{n}"] = m
                out[f"lambda.{li}.{n}"] = self.lambdas[li][n]
        for i, (m, v) in enumerate(zip(self.adam.m, self.adam.v)):
            out[f"adam.m.{i}"] = m
            out[f"adam.v.{i}"] = v
        out["adam.t"] = np.array(self.adam.t)
        out["shifts"] = np.array([s for shifts in self.shifts for s in shifts])
        return out

    def load_state_arrays(self, arrays) -> None:
        for li, cores in enumerate(self.cores):
            for k in range(len(cores)):
                saved = np.asarray(arrays[f"core.{li}.{k}"], dtype=np.float64)
                if saved.shape != cores[k].shape:
                    raise ValueError(f"checkpoint core {li}.{k} has shape {saved.shape}, the model {cores[k].shape} "
                                     f"(was it written with other --ranks?)")
                cores[k] = saved.copy()
            self.biases[li] = np.asarray(arrays[f"bias.{li}"], dtype=np.float64).copy()
            for n in range(len(self.masks[li])):
                self.masks[li][n] = np.asarray(arrays[f"mask.{li}.{n}"], dtype=bool).copy()
                self.lambdas[li][n] = np.asarray(arrays[f"lambda.{li}.{n}"], dtype=np.float64).copy()
        for i in range(len(self.adam.m)):
            self.adam.m[i] = np.asarray(arrays[f"adam.m.{i}"], dtype=np.float64).copy()
            self.adam.v[i] = np.asarray(arrays[f"adam.v.{i}"], dtype=np.float64).copy()
        self.adam.t = int(arrays["adam.t"])
        flat = [s for shifts in self.shifts for s in shifts]
        if list(np.asarray(arrays["shifts"]).tolist()) != flat:
            raise ValueError("checkpoint weight shifts differ from this model's (another network or init bound)")
