"""Timings of the project's pipelines, each run as its users run it (whole processes, wall clock).

    python testing/benchmark.py prepare --input SONGS_DIR [--maps 140] [--json]

Each subcommand is one `add_<name>(subparsers)` function registered in SUBCOMMANDS; to add one, write the
function (it sets `func` and `show` with `set_defaults`; `common` carries --json) and add it to the dict.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# ---------------------------------------------------------------- prepare


def run_prepare(args: argparse.Namespace) -> dict:
    """Copy up to --maps maps into a temp Songs folder, then time a fresh `python -m data.prepare` on it."""
    source = Path(args.input)
    if not source.is_dir():
        raise SystemExit(f"{source}: not a folder")
    maps = sorted(source.rglob("*.osu"))
    # Spread the pick over the whole corpus (every k-th map), so it is not one artist's sets.
    step = max(1, len(maps) // args.maps) if args.maps else 1
    picked = maps[::step][: args.maps] if args.maps else maps
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        songs = Path(tmp) / "songs"
        for path in picked:
            target = songs / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        output = Path(tmp) / "cache"
        command = [PYTHON, "-m", "data.prepare", "--input", str(songs), "--output", str(output), "--no-progress"]
        if args.workers:
            command += ["--workers", str(args.workers)]
        timings = []
        cpu_s = []
        for _ in range(args.repeat):
            shutil.rmtree(output, ignore_errors=True)
            cpu_before = _children_cpu_s()
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            timings.append(time.perf_counter() - started)
            cpu_s.append(_children_cpu_s() - cpu_before)
            if done.returncode != 0:
                raise SystemExit(f"prepare failed ({done.returncode}): {done.stderr.strip()}")
        started = time.perf_counter()
        rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        rerun_s = time.perf_counter() - started
        best = min(timings)
        return {
            "maps_copied": len(picked),
            "wall_s": round(best, 3),
            "wall_s_all": [round(t, 3) for t in timings],
            "maps_per_s": round(len(picked) / best, 1),
            # CPU seconds of the process and its workers: the wall time an idle machine would need, times cores.
            "cpu_s": round(min(cpu_s), 3),
            "maps_per_cpu_s": round(len(picked) / min(cpu_s), 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "incremental_rerun_s": round(rerun_s, 3),
            "summary": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "",
            "rerun_summary": rerun.stderr.strip().splitlines()[-1] if rerun.stderr.strip() else "",
            "cpu_count": os.cpu_count(),
        }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def print_prepare(result: dict) -> None:
    print(
        f"prepare: {result['maps_copied']} maps in {result['wall_s']:.2f} s = {result['maps_per_s']} maps/s "
        f"(whole process, best of {len(result['wall_s_all'])}: {result['wall_s_all']}); "
        f"{result['cpu_s']:.2f} CPU s = {result['maps_per_cpu_s']} maps per CPU s on {result['cpu_count']} cores "
        f"at load {result['load_average_1min']}; unchanged rerun {result['incremental_rerun_s']:.2f} s"
    )
    print(result["summary"])


def add_prepare(subparsers: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "prepare", parents=common, help="time python -m data.prepare on a copy of some corpus maps"
    )
    parser.add_argument("--input", required=True, help="a Songs folder to take maps from")
    parser.add_argument("--maps", type=int, default=140, help="how many maps to copy (0: all)")
    parser.add_argument("--workers", type=int, default=None, help="passed to data.prepare")
    parser.add_argument("--repeat", type=int, default=1, help="fresh runs to time; the best is reported")
    parser.set_defaults(func=run_prepare, show=print_prepare)


# ---------------------------------------------------------------- command line

# name -> add_<name>(subparsers, common parents): each adds its parser and sets func (run) and show (print).
SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction, list[argparse.ArgumentParser]], None]] = {
    "prepare": add_prepare,
}


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS.values():
        add(subparsers, [common])
    args = parser.parse_args(argv)
    result = args.func(args)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        args.show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
