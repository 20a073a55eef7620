"""Frame timing measured from real stable replays and laid onto a grid: human intervals, repeats, every press kept."""

from dataclasses import replace

import numpy as np
import pytest

from data.beatmap.osu_reader import read_beatmap
from data.replay.frame_timing import BLOCK, PRESS_SAMPLES, FrameTiming, lattice, measure, repeat_cells
from data.replay.gameplay import judge
from data.replay.habits import ALTERNATION_GAP_MS
from data.replay.mods import apply_mods
from data.replay.osr import KEY1_BITS, KEY2_BITS, key_holds, read_replay, to_grid
from tests.conftest import FIXTURES

REPLAYS = sorted((FIXTURES / "replays").glob("*.osr"))


@pytest.fixture(scope="module")
def timing():
    return FrameTiming.pooled([measure(read_replay(p)) for p in REPLAYS])


def _presses(keys: np.ndarray) -> int:
    down = [(keys & bits) != 0 for bits in (KEY1_BITS, KEY2_BITS)]
    return sum(int((d[1:] & ~d[:-1]).sum() + d[0]) for d in down)


def test_only_stable_replays_at_normal_speed_are_measured():
    measured = {p.name: measure(read_replay(p)) is not None for p in REPLAYS}
    rates = {p.name: read_replay(p).rate for p in REPLAYS}
    assert measured == {name: rate == 1.0 for name, rate in rates.items()}
    assert sum(measured.values()) >= 2


def test_pooled_timing_is_the_humans(timing):
    assert timing.runs.shape[1] == BLOCK and len(timing.runs) >= 8
    median = np.median(timing.runs)
    assert 14 <= median <= 18, "stable records near 60 frames per second"
    assert timing.runs.std() > 2, "with jitter, not a fixed clock"
    rest, fast = (repeat_cells(np.array([speed]), np.array([16.0]))[0] for speed in (0.0, 3.0))
    assert (timing.repeat_probability[:, rest] > 0.9).all(), "a hand at rest repeats its position"
    assert (timing.repeat_probability[:, fast] < 0.3).all()
    assert 0 <= timing.key_frame_probability <= 1
    back = FrameTiming.from_dict(timing.to_dict())
    assert np.array_equal(back.runs, timing.runs) and back.key_frame_probability == timing.key_frame_probability
    assert np.allclose(back.repeat_probability, timing.repeat_probability, atol=1e-4)


def test_a_grid_laid_onto_human_timing_keeps_every_press_and_plays_alike(timing, fixture_maps):
    by_md5 = {read_beatmap(p).md5: p for p in fixture_maps}
    record = next(r for r in map(read_replay, REPLAYS) if r.beatmap_md5 in by_md5 and r.rate == 1.0)
    play = apply_mods(read_beatmap(by_md5[record.beatmap_md5]), record.mods)
    grid = to_grid(record)
    frames = timing.frames(grid, np.random.default_rng(0))
    again = timing.frames(grid, np.random.default_rng(0))
    assert np.array_equal(frames.time_ms, again.time_ms) and np.array_equal(frames.x, again.x)
    intervals = np.diff(frames.time_ms)
    assert intervals.min() >= 0 and intervals.std() > 2, "variable intervals, never backwards"
    repeated = (np.diff(frames.x) == 0) & (np.diff(frames.y) == 0)
    assert 0.01 < repeated.mean() < 0.6
    grid_keys = np.where(grid.k1, KEY1_BITS, 0) | np.where(grid.k2, KEY2_BITS, 0)
    assert _presses(frames.keys) == _presses(grid_keys), "no press is lost or split"
    on_grid, on_frames = judge(play, grid), judge(play, frames)
    assert abs(on_frames.count_miss - on_grid.count_miss) <= max(2, 0.01 * len(play.hit_objects))
    assert abs(on_frames.accuracy - on_grid.accuracy) < 0.02


def test_each_press_frame_has_the_cursor_where_the_grid_says_the_press_was(timing):
    # to_grid puts the cursor at the press on its tick; a press frame a few ms off the tick must not take a
    # fast hand's position from between ticks instead (a click moved off its circle).
    grid = to_grid(read_replay(REPLAYS[0]))
    checked = far = 0
    for seed in range(4):
        frames = timing.frames(grid, np.random.default_rng(seed))
        frame_presses = sorted(f for bits in (KEY1_BITS, KEY2_BITS) for f, _ in key_holds((frames.keys & bits) != 0))
        tick_presses = sorted(p for down in (grid.k1, grid.k2) for p, _ in key_holds(np.asarray(down, bool)))
        assert len(frame_presses) == len(tick_presses)
        for f, p in zip(frame_presses, tick_presses, strict=True):
            if frames.x[f] == frames.x[f - 1] and frames.y[f] == frames.y[f - 1]:
                continue  # a repeated position, as a human frame repeats
            off = np.hypot(frames.x[f] - grid.x[p], frames.y[f] - grid.y[p])
            checked += 1
            far += off > 1.0  # a pixel: the lattice and whole-ms frame times move it a little
    assert checked > 200
    assert far == 0, f"{far} of {checked} press frames away from their press"


