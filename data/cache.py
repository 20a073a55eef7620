"""The cache format: where `python -m data.prepare` puts each thing, and how arrays and tables are read back.

Map cache (all writes atomic):
    arrays/<md5>.<codec>.npy  one ARRAY_DTYPE array per distinct map and codec version (never rewritten in place)
    sources.csv               every file found: its stamp and the MD5 it held or why it was skipped
    styles.json               the StyleTable (data.tables) and a fingerprint of the table it was built from
    maps.csv                  one row per distinct map; written last, so it only names arrays that exist
Replay cache (`--replays`, in the same folder):
    replays/<replay md5>.npy  one REPLAY_DTYPE array per replay: tick time, cursor, keys, map features
    replays/<replay md5>.timing.npz  its frame-timing facts (data.replay.frame_timing.measure), stable replays
                              at normal speed only
    replays.csv               one row per stored replay (player class, mods, pairing, header and judged counts)
    players.json              the PlayerTable (data.tables)

`codec` is a fingerprint of the code that turns bytes into arrays (data.prepare.codec_fingerprint). Nothing here
imports torch or pandas: preparing a cache stays a light process.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from data.atomic import atomic_path
from data.beatmap.datapoints import Datapoints
from data.errors import BadInputError
from data.replay.osr import ReplayGrid
from data.replay_io import NUM_FEATURES
from data.tables import PlayerTable, StyledMap, StyleTable

MAPS_FILE = "maps.csv"
SOURCES_FILE = "sources.csv"
STYLES_FILE = "styles.json"
ARRAYS_DIR = "arrays"
# One record per datapoint; field names match data.beatmap.datapoints.Datapoints.
ARRAY_DTYPE = np.dtype([("time_ms", "<f8"), ("position", "<f4", (2,)), ("distance", "<f4"), ("kind", "i1")])
MAP_COLUMNS = [
    "md5",
    "source",
    "set_key",
    "BeatmapID",
    "BeatmapSetID",
    "creator",
    "version",
    "title",
    "artist",
    "format_version",
    "star_rating",
    "circle_size",
    "approach_rate",
    "overall_difficulty",
    "hp_drain",
    "n_circles",
    "n_sliders",
    "n_spinners",
    "n_datapoints",
    "style_class",
    "mapper_class",
    "split",
    "codec",
]
SOURCE_COLUMNS = ["source", "set_key", "stamp", "md5", "skip_reason", "codec"]

REPLAYS_DIR = "replays"
REPLAYS_FILE = "replays.csv"
PLAYERS_FILE = "players.json"
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
REPLAY_COLUMNS = [
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


def is_map_cache(path: Path) -> bool:
    return (path / MAPS_FILE).is_file() and (path / STYLES_FILE).is_file()


def is_replay_cache(path: Path) -> bool:
    return (path / REPLAYS_FILE).is_file() and (path / PLAYERS_FILE).is_file()


# ---------------------------------------------------------------- map arrays and tables


def array_path(cache_dir: str | os.PathLike, md5: str, codec: str) -> Path:
    # Caches written before the codec fingerprint existed name arrays by MD5 alone (codec "").
    return Path(cache_dir) / ARRAYS_DIR / (f"{md5}.{codec}.npy" if codec else f"{md5}.npy")


def save_datapoints(path: str | os.PathLike, datapoints: Datapoints) -> None:
    record = np.empty(len(datapoints), ARRAY_DTYPE)
    record["time_ms"] = datapoints.time_ms
    record["position"] = datapoints.position
    record["distance"] = datapoints.distance
    record["kind"] = datapoints.kind
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, record, allow_pickle=False)


def load_datapoints(path: str | os.PathLike) -> Datapoints:
    record = np.load(path, allow_pickle=False)
    return Datapoints(
        np.ascontiguousarray(record["time_ms"]),
        np.ascontiguousarray(record["position"]),
        np.ascontiguousarray(record["distance"]),
        np.ascontiguousarray(record["kind"]),
    )


def build_styles(rows: list[dict]) -> StyleTable:
    return StyleTable.build(
        StyledMap(
            r["md5"],
            int_or_none(r["BeatmapID"]),
            r["creator"] or None,
            _label(r),
        )
        for r in rows
    )


def _label(row: dict) -> str:
    """'Artist - Title (Creator) [Version]' like osu! shows it; empty for a map with no metadata."""
    if not any(row[k] for k in ("artist", "title", "creator", "version")):
        return ""
    return f"{row['artist']} - {row['title']} ({row['creator']}) [{row['version']}]"


def styles_fingerprint(md5s: Iterable[str]) -> str:
    """Ties styles.json to the table it was built from (checked by data.windows.load_cache)."""
    return hashlib.md5("\n".join(sorted(md5s)).encode()).hexdigest()


def int_or_none(value: object) -> int | None:
    if value in (None, ""):
        return None
    number = int(float(value))  # type: ignore[arg-type]
    return number if number > 0 else None


def read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return buffer.getvalue()


# ---------------------------------------------------------------- replay arrays and tables


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


def save_replay_array(output_dir: str | os.PathLike, replay_md5: str, array: np.ndarray) -> None:
    with atomic_path(Path(output_dir) / REPLAYS_DIR / f"{replay_md5}.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)


def load_replay_cache(output_dir: str | os.PathLike) -> tuple[list[dict], PlayerTable]:
    """The replay table rows (typed) and the player table of a prepared cache."""
    output = Path(output_dir)
    try:
        players = PlayerTable.from_dict(json.loads((output / PLAYERS_FILE).read_text(encoding="utf-8")))
        with open(output / REPLAYS_FILE, newline="", encoding="utf-8") as f:
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


def save_frame_timing(output_dir: str | os.PathLike, replay_md5: str, measured: dict[str, np.ndarray]) -> None:
    with atomic_path(Path(output_dir) / REPLAYS_DIR / f"{replay_md5}.timing.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **measured)


def load_frame_timing(output_dir: str | os.PathLike, replay_md5: str) -> dict[str, np.ndarray] | None:
    """What `save_frame_timing` stored for a replay (None when it measured nothing: lazer, DT/HT, short)."""
    path = Path(output_dir) / REPLAYS_DIR / f"{replay_md5}.timing.npz"
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
