"""Regenerate the bundled demo tasks in arcsolver/data/bundled/ (package data; deterministic; run: python
tasks/make_bundled.py).

Each task is a simple, self-made rule on small grids (sides 3..7, so a 10x10 canvas fits them with their EOS
border): four demonstration pairs and one or two test pairs. The JSON files are committed; this script documents
how they were made and lets anyone extend the set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "arcsolver" / "data" / "bundled"


def rand_grid(rng, h, w, density=0.35, palette=(1, 2, 3, 4, 5, 6, 7, 8, 9)):
    g = np.zeros((h, w), dtype=int)
    mask = rng.random((h, w)) < density
    g[mask] = rng.choice(palette, size=mask.sum())
    return g


def gravity(g, axis_down=True):
    out = np.zeros_like(g)
    if axis_down:
        for c in range(g.shape[1]):
            col = [x for x in g[:, c] if x]
            if col:
                out[-len(col):, c] = col
    else:
        for r in range(g.shape[0]):
            row = [x for x in g[r] if x]
            out[r, :len(row)] = row
    return out


def hollow_boxes(rng, h, w):
    """Input: one or two hollow rectangles; output: their interiors filled with the border colour."""
    g = np.zeros((h, w), dtype=int)
    out = g.copy()
    for _ in range(rng.integers(1, 3)):
        bh, bw = rng.integers(3, min(h, 5) + 1), rng.integers(3, min(w, 5) + 1)
        r, c = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
        if g[r:r + bh, c:c + bw].any():
            continue
        col = int(rng.integers(1, 10))
        g[r:r + bh, c:c + bw] = col
        g[r + 1:r + bh - 1, c + 1:c + bw - 1] = 0
        out[r:r + bh, c:c + bw] = col
    return g, out


def extend_down(g):
    out = g.copy()
    for c in range(g.shape[1]):
        if g[0, c]:
            out[:, c] = g[0, c]
    return out


RULES = {
    "flip-lr": lambda rng, g: g[:, ::-1],
    "flip-ud": lambda rng, g: g[::-1, :],
    "rotate-90": lambda rng, g: np.rot90(g),
    "transpose": lambda rng, g: g.T,
    "recolor-1-to-2": None,  # special inputs below
    "gravity-down": lambda rng, g: gravity(g, True),
    "gravity-left": lambda rng, g: gravity(g, False),
    "fill-boxes": None,
    "frame": lambda rng, g: np.pad(g[1:-1, 1:-1], 1, constant_values=8),
    "invert": None,
    "upscale-2x": lambda rng, g: np.kron(g, np.ones((2, 2), dtype=int)),
    "extend-down": None,
}


def make_pair(name, rng):
    if name == "upscale-2x":
        g = rand_grid(rng, int(rng.integers(2, 5)), int(rng.integers(2, 5)), 0.5)
        return g, RULES[name](rng, g)
    h, w = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    if name == "recolor-1-to-2":
        g = rand_grid(rng, h, w, 0.5, palette=(1, 1, 3, 5))
        out = g.copy()
        out[g == 1] = 2
        return g, out
    if name == "fill-boxes":
        h, w = max(h, 5), max(w, 5)
        while True:
            g, out = hollow_boxes(rng, h, w)
            if g.any():
                return g, out
    if name == "invert":
        col = 6
        g = rand_grid(rng, h, w, 0.4, palette=(col,))
        return g, np.where(g == 0, col, 0)
    if name == "extend-down":
        g = np.zeros((h, w), dtype=int)
        cols = rng.choice(w, size=int(rng.integers(1, w)), replace=False)
        g[0, cols] = rng.integers(1, 10, size=len(cols))
        return g, extend_down(g)
    if name == "frame":
        g = rand_grid(rng, h, w, 0.4)
        return g, RULES[name](rng, g)
    g = rand_grid(rng, h, w)
    return g, RULES[name](rng, g)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for i, name in enumerate(RULES):
        rng = np.random.default_rng(1000 + i)
        n_test = 2 if name in ("gravity-down", "flip-lr") else 1
        pairs = []
        while len(pairs) < 4 + n_test:
            a, b = make_pair(name, rng)
            if not np.array_equal(a, b) and all(not np.array_equal(a, p[0]) for p in pairs):
                pairs.append((a, b))
        task = {"train": [{"input": a.tolist(), "output": b.tolist()} for a, b in pairs[:4]],
                "test": [{"input": a.tolist(), "output": b.tolist()} for a, b in pairs[4:]]}
        (OUT / f"{name}.json").write_text(json.dumps(task, separators=(",", ":")) + "\n")
    print(f"wrote {len(RULES)} tasks to {OUT}")


if __name__ == "__main__":
    main()
