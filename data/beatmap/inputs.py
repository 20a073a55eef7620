"""Open the one beatmap a user points at: an .osu, an .osz, or a set folder, picking a difficulty by name."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from data.beatmap.osu_file import Beatmap
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.errors import BadInputError


def _standard_maps(candidates: list[tuple[str, bytes]], where: Path) -> list[Beatmap]:
    maps, problems = [], []
    for name, data in candidates:
        try:
            maps.append(parse_beatmap(data, f"{where}/{name}"))
        except BadInputError as err:
            problems.append(err.problem)
    if not maps:
        detail = f" ({problems[0]})" if problems else ""
        raise BadInputError(where, f"holds no osu!standard map{detail}")
    return maps


def _pick(maps: list[Beatmap], difficulty: str | None, where: Path) -> Beatmap:
    if difficulty is not None:
        chosen = [m for m in maps if m.version.casefold() == difficulty.casefold()]
        if not chosen:
            names = ", ".join(sorted(repr(m.version) for m in maps))
            raise BadInputError(where, f"has no difficulty {difficulty!r}; it has {names}")
        return chosen[0]
    if len(maps) > 1:
        names = ", ".join(sorted(repr(m.version) for m in maps))
        raise BadInputError(where, f"holds {len(maps)} standard difficulties, choose one with --difficulty: {names}")
    return maps[0]


def read_osz_members(path: Path) -> list[tuple[str, bytes]]:
    """(member name, bytes) of every .osu in an .osz archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [(n, archive.read(n)) for n in archive.namelist() if n.lower().endswith(".osu")]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise BadInputError(path, f"not a readable .osz archive ({err})") from None


def read_beatmap_input(path: str | os.PathLike, difficulty: str | None = None) -> Beatmap:
    """The beatmap at `path`: an .osu file, or one standard difficulty of an .osz or set folder."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(path, "no such file or folder")
    if path.is_dir():
        files = sorted(path.glob("*.osu"))
        if not files:
            raise BadInputError(path, "is a folder without .osu files")
        return _pick(_standard_maps([(f.name, f.read_bytes()) for f in files], path), difficulty, path)
    if path.suffix.lower() == ".osz":
        return _pick(_standard_maps(read_osz_members(path), path), difficulty, path)
    return read_beatmap(path)
