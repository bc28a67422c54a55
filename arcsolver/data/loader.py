"""Batches for training and evaluation, painted on the fly from a prepared dataset.

One loader serves ARC (`arc_dataset`) and dense Sudoku/Maze (`dense_dataset`) folders. A `Source` knows how to order
one epoch and how to encode a list of items; `PuzzleLoader` cuts the item stream into global batches and hands each
process its slice.

Training order follows the reference sampler: every epoch visits each group (original task) once in random order
(w times where the dataset gives its set the mixing weight w), draws one random augmented version of it per visit,
and appends all that version's training examples in random order; one randomly chosen example per draw keeps the
top-left placement, the others get a random translation (fresh at every
draw, since nothing is baked in). Epochs are concatenated into one endless stream, so a global batch larger than an
epoch works and nothing is dropped; batch k covers stream positions [k*B, (k+1)*B). Everything random is a function
of (seed, position), so a run is deterministic, a resumed loader continues exactly (`state_dict`), and sharding over
processes does not change what the union of the shards sees.

The test split is every (version, test input) in order, in global batches padded at the end with PAD inputs,
ignored labels and the blank puzzle id 0; `valid` marks the real rows.

Batches are dicts of torch tensors: inputs int32 [b, L], labels int64 [b, L] (ignored = -100),
puzzle_identifiers int32 [b] (the version's row, `version` mode), task_identifiers int32 [b] (task index + 1, 0 for
padding: the row in `task` mode) and augmentations int32 [b, 11] (the version's dihedral id, then its colour map),
plus `index` int64 [b] (position in the split, -1 for padding) for the test split. Every batch carries both modes'
keys, read off the store's versions (task, dihedral, colour map), so either mode trains on the same prepared data.
Dense datasets have no tasks or versions: task 0 and the identity augmentation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numba
import numpy as np
import torch

from arcsolver.data import dense_dataset
from arcsolver.data.arc_dataset import ArcStore
from arcsolver.data.rng import shuffle_range, splitmix64
from arcsolver.data.dihedral import out_shape, source_cell
from arcsolver.data.encoding import COLOR0, EOS, IGNORE_LABEL
from arcsolver.runtime.jsonio import read_json


@numba.njit(cache=True)
def _mix_seed(seed: np.uint64, pos: np.int64) -> np.uint64:
    _, a = splitmix64(seed ^ np.uint64(pos) * np.uint64(0xD1B54A32D192ED03))
    return a


@numba.njit(cache=True)
def _arc_epoch(task_train, train_ex, task_ver, visits, seed):
    """One epoch of (version, example, keep_top_left) in reference order (see module docstring); task t is visited
    visits[t] times, each visit a fresh version (all ones: the reference's one visit per group)."""
    n_tasks = task_train.shape[0] - 1
    total = 0
    for t in range(n_tasks):
        total += visits[t] * (task_train[t + 1] - task_train[t])
    ver = np.empty(total, np.int32)
    ex = np.empty(total, np.int32)
    keep = np.zeros(total, np.bool_)
    order = np.repeat(np.arange(n_tasks), visits)
    state = np.uint64(seed)
    state = shuffle_range(order, 0, order.shape[0], state)
    p = 0
    for k in range(order.shape[0]):
        t = order[k]
        a, b = task_train[t], task_train[t + 1]
        n = b - a
        if n == 0:
            continue
        state, r = splitmix64(state)
        nv = task_ver[t + 1] - task_ver[t]
        v = task_ver[t] + np.int64(r % np.uint64(nv))
        for i in range(n):
            ver[p + i] = v
            ex[p + i] = train_ex[a + i]
        state = shuffle_range(ex, p, p + n, state)
        state, r = splitmix64(state)
        keep[p + np.int64(r % np.uint64(n))] = True
        p += n
    return ver, ex, keep


@numba.njit(cache=True, inline="always")
def _paint(dst, side, cells, off, h, w, tid, cmap, r0, c0, offset_tokens):
    oh, ow = out_shape(tid, h, w)
    for i in range(oh):
        for j in range(ow):
            r, c = source_cell(tid, i, j, h, w)
            dst[(r0 + i) * side + c0 + j] = cmap[cells[off + r * w + c]] + offset_tokens
    if r0 + oh < side:
        for j in range(ow):
            dst[(r0 + oh) * side + c0 + j] = EOS
    if c0 + ow < side:
        for i in range(oh):
            dst[(r0 + i) * side + c0 + ow] = EOS


@numba.njit(cache=True)
def _arc_encode(cells, grid_off, grid_hw, ex_in, ex_out, ver_tid, ver_map, ver, ex, translate, seeds,
                inputs, labels):
    """Paint rows: inputs uint8 zeroed [B, side*side]; labels int64 pre-filled with IGNORE."""
    side = np.int64(np.sqrt(inputs.shape[1]) + 0.5)
    for b in range(ver.shape[0]):
        v = ver[b]
        e = ex[b]
        if v < 0:
            continue  # padding row
        tid = np.int64(ver_tid[v])
        cmap = ver_map[v]
        gi = ex_in[e]
        go = ex_out[e]
        hi, wi = np.int64(grid_hw[gi, 0]), np.int64(grid_hw[gi, 1])
        ohi, owi = out_shape(tid, hi, wi)
        mh, mw = ohi, owi
        if go >= 0:
            ho, wo = np.int64(grid_hw[go, 0]), np.int64(grid_hw[go, 1])
            oho, owo = out_shape(tid, ho, wo)
            mh, mw = max(mh, oho), max(mw, owo)
        r0, c0 = 0, 0
        if translate[b]:
            s, r = splitmix64(seeds[b])
            r0 = np.int64(r % np.uint64(side - mh + 1))
            s, r = splitmix64(s)
            c0 = np.int64(r % np.uint64(side - mw + 1))
        _paint(inputs[b], side, cells, grid_off[gi], hi, wi, tid, cmap, r0, c0, COLOR0)
        if go >= 0:
            _paint(labels[b], side, cells, grid_off[go], ho, wo, tid, cmap, r0, c0, COLOR0)


class ArcSource:
    """Items are (version, example) pairs of a prepared ARC dataset."""

    def __init__(self, path: str | Path):
        self.store = ArcStore(path)
        m = self.store.meta
        self.seq_len, self.vocab_size = int(m["seq_len"]), int(m["vocab_size"])
        self.num_puzzle_identifiers = int(m["num_puzzle_identifiers"])
        # np.load(mmap) arrays are read-only memmaps; numba wants plain arrays. They are small (tens of MB).
        self.a = {k: np.ascontiguousarray(v) for k, v in self.store.a.items()}
        # Mixing weights (`prepare arc --weight`): each task of a set of weight w is visited w times an epoch.
        sets = m.get("sets", [])
        n_tasks = len(self.a["task_train"]) - 1
        self.visits = np.repeat(np.array([int(s.get("weight", 1)) for s in sets], np.int64),
                                [int(s["tasks"]) for s in sets]) if sum(int(s["tasks"]) for s in sets) == n_tasks \
            else np.ones(n_tasks, np.int64)
        self.epoch_len = int((self.visits * np.diff(self.a["task_train"])).sum())
        self._test: tuple[np.ndarray, np.ndarray] | None = None

    def epoch(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self.a
        return _arc_epoch(a["task_train"], a["train_ex"], a["task_ver"], self.visits, np.uint64(seed))

    def test_items(self) -> tuple[np.ndarray, np.ndarray]:
        """All (version, example) pairs of the test split: task-major, then version, then test input."""
        if self._test is None:
            a = self.a
            vers, exs = [], []
            for t in range(len(a["task_test"]) - 1):
                e = a["test_ex"][a["task_test"][t]:a["task_test"][t + 1]]
                if len(e) == 0:
                    continue
                v = np.arange(a["task_ver"][t], a["task_ver"][t + 1], dtype=np.int32)
                vers.append(np.repeat(v, len(e)))
                exs.append(np.tile(e, len(v)))
            self._test = (np.concatenate(vers) if vers else np.zeros(0, np.int32),
                          np.concatenate(exs) if exs else np.zeros(0, np.int32))
        return self._test

    def encode(self, ver: np.ndarray, ex: np.ndarray, translate: np.ndarray, seeds: np.ndarray):
        a = self.a
        n = len(ver)
        inputs = np.zeros((n, self.seq_len), np.uint8)
        labels = np.full((n, self.seq_len), IGNORE_LABEL, np.int64)
        _arc_encode(a["cells"], a["grid_off"], a["grid_hw"], a["ex_in"], a["ex_out"], a["ver_tid"], a["ver_map"],
                    ver.astype(np.int64), ex.astype(np.int64), translate, seeds, inputs, labels)
        pids = np.where(ver >= 0, ver.astype(np.int64) + 1, 0).astype(np.int32)
        return inputs, labels, pids

    def augmentations(self, ver: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Versions (-1 = padding) -> (task ids int32 [b]: task index + 1, 0 for padding; augmentations int32
        [b, 11]: dihedral id, colour map; the identity for padding)."""
        a = self.a
        valid = ver >= 0
        safe = np.where(valid, ver, 0).astype(np.int64)
        tasks = np.where(valid, a["ver_task"][safe].astype(np.int64) + 1, 0).astype(np.int32) if len(a["ver_task"]) \
            else np.zeros(len(ver), np.int32)
        augs = identity_augmentations(len(ver))
        if len(a["ver_task"]):
            augs[valid, 0] = a["ver_tid"][safe[valid]]
            augs[valid, 1:] = a["ver_map"][safe[valid]]
        return tasks, augs


def identity_augmentations(n: int) -> np.ndarray:
    """[n, 11] int32 rows of (dihedral 0, identity colour map)."""
    augs = np.zeros((n, 11), np.int32)
    augs[:, 1:] = np.arange(10, dtype=np.int32)
    return augs


def _batch(inputs: np.ndarray, labels: np.ndarray, pids: np.ndarray, tasks: np.ndarray | None = None,
           augs: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    n = len(pids)
    return {"inputs": torch.from_numpy(inputs.astype(np.int32)), "labels": torch.from_numpy(labels),
            "puzzle_identifiers": torch.from_numpy(pids),
            "task_identifiers": torch.from_numpy(tasks if tasks is not None else np.zeros(n, np.int32)),
            "augmentations": torch.from_numpy(augs if augs is not None else identity_augmentations(n))}


class DenseSource:
    """Items are rows of a dense (Sudoku/Maze) dataset; augmentation is drawn per batch."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        m = dense_dataset.read_meta(path)
        self.meta = m
        self.seq_len, self.vocab_size = int(m["seq_len"]), int(m["vocab_size"])
        self.num_puzzle_identifiers = int(m.get("num_puzzle_identifiers", 1))
        self.ignore = m.get("ignore_label_id")
        self.splits = {s: dense_dataset.load_split(path, s) for s in m["splits"]}
        self.epoch_len = int(m["splits"].get("train", 0))

    def epoch(self, seed: int):
        rows = np.random.default_rng(seed).permutation(self.epoch_len).astype(np.int32)
        return rows, rows, np.zeros(len(rows), np.bool_)

    def test_items(self):
        n = int(self.meta["splits"].get("test", 0))
        r = np.arange(n, dtype=np.int32)
        return r, r

    def encode_split(self, split: str, rows: np.ndarray, rng: np.random.Generator | None):
        inp_all, lab_all = self.splits[split]
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        inputs = np.array(inp_all[np.sort(safe)], dtype=np.uint8)[np.argsort(np.argsort(safe, kind="stable"), kind="stable")]
        labels = np.array(lab_all[np.sort(safe)], dtype=np.uint8)[np.argsort(np.argsort(safe, kind="stable"), kind="stable")]
        if rng is not None and self.meta.get("augment"):
            inputs, labels = self._augment(inputs, labels, rng)
        lab = labels.astype(np.int64)
        if self.ignore is not None:
            lab[labels == self.ignore] = IGNORE_LABEL
        inputs[~valid] = 0
        lab[~valid] = IGNORE_LABEL
        return inputs, lab, np.zeros(len(rows), np.int32)

    def _augment(self, inputs, labels, rng):
        kind = self.meta["augment"]
        if kind == "sudoku":
            from arcsolver.data.sudoku import augment_tokens
            return augment_tokens(inputs, labels, rng, int(self.meta["side"]), tuple(self.meta["box"]))
        if kind == "dihedral":
            from arcsolver.data.maze import augment_tokens
            return augment_tokens(inputs, labels, rng, int(self.meta["side"]))
        raise ValueError(f"unknown augmentation {kind!r} in {self.path}/meta.json")


def open_source(path: str | Path) -> ArcSource | DenseSource:
    meta = read_json(Path(path) / "meta.json")
    return ArcSource(path) if meta.get("kind") == "arc" else DenseSource(path)


class PuzzleLoader:
    """Endless training batches (split="train") or one ordered pass (split="test"), sharded by rank."""

    def __init__(self, source: ArcSource | DenseSource | str | Path, split: str = "train", *,
                 global_batch_size: int = 768, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not isinstance(source, (ArcSource, DenseSource)):
            source = open_source(source)
        if global_batch_size % world_size:
            raise ValueError(f"global batch {global_batch_size} is not divisible by {world_size} processes")
        self.source, self.split = source, split
        self.global_batch_size, self.seed = global_batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.local_batch_size = global_batch_size // world_size
        self.step = 0  # next global batch index (training)
        self._epoch_cache: dict[int, tuple] = {}
        if split == "train" and source.epoch_len == 0:
            raise ValueError("the training split is empty")

    # -- resume ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.seed = int(state["step"]), int(state["seed"])

    # -- training -------------------------------------------------------------------------------------------
    def _epoch(self, e: int):
        if e not in self._epoch_cache:
            if len(self._epoch_cache) > 2:
                self._epoch_cache.pop(min(self._epoch_cache))
            es = int(_mix_seed(np.uint64(self.seed), np.int64(e)) >> np.uint64(1))
            self._epoch_cache[e] = self.source.epoch(es)
        return self._epoch_cache[e]

    def _items(self, start: int, n: int):
        """Stream positions [start, start+n) -> (ver, ex, keep_top_left)."""
        L = self.source.epoch_len
        parts = []
        pos = start
        while pos < start + n:
            e, i = divmod(pos, L)
            take = min(L - i, start + n - pos)
            ver, ex, keep = self._epoch(e)
            parts.append((ver[i:i + take], ex[i:i + take], keep[i:i + take]))
            pos += take
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))

    def train_batch(self, k: int) -> dict[str, torch.Tensor]:
        B, b = self.global_batch_size, self.local_batch_size
        lo = k * B + self.rank * b
        src = self.source
        if isinstance(src, ArcSource):
            ver, ex, keep = self._items(lo, b)
            seeds = np.array([_mix_seed(np.uint64(self.seed) ^ np.uint64(0xA5A5A5A5), np.int64(p))
                              for p in range(lo, lo + b)], dtype=np.uint64)
            inputs, labels, pids = src.encode(ver, ex, ~keep, seeds)
            return _batch(inputs, labels, pids, *src.augmentations(ver))
        else:
            # Augment the whole global batch with one generator, then slice: shards see what one process would.
            rows, _, _ = self._items(k * B, B)
            rng = np.random.default_rng([self.seed, k])
            inputs, labels, pids = src.encode_split("train", rows, rng)
            sl = slice(self.rank * b, (self.rank + 1) * b)
            inputs, labels, pids = inputs[sl], labels[sl], pids[sl]
        return _batch(inputs, labels, pids)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.split != "train":
            yield from self.test_batches()
            return
        while True:
            batch = self.train_batch(self.step)
            self.step += 1
            yield batch

    # -- evaluation -----------------------------------------------------------------------------------------
    def test_size(self) -> int:
        return len(self.source.test_items()[0])

    def test_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        ver_all, ex_all = self.source.test_items()
        n = len(ver_all)
        B, b = self.global_batch_size, self.local_batch_size
        for start in range(0, n, B):
            idx = np.arange(start + self.rank * b, start + (self.rank + 1) * b)
            valid = idx < n
            safe = np.where(valid, idx, 0)
            ver = np.where(valid, ver_all[safe], -1).astype(np.int32)
            ex = np.where(valid, ex_all[safe], -1).astype(np.int32)
            if isinstance(self.source, ArcSource):
                inputs, labels, pids = self.source.encode(ver, ex, np.zeros(b, np.bool_), np.zeros(b, np.uint64))
                batch = _batch(inputs, labels, pids, *self.source.augmentations(ver))
            else:
                batch = _batch(*self.source.encode_split("test", ver, None))
            batch["index"] = torch.from_numpy(np.where(valid, idx, -1).astype(np.int64))
            yield batch
