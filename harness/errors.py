"""Errors a user can act on.

Every failure that comes from the user's input (a path, a task name, a file) is raised as a
`HarnessError` that says what was wrong, where, and what to do. The CLI prints it as one line
and exits with code 2; library callers can catch it like any exception.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input: `what` went wrong, `where`, and `fix` (what to do)."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.what
        if self.where:
            text += f" [at {self.where}]"
        if self.fix:
            text += f" -> {self.fix}"
        return text
