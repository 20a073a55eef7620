"""Does asking for a player get that player's play? Habit by habit, and by a classifier of the two players.

    python testing/play_like_humans.py ... --mods "" --output GEN_A -- --player A     # and the same for B
    python testing/player_style.py --human corpus/replays --songs corpus/songs \
        --player A GEN_A --player B GEN_B [--baseline GEN_DEFAULT [--map-reference GEN_HUMAN_MAPS]] --output DIR

Habits (data.replay.habits, measured alike on human and generated replays): hit-error mean, key alternation
within runs of presses, aim offset at the press (radii), hold time as a share of the gap to the next press,
tremor, rest. Each is relative to what the map asks (its objects' times, positions and radius), so a hard map
does not pass for a nervous player; each replay's figure is the median over its windows, a player's the
median over their replays (human: every paired replay of that player under --human on a map of
--min-objects or more; generated: every replay in the folder).

Checks, as the player-style issue words them:
- follows: for each habit, the two generated sets differ with the sign of the two humans' difference and at
  least half its size (the generated sets play the same maps; the humans never did, so theirs carries map
  difficulty too);
- steering: a classifier of the two humans' 1-second windows (testing.replay_discriminator.window_features
  without frame timing and screen pixels, which a named player's drawn setup supplies, not the network;
  cross-validated with folds grouped by map set) scores the generated windows: steering AUC of generated-as-A
  against generated-as-B, and on how many maps A's mean score is above B's;
- with --map-reference too (the default player on the two humans' own maps, as play_like_humans.py writes
  them): the same habits beyond what each map asks, each replay's less the default player's on its map
  (alternation as it is), so that map difficulty does not pass for style;
- with --baseline (the default player on the same maps): per player and habit, whether the generated set moves
  away from the default toward the human by at least half the distance (style by example: give a single
  replay as that player's --human).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.atomic import write_text_atomic  # noqa: E402
from data.errors import BadInputError  # noqa: E402
from data.replay.habits import HABIT_NAMES, replay_descriptor  # noqa: E402
from data.tables import name_key  # noqa: E402
from testing.cli import main_of  # noqa: E402
from testing.map_discriminator import classifier, judge  # noqa: E402
from testing.replay_discriminator import (  # noqa: E402
    KEY_PREFIXES,
    TIMING_PREFIXES,
    play_of,
    read_records,
    window_features,
)
from testing.replay_judge import maps_by_md5  # noqa: E402

HABIT_WINDOW_TICKS = 512  # as the replay model's training windows (train.py --seq-len)
PIXEL_PREFIXES = ("step_",)  # the screen-pixel lattice: drawn from the player's setup, like frame timing


def _plays(records: list, maps: dict, min_objects: int) -> list[tuple]:
    """(record, modded map, map set) of the records whose map is under --songs with `min_objects` or more."""
    out, cache = [], {}
    for record in records:
        osu = maps.get(record.beatmap_md5)
        if osu is None:
            continue
        play = play_of(record, osu, cache)
        if len(play.hit_objects) >= min_objects:  # a test stub of a few circles says little about a player
            out.append((record, play, osu.resolve().parent.name))
    return out


def habits(plays: list[tuple]) -> pd.DataFrame:
    """One row of habits per replay (the median over its windows), indexed by the replay file's stem, with the
    map's MD5 beside them."""
    rows = [replay_descriptor(record, play, HABIT_WINDOW_TICKS) for record, play, _ in plays]
    frame = pd.DataFrame(rows, columns=list(HABIT_NAMES), index=[Path(record.path).stem for record, _, _ in plays])
    return frame.assign(map_md5=[record.beatmap_md5 for record, _, _ in plays])


def beyond_map(frame: pd.DataFrame, matched: pd.DataFrame) -> pd.DataFrame:
    """Each replay's habits less its reference play's (`matched`, row by row: the default player on the same
    map), so what a map asks of every player (its speed for tremor, its gaps for rest) does not pass for style. A
    missing reference (a NaN row) leaves the replay's habits NaN."""
    reference = matched[list(HABIT_NAMES)].to_numpy(np.float64, copy=True)
    # Alternation is a share within runs of presses already; the default player's is a drawn setup's, no
    # measure of the map.
    reference[:, HABIT_NAMES.index("alternation")] = 0.0
    return pd.DataFrame(frame[list(HABIT_NAMES)].to_numpy(np.float64) - reference, columns=list(HABIT_NAMES))


