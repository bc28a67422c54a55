"""Dense puzzle datasets (Sudoku, Maze): fixed-length token rows stored as memory-mappable .npy files.

Format (a folder, written atomically):
  meta.json            {"format": "arcsolver-dense-1", "kind": "sudoku"|"maze", "seq_len", "vocab_size",
                        "pad_id": 0, "ignore_label_id": int|null, "num_puzzle_identifiers": 1,
                        "augment": "sudoku"|"dihedral"|null, "side", "box": [rows, cols]|null,
                        "splits": {"train": N, "test": M}, "seed", "source", ...}
  train_inputs.npy     uint8 [N, seq_len]    train_labels.npy  uint8 [N, seq_len]
  test_inputs.npy      uint8 [M, seq_len]    test_labels.npy   uint8 [M, seq_len]

Only base puzzles are stored. Validity-preserving augmentation (`augment`) is applied per draw by the loader to
the train split, so a 1000-fold augmented Sudoku set costs the disk of the 1000 base puzzles. All rows share puzzle
identifier 0 (one embedding row), as in the reference.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from arcsolver.data.rng import stream_seed
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import atomic_dir, read_json, save_npy, write_json
from arcsolver.runtime.outputs import mark_folder

FORMAT = "arcsolver-dense-1"


def write(out: str | Path, meta: dict, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write a dense dataset. `splits` maps "train"/"test" to (inputs, labels) uint8 arrays [N, seq_len]."""
    meta = dict(meta)
    meta["format"] = FORMAT
    meta.setdefault("pad_id", 0)
    meta.setdefault("num_puzzle_identifiers", 1)
    meta["splits"] = {}
    with atomic_dir(out) as tmp:
        mark_folder(tmp, "dataset")
        for name, (inputs, labels) in splits.items():
            inputs = np.ascontiguousarray(inputs, dtype=np.uint8)
            labels = np.ascontiguousarray(labels, dtype=np.uint8)
            if inputs.shape != labels.shape or inputs.ndim != 2 or inputs.shape[1] != meta["seq_len"]:
                raise ValueError(f"split {name}: inputs {inputs.shape} / labels {labels.shape} vs seq_len {meta['seq_len']}")
            save_npy(tmp / f"{name}_inputs.npy", inputs)
            save_npy(tmp / f"{name}_labels.npy", labels)
            meta["splits"][name] = int(inputs.shape[0])
        write_json(tmp / "meta.json", meta, indent=True)
    return Path(out)


def read_meta(path: str | Path) -> dict:
    return read_json(Path(path) / "meta.json")


def load_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-mapped (inputs, labels) of one split."""
    path = Path(path)
    return (np.load(path / f"{split}_inputs.npy", mmap_mode="r"), np.load(path / f"{split}_labels.npy", mmap_mode="r"))


def distinct_puzzles(n: int, seed: int, draw: Callable[[int], tuple | None], tries: int,
                     exclude: set[bytes] | None, equivalence_key: Callable[[np.ndarray], bytes],
                     too_few: Callable[[], InputError]) -> list[tuple]:
    """n distinct puzzles from a seeded generator: attempt k calls `draw(rng.stream_seed(seed, k))`, which returns a
    tuple (question [side*side], ...) or None to reject. A question seen before, or whose `equivalence_key` is in
    `exclude` (an augmentation of a held-out one), is skipped. After `tries` attempts, raises `too_few()`."""
    seen: set[bytes] = set()
    excluded = set(exclude or ())
    out: list[tuple] = []
    k = 0
    while len(out) < n:
        if k >= tries:
            raise too_few()
        item = draw(stream_seed(seed, k))
        k += 1
        if item is None:
            continue
        q = item[0]
        side = int(round(len(q) ** 0.5))
        key = q.astype(np.uint8).tobytes()
        if key in seen or (excluded and equivalence_key(q.reshape(side, side)) in excluded):
            continue
        seen.add(key)
        out.append(item)
    return out


CSV_HEADER = ["source", "question", "answer", "rating"]


def read_csv(path: str | Path, parse_pair: Callable[[str, str, str, int], tuple[np.ndarray, np.ndarray]],
             what: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The public CSV format of Sudoku-Extreme and Maze-Hard: header source,question,answer,rating, one puzzle a row.
    `parse_pair(question, answer, file, row)` turns a row's two strings into checked (question, answer) grids or
    raises InputError. Returns (questions, answers, ratings); an empty rating counts as 0. `what`: the plural noun
    of the one-line error when the file holds no rows ("no puzzles")."""
    file = str(path)
    try:
        f = open(path, newline="")
    except FileNotFoundError:
        raise InputError("file not found", file=file) from None
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:4]] != CSV_HEADER:
            raise InputError(f"expected header {','.join(CSV_HEADER)}, got {header}", file=file, task="row 1")
        questions, answers, ratings = [], [], []
        for rown, rec in enumerate(reader, start=2):
            if limit is not None and len(questions) >= limit:
                break
            if len(rec) < 4:
                raise InputError(f"{len(rec)} columns, expected 4", file=file, task=f"row {rown}")
            q, a = parse_pair(rec[1], rec[2], file, rown)
            try:
                r = float(rec[3]) if rec[3].strip() else 0.0
            except ValueError:
                raise InputError(f"not a number: {rec[3]!r}", file=file, task=f"row {rown}", field="rating") from None
            questions.append(q)
            answers.append(a)
            ratings.append(r)
    if not questions:
        raise InputError(f"no {what}", file=file)
    sides = {q.shape[0] for q in questions}
    if len(sides) > 1:
        raise InputError(f"mixed sizes {sorted(sides)}", file=file)
    return np.stack(questions), np.stack(answers), np.array(ratings)


def write_csv(path: str | Path, rows) -> None:
    """Write the public CSV format; `rows` yields (source, question, answer, rating)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        w.writerows(rows)
