import json
import socket
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "arcsolver" / "data" / "bundled"


def write_task(folder: Path, name: str, task: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name}.json"
    p.write_text(json.dumps(task))
    return p


def random_task(rng: np.random.Generator, n_train=3, n_test=1, max_side=8, colors=(1, 2, 3, 4, 5)) -> dict:
    def grid():
        h, w = int(rng.integers(1, max_side + 1)), int(rng.integers(1, max_side + 1))
        return rng.choice((0,) + tuple(colors), size=(h, w)).tolist()
    return {"train": [{"input": grid(), "output": grid()} for _ in range(n_train)],
            "test": [{"input": grid(), "output": grid()} for _ in range(n_test)]}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------------------------
# GPU tests: marked `gpu` (registered in pyproject.toml), skipped -- never silently -- where no CUDA device is visible.


def cuda_devices() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_skip_reason(needed: int = 1) -> str | None:
    """Why a test needing `needed` CUDA GPUs cannot run here (None when it can)."""
    import torch
    have = cuda_devices()
    if have >= needed:
        return None
    if torch.version.cuda is None:
        return (f"needs {needed} CUDA GPU(s): none visible (torch {torch.__version__} is a CPU-only build; "
                "`make install TORCH=...` with a CUDA build)")
    return f"needs {needed} CUDA GPU(s), {have} visible (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is None:
            continue
        reason = gpu_skip_reason(int(marker.kwargs.get("count", 1)))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    """A TCP port nobody listens on now, for `accelerate launch --main_process_port`: fixed ports collide when two
    multi-process tests run at once (the suite runs on two pytest-xdist workers).

    Drawn at random below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default), not with
    bind(port 0): a port from that range is the kind the kernel hands next to any outgoing connection, and the other
    worker's gloo ranks open dozens of them, so a port picked that way could be taken before rank 0 listens on it.
    (The rank-1 aborts once blamed on this were the teardown abort of runtime/process_end.py.)"""
    import random
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def said_before_the_launcher(stderr: str) -> str:
    """The stderr of an `accelerate launch` up to torchrun's own traceback: what the ranks said (e.g. an abort)."""
    cut = stderr.find("Traceback (most recent call last):")
    return stderr[:cut] if cut > 0 else stderr


def launch_failure(stderr: str) -> str:
    """What a failed `accelerate launch` said before torchrun's own traceback (the rank's error, e.g. an abort
    message), then the launcher's root-cause block: the launcher's traceback alone never names the cause."""
    root = stderr.rfind("Root Cause")
    return said_before_the_launcher(stderr)[-2500:] + ("\n...\n" + stderr[root:root + 600] if root > 0 else "")


def bundled_tiny_checkpoint(tmp: Path, num_aug: int) -> str:
    """The bundled tasks prepared as test tasks at canvas 10 (`tmp/data`), and a tiny-cpu model trained on them for
    2 steps (`tmp/run`), without its final evaluation: the checkpoint path."""
    from arcsolver.data.arc_dataset import TaskSet, build
    from arcsolver.data.arc_tasks import load_tasks
    from arcsolver.training.config import build_config
    from arcsolver.training.train import train

    data = tmp / "data"
    build(data, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=num_aug, seed=0, canvas=10)
    res = train(build_config("tiny-cpu", ["max_steps=2"], data=str(data), out=str(tmp / "run")), cpu=True,
                quiet=True, final_eval=False)
    return res.checkpoint


def untrained_checkpoint(folder: Path, hidden_size: int = 16, canvas: int = 30, name: str = "trm") -> Path:
    """An untrained checkpoint of a real (tiny) architecture: weights shaped as config.json says, as train writes
    them, plus a train_state.pt that packaging must leave out."""
    import dataclasses
    from safetensors.torch import save_file
    from arcsolver.model.build import build_model, model_config

    meta = {"seq_len": canvas * canvas, "vocab_size": 12, "num_puzzle_identifiers": 3}
    mcfg = model_config({"name": name, "hidden_size": hidden_size, "num_heads": 2, "L_layers": 1, "H_cycles": 1,
                         "L_cycles": 1, "expansion": 2.0, "forward_dtype": "float32"}, meta, 4)
    state = build_model(mcfg).state_dict()
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "ema.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model": dataclasses.asdict(mcfg), "train": {},
                                                    "data": {"kind": "arc", "canvas": canvas, **meta}}))
    (folder / "train_state.pt").write_bytes(b"optimizer state, not for Kaggle")
    return folder


def is_compiled(module) -> bool:
    """Whether `Module.compile` was applied to `module` in place (torch keeps the compiled call beside the module)."""
    return getattr(module, "_compiled_call_impl", None) is not None


def sigkill_at_first_checkpoint(cmd: list[str], run: Path, timeout_s: float = 120.0) -> str:
    """Start the training command `cmd` (writing to the run folder `run`) and SIGKILL it as soon as its first
    checkpoint exists; returns the checkpoint `latest` named at that moment."""
    import signal
    import subprocess
    import time
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while time.time() < deadline and not (run / "latest").exists():
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    return (run / "latest").read_text().strip()
