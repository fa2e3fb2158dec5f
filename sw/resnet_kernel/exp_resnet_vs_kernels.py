"""Allen-Zhu & Li section 8.1 at laptop scale: test error vs training-set size for the three-layer ResNet,
a two-layer network and kernel baselines on H(x) = F(x) + 0.3 G(F(x)) (x in {-1,+1}^30, 15 outputs).

The paper plots test error vs width at N = 500 (Figure 2); here the width is fixed and N varies, which
shows the same separation from the other side: the kernels approach but cannot cross k alpha^2 = 1.35
(they would need the degree-8 parity G(F(x)) as a kernel feature), while the ResNet can.

Methods (JSON key ``methods``): ``resnet3`` (bottleneck ResNet, all layers, SGD), ``fc2`` (two-layer
ReLU network, SGD), ``ntk2`` / ``ntk3`` (infinite-width NTK of a 2- / 3-layer ReLU network, kernel
ridge), ``rf`` (4000 random ReLU features, output layer only), ``resnet3_last`` (conjugate kernel: the
ResNet at initialisation with only A trained). Ridge parameters are picked on a 20 % hold-out.

``python -m ultratrain.sw.resnet_kernel.exp_resnet_vs_kernels --quick --out DIR``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from ..parallel_map import parallel_map

DIM = 30
OUTPUTS = 15


def _data(n: int, seed: int, alpha: float, beta: float):
    from .concept import ParityConcept

    c = ParityConcept(dim=DIM, alpha=alpha, beta=beta)
    x, y = c.sample(n, np.random.default_rng(seed))
    xt, yt = c.sample(4000, np.random.default_rng(10 ** 6 + seed))
    return c, x, y, xt, yt


def _network_job(args):
    import torch

    from .learners import TrainConfig, build, train_sgd

    torch.set_num_threads(1)
    arch, n, seed, width, epochs, lr, wd, decay_at, alpha, beta = args
    _, x, y, xt, yt = _data(n, seed, alpha, beta)
    model = build(arch, DIM, width, OUTPUTS, seed)
    t = time.time()
    r = train_sgd(model, x, y, TrainConfig(epochs=epochs, lr=lr, weight_decay=wd, decay_at=decay_at, seed=seed),
                  xt, yt, log_every=max(1, epochs // 20))
    return {"method": arch, "n": n, "seed": seed, "width": width, "epochs": epochs, "test_error": r["test_error"],
            "train_error": r["train_error"], "curve": r["curve"], "seconds": time.time() - t}


def _kernel_job(args):
    from .kernels import (fit_kernel, model_features, ntk_relu_kernel, random_features_ridge,
                          relu_random_features)
    from .learners import build

    method, n, seed, width, alpha, beta = args
    _, x, y, xt, yt = _data(n, seed, alpha, beta)
    t = time.time()
    s = math.sqrt(DIM)
    if method in ("ntk2", "ntk3"):
        depth = int(method[-1])
        r = fit_kernel(lambda a, b: ntk_relu_kernel(a / s, b / s, depth=depth, bias=0.5), x, y, xt, yt,
                       ridges=(1e-8, 1e-6, 1e-4, 1e-2, 1.0), seed=seed)
    elif method == "rf":
        r = random_features_ridge(relu_random_features(DIM, 4000, seed), x, y, xt, yt,
                                  ridges=(1e-8, 1e-6, 1e-4, 1e-2, 1.0), seed=seed)
    elif method == "resnet3_last":
        r = random_features_ridge(model_features(build("resnet3", DIM, width, OUTPUTS, seed)), x, y, xt, yt,
                                  ridges=(1e-8, 1e-6, 1e-4, 1e-2, 1.0), seed=seed)
    else:
        raise ValueError(f"unknown kernel method {method!r}")
    return {"method": method, "n": n, "seed": seed, "test_error": r.test_error, "train_error": r.train_error,
            "ridge": r.ridge, "seconds": time.time() - t}


def run(ns, seeds, width, epochs_at_500, max_steps, lr, wd, decay_at, workers, alpha=0.3, beta=1.0,
        kernels=("ntk2", "ntk3", "rf", "resnet3_last"), nets=("resnet3", "fc2")) -> list[dict]:
    jobs = []
    for n in ns:
        # 800 epochs at N = 500 in the paper; larger N keep the same number of SGD steps (capped)
        steps = min(max_steps, epochs_at_500 * math.ceil(500 / 50))
        epochs = max(1, round(steps / math.ceil(n / 50)))
        for seed in seeds:
            jobs += [("net", (a, n, seed, width, epochs, lr, wd, decay_at, alpha, beta)) for a in nets]
    kjobs = [(m, n, seed, width, alpha, beta) for n in ns for seed in seeds for m in kernels]
    results = parallel_map(_network_job, [j for _, j in jobs], workers=workers, desc="networks")
    results += parallel_map(_kernel_job, kjobs, workers=workers, desc="kernels")
    return results


def summarize(results: list[dict]) -> dict:
    out = {}
    for r in results:
        out.setdefault(r["method"], {}).setdefault(r["n"], []).append(r["test_error"])
    return {m: {str(n): float(np.mean(v)) for n, v in sorted(d.items())} for m, d in out.items()}


def make_figure(summary: dict, results: list[dict], threshold: float, zero: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method, d in summary.items():
        ns = sorted(int(n) for n in d)
        style = "o-" if method in ("resnet3", "fc2") else "s--"
        axes[0].semilogy(ns, [d[str(n)] for n in ns], style, label=method)
    axes[0].axhline(threshold, color="k", ls=":", label="k alpha^2 = 1.35 (F learned, G not)")
    axes[0].axhline(zero, color="gray", ls=":", label="zero predictor")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("training samples N")
    axes[0].set_ylabel("test error E||out - y||^2")
    axes[0].legend(fontsize=7)
    axes[0].set_title("ResNet vs kernels (Allen-Zhu & Li 8.1)")
    for r in results:
        if r["method"] in ("resnet3", "fc2") and r["curve"]:
            ep, err = zip(*r["curve"])
            axes[1].semilogy(ep, err, label=f"{r['method']} N={r['n']} s={r['seed']}")
    axes[1].axhline(threshold, color="k", ls=":")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("test error")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "resnet_vs_kernels.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 500 only, short training (minutes)")
    parser.add_argument("--out", default="results_local/theory/resnet_kernel")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.quick:
        cfg = dict(ns=[500], seeds=[0], width=100, epochs_at_500=150, max_steps=1500, lr=0.05, wd=5e-3,
                   decay_at=2.0)
    else:
        cfg = dict(ns=[250, 500, 1000, 2000], seeds=[0], width=200, epochs_at_500=400, max_steps=4000,
                   lr=0.05, wd=5e-3, decay_at=2.0)
    results = run(workers=args.workers, **cfg)
    from .concept import ParityConcept

    c = ParityConcept()
    summary = summarize(results)
    res = {"mode": "quick" if args.quick else "full", "config": cfg, "summary": summary, "runs": results,
           "threshold_k_alpha2": c.base_only_error, "zero_predictor": c.zero_error,
           "seconds": time.time() - start}
    (out / "results.json").write_text(json.dumps(res, indent=1))
    make_figure(summary, results, c.base_only_error, c.zero_error, out)
    print(f"resnet_kernel: wrote {out} in {res['seconds']:.0f} s")
    return res


if __name__ == "__main__":
    main()
