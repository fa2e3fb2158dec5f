"""Thesis ch. 4 experiments (sw/ntk/exp_*.py) and their data loaders."""

import json

import numpy as np
import pytest
import torch
from scipy import stats

from ultratrain.sw.ntk import exp_eigen_decay, exp_fig4_1, exp_fig4_3, exp_table4_1
from ultratrain.sw.ntk.datasets import BUNDLED_UCI, fashion_mnist_on_sphere, load_bundled_uci, load_csv_dataset

torch.set_num_threads(1)
SUBSET = "tests/data/fashion-mnist-subset"


def write_iris_csv(path, header=True, string_labels=True):
    x, y = load_bundled_uci("iris")
    names = np.array(["setosa", "versicolor", "virginica"])
    with open(path, "w") as handle:
        if header:
            handle.write("a,b,c,d,species\n")
        for row, label in zip(x, y):
            handle.write(",".join(f"{v:g}" for v in row) + f",{names[label] if string_labels else label}\n")
    return x, y


def test_csv_loader_reads_header_string_labels_and_named_columns(tmp_path):
    path = tmp_path / "iris.csv"
    x, y = write_iris_csv(path)
    xa, ya = load_csv_dataset(path)
    assert np.allclose(xa, x) and np.array_equal(ya, y)
    xb, yb = load_csv_dataset(path, label_column="species")
    assert np.allclose(xb, x) and np.array_equal(yb, y)
    plain = tmp_path / "plain.csv"
    write_iris_csv(plain, header=False, string_labels=False)
    xc, yc = load_csv_dataset(plain)
    assert xc.shape == (150, 4) and np.array_equal(yc, y)
    # label in the first column (here a numeric feature with many distinct values)
    xd, yd = load_csv_dataset(plain, label_column=0)
    assert xd.shape == (150, 4) and len(np.unique(yd)) > 3


