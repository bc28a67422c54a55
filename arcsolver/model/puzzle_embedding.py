"""The per-puzzle embedding table and its sparse sign-SGD optimizer (docs/trm.md, 'Puzzle embedding').

The table is a zero-initialised fp32 *buffer* `weights` [num_puzzle_identifiers, D], not a Parameter: it is left
out of the parameter count, of Adam and of EMA, and a gradient never materialises for all of it (ARC has ~876k rows,
~1.8 GB). In training (module in train mode, autograd on) the forward copies the batch's rows into a fresh leaf
tensor that requires grad and remembers (ids, leaf); `SignSGDSparse.step` then updates only those rows:
    p[id] <- p[id] * (1 - lr * wd) - lr * sign(sum of the gradients of every occurrence of id)
Rows of the batch whose gradient is zero still get the weight decay, as in the reference; rows handed out by a
forward whose leaf received no gradient at all (it never reached a backward) are left untouched, as the reference
skips its step when its leaf has no gradient.
Data parallel: when a torch.distributed process group is initialised, every process all-gathers the (ids, grads) of
all processes first, so all ranks apply the identical update and their tables stay equal without ever
broadcasting the table (ranks may hold different numbers of rows).
In evaluation, or without autograd, the forward is a plain lookup and records nothing.

Two modes (`arch.puzzle_emb_mode`, `model/config.PUZZLE_EMB_MODES`):
  * `version` (the reference's): one row per augmented version of every task (`SparsePuzzleEmbedding`; ARC-AGI-1 +
    ConceptARC at 1000 augmentations is 876k rows, 1.8 GB at width 512). Reference checkpoints move both ways.
  * `task`: one row per task plus a code for the augmentation (`TaskPuzzleEmbedding`), so the table does not grow
    with the augmentation count: the vector the network reads for task t under (dihedral d, colour map c) is
        task[t] + dihedral[d] + (1/sqrt(10)) * sum_k key_k * colour[c[k]]
    i.e. a learned row per dihedral transform (8) and a learned code per colour (10) that the permutation moves
    into the slot of the colour it replaces. The slots are fixed random +-1 keys (a persistent buffer drawn from its
    own generator, so the global RNG and the network's initial weights are the same in both modes); binding a code
    to a slot by an elementwise product keeps the sum linear in the learned rows while distinct (slot, colour)
    pairs give distinct vectors; 1/sqrt(10) keeps the ten-term sum at the scale of one row.
    The task table is the one that scales (one row per task, 100k tasks at width 512 = 205 MB): a zero-initialised
    buffer trained by the same sparse sign-SGD, the same mean-of-trained-rows start for unseen tasks. The 18
    augmentation rows are shared by every example, so they are ordinary parameters of the network (Adam-atan2, EMA,
    frozen with the network in fine-tuning's embeddings-only phase): as sign-SGD rows they would take a +-lr step in
    every coordinate at every step (every batch touches them), which measurably hurts (runs/LOG.md, 2026-11-30).
`table_rows(meta, mode)` is the row count of the (task or version) table for a prepared dataset; `row_names` the
name of every row (what checkpoints carry, so a table can be continued, extended or remapped by name).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from arcsolver.runtime.jsonio import read_json


class SparsePuzzleEmbedding(nn.Module):
    def __init__(self, num: int, dim: int, cast_to: torch.dtype = torch.float32):
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer("weights", torch.zeros(num, dim, dtype=torch.float32), persistent=True)
        # Leaves handed out since the last optimizer step, and their ids (several forwards accumulate).
        self.local_weights: list[torch.Tensor] | None = None
        self.local_ids: list[torch.Tensor] | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.reshape(-1).long()
        if not (self.training and torch.is_grad_enabled()):
            return self.weights[ids].to(self.cast_to)
        leaf = self.weights[ids].detach().requires_grad_(True)
        if self.local_weights is None:
            self.local_weights, self.local_ids = [], []
        self.local_weights.append(leaf)
        self.local_ids.append(ids)
        return leaf.to(self.cast_to)


NUM_DIHEDRAL, NUM_COLOURS = 8, 10
AUGMENTATION_COLUMNS = 1 + NUM_COLOURS  # a batch's "augmentations": [dihedral id, colour map c[0..9]]
_KEY_SEED = 0x5EED_C0DE


class TaskPuzzleEmbedding(nn.Module):
    """`task` mode: one row per task, a row per dihedral transform, a code per colour (see the module docstring).

    forward(task_ids [B], augmentations [B, 11] = (dihedral id, colour map)) -> [B, dim] in `cast_to`.
    State-dict keys (under `puzzle_emb.`): tasks.weights [num_tasks_rows, dim] (buffer; row 0 = blank, row i+1 =
    task i), dihedral [8, dim] and colours [10, dim] (parameters), colour_keys [10, dim] (fixed buffer)."""

    def __init__(self, num: int, dim: int, cast_to: torch.dtype = torch.float32):
        super().__init__()
        self.cast_to = cast_to
        self.tasks = SparsePuzzleEmbedding(num, dim)
        self.dihedral = nn.Parameter(torch.zeros(NUM_DIHEDRAL, dim))
        self.colours = nn.Parameter(torch.zeros(NUM_COLOURS, dim))
        g = torch.Generator().manual_seed(_KEY_SEED)
        keys = torch.randint(0, 2, (NUM_COLOURS, dim), generator=g, device="cpu").float() * 2 - 1
        self.register_buffer("colour_keys", keys.to(self.tasks.weights.device), persistent=True)

    @property
    def weights(self) -> torch.Tensor:
        """The task table (what "the puzzle rows" mean in this mode)."""
        return self.tasks.weights

    def forward(self, task_ids: torch.Tensor, augmentations: torch.Tensor) -> torch.Tensor:
        aug = augmentations.reshape(-1, AUGMENTATION_COLUMNS).long()
        colour = self.colours[aug[:, 1:]]  # [B, 10, dim]: slot k holds the code of the colour k became
        code = (colour * self.colour_keys).sum(1) * (1.0 / math.sqrt(NUM_COLOURS))
        return (self.tasks(task_ids.reshape(-1)) + self.dihedral[aug[:, 0]] + code).to(self.cast_to)


def table_rows(meta: dict, mode: str) -> int:
    """Rows of the puzzle table a model for this prepared dataset has: one per version + the blank (`version`),
    one per task + the blank (`task`; dense Sudoku/Maze data have no tasks: the blank row only)."""
    if mode == "version":
        return int(meta["num_puzzle_identifiers"])
    return int(meta.get("counts", {}).get("tasks", 0)) + 1


def row_names(mode: str, task_ids: list[str], identifiers: list[str]) -> list[str]:
    """The name of every row of the table (row 0 "<blank>"): the dataset's version names (`version`, the
    reference's identifiers.json) or its task ids (`task`)."""
    return list(identifiers) if mode == "version" else ["<blank>", *task_ids]


