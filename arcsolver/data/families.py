"""Procedural ARC task families: each a small parameterised program that draws input grids and computes outputs.

A family has two parts. `params(rng, max_size)` draws the *task-level* parameters (which axis to flip, which colour
to paint, which direction things fall), so two tasks of one family differ in their rule, not only in their grids.
`pair(rng, params, max_size)` draws one input grid and computes its output under those parameters, or returns None
when the draw is unusable (the caller draws again). Grids are uint8 arrays, colour 0 is the background, every side
stays within 1..max_size (inputs and outputs). Families whose rule can leave a grid unchanged say so
(`identity_ok`); the others never emit a pair whose output equals its input.

The idea is RE-ARC's (procedural generators per ARC concept), the code is ours and deliberately small: objects are
random 4-connected sprites placed with a one-cell margin around their bounding boxes, so every object is its own
connected component (also under 8-connectivity) and no two bounding boxes overlap; rules that need objects read
them from the construction, never by re-segmenting the grid.

Registry: `FAMILIES` maps name -> `Family`; names are stable (they appear in task ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

MIN_SIZE = 6  # the smallest --max-size every family can work with

Grid = np.ndarray
Pair = tuple[Grid, Grid]


@dataclass(frozen=True)
class Family:
    name: str
    group: str  # geometry | colour | objects | counting
    doc: str
    params: Callable[[np.random.Generator, int], dict]
    pair: Callable[[np.random.Generator, dict, int], Pair | None]
    identity_ok: bool = False


FAMILIES: dict[str, Family] = {}


def family(name: str, group: str, doc: str, params: Callable, identity_ok: bool = False):
    def register(pair_fn: Callable) -> Callable:
        if name in FAMILIES:
            raise ValueError(f"family {name} registered twice")
        FAMILIES[name] = Family(name, group, doc, params, pair_fn, identity_ok)
        return pair_fn
    return register


# --------------------------------------------------------------------------------------------- drawing helpers
def _int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (inclusive), hi clamped up to lo."""
    return int(rng.integers(lo, max(lo, hi) + 1))


def _colours(rng: np.random.Generator, k: int, exclude: tuple = ()) -> list[int]:
    pool = [c for c in range(1, 10) if c not in exclude]
    return [int(c) for c in rng.choice(pool, size=k, replace=False)]


def _noise(rng: np.random.Generator, h: int, w: int, colours: list[int], density: float) -> Grid:
    g = rng.choice(np.array(colours, dtype=np.uint8), size=(h, w))
    g[rng.random((h, w)) >= density] = 0
    return g


