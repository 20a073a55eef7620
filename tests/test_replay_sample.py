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
from data.replay.mods import HR, apply_mods
from data.replay.osr import read_replay
from data.replay_io import NUM_MODEL_FEATURES
from data.tables import PlayerTable, StyleTable
from dit.checkpoint import model_config_dict, save_checkpoint
from dit.models import DiTConfig, PositionDiT
from dit.replay_model import ReplayDiT, ReplayDiTConfig
from pipeline.tasks import ReplayTask
from tests.conftest import FIXTURES

PLAYERS = PlayerTable(("abraker", "WhiteCat"))
FAST = ["--num-sampling-steps", "2", "--no-progress"]
REPLAY_FIXTURES = sorted((FIXTURES / "replays").glob("*.osr"))


def _save(path, model, name, config, extra):
    state = model.state_dict()
    save_checkpoint(path, model_state=state, ema_state=state, optimizer_state=None,
                    config=model_config_dict(name, config), train_state={"step": 0}, extra=extra)  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny untrained replay model and position model, saved the way train.py saves them."""
    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    config = ReplayDiTConfig(depth=1, hidden_size=32, num_heads=2, num_classes=PLAYERS.num_classes,
                             num_features=NUM_MODEL_FEATURES)  # fmt: skip
    task = ReplayTask(argparse.Namespace(seq_len=64))
    task.players = PLAYERS
    task.frame_timing = FrameTiming.pooled([measure(read_replay(p)) for p in REPLAY_FIXTURES])
    _save(out / "replay.pt", ReplayDiT(config), "ReplayDiT", config, task.checkpoint_extra({}))
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
    assert capsys.readouterr().out.split() == ["1", "abraker", "2", "WhiteCat"]
