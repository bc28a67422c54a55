"""`arcsolver predict --vote`: a trained checkpoint + a prepared dataset -> Kaggle submission.json.

Every test input is run under every augmented version that has a puzzle id (batched across tasks and versions,
all supervision steps, `torch.inference_mode`), each answer is undone (crop, inverse dihedral, inverse colours) and
the answers are voted on (`vote.VoteBook`, one per checkpoint: no silent ensembling). The top two grids per test
input become attempt_1/attempt_2 of a submission that is complete by construction and written atomically; a
candidates JSON beside it keeps every candidate with its votes and confidence (flushed with the submission).

Processes: under `accelerate launch` each process rolls out its slice of every batch and the main process gathers
(index, prediction, q) and votes. Without `--vote` only version 0 (the un-augmented task) is run.

A long prediction never throws away what it has voted (the Kaggle run is killed at its deadline):
* tasks are processed whole, cheapest first (fewest versions x test inputs), so many tasks are complete early;
* the submission is flushed (complete and valid: fallback entries only where no vote exists yet; written to a temp
  file and renamed, then its candidates file the same way) before the first batch, every few batches, on SIGTERM
  and at the deadline; a flush that costs more than 5% of the time since the last one doubles the interval, so
  flushing stays cheap on 240 tasks;
* under a deadline it stops by itself before starting a batch that would not finish (with its final write) in time,
  judged from the batch times measured on the deadline's clock, and returns normally with the answers so far.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from arcsolver.runtime.deadline import Deadline
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.settings import check_value
from arcsolver.runtime.jsonio import write_json
from arcsolver.runtime.outputs import claim_output, owning_run, recognise
from arcsolver.runtime.precision import make_accelerator, run_precision
from arcsolver.runtime.ranks import agree_on_stop
from arcsolver.runtime.report import progress_bar, say
from arcsolver.data.arc_tasks import Task, load_tasks
from arcsolver.data.checks import check_dataset, check_tasks_match_dataset
from arcsolver.data.loader import ArcSource, PuzzleLoader
from arcsolver.model import checkpoint
from arcsolver.model.build import build_model
from arcsolver.model.checks import check_checkpoint, check_puzzle_rows
from arcsolver.model.config import DEFAULT_LOSS_TYPE, TRMConfig, model_mode
from arcsolver.model.memory_model import choose_device_batch, free_device_bytes, inference_memory
from arcsolver.model.puzzle_embedding import dataset_row_map, table_rows
from arcsolver.inference.microbatch import rollout_in_micro_batches
from arcsolver.inference.rollout import batch_to, rollout
from arcsolver.inference.score import score_submission
from arcsolver.inference.settings import PREDICT, PredictSettings
from arcsolver.inference.submission import build_submission, publish_answers, write_submission
from arcsolver.inference.vote import VoteBook, candidates_json

@dataclass
class PredictResult:
    submission: Path
    candidates: Path | None
    tasks: int
    test_inputs: int
    predictions: int
    seconds: float
    book: VoteBook | None = None
    stopped_by: str = "done"  # "done" | "deadline" | "signal"
    items_done: int = 0
    tasks_complete: int = 0
    flushes: int = 0


def load_model(ckpt: str | Path, device: torch.device, *, ema: bool = True, batch_size: int | None = None,
               forward_dtype: str = "auto", announce_precision: bool = False):
    """The ACT model (not the loss head) with checkpoint weights (EMA by default), on `device`, in eval mode.
    Its forward dtype is chosen for `device` as training chooses it (the checkpoint's dtype is a preference)."""
    cfg = checkpoint.load_config(ckpt)
    mc = dict(cfg["model"])
    if batch_size:
        mc["batch_size"] = batch_size
    mc["forward_dtype"] = run_precision(forward_dtype, mc.get("forward_dtype", "float32"), device,
                                        announce_it=announce_precision).dtype
    mcfg = TRMConfig.from_dict(mc)
    head = build_model(mcfg, cfg.get("train", {}).get("loss_type", DEFAULT_LOSS_TYPE))
    state = checkpoint.load_weights(ckpt, ema=ema)
    head.load_state_dict(state)
    model = head.model.to(device).eval()
    return model, cfg


def add_to_book(book: VoteBook, source: ArcSource, ver_sel: np.ndarray, ex_sel: np.ndarray, index: torch.Tensor,
                preds: torch.Tensor, q: torch.Tensor) -> int:
    """Vote the rows of one test batch: `index` are positions in the (ver_sel, ex_sel) test items (-1 = padding),
    `preds` the predicted canvases [B, L], `q` the halting logits [B]. Returns the number of rows voted."""
    a, store = source.a, source.store
    idx = index.long().cpu().numpy()
    ok = idx >= 0
    idx = idx[ok]
    tok = preds[torch.from_numpy(ok).to(preds.device)].to(torch.uint8).cpu().numpy()
    qv = q[torch.from_numpy(ok).to(q.device)].double().cpu().numpy()
    ver, ex = ver_sel[idx], ex_sel[idx]
    task_ids = np.array([store.task_ids[t] for t in a["ver_task"][ver]], dtype=object)  # O(batch), not O(tasks)
    book.add(task_ids, a["ex_pos"][ex].astype(np.int64), tok, a["ver_tid"][ver], a["ver_map"][ver], qv)
    return len(idx)


def voted_scores(book: VoteBook, source: ArcSource) -> dict[str, float]:
    """pass@1 / pass@2 (per-task mean, the ARC Prize convention) of the voted top-2 over the dataset's test tasks
    whose test outputs are known; {} when none are."""
    store = source.store
    tasks = [store.task(i) for i in store.test_task_indices()]
    tasks = [t for t in tasks if t.test and all(p.output is not None for p in t.test)]
    if not tasks:
        return {}
    res = score_submission(build_submission(tasks, book), {t.id: [p.output for p in t.test] for t in tasks})
    return {"vote_pass@1": res["per_task"]["pass@1"], "vote_pass@2": res["per_task"]["pass@2"],
            "vote_tasks": float(res["n_tasks"])}


def check_options(**values) -> None:
    """Predict's numeric options (`name=value`, as declared in PredictSettings), before anything is read or written
    (a bad one must not cost an existing file)."""
    for name, value in values.items():
        check_value(PredictSettings, name, value, field="--" + name.replace("_", "-"))


def _check_inputs(ckpt: str | Path, data: str | None, out: Path, tasks: str | None,
                  overwrite: bool) -> tuple[Path, dict, str]:
    """Checkpoint, dataset (given, or the checkpoint's) and output location, checked before any work
    (model/checks.py, data/checks.py, runtime/outputs.py: the submission and its candidates file replace only
    earlier ones, and never land inside the checkpoint's run, the dataset or the tasks). Returns (checkpoint folder,
    its config, dataset path)."""
    ck, cfg = check_checkpoint(ckpt)
    data = data or cfg["data"].get("path")
    if not data or not (Path(data) / "meta.json").is_file():
        raise InputError("prepared dataset not found (pass --data DIR)", file=str(data))
    meta = check_dataset(data)
    if meta.get("kind") != "arc":
        raise InputError(f"predict answers ARC tasks; this dataset is {meta.get('kind')!r}", file=str(data))
    inputs = [owning_run(ckpt), ck, data, tasks]
    claims = [claim_output(out, "submission", inputs=inputs, overwrite=overwrite),
              claim_output(candidates_path(out), "candidates", inputs=inputs, overwrite=overwrite,
                           field="--out (its candidates file)")]
    if os.environ.get("RANK", "0") == "0":
        for notice in filter(None, (c.notice() for c in claims)):
            say(notice)
    return ck, cfg, str(data)


def _check_dataset_fits(ck: Path, cfg: dict, meta: dict, data: str) -> None:
    """The dataset is the one the checkpoint was trained (or fine-tuned) on: its canvas, its number of puzzle rows
    (versions, or tasks in task mode) and, when the checkpoint carries its name -> row map, the same name per row."""
    mode = model_mode(cfg["model"])
    mine = {"seq_len": int(meta["seq_len"]), "num_puzzle_identifiers": table_rows(meta, mode)}
    for key, value in mine.items():
        if value != int(cfg["model"][key]):
            raise InputError(f"dataset {key} {value} does not match the checkpoint's {cfg['model'][key]} "
                             "(predict with the dataset the checkpoint was trained or fine-tuned on)", file=str(data))
    if int(cfg["model"].get("puzzle_emb_ndim", 1)) > 0:
        check_puzzle_rows(ck, dataset_row_map(data, mode), data=str(data))


def predict(ckpt: str | Path, out: Path, *, data: str | None = PREDICT.data, tasks: str | None = PREDICT.tasks,
            vote: bool = PREDICT.vote, batch_size: int = PREDICT.batch_size, steps: int | None = PREDICT.steps,
            ema: bool = PREDICT.ema, cpu: bool | None = PREDICT.cpu, candidates: bool = True,
            max_versions: int = PREDICT.max_versions, quiet: bool = False, deadline: Deadline | None = None,
            flush_every: int = PREDICT.flush_every, on_flush=None, forward_dtype: str = PREDICT.forward_dtype,
            device_batch_size: int = PREDICT.device_batch_size, overwrite: bool = PREDICT.overwrite,
            publish: Path | None = PREDICT.publish, extra_loops: int = PREDICT.extra_loops) -> PredictResult:
    """Vote and write `out` (see the module docstring). `deadline`: stop before it with the answers so far.
    `flush_every`: batches between flushes; 0 = automatic (every 4, doubled while a flush costs more than 5% of
    the time since the previous one). `on_flush(info)` is called after every flush with a dict (flush number,
    items and tasks done, test inputs voted): a hook for tests and logs. `device_batch_size`: rows per forward
    (0: from the free device memory, memory_model; the whole batch on CPU); halved on out-of-memory.
    `overwrite`: replace an `out` that is not an earlier submission (runtime/outputs.py).
    `publish`: a complete submission file (e.g. the Kaggle working file) into which every flush copies the model's
    answers so far, atomically (`submission.publish_answers`).
    `extra_loops`: supervision steps beyond `steps` (or its default), as the URM reference's evaluation with
    loop_deltas: the recursion continues from its carry."""
    check_options(batch_size=batch_size, steps=steps, max_versions=max_versions, flush_every=flush_every,
                  device_batch_size=device_batch_size, extra_loops=extra_loops)
    stop = {"why": None}
    restore = _on_sigterm(lambda: stop.update(why="signal"))
    try:
        return _predict(ckpt, out, data, tasks, vote, batch_size, steps, ema, cpu, candidates, max_versions, quiet,
                        deadline or Deadline(), flush_every, on_flush, stop, forward_dtype, device_batch_size,
                        overwrite, publish, extra_loops)
    finally:
        restore()


def _predict(ckpt, out, data, tasks, vote, batch_size, steps, ema, cpu, candidates, max_versions, quiet,
             deadline: Deadline, flush_every, on_flush, stop: dict, forward_dtype: str = "auto",
             device_batch_size: int = 0, overwrite: bool = False,
             publish: Path | None = None, extra_loops: int = 0) -> PredictResult:
    clock = deadline.clock
    t0 = clock.now()
    ckpt, cfg, data = _check_inputs(ckpt, data, out, tasks, overwrite)
    if publish is not None:
        check_publish_target(publish)
    source = ArcSource(data)
    store = source.store
    _check_dataset_fits(ckpt, cfg, store.meta, data)

    # Which tasks to answer: the dataset's test tasks, or the tasks of --tasks (which must be among them).
    test_idx = store.test_task_indices()
    by_id = {store.task_ids[i]: i for i in test_idx}
    if tasks:
        wanted = load_tasks(tasks)
        check_tasks_match_dataset(wanted, store, tasks)
        task_list: list[Task] = wanted
        keep = {by_id[t.id] for t in wanted}
    else:
        task_list = [store.task(i) for i in test_idx]
        keep = set(test_idx)

    if cpu is None:
        cpu = not torch.cuda.is_available()
    acc = make_accelerator(cpu)

    # Restrict the test items: chosen tasks, and (without --vote) version 0 only.
    ver_all, ex_all = source.test_items()
    a = source.a
    vtask = a["ver_task"][ver_all]
    sel = np.isin(vtask, np.fromiter(keep, dtype=np.int64))
    first_ver = a["task_ver"][:-1][vtask]
    if not vote:
        sel &= ver_all == first_ver
    elif max_versions > 0:
        sel &= (ver_all - first_ver) < max_versions
    source._test = cheapest_tasks_first(ver_all[sel], ex_all[sel], vtask[sel])
    loader = PuzzleLoader(source, "test", global_batch_size=batch_size, rank=acc.process_index,
                          world_size=acc.num_processes)
    n_items = loader.test_size()
    ver_sel, ex_sel = source._test
    task_done_at = _task_completion_points(a["ver_task"][ver_sel])  # items done -> whole tasks done

    book = VoteBook(label=str(ckpt))
    cand_path = candidates_path(out) if candidates else None
    flusher = _Flusher(Path(out), task_list, book, clock, flush_every, on_flush,
                       say if acc.is_main_process and not quiet else None, cand_path, publish)
    items_done = 0
    if acc.is_main_process:
        flusher.flush(0, int(np.searchsorted(task_done_at, 0, side="right")))  # a complete file before any batch
    free = free_device_bytes(acc.device)  # before the weights are on the device: the memory model counts them
    model, _ = load_model(ckpt, acc.device, ema=ema, batch_size=batch_size // acc.num_processes,
                          forward_dtype=forward_dtype, announce_precision=acc.is_main_process and not quiet)
    steps = steps or int(cfg.get("train", {}).get("eval_steps", 0)) or None  # as the run evaluated itself
    if extra_loops:
        steps = (steps or int(cfg["model"]["halt_max_steps"])) + extra_loops
    device_batch = prediction_device_batch(model, device_batch_size, batch_size // acc.num_processes, free)
    # the bar after the first flush and the model load (errors there stay one line)
    progress = progress_bar("predict", total=n_items, enabled=acc.is_main_process and not quiet)
    row_times: list[float] = []  # seconds per row of each batch, on the deadline's clock
    try:
        for batch in loader.test_batches():
            why = stop["why"] or _deadline_stop(deadline, row_times, min(batch_size, n_items - items_done), flusher)
            if acc.num_processes > 1:  # every process stops at the same batch, or the gathers would hang
                reason, signal_name = agree_on_stop(acc.device, acc.num_processes,
                                                    "time" if why == "deadline" else None,
                                                    "SIGTERM" if why == "signal" else None)
                why = "signal" if signal_name else ("deadline" if reason == "time" else None)
            if why:
                stop["why"] = why
                break
            tb = clock.now()
            if acc.num_processes == 1 and not bool((batch["index"] >= 0).all()):
                # The last batch is padded to full size; alone, there are no shapes to keep in step with: drop padding.
                keep = batch["index"] >= 0
                batch = {k: v[keep] for k, v in batch.items()}
            b = batch_to(batch, acc.device)
            preds, q, device_batch = rollout_in_micro_batches(model, b, steps, device_batch, rollout)
            rows = torch.cat([b["index"][:, None].to(torch.float64), q[:, None].to(torch.float64)], 1)
            if acc.num_processes > 1:
                rows = acc.gather(rows)
                preds = acc.gather(preds.contiguous())
            rows_here = min(batch_size, n_items - items_done)
            items_done += rows_here
            row_times.append((clock.now() - tb) / max(1, rows_here))
            if not acc.is_main_process:
                continue
            n = add_to_book(book, source, ver_sel, ex_sel, rows[:, 0], preds, rows[:, 1])
            if progress is not None:
                progress.update(n)
            if flusher.due():
                flusher.flush(items_done, int(np.searchsorted(task_done_at, items_done, side="right")))
    except BaseException:
        # An error or Ctrl-C mid-prediction: the votes so far still go to disk (the error itself is not hidden).
        if progress is not None:
            progress.close()
        if acc.is_main_process:
            with contextlib.suppress(Exception):
                flusher.flush(items_done, int(np.searchsorted(task_done_at, items_done, side="right")), final=True)
        raise
    if progress is not None:
        progress.close()

    tasks_complete = int(np.searchsorted(task_done_at, items_done, side="right"))
    if acc.is_main_process:
        flusher.flush(items_done, tasks_complete, final=True)  # the submission and its candidates
    acc.wait_for_everyone()
    return PredictResult(Path(out), cand_path if acc.is_main_process else None, len(task_list),
                         sum(len(t.test) for t in task_list), items_done, clock.now() - t0, book, stop["why"] or "done",
                         items_done, tasks_complete, flusher.count)


def check_publish_target(path: str | Path) -> None:
    """`--publish` names an existing submission file (one arcsolver or the Kaggle runner wrote): it is updated in
    place, never created or replaced wholesale."""
    if recognise(path) != "submission":
        raise InputError("expected an existing submission file to publish answers into", file=str(path),
                         field="--publish")


def candidates_path(out: str | Path) -> Path:
    """Where the candidates of the submission `out` go: `<stem>.candidates.json` beside it."""
    return Path(out).with_name(Path(out).stem + ".candidates.json")


def cheapest_tasks_first(ver: np.ndarray, ex: np.ndarray, task: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The test items regrouped task by task, tasks with the fewest items (versions x test inputs) first, ties in
    dataset order: whatever the moment a run stops, as many tasks as possible have all their votes."""
    if len(task) == 0:
        return ver, ex
    ids, first, counts = np.unique(task, return_index=True, return_counts=True)
    rank = np.empty(len(ids), np.int64)
    rank[np.lexsort((first, counts))] = np.arange(len(ids))
    order = np.argsort(rank[np.searchsorted(ids, task)], kind="stable")
    return ver[order], ex[order]


def _task_completion_points(task_of_item: np.ndarray) -> np.ndarray:
    """For items in task-grouped order: the item count at which each task is complete (sorted)."""
    if len(task_of_item) == 0:
        return np.zeros(0, np.int64)
    ends = np.flatnonzero(np.diff(task_of_item) != 0) + 1
    return np.append(ends, len(task_of_item)).astype(np.int64)


def _on_sigterm(callback):
    """Call `callback` on SIGTERM instead of dying (the runner signals before it kills); returns a function that
    restores the previous handler. Off the main thread (a notebook's solve thread) signals cannot be caught."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    prev = signal.signal(signal.SIGTERM, lambda signum, frame: callback())
    return lambda: signal.signal(signal.SIGTERM, prev)


def _deadline_stop(deadline: Deadline, row_times: list[float], next_rows: int, flusher: "_Flusher") -> str | None:
    """"deadline" when the next batch (`next_rows` rows, at the per-row time of the batches so far, the slower of
    their median and the last one's, +25%), plus the final write, would not end before the deadline."""
    if not deadline.limited:
        return None
    timed = row_times[1:] or row_times  # the first batch warms up
    row_s = max(sorted(timed)[len(timed) // 2], timed[-1]) if timed else 0.0
    need = 1.25 * row_s * next_rows + 2 * flusher.cost_s + 1.0
    return "deadline" if deadline.remaining() < need else None


class _Flusher:
    """Writes the complete submission atomically, then (with `candidates`) the candidates of the test inputs voted
    so far, atomically too; decides when (every `every` batches; automatic when `every` is 0: every 4, doubled while
    a flush costs more than 5% of the time since the previous one). The submission goes first: votes only grow, so
    a process killed between the two renames leaves candidates that name no test input the submission on disk has
    not voted (the runner counts model answers from them, and never over-counts)."""

    AUTO_EVERY = 4

    def __init__(self, out: Path, tasks: list[Task], book: VoteBook, clock, every: int, on_flush, say,
                 candidates: Path | None = None, publish: Path | None = None):
        self.out, self.tasks, self.book, self.clock, self.candidates = out, tasks, book, clock, candidates
        self.publish = publish
        self.adaptive = int(every) <= 0
        self.every, self.on_flush, self.say = int(every) if every > 0 else self.AUTO_EVERY, on_flush, say
        self.count = 0
        self.batches = 0
        self.cost_s = 0.0
        self.last_t = clock.now()

    def due(self) -> bool:
        self.batches += 1
        return self.batches >= self.every

    def flush(self, items_done: int, tasks_complete: int, final: bool = False) -> None:
        t = self.clock.now()
        sub = build_submission(self.tasks, self.book)
        write_submission(self.out, sub, self.tasks)
        if self.candidates is not None:
            write_json(self.candidates, candidates_json(self.book))
        if self.publish is not None:
            publish_answers(self.publish, sub, self.book.keys())
        now = self.clock.now()
        self.cost_s = now - t
        if self.adaptive and self.count and self.cost_s > 0.05 * max(1e-9, t - self.last_t):
            self.every *= 2
        self.last_t, self.batches = now, 0
        info = {"flush": self.count, "items_done": items_done, "tasks_complete": tasks_complete,
                "tasks": len(self.tasks), "test_inputs_voted": len(self.book.keys()), "final": final}
        self.count += 1
        if self.say is not None:
            self.say(f"predict: flush {info['flush']}: {tasks_complete}/{len(self.tasks)} tasks complete, "
                     f"{info['test_inputs_voted']} test inputs voted, {items_done} items -> {self.out}")
        if self.on_flush is not None:
            self.on_flush(info)


def prediction_device_batch(model, requested: int, batch: int, free_bytes: int | None) -> int:
    """Rows per forward (memory_model.choose_device_batch with the inference estimate of `model`). `free_bytes`: the
    device's free memory measured before the model was loaded (the memory model counts the weights against it;
    measured after, they would be subtracted twice)."""
    return choose_device_batch(lambda rows: inference_memory(model.config, rows), max(1, batch), free_bytes,
                               requested=requested)
