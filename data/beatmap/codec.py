"""Beatmap <-> datapoints: the one place that maps hit objects to the 16 datapoint types and back.

Encoding choices:
- A slider's control points after the head are grouped into runs of equal consecutive points; a run is one
  datapoint. Points equal to the head at the start of the curve (old maps write the head again) belong to the
  head and get no datapoint, unless they are the whole curve.
- Anchor types: the final run is LAST_ANCHOR. Otherwise a run of 2+ points in a bezier (a segment split),
  every inner point of a linear "L" curve, and the first point of a lazer-written "|B|" segment are
  RED_ANCHOR; the middle point of a 3-point "P" is PERFECT_ANCHOR (a "P" of another size is drawn as a
  bezier by osu!, so its points are BEZIER_ANCHOR); "C" points are CATMULL_ANCHOR.
- Anchor times interpolate between the head time and the end of the first span by cumulative length along
  the control polygon (head, run, run, ...).
- The slider end datapoint sits where the first span ends, at the slider's end time, typed by its repeats.
- Spinners give SPINNER at the start and SPINNER_END at the end time, both at the spinner's position.
- Datapoints are sorted by time (stable), so overlapping objects interleave; `layout` maps them back.

Decoding keeps every byte of the source except: the x,y of circles and slider heads, the curve points and
pixel length of sliders, and inherited timing points added or adjusted so each slider's span duration (and
so its end time, ticks and repeats) is unchanged. The new length is the arc length of the path point nearest
the generated slider end (the path may run on along its last segment, as osu! extends it), limited to what
SV 0.1..10 can keep in time. Maps older than v8 keep every slider's length: osu! spaces their ticks by
pixels, so a new length would change the tick count; their slider end simply follows the new path. The
same holds for sliders under a NaN green line (no ticks) and before the first red line; sliders starting
at one time share one green line, so their lengths scale by the first one's factor.
Circles and heads are rounded to integers and clipped to the playfield, anchors to the playfield plus a
256 px margin; spinners keep their position. Points that round to the source's values keep the source
text, so decoding a map with its own positions gives back the same bytes. The curve letters and the number
of points stay the source's (decode gets positions, and the anchor types come from the source's curve).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from data.beatmap.curves import end_point, full_path, nearest_length, path_length, segments_of
from data.beatmap.datapoints import (
    PLAYFIELD_HEIGHT,
    PLAYFIELD_WIDTH,
    Datapoints,
    DatapointType,
    distances,
    slider_end_type,
)
from data.beatmap.osu_file import SV_MAX, SV_MIN, Beatmap, HitObject, ends_on_repeated_point
from data.beatmap.timing import replace_line, retime_sliders, tickless

ROLE_START = -1  # circle, spinner start or slider head
ROLE_END = -2  # spinner end or slider end; 0.. is the index of a slider's anchor run

# anchors may sit outside the playfield (osu!'s editor allows it); keep them within a playfield of margin
ANCHOR_MARGIN_PX = 256
ARC_TOLERANCE_PX = 1.0  # a perfect-circle arc may pass this far outside the playfield before it becomes bezier
SAME_POINT_PX = 0.5  # a generated end this close to the source's keeps the source's length text
LENGTH_DECIMALS = 4
# before v8, osu! spaces slider ticks by pixels whatever the SV (lazer: TickDistanceMultiplier = 1 / SV)
FIXED_TICK_SPACING_BEFORE_VERSION = 8
# Turns tried, smallest first, to fit a length-kept slider's scaled shape into the playfield (5-degree steps).
FIT_ANGLES = tuple(math.radians(sign * d) for d in range(0, 181, 5) for sign in ((1,) if d in (0, 180) else (1, -1)))


@dataclass(frozen=True)
class Run:
    """Equal consecutive control points shown as one anchor datapoint."""

    first: int  # index into HitObject.control_points
    count: int
    kind: DatapointType


# ---- encode -----------------------------------------------------------------------------------------------
def slider_runs(h: HitObject) -> tuple[int, list[Run]]:
    """(number of leading head repeats, anchor runs) of a slider's control points."""
    cps = h.control_points
    n = len(cps)
    if n == 0:
        return 0, []
    head = (h.x, h.y)
    lead = 0
    while lead < n and cps[lead] == head:
        lead += 1
    if lead == n:  # the whole curve sits on the head: keep the last point as the anchor
        lead = n - 1
    starts = []  # (first, count)
    i = lead
    while i < n:
        j = i + 1
        while j < n and cps[j] == cps[i]:
            j += 1
        starts.append((i, j - i))
        i = j
    boundaries = {index for index, _ in h.segment_types[1:]}
    runs = []
    for k, (first, count) in enumerate(starts):
        if k == len(starts) - 1:
            kind = DatapointType.LAST_ANCHOR
        elif first in boundaries:
            kind = DatapointType.RED_ANCHOR
        else:
            letter, segment_points = _segment_of_point(h, first, lead)
            kind = _anchor_kind(letter, count, segment_points)
        runs.append(Run(first, count, kind))
    return lead, runs