def _median(frame: pd.DataFrame, habit: str) -> float:
    values = frame[habit].to_numpy(np.float64)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")


def _moves(target: float, generated: float) -> bool:
    """A generated difference with the target difference's sign and at least half its size."""
    return bool(np.sign(generated) == np.sign(target) and abs(generated) >= 0.5 * abs(target) and target != 0)


def compare(human: dict[str, pd.DataFrame], generated: dict[str, pd.DataFrame]) -> dict:
    """Per habit: the two humans' medians, the two generated sets' medians, and whether they follow."""
    a, b = list(human)
    out = {}
    for habit in HABIT_NAMES:
        h = [_median(human[p], habit) for p in (a, b)]
        g = [_median(generated[p], habit) for p in (a, b)]
        out[habit] = {
            f"human {a}": round(h[0], 4),
            f"human {b}": round(h[1], 4),
            f"generated {a}": round(g[0], 4),
            f"generated {b}": round(g[1], 4),
            "follows": _moves(h[0] - h[1], g[0] - g[1]),
        }
    return out


def against_baseline(human: pd.DataFrame, generated: pd.DataFrame, baseline: pd.DataFrame) -> dict:
    """Per habit: the human's, the default player's and the generated player's medians, and whether the
    generated set moves from the default toward the human by at least half the way."""
    out = {}
    for habit in HABIT_NAMES:
        h, g, d = (_median(frame, habit) for frame in (human, generated, baseline))
        out[habit] = {
            "human": round(h, 4),
            "default": round(d, 4),
            "generated": round(g, 4),
            "shows": _moves(h - d, g - d),
        }
    return out


def _windows(plays: list[tuple]) -> list[tuple[pd.DataFrame, str, str]]:
    """(1-second windows, map set, map MD5) per replay."""
    return [(window_features(play, record.frames), group, record.beatmap_md5) for record, play, group in plays]


def steering(human: dict[str, list], generated: dict[str, list], seed: int, cursor_only: bool = False) -> dict:
    """The classifier of the two humans (label 1 = the first player), cross-validated on them, then trained on
    all their windows and scoring the generated ones (`cursor_only`: without the keys' features either)."""
    a, b = list(human)
    samples = [(f, 1, g) for f, g, _ in human[a]] + [(f, 0, g) for f, g, _ in human[b]]
    left_out = TIMING_PREFIXES + PIXEL_PREFIXES + (KEY_PREFIXES if cursor_only else ())
    columns = [c for c in samples[0][0].columns if not c.startswith(left_out)]
    # Cross-validation needs each player on two map sets at least (a fold must see both players).
    sets = [{g for _, g, _ in human[name]} for name in (a, b)]
    humans = judge(samples, columns, seed, balanced=True) if min(map(len, sets)) >= 2 else {}
    data = pd.concat([f.assign(label=label) for f, label, _ in samples if len(f)], ignore_index=True)
    x, y = data[columns].fillna(-1.0).to_numpy(), data["label"].to_numpy()
    model = classifier(x, y, seed, balanced=True)
    scores, labels, by_map = [], [], {}
    for label, name in ((1, a), (0, b)):
        for frame, _, md5 in generated[name]:
            if not len(frame):
                continue
            p = model.predict_proba(frame[columns].fillna(-1.0).to_numpy())[:, 1]
            scores.append(p)
            labels.append(np.full(len(p), label))
            by_map.setdefault(md5, {})[name] = float(p.mean())
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    both = {md5: v for md5, v in by_map.items() if len(v) == 2}
    return {
        "human_window_auc": round(humans.get("window_auc", float("nan")), 3),
        "human_map_auc": round(humans.get("map_auc", float("nan")), 3),
        "steering_auc": round(float(roc_auc_score(labels, scores)), 3) if len(set(labels)) == 2 else float("nan"),
        "maps_steered": sum(v[a] > v[b] for v in both.values()),
        "maps": len(both),
        "mean_score": {name: round(float(scores[labels == (name == a)].mean()), 3) for name in (a, b)},
    }


