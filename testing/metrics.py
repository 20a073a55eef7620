"""Pure metric functions of the evaluations: arrays and plain records in, numbers out (no files, no models).

A map is judged on its *aim path*: the points a player's cursor must visit in order, i.e. every circle, every
slider head and the end of every slider's first span (where the codec puts the slider end datapoint).
Spinners split the path: the cursor leaves the pattern during one, so no leg crosses a spinner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data.style_features import JUMP_PX, leg_turns

PLAYFIELD_WIDTH_PX = 512
PLAYFIELD_HEIGHT_PX = 384
RHYTHM_TOLERANCE_MS = 2.0
RANDOM_WALK_TRIES = 32  # directions drawn per step before a walk may leave the playfield


@dataclass(frozen=True)
class MapObject:
    """One hit object as an independent reader sees it (times in ms, positions in osu! px)."""

    time_ms: float
    kind: str  # "circle", "slider", "spinner"
    new_combo: bool
    slides: int  # 1 for circles and spinners
    end_time_ms: float
    x: float
    y: float
    end_x: float  # where the first span of a slider ends; the head for circles and spinners
    end_y: float


# ---------------------------------------------------------------- rhythm


def rhythm_problems(source: Sequence[MapObject], output: Sequence[MapObject]) -> list[str]:
    """Objects whose kind, time (2 ms), new combo, repeats or end time (2 ms) differ; empty when rhythm is kept."""
    if len(source) != len(output):
        return [f"{len(source)} objects -> {len(output)}"]
    problems = []
    for a, b in zip(source, output, strict=True):
        at = f"object at {a.time_ms:.0f} ms"
        if a.kind != b.kind:
            problems.append(f"{at}: {a.kind} -> {b.kind}")
        elif abs(a.time_ms - b.time_ms) > RHYTHM_TOLERANCE_MS:
            problems.append(f"{at}: moved to {b.time_ms:.0f} ms")
        elif a.new_combo != b.new_combo:
            problems.append(f"{at}: new combo {a.new_combo} -> {b.new_combo}")
        elif a.slides != b.slides:
            problems.append(f"{at}: slides {a.slides} -> {b.slides}")
        elif abs(a.end_time_ms - b.end_time_ms) > RHYTHM_TOLERANCE_MS:
            problems.append(f"{at}: ends at {b.end_time_ms:.1f} ms, not {a.end_time_ms:.1f}")
    return problems


# ---------------------------------------------------------------- aim path


def aim_segments(objects: Sequence[MapObject]) -> list[np.ndarray]:
    """The aim path as float64 [K, 2] point runs, split at spinners (runs of fewer than 2 points dropped)."""
    segments: list[list[tuple[float, float]]] = [[]]
    for o in objects:
        if o.kind == "spinner":
            segments.append([])
            continue
        segments[-1].append((o.x, o.y))
        if o.kind == "slider":
            segments[-1].append((o.end_x, o.end_y))
    return [np.asarray(s, np.float64) for s in segments if len(s) >= 2]


def aim_points(objects: Sequence[MapObject]) -> np.ndarray:
    """Heads and slider span ends, float64 [K, 2] (spinners left out)."""
    points = [(o.x, o.y) for o in objects if o.kind != "spinner"]
    points += [(o.end_x, o.end_y) for o in objects if o.kind == "slider"]
    return np.asarray(points, np.float64).reshape(-1, 2)


def inside_playfield_share(points: np.ndarray) -> float:
    """Share of points with 0 <= x <= 512 and 0 <= y <= 384 (1 for no points)."""
    if len(points) == 0:
        return 1.0
    x, y = points[:, 0], points[:, 1]
    inside = (x >= 0) & (x <= PLAYFIELD_WIDTH_PX) & (y >= 0) & (y <= PLAYFIELD_HEIGHT_PX)
    return float(inside.mean())


def leg_lengths(points: np.ndarray) -> np.ndarray:
    """Distance between consecutive points, [K - 1]."""
    return np.linalg.norm(np.diff(np.asarray(points, np.float64), axis=0), axis=1)


# Right angles at jumps: the shape the network alone overdraws (issue 22's bar: pooled, within 3 points of the
# sources').
RIGHT_ANGLE = (math.radians(67.5), math.radians(112.5))


def right_angles(turns: np.ndarray) -> int:
    """How many of `turns` (radians) are right angles."""
    return int(((turns >= RIGHT_ANGLE[0]) & (turns <= RIGHT_ANGLE[1])).sum())


def turning_angles(points: np.ndarray, min_leg_px: float = JUMP_PX) -> np.ndarray:
    """Angle in [0, pi] between the legs into and out of each interior point whose legs both exceed min_leg_px.

    0 is straight on, pi is straight back (a back-and-forth jump).
    """
    if len(points) < 3:
        return np.zeros(0)
    angles, into, out, _ = leg_turns(points)
    return angles[(into > min_leg_px) & (out > min_leg_px)]


def path_turning_angles(segments: Sequence[np.ndarray], min_leg_px: float = JUMP_PX) -> np.ndarray:
    """Turning angles at jumps of every segment, concatenated."""
    parts = [turning_angles(s, min_leg_px) for s in segments]
    return np.concatenate(parts) if parts else np.zeros(0)


def median_spacing_error_px(source: Sequence[np.ndarray], output: Sequence[np.ndarray]) -> float:
    """Median |output leg - source leg| over the aim path's legs (NaN when the paths do not pair up)."""
    if len(source) != len(output) or any(len(a) != len(b) for a, b in zip(source, output, strict=True)):
        return math.nan
    errors = [np.abs(leg_lengths(b) - leg_lengths(a)) for a, b in zip(source, output, strict=True)]
    flat = np.concatenate(errors) if errors else np.zeros(0)
    return float(np.median(flat)) if len(flat) else math.nan