def _segment_of_point(h: HitObject, index: int, lead: int) -> tuple[str, int]:
    """Letter of the segment holding control point `index`, and that segment's distinct point count."""
    types = h.segment_types or [(0, h.curve_type or "B")]
    k = max(i for i, (start, _) in enumerate(types) if start <= index or i == 0)
    start = types[k][0]
    end = types[k + 1][0] if k + 1 < len(types) else len(h.control_points) - 1
    pts = [(h.x, h.y)] if k == 0 else []
    pts += h.control_points[max(start, lead if k == 0 else start) : end + 1]
    distinct = sum(1 for i, p in enumerate(pts) if i == 0 or p != pts[i - 1])
    return types[k][1], distinct


def _anchor_kind(letter: str, count: int, segment_points: int) -> DatapointType:
    if letter == "L":
        return DatapointType.RED_ANCHOR
    if letter == "C":
        return DatapointType.CATMULL_ANCHOR
    if count > 1:
        return DatapointType.RED_ANCHOR
    if letter == "P" and segment_points == 3:
        return DatapointType.PERFECT_ANCHOR
    return DatapointType.BEZIER_ANCHOR


def _span_end(h: HitObject) -> np.ndarray:
    return np.array(end_point(h))


def layout(beatmap: Beatmap) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """time_ms [N], position [N, 2], kind [N], and (object index, role) [N, 2] of every datapoint, time-sorted."""
    times: list[float] = []
    xs: list[float] = []
    ys: list[float] = []
    kinds: list[int] = []
    refs: list[tuple[int, int]] = []

    def add(time_ms: float, x: float, y: float, kind: DatapointType, obj: int, role: int) -> None:
        times.append(time_ms)
        xs.append(x)
        ys.append(y)
        kinds.append(int(kind))
        refs.append((obj, role))

    for index, h in enumerate(beatmap.hit_objects):
        if h.kind == "circle":
            kind = DatapointType.CIRCLE_NEW_COMBO if h.new_combo else DatapointType.CIRCLE
            add(h.time_ms, h.x, h.y, kind, index, ROLE_START)
        elif h.kind == "spinner":
            add(h.time_ms, h.x, h.y, DatapointType.SPINNER, index, ROLE_START)
            add(h.end_time_ms, h.x, h.y, DatapointType.SPINNER_END, index, ROLE_END)
        else:
            kind = DatapointType.SLIDER_HEAD_NEW_COMBO if h.new_combo else DatapointType.SLIDER_HEAD
            add(h.time_ms, h.x, h.y, kind, index, ROLE_START)
            span_ms = (h.end_time_ms - h.time_ms) / h.slides
            _, runs = slider_runs(h)
            if runs:
                polygon = [(h.x, h.y)] + [h.control_points[r.first] for r in runs]
                cumulative = list(itertools.accumulate(math.dist(a, b) for a, b in itertools.pairwise(polygon)))
                total = cumulative[-1]
                for k, run in enumerate(runs):
                    x, y = h.control_points[run.first]
                    f = cumulative[k] / total if total > 0 else 1.0
                    add(h.time_ms + f * span_ms, x, y, run.kind, index, k)
            end = _span_end(h) if runs else np.array([h.x, h.y])
            add(h.end_time_ms, float(end[0]), float(end[1]), slider_end_type(h.slides - 1), index, ROLE_END)

    time_ms = np.asarray(times, np.float64)
    order = np.argsort(time_ms, kind="stable")
    position = np.stack([np.asarray(xs), np.asarray(ys)], axis=1)
    return (
        time_ms[order],
        position[order],
        np.asarray(kinds, np.int8)[order],
        np.asarray(refs, np.int64).reshape(-1, 2)[order],
    )


