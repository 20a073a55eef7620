"""What the replay evaluation measures of one replay: circleguard's judgments (KeylessCircleguard with the beatmap
file), our full judge, key presses, holds and cursor speed; the human band; pairing by map MD5; the auto path.
Used by testing/replay_eval.py."""

from __future__ import annotations

import hashlib
import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from circleguard import KeylessCircleguard, ReplayPath
from slider import Beatmap as SliderBeatmap

from data.beatmap.osu_reader import read_beatmap
from data.errors import BadInputError
from data.replay.gameplay import judge, osu_accuracy, stack_offsets
from data.replay.mods import AP, AT, RX, apply_mods
from data.replay.osr import KEY1_BITS, KEY2_BITS, ReplayFrames, key_holds, read_replay, write_replay
from data.replay_io import LEAD_IN_MS, TAIL_MS

# The human band (issue 4): a replay is human-like when every figure sits inside it.
BAND = {
    "accuracy": (0.90, 1.0),
    "unstable_rate": (60.0, 200.0),
    "snaps": (0, 1),
    "frame_time_ms": (11.0, 18.0),
    "presses_per_object": (0.6, 1.4),
}
BAND_MIN_OBJECTS = 100  # short test maps say little about a player
QUANTILES = np.linspace(0.0, 1.0, 101)  # distributions are kept as these quantiles (W1 from quantile functions)
SPEED_GAP_MS = 100.0  # frames further apart than this (pauses, breaks in recording) give no speed sample
AUTO_HOLD_MS = 40.0  # how long the auto path holds a key on a circle (shorter when the next object is closer)
AUTO_SPIN_RPS = 5.0  # rotations per play second on spinners (judge needs a real spin)
AUTO_SPIN_RADIUS_PX = 50.0
AUTO_STEP_MS = 1000.0 / 60.0

ROW_COLUMNS = [
    "group",
    "replay",
    "map",
    "player",
    "mods",
    "objects",
    "cg_300",
    "cg_100",
    "cg_50",
    "cg_miss",
    "accuracy",
    "unstable_rate",
    "snaps",
    "frame_time_ms",
    "judge_300",
    "judge_100",
    "judge_50",
    "judge_miss",
    "judge_accuracy",
    "judge_max_combo",
    "header_300",
    "header_100",
    "header_50",
    "header_miss",
    "judge_matches_header",
    "presses",
    "presses_per_object",
    "hold_median_ms",
    "hold_p90_ms",
    "speed_median_px_per_ms",
    "speed_p95_px_per_ms",
    "speed_max_px_per_ms",
    "hit_error_mean_ms",
    "in_band",
    "problem",
]


# ---------------------------------------------------------------- pure statistics


def key_presses(frames: ReplayFrames, rate: float) -> tuple[int, np.ndarray]:
    """(presses, hold durations in play ms) over both keys; a press is a key's rising edge."""
    presses = 0
    holds: list[float] = []
    time_ms = np.asarray(frames.time_ms, np.float64) / rate
    for bits in (KEY1_BITS, KEY2_BITS):
        spans = key_holds((np.asarray(frames.keys) & bits) != 0)
        presses += len(spans)
        for start, stop in spans:
            stop = min(stop, len(time_ms) - 1)  # a key still down at the end is held to the last frame
            holds.append(time_ms[stop] - time_ms[start])
    return presses, np.asarray(holds, np.float64)


def cursor_speeds(frames: ReplayFrames, rate: float) -> np.ndarray:
    """Cursor speed between consecutive frames, px per play ms (zero-length and long gaps left out)."""
    t = np.asarray(frames.time_ms, np.float64) / rate
    dt = np.diff(t)
    step = np.hypot(np.diff(np.asarray(frames.x, np.float64)), np.diff(np.asarray(frames.y, np.float64)))
    keep = (dt > 0) & (dt <= SPEED_GAP_MS / rate)
    return step[keep] / dt[keep]


