"""The player-style judge: a player's own replays follow the human difference habit by habit and steer the
player classifier, swapped ones do neither."""

import json
import shutil

from data.replay.osr import read_replay
from testing import player_style
from tests.conftest import FIXTURES


def _folders(tmp_path):
    """Each fixture player's human replay (of a fixture map) copied into a folder of its own."""
    folders = {}
    for path in sorted((FIXTURES / "replays").glob("*.osr")):
        player = read_replay(path).player
        if player in ("abraker", "so bad"):
            folders[player] = tmp_path / player.replace(" ", "_")
            folders[player].mkdir()
            shutil.copy(path, folders[player])
    return folders


def _run(tmp_path, a, b, name):
    argv = ["--human", str(FIXTURES / "replays"), "--songs", str(FIXTURES / "songs")]
    argv += ["--player", "abraker", str(a), "--player", "so bad", str(b), "--output", str(tmp_path / name)]
    assert player_style.main(argv) == 0
    return json.loads((tmp_path / name / "player_style.json").read_text())


def test_own_replays_follow_every_habit_and_swapped_ones_none(tmp_path):
    folders = _folders(tmp_path)
    own = _run(tmp_path, folders["abraker"], folders["so bad"], "own")
    differing = [h for h, row in own["habits"].items() if row["human abraker"] != row["human so bad"]]
    assert len(differing) >= 4, "two players' habits differ"
    assert own["follows"] == len(differing)
    assert own["steering"]["steering_auc"] > 0.9, "a classifier of the two humans scores their own windows right"
    swapped = _run(tmp_path, folders["so bad"], folders["abraker"], "swapped")
    assert swapped["follows"] == 0
    assert swapped["steering"]["steering_auc"] < 0.1


def test_habits_beyond_the_map_take_out_what_the_same_map_asks(tmp_path):
    folders = _folders(tmp_path)
    both = tmp_path / "both"
    both.mkdir()
    for folder in folders.values():
        for path in folder.glob("*.osr"):
            shutil.copy(path, both)
    argv = ["--human", str(FIXTURES / "replays"), "--songs", str(FIXTURES / "songs"), "--output", str(tmp_path / "o")]
    argv += ["--player", "abraker", str(folders["abraker"]), "--player", "so bad", str(folders["so bad"])]
    # Each play against itself on its own map: nothing is left beyond the map but alternation, which is kept.
    assert player_style.main([*argv, "--baseline", str(both), "--map-reference", str(both)]) == 0
    summary = json.loads((tmp_path / "o" / "player_style.json").read_text())
    beyond = summary["habits_beyond_map"]
    for habit, row in beyond.items():
        values = [v for k, v in row.items() if k != "follows"]
        if habit == "alternation":
            assert row == summary["habits"][habit]
        else:
            assert all(v == 0 or v != v for v in values), (habit, row)  # 0, or NaN where nothing was measured
            assert not row["follows"]
    assert summary["follows_beyond_map"] == int(beyond["alternation"]["follows"])
