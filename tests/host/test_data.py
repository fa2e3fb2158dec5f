"""Fashion-MNIST loading (host/data.py): the committed subset, padding, and clear errors."""

import gzip

import numpy as np
import pytest

from ultratrain.host.data import DatasetError, load_fashion_mnist, pad_to_28x32, write_idx

SUBSET = "tests/data/fashion-mnist-subset"


def test_subset_loads_and_pads():
    train = load_fashion_mnist("train", data_dir=SUBSET)
    test = load_fashion_mnist("test", data_dir=SUBSET, limit=100)
    assert train.images.shape == (3000, 28, 28) and train.images.dtype == np.uint8
    assert len(test) == 100 and set(np.unique(train.labels)) == set(range(10))
    padded = pad_to_28x32(train.images[:5])
    assert padded.shape == (5, 896)
    rows = padded.reshape(5, 28, 32)
    assert np.array_equal(rows[:, :, :28], train.images[:5]) and not rows[:, :, 28:].any()


def _write_split(folder, n_train=20, n_test=10, images_train=None):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz",
              images_train if images_train is not None else rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n_train))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n_test))


def test_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", data_dir=tmp_path)


def test_truncated_and_corrupt_files_are_reported(tmp_path):
    _write_split(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        load_fashion_mnist("train", data_dir=tmp_path)
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        load_fashion_mnist("train", data_dir=tmp_path)
    path.write_bytes(gzip.compress(b"\x00\x00\x0c\x03" + bytes(12)))
    with pytest.raises(DatasetError, match="bad magic"):
        load_fashion_mnist("train", data_dir=tmp_path)


def test_full_size_file_with_wrong_content_fails_the_checksum(tmp_path):
    _write_split(tmp_path, n_test=10000)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_fashion_mnist("test", data_dir=tmp_path)


def test_bad_split_name():
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", data_dir=SUBSET)


def test_download_fills_the_data_folder(tmp_path, monkeypatch):
    """--download with --data DIR fetches the missing files into DIR (here from a file:// mirror)."""
    from ultratrain.host import data as data_module
    mirror = tmp_path / "mirror"
    _write_split(mirror)
    monkeypatch.setattr(data_module, "MIRROR", mirror.as_uri() + "/")
    target = tmp_path / "data"
    split = load_fashion_mnist("test", data_dir=target, download=True)
    assert len(split) == 10 and len(list(target.glob("*.gz"))) == 4
    monkeypatch.setattr(data_module, "MIRROR", (tmp_path / "nothing").as_uri() + "/")
    with pytest.raises(DatasetError, match="could not download"):
        load_fashion_mnist("test", data_dir=tmp_path / "other", download=True)
