"""Mazes: a seeded generator, the public CSV reader ("# SGo", Maze-Hard), dihedral augmentation, reference encoding.

Generator: a depth-first carved maze on the odd cells (a perfect maze: exactly one route between any two cells),
then a fraction of extra walls knocked down to create loops. Start and goal are random open cells; the answer marks
the BFS shortest path. Mazes whose shortest path is not unique are rejected (the label would be ambiguous), and
`hard` keeps only long paths: > 110 on 30x30 as the reference's filter, proportionally (side^2 * 110/900) on smaller
sides unless `min_path` is given. Encoding (docs/trm.md, 'Data'): '#'=1 wall, ' '=2 open, 'S'=3, 'G'=4, 'o'=5
path, PAD 0; vocabulary 6; sequence side*side. Augmentation: the 8 dihedral transforms, per row.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from arcsolver.data.settings import MAZE
from arcsolver.runtime.errors import InputError
from arcsolver.data import dense_dataset, dihedral
from arcsolver.data.rng import splitmix64

CHARSET = "# SGo"
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
VOCAB_SIZE = 6


@numba.njit(cache=True)
def _bfs(grid, side, s):
    """Distances from s over non-wall cells, and the number of shortest paths (capped at 2)."""
    n = side * side
    dist = np.full(n, -1, np.int64)
    ways = np.zeros(n, np.int64)
    q = np.empty(n, np.int64)
    dist[s] = 0
    ways[s] = 1
    head, tail = 0, 1
    q[0] = s
    while head < tail:
        u = q[head]
        head += 1
        r, c = u // side, u % side
        for k in range(4):
            rr = r + (k == 0) - (k == 1)
            cc = c + (k == 2) - (k == 3)
            if rr < 0 or rr >= side or cc < 0 or cc >= side:
                continue
            v = rr * side + cc
            if grid[v] == WALL:
                continue
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                ways[v] = ways[u]
                q[tail] = v
                tail += 1
            elif dist[v] == dist[u] + 1:
                ways[v] = min(2, ways[v] + ways[u])
    return dist, ways


@numba.njit(cache=True)
def _generate_one(side, seed, loop_frac, min_path, tries):
    state = np.uint64(seed)
    n = side * side
    for _ in range(tries):
        g = np.full(n, WALL, np.int64)
        # carve a perfect maze on odd coordinates with an explicit DFS stack
        cells = (side - 1) // 2
        stack = np.empty(cells * cells + 1, np.int64)
        seen = np.zeros(cells * cells, np.bool_)
        state, x = splitmix64(state)
        start = np.int64(x % np.uint64(cells * cells))
        top = 0
        stack[0] = start
        seen[start] = True
        g[(2 * (start // cells) + 1) * side + 2 * (start % cells) + 1] = OPEN
        nb = np.empty(4, np.int64)
        while top >= 0:
            u = stack[top]
            ur, uc = u // cells, u % cells
            k = 0
            if ur > 0 and not seen[u - cells]:
                nb[k] = u - cells
                k += 1
            if ur < cells - 1 and not seen[u + cells]:
                nb[k] = u + cells
                k += 1
            if uc > 0 and not seen[u - 1]:
                nb[k] = u - 1
                k += 1
            if uc < cells - 1 and not seen[u + 1]:
                nb[k] = u + 1
                k += 1
            if k == 0:
                top -= 1
                continue
            state, x = splitmix64(state)
            v = nb[np.int64(x % np.uint64(k))]
            vr, vc = v // cells, v % cells
            g[(2 * vr + 1) * side + 2 * vc + 1] = OPEN
            g[(ur + vr + 1) * side + uc + vc + 1] = OPEN  # the wall between
            seen[v] = True
            top += 1
            stack[top] = v
        # knock down some interior walls to make loops
        for i in range(1, side - 1):
            for j in range(1, side - 1):
                if g[i * side + j] == WALL:
                    state, x = splitmix64(state)
                    if (x >> np.uint64(11)) * (1.0 / 9007199254740992.0) < loop_frac:
                        g[i * side + j] = OPEN
        opens = np.nonzero(g == OPEN)[0]
        if len(opens) < 2:
            continue
        state, x = splitmix64(state)
        s = opens[np.int64(x % np.uint64(len(opens)))]
        state, x = splitmix64(state)
        t = opens[np.int64(x % np.uint64(len(opens)))]
        if s == t:
            continue
        dist, ways = _bfs(g, side, s)
        if dist[t] < min_path or ways[t] != 1:
            continue
        g[s] = START
        g[t] = GOAL
        ans = g.copy()
        # walk back from the goal along strictly decreasing distances (unique by construction)
        u = t
        while dist[u] > 1:
            r, c = u // side, u % side
            for k in range(4):
                rr = r + (k == 0) - (k == 1)
                cc = c + (k == 2) - (k == 3)
                if 0 <= rr < side and 0 <= cc < side:
                    v = rr * side + cc
                    if dist[v] == dist[u] - 1 and g[v] != WALL:
                        break
            ans[v] = PATH
            u = v
        return g, ans, dist[t]
    return np.zeros(0, np.int64), np.zeros(0, np.int64), -1


def default_min_path(side: int) -> int:
    return int(round(110 * side * side / 900))


def equivalence_key(question: np.ndarray) -> bytes:
    """A key equal for two mazes iff one is a dihedral transform (the training augmentation) of the other."""
    q = np.asarray(question, np.uint8)
    return min(np.ascontiguousarray(dihedral.transform(q, t)).tobytes() for t in range(dihedral.NUM_TRANSFORMS))


def generate(n: int, side: int = 30, seed: int = 0, hard: bool = False, min_path: int | None = None,
             loop_frac: float = 0.08, exclude: set[bytes] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n distinct mazes: (questions, answers) as token arrays uint8 [n, side, side], and path lengths.

    `exclude`: `equivalence_key`s of mazes that must not be generated, nor any dihedral transform of them."""
    if side < 5:
        raise InputError(f"maze side must be >= 5, got {side}", field="--size")
    mp = min_path if min_path is not None else (default_min_path(side) + 1 if hard else 1)

    def draw(s: int):
        q, a, L = _generate_one(side, s, loop_frac, mp, 200)
        return None if L < 0 else (q, a, L)

    def too_few() -> InputError:
        return InputError(f"could not generate {n} mazes of side {side} with path >= {mp}", field="--generate")

    found = dense_dataset.distinct_puzzles(n, seed, draw, 50 * n + 1001, exclude, equivalence_key, too_few)
    qs, ans, lens = zip(*found) if found else ((), (), ())
    sh = (n, side, side)
    return np.array(qs, np.uint8).reshape(sh), np.array(ans, np.uint8).reshape(sh), np.array(lens, np.int64)


