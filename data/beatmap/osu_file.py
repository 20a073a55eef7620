"""Our own .osu reader: the parts of the format the codec needs, checked the way osu! checks them.

Format reference: https://osu.ppy.sh/wiki/en/Client/File_formats/osu_%28file_format%29
Behaviour on odd files follows osu!lazer's LegacyBeatmapDecoder (which mirrors osu!stable):
- a missing "osu file format" header is read as the latest version (14), like lazer's fallback decoder;
- slides <= 0 count as one span, a slider length <= 0 or missing means "the whole path";
- a catmull path ending on a doubled point is never extended, so a longer written length is cut to the
  drawn path (`length_px` is the length osu! plays, the line keeps what was written);
- timing points at one time: an inherited (green) point's slider velocity overrides the red point's;
- a slider whose curve has no control points and no length is a path of just the head, 0 px long (a ranked
  fixture has "B,2560,-1"); with a positive length ("L,1,46.875") its points were lost, and it is refused as
  bad input: lazer would play it as a 0 px slider, but nothing can be placed or remapped along it;
- a line osu!lazer cannot parse is skipped, as lazer logs and skips it (LegacyDecoder.ParseStreamInto): a
  timing point whose beat length is beyond lazer's parse limit (Aleph-0's "-1E+90" red line) and a slider
  line without a curve (fewer than 6 fields); the line's text stays in the file;
- slider anchors and lengths are accepted up to the 32-bit integer range osu! stores them in. osu!stable
  plays ranked sliders with anchors hundreds of thousands of px off-screen (Stargazer, crystallized,
  Mopemope [Aspire]); lazer drops them at its 131072 px limit (ppy/osu#6771), we keep them as stable does.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from data.errors import BadInputError

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
        return _optional_int(self.metadata.get("BeatmapID"))

    @property
    def beatmapset_id(self) -> int | None:
        return _optional_int(self.metadata.get("BeatmapSetID"))

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
        value = _optional_float(self.general.get("StackLeniency"))
        return 0.7 if value is None else value

    def _difficulty_value(self, key: str, default: float) -> float:
        value = _optional_float(self.difficulty.get(key))
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


# ---- reading ----------------------------------------------------------------------------------------------
def read_beatmap(path: str | os.PathLike) -> Beatmap:
    """Read and parse an .osu file; BadInputError for anything osu! would not load."""
    p = Path(path)
    if p.is_dir():
        raise BadInputError(path, "is a folder, not an .osu file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise BadInputError(path, "no such file") from None
    except OSError as err:
        raise BadInputError(path, f"cannot read: {err.strerror or err}") from None
    return parse_beatmap(data, str(path))


def parse_beatmap(data: bytes, path: str | None = None) -> Beatmap:
    """Parse the bytes of an .osu file."""
    text, encoding = _decode_text(data, path)
    lines = text.split("\n")
    crlf = sum(1 for line in lines if line.endswith("\r"))
    newline = "\r\n" if crlf * 2 >= max(len(lines) - 1, 1) else "\n"
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]

    format_version, sections, line_numbers = _split_sections(lines, path)
    general = _key_values(sections.get("General", []))
    mode = _optional_int(general.get("Mode")) or 0
    if mode != 0:
        name = MODE_NAMES.get(mode, "unknown mode")
        raise BadInputError(path, f"{name} map (Mode {mode}); only osu!standard is supported")

    beatmap = Beatmap(
        path=path,
        md5=hashlib.md5(data).hexdigest(),
        raw=data,
        format_version=format_version,
        general=general,
        metadata=_key_values(sections.get("Metadata", [])),
        difficulty=_key_values(sections.get("Difficulty", [])),
        sections=sections,
        timing_points=[],
        hit_objects=[],
        text=text,
        newline=newline,
        encoding=encoding,
        section_line_numbers=line_numbers,
    )
    _check_difficulty(beatmap, path)
    beatmap.timing_points = _parse_timing_points(sections.get("TimingPoints", []), path)
    objects = _parse_hit_objects(sections.get("HitObjects", []), path)
    objects.sort(key=lambda h: h.time_ms)  # stable, as osu! sorts
    beatmap.hit_objects = objects
    from data.beatmap.curves import slider_path_length  # curves imports nothing from here; avoid a cycle anyway

    for h in objects:
        if h.kind != "slider":
            continue
        if not h.length_given:
            h.length_px = slider_path_length(h)
        elif ends_on_repeated_point(h):
            # osu! does not extend a path whose last two points are equal: it is as long as it is drawn
            h.length_px = min(h.length_px, slider_path_length(h))
        h.end_time_ms = h.time_ms + beatmap.slider_duration_ms(h) * h.slides
        if not math.isfinite(h.end_time_ms):
            raise BadInputError(path, f"slider at {h.time_ms} ms has no finite duration")
    return beatmap


def _decode_text(data: bytes, path: str | None) -> tuple[str, str]:
    if not data.strip():
        raise BadInputError(path, "empty file")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise BadInputError(path, "not an .osu file (broken UTF-16 text)") from None
    if b"\x00" in data:
        if _looks_like_replay(data):
            raise BadInputError(path, "is an .osr replay, not an .osu beatmap")
        raise BadInputError(path, "not an .osu file (binary data)")
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    try:
        return data.decode("utf-8"), encoding
    except UnicodeDecodeError:
        # osu!stable reads with the system code page when UTF-8 fails; latin-1 keeps every byte
        return data.decode("latin-1"), "latin-1"


def _looks_like_replay(data: bytes) -> bool:
    """An .osr starts with a game mode byte (0-3), a 4-byte game version and a string marker (0x0b)."""
    return len(data) > 5 and data[0] <= 3 and data[5] == REPLAY_STRING_MARKER


def _split_sections(lines: list[str], path: str | None) -> tuple[int, dict[str, list[str]], dict[str, list[int]]]:
    format_version = None
    sections: dict[str, list[str]] = {}
    numbers: dict[str, list[int]] = {}
    current: list[str] | None = None
    current_numbers: list[int] = []
    for number, line in enumerate(lines):
        if format_version is None and current is None:
            match = HEADER.match(line)
            if match:
                format_version = int(match.group(1))
                continue
        match = SECTION.match(line.strip()) if line.startswith("[") else None
        if match:
            name = match.group(1)
            current = sections.setdefault(name, [])
            current_numbers = numbers.setdefault(name, [])
            continue
        if current is not None:
            current.append(line)
            current_numbers.append(number)
        elif line.strip() and format_version is None:
            raise BadInputError(path, "not an .osu file (no 'osu file format' header)")
    if "HitObjects" not in sections:
        if not sections:
            raise BadInputError(path, "not an .osu file (no sections)")
        raise BadInputError(path, "no [HitObjects] section (truncated?)")
    return format_version or LATEST_FORMAT_VERSION, sections, numbers


def _key_values(lines: list[str]) -> dict[str, str]:
    values = {}
    for line in lines:
        if not line.strip() or line.startswith("//") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        values[key.strip()] = value.strip()
    return values


def _check_difficulty(beatmap: Beatmap, path: str | None) -> None:
    multiplier = _optional_float(beatmap.difficulty.get("SliderMultiplier"))
    if multiplier is not None and not (math.isfinite(multiplier) and multiplier > 0):
        raise BadInputError(path, f"SliderMultiplier {multiplier} is not a positive number")


def _parse_timing_points(lines: list[str], path: str | None) -> list[TimingPoint]:
    points = []
    for index, line in enumerate(lines):
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            time_ms = float(fields[0])
            beat_length = float(fields[1])
            meter = int(fields[2]) if len(fields) > 2 and fields[2] else 4
            sample_set = int(fields[3]) if len(fields) > 3 and fields[3] else 0
            sample_index = int(fields[4]) if len(fields) > 4 and fields[4] else 0
            volume = int(fields[5]) if len(fields) > 5 and fields[5] else 100
            uninherited = (fields[6] != "0") if len(fields) > 6 and fields[6] else True
            effects = int(fields[7]) if len(fields) > 7 and fields[7] else 0
        except (ValueError, IndexError):
            raise BadInputError(path, f"malformed timing point {line[:60]!r}") from None
        if not math.isfinite(time_ms):
            raise BadInputError(path, f"timing point time {fields[0]!r} is not a number")
        if abs(beat_length) > MAX_PARSE_VALUE:
            continue  # lazer's parser overflows on it and skips the line (Aleph-0 ends on a -1E+90 red line)
        if uninherited and not (math.isfinite(beat_length) and beat_length > 0):
            raise BadInputError(path, f"timing point at {time_ms:g} ms has beat length {fields[1]!r}")
        points.append(
            TimingPoint(time_ms, beat_length, meter, sample_set, sample_index, volume, uninherited, effects, index)
        )
    points.sort(key=lambda p: p.time_ms)
    if not any(p.uninherited for p in points):
        raise BadInputError(path, "no uninherited timing point (the map has no BPM)")
    return points


def _parse_hit_objects(lines: list[str], path: str | None) -> list[HitObject]:
    objects = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        obj = _parse_hit_object(stripped, index, path)
        if obj is not None:
            objects.append(obj)
    if not objects:
        raise BadInputError(path, "no hit objects")
    return objects


def _number(text: str, what: str, line: str, path: str | None, limit: float = MAX_COORDINATE_PX) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInputError(path, f"hit object {what} {text!r} is not a number in {line[:60]!r}") from None
    if not math.isfinite(value):
        raise BadInputError(path, f"hit object {what} {text!r} is not a finite number in {line[:60]!r}")
    if abs(value) > limit:
        raise BadInputError(path, f"hit object {what} {text!r} is out of range in {line[:60]!r}")
    return value


def _parse_hit_object(line: str, index: int, path: str | None) -> HitObject | None:
    fields = line.split(",")
    if len(fields) < 5:
        raise BadInputError(path, f"truncated hit object line {line[:60]!r}")
    x = _number(fields[0], "x", line, path)
    y = _number(fields[1], "y", line, path)
    time_ms = round(_number(fields[2], "time", line, path, limit=1e9))
    try:
        type_bits = int(fields[3])
        hitsound = int(fields[4]) if fields[4].strip() else 0
    except ValueError:
        raise BadInputError(path, f"malformed hit object type in {line[:60]!r}") from None
    new_combo = bool(type_bits & TYPE_NEW_COMBO)
    combo_skip = (type_bits >> COMBO_SKIP_SHIFT) & COMBO_SKIP_MASK
    common = dict(x=x, y=y, time_ms=time_ms, new_combo=new_combo, combo_skip=combo_skip, hitsound=hitsound)
    if type_bits & TYPE_CIRCLE:
        return HitObject(
            kind="circle",
            curve_type=None,
            control_points=[],
            slides=1,
            length_px=0.0,
            end_time_ms=float(time_ms),
            line_index=index,
            **common,
        )
    if type_bits & TYPE_SLIDER:
        return _parse_slider(fields, line, index, path, common)
    if type_bits & TYPE_SPINNER:
        if len(fields) < 6:
            raise BadInputError(path, f"spinner without end time in {line[:60]!r}")
        end = _number(fields[5], "spinner end time", line, path, limit=1e9)
        return HitObject(
            kind="spinner",
            curve_type=None,
            control_points=[],
            slides=1,
            length_px=0.0,
            end_time_ms=float(max(end, time_ms)),
            line_index=index,
            **common,
        )
    if type_bits & TYPE_HOLD:
        raise BadInputError(path, "osu!mania hold note in an osu!standard map")
    raise BadInputError(path, f"hit object of unknown type {type_bits} in {line[:60]!r}")


def _parse_slider(fields: list[str], line: str, index: int, path: str | None, common: dict) -> HitObject | None:
    if len(fields) < 6:
        return None  # lazer cannot read a slider line without a curve and skips it
    tokens = fields[5].split("|")
    points: list[tuple[float, float]] = []
    segment_types: list[tuple[int, str]] = []
    for token in tokens:
        token = token.strip()
        if not token:
            continue
        if token[0].isalpha():
            segment_types.append((len(points), token[0].upper()))
            continue
        xy = token.split(":")
        if len(xy) != 2:
            raise BadInputError(path, f"malformed slider point {token!r} in {line[:60]!r}")
        x, y = (_number(v, f"slider {axis}", line, path, MAX_ANCHOR_PX) for v, axis in zip(xy, "xy", strict=True))
        points.append((x, y))
    if not segment_types or segment_types[0][0] != 0:
        segment_types.insert(0, (0, "B"))  # osu! reads a missing letter as a bezier
    try:
        slides = int(fields[6]) if len(fields) > 6 and fields[6].strip() else 1
    except ValueError:
        raise BadInputError(path, f"malformed slider repeat count in {line[:60]!r}") from None
    if slides > MAX_SLIDES:
        raise BadInputError(path, f"slider with {slides} repeats (osu! allows {MAX_SLIDES})")
    slides = max(slides, 1)
    length_px = 0.0
    if len(fields) > 7 and fields[7].strip():
        length_px = _number(fields[7], "slider length", line, path, limit=MAX_PARSE_VALUE)
    if not points and length_px > 0:
        raise BadInputError(path, f"slider without control points but {length_px:g} px long in {line[:60]!r}")
    given = length_px > 0 and bool(points)
    return HitObject(
        kind="slider",
        curve_type=segment_types[0][1],
        control_points=points,
        slides=slides,
        length_px=length_px,
        end_time_ms=float(common["time_ms"]),
        line_index=index,
        segment_types=segment_types,
        length_given=given,
        **common,
    )


def _optional_int(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        number = _optional_float(value)
        return int(number) if number is not None and math.isfinite(number) else None


def _optional_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
