"""Bad and odd inputs, built at test time from the real fixtures (never synthetic stand-ins for maps).

Every builder takes (fixtures folder, destination folder) and returns the path to hand an entry point.
BAD_BEATMAPS must be refused wherever an .osu is expected; ODD_BEATMAPS are legal and must work; OSU_QUIRKS
are odd lines of real ranked maps that must be read the way osu! reads them.
"""

from __future__ import annotations

import random
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

# A small real map (v9, CRLF, 102 objects, sliders and green lines): quick to sample.
BASE_MAP = "mutsuhikoizumiredgoose Mutsuhiko Izumi - Red Goose/Mutsuhiko Izumi - Red Goose (nold_1702) [ERT Basic].osu"
# A real map with LF line endings and a BOM.
LF_MAP = "unknownunknown Unknown - Unknown/Unknown - Unknown (Unknown Creator) [Normal].osu"
# The longest fixture (814 objects), repeated in time for the 20000-object map.
LONG_MAP = "700886 Shano x 40mP - Natsukoi Hanabi/Shano x 40mP - Natsukoi Hanabi (MinG3012) [TV Size].osu"
MANY_OBJECTS = 20_000
A_REPLAY = "63643e9294e8265f0d098284830d8ba5.osr"

Builder = Callable[[Path, Path], Path]


# ---------------------------------------------------------------- helpers on the text of a real map


def base_text(fixtures: Path, name: str = BASE_MAP) -> str:
    return (fixtures / "songs" / name).read_bytes().decode("utf-8-sig")


