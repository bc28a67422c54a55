"""`arcsolver train`: the TRM training loop on Hugging Face Accelerate (CPU, one GPU, N GPUs via `accelerate launch`).

What one optimizer step is, as in the reference: one ACT supervision step for every row of the batch. Rows carry
their latent state (the "carry") from step to step and are refilled from the loader's next batch only when they
halt, so the paper's deep-supervision loop is spread over consecutive steps. The loss is scaled by 1/local batch;
DDP averages gradients over processes, which equals the reference's sum over ranks of loss/global batch.

Two optimizers: Adam-atan2 (plain PyTorch), or with `optimizer = "muon"` Muon on the 2-D weights + AdamW on the rest
(model/muon.py), on the network's parameters, and sign-SGD on the rows of the puzzle embedding table that the batch
touched (gathered across processes so every rank applies the same update).
LR: linear warm-up, then cosine to lr*lr_min_ratio, same shape for both; as in the reference the step is counted
before its LR is computed, so step 1 runs at lr/warmup (not 0) and step `warmup` at the full LR. EMA of the weights is
kept and used for evaluation and exported with every checkpoint. Evaluation reports token and exact accuracy on the
test split; on ARC data it also votes over the augmented versions (as `predict --vote`) and reports voted
pass@1/pass@2 per task.

Exact resume: a checkpoint stores optimizer and EMA state, the step, the loader position, RNG states and the carry,
so N steps straight and N/2 + kill + resume N/2 give bit-identical weights on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast

from arcsolver.runtime import trackers
from arcsolver.runtime.compilation import compile_enabled, compile_with_fallback
from arcsolver.runtime.deadline import Deadline, Plan, StepPlanner
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.interrupts import StopRequests
from arcsolver.runtime.jsonio import read_json
from arcsolver.runtime.metrics_log import MetricsLog
from arcsolver.runtime.outputs import claim_output, mark_folder, owning_run
from arcsolver.runtime.precision import LossScaling, make_accelerator, run_precision
from arcsolver.runtime.ranks import agree_on_stop
from arcsolver.runtime.report import progress_bar, redraw_now, say
from arcsolver.runtime.units import format_seconds
from arcsolver.data.checks import check_dataset
from arcsolver.data.loader import ArcSource, PuzzleLoader, open_source
from arcsolver.model import checkpoint
from arcsolver.model.adam_atan2 import AdamAtan2
from arcsolver.model.build import build_model, model_config
from arcsolver.model.checks import check_puzzle_rows, check_resume
from arcsolver.model.ema import EMA
from arcsolver.model.memory_model import choose_device_batch, free_device_bytes, training_memory
from arcsolver.model.muon import MuonAdamW
from arcsolver.model.puzzle_embedding import SignSGDSparse, dataset_row_map
from arcsolver.inference.microbatch import map_tensors, run_halving_on_oom
from arcsolver.inference.predict import add_to_book, voted_scores
from arcsolver.inference.rollout import batch_to, evaluate_split, finish_metrics
from arcsolver.inference.vote import VoteBook
from arcsolver.training import grad_accumulation
from arcsolver.training.checks import check_config
from arcsolver.training.config import TrainConfig

def lr_at(step: int, base: float, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return base * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return base * (min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))))


@dataclass
class TrainResult:
    steps: int
    checkpoint: Path | None
    last_metrics: dict[str, float]
    eval_metrics: dict[str, float]
    seconds: float
    stopped_by: str  # "steps" | "time" | "signal"
    step_seconds: list[float] = dataclasses.field(default_factory=list)
    signal: str | None = None  # "SIGINT" | "SIGTERM" when stopped_by == "signal"
    plan: dict | None = None  # the last deadline plan (None without a deadline)
    device_batch: int = 0  # rows per micro-batch at the end (after any halving on out-of-memory)


def _plan(cfg: TrainConfig, epoch_len: int) -> tuple[int, int, int]:
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, int(cfg.epochs * epoch_len / cfg.global_batch_size))
    ev = cfg.eval_interval_steps or (int(cfg.eval_interval_epochs * epoch_len / cfg.global_batch_size)
                                     if cfg.eval_interval_epochs else 0)
    ck = cfg.checkpoint_interval_steps or ev
    return total, ev, ck


def train(cfg: TrainConfig, *, resume: str | None = None, cpu: bool | None = None,
          init_weights: dict[str, torch.Tensor] | None = None, freeze_model: bool = False,
          initial_checkpoint_only: bool = False, quiet: bool = False, final_eval: bool = True,
          extra_config: dict | None = None, deadline: Deadline | None = None,
          prior_step_s: float | None = None, overwrite: bool = False) -> TrainResult:
    """Train per `cfg`. `resume`: a checkpoint/run folder to continue exactly. `init_weights`: a state dict to start
    from (fine-tuning; the puzzle table may be absent). `freeze_model`: train only the puzzle embedding.
    `initial_checkpoint_only`: take no step, write a checkpoint of the initial state (fine-tuning with no time to
    train: the mean-embedding model).
    `deadline`: stop (with a checkpoint, and the final evaluation when it fits) before it; the steps that fit are
    planned from the first timed steps (or `prior_step_s` before any) and the LR schedule spans them. The caller
    makes the one Deadline of the process (the CLI turns `--deadline`, `--time-budget` and `cfg.time_budget_s` into
    it); without one the run ends at `max_steps`.
    `cfg.out` must be new, empty, or the run folder of `resume`; `overwrite` starts an existing run over.

    Read top to bottom: check the inputs, build the run (accelerator, data, model, optimizers), restore a resumed
    one, plan the steps, then step / evaluate / checkpoint until a stop, and finish (final evaluation, checkpoint)."""
    _check_inputs(cfg, resume, overwrite)
    deadline = deadline or Deadline()
    t_start = deadline.clock.now()
    if deadline.passed():
        raise InputError(f"the deadline passed {-deadline.remaining():.0f} s ago: no time to train",
                         field="--deadline")
    run, resume_state = _build_run(cfg, cpu=cpu, resume=resume, init_weights=init_weights,
                                   freeze_model=freeze_model, quiet=quiet, extra_config=extra_config)
    if resume:
        _restore(run, resume, resume_state)
    if run.acc.is_main_process:
        mark_folder(run.dir, "run")
    tracking = trackers.parse_log_with(cfg.log_with, "log_with")
    log = MetricsLog(run.dir / "metrics.jsonl", enabled=run.acc.is_main_process,
                     mirror=run.acc.log if tracking else None, resumed_at=run.step if resume else None)
    trackers.start(run.acc, tracking, run.dir, _full_config(run))
    stop_requests = StopRequests().install()  # every rank: finish the step, agree, checkpoint, exit
    loop = _plan_loop(run, deadline, t_start, prior_step_s=prior_step_s, final_eval=final_eval, quiet=quiet)
    # not even one step fits (a caller's estimate)
    loop.stop_why, _ = agree_on_stop(run.acc.device, run.world, "time" if loop.planner.should_stop() else None)
    if initial_checkpoint_only:
        loop.stop_why = "steps"
    batches = iter(run.loader)
    while run.step < loop.sched.end and not loop.stop_why:
        loss, metrics, lr = _train_step(run, loop, batches, deadline.clock)
        if deadline.limited and run.step >= loop.replan_at:
            _replan_and_report(run, loop, log)
        _log_train_metrics(run, loop, log, loss, metrics, lr)
        _periodic_eval_and_checkpoint(run, loop, log, stop_requests)
        _decide_stop(run, loop, stop_requests)
    _finish(run, loop, log, stop_requests)
    stop_requests.restore()
    return TrainResult(run.step, loop.ckpt_path, loop.last_metrics, loop.eval_metrics,
                       deadline.clock.now() - t_start, loop.stop_why or "steps", loop.step_times,
                       plan=loop.plan.to_dict() if loop.plan is not None else None, signal=loop.stop_signal,
                       device_batch=run.device_batch)


# ---------------------------------------------------------------------------------------------------------------
# the run: what one training run holds, how it is built, restored, saved and evaluated


@dataclass
class _Run:
    """The state of one training run on this process: the accelerator, data, model, optimizers and the position
    (step, carry, micro-batch size) that a checkpoint records."""
    cfg: TrainConfig
    acc: Accelerator
    source: object
    meta: dict
    loader: PuzzleLoader
    mcfg: object
    precision: object
    model: torch.nn.Module
    ddp_model: torch.nn.Module
    opt: object
    emb_opt: object
    ema: object
    scaling: LossScaling
    local_batch: int
    device_batch: int
    total_steps: int
    eval_every: int
    ckpt_every: int
    extra_config: dict | None
    puzzle_rows: dict | None = None  # the name -> row map every checkpoint carries (puzzle_embedding.dataset_row_map)
    step: int = 0
    carry: object = None

    @property
    def rank(self) -> int:
        return self.acc.process_index

    @property
    def world(self) -> int:
        return self.acc.num_processes

    @property
    def dir(self) -> Path:
        return Path(self.cfg.out)


def _build_run(cfg: TrainConfig, *, cpu: bool | None, resume: str | None, init_weights, freeze_model: bool,
               quiet: bool, extra_config: dict | None) -> tuple[_Run, dict | None]:
    """Accelerator, loader, model (+ initial weights, compilation), optimizers and EMA; returns the run and the
    training state of the checkpoint to resume (checked against this run's architecture before anything is built)."""
    if cpu is None:
        cpu = not torch.cuda.is_available()
    acc = make_accelerator(cpu, kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
                           **trackers.accelerator_kwargs(trackers.parse_log_with(cfg.log_with, "log_with"), cfg.out))
    rank, world = acc.process_index, acc.num_processes
    if cfg.global_batch_size % world:
        raise InputError(f"global batch {cfg.global_batch_size} is not divisible by {world} processes",
                         field="global_batch_size")
    local_batch = cfg.global_batch_size // world
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank

    source = open_source(cfg.data)
    meta = read_json(Path(cfg.data) / "meta.json")
    loader = PuzzleLoader(source, "train", global_batch_size=cfg.global_batch_size, seed=cfg.seed, rank=rank,
                          world_size=world)
    total_steps, eval_every, ckpt_every = _plan(cfg, source.epoch_len)

    mcfg = model_config(cfg.arch, meta, local_batch)  # its forward_dtype is a preference; checkpoints keep it
    puzzle_rows = _puzzle_rows(cfg.data, mcfg)
    resume_state = _check_resume(resume, mcfg, cfg.loss_type, puzzle_rows, cfg.optimizer) if resume else None
    precision = run_precision(cfg.forward_dtype, mcfg.forward_dtype, acc.device, announce_it=acc.is_main_process
                              and not quiet)
    run_mcfg = dataclasses.replace(mcfg, forward_dtype=precision.dtype)
    device_batch = choose_device_batch(lambda rows: training_memory(run_mcfg, rows, local_batch), local_batch,
                                       free_device_bytes(acc.device), requested=cfg.device_batch_size,
                                       field="device_batch_size")
    model = build_model(run_mcfg, cfg.loss_type)
    if init_weights is not None:
        missing, unexpected = model.load_state_dict(init_weights, strict=False)
        bad = [k for k in missing if "puzzle_emb" not in k]
        if bad or unexpected:
            raise InputError(f"weights do not fit the model (missing {bad[:3]}, unexpected {unexpected[:3]})")
    model.to(acc.device)
    if compile_enabled(cfg.compile, acc.device):
        compile_with_fallback(model.model.inner)
    torch.manual_seed(cfg.seed + rank)  # per-rank randomness from here on (halting exploration), as the reference

    inner = model.model.inner
    params = [p for p in model.parameters() if p.requires_grad]
    if freeze_model:
        for p in params:
            p.requires_grad_(False)
        params = []
    opt = _optimizer(cfg, params) if params else None
    emb_opt = SignSGDSparse(inner.puzzle_emb, lr=0.0, weight_decay=cfg.puzzle_emb_weight_decay) \
        if mcfg.puzzle_emb_ndim > 0 else None
    ema = EMA(model, cfg.ema_rate) if cfg.ema and params else None
    scaling = LossScaling(precision.loss_scaling, acc.device.type)

    ddp_model = acc.prepare(model) if world > 1 and params else model
    run = _Run(cfg=cfg, acc=acc, source=source, meta=meta, loader=loader, mcfg=mcfg, precision=precision,
               model=model, ddp_model=ddp_model, opt=opt, emb_opt=emb_opt, ema=ema, scaling=scaling,
               local_batch=local_batch, device_batch=device_batch, total_steps=total_steps,
               eval_every=eval_every, ckpt_every=ckpt_every, extra_config=extra_config, puzzle_rows=puzzle_rows)
    return run, resume_state


def _optimizer(cfg: TrainConfig, params: list) -> torch.optim.Optimizer:
    """The network's optimizer `cfg.optimizer` names (the puzzle table has its own sign-SGD either way)."""
    if cfg.optimizer == "muon":
        return MuonAdamW.for_parameters(params, weight_decay=cfg.weight_decay, adamw_betas=(cfg.beta1, cfg.beta2))
    return AdamAtan2(params, lr=0.0, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2))


