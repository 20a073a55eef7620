"""sample.py writes replays: .osr files that osrparse reads, naming the played map's MD5, with mods applied."""

import argparse
import hashlib

import numpy as np
import osrparse
import pytest
import torch

import sample
from data.beatmap.osu_reader import read_beatmap
from data.replay.frame_timing import FrameTiming, measure
from data.replay.gameplay import judge, stacked_positions
from data.replay.habits import NUM_HABITS, habit_stats, normalize_habits, replay_descriptor
from data.replay.mods import HR, apply_mods
from data.replay.osr import read_replay
from data.replay_io import DEFAULT_REFERENCE, NUM_MODEL_FEATURES
from data.tables import PlayerTable, StyleTable
from dit.checkpoint import load_checkpoint, model_config_dict, save_checkpoint
from dit.models import DiTConfig, PositionDiT
from dit.replay_model import ReplayDiT, ReplayDiTConfig
from pipeline.play import at_window, choose_player, raw_habits
from pipeline.tasks import ReplayTask
from tests.conftest import FIXTURES

PLAYERS = PlayerTable(("abraker", "WhiteCat"))
FAST = ["--num-sampling-steps", "2", "--no-progress"]
REPLAY_FIXTURES = sorted((FIXTURES / "replays").glob("*.osr"))


def _save(path, model, name, config, extra):
    state = model.state_dict()
    save_checkpoint(path, model_state=state, ema_state=state, optimizer_state=None,
                    config=model_config_dict(name, config), train_state={"step": 0}, extra=extra)  # fmt: skip


