"""GPU check: the gpu tests, then training throughput, memory and rollout speed on one GPU, printed as one table.

Run by `benchmarks/gpu_check.sh` (<= 5 minutes, unattended, after `make install TORCH=...` on a fresh GPU machine).
Rows:
  * tests: `pytest -m gpu tests/test_gpu.py` (passed / failed / skipped)
  * train, ARC and Sudoku paper configs: samples/s of ours and of the other side, by default bench_model.py's plain
    re-statement of the reference's formulation on the same weights ("ref-form"; `--reference DIR`: the official
    code, as `bench_model.py --reference`), steps alternating between the two so both see the same machine state;
    "other/ours, paired" is the median of the per-step ratios. MFU = achieved FLOP/s over the GPU's nominal dense
    peak for the dtype, FLOPs counted by torch's FlopCounterMode on one real training step (matrix products,
    attention included; flash attention's backward recomputation counts as done).
  * peak memory of one training step per device batch (torch.cuda.max_memory_allocated)
  * one fine-tune (full-model) training step at global batch 768 on the ARC config with the process capped to
    24 GB (`torch.cuda.set_per_process_memory_fraction`): does the Kaggle L4 plan fit. Run in a child process so
    the cap and any out-of-memory state stay there.
  * predict rollout: 16-step inference rollouts of the ARC config, samples/s.
  * kaggle recipe (training/recipes/kaggle-4xL4.toml), per process of the 4 the Kaggle machine runs: fine-tune
    steps/s at the recipe's settings (global batch 128 / 4 processes, H 4, L 4, 10 steps, the run's compile setting;
    the first step's excess over the others is the compile time the plan charges as finetune_plan.COMPILE_S) and
    predict rows/s (a batch of 256 / 4 rows, 10 steps). The figures the fine-tuning plan's constants are checked by.
The CPU-checkable parts (arguments, FLOP counting, MFU, the table) are tested in tests/test_gpu_check.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_model  # noqa: E402  (configs, batches, our train step, the other side, alternating timer)

# Nominal dense peaks (FLOP/s) from the vendors' data sheets: (bf16/fp16 tensor cores, fp32 without TF32).
PEAKS = {"H200": (989e12, 67e12), "H100 PCIe": (756e12, 51e12), "H100": (989e12, 67e12), "A100": (312e12, 19.5e12),
         "L40S": (362e12, 91.6e12), "L4": (121e12, 30.3e12), "A10G": (70e12, 31.2e12), "A10": (125e12, 31.2e12),
         "T4": (65e12, 8.1e12), "V100": (125e12, 15.7e12), "P100": (18.7e12, 9.3e12)}

DEFAULT_BATCH = {"arc": 96, "sudoku": 384}  # per device: the paper's global 768 over 8 and 2 GPUs
MEMORY_BATCHES = {"arc": (32, 64, 128), "sudoku": (128, 256, 512)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=6, help="timed steps per implementation (alternating)")
    ap.add_argument("--arc-batch", type=int, default=DEFAULT_BATCH["arc"], help="device batch, ARC config")
    ap.add_argument("--sudoku-batch", type=int, default=DEFAULT_BATCH["sudoku"], help="device batch, Sudoku config")
    ap.add_argument("--rollout-batch", type=int, default=256, help="batch of the predict rollout")
    ap.add_argument("--memory-cap-gb", type=float, default=24.0, help="cap for the fine-tune step (an L4: 24)")
    ap.add_argument("--finetune-batch", type=int, default=768)
    ap.add_argument("--finetune-preset", default="arc-agi-1", help=argparse.SUPPRESS)  # tests: a tiny preset
    ap.add_argument("--skip-tests", action="store_true", help="no pytest run")
    ap.add_argument("--reference", default=None, metavar="DIR",
                    help="time against the official TRM code in DIR (bench_model.py --reference) instead of the "
                    "re-statement")
    ap.add_argument("--tests-timeout", type=float, default=150.0, help="seconds for the gpu tests (then: timed out)")
    ap.add_argument("--only", choices=["finetune-step", "kaggle-recipe"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kaggle-processes", type=int, default=4, help="processes the Kaggle run splits the work over")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    for name in ("reps", "arc_batch", "sudoku_batch", "finetune_batch", "rollout_batch"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0")
    if args.memory_cap_gb <= 0 or args.tests_timeout <= 0:
        ap.error("--memory-cap-gb and --tests-timeout must be > 0")
    return args


# ---------------------------------------------------------------------------------------------------------------
# FLOPs and MFU


def _flop_mapping() -> dict:
    """CPU's attention kernels are absent from torch's FLOP registry: count them with the CUDA kernels' formulas."""
    import torch.utils.flop_counter as fc

    def as_is(f):
        def g(*a, **k):
            return f(*a, **k)
        g._get_raw = True  # already shape-wrapped
        return g
    aten = torch.ops.aten
    mapping = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = as_is(fc.sdpa_flop)
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = as_is(fc.sdpa_backward_flop)
    return mapping


