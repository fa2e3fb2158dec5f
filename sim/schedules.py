"""Alternative schedules of the TT-layer programs (thesis sections 3.5.3, 3.8 and the remark after eq. 3.14).

The thesis fixes one schedule (``sim/compiler.py``): forward right to left (eq. 3.9-3.11), input gradient
left to right (3.12-3.14), and every factor gradient through the full weight gradient ``dW`` (3.15-3.19). It
notes that the other orders and the direct factor gradients win for other shapes and batch sizes. This module
emits those alternatives as :class:`~ultratrain.sim.compiler.Op` lists that :func:`~ultratrain.sim.compiler.assemble`
and :class:`~ultratrain.host.runtime.NetworkRuntime` run unchanged; ``sim/optimizer.py`` picks among them with
the cycle model (docs/results/performance.md). Per layer (:class:`LayerSchedule`):

* ``forward``:
  ``"rl"`` right to left (the thesis): PE1 on the last core, then PE2 on cores ``d-2 .. 0``;
  ``"lr"`` left to right: PE2 contracts ``(R_k, m_k)`` with core ``k`` for ``k = 0 .. d-2`` (the intermediate
  ``P_k = [B n_0..n_{k-1}][R_k][m_k..m_{d-1}]`` is the batch-major operand the direct gradients need), then
  PE1 contracts ``(R_{d-1}, m_{d-1})`` with the last core;
  ``"dense"`` one PE1 with the dense ``W^T`` in weight memory (float mode only: see below).
* ``input_grad``: ``"lr"`` (the thesis), ``"rl"`` (PE1 on the last core over ``n_{d-1}``, then PE2 over
  ``(n_k, R_{k+1})`` for ``k = d-2 .. 0``), or ``"dense"`` (float mode only).
* ``meetings`` and ``servers`` (the backward method). The batch can only be contracted by PE3, the one unit with
  two DRAM operands, and PE3 contracts its row index only. With batch-major activations and gradients the
  contractions it can run are the *partial weight gradients*
  ``H_j[R_j][n_j m_j]...[n_{d-1} m_{d-1}] = sum_{b, n_0..n_{j-1}} P_j[b, n_<j, R_j, m_>=j] G[b, n_<j, n_>=j]``
  (one PE3 block per ``(n_{d-1} x m_{d-1})``, the blocks of the innermost digit as the column groups of one
  instruction; ``H_0 = dW``, eq. 3.15's layout, formed as the compiler forms it). A right sweep with PE1
  (``V_k = V_{k+1} x core k``, ``V_d = H_j``) gives ``dG_j = V_{j+1}``; for a core ``k > j`` served by
  ``H_j``, a left sweep with PE2 contracts ``V_{k+1}`` with cores ``j .. k-1`` (eq. 3.17-3.19). ``meetings``
  lists the ``j`` whose ``H_j`` is formed (``0`` always: no other ``H_j`` reaches core 0), ``servers[k]``
  the meeting that gives ``dG_k``. The thesis is ``meetings=(0,)``; ``meetings=(0, d-1)`` computes the last
  core's gradient directly (``P_{d-1}`` against ``G``), cheaper than its left sweep of ``dW`` at small batches.
  The mirrored contractions (``x`` against the right-to-left gradient partial, which reach core 0 without
  ``dW``) are not emitted: ``sim/optimizer.pe3_floor`` shows that no cover by them is cheaper on PE3 for the
  Table 3.3 layers.

Every schedule computes the same function: exactly the same numbers as the thesis in float mode up to float64
rounding (tests/perf/test_schedules.py checks them against the thesis schedule and torch.autograd), and in
fixed point one contract-conforming rescale per instruction, so the results differ from the thesis only by where
the rounding happens (the tests bound that error and check bit exactness against an independent integer chain).

The dense options keep ``W = prod G_k`` in weight memory. The weight memory holds 4-bit words, and a product
of 4-bit cores is not a 4-bit number, so forming the dense weight would change the fixed-point computation
beyond the contract: :func:`compile_schedule` accepts it only with ``float_mode=True`` (the optimizer considers
it only there).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .compiler import (LAYOUTS, CompiledNetwork, NetworkSpec, Op, ShapeError, TTLayerSpec, _Builder,
                       _emit_full_weight_grad, _layer_activation, _layer_forward, _layer_input_grad, _plan_memories,
                       core_layout, grad_layout, merged_dw_blocks, sweep_layout)
from .contract import (DEFAULT_CONFIG, PE3_GROUPS_MAX, WMEM_LANES, Descriptor, ErrorCode, HardwareConfig, Opcode,
                       OutFormat, check_descriptor, pe2_row_pitch, pe3_group_field)

__all__ = ["LayerSchedule", "Schedule", "ScheduledNetwork", "compile_schedule", "tile_values", "EXTRA_LAYOUTS",
           "FORWARD_ORDERS", "INPUT_GRAD_ORDERS", "layer_plans", "op_legal"]

FORWARD_ORDERS = ("rl", "lr", "dense")
INPUT_GRAD_ORDERS = ("lr", "rl", "dense")

# Layouts beyond the compiler's (name -> (reader, what the tile is)).
EXTRA_LAYOUTS = {
    "lr_fwd": ("PE2", "W[(R_k m_k), (n_k R_k+1)]: core axes (0, 1, 2, 3), rows padded to 8"),
    "ig_rl": ("PE2", "W[(n_k R_k+1), (R_k m_k)]: core axes (2, 3, 0, 1), rows padded to 8"),
    "dense_t": ("PE1", "W^T[n][m] of the whole layer (float mode only)"),
    "dense": ("PE1", "W[m][n] of the whole layer (float mode only)"),
}
_LAYOUT_ORDER = ("canon", "fwd", "bwd_last", "canon_mn", "lr_fwd", "ig_rl", "dense_t", "dense")


@dataclass(frozen=True)
class LayerSchedule:
    """How one layer runs. The defaults are the thesis' schedule (section 3.8)."""

    forward: str = "rl"
    input_grad: str = "lr"
    meetings: tuple = (0,)
    servers: tuple | None = None     # per core: the meeting whose sweep gives dG_k; None: the last meeting <= k

    def __post_init__(self):
        if self.forward not in FORWARD_ORDERS:
            raise ValueError(f"LayerSchedule.forward must be one of {FORWARD_ORDERS}, not {self.forward!r}")
        if self.input_grad not in INPUT_GRAD_ORDERS:
            raise ValueError(f"LayerSchedule.input_grad must be one of {INPUT_GRAD_ORDERS}, not {self.input_grad!r}")
        meetings = tuple(sorted(set(int(j) for j in self.meetings)))
        if not meetings or meetings[0] != 0:
            raise ValueError(f"LayerSchedule.meetings must contain 0 (of the H_j only H_0 = dW reaches core 0), "
                             f"got {self.meetings}")
        object.__setattr__(self, "meetings", meetings)
        if self.servers is not None:
            object.__setattr__(self, "servers", tuple(int(s) for s in self.servers))

    def resolved_servers(self, d: int) -> tuple:
        """``servers`` for a layer of ``d`` cores, checked: each ``servers[k]`` is a meeting ``<= k``."""
        if any(j >= d for j in self.meetings):
            raise ValueError(f"LayerSchedule.meetings {self.meetings} name a core >= d = {d}")
        if self.servers is None:
            return tuple(max(j for j in self.meetings if j <= k) for k in range(d))
        if len(self.servers) != d:
            raise ValueError(f"LayerSchedule.servers has {len(self.servers)} entries for {d} cores")
        for k, j in enumerate(self.servers):
            if j not in self.meetings or j > k:
                raise ValueError(f"LayerSchedule.servers[{k}] = {j} must be a meeting <= {k} (meetings {self.meetings})")
        for j in self.meetings:
            if self.servers[j] != j:
                raise ValueError(f"meeting {j} must serve its own core (servers[{j}] = {self.servers[j]})")
        return self.servers

    def describe(self) -> str:
        text = f"fwd {self.forward}, dx {self.input_grad}, meetings {list(self.meetings)}"
        if self.servers is not None:
            text += f", servers {list(self.servers)}"
        return text


