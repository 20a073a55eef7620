"""osu! mods: bit flags <-> "HDHR" strings, and a map as it is played under the mods that change play.

HR flips the field vertically and raises CS/AR/OD/HP, EZ halves them, DT/NC and HT change the song rate.
A `PlayBeatmap` holds the objects in play time (song time / rate) with the windows a player faces in real
time: the clock a replay's hand moves in. HD, NF, SD, PF, SO, FL change what is shown or scored, not where
or when objects are, so they are plain plays here.
Rules: https://osu.ppy.sh/wiki/en/Gameplay/Game_modifier and https://osu.ppy.sh/wiki/en/Beatmap/Approach_rate
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data.beatmap.curves import hit_object_path
from data.beatmap.datapoints import PLAYFIELD_HEIGHT
from data.errors import BadInputError

# osu! mod bits (the .osr header and the osu! API use these).
NF, EZ, TD, HD, HR, SD, DT, RX, HT, NC, FL, AT, SO, AP, PF = (
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
    256,
    512,
    1024,
    2048,
    4096,
    8192,
    16384,
)
SCORE_V2 = 1 << 29
MOD_BITS = {
    "NF": NF,
    "EZ": EZ,
    "TD": TD,
    "HD": HD,
    "HR": HR,
    "SD": SD,
    "DT": DT,
    "RX": RX,
    "HT": HT,
    "NC": NC | DT,  # osu! always sets DT with NC
    "FL": FL,
    "AT": AT,
    "SO": SO,
    "AP": AP,
    "PF": PF | SD,  # and SD with PF
    "V2": SCORE_V2,
}
# Display order, as osu! lists mods; a combined mod (NC, PF) is written instead of the one it implies.
MOD_ORDER = ("EZ", "NF", "HT", "HD", "HR", "PF", "SD", "NC", "DT", "FL", "RX", "AP", "SO", "AT", "TD", "V2")
# Mods whose replays are not a human playing both aim and keys (the game plays a part or all of it).
NOT_HUMAN_MODS = RX | AT | AP

DT_RATE = 1.5
HT_RATE = 0.75
HR_CS_FACTOR = 1.3
HR_FACTOR = 1.4
EZ_FACTOR = 0.5
MAX_DIFFICULTY = 10.0


# ----------------------------------------------------------------------------------------------------------
# Flags and strings


def parse_mods(text: str) -> int:
    """'HDHR', '+HD,DT', 'nomod' -> osu! bit flags; BadInputError on an unknown mod."""
    cleaned = "".join(c for c in text.upper() if c.isalnum())
    if cleaned in ("", "NM", "NOMOD", "NONE"):
        return 0
    if len(cleaned) % 2:
        raise BadInputError(None, f"mods {text!r}: expected two-letter mods like HDHR")
    flags = 0
    for i in range(0, len(cleaned), 2):
        name = cleaned[i : i + 2]
        if name not in MOD_BITS:
            raise BadInputError(None, f"unknown mod {name!r} in {text!r} (known: {' '.join(MOD_ORDER)})")
        flags |= MOD_BITS[name]
    if flags & EZ and flags & HR:
        raise BadInputError(None, f"mods {text!r}: EZ and HR cannot be combined")
    if flags & DT and flags & HT:
        raise BadInputError(None, f"mods {text!r}: DT and HT cannot be combined")
    return flags


def mods_to_string(flags: int) -> str:
    """osu! bit flags -> 'HDHR' ('' for no mod); bits without a name here are left out."""
    out, covered = [], 0
    for name in MOD_ORDER:
        bits = MOD_BITS[name]
        if flags & bits == bits and not covered & bits:
            out.append(name)
            covered |= bits
    return "".join(out)


def mods_rate(flags: int) -> float:
    """Song speed under `flags`: 1.5 for DT/NC, 0.75 for HT, else 1."""
    if flags & (DT | NC):
        return DT_RATE
    if flags & HT:
        return HT_RATE
    return 1.0


# ----------------------------------------------------------------------------------------------------------
# Difficulty under mods


def preempt_ms(approach_rate: float) -> float:
    """Time an object is visible before its hit time (song time), from AR."""
    if approach_rate < 5:
        return 1200.0 + 600.0 * (5 - approach_rate) / 5
    return 1200.0 - 750.0 * (approach_rate - 5) / 5


def approach_rate_for_preempt(ms: float) -> float:
    """The AR whose preempt is `ms` (AR above 10 or below 0 when a rate pushes it there)."""
    if ms > 1200.0:
        return 5 - (ms - 1200.0) * 5 / 600
    return 5 + (1200.0 - ms) * 5 / 750


def hit_windows_ms(overall_difficulty: float) -> tuple[float, float, float]:
    """Half-widths of the 300, 100 and 50 windows (song time), from OD."""
    od = overall_difficulty
    return 80.0 - 6.0 * od, 140.0 - 8.0 * od, 200.0 - 10.0 * od


def circle_radius_px(circle_size: float) -> float:
    """Hit circle radius in osu! pixels, from CS."""
    return 54.4 - 4.48 * circle_size


def circle_size_for_radius(radius_px: float) -> float:
    """The CS whose hit circle radius is `radius_px`."""
    return (54.4 - radius_px) / 4.48


def overall_difficulty_for_window(window_300_ms: float) -> float:
    """The OD whose 300 window is `window_300_ms` (above 10 when a rate narrows it there)."""
    return (hit_windows_ms(0)[0] - window_300_ms) / 6.0


@dataclass(frozen=True)
class PlayObject:
    """A hit object as played: play time, field flipped under HR, before stacking."""

    index: int  # position in the source map's hit_objects
    kind: str  # "circle", "slider", "spinner"
    x: float
    y: float
    time_ms: float  # play time
    end_time_ms: float  # play time
    new_combo: bool
    slides: int  # slider spans (1 for circles and spinners)
    span_ms: float  # one slider span, play time (0 otherwise)
    path: np.ndarray | None  # slider polyline [M, 2], head first, play field (None otherwise)
    path_cum_px: np.ndarray | None  # arc length at each polyline point [M]
    tick_interval_ms: float  # slider tick spacing in play time (inf for none)

    def position_at(self, time_ms: float) -> tuple[float, float]:
        """Where the slider ball is at `time_ms` (the head for circles, the head before and after a slider)."""
        if self.path is None or self.span_ms <= 0 or len(self.path) < 2:
            return self.x, self.y
        progress = (min(max(time_ms, self.time_ms), self.end_time_ms) - self.time_ms) / self.span_ms
        span = min(int(progress), self.slides - 1)
        along = progress - span
        if span % 2:
            along = 1.0 - along
        return polyline_point(self.path, along, self.path_cum_px)

    @property
    def end_position(self) -> tuple[float, float]:
        """Where the object ends (a slider's tail after its last span)."""
        return self.position_at(self.end_time_ms)

    @property
    def path_end(self) -> tuple[float, float]:
        """The last point of a slider's path, whatever the repeats (the head for other objects)."""
        if self.path is None or len(self.path) == 0:
            return self.x, self.y
        return float(self.path[-1, 0]), float(self.path[-1, 1])


@dataclass(frozen=True)
class PlayBeatmap:
    """A map under mods, in play time: what `data.replay.gameplay.judge` and the replay dataset consume."""

    md5: str  # of the source map's bytes (what a replay of it names)
    mods: int
    rate: float
    hit_objects: list[PlayObject]
    circle_size: float  # after HR/EZ
    approach_rate: float  # the AR a player feels in real time (DT raises it above 10)
    overall_difficulty: float  # likewise for OD
    overall_difficulty_song: float  # after HR/EZ, before the rate (spinner rules count in song time)
    hp_drain: float
    preempt_ms: float  # play time
    hit_windows_ms: tuple[float, float, float]  # 300, 100, 50 half-widths, play time
    radius_px: float
    stack_leniency: float
    format_version: int


def apply_mods(beatmap, mods: int | str) -> PlayBeatmap:
    """The map `beatmap` (data.beatmap.osu_file.Beatmap) as played with `mods` (bit flags or 'HDHR')."""
    flags = parse_mods(mods) if isinstance(mods, str) else int(mods)
    rate = mods_rate(flags)
    cs, ar, od, hp = beatmap.circle_size, beatmap.approach_rate, beatmap.overall_difficulty, beatmap.hp_drain
    if flags & HR:
        cs = min(cs * HR_CS_FACTOR, MAX_DIFFICULTY)
        ar, od, hp = (min(v * HR_FACTOR, MAX_DIFFICULTY) for v in (ar, od, hp))
    elif flags & EZ:
        cs, ar, od, hp = (v * EZ_FACTOR for v in (cs, ar, od, hp))
    preempt = preempt_ms(ar) / rate
    windows = tuple(math.floor(w) / rate for w in hit_windows_ms(od))
    flip = bool(flags & HR)
    objects = []
    for index, h in enumerate(beatmap.hit_objects):
        y = PLAYFIELD_HEIGHT - h.y if flip else h.y
        path, cum, span, tick = None, None, 0.0, float("inf")
        if h.kind == "slider":
            path = _slider_polyline(h)
            if flip:
                path[:, 1] = PLAYFIELD_HEIGHT - path[:, 1]
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
            span = beatmap.slider_duration_ms(h) / rate
            tick = _tick_interval_ms(beatmap, h) / rate
        objects.append(
            PlayObject(
                index=index,
                kind=h.kind,
                x=float(h.x),
                y=float(y),
                time_ms=h.time_ms / rate,
                end_time_ms=h.end_time_ms / rate,
                new_combo=bool(h.new_combo),
                slides=int(h.slides),
                span_ms=span,
                path=path,
                path_cum_px=cum,
                tick_interval_ms=tick,
            )
        )
    return PlayBeatmap(
        md5=beatmap.md5,
        mods=flags,
        rate=rate,
        hit_objects=objects,
        circle_size=cs,
        approach_rate=approach_rate_for_preempt(preempt),
        overall_difficulty=overall_difficulty_for_window(windows[0]),
        overall_difficulty_song=od,
        hp_drain=hp,
        preempt_ms=preempt,
        hit_windows_ms=windows,
        radius_px=circle_radius_px(cs),
        stack_leniency=beatmap.stack_leniency,
        format_version=beatmap.format_version,
    )


# Maps before format v8 space ticks by distance without the slider velocity (lazer's tickDistanceMultiplier).
TICK_SV_FORMAT_VERSION = 8


def _tick_interval_ms(beatmap, h) -> float:
    """Time between slider ticks in song time: a beat / tick rate (scaled by SV on maps before v8)."""
    rate = beatmap.slider_tick_rate
    if rate <= 0:
        return float("inf")
    interval = beatmap.timing_point_at(h.time_ms).beat_length / rate
    if beatmap.format_version < TICK_SV_FORMAT_VERSION:
        interval /= beatmap.slider_velocity_at(h.time_ms)
    return interval


def _slider_polyline(h) -> np.ndarray:
    """The slider's path as a float64 polyline [M, 2], head first, cut to its length."""
    path = np.array(hit_object_path(h), np.float64)
    return path if len(path) else np.array([(h.x, h.y)], np.float64)


def polyline_point(path: np.ndarray, fraction: float, cum: np.ndarray | None = None) -> tuple[float, float]:
    """The point `fraction` (0..1) of the way along a polyline by arc length (`cum`: its arc lengths)."""
    if cum is None:
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    total = float(cum[-1])
    if total <= 0 or len(path) < 2:
        return float(path[0, 0]), float(path[0, 1])
    target = min(max(fraction, 0.0), 1.0) * total
    i = min(int(np.searchsorted(cum, target, side="right")) - 1, len(path) - 2)
    seg = cum[i + 1] - cum[i]
    t = 0.0 if seg <= 0 else (target - cum[i]) / seg
    p = path[i] + (path[i + 1] - path[i]) * t
    return float(p[0]), float(p[1])