def shortest_path_length(question: np.ndarray) -> int:
    side = question.shape[0]
    g = question.reshape(-1).astype(np.int64)
    s = int(np.nonzero(g == START)[0][0])
    t = int(np.nonzero(g == GOAL)[0][0])
    dist, _ = _bfs(g, side, s)
    return int(dist[t])


def is_shortest_path(question: np.ndarray, answer: np.ndarray) -> bool:
    """The answer equals the question plus a connected S->G route of PATH cells over open cells, of BFS length."""
    q, a = question.astype(np.int64), answer.astype(np.int64)
    if q.shape != a.shape or ((a != q) & ~((q == OPEN) & (a == PATH))).any():
        return False
    side = q.shape[0]
    path = set(map(tuple, np.argwhere(a == PATH).tolist()))
    s = tuple(np.argwhere(q == START)[0])
    t = tuple(np.argwhere(q == GOAL)[0])
    # follow the path from S: each step must have exactly one unvisited path/goal neighbour
    cur, visited, steps = s, {s}, 0
    while cur != t:
        nxt = [(cur[0] + dr, cur[1] + dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        nxt = [p for p in nxt if 0 <= p[0] < side and 0 <= p[1] < side and p not in visited and (p in path or p == t)]
        if t in nxt:
            nxt = [t]
        if len(nxt) != 1:
            return False
        cur = nxt[0]
        visited.add(cur)
        steps += 1
    return len(visited) - 2 == len(path) and steps == shortest_path_length(q)


# -- CSV ---------------------------------------------------------------------------------------------------------

def _parse(s: str, file: str, row: int, field: str, allow_path: bool) -> np.ndarray:
    side = int(round(len(s) ** 0.5))
    if side * side != len(s) or side < 2:
        raise InputError(f"{len(s)} characters is not a square maze", file=file, task=f"row {row}", field=field)
    out = np.zeros(len(s), np.uint8)
    for i, ch in enumerate(s):
        k = CHARSET.find(ch)
        if k < 0 or (ch == "o" and not allow_path):
            raise InputError(f"character {ch!r} at position {i} not in {CHARSET!r}" if k < 0 else
                             f"path mark 'o' at position {i} in a question", file=file, task=f"row {row}", field=field)
        out[i] = k + 1
    g = out.reshape(side, side)
    if (g == START).sum() != 1 or (g == GOAL).sum() != 1:
        raise InputError("needs exactly one 'S' and one 'G'", file=file, task=f"row {row}", field=field)
    return g


def _parse_pair(question: str, answer: str, file: str, row: int) -> tuple[np.ndarray, np.ndarray]:
    q = _parse(question, file, row, "question", False)
    a = _parse(answer, file, row, "answer", True)
    if q.shape != a.shape or not is_shortest_path(q, a):
        raise InputError("not the question with a shortest S->G path marked", file=file, task=f"row {row}",
                         field="answer")
    return q, a


def read_csv(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The public Maze-Hard format (dense_dataset.read_csv). Returns (questions, answers, rating)."""
    return dense_dataset.read_csv(path, _parse_pair, "mazes", limit)


def write_csv(path: str | Path, questions: np.ndarray, answers: np.ndarray, source: str = "arcsolver") -> None:
    def s(g):
        return "".join(CHARSET[x - 1] for x in g.reshape(-1))
    dense_dataset.write_csv(path, ([source, s(q), s(a), 0] for q, a in zip(questions, answers)))


# -- augmentation and prepare --------------------------------------------------------------------------------------

def augment_tokens(inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                   side: int) -> tuple[np.ndarray, np.ndarray]:
    B = inputs.shape[0]
    x = inputs.reshape(B, side, side).copy()
    y = labels.reshape(B, side, side).copy()
    tids = rng.integers(0, 8, size=B)
    for b in range(B):
        x[b] = dihedral.transform(x[b], int(tids[b]))
        y[b] = dihedral.transform(y[b], int(tids[b]))
    return x.reshape(B, -1), y.reshape(B, -1)


def prepare(out: str | Path, *, generate: int | None = None, csv: str | None = None, csv_test: str | None = None,
            side: int = MAZE.side, hard: bool = MAZE.hard, test_count: int = MAZE.test_count, seed: int = MAZE.seed,
            min_path: int | None = MAZE.min_path, loop_frac: float = MAZE.loop_frac) -> Path:
    if generate is not None:
        if generate <= 0 or test_count <= 0:
            raise InputError("counts must be positive", field="--generate/--test-count")
        if min_path is not None and min_path < 1:
            raise InputError(f"must be >= 1, got {min_path}", field="--min-path")
        if not 0.0 <= loop_frac <= 1.0:
            raise InputError(f"must be in [0, 1], got {loop_frac}", field="--loops")
        tq, ta, tl = globals()["generate"](generate, side, seed, hard, min_path=min_path, loop_frac=loop_frac)
        if csv_test:
            eq, ea, el = read_csv(csv_test, limit=test_count)
            el = np.array([shortest_path_length(q) for q in eq])
        else:
            eq, ea, el = globals()["generate"](test_count, side, seed + 7919, hard, min_path=min_path,
                                               loop_frac=loop_frac, exclude={equivalence_key(q) for q in tq})
        source = f"generated (seed {seed})"
    else:
        tq, ta, _ = read_csv(csv)
        tl = np.array([shortest_path_length(q) for q in tq])
        if csv_test:
            eq, ea, _ = read_csv(csv_test, limit=test_count)
        else:
            if test_count >= len(tq):
                raise InputError(f"only {len(tq)} mazes, cannot hold out {test_count}", file=csv, field="--test-count")
            eq, ea = tq[-test_count:], ta[-test_count:]
            tq, ta, tl = tq[:-test_count], ta[:-test_count], tl[:-test_count]
        el = np.array([shortest_path_length(q) for q in eq])
        source = str(csv)
        side = tq.shape[1]
    n = side * side
    meta = {"kind": "maze", "seq_len": n, "vocab_size": VOCAB_SIZE, "ignore_label_id": None, "augment": "dihedral",
            "side": side, "box": None, "seed": seed, "source": source, "hard": hard,
            "generator": {"min_path": min_path, "loops": loop_frac} if generate is not None else None,
            "path_length": {"train_mean": float(np.mean(tl)), "test_mean": float(np.mean(el)),
                            "train_min": int(np.min(tl))}}
    dense_dataset.write(out, meta, {"train": (tq.reshape(-1, n), ta.reshape(-1, n)),
                                    "test": (eq.reshape(-1, n), ea.reshape(-1, n))})
    return Path(out)
