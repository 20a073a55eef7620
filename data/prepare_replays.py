"""Pair human replays with cached maps by MD5 and store them on the play-time grid (`python -m data.prepare --replays`).

Unpaired replays are stored too (paired = False, features all zero): real motion without a map. Flagged replays
(relax, autopilot, autoplay, cheat-detection copies) are refused: they are not human play.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from data.atomic import write_text_atomic
from data.beatmap.osu_reader import read_beatmap
from data.cache import (
    PLAYERS_FILE,
    REPLAY_COLUMNS,
    REPLAYS_FILE,
    csv_text,
    replay_array,
    save_frame_timing,
    save_replay_array,
)
from data.errors import BadInputError
from data.replay.frame_timing import measure
from data.replay.gameplay import judge
from data.replay.mods import NOT_HUMAN_MODS, PlayBeatmap, apply_mods, mods_to_string
from data.replay.osr import DEFAULT_STEP_MS, read_replay, to_grid
from data.replay_io import map_features
from data.tables import PlayerTable

# The corpus keeps cheat-detection copies, relax/autopilot and autoplay replays in a folder of this name.
FLAGGED_DIR_NAME = "replays-flagged"


def find_replays(replay_dirs: list[str | os.PathLike]) -> list[Path]:
    """Every .osr under the folders (or given directly), sorted; refuses the corpus's flagged folder."""
    found: set[Path] = set()
    for d in replay_dirs:
        root = Path(d)
        if FLAGGED_DIR_NAME in root.resolve().parts:
            raise BadInputError(d, "flagged replays are not human play and must never be trained on")
        if root.is_file() and root.suffix.lower() == ".osr":
            found.add(root)
        elif root.is_dir():
            found.update(p for p in root.rglob("*") if p.suffix.lower() == ".osr" and p.is_file())
        else:
            raise BadInputError(d, "no such folder or .osr file")
    return sorted(p for p in found if FLAGGED_DIR_NAME not in p.resolve().parts)


def _skip_reason(err: BadInputError) -> str:
    problem = err.problem
    if "game mode" in problem:
        return "not osu!standard"
    if "corrupt or truncated" in problem:
        return "corrupt or truncated"
    return problem


def prepare_replays(
    replay_dirs: list[str | os.PathLike],
    maps_by_md5: dict[str, str | os.PathLike],
    output_dir: str | os.PathLike,
    step_ms: float = DEFAULT_STEP_MS,
) -> dict:
    """Pair replays with maps by MD5, grid them, write arrays + table + player classes; return a summary."""
    output = Path(output_dir)
    paths = find_replays(replay_dirs)
    maps = {k.lower(): str(v) for k, v in maps_by_md5.items()}
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    rows: list[dict] = []
    plays: dict[tuple[str, int], PlayBeatmap | None] = {}
    for path in paths:
        data = path.read_bytes()
        replay_md5 = hashlib.md5(data).hexdigest()
        if replay_md5 in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(replay_md5)
        try:
            record = read_replay(path)
        except BadInputError as err:
            skipped[_skip_reason(err)] += 1
            continue
        if record.mods & NOT_HUMAN_MODS:
            skipped["relax, autopilot or autoplay"] += 1
            continue
        play = None
        map_path = maps.get(record.beatmap_md5)
        if map_path is not None:
            key = (record.beatmap_md5, record.mods)
            if key not in plays:
                try:
                    plays[key] = apply_mods(read_beatmap(map_path), record.mods)
                except BadInputError:
                    plays[key] = None
            play = plays[key]
            if play is None:
                skipped["map unreadable (stored unpaired)"] += 1
        grid = to_grid(record, step_ms)
        features = map_features(play, grid.time_ms) if play is not None else None
        array = replay_array(grid, features)
        save_replay_array(output, replay_md5, array)
        timing = measure(record)
        if timing is not None:
            save_frame_timing(output, replay_md5, timing)
        judged = judge(play, record) if play is not None else None
        rows.append(
            {
                "replay_md5": replay_md5,
                "source": str(path),
                "player": record.player,
                "beatmap_md5": record.beatmap_md5,
                "paired": play is not None,
                "map_path": map_path if play is not None else "",
                "mods": record.mods,
                "mods_text": mods_to_string(record.mods),
                "rate": record.rate,
                "game_version": record.game_version,
                "ticks": len(grid),
                "step_ms": step_ms,
                "count_300": record.count_300,
                "count_100": record.count_100,
                "count_50": record.count_50,
                "count_miss": record.count_miss,
                "max_combo": record.max_combo,
                "judged_300": judged.count_300 if judged else "",
                "judged_100": judged.count_100 if judged else "",
                "judged_50": judged.count_50 if judged else "",
                "judged_miss": judged.count_miss if judged else "",
                "judged_max_combo": judged.max_combo if judged else "",
            }
        )
    players = PlayerTable.build([r["player"] for r in rows])
    for row in rows:
        row["player_class"] = players.class_of(row["player"])
    write_text_atomic(output / PLAYERS_FILE, json.dumps(players.to_dict(), indent=1, sort_keys=True) + "\n")
    write_text_atomic(output / REPLAYS_FILE, csv_text(rows, REPLAY_COLUMNS))
    paired = sum(1 for r in rows if r["paired"])
    return {
        "found": len(paths),
        "stored": len(rows),
        "paired": paired,
        "unpaired": len(rows) - paired,
        "players": len(players.players),
        "ticks": sum(r["ticks"] for r in rows),
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(sorted(skipped.items())),
    }
