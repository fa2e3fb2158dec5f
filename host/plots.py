"""Training curves and ranks per layer (PNG, matplotlib Agg) from the per-epoch metrics of host/trainer.py.

matplotlib is imported only here and only when a plot is written, so the training loop itself stays numpy
only (the board image may lack matplotlib; then the trainer just skips the plot).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot_run", "plot_metrics_file", "plot_table"]


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
