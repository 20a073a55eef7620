"""Pseudo-maps for human replays whose map is missing: objects put back where the player pressed.

Each press becomes the object it hit: a circle where the cursor was, a slider along the cursor's smoothed path
while a key stayed down and the cursor travelled, a spinner where it circled. The cursor at a press is not
the object's centre, nor the press its hit time: each object is moved by one human error drawn from paired
play (hit error as a share of the 300 window, aim offset along and across the approach, in radii), so a
network trained on the pseudo-map learns the human's spread of error, not a cursor that always hits the
centre. Difficulty (circle size, approach, hit windows) is drawn from paired replays at the same speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.position_io import POSITION_SCALE
from data.replay.habits import feature_px, match_presses, presses
from data.replay.mods import (
    PlayBeatmap,
    PlayObject,
    approach_rate_for_preempt,
    circle_size_for_radius,
    overall_difficulty_for_window,
)
from data.replay_io import FEATURE_INDEX, MAX_LOOKAHEAD_MS, MS_PER_UNIT

SLIDER_MIN_TICKS = 8  # a key held this long (about 130 ms) while the cursor travels a radius is a slider
SPINNER_MIN_MS = 750.0
SPINNER_TURNS = 2.0  # turns around the playfield centre during one hold that make it a spinner
SLIDER_SMOOTH_TICKS = 4.0  # Gaussian sigma of the cursor path a pseudo-slider's ball follows
NEW_COMBO_GAP_MS = 400.0  # a pause this long starts a new combo, as does every COMBO_LENGTH-th object
COMBO_LENGTH = 8
PLAYFIELD_CENTRE = (256.0, 192.0)
_F = FEATURE_INDEX


@dataclass(frozen=True)
class HumanErrors:
    """What pseudo-maps draw from, measured on paired human play.

    errors [N, 3]: per hit press, hit error / 300 window and aim offset along / across the approach (radii).
    difficulty [M, 5]: per replay, rate, radius px, preempt ms, 300 and 50 windows ms (play time)."""

    errors: np.ndarray
    difficulty: np.ndarray

    @classmethod
    def pooled(cls, errors: list[np.ndarray], difficulty: list[np.ndarray]) -> HumanErrors:
        return cls(np.concatenate(errors).reshape(-1, 3), np.array(difficulty, np.float64).reshape(-1, 5))


def press_errors(time_ms: np.ndarray, x, y, k1, k2, features: np.ndarray) -> np.ndarray:
    """[n, 3] (hit error / 300 window, aim along, aim across in radii) of each press that hit an object
    reached by a jump of at least a radius (on a stack the approach has no direction)."""
    t = np.asarray(time_ms, np.float64)
    f = features
    radius = float(f[0, _F["radius"]]) * POSITION_SCALE if len(f) else 0.0
    window = float(f[0, _F["window_300_s"]]) * MS_PER_UNIT if len(f) else 0.0
    press_tick, _, _ = presses(t, k1, k2)
    if radius <= 0 or window <= 0 or not len(press_tick):
        return np.zeros((0, 3))
    hx, hy = feature_px(f, "next_x", 0), feature_px(f, "next_y", 1)
    px, py = feature_px(f, "prev_x", 0), feature_px(f, "prev_y", 1)
    out = []
    for i, j, hit in match_presses(t, t[press_tick], f):
        d = np.array([hx[i] - px[i], hy[i] - py[i]])
        length = float(np.hypot(*d))
        if length < radius or f[i, _F["prev_time_s"]] * MS_PER_UNIT >= MAX_LOOKAHEAD_MS - 1.0:  # no object before
            continue
        along, across = _frame(d / length)
        p = press_tick[j]
        e = np.array([x[p] - hx[i], y[p] - hy[i]])
        out.append(((t[p] - hit) / window, float(e @ along) / radius, float(e @ across) / radius))
    return np.array(out, np.float64).reshape(-1, 3)


def replay_difficulty(rate: float, features: np.ndarray) -> np.ndarray:
    """[5] rate, radius, preempt, 300 and 50 windows (px, ms of play time) of a paired replay's map."""
    f = features[0]
    return np.array(
        [
            rate,
            f[_F["radius"]] * POSITION_SCALE,
            f[_F["preempt_s"]] * MS_PER_UNIT,
            f[_F["window_300_s"]] * MS_PER_UNIT,
            f[_F["window_50_s"]] * MS_PER_UNIT,
        ],
        np.float64,
    )


