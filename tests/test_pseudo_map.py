"""Pseudo-maps for replays without their map (data.replay.pseudo_map), on real fixture replays whose real map we
do have: the rebuilt objects must sit where the real ones were, within a human's error."""

import csv
import shutil

import numpy as np
import pytest
import torch

from data.beatmap.osu_reader import read_beatmap
from data.cache import REPLAYS_FILE, load_replay_array, load_replay_cache
from data.replay.mods import apply_mods
from data.replay.pseudo_map import HumanErrors, press_errors, pseudo_play, replay_difficulty
from data.replay_io import active_span
from data.replay_windows import ReplayWindowDataset


def _played(cache, row):
    array = load_replay_array(cache, row["replay_md5"])
    first, last = active_span(array["features"])
    return array[first:last]


def _human(cache, rows) -> HumanErrors:
    errors, difficulty = [], []
    for row in rows:
        a = _played(cache, row)
        errors.append(press_errors(a["time_ms"], a["x"], a["y"], a["k1"], a["k2"], a["features"]))
        difficulty.append(replay_difficulty(float(row["rate"]), a["features"]))
    return HumanErrors.pooled(errors, difficulty)


def test_pseudo_map_puts_objects_where_the_real_ones_were(replay_cache):
    rows, _ = load_replay_cache(replay_cache)
    rows = [r for r in rows if r["paired"]]
    human = _human(replay_cache, rows)
    # Human error: hits spread over the 300 window, aim offsets of a fraction of a radius, not zero.
    aim = np.hypot(human.errors[:, 1], human.errors[:, 2])
    assert len(human.errors) > 100 and 0.1 < np.median(aim) < 0.8 and 0.2 < human.errors[:, 0].std() < 1.5
    row = max(rows, key=lambda r: int(r["count_300"]))  # Aka no Ha [Extra], a press per object
    array = load_replay_array(replay_cache, row["replay_md5"])
    real = apply_mods(read_beatmap(row["map_path"]), int(row["mods"])).hit_objects
    args = (array["time_ms"], array["x"], array["y"], array["k1"], array["k2"], float(row["rate"]), human)
    play = pseudo_play(*args, np.random.default_rng(0))
    again = pseudo_play(*args, np.random.default_rng(0))
    assert [(o.kind, o.x, o.y, o.time_ms) for o in play.hit_objects] == [
        (o.kind, o.x, o.y, o.time_ms) for o in again.hit_objects
    ]
    times = np.array([o.time_ms for o in play.hit_objects])
    assert np.all(np.diff(times) > 0), "objects in time order"
    real_times = np.array([o.time_ms for o in real])
    # Presses before the first object and after the last (menus, lead-in) are not part of the play.
    during = [o for o in play.hit_objects if real_times[0] - 200 <= o.time_ms <= real[-1].end_time_ms + 200]
    assert abs(len(during) - len(real)) <= 0.1 * len(real), (len(during), len(real))
    near, far = 0, 0
    for o in during:
        if o.kind == "spinner":
            continue
        k = int(np.argmin(np.abs(real_times - o.time_ms)))
        if abs(real_times[k] - o.time_ms) > play.hit_windows_ms[2]:
            far += 1
            continue
        distance = np.hypot(o.x - real[k].x, o.y - real[k].y)
        near += distance < 2 * play.radius_px
    assert near > 0.8 * len(during), (near, far, len(during))


def test_unpaired_replays_add_windows_of_their_player_on_pseudo_maps(replay_cache, tmp_path):
    # A copy of the cache in which one real replay has lost its map.
    cache = tmp_path / "cache"
    shutil.copytree(replay_cache, cache)
    with open(cache / REPLAYS_FILE, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    longest = max(range(len(table)), key=lambda i: int(table[i]["ticks"]))
    table[longest]["paired"] = "False"
    with open(cache / REPLAYS_FILE, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    plain = ReplayWindowDataset(cache, "all", seq_len=64, augment=False)
    mixed = ReplayWindowDataset(cache, "all", seq_len=64, augment=False, unpaired_share=0.25)
    assert mixed.paired_windows == len(plain) and len(mixed) > len(plain)
    assert abs((len(mixed) - len(plain)) / len(mixed) - 0.25) < 0.02
    for i in range(0, len(plain), 9):  # paired windows are untouched
        assert all(torch.equal(plain[i][k], mixed[i][k]) for k in plain[i])
    assert np.array_equal(plain.player_descriptors(), mixed.player_descriptors())
    assert plain.player_windows() == mixed.player_windows()
    added = [mixed[i] for i in range(len(plain), len(mixed))]
    # Their own player, and habits measured against the pseudo-map, as paired windows are conditioned.
    unpaired = {r["player_class"] for r in mixed.rows if not r["paired"]}
    assert {int(s["player"]) for s in added} <= unpaired and any(s["player_features"].any() for s in added)
    assert all(torch.isfinite(s["x0"]).all() and torch.isfinite(s["features"]).all() for s in added)
    # The cursor sits near its pseudo-map's reference as near as on a real map: offsets of the same size.
    real = torch.cat([plain[i]["x0"][plain[i]["mask"], :2] for i in range(len(plain))]).abs().median()
    pseudo = torch.cat([s["x0"][s["mask"], :2] for s in added]).abs().median()
    assert 0.3 < float(pseudo / real) < 3.0, (float(pseudo), float(real))
    with pytest.raises(ValueError):
        ReplayWindowDataset(cache, "all", seq_len=64, unpaired_share=1.0)
