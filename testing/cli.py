"""The main() every judge in testing/ shares: parse, run, print the report; bad input is one line, exit 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from data.errors import BadInputError, refusal_exit


def main_of(
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], dict],
    report: Callable[[dict], str],
) -> Callable[[list[str] | None], int]:
    """A main(argv) that prints report(run(parse_args(argv))) and turns BadInputError into its one-line refusal."""

    def main(argv: list[str] | None = None) -> int:
        args = parse_args(argv)
        try:
            print(report(run(args)))
        except BadInputError as err:
            return refusal_exit(err, args.debug)
        return 0

    return main
