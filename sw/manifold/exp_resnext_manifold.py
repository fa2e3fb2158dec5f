"""Chapter 6 experiment (designed here; the chapter has none): ResNeXt error rate follows the intrinsic dimension.

A target with heterogeneous smoothness ("vary", thesis section 5.9.1) lives on a closed curve (d = 1) or a
2-torus (d = 2); the manifold is embedded isometrically in R^D for several D, so only the ambient dimension
changes. For every (manifold, D, n, repeat) we fit

* the weight-decayed ResNeXt of Definition 6.1 (bias free, padded input, output clipped to [0, 1]) over a
  small grid of weight decays, and
* Gaussian kernel ridge regression over a (bandwidth, ridge) grid,

both tuned by test error (oracle, as in chapter 5), and report the test MSE against f0 on fresh points, the
least-squares slope of log MSE vs log n per D, and the reference exponent ``-2 alpha / (2 alpha + d)`` with
alpha = 2 (vary is in BV(1), inside B^2_{1,inf}): -0.8 for the curve, -0.67 for the torus.

``python -m ultratrain.sw.manifold.exp_resnext_manifold --quick`` (minutes on 2 cores) or without ``--quick``;
``--cases torus:4,torus:32`` runs other (manifold, D) pairs with the mode's other settings.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

__all__ = ["main", "settings_for", "parse_cases", "run_job", "summarize"]


def settings_for(quick: bool) -> dict:
    """Manifolds, ambient dimensions, sample sizes, repeats, weight decays and architecture per mode."""
    from .training import ResNeXtConfig

    if quick:
        return {
            "cases": [("curve", 4), ("curve", 32)], "ns": [100, 200, 400, 800], "seeds": 1,
            "n_test": 2000, "sigma": 0.1, "lambdas": [1e-5, 1e-4],
            "model": ResNeXtConfig(n_blocks=2, n_paths=8, path_depth=3, width=12, steps=1500, lr=3e-3),
        }
    return {
        "cases": [("curve", 4), ("curve", 16), ("curve", 64), ("torus", 4), ("torus", 32)],
        "ns": [125, 250, 500, 1000, 2000], "seeds": 2, "n_test": 4000, "sigma": 0.1,
        "lambdas": [3e-6, 3e-5, 3e-4],
        "model": ResNeXtConfig(n_blocks=3, n_paths=8, path_depth=3, width=12, steps=2500, lr=3e-3),
    }


def parse_cases(text: str) -> list[tuple[str, int]]:
    """``"curve:4,torus:32"`` -> ``[("curve", 4), ("torus", 32)]`` (the --cases option)."""
    from .data import MANIFOLDS

    cases = []
    for item in text.split(","):
        name, sep, dim = item.strip().partition(":")
        if not sep or name not in MANIFOLDS or not dim.isdigit() or int(dim) < 4:
            raise ValueError(f"--cases items must be manifold:D with manifold in {MANIFOLDS} and D >= 4, got {item!r}")
        cases.append((name, int(dim)))
    return cases


def run_job(job: dict) -> dict:
    """Fit the ResNeXt (every weight decay) and kernel ridge to one sample; a worker-process entry."""
    from threadpoolctl import threadpool_limits

    # one BLAS/OpenMP thread per worker: the machine has 2 shared cores and we run 2 workers
    with threadpool_limits(limits=1):
        return _run_job(job)


def _run_job(job: dict) -> dict:
    import torch

    from .data import sample_manifold
    from .training import build_model, kernel_ridge_best, predict, train_resnext

    torch.set_num_threads(1)
    s = job["settings"]
    manifold, dim, n, seed = job["manifold"], job["D"], job["n"], job["seed"]
    train = sample_manifold(manifold, n, dim, seed=10_000 * seed + n, sigma=s["sigma"])
    test = sample_manifold(manifold, s["n_test"], dim, seed=99_999 + seed, sigma=s["sigma"])
    cfg = replace(s["model"], seed=seed)
    start = time.process_time()
    nets = []
    for lam in s["lambdas"]:
        model = build_model(cfg, dim)
        objective = train_resnext(model, train.x, train.y, lam, cfg)
        mse = float(np.mean((predict(model, test.x) - test.f0) ** 2))
        with torch.no_grad():
            active = int(model.active_paths(torch.as_tensor(test.x[:500], dtype=torch.float32)).sum())
            norms = float(model.residual_penalty()), float(model.output_penalty())
        nets.append({"lambda": lam, "mse": mse, "objective": objective, "active_paths": active,
                     "residual_norm": norms[0], "output_norm": norms[1]})
    network_cpu = time.process_time() - start
    start = time.process_time()
    krr = kernel_ridge_best(train.x, train.y, test.x, test.f0)
    return {"manifold": manifold, "D": dim, "n": n, "seed": seed, "resnext": nets,
            "resnext_best_mse": min(r["mse"] for r in nets), "krr_mse": krr.mse,
            "krr_gamma": krr.gamma, "krr_alpha": krr.alpha,
            "cpu_s": {"resnext": network_cpu, "krr": time.process_time() - start}}


def summarize(results: list[dict], settings: dict) -> dict:
    """Mean best MSE per (manifold, D, method, n) and the fitted slopes."""
    from ultratrain.sw.parallel.rates import fit_rate

    summary = {}
    for manifold, dim in settings["cases"]:
        key = f"{manifold}_D{dim}"
        entry = {"manifold": manifold, "D": dim, "intrinsic_dim": 1 if manifold == "curve" else 2}
        for method, field in (("resnext", "resnext_best_mse"), ("kernel_ridge", "krr_mse")):
            by_n = {}
            for n in settings["ns"]:
                values = [r[field] for r in results if r["manifold"] == manifold and r["D"] == dim and r["n"] == n]
                if values:
                    by_n[str(n)] = float(np.mean(values))
            fitted = fit_rate([int(k) for k in by_n], list(by_n.values())) if len(by_n) >= 2 else None
            entry[method] = {"mse_by_n": by_n,
                             "slope": fitted.slope if fitted else None,
                             "slope_stderr": fitted.slope_stderr if fitted else None}
        d = entry["intrinsic_dim"]
        entry["reference_slope"] = -4.0 / (4.0 + d)
        summary[key] = entry
    return summary


def _plot(summary: dict, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, method, title in ((axes[0], "resnext", "ResNeXt (weight decay)"),
                              (axes[1], "kernel_ridge", "Gaussian kernel ridge")):
        for i, (key, entry) in enumerate(summary.items()):
            by_n = entry[method]["mse_by_n"]
            ns = np.array([int(k) for k in by_n])
            style = "-" if entry["manifold"] == "curve" else "--"
            ax.loglog(ns, list(by_n.values()), "o" + style, color=f"C{i}",
                      label=f"{entry['manifold']} d={entry['intrinsic_dim']}, D={entry['D']} "
                            f"(slope {entry[method]['slope']:.2f})")
        ax.set_xlabel("n")
        ax.set_title(title)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("test MSE vs f0")
    fig.tight_layout()
    path = out / "resnext_manifold.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def main(argv=None) -> dict:
    """Run the experiment; returns the record also written to ``--out``/resnext_manifold.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="curve in R^4 and R^32, minutes on 2 cores")
    parser.add_argument("--out", default="results_local/theory/manifold/exp_resnext_manifold")
    parser.add_argument("--seeds", type=int, default=None, help="repeats (overrides the mode)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (<= 2 on the shared machine)")
    parser.add_argument("--cases", default=None,
                        help="manifold:D pairs overriding the mode's, e.g. 'curve:4,torus:4,torus:32'")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    settings = settings_for(args.quick)
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be positive, got {args.seeds}")
        settings["seeds"] = args.seeds
    if args.cases is not None:
        settings["cases"] = parse_cases(args.cases)
    if args.workers < 1:
        raise ValueError(f"--workers must be positive, got {args.workers}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [{"manifold": m, "D": dim, "n": n, "seed": s, "settings": settings}
            for m, dim in settings["cases"] for n in settings["ns"] for s in range(settings["seeds"])]
    jobs.sort(key=lambda job: -job["n"] * (job["D"] + 2))
    start = time.time()
    if args.workers == 1:
        results = [run_job(job) for job in tqdm(jobs, desc="resnext manifold")]
    else:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            results = list(tqdm(pool.imap_unordered(run_job, jobs), total=len(jobs), desc="resnext manifold"))
    summary = summarize(results, settings)
    figure = _plot(summary, out)
    record = {"mode": "quick" if args.quick else "full",
              "settings": {**{k: v for k, v in settings.items() if k != "model"}, "model": asdict(settings["model"])},
              "wall_s": time.time() - start, "summary": summary, "figure": figure,
              "runs": sorted(results, key=lambda r: (r["manifold"], r["D"], r["n"], r["seed"]))}
    (out / "resnext_manifold.json").write_text(json.dumps(record, indent=1))
    for key, entry in summary.items():
        print(f"{key:10s} resnext slope {entry['resnext']['slope']:+.3f} "
              f"kernel ridge slope {entry['kernel_ridge']['slope']:+.3f} (reference {entry['reference_slope']:+.2f}); "
              + ", ".join(f"n={k}: {v:.4f}/{entry['kernel_ridge']['mse_by_n'][k]:.4f}"
                          for k, v in entry["resnext"]["mse_by_n"].items()))
    return record


if __name__ == "__main__":
    main()
