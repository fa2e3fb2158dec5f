"""Schedule optimizer: per layer and batch size, the schedule with the fewest modeled cycles (thesis 3.8, 3.6.2).

For every layer it enumerates the choices of ``sim/schedules.py`` — forward order (right to left as in the
thesis, left to right, dense in float mode), input-gradient order, and the backward method (which partial
weight gradients ``H_j`` PE3 forms and which sweep gives each factor gradient; ``meetings=(0,)`` is the
thesis' full-weight-gradient method, a meeting at the last core is the direct factor gradient) — drops those
the hardware cannot run (illegal descriptor shapes, weight-memory overflow), prices each with the cycle
model (``sim/cycle_model.py``) and keeps the cheapest. Layers are independent except for the shared weight
memory, which the final check enforces (falling back to the next cheapest candidates).

Every candidate computes the same result as the thesis' schedule (tests/perf/test_schedules.py), so picking by
cycles is safe.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from .compiler import NetworkSpec, ShapeError, TTLayerSpec, _Builder
from .contract import DEFAULT_CONFIG, ErrorCode, HardwareConfig, Opcode, OutFormat, WMEM_LANES
from .cycle_model import CycleModel, ProgramCost, mac_lower_bound, unit_lower_bound
from .schedules import (LayerSchedule, Schedule, ScheduledNetwork, _emit_backward, _emit_forward, _tile_size,
                        compile_schedule, layer_plans, op_legal)

__all__ = ["LayerChoice", "Optimized", "layer_candidates", "price_layer", "optimize", "network_cost",
           "pe3_contractions", "pe3_floor"]


@dataclass(frozen=True)
class LayerChoice:
    """One priced candidate for one layer: its schedule, modeled cycles, MACs and weight-memory words."""
    schedule: LayerSchedule
    cycles: int
    macs: int
    weight_words: int
    pe3_macs: int


@dataclass
class Optimized:
    """The optimizer's answer for one network and batch size."""
    schedule: Schedule
    batch: int
    choices: list = field(default_factory=list)       # per layer: candidates sorted by cycles (the pick first)

    def table(self) -> list[dict]:
        rows = []
        for li, cands in enumerate(self.choices):
            for rank, c in enumerate(cands):
                rows.append({"layer": li, "rank": rank, "schedule": c.schedule.describe(), "cycles": c.cycles,
                             "macs": c.macs, "pe3_macs": c.pe3_macs, "weight_words": c.weight_words})
        return rows


def layer_candidates(layer: TTLayerSpec, li: int, float_mode: bool = False, max_meetings: int | None = None):
    """Every :class:`LayerSchedule` of this layer (input-gradient options only for layers after the first)."""
    forwards = ("rl", "lr", "dense") if float_mode else ("rl", "lr")
    input_grads = (("lr", "rl", "dense") if float_mode else ("lr", "rl")) if li > 0 else ("lr",)
    for fwd, ig, (meetings, servers) in itertools.product(forwards, input_grads, layer_plans(layer.d, max_meetings)):
        default = LayerSchedule(meetings=meetings).resolved_servers(layer.d)
        yield LayerSchedule(fwd, ig, meetings, None if servers == default else servers)


def _layer_ops(spec: NetworkSpec, li: int, sched: LayerSchedule, batch: int, cfg: HardwareConfig,
               forward_intermediate: OutFormat):
    """The forward and backward ops of layer ``li`` alone (inputs referenced by name)."""
    layer = spec.layers[li]
    net = ScheduledNetwork(spec, batch, cfg, forward_intermediate)
    fwd, bwd = _Builder(net), _Builder(net)
    is_last = li == len(spec.layers) - 1
    _emit_forward(fwd, li, layer, sched, batch, "x" if li == 0 else f"A{li - 1}", forward_intermediate, is_last)
    g = "logits.grad" if is_last else f"G{li}"
    _emit_backward(bwd, li, layer, sched, batch, g)
    return fwd.ops + bwd.ops


