"""Table 4.1 (with Fig. 4.2 and Table 4.2): paired t-tests of NN vs BWNN and Laplace vs Gaussian kernel on
UCI-type classification sets, for the test accuracy and the generalisation gap (train - test accuracy).

Thesis sections 4.6.2 and 4.9.1: 90 UCI sets; NN = three layers, the first fixed, 512 hidden neurons; BWNN =
the same with the second layer binary (BinaryConnect, stochastic rounding); learning rate searched in
{1e-3, 1e-2, 1e-1}; SVMs with Laplace and Gaussian kernels, bandwidth 2^-2..2^2 times the median pairwise
distance, cost 1e-2..1e4 by powers of 2. The t-statistic and two-sided p-value are those of the paired test
of the first classifier minus the second over datasets; "<" and ">" are the fractions of sets where the first
is lower / higher.

Decisions (see docs/theory/chapter4_ntk_bwnn.md): scikit-learn's bundled UCI sets (iris, wine, breast
cancer, optical digits, diabetes thresholded at its median) plus any ``--csv`` files, since the 90 sets are
not on our machines; per repeat a stratified 75/25 train/test split, features standardised with training
statistics; network learning rates chosen on a stratified 25 % validation part of the training set, kernel
bandwidth and cost by 3-fold cross-validation on the training set, then refitted on the whole training set;
the networks use full-batch Adam (plain gradient descent at the thesis' rates barely moves a network in the
NTK parametrisation) for a fixed number of steps; the BWNN is evaluated with one fixed stochastic rounding
of its buffer (a deployed binary-weight network); the cost grid is 2^k, k = -6..13 (the powers of 2 inside
[1e-2, 1e4]).

``python -m ultratrain.sw.ntk.exp_table4_1 [--quick] [--out DIR] [--csv FILE ...] [--workers 2]``
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from .datasets import BUNDLED_UCI, load_bundled_uci, load_csv_dataset
from .experiment_utils import base_parser, pyplot, setup_run, write_json
from .kernels import median_distance, pairwise_distances
from .networks import BinaryWeightNet, train_network

QUICK = dict(repeats=1, width=128, steps=150, lrs=(1e-3, 1e-2, 1e-1), bandwidth_powers=(-2, 0, 2),
             cost_powers=(-6, -2, 2, 6, 10))
FULL = dict(repeats=3, width=512, steps=300, lrs=(1e-3, 1e-2, 1e-1), bandwidth_powers=(-2, -1, 0, 1, 2),
            cost_powers=tuple(range(-6, 14)))
MODELS = ("NN", "BWNN", "Laplace", "Gaussian")
PAIRS = (("NN", "BWNN"), ("Laplace", "Gaussian"))
THESIS_TABLE_4_1 = {"NN-BWNN": {"test": {"t": 0.7471, "p": 0.4569, "<": 53.33, ">": 41.11},
                                "gap": {"t": 4.034, "p": 0.000, "<": 26.67, ">": 67.77}},
                    "Laplace-Gaussian": {"test": {"t": 0.4274, "p": 0.6701, "<": 51.11, ">": 33.33},
                                         "gap": {"t": 3.280, "p": 0.001, "<": 37.78, ">": 53.33}}}
THESIS_TABLE_4_2 = {"NN": {"train": 96.19, "test": 77.62}, "BWNN": {"train": 93.55, "test": 77.83},
                    "Laplacian": {"train": 93.52, "test": 81.62}, "Gaussian": {"train": 91.08, "test": 81.40}}


def _split(x, y, fraction, seed):
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(x, y, test_size=fraction, stratify=y, random_state=seed)
    except ValueError:  # a class too small to stratify (user CSVs): plain random split
        return train_test_split(x, y, test_size=fraction, random_state=seed)


def _standardise(train, *others):
    mean, std = train.mean(0), train.std(0)
    std[std == 0] = 1.0
    return [(a - mean) / std for a in (train,) + others]


def _network_accuracy(weights, x_fit, y_fit, x_eval_list, y_eval_list, n_classes, cfg, lr, seed):
    x_fit_t = torch.tensor(x_fit, dtype=torch.float32)
    net = BinaryWeightNet(x_fit.shape[1], cfg["width"], cfg["width"], n_classes, c=1.0, beta=0.1,
                          weights=weights, seed=seed)
    train_network(net, x_fit_t, torch.tensor(y_fit), mode="binaryconnect" if weights == "binary" else "real",
                  steps=cfg["steps"], lr=lr, optimizer="adam", seed=seed)
    # one fixed rounding: the binary-weight network that would be deployed
    w1 = net.sample_weights(torch.Generator().manual_seed(seed + 7))
    with torch.no_grad():
        return [float((net(torch.tensor(xe, dtype=torch.float32), binary_weights=w1).argmax(1).numpy() == ye).mean())
                for xe, ye in zip(x_eval_list, y_eval_list)]


def _kernel_from_distance(kind, dist, bandwidth):
    return np.exp(-dist / bandwidth) if kind == "Laplace" else np.exp(-dist ** 2 / bandwidth ** 2)


def _svm_cv_accuracy(kind, bandwidth, cost, dist, y, folds):
    """Mean validation accuracy over the folds, from the training set's distance matrix."""
    from sklearn.svm import SVC

    scores = []
    for fit_idx, val_idx in folds:
        gram = _kernel_from_distance(kind, dist, bandwidth)
        svm = SVC(kernel="precomputed", C=cost).fit(gram[np.ix_(fit_idx, fit_idx)], y[fit_idx])
        scores.append(float((svm.predict(gram[np.ix_(val_idx, fit_idx)]) == y[val_idx]).mean()))
    return float(np.mean(scores))


