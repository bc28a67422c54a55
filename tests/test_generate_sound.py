"""Generated tasks are sound: over 2,030 (family, seed, size) draws, sizes 6..30, no family raises and every test
output is implied by its task's demonstrations.

The judge here is independent of the families' own rule code (nothing from `families` is called): for each family
it enumerates the rules the family's description allows (every rotation/reflection, every shift within 2, every
colour, ...) or infers a table from the demonstrations (a colour map, a size -> colour table), keeps what reproduces
every demonstration, and requires that all of it answers the test with the test's output. On top of that, two checks
that know nothing of the family: every colour of the test output appears in a demonstration output or the test input,
and the test output's size follows a size relation (per side: a*in + b, sides kept or swapped) that holds on every
demonstration.
"""

from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest

from arcsolver.data.families import FAMILIES
from arcsolver.data.generate import generate_task

SIZES = (6, 6, 7, 7, 8, 9, 10, 12, 16, 30)  # max sizes, the smallest supported (6) most often
DRAWS_PER_FAMILY = 58  # x 35 families = 2,030 draws
COLOURS = range(1, 10)
SIZE_FROM_CONTENT = {"crop_object", "crop_colour", "count_bar"}  # output sides are counts, not a size relation


# ----------------------------------------------------------------------------------------------- small tools
def same(a, b) -> bool:
    return a is not None and a.shape == b.shape and bool((a == b).all())


def answers(rules, train, test_input) -> list:
    """The test answers of every rule (a function grid -> grid or None) that reproduces each demonstration."""
    return [rule(test_input) for rule in rules if all(same(rule(a), b) for a, b in train)]


@lru_cache(maxsize=4096)
def _parts(shape, data) -> tuple:
    g = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    h, w = shape
    label = -np.ones(shape, dtype=int)
    parts = []
    for r in range(h):
        for c in range(w):
            if g[r, c] and label[r, c] < 0:
                cells, todo = [], [(r, c)]
                label[r, c] = len(parts)
                while todo:
                    a, b = todo.pop()
                    cells.append((a, b))
                    for x, y in ((a - 1, b), (a + 1, b), (a, b - 1), (a, b + 1)):
                        if 0 <= x < h and 0 <= y < w and label[x, y] < 0 and g[x, y] == g[r, c]:
                            label[x, y] = len(parts)
                            todo.append((x, y))
                parts.append(tuple(cells))
    return tuple(parts)


def parts(g) -> tuple:
    """4-connected same-colour groups of coloured cells, each a tuple of (row, col)."""
    g = np.ascontiguousarray(g, dtype=np.uint8)
    return _parts(g.shape, g.tobytes())


def one_part(g, pick):
    sizes = [len(p) for p in parts(g)]
    if not sizes:
        return None
    n = max(sizes) if pick == "largest" else min(sizes)
    return parts(g)[sizes.index(n)] if sizes.count(n) == 1 else None


def bbox_of(cells):
    rs, cs = [r for r, _ in cells], [c for _, c in cells]
    return slice(min(rs), max(rs) + 1), slice(min(cs), max(cs) + 1)


def inferred_map(train, test_input, keys=lambda g: g):
    """Infer a cell-wise map from the demonstrations (None if it contradicts itself), apply it to the test input
    (None if the test input has a value no demonstration maps)."""
    table = {}
    for a, b in train:
        if a.shape != b.shape:
            return None
        for x, y in zip(keys(a).ravel().tolist(), b.ravel().tolist()):
            if table.setdefault(x, y) != y:
                return None
    ks = keys(test_input).ravel().tolist()
    if any(k not in table for k in ks):
        return None
    return np.array([table[k] for k in ks], dtype=np.uint8).reshape(test_input.shape)


# ----------------------------------------------------------------------------------------------- rules, written here
def d8(g):
    return [np.rot90(g, k) for k in range(4)] + [np.rot90(np.fliplr(g), k) for k in range(4)]


def shift(g, dy, dx, wrap):
    if wrap:
        return np.roll(np.roll(g, dy, axis=0), dx, axis=1)
    h, w = g.shape
    return np.pad(g, 2)[2 - dy:2 - dy + h, 2 - dx:2 - dx + w]