def _frame(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return direction, np.array([-direction[1], direction[0]])


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    half = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    return np.convolve(np.pad(values, half, mode="edge"), kernel, mode="valid")


def _turns(x: np.ndarray, y: np.ndarray) -> float:
    angle = np.unwrap(np.arctan2(y - PLAYFIELD_CENTRE[1], x - PLAYFIELD_CENTRE[0]))
    return float(np.abs(np.diff(angle)).sum() / (2 * np.pi)) if len(angle) > 1 else 0.0


def _object(kind: str, at, start: float, end: float, path=None, cum=None, **common) -> PlayObject:
    span = float(end - start) if path is not None else 0.0
    return PlayObject(kind=kind, x=float(at[0]), y=float(at[1]), time_ms=float(start), end_time_ms=float(end),
                      slides=1, span_ms=span, path=path, path_cum_px=cum, **common)  # fmt: skip


def pseudo_play(
    time_ms: np.ndarray, x, y, k1, k2, rate: float, human: HumanErrors, rng: np.random.Generator
) -> PlayBeatmap:
    """The map a replay (on the play-time grid) could have played: one object per press (see module doc)."""
    t = np.asarray(time_ms, np.float64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    same_rate = np.flatnonzero(np.isclose(human.difficulty[:, 0], rate))
    pool = same_rate if len(same_rate) else np.arange(len(human.difficulty))
    _, radius, preempt, window_300, window_50 = human.difficulty[rng.choice(pool)]
    sx, sy = _smooth(x, SLIDER_SMOOTH_TICKS), _smooth(y, SLIDER_SMOOTH_TICKS)
    press_tick, _, release_tick = presses(t, k1, k2)
    objects: list[PlayObject] = []
    last_time, last_end = -np.inf, None
    for j, p in enumerate(press_tick):
        stop = int(min(release_tick[j], press_tick[j + 1] if j + 1 < len(press_tick) else len(t))) - 1
        stop = max(stop, int(p))
        held_ms = t[stop] - t[p]
        hit_error, along, across = human.errors[rng.integers(len(human.errors))]
        new_combo = not objects or t[p] - last_time > NEW_COMBO_GAP_MS or len(objects) % COMBO_LENGTH == 0
        common = {"index": len(objects), "new_combo": bool(new_combo), "tick_interval_ms": float("inf")}
        if held_ms >= SPINNER_MIN_MS and _turns(x[p : stop + 1], y[p : stop + 1]) >= SPINNER_TURNS:
            start, end = max(t[p], last_time + 1.0), max(t[stop], last_time + 2.0)
            objects.append(_object("spinner", PLAYFIELD_CENTRE, start, end, **common))
            last_time, last_end = end, np.array(PLAYFIELD_CENTRE)
            continue
        pressed_at = np.array([x[p], y[p]])
        approach = pressed_at - last_end if last_end is not None else np.zeros(2)
        length = float(np.hypot(*approach))
        if length < radius:  # no approach to measure the error against: any direction
            angle = rng.uniform(0, 2 * np.pi)
            approach, length = np.array([np.cos(angle), np.sin(angle)]), 1.0
        d_along, d_across = _frame(approach / length)
        centre = pressed_at - (along * d_along + across * d_across) * radius
        start = max(t[p] - hit_error * window_300, last_time + 1.0)
        path = np.stack([sx[p : stop + 1], sy[p : stop + 1]], axis=1) - [sx[p], sy[p]] + centre
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
        if stop - p >= SLIDER_MIN_TICKS and cum[-1] >= radius:
            end = max(t[stop], start + 1.0)
            objects.append(_object("slider", centre, start, end, path=path, cum=cum, **common))
            last_time, last_end = float(end), path[-1] + (pressed_at - centre)
        else:
            objects.append(_object("circle", centre, start, start, **common))
            last_time, last_end = float(start), pressed_at
    overall = overall_difficulty_for_window(window_300)
    return PlayBeatmap(
        md5="",
        mods=0,
        rate=float(rate),
        hit_objects=objects,
        circle_size=circle_size_for_radius(radius),
        approach_rate=approach_rate_for_preempt(preempt),
        overall_difficulty=overall,
        overall_difficulty_song=overall,
        hp_drain=5.0,
        preempt_ms=float(preempt),
        hit_windows_ms=(float(window_300), float((window_300 + window_50) / 2), float(window_50)),
        radius_px=float(radius),
        stack_leniency=0.0,
        format_version=14,
    )
