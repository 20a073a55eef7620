"""Our .osu reader on the real fixture maps, and its refusals of broken copies of them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from data.beatmap.codec import decode_bytes, encode
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.errors import BadInputError
from tests import bad_inputs

NATSUKOI = "700886 Shano x 40mP - Natsukoi Hanabi/Shano x 40mP - Natsukoi Hanabi (MinG3012) [TV Size].osu"
AKA_NO_HA = "506908 Nakamura Meiko - Aka no Ha/Nakamura Meiko - Aka no Ha (Lily Bread) [Extra].osu"


def _summary(beatmap):
    return [
        (h.time_ms, h.kind, h.x, h.y, h.new_combo, h.hitsound, h.control_points, h.slides, h.end_time_ms)
        for h in beatmap.hit_objects
    ]


def test_reads_every_fixture(fixture_maps):
    assert len(fixture_maps) == 8
    versions = set()
    for path in fixture_maps:
        beatmap = read_beatmap(path)
        versions.add(beatmap.format_version)
        times = [h.time_ms for h in beatmap.hit_objects]
        assert times == sorted(times)
        assert all(h.end_time_ms >= h.time_ms for h in beatmap.hit_objects)
        assert beatmap.md5 == __import__("hashlib").md5(path.read_bytes()).hexdigest()
    assert {3, 5, 14, 128} <= versions


def test_header_values(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    assert (beatmap.title, beatmap.artist, beatmap.creator, beatmap.version) == (
        "Aka no Ha",
        "Nakamura Meiko",
        "Lily Bread",
        "Extra",
    )
    assert beatmap.format_version == 14 and beatmap.newline == "\r\n"
    assert len(beatmap.hit_objects) == 325
    assert beatmap.approach_rate == 9.1
    assert beatmap.timing_point_at(50_000).uninherited


def test_old_map_has_approach_rate_from_od(fixture_maps):
    v3 = next(read_beatmap(p) for p in fixture_maps if read_beatmap(p).format_version == 3)
    assert "ApproachRate" not in v3.difficulty
    assert v3.approach_rate == v3.overall_difficulty


def test_slider_end_time_follows_osu_rule(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    for h in beatmap.hit_objects:
        if h.kind != "slider":
            continue
        beat_length = beatmap.timing_point_at(h.time_ms).beat_length
        sv = beatmap.slider_velocity_at(h.time_ms)
        span = h.length_px / (beatmap.slider_multiplier * 100 * sv) * beat_length
        assert math.isclose(h.end_time_ms, h.time_ms + span * h.slides)


def test_utf16_and_line_endings_parse_identically(fixtures):
    path = fixtures / "songs" / AKA_NO_HA
    data = path.read_bytes()
    reference = _summary(parse_beatmap(data))
    text = data.decode("utf-8")
    assert _summary(parse_beatmap(text.encode("utf-16"))) == reference
    assert _summary(parse_beatmap(text.replace("\r\n", "\n").encode())) == reference
    lf_map = fixtures / "songs" / NATSUKOI
    lf_text = lf_map.read_bytes().decode("utf-8-sig")
    assert _summary(parse_beatmap(lf_text.replace("\r\n", "\n").encode())) == _summary(read_beatmap(lf_map))


def test_slider_without_points_is_a_point(fixtures):
    # a real ranked map writes "174,155,61117,2,0,B,2560,-1": lazer reads a zero-length slider
    beatmap = read_beatmap(fixtures / "songs" / NATSUKOI)
    odd = [h for h in beatmap.hit_objects if h.kind == "slider" and not h.control_points]
    assert odd and all(h.end_time_ms == h.time_ms for h in odd)


def _broken_copies(data: bytes) -> dict[str, bytes]:
    text = data.decode("utf-8")
    objects_at = text.index("[HitObjects]")
    first_object = text[objects_at:].split("\n")[1]
    fields = first_object.split(",")
    return {
        "empty": b"",
        "binary": bytes(range(256)) * 4,
        "truncated": data[: len(data) // 3],
        "taiko": text.replace("Mode: 0", "Mode: 1").encode(),
        "no hit objects": text[: objects_at + len("[HitObjects]")].encode(),
        "no red line": "\n".join(
            line for line in text.split("\n") if not (line.count(",") == 7 and line.split(",")[6] == "1")
        ).encode(),
        "nan coordinate": text.replace(first_object, ",".join(["nan", *fields[1:]])).encode(),
        "absurd coordinate": text.replace(first_object, ",".join(["9999999", *fields[1:]])).encode(),
    }


@pytest.mark.parametrize(
    "kind",
    ["empty", "binary", "truncated", "taiko", "no hit objects", "no red line", "nan coordinate", "absurd coordinate"],
)
def test_bad_input_is_refused_with_the_path(fixtures, tmp_path, kind):
    data = (fixtures / "songs" / AKA_NO_HA).read_bytes()
    bad = tmp_path / f"{kind}.osu"
    bad.write_bytes(_broken_copies(data)[kind])
    with pytest.raises(BadInputError) as err:
        read_beatmap(bad)
    assert str(bad) in str(err.value)
    if kind == "taiko":
        assert "osu!taiko map (Mode 1)" in str(err.value)


@pytest.mark.parametrize("beat_length", ["0", "-500", "NaN"])
def test_bad_beat_length_is_refused(fixtures, tmp_path, beat_length):
    data = (fixtures / "songs" / AKA_NO_HA).read_bytes().decode("utf-8")
    lines = data.split("\r\n")
    start = lines.index("[TimingPoints]") + 1
    fields = lines[start].split(",")
    lines[start] = ",".join([fields[0], beat_length, *fields[2:]])
    bad = tmp_path / "zero.osu"
    bad.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(BadInputError, match="beat length"):
        read_beatmap(bad)


def test_folder_and_missing_path_are_refused(tmp_path):
    with pytest.raises(BadInputError, match=str(tmp_path)):
        read_beatmap(tmp_path)
    missing = Path(tmp_path) / "nothing.osu"
    with pytest.raises(BadInputError, match="no such file"):
        read_beatmap(missing)


# ---- odd lines of ranked maps: read as osu! reads them, and decoded with their own positions byte for byte
def _quirk(fixtures, tmp_path, name: str):
    base = read_beatmap(fixtures / "songs" / bad_inputs.BASE_MAP)
    odd = read_beatmap(bad_inputs.OSU_QUIRKS[name](fixtures, tmp_path))
    positions = encode(odd).position.astype(np.float64)
    assert decode_bytes(odd, positions) == odd.raw
    return base, odd


def test_far_off_anchor_is_kept_as_osu_stable_plays_it(fixtures, tmp_path):
    base, odd = _quirk(fixtures, tmp_path, "far_off_anchor")
    slider = next(h for h in odd.hit_objects if (-36047.0, -259088.0) in h.control_points)
    assert slider.length_px == next(h for h in base.hit_objects if h.line_index == slider.line_index).length_px


def test_overflowing_red_line_is_skipped_like_lazer(fixtures, tmp_path):
    base, odd = _quirk(fixtures, tmp_path, "overflowing_red_line")
    assert len(odd.sections["TimingPoints"]) == len(base.sections["TimingPoints"]) + 1
    assert [p.beat_length for p in odd.timing_points] == [p.beat_length for p in base.timing_points]
    assert [h.end_time_ms for h in odd.hit_objects] == [h.end_time_ms for h in base.hit_objects]


def test_slider_without_curve_is_skipped_like_lazer(fixtures, tmp_path):
    base, odd = _quirk(fixtures, tmp_path, "slider_without_curve")
    assert len(odd.hit_objects) == len(base.hit_objects) - 1
    cut = next(h for h in base.hit_objects if h.kind == "slider")
    assert all(h.line_index != cut.line_index for h in odd.hit_objects)


def test_slider_with_a_length_but_no_control_points_is_refused(fixtures, tmp_path):
    from tests.bad_inputs import slider_without_control_points

    path = slider_without_control_points(fixtures, tmp_path)
    with pytest.raises(BadInputError, match="slider without control points"):
        read_beatmap(path)
