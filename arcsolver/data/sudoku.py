"""Sudoku: a seeded generator with verified unique solutions, the public CSV reader, validity-preserving augmentation
and the reference encoding. Sizes 4x4 (2x2 boxes), 6x6 (2x3 boxes) and 9x9 (3x3 boxes), so CPU sanity runs exist.

Generator: a random full grid (randomised depth-first fill), then clues removed in random order while the puzzle
keeps exactly one solution (checked by the solver with a solution limit of 2). Difficulty is the number of
backtracks (dead ends) a deterministic minimum-remaining-values solver meets on the final puzzle. All search runs in
numba; randomness is a splitmix64 stream from the seed, so a seed gives identical puzzles everywhere.

Encoding (reference, docs/trm.md, 'Data'): blank -> 1, digit d -> d + 1, PAD 0 unused; vocabulary 11 for every
size; labels are the full solution. Augmentation (per row, applied by the loader on token rows): digit relabelling,
band and row-within-band shuffles, stack and column-within-stack shuffles, and a transpose when boxes are square.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numba
import numpy as np

from arcsolver.data import dense_dataset
from arcsolver.data.rng import shuffle_range, splitmix64
from arcsolver.data.settings import SUDOKU
from arcsolver.runtime.errors import InputError

BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
VOCAB_SIZE = 11


@numba.njit(cache=True)
def _popcount(x: np.int64) -> np.int64:
    c = 0
    while x:
        x &= x - 1
        c += 1
    return c


@numba.njit(cache=True)
def _search(grid, side, br, bc, limit, seed, solution):
    """Depth-first search with minimum-remaining-values. grid: int64 [side*side] (0 blank), used as scratch (pass a
    copy). seed 0: candidates tried in increasing order; else in a random order. Returns (solutions found
    (capped at limit), backtracks). The first solution found is written to `solution`."""
    n = side * side
    full = (1 << (side + 1)) - 2  # bits 1..side
    rows = np.zeros(side, np.int64)
    cols = np.zeros(side, np.int64)
    boxes = np.zeros(side, np.int64)
    for i in range(n):
        v = grid[i]
        if v:
            r, c = i // side, i % side
            b = (r // br) * (side // bc) + c // bc
            bit = 1 << v
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return 0, 0  # contradictory givens
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
    cell = np.full(n + 1, -1, np.int64)
    remaining = np.zeros(n + 1, np.int64)
    state = np.uint64(seed)
    found = 0
    backtracks = 0
    depth = 0
    pick = True
    while True:
        if pick:
            best, best_count, best_mask = -1, 99, 0
            for i in range(n):
                if grid[i] == 0:
                    r, c = i // side, i % side
                    b = (r // br) * (side // bc) + c // bc
                    m = full & ~(rows[r] | cols[c] | boxes[b])
                    k = _popcount(m)
                    if k < best_count:
                        best, best_count, best_mask = i, k, m
                        if k <= 1:
                            break
            if best < 0:  # solved
                if found == 0:
                    for i in range(n):
                        solution[i] = grid[i]
                found += 1
                if found >= limit:
                    break
                pick = False  # continue searching: backtrack from here
                depth -= 1
                if depth < 0:
                    break
                continue
            cell[depth] = best
            remaining[depth] = best_mask
            pick = False
        i = cell[depth]
        r, c = i // side, i % side
        b = (r // br) * (side // bc) + c // bc
        if grid[i]:  # undo the previous choice at this depth
            bit = 1 << grid[i]
            rows[r] &= ~bit
            cols[c] &= ~bit
            boxes[b] &= ~bit
            grid[i] = 0
        m = remaining[depth]
        if m == 0:
            backtracks += 1
            depth -= 1
            if depth < 0:
                break
            continue
        if seed == 0:
            v = 1
            while not (m >> v) & 1:
                v += 1
        else:
            k = _popcount(m)
            state, x = splitmix64(state)
            j = np.int64(x % np.uint64(k))
            v = 0
            while True:
                v += 1
                if (m >> v) & 1:
                    if j == 0:
                        break
                    j -= 1
        remaining[depth] = m & ~(1 << v)
        grid[i] = v
        bit = 1 << v
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
        depth += 1
        pick = True
    return found, backtracks


def solve(puzzle: np.ndarray) -> tuple[np.ndarray | None, int]:
    """(solution or None, backtracks of the deterministic solver)."""
    side = puzzle.shape[0]
    br, bc = BOXES[side]
    g = puzzle.reshape(-1).astype(np.int64).copy()
    sol = np.zeros(side * side, np.int64)
    found, bt = _search(g, side, br, bc, 1, 0, sol)
    return (sol.reshape(side, side).astype(np.uint8) if found else None), int(bt)


@numba.njit(cache=True)
def _generate_one(side, br, bc, seed):
    n = side * side
    g = np.zeros(n, np.int64)
    sol = np.zeros(n, np.int64)
    _search(g, side, br, bc, 1, seed | 1, sol)  # a random full grid
    puzzle = sol.copy()
    order = np.arange(n)
    shuffle_range(order, 0, n, np.uint64(seed) ^ np.uint64(0x5DEECE66D))  # the order clues are tried for removal
    tmp = np.zeros(n, np.int64)
    scratch = np.zeros(n, np.int64)
    for k in range(n):
        i = order[k]
        keep = puzzle[i]
        puzzle[i] = 0
        for q in range(n):
            tmp[q] = puzzle[q]
        cnt, _ = _search(tmp, side, br, bc, 2, 0, scratch)
        if cnt != 1:
            puzzle[i] = keep
    for q in range(n):
        tmp[q] = puzzle[q]
    _, bt = _search(tmp, side, br, bc, 1, 0, scratch)
    return puzzle, sol, bt


@functools.lru_cache(maxsize=None)
def _group_perms(side: int, size: int) -> np.ndarray:
    """Every permutation of 0..side-1 that permutes the groups of `size` lines and the lines within each group."""
    groups = side // size
    within = list(itertools.permutations(range(size)))
    out = [[gp[g] * size + w[g][i] for g in range(groups) for i in range(size)]
           for gp in itertools.permutations(range(groups)) for w in itertools.product(within, repeat=groups)]
    return np.array(out, np.int64)


@numba.njit(cache=True)
def _canonical(p, rperms, cperms, transpose, best):
    """Smallest digit-relabelled (by first appearance) image of p under the row/column/transpose group -> best."""
    side = p.shape[0]
    cur = np.empty(side * side, np.uint8)
    lut = np.zeros(side + 1, np.int64)
    have = False
    for t in range(2 if transpose else 1):
        for ri in range(rperms.shape[0]):
            for ci in range(cperms.shape[0]):
                lut[:] = 0
                nxt = 1
                state = 0 if have else -1  # -1: smaller so far, 0: equal so far, 1: larger (skip)
                for i in range(side):
                    if state == 1:
                        break
                    for j in range(side):
                        r, c = rperms[ri, i], cperms[ci, j]
                        v = p[c, r] if t == 1 else p[r, c]
                        if v != 0:
                            if lut[v] == 0:
                                lut[v] = nxt
                                nxt += 1
                            v = lut[v]
                        k = i * side + j
                        cur[k] = v
                        if state == 0:
                            if v < best[k]:
                                state = -1
                            elif v > best[k]:
                                state = 1
                                break
                if state == -1:
                    best[:] = cur
                    have = True


def equivalence_key(puzzle: np.ndarray) -> bytes:
    """A key equal for two puzzles iff one is an augmentation of the other (digit relabel, band/row and stack/column
    shuffles, transpose for square boxes): what "never seen in training" must exclude, since training draws these
    augmentations. 4x4 and 6x6 enumerate the group (128 and 3,456 layouts); at 9x9 it has 3.4M layouts and two
    random puzzles are practically never equivalent, so the key is the puzzle itself."""
    p = np.asarray(puzzle, np.uint8)
    side = p.shape[0]
    if side == 9:
        return p.tobytes()
    br, bc = BOXES[side]
    best = np.zeros(side * side, np.uint8)
    _canonical(p, _group_perms(side, br), _group_perms(side, bc), br == bc, best)
    return best.tobytes()


def generate(n: int, side: int = 9, seed: int = 0, min_difficulty: int = 0, exclude: set[bytes] | None = None,
             max_tries: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n distinct puzzles with unique solutions: (puzzles, solutions, difficulty), uint8 [n, side, side].

    `exclude`: `equivalence_key`s of puzzles that must not be generated, nor any augmentation of them."""
    if side not in BOXES:
        raise InputError(f"Sudoku size must be one of {sorted(BOXES)}, got {side}", field="--size")
    br, bc = BOXES[side]
    limit = max_tries or max(1000, 200 * n)

    def draw(s: int):
        p, sol, bt = _generate_one(side, br, bc, s)
        return None if bt < min_difficulty else (p, sol, bt)

    def too_few() -> InputError:
        return InputError(f"could not generate {n} distinct puzzles with difficulty >= {min_difficulty}"
                          + (" that are not augmentations of the training puzzles" if exclude else "") +
                          f" in {limit} tries", field="--generate")

    found = dense_dataset.distinct_puzzles(n, seed, draw, limit, exclude, equivalence_key, too_few)
    puzzles, sols, diffs = zip(*found) if found else ((), (), ())
    shape = (n, side, side)
    return (np.array(puzzles, np.uint8).reshape(shape), np.array(sols, np.uint8).reshape(shape),
            np.array(diffs, np.int64))


