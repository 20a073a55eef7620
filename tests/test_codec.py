"""Encode to datapoints and decode back to .osu on the real fixture maps."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
import rosu_pp_py

from data.beatmap.codec import decode, decode_bytes, encode, layout
from data.beatmap.curves import (
    cut_to_length,
    end_point,
    full_path,
    hit_object_path,
    nearest_length,
    path_length,
    point_at_length,
    segments_of,
)
from data.beatmap.datapoints import ANCHOR_TYPES, SLIDER_END_TYPES, DatapointType, distances
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from testing.roundtrip import _slider_objects

AKA_NO_HA = "506908 Nakamura Meiko - Aka no Ha/Nakamura Meiko - Aka no Ha (Lily Bread) [Extra].osu"
RED_GOOSE = "mutsuhikoizumiredgoose Mutsuhiko Izumi - Red Goose/Mutsuhiko Izumi - Red Goose (nold_1702) [ERT Basic].osu"


def test_encode_counts_and_types(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    points = encode(beatmap)
    kinds = collections.Counter(DatapointType(k) for k in points.kind)
    objects = collections.Counter(h.kind for h in beatmap.hit_objects)
    heads = kinds[DatapointType.SLIDER_HEAD] + kinds[DatapointType.SLIDER_HEAD_NEW_COMBO]
    assert heads == objects["slider"]
    assert sum(kinds[t] for t in SLIDER_END_TYPES) == objects["slider"]
    assert kinds[DatapointType.LAST_ANCHOR] == objects["slider"]
    assert kinds[DatapointType.CIRCLE] + kinds[DatapointType.CIRCLE_NEW_COMBO] == objects["circle"]
    assert kinds[DatapointType.SPINNER] == kinds[DatapointType.SPINNER_END] == objects["spinner"]
    assert np.all(np.diff(points.time_ms) >= 0)
    assert np.allclose(points.distance, distances(points.position))
    assert points.position.dtype == np.float32 and points.kind.dtype == np.int8


def test_slider_datapoints_follow_the_slider(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / RED_GOOSE)
    time_ms, position, kind, refs = layout(beatmap)
    sliders = {i: h for i, h in enumerate(beatmap.hit_objects) if h.kind == "slider"}
    for (obj, role), t, p, k in zip(refs.tolist(), time_ms, position, kind, strict=True):
        if obj not in sliders:
            continue
        h = sliders[obj]
        first_span_end = h.time_ms + (h.end_time_ms - h.time_ms) / h.slides
        if role == -2:
            assert t == h.end_time_ms and DatapointType(k) in SLIDER_END_TYPES
        elif role >= 0:
            assert DatapointType(k) in ANCHOR_TYPES
            assert h.time_ms <= t <= first_span_end + 1e-6
            assert tuple(p) in h.control_points
    # red anchors are written as a repeated point in bezier sliders
    assert (kind == DatapointType.RED_ANCHOR).any()


def test_own_positions_decode_to_the_same_bytes(fixture_maps):
    for path in fixture_maps:
        beatmap = read_beatmap(path)
        positions = encode(beatmap).position
        assert decode_bytes(beatmap, positions) == path.read_bytes(), path


def _scaled(beatmap, factor: float) -> np.ndarray:
    positions = encode(beatmap).position.astype(np.float64)
    center = np.array([256.0, 192.0])
    return center + (positions - center) * factor


@pytest.mark.parametrize("name", [AKA_NO_HA, RED_GOOSE])
def test_moved_positions_keep_rhythm(fixtures, name):
    beatmap = read_beatmap(fixtures / "songs" / name)
    positions = _scaled(beatmap, 0.7)
    text = decode(beatmap, positions)
    moved = parse_beatmap(text.encode())
    assert len(moved.hit_objects) == len(beatmap.hit_objects)
    for a, b in zip(beatmap.hit_objects, moved.hit_objects, strict=True):
        assert (a.time_ms, a.kind, a.slides, a.new_combo, a.hitsound) == (
            b.time_ms,
            b.kind,
            b.slides,
            b.new_combo,
            b.hitsound,
        )
        assert abs(a.end_time_ms - b.end_time_ms) < 1.0
    # the objects really moved, and shrank the sliders
    sliders = [(a, b) for a, b in zip(beatmap.hit_objects, moved.hit_objects, strict=True) if a.kind == "slider"]
    assert np.mean([b.length_px / a.length_px for a, b in sliders]) == pytest.approx(0.7, abs=0.05)
    # an independent reader agrees on times, repeats and slider durations
    source, decoded = _slider_objects(beatmap.raw), _slider_objects(text.encode())
    assert source is not None and decoded is not None
    for a, b in zip(source, decoded, strict=True):
        assert (a["time"], a["kind"], a.get("repeat")) == (b["time"], b["kind"], b.get("repeat"))
        if "end_time" in a:
            assert abs((a["end_time"] - a["time"]) - (b["end_time"] - b["time"])) <= 2.0
    # rosu-pp's max combo counts slider ticks and repeats
    combo = [
        rosu_pp_py.Difficulty().calculate(rosu_pp_py.Beatmap(content=d)).max_combo for d in (beatmap.raw, text.encode())
    ]
    assert combo[0] == combo[1]


def test_decode_places_objects_where_asked(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    positions = _scaled(beatmap, 0.7)
    moved = parse_beatmap(decode(beatmap, positions).encode())
    refs = layout(beatmap)[3]
    for (obj, role), p in zip(refs.tolist(), positions, strict=True):
        h = moved.hit_objects[obj]
        if role == -1 and h.kind != "spinner":
            assert abs(h.x - p[0]) <= 0.5 and abs(h.y - p[1]) <= 0.5
        if role == -2 and h.kind == "slider":
            assert np.hypot(*(np.array(end_point(h)) - p)) < 2.0


def test_decode_clips_to_the_playfield(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    positions = encode(beatmap).position.astype(np.float64) + 1000.0
    moved = parse_beatmap(decode(beatmap, positions).encode())
    assert all(0 <= h.x <= 512 and 0 <= h.y <= 384 for h in moved.hit_objects if h.kind != "spinner")


def test_decode_rejects_wrong_shape(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    with pytest.raises(ValueError):
        decode(beatmap, np.zeros((3, 2)))


def _dense_bezier(points: np.ndarray, samples: int = 100_001) -> np.ndarray:
    """Reference bezier by the Bernstein form, sampled densely (independent of curves.py's de Casteljau)."""
    from math import comb

    n = len(points) - 1
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return sum(comb(n, i) * (1 - t) ** (n - i) * t**i * points[i] for i in range(n + 1))


def _cut(polyline: np.ndarray, length_px: float) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(polyline, axis=0).T))])
    return polyline[np.searchsorted(cumulative, length_px)]


