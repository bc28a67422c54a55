"""Runtime: what every stage needs and that knows nothing of ARC or the model: the one error type (`errors`), JSON
and atomic writes (`jsonio`), durations (`units`), the clock, deadlines and plans (`deadline`), SIGINT/SIGTERM
(`interrupts`), processes agreeing to stop (`ranks`), the dtype per device and the Accelerator (`precision`),
torch.compile with an eager fallback (`compilation`), metrics logs (`metrics_log`), progress bar, lines and
warnings (`report`), function defaults read for the command line (`defaults`) and the shared value/output checks
(`checks`).

Stage 1 of 7 (runtime < data < model < inference < training < kaggle < cli): imports only the standard library and
third-party packages, never another arcsolver stage.
"""
