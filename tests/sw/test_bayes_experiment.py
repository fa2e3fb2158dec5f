"""The Table 2.1 pipeline end to end: Fashion-MNIST subset rows (shortened) and the CIFAR-10 path on a synthetic set."""

import json
import math
from pathlib import Path

import pytest
import torch

from ultratrain.sw.bayes import exp_table2_1
from ultratrain.sw.bayes.cifar import load_cifar10, write_synthetic_cifar
from ultratrain.sw.bayes.models import (CIFAR_KINDS, DENSE_FASHION_PARAMETERS, FASHION_KINDS, balanced_factors,
                                        cifar_model, count_parameters, fashion_model)
from ultratrain.sw.bayes.training import predictive_metrics

torch.set_num_threads(1)


def test_fashion_models_have_table_2_1_shapes_and_parameter_counts():
    counts = {k: count_parameters(fashion_model(k)) for k in FASHION_KINDS}
    assert counts["NN"] == DENSE_FASHION_PARAMETERS == 397510  # thesis 3.97e5
    assert abs(counts["TT-NN"] / 2.63e4 - 1) < 0.02  # thesis 2.63e4 (15.1x)
    assert abs(counts["Tucker-NN"] / 2.57e5 - 1) < 0.02  # thesis 2.57e5 (1.54x)
    assert counts["BF-TT-NN"] == counts["TT-NN"] and counts["BF-Tucker-NN"] == counts["Tucker-NN"]
    tt = fashion_model("TT-NN")
    assert len(tt[0].tt.cores) == 4 and len(tt[2].tt.cores) == 2  # FC1 8th-order, FC2 4th-order tensors
    tucker = fashion_model("Tucker-NN")
    assert tucker[0].core.dim() == 4 and tucker[2].core.dim() == 3
    x = torch.randn(5, 784)
    for k in FASHION_KINDS:
        assert fashion_model(k)(x).shape == (5, 10)
    with pytest.raises(ValueError, match="kind"):
        fashion_model("CP-NN")


def test_cifar_cnn_matches_section_2_4_2():
    cnn = cifar_model("CNN")
    assert abs(count_parameters(cnn) / 9.91e6 - 1) < 0.01  # thesis 9.91e6
    assert abs(count_parameters(cifar_model("TT-CNN")) / 6.93e5 - 1) < 0.05  # thesis 6.93e5
    convs = [m for m in cnn if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256, 256, 256]
    assert balanced_factors(256, 2) == (16, 16) and balanced_factors(16384, 4) == (16, 16, 8, 8)


def test_predictive_metrics():
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)
    out = predictive_metrics(probs, torch.tensor([0, 1, 1]))
    assert math.isclose(out["ll"], (math.log(0.7) + math.log(0.8) + math.log(0.4)) / 3)
    assert math.isclose(out["accuracy"], 200 / 3)


