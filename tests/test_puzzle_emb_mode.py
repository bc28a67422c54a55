"""`arch.puzzle_emb_mode`: `version` (one row per augmented version, the reference's) and `task` (one row per task
plus an augmentation code): the composition, the sparse update, the loader's keys, training, exact resume,
fine-tuning, prediction, the name -> row map in checkpoints, and the refusals (bad value, reference export)."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from arcsolver.model import checkpoint
from arcsolver.data.arc_dataset import ArcStore, TaskSet, build, parse_version_name
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.training.config import build_config
from arcsolver.data.loader import PuzzleLoader
from arcsolver.model.puzzle_embedding import (SignSGDSparse, TaskPuzzleEmbedding, dataset_row_map, map_row_names,
                                        table_key, table_rows)
from arcsolver.training.train import train

from conftest import BUNDLED

PY = sys.executable
BUNDLED_IDS = sorted(p.stem for p in BUNDLED.glob("*.json"))
PRE_IDS, NEW_IDS = BUNDLED_IDS[:8], BUNDLED_IDS[8:]


def _tasks(folder: Path, ids: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        (folder / f"{i}.json").write_bytes((BUNDLED / f"{i}.json").read_bytes())
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mode")
    d = root / "data"
    build(d, [TaskSet("pre", load_tasks(str(_tasks(root / "pre", PRE_IDS))), test_set=True)], num_aug=6, seed=1,
          canvas=10)
    return d


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def _cfg(data: Path, out: Path, mode: str, *extra: str):
    return build_config("tiny-cpu", [f"arch.puzzle_emb_mode=\"{mode}\"", "log_every=1", "global_batch_size=16",
                                     "lr=3e-3", "puzzle_emb_lr=3e-2", *extra], data=str(data), out=str(out))


def _losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r["loss_per_sample"] for r in rows if r.get("split") == "train"]


@pytest.fixture(scope="module")
def task_run(tmp_path_factory, data):
    """A task-mode run on the prepared data (the dataset is read, never rebuilt)."""
    out = tmp_path_factory.mktemp("task") / "run"
    res = train(_cfg(data, out, "task", "max_steps=40"), cpu=True, quiet=True, final_eval=False)
    return out, res


# ---------------------------------------------------------------------------------------------------------------
# the module


def _randomise(emb: TaskPuzzleEmbedding, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in (emb.tasks.weights, emb.dihedral, emb.colours):
            t.copy_(torch.randn(t.shape, generator=g))


def test_task_vector_is_task_plus_dihedral_plus_the_permuted_colour_code():
    emb = TaskPuzzleEmbedding(4, 6)
    _randomise(emb, 0)
    cmap = torch.tensor([0, 3, 1, 2, 4, 5, 9, 7, 8, 6])
    aug = torch.cat([torch.tensor([5]), cmap]).view(1, 11)
    got = emb.eval()(torch.tensor([2]), aug)[0]
    code = sum(emb.colour_keys[k] * emb.colours[cmap[k]] for k in range(10)) / 10 ** 0.5
    assert torch.allclose(got, emb.tasks.weights[2] + emb.dihedral[5] + code, atol=1e-6)
    # another colour map (or dihedral) of the same task is another vector; the keys are +-1 and fixed
    other = torch.cat([torch.tensor([5]), torch.arange(10)]).view(1, 11)
    assert not torch.allclose(emb(torch.tensor([2]), other)[0], got)
    assert set(emb.colour_keys.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(TaskPuzzleEmbedding(2, 6).colour_keys, emb.colour_keys)


def test_sign_sgd_updates_only_the_task_rows_a_batch_used_and_the_codes_get_gradients():
    emb = TaskPuzzleEmbedding(5, 4).train()
    _randomise(emb, 1)
    before = {k: v.clone() for k, v in emb.state_dict().items()}
    opt = SignSGDSparse(emb, lr=0.1, weight_decay=0.5)
    assert opt.tables == [emb.tasks]  # the shared augmentation codes are the network's (Adam, EMA)
    cmap = torch.tensor([0, 2, 1, 3, 4, 5, 6, 7, 8, 9])
    aug = torch.stack([torch.cat([torch.tensor([3]), cmap]), torch.cat([torch.tensor([3]), cmap])])
    with torch.enable_grad():
        out = emb(torch.tensor([1, 4]), aug)
        (out * torch.arange(1.0, 5.0)).sum().backward()
    opt.step()
    opt.zero_grad()
    after = emb.state_dict()
    for r in range(5):
        if r in (1, 4):
            assert not torch.equal(after["tasks.weights"][r], before["tasks.weights"][r]), r
        else:  # no gradient: neither stepped nor decayed (reference semantics)
            assert torch.equal(after["tasks.weights"][r], before["tasks.weights"][r]), r
    # the rule itself on a task row: p <- p (1 - lr wd) - lr sign(grad), grad = (1, 2, 3, 4) > 0
    assert torch.allclose(after["tasks.weights"][1], before["tasks.weights"][1] * 0.95 - 0.1)
    # the codes: a gradient for the dihedral row used (twice: 2 x (1, 2, 3, 4)) and none for the others
    assert torch.allclose(emb.dihedral.grad[3], 2 * torch.arange(1.0, 5.0)) and not emb.dihedral.grad[[0, 1, 2]].any()
    assert emb.colours.grad.abs().sum(1).gt(0).all()  # every colour sits in some slot
    for k in ("dihedral", "colours", "colour_keys"):
        assert torch.equal(after[k], before[k])  # sign-SGD does not touch them


def test_table_size_does_not_grow_with_augmentations(tmp_path):
    tasks = load_tasks(str(BUNDLED))
    metas = []
    for n in (2, 12):
        build(tmp_path / f"a{n}", [TaskSet("b", tasks, test_set=True)], num_aug=n, seed=0, canvas=10)
        metas.append(json.loads((tmp_path / f"a{n}" / "meta.json").read_text()))
    assert table_rows(metas[0], "task") == table_rows(metas[1], "task") == len(tasks) + 1
    assert table_rows(metas[0], "version") < table_rows(metas[1], "version")


# ---------------------------------------------------------------------------------------------------------------
# the loader


def test_loader_gives_every_row_its_task_and_augmentation(data):
    store = ArcStore(data)
    for split in ("train", "test"):
        loader = PuzzleLoader(data, split, global_batch_size=16, seed=3)
        batch = loader.train_batch(2) if split == "train" else next(iter(loader.test_batches()))
        pids = batch["puzzle_identifiers"].numpy()
        for b, pid in enumerate(pids):
            if pid == 0:  # padding: blank task, identity augmentation
                assert batch["task_identifiers"][b] == 0
                assert batch["augmentations"][b].tolist() == [0, *range(10)]
                continue
            task, tid, cmap = store.version(int(pid))
            assert batch["task_identifiers"][b] == task + 1
            assert batch["augmentations"][b].tolist() == [tid, *cmap.tolist()]
        assert batch["augmentations"].shape == (16, 11) and batch["augmentations"].dtype == torch.int32


# ---------------------------------------------------------------------------------------------------------------
# training, resume, switching modes


def test_task_mode_trains_and_its_table_has_one_row_per_task(task_run, data):
    run, res = task_run
    losses = _losses(run)
    assert res.steps == 40 and len(losses) == 40
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])  # loss falls
    w = checkpoint.load_weights(run, ema=False)
    tasks = json.loads((data / "tasks.json").read_text())
    assert w[table_key("task")].shape[0] == len(tasks) + 1
    assert w["model.inner.puzzle_emb.dihedral"].shape[0] == 8
    assert "model.inner.puzzle_emb.weights" not in w  # no per-version table
    # trained task rows moved away from zero; the blank row was never used in training
    assert (w[table_key("task")][1:].abs().sum(1) > 0).all() and not w[table_key("task")][0].any()


def test_checkpoints_carry_the_name_to_row_map(task_run, data, tmp_path):
    run, _ = task_run
    rows = checkpoint.load_puzzle_rows(run)
    tasks = [t["id"] for t in json.loads((data / "tasks.json").read_text())]
    assert rows == {"mode": "task", "tasks": tasks}
    assert map_row_names(rows) == ["<blank>", *tasks]
    out = tmp_path / "v"
    train(_cfg(data, out, "version", "max_steps=1"), cpu=True, quiet=True, final_eval=False)
    vrows = checkpoint.load_puzzle_rows(out)
    assert vrows["mode"] == "version" and vrows["tasks"] == tasks
    store = ArcStore(data)  # every row named after its version: task id, dihedral id, colour map
    assert vrows["versions"][0] == "<blank>" and len(vrows["versions"]) == store.num_puzzle_identifiers
    for pid, name in enumerate(vrows["versions"][1:], start=1):
        task, tid, cmap = parse_version_name(name)
        ti, want_tid, want_map = store.version(pid)
        assert task == tasks[ti] and tid == want_tid and np.array_equal(cmap, want_map), name
    assert len(vrows["versions"]) == checkpoint.load_weights(out)["model.inner.puzzle_emb.weights"].shape[0]


def test_task_mode_resumes_bit_exactly(tmp_path, data):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    # 10 steps straight vs 5 steps, then resumed to 10 (tiny-cpu's LR is flat after warm-up: lr_min_ratio 1.0, so
    # the first run's shorter max_steps does not change any step's LR)
    train(_cfg(data, straight, "task", "max_steps=10"), cpu=True, quiet=True, final_eval=False)
    train(_cfg(data, cut, "task", "max_steps=5"), cpu=True, quiet=True, final_eval=False)
    res = train(_cfg(data, cut, "task", "max_steps=10"), cpu=True, quiet=True, final_eval=False, resume=str(cut))
    assert res.steps == 10
    for ema in (False, True):
        a, b = checkpoint.load_weights(straight, ema=ema), checkpoint.load_weights(cut, ema=ema)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), ema


def test_switching_modes_needs_no_rebuild_and_resume_refuses_the_other_mode(tmp_path, data, task_run):
    before = _digest(data)
    out = tmp_path / "v"
    res = train(_cfg(data, out, "version", "max_steps=3"), cpu=True, quiet=True, final_eval=False)
    assert res.steps == 3 and _digest(data) == before  # same prepared folder, untouched, both modes
    from arcsolver.runtime.errors import InputError
    with pytest.raises(InputError, match="puzzle_emb_mode"):
        train(_cfg(data, out, "task", "max_steps=6"), cpu=True, quiet=True, final_eval=False, resume=str(out))


def test_resume_on_a_dataset_with_other_tasks_is_refused_by_the_row_map(tmp_path, task_run):
    run, _ = task_run
    other = tmp_path / "other"
    # same number of tasks (same table shape), other task names: the shape check alone would let it through
    ids = [*PRE_IDS[:-1], NEW_IDS[0]]
    build(other, [TaskSet("pre", load_tasks(str(_tasks(tmp_path / "t", ids))), test_set=True)], num_aug=6, seed=1,
          canvas=10)
    from arcsolver.runtime.errors import InputError
    with pytest.raises(InputError, match="puzzle rows"):
        train(_cfg(other, run, "task", "max_steps=50"), cpu=True, quiet=True, final_eval=False, resume=str(run))


# ---------------------------------------------------------------------------------------------------------------
# predict, fine-tune


def test_predict_and_vote_work_in_task_mode(task_run, data, tmp_path):
    from arcsolver.inference.predict import predict
    from arcsolver.inference.submission import check_submission
    run, _ = task_run
    res = predict(run, tmp_path / "sub.json", data=str(data), cpu=True, quiet=True, batch_size=64)
    assert res.stopped_by == "done" and res.tasks_complete == len(PRE_IDS)
    check_submission(json.loads((tmp_path / "sub.json").read_text()),
                     [t for t in load_tasks(str(BUNDLED)) if t.id in PRE_IDS])
    # votes came from every version of every task
    assert res.predictions == PuzzleLoader(data, "test", global_batch_size=64).test_size()


def test_finetune_task_mode_new_task_rows_start_at_the_mean_and_codes_are_kept(task_run, tmp_path):
    from arcsolver.training.finetune import _extended_weights, finetune
    from arcsolver.inference.submission import check_submission
    run, _ = task_run
    new = _tasks(tmp_path / "new", NEW_IDS)
    s = finetune(run, str(new), tmp_path / "ft", embed_steps=2, full_steps=2, predict_after=True, num_aug=3,
                 cpu=True, quiet=True)
    check_submission(json.loads(Path(s["submission"]).read_text()), load_tasks(str(new)))
    assert s["embed_steps"] == 2 and s["full_steps"] == 2
    # the table the fine-tuning started from: one row per new task, each the mean of the trained task rows
    old = checkpoint.load_weights(run, ema=True)
    base = checkpoint.load_config(run)
    start = _extended_weights(checkpoint.resolve(run), base, tmp_path / "ft" / "data")
    key = table_key("task")
    mean = old[key][1:].float().mean(0)
    assert start[key].shape[0] == len(NEW_IDS) + 1
    assert torch.allclose(start[key], mean.expand_as(start[key]))
    for k in ("dihedral", "colours", "colour_keys"):  # augmentation codes: as trained
        assert torch.equal(start[f"model.inner.puzzle_emb.{k}"], old[f"model.inner.puzzle_emb.{k}"])
    # the fine-tuned checkpoint carries the new map, and its task rows learned
    rows = checkpoint.load_puzzle_rows(s["checkpoint"])
    assert rows["mode"] == "task" and sorted(rows["tasks"]) == sorted(NEW_IDS)
    after = checkpoint.load_weights(s["checkpoint"], ema=False)[key]
    assert not torch.equal(after[1:], start[key][1:])


def test_finetune_keeps_the_rows_of_tasks_the_checkpoint_knows(task_run, tmp_path):
    from arcsolver.training.finetune import _extended_weights
    from arcsolver.data.arc_dataset import build as build_data
    run, _ = task_run
    mixed = [PRE_IDS[0], NEW_IDS[0]]
    d = tmp_path / "d"
    build_data(d, [TaskSet("x", load_tasks(str(_tasks(tmp_path / "m", mixed))), test_set=True)], num_aug=2,
               canvas=10)
    old = checkpoint.load_weights(run, ema=True)
    w = _extended_weights(checkpoint.resolve(run), checkpoint.load_config(run), d)
    key = table_key("task")
    names = map_row_names(dataset_row_map(d, "task"))
    old_names = map_row_names(checkpoint.load_puzzle_rows(run))
    known = names.index(PRE_IDS[0])
    assert torch.equal(w[key][known], old[key][old_names.index(PRE_IDS[0])].float())
    assert torch.allclose(w[key][names.index(NEW_IDS[0])], old[key][1:].float().mean(0))


# ---------------------------------------------------------------------------------------------------------------
# refusals: one line, exit 2, nothing written


def _cli(*args):
    return subprocess.run([PY, "-m", "arcsolver.cli", *args], capture_output=True, text=True)


def test_a_bad_mode_is_one_line_exit_2(tmp_path, data):
    out = tmp_path / "o"
    r = _cli("train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(out), "--set",
             "arch.puzzle_emb_mode=tasks", "--cpu")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "arch.puzzle_emb_mode" in lines[0] and "version" in lines[0], r.stderr
    assert not out.exists()


def test_reference_export_is_refused_in_task_mode_and_works_in_version_mode(task_run, data, tmp_path):
    run, _ = task_run
    out = tmp_path / "exp"
    r = _cli("export-checkpoint", str(run), "--out", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "puzzle_emb_mode" in lines[0], r.stderr
    assert not out.exists()
    from arcsolver.training.import_ckpt import export_checkpoint
    v = tmp_path / "v"
    train(_cfg(data, v, "version", "max_steps=1"), cpu=True, quiet=True, final_eval=False)
    export_checkpoint(v, tmp_path / "ok")
    ids = json.loads((tmp_path / "ok" / "identifiers.json").read_text())
    assert ids == ArcStore(data).identifiers  # from the checkpoint's own row map
