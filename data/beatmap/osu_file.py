"""The .osu format's types: timing points, hit objects and the beatmap, with the timing rules osu! applies.
Reading a file is data.beatmap.osu_reader's job."""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from typing import Literal

LATEST_FORMAT_VERSION = 14
MAX_PARSE_VALUE = 2**31 - 1  # lazer's Parsing.MAX_PARSE_VALUE (int.MaxValue): larger numbers fail to parse
MAX_COORDINATE_PX = 131_072  # lazer's Parsing.MAX_COORDINATE_VALUE: an object beyond it is corrupt
MAX_ANCHOR_PX = MAX_PARSE_VALUE  # osu! keeps slider anchors as 32-bit ints; stable plays them far off-screen
MAX_SLIDES = 9000  # lazer refuses more repeats than this
SV_MIN, SV_MAX = 0.1, 10.0  # osu!stable clamps inherited -100/x slider velocity to this range
BASE_SLIDER_VELOCITY_PX = 100.0  # px per beat at SliderMultiplier 1 and SV 1
MODE_NAMES = {1: "osu!taiko", 2: "osu!catch", 3: "osu!mania"}
REPLAY_STRING_MARKER = 0x0B  # .osr strings start with this byte (the beatmap MD5 is the first)

TYPE_CIRCLE, TYPE_SLIDER, TYPE_NEW_COMBO, TYPE_SPINNER, TYPE_HOLD = 1, 2, 4, 8, 128
COMBO_SKIP_SHIFT, COMBO_SKIP_MASK = 4, 0b111

HEADER = re.compile(r"^\s*osu file format v(\d+)")
SECTION = re.compile(r"^\[(\w+)\]\s*$")
KEY_VALUE_SECTIONS = ("General", "Editor", "Metadata", "Difficulty")


@dataclass
class TimingPoint:
    time_ms: float
    beat_length: float
    meter: int
    sample_set: int
    sample_index: int
    volume: int
    uninherited: bool
    effects: int
    line_index: int = -1  # index of the line within the [TimingPoints] section

    @property
    def slider_velocity(self) -> float:
        """SV multiplier this point sets (1 for a red line), clamped like osu!stable."""
        if self.uninherited:
            return 1.0
        if math.isnan(self.beat_length) or self.beat_length >= 0:
            return 1.0
        return min(max(-100.0 / self.beat_length, SV_MIN), SV_MAX)


@dataclass
class HitObject:
    x: float
    y: float
    time_ms: int
    kind: Literal["circle", "slider", "spinner"]
    new_combo: bool
    combo_skip: int
    hitsound: int
    curve_type: str | None  # "B", "P", "C", "L"; the first segment's letter for multi-segment paths
    control_points: list[tuple[float, float]]  # slider points after the head, as written
    slides: int
    length_px: float  # as written; the full path length when the file gives none (sliders only)
    end_time_ms: float  # circles: == time; sliders computed; spinners from the line
    line_index: int  # index of the object's line within the [HitObjects] section
    # lazer writes a type letter before each new segment; (index into control_points, letter), first included
    segment_types: list[tuple[int, str]] = field(default_factory=list)
    length_given: bool = True  # False when the line has no usable length (then the path's own length)


