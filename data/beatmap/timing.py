"""Timing points a remap adds or adjusts so every slider keeps its duration, and the line edits that write them."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from data.beatmap.osu_file import Beatmap, TimingPoint

KIAI = 1


def replace_line(lines: list[str], number: int, text: str) -> None:
    ending = "\r" if lines[number].endswith("\r") else ""
    lines[number] = text + ending


def tickless(beatmap: Beatmap, time_ms: float) -> bool:
    """True when the green line in effect at `time_ms` has a NaN beat length."""
    points = beatmap.timing_points
    end = bisect.bisect_right([p.time_ms for p in points], time_ms)
    if end == 0:
        return False
    group = [p for p in points[:end] if p.time_ms == points[end - 1].time_ms]
    greens = [p for p in group if not p.uninherited]
    return bool(greens) and math.isnan(greens[-1].beat_length)


def retime_sliders(beatmap: Beatmap, new_lengths: dict[int, float], lines: list[str]) -> None:
    """Add or adjust green lines so every slider keeps its span duration (so its end, ticks and repeats)."""
    if not new_lengths:
        return
    points = [_MutablePoint(p, p.beat_length) for p in beatmap.timing_points]  # time-sorted, stable
    times = [q.point.time_ms for q in points]
    done_times = set()
    for index, h in enumerate(beatmap.hit_objects):
        if h.kind != "slider" or h.time_ms in done_times:
            continue  # the first slider at a time sets the SV; decode scaled the others' lengths alike
        done_times.add(h.time_ms)
        source_sv = beatmap.slider_velocity_at(h.time_ms)
        wanted = source_sv * new_lengths[index] / h.length_px if index in new_lengths else source_sv
        end = bisect.bisect_right(times, h.time_ms)
        group = points[bisect.bisect_left(times, times[end - 1]) : end] if end else []
        if abs(_group_sv(group) - wanted) <= 1e-12 * wanted:
            continue
        at_time = [q for q in group if q.point.time_ms == h.time_ms and not q.point.uninherited]
        if at_time:
            at_time[-1].beat_length = -100.0 / wanted
            continue
        base = points[max(end - 1, 0)].point
        green = TimingPoint(
            time_ms=float(h.time_ms),
            beat_length=-100.0 / wanted,
            meter=base.meter,
            sample_set=base.sample_set,
            sample_index=base.sample_index,
            volume=base.volume,
            uninherited=False,
            effects=base.effects & KIAI,  # omit-first-barline belongs to red lines
            line_index=-1,
        )
        # it goes in the file after the line of the point before it
        green.line_index = points[end - 1].point.line_index if end else -1
        points.insert(end, _MutablePoint(green, green.beat_length, inserted=True))
        times.insert(end, green.time_ms)
    _write_timing(beatmap, points, lines)


@dataclass
class _MutablePoint:
    point: TimingPoint
    beat_length: float
    inserted: bool = False


def _group_sv(group: list[_MutablePoint]) -> float:
    """SV set by the points at one time (the last green one wins), 1 before any point."""
    greens = [q for q in group if not q.point.uninherited]
    if not greens:
        return 1.0
    return TimingPoint(0.0, greens[-1].beat_length, 4, 0, 0, 100, False, 0).slider_velocity


def _write_timing(beatmap: Beatmap, points: list[_MutablePoint], lines: list[str]) -> None:
    numbers = beatmap.section_line_numbers["TimingPoints"]
    section = beatmap.sections["TimingPoints"]
    after: dict[int, list[str]] = {}
    for q in points:
        p = q.point
        if not q.inserted:
            if q.beat_length != p.beat_length:
                fields = section[p.line_index].strip().split(",")
                fields[1] = repr(q.beat_length)
                replace_line(lines, numbers[p.line_index], ",".join(fields))
            continue
        text = ",".join(
            [
                _time_text(p.time_ms),
                repr(q.beat_length),
                str(p.meter),
                str(p.sample_set),
                str(p.sample_index),
                str(p.volume),
                "0",
                str(p.effects),
            ]
        )
        after.setdefault(p.line_index, []).append(text)
    # insert from the bottom up so earlier line numbers stay valid
    for section_index in sorted(after, reverse=True):
        texts = after[section_index]
        number = numbers[section_index] if section_index >= 0 else numbers[0] - 1
        ending = "\r" if lines[max(number, 0)].endswith("\r") else ""
        lines[number + 1 : number + 1] = [t + ending for t in texts]


def _time_text(time_ms: float) -> str:
    return str(int(time_ms)) if float(time_ms).is_integer() else repr(time_ms)