def _restore(run: _Run, resume: str, st: dict) -> None:
    """Continue exactly where the checkpoint `resume` stopped: weights, optimizer/EMA/loss-scaling state, this
    rank's loader position, RNG state and carry, and the micro-batch split the run had."""
    rank = run.rank
    run.model.load_state_dict(checkpoint.load_raw(resume))
    if run.opt is not None and st.get("opt") is not None:
        run.opt.load_state_dict(st["opt"])
    if run.emb_opt is not None and st.get("emb_opt") is not None:
        run.emb_opt.load_state_dict(st["emb_opt"])
    if run.ema is not None and st.get("ema") is not None:
        run.ema.load_state_dict(st["ema"])
    run.scaling.load_state_dict(st.get("loss_scaling"))
    run.loader.load_state_dict(st["loader"][rank] if isinstance(st["loader"], list) else st["loader"])
    run.step = int(st["step"])
    torch.set_rng_state(st["rng"][rank] if isinstance(st["rng"], list) else st["rng"])
    if torch.cuda.is_available() and st.get("cuda_rng") is not None and run.acc.device.type == "cuda":
        torch.cuda.set_rng_state(st["cuda_rng"][rank])
    carry = st["carry"][rank] if isinstance(st["carry"], list) else st["carry"]
    if carry is not None:
        carry = map_tensors(carry, lambda t: t.to(run.acc.device))
    run.carry = carry
    if run.cfg.device_batch_size <= 0 and st.get("device_batch"):
        run.device_batch = min(run.local_batch, int(st["device_batch"]))  # the split the run had: same rounding