@dataclass(frozen=True)
class Schedule:
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        for s in self.layers:
            if not isinstance(s, LayerSchedule):
                raise ValueError(f"Schedule.layers must hold LayerSchedule objects, got {type(s).__name__}")

    @classmethod
    def thesis(cls, spec: NetworkSpec) -> "Schedule":
        return cls(tuple(LayerSchedule() for _ in spec.layers))

    @property
    def is_thesis(self) -> bool:
        return all(s == LayerSchedule() for s in self.layers)

    def uses_dense(self) -> bool:
        return any("dense" in (s.forward, s.input_grad) for s in self.layers)


@dataclass
class ScheduledNetwork(CompiledNetwork):
    """A :class:`CompiledNetwork` whose weight tiles may use the extra layouts of this module."""
    schedule: Schedule = None

    def weight_image(self, cores_per_layer) -> np.ndarray:
        dtype = np.result_type(*[np.asarray(c).dtype for layer in cores_per_layer for c in layer])
        image = np.zeros(self.weight_words * WMEM_LANES, dtype=dtype)
        for t in self.weight_tiles:
            values = tile_values(cores_per_layer[t.layer], self.spec.layers[t.layer], t.core, t.layout, self.cfg)
            image[t.wofs * WMEM_LANES: t.wofs * WMEM_LANES + values.size] = values
        return image


