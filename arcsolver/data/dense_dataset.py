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

from pathlib import Path

import numpy as np

from arcsolver.runtime.jsonio import atomic_dir, read_json, save_npy, write_json

FORMAT = "arcsolver-dense-1"


def write(out: str | Path, meta: dict, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write a dense dataset. `splits` maps "train"/"test" to (inputs, labels) uint8 arrays [N, seq_len]."""
    meta = dict(meta)
    meta["format"] = FORMAT
    meta.setdefault("pad_id", 0)
    meta.setdefault("num_puzzle_identifiers", 1)
    meta["splits"] = {}
    with atomic_dir(out) as tmp:
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
