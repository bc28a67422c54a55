"""How `prepare` and training scale with the number of tasks (issue 23): generated tasks x augmentations.

For each task count N: `arcsolver generate` makes N tasks (all 35 families, grids <= 12; a folder already in --work is
reused), then, each in a fresh process: `arcsolver prepare arc --train GEN --eval <bundled tasks> --num-aug A` (wall
time, peak RSS of the process by GNU time, disk, and the size of the files that grow with N), and a short
`arcsolver train --preset tiny-cpu --set arch.puzzle_emb_mode=task` on it (its checkpoint size).

Then one process holds a training run of every N side by side (the real `_build_run` / `_train_step` / `_save` of
training/train.py) and measures, alternating between the Ns so that the machine's load falls on all alike: loader
start-up (open the dataset, first batch), the train step on the same batch (the smallest N's first batch: its task
rows exist in every table), and checkpoint save time. Then `finetune` (1 + 1 steps on the bundled tasks) and
`predict` (2 versions of the bundled tasks) from each N's checkpoint, alternating, wall time of the whole command:
their start-up, since the work itself is the same at every N.

`--kill-resume`: then the largest N's prepare again, SIGKILLed once half its chunks are on disk, the same command
re-run, and every file compared (sha256) with the uninterrupted prepare's.

    python benchmarks/bench_scale.py --tasks 1000,10000,100000 --num-aug 1000 --kill-resume \
        --work /tmp/bench-scale --out runs/results/bench_scale.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
BUNDLED = REPO / "arcsolver" / "data" / "bundled"
ENV = dict(os.environ, OMP_NUM_THREADS="1")
TASK_MODE = ["--set", "arch.puzzle_emb_mode=task"]


def cli(args: list[str]) -> float:
    """Wall seconds of `python -m arcsolver.cli ARGS` in its own process (exits on failure)."""
    t = time.perf_counter()
    r = subprocess.run([PY, "-m", "arcsolver.cli", *args], capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"failed: arcsolver {' '.join(args)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


def prepare_cmd(gen: Path, data: Path, num_aug: int) -> list[str]:
    return [PY, "-m", "arcsolver.cli", "prepare", "arc", "--train", str(gen), "--eval", str(BUNDLED), "--num-aug",
            str(num_aug), "--canvas", "30", "--out", str(data)]


def timed_prepare(gen: Path, data: Path, num_aug: int) -> tuple[float, float]:
    """(wall seconds, peak RSS GB) of `arcsolver prepare arc` in its own process (GNU time's %M)."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *prepare_cmd(gen, data, num_aug)], capture_output=True,
                       text=True, env=ENV)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"prepare failed:\n{r.stderr[-2000:]}")
    return wall, int(r.stderr.strip().splitlines()[-1]) / 1e6


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def digests(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 24), b""):
                    h.update(block)
            out[str(p.relative_to(folder))] = h.hexdigest()
    return out