def tiled(g, a, b, mirror):
    rows = []
    for i in range(a):
        row = []
        for j in range(b):
            t = np.flipud(g) if mirror and i % 2 else g
            row.append(np.fliplr(t) if mirror and j % 2 else t)
        rows.append(np.hstack(row))
    return np.vstack(rows)


def mirror_completed(g, axis):
    t = g if axis == "lr" else g.T
    if t.shape[1] % 2 or t[:, t.shape[1] // 2:].any():
        return None
    left = t[:, :t.shape[1] // 2]
    full = np.hstack([left, np.fliplr(left)])
    return full if axis == "lr" else full.T


def fall(g, d):
    t = g if d in ("left", "right") else g.T
    out = np.zeros_like(t)
    for i, lane in enumerate(t):
        vals = lane[lane > 0]
        if d in ("right", "down"):
            out[i, len(lane) - len(vals):] = vals
        else:
            out[i, :len(vals)] = vals
    return out if d in ("left", "right") else out.T


def shoot(g, d):
    step = {"down": (1, 0), "up": (-1, 0), "right": (0, 1), "left": (0, -1)}[d]
    out = g.copy()
    h, w = g.shape
    for r, c in np.argwhere(g > 0).tolist():
        k = 0
        while 0 <= r + k * step[0] < h and 0 <= c + k * step[1] < w:
            out[r + k * step[0], c + k * step[1]] = g[r, c]
            k += 1
    return out


def single_dot(g):
    cells = np.argwhere(g > 0).tolist()
    return cells[0] if len(cells) == 1 else None


def cross(g, lines):
    dot = single_dot(g)
    if dot is None:
        return None
    r, c = dot
    out = g.copy()
    if lines != "column":
        out[r] = g[r, c]
    if lines != "row":
        out[:, c] = g[r, c]
    return out


def diagonal(g, which):
    dot = single_dot(g)
    if dot is None:
        return None
    r, c = dot
    out = g.copy()
    for (a, b) in np.ndindex(*g.shape):
        if (which != "anti" and a - b == r - c) or (which != "main" and a + b == r + c):
            out[a, b] = g[r, c]
    return out


def connect(g, axis, line):
    t = g if axis == "row" else g.T
    out = t.copy()
    for i, lane in enumerate(t):
        dots = np.nonzero(lane)[0]
        if len(dots) not in (0, 2) or (len(dots) == 2 and lane[dots[0]] != lane[dots[1]]):
            return None
        if len(dots) == 2:
            out[i, dots[0] + 1:dots[1]] = line
    return out if axis == "row" else out.T


def copied(g, dy, dx):
    out = g.copy()
    for r, c in np.argwhere(g > 0).tolist():
        if not (0 <= r + dy < g.shape[0] and 0 <= c + dx < g.shape[1]):
            return None
        out[r + dy, c + dx] = g[r, c]
    return out


def denoised(g, noise):
    out = g.copy()
    h, w = g.shape
    for r, c in np.argwhere(g == noise).tolist():
        if not any(0 <= x < h and 0 <= y < w and g[x, y] == noise
                   for x, y in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))):
            out[r, c] = 0
    return out


