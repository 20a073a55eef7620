"""Playing a map: osu! stacking, and judging a replay's cursor against a modded map (osu!stable rules, simplified).

Stacking follows osu!stable as osu!lazer reproduces it (OsuBeatmapProcessor.applyStacking / applyStackingOld):
https://github.com/ppy/osu/blob/master/osu.Game.Rulesets.Osu/Beatmaps/OsuBeatmapProcessor.cs

What `judge` does, and where it simplifies osu!stable:
- A key press (rising edge of key 1 or key 2) goes to the earliest object whose 50 window has not closed
  (notelock): inside its circle and within the 50 window it scores 300/100/50 by |error| (windows floored
  to whole song ms, bounds exclusive, as stable); inside but earlier
  than the 50 window (up to EARLY_MISS_MS) it is a miss; outside the circle it does nothing.
- Sliders are scored the stable way, by the share of their parts (head, ticks, repeats, tail) that were
  followed: all -> 300, at least half -> 100, some -> 50, none -> miss. A tick/repeat/tail is followed when a
  key is held and the cursor is within 2.4 radii of the ball at its time (stable also requires the follow to
  start inside the ball; not modelled). The tail is checked 36 ms early, as lazer's legacy last tick.
- Spinners: net cursor rotation around the centre while a key is held (capped at MAX_SPIN_RPS), against
  lazer's requirement (1.5/2.5/3.75 rotations per song second at OD 0/5/10); >=100% 300, >=90% 100,
  >=75% 50, else miss.
- Combo: circles, slider heads, ticks, repeats and tails add one; a missed circle, head, tick or repeat
  breaks it; a missed tail does not (stable). Score is ScoreV1 with an estimated difficulty multiplier; the
  life bar is a simple gain/penalty model (no drain). Both are for the .osr header, not for evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data.replay.mods import DT, EZ, FL, HD, HR, HT, NF, SO, PlayBeatmap, PlayObject
from data.replay.osr import KEY1_BITS, KEY2_BITS, ReplayFrames, ReplayGrid, ReplayRecord

PLAYFIELD_CENTRE = (256.0, 192.0)
STACK_DISTANCE_PX = 3.0
STACK_OFFSET_PER_HEIGHT = -0.1  # of the radius: lazer's -6.4 * scale with radius = 64 * scale
STACKING_ALGORITHM_VERSION = 6  # maps before format v6 use stable's older algorithm
# Stable floors each window to whole song milliseconds and needs |error| strictly inside it; the epsilon
# absorbs float error from dividing song times by the rate.
WINDOW_EPSILON_MS = 1e-6
EARLY_MISS_MS = 400.0  # a press this early (or less) on the next object is a miss (lazer's Miss window)
FOLLOW_RADIUS_FACTOR = 2.4
LEGACY_LAST_TICK_MS = 36.0  # song time
TICK_MIN_GAP_TO_END_MS = 10.0  # song time: no tick this close to a span's end
MAX_SPIN_RPS = 477.0 / 60.0  # stable's fastest counted spin (477 rpm)
SPIN_RPS_RANGE = (1.5, 2.5, 3.75)  # rotations per song second at OD 0, 5, 10
SPINNER_SHARES = ((1.0, 300), (0.9, 100), (0.75, 50))
RESULT_VALUES = (300, 100, 50)
MISS = 0
# ScoreV1: https://osu.ppy.sh/wiki/en/Gameplay/Score/ScoreV1/osu%21
SLIDER_PART_SCORE = {"tick": 10, "repeat": 30, "head": 30, "tail": 30}
MOD_SCORE_MULTIPLIERS = {NF: 0.5, EZ: 0.5, HT: 0.3, HD: 1.06, HR: 1.06, DT: 1.12, FL: 1.12, SO: 0.9}
# Life bar model: gains per result and a miss penalty that grows with HP drain.
LIFE_GAIN = {300: 0.05, 100: 0.02, 50: 0.0}
LIFE_PART_GAIN = 0.01
LIFE_MISS_RANGE = (0.05, 0.1, 0.2)


def difficulty_range(difficulty: float, low: float, mid: float, high: float) -> float:
    """osu!'s piecewise-linear map of a 0..10 difficulty value onto (low at 0, mid at 5, high at 10)."""
    if difficulty > 5:
        return mid + (high - mid) * (difficulty - 5) / 5
    if difficulty < 5:
        return mid - (mid - low) * (5 - difficulty) / 5
    return mid


