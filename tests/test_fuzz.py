"""Fuzzing the .osu and .osr readers: any bytes give a result or BadInputError, never another error or a hang.

Inputs are arbitrary bytes and real fixture files mutated the way files really break: truncated, bytes flipped,
lines dropped, doubled or swapped, numbers replaced by garbage. Derandomized, so a failure reproduces.
A beatmap the reader accepts must also encode, and decode with moved positions to a readable map (what
sample.py does with it).
"""

from __future__ import annotations

import re
import signal
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.beatmap.codec import decode_bytes, encode
from data.beatmap.osu_reader import parse_beatmap
from data.errors import BadInputError
from data.replay.osr import parse_replay
from tests.conftest import FIXTURES

HANG_LIMIT_S = 20  # one parse of a fixture-sized file takes milliseconds; this long is a hang
FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MAPS = [p.read_bytes() for p in sorted((FIXTURES / "songs").rglob("*.osu"))]
REPLAYS = [p.read_bytes() for p in sorted((FIXTURES / "replays").glob("*.osr"))]
# What a broken number in an .osu looks like: empty, not a number, not finite, huge, negative, fractional.
BAD_NUMBERS = [
    "",
    "x",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "-1e309",
    "1e12",
    "-99999999",
    "0",
    "-1",
    "0.5",
    "2147483648",
]
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?")


@contextmanager
def no_hang(limit_s: int = HANG_LIMIT_S):
    """Fail instead of waiting forever: hypothesis' deadline only measures examples that return."""

    def alarm(signum, frame):
        raise TimeoutError(f"reader still running after {limit_s} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(limit_s)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_beatmap(data: bytes) -> None:
    with no_hang():
        try:
            beatmap = parse_beatmap(data, "fuzz.osu")
        except BadInputError as err:
            assert str(err).startswith("fuzz.osu: ") and "\n" not in str(err)
            return
        try:
            encode(beatmap)
        except BadInputError:
            pass


def check_remap(data: bytes, seed: int) -> None:
    """What sample.py does with an accepted map: encode, move every datapoint, decode; the output must read."""
    with no_hang():
        try:
            beatmap = parse_beatmap(data, "fuzz.osu")
            datapoints = encode(beatmap)
        except BadInputError:
            return
        moved = datapoints.position + np.random.default_rng(seed).uniform(-40, 40, datapoints.position.shape)
        parse_beatmap(decode_bytes(beatmap, moved), "remapped.osu")


def check_replay(data: bytes) -> None:
    with no_hang():
        try:
            record = parse_replay(data, "fuzz.osr")
        except BadInputError as err:
            assert str(err).startswith("fuzz.osr: ")
            return
        assert len(record.frames) > 0 and len(record.beatmap_md5) == 32


# ---------------------------------------------------------------- mutations of real files


@st.composite
def mutated(draw, originals: list[bytes], text: bool) -> bytes:
    """A real file with 1-4 damages of the kinds real files suffer."""
    data = draw(st.sampled_from(originals))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"] + (["number", "lines"] if text else [])))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            data = data[:at]
        elif kind == "flip":
            span = draw(st.binary(min_size=1, max_size=16))
            data = (
                data[:at]
                + bytes(a ^ b for a, b in zip(data[at : at + len(span)], span, strict=False))
                + data[at + len(span) :]
            )
        elif kind == "insert":
            data = data[:at] + draw(st.binary(max_size=32)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 64)) :]
        elif kind == "number":
            numbers = list(NUMBER.finditer(data))
            if numbers:
                match = numbers[draw(st.integers(0, len(numbers) - 1))]
                garbage = draw(st.sampled_from(BAD_NUMBERS)).encode()
                data = data[: match.start()] + garbage + data[match.end() :]
        else:  # drop, double or swap whole lines
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            action = draw(st.sampled_from(["drop", "double", "swap"]))
            if action == "drop":
                del lines[i]
            elif action == "double":
                lines.insert(i, lines[j])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
    return data


# ---------------------------------------------------------------- the properties


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_as_beatmap(data):
    check_beatmap(data)


@FUZZ
@given(st.text(max_size=400).map(lambda t: ("osu file format v14\n[General]\nMode: 0\n" + t).encode()))
def test_any_text_after_a_header_as_beatmap(data):
    check_beatmap(data)


@FUZZ
@given(mutated(MAPS, text=True))
def test_mutated_real_beatmaps(data):
    check_beatmap(data)


@settings(FUZZ, max_examples=60)
@given(mutated(MAPS, text=True), st.integers(0, 2**16))
def test_mutated_real_beatmaps_remap_to_readable_maps(data, seed):
    check_remap(data, seed)


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_as_replay(data):
    check_replay(data)


@FUZZ
@given(mutated(REPLAYS, text=False))
def test_mutated_real_replays(data):
    check_replay(data)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_every_fixture_truncated_is_refused_or_read(cut):
    for data in MAPS:
        check_beatmap(data[: int(len(data) * cut)])
    for data in REPLAYS:
        with pytest.raises(BadInputError):
            parse_replay(data[: int(len(data) * cut)], "cut.osr")


def test_fixtures_themselves_pass():
    """The properties hold trivially for real files: they are read, not refused."""
    for data in MAPS:
        assert parse_beatmap(data).hit_objects
    for data in REPLAYS:
        assert len(parse_replay(data).frames) > 0


def test_hang_guard_fires():
    with pytest.raises(TimeoutError), no_hang(1):
        while True:
            pass


assert Path(__file__).parent == FIXTURES.parent  # fixtures are found relative to this file
