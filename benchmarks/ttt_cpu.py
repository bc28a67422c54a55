"""Offline test-time-training benchmark on a CPU: does fine-tuning teach a TRM tasks it never saw, and which recipe?

1. `arcsolver generate` makes three disjoint sets: pretraining tasks of families A, *new* tasks of the same
   families A (split i: new rules of known kinds, new grids) and tasks of held-out families B (split ii: kinds of
   rule never seen in pretraining, the honest figure for truly new concepts).
2. A CPU-sized TRM (the mlp_t token mixer at width 64, as the CPU sanity presets) is pretrained on A for a fixed
   number of steps.
3. Every recipe variant fine-tunes that same checkpoint on each split for a fixed number of steps (never a time
   budget: reproducible, and independent of the planner) and predicts with voting; pass@2 per task is scored
   against the known test outputs. "before" is the same pipeline with learning rate 0: the new rows sit at the
   mean of the trained rows and nothing learns.

Variants (one row each, same run, same checkpoint): embeddings-only, full, embeddings-then-full; EMA kept vs off
during fine-tuning; all new tasks jointly vs one model per task (same total steps); --num-aug 8 vs 32.
Every row is written to the results as soon as it is done (an interrupted run keeps its finished rows).

    python benchmarks/ttt_cpu.py                 # the full run (runs/ttt-cpu.sh; ~40 min on 2 idle cores)
    python benchmarks/ttt_cpu.py --quick         # smoke test: tiny model, a few tasks, every row, < 1 min
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Families A: rules a small TRM learns in minutes on a CPU (per-cell colour rules, lines, gravity, frames, flips).
FAMILIES_A = ["flip", "recolour_map", "colour_background", "remove_colour", "invert", "gravity", "lines_cross",
              "frame"]
# Families B: never seen in pretraining.
FAMILIES_B = ["lines_to_border", "hollow", "transpose", "diagonals"]


@dataclass(frozen=True)
class Scale:
    families_a: list[str]
    families_b: list[str]
    pre_tasks: int  # pretraining tasks per family A
    new_tasks: int  # fine-tuning tasks per family, each split
    max_size: int
    pre_num_aug: int
    pre_steps: int
    embed_steps: int  # the embeddings-then-full recipe's first phase
    steps: int  # total fine-tuning steps of every variant
    aug: int  # --num-aug of the base recipe
    aug_more: int  # the --num-aug variant
    arch: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


CPU_ARCH = {"hidden_size": 64, "num_heads": 2, "expansion": 2.0, "L_layers": 2, "H_cycles": 2, "L_cycles": 2,
            "mlp_t": True, "pos_encodings": "none", "puzzle_emb_len": 2, "puzzle_emb_ndim": 128, "halt_max_steps": 4,
            "halt_exploration_prob": 0.1, "forward_dtype": "float32"}
# Measured on this shared machine before choosing (8 families A, 256 tasks, canvas 6, one thread): batch 32 learns
# as much per second as 64 at half the step time; the mlp_t mixer and attention (RoPE, 4 heads) at width 64 were level
# per step, mlp_t a little faster per step; train token/exact accuracy 0.71/0.01 at step 640, 0.83/0.17 at 1360.
# URM at the same size for the side-by-side (issue 24): its blocks are RoPE attention (no MLP token mixer), the
# same width, layers, cycles, supervision steps and puzzle embedding (2 rows of 64 = URM's ceil(128 / width)).
URM_CPU_ARCH = {**{k: v for k, v in CPU_ARCH.items() if k != "mlp_t"}, "name": "urm", "pos_encodings": "rope",
                "no_ACT_continue": True}
CPU_TRAIN = {"global_batch_size": 32, "lr": 1e-3, "lr_min_ratio": 1.0, "lr_warmup_steps": 30, "weight_decay": 0.1,
             "puzzle_emb_lr": 1e-1, "puzzle_emb_weight_decay": 0.1, "ema": True, "ema_rate": 0.99, "log_every": 50}

FULL = Scale(FAMILIES_A, FAMILIES_B, pre_tasks=32, new_tasks=3, max_size=6, pre_num_aug=1, pre_steps=2400,
             embed_steps=40, steps=160, aug=8, aug_more=32, arch=CPU_ARCH, train=CPU_TRAIN)
QUICK = Scale(["flip", "recolour_map"], ["invert"], pre_tasks=3, new_tasks=2, max_size=6, pre_num_aug=1,
              pre_steps=2, embed_steps=1, steps=2, aug=1, aug_more=2,
              arch={**CPU_ARCH, "hidden_size": 32, "L_layers": 1, "H_cycles": 1, "L_cycles": 1, "puzzle_emb_ndim": 64},
              train={**CPU_TRAIN, "global_batch_size": 8, "lr_warmup_steps": 1})


@dataclass(frozen=True)
class Variant:
    name: str
    embed: str  # "E" (the base split), "T" (all steps) or "0"
    ema: bool | None = False  # False: off during fine-tuning; None: as the checkpoint (kept)
    more_aug: bool = False
    learn: bool = True


VARIANTS = [
    Variant("before (rows at the mean, no learning)", "E", learn=False),
    Variant("embeddings-only", "T"),
    Variant("full", "0"),
    Variant("embeddings-then-full", "E"),
    Variant("embeddings-then-full, EMA kept", "E", ema=None),
    Variant("embeddings-then-full, --num-aug more", "E", more_aug=True),
]


def stamp(argv: list[str]) -> dict:
    def git(*a: str) -> str:
        r = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else "?"
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "command": " ".join(shlex.quote(a) for a in argv), "cpu": cpu, "cores": os.cpu_count(),
            "load_at_start": [round(x, 1) for x in os.getloadavg()], "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def make_sets(scale: Scale, work: Path, seed: int) -> dict[str, Path]:
    """Pretraining tasks, split (i) and split (ii); (i) is drawn with another seed and anything equal to a
    pretraining task is dropped (never happens in practice; checked anyway)."""
    from arcsolver.data.generate import generate
    sets = {"pre": (scale.families_a, scale.pre_tasks, seed), "i": (scale.families_a, scale.new_tasks, seed + 1),
            "ii": (scale.families_b, scale.new_tasks, seed + 2)}
    paths = {}
    for key, (fams, n, s) in sets.items():
        paths[key] = work / "tasks" / key
        generate(",".join(fams), n, scale.max_size, s, paths[key])
    pre = {p.read_bytes() for p in paths["pre"].iterdir()}
    for p in list(paths["i"].iterdir()):
        if p.read_bytes() in pre:
            p.unlink()
    return paths


def pretrain(scale: Scale, sets: dict[str, Path], work: Path, seed: int) -> dict:
    from arcsolver.training.config import build_config
    from arcsolver.data.prepare import prepare_arc
    from arcsolver.training.train import train
    t = time.time()
    prepare_arc(work / "pre-data", [str(sets["pre"])], [], num_aug=scale.pre_num_aug, seed=seed,
                canvas=scale.max_size)
    overrides = [f"{k}={_toml(v)}" for k, v in scale.train.items()]
    overrides += [f"arch.{k}={_toml(v)}" for k, v in scale.arch.items()]
    cfg = build_config(None, overrides + [f"max_steps={scale.pre_steps}", f"seed={seed}"],
                       data=str(work / "pre-data"), out=str(work / "pre"))
    res = train(cfg, cpu=True, quiet=True, final_eval=False)
    return {"checkpoint": str(res.checkpoint), "steps": res.steps, "seconds": time.time() - t,
            "train_accuracy": _last_train_metric(work / "pre")}


def _toml(v) -> str:
    import json
    return json.dumps(v)  # JSON scalars are TOML literals (true, 1e-3, "none")


def _last_train_metric(run: Path) -> dict:
    import orjson
    rows = [orjson.loads(line) for line in (run / "metrics.jsonl").read_bytes().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == "train"]
    return {k: rows[-1][k] for k in ("accuracy", "exact_accuracy")} if rows else {}


def run_variant(v: Variant, scale: Scale, ckpt: str, tasks: Path, out: Path, seed: int) -> dict:
    from arcsolver.training.finetune import finetune
    from arcsolver.runtime.deadline import Deadline
    from arcsolver.runtime.jsonio import read_json
    from arcsolver.inference.score import load_solutions_any, score_submission
    e = {"E": scale.embed_steps, "T": scale.steps, "0": 0}[v.embed]
    f = scale.steps - e
    if not v.learn:
        e, f = 1, 0
    kwargs = dict(deadline=Deadline.after(10 ** 6), predict_after=True,
                  num_aug=scale.aug_more if v.more_aug else scale.aug, embed_steps=e, full_steps=f, ema=v.ema,
                  seed=seed, cpu=True, quiet=True)
    if not v.learn:
        kwargs["overrides"] = ["lr=0.0", "puzzle_emb_lr=0.0"]  # the whole pipeline, nothing learns
    if v.ema is None:
        kwargs["overrides"] = ["ema_rate=0.999"]  # as the paper's checkpoints: what "kept" means in practice
    t = time.time()
    s = finetune(ckpt, str(tasks), out, **kwargs)
    wall = time.time() - t
    res = score_submission(read_json(s["submission"]), load_solutions_any(str(tasks)))
    return {"variant": v.name, "tasks": res["n_tasks"], "pass@2": res["per_task"]["pass@2"],
            "pass@1": res["per_task"]["pass@1"], "solved": res["solved_outputs"]["pass@2"],
            "embed_steps": s["embed_steps"], "full_steps": s["full_steps"], "num_aug": kwargs["num_aug"],
            "seconds": wall}


def table(rows: list[dict]) -> str:
    lines = ["| split | variant | pass@2 | solved | steps (emb + full) | --num-aug | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['split']} | {r['variant']} | {100 * r['pass@2']:.1f}% | {r['solved']}/{r['tasks']} | "
                     f"{r['embed_steps']} + {r['full_steps']} | {r['num_aug']} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def write_results(path: Path, info: dict, rows: list[dict], done: bool) -> None:
    from arcsolver.runtime.jsonio import atomic_write_bytes, write_json
    write_json(path.with_suffix(".json"), {**info, "rows": rows, "complete": done}, indent=True)
    s = info["stamp"]
    pre = info.get("pretrain", {})
    text = (f"# TTT CPU benchmark{'' if done else ' (INCOMPLETE: interrupted)'}\n\n"
            f"commit `{s['commit']}`{' (dirty tree)' if s['dirty'] else ''}, started {s['started']}\n\n"
            f"command: `{s['command']}`\n\n"
            f"hardware: {s['cpu']}, {s['cores']} cores, load average at start {s['load_at_start']}, "
            f"torch threads {info['threads']}\n\n"
            f"scale: {info['scale']}\n\n"
            f"pretraining: {pre.get('steps', '?')} steps in {pre.get('seconds', 0):.0f} s, last train metrics "
            f"{pre.get('train_accuracy', {})}\n\n"
            f"split i: {info.get('split_sizes', {}).get('i', '?')} new tasks of families A; "
            f"split ii: {info.get('split_sizes', {}).get('ii', '?')} tasks of held-out families B\n\n"
            + table(rows) + f"\n\ntotal wall {info.get('total_seconds', 0):.0f} s\n")
    atomic_write_bytes(path.with_suffix(".md"), text.encode())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Smoke test: tiny model, a few tasks, every row.")
    ap.add_argument("--work", type=Path, default=None, help="Working folder (default out/ttt-cpu[-quick]).")
    ap.add_argument("--results", type=Path, default=None,
                    help="Results path without suffix (.md and .json are written; default WORK/results).")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine two threads spin against each other and run ~10x "
                         "slower than one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", choices=["trm", "urm"], default="trm",
                    help="urm: the same benchmark with URM at the same size (URM_CPU_ARCH)")
    ap.add_argument("--variants", default="all", metavar="I,J",
                    help="rows of VARIANTS to run, by index (default all; 0,3: before and the default recipe)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    scale = QUICK if args.quick else FULL
    if args.model == "urm":
        scale = dataclasses.replace(scale, arch={**URM_CPU_ARCH, **{k: v for k, v in scale.arch.items()
                                                                     if k in ("hidden_size", "L_layers", "H_cycles",
                                                                              "L_cycles", "puzzle_emb_ndim")}})
    chosen = list(range(len(VARIANTS))) if args.variants == "all" else [int(i) for i in args.variants.split(",")]
    work = args.work or REPO / "out" / ("ttt-cpu-quick" if args.quick else "ttt-cpu")
    if work.exists():
        import shutil
        shutil.rmtree(work)
    results = args.results or work / "results"
    t0 = time.time()
    info = {"stamp": stamp([Path(sys.argv[0]).name if argv is None else "ttt_cpu.py", *(sys.argv[1:] if argv is None
                                                                                          else argv)]),
            "threads": args.threads, "model": args.model, "scale": dataclasses.asdict(scale)}
    sets = make_sets(scale, work, args.seed)
    info["split_sizes"] = {k: len(list(p.iterdir())) for k, p in sets.items()}
    print(f"tasks: {info['split_sizes']}", flush=True)
    info["pretrain"] = pretrain(scale, sets, work, args.seed)
    print(f"pretrained {info['pretrain']['steps']} steps in {info['pretrain']['seconds']:.0f} s "
          f"({info['pretrain']['train_accuracy']})", flush=True)
    rows: list[dict] = []
    try:
        for split in ("i", "ii"):
            for k, v in enumerate(VARIANTS):
                if k not in chosen:
                    continue
                r = run_variant(v, scale, info["pretrain"]["checkpoint"], sets[split], work / "ft" / f"{split}-{k}",
                                args.seed)
                rows.append({"split": split, **r})
                info["total_seconds"] = time.time() - t0
                write_results(results, info, rows, done=False)
                print(f"split {split:2s} {v.name:45s} pass@2 {100 * r['pass@2']:5.1f}% ({r['solved']}/{r['tasks']}) "
                      f"steps {r['embed_steps']}+{r['full_steps']} {r['seconds']:.0f} s", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the finished rows are in the results", flush=True)
        return 130
    info["total_seconds"] = time.time() - t0
    write_results(results, info, rows, done=True)
    print(table(rows))
    print(f"total {info['total_seconds']:.0f} s; results in {results.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