def blank_puzzle_inputs(rows: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """The puzzle keys of a batch of `rows` synthetic rows (blank row, identity augmentation), for both modes:
    puzzle_identifiers [rows], task_identifiers [rows], augmentations [rows, 11]."""
    augs = torch.zeros(rows, AUGMENTATION_COLUMNS, dtype=torch.int32, device=device)
    augs[:, 1:] = torch.arange(NUM_COLOURS, dtype=torch.int32, device=device)
    return {"puzzle_identifiers": torch.zeros(rows, dtype=torch.int32, device=device),
            "task_identifiers": torch.zeros(rows, dtype=torch.int32, device=device), "augmentations": augs}


def table_key(mode: str) -> str:
    """State-dict key of the table whose rows are named by the row map (versions, or tasks in task mode)."""
    return "model.inner.puzzle_emb." + ("tasks.weights" if mode == "task" else "weights")


def dataset_row_map(data, mode: str) -> dict:
    """The name -> row map of a model trained on the prepared dataset folder `data` in `mode`, as checkpoints carry
    it (`puzzle_rows.json`): {"mode", "tasks": task ids in dataset order (row i + 1 in task mode), and in version
    mode "versions": every row's name, the reference's identifiers.json}. Dense (Sudoku/Maze) data: no tasks, the
    blank row only."""
    root = Path(data)
    meta = read_json(root / "meta.json")
    arc = meta.get("kind") == "arc"
    out = {"mode": mode, "tasks": [t["id"] for t in read_json(root / "tasks.json")] if arc else []}
    if mode == "version":
        if arc:
            from arcsolver.data.arc_dataset import ArcStore
            out["versions"] = ArcStore(root).identifiers
        else:
            out["versions"] = ["<blank>"] * table_rows(meta, mode)
    return out


def map_row_names(row_map: dict) -> list[str]:
    """Every row's name (row 0 "<blank>") from a row map (`dataset_row_map`)."""
    return row_names(row_map["mode"], row_map["tasks"], row_map.get("versions", []))


def extend_table(old: torch.Tensor, old_names: list[str] | None, new_names: list[str]) -> tuple[torch.Tensor, int]:
    """A table for rows `new_names` from a trained table `old`: rows whose name `old_names` has keep their trained
    row, every other row starts at the mean of the trained rows (row 0, the blank, excluded; the reference's
    initialisation for unseen puzzles). `old_names` None (a checkpoint without a row map): all rows at the mean.
    Returns (table, rows kept)."""
    rows = old[1:] if old.shape[0] > 1 else old
    table = rows.mean(0, keepdim=True).expand(len(new_names), -1).clone()
    kept = 0
    if old_names is not None:
        where = {n: i for i, n in enumerate(old_names) if i > 0}
        pairs = [(j, where[n]) for j, n in enumerate(new_names) if j > 0 and n in where]
        if pairs:
            dst, src = zip(*pairs)
            table[list(dst)] = old[list(src)]
            kept = len(pairs)
    return table, kept

def table_bytes(module: nn.Module) -> int:
    """Bytes of a puzzle-embedding module's tables and buffers (works on the `meta` device: nothing allocated)."""
    return sum(b.numel() * b.element_size() for b in module.buffers())


def sparse_tables(emb: nn.Module) -> list[SparsePuzzleEmbedding]:
    """The sign-SGD-trained tables of a puzzle-embedding module, in a fixed order (the same on every rank)."""
    return [m for m in emb.modules() if isinstance(m, SparsePuzzleEmbedding)]


def _all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenation over ranks of each rank's `t` (first dims may differ between ranks)."""
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], dtype=torch.long, device=t.device)
    counts = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    counts = [int(c) for c in counts]
    top = max(counts)
    if t.shape[0] < top:  # all_gather needs equal shapes: pad, then trim
        t = torch.cat([t, t.new_zeros((top - t.shape[0],) + tuple(t.shape[1:]))])
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


