"""`arcsolver finetune`: teach a trained TRM tasks it has never seen (test-time training), within a time budget.

A TRM answers a task only through the embedding row learned for it, so on unseen tasks it scores 0. Following what
worked for competitors on Kaggle (kaggle.md §3.3, §3.5; trm-reference.md §8.1): the new tasks are augmented (their
demos go to training, their test inputs are what we predict), their versions get new rows in the puzzle table
initialised to the mean of the trained rows (the reference's `load_checkpoint` behaviour), a first phase trains only
the embeddings, then the whole model is fine-tuned (full fine-tuning beat embedding-only and LoRA).

Budget: before training, one probe step of each phase and one inference batch are timed; the plan (steps per phase,
time left for prediction) is logged and each phase runs under its own time limit, stopping cleanly with a checkpoint
(the trainer stops when the next step would cross the limit). `--predict` then runs `predict --vote` on the new
tasks and writes submission.json.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import arc_dataset, checkpoint
from .arc_tasks import load_tasks
from .config import FINETUNE, TrainConfig
from .errors import InputError
from .jsonio import read_json, write_json


@dataclass
class FinetunePlan:
    budget_s: float
    embed_s: float
    full_s: float
    predict_s: float
    prepare_s: float
    step_s: float
    predict_items: int

    def describe(self) -> str:
        return (f"budget {self.budget_s:.0f} s: prepare {self.prepare_s:.1f} s, embeddings-only {self.embed_s:.0f} s, "
                f"full fine-tune {self.full_s:.0f} s (~{self.full_s / max(self.step_s, 1e-6):.0f} steps at "
                f"{self.step_s:.2f} s/step), prediction ~{self.predict_s:.0f} s for {self.predict_items} inputs x versions")


def _mean_table(old: torch.Tensor, n: int) -> torch.Tensor:
    rows = old[1:] if old.shape[0] > 1 else old  # row 0 is the blank id
    return rows.mean(0, keepdim=True).expand(n, -1).clone()


def finetune(ckpt: str | Path, tasks: str, out: Path, *, time_budget_s: float, predict_after: bool = False,
             num_aug: int = FINETUNE.num_aug, embed_fraction: float = FINETUNE.embed_fraction,
             lr_scale: float = FINETUNE.lr_scale, batch_size: int | None = None,
             overrides: list[str] = (), seed: int = 0, cpu: bool | None = None, quiet: bool = False,
             started_at: float | None = None, embed_steps: int | None = None,
             full_steps: int | None = None, ema: bool | None = FINETUNE.ema) -> dict:
    """Fine-tune `ckpt` on the tasks of `tasks`; returns a summary dict (and writes OUT/finetune.json).

    The budget counts from `started_at` (the CLI passes its process start, so imports count too).
    `embed_steps` and `full_steps` fix the length of the two phases instead of planning them from the budget
    (reproducible runs: the same steps give the same weights on the same machine); the budget still caps them.
    `ema`: None keeps the checkpoint's EMA setting during fine-tuning, False/True force it off/on."""
    from accelerate import PartialState
    from .config import build_config
    from .train import train
    t0 = started_at or time.time()
    deadline = t0 + time_budget_s
    out = Path(out)
    ckpt = checkpoint.resolve(ckpt)
    base = checkpoint.load_config(ckpt)
    canvas = int(base["data"].get("canvas") or 30)
    state = PartialState(cpu=bool(cpu) if cpu is not None else not torch.cuda.is_available())

    # 1. the new tasks, augmented: demos -> train, test inputs -> test split
    data_dir = out / "data"
    task_list = load_tasks(tasks)
    with state.main_process_first():
        if state.is_main_process:
            arc_dataset.build(data_dir, [arc_dataset.TaskSet(str(tasks), task_list, test_set=True)], num_aug=num_aug,
                              seed=seed, canvas=canvas)
    meta = read_json(data_dir / "meta.json")
    prepare_s = time.time() - t0

    # 2. weights with a puzzle table sized for the new versions, rows = mean of the trained rows
    weights = checkpoint.load_weights(ckpt, ema=True)
    key = next(k for k in weights if k.endswith("puzzle_emb.weights"))
    weights[key] = _mean_table(weights[key].float(), int(meta["num_puzzle_identifiers"]))

    tb = base["train"]
    cfg = build_config(None, list(overrides))
    cfg = dataclasses.replace(
        cfg, data=str(data_dir), arch={k: v for k, v in base["model"].items()
                                       if k not in ("batch_size", "seq_len", "vocab_size", "num_puzzle_identifiers")},
        global_batch_size=batch_size or tb["global_batch_size"], lr=tb["lr"] * lr_scale,
        puzzle_emb_lr=tb["puzzle_emb_lr"] * lr_scale, weight_decay=tb["weight_decay"],
        puzzle_emb_weight_decay=tb["puzzle_emb_weight_decay"], lr_warmup_steps=min(tb["lr_warmup_steps"], 100),
        lr_min_ratio=1.0, ema=_finetune_ema(tb, ema), ema_rate=tb["ema_rate"], eval_interval_steps=0, eval_interval_epochs=0,
        checkpoint_interval_steps=0, seed=seed, log_every=10, loss_type=tb.get("loss_type", cfg.loss_type))
    for item in overrides:  # explicit --set wins over the derived recipe
        k, v = item.split("=", 1)
        if not k.startswith("arch."):
            setattr(cfg, k, getattr(build_config(None, [item]), k))

    # 3. plan: fixed step counts, or phases sized from a timed probe
    fixed = embed_steps is not None or full_steps is not None
    if fixed:
        if (embed_steps or 0) < 0 or (full_steps or 0) < 0 or not (embed_steps or full_steps):
            raise InputError("--embed-steps and --full-steps must be >= 0 and not both 0", field="--full-steps")
        plan = FinetunePlan(time_budget_s, 0.0, 0.0, 0.0, prepare_s, 0.0, int(meta["counts"]["test_examples"]))
        if state.is_main_process and not quiet:
            print(f"finetune plan: fixed {embed_steps or 0} embeddings-only + {full_steps or 0} full steps, "
                  f"capped by the {time_budget_s:.0f} s budget", flush=True)
    else:
        plan = _plan_budget(cfg, weights, out, data_dir, meta, deadline, time_budget_s, prepare_s, predict_after,
                            embed_fraction, state, cpu, quiet)

    # 4. phase 1: embeddings only; phase 2: the whole model
    extra = {"finetune": {"from": str(ckpt), "tasks": str(tasks)}}
    if fixed:
        cap = max(1.0, deadline - time.time())
        e_steps, e_budget = embed_steps or 0, cap
    else:
        e_steps, e_budget = 10**9, plan.embed_s
    w1, n1 = weights, 0
    if e_steps:
        res1 = train(dataclasses.replace(cfg, out=str(out / "embed"), max_steps=e_steps, time_budget_s=e_budget),
                     cpu=cpu, init_weights=weights, freeze_model=True, quiet=quiet, final_eval=False,
                     extra_config=extra)
        w1, n1 = checkpoint.load_weights(res1.checkpoint or checkpoint.resolve(out / "embed"), ema=False), res1.steps
    if fixed:
        f_steps, f_budget = full_steps or 0, max(1.0, deadline - time.time())
    else:
        f_steps, f_budget = 10**9, max(plan.step_s * 2, deadline - time.time() - plan.predict_s - 5.0)
    if f_steps:
        res2 = train(dataclasses.replace(cfg, out=str(out / "full"), max_steps=f_steps, time_budget_s=f_budget),
                     cpu=cpu, init_weights=w1, quiet=quiet, final_eval=False, extra_config=extra)
        n2, final = res2.steps, checkpoint.resolve(out / "full")
    else:
        n2, final = 0, checkpoint.resolve(out / "embed")
    summary = {"checkpoint": str(final), "data": str(data_dir), "plan": dataclasses.asdict(plan),
               "embed_steps": n1, "full_steps": n2, "train_seconds": time.time() - t0}

    # 5. predict
    if predict_after:
        from .predict import predict
        res = predict(final, out / "submission.json", data=str(data_dir), cpu=cpu, quiet=quiet)
        summary.update(submission=str(res.submission), predict_seconds=res.seconds)
    summary["seconds"] = time.time() - t0
    if state.is_main_process:
        write_json(out / "finetune.json", summary, indent=True)
    return summary


