"""The .osr codec: read osu!standard replays into frame arrays, resample them on a fixed grid, write them back.

Format reference: https://osu.ppy.sh/wiki/en/Client/File_formats/osr_%28file_format%29
Times inside an .osr are song (map) time, so a DT replay's frames are 1.5x further apart in the file than in
real time. `ReplayRecord` keeps the file's time; `ReplayGrid` is in play time (map time / rate), the clock the
player's hand moves in and the one `data.replay.mods` puts a modded map on.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np
import osrparse

from data.atomic import write_bytes_atomic
from data.errors import BadInputError
from data.replay.mods import mods_rate

if TYPE_CHECKING:
    from data.replay.gameplay import Judgement

MODE_STANDARD = 0
# osu! key bits of one frame. Stable sets M1 together with K1 (and M2 with K2), so each pair is one finger.
KEY_M1, KEY_M2, KEY_K1, KEY_K2, KEY_SMOKE = 1, 2, 4, 8, 16
KEY1_BITS = KEY_M1 | KEY_K1
KEY2_BITS = KEY_M2 | KEY_K2
# The frame stable appends after the play whose "keys" field carries the RNG seed.
SEED_FRAME_DELTA = -12345
# Stable starts every replay with two frames at this off-screen spot (times 0 and skip boundary - 1).
STABLE_START_X, STABLE_START_Y = 256.0, -500.0
STABLE_START_FRAMES = 2
# A stable-era client version (yyyymmdd); below 30000000 readers treat the file as osu!stable's.
STABLE_GAME_VERSION = 20240101
DEFAULT_STEP_MS = 1000.0 / 60.0
COORDINATE_DECIMALS = 4
MAX_UINT16 = 0xFFFF
# .NET DateTime ticks (100 ns since 0001-01-01) at the Unix epoch.
DOTNET_TICKS_AT_UNIX_EPOCH = 621355968000000000
LZMA_DICT_SIZE = 1 << 21
LIFE_BAR_STEP_MS = 2000.0


@dataclass(frozen=True)
class ReplayFrames:
    """Cursor frames as the .osr holds them (struct of arrays, length F, time ascending)."""

    time_ms: np.ndarray  # float64 [F], song time
    x: np.ndarray  # float32 [F], osu! pixels as the player saw the field (HR replays are already flipped)
    y: np.ndarray  # float32 [F]
    keys: np.ndarray  # int32 [F], osu! key bits (KEY_*)

    def __len__(self) -> int:
        return len(self.time_ms)


@dataclass(frozen=True)
class ReplayRecord:
    """One osu!standard replay: header fields and its play frames (special frames removed)."""

    path: str | None
    player: str
    beatmap_md5: str
    mods: int
    game_version: int
    count_300: int
    count_100: int
    count_50: int
    count_geki: int
    count_katu: int
    count_miss: int
    score: int
    max_combo: int
    perfect: bool
    frames: ReplayFrames
    rng_seed: int | None

    @property
    def rate(self) -> float:
        """Song speed of the play: 1.5 with DT/NC, 0.75 with HT, else 1."""
        return mods_rate(self.mods)


@dataclass(frozen=True)
class ReplayGrid:
    """Frames resampled every `step_ms` of play time: what a replay model sees and emits."""

    time_ms: np.ndarray  # float64 [T], play time (song time / rate)
    x: np.ndarray  # float32 [T]
    y: np.ndarray  # float32 [T]
    k1: np.ndarray  # bool [T], key 1 (K1 or M1) down during the tick
    k2: np.ndarray  # bool [T], key 2 (K2 or M2) down during the tick
    step_ms: float
    rate: float  # song time = time_ms * rate

    def __len__(self) -> int:
        return len(self.time_ms)


# ----------------------------------------------------------------------------------------------------------
# Reading


def read_replay(path: str | os.PathLike) -> ReplayRecord:
    """Read an osu!standard .osr; BadInputError when it is missing, corrupt, truncated or another mode."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise BadInputError(path, f"cannot read replay ({err.strerror or err})") from err
    return parse_replay(data, path)


