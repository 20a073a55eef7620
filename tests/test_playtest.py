"""testing/playtest.py plays a remap and its source with the shipped replay model and compares their misses."""

from __future__ import annotations

import json

import pandas as pd

from data.beatmap.osu_reader import read_beatmap
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
