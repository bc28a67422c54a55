"""The TTT CPU benchmark (benchmarks/ttt_cpu.py) side by side in `version` and `task` puzzle-embedding mode.

Same generated tasks, same seed, same steps, same model and recipe as ttt_cpu.py; what changes is
`arch.puzzle_emb_mode` and, in the third arm, the amount of pretraining data:
  * version, N tasks: one row per augmented version (the reference's table);
  * task, N tasks: one row per task + the augmentation code (dihedral row + permuted colour code);
  * task, 10N tasks: ten times more generated tasks at the same table memory as the version arm (pretraining
    uses 9 augmentations + the original per task, so the version table has 10 rows per task and the task table of
    10N tasks has as many rows), the same number of pretraining steps.
Each arm pretrains its own checkpoint, then fine-tunes it on split (i) (new tasks of the pretraining families) and
split (ii) (held-out families) with the default recipe (embeddings-then-full, EMA kept at 0.999: the ttt_cpu row
"embeddings-then-full, EMA kept") and with nothing learning ("before": new rows at the mean of the trained rows).
Reported per arm: pass@2 per split, puzzle-table bytes (from the checkpoint), the median training step time of the
pretraining (arms run one after another on a shared machine: the paired step-time comparison is in
benchmarks/bench_puzzle_table.py), and the pretraining's last train accuracy. Rows are written as they finish.

    python benchmarks/ttt_modes.py --pre-steps 1200 --results runs/results/ttt-modes    # runs/ttt-modes.sh
    python benchmarks/ttt_modes.py --quick                                               # smoke test, < 2 min
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ttt_cpu import FULL, QUICK, Scale, Variant, _last_train_metric, _toml, run_variant, stamp  # noqa: E402

PRE_NUM_AUG = 9  # 10 versions per task: the version table of N tasks = the task table of 10N tasks
MORE = 10
RECIPE = Variant("embeddings-then-full, EMA kept", "E", ema=None)  # the default recipe (config.FinetuneSettings)
BEFORE = Variant("before (rows at the mean, no learning)", "E", learn=False)


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    mode: str
    tasks_factor: int  # x scale.pre_tasks per family


ARMS = [Arm("version", "version", 1), Arm("task", "task", 1), Arm(f"task, {MORE}x tasks", "task", MORE)]


def make_sets(scale: Scale, work: Path, seed: int) -> dict[str, Path]:
    """The 10x pretraining set, its first tenth (the same tasks ttt_cpu.py pretrains on: a family's task k does not
    depend on how many are drawn), and splits (i) and (ii), (i) drawn with another seed minus anything equal to a
    pretraining task, so every arm is scored on the same tasks."""
    from arcsolver.data.generate import generate
    big = work / "tasks" / "pre-more"
    generate(",".join(scale.families_a), scale.pre_tasks * MORE, scale.max_size, seed, big)
    small = work / "tasks" / "pre"
    small.mkdir(parents=True)
    for p in big.iterdir():
        if int(p.stem.rsplit("-", 1)[1]) < scale.pre_tasks:
            shutil.copyfile(p, small / p.name)
    paths = {"pre": small, "pre-more": big, "i": work / "tasks" / "i", "ii": work / "tasks" / "ii"}
    generate(",".join(scale.families_a), scale.new_tasks, scale.max_size, seed + 1, paths["i"])
    generate(",".join(scale.families_b), scale.new_tasks, scale.max_size, seed + 2, paths["ii"])
    pre = {p.read_bytes() for p in big.iterdir()}
    for p in list(paths["i"].iterdir()):
        if p.read_bytes() in pre:
            p.unlink()
    return paths


def pretrain(arm: Arm, scale: Scale, tasks: Path, work: Path, seed: int) -> dict:
    from safetensors import safe_open
    from arcsolver.model import checkpoint
    from arcsolver.training.config import build_config
    from arcsolver.data.prepare import prepare_arc
    from arcsolver.training.train import train
    t = time.time()
    data = work / f"data-{arm.tasks_factor}x"
    if not data.exists():  # one prepared folder serves both modes (no rebuild to switch)
        prepare_arc(data, [str(tasks)], [], num_aug=PRE_NUM_AUG, seed=seed, canvas=scale.max_size)
    overrides = [f"{k}={_toml(v)}" for k, v in scale.train.items()]
    overrides += [f"arch.{k}={_toml(v)}" for k, v in {**scale.arch, "puzzle_emb_mode": arm.mode}.items()]
    run = work / f"pre-{arm.mode}-{arm.tasks_factor}x"
    cfg = build_config(None, overrides + [f"max_steps={scale.pre_steps}", f"seed={seed}"], data=str(data),
                       out=str(run))
    res = train(cfg, cpu=True, quiet=True, final_eval=False)
    ck = checkpoint.resolve(run)
    table = 0
    with safe_open(str(ck / "model.safetensors"), "pt") as f:
        for k in f.keys():
            if ".puzzle_emb." in k:
                x = f.get_tensor(k)
                table += x.numel() * x.element_size()
    steady = res.step_seconds[5:] or res.step_seconds
    return {"checkpoint": str(res.checkpoint), "steps": res.steps, "seconds": time.time() - t,
            "step_median_s": statistics.median(steady), "table_bytes": table,
            "tasks": len(list(tasks.glob("*.json"))), "train_accuracy": _last_train_metric(run)}


def table(rows: list[dict], arms: dict) -> str:
    lines = ["| arm (pretraining tasks) | puzzle table | pretrain step (median s) | pretrain train acc token / exact "
             "| split | before: pass@2 | after: pass@2 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        a = arms[r["arm"]]
        acc = a["train_accuracy"]
        lines.append(f"| {r['arm']} ({a['tasks']:,}) | {a['table_bytes'] / 1e3:,.1f} KB | {a['step_median_s']:.3f} | "
                     f"{acc.get('accuracy', 0):.2f} / {acc.get('exact_accuracy', 0):.2f} | {r['split']} | "
                     + (f"{r['before']['solved']}/{r['before']['tasks']} ({100 * r['before']['pass@2']:.1f}%)"
                        if r.get("before") else "-")
                     + (f" | {r['after']['solved']}/{r['after']['tasks']} ({100 * r['after']['pass@2']:.1f}%) |"
                        if r.get("after") else " | - |"))
    return "\n".join(lines)


def write_results(path: Path, info: dict, rows: list[dict], done: bool) -> None:
    from arcsolver.runtime.jsonio import atomic_write_bytes, write_json
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path.with_suffix(".json"), {**info, "rows": rows, "complete": done}, indent=True)
    s = info["stamp"]
    text = (f"# TTT CPU benchmark: puzzle_emb_mode version vs task{'' if done else ' (INCOMPLETE)'}\n\n"
            f"commit `{s['commit']}`{' (dirty tree)' if s['dirty'] else ''}, started {s['started']}\n\n"
            f"command: `{s['command']}`\n\n"
            f"hardware: {s['cpu']}, {s['cores']} cores, load average at start {s['load_at_start']}, "
            f"torch threads {info['threads']}\n\n"
            f"scale: {info['scale']}, pretraining --num-aug {PRE_NUM_AUG}; recipe after fine-tuning: "
            f"{RECIPE.name} ({info['scale']['embed_steps']} + {info['scale']['steps'] - info['scale']['embed_steps']}"
            f" steps, --num-aug {info['scale']['aug']})\n\n"
            f"split i: {info['split_sizes']['i']} new tasks of families A; split ii: {info['split_sizes']['ii']} "
            f"tasks of held-out families B\n\n" + table(rows, info.get("arms", {}))
            + f"\n\ntotal wall {info.get('total_seconds', 0):.0f} s\n")
    atomic_write_bytes(path.with_suffix(".md"), text.encode())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Smoke test: tiny model, a few tasks, every row.")
    ap.add_argument("--pre-steps", type=int, default=None, help="Pretraining steps of every arm (default: "
                    "ttt_cpu.py's).")
    ap.add_argument("--arms", default=",".join(str(i) for i in range(len(ARMS))),
                    help="Which arms, by index (0 version, 1 task, 2 task with 10x tasks).")
    ap.add_argument("--no-before", action="store_true", help="Skip the 'before' rows (nothing learns).")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    scale = QUICK if args.quick else FULL
    if args.pre_steps:
        scale = dataclasses.replace(scale, pre_steps=args.pre_steps)
    work = args.work or REPO / "out" / ("ttt-modes-quick" if args.quick else "ttt-modes")
    if work.exists():
        shutil.rmtree(work)
    results = args.results or work / "results"
    t0 = time.time()
    info = {"stamp": stamp(["ttt_modes.py", *(sys.argv[1:] if argv is None else argv)]), "threads": args.threads,
            "scale": dataclasses.asdict(scale), "arms": {}}
    sets = make_sets(scale, work, args.seed)
    info["split_sizes"] = {k: len(list(p.iterdir())) for k, p in sets.items()}
    print(f"tasks: {info['split_sizes']}", flush=True)
    rows: list[dict] = []
    try:
        for i in [int(x) for x in args.arms.split(",")]:
            arm = ARMS[i]
            pre = pretrain(arm, scale, sets["pre-more" if arm.tasks_factor > 1 else "pre"], work, args.seed)
            info["arms"][arm.name] = pre
            print(f"{arm.name}: pretrained {pre['steps']} steps in {pre['seconds']:.0f} s, table "
                  f"{pre['table_bytes']} B, step {pre['step_median_s']:.3f} s, {pre['train_accuracy']}", flush=True)
            for split in ("i", "ii"):
                row = {"arm": arm.name, "split": split}
                for key, v in (("before", BEFORE), ("after", RECIPE)):
                    if key == "before" and args.no_before:
                        continue
                    row[key] = run_variant(v, scale, pre["checkpoint"], sets[split],
                                           work / "ft" / f"{i}-{split}-{key}", args.seed)
                    print(f"  split {split:2s} {key:6s} pass@2 {100 * row[key]['pass@2']:5.1f}% "
                          f"({row[key]['solved']}/{row[key]['tasks']}) {row[key]['seconds']:.0f} s", flush=True)
                rows.append(row)
                info["total_seconds"] = time.time() - t0
                write_results(results, info, rows, done=False)
    except KeyboardInterrupt:
        print("interrupted: the finished rows are in the results", flush=True)
        return 130
    info["total_seconds"] = time.time() - t0
    write_results(results, info, rows, done=True)
    print(table(rows, info["arms"]))
    print(f"total {info['total_seconds']:.0f} s; results in {results.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