class SignSGDSparse:
    """Sign-SGD with decoupled weight decay on the rows of a `SparsePuzzleEmbedding` used since the last step
    (`emb` may also be a module holding several, e.g. `TaskPuzzleEmbedding`: each table is stepped on its own).

    `lr` may be a float or a 0-d tensor, and changes with `set_lr` (the trainer's schedule). Call `step()` after
    backward, then `zero_grad()` to drop the recorded leaves.
    """

    def __init__(self, emb: nn.Module, lr: float | torch.Tensor = 0.0, weight_decay: float = 0.0):
        if float(lr) < 0 or weight_decay < 0:
            raise ValueError(f"lr and weight_decay must be >= 0 (got {float(lr)}, {weight_decay})")
        self.emb, self.lr, self.weight_decay = emb, lr, float(weight_decay)
        self.tables = sparse_tables(emb)

    def set_lr(self, lr: float | torch.Tensor) -> None:
        self.lr = lr

    def leaves(self) -> list[torch.Tensor]:
        """The rows handed out since the last step (leaf tensors), over every table."""
        return [w for t in self.tables for w in (t.local_weights or ())]

    @torch.no_grad()
    def step(self) -> None:
        for table in self.tables:
            self._step_table(table)

    def _step_table(self, emb: SparsePuzzleEmbedding) -> None:
        # Only leaves that received a gradient take part: a missing gradient means "no step", not "decay only".
        used = [(w.grad, i) for w, i in zip(emb.local_weights or (), emb.local_ids or ()) if w.grad is not None]
        if used:
            grads = torch.cat([g for g, _ in used])
            ids = torch.cat([i for _, i in used])
        else:  # this rank has no rows with a gradient, but its peers may: it still takes part in the gather
            grads = emb.weights.new_zeros((0, emb.weights.shape[1]))
            ids = torch.zeros(0, dtype=torch.long, device=emb.weights.device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grads, ids = _all_gather_cat(grads), _all_gather_cat(ids)
        if ids.numel() == 0:
            return
        uniq, inv = torch.unique(ids, return_inverse=True)
        summed = torch.zeros(len(uniq), grads.shape[1], dtype=torch.float32, device=grads.device)
        summed.index_add_(0, inv, grads.float())
        lr = self.lr
        rows = emb.weights[uniq]
        rows.mul_(1.0 - lr * self.weight_decay).sub_(torch.sign(summed) * lr)
        emb.weights[uniq] = rows

    def zero_grad(self, set_to_none: bool = True) -> None:
        for t in self.tables:
            t.local_weights = None
            t.local_ids = None

    def state_dict(self) -> dict:
        return {"lr": float(self.lr), "weight_decay": self.weight_decay}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.weight_decay = float(state["lr"]), float(state["weight_decay"])
