"""Pack a generated difficulty with its source set's audio and background into an .osz osu! imports.

An .osz is a plain zip of one beatmap set's folder (https://osu.ppy.sh/wiki/en/Client/File_formats/osz_(file_format)).
The files a difficulty needs are named inside it: [General] AudioFilename, and the background line of [Events]
(`0,0,"bg.jpg",0,0`; lazer also reads the event type by name, `Background`). Custom hitsound samples sit in the
set's root under fixed names (https://osu.ppy.sh/wiki/en/Skinning/osu%21#hitsounds), so they come along too.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from data.atomic import atomic_path
from data.beatmap.osu_file import Beatmap
from data.errors import BadInputError

BACKGROUND_EVENT_TYPES = ("0", "background")
HITSOUND_SAMPLE = re.compile(
    r"^(normal|soft|drum)-(hitnormal|hitclap|hitwhistle|hitfinish|slidertick|sliderslide|sliderwhistle)\d*"
    r"\.(wav|ogg|mp3)$",
    re.IGNORECASE,
)
# Fixed member timestamp: the same inputs give the same archive bytes.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FORBIDDEN_NAME_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


@dataclass
class SetAssets:
    """The files a difficulty takes from its set: name in the archive -> bytes, and the names not found."""

    files: dict[str, bytes] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def audio_filename(beatmap: Beatmap) -> str | None:
    """The song file [General] names, or None for a map without one."""
    name = beatmap.general.get("AudioFilename", "").strip()
    return _safe_member(name)


def background_filename(beatmap: Beatmap) -> str | None:
    """The background image of the [Events] section, or None."""
    for line in beatmap.sections.get("Events", []):
        if not line or line[0] in " _" or line.startswith("//"):
            continue  # storyboard commands are indented; comments start with //
        fields = _event_fields(line)
        if len(fields) >= 3 and fields[0].strip().lower() in BACKGROUND_EVENT_TYPES:
            return _safe_member(fields[2])
    return None


def referenced_files(beatmap: Beatmap) -> list[str]:
    """Audio then background, as the map names them (without duplicates)."""
    names = [audio_filename(beatmap), background_filename(beatmap)]
    out: list[str] = []
    for name in names:
        if name and name.lower() not in (n.lower() for n in out):
            out.append(name)
    return out


def set_source(input_path: str | os.PathLike) -> Path:
    """Where a beatmap's set lives: the .osz itself, the set folder, or the folder of a lone .osu."""
    path = Path(input_path)
    if path.is_dir() or path.suffix.lower() == ".osz":
        return path
    return path.parent


def collect_assets(input_path: str | os.PathLike, beatmap: Beatmap) -> SetAssets:
    """Audio, background and custom hitsounds of `beatmap`'s set, from an .osz, a set folder or beside an .osu."""
    source = set_source(input_path)
    if source.is_dir():
        files = {p.relative_to(source).as_posix(): p for p in sorted(source.rglob("*")) if p.is_file()}
        return _pick_assets(beatmap, list(files), lambda name: files[name].read_bytes())
    try:
        with zipfile.ZipFile(source) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            return _pick_assets(beatmap, names, archive.read)
    except (zipfile.BadZipFile, OSError) as err:
        raise BadInputError(source, f"not a readable .osz archive ({err})") from None


def _pick_assets(beatmap: Beatmap, available: list[str], read: Callable[[str], bytes]) -> SetAssets:
    by_lower = {name.lower(): name for name in available}
    wanted = referenced_files(beatmap)
    wanted += [n for n in sorted(available) if "/" not in n and HITSOUND_SAMPLE.match(n)]
    assets = SetAssets()
    for name in wanted:
        # osu! runs on case-insensitive file systems: "BG.JPG" in the map finds "bg.jpg" in the set
        found = by_lower.get(name.lower())
        if found is None:
            assets.missing.append(name)
        elif name not in assets.files:
            assets.files[name] = read(found)
    return assets


def osu_member_name(m: Beatmap, version: str | None = None) -> str:
    """The file name osu! gives a difficulty: "Artist - Title (Creator) [Version].osu", made safe for any disk."""
    name = f"{m.artist} - {m.title} ({m.creator}) [{version if version is not None else m.version}].osu"
    return safe_filename(name).strip()


def safe_filename(name: str) -> str:
    """`name` with the characters no disk allows in a file name replaced by '_'."""
    return FORBIDDEN_NAME_CHARS.sub("_", name)


def write_osz(path: str | os.PathLike, members: dict[str, bytes]) -> None:
    """Write `members` (archive name -> bytes) as a flat .osz, atomically and with fixed timestamps."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)


def export_osz(
    path: str | os.PathLike,
    input_path: str | os.PathLike,
    source: Beatmap,
    osu_files: dict[str, bytes],
) -> SetAssets:
    """Write an .osz of the new difficulties (name -> bytes) with the source set's assets; return what was packed."""
    assets = collect_assets(input_path, source)
    members = dict(osu_files)
    for name, data in assets.files.items():
        members.setdefault(name, data)
    write_osz(path, members)
    return assets


def _event_fields(line: str) -> list[str]:
    """Comma-separated fields of an event line, a quoted file name kept whole."""
    fields, current, quoted = [], [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def _safe_member(name: str) -> str | None:
    """A relative name inside the set with forward slashes, or None for an empty or escaping one."""
    name = name.strip().strip('"').replace("\\", "/")
    if not name:
        return None
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name):
        return None
    return "/".join(parts)
