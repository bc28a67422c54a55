"""The fine-tuning plan under a deadline: what to cut, in which order, so that `finetune --predict` always ends with
a submission instead of refusing.

Costs (`Costs`) come from one cheap measurement, not a probe training run: the checkpoint is loaded once (which also
times the model-loading part of prediction) and one forward supervision step of a prediction batch is timed after
one warm-up call, on a synthetic batch of the real shape. Everything else follows by counting forward passes
(`train.py` spells out the same model): a training step of G rows is G rows x (1 + 2/H) forward-supervision units
(the backward pass covers the last of H cycles at ~2x its forward), x `TRAIN_OVERHEAD`. An embeddings-only step is
counted the same: its backward still runs through the network to reach the inputs (on CPU it costs 0.9-1.0x a full
step). `TRAIN_OVERHEAD` = 0.9: training's larger batch runs more efficiently than the batch of 8 the probe times (a
full step measured 0.66-0.70x of its 1 + 2/H forward units; the measurements: runs/LOG.md, 2026-11-30). The training phases do not rely on these estimates for their length: they
plan their own steps from their own timed steps.

Processes (`world`, from the launcher): every cost is one process's share, as the code splits the work. A training
step of the global batch G runs G / world rows on each process, then all-reduces the gradients (counted at
`ALLREDUCE_BYTES_PER_S`, twice the gradient bytes: a ring all-reduce sends and receives each byte once). Prediction
splits every batch of `predict_batch` rows into world slices of predict_batch / world rows (predict.py), and the main
process gathers the answers; the probe times a rollout at exactly that slice size, with the dtype, micro-batch and
compile setting prediction will use. Compile: prediction runs eager; each training phase builds and compiles its own
model (train.py), so a compiled run pays `compile_s` at every phase start, and the plan charges it there.

The ladder (`decide`), for the time from now to the deadline minus the named reserves:
1. train as many steps as fit after the prediction (steps are cut first, down to `MIN_STEPS`);
2. then cut augmentations (halving `num_aug`, down to `AUG_FLOOR`): fewer versions to prepare and to vote;
3. then cut the versions voted per test input (halving, down to 1);
4. then no training at all: predict with the puzzle rows at the mean of the trained rows ("mean embedding"), with as
   many versions as fit (at least 1; prediction then stops itself at the deadline and keeps what it voted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from arcsolver.runtime.compilation import compile_enabled
from arcsolver.runtime.deadline import Plan
from arcsolver.model.config import TRMConfig
from arcsolver.model.memory_model import free_device_bytes
from arcsolver.model.puzzle_embedding import blank_puzzle_inputs
from arcsolver.inference.microbatch import rollout_in_micro_batches
from arcsolver.inference.predict import load_model, prediction_device_batch
from arcsolver.inference.rollout import rollout
from arcsolver.training.train import checkpoint_seconds

CUT_ORDER = ("steps", "augmentations", "versions", "training")
MIN_STEPS = 10  # fewer training steps than this are not worth the two phases' start-up: cut elsewhere first
AUG_FLOOR = 8
TRAIN_OVERHEAD = 0.9  # measured: see the module docstring
VOTE_OVERHEAD = 1.1  # undo + vote + periodic flushes on top of the rollouts
PREDICT_START_S = 0.3  # prediction's start beyond loading the checkpoint: accelerator, dataset, first flush
# Gradient all-reduce bandwidth per process. gloo on CPU sockets: ~1 GB/s; NCCL between L4s over PCIe: several GB/s.
# The conservative end for both until benchmarks/gpu_check.sh's kaggle row measures it.
ALLREDUCE_BYTES_PER_S = 1e9
# One torch.compile of the inner network (dynamo + inductor, forward and backward), per training phase. Not yet
# measured on a GPU: benchmarks/gpu_check.sh's kaggle row prints the real figure to replace this.
COMPILE_S = 60.0


@dataclass
class Costs:
    """Seconds measured or derived by counting passes (see the module docstring)."""

    sup_step_s: float  # one forward supervision step of a `predict_batch`-row batch (timed)
    predict_batch: int
    predict_steps: int  # supervision steps per prediction rollout
    train_batch: int  # global training batch
    h_cycles: int
    load_s: float  # prediction's fixed start: model + dataset load (timed: the checkpoint load)
    checkpoint_s: float  # one checkpoint save
    phase_start_s: float  # one training phase's start-up (accelerator, model, optimizer, loader; compile excluded)
    prepare_per_version_s: float = 2e-4  # building the dataset, per task version
    gpu: bool = False  # a partial batch costs a full one on a GPU, its share of one on a CPU
    world: int = 1  # processes sharing the work (the launcher's world size)
    grad_bytes: int = 0  # gradient bytes all-reduced per training step (0: not counted)
    compile_s: float = 0.0  # torch.compile at each training phase start (0: eager)

    @property
    def local_predict_batch(self) -> int:
        """Rows of one prediction batch on one process (predict gives each process batch // world rows)."""
        return max(1, self.predict_batch // self.world)

    @property
    def row_s(self) -> float:
        """Seconds per row per forward supervision step on one process (`sup_step_s` is timed at the local batch)."""
        return self.sup_step_s / self.local_predict_batch

    @property
    def phase_overhead_s(self) -> float:
        """One training phase's start: start-up plus the compile the code pays there."""
        return self.phase_start_s + self.compile_s

    def allreduce_s(self) -> float:
        return 2 * self.grad_bytes / ALLREDUCE_BYTES_PER_S if self.world > 1 else 0.0

    def train_step_s(self, embed_only: bool = False) -> float:
        # embed_only: counted as a full step (see the module docstring); kept as a parameter for the plan's wording
        units = 1 + 2 / max(1, self.h_cycles)
        rows = self.train_batch / self.world
        return self.row_s * rows * units * TRAIN_OVERHEAD + self.allreduce_s()

    def predict_s(self, n_test_inputs: int, versions: int) -> float:
        """Every version of every test input, each batch split over the processes: one process's time."""
        rows = n_test_inputs * versions
        batches = math.ceil(rows / self.predict_batch) if self.gpu else rows / self.predict_batch
        return self.load_s + batches * self.predict_steps * self.sup_step_s * VOTE_OVERHEAD

    def prepare_s(self, n_tasks: int, num_aug: int) -> float:
        return 0.5 + n_tasks * (num_aug + 1) * self.prepare_per_version_s


@dataclass
class Decision:
    num_aug: int
    versions: int  # voted per test input
    train_s: float  # seconds for the two training phases (0: predict with the mean embedding)
    steps: int  # estimated training steps in them
    cuts: list[str] = field(default_factory=list)  # what was cut, in order
    plan: Plan | None = None

    @property
    def mean_embedding_only(self) -> bool:
        return self.train_s <= 0


def decide(costs: Costs, window_s: float, *, n_tasks: int, n_test_inputs: int, num_aug: int, predict: bool,
           embed_fraction: float, prepared: bool = False, versions_per_task: int | None = None,
           reserves: dict[str, float] | None = None) -> Decision:
    """The ladder of the module docstring for `window_s` seconds from now to the deadline, after `reserves`.

    `prepared`: the dataset already exists (its `num_aug` cannot change any more, and costs nothing to build);
    `versions_per_task` then caps the versions (deduplicated augmentations can make fewer than num_aug + 1)."""
    reserves = dict(reserves or {})
    # each training phase that runs starts (and compiles) its own model and ends with a checkpoint
    start = training_phases(embed_fraction) * (costs.phase_overhead_s + costs.checkpoint_s)
    step = max(1e-6, embed_fraction * costs.train_step_s(True) + (1 - embed_fraction) * costs.train_step_s(False))
    cuts: list[str] = []

    def cap(a: int) -> int:
        v = a + 1
        return min(v, versions_per_task) if versions_per_task else v

    def left_for_training(a: int, v: int) -> float:
        pred = costs.predict_s(n_test_inputs, v) if predict else 0.0
        prep = 0.0 if prepared else costs.prepare_s(n_tasks, a)
        return window_s - sum(reserves.values()) - pred - prep - start

    a = num_aug
    v = cap(a)
    if not predict:  # nothing to keep time for: train what fits, if a step does
        t = max(0.0, left_for_training(a, v))
        if t < step:
            t = 0.0
            cuts.append("training")
        return _decision(a, v, t, step, cuts, costs, n_test_inputs, n_tasks, predict, prepared, reserves, start,
                         embed_fraction)
    # 1. steps are cut first: whatever is left after prediction goes to training
    if left_for_training(a, v) / step >= MIN_STEPS:
        t = left_for_training(a, v)
        return _decision(a, v, t, step, cuts, costs, n_test_inputs, n_tasks, predict, prepared, reserves, start,
                         embed_fraction)
    cuts.append("steps")
    # 2. then augmentations
    while not prepared and a > AUG_FLOOR and left_for_training(a, cap(a)) / step < MIN_STEPS:
        a = max(AUG_FLOOR, a // 2)
        if "augmentations" not in cuts:
            cuts.append("augmentations")
    v = cap(a)
    # 3. then the versions voted
    while v > 1 and left_for_training(a, v) / step < MIN_STEPS:
        v = max(1, v // 2)
        if "versions" not in cuts:
            cuts.append("versions")
    if left_for_training(a, v) / step >= MIN_STEPS:
        return _decision(a, v, left_for_training(a, v), step, cuts, costs, n_test_inputs, n_tasks, predict,
                         prepared, reserves, start, embed_fraction)
    # 4. no training: the mean embedding, with as many versions as fit (training's start-up is not spent either)
    cuts.append("training")
    room = window_s - sum(reserves.values()) - (0.0 if prepared else costs.prepare_s(n_tasks, a))
    v = cap(a)
    while v > 1 and costs.predict_s(n_test_inputs, v) > room:
        v = max(1, v // 2)
    return _decision(a, v, 0.0, step, cuts, costs, n_test_inputs, n_tasks, predict, prepared, reserves, 0.0,
                     embed_fraction)


def training_phases(embed_fraction: float) -> int:
    """How many training phases run: embeddings-only when embed_fraction > 0, full when < 1."""
    return int(embed_fraction > 0) + int(embed_fraction < 1)


def _decision(a, v, train_s, step, cuts, costs, n_test_inputs, n_tasks, predict, prepared, reserves, start,
              embed_fraction) -> Decision:
    phases = {}
    if not prepared:
        phases["prepare"] = costs.prepare_s(n_tasks, a)
    if train_s > 0:  # each phase as it will run: its share of the steps, its start-up, compile and checkpoint
        per_phase = start / training_phases(embed_fraction)
        if embed_fraction > 0:
            phases["embeddings-only"] = embed_fraction * train_s + per_phase
        if embed_fraction < 1:
            phases["full fine-tune"] = (1 - embed_fraction) * train_s + per_phase
    res = dict(reserves)
    if predict:
        res["prediction"] = costs.predict_s(n_test_inputs, v)
    if start and train_s <= 0:
        res["phase start-up + checkpoints"] = start
    steps = int(train_s / step) if train_s > 0 else 0
    plan = Plan("finetune", 0.0, phases, res,
                {"num_aug": a, "versions_voted": v, "est_steps": steps, "est_step_s": round(step, 4),
                 "cut": "+".join(cuts) or "nothing"})
    return Decision(a, v, train_s, steps, cuts, plan)


PROBE_ROWS = 8  # rows of the small timed step: cheap on any device
FULL_PROBE_SHARE = 0.02  # time a full prediction batch too when that costs at most this share of the time left


def measure_costs(ckpt, device, *, n_rows: int, predict_batch: int, train_batch: int, clock,
                  window_s: float = float("inf"), steps: int | None = None, world: int = 1,
                  forward_dtype: str = "auto", device_batch_size: int = 0, compile_setting="auto") -> Costs:
    """Load the checkpoint once and time forward supervision steps on a synthetic batch of the prediction's shape,
    as one of `world` processes runs it (its slice of a batch, the run's dtype and micro-batch): the only measurement
    the plan makes. A warm-up and a timed step on `PROBE_ROWS` rows; then one step of the full local batch if that
    is projected to cost at most 2% of `window_s`, else the small step scaled by rows (CPU throughput is about
    linear in rows; on a GPU a small batch underuses the device, which over-estimates prediction: safe). Planning
    thus costs a checkpoint load plus at most ~2% of the time left."""
    t = clock.now()
    b = max(1, min(predict_batch, n_rows))
    local = max(1, b // max(1, world))
    free = free_device_bytes(device)
    model, cfg = load_model(ckpt, device, batch_size=local, forward_dtype=forward_dtype)
    micro = prediction_device_batch(model, device_batch_size, local, free)
    load_s = clock.now() - t
    mc = cfg["model"]
    seq = int(mc["seq_len"])
    gen = torch.Generator().manual_seed(0)

    def timed(rows: int) -> float:
        batch = {"inputs": torch.randint(2, 12, (rows, seq), generator=gen, dtype=torch.int32).to(device),
                 "labels": torch.zeros(rows, seq, dtype=torch.int64, device=device),
                 **blank_puzzle_inputs(rows, device)}
        t0 = clock.now()
        rollout_in_micro_batches(model, batch, 1, min(micro, rows), rollout)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock.now() - t0

    small = min(PROBE_ROWS, local)
    timed(small)  # warm-up: allocations, kernel selection
    sup = timed(small) * local / small
    if local > small and sup <= FULL_PROBE_SHARE * window_s:
        sup = timed(local)
    ck_s = checkpoint_seconds(model, has_ema=True, has_opt=True)
    grad_bytes = sum(p.numel() * 4 for n, p in model.named_parameters() if "puzzle_emb" not in n)
    p_steps = steps or int(cfg.get("train", {}).get("eval_steps", 0)) or int(mc.get("halt_max_steps",
                                                                                      TRMConfig.halt_max_steps))
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the training phases that follow want that memory
    return Costs(sup_step_s=sup, predict_batch=b, predict_steps=p_steps, train_batch=train_batch,
                 h_cycles=int(mc.get("H_cycles", TRMConfig.H_cycles)), load_s=load_s + PREDICT_START_S, checkpoint_s=ck_s,
                 phase_start_s=load_s + 1.0, gpu=device.type == "cuda", world=max(1, world), grad_bytes=grad_bytes,
                 compile_s=COMPILE_S if compile_enabled(compile_setting, device) else 0.0)
