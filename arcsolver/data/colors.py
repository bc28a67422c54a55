"""Colour permutations for ARC augmentation.

A colour map is a length-10 uint8 array `m`: colour `c` becomes `m[c]`. By default black (0) is fixed, as in the
reference TRM (background stays background); `all_colors=True` permutes all ten. The reference writes a map into
the augmented puzzle name as its ten digits ("0528...") and undoes it with `argsort(m)`; so do we.
"""

from __future__ import annotations

import numpy as np

IDENTITY = np.arange(10, dtype=np.uint8)


def random_map(rng: np.random.Generator, all_colors: bool = False) -> np.ndarray:
    if all_colors:
        return rng.permutation(10).astype(np.uint8)
    return np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)


def apply(grid: np.ndarray, m: np.ndarray) -> np.ndarray:
    return m[grid]


def digits_to_map(s: str) -> np.ndarray:
    if len(s) != 10 or sorted(s) != list("0123456789"):
        raise ValueError(f"colour map must be a permutation of the ten digits, got {s!r}")
    return np.array([int(ch) for ch in s], dtype=np.uint8)