def parse_replay(data: bytes, path: str | os.PathLike | None = None) -> ReplayRecord:
    """Parse the bytes of an .osr (see `read_replay`)."""
    if len(data) < 1:
        raise BadInputError(path, "empty file, not an .osr replay")
    if data[0] != MODE_STANDARD:
        # Checked before osrparse so a taiko/catch/mania replay gets its own reason, not a parse error.
        if data[0] <= 3:
            raise BadInputError(path, f"replay is for game mode {data[0]}, only osu!standard (mode 0) is supported")
        raise BadInputError(path, "not an .osr replay (unknown game mode byte)")
    try:
        replay = osrparse.Replay.from_string(data)
    except Exception as err:  # osrparse raises struct/lzma/unicode/value/index errors for broken files
        raise BadInputError(path, f"corrupt or truncated .osr ({type(err).__name__}: {err})") from err
    md5 = replay.beatmap_hash or ""
    if len(md5) != 32 or any(c not in "0123456789abcdefABCDEF" for c in md5):
        raise BadInputError(path, "not an .osr replay (no beatmap MD5 in the header)")
    frames = _play_frames(replay.replay_data)
    if len(frames) == 0:
        raise BadInputError(path, "replay has no play frames")
    return ReplayRecord(
        path=None if path is None else str(path),
        player=replay.username or "",
        beatmap_md5=md5.lower(),
        mods=int(replay.mods),
        game_version=int(replay.game_version),
        count_300=replay.count_300,
        count_100=replay.count_100,
        count_50=replay.count_50,
        count_geki=replay.count_geki,
        count_katu=replay.count_katu,
        count_miss=replay.count_miss,
        score=replay.score,
        max_combo=replay.max_combo,
        perfect=bool(replay.perfect),
        frames=frames,
        rng_seed=replay.rng_seed,
    )


def _play_frames(events: list) -> ReplayFrames:
    """Absolute-time frames from osrparse's deltas, the way osu!lazer's legacy decoder reads them.

    The two leading stable frames at (256, -500) are dropped; a frame with a negative delta moves the clock
    back but is dropped itself (stable re-plays nothing there), and any later frame that is still before the
    latest kept one is dropped too, so time never runs backwards. osrparse already removed the seed frame.
    """
    t = np.fromiter((e.time_delta for e in events), np.float64, len(events))
    x = np.fromiter((e.x for e in events), np.float64, len(events))
    y = np.fromiter((e.y for e in events), np.float64, len(events))
    keys = np.fromiter((int(e.keys) for e in events), np.int64, len(events))
    delta = t.copy()
    time_ms = np.cumsum(t)
    keep = delta >= 0
    head = np.arange(len(events)) < STABLE_START_FRAMES
    keep &= ~(head & (x == STABLE_START_X) & (y == STABLE_START_Y))
    keep &= np.isfinite(x) & np.isfinite(y)
    # Monotone filter: drop frames that fall before the latest kept frame (a rewind in the middle of a play).
    running_max = np.maximum.accumulate(np.where(keep, time_ms, -np.inf))
    previous_max = np.concatenate([[-np.inf], running_max[:-1]])
    keep &= time_ms >= previous_max
    return ReplayFrames(
        time_ms=time_ms[keep],
        x=x[keep].astype(np.float32),
        y=y[keep].astype(np.float32),
        keys=keys[keep].astype(np.int32),
    )


# ----------------------------------------------------------------------------------------------------------
# Fixed grid