def _padded_rows(tile2d: np.ndarray, cfg: HardwareConfig) -> np.ndarray:
    rows, cols = tile2d.shape
    pitch = pe2_row_pitch(cols, cfg.pe2_rows)
    padded = np.zeros((rows, pitch), dtype=tile2d.dtype)
    padded[:, :cols] = tile2d
    return padded.ravel()


def tile_values(cores, layer: TTLayerSpec, k: int, layout: str, cfg: HardwareConfig = DEFAULT_CONFIG) -> np.ndarray:
    """The flat weight-memory contents of the tile ``(k, layout)`` of ``layer`` with cores ``cores``."""
    if layout in LAYOUTS:
        return core_layout(cores[k], layer, k, layout)
    if layout in ("dense", "dense_t"):
        dense = layer.dense_weight(cores)
        return (dense if layout == "dense" else dense.T).ravel()
    R0, m, n, R1 = layer.core_shape(k)
    core = np.asarray(cores[k]).reshape(R0, m, n, R1)
    if layout == "lr_fwd":
        return _padded_rows(core.reshape(R0 * m, n * R1), cfg)
    if layout == "ig_rl":
        return _padded_rows(core.transpose(2, 3, 0, 1).reshape(n * R1, R0 * m), cfg)
    raise KeyError(f"unknown weight layout {layout!r}")


def _tile_size(layer: TTLayerSpec, k: int, layout: str, cfg: HardwareConfig) -> int:
    if layout in LAYOUTS:
        return core_layout(np.zeros(layer.core_shape(k)), layer, k, layout).size
    if layout in ("dense", "dense_t"):
        return layer.in_features * layer.out_features
    R0, m, n, R1 = layer.core_shape(k)
    if layout == "lr_fwd":
        return R0 * m * pe2_row_pitch(n * R1, cfg.pe2_rows)
    if layout == "ig_rl":
        return n * R1 * pe2_row_pitch(R0 * m, cfg.pe2_rows)
    raise KeyError(f"unknown weight layout {layout!r}")


def op_legal(op: Op, cfg: HardwareConfig = DEFAULT_CONFIG) -> ErrorCode:
    """The shape error the device would report for ``op`` (addresses and memory offsets are not checked)."""
    return _shape_error(op.opcode, op.a, op.b, op.c, op.d, op.stride_a, op.stride_b, op.flags, op.out_kind, cfg)


