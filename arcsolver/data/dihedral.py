"""The 8 dihedral transforms of a grid (the symmetries of the square) and their inverses.

Transform ids follow the reference TRM so augmented puzzle names ("task|||t3|||0...") mean the same thing here:
0 identity, 1 rot90 (counter-clockwise, `np.rot90(k=1)`), 2 rot180, 3 rot270, 4 flip left-right,
5 flip up-down, 6 transpose, 7 anti-transpose (`fliplr(rot90(g))`). `INVERSE[t]` undoes `t`.

Besides the numpy versions for single grids there are numba kernels that map an output cell to its source cell,
used by the batch encoder and the vote/undo stage where per-grid numpy calls would dominate.
"""

from __future__ import annotations

import numba
import numpy as np

NUM_TRANSFORMS = 8
INVERSE = np.array([0, 3, 2, 1, 4, 5, 6, 7], dtype=np.int64)


def transform(grid: np.ndarray, tid: int) -> np.ndarray:
    """Apply dihedral transform `tid` (0..7) to a 2-D array; returns a contiguous copy."""
    if tid == 0:
        out = grid
    elif tid == 1:
        out = np.rot90(grid, 1)
    elif tid == 2:
        out = np.rot90(grid, 2)
    elif tid == 3:
        out = np.rot90(grid, 3)
    elif tid == 4:
        out = grid[:, ::-1]
    elif tid == 5:
        out = grid[::-1, :]
    elif tid == 6:
        out = grid.T
    elif tid == 7:
        out = np.rot90(grid, 1)[:, ::-1]
    else:
        raise ValueError(f"dihedral transform id must be 0..7, got {tid}")
    return np.ascontiguousarray(out)


def inverse(grid: np.ndarray, tid: int) -> np.ndarray:
    """Undo `transform(., tid)`."""
    return transform(grid, int(INVERSE[tid]))


@numba.njit(cache=True, inline="always")
def out_shape(tid: int, h: int, w: int) -> tuple[int, int]:
    if tid == 1 or tid == 3 or tid == 6 or tid == 7:
        return w, h
    return h, w


@numba.njit(cache=True, inline="always")
def source_cell(tid: int, i: int, j: int, h: int, w: int) -> tuple[int, int]:
    """Cell of the source grid (h x w) that lands at (i, j) of the transformed grid."""
    if tid == 0:
        return i, j
    if tid == 1:
        return j, w - 1 - i
    if tid == 2:
        return h - 1 - i, w - 1 - j
    if tid == 3:
        return h - 1 - j, i
    if tid == 4:
        return i, w - 1 - j
    if tid == 5:
        return h - 1 - i, j
    if tid == 6:
        return j, i
    return h - 1 - j, w - 1 - i
