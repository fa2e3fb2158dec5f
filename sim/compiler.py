"""The schedule compiler: TT-matrix layers -> PE programs (thesis section 3.8, eq. 3.9-3.19, Table 3.6).

A TT-matrix layer (Definition 3.1) has cores ``G_k`` of shape ``(R_k, m_k, n_k, R_{k+1})``, ``k = 0..d-1``,
``R_0 = R_d = 1``; ``W[(m_0..m_{d-1}), (n_0..n_{d-1})] = G_0[:, m_0, n_0, :] ... G_{d-1}[:, m_{d-1}, n_{d-1}, :]``
and the layer computes ``y = x @ W + bias`` on a batch ``x`` of shape ``(B, prod m)``.

Schedules (docs/compiler.md walks through them with the thesis' d = 3 case; the batch folds into ``a``):

* forward, right to left (3.9-3.11): PE1 contracts ``m_{d-1}`` with the last core, then PE2 contracts
  ``(m_k, R_{k+1})`` with core ``k`` for ``k = d-2 .. 0``;
* input gradient, left to right (3.12-3.14): PE2 contracts ``(R_k, n_k)`` with core ``k`` for ``k = 0..d-2``,
  then PE1 contracts ``(R_{d-1}, n_{d-1})`` with the last core;
* factor gradients through the full weight gradient (3.15-3.19): PE3 forms ``dW`` in the interleaved layout
  ``n_0 m_0 n_1 m_1 ... n_{d-1} m_{d-1}`` one ``(n_{d-1} x m_{d-1})`` block per instruction (summed over the
  batch) — or, where PE3 can hold it (:func:`merged_dw_blocks`), with the pair ``d-2`` stored m-major
  (``... m_{d-2} n_{d-2} n_{d-1} m_{d-1}``) so that one instruction forms an ``(n_{d-2} n_{d-1} x m_{d-1})``
  block: ``n_{d-2}`` times fewer PE3 instructions, each paying the latency, drain and write response once.
  Core ``d-2`` is then read in the ``canon_mn`` layout by the sweeps and its gradient comes out m-major
  (``CompiledNetwork.factor_grad_layouts``); a right sweep with PE1 gives ``V_k = dW`` contracted with cores
  ``k..d-1`` (``dG_0 = V_1``); a left
  sweep with PE2 contracts ``V_{k+1}`` with cores ``0..k-1`` and gives ``dG_k`` (``V_d = dW``). For d = 3
  these are exactly the five contractions of Table 3.6.
* bias and activation on the vector unit; bias gradient by REDUCE.

Every factor gradient comes out in the *canonical* core layout ``[R_k][n_k][m_k][R_{k+1}]``. Weight memory holds
each core in the layouts its instructions read (:data:`LAYOUTS`): weights are tiny, and keeping one read
pattern per PE keeps the weight memory a plain wide RAM.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .contract import (DEFAULT_CONFIG, FIELD_MAX, WMEM_LANES, BMEM_LANES, Descriptor, ErrorCode, Flag,
                       HardwareConfig, Opcode, OutFormat, PE3_GROUPS_MAX, check_descriptor, instruction_macs,
                       pe2_row_pitch, pe3_group_field)

__all__ = ["ShapeError", "TTLayerSpec", "NetworkSpec", "Op", "WeightTile", "CompiledNetwork", "compile_network",
           "core_layout", "LAYOUTS", "assemble", "TensorSpec", "thesis_table33_network", "merged_dw_blocks",
           "sweep_layout", "grad_layout"]


class ShapeError(ValueError):
    """A layer or network the hardware cannot run; the message names the offending dimension."""


# Weight tile layouts: name -> (which PE reads it, permutation of the core axes (R_k, m, n, R_k+1)).
LAYOUTS = {
    "canon": ("PE1/PE2", (0, 2, 1, 3)),     # [R_k][n][m][R_k+1]: backward sweeps, forward last core
    "fwd": ("PE2", (1, 3, 0, 2)),           # [m][R_k+1][R_k][n]: forward cores 0..d-2 (rows padded to 8)
    "bwd_last": ("PE1", (0, 1, 2, 3)),      # [R_k][m][n]: input gradient, last core
    "canon_mn": ("PE1/PE2", (0, 1, 2, 3)),  # [R_k][m][n][R_k+1]: backward sweeps of core d-2 with merged dW blocks
}


@dataclass(frozen=True)
class TTLayerSpec:
    """One TT-matrix layer. ``ranks`` are the internal ranks ``R_1 .. R_{d-1}``."""

    in_modes: tuple
    out_modes: tuple
    ranks: tuple
    activation: str = "relu"      # "relu": quantized clipped ReLU (eq. 3.7); "none": logits
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "in_modes", tuple(int(m) for m in self.in_modes))
        object.__setattr__(self, "out_modes", tuple(int(n) for n in self.out_modes))
        object.__setattr__(self, "ranks", tuple(int(r) for r in self.ranks))
        label = self.name or "layer"
        if len(self.in_modes) != len(self.out_modes) or not self.in_modes:
            raise ShapeError(f"{label}: in_modes {self.in_modes} and out_modes {self.out_modes} must have the same "
                             f"non-zero length (the number of cores)")
        if len(self.ranks) != len(self.in_modes) - 1:
            raise ShapeError(f"{label}: {len(self.in_modes)} cores need {len(self.in_modes) - 1} internal ranks, "
                             f"got ranks {self.ranks}")
        for kind, values in (("in_modes", self.in_modes), ("out_modes", self.out_modes), ("ranks", self.ranks)):
            for i, v in enumerate(values):
                if v <= 0:
                    raise ShapeError(f"{label}: {kind}[{i}] = {v} must be positive")
        if self.activation not in ("relu", "none"):
            raise ShapeError(f"{label}: activation must be 'relu' or 'none', not {self.activation!r}")

    @property
    def d(self) -> int:
        return len(self.in_modes)

    @property
    def full_ranks(self) -> tuple:
        return (1,) + self.ranks + (1,)

    def core_shape(self, k: int) -> tuple:
        R = self.full_ranks
        return (R[k], self.in_modes[k], self.out_modes[k], R[k + 1])

    @property
    def in_features(self) -> int:
        return math.prod(self.in_modes)

    @property
    def out_features(self) -> int:
        return math.prod(self.out_modes)

    @property
    def n_params(self) -> int:
        return sum(math.prod(self.core_shape(k)) for k in range(self.d))

    def with_ranks(self, ranks) -> "TTLayerSpec":
        return TTLayerSpec(self.in_modes, self.out_modes, tuple(ranks), self.activation, self.name)

    def dense_weight(self, cores) -> np.ndarray:
        """``W`` of shape (in_features, out_features) from the cores (float64; for tests and checks)."""
        out = np.ones((1, 1, 1))  # (rows so far, cols so far, rank)
        for k, core in enumerate(cores):
            R0, m, n, R1 = self.core_shape(k)
            core = np.asarray(core, dtype=np.float64).reshape(R0, m, n, R1)
            out = np.einsum("ijr,rmns->imjns", out, core).reshape(out.shape[0] * m, out.shape[1] * n, R1)
        return out[:, :, 0]

    def validate(self, cfg: HardwareConfig = DEFAULT_CONFIG) -> None:
        """Raise :class:`ShapeError` naming the dimension if the hardware cannot run this layer."""
        label = self.name or "layer"
        lanes = WMEM_LANES
        if self.in_modes[-1] % lanes:
            raise ShapeError(f"{label}: last input mode m_{self.d} = {self.in_modes[-1]} is not a multiple of the "
                             f"array width {lanes} (pad the input, as the thesis pads 28x28 to 28x32)")
        if self.out_modes[-1] % lanes:
            raise ShapeError(f"{label}: last output mode n_{self.d} = {self.out_modes[-1]} is not a multiple of "
                             f"the array width {lanes}")
        for k, r in enumerate(self.ranks):
            if r % lanes:
                raise ShapeError(f"{label}: rank R_{k + 1} = {r} is not a multiple of the array width {lanes} "
                                 f"(the factor-gradient contractions need it; pad pruned ranks with zero slices)")


@dataclass(frozen=True)
class NetworkSpec:
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ShapeError("a network needs at least one layer")
        for i, (prev, nxt) in enumerate(zip(self.layers, self.layers[1:])):
            if prev.out_features != nxt.in_features:
                raise ShapeError(f"layer {i} has {prev.out_features} outputs but layer {i + 1} takes "
                                 f"{nxt.in_features} inputs")
            if prev.activation != "relu":
                raise ShapeError(f"layer {i} is not the last layer, so its activation must be 'relu'")
        if self.layers[-1].activation != "none":
            raise ShapeError("the last layer produces logits: its activation must be 'none'")

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)


def thesis_table33_network(rank: int = 16) -> NetworkSpec:
    """Section 3.6.1: 28x32 = 7x4x2x16 -> 512 = 4x4x2x16 -> 16 (32x16 -> 1x16), all ranks ``rank``."""
    return NetworkSpec((
        TTLayerSpec((7, 4, 2, 16), (4, 4, 2, 16), (rank,) * 3, "relu", "L0"),
        TTLayerSpec((32, 16), (1, 16), (rank,), "none", "L1"),
    ))


def core_layout(core, spec: TTLayerSpec, k: int, layout: str) -> np.ndarray:
    """A core (any array reshapeable to ``core_shape(k)``) in a weight-tile layout, flattened in memory order.

    PE2 tiles (``fwd``) have their rows padded with zeros to a multiple of the PE2 row count.
    """
    R0, m, n, R1 = spec.core_shape(k)
    core = np.asarray(core).reshape(R0, m, n, R1)
    tile = core.transpose(LAYOUTS[layout][1])
    if layout == "fwd":
        rows, cols = m * R1, R0 * n
        pitch = pe2_row_pitch(cols)
        padded = np.zeros((rows, pitch), dtype=tile.dtype)
        padded[:, :cols] = tile.reshape(rows, cols)
        return padded.ravel()
    return tile.ravel()


@dataclass(frozen=True)
class TensorSpec:
    """A tensor in DRAM: shape, destination format kind and role (for scale tracking)."""
    name: str
    shape: tuple
    kind: OutFormat
    role: str          # input, intermediate, preact, activation, logits, grad, weight_grad, bias_grad

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return 2 * self.size


@dataclass(frozen=True)
class WeightTile:
    layer: int
    core: int
    layout: str
    words: int
    wofs: int


@dataclass(frozen=True)
class Op:
    """A symbolic instruction: tensors by name; shifts are filled in by :func:`assemble` from exponents."""
    opcode: Opcode
    dst: str = ""
    src_a: str = ""
    src_b: str = ""
    a: int = 0
    b: int = 0
    c: int = 0
    d: int = 0
    weight: tuple = ()        # (layer, core, layout)
    layer: int = -1           # bias / activation layer
    src_a_offset: int = 0     # elements
    src_b_offset: int = 0
    dst_offset: int = 0
    stride_a: int = 0
    stride_b: int = 0
    mask_of: str = ""         # ACT_BWD: the forward activation whose mask applies
    flags: Flag = Flag.NONE
    out_kind: OutFormat = OutFormat.S16

    def macs(self) -> int:
        return instruction_macs(self.opcode, self.a, self.b, self.c, self.d)


@dataclass
class CompiledNetwork:
    """Programs and memory plan for one network at one batch size."""
    spec: NetworkSpec
    batch: int
    cfg: HardwareConfig
    forward_intermediate: OutFormat
    tensors: dict = field(default_factory=dict)
    weight_tiles: list = field(default_factory=list)
    bias_offsets: list = field(default_factory=list)     # per layer: bias-memory word offset
    programs: dict = field(default_factory=dict)         # name -> list[Op]
    factor_grads: dict = field(default_factory=dict)     # layer -> names of dG_0 .. dG_{d-1}
    # layer -> per core "nm" ([R_k][n][m][R_k+1], canonical) or "mn" ([R_k][m][n][R_k+1]): how dG_k is stored
    factor_grad_layouts: dict = field(default_factory=dict)

    @property
    def weight_words(self) -> int:
        return sum(t.words for t in self.weight_tiles)

    @property
    def bias_words(self) -> int:
        return sum(-(-layer.out_features // BMEM_LANES) for layer in self.spec.layers)

    def tile(self, layer: int, core: int, layout: str) -> WeightTile:
        for t in self.weight_tiles:
            if (t.layer, t.core, t.layout) == (layer, core, layout):
                return t
        raise KeyError(f"no weight tile for layer {layer} core {core} layout {layout}")

    def macs(self, program: str) -> int:
        return sum(op.macs() for op in self.programs[program])

    def weight_image(self, cores_per_layer) -> np.ndarray:
        """All tiles in weight-memory order as one flat array of weights (quantized ints or floats)."""
        image = np.zeros(self.weight_words * WMEM_LANES, dtype=np.asarray(cores_per_layer[0][0]).dtype)
        for t in self.weight_tiles:
            values = core_layout(cores_per_layer[t.layer][t.core], self.spec.layers[t.layer], t.core, t.layout)
            image[t.wofs * WMEM_LANES: t.wofs * WMEM_LANES + values.size] = values
        return image

    def bias_image(self, biases) -> np.ndarray:
        image = np.zeros(self.bias_words * BMEM_LANES, dtype=np.asarray(biases[0]).dtype)
        for layer, (bofs, bias) in enumerate(zip(self.bias_offsets, biases)):
            bias = np.asarray(bias).ravel()
            if bias.size != self.spec.layers[layer].out_features:
                raise ShapeError(f"layer {layer}: bias has {bias.size} entries, expected "
                                 f"{self.spec.layers[layer].out_features}")
            image[bofs * BMEM_LANES: bofs * BMEM_LANES + bias.size] = bias
        return image


class _Builder:
    def __init__(self, net: CompiledNetwork):
        self.net = net
        self.ops: list[Op] = []

    def tensor(self, name, shape, kind, role) -> str:
        if name in self.net.tensors:
            raise AssertionError(f"tensor {name} defined twice")
        self.net.tensors[name] = TensorSpec(name, tuple(int(s) for s in shape), OutFormat(kind), role)
        return name

    def emit(self, op: Op) -> None:
        for size_name in ("a", "b", "c", "d", "stride_a", "stride_b"):
            value = getattr(op, size_name)
            if value > FIELD_MAX:
                raise ShapeError(f"{op.opcode.name} -> {op.dst}: size {size_name} = {value} exceeds the 16-bit "
                                 f"descriptor field (reduce the batch size or the modes)")
        self.ops.append(op)


def _layer_forward(bld: _Builder, li: int, layer: TTLayerSpec, x: str, batch: int, inter: OutFormat) -> str:
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    y = f"L{li}.y"
    # Last core with PE1 (eq. 3.9): a = B m_0..m_{d-2}, b = 1, c = m_{d-1}, d = R_{d-1} n_{d-1}.
    a = batch * math.prod(m[:d - 1])
    cur_name = y if d == 1 else f"L{li}.T{d - 1}"
    bld.tensor(cur_name, (a, R[d - 1] * n[d - 1]), OutFormat.S16 if d == 1 else inter,
               "preact" if d == 1 else "intermediate")
    bld.emit(Op(Opcode.PE1, dst=cur_name, src_a=x, a=a, b=1, c=m[d - 1], d=R[d - 1] * n[d - 1],
                weight=(li, d - 1, "canon"), out_kind=bld.net.tensors[cur_name].kind))
    # Cores d-2 .. 0 with PE2 (eq. 3.10-3.11): a = B m_0..m_{k-1}, b = m_k R_{k+1}, c = n_{k+1}.., d = R_k n_k.
    for k in range(d - 2, -1, -1):
        a = batch * math.prod(m[:k])
        c = math.prod(n[k + 1:])
        name = y if k == 0 else f"L{li}.T{k}"
        kind = OutFormat.S16 if k == 0 else inter
        bld.tensor(name, (a, R[k] * n[k], c), kind, "preact" if k == 0 else "intermediate")
        bld.emit(Op(Opcode.PE2, dst=name, src_a=cur_name, a=a, b=m[k] * R[k + 1], c=c, d=R[k] * n[k],
                    weight=(li, k, "fwd"), out_kind=kind))
        cur_name = name
    return y


def _layer_activation(bld: _Builder, li: int, layer: TTLayerSpec, y: str, batch: int, out: str) -> str:
    kind = OutFormat.U8 if layer.activation == "relu" else OutFormat.S16
    bld.tensor(out, (batch, layer.out_features), kind, "activation" if kind == OutFormat.U8 else "logits")
    bld.emit(Op(Opcode.ACT_FWD, dst=out, src_a=y, a=batch, c=layer.out_features, layer=li, out_kind=kind))
    return out


def _layer_input_grad(bld: _Builder, li: int, layer: TTLayerSpec, g: str, batch: int) -> str:
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    dx = f"L{li}.dx"
    cur = g
    # Cores 0 .. d-2 with PE2 (eq. 3.12-3.13): a = B m_0..m_{k-1}, b = R_k n_k, c = n_{k+1}.., d = m_k R_{k+1}.
    for k in range(d - 1):
        a = batch * math.prod(m[:k])
        c = math.prod(n[k + 1:])
        name = f"L{li}.U{k}"
        bld.tensor(name, (a, m[k] * R[k + 1], c), OutFormat.S16, "grad")
        bld.emit(Op(Opcode.PE2, dst=name, src_a=cur, a=a, b=R[k] * n[k], c=c, d=m[k] * R[k + 1],
                    weight=(li, k, "canon")))
        cur = name
    # Last core with PE1 (eq. 3.14): a = B m_0..m_{d-2}, b = R_{d-1}, c = n_{d-1}, d = m_{d-1}.
    a = batch * math.prod(m[:d - 1])
    bld.tensor(dx, (batch, layer.in_features), OutFormat.S16, "grad")
    bld.emit(Op(Opcode.PE1, dst=dx, src_a=cur, a=a, b=R[d - 1], c=n[d - 1], d=m[d - 1],
                weight=(li, d - 1, "bwd_last")))
    return dx


def merged_dw_blocks(layer: TTLayerSpec, cfg: HardwareConfig) -> bool:
    """Whether ``dW`` is formed in ``(n_{d-2} n_{d-1} x m_{d-1})`` blocks (pair ``d-2`` stored m-major): when that
    means fewer PE3 instructions (``n_{d-2} > 1``) and one PE3 instruction can hold the block (``d <= pe3_max_d``)."""
    d, n = layer.d, layer.out_modes
    return d >= 2 and n[d - 2] > 1 and n[d - 2] * n[d - 1] <= cfg.pe3_max_d


def sweep_layout(layer: TTLayerSpec, k: int, merged: bool) -> str:
    """The weight tile the backward sweeps read for core ``k`` (``canon_mn`` for core ``d-2`` of a merged dW)."""
    return "canon_mn" if merged and k == layer.d - 2 else "canon"


def grad_layout(layer: TTLayerSpec, k: int, merged: bool) -> str:
    """How ``dG_k`` is stored: "mn" (``[R_k][m][n][R_k+1]``) where the sweeps read core ``k`` m-major, else the
    canonical "nm" (``[R_k][n][m][R_k+1]``)."""
    return "mn" if sweep_layout(layer, k, merged) == "canon_mn" else "nm"


def _emit_full_weight_grad(bld: _Builder, li: int, layer: TTLayerSpec, x: str, g: str, batch: int,
                           merged: bool) -> str:
    """PE3 ops forming ``dW`` summed over the batch (eq. 3.15's outer product); returns its tensor name.

    Layout ``n_0 m_0 ... n_{d-1} m_{d-1}``, one ``(n_{d-1} x m_{d-1})`` block per pair prefix; with ``merged``
    the pair ``d-2`` is ``m_{d-2} n_{d-2}`` and one block is ``(n_{d-2} n_{d-1} x m_{d-1})``, a contiguous run
    of ``G`` columns against ``m_{d-1}`` columns of ``x``. When ``m_{d-1}`` is PE3's lane count, the blocks
    of the trailing ``m`` digits of the prefix (``m_{d-2}``; merged: ``m_{d-3} m_{d-2}``) lie one after another
    in ``dW`` and their ``x`` columns are contiguous too, so one instruction with Flag.CHUNKS (chunk-major
    store) forms all of them, one 16-lane chunk each: the drain of one chunk overlaps the next one's sweep.
    The ``n`` digit just before them (``n_{lead-1}``) then only moves on to the next ``rows_n`` columns of ``G``
    and the next run of ``dW``: its values are the instruction's row groups (contract 1.2).
    """
    m, n, d = layer.in_modes, layer.out_modes, layer.d
    M, N = layer.in_features, layer.out_features
    dW = bld.tensor(f"L{li}.dW", (M * N,), OutFormat.S16, "weight_grad")
    lead = d - 2 if merged else d - 1                 # pairs before the block's own modes
    rows_n = math.prod(n[lead:])                      # n modes inside one block
    block = rows_n * m[d - 1]
    # The prefix digits in dW order, ("n" | "m", core); merged blocks put m_{d-2} last (pair d-2 m-major).
    digits = [(kind, k) for k in range(lead) for kind in ("n", "m")] + ([("m", d - 2)] if merged else [])
    run = 0                                           # trailing m digits: folded into c as chunks
    if m[d - 1] == bld.net.cfg.pe3_lanes:
        while run < len(digits) and digits[len(digits) - 1 - run][0] == "m":
            run += 1
    outer, inner = digits[:len(digits) - run], digits[len(digits) - run:]
    chunks = math.prod(m[k] for _, k in inner)
    flags = Flag.CHUNKS if chunks > 1 else Flag.NONE
    n_strides = {k: math.prod(n[k + 1:lead]) for k in range(lead)}
    m_strides = {k: math.prod(m[k + 1:d - 1]) for k in range(d - 1)}
    # The last outer digit, when it is n_{lead-1}, steps G columns by exactly one block's rows_n and dW by one
    # instruction's result: its values become PE3 row groups (field b) of one instruction (each group's G
    # columns must start on an operand boundary: rows_n % 16 == 0).
    groups = 1
    if outer and outer[-1] == ("n", lead - 1) and rows_n % WMEM_LANES == 0 and n[lead - 1] <= PE3_GROUPS_MAX:
        groups = n[lead - 1]
        outer = outer[:-1]
    # The digit outside the row groups, when it is an m digit whose x columns follow those of the chunks
    # (m_stride = chunks: the next c columns) and dW's next run of G blocks: its values become PE3 column groups
    # (contract 1.3; Table 3.3's first layer: 28 instructions -> 4).
    col_groups = 1
    if outer and outer[-1][0] == "m" and m_strides[outer[-1][1]] == chunks and m[outer[-1][1]] <= PE3_GROUPS_MAX:
        col_groups = m[outer[-1][1]]
        outer = outer[:-1]
    for beta, idx in enumerate(itertools.product(*[range(n[k] if kind == "n" else m[k]) for kind, k in outer])):
        n_pre = sum(v * n_strides[k] for (kind, k), v in zip(outer, idx) if kind == "n")
        m_pre = sum(v * m_strides[k] for (kind, k), v in zip(outer, idx) if kind == "m")
        bld.emit(Op(Opcode.PE3, dst=dW, src_a=x, src_b=g, a=batch, b=pe3_group_field(groups, col_groups),
                    c=chunks * m[d - 1], d=rows_n, src_a_offset=m_pre * m[d - 1], src_b_offset=n_pre * rows_n,
                    dst_offset=beta * col_groups * groups * chunks * block, stride_a=M, stride_b=N, flags=flags))
    return dW


def _layer_factor_grads(bld: _Builder, li: int, layer: TTLayerSpec, x: str, g: str, batch: int) -> None:
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    pairs = [n[k] * m[k] for k in range(d)]
    merged = merged_dw_blocks(layer, bld.net.cfg)
    dW = _emit_full_weight_grad(bld, li, layer, x, g, batch, merged)
    # Right sweep with PE1 (eq. 3.15-3.16): V_k = V_{k+1} x core k, V_d = dW; V_k is [pairs_<k][R_k].
    V = {d: dW}
    for k in range(d - 1, 0, -1):
        a = math.prod(pairs[:k])
        name = bld.tensor(f"L{li}.V{k}", (a, R[k]), OutFormat.S16, "grad")
        bld.emit(Op(Opcode.PE1, dst=name, src_a=V[k + 1], a=a, b=1, c=pairs[k] * R[k + 1], d=R[k],
                    weight=(li, k, sweep_layout(layer, k, merged))))
        V[k] = name
    # dG_0 = V_1 (d > 1) or dW (d == 1); dG_k = left sweep of V_{k+1} with cores 0..k-1 (eq. 3.17-3.19).
    grads = [V[1]]
    for k in range(1, d):
        cur = V[k + 1]
        for j in range(k):
            c = math.prod(pairs[j + 1:k + 1]) * R[k + 1]
            name = f"L{li}.dG{k}" if j == k - 1 else f"L{li}.S{k}_{j}"
            bld.tensor(name, (R[j + 1], c), OutFormat.S16, "weight_grad" if j == k - 1 else "grad")
            bld.emit(Op(Opcode.PE2, dst=name, src_a=cur, a=1, b=R[j] * pairs[j], c=c, d=R[j + 1],
                        weight=(li, j, sweep_layout(layer, j, merged))))
            cur = name
        grads.append(cur)
    bld.net.factor_grads[li] = grads
    bld.net.factor_grad_layouts[li] = [grad_layout(layer, k, merged) for k in range(d)]


def _plan_memories(net: CompiledNetwork, tiles) -> list[Op]:
    """Place the weight tiles (``(layer, core, layout, words)`` in order) and the biases in the on-chip memories
    of ``net.cfg``, recording them on ``net``; returns the load program. Raises :class:`ShapeError` on overflow."""
    cfg = net.cfg
    wofs = 0
    for li, k, layout, words in tiles:
        net.weight_tiles.append(WeightTile(li, k, layout, words, wofs))
        wofs += words
    if wofs > cfg.wmem_words:
        biggest = max(net.weight_tiles, key=lambda t: t.words)
        raise ShapeError(f"the weight tiles need {wofs} weight-memory words but the device has {cfg.wmem_words} "
                         f"(largest: layer {biggest.layer} core {biggest.core} {biggest.layout}, {biggest.words} "
                         f"words): reduce the ranks or build the device with a larger wmem_words")
    bofs = 0
    for layer in net.spec.layers:
        net.bias_offsets.append(bofs)
        bofs += -(-layer.out_features // BMEM_LANES)
    if bofs > cfg.bmem_words:
        raise ShapeError(f"the biases need {bofs} bias-memory words but the device has {cfg.bmem_words}")
    load = _Builder(net)
    # Room for one element per weight: float mode keeps unpacked weights there, fixed mode packed words.
    load.tensor("weights", (net.weight_words * WMEM_LANES,), OutFormat.S16, "image")
    load.tensor("biases", (net.bias_words * BMEM_LANES,), OutFormat.S16, "image")
    load.emit(Op(Opcode.LOAD_W, src_a="weights", a=net.weight_words))
    load.emit(Op(Opcode.LOAD_B, src_a="biases", a=net.bias_words))
    return load.ops


def compile_network(spec: NetworkSpec, batch: int, cfg: HardwareConfig = DEFAULT_CONFIG,
                    forward_intermediate: OutFormat = OutFormat.S8) -> CompiledNetwork:
    """Compile the load, forward and backward programs of ``spec`` for batches of ``batch`` samples.

    ``forward_intermediate`` is the format of the forward TT intermediates: S8 as in the thesis ("in forward
    propagation only the 8 LSB are used"), or S16 for more precision at the same bandwidth.
    """
    if not isinstance(batch, int) or batch <= 0:
        raise ShapeError(f"batch must be a positive int, not {batch!r}")
    for layer in spec.layers:
        layer.validate(cfg)
    net = CompiledNetwork(spec, batch, cfg, OutFormat(forward_intermediate))

    # Weight and bias memory plan.
    tiles = []
    for li, layer in enumerate(spec.layers):
        for k in range(layer.d):
            sweeps = sweep_layout(layer, k, merged_dw_blocks(layer, cfg))   # the backward sweeps' tile
            layouts = ["canon"] if sweeps == "canon" else []
            if k < layer.d - 1:
                layouts.append("fwd")
            if k == layer.d - 1 and li > 0:
                layouts.append("bwd_last")
            if sweeps != "canon":
                layouts.append(sweeps)
            for layout in layouts:
                size = core_layout(np.zeros(layer.core_shape(k)), layer, k, layout).size
                tiles.append((li, k, layout, -(-size // WMEM_LANES)))
    load_ops = _plan_memories(net, tiles)

    fwd = _Builder(net)
    fwd.tensor("x", (batch, spec.layers[0].in_features), OutFormat.U8, "input")
    cur = "x"
    for li, layer in enumerate(spec.layers):
        y = _layer_forward(fwd, li, layer, cur, batch, net.forward_intermediate)
        cur = _layer_activation(fwd, li, layer, y, batch, "logits" if li == len(spec.layers) - 1 else f"A{li}")

    bwd = _Builder(net)
    last = len(spec.layers) - 1
    g = bwd.tensor(f"G{last}", (batch, spec.layers[-1].out_features), OutFormat.S16, "grad")
    for li in range(last, -1, -1):
        layer = spec.layers[li]
        x = "x" if li == 0 else f"A{li - 1}"
        db = bwd.tensor(f"L{li}.db", (layer.out_features,), OutFormat.S16, "bias_grad")
        bwd.emit(Op(Opcode.REDUCE, dst=db, src_a=g, a=batch, c=layer.out_features))
        _layer_factor_grads(bwd, li, layer, x, g, batch)
        if li > 0:
            dx = _layer_input_grad(bwd, li, layer, g, batch)
            g = bwd.tensor(f"G{li - 1}", (batch, layer.in_features), OutFormat.S16, "grad")
            bwd.emit(Op(Opcode.ACT_BWD, dst=g, src_a=f"L{li - 1}.y", src_b=dx, a=batch, c=layer.in_features,
                        layer=li - 1, mask_of=f"A{li - 1}"))
    net.programs = {"load": load_ops, "forward": fwd.ops, "backward": bwd.ops}
    return net


def assemble(net: CompiledNetwork, program: str, addresses: dict, exps: dict, weight_exps, bias_exps,
             ) -> list[Descriptor]:
    """Descriptors for ``program`` (END appended): tensor addresses and exponents -> addresses and shifts.

    ``exps[name]`` is the power-of-two exponent of each tensor; ``weight_exps[layer][core]`` and
    ``bias_exps[layer]`` those of the weights and biases. Every shift is ``exp(dst) - exp(accumulator)``.
    """
    out = []
    for op in net.programs[program]:
        kw = dict(opcode=op.opcode, a=op.a, b=op.b, c=op.c, d=op.d, flags=op.flags,
                  stride_a=op.stride_a, stride_b=op.stride_b, out_fmt=op.out_kind)
        if op.src_a:
            kw["src_a"] = addresses[op.src_a] + 2 * op.src_a_offset
        if op.src_b:
            kw["src_b"] = addresses[op.src_b] + 2 * op.src_b_offset
        if op.dst:
            kw["dst"] = addresses[op.dst] + 2 * op.dst_offset
        if op.weight:
            li, core, layout = op.weight
            kw["wofs"] = net.tile(li, core, layout).wofs
            acc_exp = exps[op.src_a] + weight_exps[li][core]
            kw["shift"] = exps[op.dst] - acc_exp
        elif op.opcode == Opcode.PE3:
            kw["shift"] = exps[op.dst] - (exps[op.src_a] + exps[op.src_b])
        elif op.opcode == Opcode.REDUCE:
            kw["shift"] = exps[op.dst] - exps[op.src_a]
        elif op.opcode == Opcode.ACT_FWD:
            kw["bofs"] = net.bias_offsets[op.layer]
            kw["bias_shift"] = exps[op.src_a] - bias_exps[op.layer]
            kw["shift"] = exps[op.dst] - exps[op.src_a]
        elif op.opcode == Opcode.ACT_BWD:
            kw["bofs"] = net.bias_offsets[op.layer]
            kw["bias_shift"] = exps[op.src_a] - bias_exps[op.layer]
            kw["shift"] = exps[op.mask_of] - exps[op.src_a]
            kw["out_fmt"] = net.tensors[op.mask_of].kind
            if exps[op.dst] != exps[op.src_b]:
                raise ShapeError(f"ACT_BWD -> {op.dst}: the masked gradient keeps the exponent of {op.src_b} "
                                 f"({exps[op.src_b]}), not {exps[op.dst]}")
        elif op.opcode == Opcode.LOAD_B:
            kw["bofs"] = 0
        for name in ("shift", "bias_shift"):
            if name in kw and not -128 <= kw[name] <= 127:
                raise ShapeError(f"{op.opcode.name} -> {op.dst}: {name} {kw[name]} is outside [-128, 127]: "
                                 f"the exponents of its operands are inconsistent")
        desc = Descriptor(**kw)
        error = check_descriptor(desc, net.cfg)
        if error != ErrorCode.NONE:
            raise ShapeError(f"{op.opcode.name} -> {op.dst or op.src_a}: the device would reject it with "
                             f"{error.name} ({desc})")
        out.append(desc)
    out.append(Descriptor(Opcode.END))
    return out
