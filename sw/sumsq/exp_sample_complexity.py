"""Sample complexity of learning x -> sum_i x_i^2 vs the dimension d (seed 004, section 4.3).

For each d and training-set size n, networks are trained (:func:`ultratrain.sw.sumsq.train.fit`) and
the original-scale test MSE is recorded. Two exponent estimates are reported, as in the paper:

* direct: n*(d) = smallest n reaching a fixed test loss eps (log-log interpolation between grid points,
  geometric mean over seeds), and gamma = slope of log n*(d) against log d;
* the paper's indirect form: beta1 = slope of log test loss against log d at the largest n, beta2 = minus
  the slope of log test loss against log n at each d (averaged), gamma = beta1 / beta2 (eq. 17-18;
  paper: about 4.5 without and 2.5 with explicit regularization, theory 4).

Methods: ``GN`` (dense, early stopping only = implicit regularization), ``GN+path`` (path norm eq. 22),
``GN+l1`` (L1 of the weights), ``LN`` (sparse, weight-shared), ``LCN`` (sparse, not shared).

``python -m ultratrain.sw.sumsq.exp_sample_complexity --quick --out DIR``; ``--dims``, ``--ns``, ``--methods``
(``GN+path=1e-5`` sets a penalty strength), ``--seeds``, ``--alpha`` and ``--steps`` override the mode, which is
how the re-checks of docs/theory/sumsq_sample_complexity.md were run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from ..parallel_map import parallel_map

METHODS = {
    "GN": dict(arch="GN", regularizer="none", lam=0.0),
    "GN+path": dict(arch="GN", regularizer="path", lam=1e-6),
    "GN+l1": dict(arch="GN", regularizer="l1", lam=1e-8),
    "LN": dict(arch="LN", regularizer="none", lam=0.0),
    "LCN": dict(arch="LCN", regularizer="none", lam=0.0),
}


def method_spec(name: str) -> dict:
    """Settings of a method name: one of :data:`METHODS`, or ``BASE=LAMBDA`` for a regularized method with
    another penalty strength (``GN+path=1e-5``, the paper's path-norm setting)."""
    base, _, lam = name.partition("=")
    if base not in METHODS:
        raise ValueError(f"unknown method {base!r}: choose from {sorted(METHODS)} (optionally BASE=LAMBDA)")
    spec = dict(METHODS[base])
    if lam:
        if spec["regularizer"] == "none":
            raise ValueError(f"method {base!r} has no penalty, so {name!r} cannot set its strength")
        try:
            spec["lam"] = float(lam)
        except ValueError:
            raise ValueError(f"{name!r}: the penalty strength after '=' must be a number") from None
        if not spec["lam"] > 0:
            raise ValueError(f"{name!r}: the penalty strength must be positive")
    return spec


def _job(args):
    import torch

    from .train import FitConfig, fit

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # denormals made one run 13x slower (calibration notes)
    method, d, n, seed, alpha, steps, min_batch = args
    spec = method_spec(method)
    t = time.time()
    cfg = FitConfig(alpha=alpha, epochs=10 ** 9, max_steps=steps, min_batch=min_batch, seed=seed, **spec)
    r = fit(d, n, cfg, data_seed=seed)
    return {"method": method, "dim": d, "n": n, "seed": seed, "test_mse": r.test_mse, "train_mse": r.train_mse,
            "path_norm": r.path_norm, "best_step": r.best_step, "seconds": time.time() - t}


def geometric_mean(values) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(values, dtype=float)))))


