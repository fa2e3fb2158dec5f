"""Fig. 4.3: training/testing error, loss and generalisation gap against the number of training samples,
binary-weight vs real-weight network, on Fashion-MNIST.

Thesis sections 4.6.2 and 4.9.2: three-layer network with the first layer fixed, only the second layer
quantised (BinaryConnect, stochastic rounding), 2048 hidden neurons, batch 100, Adam with learning rate 1e-3;
training sets drawn at random from the training split, the full test split for testing, 10 repeats, mean and
standard deviation. Panels: (a) error rates, (b) losses, (c) test - train error, (d) test - train loss.

Decisions (docs/theory/chapter4_ntk_bwnn.md): inputs centred and scaled to the unit sphere, fixed layer of
width 784 (the thesis does not give it), ``c = d`` (unit pre-activation variance), a fixed number of Adam
steps per run (the thesis gives no stopping rule), cross-entropy loss, the binary network evaluated with one
fixed stochastic rounding of its buffer; quick mode uses the committed 3000/1000-sample subset and 512
hidden neurons.

``python -m ultratrain.sw.ntk.exp_fig4_3 [--quick] [--out DIR] [--sizes N ...] [--repeats R] [--steps S]``
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from torch import nn

from .datasets import fashion_mnist_on_sphere
from .experiment_utils import base_parser, pyplot, setup_run, write_json
from .networks import BinaryWeightNet, train_network

QUICK = dict(sizes=(100, 300, 1000, 3000), repeats=2, steps=300, hidden=512, n_test=1000,
             data_dir="tests/data/fashion-mnist-subset")
FULL = dict(sizes=(100, 300, 1000, 3000, 10000, 60000), repeats=10, steps=3000, hidden=2048, n_test=None,
            data_dir=None)
BATCH, LR, PROJECTION = 100, 1e-3, 784


@torch.no_grad()
def evaluate(net, x, y, binary_weights):
    """Error rate and mean cross-entropy, in chunks."""
    errors, loss = 0.0, 0.0
    for start in range(0, len(y), 2000):
        out = net(x[start:start + 2000], binary_weights=binary_weights)
        target = y[start:start + 2000]
        errors += float((out.argmax(1) != target).sum())
        loss += float(nn.functional.cross_entropy(out, target, reduction="sum"))
    return errors / len(y), loss / len(y)


def run_one(task):
    """Train one network on one random training subset; train and test error and loss."""
    weights, size, repeat, cfg, seed, data = task
    torch.set_num_threads(1)
    x_all, y_all, x_test, y_test = data
    rng = np.random.default_rng(seed + 7919 * repeat + size)
    idx = rng.choice(len(y_all), size=size, replace=False)
    x, y = torch.from_numpy(x_all[idx]), torch.from_numpy(y_all[idx])
    net = BinaryWeightNet(x.shape[1], PROJECTION, cfg["hidden"], 10, c=float(x.shape[1]), beta=0.1,
                          weights=weights, seed=seed + repeat)
    train_network(net, x, y, mode="binaryconnect" if weights == "binary" else "real", steps=cfg["steps"],
                  lr=LR, batch_size=BATCH, optimizer="adam", seed=seed + repeat)
    w1 = net.sample_weights(torch.Generator().manual_seed(seed + repeat + 1))
    train_err, train_loss = evaluate(net, x, y, w1)
    test_err, test_loss = evaluate(net, torch.from_numpy(x_test), torch.from_numpy(y_test), w1)
    return {"weights": weights, "size": size, "repeat": repeat, "train_error": train_err, "test_error": test_err,
            "train_loss": train_loss, "test_loss": test_loss}


def aggregate(rows):
    """Mean and std over repeats per (weights, size), with the two gaps."""
    out = {}
    for row in rows:
        row = dict(row, error_gap=row["test_error"] - row["train_error"], loss_gap=row["test_loss"] - row["train_loss"])
        out.setdefault(row["weights"], {}).setdefault(row["size"], []).append(row)
    summary = {}
    for weights, by_size in out.items():
        summary[weights] = {}
        for size, runs in sorted(by_size.items()):
            summary[weights][size] = {
                key: {"mean": float(np.mean([r[key] for r in runs])), "std": float(np.std([r[key] for r in runs]))}
                for key in ("train_error", "test_error", "train_loss", "test_loss", "error_gap", "loss_gap")}
    return summary


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], "results_local/theory/ntk/exp_fig4_3")
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: quick uses the test subset)")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="training-set sizes (default: mode's)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="Adam steps per run")
    parser.add_argument("--hidden", type=int, default=None, help="hidden neurons")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (<= 2 on the shared machine)")
    args = parser.parse_args(argv)
    started = time.time()
    out = setup_run(args)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("sizes", "repeats", "steps", "hidden"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = tuple(value) if key == "sizes" else value
    if args.data:
        cfg["data_dir"] = args.data
    if not 1 <= args.workers <= 2:
        raise ValueError(f"--workers must be 1 or 2, got {args.workers}")
    if cfg["repeats"] < 1 or cfg["steps"] < 1 or not cfg["sizes"] or min(cfg["sizes"]) < 1:
        raise ValueError(f"need repeats >= 1, steps >= 1 and positive sizes, got {cfg}")
    data = fashion_mnist_on_sphere(None, cfg["n_test"], data_dir=cfg["data_dir"], seed=args.seed)
    if max(cfg["sizes"]) > len(data[1]):
        raise ValueError(f"--sizes: at most {len(data[1])} training samples available, got {max(cfg['sizes'])}")
    tasks = [(w, n, r, cfg, args.seed, data) for r in range(cfg["repeats"]) for n in cfg["sizes"]
             for w in ("binary", "real")]
    from tqdm import tqdm

    if args.workers == 1:
        rows = [run_one(t) for t in tqdm(tasks, desc="fig4_3")]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            rows = list(tqdm(pool.map(run_one, tasks), total=len(tasks), desc="fig4_3"))
    summary = aggregate(rows)

    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    panels = (("(a) error rate", ("train_error", "test_error")), ("(b) loss", ("train_loss", "test_loss")),
              ("(c) test - train error", ("error_gap",)), ("(d) test - train loss", ("loss_gap",)))
    for ax, (title, keys) in zip(axes, panels):
        for weights, color in (("binary", "tab:blue"), ("real", "tab:orange")):
            sizes = sorted(summary[weights])
            for key in keys:
                mean = [summary[weights][n][key]["mean"] for n in sizes]
                std = [summary[weights][n][key]["std"] for n in sizes]
                style = "--" if key.startswith("train") else "-"
                ax.errorbar(sizes, mean, std, fmt=style, marker="o", ms=3, color=color, capsize=2,
                            label=f"{'Binary' if weights == 'binary' else 'Real'} {key.split('_')[0]}")
        ax.set_xscale("log")
        ax.set_xlabel("training samples")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig4_3.png", dpi=120)
    plt.close(fig)
    path = write_json(out / "fig4_3.json", {"config": {k: v for k, v in cfg.items()}, "batch": BATCH, "lr": LR,
                                            "projection_width": PROJECTION, "summary": summary, "runs": rows},
                      args, started)
    largest = max(cfg["sizes"])
    print(f"fig4_3 n={largest}: error gap binary {summary['binary'][largest]['error_gap']['mean']:.4f} "
          f"vs real {summary['real'][largest]['error_gap']['mean']:.4f} -> {path}")
    return summary


if __name__ == "__main__":
    main()
