"""`arcsolver finetune`: teach a trained TRM tasks it has never seen (test-time training), within a time budget.

A TRM answers a task only through the embedding row learned for it, so on unseen tasks it scores 0. Following what
worked for competitors on Kaggle (docs/kaggle-format.md, 'TRM entries on Kaggle'): the new tasks are augmented (their
demos go to training, their test inputs are what we predict), their versions get new rows in the puzzle table
initialised to the mean of the trained rows (the reference's `load_checkpoint` behaviour), a first phase trains only
the embeddings, then the whole model is fine-tuned (full fine-tuning beat embedding-only and LoRA).

Deadline: one absolute deadline (`--deadline`, or `--time-budget` from process start) governs everything. Before
the dataset is built, `finetune_plan` measures the cost of prediction (one checkpoint load, one timed forward step)
and decides, by a ladder that cuts training steps, then augmentations, then versions voted, down to predicting with
the mean embedding, what fits; the plan (phases and every reserve) is printed and saved in finetune.json. Each
training phase runs against a sub-deadline and plans its own steps from its own timed steps; prediction gets the
deadline itself and stops before it with whatever it has voted. Nothing here refuses for lack of time.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from arcsolver.runtime import report
from arcsolver.runtime.deadline import Deadline, Plan
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json, write_json
from arcsolver.runtime.outputs import claim_folder, claim_output, owning_run
from arcsolver.data import arc_dataset
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.model import checkpoint
from arcsolver.model.checks import check_checkpoint
from arcsolver.model.config import model_mode
from arcsolver.model.puzzle_embedding import dataset_row_map, extend_table, map_row_names, table_key
from arcsolver.inference.predict import check_publish_target, predict
from arcsolver.inference.settings import PREDICT
from arcsolver.training.checks import check_config
from arcsolver.training.config import FINETUNE, build_config
from arcsolver.training.finetune_plan import CUT_ORDER, decide, measure_costs
from arcsolver.training.plan_log import PLAN_NAME, PlanLog
from arcsolver.training.train import train

def _extended_weights(ckpt: Path, base: dict, data_dir: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's weights (EMA) with its puzzle table extended to the rows of the fine-tuning dataset: a row
    the checkpoint's name -> row map already has (a task, or version, it was trained on) keeps its trained row,
    every new one starts at the mean of the trained rows. In task mode the augmentation codes (dihedral rows,
    colour codes) are kept as trained: only the task table is extended."""
    weights = checkpoint.load_weights(ckpt, ema=True)
    mode = model_mode(base["model"])
    key = table_key(mode)
    if key not in weights:  # no puzzle embedding (puzzle_emb_ndim 0)
        return weights
    old = checkpoint.load_puzzle_rows(ckpt)
    new = map_row_names(dataset_row_map(data_dir, mode))
    weights[key], _ = extend_table(weights[key].float(), map_row_names(old) if old else None, new)
    return weights


