"""Fig. 5.3 of the thesis (Fig. 3 of paper 002): parallel ReLU networks are locally adaptive.

On the Doppler and "vary" functions of section 5.9.1, for every sample size n and repeat, fit
  * the parallel network (PNN) with weight decay along a lambda grid (layer-wise pretraining first),
  * the vanilla deep ReLU network (NN) with the same parameter count, same schedule,
  * trend filtering of order 3, the cubic smoothing spline and sym4 soft-threshold wavelets,
and report
  (a)(d) the fits at the best regularization, (c)(f) the active subnetworks of the best PNN,
  (b)(e) MSE against degrees of freedom (eq. (5.32) for the networks, exact or knot-count DoF for the
  baselines), (h)(i) the best MSE against n with least-squares rates beside n^(-4/5) and n^(-3/4).

Best MSE at one n: mean over repeats of the MSE at each regularization value (runs above 1.5x the mean
dropped, section 5.9.3), then the minimum over the grid (oracle tuning, as in the thesis).

``python -m ultratrain.sw.parallel.exp_fig5_3 --quick`` (minutes on 2 cores) or without ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

__all__ = ["main", "settings_for", "run_job", "summarize"]

METHODS = ("pnn", "nn", "trend_filtering", "smoothing_spline", "wavelet")
LABELS = {"pnn": "parallel NN", "nn": "vanilla NN", "trend_filtering": "trend filtering (k=3)",
          "smoothing_spline": "smoothing spline", "wavelet": "wavelet (sym4)"}


def settings_for(quick: bool) -> dict:
    """Sample sizes, repeats, lambda grid and network settings of the quick or the full mode."""
    from .training import TrainConfig

    if quick:
        # the grid brackets the oracle lambda of every n (optimum 3e-5 at n=128, 1e-5 at n=256 and 512)
        return {
            "ns": [128, 256, 512], "seeds": 1, "showcase_n": 512,
            "lambdas": [3e-6, 1e-5, 3e-5, 1e-4],
            "network": TrainConfig(n_subnets=128, width=4, depth=3, lr=3e-3, pretrain_steps=600,
                                   decay_steps=1000),
        }
    return {
        "ns": [256, 512, 1000, 2000], "seeds": 3, "showcase_n": 1000,
        "lambdas": [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4],
        "network": TrainConfig(n_subnets=128, width=8, depth=4, lr=3e-3, pretrain_steps=1000,
                               decay_steps=3000),
    }


def _network_path(data, kind: str, settings: dict, keep: bool) -> dict:
    import torch

    from .dof import dof_control_variate
    from .training import fit_lambda_path

    torch.set_num_threads(1)
    cfg = replace(settings["network"], kind=kind, seed=int(settings["seed"]))
    path = fit_lambda_path(data.x, data.y, settings["lambdas"], cfg,
                           keep_subnets=keep and kind == "parallel")
    out = {
        "strengths": path.lambdas.tolist(),
        "mse": path.mse(data.f0).tolist(),
        "dof": dof_control_variate(data.y[None, :], path.fits, data.f0[None, :], data.sigma).tolist(),
        "active": path.active.tolist(),
        "train_objective": path.train_loss.tolist(),
    }
    if keep:
        best = int(np.argmin(out["mse"]))
        out["grid"] = path.grid.tolist()
        out["best_grid_fit"] = path.grid_fits[best].tolist()
        if kind == "parallel":
            out["best_subnets"] = path.subnet_grid_outputs[best].tolist()
    return out


def _baseline_path(data, method: str, keep: bool) -> dict:
    from .baselines import smoothing_spline_path, trend_filtering_path, wavelet_path

    if method == "trend_filtering":
        path = trend_filtering_path(data.x, data.y, order=3)
    elif method == "smoothing_spline":
        path = smoothing_spline_path(data.x, data.y)
    else:
        path = wavelet_path(data.x, data.y, "sym4")
    mse = path.mse(data.f0)
    out = {"strengths": path.strengths.tolist(), "mse": mse.tolist(), "dof": path.dof.tolist()}
    if keep:
        out["best_fit"] = path.fits[int(np.argmin(mse))].tolist()
    return out


def run_job(job: dict) -> dict:
    """Fit every method of ``job["methods"]`` to one data set (target, n, seed); a worker-process entry."""
    from threadpoolctl import threadpool_limits

    # one BLAS/OpenMP thread per worker: the machine has 2 shared cores and we run 2 workers
    with threadpool_limits(limits=1):
        return _run_job(job)


def _run_job(job: dict) -> dict:
    from .targets import make_dataset

    data = make_dataset(job["target"], job["n"], seed=1000 * job["n"] + job["seed"])
    keep = job["n"] == job["settings"]["showcase_n"] and job["seed"] == 0
    settings = dict(job["settings"], seed=job["seed"])
    result = {"target": job["target"], "n": job["n"], "seed": job["seed"], "methods": {}}
    for method in job["methods"]:
        start = time.process_time()
        if method in ("pnn", "nn"):
            entry = _network_path(data, "parallel" if method == "pnn" else "vanilla", settings, keep)
        else:
            entry = _baseline_path(data, method, keep)
        entry["cpu_s"] = time.process_time() - start
        result["methods"][method] = entry
    if keep:
        result["showcase"] = {"x": data.x.tolist(), "y": data.y.tolist(), "f0": data.f0.tolist()}
    return result


def summarize(results: list[dict], ns: list[int]) -> dict:
    """Best MSE per (target, method, n), mean DoF curves, and fitted rates."""
    from .rates import fit_rate, linear_minimax_rate_bv, minimax_rate_bv, trimmed_mean

    summary: dict = {}
    targets = sorted({r["target"] for r in results})
    for target in targets:
        per_method: dict = {}
        methods = sorted({m for r in results if r["target"] == target for m in r["methods"]})
        for method in methods:
            rows = {}
            for n in ns:
                runs = [r["methods"][method] for r in results
                        if r["target"] == target and r["n"] == n and method in r["methods"]]
                if not runs:
                    continue
                mse = np.array([run["mse"] for run in runs])
                dof = np.array([run["dof"] for run in runs])
                mean_mse = np.array([trimmed_mean(mse[:, k]) for k in range(mse.shape[1])])
                best = int(np.argmin(mean_mse))
                row = {"best_mse": float(mean_mse[best]), "best_strength": runs[0]["strengths"][best],
                       "best_dof": float(dof[:, best].mean()), "mse_curve": mean_mse.tolist(),
                       "dof_curve": dof.mean(axis=0).tolist(), "repeats": len(runs),
                       "cpu_s": float(np.mean([run["cpu_s"] for run in runs]))}
                if "active" in runs[0]:
                    row["active_curve"] = np.mean([run["active"] for run in runs], axis=0).tolist()
                    row["best_active"] = row["active_curve"][best]
                rows[str(n)] = row
            entry = {"by_n": rows}
            if len(rows) >= 2:
                fitted = fit_rate([int(k) for k in rows], [v["best_mse"] for v in rows.values()])
                entry["rate"] = {"slope": fitted.slope, "intercept": fitted.intercept,
                                 "slope_stderr": fitted.slope_stderr}
            per_method[method] = entry
        summary[target] = per_method
    summary["reference_rates"] = {"minimax_bv1": minimax_rate_bv(1), "linear_minimax_bv1": linear_minimax_rate_bv(1)}
    return summary


def _plot(results: list[dict], summary: dict, out: Path, settings: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"pnn": "C3", "nn": "C1", "trend_filtering": "C0", "smoothing_spline": "C2", "wavelet": "C4"}
    written = []
    for target in [t for t in summary if t != "reference_rates"]:
        show = [r for r in results if r["target"] == target and "showcase" in r]
        fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
        ax_fit, ax_dof, ax_sub, ax_rate = axes.ravel()
        if show:
            r = show[0]
            x, y, f0 = (np.array(r["showcase"][k]) for k in ("x", "y", "f0"))
            ax_fit.plot(x, y, ".", color="0.75", ms=2, label="data")
            ax_fit.plot(x, f0, "k-", lw=1, label="truth")
            for method, entry in r["methods"].items():
                if "best_fit" in entry:
                    ax_fit.plot(x, entry["best_fit"], color=colors[method], lw=1, label=LABELS[method])
                elif "best_grid_fit" in entry:
                    ax_fit.plot(entry["grid"], entry["best_grid_fit"], color=colors[method], lw=1.2,
                                label=LABELS[method])
            pnn = r["methods"].get("pnn", {})
            if "best_subnets" in pnn:
                grid = np.array(pnn["grid"])
                for curve in pnn["best_subnets"]:
                    curve = np.asarray(curve)
                    ax_sub.plot(grid, curve - curve.mean(), lw=0.8)
                ax_sub.set_title(f"(c) {len(pnn['best_subnets'])} active subnetworks of "
                                 f"{settings['network'].n_subnets} (centred), n={r['n']}")
        ax_fit.set_title(f"(a) {target}: best fit of each method, n={settings['showcase_n']}")
        ax_fit.legend(fontsize=7)
        n_show = str(settings["showcase_n"])
        for method, entry in summary[target].items():
            row = entry["by_n"].get(n_show)
            if row:
                order = np.argsort(row["dof_curve"])
                ax_dof.plot(np.array(row["dof_curve"])[order], np.array(row["mse_curve"])[order], "o-",
                            ms=3, color=colors[method], label=LABELS[method])
            ns = np.array([int(k) for k in entry["by_n"]])
            best = np.array([v["best_mse"] for v in entry["by_n"].values()])
            label = LABELS[method]
            if "rate" in entry:
                label += f" (slope {entry['rate']['slope']:.2f})"
            ax_rate.loglog(ns, best, "o-", color=colors[method], label=label)
        ax_dof.set_xscale("log")
        ax_dof.set_yscale("log")
        ax_dof.set_xlabel("degrees of freedom")
        ax_dof.set_ylabel("MSE")
        ax_dof.set_title(f"(b) MSE vs DoF, n={n_show}")
        ax_dof.legend(fontsize=7)
        ns_all = np.array(settings["ns"], dtype=float)
        anchor = min(v["best_mse"] for e in summary[target].values() for v in e["by_n"].values())
        for exponent, style, name in [(-0.8, "k--", "n^-4/5"), (-0.75, "k:", "n^-3/4")]:
            ax_rate.loglog(ns_all, anchor * 1.3 * (ns_all / ns_all[-1]) ** exponent, style, lw=1, label=name)
        ax_rate.set_xlabel("n")
        ax_rate.set_ylabel("best MSE")
        ax_rate.set_title("(h/i) best MSE vs n")
        ax_rate.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"fig5_3_{target}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


def main(argv=None) -> dict:
    """Run the experiment; returns the summary dict (also written to ``--out``/fig5_3.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, minutes on 2 cores")
    parser.add_argument("--out", default="results_local/theory/parallel/exp_fig5_3")
    parser.add_argument("--targets", default="doppler,vary", help="comma list of doppler, vary")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    parser.add_argument("--ns", default=None, help="comma list of sample sizes (overrides the mode)")
    parser.add_argument("--seeds", type=int, default=None, help="repeats per sample size (overrides the mode)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (<= 2 on the shared machine)")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    settings = settings_for(args.quick)
    if args.ns:
        settings["ns"] = [int(v) for v in args.ns.split(",")]
        if settings["showcase_n"] not in settings["ns"]:
            settings["showcase_n"] = settings["ns"][-1]
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be positive, got {args.seeds}")
        settings["seeds"] = args.seeds
    targets = [t for t in args.targets.split(",") if t]
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose from {METHODS}")
    if args.workers < 1:
        raise ValueError(f"--workers must be positive, got {args.workers}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    jobs = [{"target": t, "n": n, "seed": s, "methods": methods, "settings": settings}
            for t in targets for n in settings["ns"] for s in range(settings["seeds"])]
    jobs.sort(key=lambda job: -job["n"])  # longest first balances the two workers
    start = time.time()
    if args.workers == 1:
        results = [run_job(job) for job in tqdm(jobs, desc="fig5_3 fits")]
    else:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            results = list(tqdm(pool.imap_unordered(run_job, jobs), total=len(jobs), desc="fig5_3 fits"))
    summary = summarize(results, settings["ns"])
    figures = _plot(results, summary, out, settings)
    record = {
        "mode": "quick" if args.quick else "full",
        "settings": {**{k: v for k, v in settings.items() if k != "network"},
                     "network": asdict(settings["network"])},
        "targets": targets, "methods": methods, "wall_s": time.time() - start,
        "summary": summary, "figures": figures,
        "runs": [{k: v for k, v in r.items() if k != "showcase"} for r in results],
    }
    (out / "fig5_3.json").write_text(json.dumps(record, indent=1))
    for target in targets:
        for method, entry in summary[target].items():
            rate = entry.get("rate", {}).get("slope", float("nan"))
            bests = ", ".join(f"n={k}: {v['best_mse']:.4f}" for k, v in entry["by_n"].items())
            print(f"{target:8s} {method:17s} slope {rate:+.3f}  best MSE {bests}")
    return record


if __name__ == "__main__":
    main()
