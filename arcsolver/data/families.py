"""Procedural ARC task families: each a small parameterised program that draws input grids and computes outputs.

A family has three parts. `params(rng, max_size)` draws the *task-level* parameters (which axis to flip, which colour
to paint, which direction things fall), so two tasks of one family differ in their rule, not only in their grids.
`pair(rng, params, max_size)` draws one input grid and computes its output under those parameters, or returns None
when the draw is unusable (the caller draws again). `implied(params, train, test)` is the family's identifiability
rule as code: it says why the test pair's output is NOT implied by the demonstrations (None when it is), for example
because another value of the task's parameter also reproduces every demonstration but answers the test differently,
or because the test needs a colour (or object size, or input colour of a colour map) no demonstration shows. The
rule in words is the docstring of the family's pair function (`Family.rule`). The generator redraws a task whose
test is not implied; it never writes one (`why_not_implied` adds the rule every family shares: each colour of the
test output appears in a demonstration output or in the test input).

Grids are uint8 arrays, colour 0 is the background, every side stays within 1..max_size (inputs and outputs).
Families whose rule can leave a grid unchanged say so (`identity_ok`); the others never emit a pair whose output
equals its input.

The idea is RE-ARC's (procedural generators per ARC concept), the code is ours and deliberately small: objects are
random 4-connected sprites placed with a one-cell margin around their bounding boxes, so every object is its own
connected component (also under 8-connectivity) and no two bounding boxes overlap; rules that need objects read
them from the construction, and the identifiability rules (which see only grids) segment by 4-connected colour.

Registry: `FAMILIES` maps name -> `Family`; names are stable (they appear in task ids).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

MIN_SIZE = 6  # the smallest --max-size every family can work with

Grid = np.ndarray
Pair = tuple[Grid, Grid]
Implied = Callable[[dict, list[Pair], Pair], "str | None"]


@dataclass(frozen=True)
class Family:
    name: str
    group: str  # geometry | colour | objects | counting
    doc: str
    params: Callable[[np.random.Generator, int], dict]
    pair: Callable[[np.random.Generator, dict, int], Pair | None]
    implied: Implied  # why the test output is not implied by the demonstrations, or None
    identity_ok: bool = False

    @property
    def rule(self) -> str:
        """The family's rule and its identifiability condition, in words (the pair function's docstring)."""
        return " ".join(self.pair.__doc__.split())


FAMILIES: dict[str, Family] = {}


def family(name: str, group: str, doc: str, params: Callable, implied: Implied, identity_ok: bool = False):
    def register(pair_fn: Callable) -> Callable:
        if name in FAMILIES:
            raise ValueError(f"family {name} registered twice")
        if "Implied when:" not in " ".join((pair_fn.__doc__ or "").split()):
            raise ValueError(f"family {name}: its pair function must state its rule ('Implied when ...')")
        FAMILIES[name] = Family(name, group, doc, params, pair_fn, implied, identity_ok)
        return pair_fn
    return register


def why_not_implied(fam: Family, params: dict, train: list[Pair], test: Pair) -> str | None:
    """Why the test pair's output does not follow from the demonstrations under `fam`'s rule, or None.

    Shared by every family: each colour of the test output appears in some demonstration output or in the test
    input (an answer never needs a colour nothing shows). Then the family's own rule (`fam.implied`)."""
    shown = set(np.unique(test[0]).tolist())
    for _, out in train:
        shown.update(np.unique(out).tolist())
    unseen = sorted(set(np.unique(test[1]).tolist()) - shown)
    if unseen:
        return f"the test output uses colour {unseen[0]}, which no demonstration output or the test input shows"
    return fam.implied(params, train, test)


# --------------------------------------------------------------------------------------------- identifiability
class RuleMismatch(RuntimeError):
    """A family's rule code does not reproduce the family's own pairs: a bug in the family, never a bad draw."""


def _same(a: Grid | None, b: Grid) -> bool:
    return a is not None and a.shape == b.shape and np.array_equal(a, b)


def _unique_answer(truth: Callable[[Grid], Grid | None], others: Iterable[tuple[str, Callable[[Grid], Grid | None]]],
                   train: list[Pair], test: Pair) -> str | None:
    """None when every candidate rule that reproduces every demonstration answers the test as `truth` does.

    `truth` is the task's own rule; it must reproduce every pair (else the family is inconsistent: RuleMismatch).
    A candidate that fits the demonstrations but is undefined on the test input counts as a different answer."""
    for i, (a, b) in enumerate(train + [test]):
        if not _same(truth(a), b):
            raise RuleMismatch(f"the family's rule code does not reproduce its own pair {i}")
    for label, rule in others:
        if all(_same(rule(a), b) for a, b in train) and not _same(rule(test[0]), test[1]):
            return f"{label} also reproduces every demonstration but answers the test differently"
    return None


def _pinned(apply: Callable[[dict, Grid], Grid | None], alternatives: Callable[[dict], Iterable[dict]]) -> Implied:
    """Identifiability by elimination: every parameter setting of the family (the task's own with the overrides of
    `alternatives(params)`) that reproduces each demonstration gives the test's output."""
    def implied(p: dict, train: list[Pair], test: Pair) -> str | None:
        others = ((", ".join(f"{k}={v}" for k, v in alt.items()),
                   lambda g, q={**p, **alt}: apply(q, g)) for alt in alternatives(p))
        return _unique_answer(lambda g: apply(p, g), others, train, test)
    return implied