def count_train_flops(cfg, batch: int, device: str = "cpu") -> int:
    """FLOPs of one training step of ours (forward of every cycle, backward of the last; bench_model's step)
    counted on a real step."""
    from torch.utils.flop_counter import FlopCounterMode
    head, b = _ours_on(dataclasses.replace(cfg, batch_size=batch), device)
    step = bench_model.our_train_step_fn(head, b)
    with FlopCounterMode(display=False, custom_mapping=_flop_mapping()) as counter:
        step()
    return int(counter.get_total_flops())


def nominal_peak(device_name: str, dtype: str) -> float | None:
    """The data-sheet peak for this GPU and dtype, None when the GPU is not in the table."""
    for key in sorted(PEAKS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key.lower() in device_name.lower():
            return PEAKS[key][0 if dtype in ("bfloat16", "float16") else 1]
    return None


def mfu(samples_per_s: float, flops_per_sample: float, peak: float | None) -> float | None:
    return None if not peak else samples_per_s * flops_per_sample / peak


# ---------------------------------------------------------------------------------------------------------------
# the table


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Markdown table; `columns` are (key, header); floats print with 3 significant digits, missing as '-'."""
    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v)
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


COLUMNS = [("check", "check"), ("config", "config"), ("batch", "device batch"), ("impl", "impl"),
           ("samples_s", "samples/s"), ("mfu", "MFU"), ("vs_ref", "other/ours, paired"), ("peak_gb", "peak GB"),
           ("result", "result")]


# ---------------------------------------------------------------------------------------------------------------
# measurements (device-agnostic: the CPU tests run them on a tiny config)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _ours_on(cfg, device: str):
    """bench_model's model of ours (seeded weights, non-zero puzzle table) and batch, on `device`."""
    head = bench_model.build_ours(cfg).to(device)
    return head, {k: v.to(device) for k, v in bench_model.make_batch(cfg).items()}


def _synced(fn, device: str):
    """`fn` followed by a device sync, so that bench_model's wall-clock timer measures the work, not the launch."""
    def run():
        fn()
        _sync(device)
    return run


def measure_train(cfg, batch: int, reps: int, device: str, other=None) -> dict:
    """Seconds per training step of ours and of the other side (bench_model's re-statement of the reference's
    formulation, or `bench_model.Reference(DIR)`), alternating step by step (bench_model.alternate), the paired
    ratio other/ours (bench_model.py --reference checks the two sides' outputs agree; not repeated here)."""
    cfg = dataclasses.replace(cfg, batch_size=batch)
    other = other or bench_model.Restatement()
    ours, b = _ours_on(cfg, device)
    theirs = other.build(cfg, ours)
    theirs = theirs.to(device) if hasattr(theirs, "to") else theirs
    fns = [_synced(bench_model.our_train_step_fn(ours, b), device), _synced(other.train_step_fn(theirs, b), device)]
    for f in fns:
        f()  # warm-up: allocator, kernel selection
    times = bench_model.alternate(fns, reps)
    return {"ours_s": statistics.median(times[0]), "ref_s": statistics.median(times[1]),
            "ratio": statistics.median(r / o for o, r in zip(times[0], times[1])), "label": other.label}


def measure_peak_memory(cfg, batch: int, device: str) -> float | None:
    """GB allocated at the peak of one training step of ours (None off CUDA)."""
    if not device.startswith("cuda"):
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    head, b = _ours_on(dataclasses.replace(cfg, batch_size=batch), device)
    bench_model.our_train_step_fn(head, b)()
    _sync(device)
    peak = torch.cuda.max_memory_allocated() / 1e9
    del head, b
    torch.cuda.empty_cache()
    return peak


@torch.inference_mode()
def measure_rollout(cfg, batch: int, device: str, steps: int = 16, reps: int = 2) -> float:
    """Samples/s of `steps`-step inference rollouts (what predict runs per batch:
    arcsolver.inference.rollout.rollout)."""
    from arcsolver.inference.rollout import rollout
    head, b = _ours_on(dataclasses.replace(cfg, batch_size=batch, halt_max_steps=steps), device)
    model = head.model.eval()
    rollout(model, b, steps)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        rollout(model, b, steps)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return batch / best


def paper_config(name: str, dtype: str):
    return dataclasses.replace(bench_model.config("c" if name == "arc" else "b"), forward_dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# sections


def run_gpu_tests(repo: Path, timeout_s: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rfs",
           str(repo / "tests" / "test_gpu.py")]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        done = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return {"check": "gpu tests", "result": f"timed out after {timeout_s:.0f} s "
                                                f"({done.count('.')} passed, {done.count('F')} failed so far)"}
    tail = [line for line in r.stdout.splitlines() if line.strip()][-1:] or ["no output"]
    if r.returncode not in (0, 5):
        print(r.stdout[-6000:], file=sys.stderr)
    return {"check": "gpu tests", "result": tail[0].strip("= ")}


def finetune_step_child(args: argparse.Namespace) -> dict:
    """One full-model training step at the fine-tune batch (finetune's full phase runs exactly this step), memory
    capped; run in a child process. Off CUDA (the CPU test) it runs uncapped and reports no memory."""
    import tempfile
    from arcsolver.data.arc_dataset import TaskSet, build
    from arcsolver.data.arc_tasks import load_tasks
    from arcsolver.training.config import build_config
    from arcsolver.training.train import train
    cuda = torch.cuda.is_available()
    if cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_cap_gb * 1e9 / total))
        torch.cuda.reset_peak_memory_stats()
    row = {"check": f"fine-tune step, memory capped to {args.memory_cap_gb:g} GB", "config": args.finetune_preset,
           "batch": args.finetune_batch, "impl": "ours"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        bundled = load_tasks(HERE.parent / "arcsolver" / "data" / "bundled")
        build(data, [TaskSet("bundled", bundled, test_set=True)], num_aug=20, seed=0, canvas=30)
        cfg = build_config(args.finetune_preset, ["max_steps=2", f"global_batch_size={args.finetune_batch}",
                                                  "log_every=1", "eval_interval_steps=0", "eval_interval_epochs=0",
                                                  "compile=false"], data=str(data), out=str(Path(tmp) / "run"))
        try:
            res = train(cfg, cpu=not cuda, quiet=True, final_eval=False)
        except torch.OutOfMemoryError as e:
            row.update(result=f"out of memory: {str(e).splitlines()[0][:80]}",
                       peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else None)
            return row
    step_s = res.step_seconds[-1]
    row.update(samples_s=args.finetune_batch / step_s, result=f"fits ({step_s:.2f} s/step)",
               peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else None)
    return row


def run_finetune_step(args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only", "finetune-step", "--finetune-preset",
           args.finetune_preset, "--memory-cap-gb", str(args.memory_cap_gb), "--finetune-batch",
           str(args.finetune_batch)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        print(r.stderr[-4000:], file=sys.stderr)
        return {"check": "fine-tune step", "result": f"failed (exit {r.returncode}), see stderr"}


def kaggle_recipe_child(args: argparse.Namespace, steps: int = 6, canvas: int = 30) -> list[dict]:
    """The kaggle-4xL4 recipe as one of `--kaggle-processes` processes runs it: `steps` full fine-tuning steps of
    its per-process batch through train() (compile as the run would: on CUDA), then predict rollouts of its
    per-process slice. Two rows."""
    import tempfile
    from arcsolver.data.arc_dataset import TaskSet, build
    from arcsolver.data.arc_tasks import load_tasks
    from arcsolver.inference.rollout import rollout
    from arcsolver.training.config import build_config
    from arcsolver.training.recipes import load_recipe
    options, sets = load_recipe("kaggle-4xL4")
    n = max(1, args.kaggle_processes)
    local = max(1, options["batch_size"] // n)
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build(data, [TaskSet("bundled", load_tasks(HERE.parent / "arcsolver" / "data" / "bundled"), test_set=True)],
              num_aug=20, seed=0, canvas=canvas)
        cfg = build_config(args.finetune_preset, [*sets, f"max_steps={steps}", f"global_batch_size={local}",
                                                  "log_every=1", "eval_interval_steps=0", "eval_interval_epochs=0"],
                           data=str(data), out=str(Path(tmp) / "run"))
        from arcsolver.training.train import train
        res = train(cfg, cpu=not cuda, quiet=True, final_eval=False)
        times = res.step_seconds
        steady = statistics.median(times[2:] or times[1:] or times)
        head, batch = _ours_on(dataclasses.replace(paper_config("arc", cfg.forward_dtype if cuda else "float32"),
                                                   H_cycles=4, L_cycles=4, halt_max_steps=10,
                                                   batch_size=max(1, 256 // n)), "cuda" if cuda else "cpu")
    model = head.model.eval()
    dev = "cuda" if cuda else "cpu"
    rollout(model, batch, 10)
    _sync(dev)
    t = time.perf_counter()
    rollout(model, batch, 10)
    _sync(dev)
    rows_s = batch["inputs"].shape[0] / (time.perf_counter() - t)
    return [{"check": f"kaggle recipe, 1 of {n} processes: fine-tune", "config": args.finetune_preset,
             "batch": local, "impl": "ours", "samples_s": local / steady,
             "result": f"{1 / steady:.2f} steps/s; first step +{max(0.0, times[0] - steady):.1f} s (compile)"},
            {"check": f"kaggle recipe, 1 of {n} processes: predict", "config": "arc", "batch": max(1, 256 // n),
             "impl": "ours", "samples_s": rows_s, "result": "rows/s, 10 steps"}]


def run_kaggle_recipe(args: argparse.Namespace) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only", "kaggle-recipe", "--finetune-preset",
           args.finetune_preset, "--kaggle-processes", str(args.kaggle_processes)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        print(r.stderr[-4000:], file=sys.stderr)
        return [{"check": "kaggle recipe", "result": f"failed (exit {r.returncode}), see stderr"}]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only == "finetune-step":
        print(json.dumps(finetune_step_child(args)))
        return 0
    if args.only == "kaggle-recipe":
        print(json.dumps(kaggle_recipe_child(args)))
        return 0
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device visible (torch {torch.__version__}); nothing to measure", file=sys.stderr)
        return 2
    from arcsolver.runtime.precision import choose_precision, device_info
    device = "cuda"
    info = device_info(torch.device(device))
    precision = choose_precision("auto", "bfloat16", info)
    t0 = time.time()
    print(f"gpu_check: {info.name}, compute capability {info.capability}, torch {torch.__version__}, "
          f"{torch.cuda.device_count()} GPU(s); {precision.describe()}", flush=True)
    rows: list[dict] = []
    # The shell wrapper's hard stop sends SIGTERM: print what was measured so far, as the same table.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        measure_all(args, rows, device, info, precision)
    except TimeoutError as e:
        rows.append({"check": "(remaining checks)", "result": f"not run: {e}"})
    print()
    print(format_table(rows, COLUMNS))
    peak = nominal_peak(info.name, precision.dtype)
    print(f"\n{time.time() - t0:.0f} s; MFU against the nominal {precision.dtype} peak of "
          f"{peak / 1e12:.0f} TFLOP/s" if peak else f"\n{time.time() - t0:.0f} s; MFU: GPU not in the peak table")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all("failed" not in str(r.get("result", "")) for r in rows) else 1


def _stop_on_sigterm(signum, frame) -> None:
    raise TimeoutError("stopped by SIGTERM (the time limit of gpu_check.sh)")


def measure_all(args: argparse.Namespace, rows: list[dict], device: str, info, precision) -> None:
    """Append one row per measurement to `rows` (as they finish: an interrupted run still has them)."""
    if not args.skip_tests:
        rows.append(run_gpu_tests(HERE.parent, args.tests_timeout))
    peak = nominal_peak(info.name, precision.dtype)
    other = bench_model.Reference(args.reference) if args.reference else bench_model.Restatement()
    other_name = "reference code" if args.reference else "ref-form"
    for name, batch in (("arc", args.arc_batch), ("sudoku", args.sudoku_batch)):
        cfg = paper_config(name, precision.dtype)
        try:
            flops = count_train_flops(cfg, 2, device) / 2
            m = measure_train(cfg, batch, args.reps, device, other)
        except torch.OutOfMemoryError:
            rows.append({"check": "train throughput", "config": name, "batch": batch, "result": "out of memory"})
            torch.cuda.empty_cache()
            continue
        for impl, s in (("ours", m["ours_s"]), (other_name, m["ref_s"])):
            sps = batch / s
            rows.append({"check": "train throughput", "config": name, "batch": batch, "impl": impl,
                         "samples_s": sps, "mfu": mfu(sps, flops, peak), "vs_ref": m["ratio"] if impl == "ours"
                         else None, "result": f"{flops / 1e9:.1f} GFLOP/sample"})
        for mb in MEMORY_BATCHES[name]:
            try:
                rows.append({"check": "peak memory, one step", "config": name, "batch": mb, "impl": "ours",
                             "peak_gb": measure_peak_memory(cfg, mb, device)})
            except torch.OutOfMemoryError:
                rows.append({"check": "peak memory, one step", "config": name, "batch": mb, "result": "OOM"})
                torch.cuda.empty_cache()
    rows.append(run_finetune_step(args))
    cfg = paper_config("arc", precision.dtype)
    rows.append({"check": "predict rollout (16 steps)", "config": "arc", "batch": args.rollout_batch, "impl": "ours",
                 "samples_s": measure_rollout(cfg, args.rollout_batch, device)})
    rows.extend(run_kaggle_recipe(args))


if __name__ == "__main__":
    sys.exit(main())