# ----------------------------------------------------------------------------------------------------------
# Stacking


def stack_heights(play: PlayBeatmap) -> np.ndarray:
    """Stack height of each object (int [N]); positive heights move an object up-left."""
    objects = play.hit_objects
    heights = np.zeros(len(objects), np.int64)
    if len(objects) < 2:
        return heights
    threshold = play.preempt_ms * play.stack_leniency
    if play.format_version >= STACKING_ALGORITHM_VERSION:
        _stack(objects, heights, threshold)
    else:
        _stack_old(objects, heights, threshold)
    return heights


def osu_accuracy(count_300: int, count_100: int, count_50: int, total: int) -> float:
    """osu!standard accuracy in 0..1 of `total` judged objects (NaN for none)."""
    return (300 * count_300 + 100 * count_100 + 50 * count_50) / (300 * total) if total else float("nan")


def stack_offsets(play: PlayBeatmap) -> np.ndarray:
    """Per-object shift [N, 2] in px that stacking applies to the whole object."""
    shift = stack_heights(play).astype(np.float64) * play.radius_px * STACK_OFFSET_PER_HEIGHT
    return np.repeat(shift[:, None], 2, axis=1)


def stacked_positions(play: PlayBeatmap) -> np.ndarray:
    """Head positions [N, 2] after stacking: where the player has to click."""
    heads = np.array([(o.x, o.y) for o in play.hit_objects], np.float64).reshape(-1, 2)
    return heads + stack_offsets(play)


