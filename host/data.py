"""Fashion-MNIST from its IDX files (thesis section 3.6.1), numpy only so it runs on the board's PYNQ image.

Where the files are looked for, in order:

1. the ``data_dir`` argument (the CLI's ``--data``),
2. ``$ULTRATRAIN_DATA``,
3. Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``),
4. ``~/.cache/ultratrain/fashion-mnist``, downloaded there from the official mirror when ``download=True``
   (with ``data_dir`` given, the download goes into ``data_dir`` instead; ``ultratrain train --download``).

Each file may be gzip-compressed or raw. Integrity is checked on the *decompressed* bytes, because the same
data is distributed with different gzip streams (Debian recompresses): a full-size file must match the
official SHA-256; a file of another length (for example the subset committed under ``tests/data`` for the
tests) is accepted after the structural checks (magic number, header sizes against the byte length).
Anything else raises :class:`DatasetError` with a message that says how to get the data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DatasetError", "Split", "load_fashion_mnist", "pad_to_28x32", "find_data_dir", "write_idx",
           "CLASS_NAMES"]

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path.home() / ".cache" / "ultratrain" / "fashion-mnist"
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# SHA-256 of the decompressed official files.
_FILES = {
    ("train", "images"): ("train-images-idx3-ubyte",
                          "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    ("train", "labels"): ("train-labels-idx1-ubyte",
                          "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    ("test", "images"): ("t10k-images-idx3-ubyte",
                         "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte",
                         "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
_FULL_COUNT = {"train": 60000, "test": 10000}

_HOW_TO_GET = (
    "Get Fashion-MNIST with one of:\n"
    "  - Debian/Ubuntu: apt-get install dataset-fashion-mnist\n"
    "  - pass --data DIR (or set ULTRATRAIN_DATA) pointing at a folder with the four IDX files\n"
    "    (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz],\n"
    "    t10k-labels-idx1-ubyte[.gz])\n"
    f"  - allow the download (online machines): ultratrain train --download fetches them from\n"
    f"    {MIRROR} into {CACHE_DIR} (or into the --data folder)")


class DatasetError(RuntimeError):
    """A dataset file is missing, truncated or corrupt; the message says which and how to get it."""


@dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 (N, 28, 28), ``labels`` uint8 (N,)."""
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _candidate_dirs(data_dir) -> list[Path]:
    dirs = []
    if data_dir is not None:
        return [Path(data_dir)]
    if os.environ.get("ULTRATRAIN_DATA"):
        dirs.append(Path(os.environ["ULTRATRAIN_DATA"]))
    dirs += [DEBIAN_DIR, CACHE_DIR]
    return dirs


def _file_in(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def find_data_dir(data_dir=None, download: bool = False) -> Path:
    """The first folder holding all four files; if none does and ``download`` is set, download the missing
    files into ``data_dir`` (or the cache folder) and return that."""
    for directory in _candidate_dirs(data_dir):
        if all(_file_in(directory, stem) for stem, _ in _FILES.values()):
            return directory
    if download:
        target = CACHE_DIR if data_dir is None else Path(data_dir)
        _download(target)
        return target
    looked = ", ".join(str(d) for d in _candidate_dirs(data_dir))
    missing_dir = _candidate_dirs(data_dir)[0]
    missing = [stem for stem, _ in _FILES.values() if not _file_in(missing_dir, stem)]
    raise DatasetError(f"Fashion-MNIST not found (looked in: {looked}; missing in {missing_dir}: "
                       f"{', '.join(missing)}).\n{_HOW_TO_GET}")


def _download(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, _ in _FILES.values():
        target = directory / (stem + ".gz")
        if _file_in(directory, stem):
            continue
        tmp = target.with_suffix(".part")
        try:
            urllib.request.urlretrieve(MIRROR + stem + ".gz", tmp)
        except OSError as err:
            raise DatasetError(f"could not download {stem}.gz ({err}).\n{_HOW_TO_GET}") from err
        tmp.rename(target)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path} is not readable ({err}); it is corrupt or truncated.\n{_HOW_TO_GET}") from err


def _parse_idx(raw: bytes, path: Path, ndim: int) -> np.ndarray:
    # IDX: two zero bytes, type code 0x08 (uint8), number of dimensions, then big-endian uint32 sizes.
    header = 4 + 4 * ndim
    if len(raw) < header or raw[0:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] != ndim:
        raise DatasetError(f"{path}: not a uint8 IDX file with {ndim} dimension(s) (bad magic number).\n"
                           f"{_HOW_TO_GET}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DatasetError(f"{path}: header says {shape} ({expected} bytes) but the file has {len(raw)} "
                           f"bytes: truncated or corrupt.\n{_HOW_TO_GET}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _load_array(directory: Path, split: str, kind: str) -> np.ndarray:
    stem, sha256 = _FILES[(split, kind)]
    path = _file_in(directory, stem)
    if path is None:
        raise DatasetError(f"{directory / stem}[.gz] is missing.\n{_HOW_TO_GET}")
    raw = _read_bytes(path)
    array = _parse_idx(raw, path, 3 if kind == "images" else 1)
    if len(array) == _FULL_COUNT[split] and hashlib.sha256(raw).hexdigest() != sha256:
        raise DatasetError(f"{path}: checksum mismatch (SHA-256 of the decompressed file is not the official "
                           f"one): the file is corrupt.\n{_HOW_TO_GET}")
    return array


def load_fashion_mnist(split: str = "train", data_dir=None, download: bool = False,
                       limit: int | None = None) -> Split:
    """Load one split (``"train"`` or ``"test"``); ``limit`` keeps the first ``limit`` samples."""
    if split not in _FULL_COUNT:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    directory = find_data_dir(data_dir, download=download)
    images = _load_array(directory, split, "images")
    labels = _load_array(directory, split, "labels")
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"{directory}: {split} images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise DatasetError(f"{directory}: {len(images)} {split} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{directory}: {split} labels outside 0..9: the file is corrupt")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(images=images, labels=labels)


def pad_to_28x32(images: np.ndarray) -> np.ndarray:
    """Zero-pad 28x28 images to 28x32 (thesis 3.6.1) so the input factors as 7x4x2x16; returns (N, 896)."""
    if images.shape[-2:] != (28, 28):
        raise ValueError(f"expected (..., 28, 28) images, got {images.shape}")
    padded = np.zeros(images.shape[:-1] + (32,), dtype=images.dtype)
    padded[..., :28] = images
    return padded.reshape(images.shape[:-2] + (28 * 32,))


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (used to make the committed test subset)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header + array.tobytes())
