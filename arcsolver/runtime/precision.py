"""Numeric precision per device: the dtype the network's forward runs in, and whether the loss is scaled.

One decision, `choose_precision`, used by train, predict and finetune alike:
  * setting "auto" (the default of `--set forward_dtype=...`):
      CPU                                 -> float32 (bf16/fp16 matmuls are slower than fp32 on most CPUs)
      CUDA, compute capability >= 8.0     -> bfloat16 (A100, L4, H100: bf16 tensor cores, no loss scaling needed),
                                             or float32 when the model config asks for float32
      CUDA, compute capability <  8.0     -> float32 (T4, V100, P100: no bf16 units; fp16 is opt-in, see below)
  * setting float32 / bfloat16 / float16: a command, honoured on every device (with a note when it will be slow).
    float16 trains with a `torch.amp.GradScaler` (dynamic loss scaling), `LossScaling` below.
The model config's `forward_dtype` (a preset's `arch.forward_dtype`, or what a checkpoint was trained with) is a
preference that "auto" consults, never a command: a checkpoint trained in bf16 on an H100 runs in fp32 on a T4 or a
CPU, and a checkpoint from a T4 runs in bf16 on an A100. Checkpoints keep the preference, not the device's choice.

How the dtype is applied: the network keeps fp32 weights and casts them to the forward dtype where they are used
(layers.CastedLinear), normalisations and the loss run in fp32/fp64 -- the reference's scheme, which is what
autocast would do for these layers, without autocast's per-op dispatch. Accelerate's own mixed precision is pinned
off (see `accelerator_kwargs`) so that a user's saved `accelerate config` cannot add a second, different scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from accelerate import Accelerator

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.report import say

SETTINGS = ("auto", "float32", "bfloat16", "float16")
BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class DeviceInfo:
    """What the precision rule needs to know about a device (tests build these by hand)."""

    type: str  # "cpu" | "cuda" | other torch device types
    name: str = ""
    capability: tuple[int, int] | None = None  # CUDA compute capability


def device_info(device: torch.device | str) -> DeviceInfo:
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DeviceInfo("cuda", torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)))
    return DeviceInfo(device.type, device.type.upper())


@dataclass(frozen=True)
class Precision:
    dtype: str  # "float32" | "bfloat16" | "float16": the forward dtype the model is built with
    loss_scaling: bool  # True for float16: backward through a GradScaler
    reason: str

    def describe(self) -> str:
        return f"precision: {self.dtype}{' with loss scaling' if self.loss_scaling else ''} ({self.reason})"


def choose_precision(setting: str, preference: str, device: DeviceInfo) -> Precision:
    """The forward dtype for `device`. `setting`: "auto" or a dtype name (a command); `preference`: the model
    config's forward_dtype (a preset's or a checkpoint's)."""
    if setting not in SETTINGS:
        raise InputError(f"must be one of {', '.join(SETTINGS)}, got {setting!r}", field="forward_dtype")
    where = device.name or device.type
    if device.type == "cuda" and device.capability is not None:
        where = f"{device.name or 'CUDA GPU'}, compute capability {device.capability[0]}.{device.capability[1]}"
    if setting != "auto":
        note = ""
        if device.type == "cpu" and setting != "float32":
            note = "; slower than float32 on most CPUs"
        elif setting == "bfloat16" and device.type == "cuda" and _capability(device) < BF16_MIN_CAPABILITY:
            note = "; no bf16 units before compute capability 8.0, emulated and slow"
        return Precision(setting, setting == "float16", f"forward_dtype={setting} requested on {where}{note}")
    if device.type == "cuda":
        if _capability(device) >= BF16_MIN_CAPABILITY:
            if preference == "float32":
                return Precision("float32", False, f"{where}; the model config asks for float32")
            return Precision("bfloat16", False, f"{where} >= 8.0 has bf16 tensor cores")
        return Precision("float32", False, f"{where} < 8.0 has no bf16 units; --set forward_dtype=float16 opts "
                                           "in to fp16 with loss scaling")
    return Precision("float32", False, f"{where}: bf16/fp16 matmuls are slower than fp32 on most CPUs")


def _capability(device: DeviceInfo) -> tuple[int, int]:
    return tuple(device.capability) if device.capability is not None else (0, 0)