def _grid(**values) -> Callable[[dict], list[dict]]:
    """Alternatives: every combination of the given parameter values."""
    keys = list(values)
    return lambda p: [dict(zip(keys, combo)) for combo in itertools.product(*(values[k] for k in keys))]


_COLOURS = range(1, 10)


def _inputs_shown(p: dict, train: list[Pair], test: Pair) -> str | None:
    """Map-style rules: every colour of the test input appears in some demonstration input (so what becomes of it
    is shown)."""
    shown = set()
    for a, _ in train:
        shown.update(np.unique(a).tolist())
    unseen = sorted(set(np.unique(test[0]).tolist()) - shown)
    return f"the test input has colour {unseen[0]}, which no demonstration input shows" if unseen else None


def _changed_to(key: str) -> Implied:
    """Rules whose one parameter is a colour painted onto some cells: some demonstration changes a cell to it."""
    def implied(p: dict, train: list[Pair], test: Pair) -> str | None:
        v = p[key]
        if any(a.shape == b.shape and ((a != b) & (b == v)).any() for a, b in train):
            return None
        return f"no demonstration shows a cell becoming {key} {v}"
    return implied


def _objects(g: Grid) -> list[tuple[int, Grid]]:
    """4-connected one-colour components of the non-zero cells: (colour, bool mask), in row-major order."""
    h, w = g.shape
    seen = np.zeros((h, w), dtype=bool)
    found = []
    for r, c in zip(*np.nonzero(g)):
        if seen[r, c]:
            continue
        col = g[r, c]
        mask = np.zeros((h, w), dtype=bool)
        seen[r, c] = True
        stack = [(int(r), int(c))]
        while stack:
            a, b = stack.pop()
            mask[a, b] = True
            for x, y in ((a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)):
                if 0 <= x < h and 0 <= y < w and not seen[x, y] and g[x, y] == col:
                    seen[x, y] = True
                    stack.append((x, y))
        found.append((int(col), mask))
    return found


def _box(mask: Grid) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def _extreme_object(g: Grid, pick: str) -> Grid | None:
    """The mask of the one largest (or smallest) object, None when there is none or a tie."""
    objs = _objects(g)
    if not objs:
        return None
    sizes = [int(m.sum()) for _, m in objs]
    target = max(sizes) if pick == "largest" else min(sizes)
    return objs[sizes.index(target)][1] if sizes.count(target) == 1 else None


def _dihedral(g: Grid) -> list[tuple[str, Grid]]:
    return [("identity", g), ("rotate 90", np.rot90(g, 1)), ("rotate 180", np.rot90(g, 2)),
            ("rotate 270", np.rot90(g, 3)), ("flip lr", g[:, ::-1]), ("flip ud", g[::-1, :]), ("transpose", g.T),
            ("anti-transpose", g[::-1, ::-1].T)]


def _dihedral_implied(truth: Callable[[dict, Grid], Grid]) -> Implied:
    """Geometric rules: among the eight rotations and reflections, every one that maps each demonstration input to
    its output gives the test output."""
    def implied(p: dict, train: list[Pair], test: Pair) -> str | None:
        others = ((name, lambda g, i=i: _dihedral(g)[i][1]) for i, (name, _) in enumerate(_dihedral(test[0])))
        return _unique_answer(lambda g: truth(p, g), others, train, test)
    return implied


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
def _flip_rule(p, g):
    return g[:, ::-1] if p["axis"] == "lr" else g[::-1, :]


@family("flip", "geometry", "mirror the grid left-right or up-down",
        lambda rng, S: {"axis": _choice(rng, ["lr", "ud"]), "colours": _colours(rng, _int(rng, 2, 4))},
        implied=_dihedral_implied(_flip_rule))
def _flip(rng, p, S):
    """Mirror the grid left-right or up-down. Implied when: among the eight rotations and reflections, every one
    that maps each demonstration input to its output gives the test output."""
    g = _noise(rng, *_size(rng, 2, S), p["colours"], rng.uniform(0.3, 0.7))
    return g, _flip_rule(p, g).copy()


def _rotate_rule(p, g):
    return np.rot90(g, p["k"])


@family("rotate", "geometry", "rotate the grid by 90, 180 or 270 degrees counter-clockwise",
        lambda rng, S: {"k": _int(rng, 1, 3), "colours": _colours(rng, _int(rng, 2, 4))},
        implied=_dihedral_implied(_rotate_rule))
def _rotate(rng, p, S):
    """Rotate by k quarter turns counter-clockwise. Implied when: among the eight rotations and reflections, every
    one that maps each demonstration input to its output gives the test output."""
    g = _noise(rng, *_size(rng, 2, S), p["colours"], rng.uniform(0.3, 0.7))
    return g, _rotate_rule(p, g).copy()


def _transpose_rule(p, g):
    return g.T if p["diagonal"] == "main" else g[::-1, ::-1].T


@family("transpose", "geometry", "reflect the grid about its main or anti diagonal",
        lambda rng, S: {"diagonal": _choice(rng, ["main", "anti"]), "colours": _colours(rng, _int(rng, 2, 4))},
        implied=_dihedral_implied(_transpose_rule))
