"""Does asking for a player get that player's habits? Habit by habit, generated against human, for two players.

    python testing/play_like_humans.py ... --mods "" --output GEN_A -- --player A     # and the same for B
    python testing/player_style.py --human corpus/replays --songs corpus/songs \
        --player A GEN_A --player B GEN_B --output DIR

Each replay's habits are the medians over its 1-second windows (testing/replay_discriminator.window_features):
hit-error mean, key alternation, aim offset at the press (radii), hold time, tremor, rest. A player's figure is
the median over their replays: the human one over every paired human replay of that player under --human on a
map of --min-objects or more, the generated one over the replays in the folder. The check follows the
player-style issue: for each habit, the difference between the two generated sets has the sign of the two
humans' difference and at least half its size. The humans never played the same maps, so their difference
carries map difficulty too; the generated sets play the same maps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.atomic import write_text_atomic  # noqa: E402
from data.beatmap.osu_reader import read_beatmap  # noqa: E402
from data.errors import BadInputError  # noqa: E402
from data.replay.mods import apply_mods  # noqa: E402
from data.tables import name_key  # noqa: E402
from testing.cli import main_of  # noqa: E402
from testing.replay_discriminator import read_records, window_features  # noqa: E402
from testing.replay_judge import maps_by_md5  # noqa: E402

HABITS = ("hit_error_mean", "alternation", "aim_offset_mean", "hold_ms_mean", "tremor_px", "rest_share")


def habits(records: list, maps: dict, min_objects: int = 0) -> pd.DataFrame:
    """One row of habit medians per replay (replays of maps not under --songs or under `min_objects` left out)."""
    rows = []
    for record in records:
        osu = maps.get(record.beatmap_md5)
        if osu is None:
            continue
        play = apply_mods(read_beatmap(osu), record.mods)
        if len(play.hit_objects) < min_objects:  # a test stub of a few circles says little about a player
            continue
        windows = window_features(play, record.frames)
        if len(windows):
            rows.append(windows[list(HABITS)].median())
    return pd.DataFrame(rows, columns=list(HABITS))


def compare(human: dict[str, pd.DataFrame], generated: dict[str, pd.DataFrame]) -> dict:
    """Per habit: the two humans' medians, the two generated sets' medians, and whether the generated
    difference has the human difference's sign and at least half its size."""
    a, b = list(human)
    out = {}
    for habit in HABITS:
        h = [float(np.nanmedian(human[p][habit])) for p in (a, b)]
        g = [float(np.nanmedian(generated[p][habit])) for p in (a, b)]
        dh, dg = h[0] - h[1], g[0] - g[1]
        out[habit] = {
            f"human {a}": round(h[0], 4),
            f"human {b}": round(h[1], 4),
            f"generated {a}": round(g[0], 4),
            f"generated {b}": round(g[1], 4),
            "follows": bool(np.sign(dg) == np.sign(dh) and abs(dg) >= 0.5 * abs(dh) and dh != 0),
        }
    return out


def run(args: argparse.Namespace) -> dict:
    if len(args.player) != 2:
        raise BadInputError(None, "--player needs two players, each with a folder of generated replays")
    maps = maps_by_md5(args.songs)
    humans = read_records(args.human, [])
    human, generated = {}, {}
    for name, folder in args.player:
        own = [r for r in humans if name_key(r.player) == name_key(name)]
        human[name] = habits(own, maps, args.min_objects)
        generated[name] = habits(read_records([Path(folder)], []), maps)
        if not len(human[name]) or not len(generated[name]):
            raise BadInputError(folder, f"needs paired human replays of {name} and generated replays of known maps")
    table = compare(human, generated)
    summary = {
        "habits": table,
        "follows": sum(v["follows"] for v in table.values()),
        "replays": {name: {"human": len(human[name]), "generated": len(generated[name])} for name in human},
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output / "player_style.json", json.dumps(summary, indent=2) + "\n")
    return summary


def report(summary: dict) -> str:
    lines = [f"replays: {summary['replays']}; habits that follow the humans: {summary['follows']}/{len(HABITS)}"]
    for habit, row in summary["habits"].items():
        lines.append(f"{habit}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--human", type=Path, nargs="+", required=True, help="human .osr files or folders")
    p.add_argument("--songs", type=Path, nargs="+", required=True, help="folders with the maps (found by MD5)")
    p.add_argument(
        "--player", nargs=2, action="append", default=[], metavar=("NAME", "DIR"), help="a player and the folder "
        "of replays generated as that player (give two)"
    )  # fmt: skip
    p.add_argument("--min-objects", type=int, default=20, help="human replays of maps with fewer objects are left out")
    p.add_argument("--output", type=Path, required=True, help="folder for player_style.json")
    p.add_argument("--debug", action="store_true", help="re-raise errors with a traceback")
    return p.parse_args(argv)


main = main_of(parse_args, run, report)


if __name__ == "__main__":
    sys.exit(main())