def _paired():
    """(record, map path) of the fixture replays whose map is a fixture."""
    maps = {hashlib.md5(p.read_bytes()).hexdigest(): p for p in (FIXTURES / "songs").rglob("*.osu")}
    records = [read_replay(p) for p in REPLAY_FIXTURES]
    return [(r, maps[r.beatmap_md5]) for r in records if r.beatmap_md5 in maps]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny untrained replay model and position model, saved the way train.py saves them."""
    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    config = ReplayDiTConfig(depth=1, hidden_size=32, num_heads=2, num_classes=PLAYERS.num_classes,
                             num_features=NUM_MODEL_FEATURES, class_feature_dim=NUM_HABITS)  # fmt: skip
    task = ReplayTask(argparse.Namespace(seq_len=64, reference=DEFAULT_REFERENCE))
    task.players = PLAYERS
    task.frame_timing = FrameTiming.pooled([measure(read_replay(p)) for p in REPLAY_FIXTURES])
    descriptors = {r.player: replay_descriptor(r, apply_mods(read_beatmap(m), r.mods), 64) for r, m in _paired()}
    task.habit_normalization = habit_stats(np.stack(list(descriptors.values())))
    windows = {r.player: apply_mods(read_beatmap(m), r.mods).hit_windows_ms[0] for r, m in _paired()}
    task.player_windows = [0.0, windows["abraker"], 0.0]  # the 300 window of abraker's maps, as train.py measures
    model = ReplayDiT(config)
    model.player_embedder.class_features[1] = torch.from_numpy(  # abraker's, as train.py would set it
        normalize_habits(descriptors["abraker"], task.habit_normalization)
    )
    _save(out / "replay.pt", model, "ReplayDiT", config, task.checkpoint_extra({}))
    position = DiTConfig(depth=1, hidden_size=32, num_heads=2, num_classes=1)
    extra = {"styles": StyleTable([], []).to_dict(), "prediction": "v"}
    _save(out / "position.pt", PositionDiT(position), "PositionDiT", position, extra)
    return out


@pytest.fixture
def short_map(fixture_maps):
    """The fixture map with the fewest objects that still has a few of them (fast to play)."""
    maps = [(len(read_beatmap(p).hit_objects), p) for p in fixture_maps]
    return min((n, p) for n, p in maps if n >= 20)[1]


def _replay_only(short_map, checkpoints, out, *extra):
    argv = ["--beatmap", str(short_map), "--replay-only", "--replay-ckpt", str(checkpoints / "replay.pt")]
    return sample.main([*argv, "--output", str(out), *FAST, *extra])


def test_replay_only_writes_an_osr_of_the_map(short_map, checkpoints, tmp_path):
    assert _replay_only(short_map, checkpoints, tmp_path / "a.osr", "--player", "abraker") == 0
    raw = osrparse.Replay.from_path(tmp_path / "a.osr")
    assert raw.beatmap_hash == hashlib.md5(short_map.read_bytes()).hexdigest()
    assert raw.mode == osrparse.GameMode.STD and raw.mods == 0
    deltas = np.array([e.time_delta for e in raw.replay_data[1:]])
    assert deltas.min() >= 0, "no negative frames"
    assert 14 <= np.median(deltas) <= 18 and deltas.std() > 2, "frames at human times, not a fixed clock"
    # The header's counts are what our judge says about the written frames.
    play = apply_mods(read_beatmap(short_map), 0)
    judged = judge(play, read_replay(tmp_path / "a.osr"))
    assert (raw.count_300, raw.count_100, raw.count_50, raw.count_miss) == (
        judged.count_300, judged.count_100, judged.count_50, judged.count_miss)  # fmt: skip
    assert raw.max_combo == judged.max_combo
    assert raw.life_bar_graph, "the life bar is written"
    # Same seed, same bytes; another seed, another play.
    assert _replay_only(short_map, checkpoints, tmp_path / "b.osr", "--player", "abraker") == 0
    assert (tmp_path / "a.osr").read_bytes() == (tmp_path / "b.osr").read_bytes()
    assert _replay_only(short_map, checkpoints, tmp_path / "c.osr", "--player", "abraker", "--seed", "1") == 0
    assert (tmp_path / "a.osr").read_bytes() != (tmp_path / "c.osr").read_bytes()
    # --frame-timing grid writes one frame per 60 Hz tick.
    assert _replay_only(short_map, checkpoints, tmp_path / "g.osr", "--frame-timing", "grid") == 0
    grid = np.array([e.time_delta for e in osrparse.Replay.from_path(tmp_path / "g.osr").replay_data[2:]])
    assert set(np.unique(grid)) <= {16, 17}


def test_hr_sets_the_header_bit_and_plays_the_flipped_map(short_map, checkpoints, tmp_path):
    assert _replay_only(short_map, checkpoints, tmp_path / "hr.osr", "--mods", "HR") == 0
    record = read_replay(tmp_path / "hr.osr")
    assert record.mods == HR
    beatmap = read_beatmap(short_map)
    flipped, plain = (stacked_positions(apply_mods(beatmap, mods)) for mods in (HR, 0))
    times = np.array([o.time_ms for o in apply_mods(beatmap, HR).hit_objects])
    at = np.clip(np.searchsorted(record.frames.time_ms, times), 0, len(record.frames) - 1)
    cursor = np.stack([record.frames.x[at], record.frames.y[at]], axis=1)
    moved = np.abs(flipped[:, 1] - plain[:, 1]) > 50  # objects that HR moves far
    assert moved.sum() >= 5
    to_flipped = np.linalg.norm(cursor - flipped, axis=1)[moved]
    to_plain = np.linalg.norm(cursor - plain, axis=1)[moved]
    assert np.median(to_flipped) < np.median(to_plain)


def test_replay_writes_a_remapped_map_and_its_replay(short_map, checkpoints, tmp_path):
    out = tmp_path / "new.osu"
    argv = ["--beatmap", str(short_map), "--replay", "--ckpt", str(checkpoints / "position.pt"),
            "--replay-ckpt", str(checkpoints / "replay.pt"), "--output", str(out), *FAST]  # fmt: skip
    assert sample.main(argv) == 0
    osr = out.with_suffix(".osr")
    assert osrparse.Replay.from_path(osr).beatmap_hash == hashlib.md5(out.read_bytes()).hexdigest()
    assert hashlib.md5(out.read_bytes()).hexdigest() != hashlib.md5(short_map.read_bytes()).hexdigest()


def test_unknown_player_is_one_line_that_says_how_to_list_players(short_map, checkpoints, tmp_path, capsys):
    ckpt = ["--replay-ckpt", str(checkpoints / "replay.pt")]
    argv = ["--beatmap", str(short_map), "--replay-only", "--player", "nobody", "--output", str(tmp_path / "x.osr")]
    assert sample.main([*argv, *ckpt]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--list-players" in err and "nobody" in err
    assert not (tmp_path / "x.osr").exists()
    assert sample.main(["--list-players", *ckpt]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["1", "abraker"], ["2", "WhiteCat"]]
    assert "single-tap" in lines[0] or "alternate" in lines[0], "abraker's habits in words"
    record, own_map = next((r, m) for r, m in _paired() if r.player == "abraker")
    window = apply_mods(read_beatmap(own_map), record.mods).hit_windows_ms[0]
    assert f"{window:.0f} ms 300 window" in lines[0], "the window his hit error was measured against"
    assert "habits unknown" in lines[1], "a player without measured habits says so"


def _abraker_replay():
    return next(p for p in REPLAY_FIXTURES if read_replay(p).player == "abraker")


def test_player_from_a_replay_reads_its_habits_into_the_network(short_map, checkpoints, tmp_path):
    # An untrained adaLN-Zero network ignores its condition; perturbed weights let the habits show.
    ckpt = load_checkpoint(checkpoints / "replay.pt")
    torch.manual_seed(1)
    for key in ("model_state", "ema_state"):
        ckpt[key] = {
            k: v + 0.05 * torch.randn_like(v) if "class_features" not in k else v for k, v in ckpt[key].items()
        }
    save_checkpoint(tmp_path / "replay.pt", **{k: ckpt[k] for k in ("model_state", "ema_state", "config", "extra")},
                    optimizer_state=None, train_state={"step": 0})  # fmt: skip
    replay = _abraker_replay()
    own_map = dict((r.beatmap_md5, m) for r, m in _paired())[read_replay(replay).beatmap_md5]
    example = ["--player-from", str(replay), "--player-map", str(own_map)]
    assert _replay_only(short_map, tmp_path, tmp_path / "a.osr", *example) == 0
    assert _replay_only(short_map, tmp_path, tmp_path / "b.osr", *example) == 0
    assert _replay_only(short_map, tmp_path, tmp_path / "plain.osr") == 0
    a = (tmp_path / "a.osr").read_bytes()
    assert a == (tmp_path / "b.osr").read_bytes(), "same seed, same bytes"
    assert osrparse.Replay.from_path(tmp_path / "a.osr").username == "osu-dit like abraker"
    cursor = [
        np.array([(e.x, e.y) for e in osrparse.Replay.from_path(tmp_path / n).replay_data])
        for n in ("a.osr", "plain.osr")
    ]
    assert cursor[0].shape != cursor[1].shape or not np.array_equal(*cursor), "the habits change the play"


def test_player_from_without_its_map_or_with_another_is_one_line(
    short_map, fixture_maps, checkpoints, tmp_path, capsys
):
    replay = _abraker_replay()
    assert _replay_only(short_map, checkpoints, tmp_path / "x.osr", "--player-from", str(replay)) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and replay.name in err and "--player-map" in err
    other = next(p for p in fixture_maps if hashlib.md5(p.read_bytes()).hexdigest() != read_replay(replay).beatmap_md5)
    assert _replay_only(short_map, checkpoints, tmp_path / "x.osr", "--player-from", str(replay),
                        "--player-map", str(other)) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and other.name in err and "MD5" in err
    assert not (tmp_path / "x.osr").exists()
    with pytest.raises(SystemExit):
        sample.parse_args(["--beatmap", str(short_map), "--replay-only", "--player-map", str(short_map)])


def test_a_player_without_habits_is_one_line_that_points_to_player_from(short_map, checkpoints, tmp_path, capsys):
    assert _replay_only(short_map, checkpoints, tmp_path / "w.osr", "--player", "WhiteCat") == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "WhiteCat" in err and "--player-from" in err
    assert not (tmp_path / "w.osr").exists()
    assert _replay_only(short_map, checkpoints, tmp_path / "a.osr", "--player", "abraker") == 0


def test_an_asked_hit_error_is_kept_as_a_share_of_the_maps_300_window(checkpoints):
    ckpt = load_checkpoint(checkpoints / "replay.pt")
    replay = _abraker_replay()
    own_map = dict((r.beatmap_md5, m) for r, m in _paired())[read_replay(replay).beatmap_md5]
    window = apply_mods(read_beatmap(own_map), read_replay(replay).mods).hit_windows_ms[0]
    by_class = choose_player(ckpt, "abraker", None, None)
    by_example = choose_player(ckpt, None, replay, own_map)
    assert by_class.window_300_ms == by_example.window_300_ms == window, "measured on his map's window"
    assert choose_player(ckpt, None, None, None).window_300_ms is None, "no player, nothing to scale"
    asked = normalize_habits(by_example.habits, ckpt["extra"]["habits"])
    stats = ckpt["extra"]["habits"]
    strict = raw_habits(at_window(asked, ckpt, window, window / 2), ckpt)
    same = raw_habits(asked, ckpt)
    assert strict["hit_error_ms"] == pytest.approx(same["hit_error_ms"] / 2, abs=1e-3), "half the window, half"
    assert all(strict[n] == pytest.approx(same[n], abs=1e-4) for n in stats["names"] if n != "hit_error_ms")
