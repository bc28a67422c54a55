"""Soak test for multi-process runs: two 2-process `accelerate launch` trainings at once, round after round.

A flaky rank shows up as one failed launch in dozens, which the test suite (one launch per test) catches only now
and then in CI. This prints each round's exit codes and, for a failure, the failing rank's own last lines (what it
said before torchrun's traceback). Run it beside CPU hogs to reproduce a loaded CI box:

    python -c "while True: pass" & python -c "while True: pass" &
    python benchmarks/two_process_soak.py --rounds 25

Run it from the checkout whose code you measure: `python -m arcsolver.cli` in the ranks imports `arcsolver` from the
current directory before PYTHONPATH. Results and the cause found with it: runs/results/two-process-soak.md.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import BUNDLED, free_port, said_before_the_launcher  # noqa: E402

from arcsolver.data.arc_dataset import TaskSet, build  # noqa: E402
from arcsolver.data.arc_tasks import load_tasks  # noqa: E402


def launch(data: Path, out: Path, extra: list[str], env: dict) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "arcsolver.cli", "train", "--preset", "tiny-cpu",
           "--data", str(data), "--out", str(out), "--cpu", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def rank_error(stderr: str) -> str:
    """The last four lines the ranks said (progress bars left out)."""
    said = [x for x in said_before_the_launcher(stderr).splitlines() if x.strip() and "it/s" not in x]
    return "\n".join(said[-4:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--keep", metavar="DIR", help="write each failed launch's whole stderr here")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    a, b = root / "a", root / "b"
    build(a, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=20, seed=1, canvas=10)
    build(b, [TaskSet("b", load_tasks(BUNDLED)[:6], test_set=True)], num_aug=6, seed=3, canvas=8)
    # PYTHONFAULTHANDLER: a rank killed by a signal (SIGABRT from std::terminate) prints every thread's Python stack.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", HF_HOME=str(root / "hf"),
               PYTHONFAULTHANDLER="1")
    failures = 0
    for i in range(args.rounds):
        runs = {"checkpointing run": launch(a, root / f"ra{i}", ["--steps", "6", "--batch-size", "16", "--set",
                                                                  "checkpoint_interval_steps=4", "--time-budget",
                                                                  "10m"], env),
                "micro-batched run": launch(b, root / f"rb{i}", ["--steps", "3", "--batch-size", "8",
                                                                  "--device-batch-size", "2"], env)}
        codes = []
        for name, p in runs.items():
            _, err = p.communicate(timeout=600)
            codes.append(p.returncode)
            if p.returncode:
                failures += 1
                print(f"round {i} {name}: exit {p.returncode}\n{rank_error(err)}", flush=True)
                if args.keep:
                    Path(args.keep).mkdir(parents=True, exist_ok=True)
                    (Path(args.keep) / f"round{i}-{name.split()[0]}.txt").write_text(err)
        print(f"round {i}: exit codes {codes}", flush=True)
    print(f"failed launches: {failures} of {2 * args.rounds}")


if __name__ == "__main__":
    main()
