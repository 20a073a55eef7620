"""The replay judge tells a replay rewritten on a fixed 60 Hz grid from the human play it came from, and the
shipped model's plays come out with human frame timing."""

import json

import numpy as np

from data.beatmap.osu_reader import read_beatmap
from data.replay.gameplay import judge
from data.replay.mods import apply_mods
from data.replay.osr import grid_frames, read_replay, to_grid, write_replay
from testing import play_like_humans, replay_discriminator
from testing.replay_judge import maps_by_md5
from tests.conftest import FIXTURES


def test_a_replay_on_a_fixed_grid_is_told_apart_from_its_human_original(tmp_path):
    maps = maps_by_md5([FIXTURES / "songs"])
    generated = tmp_path / "grid"
    for path in sorted((FIXTURES / "replays").glob("*.osr")):
        record = read_replay(path)
        if record.beatmap_md5 not in maps:
            continue
        play = apply_mods(read_beatmap(maps[record.beatmap_md5]), record.mods)
        frames = grid_frames(to_grid(record))
        write_replay(generated / path.name, beatmap_md5=record.beatmap_md5, player="grid", mods=record.mods,
                     frames=frames, judgement=judge(play, frames))  # fmt: skip
    out = tmp_path / "judge"
    argv = ["--human", str(FIXTURES / "replays"), "--songs", str(FIXTURES / "songs"), "--generated", str(generated)]
    assert replay_discriminator.main([*argv, "--output", str(out)]) == 0
    summary = json.loads((out / "replay_discriminator.json").read_text())
    assert summary["replays"]["generated"] == summary["replays"]["human"] == 3
    assert summary["generated_vs_human"]["window_accuracy"] > 0.9, "a fixed frame clock gives itself away"
    top = summary["generated_vs_human"]["top_features"]
    assert any(name.startswith(("ft_", "frames_", "repeat_", "step_")) for name in list(top)[:2])
    # Interpolating between frames takes the cursor off the screen's pixels.
    means = summary["means"]
    assert means["generated"]["step_lattice_share"] < means["human"]["step_lattice_share"] - 0.3
    assert summary["control_smoothed_human_vs_human"]["window_accuracy"] > 0.7


def test_the_shipped_model_plays_a_human_played_map_with_human_frame_timing(tmp_path):
    sets = tmp_path / "sets.txt"
    sets.write_text("mutsuhikoizumiredgoose Mutsuhiko Izumi - Red Goose\n")
    argv = ["--human", str(FIXTURES / "replays"), "--songs", str(FIXTURES / "songs"), "--sets", str(sets)]
    assert play_like_humans.main([*argv, "--output", str(tmp_path / "gen"), "--", "--num-sampling-steps", "4"]) == 0
    (played,) = sorted((tmp_path / "gen").glob("*.osr"))
    human = read_replay(FIXTURES / "replays" / played.name)
    record = read_replay(played)
    assert record.beatmap_md5 == human.beatmap_md5 and record.mods == 0
    intervals = np.diff(record.frames.time_ms)
    assert 14 <= np.median(intervals) <= 18 and intervals.std() > 2
    assert 0.01 < np.mean((np.diff(record.frames.x) == 0) & (np.diff(record.frames.y) == 0)) < 0.6
