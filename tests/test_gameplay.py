"""Stacking and judging on the real fixture maps and replays.

Tolerance for judging: on the raw frames each of the header's 300/100/50/miss counts is matched within
max(1, 1% of the objects) and the max combo within 1%; on the 60 Hz grid (presses moved to the nearest tick)
at most 5% of objects may change result (300 <-> 100 by the timing shift) and misses agree within 1.
"""

import hashlib

import numpy as np
import pytest

from data.beatmap.osu_reader import read_beatmap
from data.replay.gameplay import judge, stack_heights, stacked_positions
from data.replay.mods import apply_mods, hit_windows_ms
from data.replay.osr import ReplayFrames, read_replay, to_grid


@pytest.fixture
def paired(fixtures, fixture_maps):
    """(record, play map) for each fixture replay whose map is a fixture."""
    maps = {hashlib.md5(p.read_bytes()).hexdigest(): p for p in fixture_maps}
    out = []
    for path in sorted((fixtures / "replays").glob("*.osr")):
        record = read_replay(path)
        if record.beatmap_md5 in maps:
            out.append((record, apply_mods(read_beatmap(maps[record.beatmap_md5]), record.mods)))
    assert len(out) == 3
    return out


def _header(record):
    return np.array([record.count_300, record.count_100, record.count_50, record.count_miss])


def _counts(judgement):
    return np.array([judgement.count_300, judgement.count_100, judgement.count_50, judgement.count_miss])


def test_judging_reproduces_header_counts(paired):
    for record, play in paired:
        judgement = judge(play, record)
        n = len(play.hit_objects)
        assert _counts(judgement).sum() == n == _header(record).sum()
        tolerance = max(1, n // 100)
        assert np.all(np.abs(_counts(judgement) - _header(record)) <= tolerance), (record.path, _counts(judgement))
        assert abs(judgement.max_combo - record.max_combo) <= max(1, record.max_combo // 100)
        assert judgement.max_combo <= judgement.max_possible_combo
        assert 0.9 < judgement.accuracy <= 1.0
        hit = np.isfinite(judgement.hit_error_ms)
        assert np.all(np.abs(judgement.hit_error_ms[hit]) < play.hit_windows_ms[2])
        assert 0 < judgement.unstable_rate < 10 * play.hit_windows_ms[2]


def test_judging_the_grid_stays_close(paired):
    for record, play in paired:
        on_frames, on_grid = judge(play, record), judge(play, to_grid(record))
        changed = int(np.sum(on_frames.result != on_grid.result))
        assert changed <= 0.05 * len(play.hit_objects)
        # Presses move by under half a tick, so hits and misses agree; only 300 vs 100 may flip.
        assert abs(on_grid.count_miss - on_frames.count_miss) <= 1
        assert abs(on_grid.max_combo - on_frames.max_combo) <= max(1, on_frames.max_combo // 100)


def test_cursor_away_from_the_objects_misses_everything_clickable(paired):
    record, play = paired[0]
    f = record.frames
    away = ReplayFrames(f.time_ms, np.full_like(f.x, -400.0), f.y, f.keys)
    judgement = judge(play, away)
    assert judgement.count_300 == judgement.count_100 == judgement.count_50 == 0
    assert judgement.count_miss == len(play.hit_objects) and judgement.max_combo == 0


def test_replay_on_another_map_judges_badly(paired):
    (record, _), (_, other) = paired[0], paired[1]
    assert judge(other, record).accuracy < 0.5


def test_mods_matter_when_judging(paired, fixture_maps):
    """The HR+DT replay only makes sense on the flipped, sped-up map."""
    record, play = next((r, p) for r, p in paired if r.mods == 80)
    beatmap = next(b for b in map(read_beatmap, fixture_maps) if b.md5 == record.beatmap_md5)
    right = judge(play, record)
    assert judge(apply_mods(beatmap, 0), record).accuracy < right.accuracy - 0.3
    assert judge(apply_mods(beatmap, "DT"), record).accuracy < right.accuracy - 0.3


def test_hit_windows():
    assert hit_windows_ms(5) == (50, 100, 150)


def test_stacking_on_old_format_maps(fixture_maps):
    """The v3 and v5 fixtures stack repeated circles up-left by a tenth of a radius per level."""
    stacked_any = False
    for path in fixture_maps:
        beatmap = read_beatmap(path)
        play = apply_mods(beatmap, 0)
        heights = stack_heights(play)
        positions = stacked_positions(play)
        heads = np.array([(o.x, o.y) for o in play.hit_objects])
        assert np.allclose(positions - heads, -heights[:, None] * play.radius_px / 10)
        if heights.any():
            stacked_any = True
            i = int(np.argmax(heights))
            # The object on top of a stack shares its spot with a later object it is stacked under.
            later = [j for j in range(i + 1, len(heads)) if np.hypot(*(heads[j] - heads[i])) < 3]
            assert later, path.name
            # Stacking keeps the objects apart on screen.
            assert np.hypot(*(positions[i] - positions[later[0]])) > 1
    assert stacked_any
