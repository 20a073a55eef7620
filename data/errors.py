"""The one error type for input the project refuses."""

from __future__ import annotations

from os import PathLike


class BadInputError(Exception):
    """A file or argument that cannot be used, with the path and a one-line reason.

    Entry points catch it, print `str(err)` on one line, and exit with status 2.
    """

    def __init__(self, path: str | PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