def _full_config(run: _Run) -> dict:
    """config.json of a checkpoint: the training config, the model's, the dataset's shape and the precision."""
    cfg, meta = run.cfg, run.meta
    return {"train": cfg.to_dict(), "model": dataclasses.asdict(run.mcfg),
            "data": {"path": str(Path(cfg.data).resolve()), "kind": meta["kind"], "seq_len": meta["seq_len"],
                     "vocab_size": meta["vocab_size"], "num_puzzle_identifiers": meta["num_puzzle_identifiers"],
                     "canvas": meta.get("canvas")}, "step": run.step,
            "precision": {"dtype": run.precision.dtype, "loss_scaling": run.precision.loss_scaling,
                          "reason": run.precision.reason}, **(run.extra_config or {})}


def _save(run: _Run) -> Path | None:
    """A checkpoint of the run at its current step (every rank's loader/RNG/carry gathered; rank 0 writes)."""
    acc = run.acc
    states = acc.gather_for_metrics([_rank_state(run.loader, run.carry)], use_gather_object=True) if run.world > 1 \
        else [_rank_state(run.loader, run.carry)]
    path = None
    if acc.is_main_process:
        opt, emb_opt, ema = run.opt, run.emb_opt, run.ema
        ts = {"step": run.step, "opt": opt.state_dict() if opt else None,
              "emb_opt": emb_opt.state_dict() if emb_opt else None,
              "ema": ema.state_dict() if ema else None, "loss_scaling": run.scaling.state_dict(),
              "loader": [s["loader"] for s in states], "rng": [s["rng"] for s in states],
              "cuda_rng": [s["cuda_rng"] for s in states], "carry": [s["carry"] for s in states],
              "device_batch": run.device_batch}
        path = checkpoint.save(run.dir, run.step, model_state=run.model.state_dict(),
                               ema_state=ema.shadow_state() if ema else None, train_state=ts,
                               config=_full_config(run), puzzle_rows=run.puzzle_rows)
    acc.wait_for_everyone()
    return path