@functools.lru_cache(maxsize=4096)
def _shape_error(opcode, a, b, c, d, stride_a, stride_b, flags, out_kind, cfg) -> ErrorCode:
    desc = Descriptor(opcode, a=a, b=b, c=c, d=d, stride_a=stride_a, stride_b=stride_b, flags=flags, out_fmt=out_kind)
    error = check_descriptor(desc, cfg)
    return ErrorCode.NONE if error == ErrorCode.MEM_RANGE else error


# ---------------------------------------------------------------------------------------------------------
# Emitters (each adds ops and tensors for one layer to a _Builder)

def _forward_lr(bld: _Builder, li: int, layer: TTLayerSpec, x: str, batch: int, inter: OutFormat,
                keep16=()) -> str:
    """Left-to-right forward. The intermediates ``P_1 .. P_j`` up to the largest ``j`` in ``keep16`` (the
    backward's partial weight gradients reuse them) are written as 16-bit: same cycles (DRAM holds int16
    either way), and the gradients keep 16-bit operands as the thesis' dW does."""
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    y = f"L{li}.y"
    cur = x
    for k in range(d - 1):
        a, b, c, dd = batch * math.prod(n[:k]), R[k] * m[k], math.prod(m[k + 1:]), n[k] * R[k + 1]
        kind = OutFormat.S16 if k + 1 <= max(keep16, default=0) else inter
        name = bld.tensor(f"L{li}.P{k + 1}", (a, dd, c), kind, "intermediate")
        bld.emit(Op(Opcode.PE2, dst=name, src_a=cur, a=a, b=b, c=c, d=dd, weight=(li, k, "lr_fwd"), out_kind=kind))
        cur = name
    a = batch * math.prod(n[:d - 1])
    bld.tensor(y, (a, n[d - 1]), OutFormat.S16, "preact")
    bld.emit(Op(Opcode.PE1, dst=y, src_a=cur, a=a, b=R[d - 1], c=m[d - 1], d=n[d - 1], weight=(li, d - 1, "canon")))
    return y


def _forward_dense(bld: _Builder, li: int, layer: TTLayerSpec, x: str, batch: int) -> str:
    y = bld.tensor(f"L{li}.y", (batch, layer.out_features), OutFormat.S16, "preact")
    bld.emit(Op(Opcode.PE1, dst=y, src_a=x, a=batch, b=1, c=layer.in_features, d=layer.out_features,
                weight=(li, 0, "dense_t")))
    return y


def _input_grad_rl(bld: _Builder, li: int, layer: TTLayerSpec, g: str, batch: int) -> str:
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    dx = f"L{li}.dx"
    a = batch * math.prod(n[:d - 1])
    name = dx if d == 1 else f"L{li}.Q{d - 1}"
    bld.tensor(name, (a, R[d - 1] * m[d - 1]), OutFormat.S16, "grad")
    bld.emit(Op(Opcode.PE1, dst=name, src_a=g, a=a, b=1, c=n[d - 1], d=R[d - 1] * m[d - 1],
                weight=(li, d - 1, "bwd_last")))
    cur = name
    for k in range(d - 2, -1, -1):
        a, b, c, dd = batch * math.prod(n[:k]), n[k] * R[k + 1], math.prod(m[k + 1:]), R[k] * m[k]
        name = dx if k == 0 else f"L{li}.Q{k}"
        bld.tensor(name, (a, dd, c), OutFormat.S16, "grad")
        bld.emit(Op(Opcode.PE2, dst=name, src_a=cur, a=a, b=b, c=c, d=dd, weight=(li, k, "ig_rl")))
        cur = name
    return dx


def _input_grad_dense(bld: _Builder, li: int, layer: TTLayerSpec, g: str, batch: int) -> str:
    dx = bld.tensor(f"L{li}.dx", (batch, layer.in_features), OutFormat.S16, "grad")
    bld.emit(Op(Opcode.PE1, dst=dx, src_a=g, a=batch, b=1, c=layer.out_features, d=layer.in_features,
                weight=(li, 0, "dense")))
    return dx