def median_frame_time_ms(frames: ReplayFrames, rate: float) -> float:
    """Median positive frame interval in play ms."""
    dt = np.diff(np.asarray(frames.time_ms, np.float64)) / rate
    dt = dt[dt > 0]
    return float(np.median(dt)) if len(dt) else math.nan


def quantiles(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return np.quantile(values, QUANTILES) if len(values) else np.full(len(QUANTILES), np.nan)


def in_band(row: dict) -> bool:
    """Whether every banded figure of a replay row lies inside BAND (a missing figure is outside)."""
    for key, (low, high) in BAND.items():
        value = row.get(key)
        if value is None or not np.isfinite(value) or not low <= value <= high:
            return False
    return True


def style_distance(a: dict, b: dict) -> float:
    """Distance between two replays' styles: W1 of cursor speeds and of hit errors, each over its pooled scale.

    `a` and `b` carry "speed_q" and "hit_error_q" (quantile functions); W1 is the mean gap between them.
    NaN when either replay lacks one of the distributions (no frames, or no map to take hit errors from).
    """
    parts = [np.asarray(d[k], np.float64) for d in (a, b) for k in ("speed_q", "hit_error_q")]
    if not all(np.isfinite(p).all() for p in parts):
        return math.nan
    speed_a, errors_a, speed_b, errors_b = parts
    speed_scale = max(float(np.mean(np.r_[speed_a, speed_b])), 1e-3)  # mean, not median: many frames sit still
    error_scale = max(float(np.std(np.r_[errors_a, errors_b])), 1.0)
    speed = float(np.mean(np.abs(speed_a - speed_b))) / speed_scale
    return speed + float(np.mean(np.abs(errors_a - errors_b))) / error_scale


def flagged_kind(mods: int) -> str:
    """Which kind of non-human play a flagged replay is, from its header mods."""
    if mods & RX:
        return "relax"
    if mods & AP:
        return "autopilot"
    if mods & AT:
        return "autoplay"
    return "copies"  # cheat-test copies of human plays (stolen, time-warped, edited)


# ---------------------------------------------------------------- judging one replay


def _circleguard():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KeylessCircleguard()


def _circleguard_figures(cg, osr_path: Path, osu_path: Path | None) -> dict:
    """circleguard's judgments, UR, snaps and frame time; NaN where it cannot judge (no map, map it cannot read)."""
    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replay = ReplayPath(str(osr_path))
        cg.load(replay)
        try:
            out["frame_time_ms"] = float(cg.frametime(replay))  # real time: DT/HT converted (cv=True)
        except Exception:
            out["frame_time_ms"] = math.nan
        if osu_path is None:
            return out
        try:
            beatmap = SliderBeatmap.from_path(str(osu_path))
            kinds = [j.type.name for j in cg.judgments(replay, beatmap=beatmap)]
            out["cg_300"], out["cg_100"] = kinds.count("Hit300"), kinds.count("Hit100")
            out["cg_50"], out["cg_miss"] = kinds.count("Hit50"), kinds.count("Miss")
            out["accuracy"] = osu_accuracy(out["cg_300"], out["cg_100"], out["cg_50"], len(kinds))
            out["unstable_rate"] = float(cg.ur(replay, beatmap=beatmap))
            out["snaps"] = len(list(cg.snaps(replay, beatmap=beatmap)))
        except Exception as err:  # slider's faults (Catmull on numpy 2, maps without [Metadata])
            out["problem"] = f"circleguard cannot judge on this map: {type(err).__name__}: {err}"[:200]
    return out


def judge_replay(osr_path: Path, osu_path: Path | None, cg=None, group: str = "") -> tuple[dict, dict]:
    """(row, distributions) of one replay; the map may be None (then only cursor and key figures)."""
    record = read_replay(osr_path)
    rate = record.rate
    row: dict = {c: math.nan for c in ROW_COLUMNS}
    row.update(group=group, replay=str(osr_path), map=str(osu_path or ""), player=record.player, mods=record.mods)
    row.update(header_300=record.count_300, header_100=record.count_100, header_50=record.count_50)
    row.update(header_miss=record.count_miss, problem="")
    presses, holds = key_presses(record.frames, rate)
    speeds = cursor_speeds(record.frames, rate)
    row["presses"] = presses
    row["hold_median_ms"] = float(np.median(holds)) if len(holds) else math.nan
    row["hold_p90_ms"] = float(np.quantile(holds, 0.9)) if len(holds) else math.nan
    if len(speeds):
        row["speed_median_px_per_ms"] = float(np.median(speeds))
        row["speed_p95_px_per_ms"] = float(np.quantile(speeds, 0.95))
        row["speed_max_px_per_ms"] = float(speeds.max())
    row.update(_circleguard_figures(cg or _circleguard(), osr_path, osu_path))
    if not np.isfinite(row["frame_time_ms"]):
        row["frame_time_ms"] = median_frame_time_ms(record.frames, rate)
    hit_errors = np.zeros(0)
    if osu_path is not None:
        beatmap = read_beatmap(osu_path)
        play = apply_mods(beatmap, record.mods)
        judgement = judge(play, record)
        row["objects"] = len(play.hit_objects)
        row["presses_per_object"] = presses / max(len(play.hit_objects), 1)
        row.update(judge_300=judgement.count_300, judge_100=judgement.count_100, judge_50=judgement.count_50)
        row.update(judge_miss=judgement.count_miss, judge_max_combo=judgement.max_combo)
        row["judge_accuracy"] = judgement.accuracy
        row["judge_matches_header"] = (
            judgement.count_300,
            judgement.count_100,
            judgement.count_50,
            judgement.count_miss,
        ) == (record.count_300, record.count_100, record.count_50, record.count_miss)
        hit_errors = judgement.hit_error_ms[np.isfinite(judgement.hit_error_ms)].astype(np.float64)
        row["hit_error_mean_ms"] = float(hit_errors.mean()) if len(hit_errors) else math.nan
        if not np.isfinite(row["unstable_rate"]):  # circleguard could not read the map: our judge's UR
            row["unstable_rate"] = judgement.unstable_rate
    row["in_band"] = in_band(row)
    distributions = {"speed_q": quantiles(speeds), "hit_error_q": quantiles(hit_errors), "hit_errors": hit_errors}
    return row, distributions


def evaluate_replays(pairs: Sequence[tuple[str | Path, str | Path | None]], group: str = "") -> pd.DataFrame:
    """One row per (osr path, osu path or None) pair (columns ROW_COLUMNS); unreadable replays get a problem.

    The frame's attrs["distributions"] maps each replay path to its cursor-speed and hit-error quantiles
    (and raw hit errors) for style distances and plots.
    """
    cg = _circleguard()
    rows, distributions = [], {}
    for osr, osu in pairs:
        osr_path, osu_path = Path(osr), Path(osu) if osu else None
        try:
            row, dist = judge_replay(osr_path, osu_path, cg, group)
        except BadInputError as err:
            print(f"skipped {err}", file=sys.stderr)
            row = {c: math.nan for c in ROW_COLUMNS}
            row.update(group=group, replay=str(osr_path), map=str(osu_path or ""), problem=err.problem, in_band=False)
            dist = None
        rows.append(row)
        if dist is not None:
            distributions[str(osr_path)] = dist
    table = pd.DataFrame(rows, columns=ROW_COLUMNS)
    table.attrs["distributions"] = distributions
    return table


# ---------------------------------------------------------------- pairing and the auto path


def maps_by_md5(folders: Iterable[Path]) -> dict[str, Path]:
    """MD5 of the file's bytes -> .osu path, for every .osu under the folders (the way osu! finds a map)."""
    found = {}
    for folder in folders:
        paths = [folder] if folder.is_file() else sorted(folder.rglob("*.osu"))
        for path in paths:
            found.setdefault(hashlib.md5(path.read_bytes()).hexdigest(), path)
    return found


def pair_replays(replays: Iterable[Path], maps: dict[str, Path]) -> list[tuple[Path, Path | None]]:
    """(replay, its map or None) for every .osr under the given files/folders, sorted by path."""
    paths: list[Path] = []
    for item in replays:
        paths.extend(sorted(item.rglob("*.osr")) if item.is_dir() else [item])
    pairs = []
    for path in paths:
        try:
            md5 = read_replay(path).beatmap_md5
        except BadInputError:
            md5 = ""
        pairs.append((path, maps.get(md5)))
    return pairs


def auto_frames(play) -> ReplayFrames:
    """The plain 'auto' path of a map under mods: straight lines between objects, every press exactly on time.

    Frames on a 60 Hz play-time grid plus one at every press and release; the cursor follows slider balls and
    circles spinners; keys alternate and hold AUTO_HOLD_MS on circles (less before a close next object).
    """
    objects = play.hit_objects
    offsets = stack_offsets(play)
    keys_down: list[tuple[float, float, int]] = []  # (start, stop, bits), play time
    for i, o in enumerate(objects):
        gap = objects[i + 1].time_ms - o.time_ms if i + 1 < len(objects) else AUTO_HOLD_MS * 2
        stop = max(o.end_time_ms, o.time_ms + min(AUTO_HOLD_MS, 0.5 * gap))
        keys_down.append((o.time_ms, stop, KEY1_BITS if i % 2 == 0 else KEY2_BITS))
    first, last = objects[0].time_ms - LEAD_IN_MS, objects[-1].end_time_ms + TAIL_MS
    times = np.arange(first, last, AUTO_STEP_MS)
    times = np.unique(np.concatenate([times, [k[0] for k in keys_down], [k[1] for k in keys_down]]))

    def anchor(i: int, at_end: bool) -> tuple[float, float]:
        o = objects[i]
        x, y = o.position_at(o.end_time_ms if at_end else o.time_ms)
        return x + offsets[i, 0], y + offsets[i, 1]

    xs, ys = np.empty(len(times)), np.empty(len(times))
    starts = np.array([o.time_ms for o in objects])
    for k, t in enumerate(times):
        i = int(np.searchsorted(starts, t, side="right")) - 1  # the latest object begun by t
        if i < 0:
            xs[k], ys[k] = anchor(0, False)
            continue
        o = objects[i]
        if t <= o.end_time_ms:
            if o.kind == "spinner":
                angle = 2 * math.pi * AUTO_SPIN_RPS * (t - o.time_ms) / 1000.0
                xs[k] = o.x + AUTO_SPIN_RADIUS_PX * math.cos(angle)
                ys[k] = o.y + AUTO_SPIN_RADIUS_PX * math.sin(angle)
            else:
                x, y = o.position_at(t)
                xs[k], ys[k] = x + offsets[i, 0], y + offsets[i, 1]
            continue
        if i + 1 >= len(objects):
            xs[k], ys[k] = anchor(i, True)
            continue
        (x0, y0), (x1, y1) = anchor(i, True), anchor(i + 1, False)
        f = (t - o.end_time_ms) / max(objects[i + 1].time_ms - o.end_time_ms, 1e-9)
        xs[k], ys[k] = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
    keys = np.zeros(len(times), np.int32)
    for start, stop, bits in keys_down:
        keys[(times >= start) & (times < stop)] |= bits
    return ReplayFrames(time_ms=times * play.rate, x=xs.astype(np.float32), y=ys.astype(np.float32), keys=keys)


def write_auto_replay(osu_path: Path, out_path: Path, mods: int = 0) -> Path:
    """Build, judge and write the auto replay of a map (.osr naming the map's MD5)."""
    beatmap = read_beatmap(osu_path)
    play = apply_mods(beatmap, mods)
    frames = auto_frames(play)
    judgement = judge(play, frames)
    write_replay(out_path, beatmap_md5=beatmap.md5, player="auto", mods=mods, frames=frames, judgement=judgement)
    return out_path
