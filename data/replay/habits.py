"""A player's habits, measured from a replay on the play-time grid against the map it plays.

Per tick, what the player did there that a map does not dictate: how early or late a press came for its
object, how far off its centre it landed, whether it took the other key than the press before, how much of
the gap to the next press the key stayed down, the cursor's tremor and whether it rested. A window's
descriptor is the mean of each habit over the window's ticks; the replay model is conditioned on the
descriptor of each training window's own play (data.replay_windows), and a player is asked for by the
median descriptor over their windows (or over any one replay's, for style by example).
"""

from __future__ import annotations

import warnings

import numpy as np

from data.errors import BadInputError
from data.position_io import POSITION_CENTER, POSITION_SCALE
from data.replay.mods import PlayBeatmap
from data.replay.osr import ReplayRecord, key_holds, to_grid
from data.replay_io import FEATURE_INDEX, MAX_LOOKAHEAD_MS, MS_PER_UNIT, active_span, map_features
from data.spans import window_starts

HABIT_NAMES = ("hit_error_ms", "aim_offset_radii", "alternation", "hold_share", "tremor_px", "rest_share")
NUM_HABITS = len(HABIT_NAMES)
ALTERNATION_GAP_MS = 250.0  # consecutive presses this close form a run in which a player may alternate
CHORD_MS = 20.0  # presses of both keys closer than this are one press
TREMOR_TICKS = 5  # tremor: distance from the centred running mean of this many ticks
REST_PX_PER_TICK = 0.5  # the cursor rests while it moves less than this in a tick (about 0.03 px/ms at 60 Hz)
_F = FEATURE_INDEX


def feature_px(features: np.ndarray, name: str, axis: int) -> np.ndarray:
    """A position feature column in osu! px."""
    return features[:, _F[name]].astype(np.float64) * POSITION_SCALE + POSITION_CENTER[axis]


