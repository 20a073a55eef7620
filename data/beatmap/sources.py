"""Find beatmaps in inputs: osu! Songs folders, plain folders of .osu, .osz archives, Mapperator datasets.

Walking only stats files; bytes are read later (in a worker) through `MapSource.read_bytes`, so finding
thousands of maps costs milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data.errors import BadInputError

OSU_SUFFIX = ".osu"
OSZ_SUFFIX = ".osz"
ARCHIVE_SEPARATOR = "::"  # source key of an archive member: "<archive path>::<member name>"
# A Mapperator dataset track (OliBomby/Mapperator): TrackNNNNN/metadata.json + TrackNNNNN/beatmaps/*.osu.
MAPPERATOR_METADATA = "metadata.json"
MAPPERATOR_BEATMAPS = "beatmaps"


@dataclass(frozen=True)
class MapSource:
    """One .osu found in an input, not yet read."""

    key: str  # stable and unique: absolute path, or archive path + ARCHIVE_SEPARATOR + member
    set_key: str  # the set it belongs to (set folder, archive or track, relative to its input root)
    stamp: str  # changes when the content may have changed: size + mtime (files), size + CRC (members)
    path: str  # the file to open: the .osu itself or the .osz holding it
    member: str | None = None  # member name inside the .osz
    beatmap_id: int | None = None  # from a Mapperator metadata.json, for .osu files that lack it
    beatmapset_id: int | None = None

    def read_bytes(self) -> bytes:
        """The raw bytes of the .osu (osu! hashes these for the MD5)."""
        if self.member is None:
            with open(self.path, "rb") as f:
                return f.read()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


def find_maps(
    inputs: list[str | os.PathLike], exclude: str | os.PathLike | None = None
) -> tuple[list[MapSource], list[tuple[str, str]]]:
    """All maps under `inputs` (but not under `exclude`), sorted by key, plus (path, reason) for what could not be
    listed. Raises BadInputError when an input does not exist or cannot be read at all.
    """
    found: dict[str, MapSource] = {}
    problems: list[tuple[str, str]] = []
    excluded = Path(exclude).resolve() if exclude is not None else None
    for raw in inputs:
        root = Path(raw).resolve()
        if not root.exists():
            raise BadInputError(raw, "input does not exist")
        if not os.access(root, os.R_OK):
            raise BadInputError(raw, "input is not readable")
        for source in _walk_input(root, problems, excluded):
            found.setdefault(source.key, source)
    return [found[k] for k in sorted(found)], problems


def _walk_input(root: Path, problems: list[tuple[str, str]], excluded: Path | None) -> Iterator[MapSource]:
    if root.is_file():
        yield from _sources_of_file(root, root.parent, problems)
        return
    try:
        os.listdir(root)
    except OSError as err:
        raise BadInputError(root, f"input is not readable ({err.strerror})") from None
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: problems.append((e.filename, "unreadable"))):
        here = Path(dirpath)
        # Sorted names so every run yields the same order; the excluded folder (a cache inside an input) is skipped.
        dirnames[:] = sorted(d for d in dirnames if excluded is None or here / d != excluded)
        if MAPPERATOR_METADATA in filenames and MAPPERATOR_BEATMAPS in dirnames:
            dirnames.remove(MAPPERATOR_BEATMAPS)
            yield from _sources_of_track(here, root, problems)
        for name in sorted(filenames):
            yield from _sources_of_file(here / name, root, problems)


def _sources_of_file(path: Path, root: Path, problems: list[tuple[str, str]]) -> Iterator[MapSource]:
    suffix = path.suffix.lower()
    if suffix == OSU_SUFFIX:
        stat = _stat(path, problems)
        if stat is not None:
            yield MapSource(str(path), _set_key(path.parent, root), _file_stamp(stat), str(path))
    elif suffix == OSZ_SUFFIX:
        yield from _sources_of_archive(path, root, problems)


def _sources_of_archive(path: Path, root: Path, problems: list[tuple[str, str]]) -> Iterator[MapSource]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if info.filename.lower().endswith(OSU_SUFFIX)]
    except (OSError, zipfile.BadZipFile) as err:
        problems.append((str(path), f"unreadable archive ({type(err).__name__})"))
        return
    set_key = _set_key(path.with_suffix(""), root)
    for info in sorted(members, key=lambda i: i.filename):
        if info.is_dir():
            continue
        yield MapSource(
            f"{path}{ARCHIVE_SEPARATOR}{info.filename}",
            set_key,
            f"{info.file_size}:crc{info.CRC:08x}",
            str(path),
            member=info.filename,
        )


def _sources_of_track(track: Path, root: Path, problems: list[tuple[str, str]]) -> Iterator[MapSource]:
    ids_by_stem, ids_by_md5, set_id = _read_track_metadata(track / MAPPERATOR_METADATA, problems)
    set_key = _set_key(track, root)
    beatmaps = track / MAPPERATOR_BEATMAPS
    for path in sorted(beatmaps.rglob("*")):
        if path.suffix.lower() != OSU_SUFFIX or not path.is_file():
            continue
        stat = _stat(path, problems)
        if stat is None:
            continue
        # Mapperator names files after the metadata key; fall back to the MD5 recorded there.
        beatmap_id = ids_by_stem.get(path.stem)
        if beatmap_id is None and ids_by_md5:
            beatmap_id = ids_by_md5.get(_md5_of(path))
        yield MapSource(str(path), set_key, _file_stamp(stat), str(path), None, beatmap_id, set_id)


def _read_track_metadata(
    path: Path, problems: list[tuple[str, str]]
) -> tuple[dict[str, int], dict[str, int], int | None]:
    try:
        with open(path, "rb") as f:
            metadata = json.loads(f.read())
    except (OSError, ValueError) as err:
        problems.append((str(path), f"unreadable metadata.json ({type(err).__name__})"))
        return {}, {}, None
    if not isinstance(metadata, dict):
        problems.append((str(path), "metadata.json is not an object"))
        return {}, {}, None
    by_stem: dict[str, int] = {}
    by_md5: dict[str, int] = {}
    beatmaps = metadata.get("Beatmaps")
    for name, entry in beatmaps.items() if isinstance(beatmaps, dict) else ():
        beatmap_id = _positive_int(entry.get("BeatmapId")) if isinstance(entry, dict) else None
        if beatmap_id is None:
            continue
        by_stem[str(name)] = beatmap_id
        md5 = entry.get("MD5Hash")
        if isinstance(md5, str):
            by_md5[md5.lower()] = beatmap_id
    return by_stem, by_md5, _positive_int(metadata.get("BeatmapSetId"))


def _positive_int(value: object) -> int | None:
    """osu! writes 0 or -1 for 'no online id'."""
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _md5_of(path: Path) -> str | None:
    try:
        return hashlib.md5(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _stat(path: Path, problems: list[tuple[str, str]]) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError as err:
        problems.append((str(path), f"unreadable ({err.strerror})"))
        return None


def _file_stamp(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _set_key(set_dir: Path, root: Path) -> str:
    """The set folder relative to its input root, so a moved corpus keeps its train/val split."""
    try:
        rel = set_dir.relative_to(root).as_posix()
    except ValueError:
        rel = set_dir.name
    return rel if rel not in ("", ".") else root.name
