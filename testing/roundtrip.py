"""Round-trip every .osu under a folder through encode -> decode and check the result with other readers.

    python testing/roundtrip.py --input DIR --output DIR [--workers N] [--jitter-px PX]

With the map's own positions the decoded file must equal the source byte for byte. With --jitter-px every
datapoint is moved (seeded) first, and the checks say whether decode kept the rhythm: every object's time,
kind, new combo, hitsound and repeats, slider durations (2 ms) and rosu-pp's max combo, which counts ticks.
The independent readers are the slider library (its numpy-2 faults are caught and reported as "unchecked")
and rosu-pp. One line per map, then a summary; refused maps are listed with the reason.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.atomic import write_bytes_atomic  # noqa: E402
from data.beatmap.codec import decode_bytes, encode  # noqa: E402
from data.beatmap.osu_reader import (
    parse_beatmap,
    read_beatmap,  # noqa: E402
)
from data.errors import BadInputError  # noqa: E402

HEAD_TOLERANCE_PX = 1.0
END_TOLERANCE_PX = 2.0
DURATION_TOLERANCE_MS = 2.0
STARS_TOLERANCE = 0.01  # relative


@dataclass
class MapResult:
    path: str
    status: str  # "exact", "diff", "refused"
    problems: list[str] = field(default_factory=list)
    independent: bool = False  # slider or rosu-pp could read the source

    def line(self) -> str:
        tag = {"exact": "OK", "diff": "DIFF", "refused": "REFUSED"}[self.status]
        detail = "; ".join(self.problems[:4])
        return f"{tag} {self.path}" + (f": {detail}" if detail else "")


# ---- independent readers --------------------------------------------------------------------------------
def _slider_objects(data: bytes) -> list[dict] | None:
    """(time, kind, new combo, hitsound, repeats, x, y, end time, end x, end y) per object via slider, or None."""
    try:
        import slider

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beatmap = slider.Beatmap.parse(data.decode("utf-8-sig", errors="replace"))
            objects = beatmap.hit_objects(stacking=False)  # stacking=True moves positions in place
            out = []
            for h in objects:
                item = {
                    "time": _ms(h.time),
                    "kind": type(h).__name__,
                    "new_combo": bool(h.new_combo),
                    "hitsound": int(h.hitsound),
                    "x": float(h.position.x),
                    "y": float(h.position.y),
                }
                if isinstance(h, slider.beatmap.Slider):
                    end = h.curve(1)
                    item.update(repeat=int(h.repeat), end_time=_ms(h.end_time), end_x=float(end.x), end_y=float(end.y))
                out.append(item)
            return out
    except Exception:  # the library's faults (Catmull on numpy 2, odd files): leave this check out
        return None


def _ms(t: datetime.timedelta) -> float:
    return t.total_seconds() * 1000.0


def _rosu(data: bytes) -> tuple[float, int] | None:
    """(stars, max combo) from rosu-pp, or None when it cannot read the map."""
    try:
        import rosu_pp_py

        beatmap = rosu_pp_py.Beatmap(content=data)
        if beatmap.n_objects == 0:
            return None
        attributes = rosu_pp_py.Difficulty().calculate(beatmap)
        return float(attributes.stars), int(attributes.max_combo)
    except Exception:
        return None


# ---- one map --------------------------------------------------------------------------------------------
def roundtrip_map(path: Path, root: Path, output: Path, jitter_px: float = 0.0, seed: int = 0) -> MapResult:
    """Read, encode, decode (own or jittered positions), write and check one map."""
    shown = str(path)
    try:
        beatmap = read_beatmap(path)
    except BadInputError as err:
        readable = path.is_file() and _rosu(path.read_bytes()) is not None
        return MapResult(shown, "refused", [err.problem], independent=readable)
    datapoints = encode(beatmap)
    positions = datapoints.position.astype(np.float64)
    if jitter_px > 0:
        rng = np.random.default_rng(seed)
        positions = positions + rng.uniform(-jitter_px, jitter_px, positions.shape)
    decoded = decode_bytes(beatmap, positions)
    relative = path.relative_to(root) if path != root else Path(path.name)
    write_bytes_atomic(output / relative, decoded)
    result = compare(beatmap.raw, decoded, shown, expect_identical=jitter_px == 0)
    return result


def compare(source: bytes, decoded: bytes, shown: str, expect_identical: bool) -> MapResult:
    """Check the decoded map against its source with our reader, slider and rosu-pp."""
    problems: list[str] = []
    if source == decoded:
        # identical bytes read alike in every reader: only ask whether another reader accepts the map at all
        independent = _rosu(source) is not None or _slider_objects(source) is not None
        return MapResult(shown, "exact", problems, independent)
    if expect_identical:
        problems.append("bytes differ from the source")
    try:
        ours_a, ours_b = parse_beatmap(source), parse_beatmap(decoded)
        problems += _compare_ours(ours_a, ours_b)
    except BadInputError as err:
        problems.append(f"decoded file unreadable: {err.problem}")
    slider_a, slider_b = _slider_objects(source), _slider_objects(decoded)
    if slider_a is not None:
        if slider_b is None:
            problems.append("slider reads the source but not the decoded file")
        else:
            problems += _compare_slider(slider_a, slider_b, moved=not expect_identical)
    rosu_a, rosu_b = _rosu(source), _rosu(decoded)
    if rosu_a is not None:
        if rosu_b is None:
            problems.append("rosu-pp reads the source but not the decoded file")
        else:
            if rosu_a[1] != rosu_b[1]:
                problems.append(f"max combo {rosu_a[1]} -> {rosu_b[1]}")
            if expect_identical and abs(rosu_a[0] - rosu_b[0]) > STARS_TOLERANCE * max(rosu_a[0], 1e-9):
                problems.append(f"stars {rosu_a[0]:.3f} -> {rosu_b[0]:.3f}")
    independent = slider_a is not None or rosu_a is not None
    return MapResult(shown, "diff" if problems else "exact", problems, independent)


def _compare_ours(a, b) -> list[str]:
    problems = []
    if len(a.hit_objects) != len(b.hit_objects):
        return [f"{len(a.hit_objects)} objects -> {len(b.hit_objects)}"]
    for x, y in zip(a.hit_objects, b.hit_objects, strict=True):
        if (x.time_ms, x.kind, x.new_combo, x.hitsound, x.slides) != (
            y.time_ms,
            y.kind,
            y.new_combo,
            y.hitsound,
            y.slides,
        ):
            problems.append(f"object at {x.time_ms} ms changed time/kind/combo/hitsound/repeats")
        elif abs(x.end_time_ms - y.end_time_ms) > DURATION_TOLERANCE_MS:
            problems.append(f"object at {x.time_ms} ms ends at {y.end_time_ms:.1f}, not {x.end_time_ms:.1f}")
        if len(problems) > 3:
            break
    return problems


def _compare_slider(a: list[dict], b: list[dict], moved: bool) -> list[str]:
    problems = []
    if len(a) != len(b):
        return [f"slider library: {len(a)} objects -> {len(b)}"]
    for x, y in zip(a, b, strict=True):
        at = f"slider library, object at {x['time']:.0f} ms"
        for key in ("time", "kind", "new_combo", "hitsound", "repeat"):
            if x.get(key) != y.get(key):
                problems.append(f"{at}: {key} {x.get(key)} -> {y.get(key)}")
        if "end_time" in x and "end_time" in y:
            duration_a, duration_b = x["end_time"] - x["time"], y["end_time"] - y["time"]
            if abs(duration_a - duration_b) > DURATION_TOLERANCE_MS:
                problems.append(f"{at}: duration {duration_a:.1f} -> {duration_b:.1f} ms")
            if not moved and math.dist((x["end_x"], x["end_y"]), (y["end_x"], y["end_y"])) > END_TOLERANCE_PX:
                problems.append(f"{at}: slider end moved")
        if not moved and math.dist((x["x"], x["y"]), (y["x"], y["y"])) > HEAD_TOLERANCE_PX:
            problems.append(f"{at}: head moved")
        if len(problems) > 3:
            break
    return problems


# ---- command line ----------------------------------------------------------------------------------------
def _job(args: tuple[Path, Path, Path, float, int]) -> MapResult:
    path, root, output, jitter_px, seed = args
    try:
        return roundtrip_map(path, root, output, jitter_px, seed)
    except Exception as err:  # a crash is a finding, not the end of the run
        return MapResult(str(path), "diff", [f"crash: {type(err).__name__}: {err}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="an .osu file or a folder searched for them")
    parser.add_argument("--output", type=Path, required=True, help="folder for the decoded maps (same layout)")
    parser.add_argument("--workers", type=int, default=1, help="processes to use")
    parser.add_argument("--jitter-px", type=float, default=0.0, help="move every datapoint up to this far first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter")
    parser.add_argument("--debug", action="store_true", help="re-raise errors with a traceback")
    args = parser.parse_args(argv)

    root = args.input
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = sorted(root.rglob("*.osu"))
    else:
        print(f"{root}: no such file or folder", file=sys.stderr)
        return 2
    if not paths:
        print(f"{root}: no .osu files found", file=sys.stderr)
        return 2
    if args.output.exists() and not args.output.is_dir():
        print(f"{args.output}: is a file, not an output folder", file=sys.stderr)
        return 2
    jobs = [(p, root if root.is_dir() else p, args.output, args.jitter_px, args.seed) for p in paths]
    if len(jobs) == 1:
        result = roundtrip_map(*jobs[0]) if args.debug else _job(jobs[0])
        if result.status == "refused":
            print(f"{result.path}: {result.problems[0]}", file=sys.stderr)
            return 2
        print(result.line())
        return 0 if result.status == "exact" else 1
    results = []
    with Pool(max(args.workers, 1)) as pool:
        for result in pool.imap(_job, jobs, chunksize=2):
            print(result.line(), flush=True)
            results.append(result)
    readable = [r for r in results if r.status != "refused"]
    checked = [r for r in results if r.independent]  # refused maps that rosu-pp reads count against us
    exact_checked = sum(r.status == "exact" for r in checked)
    reasons = collections.Counter(r.problems[0].split(" in '")[0][:70] for r in results if r.status == "refused")
    exact = sum(r.status == "exact" for r in readable)
    print(f"\nmaps: {len(results)}; readable by our parser: {len(readable)}, exact: {exact}")
    if checked:
        share = 100.0 * exact_checked / len(checked)
        print(f"readable by slider or rosu-pp: {len(checked)}, exact: {exact_checked} ({share:.1f}%)")
    print(f"refused: {len(results) - len(readable)}")
    for reason, count in reasons.most_common():
        print(f"  {count:4d}  {reason}")
    if not readable:  # a batch tool fails only when nothing was usable
        print(f"{root}: none of the {len(results)} maps could be read", file=sys.stderr)
        return 2
    return 0 if all(r.status != "diff" for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