def _near(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return math.hypot(a[0] - b[0], a[1] - b[1]) < STACK_DISTANCE_PX


def _stack(objects: list[PlayObject], heights: np.ndarray, threshold: float) -> None:
    """Stable's algorithm for format v6+: walk back from each object, stacking earlier ones under it."""
    heads = [(o.x, o.y) for o in objects]
    ends = [o.end_position for o in objects]
    earliest_touched = 0
    for i in range(len(objects) - 1, 0, -1):
        top = i
        if heights[top] != 0 or objects[top].kind == "spinner":
            continue
        n = i
        if objects[top].kind == "circle":
            while n > 0:
                n -= 1
                if objects[n].kind == "spinner":
                    continue
                if objects[top].time_ms - objects[n].end_time_ms > threshold:
                    break
                if n < earliest_touched:
                    heights[n] = 0
                    earliest_touched = n
                if objects[n].kind == "slider" and _near(ends[n], heads[top]):
                    # Circles stacked on a slider's tail move down-right, away from the slider.
                    offset = heights[top] - heights[n] + 1
                    for j in range(n + 1, i + 1):
                        if _near(ends[n], heads[j]):
                            heights[j] -= offset
                    break
                if _near(heads[n], heads[top]):
                    heights[n] = heights[top] + 1
                    top = n
        else:
            while n > 0:
                n -= 1
                if objects[n].kind == "spinner":
                    continue
                if objects[top].time_ms - objects[n].time_ms > threshold:
                    break
                if _near(ends[n], heads[top]):
                    heights[n] = heights[top] + 1
                    top = n


def _stack_old(objects: list[PlayObject], heights: np.ndarray, threshold: float) -> None:
    """Stable's algorithm for maps before format v6: walk forward, raising an object under later ones."""
    heads = [(o.x, o.y) for o in objects]
    for i, current in enumerate(objects):
        if heights[i] != 0 and current.kind != "slider":
            continue
        start_time = current.end_time_ms
        slider_stack = 0
        tail = current.path_end
        for j in range(i + 1, len(objects)):
            if objects[j].time_ms - threshold > start_time:
                break
            if _near(heads[j], heads[i]):
                heights[i] += 1
                start_time = objects[j].end_time_ms
            elif _near(heads[j], tail):
                slider_stack += 1
                heights[j] -= slider_stack
                start_time = objects[j].end_time_ms


# ----------------------------------------------------------------------------------------------------------
# Judging


@dataclass(frozen=True)
class Judgement:
    """How a replay played a map: per-object results and the header figures of an .osr."""

    result: np.ndarray  # int16 [N]: 300, 100, 50 or 0 (miss)
    hit_error_ms: np.ndarray  # float32 [N]: press time - object time (play time), NaN where no press hit
    count_300: int
    count_100: int
    count_50: int
    count_miss: int
    count_geki: int
    count_katu: int
    max_combo: int
    max_possible_combo: int
    combo_breaks: int  # misses plus missed slider heads, ticks and repeats
    score: int
    life_time_ms: np.ndarray  # float64 [L], play time
    life: np.ndarray  # float32 [L], 0..1

    @property
    def accuracy(self) -> float:
        """osu!standard accuracy in 0..1."""
        total = len(self.result)
        return osu_accuracy(self.count_300, self.count_100, self.count_50, total) if total else 1.0

    @property
    def perfect(self) -> bool:
        """A full combo: nothing missed that breaks combo."""
        return self.combo_breaks == 0

    @property
    def unstable_rate(self) -> float:
        """10 x the standard deviation of hit errors (ms, play time)."""
        errors = self.hit_error_ms[np.isfinite(self.hit_error_ms)]
        return float(10 * errors.std()) if len(errors) > 1 else 0.0


@dataclass(frozen=True)
class _Track:
    """Cursor samples in play time with the two merged keys."""

    time_ms: np.ndarray
    x: np.ndarray
    y: np.ndarray
    k1: np.ndarray
    k2: np.ndarray

    def index_at(self, time_ms: float) -> int:
        """Latest sample at or before `time_ms` (0 before the first)."""
        return max(int(np.searchsorted(self.time_ms, time_ms, side="right")) - 1, 0)


def _track(cursor: ReplayGrid | ReplayRecord | ReplayFrames, rate: float) -> _Track:
    if isinstance(cursor, ReplayGrid):
        return _Track(cursor.time_ms, cursor.x, cursor.y, np.asarray(cursor.k1, bool), np.asarray(cursor.k2, bool))
    frames = cursor.frames if isinstance(cursor, ReplayRecord) else cursor
    return _Track(
        np.asarray(frames.time_ms, np.float64) / rate,
        frames.x,
        frames.y,
        frames.keys & KEY1_BITS != 0,
        frames.keys & KEY2_BITS != 0,
    )


def _presses(track: _Track) -> list[tuple[float, float, float]]:
    """(time, x, y) of every rising edge of either key, in time order (a both-keys frame gives two)."""
    presses = []
    for keys in (track.k1, track.k2):
        edges = np.flatnonzero(keys & ~np.concatenate([[False], keys[:-1]]))
        presses.extend((float(track.time_ms[i]), float(track.x[i]), float(track.y[i])) for i in edges)
    presses.sort(key=lambda p: p[0])
    return presses


def judge(play: PlayBeatmap, cursor: ReplayGrid | ReplayRecord | ReplayFrames) -> Judgement:
    """Judge a replay (grid in play time, or a record/frames in song time) on a map with its mods applied."""
    track = _track(cursor, play.rate)
    objects = play.hit_objects
    n = len(objects)
    offsets = stack_offsets(play)
    heads = stacked_positions(play)
    radius = play.radius_px
    w300, w100, w50 = play.hit_windows_ms
    early_miss = max(EARLY_MISS_MS / play.rate, w50)

    # Heads: presses against the earliest open circle or slider head (notelock).
    head_hit = np.zeros(n, bool)
    head_time = np.array([o.time_ms + w50 for o in objects], np.float64)  # when a miss is known
    head_result = np.zeros(n, np.int16)
    errors = np.full(n, np.nan, np.float32)
    clickable = [i for i, o in enumerate(objects) if o.kind != "spinner"]
    queue = 0
    for t, x, y in _presses(track):
        while queue < len(clickable) and t + WINDOW_EPSILON_MS >= objects[clickable[queue]].time_ms + w50:
            queue += 1
        if queue == len(clickable):
            break
        i = clickable[queue]
        error = t - objects[i].time_ms
        if error < -early_miss or math.hypot(x - heads[i, 0], y - heads[i, 1]) > radius:
            continue
        head_time[i] = t
        queue += 1
        if error - WINDOW_EPSILON_MS <= -w50:
            continue  # too early: a miss
        head_hit[i] = True
        errors[i] = error
        miss_by = abs(error) + WINDOW_EPSILON_MS
        head_result[i] = 300 if miss_by < w300 else 100 if miss_by < w100 else 50

    # Every scoring event in time order: (time, object, part, hit).
    events: list[tuple[float, int, str, bool]] = []
    result = np.zeros(n, np.int16)
    follow = radius * FOLLOW_RADIUS_FACTOR
    for i, o in enumerate(objects):
        if o.kind == "circle":
            result[i] = head_result[i]
            events.append((head_time[i], i, "circle", bool(head_hit[i])))
        elif o.kind == "slider":
            parts = [(head_time[i], "head", bool(head_hit[i]))]
            for t, part in _slider_checkpoints(o, play.rate):
                bx, by = o.position_at(t)
                k = track.index_at(t)
                held = bool(track.k1[k] or track.k2[k])
                dx, dy = track.x[k] - (bx + offsets[i, 0]), track.y[k] - (by + offsets[i, 1])
                parts.append((t, part, held and math.hypot(dx, dy) <= follow))
            hits = sum(hit for _, _, hit in parts)
            share = hits / len(parts)
            result[i] = 300 if hits == len(parts) else 100 if share >= 0.5 else 50 if hits else MISS
            events.extend((t, i, part, hit) for t, part, hit in parts)
        else:
            result[i] = _spinner_result(o, track, play)
            events.append((o.end_time_ms, i, "spinner", bool(result[i])))
    events.sort(key=lambda e: (e[0], e[1]))
    return _summarise(play, result, errors, events)


def _slider_checkpoints(o: PlayObject, rate: float) -> list[tuple[float, str]]:
    """(play time, 'tick' | 'repeat' | 'tail') of a slider's parts after its head."""
    points = []
    min_gap = TICK_MIN_GAP_TO_END_MS / rate
    ticks = []
    if math.isfinite(o.tick_interval_ms) and o.tick_interval_ms > 0:
        k = 1
        while k * o.tick_interval_ms < o.span_ms - min_gap:
            ticks.append(k * o.tick_interval_ms)
            k += 1
    for span in range(o.slides):
        start = o.time_ms + span * o.span_ms
        offsets = ticks if span % 2 == 0 else [o.span_ms - d for d in reversed(ticks)]
        points.extend((start + d, "tick") for d in offsets)
        if span < o.slides - 1:
            points.append((start + o.span_ms, "repeat"))
    duration = o.end_time_ms - o.time_ms
    tail = max(o.time_ms + duration / 2, o.end_time_ms - LEGACY_LAST_TICK_MS / rate)
    points.append((tail, "tail"))
    return points


def _spinner_result(o: PlayObject, track: _Track, play: PlayBeatmap) -> int:
    start = int(np.searchsorted(track.time_ms, o.time_ms, side="left"))
    end = int(np.searchsorted(track.time_ms, o.end_time_ms, side="right"))
    if end - start < 2:
        rotations = 0.0
    else:
        t = track.time_ms[start:end]
        angle = np.arctan2(track.y[start:end] - PLAYFIELD_CENTRE[1], track.x[start:end] - PLAYFIELD_CENTRE[0])
        step = np.angle(np.exp(1j * np.diff(angle)))  # wrapped to (-pi, pi]
        limit = 2 * np.pi * MAX_SPIN_RPS * np.diff(t) / 1000.0
        step = np.clip(step, -limit, limit)
        held = (track.k1 | track.k2)[start + 1 : end]
        rotations = abs(float(step[held].sum())) / (2 * np.pi)
    song_seconds = (o.end_time_ms - o.time_ms) * play.rate / 1000.0
    required = int(song_seconds * difficulty_range(play.overall_difficulty_song, *SPIN_RPS_RANGE))
    share = 1.0 if required == 0 else rotations / required
    for needed, value in SPINNER_SHARES:
        if share >= needed:
            return value
    return MISS


def _summarise(play: PlayBeatmap, result: np.ndarray, errors: np.ndarray, events: list) -> Judgement:
    objects = play.hit_objects
    multiplier = _score_multiplier(play)
    combo = max_combo = possible = breaks = 0
    score = 0.0
    life = 1.0
    life_times, life_values = [], []
    miss_penalty = difficulty_range(play.hp_drain, *LIFE_MISS_RANGE)
    last_part = {i: j for j, (_, i, _, _) in enumerate(events)}
    for j, (t, i, part, hit) in enumerate(events):
        final = last_part.get(i) == j  # the object's result is known at its last event
        if part in ("circle", "spinner", "head", "tick", "repeat", "tail"):
            possible += 1
        if hit:
            combo += 1
            max_combo = max(max_combo, combo)
        elif part != "tail":
            combo = 0
            breaks += 1
        if part in SLIDER_PART_SCORE and hit:
            score += SLIDER_PART_SCORE[part]
            life += LIFE_PART_GAIN
        if final:
            value = int(result[i])
            if value:
                score += value + value * max(combo - 1, 0) * multiplier / 25
                life += LIFE_GAIN[value]
            else:
                life -= miss_penalty
        elif not hit and part != "tail":
            life -= miss_penalty / 2
        life = min(max(life, 0.0), 1.0)
        life_times.append(t)
        life_values.append(life)
    geki, katu = _geki_katu(objects, result)
    values, counts = np.unique(result, return_counts=True)
    count = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return Judgement(
        result=result,
        hit_error_ms=errors,
        count_300=count.get(300, 0),
        count_100=count.get(100, 0),
        count_50=count.get(50, 0),
        count_miss=count.get(MISS, 0),
        count_geki=geki,
        count_katu=katu,
        max_combo=max_combo,
        max_possible_combo=possible,
        combo_breaks=breaks,
        score=int(score),
        life_time_ms=np.asarray(life_times, np.float64),
        life=np.asarray(life_values, np.float32),
    )


def _score_multiplier(play: PlayBeatmap) -> float:
    """ScoreV1 difficulty multiplier (estimated from the modded values) times the mods' multiplier."""
    objects = play.hit_objects
    if objects:
        drain_s = max((objects[-1].end_time_ms - objects[0].time_ms) * play.rate / 1000.0, 1.0)
        density = min(max(len(objects) / drain_s * 8, 0.0), 16.0)
    else:
        density = 0.0
    difficulty = round((play.hp_drain + play.circle_size + play.overall_difficulty_song + density) / 38 * 5)
    mods = 1.0
    for bit, factor in MOD_SCORE_MULTIPLIERS.items():
        if play.mods & bit:
            mods *= factor
    return difficulty * mods


def _geki_katu(objects: list[PlayObject], result: np.ndarray) -> tuple[int, int]:
    """Combo colours finished with only 300s (geki) or with 100s but no 50 or miss (katu)."""
    geki = katu = 0
    start = 0
    for i in range(1, len(objects) + 1):
        if i == len(objects) or objects[i].new_combo:
            group = result[start:i]
            if len(group):
                if np.all(group == 300):
                    geki += 1
                elif np.all(group >= 100):
                    katu += 1
            start = i
    return geki, katu