def _partial_inputs(bld: _Builder, li: int, layer: TTLayerSpec, x: str, batch: int, needed, have_forward_lr: bool):
    """``P_j = [B n_<j][R_j][m_>=j]`` for each needed ``j``: the LR forward's tensors, else recomputed (S16)."""
    m, n, R = layer.in_modes, layer.out_modes, layer.full_ranks
    P = {0: x}
    if not needed:
        return P
    if have_forward_lr:
        P.update({j: f"L{li}.P{j}" for j in needed})
        return P
    cur = x
    for k in range(max(needed)):
        a, b, c, dd = batch * math.prod(n[:k]), R[k] * m[k], math.prod(m[k + 1:]), n[k] * R[k + 1]
        name = bld.tensor(f"L{li}.Pb{k + 1}", (a, dd, c), OutFormat.S16, "grad")
        bld.emit(Op(Opcode.PE2, dst=name, src_a=cur, a=a, b=b, c=c, d=dd, weight=(li, k, "lr_fwd")))
        P[k + 1] = cur = name
    return P


def _factor_grads(bld: _Builder, li: int, layer: TTLayerSpec, x: str, g: str, batch: int, sched: LayerSchedule
                  ) -> None:
    """Partial weight gradients ``H_j`` (PE3), right sweeps (PE1), left sweeps (PE2); see the module docstring.

    With ``meetings=(0,)`` this emits exactly the ops of ``compiler._layer_factor_grads`` (eq. 3.15-3.19).
    """
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    servers = sched.resolved_servers(d)
    pairs = [n[k] * m[k] for k in range(d)]
    P = _partial_inputs(bld, li, layer, x, batch, [j for j in sched.meetings if j > 0], sched.forward == "lr")
    grads = [None] * d
    layouts = ["nm"] * d
    for j in sched.meetings:
        served = [k for k in range(d) if servers[k] == j]
        tag = "" if j == 0 else f"{j}."
        # H_0 = dW exactly as the compiler forms it (merged blocks where they fit; pair d-2 then m-major).
        merged = j == 0 and merged_dw_blocks(layer, bld.net.cfg)
        if j == 0:
            V = {d: _emit_full_weight_grad(bld, li, layer, P[0], g, batch, merged)}
        else:
            V = {d: _emit_partial_weight_grad(bld, li, layer, P[j], g, batch, j)}
        # Right sweep with PE1 down to the lowest core this meeting serves: V_k = V_{k+1} x core k.
        for k in range(d - 1, min(served), -1):
            a = R[j] * math.prod(pairs[j:k])
            name = bld.tensor(f"L{li}.V{tag}{k}", (a, R[k]), OutFormat.S16, "grad")
            bld.emit(Op(Opcode.PE1, dst=name, src_a=V[k + 1], a=a, b=1, c=pairs[k] * R[k + 1], d=R[k],
                        weight=(li, k, sweep_layout(layer, k, merged))))
            V[k] = name
        # dG_k = V_{k+1} contracted with cores j .. k-1 (left sweep with PE2).
        for k in served:
            cur = V[k + 1]
            for t in range(j, k):
                c = math.prod(pairs[t + 1:k + 1]) * R[k + 1]
                name = f"L{li}.dG{k}" if t == k - 1 else f"L{li}.S{tag}{k}_{t}"
                bld.tensor(name, (R[t + 1], c), OutFormat.S16, "weight_grad" if t == k - 1 else "grad")
                bld.emit(Op(Opcode.PE2, dst=name, src_a=cur, a=1, b=R[t] * pairs[t], c=c, d=R[t + 1],
                            weight=(li, t, sweep_layout(layer, t, merged))))
                cur = name
            grads[k] = cur
            layouts[k] = grad_layout(layer, k, merged)
    bld.net.factor_grads[li] = grads
    bld.net.factor_grad_layouts[li] = layouts


