"""benchmarks/gpu_check.py's CPU-checkable parts: arguments, FLOP counting (against bench_model's formula), MFU,
the peak table, the table printer, and the measurements themselves on a tiny config on CPU."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_model  # noqa: E402
import gpu_check  # noqa: E402


def tiny(name: str):
    """bench_model's config (a) (mlp_t) or (c) (attention + RoPE), shrunk to test size."""
    cfg = bench_model.config(name)
    return dataclasses.replace(cfg, hidden_size=32, puzzle_emb_ndim=32, num_heads=2,
                               seq_len=cfg.seq_len if name == "a" else 40, L_cycles=2)


def test_arguments_have_defaults_and_refuse_nonsense():
    a = gpu_check.parse_args([])
    assert (a.reps, a.memory_cap_gb, a.finetune_batch, a.skip_tests) == (6, 24.0, 768, False)
    assert gpu_check.parse_args(["--arc-batch", "32", "--skip-tests"]).arc_batch == 32
    for bad in (["--reps", "0"], ["--memory-cap-gb", "-1"], ["--finetune-batch", "x"]):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(bad)


def test_counted_flops_equal_the_formula_for_the_mlp_mixer_and_scale_with_batch():
    cfg = tiny("a")
    assert gpu_check.count_train_flops(cfg, 2) == bench_model.matmul_flops(dataclasses.replace(cfg, batch_size=2))[1]
    assert gpu_check.count_train_flops(cfg, 4) == 2 * gpu_check.count_train_flops(cfg, 2)


def test_counted_flops_include_attention():
    """The formula counts attention's backward as 2x its forward; flash attention's backward recomputes the
    scores (2.5x), which the counter sees: counted = formula + 0.5 x the attention backward of the last cycle."""
    cfg = tiny("c")
    S, D, B = cfg.total_len, cfg.hidden_size, 2
    attention_fwd_per_app = 4 * B * S * S * D * cfg.L_layers
    recompute = (cfg.L_cycles + 1) * attention_fwd_per_app // 2  # 0.5x the forward, per application with autograd
    formula = bench_model.matmul_flops(dataclasses.replace(cfg, batch_size=B))[1]
    assert gpu_check.count_train_flops(cfg, B) == formula + recompute


def test_peak_table_and_mfu():
    assert gpu_check.nominal_peak("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert gpu_check.nominal_peak("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert gpu_check.nominal_peak("NVIDIA L4", "float32") == 30.3e12
    assert gpu_check.nominal_peak("Tesla T4", "float16") == 65e12
    assert gpu_check.nominal_peak("Some Future GPU", "bfloat16") is None
    assert gpu_check.mfu(100.0, 1e12, 200e12) == pytest.approx(0.5)
    assert gpu_check.mfu(100.0, 1e12, None) is None


def test_table_prints_every_row_with_missing_cells_as_dashes():
    rows = [{"check": "train throughput", "config": "arc", "batch": 96, "impl": "ours", "samples_s": 1234.5678,
             "mfu": 0.41234, "vs_ref": 1.8},
            {"check": "fine-tune step", "batch": 768, "peak_gb": 21.5, "result": "fits (1.20 s/step)"}]
    text = gpu_check.format_table(rows, gpu_check.COLUMNS)
    lines = text.splitlines()
    assert len(lines) == 4 and all(line.count("|") == len(gpu_check.COLUMNS) + 1 for line in lines)
    assert "| 1.23e+03 | 0.412 | 1.8 | - | - |" in lines[2]
    assert lines[3].startswith("| fine-tune step | - | 768 | - |") and "fits (1.20 s/step)" in lines[3]


def test_measurements_run_on_cpu_on_a_tiny_config():
    cfg = tiny("a")
    m = gpu_check.measure_train(cfg, 4, 2, "cpu")
    assert m["ours_s"] > 0 and m["ref_s"] > 0 and m["ratio"] > 0 and "NOT the reference" in m["label"]
    assert gpu_check.measure_rollout(cfg, 4, "cpu", steps=2, reps=1) > 0
    assert gpu_check.measure_peak_memory(cfg, 4, "cpu") is None


def test_without_a_gpu_the_check_says_so_and_exits_2():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the check would run")
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--skip-tests"], capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin", "PY": sys.executable}, timeout=120)
    assert r.returncode == 2 and "no CUDA device visible" in r.stderr and "gpu_check.sh" in r.stdout