def tick_habits(time_ms: np.ndarray, x: np.ndarray, y: np.ndarray, k1, k2, features: np.ndarray) -> np.ndarray:
    """[T, NUM_HABITS] float: each tick's habits (NaN where the tick says nothing of one, e.g. no press).

    `features` are data.replay_io.map_features of the same ticks; objects are read from them (the next object
    to hit, its time and head), so a cached grid needs no map file."""
    t = np.asarray(time_ms, np.float64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out = np.full((len(t), NUM_HABITS), np.nan)
    if len(t) < TREMOR_TICKS:
        return out
    col = {n: i for i, n in enumerate(HABIT_NAMES)}

    # Cursor texture, every tick.
    kernel = np.ones(TREMOR_TICKS) / TREMOR_TICKS
    pad = TREMOR_TICKS // 2
    mx = np.convolve(np.pad(x, pad, mode="edge"), kernel, mode="valid")
    my = np.convolve(np.pad(y, pad, mode="edge"), kernel, mode="valid")
    out[:, col["tremor_px"]] = np.hypot(x - mx, y - my)
    out[1:, col["rest_share"]] = np.hypot(np.diff(x), np.diff(y)) < REST_PX_PER_TICK

    press_tick, press_key, release_tick = presses(t, k1, k2)
    if not len(press_tick):
        return out
    press_t = t[press_tick]
    release_t = t[np.minimum(release_tick, len(t) - 1)]
    gap_next = np.diff(press_t, append=np.nan)
    out[press_tick, col["hold_share"]] = np.clip((release_t - press_t) / gap_next, 0.0, 1.0)
    gap_prev = np.diff(press_t, prepend=np.nan)
    alternated = np.concatenate([[np.nan], (np.diff(press_key) != 0).astype(np.float64)])
    run = gap_prev < ALTERNATION_GAP_MS
    out[press_tick[run], col["alternation"]] = alternated[run]

    radius = float(features[0, _F["radius"]]) * POSITION_SCALE
    if radius <= 0:
        return out
    hx, hy = feature_px(features, "next_x", 0), feature_px(features, "next_y", 1)
    for i, j, hit in match_presses(t, press_t, features):
        p = press_tick[j]
        out[p, col["hit_error_ms"]] = press_t[j] - hit
        out[p, col["aim_offset_radii"]] = np.hypot(x[p] - hx[i], y[p] - hy[i]) / radius
    return out


def presses(time_ms: np.ndarray, k1, k2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(press tick, key, release tick) of every press in time order; both keys within CHORD_MS are one press."""
    t = np.asarray(time_ms, np.float64)
    holds = sorted((p, key, r) for key, down in enumerate((k1, k2)) for p, r in key_holds(np.asarray(down, bool)))
    merged: list[tuple[int, int, int]] = []
    for p, key, r in holds:
        if merged and t[p] - t[merged[-1][0]] < CHORD_MS:
            continue
        merged.append((p, key, r))
    columns = np.array(merged, np.int64).reshape(-1, 3)
    return columns[:, 0], columns[:, 1], columns[:, 2]


def match_presses(time_ms: np.ndarray, press_t: np.ndarray, features: np.ndarray) -> list[tuple[int, int, float]]:
    """(tick first naming the object, press index, the object's hit time) for each object a press hit: objects
    in time order each take the first unused press within their 50 window. Objects are read from the
    features (each tick names the next object's hit time and head); spinners are not aimed."""
    t = np.asarray(time_ms, np.float64)
    f = features
    until = f[:, _F["next_time_s"]].astype(np.float64) * MS_PER_UNIT
    known = (until < MAX_LOOKAHEAD_MS - 1.0) & (f[:, _F["next_is_spinner"]] < 0.5)
    hit = np.round(t + until)
    window_50 = float(f[0, _F["window_50_s"]]) * MS_PER_UNIT if len(f) else 0.0
    _, first = np.unique(np.where(known, hit, np.nan), return_index=True)
    first = first[known[first]]
    used = np.zeros(len(press_t), bool)
    matched = []
    for i in first:
        candidates = np.flatnonzero(~used & (np.abs(press_t - hit[i]) <= window_50))
        if len(candidates) == 0:
            continue
        j = int(candidates[0])
        used[j] = True
        matched.append((int(i), j, float(hit[i])))
    return matched


def replay_descriptor(record: ReplayRecord, play: PlayBeatmap, seq_len: int) -> np.ndarray:
    """A human replay's raw descriptor against its modded map: the median over its windows of `seq_len` ticks,
    measured as training measures each window (data.replay_windows)."""
    grid = to_grid(record)
    features = map_features(play, grid.time_ms)
    first, last = active_span(features)
    if last <= first:
        raise BadInputError(record.path, "the replay never comes near an object: no habits to measure")
    keep = slice(first, last)
    ticks = tick_habits(grid.time_ms[keep], grid.x[keep], grid.y[keep], grid.k1[keep], grid.k2[keep], features[keep])
    starts = window_starts(last - first, seq_len, seq_len // 2)
    return median_descriptor(windows_descriptor(ticks, starts, seq_len))


def window_descriptor(habits: np.ndarray) -> np.ndarray:
    """[NUM_HABITS] mean of each habit over some ticks' habits (NaN where none of them says anything)."""
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(habits).sum(0)
        sums = np.nansum(habits, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def windows_descriptor(habits: np.ndarray, starts, seq_len: int) -> np.ndarray:
    """[len(starts), NUM_HABITS]: the descriptor of each window of `seq_len` ticks from `starts`."""
    return np.array([window_descriptor(habits[s : s + seq_len]) for s in starts], np.float64).reshape(-1, NUM_HABITS)


def median_descriptor(descriptors: np.ndarray) -> np.ndarray:
    """[NUM_HABITS] median over descriptors [W, NUM_HABITS], each habit over the ones that measured it."""
    descriptors = np.asarray(descriptors, np.float64).reshape(-1, NUM_HABITS)
    if not len(descriptors):
        return np.full(NUM_HABITS, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN habits stay NaN
        return np.nanmedian(descriptors, axis=0)


def habit_stats(descriptors: np.ndarray) -> dict[str, list[float]]:
    """Centre (median) and scale (standard deviation) of raw window descriptors [W, NUM_HABITS], the
    normalisation `normalize_habits` applies (stored in replay checkpoints)."""
    center = np.nan_to_num(median_descriptor(descriptors))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a habit no window measured: scale 1
        scale = np.nan_to_num(np.nanstd(descriptors, axis=0), nan=1.0) if len(descriptors) else np.ones(NUM_HABITS)
    return {"center": [float(v) for v in center], "scale": [float(v) if v > 0 else 1.0 for v in scale]}


def normalize_habits(descriptor: np.ndarray, stats: dict[str, list[float]]) -> np.ndarray:
    """A raw descriptor [..., NUM_HABITS] as the network reads it: unit scale, an unmeasured habit at 0."""
    out = (np.asarray(descriptor, np.float64) - stats["center"]) / stats["scale"]
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def describe(descriptor: dict[str, float]) -> str:
    """A player's raw descriptor (habit name -> value) in words, e.g. for --list-players."""
    d = descriptor
    words = []
    if np.isfinite(d.get("hit_error_ms", np.nan)):
        e = d["hit_error_ms"]
        words.append(f"hits {abs(e):.0f} ms {'early' if e < 0 else 'late'}" if abs(e) >= 1 else "hits on time")
    if np.isfinite(d.get("alternation", np.nan)):
        a = d["alternation"]
        kind = "alternate" if a >= 0.6 else "single-tap" if a <= 0.25 else "mix alternating and single taps"
        words.append(f"{kind} in streams ({max(a, 0.0):.0%} alternate)")
    if np.isfinite(d.get("aim_offset_radii", np.nan)):
        words.append(f"aim {d['aim_offset_radii']:.2f} radii off centre")
    if np.isfinite(d.get("hold_share", np.nan)):
        words.append(f"hold keys {d['hold_share']:.0%} of the gap")
    if np.isfinite(d.get("tremor_px", np.nan)):
        words.append(f"tremor {d['tremor_px']:.1f} px")
    if np.isfinite(d.get("rest_share", np.nan)):
        words.append(f"cursor at rest {d['rest_share']:.0%} of the time")
    return ", ".join(words)
