"""Benchmark: the puzzle-embedding table in `version` and `task` mode (`arch.puzzle_emb_mode`), memory and step time.

1. Memory, 1k / 10k / 100k tasks x 1,000 augmentations at the paper's ARC width (puzzle_emb_ndim 512): the model is
   built as `train` builds it (trm.TRM inside the loss head) on the `meta` device -- the real modules, their real
   buffers, nothing allocated -- and the bytes of its puzzle-embedding buffers are summed (they are also what the
   checkpoint's model.safetensors holds for the table; EMA holds no buffers). Version mode counts every task at its
   full 1,001 versions (the original + 1,000 augmentations; deduplication can only lower it).
   Optimizer state: sign-SGD keeps no per-row state (its state_dict is the LR and the weight decay: measured by
   pickling it); per step it holds the rows the batch touched and their gradients, measured on a real CPU training
   step of the embedding at the paper's batch (768 rows) and independent of the table size. The name -> row map
   each checkpoint carries (puzzle_rows.json) is measured on 100 tasks x 1,001 names and scaled per name.
2. Step time, paired: one training step (forward, backward, Adam-atan2, sign-SGD) of the TTT benchmark's CPU model
   (benchmarks/ttt_cpu.py) in each mode, alternating on the same batches from one prepared dataset of generated
   tasks, same initial weights; the median of each mode and of the per-pair ratio.

    python benchmarks/bench_puzzle_table.py --out runs/results/bench_puzzle_table   # ~1-2 min, one thread
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

TASKS = (1_000, 10_000, 100_000)
AUGMENTATIONS = 1_000
ARC_ARCH = dict(hidden_size=512, num_heads=8, L_layers=2, H_cycles=3, L_cycles=4, seq_len=900, puzzle_emb_len=16,
                puzzle_emb_ndim=512, forward_dtype="bfloat16")
PAPER_BATCH = 768


def rows_for(mode: str, tasks: int, augmentations: int) -> int:
    return tasks * (augmentations + 1) + 1 if mode == "version" else tasks + 1


def table_bytes_of_model(mode: str, rows: int) -> tuple[int, int]:
    """(puzzle-embedding buffer bytes, network parameter bytes) of the ARC model built on the meta device."""
    import torch
    from arcsolver.model.puzzle_embedding import table_bytes
    from arcsolver.model.build import build_model
    from arcsolver.model.trm import TRMConfig
    with torch.device("meta"):
        head = build_model(TRMConfig(num_puzzle_identifiers=rows, puzzle_emb_mode=mode, **ARC_ARCH))
    emb = head.model.inner.puzzle_emb
    params = sum(p.numel() * p.element_size() for p in head.parameters())
    return table_bytes(emb), params


def optimizer_bytes(mode: str, batch: int = PAPER_BATCH, dim: int = 512) -> tuple[int, int]:
    """(persistent optimizer state bytes, per-step bytes of touched rows + their gradients + ids), measured on a real
    CPU step of a small table (neither depends on the table size). Persistent: sign-SGD's state_dict (pickled) and,
    in task mode, Adam-atan2's moments and the EMA copy of the 18 augmentation rows (parameters of the network)."""
    import pickle
    import torch
    from arcsolver.model.adam_atan2 import AdamAtan2
    from arcsolver.model.puzzle_embedding import SignSGDSparse, SparsePuzzleEmbedding, TaskPuzzleEmbedding, sparse_tables
    torch.manual_seed(0)
    emb = (TaskPuzzleEmbedding(1001, dim) if mode == "task" else SparsePuzzleEmbedding(10_001, dim)).train()
    opt = SignSGDSparse(emb, lr=1e-2, weight_decay=0.1)
    params = list(emb.parameters())
    adam = AdamAtan2(params, lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95)) if params else None
    ids = torch.randint(1, 1000, (batch,))
    if mode == "task":
        aug = torch.cat([torch.randint(0, 8, (batch, 1)), torch.stack([torch.randperm(10) for _ in range(batch)])], 1)
        out = emb(ids, aug)
    else:
        out = emb(ids)
    out.float().pow(2).sum().backward()
    step = 0
    for t in sparse_tables(emb):
        for w, i in zip(t.local_weights or (), t.local_ids or ()):
            step += w.numel() * w.element_size() + w.grad.numel() * w.grad.element_size() + i.numel() * i.element_size()
    opt.step()
    opt.zero_grad()
    persistent = len(pickle.dumps(opt.state_dict()))
    if adam is not None:
        adam.step()
        persistent += sum(v.numel() * v.element_size() for st in adam.state.values() for v in st.values()
                          if torch.is_tensor(v) and v.dim() > 0)
        persistent += sum(p.numel() * p.element_size() for p in params)  # the EMA shadow
    return persistent, step