def test_slider_geometry_matches_reference_curves(fixture_maps):
    checked = collections.Counter()
    for path in fixture_maps:
        for h in read_beatmap(path).hit_objects:
            if h.kind != "slider" or not h.control_points or len(h.segment_types) > 1:
                continue
            points = np.array([(h.x, h.y), *h.control_points], np.float64)
            distinct = np.concatenate([[True], np.any(points[1:] != points[:-1], axis=1)])
            polyline = hit_object_path(h)
            assert abs(path_length(polyline) - h.length_px) < 1e-6
            if h.curve_type == "B" and distinct.all() and len(points) > 2:
                reference = _dense_bezier(points)
                if path_length(reference) > h.length_px:
                    assert np.hypot(*(end_point(h) - _cut(reference, h.length_px))) < 0.5
                    checked["B"] += 1
            elif h.curve_type == "P" and len(points) == 3:
                # the end of a circular arc lies on the circle through the three points
                (ax, ay), (bx, by), (cx, cy) = points
                d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
                if abs(d) < 1:
                    continue
                ox = ((ax**2 + ay**2) * (by - cy) + (bx**2 + by**2) * (cy - ay) + (cx**2 + cy**2) * (ay - by)) / d
                oy = ((ax**2 + ay**2) * (cx - bx) + (bx**2 + by**2) * (ax - cx) + (cx**2 + cy**2) * (bx - ax)) / d
                radius = np.hypot(ax - ox, ay - oy)
                arc_end = np.array(end_point(h))
                if h.length_px <= path_length(full_path(segments_of(h))):
                    assert abs(np.hypot(*(arc_end - (ox, oy))) - radius) < 0.5
                    checked["P"] += 1
            elif h.curve_type == "L":
                assert point_at_length(polyline, h.length_px) == pytest.approx(polyline[-1])
                checked["L"] += 1
    assert checked["B"] > 10 and checked["P"] > 10 and checked["L"] > 10