def _transpose(rng, p, S):
    """Reflect about the main or the anti diagonal. Implied when: among the eight rotations and reflections, every
    one that maps each demonstration input to its output gives the test output."""
    g = _noise(rng, *_size(rng, 2, S), p["colours"], rng.uniform(0.3, 0.7))
    return g, _transpose_rule(p, g).copy()


def _translate_params(rng, S):
    while True:
        dy, dx = _int(rng, -2, 2), _int(rng, -2, 2)
        if dy or dx:
            return {"dy": dy, "dx": dx, "wrap": bool(rng.random() < 0.5), "colours": _colours(rng, _int(rng, 1, 3))}


def _shift(p, g):
    dy, dx = p["dy"], p["dx"]
    if p["wrap"]:
        return np.roll(g, (dy, dx), axis=(0, 1))
    h, w = g.shape
    out = np.zeros_like(g)
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = g[max(0, -dy):h - max(0, dy),
                                                                     max(0, -dx):w - max(0, dx)]
    return out


_SHIFTS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy or dx]


@family("translate", "geometry", "shift everything by (dy, dx), |dy|, |dx| <= 2; cells leaving the grid wrap around "
        "or vanish", _translate_params,
        implied=_pinned(_shift, lambda p: [{"dy": dy, "dx": dx, "wrap": wrap} for dy, dx in _SHIFTS
                                           for wrap in (False, True)]))
def _translate(rng, p, S):
    """Shift everything by (dy, dx), each within -2..2, wrapping around or dropping what leaves the grid. Implied
    when: every (dy, dx, wrap) of that range that reproduces each demonstration gives the test output."""
    g = _noise(rng, *_size(rng, 4, S), p["colours"], rng.uniform(0.15, 0.4))
    return g, _shift(p, g).copy()


