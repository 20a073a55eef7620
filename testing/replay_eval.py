"""Judge osu!standard replays offline against their maps, and place them against the human band.

    python testing/replay_eval.py --human REPLAYS_DIR --songs SONGS_DIR --output DIR
                                  [--flagged DIR] [--generated DIR_OR_FILES...] [--auto 8] [--limit N]

Per replay: circleguard's judgments (KeylessCircleguard with the beatmap file: 300/100/50/miss on heads,
accuracy, unstable rate, aim-correction snaps, frame time) next to our full judge (sliders, ticks, spinners;
it reproduces the header's counts); key presses per object and hold durations; cursor speed statistics.
Replays are paired with maps by the MD5 of the map file's bytes, as osu! does. Groups: human (sets the band),
flagged (cheat-test copies, relax, autopilot: negatives), auto (straight lines, perfect timing, built here) and
generated (the replay model's output). `evaluate_replays(pairs)` is the function other code calls.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.atomic import write_text_atomic  # noqa: E402
from data.beatmap.osu_reader import read_beatmap  # noqa: E402
from data.errors import BadInputError, refuse_unless_readable  # noqa: E402
from data.replay.osr import read_replay  # noqa: E402
from testing import plots  # noqa: E402
from testing.replay_judge import (  # noqa: E402
    BAND,
    BAND_MIN_OBJECTS,
    ROW_COLUMNS,
    evaluate_replays,
    flagged_kind,
    maps_by_md5,
    pair_replays,
    style_distance,
    write_auto_replay,
)

# ---------------------------------------------------------------- groups, band, style


def band_summary(table: pd.DataFrame) -> dict:
    """Per group: replays, share in the band (and per figure), and the 10th/50th/90th percentiles of each figure.

    Figures are taken over replays of maps with BAND_MIN_OBJECTS+ objects, or over all of a group's paired
    replays when it has none there (figures_over says which).
    """
    out = {}
    for group, part in table.groupby("group", sort=False):
        judged = part[part["objects"] >= BAND_MIN_OBJECTS]
        over = f"maps of {BAND_MIN_OBJECTS}+ objects"
        if not len(judged):
            judged, over = part[part["objects"] > 0], "all paired replays (none on long maps)"
        entry = {"replays": int(len(part)), "judged": int(len(judged)), "figures_over": over}
        entry["in_band_share"] = float(judged["in_band"].mean()) if len(judged) else None
        entry["in_band_share_by_figure"] = {
            key: float(judged[key].astype(float).between(low, high).mean()) if len(judged) else None
            for key, (low, high) in BAND.items()
        }
        for key in [*BAND, "judge_accuracy", "hold_median_ms", "speed_median_px_per_ms", "speed_p95_px_per_ms"]:
            values = judged[key].astype(float).dropna()
            entry[key] = (
                {f"p{int(q * 100)}": float(values.quantile(q)) for q in (0.1, 0.5, 0.9)} if len(values) else None
            )
        matches = part["judge_matches_header"].dropna()
        entry["judge_matches_header_share"] = float(matches.astype(bool).mean()) if len(matches) else None
        out[str(group)] = entry
    return out


def style_report(samples: pd.DataFrame, references: pd.DataFrame, as_player: str | None = None) -> dict:
    """For each sample whose player has real replays among the references: mean style distance to that
    player's replays vs to other players' (smaller own distance = the player's style is measurable).

    `as_player` names the player every sample was conditioned on (else the header's player name is used).
    """
    dists = {**references.attrs.get("distributions", {}), **samples.attrs.get("distributions", {})}
    players = references["player"].astype(str).str.casefold()
    rows = []
    for _, sample in samples.iterrows():
        player = as_player or sample["player"]
        if sample["replay"] not in dists or not isinstance(player, str):
            continue
        mine = players == player.casefold()
        own = references[mine & (references["replay"] != sample["replay"])]
        others = references[~mine]
        own_d = [style_distance(dists[sample["replay"]], dists[r]) for r in own["replay"] if r in dists]
        other_d = [style_distance(dists[sample["replay"]], dists[r]) for r in others["replay"] if r in dists]
        own_d = [d for d in own_d if np.isfinite(d)]
        other_d = [d for d in other_d if np.isfinite(d)]
        if own_d and other_d:
            rows.append(
                {
                    "replay": sample["replay"],
                    "player": player,
                    "own": float(np.mean(own_d)),
                    "others": float(np.mean(other_d)),
                }
            )
    closer = sum(r["own"] < r["others"] for r in rows)
    return {
        "samples": len(rows),
        "closer_to_own_player": closer,
        "median_own_distance": float(np.median([r["own"] for r in rows])) if rows else None,
        "median_other_distance": float(np.median([r["others"] for r in rows])) if rows else None,
        "rows": rows,
    }


def _write_table(path: Path, table: pd.DataFrame) -> None:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6g")
    write_text_atomic(path, buffer.getvalue())


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    attrs = {}
    for t in tables:
        attrs.update(t.attrs.get("distributions", {}))
    table = pd.concat([t for t in tables if len(t)], ignore_index=True) if tables else pd.DataFrame(columns=ROW_COLUMNS)
    table.attrs["distributions"] = attrs
    return table


def run(args: argparse.Namespace) -> dict:
    maps = maps_by_md5(args.songs)
    tables = []
    human = pair_replays(args.human, maps) if args.human else []
    human_paired = [p for p in human if p[1] is not None][: args.limit]
    if human_paired:
        tables.append(evaluate_replays(human_paired, "human"))
        print(f"human: {len(human_paired)} paired replays judged", flush=True)
    if args.flagged:
        flagged = [p for p in pair_replays(args.flagged, maps) if p[1] is not None][: args.limit]
        flagged_table = evaluate_replays(flagged, "flagged")
        kinds = [flagged_kind(int(m)) if np.isfinite(m) else "unreadable" for m in flagged_table["mods"]]
        flagged_table["group"] = [f"flagged {k}" for k in kinds]
        tables.append(flagged_table)
        print(f"flagged: {len(flagged)} paired replays judged", flush=True)
    if args.auto:
        chosen = []
        for _, osu in human_paired:
            if osu not in chosen and len(read_beatmap(osu).hit_objects) >= BAND_MIN_OBJECTS:
                chosen.append(osu)
            if len(chosen) == args.auto:
                break
        autos = [
            (write_auto_replay(osu, args.output / "auto" / f"auto {k:02d}.osr"), osu) for k, osu in enumerate(chosen)
        ]
        tables.append(evaluate_replays(autos, "auto"))
        print(f"auto: {len(autos)} replays built and judged", flush=True)
    if args.generated:
        extra_maps = maps_by_md5([p.parent if p.is_file() else p for p in args.generated])
        generated = pair_replays(args.generated, {**maps, **extra_maps})[: args.limit]
        tables.append(evaluate_replays(generated, "generated"))
        print(f"generated: {len(generated)} replays judged", flush=True)
    table = _concat(tables)
    summary = {"band": {k: list(v) for k, v in BAND.items()}, "groups": band_summary(table)}
    humans = table[table["group"] == "human"]
    if len(humans):
        humans_only = humans.copy()
        humans_only.attrs = table.attrs
        # Leave-one-out on the humans themselves: is a player's style measurable with this distance at all?
        summary["style_human_leave_one_out"] = _drop_rows(style_report(humans_only, humans_only))
        generated_rows = table[table["group"] == "generated"].copy()
        if len(generated_rows):
            generated_rows.attrs = table.attrs
            style = style_report(generated_rows, humans_only, args.as_player)
            summary["style_generated"] = style  # few samples: keep each one's distances
    _write_table(args.output / "replays.csv", table)
    write_text_atomic(args.output / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if len(table):
        errors = {}
        for group, part in table.groupby("group", sort=False):
            found = [
                table.attrs["distributions"][r]["hit_errors"]
                for r in part["replay"]
                if r in table.attrs["distributions"]
            ]
            errors[str(group)] = np.concatenate(found) if found else np.zeros(0)
        plots.replay_plots(table, errors, args.output)
    print(report(summary))
    return summary


def _drop_rows(style: dict) -> dict:
    return {k: v for k, v in style.items() if k != "rows"}


def report(summary: dict) -> str:
    lines = []
    for group, entry in summary["groups"].items():

        def median(key, entry=entry):
            value = entry.get(key)
            return "n/a" if not value else f"{value['p50']:.3g} [{value['p10']:.3g}, {value['p90']:.3g}]"

        share = entry["in_band_share"]
        figures = entry["in_band_share_by_figure"]
        by_figure = ", ".join(f"{k} {v:.0%}" for k, v in figures.items() if v is not None) or "no figures"
        lines.append(
            f"{group}: {entry['replays']} replays ({entry['judged']} judged over {entry['figures_over']}), "
            f"in band {'n/a' if share is None else f'{share:.0%}'} ({by_figure}); "
            f"median [p10, p90]: accuracy {median('accuracy')}, "
            f"UR {median('unstable_rate')}, snaps {median('snaps')}, frame time {median('frame_time_ms')} ms, "
            f"presses/object {median('presses_per_object')}, speed {median('speed_median_px_per_ms')} px/ms"
        )
    for key in ("style_human_leave_one_out", "style_generated"):
        if key in summary:
            s = summary[key]
            lines.append(
                f"{key}: {s['closer_to_own_player']}/{s['samples']} replays closer to their own player "
                f"(median distance own {s['median_own_distance']}, others {s['median_other_distance']})"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--human", type=Path, nargs="*", default=[], help="human .osr files or folders (set the band)")
    p.add_argument("--flagged", type=Path, nargs="*", default=[], help="flagged (non-human) replays: negatives")
    p.add_argument(
        "--generated", type=Path, nargs="*", default=[], help="generated replays (maps beside or in --songs)"
    )
    p.add_argument("--as-player", help="the player the generated replays were conditioned on (default: header)")
    p.add_argument("--songs", type=Path, nargs="*", default=[], help="folders of maps to pair replays with by MD5")
    p.add_argument("--auto", type=int, default=0, help="build and judge auto replays of this many human-played maps")
    p.add_argument("--output", type=Path, required=True, help="folder for replays.csv, summary.json and plots")
    p.add_argument("--limit", type=int, default=None, help="judge at most N replays per group")
    return p.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> None:
    """A missing path, a single bad replay, or no readable replay at all is refused before anything is written."""
    groups = [*args.human, *args.flagged, *args.generated]
    for path in [*groups, *args.songs]:
        if not path.exists():
            raise BadInputError(path, "no such file or folder")
    replays = [p for item in groups for p in (sorted(item.rglob("*.osr")) if item.is_dir() else [item])]
    refuse_unless_readable(replays, read_replay, groups, ".osr replays", "replays")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.human or args.flagged or args.generated):
        print("error: give --human, --flagged or --generated replays", file=sys.stderr)
        return 2
    try:
        check_inputs(args)
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
