"""Previews and animations of real fixture maps and replays: right size, not blank, the asked slice, small GIFs."""

import io

import numpy as np
import pytest
from PIL import Image

from data.beatmap.codec import decode, encode
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.render.animation import DEFAULT_DURATION_MS, FPS, render_animation
from data.render.preview import FIGURE_PX, Cursor, render_preview, scene_of
from data.replay.osr import read_replay

RED_GOOSE = "mutsuhikoizumiredgoose Mutsuhiko Izumi - Red Goose/Mutsuhiko Izumi - Red Goose (nold_1702) [ERT Basic].osu"
RED_GOOSE_REPLAY = "63643e9294e8265f0d098284830d8ba5.osr"  # nomod play of Red Goose
AKA_NO_HA = "506908 Nakamura Meiko - Aka no Ha/Nakamura Meiko - Aka no Ha (Lily Bread) [Extra].osu"
AKA_NO_HA_REPLAY = "8e93a97d6586908e66283b1aab2b857b.osr"  # DT play of Aka no Ha


def shifted_remap(beatmap):
    """A stand-in for a model's output: the real map with every datapoint mirrored left-right."""
    points = encode(beatmap)
    positions = points.position.copy()
    positions[:, 0] = 512 - positions[:, 0]
    return parse_beatmap(decode(beatmap, positions).encode("utf-8"), "remap.osu")


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float64)


@pytest.fixture(scope="module")
def goose(request):
    from tests.conftest import FIXTURES

    return read_beatmap(FIXTURES / "songs" / RED_GOOSE)


def test_preview_is_written_at_its_size_and_shows_both_maps(goose, tmp_path):
    out = tmp_path / "preview.png"
    info, data = render_preview(out, goose, shifted_remap(goose))
    assert out.read_bytes() == data
    image = pixels(data)
    assert image.shape == (FIGURE_PX[1], FIGURE_PX[0], 3)
    # both panels carry drawing, not just the background
    half = FIGURE_PX[0] // 2
    assert image[:, :half].std() > 10 and image[:, half:].std() > 10
    assert len(info.source_objects) > 0 and np.array_equal(info.source_objects, info.remap_objects)


def test_the_asked_time_slice_is_the_one_drawn(goose, tmp_path):
    remap = shifted_remap(goose)
    times = np.array([h.time_ms for h in goose.hit_objects])
    ends = np.array([h.end_time_ms for h in goose.hit_objects])
    start = float(times[40]) - 100
    info, busy = render_preview(None, goose, remap, time_ms=start, window_ms=2000)
    assert (info.start_ms, info.end_ms) == (start, start + 2000)
    expected = np.flatnonzero((times <= start + 2000) & (ends >= start))
    assert np.array_equal(info.source_objects, expected)
    # before the first object there is nothing to draw: the picture is plainer than a busy slice
    info_empty, empty = render_preview(None, goose, remap, time_ms=0, window_ms=min(times[0] - 1, 2000))
    assert len(info_empty.source_objects) == 0
    assert pixels(empty).std() < pixels(busy).std()
    # another slice, another picture
    _, later = render_preview(None, goose, remap, time_ms=float(times[80]), window_ms=2000)
    assert later != busy


def test_the_default_slice_is_busy(goose):
    scene = scene_of(goose)
    info, _ = render_preview(None, goose, goose)
    times = scene.times_ms
    busiest = max(np.sum((times >= t) & (times < t + 3000)) for t in times)
    drawn_starting = np.sum((times >= info.start_ms) & (times <= info.end_ms))
    assert drawn_starting >= min(busiest, 10) - 1


def test_replay_cursor_and_presses_are_drawn_in_play_time(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    replay = read_replay(fixtures / "replays" / AKA_NO_HA_REPLAY)
    plain_info, plain = render_preview(None, beatmap, beatmap, mods=replay.mods)
    info, with_cursor = render_preview(None, beatmap, beatmap, replay=replay)
    assert (info.start_ms, info.end_ms) == (plain_info.start_ms, plain_info.end_ms)
    cursor = Cursor.from_replay(replay)
    rate = 1.5  # DT
    expected = cursor.presses(info.start_ms / rate, info.end_ms / rate)
    assert info.presses == len(expected) > 0
    # the cursor only adds to the remap panel
    a, b = pixels(plain), pixels(with_cursor)
    half = FIGURE_PX[0] // 2
    assert np.array_equal(a[:-40, :half], b[:-40, :half])
    assert not np.array_equal(a[:, half:], b[:, half:])


def test_same_inputs_give_the_same_png(goose):
    assert render_preview(None, goose, goose)[1] == render_preview(None, goose, goose)[1]


def test_animation_is_a_small_gif_of_several_frames(fixtures, tmp_path):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    replay = read_replay(fixtures / "replays" / AKA_NO_HA_REPLAY)
    out = tmp_path / "play.gif"
    info = render_animation(out, beatmap, replay, duration_ms=2000)
    data = out.read_bytes()
    assert info.frames == 2000 * FPS // 1000 and info.size_bytes == len(data)
    # the default length stays small enough to post
    assert len(data) * DEFAULT_DURATION_MS / 2000 < 2_000_000
    image = Image.open(out)
    assert image.format == "GIF" and image.n_frames == info.frames >= 10
    frames = []
    for k in (0, image.n_frames // 2, image.n_frames - 1):
        image.seek(k)
        frames.append(np.asarray(image.convert("RGB"), np.float64))
    assert all(f.std() > 5 for f in frames)
    assert not np.array_equal(frames[0], frames[1])


def test_same_replay_gives_the_same_gif(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / RED_GOOSE)
    replay = read_replay(fixtures / "replays" / RED_GOOSE_REPLAY)
    first, second = (render_animation(None, beatmap, replay, duration_ms=300, start_ms=30000) for _ in range(2))
    assert first.gif == second.gif and first.frames == 6


def test_an_animation_too_big_to_post_drops_frames_not_seconds(fixtures, monkeypatch):
    import data.render.animation

    beatmap = read_beatmap(fixtures / "songs" / RED_GOOSE)
    replay = read_replay(fixtures / "replays" / RED_GOOSE_REPLAY)
    full = render_animation(None, beatmap, replay, duration_ms=1000, start_ms=30000)
    monkeypatch.setattr(data.render.animation, "MAX_GIF_BYTES", full.size_bytes - 1)
    smaller = render_animation(None, beatmap, replay, duration_ms=1000, start_ms=30000)
    assert smaller.frames == full.frames // 2 and smaller.size_bytes < full.size_bytes
    assert (smaller.start_ms, smaller.end_ms) == (full.start_ms, full.end_ms)
    image = Image.open(io.BytesIO(smaller.gif))
    assert image.info["duration"] == 1000 // (FPS // 2)
