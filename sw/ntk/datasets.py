"""Data for the chapter-4 experiments: Fashion-MNIST on the unit sphere (Assumption 4.3) and the UCI-type
classification sets of Table 4.1 (scikit-learn's bundled copies, plus any user CSV).

The thesis' Table 4.1 uses 90 UCI sets (the collection of Arora et al./Geifman et al.), which are not on our
machines; scikit-learn ships four UCI classification sets (iris, wine, breast cancer, optical digits) and the
diabetes regression set, which is turned into a binary task by thresholding its target at the median.
Further sets come from CSV files (:func:`load_csv_dataset`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["BUNDLED_UCI", "load_bundled_uci", "load_csv_dataset", "fashion_mnist_on_sphere"]

BUNDLED_UCI = ("iris", "wine", "breast_cancer", "digits", "diabetes_binary")


def load_bundled_uci(name: str):
    """One of scikit-learn's bundled UCI classification sets.

    Parameters
    ----------
    name : str
        One of :data:`BUNDLED_UCI`.

    Returns
    -------
    (X, y) : (numpy.ndarray float64 (N, d), numpy.ndarray int64 (N,))
        Labels are 0 .. n_classes - 1.
    """
    from sklearn import datasets

    loaders = {"iris": datasets.load_iris, "wine": datasets.load_wine,
               "breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}
    if name == "diabetes_binary":
        x, target = datasets.load_diabetes(return_X_y=True)
        # Disease progression above/below its median: a balanced two-class task.
        return x.astype(float), (target > np.median(target)).astype(np.int64)
    if name not in loaders:
        raise ValueError(f"name must be one of {BUNDLED_UCI}, got {name!r}")
    x, y = loaders[name](return_X_y=True)
    return x.astype(float), np.unique(y, return_inverse=True)[1].astype(np.int64)


def load_csv_dataset(path, label_column: int | str = -1):
    """A classification set from a CSV file: numeric feature columns and one label column.

    Parameters
    ----------
    path : str or Path
        CSV file; a first row that is not all numbers (apart from the label) is taken as a header.
    label_column : int or str, default -1
        Index (negative counts from the end) or header name of the label column; labels may be any strings.

    Returns
    -------
    (X, y) : (numpy.ndarray float64 (N, d), numpy.ndarray int64 (N,))
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CSV file not found: {path}")
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise ValueError(f"{path}: need at least two data rows")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"{path}: need at least one feature column and one label column")

    def is_number(cell):
        try:
            float(cell)
            return True
        except ValueError:
            return False

    header = None
    if isinstance(label_column, str):
        header = [cell.strip() for cell in rows[0]]
        if label_column not in header:
            raise ValueError(f"{path}: label_column {label_column!r} not in header {header}")
        label_index = header.index(label_column)
        rows = rows[1:]
    else:
        label_index = label_column % width if -width <= label_column < width else None
        if label_index is None:
            raise ValueError(f"label_column {label_column} out of range for {width} columns")
        first_features = [cell for i, cell in enumerate(rows[0]) if i != label_index]
        if not all(is_number(cell) for cell in first_features):
            rows = rows[1:]
    features, labels = [], []
    for number, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise ValueError(f"{path}: row {number} has {len(row)} columns, expected {width}")
        try:
            features.append([float(cell) for i, cell in enumerate(row) if i != label_index])
        except ValueError as err:
            raise ValueError(f"{path}: row {number} has a non-numeric feature ({err})") from None
        labels.append(row[label_index].strip())
    x = np.asarray(features, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: features must be finite numbers (no NaN/inf)")
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"{path}: the label column has a single class")
    return x, y.astype(np.int64)


def fashion_mnist_on_sphere(n_train: int | None = None, n_test: int | None = None, *, data_dir=None, seed: int = 0):
    """Fashion-MNIST as unit vectors: pixels / 255, minus the mean training image, divided by the norm.

    Parameters
    ----------
    n_train, n_test : int, optional
        Random subsets (without replacement) of the training and test split; None = all.
    data_dir : path, optional
        Passed to :func:`ultratrain.host.data.load_fashion_mnist` (tests use the committed subset).
    seed : int
        Seed of the subset draw.

    Returns
    -------
    (x_train, y_train, x_test, y_test) : float32 (N, 784) arrays with unit rows and int64 labels.
    """
    from ultratrain.host.data import load_fashion_mnist

    train = load_fashion_mnist("train", data_dir=data_dir)
    test = load_fashion_mnist("test", data_dir=data_dir)
    rng = np.random.default_rng(seed)

    def pick(split, n, name):
        if n is None:
            return np.arange(len(split))
        if n < 1 or n > len(split):
            raise ValueError(f"{name} must be in [1, {len(split)}], got {n}")
        return np.sort(rng.choice(len(split), size=n, replace=False))

    itr, ite = pick(train, n_train, "n_train"), pick(test, n_test, "n_test")
    xtr = train.images[itr].reshape(len(itr), -1).astype(np.float32) / 255
    xte = test.images[ite].reshape(len(ite), -1).astype(np.float32) / 255
    mean = xtr.mean(axis=0)

    def to_sphere(x):
        x = x - mean
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return (to_sphere(xtr), train.labels[itr].astype(np.int64), to_sphere(xte), test.labels[ite].astype(np.int64))
