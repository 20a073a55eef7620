"""Slider path geometry in numpy: control points -> polyline, cut or extended to the slider's length.

Follows osu!lazer's SliderPath / PathApproximator (which reproduce osu!stable):
https://github.com/ppy/osu/blob/master/osu.Game/Rulesets/Objects/SliderPath.cs
- a repeated control point ends one segment and starts the next (a "red anchor"); catmull paths do not split;
- "P" with exactly 3 points is a circular arc; with another count it is a bezier, and 3 collinear points are a
  straight line (lazer: "osu-stable special-cased colinear perfect curves to a linear path");
- the polyline is cut at the slider's length, or its last segment is extended to reach it.
Beziers are sampled at ~2 px steps in t rather than by lazer's adaptive subdivision: lengths agree to well
under a pixel, which is all the codec needs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from data.beatmap.osu_file import HitObject

CATMULL_DETAIL = 50  # lazer's samples per catmull segment
CIRCLE_TOLERANCE_PX = 0.1  # lazer's max deviation of an arc's chords from the circle
BEZIER_STEP_PX = 2.0  # polygon length per bezier sample
MAX_BEZIER_SAMPLES = 1000
COLLINEAR_EPSILON = 1e-3  # lazer's Precision.FLOAT_EPSILON on the cross product


# ---- segments -----------------------------------------------------------------------------------------------
LONG_BEZIER_POINTS = 64  # above this, Bernstein weights replace de Casteljau (corpus maps stay below 35)


def _bezier(points: np.ndarray) -> np.ndarray:
    n = len(points)
    if n == 1:
        return points
    if n == 2:
        return points
    polygon_px = float(np.hypot(*np.diff(points, axis=0).T).sum())
    samples = int(min(max(math.ceil(polygon_px / BEZIER_STEP_PX), 2), MAX_BEZIER_SAMPLES)) + 1
    if n > LONG_BEZIER_POINTS:
        return _bezier_bernstein(points, samples)
    t = np.linspace(0.0, 1.0, samples)[:, None, None]
    work = np.broadcast_to(points, (samples, n, 2)).copy()
    # de Casteljau: stable for the high-degree beziers some maps use, where Bernstein weights overflow
    for _ in range(n - 1):
        work = work[:, :-1] + (work[:, 1:] - work[:, :-1]) * t
    return work[:, 0]


def _bezier_bernstein(points: np.ndarray, samples: int) -> np.ndarray:
    """Bezier points as Bernstein-weighted sums, weights formed in log space.

    de Casteljau costs O(samples * n^2): a 2000-point slider-art segment took minutes. The weights of one
    sample are a convex combination normalised in log space, so nothing overflows or cancels at high degree.
    """
    degree = len(points) - 1
    k = np.arange(degree + 1)
    log_binomial = np.array([math.lgamma(degree + 1) - math.lgamma(j + 1) - math.lgamma(degree - j + 1) for j in k])
    t = np.linspace(0.0, 1.0, samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_weight = log_binomial + k * np.log(t)[:, None] + (degree - k) * np.log1p(-t)[:, None]
    log_weight = np.where(np.isnan(log_weight), -np.inf, log_weight)
    log_weight[0], log_weight[-1] = -np.inf, -np.inf
    log_weight[0, 0], log_weight[-1, -1] = 0.0, 0.0  # the curve starts and ends on its end points exactly
    weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    return (weight / weight.sum(axis=1, keepdims=True)) @ points


def _arc_through(
    points: list[tuple[float, float]] | list[list[float]],
) -> tuple[float, float, float, float, float, float] | None:
    """(centre x, centre y, radius, start angle, direction +-1, swept angle) of the arc a -> b -> c.

    None when the three points are collinear and define no circle.
    """
    (ax, ay), (bx, by), (cx, cy) = points
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    if abs(d) < COLLINEAR_EPSILON:
        return None
    a_sq, b_sq, c_sq = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ox = (a_sq * (by - cy) + b_sq * (cy - ay) + c_sq * (ay - by)) / d
    oy = (a_sq * (cx - bx) + b_sq * (ax - cx) + c_sq * (bx - ax)) / d
    radius = math.hypot(ax - ox, ay - oy)
    theta_start = math.atan2(ay - oy, ax - ox)
    theta_end = math.atan2(cy - oy, cx - ox)
    while theta_end < theta_start:
        theta_end += 2 * math.pi
    direction, theta_range = 1.0, theta_end - theta_start
    # the arc goes the other way round when b lies on the other side of the chord a->c
    if (cy - ay) * (bx - ax) - (cx - ax) * (by - ay) < 0:
        direction, theta_range = -1.0, 2 * math.pi - theta_range
    return ox, oy, radius, theta_start, direction, theta_range


def _circle_arc(points: np.ndarray) -> np.ndarray | None:
    """Polyline of the arc through three points; None when they do not define a circle."""
    arc = _arc_through(points.tolist())
    if arc is None:
        return None
    ox, oy, radius, theta_start, direction, theta_range = arc
    if 2 * radius <= CIRCLE_TOLERANCE_PX:
        count = 2
    else:
        count = max(2, math.ceil(theta_range / (2 * math.acos(max(-1.0, 1 - CIRCLE_TOLERANCE_PX / radius)))))
    if count > 100_000:
        return None
    theta = theta_start + direction * np.linspace(0.0, theta_range, count)
    return np.stack([ox + radius * np.cos(theta), oy + radius * np.sin(theta)], axis=1)


def _catmull(points: np.ndarray) -> np.ndarray:
    n = len(points)
    if n < 2:
        return points
    i = np.arange(n - 1)
    v2 = points[i]
    v1 = np.where((i > 0)[:, None], points[np.maximum(i - 1, 0)], v2)
    v3 = points[i + 1]
    v4 = np.where((i < n - 2)[:, None], points[np.minimum(i + 2, n - 1)], 2 * v3 - v2)
    t = (np.arange(CATMULL_DETAIL + 1) / CATMULL_DETAIL)[None, :, None]
    v1, v2, v3, v4 = (v[:, None, :] for v in (v1, v2, v3, v4))
    curve = 0.5 * (2 * v2 + (v3 - v1) * t + (2 * v1 - 5 * v2 + 4 * v3 - v4) * t**2 + (3 * v2 - v1 - 3 * v3 + v4) * t**3)
    return curve.reshape(-1, 2)


def _segment(curve_type: str, points: np.ndarray) -> np.ndarray:
    if curve_type == "L" or len(points) < 3:
        return points
    if curve_type == "P":
        if len(points) == 3:
            arc = _circle_arc(points)
            return points if arc is None else arc  # collinear: a straight line through the points
        return _bezier(points)
    if curve_type == "C":
        return _catmull(points)
    return _bezier(points)


def _split_at_repeats(curve_type: str, points: np.ndarray) -> list[np.ndarray]:
    if curve_type == "C" or len(points) < 2:
        # catmull paths never split, except that a head written twice is dropped
        if len(points) >= 2 and np.array_equal(points[0], points[1]):
            points = points[1:]
        return [points]
    same = np.all(points[1:] == points[:-1], axis=1)
    if not same.any():
        return [points]
    cuts = np.flatnonzero(same) + 1
    return [p for p in np.split(points, cuts) if len(p)]


def _dedup(polyline: np.ndarray) -> np.ndarray:
    if len(polyline) < 2:
        return polyline
    keep = np.ones(len(polyline), bool)
    keep[1:] = np.any(polyline[1:] != polyline[:-1], axis=1)
    return polyline[keep]


def full_path(segments: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Uncut polyline of a path made of (curve type, points) segments, each starting where the last ended."""
    parts = []
    for curve_type, points in segments:
        for piece in _split_at_repeats(curve_type, points):
            parts.append(_segment(curve_type, piece))
    return _dedup(np.concatenate(parts).astype(np.float64))