def extended(g, axis):
    t = g if axis == "rows" else g.T
    used = [i for i in range(t.shape[0]) if t[i].any()]
    if not used:
        return None
    n = used[-1] + 1
    for p in range(1, n // 2 + 1):
        if all((t[i] == t[i - p]).all() for i in range(p, n)):
            out = np.array([t[i % p] for i in range(t.shape[0])])
            return out if axis == "rows" else out.T
    return None


def bar(g, colour, vertical):
    n = int((g == colour).sum())
    return None if n == 0 else np.full((n, 1) if vertical else (1, n), colour, dtype=np.uint8)


def extreme_colour(g, pick):
    """The most (or least) frequent colour of `g`, None when fewer than two colours or a tie decide it."""
    ranked = Counter(g[g > 0].tolist()).most_common()
    if len(ranked) < 2:
        return None
    if pick == "least":
        ranked = ranked[::-1]
    return None if ranked[0][1] == ranked[1][1] else ranked[0][0]


def square_of(g, k, pick):
    c = extreme_colour(g, pick)
    return None if c is None else np.full((k, k), c, dtype=np.uint8)


def sorted_bars(g, order):
    h, w = g.shape
    bars = []
    for j in range(w):
        col = g[:, j].tolist()
        n = sum(1 for v in col if v)
        if col != [0] * (h - n) + [col[-1]] * n:
            return None
        bars.append((n, col[-1]))
    slots = [j for j, b in enumerate(bars) if b[0]]
    new = sorted((bars[j] for j in slots), key=lambda b: b[0] if order == "ascending" else -b[0])
    out = np.zeros_like(g)
    for j, (n, v) in zip(slots, new):
        out[h - n:, j] = v
    return out


def logic(g, op, vertical, colour):
    t = g.T if vertical else g
    if t.shape[1] % 2 == 0:
        return None
    w = t.shape[1] // 2
    div = set(t[:, w].tolist())
    if len(div) != 1 or 0 in div:
        return None
    a, b = t[:, :w] > 0, t[:, w + 1:] > 0
    on = {"and": a & b, "or": a | b, "xor": a ^ b, "nor": ~(a | b)}[op]
    out = np.where(on, colour, 0).astype(np.uint8)
    return out.T if vertical else out


def enclosed(g):
    """Empty cells that no path of empty cells joins to the border."""
    h, w = g.shape
    outside = np.zeros(g.shape, dtype=bool)
    todo = [(r, c) for r in range(h) for c in range(w) if (r in (0, h - 1) or c in (0, w - 1)) and g[r, c] == 0]
    for r, c in todo:
        outside[r, c] = True
    while todo:
        a, b = todo.pop()
        for x, y in ((a - 1, b), (a + 1, b), (a, b - 1), (a, b + 1)):
            if 0 <= x < h and 0 <= y < w and g[x, y] == 0 and not outside[x, y]:
                outside[x, y] = True
                todo.append((x, y))
    return (g == 0) & ~outside


def interior(g):
    """Coloured cells whose eight neighbours all have their colour (the inside of a solid rectangle)."""
    h, w = g.shape
    inside = np.zeros(g.shape, dtype=bool)
    for r in range(1, h - 1):
        for c in range(1, w - 1):
            inside[r, c] = bool(g[r, c]) and bool((g[r - 1:r + 2, c - 1:c + 2] == g[r, c]).all())
    return inside


_MASKS: dict = {}


def painted(where, colour):
    """A rule: the cells `where(g)` take `colour` (the mask computed once per grid)."""
    def rule(g):
        key = (where, g.shape, g.tobytes())
        if key not in _MASKS:
            _MASKS[key] = where(g)
        out = g.copy()
        out[_MASKS[key]] = colour
        return out
    return rule


def boxes_gaps(g):
    m = np.zeros(g.shape, dtype=bool)
    for cells in parts(g):
        m[bbox_of(cells)] = True
    return m & (g == 0)


def with_largest(g, colour):
    part = one_part(g, "largest")
    if part is None:
        return None
    out = g.copy()
    for r, c in part:
        out[r, c] = colour
    return out


def kept(g, pick):
    part = one_part(g, pick)
    if part is None:
        return None
    out = np.zeros_like(g)
    for r, c in part:
        out[r, c] = g[r, c]
    return out


def cropped(g, pick):
    part = one_part(g, pick)
    return None if part is None else g[bbox_of(part)]


def framed(g, colour, pad):
    if pad:
        return np.pad(g, 1, constant_values=colour)
    out = g.copy()
    out[[0, -1], :] = colour
    out[:, [0, -1]] = colour
    return out


def by_count(g, pick):
    c = extreme_colour(g, pick)
    return None if c is None else np.where(g > 0, c, 0).astype(np.uint8)


def size_keys(g):
    """Each cell's object size (0 for the background), for inferring a size -> colour table."""
    k = np.zeros(g.shape, dtype=int)
    for cells in parts(g):
        for r, c in cells:
            k[r, c] = len(cells)
    return k


# ----------------------------------------------------------------------------------------------- per family
def candidates(*values):
    return list(itertools.product(*values))


DIRS = ("down", "up", "right", "left")
SHIFTS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy or dx]
OFFSETS = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if max(abs(dy), abs(dx)) >= 2]
REPS = ((1, 2), (2, 1), (2, 2), (1, 3), (3, 1))
SIDES = {"right": lambda g: np.hstack([g, np.fliplr(g)]), "left": lambda g: np.hstack([np.fliplr(g), g]),
         "below": lambda g: np.vstack([g, np.flipud(g)]), "above": lambda g: np.vstack([np.flipud(g), g])}