def _eval_size(cfg: TrainConfig, source) -> tuple[int, int]:
    """(test rows, batches) one evaluation runs: the whole test split, or its first `eval_max_batches` batches."""
    eb = cfg.eval_batch_size or cfg.global_batch_size
    try:
        rows = PuzzleLoader(source, "test", global_batch_size=eb).test_size()
    except Exception:  # noqa: BLE001 - a dataset without a test split evaluates nothing
        return 0, 0
    batches = math.ceil(rows / eb)
    if cfg.eval_max_batches:
        batches = min(batches, cfg.eval_max_batches)
        rows = min(rows, batches * eb)
    return rows, batches


class _EvaluationStopped(Exception):
    """A stop request (Ctrl-C, SIGTERM) reached an evaluation: it ends after the batch in hand, on every rank."""


def _evaluate(run: _Run, *, show: bool = False, final: bool = False,
              stop: StopRequests | None = None) -> dict[str, float] | None:
    """Token and exact accuracy on the test split with the EMA weights; on ARC also voted pass@1/pass@2. `show`: a
    progress bar over the batches (kept on screen after the final evaluation, removed after a periodic one).
    `stop`: checked after every batch (all ranks agree); a request ends the evaluation there and returns None."""
    cfg, acc, source, model, ema, world = run.cfg, run.acc, run.source, run.model, run.ema, run.world
    bar = progress_bar("final evaluation" if final else "eval", total=_eval_size(cfg, source)[1],
                       enabled=show and acc.is_main_process, leave=final)
    if ema is not None:
        ema.swap_in(model)
    try:
        eb = cfg.eval_batch_size or cfg.global_batch_size
        test = PuzzleLoader(source, "test", global_batch_size=eb, rank=run.rank, world_size=world)
        vote_on_batch, book = None, None
        if isinstance(source, ArcSource):
            # ARC: also vote over the augmented versions, as predict --vote does, and score the top two.
            book = VoteBook()
            ver_sel, ex_sel = source.test_items()

            def vote_on_batch(b, preds, q):
                idx, p, qq = b["index"], preds, q
                if world > 1:
                    idx, p, qq = acc.gather(idx), acc.gather(p.contiguous()), acc.gather(qq)
                if acc.is_main_process:
                    add_to_book(book, source, ver_sel, ex_sel, idx, p, qq)

        def on_batch(b, preds, q):
            if vote_on_batch is not None:
                vote_on_batch(b, preds, q)
            if bar is not None:
                bar.update(1)
            if stop is not None and agree_on_stop(acc.device, world, None, stop.received)[1]:
                raise _EvaluationStopped
        sums = evaluate_split(model.model, test.test_batches(), acc.device, max_batches=cfg.eval_max_batches,
                              steps=cfg.eval_steps or None, on_batch=on_batch)
    except _EvaluationStopped:
        return None
    finally:
        if ema is not None:
            ema.swap_out(model)
        if bar is not None:
            bar.close()
    t = torch.tensor([sums[k] for k in sorted(sums)], dtype=torch.float64, device=acc.device)
    t = acc.reduce(t, reduction="sum") if world > 1 else t
    out = finish_metrics(dict(zip(sorted(sums), t.tolist())))
    if book is not None and acc.is_main_process and not cfg.eval_max_batches:
        out.update(voted_scores(book, source))
    return out