def _finetune_ema(base_train: dict, ema: bool | None) -> bool:
    """EMA during fine-tuning: the checkpoint's setting unless forced. With EMA on, prediction reads the average,
    which after a few hundred steps at rate 0.999 is still mostly the pretrained network."""
    return bool(base_train["ema"]) if ema is None else bool(ema)


def finetune_per_task(ckpt: str | Path, tasks: str, out: Path, *, time_budget_s: float, predict_after: bool = False,
                      started_at: float | None = None, quiet: bool = False, **kwargs) -> dict:
    """Fine-tune a separate copy of the model for every task (instead of all tasks jointly in one model).

    Each task is written to OUT/per-task/tasks/<id>.json and fine-tuned into OUT/per-task/<id> with the same
    options (`embed_steps`/`full_steps` are per task); the time left is shared equally among the tasks still to do.
    With `predict_after` the tasks' submissions are merged into OUT/submission.json, checked complete."""
    from .submission import check_submission
    t0 = started_at or time.time()
    out = Path(out)
    task_list = load_tasks(tasks)
    folder = out / "per-task" / "tasks"
    runs = []
    for t in task_list:
        write_json(folder / f"{t.id}.json", t.to_json())
    merged: dict = {}
    for i, t in enumerate(task_list):
        left = t0 + time_budget_s - time.time()
        share = left / (len(task_list) - i)
        if share <= 0:
            raise InputError(f"time budget {time_budget_s:.0f} s ran out after {i} of {len(task_list)} tasks",
                             field="--time-budget")
        s = finetune(ckpt, str(folder / f"{t.id}.json"), out / "per-task" / t.id, time_budget_s=share,
                     predict_after=predict_after, started_at=time.time(), quiet=quiet, **kwargs)
        runs.append({"task": t.id, **{k: s[k] for k in ("checkpoint", "embed_steps", "full_steps", "seconds")}})
        if predict_after:
            merged.update(read_json(s["submission"]))
    summary = {"per_task": runs, "embed_steps": sum(r["embed_steps"] for r in runs),
               "full_steps": sum(r["full_steps"] for r in runs), "train_seconds": time.time() - t0,
               "checkpoint": str(out / "per-task")}
    if predict_after:
        check_submission(merged, task_list)
        write_json(out / "submission.json", merged)
        summary["submission"] = str(out / "submission.json")
    summary["seconds"] = time.time() - t0
    write_json(out / "finetune.json", summary, indent=True)
    return summary


