"""arcsolver: a Tiny Recursive Model (TRM) toolkit for the ARC Prize.

Subpackages by pipeline stage; imports only go down this order (tests/test_layering.py checks every module):

    runtime < data < model < inference < training < kaggle < cli

  runtime/    errors, JSON and atomic writes, durations and deadlines, signals, precision, torch.compile, metrics
  data/       ARC tasks, augmentation maps, the token canvas, the prepared stores, the loader, Sudoku/Maze, generators
  model/      the network (layers, TRM, losses, puzzle embedding), optimizers, EMA, the memory model, checkpoints
  inference/  rollouts, undo + vote, `predict`, the submission file, scoring, pictures
  training/   configuration + presets, the training loop, test-time fine-tuning, reference checkpoint import
  kaggle/     the Kaggle package, the notebook's runner and template, upload, local rehearsal
  cli.py      the `arcsolver` command, on top
"""

__version__ = "0.1.0"