def _small_and_blocks(rng, p, S):
    """A random grid and the same grid with every cell a k x k block (None when k blocks cannot fit twice in S)."""
    k = p["k"]
    if S // k < 2:
        return None
    small = _noise(rng, *_size(rng, 2, S // k), p["colours"], rng.uniform(0.4, 0.8))
    return small, _blow_up(p, small)


def _blow_up(p, g):
    return np.kron(g, np.ones((p["k"], p["k"]), dtype=np.uint8))


def _shrink(p, g):
    k = p["k"]
    if g.shape[0] % k or g.shape[1] % k:
        return None
    small = g[::k, ::k]
    return small if np.array_equal(_blow_up(p, small), g) else None


@family("scale_up", "geometry", "every cell becomes a k x k block (k = 2 or 3)",
        lambda rng, S: {"k": _int(rng, 2, 3), "colours": _colours(rng, _int(rng, 2, 4))},
        implied=_pinned(_blow_up, _grid(k=(2, 3))))
def _scale_up(rng, p, S):
    """Every cell becomes a k x k block, k = 2 or 3. Implied when: every k that reproduces each demonstration
    gives the test output (any demonstration shows k in its sizes)."""
    return _small_and_blocks(rng, p, S)


@family("scale_down", "geometry", "a grid of k x k blocks (k = 2 or 3) shrinks to one cell per block",
        lambda rng, S: {"k": _int(rng, 2, 3), "colours": _colours(rng, _int(rng, 2, 4))},
        implied=_pinned(_shrink, _grid(k=(2, 3))))
def _scale_down(rng, p, S):
    """A grid of k x k blocks shrinks to one cell per block, k = 2 or 3. Implied when: every k that reproduces each
    demonstration gives the test output."""
    pair = _small_and_blocks(rng, p, S)
    return None if pair is None else pair[::-1]


def _crop_extreme(p, g):
    m = _extreme_object(g, p["pick"])
    return None if m is None else g[_box(m)]


@family("crop_object", "geometry", "crop to the bounding box of the largest (or smallest) object",
        lambda rng, S: {"pick": _choice(rng, ["largest", "smallest"]), "colours": _colours(rng, _int(rng, 1, 3))},
        implied=_pinned(_crop_extreme, _grid(pick=("largest", "smallest"))))
def _crop_object(rng, p, S):
    """Crop to the bounding box of the one largest (or smallest) object. Implied when: each of largest / smallest
    that reproduces every demonstration gives the test output."""
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


def _crop_to_colour(p, g):
    cells = g == p["colour"]
    return g[_box(cells)] if cells.any() else None


@family("crop_colour", "geometry", "crop to the bounding box of the one object of a given colour",
        lambda rng, S: {"colour": _colours(rng, 1)[0]}, implied=_pinned(_crop_to_colour, _grid(colour=_COLOURS)))
def _crop_colour(rng, p, S):
    """Crop to the bounding box of the one object of the task's colour. Implied when: every colour whose crop
    reproduces each demonstration gives the test output."""
    n = _int(rng, 2, 4)
    masks = [_sprite(rng, 4, 4, _int(rng, 2, 8)) for _ in range(n)]
    others = _colours(rng, n - 1, exclude=(p["colour"],))
    made = _objects_grid(rng, *_size(rng, 6, S), masks, [p["colour"]] + others)
    if made is None:
        return None
    g, spots = made
    (r, c), m = spots[0], masks[0]
    return g, g[r:r + m.shape[0], c:c + m.shape[1]].copy()


_REPS = [(1, 2), (2, 1), (2, 2), (1, 3), (3, 1)]


def _tile_rule(p, g):
    a, b = p["reps"]
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
    return np.concatenate(rows, axis=0)


@family("tile", "geometry", "repeat the grid a x b times, plainly or with every other copy mirrored",
        lambda rng, S: {"reps": _choice(rng, _REPS), "mirror": bool(rng.random() < 0.5),
                        "colours": _colours(rng, _int(rng, 2, 3))},
        implied=_pinned(_tile_rule, _grid(reps=_REPS, mirror=(False, True))))
def _tile(rng, p, S):
    """Repeat the grid a x b times, plainly or with every other copy mirrored. Implied when: every (a x b, mirrored
    or not) that reproduces each demonstration gives the test output (a mirrored tiling must be told apart from a
    plain one by some demonstration, unless the test input cannot tell them apart either)."""
    a, b = p["reps"]
    if S // a < 2 or S // b < 2:
        return None
    g = _noise(rng, _int(rng, 2, min(4, S // a)), _int(rng, 2, min(4, S // b)), p["colours"], rng.uniform(0.4, 0.7))
    return g, _tile_rule(p, g)


_SIDES = ("right", "left", "below", "above")


def _mirror_concat_rule(p, g):
    parts = {"right": (g, g[:, ::-1], 1), "left": (g[:, ::-1], g, 1), "below": (g, g[::-1, :], 0),
             "above": (g[::-1, :], g, 0)}[p["side"]]
    return np.concatenate(parts[:2], axis=parts[2])


@family("mirror_concat", "geometry", "append the grid's mirror image to one side",
        lambda rng, S: {"side": _choice(rng, list(_SIDES)), "colours": _colours(rng, _int(rng, 2, 3))},
        implied=_pinned(_mirror_concat_rule, _grid(side=_SIDES)))
def _mirror_concat(rng, p, S):
    """Append the grid's mirror image on one side. Implied when: every side that reproduces each demonstration
    gives the test output (left and right differ only on a grid that is not left-right symmetric)."""
    side = p["side"]
    if side in ("right", "left"):
        h, w = _int(rng, 2, S), _int(rng, 2, S // 2)
    else:
        h, w = _int(rng, 2, S // 2), _int(rng, 2, S)
    g = _noise(rng, h, w, p["colours"], rng.uniform(0.4, 0.7))
    return g, _mirror_concat_rule(p, g)


def _mirror_complete_rule(p, g):
    t = g if p["axis"] == "lr" else g.T
    w = t.shape[1]
    if w % 2 or t[:, w // 2:].any():
        return None
    half = t[:, :w // 2]
    full = np.concatenate([half, half[:, ::-1]], axis=1)
    return full if p["axis"] == "lr" else full.T


@family("mirror_complete", "geometry", "the missing half of a symmetric picture is restored by mirroring",
        lambda rng, S: {"axis": _choice(rng, ["lr", "ud"]), "colours": _colours(rng, _int(rng, 2, 4))},
        implied=_pinned(_mirror_complete_rule, _grid(axis=("lr", "ud"))))
def _mirror_complete(rng, p, S):
    """The empty right (or bottom) half is restored as the mirror image of the other. Implied when: each axis that
    reproduces every demonstration gives the test output."""
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
    others = _colours(rng, _int(rng, 0, 2), exclude=tuple(src + dst))
    return {"map": [[a, b] for a, b in zip(src, dst)], "others": others}


@family("recolour_map", "colour", "fixed colour substitutions (a -> b), other colours untouched",
        _recolour_map_params, implied=_inputs_shown)
def _recolour_map(rng, p, S):
    """Fixed colour substitutions a -> b; other colours stay. Implied when: every colour of the test input appears
    in some demonstration input (so the demonstrations show what it becomes, changed or kept)."""
    cols = [a for a, _ in p["map"]] + p["others"]
    g = _noise(rng, *_size(rng, 2, S), cols, rng.uniform(0.4, 0.9))
    lut = np.arange(10, dtype=np.uint8)
    for a, b in p["map"]:
        lut[a] = b
    return g, lut[g]


def _sizes_shown(p: dict, train: list[Pair], test: Pair) -> str | None:
    shown = {int(m.sum()) for a, _ in train for _, m in _objects(a)}
    unseen = sorted({int(m.sum()) for _, m in _objects(test[0])} - shown)
    return f"the test input has an object of size {unseen[0]}, which no demonstration shows" if unseen else None


@family("recolour_by_size", "colour", "each object is painted by its size (a size -> colour table per task)",
        lambda rng, S: {"source": _colours(rng, 1)[0], "table": {str(s): c for s, c in
                                                                 zip(range(1, 5), _colours(rng, 4))}},
        implied=_sizes_shown)
def _recolour_by_size(rng, p, S):
    """Each object (sizes 1..4) is painted by its size through a per-task size -> colour table. Implied when: every
    object size in the test input also occurs in some demonstration input (so its colour is shown)."""
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
        lambda rng, S: {"colour": _colours(rng, 1)[0]}, implied=_changed_to("colour"))
def _recolour_largest(rng, p, S):
    """The one largest object takes the task's colour; the rest keep theirs. Implied when: some demonstration shows
    a cell becoming that colour."""
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


def _recolour_by_count_rule(p, g):
    vals, counts = np.unique(g[g > 0], return_counts=True)
    if len(vals) < 2:
        return None
    target = counts.max() if p["pick"] == "most" else counts.min()
    if (counts == target).sum() != 1:
        return None
    out = g.copy()
    out[g > 0] = vals[int(np.argmax(counts == target))]
    return out


@family("recolour_by_count", "colour", "every coloured cell takes the most (or least) frequent colour",
        lambda rng, S: {"pick": _choice(rng, ["most", "least"]), "k": _int(rng, 2, 3)},
        implied=_pinned(_recolour_by_count_rule, _grid(pick=("most", "least"))))
def _recolour_by_count(rng, p, S):
    """Every coloured cell takes the one most (or least) frequent colour. Implied when: each of most / least that
    reproduces every demonstration gives the test output."""
    g = _noise(rng, *_size(rng, 3, S), _colours(rng, p["k"]), rng.uniform(0.3, 0.8))
    out = _recolour_by_count_rule(p, g)
    return None if out is None else (g, out)


@family("colour_background", "colour", "the background is painted one task colour",
        lambda rng, S: {"colour": _colours(rng, 1)[0]}, implied=_inputs_shown)
def _colour_background(rng, p, S):
    """The background (colour 0) is painted the task's colour; other colours stay. Implied when: every colour of the
    test input, the background included, appears in some demonstration input (a colour map: what each becomes is
    shown)."""
    g = _noise(rng, *_size(rng, 2, S), _colours(rng, _int(rng, 1, 3), exclude=(p["colour"],)), rng.uniform(0.2, 0.7))
    out = g.copy()
    out[g == 0] = p["colour"]
    return g, out


@family("remove_colour", "colour", "cells of one task colour are erased",
        lambda rng, S: {"colour": _colours(rng, 1)[0]}, implied=_inputs_shown)
def _remove_colour(rng, p, S):
    """Cells of the task's colour are erased; other colours stay. Implied when: every colour of the test input
    appears in some demonstration input (a colour map: erased or kept is shown for each)."""
    g = _noise(rng, *_size(rng, 2, S), [p["colour"]] + _colours(rng, _int(rng, 1, 2), exclude=(p["colour"],)),
               rng.uniform(0.3, 0.8))
    out = g.copy()
    out[g == p["colour"]] = 0
    return g, out


def _invert_rule(p, g):
    new = p["colour"] if not p["new"] else (p["colour"] % 9) + 1
    return np.where(g == 0, new, 0).astype(np.uint8)


def _invert_keeping_colour(g):
    cols = np.unique(g[g > 0])
    return np.where(g == 0, cols[0], 0).astype(np.uint8) if len(cols) == 1 else None


def _invert_implied(p: dict, train: list[Pair], test: Pair) -> str | None:
    others = [("the input's own colour", _invert_keeping_colour)]
    others += [(f"colour {c}", lambda g, c=c: np.where(g == 0, c, 0).astype(np.uint8)) for c in _COLOURS]
    return _unique_answer(lambda g: _invert_rule(p, g), others, train, test)


@family("invert", "colour", "a one-colour picture is inverted: colour <-> background (optionally a new colour)",
        lambda rng, S: {"colour": _colours(rng, 1)[0], "new": bool(rng.random() < 0.5)}, implied=_invert_implied)
def _invert(rng, p, S):
    """A one-colour picture is inverted: its empty cells take a colour (its own or the task's new one), its cells
    empty. Implied when: every choice of that colour (the input's own, or any fixed colour) that reproduces each
    demonstration gives the test output."""
    g = _noise(rng, *_size(rng, 2, S), [p["colour"]], rng.uniform(0.3, 0.7))
    return g, _invert_rule(p, g)


# --------------------------------------------------------------------------------------------- objects
_DIRS = {"down": (1, 0), "up": (-1, 0), "right": (0, 1), "left": (0, -1)}


def _fall(p, g):
    # rotate so the fall is "down", stack each column at the bottom keeping order, rotate back
    k = {"down": 0, "right": 3, "up": 2, "left": 1}[p["direction"]]  # quarter turns (ccw) that bring it to "down"
    r = np.rot90(g, k)
    out = np.zeros_like(r)
    for j in range(r.shape[1]):
        col = r[:, j][r[:, j] > 0]
        if len(col):
            out[r.shape[0] - len(col):, j] = col
    return np.rot90(out, -k).copy()


@family("gravity", "objects", "every coloured cell falls as far as it can in one direction",
        lambda rng, S: {"direction": _choice(rng, list(_DIRS)), "colours": _colours(rng, _int(rng, 1, 3))},
        implied=_pinned(_fall, _grid(direction=list(_DIRS))))
def _gravity(rng, p, S):
    """Every coloured cell falls as far as it can in one direction, keeping its order. Implied when: every direction
    that reproduces each demonstration gives the test output."""
    g = _noise(rng, *_size(rng, 3, S), p["colours"], rng.uniform(0.15, 0.45))
    return g, _fall(p, g)


@family("fill_enclosed", "objects", "the inside of every closed rectangle outline is filled with a task colour",
        lambda rng, S: {"fill": _colours(rng, 1)[0], "outline": _colours(rng, 1)[0]}, implied=_changed_to("fill"))
def _fill_enclosed(rng, p, S):
    """The inside of every closed rectangle outline is filled with the task's colour. Implied when: some
    demonstration shows a cell becoming that colour."""
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
        lambda rng, S: {"inside": _choice(rng, [0] + _colours(rng, 1))}, implied=_changed_to("inside"))
def _hollow(rng, p, S):
    """Solid rectangles keep their border; their inside becomes the task's colour (0: cleared). Implied when: some
    demonstration shows a cell becoming that colour."""
    made = _solid_rects(rng, S, (3, min(6, S - 1)), 5, lambda n: _colours(rng, n, exclude=(p["inside"],)))
    if made is None:
        return None
    g, masks, spots = made
    out = g.copy()
    for m, (r, c) in zip(masks, spots):
        out[r + 1:r + m.shape[0] - 1, c + 1:c + m.shape[1] - 1] = p["inside"]
    return g, out


def _shoot(p, g):
    dr, dc = _DIRS[p["direction"]]
    h, w = g.shape
    out = g.copy()
    for r, c in zip(*np.nonzero(g)):
        a, b = r, c
        while 0 <= a < h and 0 <= b < w:
            out[a, b] = g[r, c]
            a, b = a + dr, b + dc
    return out


@family("lines_to_border", "objects", "every dot shoots a line of its colour to the border in one direction",
        lambda rng, S: {"direction": _choice(rng, list(_DIRS)), "colours": _colours(rng, _int(rng, 1, 3))},
        implied=_pinned(_shoot, _grid(direction=list(_DIRS))))
def _lines_to_border(rng, p, S):
    """Every dot shoots a line of its colour to the border in one direction. Implied when: every direction that
    reproduces each demonstration gives the test output."""
    h, w = _size(rng, 3, S)
    d = p["direction"]
    lanes = h if d in ("left", "right") else w  # one dot per lane so lines never cross
    n = _int(rng, 1, max(1, lanes // 2))
    chosen = rng.choice(lanes, size=n, replace=False)
    g = np.zeros((h, w), dtype=np.uint8)
    for lane in chosen.tolist():
        col = _choice(rng, p["colours"])
        if d in ("left", "right"):
            g[lane, _int(rng, 0, w - 1)] = col
        else:
            g[_int(rng, 0, h - 1), lane] = col
    return g, _shoot(p, g)


def _one_dot(rng, p, S):
    """An empty grid (sides >= 3) with one dot of a task colour."""
    h, w = _size(rng, 3, S)
    r, c = _int(rng, 0, h - 1), _int(rng, 0, w - 1)
    col = _choice(rng, p["colours"])
    g = np.zeros((h, w), dtype=np.uint8)
    g[r, c] = col
    return g


def _the_dot(g):
    cells = np.argwhere(g > 0)
    return None if len(cells) != 1 else (int(cells[0][0]), int(cells[0][1]), g[tuple(cells[0])])


def _cross_rule(p, g):
    dot = _the_dot(g)
    if dot is None:
        return None
    r, c, col = dot
    out = g.copy()
    if p["lines"] in ("row", "both"):
        out[r, :] = col
    if p["lines"] in ("column", "both"):
        out[:, c] = col
    return out


@family("lines_cross", "objects", "one dot extends into its full row, column, or both",
        lambda rng, S: {"lines": _choice(rng, ["row", "column", "both"]), "colours": _colours(rng, _int(rng, 1, 3))},
        implied=_pinned(_cross_rule, _grid(lines=("row", "column", "both"))))
def _lines_cross(rng, p, S):
    """One dot extends into its full row, its column, or both. Implied when: each of row / column / both that
    reproduces every demonstration gives the test output."""
    g = _one_dot(rng, p, S)
    return g, _cross_rule(p, g)


def _diagonal_rule(p, g):
    dot = _the_dot(g)
    if dot is None:
        return None
    r, c, col = dot
    ii, jj = np.indices(g.shape)
    out = g.copy()
    if p["which"] in ("main", "both"):
        out[(ii - jj) == (r - c)] = col
    if p["which"] in ("anti", "both"):
        out[(ii + jj) == (r + c)] = col
    return out


@family("diagonals", "objects", "one dot extends along its diagonal, anti-diagonal, or both, to the border",
        lambda rng, S: {"which": _choice(rng, ["main", "anti", "both"]), "colours": _colours(rng, _int(rng, 1, 3))},
        implied=_pinned(_diagonal_rule, _grid(which=("main", "anti", "both"))))
def _diagonals(rng, p, S):
    """One dot extends along its diagonal, its anti-diagonal, or both. Implied when: each of main / anti / both
    that reproduces every demonstration gives the test output (a dot in a corner shows only one diagonal)."""
    g = _one_dot(rng, p, S)
    return g, _diagonal_rule(p, g)


def _connect_rule(p, g):
    t = g if p["axis"] == "row" else g.T
    out = t.copy()
    for lane, row in enumerate(t):
        dots = np.flatnonzero(row)
        if len(dots) == 0:
            continue
        if len(dots) != 2 or row[dots[0]] != row[dots[1]]:
            return None
        out[lane, dots[0] + 1:dots[1]] = p["line"]
    return out if p["axis"] == "row" else out.T.copy()


@family("connect_pairs", "objects", "two dots of one colour in a row (or column) are joined by a task-colour line",
        lambda rng, S: {"axis": _choice(rng, ["row", "column"]), "line": _colours(rng, 1)[0]},
        implied=_pinned(_connect_rule, _grid(axis=("row", "column"), line=_COLOURS)))
def _connect_pairs(rng, p, S):
    """Two dots of one colour in a row (or column) are joined by a line of the task's colour. Implied when: every
    (axis, line colour) that reproduces each demonstration gives the test output."""
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


_OFFSETS = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if abs(dy) >= 2 or abs(dx) >= 2]


def _copy_rule(p, g):
    rows, cols = np.nonzero(g)
    to_r, to_c = rows + p["dy"], cols + p["dx"]
    if len(rows) and (to_r.min() < 0 or to_c.min() < 0 or to_r.max() >= g.shape[0] or to_c.max() >= g.shape[1]):
        return None  # the copy would leave the grid
    out = g.copy()
    out[to_r, to_c] = g[rows, cols]
    return out


@family("copy_object", "objects", "the one object is copied to a fixed offset (dy, dx within -3..3)", _offset_params,
        implied=_pinned(_copy_rule, lambda p: [{"dy": dy, "dx": dx} for dy, dx in _OFFSETS]))
def _copy_object(rng, p, S):
    """The one object is copied to a fixed offset (dy, dx), each within -3..3, one of them at least 2 away; the
    original stays. Implied when: every offset of that range that reproduces each demonstration gives the test
    output."""
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


def _denoise_rule(p, g):
    noise = g == p["noise"]
    padded = np.pad(noise, 1)
    neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    out = g.copy()
    out[noise & ~neighbours] = 0
    return out


@family("denoise", "objects", "isolated single noise cells are removed; the solid shapes stay",
        lambda rng, S: {"noise": _colours(rng, 1)[0]}, implied=_pinned(_denoise_rule, _grid(noise=_COLOURS)))
def _denoise(rng, p, S):
    """Isolated single cells of the task's noise colour are removed; the solid shapes stay. Implied when: every
    noise colour that reproduces each demonstration gives the test output."""
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


def _extend_rule(p, g):
    t = g if p["axis"] == "rows" else g.T
    filled = np.flatnonzero(t.any(axis=1))
    if len(filled) == 0 or (filled[-1] + 1) % 2:
        return None
    period = (filled[-1] + 1) // 2
    if not np.array_equal(t[:period], t[period:2 * period]):
        return None
    full = np.concatenate([t[:period]] * (t.shape[0] // period + 1), axis=0)[:t.shape[0]]
    return full if p["axis"] == "rows" else full.T.copy()


@family("extend_pattern", "objects", "the repeating rows (or columns) at the start continue to fill the grid",
        lambda rng, S: {"axis": _choice(rng, ["rows", "columns"]), "colours": _colours(rng, _int(rng, 2, 3))},
        implied=_pinned(_extend_rule, _grid(axis=("rows", "columns"))))
def _extend_pattern(rng, p, S):
    """The first rows (or columns), a unit shown twice, repeat to fill the grid. Implied when: each of rows /
    columns that reproduces every demonstration gives the test output."""
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


# --------------------------------------------------------------------------------------------- counting
def _count_bar_rule(p, g):
    n = int((g == p["colour"]).sum())
    if n == 0:
        return None
    return np.full((n, 1) if p["vertical"] else (1, n), p["colour"], dtype=np.uint8)


@family("count_bar", "counting", "the number of cells of a task colour becomes a bar of that length",
        lambda rng, S: {"colour": _colours(rng, 1)[0], "vertical": bool(rng.random() < 0.5)},
        implied=_pinned(_count_bar_rule, _grid(colour=_COLOURS, vertical=(False, True))))
def _count_bar(rng, p, S):
    """The number of cells of the task's colour becomes a bar of that colour and length, upright or lying. Implied
    when: every (colour, orientation) that reproduces each demonstration gives the test output (a bar of length 1
    shows no orientation)."""
    h, w = _size(rng, 3, S)
    g = _noise(rng, h, w, _colours(rng, _int(rng, 1, 2), exclude=(p["colour"],)), rng.uniform(0.0, 0.3))
    n = _int(rng, 1, min(S, h * w // 3))
    free = np.flatnonzero(g.ravel() == 0)
    if len(free) < n:
        return None
    g.ravel()[rng.choice(free, size=n, replace=False)] = p["colour"]
    return g, _count_bar_rule(p, g)


def _majority_rule(p, g):
    vals, counts = np.unique(g[g > 0], return_counts=True)
    if len(vals) < 2:  # no colour, or one: neither "most" nor "least" frequent tells anything
        return None
    target = counts.max() if p["pick"] == "most" else counts.min()
    if (counts == target).sum() != 1:
        return None
    return np.full((p["k"], p["k"]), vals[int(np.argmax(counts == target))], dtype=np.uint8)


@family("majority_colour", "counting", "the answer is a k x k square of the most (or least) frequent colour",
        lambda rng, S: {"k": _int(rng, 1, 3), "pick": _choice(rng, ["most", "least"])},
        implied=_pinned(_majority_rule, _grid(k=(1, 2, 3), pick=("most", "least"))))
def _majority_colour(rng, p, S):
    """The answer is a k x k square (k = 1..3) of the one most (or least) frequent colour. Implied when: every
    (k, most / least) that reproduces each demonstration gives the test output."""
    g = _noise(rng, *_size(rng, 3, S), _colours(rng, _int(rng, 2, 4)), rng.uniform(0.4, 0.9))
    out = _majority_rule(p, g)
    return None if out is None else (g, out)


def _sort_rule(p, g):
    h, w = g.shape
    bars = []
    for j in range(w):
        col = g[:, j]
        height = int((col > 0).sum())
        if (height and not (col[h - height:] == col[-1]).all()) or col[:h - height].any():
            return None  # not one solid bar of one colour standing on the floor
        bars.append((height, col[-1]))
    slots = [j for j in range(w) if bars[j][0]]
    ordered = sorted((bars[j] for j in slots), key=lambda b: b[0], reverse=p["order"] == "descending")
    out = np.zeros_like(g)
    for j, (height, colour) in zip(slots, ordered):
        out[h - height:, j] = colour
    return out


@family("sort_bars", "counting", "bars standing on the floor are reordered by height (ascending or descending)",
        lambda rng, S: {"order": _choice(rng, ["ascending", "descending"]), "spaced": bool(rng.random() < 0.5)},
        implied=_pinned(_sort_rule, _grid(order=("ascending", "descending"))))
def _sort_bars(rng, p, S):
    """Bars standing on the floor are reordered by height, ascending or descending, in the places bars stand.
    Implied when: each order that reproduces every demonstration gives the test output."""
    h = _int(rng, 3, S)
    step = 2 if p["spaced"] else 1
    n = _int(rng, 2, min(h, (S + step - 1) // step))
    heights = rng.choice(np.arange(1, h + 1), size=n, replace=False).tolist()
    cols = [_choice(rng, list(range(1, 10))) for _ in range(n)]
    w = (n - 1) * step + 1
    g = np.zeros((h, w), dtype=np.uint8)
    for i, (ht, col) in enumerate(zip(heights, cols)):
        g[h - ht:, i * step] = col
    return g, _sort_rule(p, g)


@family("bounding_box", "objects", "the empty cells of every object's bounding box are painted a task colour",
        lambda rng, S: {"colour": _colours(rng, 1)[0]}, implied=_changed_to("colour"))
def _bounding_box(rng, p, S):
    """The empty cells of every object's bounding box are painted the task's colour. Implied when: some
    demonstration shows a cell becoming that colour."""
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


def _keep_rule(p, g):
    m = _extreme_object(g, p["pick"])
    return None if m is None else np.where(m, g, 0).astype(np.uint8)


@family("keep_largest", "objects", "only the largest (or smallest) object is kept",
        lambda rng, S: {"pick": _choice(rng, ["largest", "smallest"]), "colours": _colours(rng, _int(rng, 1, 3))},
        implied=_pinned(_keep_rule, _grid(pick=("largest", "smallest"))))
def _keep_largest(rng, p, S):
    """Only the one largest (or smallest) object is kept. Implied when: each of largest / smallest that reproduces
    every demonstration gives the test output."""
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


def _frame_rule(p, g):
    if p["pad"]:
        out = np.full((g.shape[0] + 2, g.shape[1] + 2), p["colour"], dtype=np.uint8)
        out[1:-1, 1:-1] = g
        return out
    out = g.copy()
    out[0, :] = out[-1, :] = p["colour"]
    out[:, 0] = out[:, -1] = p["colour"]
    return out


@family("frame", "objects", "a one-cell frame of a task colour: drawn over the edge, or added around the grid",
        lambda rng, S: {"colour": _colours(rng, 1)[0], "pad": bool(rng.random() < 0.5)},
        implied=_pinned(_frame_rule, _grid(colour=_COLOURS, pad=(False, True))))
def _frame(rng, p, S):
    """A one-cell frame of the task's colour, drawn over the grid's edge or added around it. Implied when: every
    (colour, over / around) that reproduces each demonstration gives the test output."""
    if p["pad"]:
        g = _noise(rng, *_size(rng, 1, S - 2), _colours(rng, _int(rng, 1, 3), exclude=(p["colour"],)),
                   rng.uniform(0.2, 0.6))
        return g, _frame_rule(p, g)
    g = _noise(rng, *_size(rng, 3, S), _colours(rng, _int(rng, 1, 3), exclude=(p["colour"],)), rng.uniform(0.2, 0.6))
    return g, _frame_rule(p, g)


_OPS = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
        "nor": lambda a, b: ~np.logical_or(a, b)}


def _halves_rule(p, g):
    t = g.T if p["vertical"] else g
    width = t.shape[1]
    w = width // 2
    if width % 2 == 0 or not (t[:, w] == p["colours"][2]).all():
        return None
    out = np.where(_OPS[p["op"]](t[:, :w] > 0, t[:, w + 1:] > 0), p["colours"][3], 0).astype(np.uint8)
    return out.T.copy() if p["vertical"] else out


@family("halves_logic", "objects", "two halves split by a divider combine cell by cell (and/or/xor/nor)",
        lambda rng, S: {"op": _choice(rng, list(_OPS)), "colours": _colours(rng, 4),
                        "vertical": bool(rng.random() < 0.5)},
        implied=_pinned(_halves_rule, _grid(op=list(_OPS), vertical=(False, True))))
def _halves_logic(rng, p, S):
    """Two halves split by a divider line combine cell by cell (and / or / xor / nor) into the task's colour.
    Implied when: every (operation, split direction) that reproduces each demonstration gives the test output
    (e.g. or and xor differ only where both halves are coloured)."""
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
