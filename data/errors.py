"""The one error type for input the project refuses."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from os import PathLike


class BadInputError(Exception):
    """A file or argument that cannot be used, with the path and a one-line reason.

    Entry points catch it, print `str(err)` on one line, and exit with status 2.
    """

    def __init__(self, path: str | PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def refusal_exit(err: BadInputError, debug: bool = False) -> int:
    """Print a refused input as the one stderr line every entry point gives and return exit status 2.

    With `debug` the error is re-raised instead, so its traceback shows.
    """
    if debug:
        raise err
    print(f"error: {err}", file=sys.stderr)
    return 2


def refuse_unless_readable(
    paths: Sequence[str | PathLike], read: Callable, inputs: Sequence[str | PathLike], found: str, noun: str
) -> None:
    """Refuse a batch before anything is written: no files `found` under `inputs`, a single file that `read`
    refuses (its own error, naming it), or none of several readable. Batches with some readable files pass."""
    where = ", ".join(map(str, inputs))
    if not paths:
        raise BadInputError(where, f"no {found} found")
    if len(paths) == 1:
        read(paths[0])
        return
    for path in paths:
        try:
            read(path)
            return
        except BadInputError:
            continue
    raise BadInputError(where, f"none of the {len(paths)} {noun} could be read")