def mean_leg_px(segments: Sequence[np.ndarray]) -> float:
    """Mean distance between consecutive aim points over all segments (NaN without legs)."""
    legs = [leg_lengths(s) for s in segments]
    flat = np.concatenate(legs) if legs else np.zeros(0)
    return float(flat.mean()) if len(flat) else math.nan


# ---------------------------------------------------------------- distributions


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance between two empirical distributions on the line: the area between their CDFs."""
    a = np.sort(np.asarray(a, np.float64))
    b = np.sort(np.asarray(b, np.float64))
    if len(a) == 0 or len(b) == 0:
        return math.nan
    values = np.concatenate([a, b])
    values.sort()
    widths = np.diff(values)
    cdf_a = np.searchsorted(a, values[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, values[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def random_walk(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A walk from the same first point with exactly the same leg lengths, each leg in a random direction.

    Directions are redrawn (up to RANDOM_WALK_TRIES times) while a leg would leave the playfield, so the
    baseline is a plausible map with no sense of flow rather than one that drifts off screen.
    """
    points = np.asarray(points, np.float64)
    walk = np.empty_like(points)
    if len(points) == 0:
        return walk
    walk[0] = points[0]
    for i, length in enumerate(leg_lengths(points), start=1):
        for _ in range(RANDOM_WALK_TRIES):
            angle = rng.uniform(0.0, 2.0 * math.pi)
            step = walk[i - 1] + length * np.array([math.cos(angle), math.sin(angle)])
            if 0 <= step[0] <= PLAYFIELD_WIDTH_PX and 0 <= step[1] <= PLAYFIELD_HEIGHT_PX:
                break
        walk[i] = step
    return walk


# ---------------------------------------------------------------- stars


def relative_error(value: float, reference: float) -> float:
    """|value - reference| / reference (NaN when either is missing or the reference is 0)."""
    if value is None or reference is None or not math.isfinite(value) or not math.isfinite(reference):
        return math.nan
    if reference == 0:
        return math.nan
    return abs(value - reference) / abs(reference)
