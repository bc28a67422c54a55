"""Model: the network (`layers`, `trm`), its loss head (`losses`), the sparse puzzle embedding (`puzzle_embedding`),
optimizers (`adam_atan2`), EMA (`ema`), the model a config describes (`build`), the memory model (`memory_model`),
checkpoints on disk (`checkpoint`) and the model-field/checkpoint checks (`checks`). State-dict names match the
reference's, so checkpoints move both ways.

Stage 3 of 7 (runtime < data < model < inference < training < kaggle < cli): may import `arcsolver.runtime` and
`arcsolver.data`.
"""
