"""The ultratrain CLI: a short training run on the committed subset, clear errors, the command registry."""

import json

import pytest

from ultratrain.host import cli
from ultratrain.host.model import parse_ranks

SUBSET = "tests/data/fashion-mnist-subset"


def test_short_run_on_the_subset_learns(tmp_path, capsys):
    """One epoch on the 3000-image subset, fixed point on the emulated device: well above chance (10 %)."""
    rc = cli.main(["train", "--data", SUBSET, "--epochs", "1", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1
    m = metrics[0]
    assert m["test_acc"] > 0.5 and m["train_acc"] > 0.3
    assert m["ranks"] == [[16, 16, 16], [16]] and m["params"] == 14800 and m["memory_bits"] == 61312
    assert (tmp_path / "checkpoint.npz").exists() and (tmp_path / "curves.png").exists()
    assert json.loads((tmp_path / "config.json").read_text())["precision"] == "fixed"
    assert "final epoch 1: test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--ranks", "20"], "multiple of 16"),
    (["--ranks", "16,16/16,16"], "layer 0 has 3 internal ranks, got 2"),
    (["--ranks", "16/16/16"], "3 layer groups"),
    (["--ranks", "sixteen"], "is not an int"),
    (["--ranks", "48"], "weight-memory words"),
    (["--backend", "nope"], "unknown"),
    (["--precision", "float", "--backend", "pynq"], "only on the emulated backend"),
    (["--resume"], "no checkpoint"),
    (["--lr", "-1"], "--lr"),
])
def test_bad_options_give_clear_errors(tmp_path, capsys, argv, message):
    rc = cli.main(["train", "--data", SUBSET, "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress",
                   "--train-limit", "32", "--test-limit", "10", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert "ultratrain train: error:" in err and message in err


def test_missing_data_says_how_to_get_it(tmp_path, capsys):
    rc = cli.main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


def test_argparse_rejects_non_positive_epochs(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--epochs", "0"])
    assert "--epochs" in capsys.readouterr().err


def test_command_registry_dispatches(capsys):
    seen = []
    cli.register_command("hello-test", "say hello", lambda p: p.add_argument("--name", default="x"),
                         lambda args: seen.append(args.name) or 7)
    try:
        assert cli.main(["hello-test", "--name", "board"]) == 7
        assert seen == ["board"]
        with pytest.raises(ValueError, match="already registered"):
            cli.register_command("hello-test", "again", lambda p: None, lambda a: 0)
    finally:
        cli.COMMANDS.pop("hello-test")


def test_parse_ranks_forms():
    assert parse_ranks("32", [3, 1]) == [(32, 32, 32), (32,)]
    assert parse_ranks("16,32,16/48", [3, 1]) == [(16, 32, 16), (48,)]
    assert parse_ranks("32/16", [3, 1]) == [(32, 32, 32), (16,)]
    with pytest.raises(ValueError, match="multiple of 16"):
        parse_ranks("0", [3, 1])