def test_table_2_1_script_runs_on_the_subset_and_writes_json_table_and_figures(tmp_path):
    result = exp_table2_1.main(["--quick", "--out", str(tmp_path), "--models", "NN,BF-TT-NN,Tucker-NN",
                                "--train-limit", "1000", "--epochs", "3", "--samples", "6", "--burn-in", "2",
                                "--inner", "3", "--sghmc-batch", "50", "--no-progress"])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["mode"] == "quick" and saved["rows"].keys() == result["rows"].keys()
    for kind in ("NN", "BF-TT-NN", "Tucker-NN"):
        row = saved["rows"][kind]
        assert row["status"] == "run" and row["train_size"] == 1000 and row["test_size"] == 1000
        assert row["map"]["accuracy"] > 60.0  # learnable in 30 Adam steps (chance: 10 %)
        assert math.isfinite(row["bayes"]["ll"]) and 0 <= row["bayes"]["accuracy"] <= 100
        assert row["sghmc"]["trace"]["samples"][-1] == 6
        assert row["sghmc"]["config"]["batch_size"] == 50
    assert saved["rows"]["BF-TT-NN"]["parameters"] <= saved["rows"]["BF-TT-NN"]["initial_parameters"]
    for kind in CIFAR_KINDS:
        assert saved["rows"][kind]["status"].startswith("not run")
    table = (tmp_path / "table2_1.md").read_text()
    assert "| CIFAR" not in table and "| BF-TT-CNN | not run" in table and "88.64" in table
    assert (tmp_path / "fig2_2_ranks.png").stat().st_size > 1000
    assert (tmp_path / "predictive_vs_samples.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="--models"):
        exp_table2_1.main(["--quick", "--out", str(tmp_path), "--models", "MLP"])


def test_validation_split_holds_out_training_images_and_never_reads_the_test_set(tmp_path, monkeypatch):
    from ultratrain.host import data as host_data

    read = []
    real_loader = host_data.load_fashion_mnist

    def spying_loader(split, *args, **kwargs):
        read.append(split)
        return real_loader(split, *args, **kwargs)

    monkeypatch.setattr(host_data, "load_fashion_mnist", spying_loader)
    result = exp_table2_1.main(["--quick", "--out", str(tmp_path), "--models", "NN", "--train-limit", "600",
                                "--validation", "200", "--epochs", "1", "--samples", "2", "--burn-in", "1",
                                "--inner", "2", "--cosine", "--lr", "2e-3", "--no-progress"])
    row = result["rows"]["NN"]
    assert read == ["train"]
    assert row["train_size"] == 400 and row["test_size"] == 200
    assert result["evaluated_on"].startswith("validation") and result["map_config"]["cosine"] is True
    assert result["map_config"]["lr"] == 2e-3
    x, y, xv, yv = exp_table2_1._fashion_data(str(exp_table2_1.SUBSET_DIR), 600, 200)
    full_x, full_y, _, _ = exp_table2_1._fashion_data(str(exp_table2_1.SUBSET_DIR), 600)
    assert torch.equal(xv, full_x[-200:]) and torch.equal(yv, full_y[-200:]) and torch.equal(x, full_x[:400])
    with pytest.raises(ValueError, match="leaves no training images"):
        exp_table2_1._fashion_data(str(exp_table2_1.SUBSET_DIR), 600, 600)
    with pytest.raises(ValueError, match="--validation"):
        exp_table2_1.main(["--quick", "--out", str(tmp_path), "--models", "NN", "--validation", "-1"])


def test_cifar_path_runs_on_a_synthetic_image_set(tmp_path):
    # 16x16 images keep the test short; the loader and the CNN take any square size divisible by 4
    data = write_synthetic_cifar(tmp_path / "cifar-10-batches-py", n_train=160, n_test=60, side=16, seed=1)
    images, labels = load_cifar10(tmp_path, "train")
    assert images.shape == (160, 3, 16, 16) and labels.shape == (160,)
    out = tmp_path / "out"
    result = exp_table2_1.main(["--out", str(out), "--models", "", "--cifar", str(data), "--cifar-width-scale",
                                "0.0625", "--cifar-epochs", "5", "--samples", "4", "--burn-in", "1", "--inner", "2",
                                "--step-size", "1e-3", "--no-progress"])
    rows = result["rows"]
    for kind in CIFAR_KINDS:
        assert rows[kind]["status"] == "run"
        assert math.isfinite(rows[kind]["map"]["ll"]) and math.isfinite(rows[kind]["bayes"]["ll"])
    assert rows["CNN"]["map"]["accuracy"] > 30.0  # chance is 10 %
    assert rows["TT-CNN"]["parameters"] < rows["CNN"]["parameters"]
    assert len(rows["BF-TT-CNN"]["ranks"]) == 6  # 4 TT-conv + 2 TT-FC layers (Fig. 2.2c)
    for kind in FASHION_KINDS:
        assert kind not in rows or rows[kind]["status"] != "run"
    assert "| CNN |" in (out / "table2_1.md").read_text()


def test_cifar_loader_rejects_a_folder_without_batches(tmp_path):
    with pytest.raises(FileNotFoundError, match="batches"):
        load_cifar10(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, "valid")


def test_map_annealing_phase_stops_pruning_and_anneals_the_learning_rate_to_zero(monkeypatch):
    from ultratrain.sw.bayes import training

    torch.manual_seed(0)
    x, y = torch.randn(200, 784), torch.randint(0, 10, (200,))
    model = fashion_model("BF-TT-NN", seed=0)
    lrs, prunes = [], []
    real_step = torch.optim.Adam.step

    def spy_step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy_step)
    for layer_type in {type(layer) for _, layer in training.tensorized_layers(model)}:
        real_prune = layer_type.prune

        def spy_prune(self, *args, _real=real_prune, **kwargs):
            prunes.append(len(lrs))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(layer_type, "prune", spy_prune)
    cfg = training.MapConfig(epochs=3, anneal_epochs=2, batch_size=50, prune_from_epoch=1)
    history = training.train_map(model, x, y, cfg)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    # pruned after each of the 3 pruning epochs (4 steps each), never during the 2 annealing epochs
    assert sorted(set(prunes)) == [4, 8, 12]
    assert all("removed_slices" in h for h in history[:3]) and all("removed_slices" not in h for h in history[3:])
    assert lrs[:12] == [cfg.lr] * 12                                          # constant during the pruning run
    assert lrs[12] == pytest.approx(cfg.lr) and lrs[-1] < 0.05 * cfg.lr       # cosine from lr towards 0
    assert all(a >= b for a, b in zip(lrs[12:], lrs[13:])) and len(lrs) == 20
    with pytest.raises(ValueError, match="anneal_epochs"):
        training.train_map(model, x, y, training.MapConfig(epochs=1, anneal_epochs=-1))
    with pytest.raises(ValueError, match="choose one"):
        training.train_map(model, x, y, training.MapConfig(epochs=1, anneal_epochs=1, cosine=True))


