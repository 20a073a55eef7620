"""The .osr codec and the replay cache on the real fixture replays."""

import hashlib
import json
import shutil
import warnings

import numpy as np
import osrparse
import pytest

from data.beatmap.osu_reader import read_beatmap
from data.cache import load_replay_array, load_replay_cache
from data.errors import BadInputError
from data.position_io import POSITION_CENTER, POSITION_SCALE
from data.prepare_replays import prepare_replays
from data.replay.gameplay import judge
from data.replay.mods import DT, apply_mods, mods_rate
from data.replay.osr import (
    KEY1_BITS,
    KEY2_BITS,
    STABLE_START_X,
    STABLE_START_Y,
    grid_frames,
    parse_replay,
    read_replay,
    to_grid,
    write_replay,
)
from data.replay_io import FEATURE_INDEX, NUM_FEATURES


@pytest.fixture
def replay_paths(fixtures):
    return sorted((fixtures / "replays").glob("*.osr"))


@pytest.fixture
def maps_by_md5(fixture_maps):
    return {hashlib.md5(p.read_bytes()).hexdigest(): p for p in fixture_maps}


def _paired(replay_paths, maps_by_md5):
    """(record, map path) of the fixture replays whose map is among the fixture maps."""
    out = []
    for path in replay_paths:
        record = read_replay(path)
        if record.beatmap_md5 in maps_by_md5:
            out.append((record, maps_by_md5[record.beatmap_md5]))
    return out


# ---------------------------------------------------------------- reading


def test_read_matches_header_and_drops_special_frames(replay_paths):
    assert len(replay_paths) == 4
    mods = set()
    for path in replay_paths:
        record = read_replay(path)
        raw = osrparse.Replay.from_path(path)
        assert record.player == raw.username and record.player
        assert record.beatmap_md5 == raw.beatmap_hash and len(record.beatmap_md5) == 32
        assert (record.count_300, record.count_100, record.count_miss) == (
            raw.count_300,
            raw.count_100,
            raw.count_miss,
        )
        mods.add(record.mods)
        f = record.frames
        assert len(f) > 1000
        assert np.all(np.diff(f.time_ms) >= 0), "time never runs backwards"
        assert not np.any((f.x == STABLE_START_X) & (f.y == STABLE_START_Y)), "stable's start frames are dropped"
        # Absolute times are the running sum of deltas: the last frame sits where the deltas say.
        assert f.time_ms[-1] == sum(e.time_delta for e in raw.replay_data)
        assert record.rng_seed == raw.rng_seed
    assert mods == {0, 8, 64, 80}  # nomod, HD, DT, HR+DT


def test_replays_pair_with_fixture_maps_by_md5(replay_paths, maps_by_md5):
    paired = _paired(replay_paths, maps_by_md5)
    # The HD replay names the full "Day to Story" map; the fixture copy of that set is a cut variant.
    assert len(paired) == 3
    for record, map_path in paired:
        assert read_beatmap(map_path).md5 == record.beatmap_md5


# ---------------------------------------------------------------- grid