def encode(beatmap: Beatmap) -> Datapoints:
    """The map as time-sorted datapoints (see the module docstring for the choices)."""
    time_ms, position, kind, _ = layout(beatmap)
    position = position.astype(np.float32)
    return Datapoints(time_ms=time_ms, position=position, distance=distances(position), kind=kind)


# ---- decode -----------------------------------------------------------------------------------------------
def decode(beatmap: Beatmap, positions: np.ndarray) -> str:
    """Full .osu text of `beatmap` with the objects moved to `positions` [N, 2] (one per encode datapoint)."""
    _, source_position, _, refs = layout(beatmap)
    positions = np.asarray(positions, np.float64)
    if positions.shape != source_position.shape:
        raise ValueError(f"positions shape {positions.shape} != datapoints {source_position.shape}")
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contain NaN or inf")
    per_object: dict[int, dict[int, np.ndarray]] = {}
    for (obj, role), p in zip(refs.tolist(), positions, strict=True):
        per_object.setdefault(obj, {})[role] = p

    changed: dict[int, str] = {}  # HitObjects section line -> new text
    new_lengths: dict[int, float] = {}  # object index -> new pixel length
    ratio_at_time: dict[int, float] = {}  # slider start time -> new length / source length
    source_lines = beatmap.sections["HitObjects"]
    for index, h in enumerate(beatmap.hit_objects):
        if h.kind == "spinner":
            continue  # spinners keep their position: it means nothing to play
        roles = per_object[index]
        line = source_lines[h.line_index].strip()
        fields = line.split(",")
        head = _place(roles[ROLE_START], (h.x, h.y), margin_px=0)
        fields[0], fields[1] = _coord_text(head[0], fields[0]), _coord_text(head[1], fields[1])
        if h.kind == "slider":
            length_px = _decode_slider(beatmap, h, fields, head, roles, ratio_at_time.get(h.time_ms))
            if length_px is not None:
                new_lengths[index] = length_px
            if h.length_px > 0:
                ratio_at_time.setdefault(h.time_ms, 1.0 if length_px is None else length_px / h.length_px)
        text = ",".join(fields)
        if text != line:
            changed[h.line_index] = text

    lines = beatmap.text.split("\n")
    object_numbers = beatmap.section_line_numbers["HitObjects"]
    for section_index, text in changed.items():
        replace_line(lines, object_numbers[section_index], text)
    retime_sliders(beatmap, new_lengths, lines)
    return "\n".join(lines)


def decode_bytes(beatmap: Beatmap, positions: np.ndarray) -> bytes:
    """`decode` encoded the way the source file was (UTF-8 with or without BOM, UTF-16)."""
    return encode_text(beatmap, decode(beatmap, positions))