def _emit_partial_weight_grad(bld: _Builder, li: int, layer: TTLayerSpec, P_j: str, g: str, batch: int,
                              j: int) -> str:
    """PE3 ops forming the partial weight gradient ``H_j`` (``j > 0``): one ``(n_{d-1} x m_{d-1})`` block per
    ``(r, n_j, m_j, ..., n_{d-2}, m_{d-2})``, rows ``(b, n_<j)``, the blocks of the innermost digit as the column
    groups of one instruction; returns its tensor name."""
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    pairs = [n[k] * m[k] for k in range(d)]
    H = bld.tensor(f"L{li}.H{j}", (R[j] * math.prod(pairs[j:]),), OutFormat.S16, "weight_grad")
    block = n[d - 1] * m[d - 1]
    n_strides = [math.prod(n[k + 1:d - 1]) for k in range(j, d - 1)]
    m_strides = [math.prod(m[k + 1:d - 1]) for k in range(j, d - 1)]
    m_inner = math.prod(m[j:d - 1])
    digits = [range(R[j])] + [range(v) for k in range(j, d - 1) for v in (n[k], m[k])]
    rows = batch * math.prod(n[:j])
    # The innermost digit (m_{d-2}, or r when j = d-1) steps P_j by the next m_{d-1} columns and H by one block,
    # with the same columns of g: its values are the column groups of one instruction (contract 1.3).
    fold = 1 < len(digits[-1]) <= PE3_GROUPS_MAX
    col_groups = len(digits[-1]) if fold else 1
    outer = digits[:-1] + [range(1)] if fold else digits      # a folded digit starts at 0
    for beta, idx in enumerate(itertools.product(*outer)):
        r, rest = idx[0], idx[1:]
        n_pre = sum(rest[2 * t] * n_strides[t] for t in range(d - 1 - j))
        m_pre = sum(rest[2 * t + 1] * m_strides[t] for t in range(d - 1 - j))
        bld.emit(Op(Opcode.PE3, dst=H, src_a=P_j, src_b=g, a=rows, b=pe3_group_field(1, col_groups), c=m[d - 1],
                    d=n[d - 1], src_a_offset=(r * m_inner + m_pre) * m[d - 1], src_b_offset=n_pre * n[d - 1],
                    dst_offset=beta * col_groups * block, stride_a=R[j] * math.prod(m[j:]),
                    stride_b=math.prod(n[j:])))
    return H


# ---------------------------------------------------------------------------------------------------------

def _emit_forward(bld: _Builder, li: int, layer: TTLayerSpec, sched: LayerSchedule, batch: int, x: str,
                  inter: OutFormat, is_last: bool) -> str:
    """One layer's forward ops (contraction, then bias and activation); returns the activation's name."""
    if sched.forward == "rl":
        y = _layer_forward(bld, li, layer, x, batch, inter)
    elif sched.forward == "lr":
        y = _forward_lr(bld, li, layer, x, batch, inter, keep16=sched.meetings)
    else:
        y = _forward_dense(bld, li, layer, x, batch)
    return _layer_activation(bld, li, layer, y, batch, "logits" if is_last else f"A{li}")


def _emit_backward(bld: _Builder, li: int, layer: TTLayerSpec, sched: LayerSchedule, batch: int, g: str) -> str:
    """One layer's backward ops (bias and factor gradients, input gradient and mask); returns the next gradient."""
    x = "x" if li == 0 else f"A{li - 1}"
    db = bld.tensor(f"L{li}.db", (layer.out_features,), OutFormat.S16, "bias_grad")
    bld.emit(Op(Opcode.REDUCE, dst=db, src_a=g, a=batch, c=layer.out_features))
    _factor_grads(bld, li, layer, x, g, batch, sched)
    if li == 0:
        return ""
    if sched.input_grad == "lr":
        dx = _layer_input_grad(bld, li, layer, g, batch)
    elif sched.input_grad == "rl":
        dx = _input_grad_rl(bld, li, layer, g, batch)
    else:
        dx = _input_grad_dense(bld, li, layer, g, batch)
    g_prev = bld.tensor(f"G{li - 1}", (batch, layer.in_features), OutFormat.S16, "grad")
    bld.emit(Op(Opcode.ACT_BWD, dst=g_prev, src_a=f"L{li - 1}.y", src_b=dx, a=batch, c=layer.in_features,
                layer=li - 1, mask_of=f"A{li - 1}"))
    return g_prev


