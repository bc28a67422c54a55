"""Move checkpoints between the reference TRM / URM and arcsolver, both ways.

Import (`arcsolver import-checkpoint`): a reference checkpoint is a plain torch state dict saved from the compiled
loss head, keys like `_orig_mod.model.inner.L_level.layers.0.self_attn.qkv_proj.weight`; its puzzle table is the
buffer `model.inner.puzzle_emb.weights` [num_ids, 512], one row per name in the reference's `identifiers.json`
("<blank>", "task", "task|||t3|||0528..."). Our modules mirror the reference's paths, so after stripping
`_orig_mod.` the keys are ours; the architecture is read off the shapes (hidden size, vocabulary, layers, mlp_t,
learned positions) and what shapes cannot tell (heads, cycles, prefix length) comes from options with the paper's
ARC defaults. Any missing, unexpected or mis-shaped key stops the import with a message naming it.
The names are then turned into a prepared dataset whose versions are exactly the reference's (dihedral id and colour
map per name, tasks from `--tasks`), and the table rows are permuted to our id order, so `predict --vote` works on the
tasks the checkpoint was trained on.

Export: our weights (EMA) under the reference's key names with the `_orig_mod.` prefix, plus `identifiers.json`
from the checkpoint's name -> row map (the dataset's file for checkpoints written before maps), so reference code can
load them. URM (arch.name "urm", reference github.com/zitian-gao/URM): its checkpoints are found by their keys
(`model.inner.init_hidden`, `model.inner.layers.N.*`), also inside its pretrain.py's {"model_state_dict": ...}
files; what shapes cannot tell defaults to its ARC scripts' H_cycles 2, L_cycles 6, and the prefix is its ceil(puzzle
dims / width). Export writes the tensors the reference keeps in the forward dtype (the convolution's kernel and bias,
`init_hidden`) in the checkpoint's forward dtype, so the reference, which loads with assign=True, computes in the
precision the run used; arch.json then carries the reference's URM field names (loops, num_layers).
Both ways are `puzzle_emb_mode=version` only (the reference's table): a task-mode checkpoint is refused
with one line; an imported checkpoint is a version-mode run carrying its row map.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json, write_json
from arcsolver.runtime.outputs import claim_folder, claim_output, owning_run
from arcsolver.data import arc_dataset
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.model import checkpoint
from arcsolver.model.config import TRMConfig, model_mode
from arcsolver.model.trm import DTYPES
from arcsolver.model.build import build_model
from arcsolver.model.puzzle_embedding import dataset_row_map
from arcsolver.model.checks import check_arch_field, check_checkpoint
from arcsolver.training.config import IMPORT, TrainConfig

PREFIX = "_orig_mod."
# Buffers the reference may save that carry no learned state here.
IGNORED = re.compile(r"(rotary_emb\.(cos|sin)_cached|puzzle_emb\.local_(weights|ids))$")


def read_reference_state(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder; expected the reference's checkpoint file (e.g. step_518071)",
                         file=str(path)) from None
    except Exception as e:  # noqa: BLE001 - torch's messages run to several lines of advice: keep the first
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise InputError(f"not a readable torch checkpoint ({type(e).__name__}: {first})", file=str(path)) from None
    for wrapper in ("state_dict", "model_state_dict"):  # TRM's / URM's pretrain.py training-state files
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError("expected a state dict of tensors", file=str(path))
    out = {}
    for k, v in obj.items():
        while k.startswith(PREFIX):
            k = k[len(PREFIX):]
        if IGNORED.search(k):
            continue
        out[k] = v.float() if v.is_floating_point() else v  # URM keeps some tensors in bf16; ours live in fp32
    if not any(k.startswith("model.inner.") for k in out):
        raise InputError("no 'model.inner.*' keys: not a TRM checkpoint (nor a URM one)", file=str(path))
    return out


def is_urm_state(state: dict[str, torch.Tensor]) -> bool:
    return "model.inner.init_hidden" in state


# What shapes cannot tell, per model when the user does not say: TRM's paper ARC config, URM's ARC scripts.
ARCH_DEFAULTS = {"trm": {"H_cycles": 3, "L_cycles": 4, "puzzle_emb_len": 16},
                 "urm": {"H_cycles": 2, "L_cycles": 6, "puzzle_emb_len": 0}}


def infer_config(state: dict[str, torch.Tensor], *, seq_len: int, num_heads: int, H_cycles: int | None,
                 L_cycles: int | None, puzzle_emb_len: int | None, halt_max_steps: int, pos_encodings: str | None,
                 file: str = ""):
    name = "urm" if is_urm_state(state) else "trm"
    d = ARCH_DEFAULTS[name]
    H_cycles = d["H_cycles"] if H_cycles is None else H_cycles
    L_cycles = d["L_cycles"] if L_cycles is None else L_cycles
    puzzle_emb_len = d["puzzle_emb_len"] if puzzle_emb_len is None or name == "urm" else puzzle_emb_len

    def need(k):
        if k not in state:
            raise InputError(f"missing key {k}", file=file)
        return state[k]
    vocab, hidden = need("model.inner.embed_tokens.embedding_weight").shape
    table = need("model.inner.puzzle_emb.weights")
    layers = {int(m.group(1)) for k in state
              if (m := re.match(r"model\.inner\.(?:L_level\.)?layers\.(\d+)\.", k))}
    mlp_t = any(".mlp_t." in k for k in state)
    if "model.inner.embed_pos.embedding_weight" in state:
        pos = "learned"
    else:
        pos = pos_encodings or ("none" if mlp_t else "rope")
    return TRMConfig(name=name, batch_size=1, seq_len=seq_len, puzzle_emb_ndim=int(table.shape[1]),
                     num_puzzle_identifiers=int(table.shape[0]), vocab_size=int(vocab), H_cycles=H_cycles,
                     L_cycles=L_cycles, L_layers=len(layers), hidden_size=int(hidden), num_heads=num_heads,
                     pos_encodings=pos, mlp_t=mlp_t, puzzle_emb_len=puzzle_emb_len, halt_max_steps=halt_max_steps,
                     forward_dtype="bfloat16")


def check_against_model(state: dict[str, torch.Tensor], cfg, file: str) -> None:
    with torch.device("meta"):
        ours = build_model(cfg).state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(ours[k].shape)}" for k in ours
           if k in state and tuple(state[k].shape) != tuple(ours[k].shape)]
    problems = [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected] + bad
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"does not match the inferred model: {problems[0]}{more}", file=file)


def import_checkpoint(path: str | Path, identifiers: str | Path, tasks: list[str], out: str | Path, *,
                      eval_tasks: list[str] = IMPORT.eval_tasks, seq_len: int = IMPORT.seq_len,
                      num_heads: int = IMPORT.num_heads, H_cycles: int | None = IMPORT.H_cycles,
                      L_cycles: int | None = IMPORT.L_cycles, puzzle_emb_len: int | None = IMPORT.puzzle_emb_len,
                      halt_max_steps: int = TRMConfig.halt_max_steps, pos_encodings: str | None = None,
                      overwrite: bool = IMPORT.overwrite) -> Path:
    """Reference checkpoint + identifiers.json + the tasks it names -> an arcsolver run folder (OUT/run) and dataset
    (OUT/data). Tasks from `eval_tasks` have their test inputs in the test split (what predict answers). None:
    the model's default (ARCH_DEFAULTS). OUT is new, empty or an earlier import (replaced whole); anything else
    only with `overwrite`."""
    out = Path(out)
    file = str(path)
    inputs = [path, identifiers, *tasks, *eval_tasks]
    _check_import_options(out, seq_len=seq_len, num_heads=num_heads, H_cycles=H_cycles, L_cycles=L_cycles,
                          puzzle_emb_len=puzzle_emb_len, halt_max_steps=halt_max_steps)
    claim_output(out, "import", inputs=inputs, overwrite=overwrite)
    state = read_reference_state(path)
    cfg = infer_config(state, seq_len=seq_len, num_heads=num_heads, H_cycles=H_cycles, L_cycles=L_cycles,
                       puzzle_emb_len=puzzle_emb_len, halt_max_steps=halt_max_steps, pos_encodings=pos_encodings,
                       file=file)
    if cfg.hidden_size % num_heads:
        raise InputError(f"hidden size {cfg.hidden_size} is not divisible by --num-heads {num_heads}", file=file)
    check_against_model(state, cfg, file)

    names = read_json(identifiers)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError("expected a JSON list of names", file=str(identifiers))
    if len(names) != cfg.num_puzzle_identifiers:
        raise InputError(f"{len(names)} names but the checkpoint's puzzle table has {cfg.num_puzzle_identifiers} rows",
                         file=str(identifiers))
    versions: dict[str, list[tuple[int, np.ndarray]]] = {}
    ref_index: dict[str, int] = {}
    for i, name in enumerate(names):
        if i == 0 and name == "<blank>":
            continue
        try:
            task, tid, cmap = arc_dataset.parse_version_name(name)
        except (ValueError, IndexError):
            raise InputError(f"cannot parse puzzle name {name!r}", file=str(identifiers), field=f"[{i}]") from None
        versions.setdefault(task, []).append((tid, cmap))
        ref_index[name] = i
    eval_ids = {t.id for spec in eval_tasks for t in load_tasks(spec)}
    by_id = {}
    for spec in list(tasks) + list(eval_tasks):
        for t in load_tasks(spec):
            by_id.setdefault(t.id, t)
    missing = [t for t in versions if t not in by_id]
    if missing:
        raise InputError(f"{len(missing)} task(s) named in identifiers.json are not in --tasks, e.g. {missing[0]}",
                         file=str(identifiers))
    train_set = [by_id[t] for t in versions if t not in eval_ids]
    eval_set = [by_id[t] for t in versions if t in eval_ids]
    canvas = int(round(seq_len ** 0.5))
    claim_folder(out, "import", inputs=inputs, overwrite=overwrite)  # everything read and checked: write
    data = out / "data"
    arc_dataset.build(data, [arc_dataset.TaskSet("train", train_set), arc_dataset.TaskSet("eval", eval_set, True)],
                      canvas=canvas, versions=versions)
    ours = arc_dataset.ArcStore(data).identifiers
    perm = torch.tensor([0] + [ref_index[n] for n in ours[1:]], dtype=torch.long)
    key = "model.inner.puzzle_emb.weights"
    state[key] = state[key][perm].clone()

    meta = read_json(data / "meta.json")
    tc = dataclasses.asdict(TrainConfig(data=str(data), out=str(out / "run")))
    config = {"train": tc, "model": dataclasses.asdict(cfg),
              "data": {"path": str(data.resolve()), "kind": "arc", "seq_len": meta["seq_len"],
                       "vocab_size": meta["vocab_size"], "num_puzzle_identifiers": meta["num_puzzle_identifiers"],
                       "canvas": canvas},
              "imported_from": {"checkpoint": str(path), "identifiers": str(identifiers)}, "step": 0}
    return checkpoint.save(out / "run", 0, model_state=state, ema_state=None, train_state=None, config=config,
                           puzzle_rows=dataset_row_map(data, "version"))


def _check_import_options(out: Path, **options: int) -> None:
    """The architecture options (what shapes cannot tell) and the output folder, checked before reading anything
    big or writing anything (model/checks.py)."""
    for k, v in options.items():
        if v is not None:
            check_arch_field(k, v, file=f"--{k.replace('_', '-')}")
    side = int(round(options["seq_len"] ** 0.5))
    if side * side != options["seq_len"]:
        raise InputError(f"expected a square canvas (900 for 30x30), got {options['seq_len']}", field="--seq-len")


def _check_exportable(ck: Path, cfg: dict) -> None:
    """Reference checkpoints have one puzzle row per augmented version: only version mode moves there."""
    mode = model_mode(cfg["model"])
    if mode != "version":
        raise InputError(f"puzzle_emb_mode={mode!r}: the reference format has one puzzle row per augmented version "
                         "and no task rows or augmentation codes; only version-mode checkpoints export",
                         file=str(ck / "config.json"), field="model.puzzle_emb_mode")


def export_checkpoint(ckpt: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Our checkpoint -> OUT/checkpoint (reference state dict, EMA weights) + OUT/identifiers.json + OUT/arch.json.
    OUT is new, empty or an earlier export (replaced whole); anything else only with `overwrite`."""
    ck, cfg = check_checkpoint(ckpt)
    _check_exportable(ck, cfg)
    claim_output(out, "export", inputs=[owning_run(ckpt), ck], overwrite=overwrite)
    rows = checkpoint.load_puzzle_rows(ck)
    state = checkpoint.load_weights(ck, ema=True)
    out = Path(out)
    claim_folder(out, "export", inputs=[owning_run(ckpt), ck], overwrite=overwrite)
    if cfg["model"].get("name", TRMConfig.name) == "urm":
        state = urm_reference_state(state, cfg["model"])
    ref = {PREFIX + k: v.contiguous() for k, v in state.items()}
    tmp = out / ".checkpoint.tmp"
    torch.save(ref, tmp)
    tmp.replace(out / "checkpoint")
    ids = Path(cfg["data"]["path"]) / "identifiers.json"
    if rows is not None:  # the checkpoint's own row map: right even when the dataset has moved or changed
        write_json(out / "identifiers.json", rows["versions"])
    elif ids.is_file():
        shutil.copyfile(ids, out / "identifiers.json")
    elif (ids.parent / "meta.json").is_file():  # a format-2 dataset computes its names
        write_json(out / "identifiers.json", arc_dataset.ArcStore(ids.parent).identifiers)
    arch = urm_reference_arch(cfg["model"]) if cfg["model"].get("name", TRMConfig.name) == "urm" else cfg["model"]
    write_json(out / "arch.json", arch, indent=True)
    return out / "checkpoint"