def finetune(ckpt: str | Path, tasks: str, out: Path, *, deadline: Deadline | None = None,
             predict_after: bool = FINETUNE.predict_after, num_aug: int = FINETUNE.num_aug,
             embed_fraction: float = FINETUNE.embed_fraction, lr_scale: float = FINETUNE.lr_scale,
             batch_size: int | None = FINETUNE.batch_size, overrides: list[str] = FINETUNE.overrides,
             seed: int = FINETUNE.seed, cpu: bool | None = FINETUNE.cpu, quiet: bool = False,
             embed_steps: int | None = FINETUNE.embed_steps, full_steps: int | None = FINETUNE.full_steps,
             predict_batch_size: int = PREDICT.batch_size, device_batch_size: int | None = FINETUNE.device_batch_size,
             ema: bool | None = FINETUNE.ema, overwrite: bool = FINETUNE.overwrite,
             publish: Path | None = FINETUNE.publish) -> dict:
    """Fine-tune `ckpt` on the tasks of `tasks`; returns a summary dict (and writes OUT/finetune.json).

    `deadline`: the run's one Deadline (the CLI makes it from --deadline / --time-budget). `embed_steps` and
    `full_steps` fix the length of the two phases instead of planning them (reproducible runs: the same steps give
    the same weights on the same machine); a deadline still caps them, and only they allow no deadline at all.
    `device_batch_size`: rows per forward in training and prediction (gradient accumulation keeps the global
    batch); default from the free device memory (memory_model).
    `ema`: None keeps the checkpoint's EMA setting during fine-tuning, False/True force it off/on.
    `out` is new, empty or an earlier fine-tuning output (replaced whole); anything else only with `overwrite`.
    `publish`: a complete submission file into which prediction copies its answers at every flush (predict)."""
    deadline = deadline or Deadline()
    clock = deadline.clock
    t0 = clock.now()
    out = Path(out)
    fixed = embed_steps is not None or full_steps is not None
    _check_options(deadline, embed_steps, full_steps, num_aug, embed_fraction, publish)
    ckpt, base = _check_inputs(ckpt, out, tasks, batch_size=batch_size, lr_scale=lr_scale, overwrite=overwrite)
    canvas = int(base["data"].get("canvas") or 30)
    state = PartialState(cpu=bool(cpu) if cpu is not None else not torch.cuda.is_available())
    task_list = load_tasks(tasks)
    cfg = _finetune_config(base, overrides, batch_size, lr_scale, seed, ema)
    if device_batch_size is not None:
        if device_batch_size < 0:
            raise InputError(f"must be >= 0 (0: automatic), got {device_batch_size}", field="--device-batch-size")
        cfg.device_batch_size = device_batch_size
    claim_folder(out, "finetune", inputs=_inputs(ckpt, tasks), overwrite=overwrite)  # every option checked: write
    say = report.say if state.is_main_process and not quiet else (lambda m: None)
    plan_log = PlanLog(out / PLAN_NAME, deadline.remaining() if deadline.limited else 0.0,
                       enabled=state.is_main_process)

    # 1. the plan (main process decides, every process follows), then the dataset it asks for
    n_tests = sum(len(t.test) for t in task_list)
    margin = {"exit": 2.0 + 0.01 * max(0.0, deadline.remaining())} if deadline.limited else {}
    decision = plan = costs = None
    planning_s = 0.0
    # Fixed steps under a deadline still keep prediction's time: the same cost model prices it, and training stops
    # at the deadline minus that reserve (the steps are cut, not the prediction).
    if not fixed or (deadline.limited and predict_after):
        t_plan = clock.now()
        if state.is_main_process:
            # priced as this run will run: one of `num_processes` processes, its dtype, micro-batch and compile
            costs = measure_costs(ckpt, state.device, n_rows=n_tests * (num_aug + 1), predict_batch=predict_batch_size,
                                  train_batch=cfg.global_batch_size, clock=clock, window_s=deadline.remaining(),
                                  world=state.num_processes, forward_dtype=cfg.forward_dtype,
                                  device_batch_size=cfg.device_batch_size, compile_setting=cfg.compile)
        costs = _same_on_every_process(state, costs)
        planning_s = clock.now() - t_plan
    if not fixed:
        decision = decide(costs, deadline.remaining(), n_tasks=len(task_list), n_test_inputs=n_tests,
                          num_aug=num_aug, predict=predict_after, embed_fraction=embed_fraction, reserves=margin)
        decision = _same_on_every_process(state, decision)
        asked, num_aug = num_aug, decision.num_aug
    data_dir = out / "data"
    with state.main_process_first():
        if state.is_main_process:
            arc_dataset.build(data_dir, [arc_dataset.TaskSet(str(tasks), task_list, test_set=True)], num_aug=num_aug,
                              seed=seed, canvas=canvas)
    meta = read_json(data_dir / "meta.json")
    prepare_s = clock.now() - t0
    per_task = max(1, int(meta["counts"]["test_examples"]) // max(1, n_tests))  # versions after deduplication
    if not fixed:
        # the same ladder with the real dataset (its versions after deduplication) and the time really left
        decision = decide(costs, deadline.remaining(), n_tasks=len(task_list), n_test_inputs=n_tests,
                          num_aug=num_aug, predict=predict_after, embed_fraction=embed_fraction, prepared=True,
                          versions_per_task=per_task, reserves=margin)
        decision = _same_on_every_process(state, decision)
        decision.cuts = [c for c in CUT_ORDER if c in decision.cuts or (c == "augmentations" and num_aug < asked)]
        decision.plan.choices["cut"] = "+".join(decision.cuts) or "nothing"
        decision.plan.deadline_in_s = deadline.remaining()
        decision.plan.phases = {"planning (done)": planning_s, "prepare (done)": prepare_s - planning_s,
                                **decision.plan.phases}
        plan = decision.plan
        say(plan.describe())
    elif costs is not None:
        plan = _fixed_steps_plan(costs, deadline.remaining(), embed_steps or 0, full_steps or 0, margin,
                                 n_tests=n_tests, versions=per_task,
                                 done={"planning (done)": planning_s, "prepare (done)": prepare_s - planning_s})
        say(plan.describe())
    else:
        say(f"finetune plan: fixed {embed_steps or 0} embeddings-only + {full_steps or 0} full steps"
            + (f", capped by the {deadline.describe()}" if deadline.limited else ""))
    if plan is not None:
        plan_log.plan(plan)
    plan_log.actual("planning", planning_s)
    plan_log.actual("prepare", prepare_s - planning_s, versions_per_task=per_task)

    # 2. weights with a puzzle table sized for the new tasks (versions), new rows = mean of the trained rows
    weights = _extended_weights(ckpt, base, data_dir)
    cfg = dataclasses.replace(cfg, data=str(data_dir))

    # 3. phase 1: embeddings only; phase 2: the whole model (each against its own sub-deadline)
    extra = {"finetune": {"from": str(ckpt), "tasks": str(tasks)}}
    pred_reserve = plan.reserves.get("prediction", 0.0) if plan else 0.0
    train_end = deadline.earlier_by(pred_reserve + sum(margin.values()))
    if fixed:
        e_steps, f_steps = embed_steps or 0, full_steps or 0
        e_deadline, prior_e, prior_f = train_end, None, None
    else:
        train_s = decision.train_s
        e_steps = f_steps = 10**9 if train_s > 0 else 0
        e_steps = e_steps if embed_fraction > 0 else 0
        f_steps = f_steps if embed_fraction < 1 else 0
        e_deadline = train_end.within(embed_fraction * max(0.0, train_end.remaining()))
        prior_e, prior_f = costs.train_step_s(embed_only=True), costs.train_step_s()
    w1, n1, final, interrupted = weights, 0, None, None
    if e_steps and e_deadline.remaining() > 0:
        t_phase = clock.now()
        res1 = train(dataclasses.replace(cfg, out=str(out / "embed"), max_steps=e_steps), cpu=cpu,
                     init_weights=weights, freeze_model=True, quiet=quiet, final_eval=False, extra_config=extra,
                     deadline=e_deadline, prior_step_s=prior_e)
        w1, n1 = checkpoint.load_weights(res1.checkpoint or checkpoint.resolve(out / "embed"), ema=False), res1.steps
        final, interrupted = checkpoint.resolve(out / "embed"), res1.signal
        plan_log.actual("embeddings-only", clock.now() - t_phase, busy_s=sum(res1.step_seconds), steps=n1)
    n2 = 0
    if f_steps and train_end.remaining() > 0 and not interrupted:  # a signal stops the whole command
        t_phase = clock.now()
        res2 = train(dataclasses.replace(cfg, out=str(out / "full"), max_steps=f_steps), cpu=cpu, init_weights=w1,
                     quiet=quiet, final_eval=False, extra_config=extra, deadline=train_end, prior_step_s=prior_f)
        n2, final, interrupted = res2.steps, checkpoint.resolve(out / "full"), res2.signal
        plan_log.actual("full fine-tune", clock.now() - t_phase, busy_s=sum(res2.step_seconds), steps=n2)
    if final is None:
        # No time to train: a checkpoint of the mean-embedding model, so that prediction has something to load.
        train(dataclasses.replace(cfg, out=str(out / "mean"), max_steps=1), cpu=cpu, init_weights=weights,
              freeze_model=True, quiet=True, final_eval=False, extra_config=extra, initial_checkpoint_only=True)
        final = checkpoint.resolve(out / "mean")
    summary = {"checkpoint": str(final), "data": str(data_dir),
               "plan": plan.to_dict() if plan else {"fixed": [embed_steps or 0, full_steps or 0]},
               "embed_steps": n1, "full_steps": n2, "train_seconds": clock.now() - t0,
               "mean_embedding_only": n1 + n2 == 0, "planning_seconds": planning_s,
               "interrupted": interrupted}

    # 4. predict, against the deadline itself (not after SIGINT/SIGTERM: the user or the scheduler asked to stop)
    if predict_after and not interrupted:
        t_pred = clock.now()
        res = predict(final, out / "submission.json", data=str(data_dir), cpu=cpu, quiet=quiet,
                      batch_size=predict_batch_size, deadline=deadline.earlier_by(sum(margin.values())),
                      max_versions=decision.versions if decision else 0, forward_dtype=cfg.forward_dtype,
                      device_batch_size=cfg.device_batch_size, publish=publish)
        plan_log.actual("prediction", clock.now() - t_pred, busy_s=clock.now() - t_pred, rows=res.items_done,
                        stopped_by=res.stopped_by, tasks_complete=res.tasks_complete)
        summary.update(submission=str(res.submission), predict_seconds=clock.now() - t_pred,
                       predict_estimate_s=pred_reserve if plan else None, predict_stopped_by=res.stopped_by,
                       tasks_complete=res.tasks_complete)
    summary["seconds"] = clock.now() - t0
    if state.is_main_process:
        write_json(out / "finetune.json", summary, indent=True)
    return summary


def _fixed_steps_plan(costs, window_s: float, embed_steps: int, full_steps: int, margin: dict[str, float], *,
                      n_tests: int, versions: int, done: dict[str, float]) -> Plan:
    """The plan of a run with fixed phase lengths under a deadline: the phases as asked (priced by the cost model),
    and the reserves training stops before: prediction of every version (`Costs.predict_s`, as `decide` prices it)
    and the exit margin. Steps that would run into the reserves are cut by the deadline, never the prediction."""
    reserves = {**margin, "prediction": costs.predict_s(n_tests, versions)}
    phases = {**done, "embeddings-only": embed_steps * costs.train_step_s(embed_only=True),
              "full fine-tune": full_steps * costs.train_step_s()}
    room = window_s - sum(reserves.values())
    fits = sum(v for k, v in phases.items() if not k.endswith("(done)")) <= room
    return Plan("finetune", window_s, phases, reserves,
                {"embed_steps": embed_steps, "full_steps": full_steps, "versions_voted": versions,
                 "cut": "nothing" if fits else "steps (training stops at the deadline minus the reserves)"})


def _finetune_ema(base_train: dict, ema: bool | None) -> bool:
    """EMA during fine-tuning: the checkpoint's setting unless forced. With EMA on, prediction reads the average,
    which after a few hundred steps at rate 0.999 is still mostly the pretrained network."""
    return bool(base_train["ema"]) if ema is None else bool(ema)


def _check_inputs(ckpt: str | Path, out: Path, tasks: str, *, batch_size: int | None, lr_scale: float,
                  overwrite: bool) -> tuple[Path, dict]:
    """The checkpoint (complete, readable, matching its config), the options and the output folder, checked before
    anything is written (model/checks.py, runtime/outputs.py). Returns (checkpoint folder, its config)."""
    ck, base = check_checkpoint(ckpt)
    if base["data"].get("kind", "arc") != "arc":
        raise InputError(f"fine-tuning learns new ARC tasks; this checkpoint was trained on {base['data']['kind']!r}",
                         file=str(ck))
    if batch_size is not None and batch_size < 1:
        raise InputError(f"expected >= 1, got {batch_size}", field="--batch-size")
    if not (math.isfinite(lr_scale) and lr_scale > 0):
        raise InputError(f"expected a positive number, got {lr_scale}", field="--lr-scale")
    claim_output(out, "finetune", inputs=_inputs(ck, tasks), overwrite=overwrite)
    return ck, base


def _check_options(deadline: Deadline, embed_steps: int | None, full_steps: int | None, num_aug: int,
                   embed_fraction: float, publish: Path | None) -> None:
    """The run's length and recipe options, before anything is read or written."""
    if publish is not None:
        check_publish_target(publish)
    fixed = embed_steps is not None or full_steps is not None
    if fixed and ((embed_steps or 0) < 0 or (full_steps or 0) < 0 or not (embed_steps or full_steps)):
        raise InputError("--embed-steps and --full-steps must be >= 0 and not both 0", field="--full-steps")
    if not fixed and not deadline.limited:
        raise InputError("no time limit: give --time-budget or --deadline, or fix the phases with --embed-steps/"
                         "--full-steps", field="--time-budget")
    if num_aug < 0:
        raise InputError(f"must be >= 0, got {num_aug}", field="--num-aug")
    if not 0.0 <= embed_fraction <= 1.0:
        raise InputError(f"must be in [0, 1], got {embed_fraction}", field="--embed-fraction")


def _inputs(ck: Path, tasks: str) -> list:
    return [owning_run(ck), ck, tasks]


# Model fields that change no weight's shape: fine-tuning may set them (NVARC fine-tuned at H 4 / L 4 / 10 steps a
# model pretrained at H 3 / L 4 / 16; training/recipes/kaggle-4xL4.toml).
SHAPE_FREE_ARCH_FIELDS = ("H_cycles", "L_cycles", "halt_max_steps", "halt_exploration_prob")


def _finetune_config(base: dict, overrides: list[str], batch_size: int | None, lr_scale: float, seed: int,
                     ema: bool | None = FINETUNE.ema):
    """The checkpoint's recipe for fine-tuning: its architecture and optimizer settings, LRs x `lr_scale`, no
    evaluation or periodic checkpoints; explicit --set values win. The run's time is the Deadline its caller passes
    (--time-budget / --deadline), so a `time_budget_s` override is refused rather than silently ignored."""
    if any(item.split("=", 1)[0].strip() == "time_budget_s" for item in overrides):
        raise InputError("fine-tuning's time comes from --time-budget or --deadline", field="time_budget_s")
    tb = base["train"]
    cfg = build_config(None, list(overrides))
    cfg = dataclasses.replace(
        cfg, arch={k: v for k, v in base["model"].items()
                   if k not in ("batch_size", "seq_len", "vocab_size", "num_puzzle_identifiers")},
        global_batch_size=batch_size or tb["global_batch_size"], lr=tb["lr"] * lr_scale,
        puzzle_emb_lr=tb["puzzle_emb_lr"] * lr_scale, weight_decay=tb["weight_decay"],
        optimizer=tb.get("optimizer", "adam_atan2"),
        puzzle_emb_weight_decay=tb["puzzle_emb_weight_decay"], lr_warmup_steps=min(tb["lr_warmup_steps"], 100),
        lr_min_ratio=1.0, ema=_finetune_ema(tb, ema), ema_rate=tb["ema_rate"], eval_interval_steps=0,
        eval_interval_epochs=0,
        checkpoint_interval_steps=0, seed=seed, log_every=10, loss_type=tb.get("loss_type", cfg.loss_type),
        time_budget_s=0.0)
    for item in overrides:  # explicit --set wins over the derived recipe
        k, v = item.split("=", 1)
        if not k.startswith("arch."):
            setattr(cfg, k, getattr(build_config(None, [item]), k))
        elif k[5:] in SHAPE_FREE_ARCH_FIELDS:  # how far the recursion runs: the same weights serve any count
            cfg.arch[k[5:]] = build_config(None, [item]).arch[k[5:]]
        else:
            raise InputError(f"fine-tuning keeps the checkpoint's architecture; only "
                             f"{', '.join('arch.' + f for f in SHAPE_FREE_ARCH_FIELDS)} may change", field=k)
    check_config(cfg)  # the checkpoint's values and the derived ones too, before anything is written
    return cfg


def _same_on_every_process(state, obj):
    """The main process's `obj` on every process (the plan must not differ between ranks: their timings do)."""
    if state.num_processes == 1:
        return obj
    box = [obj]
    broadcast_object_list(box, from_process=0)
    return box[0]