def is_valid_solution(grid: np.ndarray) -> bool:
    side = grid.shape[0]
    br, bc = BOXES[side]
    want = set(range(1, side + 1))
    for i in range(side):
        if set(grid[i].tolist()) != want or set(grid[:, i].tolist()) != want:
            return False
    for r in range(0, side, br):
        for c in range(0, side, bc):
            if set(grid[r:r + br, c:c + bc].reshape(-1).tolist()) != want:
                return False
    return True


# -- CSV ---------------------------------------------------------------------------------------------------------

def _parse_cells(s: str, file: str, row: int, field: str) -> np.ndarray:
    side = {16: 4, 36: 6, 81: 9}.get(len(s))
    if side is None:
        raise InputError(f"{len(s)} characters, expected 16, 36 or 81", file=file, task=f"row {row}", field=field)
    out = np.zeros(len(s), np.uint8)
    for i, ch in enumerate(s):
        if ch in ".0":
            continue
        if not ch.isdigit() or int(ch) > side:
            raise InputError(f"character {ch!r} at position {i} is not a digit 1..{side} or '.'", file=file,
                             task=f"row {row}", field=field)
        out[i] = int(ch)
    return out.reshape(side, side)


def _parse_pair(question: str, answer: str, file: str, row: int) -> tuple[np.ndarray, np.ndarray]:
    q = _parse_cells(question.strip(), file, row, "question")
    a = _parse_cells(answer.strip(), file, row, "answer")
    if q.shape != a.shape:
        raise InputError("question and answer sizes differ", file=file, task=f"row {row}", field="answer")
    if (a == 0).any() or not is_valid_solution(a):
        raise InputError("not a complete valid Sudoku", file=file, task=f"row {row}", field="answer")
    if ((q != 0) & (q != a)).any():
        raise InputError("differs from a given of the question", file=file, task=f"row {row}", field="answer")
    return q, a