def generated(work: Path, n: int) -> Path:
    gen = work / f"gen-{n}"
    if gen.is_dir() and len(list(gen.glob("*.json"))) == n:
        return gen
    shutil.rmtree(gen, ignore_errors=True)
    cli(["generate", "--families", "all", "--tasks-per-family", str(-(-n // 35)), "--max-size", "12", "--seed", "0",
         "--out", str(gen)])
    for extra in sorted(gen.glob("*.json"))[n:]:  # exactly n tasks
        extra.unlink()
    return gen


# ----------------------------------------------------------------------------------------------------------------
# the side-by-side probe (run in its own process: python bench_scale.py --probe JSON)


def probe(datas: list[str], work: Path, reps: int) -> dict:
    import torch
    from arcsolver.data.loader import ArcSource, PuzzleLoader
    from arcsolver.training import train as T
    from arcsolver.training.config import build_config
    torch.set_num_threads(1)
    runs = []
    for i, d in enumerate(datas):
        cfg = build_config("tiny-cpu", ["arch.puzzle_emb_mode=task"], data=d, out=str(work / f"probe-{i}"))
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        run, _ = T._build_run(cfg, cpu=True, resume=None, init_weights=None, freeze_model=False, quiet=True,
                              extra_config=None)
        runs.append(run)
    batch = next(iter(runs[0].loader))
    loop = SimpleNamespace(sched=SimpleNamespace(warmup=2, total=10 ** 6), step_times=[],
                           planner=SimpleNamespace(observe=lambda s: None))
    clock = SimpleNamespace(now=time.perf_counter)

    def step(run) -> float:
        T._train_step(run, loop, iter([batch]), clock)
        return loop.step_times[-1]

    for run in runs:  # warm-up: first-call costs (allocations, kernels) out of the timings
        step(run), step(run)
    steps = [[] for _ in runs]
    for _ in range(reps):
        for i, run in enumerate(runs):
            steps[i].append(step(run))
    starts = [[] for _ in runs]
    for _ in range(3):
        for i, d in enumerate(datas):
            t = time.perf_counter()
            loader = PuzzleLoader(ArcSource(d), "train", global_batch_size=8, seed=0)
            loader.train_batch(0)
            starts[i].append(time.perf_counter() - t)
    saves, sizes = [[] for _ in runs], [0] * len(runs)
    for _ in range(2):
        for i, run in enumerate(runs):
            step(run)  # a new step: a new checkpoint folder
            t = time.perf_counter()
            path = T._save(run)
            saves[i].append(time.perf_counter() - t)
            sizes[i] = du(path)
    return {"step_s": [statistics.median(s) for s in steps], "loader_s": [statistics.median(s) for s in starts],
            "save_s": [min(s) for s in saves], "ckpt_bytes": sizes, "table_rows": [
                int(r.model.model.inner.puzzle_emb.tasks.weights.shape[0]) for r in runs]}


# ----------------------------------------------------------------------------------------------------------------


def kill_resume(gen: Path, reference: Path, work: Path, num_aug: int) -> dict:
    """SIGKILL the prepare of `gen` once half its chunks are written, run the same command again, compare files."""
    data = work / "data-resumed"
    shutil.rmtree(data, ignore_errors=True)
    partial = data.with_name(f".{data.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    n_chunks = json.loads((reference / "meta.json").read_text())["counts"]["tasks"] // 1000
    t = time.perf_counter()
    proc = subprocess.Popen(prepare_cmd(gen, data, num_aug), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV)
    while len(list(partial.glob("chunk-*/chunk.json"))) < n_chunks // 2:
        if proc.poll() is not None:
            raise SystemExit("prepare ended before it could be killed")
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_s = time.perf_counter() - t
    done = len(list(partial.glob("chunk-*/chunk.json")))
    t = time.perf_counter()
    r = subprocess.run(prepare_cmd(gen, data, num_aug), capture_output=True, text=True, env=ENV)
    resume_s = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"resumed prepare failed:\n{r.stderr[-2000:]}")
    a, b = digests(reference), digests(data)
    same = a == b
    shutil.rmtree(data, ignore_errors=True)
    return {"killed_after_s": killed_s, "chunks_done": done, "chunks": n_chunks + 1, "resume_s": resume_s,
            "files": len(a), "identical": same, "resume_note": r.stderr.strip().splitlines()[0] if r.stderr else ""}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="1000,10000", help="comma-separated task counts, smallest first")
    ap.add_argument("--num-aug", type=int, default=1000)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20, help="paired train steps per task count")
    ap.add_argument("--kill-resume", action="store_true", help="also SIGKILL + resume the largest prepare")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (generated tasks there are reused)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report (Markdown) here")
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        spec = json.loads(args.probe)
        print(json.dumps(probe(spec["datas"], Path(spec["work"]), spec["reps"])))
        return 0
    counts = [int(x) for x in args.tasks.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    loads = [os.getloadavg()[0]]
    rows = []
    for n in counts:
        gen, data, run = generated(work, n), work / f"data-{n}", work / f"run-{n}"
        shutil.rmtree(data, ignore_errors=True)
        wall, peak_gb = timed_prepare(gen, data, args.num_aug)
        loads.append(os.getloadavg()[0])
        meta = json.loads((data / "meta.json").read_text())
        versions = int(meta["counts"]["versions"])
        shutil.rmtree(run, ignore_errors=True)
        cli(["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(run), "--steps",
             str(args.train_steps), "--cpu", *TASK_MODE, "--set", "eval_max_batches=1",
             "--set", "checkpoint_interval_steps=0"])
        ck = run / (run / "latest").read_text().strip()
        rows.append({"tasks": n, "all_tasks": int(meta["counts"]["tasks"]), "versions": versions, "prepare_s": wall,
                     "per_version_us": 1e6 * wall / versions, "peak_gb": peak_gb, "disk": du(data),
                     "tasks_json": (data / "tasks.json").stat().st_size,
                     "puzzle_rows": (ck / "puzzle_rows.json").stat().st_size})
    out = subprocess.run([PY, __file__, "--probe", json.dumps({"datas": [str(work / f"data-{n}") for n in counts],
                                                                "work": str(work), "reps": args.reps})],
                         capture_output=True, text=True, env=ENV)
    if out.returncode != 0:
        raise SystemExit(f"probe failed:\n{out.stderr[-3000:]}")
    side = json.loads(out.stdout.strip().splitlines()[-1])
    loads.append(os.getloadavg()[0])
    ft, pr = [[] for _ in counts], [[] for _ in counts]
    for _ in range(2):
        for i, n in enumerate(counts):
            run = work / f"run-{n}"
            ft_out = work / f"ft-{n}"
            shutil.rmtree(ft_out, ignore_errors=True)
            ft[i].append(cli(["finetune", "--from", str(run), "--tasks", str(BUNDLED), "--embed-steps", "1",
                              "--full-steps", "1", "--num-aug", "2", "--cpu", "--out", str(ft_out)]))
            pr[i].append(cli(["predict", "--checkpoint", str(run), "--tasks", str(BUNDLED), "--max-versions", "2",
                              "--batch-size", "8", "--cpu", "--out", str(work / f"sub-{n}.json"), "--overwrite"]))
    loads.append(os.getloadavg()[0])
    resume = kill_resume(generated(work, counts[-1]), work / f"data-{counts[-1]}", work, args.num_aug) \
        if args.kill_resume else None
    if resume:
        loads.append(os.getloadavg()[0])

    b = rows[0]
    sizes = ", ".join(f"{r['tasks']:,}" for r in rows)
    cmd = " ".join(sys.argv[1:])
    lines = [f"# bench_scale: prepare and task-mode training at {sizes} tasks x {args.num_aug} augmentations", "",
             f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"`python benchmarks/bench_scale.py {cmd}`; {os.cpu_count()} cores shared with other users (1-minute load during the run: "
             f"{', '.join(f'{x:.1f}' for x in loads)}), one thread per process. Each prepare also reads the "
             f"{rows[0]['all_tasks'] - rows[0]['tasks']} bundled tasks as --eval (so that predict has test "
             "inputs).", "",
             "## prepare (one process each, in order)", "",
             "| tasks | versions | prepare | us / version (ratio) | peak RSS | disk | bytes / version | tasks.json |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tasks']:,} | {r['versions']:,} | {r['prepare_s']:.1f} s | {r['per_version_us']:.2f} "
                     f"({r['per_version_us'] / b['per_version_us']:.2f}) | {r['peak_gb']:.2f} GB | "
                     f"{r['disk'] / 1e6:.1f} MB | {r['disk'] / r['versions']:.1f} | {r['tasks_json'] / 1e6:.2f} MB |")
    lines += ["", "## training in `task` mode, tiny-cpu preset (one process, the task counts alternated)", "",
              f"Train step: median of {args.reps} steps on the same batch. Loader start-up: open the dataset and "
              "paint the first batch (median of 3). Checkpoint: save time (best of 2), size; puzzle_rows.json is "
              "the checkpoint's name -> row map (task ids).", "",
              "| tasks | table rows | loader start-up (ratio) | train step (ratio) | checkpoint save (ratio) | "
              "checkpoint size | puzzle_rows.json |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(f"| {r['tasks']:,} | {side['table_rows'][i]:,} | {side['loader_s'][i] * 1e3:.0f} ms "
                     f"({side['loader_s'][i] / side['loader_s'][0]:.2f}) | {side['step_s'][i] * 1e3:.1f} ms "
                     f"({side['step_s'][i] / side['step_s'][0]:.2f}) | {side['save_s'][i] * 1e3:.0f} ms "
                     f"({side['save_s'][i] / side['save_s'][0]:.2f}) | {side['ckpt_bytes'][i] / 1e6:.1f} MB | "
                     f"{r['puzzle_rows'] / 1e6:.2f} MB |")
    lines += ["", "## finetune and predict from each checkpoint (whole command, best of 2, alternated)", "",
              "finetune: `--tasks <bundled> --embed-steps 1 --full-steps 1 --num-aug 2`; predict: `--tasks <bundled> "
              "--max-versions 2 --batch-size 8`. The work is the same at every task count, so the difference is "
              "start-up.", "",
              "| tasks | finetune (ratio) | predict (ratio) |", "|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(f"| {r['tasks']:,} | {min(ft[i]):.1f} s ({min(ft[i]) / min(ft[0]):.2f}) | {min(pr[i]):.1f} s "
                     f"({min(pr[i]) / min(pr[0]):.2f}) |")
    if resume:
        lines += ["", f"## SIGKILL half-way through the {counts[-1]:,}-task prepare, then the same command", "",
                  f"Killed {resume['killed_after_s']:.0f} s in, with {resume['chunks_done']} of {resume['chunks']} "
                  f"chunks on disk; the re-run took {resume['resume_s']:.0f} s (\"{resume['resume_note']}\") and its "
                  f"{resume['files']} files are {'byte-identical' if resume['identical'] else 'NOT identical'} "
                  "(sha256) to the uninterrupted prepare's."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