RULES = {
    "flip": lambda: [lambda g, k=k: d8(g)[k] for k in range(8)],
    "rotate": lambda: [lambda g, k=k: d8(g)[k] for k in range(8)],
    "transpose": lambda: [lambda g, k=k: d8(g)[k] for k in range(8)],
    "translate": lambda: [lambda g, s=s, w=w: shift(g, *s, w) for s in SHIFTS for w in (False, True)],
    "scale_up": lambda: [lambda g, k=k: np.repeat(np.repeat(g, k, 0), k, 1) for k in (2, 3)],
    "scale_down": lambda: [lambda g, k=k: g[::k, ::k] if same(np.repeat(np.repeat(g[::k, ::k], k, 0), k, 1), g)
                           else None for k in (2, 3)],
    "crop_object": lambda: [lambda g, p=p: cropped(g, p) for p in ("largest", "smallest")],
    "crop_colour": lambda: [lambda g, c=c: g[bbox_of(np.argwhere(g == c).tolist())] if (g == c).any() else None
                            for c in COLOURS],
    "tile": lambda: [lambda g, r=r, m=m: tiled(g, *r, m) for r in REPS for m in (False, True)],
    "mirror_concat": lambda: list(SIDES.values()),
    "mirror_complete": lambda: [lambda g, a=a: mirror_completed(g, a) for a in ("lr", "ud")],
    "recolour_largest": lambda: [lambda g, c=c: with_largest(g, c) for c in COLOURS],
    "recolour_by_count": lambda: [lambda g, p=p: by_count(g, p) for p in ("most", "least")],
    "invert": lambda: [lambda g: (np.where(g == 0, g.max(), 0).astype(np.uint8)
                                  if len(set(g[g > 0].tolist())) == 1 else None)]
                      + [lambda g, c=c: np.where(g == 0, c, 0).astype(np.uint8) for c in COLOURS],
    "gravity": lambda: [lambda g, d=d: fall(g, d) for d in DIRS],
    "fill_enclosed": lambda: [painted(enclosed, c) for c in COLOURS],
    "hollow": lambda: [painted(interior, c) for c in range(10)],
    "lines_to_border": lambda: [lambda g, d=d: shoot(g, d) for d in DIRS],
    "lines_cross": lambda: [lambda g, x=x: cross(g, x) for x in ("row", "column", "both")],
    "diagonals": lambda: [lambda g, x=x: diagonal(g, x) for x in ("main", "anti", "both")],
    "connect_pairs": lambda: [lambda g, a=a, c=c: connect(g, a, c) for a, c in candidates(("row", "column"), COLOURS)],
    "copy_object": lambda: [lambda g, o=o: copied(g, *o) for o in OFFSETS],
    "denoise": lambda: [lambda g, c=c: denoised(g, c) for c in COLOURS],
    "extend_pattern": lambda: [lambda g, a=a: extended(g, a) for a in ("rows", "columns")],
    "count_bar": lambda: [lambda g, c=c, v=v: bar(g, c, v) for c, v in candidates(COLOURS, (False, True))],
    "majority_colour": lambda: [lambda g, k=k, p=p: square_of(g, k, p) for k, p in candidates((1, 2, 3),
                                                                                              ("most", "least"))],
    "sort_bars": lambda: [lambda g, o=o: sorted_bars(g, o) for o in ("ascending", "descending")],
    "bounding_box": lambda: [painted(boxes_gaps, c) for c in COLOURS],
    "keep_largest": lambda: [lambda g, p=p: kept(g, p) for p in ("largest", "smallest")],
    "frame": lambda: [lambda g, c=c, p=p: framed(g, c, p) for c, p in candidates(COLOURS, (False, True))],
    "halves_logic": lambda: [lambda g, o=o, v=v, c=c: logic(g, o, v, c)
                             for o, v, c in candidates(("and", "or", "xor", "nor"), (False, True), COLOURS)],
}