def read_csv(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The public Sudoku-Extreme format (dense_dataset.read_csv). Returns (puzzles, solutions, rating)."""
    return dense_dataset.read_csv(path, _parse_pair, "puzzles", limit)


def write_csv(path: str | Path, puzzles: np.ndarray, solutions: np.ndarray, ratings=None, source: str = "arcsolver") -> None:
    dense_dataset.write_csv(path, ([source, "".join("." if x == 0 else str(x) for x in p.reshape(-1)),
                                    "".join(str(x) for x in s.reshape(-1)), 0 if ratings is None else ratings[i]]
                                   for i, (p, s) in enumerate(zip(puzzles, solutions))))


# -- encoding and augmentation -------------------------------------------------------------------------------------

def encode(grids: np.ndarray) -> np.ndarray:
    """[n, side, side] (0 blank) -> tokens [n, side*side]: blank 1, digit d -> d + 1."""
    g = np.asarray(grids, np.uint8)
    return (g.reshape(g.shape[0], -1) + 1).astype(np.uint8)


def decode(tokens: np.ndarray, side: int) -> np.ndarray:
    t = np.asarray(tokens).reshape(-1, side, side).astype(np.int64) - 1
    return np.clip(t, 0, None).astype(np.uint8)


def _perm_within_groups(rng, b, side, size):
    """Per row of the batch: a permutation of 0..side-1 that shuffles groups of `size` and members within them."""
    groups = side // size
    gp = np.argsort(rng.random((b, groups)), axis=1)
    wp = np.argsort(rng.random((b, groups, size)), axis=2)
    return (gp[:, :, None] * size + wp).reshape(b, side)


def augment_tokens(inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator, side: int,
                   box: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A random validity-preserving transform per row, the same for a row's input and label."""
    br, bc = box
    B = inputs.shape[0]
    x = inputs.reshape(B, side, side)
    y = labels.reshape(B, side, side)
    # digit relabel: tokens 2..side+1 permuted, blank (1) and PAD (0) kept
    digit = np.argsort(rng.random((B, side)), axis=1) + 2
    lut = np.tile(np.arange(16, dtype=np.uint8), (B, 1))
    lut[:, 2:side + 2] = digit
    rows = _perm_within_groups(rng, B, side, br)  # bands of br rows
    cols = _perm_within_groups(rng, B, side, bc)  # stacks of bc columns
    bi = np.arange(B)[:, None, None]
    x = x[bi, rows[:, :, None], cols[:, None, :]]
    y = y[bi, rows[:, :, None], cols[:, None, :]]
    x = np.take_along_axis(lut, x.reshape(B, -1).astype(np.int64), 1).reshape(B, side, side)
    y = np.take_along_axis(lut, y.reshape(B, -1).astype(np.int64), 1).reshape(B, side, side)
    if br == bc:
        t = rng.random(B) < 0.5
        x[t] = x[t].transpose(0, 2, 1)
        y[t] = y[t].transpose(0, 2, 1)
    return x.reshape(B, -1).astype(np.uint8), y.reshape(B, -1).astype(np.uint8)


# -- prepare -------------------------------------------------------------------------------------------------------

def prepare(out: str | Path, *, generate: int | None = None, csv: str | None = None, csv_test: str | None = None,
            side: int = SUDOKU.side, test_count: int = SUDOKU.test_count, seed: int = SUDOKU.seed,
            min_difficulty: int = SUDOKU.min_difficulty) -> Path:
    if generate is not None:
        if generate <= 0 or test_count <= 0:
            raise InputError("counts must be positive", field="--generate/--test-count")
        tp, ts, td = globals()["generate"](generate, side, seed, min_difficulty)
        exclude = {equivalence_key(p) for p in tp}  # held out = not an augmentation of any training puzzle
        if csv_test:
            ep, es, ed = read_csv(csv_test)
        else:
            ep, es, ed = globals()["generate"](test_count, side, seed + 7919, min_difficulty, exclude=exclude)
        source = f"generated (seed {seed})"
    else:
        tp, ts, td = read_csv(csv)
        if csv_test:
            ep, es, ed = read_csv(csv_test, limit=test_count)
        else:  # split off the last test_count puzzles
            if test_count >= len(tp):
                raise InputError(f"only {len(tp)} puzzles, cannot hold out {test_count}", file=csv, field="--test-count")
            ep, es, ed = tp[-test_count:], ts[-test_count:], td[-test_count:]
            tp, ts, td = tp[:-test_count], ts[:-test_count], td[:-test_count]
        source = str(csv)
        side = tp.shape[1]
    box = BOXES[side]
    meta = {"kind": "sudoku", "seq_len": side * side, "vocab_size": VOCAB_SIZE, "ignore_label_id": None,
            "augment": "sudoku", "side": side, "box": list(box), "seed": seed, "source": source,
            "difficulty": {"train_mean": float(np.mean(td)), "test_mean": float(np.mean(ed))}}
    dense_dataset.write(out, meta, {"train": (encode(tp), encode(ts)), "test": (encode(ep), encode(es))})
    return Path(out)