def run(args: argparse.Namespace) -> dict:
    if len(args.player) not in (1, 2) or (len(args.player) == 1 and not args.baseline):
        raise BadInputError(None, "give two --player NAME DIR (or one with --baseline), each with generated replays")
    maps = maps_by_md5(args.songs)
    humans = read_records(args.human, [])
    human, generated = {}, {}
    for name, folder in args.player:
        own = [r for r in humans if name_key(r.player) == name_key(name)]
        human[name] = _plays(own, maps, args.min_objects)
        generated[name] = _plays(read_records([Path(folder)], []), maps, 0)
        if not human[name] or not generated[name]:
            raise BadInputError(folder, f"needs paired human replays of {name} and generated replays of known maps")
    human_habits = {name: habits(p) for name, p in human.items()}
    generated_habits = {name: habits(p) for name, p in generated.items()}
    summary = {"replays": {name: {"human": len(human[name]), "generated": len(generated[name])} for name in human}}
    if len(human) == 2:
        table = compare(human_habits, generated_habits)
        summary["habits"] = table
        summary["follows"] = sum(v["follows"] for v in table.values())
        windows = [{n: _windows(p) for n, p in plays.items()} for plays in (human, generated)]
        summary["steering"] = steering(*windows, args.seed)
        summary["steering_cursor_only"] = steering(*windows, args.seed, cursor_only=True)
    if args.baseline:
        baseline = habits(_plays(read_records([args.baseline], []), maps, 0))
        if args.map_reference and len(human) == 2:
            # Habits beyond what each map asks: humans against the default player on their own maps, generated
            # players against the default player on theirs.
            # A human replay's reference is named as it is (testing/play_like_humans.py names its plays so); a
            # generated play's is any default play of the same map.
            reference = habits(_plays(read_records([args.map_reference], []), maps, 0))
            by_map = baseline.drop_duplicates("map_md5").set_index("map_md5")
            table = compare(
                {name: beyond_map(frame, reference.reindex(frame.index)) for name, frame in human_habits.items()},
                {name: beyond_map(frame, by_map.reindex(frame["map_md5"])) for name, frame in generated_habits.items()},
            )
            summary["habits_beyond_map"] = table
            summary["follows_beyond_map"] = sum(v["follows"] for v in table.values())
        summary["against_default"] = {
            name: against_baseline(human_habits[name], generated_habits[name], baseline) for name in human
        }
    args.output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output / "player_style.json", json.dumps(summary, indent=2) + "\n")
    return summary


def report(summary: dict) -> str:
    lines = [f"replays: {summary['replays']}"]
    if "habits" in summary:
        lines.append(f"habits that follow the humans: {summary['follows']}/{len(HABIT_NAMES)}")
        for habit, row in summary["habits"].items():
            lines.append(f"{habit}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
        if "habits_beyond_map" in summary:
            lines.append(f"beyond what the map asks: {summary['follows_beyond_map']}/{len(HABIT_NAMES)} follow")
            for habit, row in summary["habits_beyond_map"].items():
                lines.append(f"  {habit}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
        for name in ("steering", "steering_cursor_only"):
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in summary[name].items()))
    for name, rows in summary.get("against_default", {}).items():
        shows = [habit for habit, row in rows.items() if row["shows"]]
        lines.append(f"{name} against the default player: {len(shows)}/{len(rows)} habits shown ({', '.join(shows)})")
        lines.extend(f"  {habit}: " + ", ".join(f"{k} {v}" for k, v in row.items()) for habit, row in rows.items())
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--human", type=Path, nargs="+", required=True, help="human .osr files or folders")
    p.add_argument("--songs", type=Path, nargs="+", required=True, help="folders with the maps (found by MD5)")
    p.add_argument(
        "--player", nargs=2, action="append", default=[], metavar=("NAME", "DIR"), help="a player and the folder "
        "of replays generated as that player (give two, or one with --baseline)"
    )  # fmt: skip
    p.add_argument("--baseline", type=Path, help="folder of replays generated as the default player, same maps")
    p.add_argument(
        "--map-reference",
        type=Path,
        help="folder of the default player's plays of the humans' own maps (testing/play_like_humans.py over "
        "--human): with --baseline, habits are also compared beyond what each map asks",
    )
    p.add_argument("--min-objects", type=int, default=20, help="human replays of maps with fewer objects are left out")
    p.add_argument("--seed", type=int, default=0, help="the classifier's seed")
    p.add_argument("--output", type=Path, required=True, help="folder for player_style.json")
    p.add_argument("--debug", action="store_true", help="re-raise errors with a traceback")
    return p.parse_args(argv)


main = main_of(parse_args, run, report)


if __name__ == "__main__":
    sys.exit(main())
