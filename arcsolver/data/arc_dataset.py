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
    reference identifiers.json files can be matched against ours (`version_names` computes them from the arrays).

Randomness comes from a splitmix64 stream seeded by (seed, task id), so a task's versions do not depend on which
other tasks are in the build, and the same seed gives byte-identical files.

The build streams: chunks of ~1,000 tasks are read, augmented and written one at a time (memory holds one chunk),
then joined; an interrupted build continues where it stopped (`build`).

On-disk format (a folder, built under a temporary name and renamed into place), 15 bytes per version:
  meta.json         format "arcsolver-arc-2", kind "arc", canvas 30, seq_len 900, vocab_size 12, pad_id 0,
                    ignore_label_id 0, num_puzzle_identifiers, seed, num_aug, all_colors, counts,
                    sets [{"name", "tasks", "test_set", "weight"}] in task order
  tasks.json        [{"id", "set", "test_set"}] in task order
  arrays/*.npy      cells uint8 (all grids, row-major, concatenated); grid_off int64 [G+1]; grid_hw uint8 [G,2];
                    ex_in, ex_out int32 [E] (grid index, -1 = unknown output); ex_task int32; ex_kind uint8
                    (0 demo, 1 test); ex_pos int16 (index within its kind); task_ex int64 [T+1] (CSR);
                    train_ex int32 + task_train int64 [T+1] (examples routed to train, CSR by task);
                    test_ex int32 + task_test int64 [T+1] (examples routed to test);
                    ver_task int32 [V]; ver_tid uint8 [V]; ver_map uint8 [V,10]; task_ver int64 [T+1]
  Puzzle id of version v is v + 1.
Format "arcsolver-arc-1" (still read) was the same plus identifiers.json (puzzle id -> name, 40 bytes a version).
"""

from __future__ import annotations

import hashlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import sys
from collections import deque
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Callable, Sequence

import numba
import numpy as np

from arcsolver.data.settings import ARC_PREPARE
from arcsolver.data import colors
from arcsolver.data.arc_tasks import Pair, Task
from arcsolver.data.dihedral import out_shape, source_cell
from arcsolver.data.encoding import CANVAS, VOCAB_SIZE
from arcsolver.data.example_lists import no_task_reason
from arcsolver.data.rng import shuffle_range, splitmix64
from arcsolver.data.task_stream import TaskStream
from arcsolver.runtime.jsonio import atomic_dir, read_json, save_npy, write_json
from arcsolver.runtime.outputs import mark_folder
from arcsolver.runtime.report import progress_bar, say

FORMAT = "arcsolver-arc-2"  # format 1 also held identifiers.json (names are now computed: version_names)
FORMATS = ("arcsolver-arc-1", FORMAT)  # what ArcStore reads
CHUNK_TASKS = ARC_PREPARE.chunk_tasks  # ~1M versions at 1000 augmentations, tens of MB in memory
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
    """One named set of tasks going into a build; `test_set` routes its test inputs to the test split. `tasks`: a
    list, or a `TaskStream` read chunk by chunk."""
    name: str
    tasks: list[Task] | TaskStream
    test_set: bool = False
    weight: int = 1  # mixing weight: the loader visits each of its tasks this many times an epoch


def parse_version_name(name: str) -> tuple[str, int, np.ndarray]:
    """Reference name -> (task id, dihedral id, colour map). Bare names are the identity."""
    if SEPARATOR not in name:
        return name, 0, colors.IDENTITY.copy()
    task, t, digits = name.split(SEPARATOR)[-3:]
    return task, int(t[1:]), colors.digits_to_map(digits)


def _units(source: TaskStream | list[Task]) -> int:
    return len(source)


def _read_units(source: TaskStream | list[Task], lo: int, hi: int) -> list[Task]:
    return source.tasks(lo, hi) if isinstance(source, TaskStream) else list(source[lo:hi])


def _fingerprint(source: TaskStream | list[Task]) -> str:
    if isinstance(source, TaskStream):
        return source.fingerprint()
    h = hashlib.blake2b(digest_size=16)
    for t in source:  # tasks given in memory: their content (small sets: fine-tuning, tests)
        h.update(t.id.encode() + b"\n")
        for p in t.train + t.test:
            for g in (p.input, p.output):
                h.update(b"-" if g is None else bytes(g.shape) + np.ascontiguousarray(g, np.uint8).tobytes())
    return h.hexdigest()


def _check_canvas(t: Task, canvas: int) -> None:
    from arcsolver.runtime.errors import InputError
    for kind, pairs in (("train", t.train), ("test", t.test)):
        for i, p in enumerate(pairs):
            for part, g in (("input", p.input), ("output", p.output)):
                if g is not None and max(g.shape) > canvas:
                    raise InputError(f"grid {g.shape[0]}x{g.shape[1]} does not fit the {canvas}x{canvas} "
                                     "canvas (use a larger --canvas)", file=t.source, task=t.id,
                                     field=f"{kind}[{i}].{part}")


def _chunk_arrays(tasks: list[Task], is_test: bool, *, num_aug: int, seed: int, all_colors: bool,
                  versions: dict | None) -> dict[str, np.ndarray]:
    """The arrays of one chunk of tasks, every index local to the chunk (grid 0, example 0, task 0 are the chunk's
    first). A pure function of the tasks and options: a chunk built twice is the same bytes."""
    grids: list[np.ndarray] = []
    ex_in, ex_out, ex_task, ex_kind, ex_pos = [], [], [], [], []
    task_ex, train_ex, task_train, test_ex, task_test = [0], [], [0], [], [0]

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
                if kind == 0 or not is_test:
                    if p.output is not None:  # a test input without its answer cannot be trained on
                        train_ex.append(e)
                else:
                    test_ex.append(e)
        task_ex.append(len(ex_in))
        task_train.append(len(train_ex))
        task_test.append(len(test_ex))
    grid_off = np.zeros(len(grids) + 1, dtype=np.int64)
    np.cumsum([g.size for g in grids], out=grid_off[1:])
    a = dict(
        cells=np.concatenate([g.reshape(-1) for g in grids]) if grids else np.zeros(0, np.uint8), grid_off=grid_off,
        grid_hw=np.array([g.shape for g in grids], dtype=np.uint8).reshape(-1, 2),
        ex_in=np.array(ex_in, np.int32), ex_out=np.array(ex_out, np.int32), ex_task=np.array(ex_task, np.int32),
        ex_kind=np.array(ex_kind, np.uint8), ex_pos=np.array(ex_pos, np.int16), task_ex=np.array(task_ex, np.int64),
        train_ex=np.array(train_ex, np.int32), task_train=np.array(task_train, np.int64),
        test_ex=np.array(test_ex, np.int32), task_test=np.array(task_test, np.int64),
    )
    # Augment: one numba call per task (the heavy part, content hashing, runs compiled).
    ver_tid, ver_map, task_ver = [], [], [0]
    for ti, t in enumerate(tasks):
        lo, hi = task_ex[ti], task_ex[ti + 1]
        if versions is not None:
            given = versions.get(t.id) or [(0, colors.IDENTITY)]
            tids = np.array([v[0] for v in given], np.uint8)
            maps = np.array([v[1] for v in given], np.uint8).reshape(-1, 10)
        else:
            tids, maps = _augment_task(a["cells"], grid_off, a["grid_hw"], a["ex_in"][lo:hi], a["ex_out"][lo:hi],
                                       num_aug, RETRIES_FACTOR * num_aug, all_colors, _task_seed(seed, t.id))
        ver_tid.append(tids)
        ver_map.append(maps)
        task_ver.append(task_ver[-1] + len(tids))
    a["ver_tid"] = np.concatenate(ver_tid) if ver_tid else np.zeros(0, np.uint8)
    a["ver_map"] = np.concatenate(ver_map) if ver_map else np.zeros((0, 10), np.uint8)
    a["task_ver"] = np.array(task_ver, np.int64)
    a["ver_task"] = np.repeat(np.arange(len(tasks), dtype=np.int32), np.diff(a["task_ver"]))
    return a


# How each array is joined across chunks: the offset its chunk-local values are shifted by ("grid", "cell",
# "example", "task", "version" counts of the chunks before), and whether it is a CSR offsets array (length n + 1).
_JOIN = {"cells": (None, False), "grid_off": ("cells", True), "grid_hw": (None, False), "ex_in": ("grids", False),
         "ex_out": ("grids", False), "ex_task": ("tasks", False), "ex_kind": (None, False), "ex_pos": (None, False),
         "task_ex": ("examples", True), "train_ex": ("examples", False), "task_train": ("train", True),
         "test_ex": ("examples", False), "task_test": ("test", True), "ver_task": ("tasks", False),
         "ver_tid": (None, False), "ver_map": (None, False), "task_ver": ("versions", True)}
_SIZES = {"cells": "cells", "grid_off": "grids", "grid_hw": "grids", "ex_in": "examples", "ex_out": "examples",
          "ex_task": "examples", "ex_kind": "examples", "ex_pos": "examples", "task_ex": "tasks",
          "train_ex": "train", "task_train": "tasks", "test_ex": "test", "task_test": "tasks", "ver_task": "versions",
          "ver_tid": "versions", "ver_map": "versions", "task_ver": "tasks"}


def _chunk_counts(a: dict[str, np.ndarray], is_test: bool) -> dict:
    n_ver = np.diff(a["task_ver"])
    n_train = np.diff(a["task_train"])
    n_test = np.diff(a["task_test"])
    return {"tasks": len(a["task_ex"]) - 1, "grids": len(a["grid_hw"]), "cells": len(a["cells"]),
            "examples": len(a["ex_in"]), "train": len(a["train_ex"]), "test": len(a["test_ex"]),
            "versions": len(a["ver_tid"]), "train_groups": int((n_train > 0).sum()),
            "test_tasks": len(n_ver) if is_test else 0, "test_examples": int((n_test * n_ver).sum()),
            "min_versions": int(n_ver.min()) if len(n_ver) else None}


def _cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_start() -> None:
    """A chunk worker leaves Ctrl-C to the build (which stops it with the pool) and ends with the build however the
    build ends, SIGTERM and SIGKILL included (Linux's parent-death signal), never computing on for nobody."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a worker ends when it next reads from the closed pool
        pass


def _chunks_left(sets: Sequence[TaskSet], set_index: int, unit: int, chunk_tasks: int) -> int:
    """About how many chunks are still to build (a unit, a file or a line, holds at least one task): more workers
    than this would wait."""
    left = [_units(s.tasks) - (unit if i == set_index else 0) for i, s in enumerate(sets) if i >= set_index]
    return sum(-(-max(n, 0) // chunk_tasks) for n in left)


def _read_chunks(sets: Sequence[TaskSet], set_index: int, unit: int, chunk_tasks: int, seen: dict[str, int],
                 canvas: int, bar):
    """(set, first unit, end unit, tasks) of each chunk still to build, in order: about `chunk_tasks` tasks, never
    across sets; every task checked (duplicate ids across and within sets, the canvas) as it is read."""
    from arcsolver.runtime.errors import InputError
    while set_index < len(sets):
        s = sets[set_index]
        n_units = _units(s.tasks)
        if unit >= n_units:
            set_index, unit = set_index + 1, 0
            continue
        lo, tasks = unit, []
        while unit < n_units and len(tasks) < chunk_tasks:
            for t in _read_units(s.tasks, unit, unit + 1):
                if t.id in seen:
                    where = sets[seen[t.id]].name
                    if seen[t.id] == set_index:
                        raise InputError(f"duplicate task id (also in {where})", file=t.source, task=t.id)
                    raise InputError(f"duplicate task id: in set '{where}' and in set '{s.name}' "
                                     "(overlapping sets leak answers; pick one)", file=t.source, task=t.id)
                seen[t.id] = set_index
                _check_canvas(t, canvas)
                tasks.append(t)
            unit += 1
            if bar is not None:
                bar.update(1)
        yield set_index, lo, unit, tasks


def _write_chunk(partial: Path, k: int, sets: Sequence[TaskSet], set_index: int, lo: int, hi: int,
                 task_ids: list[str], arrays) -> dict:
    """Chunk k's arrays (or the future of them) written atomically into the partial folder; returns its info."""
    if isinstance(arrays, AsyncResult):
        arrays = arrays.get()
    info = {"set": set_index, "lo": lo, "hi": hi, "task_ids": task_ids,
            "counts": _chunk_counts(arrays, sets[set_index].test_set)}
    with atomic_dir(partial / f"chunk-{k:06d}") as tmp:
        for name, arr in arrays.items():
            save_npy(tmp / f"{name}.npy", arr)
        write_json(tmp / "chunk.json", info)
    return info


def _partial_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def build(out: str | Path, sets: Sequence[TaskSet], *, num_aug: int = NUM_AUG, seed: int = SEED,
          all_colors: bool = False, canvas: int = CANVAS,
          versions: dict[str, list[tuple[int, np.ndarray]]] | None = None, progress: bool = False,
          chunk_tasks: int = CHUNK_TASKS, after_chunk: Callable[[int], None] | None = None,
          workers: int = ARC_PREPARE.workers) -> Path:
    """Prepare an ARC dataset folder from task sets. Returns its path.

    A set's tasks are a list or a `TaskStream` (read chunk by chunk). The build goes chunk by chunk (about
    `chunk_tasks` tasks each, never across sets): each chunk's arrays are written atomically into a folder beside
    `out` (`.<name>.partial/chunk-NNNNNN`, with its unit range and counts), then all chunks are joined into `out`
    (built under a temporary name and renamed into place), then the partial folder is removed. Memory holds one
    chunk. A build stopped in any way but bad input (SIGKILL, Ctrl-C) leaves the finished chunks; the same call
    again continues after them and gives the same bytes as an uninterrupted build, since a chunk depends only on its
    tasks and the options (a changed source or option starts over). Bad input removes the partial folder.

    `canvas` < 30 gives a smaller token canvas (seq_len canvas**2) for tasks with small grids; such a dataset cannot
    be used with reference checkpoints, which are trained on 30x30. `versions` (task id -> [(dihedral id, colour
    map), ...], the identity first) replaces the random augmentation, e.g. to reproduce a reference checkpoint's
    puzzle identifiers. `progress`: a bar over the units of the sources. `after_chunk(k)` is called once chunk k is
    on disk (tests stop a build there). `workers` > 1 augments that many chunks at once in forked processes (0: one
    per CPU this process may use) while this process reads ahead and writes the chunks in order; the bytes do not
    depend on it (nor on `workers` in the resume check: a build may continue with another count).
    """
    from arcsolver.runtime.errors import InputError
    if not 2 <= canvas <= CANVAS:
        raise InputError(f"canvas must be 2..{CANVAS}, got {canvas}", field="--canvas")
    out = Path(out)
    options = {"num_aug": num_aug, "seed": seed, "all_colors": all_colors, "canvas": canvas,
               "chunk_tasks": chunk_tasks}
    if versions is not None:
        h = hashlib.blake2b(digest_size=16)
        for k in sorted(versions):
            h.update(k.encode() + b"".join(bytes([int(t)]) + np.asarray(m, np.uint8).tobytes() for t, m in versions[k]))
        options["versions"] = h.hexdigest()
    job = {"format": FORMAT, "options": options,
           "sets": [{"name": s.name, "test_set": s.test_set, "units": _units(s.tasks),
                     "fingerprint": _fingerprint(s.tasks)} for s in sets]}
    partial = _partial_dir(out)
    done = _resume(partial, job)
    seen: dict[str, int] = {}
    for c in done:
        for tid in c["task_ids"]:
            seen[tid] = c["set"]
    total_units = sum(j["units"] for j in job["sets"])
    bar = progress_bar("prepare: reading and augmenting", total=total_units, enabled=progress)
    pool = None
    try:
        set_index, unit = (done[-1]["set"], done[-1]["hi"]) if done else (0, 0)
        if bar is not None:
            bar.update(sum(sum(j["units"] for j in job["sets"][:set_index]), unit))
        augment = {"num_aug": num_aug, "seed": seed, "all_colors": all_colors, "versions": versions}
        workers = min(_cpus() if workers == 0 else workers, _chunks_left(sets, set_index, unit, chunk_tasks))
        if workers > 1:  # chunks are pure functions of their tasks: any process may build one, the bytes are the same
            # fork on Linux (no re-import, numba's compiled kernels inherited); spawn where fork is unsafe (macOS)
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            pool = multiprocessing.get_context(method).Pool(workers, initializer=_worker_start)
        pending: deque = deque()  # (set, lo, hi, task ids, arrays or their future), written in order
        k = len(done)
        for si, lo, hi, tasks in _read_chunks(sets, set_index, unit, chunk_tasks, seen, canvas, bar):
            is_test = sets[si].test_set
            arrays = pool.apply_async(_chunk_arrays, (tasks, is_test), augment) if pool else \
                _chunk_arrays(tasks, is_test, **augment)
            pending.append((si, lo, hi, [t.id for t in tasks], arrays))
            while len(pending) > (workers if pool else 0):  # read ahead at most one chunk per worker
                done.append(_write_chunk(partial, k, sets, *pending.popleft()))
                if after_chunk is not None:
                    after_chunk(k)
                k += 1
        while pending:
            done.append(_write_chunk(partial, k, sets, *pending.popleft()))
            if after_chunk is not None:
                after_chunk(k)
            k += 1
    except InputError:
        shutil.rmtree(partial, ignore_errors=True)  # bad input: nothing is left behind
        raise
    finally:
        if pool is not None:  # done, bad input, Ctrl-C: the workers stop now (finished chunks are on disk)
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.close()
    for i, s in enumerate(sets):
        if isinstance(s.tasks, TaskStream) and s.tasks.kind in ("rearc", "jsonl") and \
                not any(c["set"] == i and c["task_ids"] for c in done):
            shutil.rmtree(partial, ignore_errors=True)
            raise InputError(no_task_reason(s.tasks.demos), file=str(s.tasks.path))
    _join(out, partial, done, sets, job)
    shutil.rmtree(partial, ignore_errors=True)
    return out


def _resume(partial: Path, job: dict) -> list[dict]:
    """The finished chunks of an earlier, interrupted build of the same job (in order), or [] after clearing a
    partial folder left by a different job. A folder of that name that a build did not leave is refused (one line),
    never removed."""
    from arcsolver.runtime.errors import InputError
    if partial.exists() or partial.is_symlink():
        old = None
        try:
            old = read_json(partial / "job.json")
        except Exception:  # noqa: BLE001 - missing or unreadable: not a build's folder
            pass
        if not (partial.is_dir() and isinstance(old, dict) and old.get("format") in FORMATS):
            raise InputError("exists and was not left by an interrupted prepare (which keeps its finished chunks "
                             "there); move it away", file=str(partial))
        if old == job:
            done = []
            while (partial / f"chunk-{len(done):06d}" / "chunk.json").is_file():
                done.append(read_json(partial / f"chunk-{len(done):06d}" / "chunk.json"))
            if done:
                say(f"prepare: continuing an interrupted build ({len(done)} chunks done, in {partial})")
            return done
        say(f"prepare: the interrupted build in {partial} had other sources or options; starting over")
        shutil.rmtree(partial)
    with atomic_dir(partial) as tmp:  # the folder appears with its job file, so a kill leaves no anonymous folder
        write_json(tmp / "job.json", job)
    return []


def _join(out: Path, partial: Path, chunks: list[dict], sets: Sequence[TaskSet], job: dict) -> None:
    """Join the chunks into the dataset folder `out`: each array streamed chunk by chunk into its .npy, the
    chunk-local indices shifted by the counts of the chunks before. Idempotent: the chunks are only read."""
    totals = {k: sum(c["counts"][k] for c in chunks) for k in _SIZES.values()}
    template = _chunk_arrays([], False, num_aug=0, seed=0, all_colors=False, versions=None)  # dtypes, shapes
    with atomic_dir(out) as tmp:
        mark_folder(tmp, "dataset")
        (tmp / "arrays").mkdir()
        for name in ARRAYS:
            shift_by, csr = _JOIN[name]
            dtype, tail = template[name].dtype, template[name].shape[1:]
            shape = (totals[_SIZES[name]] + (1 if csr else 0), *tail)
            with open(tmp / "arrays" / f"{name}.npy", "wb") as f:
                np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                         "fortran_order": False, "shape": shape})
                if csr:
                    f.write(np.zeros(1, dtype).tobytes())
                shift = 0
                for ci, c in enumerate(chunks):
                    part = np.load(partial / f"chunk-{ci:06d}" / f"{name}.npy", mmap_mode="r")
                    if csr:
                        part = part[1:]
                    if shift_by is not None and shift:
                        part = np.where(part >= 0, part + shift, part).astype(dtype) if name in ("ex_in", "ex_out") \
                            else (part + shift).astype(dtype)
                    f.write(np.ascontiguousarray(part).tobytes())
                    if shift_by is not None:
                        shift += c["counts"][shift_by]
        task_rows = []
        for c in chunks:
            s = sets[c["set"]]
            task_rows.extend({"id": tid, "set": s.name, "test_set": s.test_set} for tid in c["task_ids"])
        write_json(tmp / "tasks.json", task_rows)
        mins = [c["counts"]["min_versions"] for c in chunks if c["counts"]["min_versions"] is not None]
        train_groups = sum(c["counts"]["train_groups"] for c in chunks)
        meta = {
            "format": FORMAT, "kind": "arc", "canvas": job["options"]["canvas"],
            "seq_len": job["options"]["canvas"] ** 2, "vocab_size": VOCAB_SIZE, "pad_id": 0,
            "ignore_label_id": 0, "blank_identifier_id": 0, "num_puzzle_identifiers": totals["versions"] + 1,
            "seed": job["options"]["seed"], "num_aug": job["options"]["num_aug"],
            "all_colors": job["options"]["all_colors"],
            "sets": [{"name": s.name, "tasks": sum(c["counts"]["tasks"] for c in chunks if c["set"] == i),
                      "test_set": s.test_set, "weight": s.weight} for i, s in enumerate(sets)],
            "counts": {
                "tasks": totals["tasks"], "versions": totals["versions"], "grids": totals["grids"],
                "examples": totals["examples"], "train_groups": train_groups,
                "train_examples_per_epoch": totals["train"],
                "mean_puzzle_examples": totals["train"] / max(train_groups, 1),
                "test_tasks": sum(c["counts"]["test_tasks"] for c in chunks), "test_inputs": totals["test"],
                "test_examples": sum(c["counts"]["test_examples"] for c in chunks),
                "min_versions": min(mins) if mins else 0,
            },
        }
        write_json(tmp / "meta.json", meta, indent=True)


def version_names(task_ids: Sequence[str], task_ver: np.ndarray, ver_tid: np.ndarray,
                  ver_map: np.ndarray) -> list[str]:
    """Every puzzle id's name in the reference's layout (index 0 "<blank>"; see the module docstring), computed
    from the arrays: datasets of format 2 do not store them (40 bytes a version, most of the folder)."""
    names = ["<blank>"]
    maps = (np.asarray(ver_map, np.uint8) + ord("0")).view("S10").reshape(-1)
    tids = np.asarray(ver_tid)
    for ti, tid in enumerate(task_ids):
        for v in range(int(task_ver[ti]), int(task_ver[ti + 1])):
            m = maps[v].decode()
            plain = tids[v] == 0 and m == "0123456789"
            names.append(tid if plain else f"{tid}{SEPARATOR}t{int(tids[v])}{SEPARATOR}{m}")
    return names


class ArcStore:
    """Read side of a prepared ARC dataset: memory-mapped arrays plus helpers to rebuild tasks and versions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = read_json(self.path / "meta.json")
        if self.meta.get("format") not in FORMATS:
            from arcsolver.runtime.errors import InputError
            raise InputError(f"not an arcsolver ARC dataset (format {self.meta.get('format')!r})", file=str(self.path))
        self.a = {k: np.load(self.path / "arrays" / f"{k}.npy", mmap_mode="r") for k in ARRAYS}
        self.task_info = read_json(self.path / "tasks.json")
        self.task_ids = [t["id"] for t in self.task_info]
        self._identifiers: list[str] | None = None

    @property
    def identifiers(self) -> list[str]:
        """Every puzzle id's name (format 1 stored them in identifiers.json; format 2 computes them, one Python
        string per version: `version` mode only, the `task` mode never needs them)."""
        if self._identifiers is None:
            f = self.path / "identifiers.json"
            self._identifiers = read_json(f) if f.is_file() else version_names(
                self.task_ids, self.a["task_ver"], self.a["ver_tid"], self.a["ver_map"])
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