def price_layer(spec: NetworkSpec, li: int, sched: LayerSchedule, batch: int, model: CycleModel,
                forward_intermediate: OutFormat = OutFormat.S8) -> LayerChoice | None:
    """Model one layer under ``sched``; ``None`` if the hardware cannot run it."""
    cfg = model.cfg
    layer = spec.layers[li]
    try:
        ops = _layer_ops(spec, li, sched, batch, cfg, forward_intermediate)
    except ShapeError:
        return None
    if any(op_legal(op, cfg) != ErrorCode.NONE for op in ops):
        return None
    tiles = {op.weight for op in ops if op.weight}
    words = sum(-(-_tile_size(layer, k, layout, cfg) // WMEM_LANES) for _, k, layout in tiles)
    if words > cfg.wmem_words:
        return None
    cost = model.program(ops)
    # The tiles are reloaded every step (LOAD_W streams 4 words per 128-bit beat).
    load = -(-words * 4 * WMEM_LANES // cfg.axi_data_bits)
    pe3 = sum(op.macs() for op in ops if op.opcode == Opcode.PE3)
    return LayerChoice(sched, cost.cycles + load, cost.macs, words, pe3)


def optimize(spec: NetworkSpec, batch: int, model: CycleModel | None = None, float_mode: bool = False,
             forward_intermediate: OutFormat = OutFormat.S8, max_meetings: int | None = None) -> Optimized:
    """The cheapest legal schedule of ``spec`` at ``batch`` under ``model`` (default: the calibrated model).

    ``float_mode`` admits the dense-weight options (see ``sim/schedules.py``). Raises :class:`ShapeError` if
    no combination fits the weight memory.
    """
    if not isinstance(batch, int) or batch <= 0:
        raise ShapeError(f"batch must be a positive int, not {batch!r}")
    model = CycleModel() if model is None else model
    cfg = model.cfg
    per_layer = []
    for li, layer in enumerate(spec.layers):
        layer.validate(cfg)
        priced = [price_layer(spec, li, s, batch, model, forward_intermediate)
                  for s in layer_candidates(layer, li, float_mode, max_meetings)]
        priced = sorted((p for p in priced if p is not None),
                        key=lambda p: (p.cycles, p.schedule != LayerSchedule()))
        if not priced:
            raise ShapeError(f"layer {li}: no schedule runs on this hardware")
        per_layer.append(priced)
    # Cheapest combination that fits the weight memory (usually the per-layer minima).
    best, best_cycles = None, None
    depth = [min(len(p), 6) for p in per_layer]
    for picks in itertools.product(*[range(n) for n in depth]):
        chosen = [per_layer[li][i] for li, i in enumerate(picks)]
        if sum(c.weight_words for c in chosen) > cfg.wmem_words:
            continue
        cycles = sum(c.cycles for c in chosen)
        if best_cycles is None or cycles < best_cycles:
            best, best_cycles = chosen, cycles
    if best is None:
        raise ShapeError(f"no combination of layer schedules fits the {cfg.wmem_words}-word weight memory")
    for li, pick in enumerate(best):
        per_layer[li].remove(pick)
        per_layer[li].insert(0, pick)
    schedule = Schedule(tuple(c.schedule for c in best))
    compile_schedule(spec, batch, schedule, cfg, forward_intermediate, float_mode)   # raises if anything is off
    return Optimized(schedule, batch, per_layer)


def pe3_contractions(layer: TTLayerSpec, batch: int) -> list[tuple[str, int, int, int]]:
    """Every batch contraction that yields factor gradients of ``layer``: ``(name, first, last, MACs)``.

    The batch can only be summed by PE3 (the one unit with two DRAM operands), so every factor gradient passes
    through one PE3 contraction of an ``x``-side and a ``dy``-side batch-major tensor, summed over the batch and
    every mode neither side keeps. Three families, each covering an interval of cores ``first .. last`` (the
    remaining cores of the interval follow by batch-free sweeps on PE1/PE2):

    * ``H_j``: the forward partial ``P_j`` (``x`` through cores ``< j``) against ``dy``; covers ``j .. d-1``;
      ``H_0 = dW`` (eq. 3.15). MACs ``B N_out R_j math.prod(m_>=j)``.
    * ``H'_j``: ``x`` against the gradient partial ``T_j`` (``dy`` through cores ``> j``, the right-to-left
      input-gradient intermediate); covers ``0 .. j``; ``H'_{d-1} = dW``. MACs ``B N_in math.prod(n_<=j) R_{j+1}``.
    * ``D_k``: ``P_k`` against ``T_k``, the direct gradient of core ``k`` alone. MACs
      ``B math.prod(n_<k) math.prod(m_>k) R_k m_k n_k R_{k+1}``.

    ``sim/schedules.py`` emits the ``H_j`` family; this list is the wider space, for bounds (:func:`pe3_floor`).
    """
    m, n, R, d = layer.in_modes, layer.out_modes, layer.full_ranks, layer.d
    out = []
    for j in range(d):
        out.append((f"H_{j}", j, d - 1, batch * layer.out_features * R[j] * math.prod(m[j:])))
        out.append((f"H'_{j}", 0, j, batch * layer.in_features * math.prod(n[:j + 1]) * R[j + 1]))
        out.append((f"D_{j}", j, j, batch * math.prod(n[:j]) * math.prod(m[j + 1:]) * R[j] * m[j] * n[j] * R[j + 1]))
    return out


def pe3_floor(layer: TTLayerSpec, batch: int) -> tuple[int, tuple[str, ...]]:
    """The fewest PE3 MACs that give every factor gradient of ``layer``, and the contractions that do it.

    A minimum interval cover of the cores ``0 .. d-1`` by :func:`pe3_contractions` (dynamic programming over
    the first uncovered core). Divided by PE3's lanes it bounds the cycles of any backward method built from
    these contractions, whatever the order of the batch-free sweeps.
    """
    d = layer.d
    contractions = pe3_contractions(layer, batch)
    best: list = [(0, ())] + [None] * d           # best[i]: cheapest cover of cores 0 .. i-1
    for i in range(d):
        if best[i] is None:
            continue
        for name, first, last, macs in contractions:
            if first <= i <= last:
                cand = (best[i][0] + macs, best[i][1] + (name,))
                if best[last + 1] is None or cand[0] < best[last + 1][0]:
                    best[last + 1] = cand
    return best[d]


def network_cost(net, model: CycleModel, programs=("load", "forward", "backward")) -> dict:
    """Modeled cycles, seconds, MACs and bounds of one training step of a compiled network."""
    total = ProgramCost()
    per_program = {}
    ops = []
    for name in programs:
        cost = model.program(net.programs[name])
        per_program[name] = cost.cycles
        total += cost
        ops.extend(net.programs[name])
    peak = net.cfg.peak_macs_per_cycle
    return {
        "cycles": total.cycles,
        "seconds": model.seconds(total.cycles),
        "macs": total.macs,
        "instructions": total.instructions,
        "per_program_cycles": per_program,
        "per_unit": {u: {"cycles": c, "macs": m, "instructions": n} for u, (c, m, n) in sorted(total.by_unit.items())},
        "mac_bound_cycles": mac_lower_bound(total.macs, net.cfg),
        "unit_bound_cycles": unit_lower_bound(ops, net.cfg),
        "utilization": total.macs / (peak * total.cycles) if total.cycles else 0.0,
    }
