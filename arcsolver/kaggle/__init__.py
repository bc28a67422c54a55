"""Kaggle: the ready-to-push folder (`package`, from `credentials`, `metadata`, `wheel` and `notebook`), the notebook's code (`runner`, and its reading of the
competition's task files, `tasks`), the upload (`upload`) and the local rehearsal of a packaged notebook
(`rehearse`). `notebook_template.py` is the notebook's cells, package data read as text (so an installed wheel can
package), never imported.

Stage 6 of 7 (runtime < data < model < inference < training < kaggle < cli): may import every stage below it.
Only `arcsolver.cli` sits above.
"""
