"""What the replay network sees: per-tick map features, the reference cursor path, and the diffused channels.

Map features are absolute and normalized like map positions (data.position_io); none depends on the cursor, so
a model that generates the cursor never sees its own target. Positions are stacked and in the played field (HR
flipped), times are play time (DT/HT applied), so cursor and map share one clock and one field.

The network does not have to learn where the objects are: `reference_path` is a plain 'auto' path through the
objects, a minimum-jerk reach (or a straight line) from one object's end to the next one's head, on the slider
ball while a slider lasts, at the centre during spinners. The model diffuses the human's deviation from it and
the two keys as +-1 channels that are thresholded after sampling. Training windows (data.replay_windows) and
sampling (pipeline.play) both build their inputs here.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from data.position_io import POSITION_CENTER, POSITION_SCALE
from data.replay.gameplay import stack_offsets, stacked_positions
from data.replay.mods import PlayBeatmap
from data.replay.osr import key_holds

# A replay starts this long before the first object (play time) and ends this long after the last one; training
# windows reach this far beyond the objects too.
LEAD_IN_MS = 1000.0
TAIL_MS = 500.0
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

# The cursor channels are (cursor - reference) / POSITION_SCALE * OFFSET_GAIN, clipped to [-1, 1] (the
# sampler's x0 range): the clip is an offset of POSITION_SCALE / OFFSET_GAIN px from the reference path.
OFFSET_GAIN = 2.0
KEY_DOWN, KEY_UP = 1.0, -1.0
CHANNELS = ("dx", "dy", "key1", "key2")
NUM_CHANNELS = len(CHANNELS)
# Velocity of the reference path per tick is tiny in normalized units; this brings it near unit scale.
VELOCITY_GAIN = 10.0
# Decays that turn times to and since objects into sharp "about now" signals (seconds).
TIME_DECAYS_S = (0.03, 0.1, 0.3)
# Key holds shorter than this many ticks are lengthened to it and gaps that short are filled. A one-tick gap is
# sampler flicker (0.3% of human gaps at 60 Hz); a one-tick hold is most often a tap the sampler committed to for
# a single tick, and dropping it missed its object (Tower of Heaven, 1500-step checkpoint: 86 -> 60 misses);
# human holds are rarely that short (1.1%), so it is lengthened to two ticks rather than kept as it is.
MIN_KEY_TICKS = 2
# A reversal sharper than this (degrees short of straight back) with both steps longer than HAIRPIN_MIN_PX is
# a sampler artefact (see unhairpin); circleguard's snap test is 10 degrees and 8 px.
HAIRPIN_DEG = 30.0
HAIRPIN_MIN_PX = 6.0
HAIRPIN_PASSES = 4
# Still zone of `settle`: a hand rests where the path moves less than SETTLE_SPEED_PX per tick over SETTLE_TICKS
# ticks, and the cursor stays within SETTLE_WIDTH_PX of the network's path. Chosen so the written replays rest
# about as often as the humans' on the same held-out maps (docs/decisions.md).
SETTLE_TICKS = 8
SETTLE_SPEED_PX = 3.0
SETTLE_WIDTH_PX = 12.0
ReferenceKind = Literal["linear", "minimum_jerk"]
REFERENCE_KINDS: tuple[str, ...] = get_args(ReferenceKind)
DEFAULT_REFERENCE: ReferenceKind = "minimum_jerk"
LEAVE_SLIDER_S = 0.1  # how early a player leaves a slider whose end the next object overlaps

_F = FEATURE_INDEX
# Map features the model sees exactly as the replay cache stores them.
PASSTHROUGH_FEATURES = (
    "next_time_s",
    "next2_time_s",
    "prev_time_s",
    "active_left_s",
    "next_is_circle",
    "next_is_slider",
    "next_is_spinner",
    "next_new_combo",
    "slider_active",
    "spinner_active",
    "radius",
    "preempt_s",
    "window_300_s",
    "window_50_s",
)
# Names of the model's per-tick conditioning columns (`model_features`), in order.
MODEL_FEATURE_NAMES = (
    "ref_x",
    "ref_y",
    "ref_vx",
    "ref_vy",
    "next_dx",  # next object's head - reference
    "next_dy",
    "next2_dx",
    "next2_dy",
    "prev_dx",  # last object's end - reference
    "prev_dy",
    "ball_dx",  # slider ball - reference (0 when no slider is active)
    "ball_dy",
    *PASSTHROUGH_FEATURES,
    *(f"next_soon_{d}" for d in TIME_DECAYS_S),
    *(f"prev_recent_{d}" for d in TIME_DECAYS_S),
)
NUM_MODEL_FEATURES = len(MODEL_FEATURE_NAMES)
# Columns that are x or y components of a position or offset: a mirror flips their sign.
_X_COLUMNS = [MODEL_FEATURE_NAMES.index(n) for n in MODEL_FEATURE_NAMES if n.endswith(("_x", "_dx", "_vx"))]
_Y_COLUMNS = [MODEL_FEATURE_NAMES.index(n) for n in MODEL_FEATURE_NAMES if n.endswith(("_y", "_dy", "_vy"))]


def _normalize(px: np.ndarray, axis: int) -> np.ndarray:
    return ((px - POSITION_CENTER[axis]) / POSITION_SCALE).astype(np.float32)


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


# ----------------------------------------------------------------------------------------------------------
# Reference path, model inputs and targets


def minimum_jerk(share: np.ndarray) -> np.ndarray:
    """Position share along a point-to-point reach at time share s: 10s^3 - 15s^4 + 6s^5 (Flash & Hogan 1985,
    doi:10.1523/JNEUROSCI.05-07-01688.1985). Hands start and stop at rest, so the path has no full-speed
    reversal on an object (a replay analyser counts those as snaps) and rests near the object at its hit."""
    return share**3 * (10 - 15 * share + 6 * share**2)


def reference_path(features: np.ndarray, kind: ReferenceKind = DEFAULT_REFERENCE) -> np.ndarray:
    """The 'auto' cursor [T, 2] (normalized) implied by replay_dataset.map_features [T, 22].

    Between objects it goes from one object's end to the next one's head, at constant speed ('linear') or
    along a minimum-jerk reach ('minimum_jerk')."""
    if kind not in REFERENCE_KINDS:
        raise ValueError(f"unknown reference path {kind!r}, expected one of {REFERENCE_KINDS}")
    f = features
    prev = f[:, [_F["prev_x"], _F["prev_y"]]]
    nxt = f[:, [_F["next_x"], _F["next_y"]]]
    since = f[:, _F["prev_time_s"]].astype(np.float64)
    until = f[:, _F["next_time_s"]].astype(np.float64)
    total = since + until
    share = np.where(total > 0, since / np.where(total > 0, total, 1.0), 1.0)[:, None]
    if kind == "minimum_jerk":
        share = minimum_jerk(share)
    path = prev + (nxt - prev) * share
    sliding = f[:, _F["slider_active"]] > 0
    path[sliding] = f[sliding][:, [_F["ball_x"], _F["ball_y"]]]
    # Maps put the next object on (or just before) a slider's end: players leave the slider early for it.
    leaving = sliding & (until <= f[:, _F["active_left_s"]])
    catch = np.clip(1.0 - until / LEAVE_SLIDER_S, 0.0, 1.0)[:, None]
    path[leaving] += ((nxt - path) * catch)[leaving]
    spinning = f[:, _F["spinner_active"]] > 0
    path[spinning] = 0.0  # the playfield centre
    return path.astype(np.float32)


def model_features(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-tick conditioning [T, NUM_MODEL_FEATURES]: positions relative to the reference path, times, flags."""
    f = features
    out = np.zeros((len(f), NUM_MODEL_FEATURES), np.float32)
    col = {n: i for i, n in enumerate(MODEL_FEATURE_NAMES)}
    out[:, col["ref_x"]], out[:, col["ref_y"]] = reference[:, 0], reference[:, 1]
    if len(f) > 1:
        velocity = np.diff(reference, axis=0, prepend=reference[:1]) * VELOCITY_GAIN
        out[:, col["ref_vx"]], out[:, col["ref_vy"]] = velocity[:, 0], velocity[:, 1]
    for name, (x, y) in {
        "next": ("next_x", "next_y"),
        "next2": ("next2_x", "next2_y"),
        "prev": ("prev_x", "prev_y"),
        "ball": ("ball_x", "ball_y"),
    }.items():
        out[:, col[f"{name}_dx"]] = f[:, _F[x]] - reference[:, 0]
        out[:, col[f"{name}_dy"]] = f[:, _F[y]] - reference[:, 1]
    no_ball = f[:, _F["slider_active"]] <= 0
    out[no_ball, col["ball_dx"]] = out[no_ball, col["ball_dy"]] = 0.0
    for name in PASSTHROUGH_FEATURES:
        out[:, col[name]] = f[:, _F[name]]
    for d in TIME_DECAYS_S:
        out[:, col[f"next_soon_{d}"]] = np.exp(-f[:, _F["next_time_s"]] / d)
        out[:, col[f"prev_recent_{d}"]] = np.exp(-f[:, _F["prev_time_s"]] / d)
    return out