_ANNOUNCED: set[str] = set()


def announce(precision: Precision, enabled: bool = True) -> None:
    """Print the choice and its reason on stderr, once per process (finetune trains several phases)."""
    line = precision.describe()
    if enabled and line not in _ANNOUNCED:
        _ANNOUNCED.add(line)
        say(line)


def accelerator_kwargs() -> dict:
    """Accelerator settings that fix the maths in code: `accelerate launch` passes a user's saved config (or its
    flags) through environment variables, which Accelerate reads only for arguments left unset. The training loop
    calls backward itself and applies precision through the model (above), so Accelerate's fp16/bf16 autocast and
    scaler, or a dynamo backend compiling the DDP wrapper, would change the maths or be silently ignored."""
    return {"mixed_precision": "no", "dynamo_backend": "no"}


def make_accelerator(cpu: bool, **kwargs) -> "Accelerator":
    """The Accelerator with its maths pinned in code (no mixed precision, no dynamo), whatever a user's saved
    `accelerate config` or `accelerate launch` flags say (`accelerator_kwargs`). Shared by train and predict."""
    return Accelerator(cpu=cpu, **accelerator_kwargs(), **kwargs)


def run_precision(setting: str, preference: str, device: torch.device, *, announce_it: bool) -> Precision:
    """The forward dtype for this device (`choose_precision`), printed once per process. Shared by train and
    predict, so both apply the same rule."""
    precision = choose_precision(setting, preference, device_info(device))
    announce(precision, announce_it)
    return precision


class LossScaling:
    """Backward and optimizer steps with dynamic loss scaling (float16), or plain ones (any other dtype).

    Both optimizers take part: Adam-atan2 through the GradScaler (unscale, then step unless a gradient is inf/nan);
    the sparse puzzle-embedding rows' gradients are unscaled here and the sign-SGD step is skipped with it, on every
    process at once. A step skipped for overflow halves the scale (the GradScaler's back-off); `steps_skipped`
    counts them."""

    def __init__(self, enabled: bool, device_type: str, init_scale: float = 2.0 ** 16):
        self.enabled, self.device_type = enabled, device_type
        self.scaler = torch.amp.GradScaler(device_type, init_scale=init_scale, enabled=enabled)
        self.steps_skipped = 0

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.enabled else loss).backward()

    def step(self, opt, emb_opt) -> bool:
        """Apply both optimizers (either may be None); returns False when the step was skipped for overflow."""
        if not self.enabled:
            if opt is not None:
                opt.step()
            if emb_opt is not None:
                emb_opt.step()
            return True
        scale = float(self.scaler.get_scale())
        grads = []
        if opt is not None:
            self.scaler.unscale_(opt)
            grads += [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if emb_opt is not None:
            emb_grads = [w.grad for w in emb_opt.leaves() if w.grad is not None]
            for g in emb_grads:
                g.div_(scale)
            grads += emb_grads
        finite = self._finite_everywhere(_all_finite(grads))
        if finite:
            if opt is not None:
                self.scaler.step(opt)
            if emb_opt is not None:
                emb_opt.step()
        else:
            self.steps_skipped += 1
        if opt is not None:
            self.scaler.update()
        if not finite and float(self.scaler.get_scale()) >= scale:  # the overflow was in the embedding rows only
            self.scaler.update(scale * self.scaler.get_backoff_factor())
        return finite

    def _finite_everywhere(self, finite: bool) -> bool:
        """The puzzle-embedding rows' gradients differ between processes (Adam's are already all-reduced): every
        process must skip or step together, or sign-SGD's all-gather would wait for a process that skipped."""
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return finite
        flag = torch.tensor([1.0 if finite else 0.0], device=torch.device(self.device_type))
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict(), "steps_skipped": self.steps_skipped} if self.enabled else {}

    def load_state_dict(self, state: dict | None) -> None:
        if self.enabled and state:
            self.scaler.load_state_dict(state["scaler"])
            self.steps_skipped = int(state.get("steps_skipped", 0))


def _all_finite(grads: list[torch.Tensor]) -> bool:
    if not grads:
        return True
    # one device-to-host sync for all the tensors
    return not bool(torch.stack([(~torch.isfinite(g)).any() for g in grads]).any())