def encode_text(beatmap: Beatmap, text: str) -> bytes:
    """Text to bytes in the source's encoding (the BOM of UTF-8 files is part of the text)."""
    if beatmap.encoding == "utf-16":
        big_endian = beatmap.raw.startswith(b"\xfe\xff")
        bom = b"\xfe\xff" if big_endian else b"\xff\xfe"
        return bom + text.encode("utf-16-be" if big_endian else "utf-16-le")
    if beatmap.encoding == "latin-1":
        return text.encode("latin-1", errors="replace")
    return text.encode("utf-8")


def _place(p: np.ndarray, source: tuple[float, float], margin_px: float) -> tuple[float, float]:
    """Round like osu! writes (integers) and clip to the playfield (+ margin); the source if it rounds the same."""
    x, y = float(p[0]), float(p[1])
    if round(x) == round(source[0]) and round(y) == round(source[1]):
        return source
    x = min(max(round(x), -margin_px), PLAYFIELD_WIDTH + margin_px)
    y = min(max(round(y), -margin_px), PLAYFIELD_HEIGHT + margin_px)
    return float(x), float(y)


def _coord_text(value: float, source_text: str) -> str:
    try:
        if float(source_text) == value:
            return source_text
    except ValueError:
        pass
    return str(int(round(value)))


def _decode_slider(
    beatmap: Beatmap, h: HitObject, fields: list[str], head, roles: dict, ratio: float | None
) -> float | None:
    """Rewrite the curve and length fields of a slider line; its new length when that changed.

    `ratio` (new length / source length) is forced when another slider starts at the same time: one green
    line sets the SV of both, so their lengths must scale alike.
    """
    lead, runs = slider_runs(h)
    if not runs or h.length_px <= 0:
        return None  # a curve without points or length stays as written
    new_points = list(h.control_points)
    for i in range(lead):
        new_points[i] = head
    previous = head
    for k, run in enumerate(runs):
        source = h.control_points[run.first]
        p = _place(roles[k], source, margin_px=ANCHOR_MARGIN_PX)
        if p == previous and p != source:
            # two runs rounded onto one pixel would read as a segment split (a red anchor): keep them apart
            p = (p[0] + (1.0 if p[0] < PLAYFIELD_WIDTH else -1.0), p[1])
        for i in range(run.first, run.first + run.count):
            new_points[i] = p
        previous = p
    moved = head != (h.x, h.y) or new_points != h.control_points
    if moved:
        h = _bezier_if_arc_leaves_playfield(h, np.array([head, *new_points], np.float64))

    target = np.asarray(roles[ROLE_END], np.float64)
    if ratio is not None:
        length_px = h.length_px * ratio
    elif not moved and np.hypot(*(target - _span_end(h))) <= SAME_POINT_PX:
        return None
    elif (
        beatmap.format_version < FIXED_TICK_SPACING_BEFORE_VERSION  # ticks spaced by px: a new length changes them
        or tickless(beatmap, h.time_ms)  # a NaN green line turns ticks off; a new green line would turn them on
        or h.time_ms < beatmap.timing_point_at(h.time_ms).time_ms  # before the first red line: no BPM to scale
    ):
        length_px = h.length_px
        if moved:
            new_points = _scale_to_length(h, head, new_points, length_px)
    else:
        polyline = full_path(segments_of(h, np.array([head, *new_points], np.float64)))
        length_px = nearest_length(polyline, target, extend=not ends_on_repeated_point(h))
        # osu! clamps SV to [0.1, 10]: the new length must be reachable by scaling the source's SV
        sv = beatmap.slider_velocity_at(h.time_ms)
        step = 10.0**-LENGTH_DECIMALS
        low = math.ceil(h.length_px * SV_MIN / sv / step) * step
        high = math.floor(h.length_px * SV_MAX / sv / step) * step
        length_px = min(max(round(length_px, LENGTH_DECIMALS), low, step), high)
    keep_length = length_px == h.length_px
    if keep_length and not moved:
        return None

    last = runs[-1]
    if ends_on_repeated_point(h) and last.count > 1:
        # osu! does not extend a path ending on a repeated point: write that point once when the path is short
        natural_px = path_length(full_path(segments_of(h, np.array([head, *new_points], np.float64))))
        if length_px > natural_px + 10.0**-LENGTH_DECIMALS:
            new_points = new_points[: last.first + 1]
    if moved or len(new_points) != len(h.control_points):
        fields[5] = _curve_text(h, new_points, fields[5])
    if keep_length and h.length_given and not ends_on_repeated_point(h):
        return None  # the written length still holds
    while len(fields) < 8:
        fields.append("1" if len(fields) == 6 else "")
    fields[7] = _length_text(length_px)
    return None if keep_length else float(fields[7])