def row_map_bytes_per_name(tasks: int = 100, augmentations: int = AUGMENTATIONS) -> tuple[float, float]:
    """(bytes per task name, bytes per version name) of puzzle_rows.json, measured on `tasks` tasks (names like the
    generated tasks', versions named as the reference)."""
    import numpy as np
    import orjson
    from arcsolver.data.arc_dataset import SEPARATOR
    rng = np.random.default_rng(0)
    names = [f"family-0-{i:04d}" for i in range(tasks)]
    versions = ["<blank>"]
    for n in names:
        versions.append(n)  # the original: its bare name
        for _ in range(augmentations):  # "<task>|||t<dihedral>|||<ten map digits>", black fixed
            digits = "0" + "".join(str(d) for d in rng.permutation(9) + 1)
            versions.append(f"{n}{SEPARATOR}t{int(rng.integers(8))}{SEPARATOR}{digits}")
    return len(orjson.dumps(names)) / tasks, len(orjson.dumps(versions)) / len(versions)


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:.0f} B"


def memory_table() -> tuple[str, dict]:
    per_task, per_version = row_map_bytes_per_name()
    opt = {m: optimizer_bytes(m) for m in ("version", "task")}
    lines = ["| tasks x augmentations | mode | table rows | puzzle table (checkpoint, device) | optimizer state "
             "(persistent) | per step (touched rows + grads, batch 768) | name->row map (puzzle_rows.json) |",
             "|---|---|---|---|---|---|---|"]
    raw = {}
    params = 0
    for tasks in TASKS:
        for mode in ("version", "task"):
            rows = rows_for(mode, tasks, AUGMENTATIONS)
            tbytes, net = table_bytes_of_model(mode, rows)
            params = net if mode == "version" else params  # the network alone (task mode adds its 18 code rows)
            names = tasks * per_task + (rows * per_version if mode == "version" else 0)
            raw[f"{tasks}-{mode}"] = {"rows": rows, "table_bytes": tbytes, "opt_state_bytes": opt[mode][0],
                                      "step_bytes": opt[mode][1], "row_map_bytes": names}
            lines.append(f"| {tasks:,} x {AUGMENTATIONS:,} | {mode} | {rows:,} | {fmt_bytes(tbytes)} | "
                         f"{fmt_bytes(opt[mode][0])} | {fmt_bytes(opt[mode][1])} | {fmt_bytes(names)} |")
    note = (f"\nThe network itself (ARC config, fp32 parameters): {fmt_bytes(params)}; Adam-atan2 adds 2x that and EMA "
            "1x, whatever the mode. Task mode adds 8 dihedral rows, 10 colour codes (parameters: with their Adam "
            "moments and EMA copy in the optimizer column) and 10 fixed colour keys to one row per task; sign-SGD "
            "keeps no per-row state in either mode.\n")
    return "\n".join(lines) + "\n" + note, raw


