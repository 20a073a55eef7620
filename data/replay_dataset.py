"""Replay training cache: each human replay on a fixed play-time grid, with its map's conditioning per tick.

    prepare_replays(replay_dirs, maps_by_md5, output_dir) -> summary   (called by `python -m data.prepare --replays`)

Layout under output_dir (all writes atomic, table last):
    replays/<replay md5>.npy   one structured array per replay (REPLAY_DTYPE): tick time, cursor, keys, features
    replays.csv                one row per stored replay (player class, mods, pairing, header and judged counts)
    players.json               the player class table: class 0 is the null class, then one per username

Conditioning features are absolute and normalized like map positions (data.windows.normalize_positions); none
depends on the cursor, so a model that generates the cursor never sees its own target. Offsets to the cursor
are `feature - normalized cursor` when a model wants them. Positions are stacked and in the played field (HR
flipped), times are play time (DT/HT applied), so cursor and map share one clock and one field.
Unpaired replays are stored too (paired = False, features all zero): real motion without a map.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.atomic import atomic_path, write_text_atomic
from data.beatmap.datapoints import PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH
from data.beatmap.osu_file import read_beatmap
from data.errors import BadInputError
from data.replay.gameplay import judge, stack_offsets, stacked_positions
from data.replay.mods import NOT_HUMAN_MODS, PlayBeatmap, apply_mods, mods_to_string
from data.replay.osr import DEFAULT_STEP_MS, ReplayGrid, read_replay, to_grid

REPLAYS_DIR = "replays"
TABLE_FILE = "replays.csv"
PLAYERS_FILE = "players.json"
NULL_PLAYER = 0
# The corpus keeps cheat-detection copies, relax/autopilot and autoplay replays in a folder of this name.
FLAGGED_DIR_NAME = "replays-flagged"
# Same normalization as the map datasets: the playfield maps into [-0.8, 0.8] x [-0.6, 0.6].
POSITION_CENTER = (PLAYFIELD_WIDTH / 2, PLAYFIELD_HEIGHT / 2)
POSITION_SCALE = 320.0
MAX_LOOKAHEAD_MS = 2000.0  # times to or since an object are clipped here (nothing further changes a hand)
MS_PER_UNIT = 1000.0  # times are stored in seconds

FEATURE_NAMES = (
    "next_x",  # next object to hit (first with hit time after the tick): stacked head position
    "next_y",
    "next_time_s",  # seconds until its hit time, clipped to MAX_LOOKAHEAD_MS
    "next_is_circle",
    "next_is_slider",
    "next_is_spinner",
    "next_new_combo",
    "next2_x",  # the object after it
    "next2_y",
    "next2_time_s",
    "prev_x",  # where the last object (hit time at or before the tick) ends
    "prev_y",
    "prev_time_s",  # seconds since it ended (0 while it lasts), clipped
    "slider_active",  # a slider is being followed: the ball's position below
    "ball_x",
    "ball_y",
    "spinner_active",
    "active_left_s",  # seconds until the active slider or spinner ends
    "radius",  # circle radius, normalized like positions
    "preempt_s",  # approach time, play time
    "window_300_s",
    "window_50_s",
)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
NUM_FEATURES = len(FEATURE_NAMES)
REPLAY_DTYPE = np.dtype(
    [
        ("time_ms", "<f8"),  # play time
        ("x", "<f4"),  # osu! px, played field
        ("y", "<f4"),
        ("k1", "u1"),
        ("k2", "u1"),
        ("features", "<f4", (NUM_FEATURES,)),
    ]
)
TABLE_COLUMNS = [
    "replay_md5",
    "source",
    "player",
    "player_class",
    "beatmap_md5",
    "paired",
    "map_path",
    "mods",
    "mods_text",
    "rate",
    "game_version",
    "ticks",
    "step_ms",
    "count_300",
    "count_100",
    "count_50",
    "count_miss",
    "max_combo",
    "judged_300",
    "judged_100",
    "judged_50",
    "judged_miss",
    "judged_max_combo",
]


def _normalize(px: np.ndarray, axis: int) -> np.ndarray:
    return ((px - POSITION_CENTER[axis]) / POSITION_SCALE).astype(np.float32)


def player_key(name: str) -> str:
    """osu! usernames compare case-insensitively."""
    return name.strip().casefold()


@dataclass(frozen=True)
class PlayerTable:
    """Player classes: 0 is the null class (unknown player, and the guidance null), then one per username."""

    players: tuple[str, ...]  # display names, class i + 1

    @classmethod
    def build(cls, names: list[str]) -> PlayerTable:
        first: dict[str, str] = {}
        for name in sorted(n for n in names if n.strip()):
            first.setdefault(player_key(name), name.strip())
        return cls(tuple(first[k] for k in sorted(first)))

    def class_of(self, name: str) -> int:
        key = player_key(name)
        for i, player in enumerate(self.players):
            if player_key(player) == key:
                return i + 1
        return NULL_PLAYER

    @property
    def num_classes(self) -> int:
        return len(self.players) + 1

    def to_dict(self) -> dict:
        return {"null_class": NULL_PLAYER, "players": list(self.players)}

    @classmethod
    def from_dict(cls, doc: dict) -> PlayerTable:
        return cls(tuple(doc["players"]))


# ----------------------------------------------------------------------------------------------------------
# Features


def map_features(play: PlayBeatmap, time_ms: np.ndarray) -> np.ndarray:
    """Conditioning features [T, NUM_FEATURES] of a modded map at play times `time_ms`."""
    objects = play.hit_objects
    t = np.asarray(time_ms, np.float64)
    out = np.zeros((len(t), NUM_FEATURES), np.float32)
    f = FEATURE_INDEX
    out[:, f["radius"]] = play.radius_px / POSITION_SCALE
    out[:, f["preempt_s"]] = play.preempt_ms / MS_PER_UNIT
    out[:, f["window_300_s"]] = play.hit_windows_ms[0] / MS_PER_UNIT
    out[:, f["window_50_s"]] = play.hit_windows_ms[2] / MS_PER_UNIT
    clip_s = MAX_LOOKAHEAD_MS / MS_PER_UNIT
    if not objects:
        out[:, f["next_time_s"]] = out[:, f["next2_time_s"]] = out[:, f["prev_time_s"]] = clip_s
        return out
    heads = stacked_positions(play)
    offsets = stack_offsets(play)
    start = np.array([o.time_ms for o in objects])
    end = np.array([o.end_time_ms for o in objects])
    ends = np.array([o.end_position for o in objects]).reshape(-1, 2) + offsets
    kinds = np.array([o.kind for o in objects])
    combo = np.array([o.new_combo for o in objects])
    n = len(objects)
    nxt = np.searchsorted(start, t, side="right")  # first object with hit time after the tick
    prev = nxt - 1

    def put_next(index: np.ndarray, x: str, y: str, time: str) -> np.ndarray:
        has = index < n
        i = np.minimum(index, n - 1)
        out[:, f[x]] = np.where(has, _normalize(heads[i, 0], 0), 0)
        out[:, f[y]] = np.where(has, _normalize(heads[i, 1], 1), 0)
        out[:, f[time]] = np.where(has, np.clip((start[i] - t) / MS_PER_UNIT, 0, clip_s), clip_s)
        return has

    has_next = put_next(nxt, "next_x", "next_y", "next_time_s")
    put_next(nxt + 1, "next2_x", "next2_y", "next2_time_s")
    i = np.minimum(nxt, n - 1)
    for kind in ("circle", "slider", "spinner"):
        out[:, f[f"next_is_{kind}"]] = has_next & (kinds[i] == kind)
    out[:, f["next_new_combo"]] = has_next & combo[i]

    has_prev = prev >= 0
    p = np.maximum(prev, 0)
    out[:, f["prev_x"]] = np.where(has_prev, _normalize(ends[p, 0], 0), 0)
    out[:, f["prev_y"]] = np.where(has_prev, _normalize(ends[p, 1], 1), 0)
    since = np.clip((t - end[p]) / MS_PER_UNIT, 0, clip_s)
    out[:, f["prev_time_s"]] = np.where(has_prev, since, clip_s)
    active = has_prev & (t <= end[p])
    out[:, f["active_left_s"]] = np.where(active, np.clip((end[p] - t) / MS_PER_UNIT, 0, clip_s), 0)
    out[:, f["spinner_active"]] = active & (kinds[p] == "spinner")
    sliding = np.flatnonzero(active & (kinds[p] == "slider"))
    out[sliding, f["slider_active"]] = 1
    for j in np.unique(p[sliding]):
        ticks = sliding[p[sliding] == j]
        ball = ball_positions(objects[j], t[ticks]) + offsets[j]
        out[ticks, f["ball_x"]] = _normalize(ball[:, 0], 0)
        out[ticks, f["ball_y"]] = _normalize(ball[:, 1], 1)
    return out


def ball_positions(o, time_ms: np.ndarray) -> np.ndarray:
    """Slider ball positions [T, 2] (unstacked) at play times `time_ms` (clamped to the slider)."""
    if o.path is None or o.span_ms <= 0 or len(o.path) < 2 or o.path_cum_px[-1] <= 0:
        return np.tile([o.x, o.y], (len(time_ms), 1)).astype(np.float64)
    progress = (np.clip(time_ms, o.time_ms, o.end_time_ms) - o.time_ms) / o.span_ms
    span = np.minimum(np.floor(progress), o.slides - 1)
    along = progress - span
    along = np.where(span % 2 == 1, 1.0 - along, along)
    distance = np.clip(along, 0, 1) * o.path_cum_px[-1]
    x = np.interp(distance, o.path_cum_px, o.path[:, 0])
    y = np.interp(distance, o.path_cum_px, o.path[:, 1])
    return np.stack([x, y], axis=1)


def replay_array(grid: ReplayGrid, features: np.ndarray | None) -> np.ndarray:
    """One structured REPLAY_DTYPE array from a grid and its features (zeros when unpaired)."""
    out = np.zeros(len(grid), REPLAY_DTYPE)
    out["time_ms"] = grid.time_ms
    out["x"] = grid.x
    out["y"] = grid.y
    out["k1"] = grid.k1
    out["k2"] = grid.k2
    if features is not None:
        out["features"] = features
    return out


# ----------------------------------------------------------------------------------------------------------
# Building the cache


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
        target = output / REPLAYS_DIR / f"{replay_md5}.npy"
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
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
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(output / TABLE_FILE, text.getvalue())
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


def load_replay_cache(output_dir: str | os.PathLike) -> tuple[list[dict], PlayerTable]:
    """The replay table rows (typed) and the player table of a prepared cache."""
    output = Path(output_dir)
    try:
        players = PlayerTable.from_dict(json.loads((output / PLAYERS_FILE).read_text(encoding="utf-8")))
        with open(output / TABLE_FILE, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError) as err:
        raise BadInputError(output, f"not a prepared replay cache ({err})") from err
    for row in rows:
        row["paired"] = row["paired"] == "True"
        row["player_class"] = int(row["player_class"])
        row["mods"] = int(row["mods"])
        row["rate"] = float(row["rate"])
    return rows, players


def load_replay_array(output_dir: str | os.PathLike, replay_md5: str) -> np.ndarray:
    """The REPLAY_DTYPE array of one stored replay."""
    return np.load(Path(output_dir) / REPLAYS_DIR / f"{replay_md5}.npy", allow_pickle=False)
