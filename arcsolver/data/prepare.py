"""`arcsolver prepare`: turn task sources into a dataset folder that `train` and `predict` read.

ARC: sources named with `--train` contribute demos and test pairs to training; sources named with `--eval` contribute
their demos to training and their test inputs to the test split (the reference's transductive routing: the model
learns each evaluation task's embedding from its demos, never from its test outputs). Sudoku and Maze: generated
(seeded) or read from the public CSV format.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from arcsolver.data import arc_dataset
from arcsolver.data.settings import ARC_PREPARE
from arcsolver.data.task_stream import TaskStream
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json
from arcsolver.runtime.outputs import claim_output
from arcsolver.runtime.report import say

# The bundled default: the project's own small tasks (package data, so an installed wheel has them too), all routed
# as evaluation tasks.
BUNDLED_TASKS = Path(__file__).resolve().parent / "bundled"


def _claim(out: Path, inputs: Sequence[str | None], overwrite: bool) -> None:
    """The output rule (runtime/outputs.py) for a dataset folder, said in one line when it replaces one."""
    notice = claim_output(out, "dataset", inputs=inputs, overwrite=overwrite).notice()
    if notice:
        say(notice)


def prepare_arc(out: Path, train: Sequence[str] = (), eval: Sequence[str] = (), *,
                num_aug: int = ARC_PREPARE.num_aug, seed: int = ARC_PREPARE.seed,
                all_colors: bool = ARC_PREPARE.all_colors, canvas: int = ARC_PREPARE.canvas,
                overwrite: bool = ARC_PREPARE.overwrite, demos: int = ARC_PREPARE.demos,
                chunk_tasks: int = ARC_PREPARE.chunk_tasks, weights: Sequence[str] = ARC_PREPARE.weights,
                workers: int = ARC_PREPARE.workers) -> dict:
    """Read the sources (every task validated), augment and write the dataset folder `out` (replacing only an
    earlier dataset, or anything with `overwrite`; never one of the sources). `rearc:` / `jsonl:` sources are
    example lists cut into tasks of `demos` demonstrations + 1 test pair (data/example_lists.py, seeded by `seed`).
    Streams in chunks of `chunk_tasks` tasks, `workers` of them augmented at once, and continues an interrupted run
    of the same call (arc_dataset.build).
    `weights`: "SOURCE=W" mixing weights (an integer W >= 1, default 1; training visits each task of SOURCE W times
    an epoch)."""
    if not train and not eval:
        if not BUNDLED_TASKS.is_dir():
            raise InputError("no sources given and the bundled tasks folder is missing", file=str(BUNDLED_TASKS))
        eval = [str(BUNDLED_TASKS)]
    if num_aug < 0:
        raise InputError(f"must be >= 0, got {num_aug}", field="--num-aug")
    weight_of = parse_weights(weights, [*train, *eval])
    _claim(out, [*train, *eval], overwrite)
    # Sources are listed here (a missing folder, an empty one: one line before anything is written) and read chunk
    # by chunk by the build. Test pairs of --train sources are trained on, so their outputs are required.
    sets = [arc_dataset.TaskSet(spec, TaskStream(spec, require_outputs=True, demos=demos, seed=seed),
                                weight=weight_of.get(spec, 1)) for spec in train]
    sets += [arc_dataset.TaskSet(spec, TaskStream(spec, require_outputs=False, demos=demos, seed=seed),
                                 test_set=True, weight=weight_of.get(spec, 1)) for spec in eval]
    # A bar on a terminal; into a log file (a line every 30 s) the ~30 s of augmenting would be two lines around
    # nothing, and a failure after it would no longer be the only line on stderr.
    arc_dataset.build(out, sets, num_aug=num_aug, seed=seed, all_colors=all_colors, canvas=canvas,
                      progress=sys.stderr.isatty(), chunk_tasks=chunk_tasks, workers=workers)
    return read_json(Path(out) / "meta.json")


def parse_weights(weights: Sequence[str], sources: Sequence[str]) -> dict[str, int]:
    """"SOURCE=W" items -> {source: W}; one line for a source not given as --train/--eval or a W that is not an
    integer >= 1."""
    out: dict[str, int] = {}
    for item in weights:
        spec, sep, w = str(item).rpartition("=")
        if not sep or spec not in sources:
            raise InputError(f"expected SOURCE=W with SOURCE one of the --train/--eval sources, got {item!r}",
                             field="--weight")
        if not w.isdigit() or int(w) < 1:
            raise InputError(f"the weight must be an integer >= 1, got {w!r}", field="--weight")
        out[spec] = int(w)
    return out


def prepare_sudoku(out: Path, *, generate: int | None, csv: str | None, csv_test: str | None, size: int,
                   test_count: int, seed: int, min_difficulty: int, overwrite: bool = False) -> dict:
    """`sudoku.prepare` (its signature holds the defaults) with one line for a bad combination of sources."""
    from arcsolver.data import sudoku
    if (generate is None) == (csv is None):
        raise InputError("give exactly one of --generate N or --csv FILE", field="prepare sudoku")
    _claim(out, [csv, csv_test], overwrite)
    sudoku.prepare(out, generate=generate, csv=csv, csv_test=csv_test, side=size, test_count=test_count, seed=seed,
                   min_difficulty=min_difficulty)
    return read_json(Path(out) / "meta.json")


def prepare_maze(out: Path, *, generate: int | None, csv: str | None, csv_test: str | None, size: int, hard: bool,
                 test_count: int, seed: int, min_path: int | None = None, loops: float | None = None,
                 overwrite: bool = False) -> dict:
    """`maze.prepare` (its signature holds the defaults: `min_path`/`loops` left None take them) with one line for a
    bad combination of sources."""
    from arcsolver.data import maze
    if (generate is None) == (csv is None):
        raise InputError("give exactly one of --generate N or --csv FILE", field="prepare maze")
    _claim(out, [csv, csv_test], overwrite)
    generation = {k: v for k, v in (("min_path", min_path), ("loop_frac", loops)) if v is not None}
    maze.prepare(out, generate=generate, csv=csv, csv_test=csv_test, side=size, hard=hard, test_count=test_count,
                 seed=seed, **generation)
    return read_json(Path(out) / "meta.json")


def summary(meta: dict, out: Path) -> str:
    """Human-readable lines describing a prepared dataset."""
    lines = [f"wrote {out}  ({meta['kind']}, seq_len {meta['seq_len']}, vocab {meta['vocab_size']}, "
             f"{meta['num_puzzle_identifiers']} puzzle ids)"]
    c = meta.get("counts", {})
    if meta["kind"] == "arc":
        lines.append(f"  tasks {c['tasks']} ({c['test_tasks']} evaluated), versions {c['versions']} "
                     f"(min per task {c['min_versions']}), train examples per epoch {c['train_examples_per_epoch']}, "
                     f"test examples {c['test_examples']} ({c['test_inputs']} test inputs x versions)")
    else:
        lines.append(f"  splits {meta['splits']}, side {meta.get('side')}, augmentation {meta.get('augment')}")
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    lines.append(f"  on disk {size / 1e6:.1f} MB")
    return "\n".join(lines)
