"""Fig. 5.3 experiment checks: the claim of the issue in quick mode, and the pipeline end to end."""

import json

import numpy as np
import pytest
import torch

from ultratrain.sw.parallel import exp_fig5_3
from ultratrain.sw.parallel.training import TrainConfig

torch.set_num_threads(1)  # tiny tensors: extra intra-op threads only add synchronisation on a shared CPU


@pytest.fixture(scope="module")
def doppler_quick(tmp_path_factory, worker_id):
    # under pytest-xdist every worker that draws one of these tests builds the module fixture; run the
    # experiment once per session (shared directory + lock) instead of twice on the same 2 cores
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    out = root / "fig5_3_quick"
    with FileLock(str(root / "fig5_3_quick.lock")):
        if not (out / "fig5_3.json").exists():
            exp_fig5_3.main(["--quick", "--targets", "doppler", "--methods", "pnn,smoothing_spline",
                             "--out", str(out)])
        record = json.loads((out / "fig5_3.json").read_text())
    return record, out


def test_parallel_network_beats_the_smoothing_spline_on_doppler_at_equal_n(doppler_quick):
    record, _ = doppler_quick
    summary = record["summary"]["doppler"]
    n_max = str(max(record["settings"]["ns"]))
    pnn = summary["pnn"]["by_n"][n_max]["best_mse"]
    spline = summary["smoothing_spline"]["by_n"][n_max]["best_mse"]
    assert pnn < spline, f"n={n_max}: parallel NN best MSE {pnn:.4f} vs smoothing spline {spline:.4f}"


def test_parallel_network_rate_is_steeper_than_the_spline_rate(doppler_quick):
    record, _ = doppler_quick
    summary = record["summary"]["doppler"]
    pnn, spline = summary["pnn"]["rate"]["slope"], summary["smoothing_spline"]["rate"]["slope"]
    assert pnn < spline < 0, f"fitted slopes: parallel NN {pnn:.3f}, smoothing spline {spline:.3f}"


def test_quick_run_writes_results_and_figure(doppler_quick):
    record, out = doppler_quick
    saved = json.loads((out / "fig5_3.json").read_text())
    assert saved["mode"] == "quick" and (out / "fig5_3_doppler.png").stat().st_size > 10_000
    m = record["settings"]["network"]["n_subnets"]
    for row in record["summary"]["doppler"]["pnn"]["by_n"].values():
        assert all(0 <= a <= m for a in row["active_curve"])
        assert all(np.isfinite(row["dof_curve"]))


def test_every_method_runs_end_to_end_on_tiny_settings(tmp_path):
    settings = {"ns": [32, 48], "seeds": 2, "showcase_n": 48, "lambdas": [1e-4, 1e-1],
                "network": TrainConfig(n_subnets=4, width=3, depth=3, pretrain_steps=20, decay_steps=30)}
    jobs = [{"target": "vary", "n": n, "seed": s, "methods": list(exp_fig5_3.METHODS), "settings": settings}
            for n in settings["ns"] for s in range(2)]
    results = [exp_fig5_3.run_job(job) for job in jobs]
    summary = exp_fig5_3.summarize(results, settings["ns"])
    for method in exp_fig5_3.METHODS:
        entry = summary["vary"][method]
        assert set(entry["by_n"]) == {"32", "48"} and np.isfinite(entry["rate"]["slope"])
        assert all(row["repeats"] == 2 for row in entry["by_n"].values())
    showcase = [r for r in results if "showcase" in r]
    assert len(showcase) == 1 and "best_subnets" in showcase[0]["methods"]["pnn"]
    assert exp_fig5_3._plot(results, summary, tmp_path, settings)
    with pytest.raises(ValueError, match="methods"):
        exp_fig5_3.main(["--quick", "--methods", "gp", "--out", str(tmp_path)])
