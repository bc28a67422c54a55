"""The model's configuration, `TRMConfig`: every `arch.*` field declared once with its type, default, bounds and
help (runtime/settings.py). Shared by TRM (trm.py) and URM (urm.py). Field names and meaning follow the reference's
config (docs/trm.md, 'Configuration'); URM's reference names map as loops -> halt_max_steps, num_layers -> L_layers.

Kept apart from trm.py so that checking a preset or a checkpoint's config.json imports no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from arcsolver.runtime.settings import setting

# Enumerations whose values the code dispatches on; anything else would silently mean "no positions" or crash later.
MODEL_NAMES = ("trm", "urm")  # build.build_model dispatches on these
POS_ENCODINGS = ("rope", "learned", "none")
FORWARD_DTYPES = ("bfloat16", "float32", "float16")
PUZZLE_EMB_MODES = ("version", "task")
LOSS_TYPES = ("stablemax_cross_entropy", "softmax_cross_entropy")  # losses.ACTLossHead dispatches on these
# The loss head's default (a training field, TrainConfig.loss_type; checkpoints without the field used it).
DEFAULT_LOSS_TYPE = LOSS_TYPES[0]


@dataclass
class TRMConfig:
    """A recursive model's architecture (the `[arch]` table of a preset, `--set arch.<field>=VALUE`, and the `model`
    entry of a checkpoint's config.json)."""

    name: str = setting("trm", "Which recursive model: trm (model/trm.py) or urm (model/urm.py).",
                        choices=MODEL_NAMES)
    batch_size: int = setting(1, "Rows per batch the model is built for (the carry's size).", low=1)
    seq_len: int = setting(900, "Tokens per grid (canvas side squared).", low=1)
    puzzle_emb_ndim: int = setting(512, "Width of a puzzle-embedding row (0: no puzzle embedding).", low=0)
    num_puzzle_identifiers: int = setting(1, "Rows of the puzzle-embedding table (from the dataset).", low=1)
    vocab_size: int = setting(12, "Token vocabulary: pad, end of row, 10 colours.", low=2)
    H_cycles: int = setting(3, "Answer updates per supervision step (the first H_cycles - 1 without gradients).",
                            low=1)
    L_cycles: int = setting(4, "Latent updates per answer update.", low=1)
    H_layers: int = setting(0, "Ignored by TRM; kept so reference configs load.", low=0)
    L_layers: int = setting(2, "Blocks of the one network.", low=1)
    hidden_size: int = setting(512, "Model width.", low=1)
    expansion: float = setting(4.0, "SwiGLU hidden width / model width.", low=0, low_open=True)
    num_heads: int = setting(8, "Attention heads.", low=1)
    pos_encodings: str = setting("rope", "Positions: rope, learned, or none.", choices=POS_ENCODINGS)
    rms_norm_eps: float = setting(1e-5, "RMS norm epsilon.", low=0, low_open=True)
    rope_theta: float = setting(10000.0, "RoPE base.", low=0, low_open=True)
    halt_max_steps: int = setting(16, "Supervision steps per example (ACT's limit).", low=1)
    halt_exploration_prob: float = setting(0.1, "Probability of a random minimum number of steps in training.",
                                           low=0, high=1.0)
    forward_dtype: str = setting("bfloat16", "Activation dtype of the forward pass.", choices=FORWARD_DTYPES)
    mlp_t: bool = setting(False, "Mix tokens with a SwiGLU across the sequence instead of attention.")
    puzzle_emb_len: int = setting(16, "Puzzle-prefix slots (0: ceil(puzzle_emb_ndim / hidden_size)).", low=0)
    no_ACT_continue: bool = setting(True, "Halt on q_halt > 0 alone (no continue target).")
    puzzle_emb_mode: str = setting(
        "version", "version: one puzzle row per augmented version (the reference); task: one row per task plus an "
        "augmentation code (model/puzzle_embedding.py).", choices=PUZZLE_EMB_MODES)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TRMConfig":
        """A config from a checkpoint's or preset's dict: missing fields take their declared defaults (checkpoints
        written before a field existed still load); unknown keys are refused by the checks before this."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @property
    def prefix_len(self) -> int:
        """Number of puzzle-prefix slots in front of the sequence (the reference's `puzzle_emb_len` attribute)."""
        if self.puzzle_emb_len:
            return self.puzzle_emb_len
        return -(-self.puzzle_emb_ndim // self.hidden_size)

    @property
    def total_len(self) -> int:
        return self.seq_len + self.prefix_len


def model_mode(model: dict[str, Any]) -> str:
    """The puzzle-embedding mode of a checkpoint's `model` config (its declared default when the config predates
    the field)."""
    return model.get("puzzle_emb_mode", TRMConfig.puzzle_emb_mode)