def to_grid(
    record: ReplayRecord | ReplayFrames,
    step_ms: float = DEFAULT_STEP_MS,
    *,
    rate: float | None = None,
    start_ms: float | None = None,
    end_ms: float | None = None,
) -> ReplayGrid:
    """Resample frames every `step_ms` of play time.

    The cursor is linearly interpolated between frames (it moves continuously between samples), except at a
    press, where it is where the press happened; each key press and release moves to its nearest tick, so
    taps shorter than a tick survive. `rate` defaults to the record's mods rate (1 for bare frames).
    """
    frames = record.frames if isinstance(record, ReplayRecord) else record
    if rate is None:
        rate = record.rate if isinstance(record, ReplayRecord) else 1.0
    if step_ms <= 0:
        raise ValueError("step_ms must be positive")
    play_ms = frames.time_ms / rate
    # Ticks sit on whole multiples of the step, so any two grids of one play share their phase.
    start = np.ceil(play_ms[0] / step_ms - 1e-9) * step_ms if start_ms is None else start_ms
    end = play_ms[-1] if end_ms is None else end_ms
    count = max(int(np.floor((end - start) / step_ms + 1e-9)) + 1, 1)
    ticks = start + step_ms * np.arange(count, dtype=np.float64)
    x = np.interp(ticks, play_ms, frames.x).astype(np.float32)
    y = np.interp(ticks, play_ms, frames.y).astype(np.float32)
    k1 = _keys_on_ticks(play_ms, frames.keys & KEY1_BITS != 0, start, step_ms, count, frames.x, frames.y, x, y)
    k2 = _keys_on_ticks(play_ms, frames.keys & KEY2_BITS != 0, start, step_ms, count, frames.x, frames.y, x, y)
    return ReplayGrid(ticks, x, y, k1, k2, float(step_ms), float(rate))