def _svm_accuracy(kind, bandwidth, cost, x_fit, y_fit, x_eval_list, y_eval_list):
    from sklearn.svm import SVC

    svm = SVC(kernel="precomputed", C=cost).fit(
        _kernel_from_distance(kind, pairwise_distances(x_fit, x_fit), bandwidth), y_fit)
    return [float((svm.predict(_kernel_from_distance(kind, pairwise_distances(xe, x_fit), bandwidth)) == ye).mean())
            for xe, ye in zip(x_eval_list, y_eval_list)]


def _folds(y, n_folds, seed):
    from sklearn.model_selection import KFold, StratifiedKFold

    try:
        return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    except ValueError:  # a class with fewer members than folds (user CSVs)
        return list(KFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y))))


def run_task(task):
    """One (dataset, repeat): select hyper-parameters on validation, refit, return train/test accuracies."""
    name, x, y, repeat, cfg, seed = task
    torch.set_num_threads(1)
    split_seed = seed + 1000 * repeat
    x_train, x_test, y_train, y_test = _split(x, y, 0.25, split_seed)
    x_train, x_test = _standardise(x_train, x_test)
    x_fit, x_val, y_fit, y_val = _split(x_train, y_train, 0.25, split_seed + 1)
    n_classes = int(y.max()) + 1
    row = {"dataset": name, "repeat": repeat, "n_train": len(y_train), "n_test": len(y_test),
           "n_features": x.shape[1], "n_classes": n_classes}
    for model, weights in (("NN", "real"), ("BWNN", "binary")):
        scores = {lr: _network_accuracy(weights, x_fit, y_fit, [x_val], [y_val], n_classes, cfg, lr, split_seed)[0]
                  for lr in cfg["lrs"]}
        best = max(scores, key=lambda lr: (scores[lr], -lr))
        train_acc, test_acc = _network_accuracy(weights, x_train, y_train, [x_train, x_test], [y_train, y_test],
                                                n_classes, cfg, best, split_seed)
        row[model] = {"train": train_acc, "test": test_acc, "val": scores[best], "lr": best}
    # Kernel machines are cheap: choose their parameters by 3-fold cross-validation on the training set
    # (a single hold-out ties often on small sets and can pick a degenerate tiny-cost SVM).
    mu = median_distance(x_train)
    dist = pairwise_distances(x_train)
    folds = _folds(y_train, 3, split_seed + 2)
    for kind in ("Laplace", "Gaussian"):
        best_key, best_val = None, -1.0
        for power in cfg["bandwidth_powers"]:
            for cost_power in cfg["cost_powers"]:
                val = _svm_cv_accuracy(kind, 2.0 ** power * mu, 2.0 ** cost_power, dist, y_train, folds)
                if val > best_val:
                    best_key, best_val = (power, cost_power), val
        train_acc, test_acc = _svm_accuracy(kind, 2.0 ** best_key[0] * mu, 2.0 ** best_key[1],
                                            x_train, y_train, [x_train, x_test], [y_train, y_test])
        row[kind] = {"train": train_acc, "test": test_acc, "val": best_val,
                     "bandwidth_over_median": 2.0 ** best_key[0], "cost": 2.0 ** best_key[1]}
    return row


def paired_tests(per_dataset: dict) -> dict:
    """Paired t-tests over datasets of the first minus the second classifier (Table 4.1's columns)."""
    table = {}
    names = sorted(per_dataset)
    for first, second in PAIRS:
        entry = {}
        for metric in ("test", "gap"):
            a = np.array([per_dataset[n][first][metric] for n in names])
            b = np.array([per_dataset[n][second][metric] for n in names])
            diff = a - b
            if len(names) >= 2 and np.any(diff != diff[0]):
                res = stats.ttest_rel(a, b)
                t_stat, p_val = float(res.statistic), float(res.pvalue)
            else:  # a t-test needs at least two sets and a non-constant difference
                t_stat, p_val = float("nan"), float("nan")
            entry[metric] = {"t": t_stat, "p": p_val, "<": 100 * float(np.mean(diff < 0)),
                             ">": 100 * float(np.mean(diff > 0)), "mean_difference": float(diff.mean()),
                             "n_datasets": len(names)}
        table[f"{first}-{second}"] = entry
    return table


