"""Training curves and ranks per layer (PNG, matplotlib Agg) from the per-epoch metrics of host/trainer.py, and
the instruction timeline of ``ultratrain program``.

matplotlib is imported only here and only when a plot is written, so the training loop itself stays numpy
only (the board image may lack matplotlib; then the trainer just skips the plot).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot_run", "plot_metrics_file", "plot_table", "plot_program"]


def _mpl():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_run(history: list[dict], path, title: str = "") -> Path:
    """Four panels: loss, train/test accuracy, effective rank of every internal rank, model memory."""
    plt = _mpl()
    path = Path(path)
    epochs = [m["epoch"] for m in history]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    ax.plot(epochs, [m["train_loss"] for m in history], "o-", label="train")
    ax.plot(epochs, [m["test_loss"] for m in history], "s-", label="test")
    ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(epochs, [100 * m["train_acc"] for m in history], "o-", label="train (running)")
    ax.plot(epochs, [100 * m["test_acc"] for m in history], "s-", label="test")
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax.legend()
    ax = axes[1, 0]
    if history:
        for li, layer_ranks in enumerate(history[0]["ranks"]):
            for n in range(len(layer_ranks)):
                ax.plot(epochs, [m["ranks"][li][n] for m in history], "o-", label=f"layer {li} R{n + 1}")
    ax.set(xlabel="epoch", ylabel="effective rank", title="ranks per layer")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    ax.plot(epochs, [m["memory_bits"] for m in history], "o-")
    ax.set(xlabel="epoch", ylabel="bits", title="model memory")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_metrics_file(metrics_path, png_path=None, title: str = "") -> Path:
    """Plot a ``metrics.jsonl`` written by the trainer (default: ``curves.png`` beside it)."""
    metrics_path = Path(metrics_path)
    history = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    return plot_run(history, png_path or metrics_path.with_name("curves.png"), title)


def plot_table(runs: dict, path) -> Path:
    """Test accuracy and effective parameters per epoch for several runs (the rows of Table 3.3)."""
    plt = _mpl()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, history in runs.items():
        epochs = [m["epoch"] for m in history]
        axes[0].plot(epochs, [100 * m["test_acc"] for m in history], "o-", ms=3, label=label)
        axes[1].plot(epochs, [m["params"] for m in history], "o-", ms=3, label=label)
    axes[0].set(xlabel="epoch", ylabel="test accuracy (%)", title="Fashion-MNIST test accuracy")
    axes[1].set(xlabel="epoch", ylabel="parameters", title="effective parameters (cores + biases)")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


UNIT_COLORS = {"PE1": "C0", "PE2": "C1", "PE3": "C2", "VEC": "C4", "LOAD": "C7", "CTRL": "C5"}


def plot_program(result: dict, path) -> Path:
    """One training step as the cycle model sees it (the dict of ``host.program_listing.listing``).

    Top: every instruction in issue order as a bar as wide as its modelled cycles and as tall as the fraction
    of its roofline it reaches (roofline cycles / cycles), coloured by unit; the grey above a bar is what it
    loses to fill, drain and latency. Bottom: cycles per unit against the sum of their rooflines.
    """
    plt = _mpl()
    rows = result["rows"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), gridspec_kw={"height_ratios": [3, 2]})
    extents = {}                                     # program -> [first cycle, last cycle]
    start = 0
    for r in rows:
        extents.setdefault(r["program"], [start, start])[1] = start + r["cycles"]
        start += r["cycles"]
    for program, (lo, hi) in extents.items():
        top.axvline(lo, color="k", lw=0.6, ls=":")
        # labelled at their middles, narrow ones (the load program) a line higher so that they do not collide
        narrow = hi - lo < 0.05 * max(start, 1)
        top.text((lo + hi) / 2, 1.07 if narrow else 1.02, program, fontsize=8, ha="center", va="bottom")
    start = 0
    for r in rows:
        width = r["cycles"]
        fraction = r["roofline"] / width if width else 0.0
        top.bar(start, 1.0, width, align="edge", color="0.88", edgecolor="none")
        top.bar(start, fraction, width, align="edge", color=UNIT_COLORS.get(r["unit"], "C3"), edgecolor="white",
                linewidth=0.3)
        start += width
    for unit, color in UNIT_COLORS.items():
        if any(r["unit"] == unit for r in rows):
            top.bar(0, 0, 0, color=color, label=unit)
    top.set(xlim=(0, max(start, 1)), ylim=(0, 1.15), xlabel="cycles (modelled, in issue order)",
            ylabel="roofline / cycles")
    top.set_title(f"{result['network']} network, batch {result['batch']}, {result['schedule']} schedule, "
                  f"{result['rd_latency']}-cycle DRAM latency: {result['cycles']:,} cycles, "
                  f"{result['utilization']:.1%} of the 128 MAC/cycle peak"
                  + ("\npriced with " + ", ".join(f"{k} = {v}" for k, v in result["params"].items())
                     if result.get("params") else ""), fontsize=10)
    top.legend(fontsize=8, ncol=len(UNIT_COLORS), loc="lower right")
    units = {}
    for r in rows:
        u = units.setdefault(r["unit"], [0, 0.0])
        u[0] += r["cycles"]
        u[1] += r["roofline"]
    names = sorted(units, key=lambda u: -units[u][0])
    pos = range(len(names))
    bottom.barh([p + 0.2 for p in pos], [units[u][0] for u in names], 0.4, color=[UNIT_COLORS.get(u, "C3")
                                                                                   for u in names], label="cycles")
    bottom.barh([p - 0.2 for p in pos], [units[u][1] for u in names], 0.4, color="0.6", label="roofline")
    bottom.legend(handles=bottom.containers[::-1], labels=["roofline", "cycles (colour of the unit)"], fontsize=8,
                  loc="lower right")
    for p, u in zip(pos, names):
        cycles, roof = units[u]
        bottom.text(cycles, p + 0.2, f" {cycles:,} ({cycles - roof:,.0f} above the roofline)", va="center",
                    fontsize=8)
    bottom.set_yticks(list(pos), names)
    bottom.invert_yaxis()
    bottom.set(xlabel="cycles per unit", xlim=(0, 1.45 * max([v[0] for v in units.values()] + [1])))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
