"""How a run reports while it works: one progress bar, one way to say a line, and warnings — all here.

Choices. stdout is a command's result (the closing summary the CLI prints, `--json`); everything said along the
way (the precision choice, deadline plans, evaluations, flushes, fallbacks, interrupts) goes to stderr through
`say`, which writes above an open progress bar instead of through it. The bar (`progress_bar`) is tqdm on stderr,
refreshed every 0.1 s on a terminal and every 30 s into a log file. Library warnings (an out-of-memory retry, a task
that fell back to its inputs) use the standard `logging` logger of their module, so an application can route them
(the Kaggle notebook logs to a file); when the application has not configured logging, they print through `say`
as plain lines, like everything else.
"""

from __future__ import annotations

import logging
import sys


def say(message: str) -> None:
    """One line to stderr, above the progress bar when one is open (tqdm.write clears and redraws it)."""
    # tqdm is imported where it is used: the CLI imports this module to parse options, and tqdm would add ~38 ms
    # to the ~90 ms of `import arcsolver.cli` (measured with python -X importtime).
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


def bar_interval() -> float:
    """Seconds between progress-bar refreshes: tqdm's 0.1 on a terminal, 30 when stderr is a log file (a bar line
    every 0.1 s makes multi-megabyte logs)."""
    return 0.1 if sys.stderr.isatty() else 30.0


def redraw_now() -> bool:
    """Whether a change to the bar (its total, its figures) should be drawn at once: on a terminal yes; into a log
    file no, the next timed refresh shows it (a forced redraw there is one more bar line in the log each time)."""
    return sys.stderr.isatty()


def progress_bar(desc: str, *, total: int | None = None, initial: int = 0, enabled: bool = True,
                 leave: bool = True):
    """The run's progress bar on stderr (None when `enabled` is false: other ranks, quiet runs). `leave=False`: the
    bar disappears when closed (a phase inside another bar's, such as an evaluation during training: it is drawn on
    the same line, which the outer bar redraws at its next tick; a second line would need cursor moves, escape codes
    in a log file)."""
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=bar_interval(),
                file=sys.stderr, leave=leave, position=None if leave else 0)


class _SayHandler(logging.Handler):
    """Prints `arcsolver.*` warnings through `say`, unless the application configured logging itself (a handler on
    the root logger: then the record goes there only, once)."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        try:
            say(self.format(record))
        except Exception:  # noqa: BLE001 - a warning that cannot be printed must not stop the run
            self.handleError(record)


def logger(name: str) -> logging.Logger:
    """The logger of module `name` (an `arcsolver.*` name), its warnings printed as described above."""
    top = logging.getLogger("arcsolver")
    if not any(isinstance(h, _SayHandler) for h in top.handlers):
        top.addHandler(_SayHandler(logging.WARNING))
    return logging.getLogger(name)