@pytest.mark.parametrize("field, value", [("num_samples", 0), ("num_inner", 0), ("batch_size", 0),
                                          ("burn_in", -1), ("step_size", 0.0), ("diffusion", -1.0)])
def test_sghmc_config_rejects_settings_that_cannot_run(field, value):
    from ultratrain.sw.bayes.training import SghmcConfig

    with pytest.raises(ValueError, match=field):
        SghmcConfig(**{field: value})


def test_full_mode_gives_bf_tucker_its_own_sghmc_step_unless_the_step_is_set():
    from ultratrain.sw.bayes.training import SghmcConfig

    cfg = SghmcConfig()
    tucker = exp_table2_1.row_sghmc_config("BF-Tucker-NN", cfg, quick=False, step_overridden=False)
    assert tucker.step_size == exp_table2_1.ROW_STEP_SIZE["BF-Tucker-NN"] < cfg.step_size
    assert tucker.num_samples == cfg.num_samples and tucker.batch_size == cfg.batch_size
    assert exp_table2_1.row_sghmc_config("BF-TT-NN", cfg, quick=False, step_overridden=False) is cfg
    assert exp_table2_1.row_sghmc_config("BF-Tucker-NN", cfg, quick=True, step_overridden=False) is cfg
    assert exp_table2_1.row_sghmc_config("BF-Tucker-NN", cfg, quick=False, step_overridden=True) is cfg


def test_full_mode_runs_bf_tt_nn_longer_unless_the_epochs_are_set():
    from ultratrain.sw.bayes.training import MapConfig

    cfg = MapConfig(epochs=40)
    bf_tt = exp_table2_1.row_map_config("BF-TT-NN", cfg, quick=False, epochs_overridden=False)
    assert bf_tt.epochs == exp_table2_1.ROW_MAP_EPOCHS["BF-TT-NN"] > cfg.epochs
    assert bf_tt.lr == cfg.lr and bf_tt.prune_eps == cfg.prune_eps and bf_tt.batch_size == cfg.batch_size
    for kind in ("NN", "TT-NN", "Tucker-NN", "BF-Tucker-NN"):
        assert exp_table2_1.row_map_config(kind, cfg, quick=False, epochs_overridden=False) is cfg
    assert exp_table2_1.row_map_config("BF-TT-NN", cfg, quick=True, epochs_overridden=False) is cfg
    assert exp_table2_1.row_map_config("BF-TT-NN", cfg, quick=False, epochs_overridden=True) is cfg