# ---------------------------------------------------------------------------------------------------------------
# the loop: the plan of steps, one step, what is reported after it, when to stop, and the end of the run


@dataclass
class _Loop:
    """Where the loop stands: the step plan (deadline planner, LR schedule), the progress bar, what was measured
    and reported so far, and why it stops."""
    planner: StepPlanner
    sched: "_Schedule"
    eval_factor: float
    final_eval: bool
    replan_at: int
    progress: object = None
    plan: Plan | None = None
    last_metrics: dict = dataclasses.field(default_factory=dict)
    eval_metrics: dict = dataclasses.field(default_factory=dict)
    ckpt_path: Path | None = None
    step_times: list = dataclasses.field(default_factory=list)
    window: dict = dataclasses.field(default_factory=dict)
    stop_why: str | None = None
    stop_signal: str | None = None


def _plan_loop(run: _Run, deadline: Deadline, t_start: float, *, prior_step_s: float | None, final_eval: bool,
               quiet: bool) -> _Loop:
    """The step planner (reserving the final checkpoint), the LR schedule over max_steps until a deadline's plan
    resizes it, the final evaluation's cost in steps, and the progress bar; puts the model in training mode."""
    cfg, model = run.cfg, run.model
    planner = StepPlanner(deadline, {"checkpoint": checkpoint_seconds(model, has_ema=run.ema is not None,
                                                                      has_opt=run.opt is not None)},
                          prior_step_s=prior_step_s)
    eval_factor = _eval_cost_in_steps(cfg, run.source, run.mcfg, run.local_batch, run.world) \
        if final_eval or run.eval_every else 0.0
    loop = _Loop(planner=planner,
                 sched=_Schedule(cfg.lr_warmup_steps, run.total_steps, run.total_steps),  # warm-up, cosine end, end
                 eval_factor=eval_factor, final_eval=final_eval,
                 replan_at=run.step + 2)  # the first plan after two timed steps of this run
    # Under a deadline the total is unknown until the first plan (two steps in): no bar towards max_steps.
    loop.progress = progress_bar(_bar_label(deadline, t_start), total=None if deadline.limited else run.total_steps,
                                 initial=run.step, enabled=run.acc.is_main_process and not quiet)
    model.train()
    return loop


def _train_step(run: _Run, loop: _Loop, batches, clock) -> tuple[torch.Tensor, dict, float]:
    """One optimizer step: next batch, forward + backward in micro-batches, LR of the step, both optimizers, EMA;
    the step's time goes to the planner. Returns (loss, metrics, lr)."""
    cfg, opt, emb_opt, sched = run.cfg, run.opt, run.emb_opt, loop.sched
    t0 = clock.now()
    batch = batch_to(next(batches), run.acc.device)
    if run.carry is None:
        run.carry = run.model.model.initial_carry(batch)
    run.carry, loss, metrics, run.device_batch = _forward_backward(
        run.ddp_model, run.model, run.acc, run.carry, batch, run.local_batch, run.device_batch, opt, emb_opt,
        run.scaling.backward)
    run.step += 1  # counted before the LR is computed, as the reference: the first step runs at lr/warmup, not 0
    lr = lr_at(run.step, cfg.lr, sched.warmup, sched.total, cfg.lr_min_ratio)
    if opt is not None:
        for g in opt.param_groups:
            g["lr"] = lr
    if emb_opt is not None:
        emb_opt.set_lr(lr_at(run.step, cfg.puzzle_emb_lr, sched.warmup, sched.total, cfg.lr_min_ratio))
    run.scaling.step(opt, emb_opt)  # both optimizers (float16: unscaled, skipped together on overflow)
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    if emb_opt is not None:
        emb_opt.zero_grad()
    if run.ema is not None:
        run.ema.update(run.model)
    loop.step_times.append(clock.now() - t0)
    loop.planner.observe(loop.step_times[-1])
    return loss, metrics, lr


def _replan_and_report(run: _Run, loop: _Loop, log: MetricsLog) -> None:
    """Under a deadline: re-plan the steps that fit (and the LR schedule over them), log the plan, resize the bar."""
    first = loop.plan is None
    loop.sched, loop.plan, loop.replan_at, loop.final_eval = _replan(
        loop.planner, run.step, run.total_steps, run.cfg, loop.eval_factor, loop.final_eval, run.acc, run.world,
        first, run.eval_every, run.ckpt_every)
    log.write(run.step, "plan", loop.plan.to_dict())
    if loop.progress is not None:
        loop.progress.total = loop.sched.end
        if redraw_now():
            loop.progress.refresh()
        if first:
            say(loop.plan.describe())


