"""The data stage's command settings, each declared once (runtime/settings.py): `prepare arc|sudoku|maze` and
`generate`. The functions they feed (data/prepare.py, sudoku.py, maze.py, generate.py) take these defaults, and cli.py
builds the options from these fields. No numpy here: `arcsolver --help` reads this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arcsolver.runtime.checks import SEED_MAX
from arcsolver.runtime.settings import OVERWRITE_HELP, setting

@dataclass
class ArcPrepareSettings:
    """`arcsolver prepare arc`."""

    train: tuple[str, ...] = setting((), "Task source whose demos AND test pairs are trained on (repeatable).",
                                     metavar="SOURCE")
    eval: tuple[str, ...] = setting((), "Task source whose demos are trained on and whose test inputs form the test "
                                    "split (repeatable).", metavar="SOURCE")
    out: Path | None = setting(None, "Output dataset folder.", required=True)
    num_aug: int = setting(1000, "Augmented versions per task (plus the original); 1000 is the reference's count.",
                           low=0)
    seed: int = setting(42, "Seed of the augmentation draw.", low=0, high=SEED_MAX)
    all_colors: bool = setting(False, "Permute all 10 colours (default keeps black fixed).")
    canvas: int = setting(30, "Token canvas side; < 30 only for small-grid tasks (not compatible with reference "
                          "checkpoints).", low=2, high=30)
    demos: int = setting(3, "rearc:/jsonl: sources: demonstrations per task, then 1 test pair (ARC tasks have 2-5 "
                         "demonstrations, 3 the most common; data/example_lists.py).", low=1)
    chunk_tasks: int = setting(1000, "Tasks read and augmented per chunk: memory holds one chunk (~1M versions at "
                               "1000 augmentations); an interrupted run continues after its last finished chunk.",
                               low=1)
    workers: int = setting(0, "Processes that augment chunks at once (0: one per CPU core this process may use; 1: "
                           "this process only); the dataset's bytes do not depend on it.", low=0)
    weights: tuple[str, ...] = setting((), "Mixing weight of a --train/--eval source: training visits each of its "
                                       "tasks W times an epoch (integer >= 1; default 1; repeatable).",
                                       option="--weight", metavar="SOURCE=W")
    overwrite: bool = setting(False, OVERWRITE_HELP)


@dataclass
class PuzzleSourceSettings:
    """Where a Sudoku or Maze dataset's puzzles come from: generated, or the public CSV format."""

    generate: int | None = setting(None, "Generate N training puzzles.", low=1, metavar="N")
    csv: str | None = setting(None, "Training puzzles in the public CSV format.")
    csv_test: str | None = setting(None, "Test puzzles CSV (default: generated or split off).")


@dataclass
class SudokuSettings(PuzzleSourceSettings):
    """`arcsolver prepare sudoku`."""

    side: int = setting(9, "Grid side.", choices=(4, 6, 9), option="--size")
    test_count: int = setting(1000, "Test puzzles.", low=0)
    min_difficulty: int = setting(0, "Minimum solver backtracks when generating.", low=0)
    seed: int = setting(0, "Seed of the generator and the split.", low=0, high=SEED_MAX)
    out: Path | None = setting(None, "Output dataset folder.", required=True)
    overwrite: bool = setting(False, OVERWRITE_HELP)


@dataclass
class MazeSettings(PuzzleSourceSettings):
    """`arcsolver prepare maze`."""

    side: int = setting(30, "Maze side.", low=5, option="--size")
    hard: bool = setting(True, "Keep only long shortest paths (hard filter).", option="--hard/--any")
    min_path: int | None = setting(None, "Generated mazes: shortest path at least this long (default: the hard "
                                   "filter's, or 1 with --any).", low=1)
    loop_frac: float = setting(0.08, "Generated mazes: share of interior walls knocked down to make loops (0: "
                               "perfect mazes).", low=0, high=1.0, option="--loops")
    test_count: int = setting(1000, "Test mazes.", low=0)
    seed: int = setting(0, "Seed of the generator and the split.", low=0, high=SEED_MAX)
    out: Path | None = setting(None, "Output dataset folder.", required=True)
    overwrite: bool = setting(False, OVERWRITE_HELP)


@dataclass
class GenerateSettings:
    """`arcsolver generate`."""

    families: str = setting("all", "`all` or a comma-separated list of families.")
    tasks_per_family: int = setting(10, "Tasks per family.", low=1)
    max_size: int = setting(12, "Largest grid side (inputs and outputs).", low=6, high=30)
    seed: int = setting(0, "Seed of the draw (tasks are deterministic per seed).", low=0, high=SEED_MAX)
    out: Path | None = setting(None, "New folder for the task JSON files.")
    list_: bool = setting(False, "List the families and exit.", option="--list")
    overwrite: bool = setting(False, OVERWRITE_HELP)


ARC_PREPARE, SUDOKU, MAZE, GENERATE = ArcPrepareSettings(), SudokuSettings(), MazeSettings(), GenerateSettings()
