"""Undo augmentation on predicted canvases and vote over the resulting grids.

The model answers each augmented test input with a token canvas in the augmented frame. `undo_batch` turns a batch
of such canvases back into grids of the original task, in one numba kernel: crop at the top-left (strict mode, the
default, rejects canvases without a well-formed EOS boundary, i.e. whose shape is ambiguous), inverse dihedral,
inverse colour map, and a 128-bit content hash (shape included) so identical answers from different augmentations
can be counted without comparing arrays.

`VoteBook` accumulates those grids per (task id, test index) with the reference evaluator's semantics: candidates
are ranked by vote count, ties broken by the mean sigmoid(q_halt) of the predictions that produced them. Invalid
predictions (no readable grid) are counted separately and never become candidates.

Unlike the reference (`aggregated_voting=True`, which never clears its state and so silently votes over every
checkpoint evaluated so far), a VoteBook belongs to exactly one checkpoint evaluation: make a new one per
checkpoint. Ensembling checkpoints is possible, but only explicitly, with `VoteBook.merge`.

Hashes are 128 bits (two independently mixed 64-bit lanes), so a collision between two different grids among even
billions of candidates has probability ~n^2 / 2^129: negligible, hence no cell-by-cell confirmation on a hash hit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numba
import numpy as np

from arcsolver.data.dihedral import INVERSE, NUM_TRANSFORMS, out_shape, source_cell
from arcsolver.data.encoding import COLOR0, canvas_side, crop_shape, strict_shape

# ---------------------------------------------------------------------------------------------------------------
# numba kernel: crop + inverse dihedral + inverse colours + hash, for a whole batch

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)


@numba.njit(cache=True, inline="always")
def _fmix(z: np.uint64) -> np.uint64:
    # murmur3's 64-bit finaliser: full avalanche, so nearby inputs land far apart.
    z ^= z >> np.uint64(33)
    z *= _F1
    z ^= z >> np.uint64(33)
    z *= _F2
    z ^= z >> np.uint64(33)
    return z


@numba.njit(cache=True, inline="always")
def _absorb(h1: np.uint64, h2: np.uint64, word: np.uint64) -> tuple[np.uint64, np.uint64]:
    # Two lanes with different constants and different mixing, so their collisions are independent.
    h1 = (h1 ^ word) * _M1
    h1 ^= h1 >> np.uint64(29)
    h2 = (h2 + word) * _M2
    h2 = (h2 << np.uint64(31)) | (h2 >> np.uint64(33))
    return h1, h2


@numba.njit(cache=True)
def _undo_kernel(tokens, tids, cmaps, strict, grids, shapes, valid, hashes) -> None:
    n = tokens.shape[0]
    side = grids.shape[1]
    inv = np.empty(10, dtype=np.uint8)
    for k in range(n):
        row = tokens[k]
        if strict:
            h, w = strict_shape(row)
        else:
            h, w = crop_shape(row)
        if h == 0:
            valid[k] = False
            shapes[k, 0] = 0
            shapes[k, 1] = 0
            hashes[k, 0] = np.uint64(0)
            hashes[k, 1] = np.uint64(0)
            continue
        for c in range(10):
            inv[cmaps[k, c]] = c
        t = INVERSE[tids[k]]
        oh, ow = out_shape(t, h, w)
        # The inverse dihedral is affine in (i, j): flat source index = base + i * di + j * dj. Deriving the three
        # numbers from source_cell keeps the transform ids defined in one place and the inner loop branch-free.
        r0, c0 = source_cell(t, 0, 0, h, w)
        r1, c1 = source_cell(t, 1, 0, h, w)
        r2, c2 = source_cell(t, 0, 1, h, w)
        base = r0 * side + c0
        di = (r1 - r0) * side + (c1 - c0)
        dj = (r2 - r0) * side + (c2 - c0)
        h1 = np.uint64(0x243F6A8885A308D3)
        h2 = np.uint64(0x13198A2E03707344)
        h1, h2 = _absorb(h1, h2, np.uint64(oh * 64 + ow))
        word = np.uint64(0)
        count = 0
        out = grids[k]
        for i in range(oh):
            p = base + i * di
            for j in range(ow):
                v = inv[row[p] - COLOR0]
                out[i, j] = v
                # Pack 16 four-bit cells per 64-bit word: one mixing step per 16 cells. The shape is hashed first,
                # so the packing is unambiguous.
                word = (word << np.uint64(4)) | np.uint64(v)
                count += 1
                if count == 16:
                    h1, h2 = _absorb(h1, h2, word)
                    word = np.uint64(0)
                    count = 0
                p += dj
        if count:
            h1, h2 = _absorb(h1, h2, word)
        valid[k] = True
        shapes[k, 0] = oh
        shapes[k, 1] = ow
        a = _fmix(h1 ^ (h2 >> np.uint64(17)))
        b = _fmix(h2 + _M1 * h1)
        hashes[k, 0] = a
        hashes[k, 1] = b


class Undone(NamedTuple):
    """Result of `undo_batch` for N predictions on a side x side canvas."""

    grids: np.ndarray  # uint8 [N, side, side]; grid k is grids[k, :h, :w], the rest is 0
    shapes: np.ndarray  # int64 [N, 2]; (0, 0) where invalid
    valid: np.ndarray  # bool [N]
    hashes: np.ndarray  # uint64 [N, 2]; 128-bit content hash of (shape, cells); 0 where invalid

    def grid(self, k: int) -> np.ndarray | None:
        """The k-th grid cropped to its shape (a view), or None if prediction k was invalid."""
        if not self.valid[k]:
            return None
        h, w = self.shapes[k]
        return self.grids[k, :h, :w]


def undo_batch(tokens: np.ndarray, tids: np.ndarray, cmaps: np.ndarray, strict: bool = True) -> Undone:
    """Predicted canvases in augmented frames -> grids in the original frame, with validity and content hashes.

    tokens: integer [N, side*side] (any integer dtype; no copy if C-contiguous); tids: [N] dihedral ids 0..7 that
    were applied to the input; cmaps: [N, 10] colour maps that were applied (colour c -> cmaps[k, c]).
    A prediction is invalid when no grid can be read from it (`strict`: `encoding.strict_shape`, else the
    reference's `crop_shape`). Bad tids or cmaps are caller bugs and raise ValueError.
    """
    tokens = np.ascontiguousarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [N, side*side], got shape {tokens.shape}")
    if tokens.dtype.kind not in "iu":
        raise ValueError(f"tokens must be integers, got {tokens.dtype}")
    n = tokens.shape[0]
    side = canvas_side(tokens.shape[1])
    tids = np.ascontiguousarray(tids, dtype=np.int64).reshape(-1)
    cmaps = np.ascontiguousarray(cmaps, dtype=np.uint8).reshape(-1, 10)
    if tids.shape[0] != n or cmaps.shape[0] != n:
        raise ValueError(f"{n} canvases but {tids.shape[0]} transform ids and {cmaps.shape[0]} colour maps")
    if n and (tids.min() < 0 or tids.max() >= NUM_TRANSFORMS):
        raise ValueError(f"dihedral transform ids must be 0..7, got {tids.min()}..{tids.max()}")
    if n and not (np.sort(cmaps, axis=1) == np.arange(10, dtype=np.uint8)).all():
        bad = int(np.flatnonzero(~(np.sort(cmaps, axis=1) == np.arange(10)).all(axis=1))[0])
        raise ValueError(f"colour map {bad} is not a permutation of 0..9: {cmaps[bad].tolist()}")
    grids = np.zeros((n, side, side), dtype=np.uint8)
    shapes = np.zeros((n, 2), dtype=np.int64)
    valid = np.zeros(n, dtype=np.bool_)
    hashes = np.zeros((n, 2), dtype=np.uint64)
    if n:
        _undo_kernel(tokens, tids, cmaps, bool(strict), grids, shapes, valid, hashes)
    return Undone(grids, shapes, valid, hashes)


# ---------------------------------------------------------------------------------------------------------------
# Voting


@dataclass
class Candidate:
    """One distinct answer for one test input."""

    grid: np.ndarray  # uint8 [h, w], original frame
    votes: int  # number of predictions that produced exactly this grid
    mean_q: float  # mean sigmoid(q_halt) over those predictions


@dataclass
class _Slot:
    """Everything seen for one (task, test index)."""

    cands: dict  # (hash_hi, hash_lo) -> [grid, votes, q_sum]; insertion order = first seen, the last tie-break
    n_predictions: int = 0
    n_invalid: int = 0


class VoteBook:
    """Vote counts per (task id, test index) for ONE checkpoint evaluation (see the module docstring).

    `add` takes batches straight from the model; `ranked(task, i)` gives the candidates best first, sorted by
    (votes, mean_q) descending, first-seen order breaking exact ties.
    """

    def __init__(self, strict: bool = True, label: str = ""):
        self.strict = strict
        self.label = label  # e.g. the checkpoint it was filled from; merge() joins labels
        self._slots: dict[tuple[str, int], _Slot] = {}

    # -- filling ---------------------------------------------------------------------------------------------
    def add(self, task_ids: Sequence[str] | np.ndarray, test_index: np.ndarray, tokens: np.ndarray,
            tids: np.ndarray, cmaps: np.ndarray, q_halt_logits: np.ndarray | None) -> Undone:
        """Count one batch of N predictions. Returns the undone batch (for callers that want the grids too).

        task_ids: N original task ids; test_index: N test-input indices within their task; tokens/tids/cmaps as in
        `undo_batch`; q_halt_logits: N raw halting logits (None: every prediction counts as q = 0.5).
        """
        n = len(tokens)
        task_arr = np.asarray(task_ids)
        test_index = np.asarray(test_index, dtype=np.int64).reshape(-1)
        if task_arr.shape != (n,) or test_index.shape != (n,):
            raise ValueError(f"{n} canvases but {task_arr.shape} task ids and {test_index.shape} test indices")
        if n and test_index.min() < 0:
            raise ValueError(f"test indices must be >= 0, got {test_index.min()}")
        if q_halt_logits is None:
            q = np.full(n, 0.5)
        else:
            logits = np.asarray(q_halt_logits, dtype=np.float64).reshape(-1)
            if logits.shape != (n,):
                raise ValueError(f"{n} canvases but {logits.shape[0]} q_halt logits")
            # exp overflow for very negative logits gives inf -> q = 0, which is the right limit.
            with np.errstate(over="ignore"):
                q = 1.0 / (1.0 + np.exp(-logits))
        und = undo_batch(tokens, tids, cmaps, strict=self.strict)
        if n == 0:
            return und
        uniq_tasks, task_code = np.unique(task_arr, return_inverse=True)
        task_code = task_code.reshape(-1).astype(np.int64)

        # Group identical (task, test index, hash) rows with one lexsort, so the Python loop below runs once per
        # distinct answer in the batch rather than once per prediction (augmentations agree a lot).
        v = und.valid
        order = np.lexsort((und.hashes[:, 1], und.hashes[:, 0], test_index, task_code, ~v))
        kv = np.stack([(~v).astype(np.uint64), task_code.astype(np.uint64), test_index.astype(np.uint64),
                       und.hashes[:, 0], und.hashes[:, 1]], axis=1)[order]
        starts = np.flatnonzero(np.r_[True, (kv[1:] != kv[:-1]).any(axis=1)])
        ends = np.r_[starts[1:], n]
        q_cum = np.r_[0.0, np.cumsum(q[order])]
        # lexsort is stable, so order[start] is a run's earliest row; visiting runs by it makes new candidates enter
        # in the order the batch first showed them (the documented last tie-break), not in hash order.
        by_first = np.argsort(order[starts], kind="stable")
        for s, e in zip(starts[by_first].tolist(), ends[by_first].tolist()):
            r = int(order[s])
            key = (str(uniq_tasks[task_code[r]]), int(test_index[r]))
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot({})
            cnt = e - s
            slot.n_predictions += cnt
            if not v[r]:
                slot.n_invalid += cnt
                continue
            hk = (int(und.hashes[r, 0]), int(und.hashes[r, 1]))
            acc = slot.cands.get(hk)
            qs = float(q_cum[e] - q_cum[s])
            if acc is None:
                h, w = und.shapes[r]
                slot.cands[hk] = [und.grids[r, :h, :w].copy(), cnt, qs]
            else:
                acc[1] += cnt
                acc[2] += qs
        return und

    def merge(self, other: "VoteBook") -> "VoteBook":
        """A new book with the votes of both (an explicit checkpoint ensemble); neither input is changed."""
        out = VoteBook(strict=self.strict and other.strict,
                       label="+".join(x for x in (self.label, other.label) if x))
        for book in (self, other):
            for key, slot in book._slots.items():
                dst = out._slots.get(key)
                if dst is None:
                    dst = out._slots[key] = _Slot({})
                dst.n_predictions += slot.n_predictions
                dst.n_invalid += slot.n_invalid
                for hk, (grid, votes, qs) in slot.cands.items():
                    acc = dst.cands.get(hk)
                    if acc is None:
                        dst.cands[hk] = [grid, votes, qs]  # grids are never mutated, sharing is safe
                    else:
                        acc[1] += votes
                        acc[2] += qs
        return out

    # -- reading ---------------------------------------------------------------------------------------------
    def ranked(self, task: str, i: int) -> list[Candidate]:
        """Candidates for test input `i` of `task`, best first; [] if none (no or only invalid predictions)."""
        slot = self._slots.get((task, int(i)))
        if slot is None:
            return []
        cands = [Candidate(g, votes, qs / votes) for g, votes, qs in slot.cands.values()]
        cands.sort(key=lambda c: (c.votes, c.mean_q), reverse=True)  # stable: first seen wins exact ties
        return cands

    def counts(self, task: str, i: int) -> tuple[int, int]:
        """(predictions seen, of which invalid) for test input `i` of `task`."""
        slot = self._slots.get((task, int(i)))
        return (0, 0) if slot is None else (slot.n_predictions, slot.n_invalid)

    def keys(self) -> list[tuple[str, int]]:
        """Every (task id, test index) that received at least one prediction, sorted."""
        return sorted(self._slots)

    def task_ids(self) -> list[str]:
        return sorted({t for t, _ in self._slots})

    @property
    def n_predictions(self) -> int:
        return sum(s.n_predictions for s in self._slots.values())

    @property
    def n_invalid(self) -> int:
        return sum(s.n_invalid for s in self._slots.values())

    def __repr__(self) -> str:
        return (f"VoteBook(label={self.label!r}, slots={len(self._slots)}, predictions={self.n_predictions}, "
                f"invalid={self.n_invalid})")


def candidates_json(book: VoteBook, top: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """{task_id: [{test_index, n_predictions, n_invalid, candidates: [{grid, votes, mean_q}, ...]}, ...]}.

    Candidates best first; `top` keeps only that many per test input (None: all). Plain lists/ints/floats, ready
    for `jsonio.write_json`, and readable back by `show` for pictures.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for task, i in book.keys():
        n_pred, n_inv = book.counts(task, i)
        cands = book.ranked(task, i)
        if top is not None:
            cands = cands[:top]
        out.setdefault(task, []).append({
            "test_index": i,
            "n_predictions": n_pred,
            "n_invalid": n_inv,
            "candidates": [{"grid": c.grid.tolist(), "votes": c.votes, "mean_q": round(c.mean_q, 6)} for c in cands],
        })
    return out