URM_KEPT_IN_FORWARD_DTYPE = re.compile(r"(mlp\.dwconv\.(weight|bias)|init_hidden)$")


def urm_reference_state(state: dict[str, torch.Tensor], model: dict) -> dict[str, torch.Tensor]:
    """Our URM weights with the tensors the reference stores in its forward dtype cast to the run's."""
    dtype = DTYPES[model.get("forward_dtype", "bfloat16")]
    return {k: v.to(dtype) if URM_KEPT_IN_FORWARD_DTYPE.search(k) else v for k, v in state.items()}


def urm_reference_arch(model: dict) -> dict:
    """Our model config under the URM reference's field names (its URMConfig; config/arch/urm.yaml)."""
    return {"name": "urm.urm@URM", "loops": model["halt_max_steps"], "num_layers": model["L_layers"],
            "H_cycles": model["H_cycles"], "L_cycles": model["L_cycles"], "hidden_size": model["hidden_size"],
            "num_heads": model["num_heads"], "expansion": model["expansion"],
            "puzzle_emb_ndim": model["puzzle_emb_ndim"], "pos_encodings": model["pos_encodings"],
            "rms_norm_eps": model["rms_norm_eps"], "rope_theta": model["rope_theta"],
            "forward_dtype": model["forward_dtype"], "seq_len": model["seq_len"], "vocab_size": model["vocab_size"],
            "num_puzzle_identifiers": model["num_puzzle_identifiers"]}