def test_nearest_length_inverts_point_at_length(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / RED_GOOSE)
    for h in beatmap.hit_objects[:60]:
        if h.kind != "slider":
            continue
        polyline = hit_object_path(h, length_px=None)
        for fraction in (0.25, 0.5, 0.9):
            length_px = fraction * path_length(polyline)
            point = point_at_length(polyline, length_px)
            assert (
                nearest_length(polyline, point) == pytest.approx(length_px, abs=0.05)
                or np.hypot(*(point_at_length(polyline, nearest_length(polyline, point)) - point)) < 1e-6
            )  # a path crossing itself has two nearest points
        # past the end, the path runs on along its last segment
        beyond = cut_to_length(polyline, path_length(polyline) + 30.0)
        assert nearest_length(polyline, beyond[-1], extend=True) == pytest.approx(path_length(polyline) + 30.0)


@pytest.mark.parametrize("name", [AKA_NO_HA, RED_GOOSE])
def test_decoded_map_encodes_to_the_same_types(fixtures, name):
    beatmap = read_beatmap(fixtures / "songs" / name)
    source = encode(beatmap)
    for positions in (_scaled(beatmap, 0.7), np.full((len(source), 2), (256.0, 192.0))):
        again = encode(parse_beatmap(decode(beatmap, positions).encode()))
        assert collections.Counter(again.kind.tolist()) == collections.Counter(source.kind.tolist())


def test_long_bezier_segments_match_de_casteljau():
    # Slider-art segments of hundreds of points take the fast Bernstein path; it must draw the same curve.
    import data.beatmap.curves as curves

    rng = np.random.default_rng(0)
    points = rng.uniform(0, 512, (curves.LONG_BEZIER_POINTS + 20, 2))
    fast = curves._bezier(points)
    t = np.linspace(0.0, 1.0, len(fast))[:, None, None]
    work = np.broadcast_to(points, (len(fast), len(points), 2)).copy()
    for _ in range(len(points) - 1):
        work = work[:, :-1] + (work[:, 1:] - work[:, :-1]) * t
    np.testing.assert_allclose(fast, work[:, 0], atol=1e-6)


POLYSICS_V3 = (
    "polysicsrocketmoyashimon POLYSICS - Rocket (Moyashimon ED)/"
    "POLYSICS - Rocket (Moyashimon ED) (flakmonkey) [Insane].osu"
)


def test_kept_length_slider_turns_to_fit_instead_of_clipping(fixtures):
    """A v3 slider keeps its length, so a short generated shape is scaled up about the head; near an edge the
    scaled shape must turn to fit, keeping its full length, not be clipped short (osu! would then extend the
    end straight on, off the playfield)."""
    from data.beatmap.codec import _scale_to_length

    beatmap = read_beatmap(fixtures / "songs" / POLYSICS_V3)
    assert beatmap.format_version < 8
    h = max((o for o in beatmap.hit_objects if o.kind == "slider" and o.control_points), key=lambda o: o.length_px)
    offsets = np.asarray(h.control_points, np.float64) - (h.x, h.y)
    heading = math.atan2(offsets[-1, 1], offsets[-1, 0])
    turn = np.array([[math.cos(-heading), math.sin(-heading)], [-math.sin(-heading), math.cos(-heading)]])
    shape = 0.25 * offsets @ turn  # a quarter-size copy heading straight right (+x)

    def path_px(head, points):
        return path_length(full_path(segments_of(h, np.vstack([head, points]))))

    head = (500.0, 192.0)  # 12 px from the right edge, shape pointing at it
    fitted = np.asarray(_scale_to_length(h, head, [tuple(p) for p in head + shape], h.length_px))
    assert np.all((fitted >= 0) & (fitted <= (512, 384)))
    assert path_px(head, fitted) == pytest.approx(h.length_px, rel=0.02)

    head = (256.0, 192.0)  # room to spare: plain scaling, no turn
    plain = np.asarray(_scale_to_length(h, head, [tuple(p) for p in head + 0.5 * shape], h.length_px))
    natural = path_px(head, head + 0.5 * shape)
    np.testing.assert_allclose(plain, np.round(head + 0.5 * shape * (h.length_px / natural)))