def test_csv_loader_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_csv_dataset(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,a\n3,x,b\n")
    with pytest.raises(ValueError, match="non-numeric"):
        load_csv_dataset(bad)
    single = tmp_path / "single.csv"
    single.write_text("1,2,a\n3,4,a\n")
    with pytest.raises(ValueError, match="single class"):
        load_csv_dataset(single)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,a\n3,b\n")
    with pytest.raises(ValueError, match="columns"):
        load_csv_dataset(ragged)


def test_bundled_sets_and_fashion_mnist_on_the_sphere():
    for name in BUNDLED_UCI:
        x, y = load_bundled_uci(name)
        assert x.ndim == 2 and len(x) == len(y) and y.min() == 0 and len(np.unique(y)) >= 2
    _, y = load_bundled_uci("diabetes_binary")
    assert abs(y.mean() - 0.5) < 0.02
    with pytest.raises(ValueError, match="name"):
        load_bundled_uci("adult")
    xtr, ytr, xte, yte = fashion_mnist_on_sphere(500, 200, data_dir=SUBSET)
    assert xtr.shape == (500, 784) and xte.shape == (200, 784)
    assert np.allclose(np.linalg.norm(xtr, axis=1), 1, atol=1e-5)
    assert set(np.unique(ytr)) <= set(range(10))


def test_paired_tests_match_scipy_and_count_wins():
    rng = np.random.default_rng(0)
    per_dataset = {}
    for i in range(12):
        base = rng.uniform(0.6, 0.9)
        per_dataset[f"set{i}"] = {m: {"test": base + rng.normal(0, 0.02) + (0.03 if m == "NN" else 0),
                                      "gap": rng.normal(0.05, 0.02)} for m in exp_table4_1.MODELS}
    table = exp_table4_1.paired_tests(per_dataset)
    a = [per_dataset[n]["NN"]["test"] for n in sorted(per_dataset)]
    b = [per_dataset[n]["BWNN"]["test"] for n in sorted(per_dataset)]
    expected = stats.ttest_rel(a, b)
    assert table["NN-BWNN"]["test"]["t"] == pytest.approx(expected.statistic)
    assert table["NN-BWNN"]["test"]["p"] == pytest.approx(expected.pvalue)
    assert table["NN-BWNN"]["test"][">"] == pytest.approx(100 * np.mean(np.array(a) > np.array(b)))
    assert table["NN-BWNN"]["test"]["<"] + table["NN-BWNN"]["test"][">"] == pytest.approx(100)
    summary = exp_table4_1.summary_table({n: {m: {"train": v[m]["test"], "test": v[m]["test"]} for m in v}
                                          for n, v in per_dataset.items()})
    assert summary["NN"]["test"]["P95"] == 100.0  # NN is the best on (almost) every set by construction


def test_table4_1_pipeline_on_a_user_csv(tmp_path):
    path = tmp_path / "iris.csv"
    write_iris_csv(path)
    out = tmp_path / "out"
    exp_table4_1.main(["--quick", "--no-bundled", "--csv", str(path), str(path), "--repeats", "1",
                       "--out", str(out)])
    result = json.loads((out / "table4_1.json").read_text())
    assert set(result["per_dataset"]) == {"iris", "iris_csv"}
    for model in exp_table4_1.MODELS:
        assert result["per_dataset"]["iris"][model]["test"] > 0.8
    assert set(result["table4_1"]) == {"NN-BWNN", "Laplace-Gaussian"}
    assert result["table4_1"]["NN-BWNN"]["test"]["n_datasets"] == 2
    assert (out / "fig4_2_accuracy.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="workers"):
        exp_table4_1.main(["--quick", "--workers", "3", "--out", str(out)])


def test_fig4_3_pipeline_small(tmp_path):
    out = tmp_path / "f43"
    summary = exp_fig4_3.main(["--quick", "--sizes", "100", "300", "--repeats", "1", "--steps", "120",
                               "--hidden", "256", "--out", str(out)])
    assert set(summary) == {"binary", "real"}
    for weights in summary:
        for size in (100, 300):
            entry = summary[weights][size]
            assert 0 <= entry["train_error"]["mean"] <= 1 and 0 <= entry["test_error"]["mean"] <= 1
    # a real network memorises 100 samples: large generalisation gap, smaller with more data
    assert summary["real"][100]["error_gap"]["mean"] > 0.2
    assert summary["real"][300]["error_gap"]["mean"] < summary["real"][100]["error_gap"]["mean"]
    assert (out / "fig4_3.png").exists() and (out / "fig4_3.json").exists()
    with pytest.raises(ValueError, match="sizes"):
        exp_fig4_3.main(["--quick", "--sizes", "5000", "--out", str(out)])


def test_fig4_1_quick_quasi_network_tracks_monte_carlo(tmp_path):
    summary = exp_fig4_1.main(["--quick", "--out", str(tmp_path)])
    assert summary["after"]["limit"]["correlation"] >= 0.99
    assert summary["before"]["limit"]["correlation"] >= 0.98
    # the remaining gap is Monte-Carlo noise, not bias
    assert summary["after"]["limit"]["rms_gap"] < 1.5 * summary["after"]["mc_standard_error_rms"]
    result = json.loads((tmp_path / "fig4_1.json").read_text())
    assert result["train_accuracy_quasi"] > 0.6
    assert (tmp_path / "fig4_1.png").stat().st_size > 1000


def test_eigen_decay_quick_fits_the_predicted_laws(tmp_path):
    results = exp_eigen_decay.main(["--quick", "--out", str(tmp_path)])
    fits = results["by_dimension"]["5"]["fits"]
    bwnn = fits["bwnn_var0.333"]
    assert bwnn["poly_times_exponential"]["base"] == pytest.approx(bwnn["predicted_base"], rel=0.03)
    assert fits["relu_ntk"]["polynomial"]["exponent"] == pytest.approx(4.72, abs=0.1)
    assert fits["relu_ntk"]["poly_times_exponential"]["base"] < 1.05  # no exponential factor
    assert fits["random_scale_gaussian"]["exponential"]["base"] == pytest.approx(
        fits["random_scale_gaussian"]["predicted_base"], rel=0.01)
    for weights in ("binary", "real"):
        assert results["width_convergence"][weights]["loglog_slope"] < -0.3
    assert (tmp_path / "eigen_decay.png").stat().st_size > 1000


def test_run_experiments_discovers_the_chapter_4_scripts():
    from ultratrain.sw.run_experiments import discover

    names = [n for n in discover() if ".ntk." in n]
    assert names == sorted(f"ultratrain.sw.ntk.exp_{n}" for n in ("eigen_decay", "fig4_1", "fig4_3", "table4_1"))


@pytest.mark.slow
@pytest.mark.parametrize("module", [exp_table4_1, exp_fig4_3])
def test_quick_modes_run(module, tmp_path):
    module.main(["--quick", "--out", str(tmp_path)])
    assert any(tmp_path.glob("*.json")) and any(tmp_path.glob("*.png"))