def _split(text: str) -> tuple[str, list[str], str]:
    """(everything up to and including the [HitObjects] line, object lines, newline)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    head, _, tail = text.partition("[HitObjects]")
    objects = [line for line in tail.split(newline) if line.strip()]
    return head + "[HitObjects]" + newline, objects, newline


def _join(head: str, objects: list[str], newline: str) -> str:
    return head + newline.join(objects) + newline


def _section_lines(text: str, section: str) -> list[str]:
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    start = lines.index(f"[{section}]") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    return [line for line in lines[start:end] if line.strip() and not line.startswith("//")]


def _replace_line(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def _is_slider(line: str) -> bool:
    return int(line.split(",")[3]) & 2 != 0


def _first_slider(objects: list[str]) -> str:
    return next(line for line in objects if _is_slider(line))


def _write(dest: Path, name: str, data: bytes | str) -> Path:
    path = dest / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _mode_copy(fixtures: Path, mode: int) -> str:
    text = base_text(fixtures)
    return re.sub(r"(?m)^Mode:\s*0", f"Mode: {mode}", text, count=1)


def _zip(dest: Path, name: str, members: dict[str, bytes]) -> Path:
    path = dest / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


# ---------------------------------------------------------------- refused wherever an .osu is expected


def empty(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "empty.osu", b"")


def binary(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "binary.osu", zlib.compress((fixtures / "songs" / BASE_MAP).read_bytes()))


def truncated_before_objects(fixtures: Path, dest: Path) -> Path:
    text = base_text(fixtures)
    return _write(dest, "truncated_before_objects.osu", text[: text.index("[HitObjects]") - 1])


def truncated_mid_object(fixtures: Path, dest: Path) -> Path:
    head, objects, newline = _split(base_text(fixtures))
    cut = objects[-1].split(",")
    return _write(dest, "truncated_mid_object.osu", _join(head, objects[:-1], newline) + ",".join(cut[:2]) + ",")


def taiko(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "taiko.osu", _mode_copy(fixtures, 1))


def catch(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "catch.osu", _mode_copy(fixtures, 2))


def mania(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "mania.osu", _mode_copy(fixtures, 3))


def no_hit_objects(fixtures: Path, dest: Path) -> Path:
    head, _, _ = _split(base_text(fixtures))
    return _write(dest, "no_hit_objects.osu", head)


def no_timing_points(fixtures: Path, dest: Path) -> Path:
    text = base_text(fixtures)
    for line in _section_lines(text, "TimingPoints"):
        text = _replace_line(text, line + ("\r\n" if "\r\n" in text else "\n"), "")
    return _write(dest, "no_timing_points.osu", text)


def _with_object_field(fixtures: Path, dest: Path, name: str, field: int, value: str) -> Path:
    head, objects, newline = _split(base_text(fixtures))
    middle = len(objects) // 2
    fields = objects[middle].split(",")
    fields[field] = value
    objects[middle] = ",".join(fields)
    return _write(dest, name, _join(head, objects, newline))


def nan_coordinate(fixtures: Path, dest: Path) -> Path:
    return _with_object_field(fixtures, dest, "nan_coordinate.osu", 0, "NaN")


def absurd_coordinate(fixtures: Path, dest: Path) -> Path:
    return _with_object_field(fixtures, dest, "absurd_coordinate.osu", 1, "1e12")


def infinite_time(fixtures: Path, dest: Path) -> Path:
    return _with_object_field(fixtures, dest, "infinite_time.osu", 2, "inf")


def zero_beat_length(fixtures: Path, dest: Path) -> Path:
    text = base_text(fixtures)
    red = next(line for line in _section_lines(text, "TimingPoints") if line.split(",")[6] == "1")
    fields = red.split(",")
    fields[1] = "0"
    return _write(dest, "zero_beat_length.osu", _replace_line(text, red, ",".join(fields)))


def osz_without_standard_map(fixtures: Path, dest: Path) -> Path:
    members = {"taiko.osu": _mode_copy(fixtures, 1).encode(), "mania.osu": _mode_copy(fixtures, 3).encode()}
    return _zip(dest, "no_standard.osz", members)


def corrupt_osz(fixtures: Path, dest: Path) -> Path:
    whole = _zip(dest, "whole.osz", {"map.osu": (fixtures / "songs" / BASE_MAP).read_bytes()}).read_bytes()
    (dest / "whole.osz").unlink()
    return _write(dest, "truncated.osz", whole[: len(whole) // 2])


def missing_path(fixtures: Path, dest: Path) -> Path:
    return dest / "does_not_exist.osu"


def folder_instead_of_file(fixtures: Path, dest: Path) -> Path:
    folder = dest / "a_folder.osu"
    folder.mkdir(parents=True)
    return folder


def replay_as_beatmap(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "replay.osr", (fixtures / "replays" / A_REPLAY).read_bytes())


def replay_named_osu(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "replay_renamed.osu", (fixtures / "replays" / A_REPLAY).read_bytes())


def slider_without_control_points(fixtures: Path, dest: Path) -> Path:
    """A slider with a curve letter and a length but no points ("L,1,46.875"), as a corpus map has."""
    head, objects, newline = _split(base_text(fixtures))
    slider = _first_slider(objects)
    fields = slider.split(",")
    fields[5] = fields[5].split("|")[0]  # the curve letter only
    objects[objects.index(slider)] = ",".join(fields)
    return _write(dest, "slider_without_control_points.osu", _join(head, objects, newline))


BAD_BEATMAPS: dict[str, Builder] = {
    f.__name__: f
    for f in (
        slider_without_control_points,
        empty,
        binary,
        truncated_before_objects,
        truncated_mid_object,
        taiko,
        catch,
        mania,
        no_hit_objects,
        no_timing_points,
        nan_coordinate,
        absurd_coordinate,
        infinite_time,
        zero_beat_length,
        osz_without_standard_map,
        corrupt_osz,
        missing_path,
        folder_instead_of_file,
        replay_as_beatmap,
        replay_named_osu,
    )
}


# ---------------------------------------------------------------- legal but odd: must work


def utf16(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "utf16.osu", base_text(fixtures).encode("utf-16"))


def crlf(fixtures: Path, dest: Path) -> Path:
    text = base_text(fixtures, LF_MAP)
    assert "\r\n" not in text
    return _write(dest, "crlf.osu", "\ufeff" + text.replace("\n", "\r\n"))


def lf(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "lf.osu", base_text(fixtures).replace("\r\n", "\n"))


def one_object(fixtures: Path, dest: Path) -> Path:
    head, objects, newline = _split(base_text(fixtures))
    return _write(dest, "one_object.osu", _join(head, [_first_slider(objects)], newline))


def unsorted_times(fixtures: Path, dest: Path) -> Path:
    """Object lines shuffled: osu! sorts objects by time when it loads a map."""
    head, objects, newline = _split(base_text(fixtures))
    random.Random(0).shuffle(objects)
    return _write(dest, "unsorted_times.osu", _join(head, objects, newline))


def unsorted_timing_points(fixtures: Path, dest: Path) -> Path:
    """Timing lines in reverse order: osu! sorts them by time too."""
    text = base_text(fixtures)
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = _section_lines(text, "TimingPoints")
    block = newline.join(lines)
    assert block in text
    return _write(dest, "unsorted_timing_points.osu", text.replace(block, newline.join(reversed(lines)), 1))


def many_objects(fixtures: Path, dest: Path) -> Path:
    """~20000 objects: the longest fixture's objects repeated later and later in time, under its timing."""
    head, objects, newline = _split(base_text(fixtures, LONG_MAP))
    times = [int(float(line.split(",")[2])) for line in objects]
    period = max(times) - min(times) + 1000
    out: list[str] = []
    repeat = 0
    while len(out) < MANY_OBJECTS:
        for line in objects:
            fields = line.split(",")
            shift = repeat * period
            fields[2] = str(int(float(fields[2])) + shift)
            if int(fields[3]) & 8:  # a spinner's end time moves with it
                fields[5] = str(int(float(fields[5])) + shift)
            out.append(",".join(fields))
        repeat += 1
    return _write(dest, "many_objects.osu", _join(head, out, newline))


