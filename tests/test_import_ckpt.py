"""Checkpoints across formats: ours -> reference -> ours gives identical logits; a reference-format state dict built
from the published key names and shapes imports; mismatches are refused with a message naming the key."""
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from arcsolver.model import checkpoint
from arcsolver.data.arc_dataset import ArcStore, TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.cli import main
from arcsolver.runtime.errors import InputError
from arcsolver.training.import_ckpt import import_checkpoint
from arcsolver.data.loader import PuzzleLoader
from arcsolver.inference.predict import load_model

from conftest import BUNDLED


def tiny_run(tmp_path: Path) -> Path:
    from arcsolver.training.config import build_config
    from arcsolver.training.train import train
    data = tmp_path / "data"
    build(data, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=3, seed=0, canvas=10)
    cfg = build_config("tiny-cpu", ["max_steps=3"], data=str(data), out=str(tmp_path / "run"))
    res = train(cfg, cpu=True, quiet=True, final_eval=False)
    return res.checkpoint


def logits_on(ckpt: Path, data: Path) -> torch.Tensor:
    model, _ = load_model(ckpt, torch.device("cpu"))
    batch = next(PuzzleLoader(str(data), "test", global_batch_size=16).test_batches())
    with torch.no_grad():
        carry = model.initial_carry(batch)
        for _ in range(2):
            carry, out = model(carry, batch)
    return out["logits"]


def test_roundtrip_gives_identical_logits(tmp_path):
    ck = tiny_run(tmp_path)
    cfg = checkpoint.load_config(ck)
    r = CliRunner().invoke(main, ["export-checkpoint", str(ck), "--out", str(tmp_path / "ref")])
    assert r.exit_code == 0, r.output
    sd = torch.load(tmp_path / "ref" / "checkpoint", weights_only=True)
    assert all(k.startswith("_orig_mod.model.inner.") for k in sd)
    m = cfg["model"]
    r = CliRunner().invoke(main, ["import-checkpoint", str(tmp_path / "ref" / "checkpoint"), "--identifiers",
                                  str(tmp_path / "ref" / "identifiers.json"), "--tasks", str(BUNDLED),
                                  "--eval-tasks", str(BUNDLED), "--out", str(tmp_path / "imp"),
                                  "--seq-len", str(m["seq_len"]), "--num-heads", str(m["num_heads"]),
                                  "--H-cycles", str(m["H_cycles"]), "--L-cycles", str(m["L_cycles"]),
                                  "--puzzle-emb-len", str(m["puzzle_emb_len"])])
    assert r.exit_code == 0, r.output + r.stderr
    a = logits_on(ck, Path(cfg["data"]["path"]))
    b = logits_on(tmp_path / "imp" / "run", tmp_path / "imp" / "data")
    assert torch.equal(a, b)


def reference_state(num_ids: int) -> dict[str, torch.Tensor]:
    """The reference ARC model's state dict, from its published key names and shapes (arcsolver/model/trm.py)."""
    D, V, I = 512, 12, 1536
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g) * 0.02  # noqa: E731
    sd = {"model.inner.embed_tokens.embedding_weight": r(V, D), "model.inner.lm_head.weight": r(V, D),
          "model.inner.q_head.weight": r(2, D), "model.inner.q_head.bias": torch.tensor([-5.0, -5.0]),
          "model.inner.puzzle_emb.weights": r(num_ids, D), "model.inner.H_init": r(D), "model.inner.L_init": r(D),
          "model.inner.rotary_emb.cos_cached": r(916, 64), "model.inner.rotary_emb.sin_cached": r(916, 64)}
    for i in range(2):
        p = f"model.inner.L_level.layers.{i}."
        sd[p + "self_attn.qkv_proj.weight"] = r(3 * D, D)
        sd[p + "self_attn.o_proj.weight"] = r(D, D)
        sd[p + "mlp.gate_up_proj.weight"] = r(2 * I, D)
        sd[p + "mlp.down_proj.weight"] = r(D, I)
    return {"_orig_mod." + k: v for k, v in sd.items()}


def small_tasks(tmp_path: Path) -> Path:
    d = tmp_path / "tasks"
    d.mkdir()
    for name in ("aaa", "bbb"):
        (d / f"{name}.json").write_text(json.dumps({"train": [{"input": [[1, 2]], "output": [[2, 1]]}],
                                                    "test": [{"input": [[3, 4]], "output": [[4, 3]]}]}))
    return d


def test_reference_format_state_dict_imports_and_permutes_the_table(tmp_path):
    names = ["<blank>", "bbb|||t1|||0213456789", "aaa", "bbb", "aaa|||t4|||0987654321"]
    sd = reference_state(len(names))
    torch.save(sd, tmp_path / "step_1")
    (tmp_path / "identifiers.json").write_text(json.dumps(names))
    tasks = small_tasks(tmp_path)
    ck = import_checkpoint(tmp_path / "step_1", tmp_path / "identifiers.json", [], tmp_path / "out",
                           eval_tasks=[str(tasks)])
    w = checkpoint.load_weights(ck)
    ours = ArcStore(tmp_path / "out" / "data").identifiers
    table = sd["_orig_mod.model.inner.puzzle_emb.weights"]
    for i, n in enumerate(ours):
        assert torch.equal(w["model.inner.puzzle_emb.weights"][i], table[names.index(n)]), n
    assert sorted(ours) == sorted(names)
    model, _ = load_model(ck, torch.device("cpu"))
    assert sum(p.numel() for p in model.parameters()) == 6_829_058


def test_mismatches_are_refused(tmp_path):
    names = ["<blank>", "aaa", "bbb"]
    (tmp_path / "identifiers.json").write_text(json.dumps(names))
    tasks = small_tasks(tmp_path)
    sd = reference_state(3)
    sd["_orig_mod.model.inner.lm_head.weight"] = torch.zeros(12, 256)
    torch.save(sd, tmp_path / "bad_shape")
    with pytest.raises(InputError, match=r"lm_head.weight: checkpoint \(12, 256\) vs model \(12, 512\)"):
        import_checkpoint(tmp_path / "bad_shape", tmp_path / "identifiers.json", [str(tasks)], tmp_path / "o1")
    sd = reference_state(3)
    del sd["_orig_mod.model.inner.q_head.bias"]
    torch.save(sd, tmp_path / "missing")
    with pytest.raises(InputError, match="missing model.inner.q_head.bias"):
        import_checkpoint(tmp_path / "missing", tmp_path / "identifiers.json", [str(tasks)], tmp_path / "o2")
    torch.save(reference_state(4), tmp_path / "rows")
    with pytest.raises(InputError, match="3 names but the checkpoint's puzzle table has 4 rows"):
        import_checkpoint(tmp_path / "rows", tmp_path / "identifiers.json", [str(tasks)], tmp_path / "o3")
    (tmp_path / "identifiers.json").write_text(json.dumps(["<blank>", "zzz", "aaa"]))
    torch.save(reference_state(3), tmp_path / "ok")
    with pytest.raises(InputError, match="not in --tasks, e.g. zzz"):
        import_checkpoint(tmp_path / "ok", tmp_path / "identifiers.json", [str(tasks)], tmp_path / "o4")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o4").exists()