def samples_to_reach(ns, losses, eps: float) -> float:
    """Smallest n with loss <= eps, interpolating log loss linearly in log n; nan if never reached."""
    ns = np.asarray(ns, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if losses[0] <= eps:
        return float(ns[0])
    for i in range(1, len(ns)):
        if losses[i] <= eps:
            a, b = np.log(losses[i - 1]), np.log(losses[i])
            t = (np.log(eps) - a) / (b - a)
            return float(np.exp(np.log(ns[i - 1]) + t * (np.log(ns[i]) - np.log(ns[i - 1]))))
    return float("nan")


def analyse(runs: list[dict], dims, ns, eps: float) -> dict:
    out = {}
    for method in sorted({r["method"] for r in runs}):
        table = {}
        for d in dims:
            row = []
            for n in ns:
                vals = [r["test_mse"] for r in runs if r["method"] == method and r["dim"] == d and r["n"] == n]
                row.append(geometric_mean(vals) if vals else float("nan"))
            table[d] = row
        n_star = {d: samples_to_reach(ns, table[d], eps) for d in dims}
        ok = [d for d in dims if np.isfinite(n_star[d])]
        gamma_direct = (float(np.polyfit(np.log(ok), np.log([n_star[d] for d in ok]), 1)[0])
                        if len(ok) >= 2 else float("nan"))
        beta1 = (float(np.polyfit(np.log(dims), np.log([table[d][-1] for d in dims]), 1)[0])
                 if len(dims) >= 2 else float("nan"))
        beta2s = [-float(np.polyfit(np.log(ns), np.log(table[d]), 1)[0]) for d in dims]
        beta2 = float(np.mean(beta2s))
        pn = {d: float(np.mean([r["path_norm"] for r in runs if r["method"] == method and r["dim"] == d
                                and r["n"] == ns[-1]])) for d in dims}
        out[method] = {"test_mse": {str(d): table[d] for d in dims}, "n_star": {str(d): n_star[d] for d in dims},
                       "gamma_direct": gamma_direct, "beta1_loss_vs_d": beta1, "beta2_loss_vs_n": beta2,
                       "beta2_per_d": beta2s, "gamma_ratio": beta1 / beta2 if beta2 > 0 else float("nan"),
                       "path_norm_at_largest_n": {str(d): pn[d] for d in dims}}
    return out


def make_figure(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims, ns, eps = res["dims"], res["ns"], res["eps"]
    methods = list(res["analysis"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(methods):
        a = res["analysis"][m]
        for j, d in enumerate(dims):
            axes[0].loglog(ns, a["test_mse"][str(d)], "o-" if j == len(dims) - 1 else ".-", color=colors[i % 10],
                           alpha=0.4 + 0.6 * (j + 1) / len(dims), label=m if j == len(dims) - 1 else None)
        axes[1].loglog(dims, [a["test_mse"][str(d)][-1] for d in dims], "o-", color=colors[i % 10],
                       label=f"{m} (slope {a['beta1_loss_vs_d']:.2f})")
        ok = [d for d in dims if np.isfinite(a["n_star"][str(d)])]
        if ok:
            axes[2].loglog(ok, [a["n_star"][str(d)] for d in ok], "o-", color=colors[i % 10],
                           label=f"{m} (gamma {a['gamma_direct']:.2f})")
    axes[0].axhline(eps, color="k", ls=":", label=f"eps = {eps:g}")
    axes[0].set_xlabel("training samples n")
    axes[0].set_ylabel("test MSE (original scale)")
    axes[0].set_title("test loss vs n (lighter = smaller d)")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("d")
    axes[1].set_title(f"test loss vs d at n = {ns[-1]}")
    axes[1].legend(fontsize=7)
    axes[2].set_xlabel("d")
    axes[2].set_ylabel(f"n to reach test MSE {eps:g}")
    axes[2].set_title("sample complexity (paper: d^2.5 reg., d^4.5 not)")
    if axes[2].get_legend_handles_labels()[0]:  # no method may have reached eps on a short grid
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sample_complexity.png", dpi=120)
    plt.close(fig)


def _overrides(args) -> dict:
    """The mode's settings that the command line replaces, checked."""
    def ints(text, what):
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--{what}: comma-separated integers expected, got {text!r}") from None
        if not values or min(values) < 1:
            raise ValueError(f"--{what}: positive integers expected, got {text!r}")
        return values

    out = {}
    if args.dims:
        out["dims"] = ints(args.dims, "dims")
    if args.ns:
        out["ns"] = ints(args.ns, "ns")
        if out["ns"] != sorted(set(out["ns"])):
            raise ValueError(f"--ns must increase, got {args.ns!r}")
    if args.methods:
        out["methods"] = [m for m in args.methods.split(",") if m]
        for m in out["methods"]:
            method_spec(m)
    for name in ("seeds", "alpha", "steps"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise ValueError(f"--{name} must be >= 1, got {value}")
            out[name] = list(range(value)) if name == "seeds" else value
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d in {2, 4}, three sample sizes (minutes)")
    parser.add_argument("--out", default="results_local/theory/sumsq")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dims", help="comma-separated dimensions d (override)")
    parser.add_argument("--ns", help="comma-separated training-set sizes n, increasing (override)")
    parser.add_argument("--methods", help="comma-separated methods (override): " + ", ".join(METHODS)
                        + "; BASE=LAMBDA sets a penalty, e.g. GN+path=1e-5")
    parser.add_argument("--seeds", type=int, help="number of seeds (override)")
    parser.add_argument("--alpha", type=int, help="channels per input (width d*alpha; override, paper 50)")
    parser.add_argument("--steps", type=int, help="Adam steps per run (override)")
    args = parser.parse_args(argv)
    overrides = _overrides(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        cfg = dict(dims=[2, 4], ns=[32, 128, 512], methods=["GN", "GN+path", "LN"], seeds=[0, 1], alpha=10,
                   steps=400, min_batch=32, eps=1e-3)
    else:
        cfg = dict(dims=[2, 4, 8, 16], ns=[32, 128, 512, 2048], methods=["GN", "GN+path", "LN"],
                   seeds=[0, 1], alpha=10, steps=2000, min_batch=32, eps=1e-3)
    cfg.update(overrides)
    start = time.time()
    jobs = [(m, d, n, s, cfg["alpha"], cfg["steps"], cfg["min_batch"])
            for d in cfg["dims"] for n in cfg["ns"] for m in cfg["methods"] for s in cfg["seeds"]]
    # big dense jobs first so the two workers finish together
    jobs.sort(key=lambda j: -(j[1] ** 2 if j[0].startswith("GN") else j[1]))
    runs = parallel_map(_job, jobs, workers=args.workers, desc="sum of squares")
    res = {"mode": "quick" if args.quick else "full", "config": cfg, "dims": cfg["dims"], "ns": cfg["ns"],
           "eps": cfg["eps"], "runs": runs, "analysis": analyse(runs, cfg["dims"], cfg["ns"], cfg["eps"]),
           "seconds": time.time() - start}
    (out / "results.json").write_text(json.dumps(res, indent=1))
    make_figure(res, out)
    print(f"sumsq: wrote {out} in {res['seconds']:.0f} s")
    return res


if __name__ == "__main__":
    main()