def osz_with_one_standard_map(fixtures: Path, dest: Path) -> Path:
    members = {
        "standard.osu": (fixtures / "songs" / BASE_MAP).read_bytes(),
        "taiko.osu": _mode_copy(fixtures, 1).encode(),
    }
    return _zip(dest, "one_standard.osz", members)


# ---------------------------------------------------------------- odd lines of ranked maps that osu! loads
# Each carries, on a line of a real fixture, the odd value a real ranked or loved map in the corpus has.


def far_off_anchor(fixtures: Path, dest: Path) -> Path:
    """A slider anchor 259088 px off-screen, as in Stargazer [Starg-Azer isn't so great? Are you kidding me?]."""
    head, objects, newline = _split(base_text(fixtures))
    slider = _first_slider(objects)
    fields = slider.split(",")
    tokens = fields[5].split("|")
    tokens.insert(len(tokens) - 1, "-36047:-259088")
    fields[5] = "|".join(tokens)
    objects[objects.index(slider)] = ",".join(fields)
    return _write(dest, "far_off_anchor.osu", _join(head, objects, newline))


def overflowing_red_line(fixtures: Path, dest: Path) -> Path:
    """A last red line with beat length -1E+90, as LeaF - Aleph-0 [Omega] ends with."""
    text = base_text(fixtures)
    last = _section_lines(text, "TimingPoints")[-1]
    fields = last.split(",")
    fields[1], fields[6] = "-1E+90", "1"
    newline = "\r\n" if "\r\n" in text else "\n"
    return _write(dest, "overflowing_red_line.osu", _replace_line(text, last, last + newline + ",".join(fields)))


def slider_without_curve(fixtures: Path, dest: Path) -> Path:
    """A slider line cut after its hitsound ("327,245,301,2,0"), as in APPPP - Hell above [AI Hard]."""
    head, objects, newline = _split(base_text(fixtures))
    slider = _first_slider(objects)
    objects[objects.index(slider)] = ",".join(slider.split(",")[:5])
    return _write(dest, "slider_without_curve.osu", _join(head, objects, newline))


OSU_QUIRKS: dict[str, Builder] = {f.__name__: f for f in (far_off_anchor, overflowing_red_line, slider_without_curve)}


ODD_BEATMAPS: dict[str, Builder] = {
    f.__name__: f
    for f in (
        utf16,
        crlf,
        lf,
        one_object,
        unsorted_times,
        unsorted_timing_points,
        many_objects,
        osz_with_one_standard_map,
    )
}


# ---------------------------------------------------------------- replays and checkpoints


def truncated_replay(fixtures: Path, dest: Path) -> Path:
    data = (fixtures / "replays" / A_REPLAY).read_bytes()
    return _write(dest, "truncated.osr", data[: len(data) // 2])


def corrupt_replay(fixtures: Path, dest: Path) -> Path:
    """The compressed frames overwritten in the middle: the LZMA stream no longer decodes."""
    data = bytearray((fixtures / "replays" / A_REPLAY).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    return _write(dest, "corrupt.osr", bytes(data))


def beatmap_as_replay(fixtures: Path, dest: Path) -> Path:
    return _write(dest, "beatmap.osr", (fixtures / "songs" / BASE_MAP).read_bytes())


BAD_REPLAYS: dict[str, Builder] = {f.__name__: f for f in (truncated_replay, corrupt_replay, beatmap_as_replay)}


def bad_checkpoints(checkpoint: Path, fixtures: Path, dest: Path) -> dict[str, Path]:
    """Broken copies of a real checkpoint, plus other files where a checkpoint is expected."""
    data = checkpoint.read_bytes()

    def flipped(at: int) -> bytes:
        """256 bytes inverted from `at`: at the start they hit the pickled layout, in the middle tensor bytes."""
        out = bytearray(data)
        out[at : at + 256] = bytes(b ^ 0xFF for b in out[at : at + 256])
        return bytes(out)

    folder = dest / "folder.pt"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "truncated": _write(dest, "truncated.pt", data[: len(data) // 2]),
        "header_only": _write(dest, "header_only.pt", data[:100]),
        "corrupt": _write(dest, "corrupt.pt", flipped(len(data) // 2)),
        "corrupt_start": _write(dest, "corrupt_start.pt", flipped(64)),
        "corrupt_end": _write(dest, "corrupt_end.pt", flipped(len(data) - 300)),
        "empty": _write(dest, "empty.pt", b""),
        "beatmap": _write(dest, "beatmap.pt", (fixtures / "songs" / BASE_MAP).read_bytes()),
        "missing": dest / "missing.pt",
        "folder": folder,
    }