def key_holds(down: np.ndarray) -> list[tuple[int, int]]:
    """[press, release) sample indices of every hold of one key (bool [T]); a hold still down at the end
    releases at T."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], down, [False]]).astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _keys_on_ticks(
    time_ms: np.ndarray,
    down: np.ndarray,
    start: float,
    step_ms: float,
    count: int,
    frame_x: np.ndarray,
    frame_y: np.ndarray,
    tick_x: np.ndarray,
    tick_y: np.ndarray,
) -> np.ndarray:
    """Each hold of a key moved onto ticks: press and release to their nearest ticks.

    Every hold keeps at least one tick, and holds stay at least one tick apart (a press that would touch the
    previous hold moves a tick later), so no press is lost or merged. The cursor at a press tick is set to
    where it was at the press (`tick_x`/`tick_y` are edited): a fast hand is up to half a step further on
    by the tick, which would move a click off its circle.
    """
    out = np.zeros(count, bool)
    end_ms = time_ms[-1] + step_ms
    previous_end = -1
    for p, r in key_holds(down):
        first = max(int(np.floor((time_ms[p] - start) / step_ms + 0.5)), previous_end + 1, 0)
        release_ms = time_ms[r] if r < len(time_ms) else end_ms
        stop = max(int(np.floor((release_ms - start) / step_ms + 0.5)), first + 1)
        if first >= count:
            break
        out[first:stop] = True
        tick_x[first], tick_y[first] = frame_x[p], frame_y[p]
        previous_end = stop
    return out


def grid_frames(grid: ReplayGrid) -> ReplayFrames:
    """Frames in song time from a grid (key 1 as M1|K1 and key 2 as M2|K2, as stable records keys)."""
    keys = np.where(grid.k1, KEY1_BITS, 0) | np.where(grid.k2, KEY2_BITS, 0)
    return ReplayFrames(
        time_ms=np.asarray(grid.time_ms, np.float64) * grid.rate,
        x=np.asarray(grid.x, np.float32),
        y=np.asarray(grid.y, np.float32),
        keys=keys.astype(np.int32),
    )


# ----------------------------------------------------------------------------------------------------------
# Writing


def write_replay(
    path: str | os.PathLike | None,
    *,
    beatmap_md5: str,
    player: str,
    mods: int,
    frames: ReplayFrames,
    judgement: Judgement,
    game_version: int = STABLE_GAME_VERSION,
    timestamp: datetime | None = None,
    rng_seed: int = 0,
) -> bytes:
    """Encode an osu!stable .osr (mode 0) and write it atomically to `path` (skipped when None); return the bytes.

    `frames` are in song time (`grid_frames` converts a grid); the judgement (play time, as
    `data.replay.gameplay.judge` returns it) gives the hit counts, max combo, score and life bar. osu! has no
    negative time without a negative delta, so frames before 1 ms collapse into one frame at 1 ms. The
    timestamp defaults to the Unix epoch so the same inputs give the same bytes.
    """
    md5 = beatmap_md5.lower()
    if len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
        raise ValueError(f"beatmap_md5 must be 32 hex digits, got {beatmap_md5!r}")
    if len(frames) == 0:
        raise ValueError("a replay needs at least one frame")
    rate = mods_rate(mods)
    body = _frames_text(frames) + f"{SEED_FRAME_DELTA}|0|0|{int(rng_seed)},"
    compressed = lzma.compress(
        body.encode("ascii"),
        format=lzma.FORMAT_ALONE,
        filters=[{"id": lzma.FILTER_LZMA1, "dict_size": LZMA_DICT_SIZE}],
    )
    counts = [
        judgement.count_300,
        judgement.count_100,
        judgement.count_50,
        judgement.count_geki,
        judgement.count_katu,
        judgement.count_miss,
    ]
    counts = [min(int(c), MAX_UINT16) for c in counts]
    max_combo = min(int(judgement.max_combo), MAX_UINT16)
    score = min(int(judgement.score), 2**31 - 1)
    replay_hash = hashlib.md5(f"{max_combo}osu{player}{md5}{score}{counts}{mods}".encode() + compressed).hexdigest()
    when = timestamp or datetime(1970, 1, 1, tzinfo=timezone.utc)
    ticks = DOTNET_TICKS_AT_UNIX_EPOCH + round(when.timestamp() * 10_000_000)
    data = b"".join(
        [
            struct.pack("<bi", MODE_STANDARD, int(game_version)),
            _osr_string(md5),
            _osr_string(player),
            _osr_string(replay_hash),
            struct.pack("<6H", *counts),
            struct.pack("<iH?i", score, max_combo, bool(judgement.perfect), int(mods)),
            _osr_string(_life_bar_text(judgement, rate)),
            struct.pack("<q", ticks),
            struct.pack("<i", len(compressed)),
            compressed,
            struct.pack("<q", 0),  # online score id: 0 for a replay never submitted
        ]
    )
    if path is not None:
        write_bytes_atomic(path, data)
    return data


def _frames_text(frames: ReplayFrames) -> str:
    """'delta|x|y|keys,' per frame; deltas are whole ms and may be 0 (stable records such frames too)."""
    t = np.round(np.asarray(frames.time_ms, np.float64))
    if not np.all(np.isfinite(t)) or not np.all(np.diff(t) >= 0):
        raise ValueError("frame times must be finite and ascending")
    # Frames before 1 ms: keep only the last one, moved to 1 ms.
    first = max(int(np.searchsorted(t, 1.0, side="left")) - 1, 0)
    t = t[first:].copy()
    t[0] = max(t[0], 1.0)
    deltas = np.diff(np.concatenate([[0.0], t])).astype(np.int64)
    xs, ys, keys = frames.x[first:], frames.y[first:], frames.keys[first:]
    rows = zip(deltas, xs, ys, keys, strict=True)
    return "".join(f"{d}|{_coordinate(x)}|{_coordinate(y)}|{int(k)}," for d, x, y, k in rows)


def _coordinate(value: float) -> str:
    text = f"{float(value):.{COORDINATE_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _life_bar_text(judgement: Judgement, rate: float) -> str:
    """'time|life,' samples every LIFE_BAR_STEP_MS of song time, life in [0, 1] as stable writes it."""
    times = np.asarray(judgement.life_time_ms, np.float64) * rate
    life = np.asarray(judgement.life, np.float64)
    if len(times) == 0:
        return ""
    samples = np.arange(times[0], times[-1] + LIFE_BAR_STEP_MS, LIFE_BAR_STEP_MS)
    at = np.clip(np.searchsorted(times, samples, side="right") - 1, 0, len(times) - 1)
    parts = []
    for t, v in zip(samples, life[at], strict=True):
        v = float(np.clip(v, 0.0, 1.0))
        parts.append(f"{int(round(t))}|{'1' if v == 1.0 else '0' if v == 0.0 else f'{v:.4g}'},")
    return "".join(parts)


def _osr_string(text: str) -> bytes:
    """An .osr string: 0x0b, ULEB128 byte length, UTF-8 bytes (0x0b 0x00 when empty)."""
    raw = text.encode("utf-8")
    out = bytearray([0x0B])
    n = len(raw)
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + raw