def encode_targets(x_px: np.ndarray, y_px: np.ndarray, k1, k2, reference: np.ndarray) -> np.ndarray:
    """Cursor in px and keys -> the diffused channels [T, 4] (see OFFSET_GAIN)."""
    cursor = np.stack([(x_px - POSITION_CENTER[0]), (y_px - POSITION_CENTER[1])], axis=1) / POSITION_SCALE
    offset = np.clip((cursor - reference) * OFFSET_GAIN, -1.0, 1.0)
    keys = np.stack([np.where(np.asarray(k, bool), KEY_DOWN, KEY_UP) for k in (k1, k2)], axis=1)
    return np.concatenate([offset, keys], axis=1).astype(np.float32)


def decode_targets(x0: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of encode_targets: (x px, y px, key1, key2) from sampled channels [T, 4]."""
    cursor = reference + despike(np.asarray(x0[:, :2], np.float64)) / OFFSET_GAIN
    x = (cursor[:, 0] * POSITION_SCALE + POSITION_CENTER[0]).astype(np.float32)
    y = (cursor[:, 1] * POSITION_SCALE + POSITION_CENTER[1]).astype(np.float32)
    threshold = (KEY_DOWN + KEY_UP) / 2
    return x, y, clean_keys(x0[:, 2] > threshold), clean_keys(x0[:, 3] > threshold)


def despike(offset: np.ndarray) -> np.ndarray:
    """Running median of 3 ticks per channel: removes one-tick back-and-forth spikes of the sampler (a replay
    analyser counts them as aim-correction snaps), keeps steady motion and steps as they are."""
    if len(offset) < 3:
        return offset
    padded = np.concatenate([offset[:1], offset, offset[-1:]])
    return np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)


def unhairpin(cursor_px: np.ndarray, passes: int = HAIRPIN_PASSES) -> np.ndarray:
    """Move the middle of every full-speed reversal (both steps over HAIRPIN_MIN_PX, turning back by more than
    180 - HAIRPIN_DEG degrees) to the midpoint of its neighbours. A hand cannot reverse within one tick; the
    sampler sometimes does, over two ticks, where despike's 3-tick median leaves it, and a replay analyser
    counts it as an aim-correction snap. Returns a copy [T, 2]."""
    out = np.array(cursor_px, np.float64)
    for _ in range(passes):
        ab, bc = out[1:-1] - out[:-2], out[2:] - out[1:-1]
        lengths = np.linalg.norm(ab, axis=1) * np.linalg.norm(bc, axis=1)
        cos_turn = np.einsum("ij,ij->i", ab, bc) / np.maximum(lengths, 1e-9)
        hairpin = (np.minimum(np.linalg.norm(ab, axis=1), np.linalg.norm(bc, axis=1)) > HAIRPIN_MIN_PX) & (
            cos_turn < -np.cos(np.radians(HAIRPIN_DEG))
        )
        if not hairpin.any():
            break
        middle = np.flatnonzero(hairpin) + 1
        out[middle] = (out[middle - 1] + out[middle + 1]) / 2
    return out


def settle(cursor_px: np.ndarray, width_px: float = SETTLE_WIDTH_PX, speed_px: float = SETTLE_SPEED_PX) -> np.ndarray:
    """Let the cursor rest where the path barely moves: a still zone of up to `width_px` around the cursor,
    full where the path's displacement over SETTLE_TICKS ticks is nil and fading to none at `speed_px` px per
    tick, so the cursor stays put until the path leaves the zone and then trails it by the zone's width.
    The network draws human speed but jitters where a hand would rest (a mouse that does not move reports
    the same position). Returns a copy [T, 2]; `width_px` 0 leaves the path as it is."""
    path = np.array(cursor_px, np.float64)
    if width_px <= 0 or speed_px <= 0 or len(path) < 2:
        return path
    half = SETTLE_TICKS // 2
    padded = np.pad(path, ((half, half), (0, 0)), mode="edge")
    speed = np.linalg.norm(padded[2 * half :] - padded[: -2 * half], axis=1) / (2 * half)
    zone = (width_px * np.clip(1.0 - speed / speed_px, 0.0, 1.0)).tolist()
    xs, ys = path[:, 0].tolist(), path[:, 1].tolist()
    out_x, out_y = [xs[0]], [ys[0]]
    for x, y, w in zip(xs[1:], ys[1:], zone[1:], strict=True):  # sequential: each tick starts where the last stayed
        dx, dy = x - out_x[-1], y - out_y[-1]
        d = math.hypot(dx, dy)
        if d <= w:
            out_x.append(out_x[-1])
            out_y.append(out_y[-1])
        else:
            out_x.append(x - dx / d * w)
            out_y.append(y - dy / d * w)
    return np.stack([out_x, out_y], axis=1)


def hold_taps(k1: np.ndarray, k2: np.ndarray, features: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Keys (bool [T] each) whose taps (holds over no slider or spinner tick) are scaled by one factor so that
    presses are held `share` of the gap to the next press on average, slider holds counted as
    data.replay.habits measures them (at most the whole gap). Each tap keeps its length relative to the
    others', ends MIN_KEY_TICKS before the next press (either key stays free for it) and lasts at least that
    long; slider and spinner holds and the last press stay as they are."""
    active = (features[:, _F["slider_active"]] > 0) | (features[:, _F["spinner_active"]] > 0)
    holds = sorted((p, r, key) for key, down in enumerate((k1, k2)) for p, r in key_holds(np.asarray(down, bool)))
    presses = np.array([p for p, _, _ in holds], np.int64)
    following = np.searchsorted(presses, presses, side="right")  # index of the next later press (presses sorted)
    taps, kept = [], []  # kept: the share of the gap of each press that is not a tap
    for (p, r, key), j in zip(holds, following, strict=True):
        if j == len(presses):
            continue
        n = int(presses[j])
        if active[p:r].any():
            kept.append(min((r - p) / (n - p), 1.0))
        else:
            taps.append((p, r, key, n))
    out = [np.array(k1, bool), np.array(k2, bool)]
    if not taps:
        return out[0], out[1]
    length, gap = np.array([[r - p, n - p] for p, r, _, n in taps], np.float64).T
    longest = np.maximum(gap - MIN_KEY_TICKS, MIN_KEY_TICKS)

    def scaled(factor: float) -> np.ndarray:
        return np.clip(np.round(length * factor), MIN_KEY_TICKS, longest)

    def mean_share(factor: float) -> float:
        return (np.sum(np.minimum(scaled(factor) / gap, 1.0)) + sum(kept)) / (len(taps) + len(kept))

    low, high = 0.0, 16.0  # the mean share grows with the factor: bisect for the asked one
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if mean_share(middle) < share else (low, middle)
    for (p, r, key, _), ticks in zip(taps, scaled(high).astype(int), strict=True):
        out[key][p:r] = False
        out[key][p : p + ticks] = True
    return out[0], out[1]


def clean_keys(down: np.ndarray, min_ticks: int = MIN_KEY_TICKS) -> np.ndarray:
    """Fill gaps shorter than `min_ticks` ticks between holds, then lengthen holds shorter than that (bool [T])."""
    out = np.asarray(down, bool).copy()
    for start, stop in key_holds(~out):  # gaps first: a flickering hold becomes one hold, not several taps
        if stop - start < min_ticks and start > 0 and stop < len(out):  # a gap at either end is not between holds
            out[start:stop] = True
    for start, stop in key_holds(out):
        if stop - start < min_ticks:
            out[start : start + min_ticks] = True
    return out


def active_span(features: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) ticks with an object within LEAD_IN_MS ahead or behind (the played part)."""
    near_s = LEAD_IN_MS / MS_PER_UNIT
    near = (features[:, _F["next_time_s"]] < near_s) | (features[:, _F["prev_time_s"]] < near_s)
    near |= features[:, _F["slider_active"]] > 0
    near |= features[:, _F["spinner_active"]] > 0
    ticks = np.flatnonzero(near)
    if len(ticks) == 0:
        return 0, 0
    return int(ticks[0]), int(ticks[-1]) + 1
