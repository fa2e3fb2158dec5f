"""Eigenvalue decay of the binary-weight NTK against the ReLU NTK, Laplace and Gaussian kernels
(thesis ch. 4, Theorem 4.10, eq. 4.10-4.11, section 4.5.2), plus the empirical NTK's convergence with width.

The thesis states, without a figure, that the Mercer eigenvalues ``u_k`` of the BWNN NTK on S^{d-1} decay
like ``Poly(k) C^-k`` (4.10), those of the random-scale Gaussian kernel like ``A C^-k`` (4.11) and those of the
ReLU NTK (and the Laplace kernel) like ``k^-d``. Here the eigenvalues are computed (BWNN and Gaussian kernels
exactly from their Taylor series, ReLU and Laplace by Gauss-Jacobi quadrature), fitted with both laws, and
the fitted base ``C`` of the exponential law is set beside the value an analytic kernel with its nearest
singularity at ``t0 > 1`` has, ``C = t0 + sqrt(t0^2 - 1)``: ``t0 = 1/Var(theta)`` for the BWNN NTK (the arcsine
and square root in ``k0, k1`` at ``rho = 1``), ``t0 = 1 + xi^2/4`` for the random-scale Gaussian.

Second part (Lemma 4.11 / Theorem 4.9): relative Frobenius error between the empirical NTK of a finite
quasi network (and a real-weight ReLU network) and the closed form, against width ``d1 = d2``.

``python -m ultratrain.sw.ntk.exp_eigen_decay [--quick] [--out DIR]``
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from tqdm import tqdm

from .experiment_utils import base_parser, pyplot, setup_run, write_json
from .kernels import (empirical_ntk, laplace_on_sphere, ntk_bwnn_gram, ntk_bwnn_taylor, ntk_relu,
                      random_scale_gaussian_taylor, gaussian_taylor)
from .mercer import (fit_exponential_decay, fit_polynomial_decay, mercer_coefficients_quadrature,
                     mercer_coefficients_taylor)

QUICK = dict(dims=(5,), k_max=40, var_thetas=(1 / 3,), widths=(64, 256, 1024, 4096), seeds=3, n_inputs=10)
FULL = dict(dims=(3, 5, 10), k_max=80, var_thetas=(1 / 3, 0.6, 0.9), widths=(64, 256, 1024, 4096, 8192), seeds=5,
            n_inputs=20)
BETA, C_SCALE, XI, LAPLACE_S = 0.1, 1.0, 2.0, 1.0


def spectra(d: int, k_max: int, var_thetas) -> dict:
    """Eigenvalues u_0..u_kmax of every kernel on S^{d-1}."""
    # enough Taylor terms that the dropped tail is below 1e-30 of the leading term
    def terms(ratio):
        return k_max + int(np.ceil(70 / -math.log10(ratio))) + 10

    out = {}
    for v in var_thetas:
        out[f"bwnn_var{v:.3g}"] = mercer_coefficients_taylor(
            ntk_bwnn_taylor(terms(v), var_theta=v, c=C_SCALE, d=d, beta=BETA), d, k_max)
    out["relu_ntk"] = mercer_coefficients_quadrature(lambda t: ntk_relu(t, c=C_SCALE, d=d, beta=BETA), d, k_max,
                                                     n_nodes=6000)
    out["laplace"] = mercer_coefficients_quadrature(lambda t: laplace_on_sphere(t, s=LAPLACE_S), d, k_max,
                                                    n_nodes=6000)
    out["gaussian"] = mercer_coefficients_taylor(gaussian_taylor(k_max + 200, xi=XI), d, k_max)
    p = 4 / XI ** 2
    out["random_scale_gaussian"] = mercer_coefficients_taylor(
        random_scale_gaussian_taylor(terms(p / (1 + p)) + 4 * d, xi=XI, d=d), d, k_max)
    return out


def fits(u: np.ndarray, k_lo: int, k_hi: int) -> dict:
    """Both decay laws over even k in [k_lo, k_hi] where the eigenvalue is resolvable (> 1e-300)."""
    k = np.arange(k_lo, k_hi + 1, 2)
    k = k[u[k] > 1e-300]
    return {"k_range": [int(k[0]), int(k[-1])], "exponential": fit_exponential_decay(k, u[k]),
            "poly_times_exponential": fit_exponential_decay(k, u[k], with_power=True),
            "polynomial": fit_polynomial_decay(k, u[k])}


def width_convergence(widths, seeds, n_inputs, d=8):
    """Mean relative Frobenius error of the empirical NTK vs the closed form, per width, binary and real."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_inputs, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    xt = torch.tensor(x)
    result = {}
    for weights, v in (("binary", 1 / 3), ("real", 1.0)):
        analytic = ntk_bwnn_gram(x, var_theta=v, c=C_SCALE, beta=BETA)
        rows = []
        for width in tqdm(widths, desc=f"empirical NTK ({weights})", leave=False):
            errs = []
            for seed in range(seeds):
                from .networks import BinaryWeightNet

                net = BinaryWeightNet(d, width, width, c=C_SCALE, beta=BETA, seed=seed, weights=weights,
                                      dtype=torch.float64)
                emp = empirical_ntk(net, xt).numpy()
                errs.append(float(np.linalg.norm(emp - analytic) / np.linalg.norm(analytic)))
                del net
            rows.append({"width": width, "rel_error_mean": float(np.mean(errs)), "rel_error_std": float(np.std(errs))})
        w = np.log([r["width"] for r in rows])
        e = np.log([r["rel_error_mean"] for r in rows])
        result[weights] = {"rows": rows, "loglog_slope": float(np.polyfit(w, e, 1)[0])}
    return result


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], "results_local/theory/ntk/exp_eigen_decay")
    args = parser.parse_args(argv)
    started = time.time()
    out = setup_run(args)
    cfg = QUICK if args.quick else FULL
    plt = pyplot()
    results = {"config": {**cfg, "beta": BETA, "c": C_SCALE, "xi": XI, "laplace_s": LAPLACE_S}, "by_dimension": {}}
    dims = cfg["dims"]
    fig, axes = plt.subplots(2, len(dims) + 1, figsize=(5 * (len(dims) + 1), 8), squeeze=False)
    for col, d in enumerate(dims):
        spec = spectra(d, cfg["k_max"], cfg["var_thetas"])
        entry = {"eigenvalues": {name: u for name, u in spec.items()}, "fits": {}}
        for name, u in spec.items():
            entry["fits"][name] = fits(u, 10, cfg["k_max"])
        for v in cfg["var_thetas"]:
            entry["fits"][f"bwnn_var{v:.3g}"]["predicted_base"] = 1 / v + math.sqrt(1 / v ** 2 - 1)
        t0 = 1 + XI ** 2 / 4
        entry["fits"]["random_scale_gaussian"]["predicted_base"] = t0 + math.sqrt(t0 ** 2 - 1)
        results["by_dimension"][str(d)] = entry
        k = np.arange(1, cfg["k_max"] + 1)
        for ax, xscale in ((axes[0, col], "linear"), (axes[1, col], "log")):
            for name, u in spec.items():
                even = k[(k % 2 == 0) & (u[k] > 1e-300)]
                ax.semilogy(even, u[even], ".-", label=name, ms=3)
            ax.set_xscale(xscale)
            if xscale == "log":
                from matplotlib.ticker import NullFormatter, ScalarFormatter

                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("degree k (even)")
            ax.set_ylabel("u_k")
            ax.set_title(f"S^{d - 1}: {'exponential law = line' if xscale == 'linear' else 'polynomial law = line'}")
            ax.set_ylim(bottom=max(1e-60, min(np.nanmin(np.where(u[2:] > 0, u[2:], np.nan)) for u in spec.values())))
        axes[0, col].legend(fontsize=7)
    conv = width_convergence(cfg["widths"], cfg["seeds"], cfg["n_inputs"])
    results["width_convergence"] = conv
    ax = axes[0, -1]
    for weights, res in conv.items():
        ax.errorbar([r["width"] for r in res["rows"]], [r["rel_error_mean"] for r in res["rows"]],
                    [r["rel_error_std"] for r in res["rows"]], marker="o",
                    label=f"{weights} (slope {res['loglog_slope']:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width d1 = d2")
    ax.set_ylabel("||K_emp - K|| / ||K||")
    ax.set_title("empirical NTK -> closed form")
    ax.legend(fontsize=8)
    axes[1, -1].axis("off")
    fig.tight_layout()
    fig.savefig(out / "eigen_decay.png", dpi=120)
    plt.close(fig)
    path = write_json(out / "eigen_decay.json", results, args, started)
    d0 = str(dims[0])
    f = results["by_dimension"][d0]["fits"]
    v0 = f"bwnn_var{cfg['var_thetas'][0]:.3g}"
    print(f"eigen_decay d={d0}: BWNN base C={f[v0]['exponential']['base']:.2f} "
          f"(predicted {f[v0]['predicted_base']:.2f}), ReLU exponent {f['relu_ntk']['polynomial']['exponent']:.2f}; "
          f"NTK error slope vs width {conv['binary']['loglog_slope']:.2f} -> {path}")
    return results


if __name__ == "__main__":
    main()
