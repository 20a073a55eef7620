"""Mods: flag strings, and fixture maps as played under HR, EZ, DT and HT."""

import math

import numpy as np
import pytest

from data.beatmap.curves import hit_object_path
from data.beatmap.osu_reader import read_beatmap
from data.errors import BadInputError
from data.replay.mods import (
    DT,
    HD,
    HR,
    NC,
    PF,
    SD,
    apply_mods,
    circle_radius_px,
    hit_windows_ms,
    mods_rate,
    mods_to_string,
    parse_mods,
    preempt_ms,
)


@pytest.fixture
def slider_map(fixture_maps):
    """The fixture map with the most sliders (a real v14 map)."""
    maps = [read_beatmap(p) for p in fixture_maps]
    return max(maps, key=lambda b: sum(h.kind == "slider" for h in b.hit_objects))


def test_mod_strings_and_flags():
    assert parse_mods("HDHR") == HD | HR == 24
    assert parse_mods("DT") == 64 and parse_mods("HR") == 16
    assert parse_mods("+hd,dt") == HD | DT
    assert parse_mods("NC") == NC | DT, "osu! sets DT with NC"
    assert parse_mods("PF") == PF | SD
    assert parse_mods("") == parse_mods("NM") == parse_mods("nomod") == 0
    assert mods_to_string(24) == "HDHR" and mods_to_string(80) == "HRDT" and mods_to_string(NC | DT) == "NC"
    assert mods_to_string(0) == ""
    for text in ("HD", "HDHR", "EZHDDT", "NFHT", "HDHRNCFL", "SO", "PF"):
        assert parse_mods(mods_to_string(parse_mods(text))) == parse_mods(text)
    for bad in ("XX", "HDH", "EZHR", "DTHT"):
        with pytest.raises(BadInputError):
            parse_mods(bad)
    assert mods_rate(DT) == mods_rate(NC | DT) == 1.5 and mods_rate(256) == 0.75 and mods_rate(HD | HR) == 1.0


def test_difficulty_formulas():
    assert preempt_ms(5) == 1200 and preempt_ms(10) == 450 and preempt_ms(0) == 1800
    assert hit_windows_ms(10) == (20, 60, 100)
    assert circle_radius_px(4) == pytest.approx(54.4 - 4.48 * 4)


def test_nomod_and_plain_mods_change_nothing_but_flags(slider_map):
    plain = apply_mods(slider_map, 0)
    hidden = apply_mods(slider_map, "HDNFSO")
    for h, a, b in zip(slider_map.hit_objects, plain.hit_objects, hidden.hit_objects, strict=True):
        assert (a.x, a.y, a.time_ms, a.end_time_ms) == (h.x, h.y, h.time_ms, h.end_time_ms)
        assert (b.x, b.y, b.time_ms) == (a.x, a.y, a.time_ms)
    assert plain.preempt_ms == hidden.preempt_ms == preempt_ms(slider_map.approach_rate)
    assert plain.radius_px == circle_radius_px(slider_map.circle_size)


def test_hr_flips_the_field_and_raises_difficulty(slider_map):
    plain, hard = apply_mods(slider_map, 0), apply_mods(slider_map, "HR")
    for a, b in zip(plain.hit_objects, hard.hit_objects, strict=True):
        assert b.x == a.x and b.y == 384 - a.y and b.time_ms == a.time_ms
        if a.kind == "slider":
            assert np.allclose(b.path[:, 0], a.path[:, 0]) and np.allclose(b.path[:, 1], 384 - a.path[:, 1])
    sliders = [h for h in slider_map.hit_objects if h.kind == "slider"]
    assert sliders, "the fixture has sliders"
    # The flipped path is the path of the flipped control points (a flip keeps arc lengths).
    h = sliders[0]
    flipped = np.array([(h.x, 384 - h.y), *[(x, 384 - y) for x, y in h.control_points]])
    assert np.allclose(hit_object_path(h, flipped), hard.hit_objects[slider_map.hit_objects.index(h)].path)
    assert hard.circle_size == pytest.approx(min(slider_map.circle_size * 1.3, 10))
    assert hard.approach_rate == pytest.approx(min(slider_map.approach_rate * 1.4, 10))
    assert hard.overall_difficulty_song == pytest.approx(min(slider_map.overall_difficulty * 1.4, 10))
    assert hard.hp_drain == pytest.approx(min(slider_map.hp_drain * 1.4, 10))
    assert hard.radius_px < plain.radius_px


def test_ez_halves(slider_map):
    easy = apply_mods(slider_map, "EZ")
    assert easy.circle_size == pytest.approx(slider_map.circle_size / 2)
    assert easy.preempt_ms == pytest.approx(preempt_ms(slider_map.approach_rate / 2))
    assert easy.hit_objects[0].y == slider_map.hit_objects[0].y


@pytest.mark.parametrize("mods, rate", [("DT", 1.5), ("NC", 1.5), ("HT", 0.75), ("HDHRDT", 1.5)])
def test_rate_mods_put_objects_in_play_time(slider_map, mods, rate):
    plain, fast = apply_mods(slider_map, 0), apply_mods(slider_map, mods)
    assert fast.rate == rate
    for a, b in zip(plain.hit_objects, fast.hit_objects, strict=True):
        assert b.time_ms == pytest.approx(a.time_ms / rate)
        assert b.end_time_ms == pytest.approx(a.end_time_ms / rate)
        assert b.span_ms == pytest.approx(a.span_ms / rate)
    assert fast.preempt_ms == pytest.approx(preempt_ms(fast.approach_rate))
    song_od = fast.overall_difficulty_song
    assert fast.hit_windows_ms == pytest.approx(tuple(math.floor(w) / rate for w in hit_windows_ms(song_od)))
    if rate > 1:
        assert fast.approach_rate > plain.approach_rate and fast.overall_difficulty > plain.overall_difficulty


def test_slider_ball_runs_along_its_path_and_back(slider_map):
    play = apply_mods(slider_map, "DT")
    repeated = [o for o in play.hit_objects if o.kind == "slider" and o.slides >= 2]
    single = [o for o in play.hit_objects if o.kind == "slider" and o.slides == 1]
    for o in (repeated + single)[:5]:
        assert np.allclose(o.position_at(o.time_ms), o.path[0])
        assert np.allclose(o.position_at(o.time_ms + o.span_ms), o.path[-1], atol=1e-6)
        expected_end = o.path[0] if o.slides % 2 == 0 else o.path[-1]
        assert np.allclose(o.end_position, expected_end, atol=1e-6)