def _log_train_metrics(run: _Run, loop: _Loop, log: MetricsLog, loss: torch.Tensor, metrics: dict,
                       lr: float) -> None:
    """Every `log_every` steps (and at the end): the window's metrics to metrics.jsonl and the bar; the bar ticks."""
    cfg, step = run.cfg, run.step
    # Metrics count only rows that halted at a step; sum them over the logging window so a window always has some.
    loop.window = {k: v.detach() + loop.window.get(k, 0) for k, v in metrics.items()}
    if step % cfg.log_every == 0 or step == loop.sched.end:
        m = _reduce_metrics(run.acc, loop.window, run.world)
        loop.window = {}
        recent = loop.step_times[-cfg.log_every:]
        m.update(lr=lr, loss_per_sample=float(loss.detach()) / run.local_batch,
                 samples_per_s=cfg.global_batch_size * len(recent) / max(1e-9, sum(recent)))
        loop.last_metrics = m
        log.write(step, "train", m)
        if loop.progress is not None:
            loop.progress.set_postfix(loss=f"{m['loss_per_sample']:.3f}", acc=f"{m.get('accuracy', 0):.3f}",
                                      exact=f"{m.get('exact_accuracy', 0):.3f}", sps=f"{m['samples_per_s']:.0f}",
                                      refresh=redraw_now())
    if loop.progress is not None:
        loop.progress.update(1)


def _periodic_eval_and_checkpoint(run: _Run, loop: _Loop, log: MetricsLog, stop_requests: StopRequests) -> None:
    """Every `eval_every` / `ckpt_every` steps before the last: evaluate (logged, one line under the bar) and save.
    An evaluation cut by a stop request logs nothing (the stop comes after the checkpoint)."""
    step = run.step
    ev = None
    if run.eval_every and step % run.eval_every == 0 and step < loop.sched.end:
        ev = _evaluate(run, show=loop.progress is not None, stop=stop_requests)
    if ev is not None:
        loop.eval_metrics = ev
        log.write(step, "eval", ev)
        if loop.progress is not None:
            voted = (f", voted pass@1 {ev['vote_pass@1']:.3f} pass@2 {ev['vote_pass@2']:.3f}"
                     if "vote_pass@1" in ev else "")
            say(f"step {step}: eval exact {ev['exact_accuracy']:.4f} token {ev['token_accuracy']:.4f} "
                f"({int(ev['count'])} examples){voted}")
    if run.ckpt_every and step % run.ckpt_every == 0 and step < loop.sched.end:
        loop.ckpt_path = _save(run)


def _decide_stop(run: _Run, loop: _Loop, stop_requests: StopRequests) -> None:
    """Stop before a step that would end inside the reserves (checkpoint, final evaluation), or on a signal; every
    rank agrees on the same step."""
    if loop.planner.should_stop():
        loop.stop_why = "time"
    loop.stop_why, loop.stop_signal = agree_on_stop(run.acc.device, run.world, loop.stop_why, stop_requests.received)


def _finish(run: _Run, loop: _Loop, log: MetricsLog, stop_requests: StopRequests) -> None:
    """Close the bar; the final evaluation (unless the periodic one just ran at this step, or a signal stopped the
    run; a signal during it ends it after the batch in hand); the last checkpoint; on several processes, each
    rank's weight fingerprint to prove they agree."""
    show = loop.progress is not None
    if show:
        loop.progress.close()
    step, total_steps, eval_every = run.step, run.total_steps, run.eval_every
    # A run cut by its time budget still reports where it ended (the evaluation runs after the budget).
    # (Not again when the periodic evaluation just ran at this step: same weights, same numbers.)
    if step >= loop.sched.end and loop.sched.end < total_steps and loop.stop_why is None:
        loop.stop_why = "time"  # ended at the planned step count: the deadline's plan, not max_steps
    if loop.final_eval and (step >= total_steps or loop.stop_why in (None, "steps", "time")):
        if step >= total_steps or (eval_every and step % eval_every) or not eval_every:
            if show:
                say(final_eval_notice(*_eval_size(run.cfg, run.source), loop.eval_factor,
                                      loop.planner.step_s(), sum(loop.step_times)))
            ev = _evaluate(run, show=show, final=True, stop=stop_requests)
            if ev is None:  # stopped: the run ends as a signal ends it (checkpoint, the exit code of the signal)
                loop.stop_why, loop.stop_signal = agree_on_stop(run.acc.device, run.world, None, stop_requests.received)
            else:
                loop.eval_metrics = ev
                log.write(step, "eval", ev)
    loop.ckpt_path = _save(run)
    if run.world > 1:
        # Every rank must hold the same weights and puzzle table; record each rank's fingerprint to prove it.
        fp = torch.tensor([_fingerprint(run.model)], dtype=torch.float64, device=run.acc.device)
        fps = run.acc.gather(fp).tolist()
        log.write(step, "sync", {"rank_fingerprints": fps, "in_sync": len(set(fps)) == 1})
    log.close()
    if run.acc.log_with:
        run.acc.end_training()  # the trackers flush and close (first process; the others have none)