def compile_schedule(spec: NetworkSpec, batch: int, schedule: Schedule | None = None,
                     cfg: HardwareConfig = DEFAULT_CONFIG, forward_intermediate: OutFormat = OutFormat.S8,
                     float_mode: bool = False) -> ScheduledNetwork:
    """Compile ``spec`` for ``batch`` with ``schedule`` (default: the thesis'); same programs and tensor names as
    :func:`~ultratrain.sim.compiler.compile_network` where the schedule agrees with the thesis.

    Raises :class:`ShapeError` when an instruction would be illegal on ``cfg`` (naming it), when the tiles
    overflow the weight memory, or when a dense option is asked for without ``float_mode``.
    """
    if not isinstance(batch, int) or batch <= 0:
        raise ShapeError(f"batch must be a positive int, not {batch!r}")
    schedule = Schedule.thesis(spec) if schedule is None else schedule
    if len(schedule.layers) != len(spec.layers):
        raise ValueError(f"schedule has {len(schedule.layers)} layer entries for {len(spec.layers)} layers")
    if schedule.uses_dense() and not float_mode:
        raise ShapeError("a dense-weight option needs float_mode=True: the weight memory holds 4-bit words and "
                         "the product of the cores is not a 4-bit number")
    for layer, s in zip(spec.layers, schedule.layers):
        layer.validate(cfg)
        s.resolved_servers(layer.d)
    net = ScheduledNetwork(spec, batch, cfg, OutFormat(forward_intermediate), schedule=schedule)

    fwd = _Builder(net)
    fwd.tensor("x", (batch, spec.layers[0].in_features), OutFormat.U8, "input")
    cur = "x"
    last = len(spec.layers) - 1
    for li, (layer, s) in enumerate(zip(spec.layers, schedule.layers)):
        cur = _emit_forward(fwd, li, layer, s, batch, cur, net.forward_intermediate, li == last)

    bwd = _Builder(net)
    g = bwd.tensor(f"G{last}", (batch, spec.layers[-1].out_features), OutFormat.S16, "grad")
    for li in range(last, -1, -1):
        g = _emit_backward(bwd, li, spec.layers[li], schedule.layers[li], batch, g)

    # Weight memory plan: every (layer, core, layout) some op reads, in the compiler's order.
    used = {op.weight for ops in (fwd.ops, bwd.ops) for op in ops if op.weight}
    tiles = [(li, k, layout, -(-_tile_size(layer, k, layout, cfg) // WMEM_LANES))
             for li, layer in enumerate(spec.layers) for k in range(layer.d) for layout in _LAYOUT_ORDER
             if (li, k, layout) in used]
    load_ops = _plan_memories(net, tiles)

    for ops in (fwd.ops, bwd.ops):
        for op in ops:
            error = op_legal(op, cfg)
            if error != ErrorCode.NONE:
                raise ShapeError(f"{op.opcode.name} -> {op.dst} (a={op.a}, b={op.b}, c={op.c}, d={op.d}): the device "
                                 f"would reject it with {error.name}")
    # The same program order as compile_network: load, forward, backward.
    net.programs = {"load": load_ops, "forward": fwd.ops, "backward": bwd.ops}
    return net


def layer_plans(d: int, max_meetings: int | None = None):
    """Every ``(meetings, servers)`` of a ``d``-core layer (each meeting serves itself; 0 is always a meeting)."""
    plans = []
    for extra in itertools.chain.from_iterable(itertools.combinations(range(1, d), r) for r in range(d)):
        meetings = (0,) + extra
        if max_meetings is not None and len(meetings) > max_meetings:
            continue
        choices = [[k] if k in meetings else [j for j in meetings if j < k] for k in range(d)]
        plans.extend((meetings, tuple(servers)) for servers in itertools.product(*choices))
    return plans