# families whose rule is a table the demonstrations must show entry by entry
TABLES = {
    "recolour_map": lambda train, x: inferred_map(train, x),
    "colour_background": lambda train, x: inferred_map(train, x),
    "remove_colour": lambda train, x: inferred_map(train, x),
    "recolour_by_size": lambda train, x: inferred_map(train, x, keys=size_keys),
}


def judged_answers(name, train, test_input) -> list:
    if name in TABLES:
        return [TABLES[name](train, test_input)]
    return answers(RULES[name](), train, test_input)


def colour_problem(train, test):
    shown = set(np.unique(test[0]).tolist()).union(*(np.unique(b).tolist() for _, b in train))
    extra = set(np.unique(test[1]).tolist()) - shown
    return f"test output colours {sorted(extra)} shown nowhere" if extra else None


def size_predictions(train, test_input) -> set:
    """Test output sizes predicted by every relation (per side a*in + b, sides kept or swapped) true on all demos."""
    out = set()
    for swap in (False, True):
        per_side = []
        for side in (0, 1):
            src = 1 - side if swap else side
            preds = set()
            for a in map(Fraction, (0, Fraction(1, 3), Fraction(1, 2), 1, 2, 3)):
                bs = {b.shape[side] - a * i.shape[src] for i, b in train}
                if len(bs) == 1:
                    preds.add(a * test_input.shape[src] + bs.pop())
            per_side.append(preds)
        out |= {(h, w) for h in per_side[0] for w in per_side[1]}
    return out


# ----------------------------------------------------------------------------------------------- the tests
def test_every_family_is_judged_here():
    assert sorted([*RULES, *TABLES]) == sorted(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_draw_is_sound(name):
    problems = []
    for j in range(DRAWS_PER_FAMILY):
        size = SIZES[j % len(SIZES)]
        task = generate_task(name, seed=j, index=j % 3, max_size=size)  # must not raise
        train, test = task.train, task.test[0]
        got = judged_answers(name, train, test[0])
        why = None
        if not got or any(not same(a, test[1]) for a in got):
            why = "test output not implied: " + ("no rule fits" if not got else
                                                 f"{sum(not same(a, test[1]) for a in got)} of {len(got)} fitting "
                                                 "rules answer differently")
        why = why or colour_problem(train, test)
        if not why and name not in SIZE_FROM_CONTENT and test[1].shape not in size_predictions(train, test[0]):
            why = f"test output size {test[1].shape} follows no size relation of the demonstrations"
        if why:
            problems.append(f"seed {j} size {size}: {why}")
    assert not problems, problems[:5]


def test_the_judge_catches_unsound_tasks():
    """The judge can fail: a test nobody could infer (a colour or size the demonstrations never show, a rule left
    open by the demonstrations) is refused."""
    g = np.array([[1, 2], [0, 1]], dtype=np.uint8)
    h = np.array([[3, 0], [1, 2]], dtype=np.uint8)
    # recolour_map: the test input's colour 3 never occurs in a demonstration input
    train = [(g, np.where(g == 1, 5, g).astype(np.uint8))]
    assert judged_answers("recolour_map", train, h) == [None]
    # flip: a demonstration symmetric under both flips leaves lr / ud open
    sym = np.array([[1, 0, 1], [0, 2, 0], [1, 0, 1]], dtype=np.uint8)
    got = judged_answers("flip", [(sym, sym[:, ::-1].copy())], g)
    assert len({a.tobytes() for a in got}) > 1
    # diagonals: a dot in the corner cannot tell "main" from "both"
    corner, centre = np.zeros((4, 4), np.uint8), np.zeros((5, 5), np.uint8)
    corner[0, 0] = centre[2, 2] = 4
    got = judged_answers("diagonals", [(corner, np.diag([4] * 4).astype(np.uint8))], centre)
    assert len({a.tobytes() for a in got}) == 2
    # colours: the test output's 7 is shown nowhere
    assert colour_problem([(g, h)], (g, np.full((2, 2), 7, np.uint8)))
    # sizes: demonstrations keep the size, the test doubles it
    assert (4, 4) not in size_predictions([(g, h), (sym, sym)], g)
