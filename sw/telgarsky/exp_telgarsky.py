"""Experiments for the constructions of Telgarsky's notes (chapters 2-4); the notes have no figures of
their own, so each panel checks one statement numerically.

Panels (JSON keys): ``triangle`` (exact N_A(Delta^L) = 2^L, section 4.1), ``depth_separation``
(Theorem 4.4: trained shallow networks vs the 1/32 floor), ``squaring`` (Theorem 4.2: sup error
4^-(i+1) with 4i nodes vs 1/(4N^2) for a shallow N-piece interpolant), ``parity``, ``universal``
(Proposition 2.1, Theorem 2.3, constructive Theorem 2.5), ``barron`` (Maurey sampling error vs width,
Proposition 2.8 and Theorem 2.12), ``ntk`` (Proposition 3.23 kernel, linearization gap vs width,
Proposition 3.7) and ``signal_to_noise`` (Theorem 3.10's construction).

``python -m ultratrain.sw.telgarsky.exp_telgarsky --quick --out DIR``
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np

from ..parallel_map import parallel_map


def fit_loglog(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


# ------------------------------------------------------------------------------------------- panels

def run_triangle(max_depth: int) -> dict:
    from .constructions import shallow_interpolant, triangle_network
    from .piecewise import propagate

    rows = []
    for L in range(1, max_depth + 1):
        f = propagate(triangle_network(L), 0, 1, exact=True)
        rows.append({"depth": L, "pieces": f.count_pieces(), "deep_nodes": 3 * L,
                     "shallow_nodes_exact": len(shallow_interpolant(propagate(triangle_network(L), 0.0, 1.0))[0][1])})
    return {"rows": rows}


def _ds_job(args):
    from .depth_separation import fit_shallow

    target_depth, widths, seed, steps = args
    r = fit_shallow(target_depth, widths, seed, steps=steps, grid=4096)
    return {"target_depth": target_depth, "widths": list(widths), "seed": seed, "l1": r.l1,
            "pieces": r.pieces, "piece_bound": r.piece_bound}


def run_depth_separation(Ls, restarts: int, steps: int, workers: int, sweep_depths) -> dict:
    from .depth_separation import theorem44_architectures

    jobs = [(L * L + 2, w, s, steps) for L in Ls for w in theorem44_architectures(L) for s in range(restarts)]
    # L1 of the best fit as the target gets deeper, at a fixed 4-node budget (where the floor kicks in)
    sweep = [(k, w, s, steps) for k in sweep_depths for w in [(4,), (2, 2)] for s in range(restarts)]
    results = parallel_map(_ds_job, jobs + sweep, workers=workers, desc="depth separation")
    theorem = results[:len(jobs)]
    by_arch = {}
    for r in theorem:
        key = f"L={int(round(math.sqrt(r['target_depth'] - 2)))} widths={tuple(r['widths'])}"
        best = by_arch.get(key)
        if best is None or r["l1"] < best["l1"]:
            by_arch[key] = r
    return {"floor": 1 / 32, "fits": theorem, "best_per_architecture": by_arch,
            "min_l1": min(r["l1"] for r in theorem), "sweep": results[len(jobs):],
            "deep_construction_l1": 0.0}


def run_squaring(max_order: int) -> dict:
    from .constructions import squaring_network
    from .piecewise import propagate

    rows = []
    for i in range(1, max_order + 1):
        f = propagate(squaring_network(i), 0, 1, exact=True)
        # x^2 - h is a downward parabola on each knot interval: the sup sits at a midpoint
        err = max(abs(((a + b) / 2) ** 2 - (va + vb) / 2)
                  for a, b, va, vb in zip(f.knots[:-1], f.knots[1:], f.values[:-1, 0], f.values[1:, 0]))
        rows.append({"order": i, "nodes": 4 * i, "sup_error": float(err), "sup_error_exact": str(err),
                     "theory": 4.0 ** -(i + 1), "pieces": f.count_pieces(),
                     # a one-hidden-layer net with N nodes has <= N pieces; the best uniform N-piece
                     # interpolant of x^2 has sup error 1/(4 N^2)
                     "shallow_same_nodes_uniform_error": 1.0 / (4.0 * (4 * i) ** 2)})
    return {"rows": rows}


def run_parity(max_log2: int) -> dict:
    from .constructions import parity_network
    from .piecewise import evaluate

    rows = []
    for L in range(1, max_log2 + 1):
        d = 2 ** L
        X = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
        err = float(np.abs(evaluate(parity_network(L), X)[:, 0] - X.prod(axis=1)).max())
        rows.append({"log2_dim": L, "dim": d, "inputs": len(X), "max_error": err, "nodes": 3 * L})
    return {"rows": rows}


def run_universal(quick: bool) -> dict:
    from .constructions import box_network, exp_relu_network, threshold_network

    out = {}
    g1 = lambda x: np.sin(2 * np.pi * x)  # noqa: E731  (2 pi-Lipschitz)
    x = np.linspace(0, 1, 200001)
    out["prop_2_1"] = [{"eps": eps, "nodes": (n := threshold_network(g1, 2 * np.pi, eps)).nodes,
                        "sup_error": float(np.abs(n(x) - g1(x)).max())} for eps in (0.2, 0.1, 0.05, 0.02, 0.01)]
    g2 = lambda X: np.sin(2 * X[:, 0]) * np.cos(3 * X[:, 1])  # noqa: E731  (Lipschitz <= sqrt(13))
    n = 400 if quick else 1000
    u = (np.arange(n) + 0.5) / n
    grid = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    rows = []
    for eps in ((0.4, 0.2, 0.1) if quick else (0.4, 0.2, 0.1, 0.05)):
        b = box_network(g2, math.sqrt(13), eps, 2)
        rows.append({"eps": eps, "k": b.k, "nodes": b.nodes, "gamma": b.gamma,
                     "l1_error": float(np.abs(b(grid) - g2(grid)).mean()), "bound": 2 * eps})
    out["thm_2_3"] = rows
    g3 = lambda X: np.sin(2 * np.pi * X[:, 0]) * X[:, 1]  # noqa: E731
    u = np.linspace(0, 1, 201)
    grid = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    rows = []
    for eps in (0.2, 0.1):
        e = exp_relu_network(g3, 2, eps, features=80, scale=2.0)
        step1 = float(np.abs(e.exp_features(grid) - g3(grid)).max())
        rows.append({"eps": eps, "nodes": e.nodes, "exp_features": 80, "step1_sup_error": step1,
                     "final_sup_error": float(np.abs(e(grid) - g3(grid)).max()),
                     "bound": step1 + float(np.abs(e.a).sum()) * e.interp_error_bound(),
                     "sum_abs_a": float(np.abs(e.a).sum())})
    out["thm_2_5"] = rows
    return out


def _barron_job(args):
    from .barron import gaussian_bump, l2_error, sample_gaussian_barron, sample_univariate

    kind, dim, width, seed, points = args
    rng = np.random.default_rng(seed)
    if kind == "univariate":
        net = sample_univariate(lambda t: 2 * np.pi * np.cos(2 * np.pi * t), 0.0, width, rng)
        return l2_error(net, lambda x: np.sin(2 * np.pi * x[:, 0]), points) ** 2
    net = sample_gaussian_barron(dim, width, rng)
    return l2_error(net, gaussian_bump, points) ** 2


def run_barron(widths, repeats: int, workers: int, dims=(2, 5)) -> dict:
    from .barron import (gaussian_barron_mass, gaussian_barron_second_moment, gaussian_bump, uniform_ball,
                         univariate_mass)

    rng = np.random.default_rng(1)
    setups = {"univariate": (1, np.linspace(0, 1, 2001)[:, None])}
    for d in dims:
        setups[f"gaussian_d{d}"] = (d, uniform_ball(2000, d, rng))
    out = {}
    for name, (dim, pts) in setups.items():
        kind = "univariate" if name == "univariate" else "gaussian"
        jobs = [(kind, dim, w, 1000 * i + r, pts) for i, w in enumerate(widths) for r in range(repeats)]
        mse = np.array(parallel_map(_barron_job, jobs, workers=workers, desc=f"barron {name}")).reshape(len(widths), repeats)
        if kind == "univariate":
            Z = univariate_mass(lambda t: 2 * np.pi * np.cos(2 * np.pi * t))
            # Proposition 2.8 sampling is |mu|-sampling, so E||V||^2 = Z^2 E 1[x >= b]
            second = Z ** 2 * float(np.mean([np.mean(pts[:, 0] >= b) for b in
                                             np.interp(rng.random(200000) * Z, *_univariate_cdf())]))
            target_sq = float(np.mean(np.sin(2 * np.pi * pts[:, 0]) ** 2))
            bound_const = Z ** 2
        else:
            second = gaussian_barron_second_moment(pts, rng)
            target_sq = float(np.mean((gaussian_bump(pts) - 1.0) ** 2))
            bound_const = gaussian_barron_mass(dim, rng) ** 2
        out[name] = {"dim": dim, "widths": list(widths), "mse_mean": mse.mean(1).tolist(),
                     "mse_sem": (mse.std(1, ddof=1) / math.sqrt(repeats)).tolist(),
                     "maurey_identity": [(second - target_sq) / w for w in widths],
                     "maurey_bound_second_moment": [second / w for w in widths],
                     "maurey_bound_mass": [bound_const / w for w in widths],
                     "rms_slope": fit_loglog(widths, np.sqrt(mse.mean(1)))}
    return out


def _univariate_cdf():
    t = np.linspace(0.0, 1.0, 20001)
    dens = np.abs(2 * np.pi * np.cos(2 * np.pi * t))
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(t))])
    return cdf, t


def _ntk_job(args):
    from .ntk import init_two_layer, train_first_layer

    width, seed, steps, X, Y, Xt = args
    init = init_two_layer(width, X.shape[1], np.random.default_rng(seed))
    V = train_first_layer(init, X, Y, steps=steps, lr=0.5)
    gap = float(np.abs(init.forward(Xt, V) - init.linearized(Xt, V)).max())
    return {"width": width, "seed": seed, "gap": gap, "radius": float(np.linalg.norm(V - init.V0)),
            "max_row_move": float(np.linalg.norm(V - init.V0, axis=1).max()),
            "train_mse": float(np.mean((init.forward(X, V) - Y) ** 2))}


def run_ntk(widths, repeats: int, steps: int, workers: int) -> dict:
    from .ntk import empirical_ntk, init_two_layer, ntk_relu, prop37_bound

    rng = np.random.default_rng(2)
    d = 3

    def sphere(n):
        z = rng.normal(size=(n, d))
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    X = sphere(20)
    Y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2]
    Xt = sphere(500)
    kernel_pts = sphere(50)
    K = ntk_relu(kernel_pts, kernel_pts)
    kernel_rows = []
    for w in widths:
        errs = [float(np.abs(empirical_ntk(init_two_layer(w, d, np.random.default_rng(10 + r)), kernel_pts,
                                           kernel_pts) - K).max()) for r in range(repeats)]
        kernel_rows.append({"width": w, "max_abs_error": float(np.mean(errs))})
    jobs = [(w, 100 + r, steps, X, Y, Xt) for w in widths for r in range(repeats)]
    fits = parallel_map(_ntk_job, jobs, workers=workers, desc="ntk linearization")
    rows = []
    for w in widths:
        sel = [f for f in fits if f["width"] == w]
        B = float(np.mean([f["radius"] for f in sel]))
        rows.append({"width": w, "gap": float(np.mean([f["gap"] for f in sel])), "radius": B,
                     "max_row_move": float(np.mean([f["max_row_move"] for f in sel])),
                     "train_mse": float(np.mean([f["train_mse"] for f in sel])),
                     "prop37_bound_delta_0.01": prop37_bound(w, max(f["radius"] for f in sel), 0.01)})
    return {"kernel": kernel_rows, "kernel_slope": fit_loglog(widths, [r["max_abs_error"] for r in kernel_rows]),
            "linearization": rows, "gap_slope": fit_loglog(widths, [r["gap"] for r in rows]), "steps": steps}


def run_signal_to_noise(width: int) -> dict:
    from .ntk import init_two_layer, signal_to_noise_construction

    d, tau, delta = 2, 0.3, 0.01
    rng = np.random.default_rng(3)
    init = init_two_layer(width, d, rng)
    ang = np.array([0.3, 2.0, 4.0])
    betas = np.stack([np.cos(ang), np.sin(ang)], 1)
    alphas = np.array([1.0, -0.5, 0.8])
    res = signal_to_noise_construction(init, alphas, betas, tau)
    th = rng.random(4000) * 2 * np.pi
    x = np.stack([np.cos(th), np.sin(th)], 1) * np.sqrt(rng.random((4000, 1)))
    F = init.forward_unscaled(x, res.V)
    lin = init.forward_unscaled(x) + math.sqrt(width) * (init.linearized(x, res.V) - init.forward(x))
    g = np.maximum(x @ betas.T, 0) @ alphas
    move = np.linalg.norm(res.V - init.V0, axis=1)
    return {"width": width, "dim": d, "tau": tau, "delta": delta,
            "width_needed": 4 ** (d + 2) * math.log(1 / delta) / tau ** (2 * d - 2),
            "nodes_per_group": int(len(res.groups[0])), "c0": res.c0,
            "max_abs_F_minus_F0": float(np.abs(F - lin).max()),
            "max_abs_F_minus_c0_g": float(np.abs(F - res.c0 * g).max()),
            "bound_F_minus_c0_g": math.sqrt(width) * (16 * d * math.log(width / delta) + np.abs(alphas).sum()),
            "init_noise_sup": float(np.abs(init.forward_unscaled(x)).max()),
            "relative_error_F_over_c0": float(np.abs(F / res.c0 - g).max()),
            "frobenius_move": float(np.linalg.norm(res.V - init.V0)),
            "frobenius_proof": float(np.linalg.norm(alphas) / (tau * math.sqrt(res.tau_d))),
            "frobenius_statement": 2 ** (d + 1) * float(np.linalg.norm(alphas)) / tau ** (d - 1),
            "max_row_move": float(move.max()), "max_row_proof": res.c * float(np.abs(alphas).max()),
            "max_row_statement": 2 ** (d + 1) * float(np.abs(alphas).max()) / (tau ** (d - 1) * math.sqrt(width))}


# ------------------------------------------------------------------------------------------- figures

def make_figures(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .constructions import triangle

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    x = np.linspace(0, 1, 4001)
    for L in (1, 2, 3, 4):
        axes[0].plot(x, triangle(x, L), label=f"$\\Delta^{L}$")
    axes[0].set_title("triangle map compositions")
    axes[0].legend()
    rows = res["triangle"]["rows"]
    Ls = [r["depth"] for r in rows]
    axes[1].semilogy(Ls, [r["pieces"] for r in rows], "o-", label="exact pieces of $\\Delta^L$")
    axes[1].semilogy(Ls, [2.0 ** L for L in Ls], "k--", label="$2^L$")
    axes[1].semilogy(Ls, [r["deep_nodes"] for r in rows], "s-", label="deep nodes 3L")
    axes[1].semilogy(Ls, [r["shallow_nodes_exact"] for r in rows], "^-", label="1-hidden-layer nodes (exact)")
    axes[1].set_xlabel("L")
    axes[1].legend(fontsize=8)
    ds = res["depth_separation"]
    for widths in ([4], [2, 2]):
        pts = {}
        for r in ds["sweep"]:
            if r["widths"] == widths:
                pts[r["target_depth"]] = min(pts.get(r["target_depth"], np.inf), r["l1"])
        ks = sorted(pts)
        axes[2].plot(ks, [pts[k] for k in ks], "o-", label=f"best trained, widths {tuple(widths)}")
    axes[2].axhline(ds["floor"], color="k", ls="--", label="Thm 4.4 floor 1/32")
    axes[2].axhline(0.25, color="gray", ls=":", label="constant 1/2")
    axes[2].set_xlabel("target depth k of $\\Delta^k$")
    axes[2].set_ylabel("$\\int_0^1 |\\Delta^k - g|$ (exact)")
    axes[2].set_title("shallow fits (4 ReLUs) vs deep target")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "triangle_depth_separation.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    sq = res["squaring"]["rows"]
    axes[0].semilogy([r["nodes"] for r in sq], [r["sup_error"] for r in sq], "o-", label="deep $h_i$ (measured, exact)")
    axes[0].semilogy([r["nodes"] for r in sq], [r["theory"] for r in sq], "k--", label="$4^{-(i+1)}$")
    axes[0].semilogy([r["nodes"] for r in sq], [r["shallow_same_nodes_uniform_error"] for r in sq], "s-",
                     label="shallow, same nodes: $1/(4N^2)$")
    axes[0].set_xlabel("ReLU nodes")
    axes[0].set_title("squaring (Thm 4.2)")
    axes[0].legend(fontsize=8)
    for name, r in res["barron"].items():
        axes[1].loglog(r["widths"], np.sqrt(r["mse_mean"]), "o-", label=f"{name} (slope {r['rms_slope']:.2f})")
        axes[1].loglog(r["widths"], np.sqrt(r["maurey_identity"]), "k:", lw=1)
    axes[1].set_xlabel("sampled width m")
    axes[1].set_ylabel("$L_2(P)$ error")
    axes[1].set_title("Maurey sampling (dotted: exact variance)")
    axes[1].legend(fontsize=8)
    lin = res["ntk"]["linearization"]
    w = [r["width"] for r in lin]
    axes[2].loglog(w, [r["gap"] for r in lin], "o-", label=f"sup |F - F_0| after GD (slope {res['ntk']['gap_slope']:.2f})")
    axes[2].loglog(w, [r["prop37_bound_delta_0.01"] for r in lin], "k--", label="Prop 3.7 bound")
    axes[2].loglog(w, [r["max_abs_error"] for r in res["ntk"]["kernel"]], "s-",
                   label=f"max |k_m - k_inf| (slope {res['ntk']['kernel_slope']:.2f})")
    axes[2].loglog(w, [r["radius"] for r in lin], "^-", label="$||V - V_0||_F$")
    axes[2].set_xlabel("width m")
    axes[2].set_title("near initialization")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "squaring_barron_ntk.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sweeps (about a minute on 2 cores)")
    parser.add_argument("--out", default="results_local/theory/telgarsky")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    q = args.quick
    start = time.time()
    res = {"mode": "quick" if q else "full"}
    res["triangle"] = run_triangle(10 if q else 14)
    res["parity"] = run_parity(4)
    res["squaring"] = run_squaring(10 if q else 16)
    res["depth_separation"] = run_depth_separation(Ls=(2, 3), restarts=2 if q else 4, steps=800 if q else 1500,
                                                   workers=args.workers, sweep_depths=range(1, 7))
    res["universal"] = run_universal(q)
    widths = [2 ** k for k in range(3, 12 if q else 15)]
    res["barron"] = run_barron(widths, repeats=20 if q else 100, workers=args.workers)
    res["ntk"] = run_ntk([16, 64, 256, 1024, 4096] if q else [16, 64, 256, 1024, 4096, 16384],
                         repeats=2 if q else 5, steps=500 if q else 2000, workers=args.workers)
    res["signal_to_noise"] = run_signal_to_noise(14000)
    res["seconds"] = time.time() - start
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float))
    make_figures(res, out)
    print(f"telgarsky: wrote {out} in {res['seconds']:.0f} s")
    return res


if __name__ == "__main__":
    main()