def test_grid_is_regular_in_play_time_and_keeps_presses(replay_paths):
    for path in replay_paths:
        record = read_replay(path)
        grid = to_grid(record)
        steps = np.diff(grid.time_ms)
        assert np.allclose(steps, 1000 / 60)
        assert grid.rate == mods_rate(record.mods)
        # The grid spans the play: song time = play time * rate.
        assert grid.time_ms[0] * grid.rate == pytest.approx(record.frames.time_ms[0], abs=grid.step_ms * grid.rate)
        assert grid.time_ms[-1] * grid.rate == pytest.approx(record.frames.time_ms[-1], abs=grid.step_ms * grid.rate)
        for bits, keys in ((KEY1_BITS, grid.k1), (KEY2_BITS, grid.k2)):
            down = (record.frames.keys & bits) != 0
            presses = int(np.sum(down[1:] & ~down[:-1]))
            grid_presses = int(np.sum(keys[1:] & ~keys[:-1]))
            # Two presses of one key within a tick merge; that is rare at 60 Hz.
            assert abs(grid_presses - presses) <= max(2, presses // 50)
        assert np.all((grid.x >= record.frames.x.min()) & (grid.x <= record.frames.x.max()))


def test_dt_grid_runs_on_real_time(replay_paths):
    record = next(read_replay(p) for p in replay_paths if read_replay(p).mods == DT)
    grid = to_grid(record)
    frames = grid_frames(grid)
    assert np.allclose(np.diff(frames.time_ms), 1000 / 60 * 1.5), "a DT tick is 25 ms of song"


# ---------------------------------------------------------------- writing


def _write_and_check(tmp_path, record, map_path):
    play = apply_mods(read_beatmap(map_path), record.mods)
    judgement = judge(play, record)
    out = tmp_path / "written.osr"
    data = write_replay(
        out,
        beatmap_md5=record.beatmap_md5,
        player=record.player,
        mods=record.mods,
        frames=record.frames,
        judgement=judgement,
    )
    assert out.read_bytes() == data
    return play, judgement, out


def test_written_replay_reads_back_with_osrparse(tmp_path, replay_paths, maps_by_md5):
    for record, map_path in _paired(replay_paths, maps_by_md5):
        _, judgement, out = _write_and_check(tmp_path, record, map_path)
        raw = osrparse.Replay.from_path(out)
        assert raw.mode == osrparse.GameMode.STD
        assert raw.beatmap_hash == record.beatmap_md5 and raw.username == record.player
        assert int(raw.mods) == record.mods
        assert (raw.count_300, raw.count_100, raw.count_50, raw.count_miss) == (
            judgement.count_300,
            judgement.count_100,
            judgement.count_50,
            judgement.count_miss,
        )
        assert raw.max_combo == judgement.max_combo
        assert raw.rng_seed == 0 and raw.life_bar_graph
        # Zero deltas stay (stable records them too: ~5% of human frames); none runs backwards.
        assert all(e.time_delta >= 0 for e in raw.replay_data), "no negative frames"
        back = read_replay(out)
        kept = record.frames.time_ms >= 1  # earlier frames collapse into one at 1 ms
        n = int(kept.sum())
        assert len(back.frames) in (n, n + 1)
        tail = slice(len(back.frames) - n, None)
        assert np.max(np.abs(back.frames.time_ms[tail] - np.round(record.frames.time_ms[kept]))) <= 1
        assert np.max(np.abs(back.frames.x[tail] - record.frames.x[kept])) <= 1e-4
        assert np.max(np.abs(back.frames.y[tail] - record.frames.y[kept])) <= 1e-4
        assert np.array_equal(back.frames.keys[tail], record.frames.keys[kept])


def test_written_replay_loads_in_circleguard_and_judges_like_the_original(tmp_path, replay_paths, maps_by_md5):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from circleguard import KeylessCircleguard, ReplayPath
        from slider import Beatmap as SliderBeatmap

        cg = KeylessCircleguard()
        for record, map_path in _paired(replay_paths, maps_by_md5):
            _, judgement, out = _write_and_check(tmp_path, record, map_path)
            written, original = ReplayPath(out), ReplayPath(record.path)
            cg.load(written)
            assert written.username == record.player and written.beatmap_hash == record.beatmap_md5
            assert written.count_300 == judgement.count_300 and written.max_combo == judgement.max_combo
            beatmap = SliderBeatmap.from_path(map_path)
            kinds = [str(j.type) for j in cg.judgments(written, beatmap=beatmap)]
            original_kinds = [str(j.type) for j in cg.judgments(original, beatmap=beatmap)]
            assert kinds == original_kinds


def test_write_is_deterministic_and_handles_unicode_names(tmp_path, replay_paths, maps_by_md5):
    record, map_path = _paired(replay_paths, maps_by_md5)[0]
    play = apply_mods(read_beatmap(map_path), record.mods)
    judgement = judge(play, record)
    args = dict(beatmap_md5=record.beatmap_md5, player="プレイヤー", mods=record.mods, frames=record.frames)
    first = write_replay(tmp_path / "a.osr", judgement=judgement, **args)
    second = write_replay(None, judgement=judgement, **args)
    assert first == second
    assert osrparse.Replay.from_string(first).username == "プレイヤー"
    assert [p.name for p in tmp_path.iterdir()] == ["a.osr"], "no temp file left behind"


def test_grid_written_as_replay_judges_like_the_grid(replay_paths, maps_by_md5):
    for record, map_path in _paired(replay_paths, maps_by_md5):
        play = apply_mods(read_beatmap(map_path), record.mods)
        grid = to_grid(record)
        on_grid = judge(play, grid)
        data = write_replay(
            None,
            beatmap_md5=record.beatmap_md5,
            player=record.player,
            mods=record.mods,
            frames=grid_frames(grid),
            judgement=on_grid,
        )
        back = parse_replay(data)
        for judged in (judge(play, back), judge(play, to_grid(back))):
            assert np.array_equal(judged.result, on_grid.result)


# ---------------------------------------------------------------- bad input


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path, replay_paths, fixture_maps):
    data = replay_paths[0].read_bytes()
    cases = {
        "truncated.osr": data[: len(data) // 2],
        "header_only.osr": data[:40],
        "empty.osr": b"",
        "map.osr": fixture_maps[0].read_bytes(),
        "taiko.osr": b"\x01" + data[1:],
    }
    # Damage the compressed frames in place: the LZMA stream no longer decodes.
    broken = bytearray(data)
    middle = len(data) // 2
    broken[middle : middle + 64] = bytes(64)
    cases["damaged.osr"] = bytes(broken)
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(BadInputError) as err:
            read_replay(path)
        assert str(err.value).startswith(str(path))
    with pytest.raises(BadInputError, match="mode 1"):
        read_replay(tmp_path / "taiko.osr")
    with pytest.raises(BadInputError):
        read_replay(tmp_path / "missing.osr")


def test_frames_after_a_rewind_are_dropped(replay_paths):
    """A negative delta mid-play moves the clock back; frames before the latest kept one are not kept."""
    raw = osrparse.Replay.from_path(replay_paths[0])
    original = read_replay(replay_paths[0])
    middle = len(raw.replay_data) // 2
    raw.replay_data[middle].time_delta = -200
    raw.rng_seed = 7
    record = parse_replay(raw.pack())
    assert record.rng_seed == 7
    assert np.all(np.diff(record.frames.time_ms) >= 0)
    # The rewound frame and those still before the clock's high mark (about 200 ms of frames) are gone.
    dropped = len(original.frames) - len(record.frames)
    assert 5 <= dropped <= 20


# ---------------------------------------------------------------- the replay cache


def test_prepare_replays_pairs_grids_and_conditions(tmp_path, fixtures, replay_paths, maps_by_md5):
    replays = tmp_path / "in"
    replays.mkdir()
    for p in replay_paths:
        shutil.copy(p, replays / p.name)
    (replays / "broken.osr").write_bytes(replay_paths[0].read_bytes()[:500])
    summary = prepare_replays([replays], {k: str(v) for k, v in maps_by_md5.items()}, tmp_path / "cache")
    assert summary["stored"] == 4 and summary["paired"] == 3 and summary["unpaired"] == 1
    assert summary["skipped_by_reason"] == {"corrupt or truncated": 1}
    rows, players = load_replay_cache(tmp_path / "cache")
    assert players.num_classes == 5  # null + four players
    assert sorted(r["player_class"] for r in rows) == [1, 2, 3, 4]
    doc = json.loads((tmp_path / "cache" / "players.json").read_text())
    assert doc["null_class"] == 0
    follow_checked = 0
    for row in rows:
        array = load_replay_array(tmp_path / "cache", row["replay_md5"])
        assert len(array) == int(row["ticks"]) and array["features"].shape[1] == NUM_FEATURES
        features = array["features"]
        assert np.all(np.isfinite(features))
        if not row["paired"]:
            assert not features.any()
            continue
        # The player follows sliders: while one is active and a key is held, the cursor is near the ball.
        sliding = (features[:, FEATURE_INDEX["slider_active"]] == 1) & ((array["k1"] | array["k2"]) == 1)
        ball = features[sliding][:, [FEATURE_INDEX["ball_x"], FEATURE_INDEX["ball_y"]]] * POSITION_SCALE
        ball += np.array(POSITION_CENTER)
        cursor = np.stack([array["x"][sliding], array["y"][sliding]], axis=1)
        radius = features[0, FEATURE_INDEX["radius"]] * POSITION_SCALE
        assert np.median(np.linalg.norm(cursor - ball, axis=1)) < radius
        follow_checked += 1
    assert follow_checked == 3


def test_prepare_replays_refuses_flagged_folder(tmp_path, replay_paths):
    flagged = tmp_path / "replays-flagged"
    flagged.mkdir()
    shutil.copy(replay_paths[0], flagged / replay_paths[0].name)
    with pytest.raises(BadInputError, match="flagged"):
        prepare_replays([flagged], {}, tmp_path / "cache")
