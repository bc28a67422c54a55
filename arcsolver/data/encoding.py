"""The ARC token canvas, compatible with the reference TRM so its checkpoints can be imported.

A grid becomes a 30x30 canvas flattened row-major to 900 tokens: PAD = 0, EOS = 1, colour c -> token c + 2
(vocabulary 12). The grid sits at an offset (r, c); an EOS row runs below it and an EOS column to its right
(each only where it fits in the canvas); the corner cell below-right stays PAD. Input and output of one example
share one offset (translation augmentation); the test split always sits at the top-left.

Decoding goes the other way: `crop` recovers a grid from a top-left canvas the way the reference evaluator does
(largest top-left rectangle of colour tokens), and `strict=True` additionally demands a well-formed EOS boundary,
rejecting predictions whose shape is ambiguous.

The canvas side is 30 by default (the reference, needed to import its checkpoints); a smaller canvas (e.g. 10 for
tasks whose grids fit in 9x9) makes CPU runs on small tasks ~80x cheaper in attention. Kernels take the side as an
argument; the token vector's length tells it (`side = sqrt(len)`).
"""

from __future__ import annotations

import numba
import numpy as np

CANVAS = 30
PAD, EOS, COLOR0 = 0, 1, 2
VOCAB_SIZE = 12
IGNORE_LABEL = -100  # label of a position the loss skips (torch cross_entropy's default); the one definition


@numba.njit(cache=True)
def paint(canvas: np.ndarray, grid: np.ndarray, r0: int, c0: int) -> None:
    """Write `grid` (colours 0..9) into a zeroed square `canvas` at (r0, c0), with its EOS border."""
    side = canvas.shape[0]
    h, w = grid.shape
    for i in range(h):
        for j in range(w):
            canvas[r0 + i, c0 + j] = grid[i, j] + COLOR0
    if r0 + h < side:
        for j in range(w):
            canvas[r0 + h, c0 + j] = EOS
    if c0 + w < side:
        for i in range(h):
            canvas[r0 + i, c0 + w] = EOS


def encode_grid(grid: np.ndarray, offset: tuple[int, int] = (0, 0), canvas: int = CANVAS) -> np.ndarray:
    """One grid -> canvas*canvas uint8 tokens."""
    grid = np.asarray(grid, dtype=np.uint8)
    h, w = grid.shape
    r0, c0 = offset
    if not (1 <= h and 1 <= w and r0 >= 0 and c0 >= 0 and r0 + h <= canvas and c0 + w <= canvas):
        raise ValueError(f"grid {h}x{w} at offset {offset} does not fit the {canvas}x{canvas} canvas")
    out = np.zeros((canvas, canvas), dtype=np.uint8)
    paint(out, grid, r0, c0)
    return out.reshape(-1)


def canvas_side(n_tokens: int) -> int:
    side = int(round(n_tokens ** 0.5))
    if side * side != n_tokens:
        raise ValueError(f"{n_tokens} tokens is not a square canvas")
    return side


@numba.njit(cache=True)
def crop_shape(tokens: np.ndarray) -> tuple[int, int]:
    """Reference crop: the largest-area top-left rectangle whose rows start with runs of colour tokens.

    `tokens` is a flat canvas (900 tokens for 30x30). Returns (0, 0) when the top-left cell is not a colour.
    """
    side = np.int64(np.sqrt(tokens.shape[0]) + 0.5)
    best_area, best_h, best_w = 0, 0, 0
    ncol = side
    for r in range(side):
        c = 0
        while c < ncol:
            t = tokens[r * side + c]
            if t < COLOR0 or t > COLOR0 + 9:
                break
            c += 1
        ncol = c
        if ncol == 0:
            break
        area = (r + 1) * ncol
        if area > best_area:
            best_area, best_h, best_w = area, r + 1, ncol
    return best_h, best_w


@numba.njit(cache=True)
def strict_shape(tokens: np.ndarray) -> tuple[int, int]:
    """Shape of a well-formed top-left grid, or (0, 0) if the canvas is not one.

    Well-formed: a h x w block of colour tokens at the top-left, EOS on row h under it (if h < 30) and on column w
    right of it (if w < 30), nothing but PAD or EOS elsewhere in those bounds' complement being required.
    """
    side = np.int64(np.sqrt(tokens.shape[0]) + 0.5)
    w = 0
    while w < side and COLOR0 <= tokens[w] <= COLOR0 + 9:
        w += 1
    if w == 0:
        return 0, 0
    h = 0
    while h < side and COLOR0 <= tokens[h * side] <= COLOR0 + 9:
        h += 1
    for i in range(h):
        for j in range(w):
            t = tokens[i * side + j]
            if t < COLOR0 or t > COLOR0 + 9:
                return 0, 0
        if w < side and tokens[i * side + w] != EOS:
            return 0, 0
    if h < side:
        for j in range(w):
            if tokens[h * side + j] != EOS:
                return 0, 0
    return h, w


def crop(tokens: np.ndarray, strict: bool = False) -> np.ndarray | None:
    """A flat square canvas of tokens -> grid (uint8 colours), or None if no grid can be read."""
    tokens = np.ascontiguousarray(np.asarray(tokens).reshape(-1)).astype(np.int64)
    side = canvas_side(tokens.shape[0])
    h, w = strict_shape(tokens) if strict else crop_shape(tokens)
    if h == 0:
        return None
    return (tokens.reshape(side, side)[:h, :w] - COLOR0).astype(np.uint8)
