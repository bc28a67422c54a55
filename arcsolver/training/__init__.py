"""Training: configuration and presets (`config`, `presets/*.toml`, `checks`), the training loop (`train`) and its
gradient accumulation (`grad_accumulation`), test-time fine-tuning and its deadline plan (`finetune`,
`finetune_plan`), reference checkpoints both ways (`import_ckpt`).

Stage 5 of 7 (runtime < data < model < inference < training < kaggle < cli): may import every stage below it
(training evaluates with inference's rollouts and votes).
"""
