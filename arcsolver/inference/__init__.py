"""Inference: rollouts and evaluation (`rollout`), micro-batches and the out-of-memory retry (`microbatch`), undo +
vote (`vote`), `arcsolver predict` (`predict`), the Kaggle submission file (`submission`), scoring (`score`) and
pictures (`show`).

Stage 4 of 7 (runtime < data < model < inference < training < kaggle < cli): may import `arcsolver.runtime`,
`arcsolver.data` and `arcsolver.model`.
"""
