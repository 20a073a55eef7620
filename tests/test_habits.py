"""Player habits measured on real fixture replays: each habit moves when the play changes that way, and the
training windows and a player's descriptor carry them."""

import hashlib

import numpy as np
import pytest

from data.beatmap.osu_reader import read_beatmap
from data.replay.habits import HABIT_NAMES, describe, habit_stats, normalize_habits, tick_habits, window_descriptor
from data.replay.mods import apply_mods
from data.replay.osr import read_replay, to_grid
from data.replay_io import FEATURE_INDEX, active_span, map_features
from data.replay_windows import ReplayWindowDataset
from tests.conftest import FIXTURES

H = {name: i for i, name in enumerate(HABIT_NAMES)}


@pytest.fixture(scope="module")
def abraker():
    """abraker's fixture replay on its fixture map, on the grid and cropped to the played part."""
    maps = {hashlib.md5(p.read_bytes()).hexdigest(): p for p in (FIXTURES / "songs").rglob("*.osu")}
    record = next(r for r in map(read_replay, sorted((FIXTURES / "replays").glob("*.osr"))) if r.player == "abraker")
    grid = to_grid(record)
    features = map_features(apply_mods(read_beatmap(maps[record.beatmap_md5]), record.mods), grid.time_ms)
    first, last = active_span(features)
    keep = slice(first, last)
    return grid.time_ms[keep], grid.x[keep], grid.y[keep], grid.k1[keep], grid.k2[keep], features[keep]


def _descriptor(t, x, y, k1, k2, f) -> np.ndarray:
    return window_descriptor(tick_habits(t, x, y, k1, k2, f))


def test_a_human_replay_hits_its_objects_within_the_judgement_windows(abraker):
    ticks = tick_habits(*abraker)
    errors = ticks[:, H["hit_error_ms"]]
    errors = errors[np.isfinite(errors)]
    assert len(errors) > 50, "most objects are matched to a press"
    window_50 = 1000 * float(abraker[5][0, FEATURE_INDEX["window_50_s"]])
    assert np.abs(errors).max() <= window_50
    assert np.median(errors) < 0, "abraker hits early (his corpus replays do too)"
    offsets = ticks[:, H["aim_offset_radii"]]
    assert np.nanmedian(offsets) < 1.0, "presses land on their objects"
    assert set(np.unique(ticks[:, H["alternation"]][np.isfinite(ticks[:, H["alternation"]])])) <= {0.0, 1.0}


def test_pressing_later_shows_as_later_hits(abraker):
    t, x, y, k1, k2, f = abraker
    late = [np.concatenate([np.zeros(3, k.dtype), k[:-3]]) for k in (k1, k2)]
    before, after = _descriptor(t, x, y, k1, k2, f), _descriptor(t, x, y, *late, f)
    step = float(np.median(np.diff(t)))
    assert after[H["hit_error_ms"]] - before[H["hit_error_ms"]] == pytest.approx(3 * step, abs=0.5 * step)


def test_one_key_never_alternates_and_swapping_every_other_press_always_does(abraker):
    t, x, y, k1, k2, f = abraker
    single = np.asarray(k1, bool) | np.asarray(k2, bool)
    assert _descriptor(t, x, y, single, np.zeros_like(single), f)[H["alternation"]] == 0.0
    starts = np.flatnonzero(single & ~np.concatenate([[False], single[:-1]]))
    ends = np.flatnonzero(single & ~np.concatenate([single[1:], [False]])) + 1
    a, b = np.zeros_like(single), np.zeros_like(single)
    for n, (s, e) in enumerate(zip(starts, ends, strict=True)):
        (a if n % 2 == 0 else b)[s:e] = True
    assert _descriptor(t, x, y, a, b, f)[H["alternation"]] == 1.0


def test_a_steadier_hand_has_less_tremor_and_rests_more(abraker):
    t, x, y, k1, k2, f = abraker
    kernel = np.ones(9) / 9
    sx, sy = (np.convolve(np.pad(v, 4, mode="edge"), kernel, mode="valid") for v in (x, y))
    shaky, steady = _descriptor(t, x, y, k1, k2, f), _descriptor(t, sx, sy, k1, k2, f)
    assert steady[H["tremor_px"]] < 0.5 * shaky[H["tremor_px"]]
    frozen = (
        np.where(np.arange(len(x)) % 2 == 0, x, np.roll(x, 1)),
        np.where(np.arange(len(y)) % 2 == 0, y, np.roll(y, 1)),
    )
    assert _descriptor(t, *frozen, k1, k2, f)[H["rest_share"]] >= 0.45, "every other tick repeats its position"


def test_training_windows_carry_their_own_normalised_habits_and_players_their_median(tmp_path):
    from data.prepare import main as prepare_main

    assert prepare_main(["--input", str(FIXTURES / "songs"), "--output", str(tmp_path), "--workers", "1",
                         "--no-progress", "--replays", str(FIXTURES / "replays")]) == 0  # fmt: skip
    data = ReplayWindowDataset(tmp_path, "all", seq_len=128, augment=False)
    assert data.habits.shape == (len(data), len(HABIT_NAMES))
    stats = data.habit_normalization
    for i in (0, len(data) // 2, len(data) - 1):
        assert np.allclose(data[i]["player_features"].numpy(), normalize_habits(data.habits[i], stats), atol=1e-6)
    table = data.player_descriptors()
    assert table.shape == (data.num_classes, len(HABIT_NAMES)) and not table[0].any(), "the null class asks for none"
    abraker = data.players.class_of("abraker")
    assert table[abraker].any(), "a player with windows has a descriptor"
    assert habit_stats(data.habits) == stats
    windows = data.player_windows()
    theirs = [apply_mods(read_beatmap(r["map_path"]), r["mods"]).hit_windows_ms[0] for r in data.rows
              if r["player_class"] == abraker]  # fmt: skip
    assert windows[0] == 0.0 and min(theirs) - 0.01 <= windows[abraker] <= max(theirs) + 0.01, "his maps' window"


def test_habits_in_words():
    words = describe({"hit_error_ms": -30.0, "alternation": 0.0, "aim_offset_radii": 0.4, "hold_share": 0.5,
                      "tremor_px": 1.0, "rest_share": 0.2})  # fmt: skip
    assert "30 ms early" in words and "single-tap" in words
    assert "late" in describe({"hit_error_ms": 12.0}) and "alternate in streams" in describe({"alternation": 0.9})