def test_the_frame_after_a_press_comes_as_soon_as_a_human_clients_did(timing):
    # Measured: the interval from each press frame to the next later one, as each replay recorded it.
    record = next(r for r in map(read_replay, REPLAYS) if measure(r) is not None)
    keys, t = record.frames.keys & (KEY1_BITS | KEY2_BITS), np.asarray(record.frames.time_ms, np.float64)
    pressed = np.flatnonzero((keys[1:] & ~keys[:-1]) != 0) + 1
    later = [t[t > t[i]].min() - t[i] for i in pressed if (t > t[i]).any()]
    assert set(measure(record)["after_press"]) <= set(np.round(later).clip(1, 255).astype(int))
    assert measure(record)["after_press"].min() >= 1, "a same-millisecond twin is not the next frame"
    assert timing.after_press.shape == (len(timing.lattice), PRESS_SAMPLES)
    back = FrameTiming.from_dict(timing.to_dict())
    assert np.array_equal(back.after_press, timing.after_press)
    # A lagging client (every drawn interval 50 ms) still records the frame after a press within the drawn
    # setup's own interval; without that a long interval starts at a press and a hairpin turn there reads
    # as an aim-correction snap.
    lagging = replace(timing, runs=np.full_like(timing.runs, 50))
    grid = to_grid(read_replay(REPLAYS[0]))
    for seed in range(3):
        setup = lagging.draw_setup(np.random.default_rng(seed))
        frames = lagging.frames(grid, np.random.default_rng(seed))
        down = [(frames.keys & bits) != 0 for bits in (KEY1_BITS, KEY2_BITS)]
        t = np.asarray(frames.time_ms, np.float64)
        after = np.array([t[t > t[f]].min() - t[f] for d in down for f, _ in key_holds(d) if (t > t[f]).any()])
        assert len(after) > 100
        assert after.max() <= lagging.after_press[setup].max() + 1e-6
        assert _presses(frames.keys) == _presses(np.where(grid.k1, KEY1_BITS, 0) | np.where(grid.k2, KEY2_BITS, 0))


def test_a_mouse_cursor_sits_on_screen_pixels_and_generated_frames_take_one_setups_lattice(timing, fixture_maps):
    quanta = [lattice(r.frames.x.astype(float), r.frames.y.astype(float))[0] for r in map(read_replay, REPLAYS)]
    assert any(0.3 < q < 0.7 for q in quanta), "a mouse at a common resolution: 0.44 px at 1080p, 0.53 at 720p"
    grid = to_grid(read_replay(REPLAYS[0]))
    checked = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        setup = int(np.random.default_rng(seed).integers(len(timing.repeat_probability)))
        quantum, ox, oy = timing.lattice[setup]
        frames = timing.frames(grid, rng)
        if quantum > 0:
            steps = (frames.x.astype(np.float64) - ox) / quantum
            assert np.abs(steps - np.round(steps)).max() < 0.01
            checked += 1
    assert checked, "some seed drew a mouse setup"


def test_a_named_player_plays_on_their_own_setup(timing):
    assert set(timing.setup_player) == {"abraker", "yuitora"}
    own = timing.setup_player.index("abraker")
    quantum, ox, _ = timing.lattice[own]
    assert quantum > 0, "abraker's fixture replay is a mouse on screen pixels"
    grid = to_grid(read_replay(REPLAYS[0]))
    for seed in range(4):
        frames = timing.frames(grid, np.random.default_rng(seed), player="AbRaKeR")
        steps = (frames.x.astype(np.float64) - ox) / quantum
        assert np.abs(steps - np.round(steps)).max() < 0.01


def test_presses_take_the_key_the_drawn_player_would(timing):
    assert (timing.alternation[:, 0] > 0.5).all(), "presses under 120 ms apart alternate"
    grid = to_grid(read_replay(REPLAYS[0]))
    single = grid.k1 | grid.k2  # every hold on key 1: the keys are the frame timing's to choose
    one_key = type(grid)(grid.time_ms, grid.x, grid.y, single, np.zeros_like(single), grid.step_ms, grid.rate)
    frames = timing.frames(one_key, np.random.default_rng(0))
    presses = [_presses(frames.keys & bits) for bits in (KEY1_BITS, KEY2_BITS)]
    assert sum(presses) == _presses(np.where(single, KEY1_BITS, 0)), "no press is lost or merged"
    assert min(presses) >= 0.1 * sum(presses), "both keys tap"


def test_an_asked_alternation_decides_the_keys_of_runs_of_presses(timing):
    grid = to_grid(next(r for r in map(read_replay, REPLAYS) if r.player == "yuitora"))  # a stream player
    single = grid.k1 | grid.k2
    one_key = type(grid)(grid.time_ms, grid.x, grid.y, single, np.zeros_like(single), grid.step_ms, grid.rate)
    shares = []
    for asked in (0.0, 1.0):
        frames = timing.frames(one_key, np.random.default_rng(0), alternation=asked)
        edges = [(t, bits) for bits in (KEY1_BITS, KEY2_BITS) for t in frames.time_ms[1:][
            ((frames.keys[1:] & bits) != 0) & ((frames.keys[:-1] & bits) == 0)]]  # fmt: skip
        edges.sort()
        runs = [(a[1] != b[1]) for a, b in zip(edges, edges[1:], strict=False) if b[0] - a[0] < ALTERNATION_GAP_MS]
        assert len(runs) > 100, "the fixture replay has runs of presses"
        shares.append(np.mean(runs))
    # A key still down makes a press take the other one, so single-tapping is not quite absolute.
    assert shares[0] < 0.1 and shares[1] > 0.9
