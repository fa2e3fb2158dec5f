"""The training loop of Algorithm 2 for every backend (thesis sections 3.3-3.4), numpy only.

The device (emulated golden executor, RTL co-simulation or the PYNQ board: anything behind the backend
interface of ``host/runtime.py``) runs the compiled forward and backward programs; the host (the ARM core)
does the rest, exactly as section 3.5.1 splits the work:

* quantizes the BinaryConnect buffers (eq. 3.6) and biases and uploads them,
* softmax cross-entropy on the logits (eq. 3.2) and its gradient, quantized to 16 bits,
* Adam on the buffer with the prior's gradient (eq. 3.3, 3.5), the closed-form lambda update (eq. 3.4),
  rank pruning at the end of each epoch,
* the automatic scale selection of section 3.4.3: one :class:`~ultratrain.sim.formats.ScaleTracker` per
  device tensor, fed with the sum of |outputs| each descriptor writes back; exponents change only between
  steps (ACT_BWD must reuse the forward's shifts).

``--precision float`` runs the same loop on a float-mode backend (float64, no quantization, no clipping):
the "Floating" rows of Table 3.3 with everything else identical.

Outputs under ``out``: ``metrics.jsonl`` (one JSON object per epoch), ``checkpoint.npz`` (written atomically
after every epoch; :meth:`Trainer.fit` with ``resume=True`` continues from it and reproduces the
uninterrupted run exactly), ``config.json`` and ``curves.png``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..sim.compiler import NetworkSpec, compile_network, thesis_table33_network
from ..sim.contract import OutFormat
from ..sim.formats import ACTIVATION, Format, ScaleTracker
from .model import N_CLASSES, TTModel, parse_ranks
from .runtime import NetworkRuntime

__all__ = ["TrainConfig", "Trainer", "DeviceSession", "register_backend", "make_backend", "BACKENDS",
           "softmax_cross_entropy", "CheckpointError",
           "epoch_order", "learning_rate"]

BIAS_BITS = 8
GRAD_FORMAT = Format(16, True, 0)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be resumed (missing, corrupt, or written with another configuration)."""


# ---------------------------------------------------------------------------------------------------------
# Backends: name -> factory(precision) -> backend. Other backends register themselves (or are imported lazily
# from "module:function" strings) so that one loop serves them all.

BACKENDS: dict[str, object] = {
    "emulated": None,    # built in below
    "rtl": "ultratrain.host.backends.rtl:make_backend",
    "pynq": "ultratrain.host.backends.pynq:make_backend",
}


def register_backend(name: str, factory) -> None:
    """Make ``--backend name`` available: ``factory(precision: str) -> backend`` (or a "module:function")."""
    if not name or not isinstance(name, str):
        raise ValueError(f"backend name must be a non-empty string, not {name!r}")
    BACKENDS[name] = factory


def _emulated(precision: str):
    from .backends.emulated import EmulatedBackend
    return EmulatedBackend(size=128 << 20, float_mode=precision == "float")


def make_backend(name: str, precision: str = "fixed"):
    """The backend called ``name`` for ``precision`` ("fixed" or "float")."""
    if name not in BACKENDS:
        raise ValueError(f"--backend {name!r} is unknown; choose one of {', '.join(sorted(BACKENDS))}")
    factory = BACKENDS[name]
    if factory is None:
        return _emulated(precision)
    if precision == "float":
        raise ValueError(f"--precision float runs only on the emulated backend (the {name} device is fixed "
                         f"point); use --backend emulated")
    if isinstance(factory, str):
        module_name, func = factory.split(":")
        try:
            factory = getattr(importlib.import_module(module_name), func)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"--backend {name!r} is not available in this installation ({err})") from err
    return factory(precision)


