"""How far our rollout and the reference code's evaluation loop drift apart, step by step, on the same weights.

Explains a "same preds: NO" in bench_model.py's table: prints max |z_H difference| after each supervision step, then
how many predicted tokens differ after the last one and the top-2 logit margins there. Needs --reference DIR (a
TinyRecursiveModels checkout), like bench_model.py.

    python benchmarks/rollout_drift.py --reference DIR --config c
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_model as bm  # noqa: E402

from arcsolver.inference.rollout import Rollout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, metavar="DIR")
    ap.add_argument("--config", default="c", choices=sorted(bm.BATCH))
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = bm.config(args.config)
    other = bm.Reference(args.reference)
    ours = bm.build_ours(cfg)
    theirs = other.build(cfg, ours)
    batch = bm.make_batch(cfg, seed=1)
    a, b = Rollout(ours.model, batch), other.rollout(theirs, batch)
    for s in range(args.steps):
        a.step()
        b.step()
        z_ref = b.carry.inner_carry.z_H.float()
        print(f"step {s + 1}: max |z_H diff| {float((a.inner.from_internal(a.latents[0]).float() - z_ref).abs().max()):.2e} "
              f"(max |z_H| {float(z_ref.abs().max()):.2f})", flush=True)
    diff = a.result()[0] != b.result()[0]
    with torch.inference_mode():
        logits, _ = a.inner.heads(a.latents[0])
    top2 = logits.float().topk(2, -1).values
    margin = top2[..., 0] - top2[..., 1]
    print(f"differing predicted tokens: {int(diff.sum())} of {diff.numel()}")
    if diff.any():
        print(f"top-2 logit margin where they differ: median {float(margin[diff].median()):.3f}, "
              f"max {float(margin[diff].max()):.3f}; overall median {float(margin.median()):.3f}")


if __name__ == "__main__":
    main()