# ---- public API -------------------------------------------------------------------------------------------
def slider_path(curve_type: str, points: np.ndarray, length_px: float | None) -> np.ndarray:
    """Polyline [M, 2] of a slider (points [K, 2] head first), cut or extended to `length_px`."""
    polyline = full_path([(curve_type, np.asarray(points, np.float64))])
    return cut_to_length(polyline, length_px)


def segments_of(hit_object: HitObject, points: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    """(type, points) segments of a slider; `points` [K+1, 2] (head first) replaces its own points."""
    if points is None:
        points = np.array([(hit_object.x, hit_object.y), *hit_object.control_points], np.float64)
    types = hit_object.segment_types or [(0, hit_object.curve_type or "B")]
    segments = []
    for k, (start, letter) in enumerate(types):
        # control point i is points[i + 1]; a segment runs to (and includes) the next segment's first point
        lo = 0 if k == 0 else start + 1
        hi = types[k + 1][0] + 1 if k + 1 < len(types) else len(points) - 1
        segments.append((letter, points[lo : hi + 1]))
    return [(letter, p) for letter, p in segments if len(p)]


def hit_object_path(hit_object: HitObject, points: np.ndarray | None = None, length_px: float | None = -1.0):
    """Polyline of a parsed slider cut to its length (`length_px=None`: uncut, or a given length)."""
    polyline = full_path(segments_of(hit_object, points))
    if length_px is not None and length_px < 0:
        length_px = hit_object.length_px if hit_object.length_given else None
    return cut_to_length(polyline, length_px)


def end_point(hit_object: HitObject) -> tuple[float, float]:
    """Where the first span of a parsed slider ends (pure-Python fast paths for lines and arcs)."""
    head = (hit_object.x, hit_object.y)
    cps = hit_object.control_points
    length_px = hit_object.length_px
    if len(hit_object.segment_types) <= 1 and cps:
        letter = hit_object.curve_type
        distinct = [head] + [p for i, p in enumerate(cps) if p != (cps[i - 1] if i else head)]
        if letter == "L" or len(distinct) == 2 and letter != "C":
            return _polyline_end(distinct, length_px)
        if letter == "P" and len(distinct) == 3 and len(cps) == 2:
            arc = _arc_end(distinct, length_px)
            if arc is not None:
                return arc
    end = hit_object_path(hit_object)[-1]
    return float(end[0]), float(end[1])


def _polyline_end(points: list[tuple[float, float]], length_px: float) -> tuple[float, float]:
    if len(points) < 2:
        return points[0]
    done = 0.0
    for k in range(1, len(points)):
        (ax, ay), (bx, by) = points[k - 1], points[k]
        step = math.hypot(bx - ax, by - ay)
        if done + step >= length_px or k == len(points) - 1:
            f = (length_px - done) / step
            return ax + (bx - ax) * f, ay + (by - ay) * f
        done += step
    return points[-1]


def _arc_end(points: list[tuple[float, float]], length_px: float) -> tuple[float, float] | None:
    """End of a circular-arc slider at `length_px`, continuing along the end tangent past the arc."""
    arc = _arc_through(points)
    if arc is None:
        return None
    ox, oy, radius, theta_start, direction, theta_range = arc
    if radius * 2 <= CIRCLE_TOLERANCE_PX or radius > 1e6:
        return None
    arc_px = theta_range * radius
    theta = theta_start + direction * min(length_px, arc_px) / radius
    x, y = ox + radius * math.cos(theta), oy + radius * math.sin(theta)
    if length_px > arc_px:
        extra = length_px - arc_px
        x, y = x - direction * math.sin(theta) * extra, y + direction * math.cos(theta) * extra
    return x, y


def slider_path_length(hit_object: HitObject) -> float:
    """Natural length of a slider's path (for lines that give no length)."""
    return path_length(full_path(segments_of(hit_object)))


def cut_to_length(polyline: np.ndarray, length_px: float | None) -> np.ndarray:
    """Cut the polyline at `length_px`, or extend its last segment to reach it (osu!'s rule)."""
    if length_px is None or len(polyline) < 2:
        return polyline
    cumulative = _cumulative(polyline)
    total = cumulative[-1]
    if length_px >= total:
        if length_px == total:
            return polyline
        end = len(polyline) - 1
    else:
        # last vertex strictly before the cut; the segment after it is shortened
        end = int(np.searchsorted(cumulative, length_px, side="left"))
        end = max(end, 1)
    start = polyline[end - 1]
    step = polyline[end] - start
    step_px = math.hypot(*step)
    out = polyline[: end + 1].copy()
    if step_px > 0:
        out[end] = start + step * ((length_px - cumulative[end - 1]) / step_px)
    return out


def _cumulative(polyline: np.ndarray) -> np.ndarray:
    cumulative = np.zeros(len(polyline))
    if len(polyline) > 1:
        np.cumsum(np.hypot(*np.diff(polyline, axis=0).T), out=cumulative[1:])
    return cumulative


def path_length(polyline: np.ndarray) -> float:
    """Arc length of a polyline, px."""
    if len(polyline) < 2:
        return 0.0
    return float(np.hypot(*np.diff(polyline, axis=0).T).sum())


def point_at_length(polyline: np.ndarray, length_px: float) -> np.ndarray:
    """Point [2] at arc length `length_px` along the polyline (clamped to its ends)."""
    if len(polyline) < 2:
        return np.asarray(polyline[0], np.float64)
    cumulative = _cumulative(polyline)
    length_px = min(max(length_px, 0.0), cumulative[-1])
    i = int(np.clip(np.searchsorted(cumulative, length_px, side="right"), 1, len(polyline) - 1))
    span = cumulative[i] - cumulative[i - 1]
    f = 0.0 if span <= 0 else (length_px - cumulative[i - 1]) / span
    return polyline[i - 1] + (polyline[i] - polyline[i - 1]) * f


def nearest_length(polyline: np.ndarray, point: np.ndarray, extend: bool = False) -> float:
    """Arc length of the polyline's point nearest to `point`; `extend` lets it run on past the end."""
    point = np.asarray(point, np.float64)
    if len(polyline) < 2:
        return 0.0
    a = polyline[:-1]
    ab = np.diff(polyline, axis=0)
    seg_sq = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("ij,ij->i", point - a, ab) / np.where(seg_sq > 0, seg_sq, 1.0)
    upper = np.ones(len(t))
    if extend:
        upper[-1] = np.inf  # osu! extends a slider along its last segment
    t = np.clip(t, 0.0, upper)
    closest = a + ab * t[:, None]
    d_sq = np.einsum("ij,ij->i", closest - point, closest - point)
    i = int(np.argmin(d_sq))
    seg_px = np.sqrt(seg_sq)
    return float(seg_px[:i].sum() + t[i] * seg_px[i])