def test_the_fine_tune_step_child_reports_one_row(monkeypatch):
    """What the check's child process runs for the memory-capped step, on CPU with a tiny preset (the same code)."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the check's own run covers this")
    args = gpu_check.parse_args(["--only", "finetune-step", "--finetune-preset", "tiny-cpu", "--finetune-batch", "8"])
    row = gpu_check.finetune_step_child(args)
    assert row["batch"] == 8 and row["result"].startswith("fits") and row["samples_s"] > 0
    assert row["peak_gb"] is None  # no CUDA: no memory figure rather than a wrong one


def test_the_kaggle_recipe_child_reports_a_fine_tune_and_a_predict_row(monkeypatch):
    """The kaggle row's child on CPU with a tiny preset and paper config: the same code a GPU run fills in."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the check's own run covers this")
    monkeypatch.setattr(gpu_check, "paper_config", lambda name, dtype: tiny("c"))
    args = gpu_check.parse_args(["--only", "kaggle-recipe", "--finetune-preset", "tiny-cpu", "--kaggle-processes",
                                 "16"])
    rows = gpu_check.kaggle_recipe_child(args, steps=3, canvas=10)
    assert [r["check"] for r in rows] == ["kaggle recipe, 1 of 16 processes: fine-tune",
                                          "kaggle recipe, 1 of 16 processes: predict"]
    assert rows[0]["batch"] == 8 and rows[1]["batch"] == 16 and all(r["samples_s"] > 0 for r in rows)
    assert "steps/s" in rows[0]["result"] and "(compile)" in rows[0]["result"]


def test_all_measurements_run_and_print_one_table_on_cpu(monkeypatch, capsys):
    """measure_all end to end with tiny configs on CPU: every row is produced, and the table holds them."""
    from arcsolver.runtime.precision import DeviceInfo, choose_precision
    monkeypatch.setattr(gpu_check, "paper_config", lambda name, dtype: tiny("a" if name == "sudoku" else "c"))
    monkeypatch.setattr(gpu_check, "run_finetune_step", lambda args: {"check": "fine-tune step", "result": "stub"})
    monkeypatch.setattr(gpu_check, "run_kaggle_recipe", lambda args: [{"check": "kaggle recipe", "result": "stub"}])
    monkeypatch.setattr(gpu_check, "MEMORY_BATCHES", {"arc": (2, 4), "sudoku": (2, 4)})
    args = gpu_check.parse_args(["--skip-tests", "--reps", "1", "--arc-batch", "2", "--sudoku-batch", "2",
                                 "--rollout-batch", "2"])
    rows: list[dict] = []
    gpu_check.measure_all(args, rows, "cpu", DeviceInfo("cpu", "CPU"), choose_precision("auto", "float32",
                                                                                          DeviceInfo("cpu", "CPU")))
    checks = [r["check"] for r in rows]
    assert checks.count("train throughput") == 4  # ours + ref-form, two configs
    assert checks.count("peak memory, one step") == 4 and "predict rollout (16 steps)" in checks
    ours = [r for r in rows if r["check"] == "train throughput" and r["impl"] == "ours"]
    assert all(r["samples_s"] > 0 and r["vs_ref"] > 0 and r["mfu"] is None for r in ours)  # no peak for a CPU
    table = gpu_check.format_table(rows, gpu_check.COLUMNS)
    assert len(table.splitlines()) == len(rows) + 2
