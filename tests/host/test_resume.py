"""Checkpoints: an interrupted run resumed with --resume ends exactly where the uninterrupted run ends
(same parameters, optimizer and scale state, metrics); checkpoint files are written atomically."""

import json

import numpy as np
import pytest

from ultratrain.host.cli import load_training_data
from ultratrain.host.trainer import CheckpointError, TrainConfig, Trainer

SUBSET = "tests/data/fashion-mnist-subset"
DETERMINISTIC = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "ranks", "params",
                 "memory_bits", "prior", "pruned")


@pytest.fixture(scope="module")
def data():
    return load_training_data(SUBSET, train_limit=64, test_limit=40)


def _config():
    # prune_threshold 0.9: the random initial slices differ enough that some are pruned after epoch 1
    return TrainConfig(precision="fixed", prior=True, epochs=2, prune_threshold=0.9, train_limit=64,
                       test_limit=40, eval_batch=40)


def test_resume_reproduces_the_uninterrupted_run(tmp_path, data):
    straight = Trainer(_config(), data, out=tmp_path / "a", progress=False, log=lambda m: None)
    h_straight = straight.fit()

    first = Trainer(_config(), data, out=tmp_path / "b", progress=False, log=lambda m: None)
    first.fit(epochs=1)
    assert not list((tmp_path / "b").glob("*.tmp"))
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 1
    resumed = Trainer(_config(), data, out=tmp_path / "b", progress=False, log=lambda m: None)
    h_resumed = resumed.fit(resume=True)

    assert h_straight[0]["pruned"], "the test should exercise pruning"
    assert [[m[k] for k in DETERMINISTIC] for m in h_straight] == [[m[k] for k in DETERMINISTIC] for m in h_resumed]
    a, b = straight.model.state_arrays(), resumed.model.state_arrays()
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert straight.session.state_dict() == resumed.session.state_dict()
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert (tmp_path / "b" / "curves.png").stat().st_size > 1000


def test_resume_refuses_other_configuration_and_missing_checkpoint(tmp_path, data):
    tr = Trainer(_config(), data, out=tmp_path, progress=False, log=lambda m: None)
    tr.fit(epochs=1)
    other = TrainConfig(**{**_config().to_dict(), "lr": 1e-3})
    with pytest.raises(CheckpointError, match="lr"):
        Trainer(other, data, out=tmp_path, progress=False).fit(resume=True)
    with pytest.raises(CheckpointError, match="--resume"):
        Trainer(_config(), data, out=tmp_path, progress=False).fit()          # would overwrite the run
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(_config(), data, out=tmp_path / "empty", progress=False).fit(resume=True)
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Trainer(_config(), data, out=tmp_path, progress=False).fit(resume=True)
