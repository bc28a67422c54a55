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
from .config import TrainConfig
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
             num_aug: int = 100, embed_fraction: float = 0.2, lr_scale: float = 2.0, batch_size: int | None = None,
             overrides: list[str] = (), seed: int = 0, cpu: bool | None = None, quiet: bool = False,
             started_at: float | None = None, embed_steps: int | None = None,
             full_steps: int | None = None) -> dict:
    """Fine-tune `ckpt` on the tasks of `tasks`; returns a summary dict (and writes OUT/finetune.json).

    The budget counts from `started_at` (the CLI passes its process start, so imports count too).
    `embed_steps` and `full_steps` fix the length of the two phases instead of planning them from the budget
    (reproducible runs: the same steps give the same weights on the same machine); the budget still caps them."""
    from accelerate import PartialState
    from .config import build_config
    from .train import train
    t0 = started_at or time.time()
    deadline = t0 + time_budget_s
    out = Path(out)
    ckpt, base, task_list = _check_inputs(ckpt, tasks, out, overrides, num_aug=num_aug, batch_size=batch_size,
                                          embed_fraction=embed_fraction, lr_scale=lr_scale, embed_steps=embed_steps,
                                          full_steps=full_steps)
    canvas = int(base["data"].get("canvas") or 30)
    state = PartialState(cpu=bool(cpu) if cpu is not None else not torch.cuda.is_available())

    # 1. the new tasks, augmented: demos -> train, test inputs -> test split
    data_dir = out / "data"
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
        lr_min_ratio=1.0, ema=tb["ema"], ema_rate=tb["ema_rate"], eval_interval_steps=0, eval_interval_epochs=0,
        checkpoint_interval_steps=0, seed=seed, log_every=10, loss_type=tb.get("loss_type", cfg.loss_type))
    for item in overrides:  # explicit --set wins over the derived recipe
        k, v = item.split("=", 1)
        if not k.startswith("arch."):
            setattr(cfg, k, getattr(build_config(None, [item]), k))

    # 3. plan: fixed step counts, or phases sized from a timed probe
    fixed = embed_steps is not None or full_steps is not None
    if fixed:
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


def _check_inputs(ckpt: str | Path, tasks: str, out: Path, overrides, *, num_aug: int, batch_size: int | None,
                  embed_fraction: float, lr_scale: float, embed_steps: int | None, full_steps: int | None):
    """Checkpoint, tasks, `--set` values, options and the output folder, checked before anything is written
    (validate_inputs). Returns (checkpoint folder, its config, the tasks)."""
    import math
    from .config import build_config
    from .validate_inputs import check_checkpoint, check_writable
    ck, base = check_checkpoint(ckpt)
    if base["data"].get("kind", "arc") != "arc":
        raise InputError(f"fine-tuning learns new ARC tasks; this checkpoint was trained on {base['data']['kind']!r}",
                         file=str(ck))
    build_config(None, list(overrides))
    if num_aug < 0:
        raise InputError(f"expected >= 0, got {num_aug}", field="--num-aug")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"expected >= 1, got {batch_size}", field="--batch-size")
    if not (0.0 <= embed_fraction < 1.0):
        raise InputError(f"expected 0 <= x < 1, got {embed_fraction}", field="--embed-fraction")
    if not (math.isfinite(lr_scale) and lr_scale > 0):
        raise InputError(f"expected a positive number, got {lr_scale}", field="--lr-scale")
    if (embed_steps is not None or full_steps is not None) and \
            ((embed_steps or 0) < 0 or (full_steps or 0) < 0 or not (embed_steps or full_steps)):
        raise InputError("--embed-steps and --full-steps must be >= 0 and not both 0", field="--full-steps")
    task_list = load_tasks(tasks)
    check_writable(out, folder=True)
    return ck, base, task_list


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
