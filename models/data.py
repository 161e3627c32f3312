"""Real data for the examples and tests, loaded with numpy only (no interop, no download).

`load_digits()` reads the 8x8 handwritten digits shipped in models/assets/digits.csv.gz: the test part of the UCI
"Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak, 1998; CC BY 4.0), as bundled with scikit-learn."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["DIGITS_PATH", "load_digits", "train_test_split"]

DIGITS_PATH = Path(__file__).resolve().parent / "assets" / "digits.csv.gz"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """X: float32 (1797, 64), pixel counts 0..16 scaled to [0, 1]; y: int64 (1797,), the digit 0..9."""
    with gzip.open(DIGITS_PATH, "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if raw.shape != (1797, 65):
        raise ValueError(f"{DIGITS_PATH}: expected 1797 rows of 64 pixels and a label, got shape {raw.shape}")
    return (raw[:, :64] / 16.0).astype(np.float32), raw[:, 64].copy()


def train_test_split(X: np.ndarray, y: np.ndarray, test_size: float = 0.2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test) from one seeded shuffle: the same split on every machine."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = round(len(X) * test_size)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]