@dataclass
class Beatmap:
    path: str | None
    md5: str  # hex MD5 of the raw bytes: how osu! pairs a replay with its map
    raw: bytes
    format_version: int
    general: dict[str, str]
    metadata: dict[str, str]
    difficulty: dict[str, str]
    sections: dict[str, list[str]]  # raw lines (no line ending) per section, blank/comment lines included
    timing_points: list[TimingPoint]  # sorted by time (stable)
    hit_objects: list[HitObject]  # sorted by time (stable), as osu! sorts them
    text: str = ""  # the decoded text
    newline: str = "\r\n"  # the file's dominant line ending
    encoding: str = "utf-8"  # "utf-8", "utf-8-sig", "utf-16"
    section_line_numbers: dict[str, list[int]] = field(default_factory=dict)  # text line of each section line

    # ---- properties -------------------------------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.metadata.get("Title", "")

    @property
    def artist(self) -> str:
        return self.metadata.get("Artist", "")

    @property
    def creator(self) -> str:
        return self.metadata.get("Creator", "")

    @property
    def version(self) -> str:
        return self.metadata.get("Version", "")

    @property
    def beatmap_id(self) -> int | None:
        return optional_int(self.metadata.get("BeatmapID"))

    @property
    def beatmapset_id(self) -> int | None:
        return optional_int(self.metadata.get("BeatmapSetID"))

    @property
    def circle_size(self) -> float:
        return self._difficulty_value("CircleSize", 5.0)

    @property
    def overall_difficulty(self) -> float:
        return self._difficulty_value("OverallDifficulty", 5.0)

    @property
    def approach_rate(self) -> float:
        # maps older than the AR setting use OD for it, as osu! does
        return self._difficulty_value("ApproachRate", self.overall_difficulty)

    @property
    def hp_drain(self) -> float:
        return self._difficulty_value("HPDrainRate", 5.0)

    @property
    def slider_multiplier(self) -> float:
        return self._difficulty_value("SliderMultiplier", 1.4)

    @property
    def slider_tick_rate(self) -> float:
        return self._difficulty_value("SliderTickRate", 1.0)

    @property
    def stack_leniency(self) -> float:
        value = optional_float(self.general.get("StackLeniency"))
        return 0.7 if value is None else value

    def _difficulty_value(self, key: str, default: float) -> float:
        value = optional_float(self.difficulty.get(key))
        return default if value is None or not math.isfinite(value) else value

    # ---- timing -----------------------------------------------------------------------------------------
    def timing_point_at(self, time_ms: float) -> TimingPoint:
        """The uninherited (red) point in effect at `time_ms`; the first one for times before it."""
        _, _, red_times, reds = self._timing_tables()
        i = bisect.bisect_right(red_times, time_ms) - 1
        return reds[max(i, 0)]

    def slider_velocity_at(self, time_ms: float) -> float:
        """SV multiplier in effect at `time_ms` (a green line at the same time as a red one wins)."""
        times, velocities, _, _ = self._timing_tables()
        i = bisect.bisect_right(times, time_ms) - 1
        return 1.0 if i < 0 else velocities[i]

    def slider_duration_ms(self, hit_object: HitObject) -> float:
        """Duration of one span of a slider, in ms."""
        return span_duration_ms(
            hit_object.length_px,
            self.slider_multiplier,
            self.slider_velocity_at(hit_object.time_ms),
            self.timing_point_at(hit_object.time_ms).beat_length,
        )

    def _timing_tables(self) -> tuple[list[float], list[float], list[float], list[TimingPoint]]:
        """Lookup tables, rebuilt when the list of timing points is replaced or changes length."""
        key = (id(self.timing_points), len(self.timing_points))
        cached = self.__dict__.get("_timing_cache")
        if cached is None or cached[0] != key:
            times = [p.time_ms for p in self.timing_points]
            # SV in effect from each point on: the whole group at that time decides it
            velocities = _group_velocities(self.timing_points)
            reds = [p for p in self.timing_points if p.uninherited]
            cached = (key, (times, velocities, [p.time_ms for p in reds], reds))
            self.__dict__["_timing_cache"] = cached
        return cached[1]


def ends_on_repeated_point(h: HitObject) -> bool:
    """True for a slider osu! never extends: its last two control points are equal after lazer's reading.

    Reading a legacy path drops a written repeat (it only splits segments), except inside catmull paths,
    so in practice this is a catmull slider ending on a doubled point.
    """
    if h.curve_type != "C" or len(h.segment_types) > 1 or len(h.control_points) < 2:
        return False
    return h.control_points[-1] == h.control_points[-2]


def span_duration_ms(length_px: float, slider_multiplier: float, sv: float, beat_length: float) -> float:
    """One slider span's duration: length / (SliderMultiplier * 100 * SV) beats."""
    return length_px / (slider_multiplier * BASE_SLIDER_VELOCITY_PX * sv) * beat_length


def slider_velocity_at(timing_points: list[TimingPoint], time_ms: float) -> float:
    """SV in effect at `time_ms` from a time-sorted list of points."""
    times = [p.time_ms for p in timing_points]
    end = bisect.bisect_right(times, time_ms)
    if end == 0:
        return 1.0
    group_time = times[end - 1]
    start = bisect.bisect_left(times, group_time)
    group = timing_points[start:end]
    greens = [p for p in group if not p.uninherited]
    return (greens[-1] if greens else group[-1]).slider_velocity


def _group_velocities(timing_points: list[TimingPoint]) -> list[float]:
    """For each point of a time-sorted list, the SV in effect from its time on."""
    velocities = [1.0] * len(timing_points)
    start = 0
    while start < len(timing_points):
        end = start
        while end < len(timing_points) and timing_points[end].time_ms == timing_points[start].time_ms:
            end += 1
        group = timing_points[start:end]
        greens = [p for p in group if not p.uninherited]
        velocities[start:end] = [(greens[-1] if greens else group[-1]).slider_velocity] * (end - start)
        start = end
    return velocities


def optional_int(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        number = optional_float(value)
        return int(number) if number is not None and math.isfinite(number) else None


def optional_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
