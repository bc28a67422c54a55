"""The prepared ARC dataset: original tasks plus the transform of every augmented version, and nothing more.

The reference TRM builder materialises every augmented example as two 900-byte canvases (6.8 GB for ARC-AGI-1 +
ConceptARC at 1000 augmentations). Here a version is 11 bytes (a dihedral id and a colour map) and the loader paints
canvases on the fly, so a random translation per draw costs nothing and the whole dataset is a few tens of MB.

Semantics follow the reference (docs/trm.md, 'Data'):
  * group = one original task; puzzle = one augmented version with its own identifier (id 0 = blank);
    example = one (input, output) pair;
  * each version draws a dihedral transform (0..7, identity included) and a colour permutation (black fixed unless
    `all_colors`); the same map is applied to every grid of the task; versions are deduplicated by a content hash of
    the sorted per-example (input, output) hashes; up to 5*num_aug trials, stopping at num_aug+1 versions counting the
    original (version 0, the identity);
  * routing: demos of every task go to train; test pairs go to train too, unless the task's set is a test set,
    in which case its test inputs form the test split, each under every version (same puzzle id as in train);
  * names are the reference's: the original is "<task>", a version is "<task>|||t<tid>|||<ten map digits>", so
    reference identifiers.json files can be matched against ours.

Randomness comes from a splitmix64 stream seeded by (seed, task id), so a task's versions do not depend on which
other tasks are in the build, and the same seed gives byte-identical files.

On-disk format (a folder, built under a temporary name and renamed into place):
  meta.json         format "arcsolver-arc-1", kind "arc", canvas 30, seq_len 900, vocab_size 12, pad_id 0, ignore_label_id 0,
                    num_puzzle_identifiers, seed, num_aug, all_colors, sets, counts
  tasks.json        [{"id", "set", "test_set"}] in task order
  identifiers.json  puzzle id -> name, index 0 "<blank>" (reference layout)
  arrays/*.npy      cells uint8 (all grids, row-major, concatenated); grid_off int64 [G+1]; grid_hw uint8 [G,2];
                    ex_in, ex_out int32 [E] (grid index, -1 = unknown output); ex_task int32; ex_kind uint8
                    (0 demo, 1 test); ex_pos int16 (index within its kind); task_ex int64 [T+1] (CSR);
                    train_ex int32 + task_train int64 [T+1] (examples routed to train, CSR by task);
                    test_ex int32 + task_test int64 [T+1] (examples routed to test);
                    ver_task int32 [V]; ver_tid uint8 [V]; ver_map uint8 [V,10]; task_ver int64 [T+1]
  Puzzle id of version v is v + 1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numba
import numpy as np

from arcsolver.data import colors
from arcsolver.data.arc_tasks import Pair, Task
from arcsolver.data.dihedral import out_shape, source_cell
from arcsolver.data.encoding import CANVAS, VOCAB_SIZE
from arcsolver.data.rng import shuffle_range, splitmix64
from arcsolver.runtime.jsonio import atomic_dir, read_json, save_npy, write_json
from arcsolver.runtime.outputs import mark_folder
from arcsolver.runtime.report import progress_bar

FORMAT = "arcsolver-arc-1"
SEPARATOR = "|||"
RETRIES_FACTOR = 5
NUM_AUG = 1000  # augmented versions per task (plus the original): the reference's count
SEED = 42  # of the augmentation draw
ARRAYS = ["cells", "grid_off", "grid_hw", "ex_in", "ex_out", "ex_task", "ex_kind", "ex_pos", "task_ex",
          "train_ex", "task_train", "test_ex", "task_test", "ver_task", "ver_tid", "ver_map", "task_ver"]


# ----------------------------------------------------------------------------------------------------------------
# numba kernels: content hashing of transformed grids (the RNG is data/rng.py)


@numba.njit(cache=True, inline="always")
def _mix(h: np.uint64, x: np.uint64) -> np.uint64:
    h = (h ^ x) * np.uint64(0x100000001B3)
    return h ^ (h >> np.uint64(29))


@numba.njit(cache=True)
def _grid_hash(cells, off, h, w, tid, cmap) -> np.uint64:
    off, h, w = np.int64(off), np.int64(h), np.int64(w)
    oh, ow = out_shape(tid, h, w)
    acc = np.uint64(0xCBF29CE484222325)
    acc = _mix(acc, np.uint64(oh * 64 + ow))
    for i in range(oh):
        for j in range(ow):
            r, c = source_cell(tid, i, j, h, w)
            acc = _mix(acc, np.uint64(cmap[cells[off + np.int64(r) * w + np.int64(c)]]) + np.uint64(1))
    _, fin = splitmix64(acc)
    return fin


@numba.njit(cache=True)
def _puzzle_hash(cells, grid_off, grid_hw, gin, gout, tid, cmap, scratch) -> np.uint64:
    n = gin.shape[0]
    for e in range(n):
        a = gin[e]
        hi = _grid_hash(cells, grid_off[a], grid_hw[a, 0], grid_hw[a, 1], tid, cmap)
        b = gout[e]
        ho = np.uint64(0x5BD1E995) if b < 0 else _grid_hash(cells, grid_off[b], grid_hw[b, 0], grid_hw[b, 1], tid, cmap)
        _, scratch[e] = splitmix64(hi * np.uint64(31) + ho)
    # Sorted, so that a transform that merely reorders examples counts as a duplicate (as in the reference).
    s = np.sort(scratch[:n])
    acc = np.uint64(0x84222325CBF29CE4)
    for e in range(n):
        acc = _mix(acc, s[e])
    return acc


@numba.njit(cache=True)
def _augment_task(cells, grid_off, grid_hw, gin, gout, num_aug, max_trials, all_colors, seed):
    """Draw up to num_aug unique versions (plus the identity). Returns (tids uint8 [k], maps uint8 [k, 10])."""
    cap = 1
    while cap < 2 * (max_trials + 2):
        cap *= 2
    table = np.zeros(cap, dtype=np.uint64)  # open addressing; 0 marks an empty slot
    used = np.zeros(cap, dtype=np.bool_)
    scratch = np.empty(gin.shape[0], dtype=np.uint64)
    tids = np.empty(num_aug + 1, dtype=np.uint8)
    maps = np.empty((num_aug + 1, 10), dtype=np.uint8)
    cmap = np.arange(10).astype(np.uint8)
    count = 0
    state = np.uint64(seed)
    for trial in range(max_trials + 1):
        if count >= num_aug + 1:
            break
        if trial == 0:
            tid = np.int64(0)  # the original task is always version 0
        else:
            state, r = splitmix64(state)
            tid = np.int64(r % np.uint64(8))
            for k in range(10):
                cmap[k] = k
            state = shuffle_range(cmap, 0 if all_colors else 1, 10, state)  # colours 1..9, or 0..9 with all_colors
        h = _puzzle_hash(cells, grid_off, grid_hw, gin, gout, tid, cmap, scratch)
        slot = np.int64(h & np.uint64(cap - 1))
        dup = False
        while used[slot]:
            if table[slot] == h:
                dup = True
                break
            slot = np.int64((slot + 1) & (cap - 1))
        if dup:
            continue
        used[slot] = True
        table[slot] = h
        tids[count] = tid
        maps[count, :] = cmap
        count += 1
    return tids[:count].copy(), maps[:count].copy()


def _task_seed(seed: int, task_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TaskSet:
    """One named set of tasks going into a build; `test_set` routes its test inputs to the test split."""
    name: str
    tasks: list[Task]
    test_set: bool = False


def parse_version_name(name: str) -> tuple[str, int, np.ndarray]:
    """Reference name -> (task id, dihedral id, colour map). Bare names are the identity."""
    if SEPARATOR not in name:
        return name, 0, colors.IDENTITY.copy()
    task, t, digits = name.split(SEPARATOR)[-3:]
    return task, int(t[1:]), colors.digits_to_map(digits)


def build(out: str | Path, sets: Sequence[TaskSet], *, num_aug: int = NUM_AUG, seed: int = SEED,
          all_colors: bool = False, canvas: int = CANVAS,
          versions: dict[str, list[tuple[int, np.ndarray]]] | None = None, progress: bool = False) -> Path:
    """Prepare an ARC dataset folder from task sets. Returns its path.

    `canvas` < 30 gives a smaller token canvas (seq_len canvas**2) for tasks with small grids; such a dataset cannot
    be used with reference checkpoints, which are trained on 30x30. `versions` (task id -> [(dihedral id, colour
    map), ...], the identity first) replaces the random augmentation, e.g. to reproduce a reference checkpoint's
    puzzle identifiers. `progress`: a bar over the tasks while they are augmented (`arcsolver prepare arc`).
    """
    from arcsolver.runtime.errors import InputError
    if not 2 <= canvas <= CANVAS:
        raise InputError(f"canvas must be 2..{CANVAS}, got {canvas}", field="--canvas")
    tasks: list[Task] = []
    task_set: list[str] = []
    task_is_test: list[bool] = []
    seen: dict[str, str] = {}
    for s in sets:
        for t in s.tasks:
            if t.id in seen:
                raise InputError(f"duplicate task id: in set '{seen[t.id]}' and in set '{s.name}' "
                                 "(overlapping sets leak answers; pick one)", file=t.source, task=t.id)
            seen[t.id] = s.name
            for kind, pairs in (("train", t.train), ("test", t.test)):
                for i, p in enumerate(pairs):
                    for part, g in (("input", p.input), ("output", p.output)):
                        if g is not None and max(g.shape) > canvas:
                            raise InputError(f"grid {g.shape[0]}x{g.shape[1]} does not fit the {canvas}x{canvas} "
                                             "canvas (use a larger --canvas)", file=t.source, task=t.id,
                                             field=f"{kind}[{i}].{part}")
            tasks.append(t)
            task_set.append(s.name)
            task_is_test.append(s.test_set)

    # Pack every grid into one flat array.
    grids: list[np.ndarray] = []
    ex_in, ex_out, ex_task, ex_kind, ex_pos = [], [], [], [], []
    task_ex = [0]
    train_ex, task_train, test_ex, task_test = [], [0], [], [0]

    def add_grid(g: np.ndarray | None) -> int:
        if g is None:
            return -1
        grids.append(np.ascontiguousarray(g, dtype=np.uint8))
        return len(grids) - 1

    for ti, t in enumerate(tasks):
        for kind, pairs in ((0, t.train), (1, t.test)):
            for pi, p in enumerate(pairs):
                e = len(ex_in)
                ex_in.append(add_grid(p.input))
                ex_out.append(add_grid(p.output))
                ex_task.append(ti)
                ex_kind.append(kind)
                ex_pos.append(pi)
                if kind == 0 or not task_is_test[ti]:
                    if p.output is not None:  # a test input without its answer cannot be trained on
                        train_ex.append(e)
                else:
                    test_ex.append(e)
        task_ex.append(len(ex_in))
        task_train.append(len(train_ex))
        task_test.append(len(test_ex))

    grid_hw = np.array([g.shape for g in grids], dtype=np.uint8).reshape(-1, 2)
    grid_off = np.zeros(len(grids) + 1, dtype=np.int64)
    np.cumsum([g.size for g in grids], out=grid_off[1:])
    cells = np.concatenate([g.reshape(-1) for g in grids]) if grids else np.zeros(0, np.uint8)

    arrays = dict(
        cells=cells, grid_off=grid_off, grid_hw=grid_hw,
        ex_in=np.array(ex_in, np.int32), ex_out=np.array(ex_out, np.int32), ex_task=np.array(ex_task, np.int32),
        ex_kind=np.array(ex_kind, np.uint8), ex_pos=np.array(ex_pos, np.int16), task_ex=np.array(task_ex, np.int64),
        train_ex=np.array(train_ex, np.int32), task_train=np.array(task_train, np.int64),
        test_ex=np.array(test_ex, np.int32), task_test=np.array(task_test, np.int64),
    )

    # Augment: one numba call per task (the heavy part, content hashing, runs compiled).
    ver_tid, ver_map, task_ver = [], [], [0]
    max_trials = RETRIES_FACTOR * num_aug
    bar = progress_bar("prepare: augmenting tasks", total=len(tasks), enabled=progress)
    for ti, t in enumerate(tasks):
        a, b = task_ex[ti], task_ex[ti + 1]
        if versions is not None:
            given = versions.get(t.id) or [(0, colors.IDENTITY)]
            tids = np.array([v[0] for v in given], np.uint8)
            maps = np.array([v[1] for v in given], np.uint8).reshape(-1, 10)
        else:
            tids, maps = _augment_task(cells, grid_off, grid_hw, arrays["ex_in"][a:b], arrays["ex_out"][a:b],
                                       num_aug, max_trials, all_colors, _task_seed(seed, t.id))
        ver_tid.append(tids)
        ver_map.append(maps)
        task_ver.append(task_ver[-1] + len(tids))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    arrays["ver_tid"] = np.concatenate(ver_tid) if ver_tid else np.zeros(0, np.uint8)
    arrays["ver_map"] = np.concatenate(ver_map) if ver_map else np.zeros((0, 10), np.uint8)
    arrays["task_ver"] = np.array(task_ver, np.int64)
    arrays["ver_task"] = np.repeat(np.arange(len(tasks), dtype=np.int32), np.diff(arrays["task_ver"]))

    n_versions = int(arrays["task_ver"][-1])
    identifiers = ["<blank>"]
    digits = np.array(list("0123456789"))
    map_strs = ["".join(r) for r in digits[arrays["ver_map"]]] if n_versions else []
    for ti, t in enumerate(tasks):
        for v in range(task_ver[ti], task_ver[ti + 1]):
            plain = arrays["ver_tid"][v] == 0 and map_strs[v] == "0123456789"
            identifiers.append(t.id if plain else
                               f"{t.id}{SEPARATOR}t{int(arrays['ver_tid'][v])}{SEPARATOR}{map_strs[v]}")

    n_train_per_epoch = int(sum(task_train[i + 1] - task_train[i] for i in range(len(tasks))))
    train_groups = int(sum(1 for i in range(len(tasks)) if task_train[i + 1] > task_train[i]))
    versions_per_task = np.diff(arrays["task_ver"])
    test_items = int(sum((task_test[i + 1] - task_test[i]) * versions_per_task[i] for i in range(len(tasks))))
    meta = {
        "format": FORMAT, "kind": "arc", "canvas": canvas, "seq_len": canvas * canvas, "vocab_size": VOCAB_SIZE, "pad_id": 0,
        "ignore_label_id": 0, "blank_identifier_id": 0, "num_puzzle_identifiers": n_versions + 1,
        "seed": seed, "num_aug": num_aug, "all_colors": all_colors,
        "sets": [{"name": s.name, "tasks": len(s.tasks), "test_set": s.test_set} for s in sets],
        "counts": {
            "tasks": len(tasks), "versions": n_versions, "grids": len(grids), "examples": len(ex_in),
            "train_groups": train_groups, "train_examples_per_epoch": n_train_per_epoch,
            "mean_puzzle_examples": n_train_per_epoch / max(train_groups, 1),
            "test_tasks": int(sum(task_is_test)), "test_inputs": len(test_ex), "test_examples": test_items,
            "min_versions": int(versions_per_task.min()) if len(tasks) else 0,
        },
    }
    with atomic_dir(out) as tmp:
        mark_folder(tmp, "dataset")
        (tmp / "arrays").mkdir()
        for k in ARRAYS:
            save_npy(tmp / "arrays" / f"{k}.npy", arrays[k])
        write_json(tmp / "tasks.json", [{"id": t.id, "set": s, "test_set": ts}
                                        for t, s, ts in zip(tasks, task_set, task_is_test)])
        write_json(tmp / "identifiers.json", identifiers)
        write_json(tmp / "meta.json", meta, indent=True)
    return Path(out)


class ArcStore:
    """Read side of a prepared ARC dataset: memory-mapped arrays plus helpers to rebuild tasks and versions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = read_json(self.path / "meta.json")
        if self.meta.get("format") != FORMAT:
            from arcsolver.runtime.errors import InputError
            raise InputError(f"not an arcsolver ARC dataset (format {self.meta.get('format')!r})", file=str(self.path))
        self.a = {k: np.load(self.path / "arrays" / f"{k}.npy", mmap_mode="r") for k in ARRAYS}
        self.task_info = read_json(self.path / "tasks.json")
        self.task_ids = [t["id"] for t in self.task_info]
        self._identifiers: list[str] | None = None

    @property
    def identifiers(self) -> list[str]:
        if self._identifiers is None:
            self._identifiers = read_json(self.path / "identifiers.json")
        return self._identifiers

    @property
    def num_puzzle_identifiers(self) -> int:
        return int(self.meta["num_puzzle_identifiers"])

    def grid(self, g: int) -> np.ndarray:
        h, w = self.a["grid_hw"][g]
        o = self.a["grid_off"][g]
        return np.array(self.a["cells"][o:o + int(h) * int(w)]).reshape(int(h), int(w))

    def task(self, ti: int) -> Task:
        """The original (un-augmented) task number `ti`."""
        a, b = int(self.a["task_ex"][ti]), int(self.a["task_ex"][ti + 1])
        train, test = [], []
        for e in range(a, b):
            inp = self.grid(int(self.a["ex_in"][e]))
            go = int(self.a["ex_out"][e])
            pair = Pair(inp, None if go < 0 else self.grid(go))
            (train if self.a["ex_kind"][e] == 0 else test).append(pair)
        return Task(self.task_ids[ti], train, test, source=str(self.path))

    def version(self, puzzle_id: int) -> tuple[int, int, np.ndarray]:
        """Puzzle id -> (task index, dihedral id, colour map)."""
        v = puzzle_id - 1
        return int(self.a["ver_task"][v]), int(self.a["ver_tid"][v]), np.array(self.a["ver_map"][v])

    def test_task_indices(self) -> list[int]:
        tt = self.a["task_test"]
        return [i for i in range(len(self.task_ids)) if tt[i + 1] > tt[i]]
