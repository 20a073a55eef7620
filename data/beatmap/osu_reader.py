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

import hashlib
import math
import os
from pathlib import Path

from data.beatmap.curves import slider_path_length
from data.beatmap.osu_file import (
    COMBO_SKIP_MASK,
    COMBO_SKIP_SHIFT,
    HEADER,
    LATEST_FORMAT_VERSION,
    MAX_ANCHOR_PX,
    MAX_COORDINATE_PX,
    MAX_PARSE_VALUE,
    MAX_SLIDES,
    MODE_NAMES,
    REPLAY_STRING_MARKER,
    SECTION,
    TYPE_CIRCLE,
    TYPE_HOLD,
    TYPE_NEW_COMBO,
    TYPE_SLIDER,
    TYPE_SPINNER,
    Beatmap,
    HitObject,
    TimingPoint,
    ends_on_repeated_point,
    optional_float,
    optional_int,
)
from data.errors import BadInputError


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
    mode = optional_int(general.get("Mode")) or 0
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
    multiplier = optional_float(beatmap.difficulty.get("SliderMultiplier"))
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