def paired_step_times(pairs: int, seed: int = 0) -> tuple[str, dict]:
    import torch
    from ttt_cpu import CPU_ARCH, CPU_TRAIN, FAMILIES_A
    from arcsolver.model.adam_atan2 import AdamAtan2
    from arcsolver.data.generate import generate
    from arcsolver.inference.rollout import batch_to
    from arcsolver.runtime.jsonio import read_json
    from arcsolver.data.loader import PuzzleLoader
    from arcsolver.data.prepare import prepare_arc
    from arcsolver.model.puzzle_embedding import SignSGDSparse
    from arcsolver.model.build import build_model, model_config
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(",".join(FAMILIES_A), 32, 6, seed, tmp / "tasks")
        prepare_arc(tmp / "data", [str(tmp / "tasks")], [], num_aug=9, seed=seed, canvas=6)
        meta = read_json(tmp / "data" / "meta.json")
        batch = int(CPU_TRAIN["global_batch_size"])
        loader = PuzzleLoader(tmp / "data", "train", global_batch_size=batch, seed=seed)
        batches = [batch_to(loader.train_batch(k), torch.device("cpu")) for k in range(pairs + 3)]
        runs = {}
        for mode in ("version", "task"):
            torch.manual_seed(seed)  # the same network weights in both modes (task mode's keys use their own RNG)
            mcfg = model_config({**CPU_ARCH, "puzzle_emb_mode": mode}, meta, batch)
            head = build_model(mcfg).train()
            opt = AdamAtan2(list(head.parameters()), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
            emb_opt = SignSGDSparse(head.model.inner.puzzle_emb, lr=1e-1, weight_decay=0.1)
            runs[mode] = {"head": head, "opt": opt, "emb": emb_opt, "carry": None, "times": []}

        def step(r, b):
            t = time.perf_counter()
            if r["carry"] is None:
                r["carry"] = r["head"].initial_carry(b)
            r["carry"], loss, _, _, _ = r["head"](carry=r["carry"], batch=b, return_keys=())
            (loss / batch).backward()
            r["opt"].step()
            r["emb"].step()
            r["opt"].zero_grad(set_to_none=True)
            r["emb"].zero_grad()
            return time.perf_counter() - t

        for k, b in enumerate(batches):
            order = ("version", "task") if k % 2 == 0 else ("task", "version")  # alternate who goes first
            for mode in order:
                dt = step(runs[mode], b)
                if k >= 3:  # warm-up steps dropped
                    runs[mode]["times"].append(dt)
    v, t = runs["version"]["times"], runs["task"]["times"]
    ratios = [b / a for a, b in zip(v, t)]
    raw = {"pairs": len(ratios), "version_median_s": statistics.median(v), "task_median_s": statistics.median(t),
           "task_over_version_median": statistics.median(ratios),
           "table_rows": {"version": int(meta["num_puzzle_identifiers"]), "task": int(meta["counts"]["tasks"]) + 1}}
    text = (f"| mode | table rows | step, median of {len(v)} (s) |\n|---|---|---|\n"
            f"| version | {raw['table_rows']['version']:,} | {raw['version_median_s']:.4f} |\n"
            f"| task | {raw['table_rows']['task']:,} | {raw['task_median_s']:.4f} |\n\n"
            f"task / version step time, median of the per-pair ratios: {raw['task_over_version_median']:.3f}\n")
    return text, raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="Results path without suffix (.md and .json written).")
    ap.add_argument("--pairs", type=int, default=40, help="Paired training steps for the step-time part.")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    from ttt_cpu import stamp
    torch.set_num_threads(args.threads)
    info = stamp(["bench_puzzle_table.py", *(sys.argv[1:] if argv is None else argv)])
    t0 = time.time()
    mem, mem_raw = memory_table()
    print(mem, flush=True)
    steps, step_raw = paired_step_times(args.pairs)
    print(steps, flush=True)
    text = (f"# Puzzle-embedding table: version vs task mode\n\ncommit `{info['commit']}`"
            f"{' (dirty tree)' if info['dirty'] else ''}, started {info['started']}\n\ncommand: `{info['command']}`\n\n"
            f"hardware: {info['cpu']}, {info['cores']} cores, load average at start {info['load_at_start']}, torch "
            f"threads {args.threads}\n\n## Memory, ARC width 512\n\n{mem}\n## Training step time, TTT CPU model "
            f"(benchmarks/ttt_cpu.py CPU_ARCH, batch 32), paired\n\n{steps}\ntotal {time.time() - t0:.0f} s\n")
    if args.out:
        from arcsolver.runtime.jsonio import atomic_write_bytes, write_json
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out.with_suffix(".json"), {**info, "memory": mem_raw, "step_time": step_raw}, indent=True)
        atomic_write_bytes(args.out.with_suffix(".md"), text.encode())
        print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
