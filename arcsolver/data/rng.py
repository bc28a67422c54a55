"""The seeded random stream of every numba kernel in data/: splitmix64, and a Fisher-Yates shuffle drawn from it.

splitmix64 (Steele, Lea & Flood 2014) is a 64-bit counter hashed by two multiply-xorshift rounds: one add and a few
multiplies per draw, no state beyond one uint64, so a kernel can carry its stream as a plain integer and a seed gives
the same numbers on every machine and numba version. Integers in [0, n) are drawn as `x % n` (the modulo bias is
below 2^-50 for the sizes used here, and changing it would change every generated set and augmentation).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def splitmix64(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """(next state, draw)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def shuffle_range(a, lo, hi, state: np.uint64) -> np.uint64:
    """Shuffle a[lo:hi] in place (Fisher-Yates from the top, one draw per position) and return the next state."""
    for i in range(hi - lo - 1, 0, -1):
        state, r = splitmix64(state)
        j = np.int64(r % np.uint64(i + 1))
        t = a[lo + i]
        a[lo + i] = a[lo + j]
        a[lo + j] = t
    return state


def stream_seed(seed: int, k: int) -> int:
    """The seed of the k-th item of a generator seeded by `seed` (odd, < 2^62): Sudoku and maze draw item k from it,
    so item k does not depend on how many items were rejected before it."""
    return int(splitmix64(np.uint64(seed * 1_000_003 + k))[1] >> np.uint64(2)) | 1
