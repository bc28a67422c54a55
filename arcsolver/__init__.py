"""arcsolver: a Tiny Recursive Model (TRM) toolkit for the ARC Prize.

Modules, one concept each: `arc_tasks` (load and validate ARC JSON), `dihedral` and `colors` (augmentation maps),
`encoding` (30x30 token canvas), `arc_dataset` (compact augmented store), `loader` (on-the-fly batches),
`sudoku` / `maze` (sanity benchmarks), `prepare` (the `arcsolver prepare` command), `vote` (undo augmentations
and vote), `submission` (Kaggle file, complete by construction), `score`, `show` (pictures).
"""

__version__ = "0.1.0"