def final_eval_notice(rows: int, batches: int, eval_steps_cost: float, step_s: float | None, trained_s: float) -> str:
    """The line said before the final evaluation: its size and estimated time (its cost in training steps x the
    measured step time); when that is longer than the training before it, how to cap it."""
    line = f"final evaluation: {batches} batches ({rows} test rows)"
    if not step_s or not batches:
        return line
    est = eval_steps_cost * step_s
    line += f", about {format_seconds(est)}"
    if est > trained_s:
        fit = max(1, int(batches * trained_s / est))
        line += (f", longer than the {format_seconds(trained_s)} of training before it; cap it with "
                 f"--set eval_max_batches={fit} (about {format_seconds(est * fit / batches)})")
    return line


# ---------------------------------------------------------------------------------------------------------------
# the deadline: which steps fit, and the LR schedule sized to them


@dataclass(frozen=True)
class _Schedule:
    warmup: int  # LR warm-up steps
    total: int  # the step at which the cosine reaches lr * lr_min_ratio
    end: int  # the step at which this run stops (<= max_steps; the deadline's plan)


WARMUP_SHARE = 0.1  # under a deadline, warm-up keeps its configured length up to this share of the planned steps


def size_schedule(warmup: int, max_steps: int, planned_end: int | None) -> _Schedule:
    """The LR schedule for a run that ends at `planned_end` (None: at `max_steps`): the cosine spans the steps that
    will run, not the configured maximum, and a configured warm-up longer than 10% of them is cut to 10%."""
    if planned_end is None or planned_end >= max_steps:
        return _Schedule(warmup, max_steps, max_steps)
    end = max(1, planned_end)
    return _Schedule(min(warmup, max(1, math.ceil(WARMUP_SHARE * end))), end, end)


def checkpoint_seconds(model: torch.nn.Module, *, has_ema: bool, has_opt: bool) -> float:
    """Reserve for the final checkpoint: weights (+ EMA copy, + two Adam moments) at a conservative 100 MB/s, plus
    a second for the rest (gathering loader/RNG state, the rename)."""
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return 1.0 + n_bytes * (1 + has_ema + 2 * has_opt) / 100e6


def _eval_cost_in_steps(cfg: TrainConfig, source, mcfg, local_batch: int, world: int) -> float:
    """The final evaluation's cost in training steps, from counting forward passes: a training step is one
    supervision step of `local_batch` rows with a backward pass through the last of H cycles (~2x its forward), an
    evaluation is `eval_steps` forward supervision steps per test row of this rank."""
    try:
        rows = PuzzleLoader(source, "test", global_batch_size=cfg.eval_batch_size or cfg.global_batch_size).test_size()
    except Exception:  # noqa: BLE001 - a dataset without a test split evaluates nothing
        return 0.0
    eb = cfg.eval_batch_size or cfg.global_batch_size
    if cfg.eval_max_batches:
        rows = min(rows, cfg.eval_max_batches * eb)
    rows = math.ceil(rows / eb) * eb / world  # padded batches
    steps = cfg.eval_steps or int(getattr(mcfg, "halt_max_steps", 1))
    train_units = local_batch * (1 + 2 / max(1, int(getattr(mcfg, "H_cycles", 1))))
    return rows * steps / train_units