# ---------------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything that defines a run (saved with the checkpoint; ``--resume`` must match it)."""
    precision: str = "fixed"
    prior: bool = True
    epochs: int = 30
    batch_size: int = 32
    ranks: str = "16"
    seed: int = 0
    lr: float = 5e-3
    lr_schedule: str = "cosine"          # "cosine" (to 0 over the run) or "constant"
    prior_weight: float = 1.0            # times 1/N_train (docs/training.md)
    prune_threshold: float = 1e-3        # lambda_k < threshold * max_k lambda_k -> slice removed
    intermediate: str = "s8"             # forward TT intermediates: "s8" (thesis) or "s16"
    train_limit: int | None = None
    test_limit: int | None = None
    eval_batch: int = 500
    backend: str = "emulated"

    def __post_init__(self):
        if self.precision not in ("fixed", "float"):
            raise ValueError(f"--precision must be 'fixed' or 'float', not {self.precision!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"--epochs must be a positive int, not {self.epochs!r}")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 1024:
            raise ValueError(f"--batch-size must be an int in [1, 1024], not {self.batch_size!r}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"--lr must be a positive number, not {self.lr!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', not {self.lr_schedule!r}")
        if not self.prior_weight >= 0:
            raise ValueError(f"--prior-weight must be >= 0, not {self.prior_weight!r}")
        if not 0 <= self.prune_threshold < 1:
            raise ValueError(f"--prune-threshold must be in [0, 1), not {self.prune_threshold!r}")
        if self.intermediate not in ("s8", "s16"):
            raise ValueError(f"--intermediate must be 's8' or 's16', not {self.intermediate!r}")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive int, not {value!r}")
        if not isinstance(self.eval_batch, int) or not 1 <= self.eval_batch <= 1024:
            raise ValueError(f"--eval-batch must be an int in [1, 1024], not {self.eval_batch!r}")
        self.ranks = str(self.ranks)

    def network(self) -> NetworkSpec:
        base = thesis_table33_network(16)
        ranks = parse_ranks(self.ranks, [len(layer.ranks) for layer in base.layers])
        return NetworkSpec(tuple(layer.with_ranks(r) for layer, r in zip(base.layers, ranks)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffle of epoch ``epoch`` (0-based) depends only on (seed, epoch): resuming needs no RNG state."""
    return np.random.default_rng([seed, 1 + epoch]).permutation(n)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Adam's step size at optimizer step ``step``: constant, or cosine from ``lr`` to 0 over the run."""
    if config.lr_schedule == "constant":
        return config.lr
    total = config.epochs * steps_per_epoch
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy (eq. 3.2) and its gradient w.r.t. the logits; float64."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -float(log_p[np.arange(n), labels].mean())
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    return loss, grad / n


# ---------------------------------------------------------------------------------------------------------


class StickyScaleTracker(ScaleTracker):
    """:class:`ScaleTracker` that does not undo a widening forced by saturation right away.

    Heavy-tailed tensors (the logit gradient and what is computed from it) can saturate more than 1 % while
    their mean sits below the window: the base rule then widens on saturation and narrows on the mean at the
    next step, forever, and every exponent change costs a re-assembly of the program. After a widening
    forced by saturation, this tracker keeps the exponent at least there for ``hold`` steps.
    """

    def __init__(self, fmt: Format, momentum: float = 0.9, hold: int = 200):
        super().__init__(fmt, momentum)
        self.hold, self.floor, self.countdown = hold, None, 0

    def observe(self, mean_abs_int: float, saturated_fraction: float = 0.0) -> int:
        before = self.fmt.exp
        forced = saturated_fraction > 0.01 and self.ratio(float(mean_abs_int) * self.fmt.scale) <= self.window[1]
        super().observe(mean_abs_int, saturated_fraction)
        if forced and self.fmt.exp > before:
            self.floor, self.countdown = self.fmt.exp, self.hold
        elif self.countdown > 0:
            self.countdown -= 1
            if self.fmt.exp < self.floor:
                self.fmt = self.fmt.with_exp(self.floor)
        return self.fmt.exp

    def state_dict(self) -> dict:
        return {**super().state_dict(), "floor": self.floor, "countdown": self.countdown}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.floor, self.countdown = state.get("floor"), int(state.get("countdown", 0))


class DeviceSession:
    """One model on one device: compiled programs (training and evaluation batch sizes), exponents, trackers.

    In fixed point every device tensor has a :class:`ScaleTracker`; in float mode exponents are all 0 and
    ignored by the device.
    """

    def __init__(self, spec: NetworkSpec, backend, batch: int, eval_batch: int, precision: str,
                 intermediate: str = "s8", n_classes: int = N_CLASSES):
        self.spec, self.backend, self.precision, self.n_classes = spec, backend, precision, n_classes
        inter = OutFormat.S8 if intermediate == "s8" else OutFormat.S16
        self.net = compile_network(spec, batch, forward_intermediate=inter)
        self.eval_net = compile_network(spec, eval_batch, forward_intermediate=inter)
        self.runtime = NetworkRuntime(self.net, backend)
        self.eval_runtime = NetworkRuntime(self.eval_net, backend)
        self.last = len(spec.layers) - 1
        self.trackers: dict[str, ScaleTracker] = {}
        if precision == "fixed":
            for name, t in self.net.tensors.items():
                if t.role in ("image",) or name == "x" or self._tied(name):
                    continue
                self.trackers[name] = StickyScaleTracker(t.kind.format(0))
        self.calibrated = precision == "float"

    def _tied(self, name: str) -> str | None:
        """``G{l}`` (l < last) keeps the exponent of ``L{l+1}.dx`` (ACT_BWD passes the gradient through)."""
        if name.startswith("G") and name[1:].isdigit() and int(name[1:]) < self.last:
            return f"L{int(name[1:]) + 1}.dx"
        return None

    # -- exponents -------------------------------------------------------------------------------------------

    def exps(self) -> dict[str, int]:
        if self.precision == "float":
            return {}
        out = {name: tr.exp for name, tr in self.trackers.items()}
        out["x"] = ACTIVATION.exp
        for name in self.net.tensors:
            tied = self._tied(name)
            if tied:
                out[name] = out[tied]
        return out

    def bias_exps(self, model: TTModel, exps: dict) -> list[int]:
        """Per layer: the finest exponent at which the 8-bit bias does not saturate (never finer than 8 bits
        below the pre-activation's, which the device rounds it to anyway)."""
        if self.precision == "float":
            return [0] * len(self.spec.layers)
        out = []
        for li, bias in enumerate(model.biases):
            floor = exps[f"L{li}.y"] - BIAS_BITS
            peak = float(np.max(np.abs(bias))) if bias.size else 0.0
            fit = math.floor(math.log2(peak / (2 ** (BIAS_BITS - 1) - 0.5))) + 1 if peak > 0 else floor
            out.append(max(fit, floor))
        return out

    def state_dict(self) -> dict:
        return {"calibrated": self.calibrated,
                "trackers": {name: tr.state_dict() for name, tr in self.trackers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.calibrated = bool(state["calibrated"])
        for name, tr_state in state["trackers"].items():
            if name not in self.trackers:
                raise CheckpointError(f"checkpoint has a scale for tensor {name!r} that this network lacks")
            self.trackers[name].load_state_dict(tr_state)

    # -- device calls ----------------------------------------------------------------------------------------

    def _upload(self, model: TTModel, runtime: NetworkRuntime, exps: dict):
        wexp = model.weight_exps() if self.precision == "fixed" else [[0] * layer.d for layer in self.spec.layers]
        bexp = self.bias_exps(model, exps)
        if self.precision == "fixed":
            cores = model.quantized_cores()
            biases = [Format(BIAS_BITS, True, e).quantize(b) for b, e in zip(model.biases, bexp)]
        else:
            cores = model.real_cores()
            biases = [b.copy() for b in model.biases]
        runtime.upload_parameters(cores, biases, wexp, bexp)
        return wexp, bexp

    def _input(self, images_u8: np.ndarray, batch: int) -> np.ndarray:
        """Pad the batch to the compiled size; pixels are u8 at exponent -8 (x / 256), floats in float mode."""
        x = np.zeros((batch, images_u8.shape[1]), dtype=np.int64)
        x[:len(images_u8)] = images_u8
        return x if self.precision == "fixed" else np.ldexp(x.astype(np.float64), ACTIVATION.exp)

    def _real(self, values, name: str, exps: dict) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return values if self.precision == "float" else np.ldexp(values, exps[name])

    def calibrate(self, model: TTModel, images_u8: np.ndarray, labels: np.ndarray) -> None:
        """First exponents from a float pass on one batch (section 3.4.3 needs a starting point)."""
        from .backends.emulated import EmulatedBackend
        float_rt = NetworkRuntime(self.net, EmulatedBackend(size=64 << 20, float_mode=True))
        zero_w = [[0] * layer.d for layer in self.spec.layers]
        zero_b = [0] * len(self.spec.layers)
        float_rt.upload_parameters(model.real_cores(), [b.copy() for b in model.biases], zero_w, zero_b)
        batch = self.net.batch
        x = np.zeros((batch, images_u8.shape[1]))
        x[:len(images_u8)] = np.ldexp(images_u8.astype(np.float64), ACTIVATION.exp)
        logits = float_rt.forward(x, {}, zero_w, zero_b)
        _, grad = softmax_cross_entropy(logits[:len(labels), :self.n_classes], labels)
        g = np.zeros((batch, self.spec.layers[-1].out_features))
        g[:len(labels), :self.n_classes] = grad
        float_rt.backward(g, {}, zero_w, zero_b)
        for name, tracker in self.trackers.items():
            tracker.calibrate(float_rt.read_tensor(name))
        self.calibrated = True

    def train_step(self, model: TTModel, images_u8: np.ndarray, labels: np.ndarray):
        """Forward and backward on the device; returns ``(loss, n_correct, core_grads, bias_grads)``.

        Gradients are real-valued and w.r.t. the real cores and biases. Exponents are updated afterwards.
        """
        n = len(labels)
        exps = self.exps()
        wexp, bexp = self._upload(model, self.runtime, exps)
        logits_dev = self.runtime.forward(self._input(images_u8, self.net.batch), exps, wexp, bexp)
        logits = self._real(logits_dev, "logits", exps)[:n, :self.n_classes]
        loss, grad = softmax_cross_entropy(logits, labels)
        correct = int((logits.argmax(axis=1) == labels).sum())
        g = np.zeros((self.net.batch, self.spec.layers[-1].out_features))
        g[:n, :self.n_classes] = grad
        g_name = f"G{self.last}"
        if self.precision == "fixed":
            fmt = self.trackers[g_name].fmt
            g_dev = fmt.quantize(g)
            g_stats = (float(np.abs(g_dev).mean()), float(np.mean(fmt.saturates(np.rint(np.ldexp(g, -fmt.exp))))))
        else:
            g_dev = g
        factor_grads, bias_grads = self.runtime.backward(g_dev, exps, wexp, bexp)
        core_grads = [[self._real(fg, self.net.factor_grads[li][k], exps) for k, fg in enumerate(layer_grads)]
                      for li, layer_grads in enumerate(factor_grads)]
        bias_real = [self._real(bg, f"L{li}.db", exps) for li, bg in enumerate(bias_grads)]
        if self.precision == "fixed":
            self._observe(g_name, g_stats)
        return loss, correct, core_grads, bias_real

    def _observe(self, g_name: str, g_stats) -> None:
        stats = self.runtime.last_stats
        for name, tracker in self.trackers.items():
            if name == g_name:
                tracker.observe(*g_stats)
                continue
            s = stats.get(name)
            if s is None:
                continue
            spec = self.net.tensors[name]
            # The device counts every clipped output as saturated; for the clipped ReLU (u8) that includes
            # the negatives clipped to 0, which says nothing about the scale: only the mean is used there.
            saturated = 0.0 if spec.kind == OutFormat.U8 else s.saturated / spec.size
            tracker.observe(s.sum_abs / spec.size, saturated)

    def predict(self, model: TTModel, images_u8: np.ndarray) -> np.ndarray:
        """Real logits (first ``n_classes``) for any number of images, in evaluation batches."""
        exps = self.exps()
        wexp, bexp = self._upload(model, self.eval_runtime, exps)
        batch = self.eval_net.batch
        out = np.empty((len(images_u8), self.n_classes))
        for start in range(0, len(images_u8), batch):
            chunk = images_u8[start:start + batch]
            logits = self.eval_runtime.forward(self._input(chunk, batch), exps, wexp, bexp)
            out[start:start + len(chunk)] = self._real(logits, "logits", exps)[:len(chunk), :self.n_classes]
        return out


# ---------------------------------------------------------------------------------------------------------


@dataclass
class EpochMetrics:
    epoch: int
    step: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    ranks: list
    params: int
    memory_bits: int
    prior: float
    pruned: list = field(default_factory=list)
    epoch_seconds: float = 0.0
    train_samples_per_s: float = 0.0


def _atomic_write_bytes(path: Path, writer) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        writer(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Trainer:
    """Algorithm 2 on a backend. ``data`` is ``(train_images, train_labels, test_images, test_labels)`` with
    images already padded to ``(N, 896)`` uint8."""

    def __init__(self, config: TrainConfig, data, backend=None, out: str | Path | None = None,
                 progress: bool = True, log=None, spec: NetworkSpec | None = None):
        self.config = config
        # ``spec`` overrides the Table 3.3 network (tests use tiny ones); --ranks applies to the default only.
        self.spec = config.network() if spec is None else spec
        self.train_x, self.train_y, self.test_x, self.test_y = data
        if self.train_x.ndim != 2 or self.train_x.shape[1] != self.spec.layers[0].in_features:
            raise ValueError(f"training images must be (N, {self.spec.layers[0].in_features}) (padded 28x32), "
                             f"got {self.train_x.shape}")
        self.backend = backend if backend is not None else make_backend(config.backend, config.precision)
        self.model = TTModel(self.spec, np.random.default_rng(config.seed), config.precision)
        self.session = DeviceSession(self.spec, self.backend, config.batch_size, config.eval_batch,
                                     config.precision, config.intermediate)
        self.out = Path(out) if out is not None else None
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.epoch = 0                 # epochs completed
        self.step = 0                  # optimizer steps completed
        self.history: list[dict] = []

    # -- schedule --------------------------------------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_y) // self.config.batch_size)

    def lr_at(self, step: int) -> float:
        return learning_rate(self.config, step, self.steps_per_epoch)

    @property
    def prior_weight(self) -> float:
        return self.config.prior_weight / len(self.train_y) if self.config.prior else 0.0

    def epoch_order(self, epoch: int) -> np.ndarray:
        return epoch_order(self.config.seed, epoch, len(self.train_y))

    # -- one step / one epoch ------------------------------------------------------------------------------

    def train_step(self, images_u8: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        """Algorithm 2's loop body: device forward/backward, Adam with the prior, then eq. 3.4."""
        if not self.session.calibrated:
            self.session.calibrate(self.model, images_u8, labels)
        loss, correct, core_grads, bias_grads = self.session.train_step(self.model, images_u8, labels)
        self.model.apply_gradients(core_grads, bias_grads, self.lr_at(self.step), self.prior_weight)
        if self.config.prior:
            self.model.update_lambdas()
        self.step += 1
        return loss, correct

    def evaluate(self, images=None, labels=None) -> tuple[float, float]:
        """``(mean cross-entropy, accuracy)`` on the test set (or the given images)."""
        images = self.test_x if images is None else images
        labels = self.test_y if labels is None else labels
        logits = self.session.predict(self.model, images)
        loss, _ = softmax_cross_entropy(logits, labels)
        return loss, float((logits.argmax(axis=1) == labels).mean())

    def train_epoch(self) -> EpochMetrics:
        cfg = self.config
        order = self.epoch_order(self.epoch)
        start = time.time()
        total_loss, total_correct, seen = 0.0, 0, 0
        bar = None
        if self.progress:
            from tqdm import tqdm
            # Redirected to a log file, a bar line every minute is enough.
            bar = tqdm(total=len(order), unit="img", desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       file=sys.stderr, dynamic_ncols=True, leave=False,
                       mininterval=0.5 if sys.stderr.isatty() else 60.0)
        for b in range(self.steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            loss, correct = self.train_step(self.train_x[idx], self.train_y[idx])
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged at step {self.step} (loss {loss})")
            total_loss += loss * len(idx)
            total_correct += correct
            seen += len(idx)
            if bar is not None:
                bar.update(len(idx))
                if b % 20 == 0:
                    bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{total_correct / seen:.3f}")
        if bar is not None:
            bar.close()
        train_seconds = time.time() - start
        pruned = []
        if cfg.prior and cfg.prune_threshold > 0:
            pruned = [asdict(e) for e in self.model.prune(cfg.prune_threshold)]
        test_loss, test_acc = self.evaluate()
        self.epoch += 1
        return EpochMetrics(epoch=self.epoch, step=self.step, lr=self.lr_at(self.step),
                            train_loss=total_loss / seen, train_acc=total_correct / seen,
                            test_loss=test_loss, test_acc=test_acc, ranks=self.model.effective_ranks(),
                            params=self.model.effective_params(), memory_bits=self.model.memory_bits(),
                            prior=self.model.prior() if cfg.prior else 0.0, pruned=pruned,
                            epoch_seconds=time.time() - start, train_samples_per_s=seen / train_seconds)

    # -- the run ---------------------------------------------------------------------------------------------

    def fit(self, resume: bool = False, epochs: int | None = None) -> list[dict]:
        """Train to ``config.epochs`` (or only ``epochs`` more); checkpoint and log every epoch."""
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            if resume:
                self.load_checkpoint(self.out / "checkpoint.npz")
                self.log(f"resumed from {self.out / 'checkpoint.npz'} after epoch {self.epoch}")
            elif (self.out / "checkpoint.npz").exists():
                raise CheckpointError(f"{self.out} already holds a run (checkpoint.npz): pass --resume to continue "
                                      f"it, or choose another --out")
            (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            self._write_metrics()
        elif resume:
            raise CheckpointError("resume needs an output folder (--out) holding checkpoint.npz")
        stop = self.config.epochs if epochs is None else min(self.config.epochs, self.epoch + epochs)
        while self.epoch < stop:
            metrics = asdict(self.train_epoch())
            self.history.append(metrics)
            self.log(f"epoch {metrics['epoch']}/{self.config.epochs}: loss {metrics['train_loss']:.4f} "
                     f"train {metrics['train_acc']:.4f} test {metrics['test_acc']:.4f} ranks {metrics['ranks']} "
                     f"params {metrics['params']} bits {metrics['memory_bits']} "
                     f"({metrics['epoch_seconds']:.0f} s, {metrics['train_samples_per_s']:.0f} img/s)"
                     + (f" pruned {len(metrics['pruned'])}" if metrics["pruned"] else ""))
            if self.out is not None:
                self.save_checkpoint(self.out / "checkpoint.npz")
                self._write_metrics()
                try:
                    from .plots import plot_run
                    plot_run(self.history, self.out / "curves.png", title=self._title())
                except Exception as err:  # a plot must never stop a training run
                    self.log(f"warning: could not write the plot: {err}")
        return self.history

    def _title(self) -> str:
        c = self.config
        return f"{c.precision}, {'with' if c.prior else 'without'} prior, ranks {c.ranks}, {c.backend}"

    def _write_metrics(self) -> None:
        text = "".join(json.dumps(m, sort_keys=True) + "\n" for m in self.history)
        _atomic_write_bytes(self.out / "metrics.jsonl", lambda f: f.write(text.encode()))

    # -- checkpoints -----------------------------------------------------------------------------------------

    def save_checkpoint(self, path: str | Path) -> None:
        """Everything the run depends on, written to a temporary file and renamed over ``path``."""
        path = Path(path)
        meta = {"format": 1, "config": self.config.to_dict(), "epoch": self.epoch, "step": self.step,
                "history": self.history, "session": self.session.state_dict()}
        arrays = self.model.state_arrays()
        arrays["meta"] = np.array(json.dumps(meta))
        _atomic_write_bytes(path, lambda f: np.savez(f, **arrays))

    def load_checkpoint(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"--resume: no checkpoint at {path} (nothing to resume; drop --resume to start)")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(str(arrays.pop("meta")))
        except Exception as err:
            raise CheckpointError(f"{path} is not a readable checkpoint ({err})") from err
        saved = TrainConfig.from_dict(meta["config"])
        mine = self.config.to_dict()
        # The backend and the evaluation batch do not change what is computed (backends are bit-exact).
        diff = {k: (v, mine[k]) for k, v in saved.to_dict().items()
                if mine.get(k) != v and k not in ("backend", "eval_batch")}
        if diff:
            text = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(f"--resume: {path} was written with another configuration ({text}); resume with "
                                  f"the same options or start a new --out")
        self.model.load_state_arrays(arrays)
        self.session.load_state_dict(meta["session"])
        self.epoch, self.step, self.history = int(meta["epoch"]), int(meta["step"]), list(meta["history"])