def _plan_budget(cfg: TrainConfig, weights: dict, out: Path, data_dir: Path, meta: dict, deadline: float,
                 time_budget_s: float, prepare_s: float, predict_after: bool, embed_fraction: float, state,
                 cpu: bool | None, quiet: bool) -> FinetunePlan:
    """Time one full-model step (4-step probe, median after warm-up) and one inference batch, then split what is
    left of the budget between the phases, keeping the prediction's estimated time and a few steps in reserve."""
    from .train import train
    probe = train(dataclasses.replace(cfg, out=str(out / "probe"), max_steps=4, time_budget_s=0), cpu=cpu,
                  init_weights=weights, quiet=True, final_eval=False)
    step_s = sorted(probe.step_seconds[1:])[len(probe.step_seconds[1:]) // 2]  # the first step warms up
    n_items = int(meta["counts"]["test_examples"])
    predict_s = 0.0
    if predict_after:
        from .predict import load_model
        from .inference import rollout
        from .loader import PuzzleLoader
        model, _ = load_model(probe.checkpoint or checkpoint.resolve(out / "probe"), state.device)
        pb = max(1, min(256, n_items))
        b = next(PuzzleLoader(str(data_dir), "test", global_batch_size=pb).test_batches())
        t = time.time()
        rollout(model, {k: v.to(state.device) for k, v in b.items()})
        # batches to run, 1.5x for undo/vote/writing and noise, plus a fixed cost for loading and set-up
        predict_s = (time.time() - t) * max(1.0, n_items / pb / state.num_processes) * 1.5 + 5.0
        del model
    left = deadline - time.time() - predict_s - 3 * step_s - 5.0
    if left <= 2 * step_s:
        raise InputError(f"time budget {time_budget_s:.0f} s is too short: one step takes {step_s:.1f} s and "
                         f"prediction ~{predict_s:.0f} s", field="--time-budget")
    plan = FinetunePlan(time_budget_s, left * embed_fraction, left * (1 - embed_fraction), predict_s, prepare_s,
                        step_s, n_items)
    if state.is_main_process and not quiet:
        print(f"finetune plan: {plan.describe()}", flush=True)
    return plan
