"""Data: ARC tasks (`arc_tasks`), the augmentation maps (`dihedral`, `colors`), the token canvas (`encoding`), the
prepared stores (`arc_dataset`, `dense_dataset`), batches painted on the fly (`loader`), the sanity benchmarks
(`sudoku`, `maze`), `arcsolver prepare` (`prepare`), procedural task families (`families`, `generate`) and the dataset
checks (`checks`).

Stage 2 of 7 (runtime < data < model < inference < training < kaggle < cli): may import `arcsolver.runtime`.
"""
