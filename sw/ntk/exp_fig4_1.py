"""Fig. 4.1: the quasi neural network against Monte Carlo over stochastic roundings, before and after training.

Thesis section 4.6.1: the network of section 4.4.2 with 1600 hidden neurons is trained on MNIST by gradient
descent on the quasi network (4.2) with weight decay 1e-3; for test inputs the output of the binary network
is sampled under 1000 stochastic roundings. (a)(b): histogram of one output with a fitted Gaussian;
(c)(d): quasi-network output (x axis) against the Monte-Carlo mean (y axis).

Here: Fashion-MNIST (MNIST is not on our machines; the full set in full mode, the committed 3000-sample
subset in quick mode), inputs centred and scaled to the unit sphere (Assumption 4.3), ``c = d`` so the
pre-activations have unit variance, minibatch SGD with weight decay 1e-3 on the cross-entropy of the
10 quasi-network outputs. Reported: correlation and largest gap between quasi and Monte-Carlo means over all
outputs of all evaluated inputs, for Theorem 4.4's limit variance (the thesis' quasi network) and Lemma 4.2's
finite-width variance; skewness and excess kurtosis of the sampled output (0 for a Gaussian).

``python -m ultratrain.sw.ntk.exp_fig4_1 [--quick] [--out DIR]``
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy import stats

from .datasets import fashion_mnist_on_sphere
from .experiment_utils import base_parser, pyplot, setup_run, write_json
from .networks import BinaryWeightNet, monte_carlo_outputs, train_network

QUICK = dict(n_train=2000, n_eval=100, width=512, mc_samples=200, steps=300, data_dir="tests/data/fashion-mnist-subset")
FULL = dict(n_train=20000, n_eval=200, width=1600, mc_samples=1000, steps=2000, data_dir=None)


def compare(net, x_eval, mc_samples, generator):
    """Monte-Carlo outputs and the two quasi-network variants on ``x_eval``; summary statistics."""
    samples = monte_carlo_outputs(net, x_eval, mc_samples, generator=generator)
    mc_mean = samples.mean(0)
    result = {"samples": samples, "mc_mean": mc_mean}
    with torch.no_grad():
        for variance in ("limit", "exact"):
            quasi = net.quasi_forward(x_eval, variance=variance)
            a, b = quasi.flatten().double().numpy(), mc_mean.flatten().double().numpy()
            result[variance] = {"quasi": quasi, "correlation": float(np.corrcoef(a, b)[0, 1]),
                                "max_abs_gap": float(np.abs(a - b).max()),
                                "rms_gap": float(np.sqrt(np.mean((a - b) ** 2))),
                                "output_std_across_inputs": float(b.std())}
    # Standard error of a Monte-Carlo mean: the gap the sampling alone explains.
    result["mc_standard_error_rms"] = float(torch.sqrt((samples.var(0) / mc_samples).mean()))
    return result


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], "results_local/theory/ntk/exp_fig4_1")
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: quick uses the test subset)")
    parser.add_argument("--lr", type=float, default=1.0, help="SGD learning rate on the quasi network")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    args = parser.parse_args(argv)
    started = time.time()
    out = setup_run(args)
    cfg = dict(QUICK if args.quick else FULL)
    if args.data:
        cfg["data_dir"] = args.data
    xtr, ytr, xte, _ = fashion_mnist_on_sphere(cfg["n_train"], cfg["n_eval"], data_dir=cfg["data_dir"],
                                               seed=args.seed)
    xtr, xte = torch.from_numpy(xtr), torch.from_numpy(xte)
    d = xtr.shape[1]
    net = BinaryWeightNet(d, cfg["width"], cfg["width"], 10, c=float(d), beta=0.1, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    before = compare(net, xte, cfg["mc_samples"], gen)
    history = train_network(net, xtr, torch.from_numpy(ytr), mode="quasi", steps=cfg["steps"], lr=args.lr,
                            batch_size=args.batch_size, optimizer="sgd", weight_decay=args.weight_decay,
                            seed=args.seed, progress=True)
    with torch.no_grad():
        train_acc = float((net.quasi_forward(xtr).argmax(1).numpy() == ytr).mean())
    after = compare(net, xte, cfg["mc_samples"], gen)

    # The histogram input: the first evaluation sample, output of class 0 (any fixed choice; the thesis picks one).
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    summary = {}
    for col, (name, res) in enumerate((("before", before), ("after", after))):
        draws = res["samples"][:, 0, 0].double().numpy()
        mean, std = draws.mean(), draws.std()
        ax = axes[0, col]
        ax.hist(draws, bins=40, density=True, color="tab:blue", alpha=0.7, label="stochastic roundings")
        grid = np.linspace(draws.min(), draws.max(), 200)
        ax.plot(grid, stats.norm.pdf(grid, mean, std), "r", label="Gaussian fit")
        ax.set_title(f"({'ab'[col]}) output under {len(draws)} roundings, {name} training")
        ax.legend(fontsize=8)
        ax = axes[1, col]
        quasi = res["limit"]["quasi"].flatten().numpy()
        mc = res["mc_mean"].flatten().numpy()
        ax.scatter(quasi, mc, s=4)
        lo, hi = min(quasi.min(), mc.min()), max(quasi.max(), mc.max())
        ax.plot([lo, hi], [lo, hi], "r", lw=1)
        ax.set_xlabel("quasi network E(y | theta)")
        ax.set_ylabel("Monte Carlo mean")
        ax.set_title(f"({'cd'[col]}) {name} training, corr {res['limit']['correlation']:.4f}")
        summary[name] = {"limit": {k: v for k, v in res["limit"].items() if k != "quasi"},
                         "exact": {k: v for k, v in res["exact"].items() if k != "quasi"},
                         "mc_standard_error_rms": res["mc_standard_error_rms"],
                         "histogram_input": {"mean": mean, "std": std, "skewness": float(stats.skew(draws)),
                                             "excess_kurtosis": float(stats.kurtosis(draws))}}
    fig.tight_layout()
    fig.savefig(out / "fig4_1.png", dpi=120)
    plt.close(fig)
    theta = net.theta1.detach()
    path = write_json(out / "fig4_1.json", {
        "config": cfg, "lr": args.lr, "summary": summary, "train_accuracy_quasi": train_acc,
        "train_loss_first_last": [history[0], history[-1]] if history else None,
        "theta_after": {"variance": float(theta.var()), "fraction_at_bound": float((theta.abs() >= 1).float().mean())},
    }, args, started)
    print(f"fig4_1: correlation quasi vs MC before {summary['before']['limit']['correlation']:.4f}, "
          f"after {summary['after']['limit']['correlation']:.4f} -> {path}")
    return summary


if __name__ == "__main__":
    main()
