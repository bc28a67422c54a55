"""Benchmark: the memory model (arcsolver/model/memory_model.py) against the measured peak RSS of training steps on CPU.

For each configuration a fresh process imports everything, notes its resident memory, then builds the model, the
optimizers and the EMA exactly as `train` does and runs two real training steps (forward + backward in micro-batches
of `rows`, Adam-atan2, sign-SGD on the puzzle embedding, EMA) on a random batch. Measured = peak RSS
(`ru_maxrss`) minus the RSS before the model existed; predicted = `training_memory(cfg, rows, batch).total`.
The model is used on GPUs to choose `--device-batch-size`; on CPU the same allocations happen (fp32), so RSS is the
honest check. The child runs with MALLOC_MMAP_THRESHOLD_=65536: otherwise glibc raises its mmap threshold after the
first large free and keeps later freed tensors in its heap, so RSS would measure the allocator's caching (+20-30%
here) rather than the tensors (CUDA's caching allocator is what the safety margin is for on GPUs).
Target: predicted within +-25% of measured.

    python benchmarks/bench_memory.py          # ~1-2 min on 2 cores, peak < 1 GB
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONFIGS = {
    # name: (TRMConfig fields, local batch, rows per micro-batch)
    "attention h128 canvas20 b16": (dict(seq_len=400, hidden_size=128, num_heads=4, L_cycles=3), 16, 16),
    "attention h256 canvas30 b8/4": (dict(seq_len=900, hidden_size=256, num_heads=8, L_cycles=2), 8, 4),
    "mlp_t h128 sudoku b64/32": (dict(seq_len=81, hidden_size=128, mlp_t=True, pos_encodings="none", L_cycles=4,
                                      puzzle_emb_len=16), 64, 32),
}


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(name: str) -> dict:
    """Runs in the child process: two real training steps of config `name`."""
    import torch

    from arcsolver.model.adam_atan2 import AdamAtan2
    from arcsolver.model.ema import EMA
    from arcsolver.model.memory_model import training_memory
    from arcsolver.training.grad_accumulation import accumulate, draw_halt_noise
    from arcsolver.model.puzzle_embedding import SignSGDSparse
    from arcsolver.model.build import build_model
    from arcsolver.model.trm import TRMConfig

    torch.set_num_threads(1)
    fields, batch, rows = CONFIGS[name]
    cfg = TRMConfig(batch_size=batch, num_puzzle_identifiers=1000, puzzle_emb_ndim=fields["hidden_size"],
                    forward_dtype="float32", H_cycles=3, L_layers=2, halt_max_steps=4, **fields)
    g = torch.Generator().manual_seed(0)
    data = {"inputs": torch.randint(2, 12, (batch, cfg.seq_len), dtype=torch.int32, generator=g),
            "labels": torch.randint(2, 12, (batch, cfg.seq_len), generator=g),
            "puzzle_identifiers": torch.randint(1, 1000, (batch,), dtype=torch.int32, generator=g)}
    base = rss_now()
    head = build_model(cfg)
    head.train()
    opt = AdamAtan2(list(head.parameters()), lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95))
    emb_opt = SignSGDSparse(head.model.inner.puzzle_emb, lr=1e-2, weight_decay=0.1)
    ema = EMA(head, 0.999)
    carry = head.initial_carry(data)

    def forward(c, b, n):
        c, loss, metrics, _, _ = head(carry=c, batch=b, halt_noise=n)
        return c, loss, metrics

    for _ in range(2):
        carry, _, _ = accumulate(forward, carry, data, batch, rows, draw_halt_noise(cfg, batch, torch.device("cpu")))
        opt.step()
        opt.zero_grad(set_to_none=True)
        emb_opt.step()
        emb_opt.zero_grad()
        ema.update(head)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    est = training_memory(cfg, rows, batch)
    return {"config": name, "measured": peak - base, "predicted": est.total, "fixed": est.fixed,
            "per_row": est.per_row, "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    print("memory model vs measured peak RSS growth, CPU fp32, two training steps each (fresh process per row)")
    print(f"{'config':34s} {'rows':>5s} {'predicted MB':>13s} {'measured MB':>12s} {'ratio':>7s}")
    worst = 0.0
    for name in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"})
        if out.returncode:
            print(out.stderr[-2000:])
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = r["predicted"] / r["measured"]
        worst = max(worst, abs(ratio - 1))
        print(f"{name:34s} {r['rows']:5d} {r['predicted'] / 1e6:13.1f} {r['measured'] / 1e6:12.1f} {ratio:7.3f}")
    print(f"worst deviation {worst * 100:.1f}% (target <= 25%): {'OK' if worst <= 0.25 else 'OUT OF RANGE'}")
    return 0 if worst <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