def _replan(planner: StepPlanner, step: int, max_steps: int, cfg: TrainConfig, eval_factor: float,
            final_eval: bool, acc: Accelerator, world: int, first: bool, eval_every: int = 0, ckpt_every: int = 0):
    """Re-estimate the steps that fit; returns (schedule, plan, next re-plan step, final_eval). Periodic evaluations
    and checkpoints count as a share of every step. Rank 0 decides and broadcasts, so every process keeps the same
    LR (their step timings differ)."""
    s = planner.step_s() or 0.0
    planner.overhead_per_step = ((eval_factor * s / eval_every if eval_every else 0.0)
                                 + (planner.reserves["checkpoint"] / ckpt_every if ckpt_every else 0.0))
    keep_eval = final_eval
    if final_eval:
        need = eval_factor * s
        # An evaluation that would eat more than a third of the time left is not worth the steps: skip it.
        keep_eval = need <= planner.usable_s() / 3
        planner.reserves["final evaluation"] = need if keep_eval else 0.0
    end = planner.fit(step)
    end = max_steps if end is None else max(step, min(end, max_steps))
    if world > 1:
        t = broadcast(torch.tensor([float(end), float(keep_eval)], dtype=torch.float64, device=acc.device), 0)
        end, keep_eval = int(t[0]), bool(t[1])
    new = size_schedule(cfg.lr_warmup_steps, max_steps, end)
    phases = {f"{new.end - step} more steps x {s:.3g} s": (new.end - step) * s}
    plan = Plan("train", planner.deadline.remaining(), phases, dict(planner.reserves),
                {"planned_steps": new.end, "max_steps": max_steps, "warmup": new.warmup, "final_eval": keep_eval})
    return new, plan, step + max(5, (new.end - step) // 8), keep_eval


def _bar_label(deadline: Deadline, t_start: float) -> str:
    return f"train [budget {format_seconds(deadline.at - t_start)}]" if deadline.limited else "train"
def _check_inputs(cfg: TrainConfig, resume: str | None, overwrite: bool) -> None:
    """Everything a run reads and where it writes, checked before the first write (training/checks.py,
    data/checks.py, runtime/outputs.py). The run folder is new or empty, or the folder of the run it resumes; an
    earlier run there is refused (it would be mixed with this one's checkpoints) unless `overwrite` starts over."""
    if not cfg.data:
        raise InputError("no dataset given (--data DIR from `arcsolver prepare`)", field="--data")
    check_config(cfg)
    check_dataset(cfg.data)
    out = Path(cfg.out)
    claim = claim_output(out, "run", inputs=[cfg.data], overwrite=overwrite)
    continuing = resume is not None and out.resolve() == owning_run(resume).resolve()
    if claim.replaces == "run" and not continuing and not overwrite:
        raise InputError(f"holds a training run already; continue it with --resume {out}, or choose another --out "
                         "(--overwrite starts it over)", file=str(out))
    if claim.overwrite or (overwrite and claim.replaces and not continuing):
        say(f"{out}: starting over (--overwrite): its earlier contents are removed")
        if os.environ.get("RANK", "0") == "0":
            shutil.rmtree(out)


def _check_resume(resume: str, mcfg, loss_type: str, puzzle_rows: dict | None = None,
                  optimizer: str = "adam_atan2") -> dict:
    """The checkpoint to resume: valid, of this run's architecture and optimizer, its puzzle rows named as this
    dataset's rows; returns its training state."""
    ck, state = check_resume(resume, mcfg, loss_type)
    had = read_json(ck / "config.json")["train"].get("optimizer", TrainConfig.optimizer)
    if had != optimizer:  # the optimizer state would not fit
        raise InputError(f"the checkpoint has optimizer={had!r}, this run {optimizer!r} (resume with the same "
                         "preset and --set)", file=str(ck / "config.json"), field="train.optimizer")
    if puzzle_rows is not None:
        check_puzzle_rows(ck, puzzle_rows)
    return state


def _puzzle_rows(data: str, mcfg) -> dict | None:
    """The name -> row map every checkpoint of this run carries (puzzle_embedding.dataset_row_map)."""
    if mcfg.puzzle_emb_ndim <= 0:
        return None
    return dataset_row_map(data, mcfg.puzzle_emb_mode)


def _forward_backward(ddp_model, model, acc: Accelerator, carry, batch: dict[str, torch.Tensor], local_batch: int,
                      device_batch: int, opt, emb_opt, backward=None):
    """One step's forward + backward over the local batch in micro-batches (grad_accumulation.accumulate), halving
    the micro-batch on out-of-memory. `backward(loss)`: the loss scaling's (float16), else plain. Returns (carry,
    summed loss, summed metrics, micro-batch used)."""
    noise = grad_accumulation.draw_halt_noise(model.model.config, batch["inputs"].shape[0], acc.device) \
        if model.training else None

    def forward(c, b, n):
        c, loss, metrics, _, _ = ddp_model(carry=c, batch=b, return_keys=(), halt_noise=n)
        return c, loss, metrics

    no_sync = (lambda: acc.no_sync(ddp_model)) if ddp_model is not model else None

    def reset() -> None:  # a failed attempt leaves partial gradients and recorded embedding rows
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        if emb_opt is not None:
            emb_opt.zero_grad()

    (carry, loss, metrics), device_batch = run_halving_on_oom(
        lambda db: grad_accumulation.accumulate(forward, carry, batch, local_batch, db, noise, no_sync, backward),
        device_batch,
        reset, "training step")
    return carry, loss, metrics, device_batch


def _fingerprint(model: torch.nn.Module) -> float:
    total = 0.0
    for i, t in enumerate(model.state_dict().values()):
        if t.is_floating_point():
            total += float((t.double() * (1 + (i % 7))).sum()) + float(t.double().abs().sum())
    return total


def _rank_state(loader: PuzzleLoader, carry) -> dict:
    return {"loader": loader.state_dict(), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "carry": map_tensors(carry, lambda t: t.to("cpu")) if carry is not None else None}


def _reduce_metrics(acc: Accelerator, metrics: dict[str, torch.Tensor], world: int) -> dict[str, float]:
    """Sum count-weighted metrics over processes, then normalise by the number of halted rows."""
    keys = sorted(metrics)
    t = torch.stack([metrics[k].detach().float().reshape(()) for k in keys]).to(acc.device)
    if world > 1:
        t = acc.reduce(t, reduction="sum")
    vals = dict(zip(keys, t.tolist()))
    count = max(vals.get("count", 0.0), 1.0)
    out = {"halted": vals.get("count", 0.0)}
    for k, v in vals.items():
        if k == "count":
            continue
        out[k] = v / count if not k.endswith("loss") else v
    return out
