"""Model: the networks (`layers`, `trm`, and `urm` on TRM's ACT wrapper), their loss head (`losses`), the sparse puzzle
embedding (`puzzle_embedding`), optimizers (`adam_atan2`, `muon`), EMA (`ema`), the model a config describes
(`build`), the memory model (`memory_model`), checkpoints on disk (`checkpoint`) and the model-field/checkpoint checks
(`checks`). State-dict names match the references', so checkpoints move both ways.

Stage 3 of 7 (runtime < data < model < inference < training < kaggle < cli): may import `arcsolver.runtime` and
`arcsolver.data`.
"""
