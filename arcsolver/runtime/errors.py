"""User-facing input errors.

Every problem with a user's input (a file, a task, a field) is raised as `InputError`; the CLI turns it into one
line on stderr and exit code 2, never a traceback. The message names the file, the task and the field path
(`train[2].output[5]`) so the user can find the culprit without reading our code.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad user input. `str(err)` is the complete one-line message."""

    def __init__(self, message: str, *, file: str | None = None, task: str | None = None, field: str | None = None):
        self.file, self.task, self.field, self.reason = file, task, field, message
        parts = []
        if file:
            parts.append(str(file))
        if task:
            parts.append(f"task {task}")
        if field:
            parts.append(field)
        where = ": ".join(parts)
        super().__init__(f"{where}: {message}" if where else message)