def summary_table(per_dataset: dict) -> dict:
    """Table 4.2: mean +- std accuracy, and P90/P95 (share of sets within 90 %/95 % of the best model)."""
    names = sorted(per_dataset)
    out = {}
    for split in ("train", "test"):
        best = {n: max(per_dataset[n][m][split] for m in MODELS) for n in names}
        for model in MODELS:
            acc = np.array([per_dataset[n][model][split] for n in names])
            ratio = np.array([per_dataset[n][model][split] / best[n] if best[n] > 0 else 1.0 for n in names])
            out.setdefault(model, {})[split] = {"mean": 100 * acc.mean(), "std": 100 * acc.std(),
                                               "P90": 100 * np.mean(ratio >= 0.90), "P95": 100 * np.mean(ratio >= 0.95)}
    return out


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], "results_local/theory/ntk/exp_table4_1")
    parser.add_argument("--csv", nargs="*", default=[],
                        help="extra datasets: CSV files (numeric features + a label column)")
    parser.add_argument("--label-column", default="-1", help="label column of the CSVs: index or header name")
    parser.add_argument("--no-bundled", action="store_true", help="use only the --csv datasets")
    parser.add_argument("--repeats", type=int, default=None, help="random splits per dataset (default: mode's)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (<= 2 on the shared machine)")
    args = parser.parse_args(argv)
    started = time.time()
    out = setup_run(args)
    cfg = dict(QUICK if args.quick else FULL)
    if args.repeats is not None:
        if args.repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
        cfg["repeats"] = args.repeats
    if not 1 <= args.workers <= 2:
        raise ValueError(f"--workers must be 1 or 2, got {args.workers}")
    label_column = int(args.label_column) if args.label_column.lstrip("-").isdigit() else args.label_column
    datasets = {} if args.no_bundled else {name: load_bundled_uci(name) for name in BUNDLED_UCI}
    for path in args.csv:
        name = Path(path).stem
        if name in datasets:
            name = f"{name}_csv"
        datasets[name] = load_csv_dataset(path, label_column)
    if not datasets:
        raise ValueError("no datasets: drop --no-bundled or give --csv files")
    tasks = [(name, x, y, r, cfg, args.seed) for name, (x, y) in datasets.items() for r in range(cfg["repeats"])]
    rows = []
    from tqdm import tqdm

    if args.workers == 1:
        for task in tqdm(tasks, desc="table4_1"):
            rows.append(run_task(task))
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            rows = list(tqdm(pool.map(run_task, tasks), total=len(tasks), desc="table4_1"))
    per_dataset = {}
    for name in datasets:
        mine = [r for r in rows if r["dataset"] == name]
        per_dataset[name] = {m: {s: float(np.mean([r[m][s] for r in mine])) for s in ("train", "test")}
                             for m in MODELS}
        for m in MODELS:
            per_dataset[name][m]["gap"] = per_dataset[name][m]["train"] - per_dataset[name][m]["test"]
    table = paired_tests(per_dataset)
    # the same tests over every (dataset, split): more pairs, but splits of one set are not independent
    per_split = {f"{r['dataset']}#{r['repeat']}": {m: {"test": r[m]["test"], "gap": r[m]["train"] - r[m]["test"]}
                                                   for m in MODELS} for r in rows}
    table_per_split = paired_tests(per_split) if len(rows) > len(datasets) else None

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric in zip(axes, ("train", "test", "gap")):
        for model in MODELS:
            values = np.sort([per_dataset[n][model][metric] for n in per_dataset])
            ax.plot(100 * (np.arange(1, len(values) + 1)) / len(values), 100 * values, "o-", label=model)
        ax.set_xlabel("percentile of datasets")
        ax.set_ylabel({"train": "training accuracy %", "test": "testing accuracy %", "gap": "train - test %"}[metric])
        ax.legend(fontsize=8)
    fig.suptitle(f"Fig. 4.2 analogue: {len(per_dataset)} datasets")
    fig.tight_layout()
    fig.savefig(out / "fig4_2_accuracy.png", dpi=120)
    plt.close(fig)
    path = write_json(out / "table4_1.json", {
        "config": cfg, "datasets": {n: {"n": len(d[1]), "features": d[0].shape[1], "classes": int(d[1].max()) + 1}
                                    for n, d in datasets.items()},
        "table4_1": table, "table4_1_per_split": table_per_split, "table4_2": summary_table(per_dataset),
        "per_dataset": per_dataset, "runs": rows, "thesis_table4_1": THESIS_TABLE_4_1,
        "thesis_table4_2": THESIS_TABLE_4_2}, args, started)
    for pair, entry in table.items():
        print(f"{pair}: test t={entry['test']['t']:.3f} p={entry['test']['p']:.3f}; "
              f"gap t={entry['gap']['t']:.3f} p={entry['gap']['p']:.3f}")
    print(f"table4_1 -> {path}")
    return table


if __name__ == "__main__":
    main()
