"""The playtest: pipeline.playtest re-samples the sections of a remap the replay model plays badly, and
testing/playtest.py compares how remaps and their sources play over a set of maps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import sample
from data.beatmap.codec import decode, encode, layout
from data.beatmap.osu_reader import read_beatmap
from data.replay.osr import read_replay
from pipeline import playtest as pipeline_playtest
from pipeline.play import load_replay_model, play_frames
from pipeline.remap import load_position_model, remap_positions
from testing import playtest


def test_a_map_against_itself_plays_the_same(fixture_maps, tmp_path):
    rocket = str(next(p for p in fixture_maps if "Rocket" in p.name))
    pd.DataFrame({"source": [rocket], "output": [rocket]}).to_csv(tmp_path / "evaluation.csv", index=False)
    assert playtest.main(["--evaluation", str(tmp_path / "evaluation.csv"), "--output", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "playtest.json").read_text())
    assert summary["maps"] == 1 and summary["remaps_missed_more"] == 0
    assert summary["median_source_misses"] == summary["median_remap_misses"]  # same map, same seed, same play
    assert 0.5 < summary["median_source_accuracy"] <= 1.0
    table = pd.read_csv(tmp_path / "out" / "playtest.csv")
    assert table.loc[0, "source_objects"] == len(read_beatmap(rocket).hit_objects)


def test_a_missing_table_is_one_line_and_exit_2(tmp_path, capsys):
    assert playtest.main(["--evaluation", str(tmp_path / "none.csv"), "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def rocket_remap_with_a_scattered_section(fixture_maps):
    """Rocket with its own layout except section 3, whose objects jump between opposite corners of the field."""
    beatmap = read_beatmap(next(p for p in fixture_maps if "Rocket" in p.name))
    section = pipeline_playtest.sections(beatmap)[layout(beatmap)[3][:, 0]]
    positions = encode(beatmap).position.astype(np.float32)
    scattered = np.flatnonzero(section == 2)
    positions[scattered] = np.where(np.arange(len(scattered))[:, None] % 2 == 0, [[20, 20]], [[490, 360]])
    return beatmap, section, positions


def test_sections_begin_at_new_combos_and_last_their_length(fixture_maps):
    beatmap = read_beatmap(next(p for p in fixture_maps if "Natsukoi" in p.name))
    section = pipeline_playtest.sections(beatmap)
    starts = np.flatnonzero(np.diff(section, prepend=-1))
    assert (np.diff(section) >= 0).all() and section[0] == 0 and len(starts) == section[-1] + 1 > 5
    times = np.array([h.time_ms for h in beatmap.hit_objects])
    assert all(beatmap.hit_objects[i].new_combo for i in starts[1:])
    assert (np.diff(times[starts]) >= pipeline_playtest.SECTION_MS).all()


def test_inpainting_keeps_the_kept_datapoints_and_samples_the_rest(fixture_maps):
    beatmap, section, positions = rocket_remap_with_a_scattered_section(fixture_maps)
    model, ckpt, _ = load_position_model()
    keep = section != 2
    new = remap_positions(beatmap, model, ckpt, 0, steps=8, progress=False, grid="none", keep=(positions, keep))[0]
    assert np.abs(new[keep] - positions[keep]).max() < 0.1  # px: held at every step, float32 round trip
    moved = np.linalg.norm(new[~keep] - positions[~keep], axis=1)
    assert np.median(moved) > 50  # the corners are gone: the section is the network's own


def test_the_playtest_resamples_a_section_it_plays_badly(fixture_maps):
    beatmap, section, positions = rocket_remap_with_a_scattered_section(fixture_maps)
    model, ckpt, _ = load_position_model()
    replay_model, replay_ckpt, _ = load_replay_model()

    def player(b):
        return play_frames(b, replay_model, replay_ckpt, steps=10, progress=False)

    def resample(kept, mask, round_):
        return remap_positions(beatmap, model, ckpt, 0, steps=8, seed=round_, progress=False, keep=(kept, mask))[0]

    tested = pipeline_playtest.playtest(beatmap, positions, lambda p: decode(beatmap, p), player, resample, rounds=1)
    report = tested.report.set_index("section")
    assert report.loc[3, "before_misses"] > 10 > report.loc[3, "remap_misses"]  # the corners are missed, not the new
    assert report.loc[3, "resampled"] == 1 and report["source_misses"].sum() == tested.source.judgement.count_miss
    assert report["remap_misses"].sum() == tested.remap.judgement.count_miss
    untouched = (report["resampled"] == 0).to_numpy()[section]
    assert np.array_equal(tested.positions[untouched], positions[untouched])  # what plays well stays as it was


def test_sample_playtest_writes_its_report_beside_the_remap_and_plays_what_it_wrote(fixture_maps, tmp_path):
    goose = next(p for p in fixture_maps if "Red Goose" in p.name)
    out = tmp_path / "goose.osu"
    args = ["--beatmap", str(goose), "--output", str(out), "--no-progress", "--num-sampling-steps", "8"]
    assert sample.main([*args, "--playtest", "0", "--replay"]) == 0
    report = pd.read_csv(tmp_path / "goose.playtest.csv")
    assert report["objects"].sum() == len(read_beatmap(goose).hit_objects) and (report["resampled"] == 0).all()
    assert (report["before_misses"] == report["remap_misses"]).all()  # no round: one play of the remap
    # The report's last play is the .osr's: the same bytes of map, player and seed.
    assert report["remap_misses"].sum() == read_replay(tmp_path / "goose.osr").count_miss
    with pytest.raises(SystemExit):
        sample.main([*args, "--playtest", "--replay-only"])