def _scale_to_length(
    h: HitObject, head: tuple[float, float], points: list[tuple[float, float]], length_px: float
) -> list[tuple[float, float]]:
    """New anchors scaled about the head so a slider whose length must stay ends on its own last anchor.

    Otherwise osu! extends the path straight past the last anchor by the missing length, off the generated
    shape and often off the playfield. A similarity transform scales every curve type's length alike. When the
    scaled shape does not fit, it turns about the head by the smallest angle that fits it: clipping its anchors
    instead would shorten the path, and osu! would extend the end straight on, off the field.
    """
    origin = np.asarray(head, np.float64)
    anchors = np.asarray(points, np.float64)
    natural_px = path_length(full_path(segments_of(h, np.vstack([origin, anchors]))))
    if natural_px <= 0:
        return points
    offsets = (anchors - origin) * (length_px / natural_px)
    field = np.array([PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT], np.float64)
    for angle in FIT_ANGLES:
        c, s = math.cos(angle), math.sin(angle)
        placed = np.round(origin + offsets @ np.array([[c, s], [-s, c]]))
        if np.all((placed >= 0) & (placed <= field)):
            break
    else:  # too long to fit at any angle: the unturned shape, clipped
        placed = np.clip(np.round(origin + offsets), 0, field)
    return [(float(x), float(y)) for x, y in placed]


def _bezier_if_arc_leaves_playfield(h: HitObject, points: np.ndarray) -> HitObject:
    """`h` with its perfect-circle segments written as bezier when their arc through new points leaves the field.

    Three nearly collinear points give a circle of huge radius whose arc can swing hundreds of px off the
    playfield; a bezier through the same points stays inside their convex hull (osu! itself draws degenerate
    arcs as bezier), and the slider keeps its timing because the length is measured on the path written.
    """
    types = h.segment_types or [(0, h.curve_type or "B")]
    if all(letter != "P" for _, letter in types):
        return h
    path = full_path(segments_of(h, points))
    low, high = -ARC_TOLERANCE_PX, np.array([PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT]) + ARC_TOLERANCE_PX
    if np.all((path >= low) & (path <= high)):
        return h
    bezier_types = [(i, "B" if letter == "P" else letter) for i, letter in types]
    return replace(h, curve_type="B" if h.curve_type == "P" else h.curve_type, segment_types=bezier_types)


def _curve_text(h: HitObject, points: list[tuple[float, float]], source_text: str) -> str:
    letters = dict(h.segment_types)
    source_tokens = [t for t in source_text.split("|") if t.strip() and not t.strip()[0].isalpha()]
    tokens = [] if source_text.strip()[:1].isalpha() else [h.curve_type or "B"]
    for i, p in enumerate(points):
        if i in letters:
            tokens.append(letters[i])
        if i < len(source_tokens) and p == h.control_points[i]:
            tokens.append(source_tokens[i])
        else:
            tokens.append(f"{int(round(p[0]))}:{int(round(p[1]))}")
    return "|".join(tokens)


def _length_text(length_px: float) -> str:
    text = f"{length_px:.{LENGTH_DECIMALS}f}".rstrip("0").rstrip(".")
    return text or "0"