def _sprite(rng: np.random.Generator, max_h: int, max_w: int, cells: int) -> Grid:
    """A random 4-connected bool mask of `cells` cells (fewer if the box is too small), cropped to its box."""
    max_h, max_w = max(1, max_h), max(1, max_w)
    cells = max(1, min(cells, max_h * max_w))
    m = np.zeros((max_h, max_w), dtype=bool)
    r, c = _int(rng, 0, max_h - 1), _int(rng, 0, max_w - 1)
    m[r, c] = True
    frontier = [(r, c)]
    n = 1
    while n < cells:
        cand = []
        for (i, j) in frontier:
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                a, b = i + di, j + dj
                if 0 <= a < max_h and 0 <= b < max_w and not m[a, b]:
                    cand.append((a, b))
        if not cand:
            break
        a, b = cand[int(rng.integers(len(cand)))]
        m[a, b] = True
        frontier.append((a, b))
        n += 1
    rows, cols = np.nonzero(m)
    return m[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _place(rng: np.random.Generator, h: int, w: int, masks: list[Grid], margin: int = 1,
           tries: int = 40) -> list[tuple[int, int]] | None:
    """Top-left corners for `masks` in an h x w grid with `margin` free cells between bounding boxes, or None."""
    taken = np.zeros((h, w), dtype=bool)
    spots = []
    for m in masks:
        mh, mw = m.shape
        if mh > h or mw > w:
            return None
        for _ in range(tries):
            r, c = _int(rng, 0, h - mh), _int(rng, 0, w - mw)
            r0, c0, r1, c1 = max(0, r - margin), max(0, c - margin), min(h, r + mh + margin), min(w, c + mw + margin)
            if not taken[r0:r1, c0:c1].any():
                taken[r:r + mh, c:c + mw] = True
                # the margin is reserved through the neighbour's own check (it looks `margin` around itself)
                spots.append((r, c))
                break
        else:
            return None
    return spots


def _objects_grid(rng: np.random.Generator, h: int, w: int, masks: list[Grid], colours: list[int],
                  margin: int = 1) -> tuple[Grid, list[tuple[int, int]]] | None:
    spots = _place(rng, h, w, masks, margin)
    if spots is None:
        return None
    g = np.zeros((h, w), dtype=np.uint8)
    for m, (r, c), col in zip(masks, spots, colours):
        g[r:r + m.shape[0], c:c + m.shape[1]][m] = col
    return g, spots


def _solid_rects(rng: np.random.Generator, S: int, sides: tuple[int, int], min_grid: int,
                 colours: Callable[[int], list[int]]) -> tuple[Grid, list[Grid], list[tuple[int, int]]] | None:
    """1-3 solid rectangles with sides in `sides`, coloured by `colours(n)` (drawn after the sizes), placed apart on a
    grid with sides in [min_grid, S]: (grid, masks, spots), or None when they do not fit."""
    masks = [np.ones(_size(rng, *sides), dtype=bool) for _ in range(_int(rng, 1, 3))]
    cols = colours(len(masks))
    made = _objects_grid(rng, *_size(rng, min_grid, S), masks, cols)
    return None if made is None else (made[0], masks, made[1])


def _size(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    return _int(rng, lo, hi), _int(rng, lo, hi)


def _choice(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


# --------------------------------------------------------------------------------------------- geometry
@family("flip", "geometry", "mirror the grid left-right or up-down",
        lambda rng, S: {"axis": _choice(rng, ["lr", "ud"]), "colours": _colours(rng, _int(rng, 2, 4))})
def _flip(rng, p, S):
    g = _noise(rng, *_size(rng, 2, S), p["colours"], rng.uniform(0.3, 0.7))
    return g, (g[:, ::-1] if p["axis"] == "lr" else g[::-1, :]).copy()


@family("rotate", "geometry", "rotate the grid by 90, 180 or 270 degrees counter-clockwise",
        lambda rng, S: {"k": _int(rng, 1, 3), "colours": _colours(rng, _int(rng, 2, 4))})
def _rotate(rng, p, S):
    g = _noise(rng, *_size(rng, 2, S), p["colours"], rng.uniform(0.3, 0.7))
    return g, np.rot90(g, p["k"]).copy()


@family("transpose", "geometry", "reflect the grid about its main or anti diagonal",
        lambda rng, S: {"diagonal": _choice(rng, ["main", "anti"]), "colours": _colours(rng, _int(rng, 2, 4))})
def _transpose(rng, p, S):
    g = _noise(rng, *_size(rng, 2, S), p["colours"], rng.uniform(0.3, 0.7))
    return g, (g.T if p["diagonal"] == "main" else g[::-1, ::-1].T).copy()


def _translate_params(rng, S):
    while True:
        dy, dx = _int(rng, -2, 2), _int(rng, -2, 2)
        if dy or dx:
            return {"dy": dy, "dx": dx, "wrap": bool(rng.random() < 0.5), "colours": _colours(rng, _int(rng, 1, 3))}


@family("translate", "geometry", "shift everything by (dy, dx); cells leaving the grid wrap around or vanish",
        _translate_params)
def _translate(rng, p, S):
    g = _noise(rng, *_size(rng, 4, S), p["colours"], rng.uniform(0.15, 0.4))
    if p["wrap"]:
        out = np.roll(g, (p["dy"], p["dx"]), axis=(0, 1))
    else:
        h, w = g.shape
        out = np.zeros_like(g)
        dy, dx = p["dy"], p["dx"]
        out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = g[max(0, -dy):h - max(0, dy),
                                                                         max(0, -dx):w - max(0, dx)]
    return g, out.copy()


def _small_and_blocks(rng, p, S):
    """A random grid and the same grid with every cell a k x k block (None when k blocks cannot fit twice in S)."""
    k = p["k"]
    if S // k < 2:
        return None
    small = _noise(rng, *_size(rng, 2, S // k), p["colours"], rng.uniform(0.4, 0.8))
    return small, np.kron(small, np.ones((k, k), dtype=np.uint8))


@family("scale_up", "geometry", "every cell becomes a k x k block",
        lambda rng, S: {"k": _int(rng, 2, 3), "colours": _colours(rng, _int(rng, 2, 4))})
def _scale_up(rng, p, S):
    return _small_and_blocks(rng, p, S)


@family("scale_down", "geometry", "a grid of k x k blocks shrinks to one cell per block",
        lambda rng, S: {"k": _int(rng, 2, 3), "colours": _colours(rng, _int(rng, 2, 4))})
def _scale_down(rng, p, S):
    pair = _small_and_blocks(rng, p, S)
    return None if pair is None else pair[::-1]


@family("crop_object", "geometry", "crop to the bounding box of the largest (or smallest) object",
        lambda rng, S: {"pick": _choice(rng, ["largest", "smallest"]), "colours": _colours(rng, _int(rng, 1, 3))})
def _crop_object(rng, p, S):
    n = _int(rng, 2, 4)
    sizes = sorted(rng.choice(np.arange(1, 9), size=n, replace=False).tolist())
    masks = [_sprite(rng, 4, 4, s) for s in sizes]
    if len({int(m.sum()) for m in masks}) < n:
        return None
    made = _objects_grid(rng, *_size(rng, 6, S), masks, [_choice(rng, p["colours"]) for _ in masks])
    if made is None:
        return None
    g, spots = made
    i = int(np.argmax([m.sum() for m in masks])) if p["pick"] == "largest" else int(np.argmin([m.sum() for m in masks]))
    (r, c), m = spots[i], masks[i]
    return g, g[r:r + m.shape[0], c:c + m.shape[1]].copy()


@family("crop_colour", "geometry", "crop to the bounding box of the one object of a given colour",
        lambda rng, S: {"colour": _colours(rng, 1)[0]})
def _crop_colour(rng, p, S):
    n = _int(rng, 2, 4)
    masks = [_sprite(rng, 4, 4, _int(rng, 2, 8)) for _ in range(n)]
    others = _colours(rng, n - 1, exclude=(p["colour"],))
    made = _objects_grid(rng, *_size(rng, 6, S), masks, [p["colour"]] + others)
    if made is None:
        return None
    g, spots = made
    (r, c), m = spots[0], masks[0]
    return g, g[r:r + m.shape[0], c:c + m.shape[1]].copy()


@family("tile", "geometry", "repeat the grid a x b times, plainly or with every other copy mirrored",
        lambda rng, S: {"reps": _choice(rng, [(1, 2), (2, 1), (2, 2), (1, 3), (3, 1)]),
                        "mirror": bool(rng.random() < 0.5), "colours": _colours(rng, _int(rng, 2, 3))})
def _tile(rng, p, S):
    a, b = p["reps"]
    if S // a < 2 or S // b < 2:
        return None
    g = _noise(rng, _int(rng, 2, min(4, S // a)), _int(rng, 2, min(4, S // b)), p["colours"], rng.uniform(0.4, 0.7))
    rows = []
    for i in range(a):
        row = []
        for j in range(b):
            t = g
            if p["mirror"]:
                t = t[::-1, :] if i % 2 else t
                t = t[:, ::-1] if j % 2 else t
            row.append(t)
        rows.append(np.concatenate(row, axis=1))
    return g, np.concatenate(rows, axis=0)


@family("mirror_concat", "geometry", "append the grid's mirror image to one side",
        lambda rng, S: {"side": _choice(rng, ["right", "left", "below", "above"]),
                        "colours": _colours(rng, _int(rng, 2, 3))})
def _mirror_concat(rng, p, S):
    side = p["side"]
    if side in ("right", "left"):
        h, w = _int(rng, 2, S), _int(rng, 2, S // 2)
    else:
        h, w = _int(rng, 2, S // 2), _int(rng, 2, S)
    g = _noise(rng, h, w, p["colours"], rng.uniform(0.4, 0.7))
    parts = {"right": (g, g[:, ::-1], 1), "left": (g[:, ::-1], g, 1), "below": (g, g[::-1, :], 0),
             "above": (g[::-1, :], g, 0)}[side]
    return g, np.concatenate(parts[:2], axis=parts[2])


@family("mirror_complete", "geometry", "the missing half of a symmetric picture is restored by mirroring",
        lambda rng, S: {"axis": _choice(rng, ["lr", "ud"]), "colours": _colours(rng, _int(rng, 2, 4))})
def _mirror_complete(rng, p, S):
    h, w = _int(rng, 3, S), _int(rng, 2, S // 2)
    half = _noise(rng, h, w, p["colours"], rng.uniform(0.4, 0.8))
    full = np.concatenate([half, half[:, ::-1]], axis=1)
    inp = full.copy()
    inp[:, w:] = 0
    if p["axis"] == "ud":
        full, inp = full.T.copy(), inp.T.copy()
    return inp, full


# --------------------------------------------------------------------------------------------- colour
def _recolour_map_params(rng, S):
    src = _colours(rng, _int(rng, 1, 3))
    dst = _colours(rng, len(src), exclude=tuple(src))
    return {"map": [[a, b] for a, b in zip(src, dst)], "others": _colours(rng, _int(rng, 0, 2), exclude=tuple(src + dst))}


@family("recolour_map", "colour", "fixed colour substitutions (a -> b), other colours untouched",
        _recolour_map_params)
def _recolour_map(rng, p, S):
    cols = [a for a, _ in p["map"]] + p["others"]
    g = _noise(rng, *_size(rng, 2, S), cols, rng.uniform(0.4, 0.9))
    lut = np.arange(10, dtype=np.uint8)
    for a, b in p["map"]:
        lut[a] = b
    return g, lut[g]


@family("recolour_by_size", "colour", "each object is painted by its size (a size -> colour table per task)",
        lambda rng, S: {"source": _colours(rng, 1)[0], "table": {str(s): c for s, c in
                                                                 zip(range(1, 5), _colours(rng, 4))}})
def _recolour_by_size(rng, p, S):
    n = _int(rng, 2, 5)
    sizes = [_int(rng, 1, 4) for _ in range(n)]
    masks = [_sprite(rng, 3, 3, s) for s in sizes]
    made = _objects_grid(rng, *_size(rng, 5, S), masks, [p["source"]] * n)
    if made is None:
        return None
    g, spots = made
    out = g.copy()
    for m, (r, c) in zip(masks, spots):
        out[r:r + m.shape[0], c:c + m.shape[1]][m] = p["table"][str(int(m.sum()))]
    return g, out


@family("recolour_largest", "colour", "the largest object takes a task colour, the rest keep theirs",
        lambda rng, S: {"colour": _colours(rng, 1)[0]})
def _recolour_largest(rng, p, S):
    n = _int(rng, 2, 4)
    sizes = sorted(rng.choice(np.arange(1, 10), size=n, replace=False).tolist())
    masks = [_sprite(rng, 4, 4, s) for s in sizes]
    areas = [int(m.sum()) for m in masks]
    if areas.count(max(areas)) > 1:
        return None
    cols = [_choice(rng, _colours(rng, 2, exclude=(p["colour"],))) for _ in masks]
    made = _objects_grid(rng, *_size(rng, 6, S), masks, cols)
    if made is None:
        return None
    g, spots = made
    i = int(np.argmax(areas))
    (r, c), m = spots[i], masks[i]
    out = g.copy()
    out[r:r + m.shape[0], c:c + m.shape[1]][m] = p["colour"]
    return g, out


@family("recolour_by_count", "colour", "every coloured cell takes the most (or least) frequent colour",
        lambda rng, S: {"pick": _choice(rng, ["most", "least"]), "k": _int(rng, 2, 3)})
def _recolour_by_count(rng, p, S):
    g = _noise(rng, *_size(rng, 3, S), _colours(rng, p["k"]), rng.uniform(0.3, 0.8))
    vals, counts = np.unique(g[g > 0], return_counts=True)
    if len(vals) < 2:
        return None
    target = counts.max() if p["pick"] == "most" else counts.min()
    if (counts == target).sum() != 1:
        return None
    out = g.copy()
    out[g > 0] = vals[int(np.argmax(counts == target))]
    return g, out


@family("colour_background", "colour", "the background is painted one task colour",
        lambda rng, S: {"colour": _colours(rng, 1)[0]})
def _colour_background(rng, p, S):
    g = _noise(rng, *_size(rng, 2, S), _colours(rng, _int(rng, 1, 3), exclude=(p["colour"],)), rng.uniform(0.2, 0.7))
    out = g.copy()
    out[g == 0] = p["colour"]
    return g, out


@family("remove_colour", "colour", "cells of one task colour are erased",
        lambda rng, S: {"colour": _colours(rng, 1)[0]})
def _remove_colour(rng, p, S):
    g = _noise(rng, *_size(rng, 2, S), [p["colour"]] + _colours(rng, _int(rng, 1, 2), exclude=(p["colour"],)),
               rng.uniform(0.3, 0.8))
    out = g.copy()
    out[g == p["colour"]] = 0
    return g, out


@family("invert", "colour", "a one-colour picture is inverted: colour <-> background (optionally a new colour)",
        lambda rng, S: {"colour": _colours(rng, 1)[0], "new": bool(rng.random() < 0.5)})
def _invert(rng, p, S):
    col = p["colour"]
    g = _noise(rng, *_size(rng, 2, S), [col], rng.uniform(0.3, 0.7))
    new = col if not p["new"] else (col % 9) + 1
    out = np.where(g == 0, new, 0).astype(np.uint8)
    return g, out


# --------------------------------------------------------------------------------------------- objects
_DIRS = {"down": (1, 0), "up": (-1, 0), "right": (0, 1), "left": (0, -1)}


@family("gravity", "objects", "every coloured cell falls as far as it can in one direction",
        lambda rng, S: {"direction": _choice(rng, list(_DIRS)), "colours": _colours(rng, _int(rng, 1, 3))})
def _gravity(rng, p, S):
    g = _noise(rng, *_size(rng, 3, S), p["colours"], rng.uniform(0.15, 0.45))
    d = p["direction"]
    # rotate so the fall is "down", stack each column at the bottom keeping order, rotate back
    k = {"down": 0, "right": 3, "up": 2, "left": 1}[d]  # quarter turns (ccw) that bring d to "down"
    r = np.rot90(g, k)
    out = np.zeros_like(r)
    for j in range(r.shape[1]):
        col = r[:, j][r[:, j] > 0]
        if len(col):
            out[r.shape[0] - len(col):, j] = col
    return g, np.rot90(out, -k).copy()


@family("fill_enclosed", "objects", "the inside of every closed rectangle outline is filled with a task colour",
        lambda rng, S: {"fill": _colours(rng, 1)[0], "outline": _colours(rng, 1)[0]})
def _fill_enclosed(rng, p, S):
    outline = p["outline"] if p["outline"] != p["fill"] else (p["fill"] % 9) + 1
    made = _solid_rects(rng, S, (3, min(6, S - 1)), 5, lambda n: [outline] * n)
    if made is None:
        return None
    g, masks, spots = made
    out = g.copy()
    for m, (r, c) in zip(masks, spots):
        g[r + 1:r + m.shape[0] - 1, c + 1:c + m.shape[1] - 1] = 0
        out[r + 1:r + m.shape[0] - 1, c + 1:c + m.shape[1] - 1] = p["fill"]
    return g, out


@family("hollow", "objects", "solid rectangles keep their border; their inside is cleared or painted",
        lambda rng, S: {"inside": _choice(rng, [0] + _colours(rng, 1))})
def _hollow(rng, p, S):
    made = _solid_rects(rng, S, (3, min(6, S - 1)), 5, lambda n: _colours(rng, n, exclude=(p["inside"],)))
    if made is None:
        return None
    g, masks, spots = made
    out = g.copy()
    for m, (r, c) in zip(masks, spots):
        out[r + 1:r + m.shape[0] - 1, c + 1:c + m.shape[1] - 1] = p["inside"]
    return g, out


@family("lines_to_border", "objects", "every dot shoots a line of its colour to the border in one direction",
        lambda rng, S: {"direction": _choice(rng, list(_DIRS)), "colours": _colours(rng, _int(rng, 1, 3))})
def _lines_to_border(rng, p, S):
    h, w = _size(rng, 3, S)
    d = p["direction"]
    lanes = h if d in ("left", "right") else w  # one dot per lane so lines never cross
    n = _int(rng, 1, max(1, lanes // 2))
    chosen = rng.choice(lanes, size=n, replace=False)
    g = np.zeros((h, w), dtype=np.uint8)
    out = g.copy()
    for lane in chosen.tolist():
        col = _choice(rng, p["colours"])
        if d in ("left", "right"):
            pos = _int(rng, 0, w - 1)
            g[lane, pos] = col
            if d == "right":
                out[lane, pos:] = col
            else:
                out[lane, :pos + 1] = col
        else:
            pos = _int(rng, 0, h - 1)
            g[pos, lane] = col
            if d == "down":
                out[pos:, lane] = col
            else:
                out[:pos + 1, lane] = col
    return g, out


def _one_dot(rng, p, S):
    """An empty grid (sides >= 3) with one dot of a task colour: (grid, row, col, colour)."""
    h, w = _size(rng, 3, S)
    r, c = _int(rng, 0, h - 1), _int(rng, 0, w - 1)
    col = _choice(rng, p["colours"])
    g = np.zeros((h, w), dtype=np.uint8)
    g[r, c] = col
    return g, r, c, col


@family("lines_cross", "objects", "one dot extends into its full row, column, or both",
        lambda rng, S: {"lines": _choice(rng, ["row", "column", "both"]), "colours": _colours(rng, _int(rng, 1, 3))})
def _lines_cross(rng, p, S):
    g, r, c, col = _one_dot(rng, p, S)
    out = g.copy()
    if p["lines"] in ("row", "both"):
        out[r, :] = col
    if p["lines"] in ("column", "both"):
        out[:, c] = col
    return g, out


@family("diagonals", "objects", "one dot extends along its diagonal, anti-diagonal, or both, to the border",
        lambda rng, S: {"which": _choice(rng, ["main", "anti", "both"]), "colours": _colours(rng, _int(rng, 1, 3))})
def _diagonals(rng, p, S):
    g, r, c, col = _one_dot(rng, p, S)
    ii, jj = np.indices(g.shape)
    out = g.copy()
    if p["which"] in ("main", "both"):
        out[(ii - jj) == (r - c)] = col
    if p["which"] in ("anti", "both"):
        out[(ii + jj) == (r + c)] = col
    return g, out


@family("connect_pairs", "objects", "two dots of one colour in a row (or column) are joined by a task-colour line",
        lambda rng, S: {"axis": _choice(rng, ["row", "column"]), "line": _colours(rng, 1)[0]})
def _connect_pairs(rng, p, S):
    h, w = _size(rng, 3, S)
    if p["axis"] == "column":
        h, w = w, h
    lanes = rng.choice(h, size=_int(rng, 1, max(1, h // 2)), replace=False).tolist()
    g = np.zeros((h, w), dtype=np.uint8)
    out = g.copy()
    for lane in lanes:
        a, b = sorted(rng.choice(w, size=2, replace=False).tolist())
        if b - a < 2:
            continue
        col = _colours(rng, 1, exclude=(p["line"],))[0]
        g[lane, a] = g[lane, b] = col
        out[lane, a] = out[lane, b] = col
        out[lane, a + 1:b] = p["line"]
    if p["axis"] == "column":
        g, out = g.T.copy(), out.T.copy()
    return g, out


def _offset_params(rng, S):
    while True:
        dy, dx = _int(rng, -3, 3), _int(rng, -3, 3)
        if abs(dy) >= 2 or abs(dx) >= 2:  # the copy must not touch the original... checked per pair too
            return {"dy": dy, "dx": dx, "colours": _colours(rng, _int(rng, 1, 2))}


@family("copy_object", "objects", "the one object is copied to a fixed offset (the original stays)",
        _offset_params)
def _copy_object(rng, p, S):
    m = _sprite(rng, 3, 3, _int(rng, 2, 6))
    h, w = _size(rng, 5, S)
    dy, dx = p["dy"], p["dx"]
    mh, mw = m.shape
    if abs(dy) < mh + 1 and abs(dx) < mw + 1:
        return None  # copy would overlap or touch the original
    r_lo, r_hi = max(0, -dy), h - mh - max(0, dy)
    c_lo, c_hi = max(0, -dx), w - mw - max(0, dx)
    if r_hi < r_lo or c_hi < c_lo:
        return None
    r, c = _int(rng, r_lo, r_hi), _int(rng, c_lo, c_hi)
    col = _choice(rng, p["colours"])
    g = np.zeros((h, w), dtype=np.uint8)
    g[r:r + mh, c:c + mw][m] = col
    out = g.copy()
    out[r + dy:r + dy + mh, c + dx:c + dx + mw][m] = col
    return g, out


@family("denoise", "objects", "isolated single noise cells are removed; the solid shapes stay",
        lambda rng, S: {"noise": _colours(rng, 1)[0]})
def _denoise(rng, p, S):
    made = _solid_rects(rng, S, (2, 4), 6, lambda n: _colours(rng, n, exclude=(p["noise"],)))
    if made is None:
        return None
    clean = made[0]
    g = clean.copy()
    h, w = g.shape
    for _ in range(_int(rng, 1, max(1, h * w // 10))):
        r, c = _int(rng, 0, h - 1), _int(rng, 0, w - 1)
        near = g[max(0, r - 1):r + 2, max(0, c - 1):c + 2]
        if g[r, c] == 0 and not (near == p["noise"]).any():
            g[r, c] = p["noise"]
    return g, clean


@family("extend_pattern", "objects", "the repeating rows (or columns) at the start continue to fill the grid",
        lambda rng, S: {"axis": _choice(rng, ["rows", "columns"]), "colours": _colours(rng, _int(rng, 2, 3))})
def _extend_pattern(rng, p, S):
    period = _int(rng, 2, min(3, S // 3))
    h, w = _int(rng, 3 * period, S), _int(rng, 2, S)
    unit = _noise(rng, period, w, p["colours"], 0.9)
    if any(not unit[i].any() for i in range(period)) or len({unit[i].tobytes() for i in range(period)}) < period:
        return None
    full = np.concatenate([unit] * (h // period + 1), axis=0)[:h]
    inp = full.copy()
    inp[2 * period:] = 0
    if p["axis"] == "columns":
        full, inp = full.T.copy(), inp.T.copy()
    return inp, full


@family("count_bar", "counting", "the number of cells of a task colour becomes a bar of that length",
        lambda rng, S: {"colour": _colours(rng, 1)[0], "vertical": bool(rng.random() < 0.5)})
def _count_bar(rng, p, S):
    h, w = _size(rng, 3, S)
    g = _noise(rng, h, w, _colours(rng, _int(rng, 1, 2), exclude=(p["colour"],)), rng.uniform(0.0, 0.3))
    n = _int(rng, 1, min(S, h * w // 3))
    free = np.flatnonzero(g.ravel() == 0)
    if len(free) < n:
        return None
    g.ravel()[rng.choice(free, size=n, replace=False)] = p["colour"]
    bar = np.full((n, 1) if p["vertical"] else (1, n), p["colour"], dtype=np.uint8)
    return g, bar


@family("majority_colour", "counting", "the answer is a k x k square of the most (or least) frequent colour",
        lambda rng, S: {"k": _int(rng, 1, 3), "pick": _choice(rng, ["most", "least"])})
def _majority_colour(rng, p, S):
    g = _noise(rng, *_size(rng, 3, S), _colours(rng, _int(rng, 2, 4)), rng.uniform(0.4, 0.9))
    vals, counts = np.unique(g[g > 0], return_counts=True)
    target = counts.max() if p["pick"] == "most" else counts.min() if len(counts) else 0
    if len(vals) < 2 or (counts == target).sum() != 1:
        return None
    return g, np.full((p["k"], p["k"]), vals[int(np.argmax(counts == target))], dtype=np.uint8)


@family("sort_bars", "counting", "bars standing on the floor are reordered by height (ascending or descending)",
        lambda rng, S: {"order": _choice(rng, ["ascending", "descending"]), "spaced": bool(rng.random() < 0.5)})
def _sort_bars(rng, p, S):
    h = _int(rng, 3, S)
    step = 2 if p["spaced"] else 1
    n = _int(rng, 2, min(h, (S + step - 1) // step))
    heights = rng.choice(np.arange(1, h + 1), size=n, replace=False).tolist()
    cols = [_choice(rng, list(range(1, 10))) for _ in range(n)]
    w = (n - 1) * step + 1
    g = np.zeros((h, w), dtype=np.uint8)
    for i, (ht, col) in enumerate(zip(heights, cols)):
        g[h - ht:, i * step] = col
    order = sorted(range(n), key=lambda i: heights[i], reverse=p["order"] == "descending")
    out = np.zeros_like(g)
    for slot, i in enumerate(order):
        out[h - heights[i]:, slot * step] = cols[i]
    return g, out


@family("bounding_box", "objects", "the empty cells of every object's bounding box are painted a task colour",
        lambda rng, S: {"colour": _colours(rng, 1)[0]})
def _bounding_box(rng, p, S):
    masks = [_sprite(rng, 4, 4, _int(rng, 3, 8)) for _ in range(_int(rng, 1, 3))]
    cols = [_colours(rng, 1, exclude=(p["colour"],))[0] for _ in masks]
    made = _objects_grid(rng, *_size(rng, 5, S), masks, cols)
    if made is None:
        return None
    g, spots = made
    out = g.copy()
    for m, (r, c) in zip(masks, spots):
        box = out[r:r + m.shape[0], c:c + m.shape[1]]
        box[~m] = p["colour"]
    return g, out


@family("keep_largest", "objects", "only the largest (or smallest) object is kept",
        lambda rng, S: {"pick": _choice(rng, ["largest", "smallest"]), "colours": _colours(rng, _int(rng, 1, 3))})
def _keep_largest(rng, p, S):
    n = _int(rng, 2, 4)
    sizes = rng.choice(np.arange(1, 10), size=n, replace=False).tolist()
    masks = [_sprite(rng, 4, 4, s) for s in sizes]
    areas = [int(m.sum()) for m in masks]
    keep = int(np.argmax(areas)) if p["pick"] == "largest" else int(np.argmin(areas))
    if areas.count(areas[keep]) > 1:
        return None
    made = _objects_grid(rng, *_size(rng, 6, S), masks, [_choice(rng, p["colours"]) for _ in masks])
    if made is None:
        return None
    g, spots = made
    out = np.zeros_like(g)
    (r, c), m = spots[keep], masks[keep]
    out[r:r + m.shape[0], c:c + m.shape[1]][m] = g[r:r + m.shape[0], c:c + m.shape[1]][m]
    return g, out


@family("frame", "objects", "a one-cell frame of a task colour: drawn over the edge, or added around the grid",
        lambda rng, S: {"colour": _colours(rng, 1)[0], "pad": bool(rng.random() < 0.5)})
def _frame(rng, p, S):
    if p["pad"]:
        g = _noise(rng, *_size(rng, 1, S - 2), _colours(rng, _int(rng, 1, 3), exclude=(p["colour"],)),
                   rng.uniform(0.2, 0.6))
        out = np.full((g.shape[0] + 2, g.shape[1] + 2), p["colour"], dtype=np.uint8)
        out[1:-1, 1:-1] = g
        return g, out
    g = _noise(rng, *_size(rng, 3, S), _colours(rng, _int(rng, 1, 3), exclude=(p["colour"],)), rng.uniform(0.2, 0.6))
    out = g.copy()
    out[0, :] = out[-1, :] = p["colour"]
    out[:, 0] = out[:, -1] = p["colour"]
    return g, out


_OPS = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
        "nor": lambda a, b: ~np.logical_or(a, b)}


@family("halves_logic", "objects", "two halves split by a divider combine cell by cell (and/or/xor/nor)",
        lambda rng, S: {"op": _choice(rng, list(_OPS)), "colours": _colours(rng, 4),
                        "vertical": bool(rng.random() < 0.5)})
def _halves_logic(rng, p, S):
    left_c, right_c, div_c, out_c = p["colours"]
    h, w = _int(rng, 2, S), _int(rng, 2, (S - 1) // 2)
    a = rng.random((h, w)) < rng.uniform(0.3, 0.7)
    b = rng.random((h, w)) < rng.uniform(0.3, 0.7)
    g = np.zeros((h, 2 * w + 1), dtype=np.uint8)
    g[:, :w][a] = left_c
    g[:, w] = div_c
    g[:, w + 1:][b] = right_c
    out = np.where(_OPS[p["op"]](a, b), out_c, 0).astype(np.uint8)
    if p["vertical"]:
        g, out = g.T.copy(), out.T.copy()
    return g, out
