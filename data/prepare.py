"""Build the training cache: datapoint arrays per map plus one metadata table.

    python -m data.prepare --input SONGS_DIR [MORE ...] --output CACHE_DIR [--workers N] [--replays DIR]

The cache layout is data/cache.py's. `codec` is a fingerprint of the code that turns bytes into arrays: after an
edit to the codec, every map is encoded again instead of mixing two encodings in one cache.

Per-map files beat one file per set: a worker writes its own map's array in parallel (no hand-off of arrays
to the parent), duplicates and removals are a file name check, and an incremental run touches only new maps.

This path never imports torch or pandas: the speed target counts the whole process, and importing pandas alone
costs about a third of it. The table is a plain CSV that `data.windows.load_cache` reads with pandas.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from data.atomic import write_bytes_atomic, write_text_atomic
from data.beatmap.codec import encode
from data.beatmap.osu_reader import parse_beatmap
from data.beatmap.sources import ARCHIVE_SEPARATOR, MapSource, find_maps
from data.beatmap.stars import star_rating
from data.cache import (
    ARRAYS_DIR,
    MAP_COLUMNS,
    MAPS_FILE,
    SOURCE_COLUMNS,
    SOURCES_FILE,
    STYLES_FILE,
    array_path,
    build_styles,
    csv_text,
    int_or_none,
    read_csv,
    save_datapoints,
    styles_fingerprint,
)
from data.errors import BadInputError
from data.prepare_replays import find_replays, prepare_replays
from data.tables import StyleTable

ARCHIVE_MAPS_DIR = "archive_maps"  # archive members written out for replay pairing (needs a path per map)
VAL_FRACTION = 0.05
# The modules whose code decides a map's arrays and table fields (see codec_fingerprint).
CODEC_MODULES = tuple(f"data.beatmap.{name}" for name in ("osu_file", "curves", "codec", "datapoints", "stars"))
ARRAY_FORMAT = 1  # bump when prepare itself changes what it stores
NO_CLASS = -1  # mapper_class of a map whose creator field is empty


# ---------------------------------------------------------------- arrays on disk


def codec_fingerprint() -> str:
    """Hash of the codec's source files and the rosu-pp version: changes whenever a map could encode differently."""
    digest = hashlib.md5(f"format {ARRAY_FORMAT}, rosu-pp {_rosu_version()}".encode())
    for name in CODEC_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:12]


def _rosu_version() -> str:
    try:
        return importlib.metadata.version("rosu-pp-py")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- one map (runs in a worker)


def process_source(source: MapSource, cache_dir: str, codec: str) -> dict:
    """Read, parse, encode and rate one map, write its array; return its table row or a skip reason."""
    outcome = {"source": source.key, "set_key": source.set_key, "stamp": source.stamp, "md5": "", "skip_reason": ""}
    outcome["codec"] = codec
    try:
        raw = source.read_bytes()
    except Exception as err:  # OSError, or a corrupt archive member (BadZipFile, zlib.error, ...)
        return dict(outcome, skip_reason=f"unreadable ({type(err).__name__})")
    try:
        beatmap = parse_beatmap(raw, path=source.key)
        counts = Counter(obj.kind for obj in beatmap.hit_objects)
        if not beatmap.hit_objects:
            return dict(outcome, md5=beatmap.md5, skip_reason="no hit objects")
        datapoints = encode(beatmap)
        stars = star_rating(raw, path=source.key)
    except BadInputError as err:
        return dict(outcome, skip_reason=reason_of(err.problem), problem=err.problem)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # a codec bug (or a Rust panic in rosu-pp) costs one map, not the build
        return dict(outcome, skip_reason=f"codec error ({type(err).__name__})")
    target = array_path(cache_dir, beatmap.md5, codec)
    if not target.exists():
        save_datapoints(target, datapoints)
    beatmap_id = beatmap.beatmap_id or source.beatmap_id
    beatmapset_id = beatmap.beatmapset_id or source.beatmapset_id
    row = {
        "md5": beatmap.md5,
        "source": source.key,
        "set_key": source.set_key,
        "BeatmapID": beatmap_id,
        "BeatmapSetID": beatmapset_id,
        "creator": beatmap.creator or "",
        "version": beatmap.version or "",
        "title": beatmap.title or "",
        "artist": beatmap.artist or "",
        "format_version": beatmap.format_version,
        "star_rating": round(float(stars), 4),
        "circle_size": beatmap.circle_size,
        "approach_rate": beatmap.approach_rate,
        "overall_difficulty": beatmap.overall_difficulty,
        "hp_drain": beatmap.hp_drain,
        "n_circles": counts.get("circle", 0),
        "n_sliders": counts.get("slider", 0),
        "n_spinners": counts.get("spinner", 0),
        "n_datapoints": len(datapoints),
        "codec": codec,
    }
    return dict(outcome, md5=beatmap.md5, row=row)


def reason_of(problem: str) -> str:
    """A countable reason: the problem without its specifics (quoted text, numbers)."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "", problem)
    reason = re.sub(r"\d+(\.\d+)?", "N", reason)
    reason = re.sub(r"\s+", " ", reason).strip()
    return re.sub(r"\s+(in|at|of)$", "", reason) or "bad input"


def _process_star(args: tuple[MapSource, str, str]) -> dict:
    return process_source(*args)


# ---------------------------------------------------------------- table-wide fields


def split_of(set_key: str, val_fraction: float = VAL_FRACTION) -> str:
    """Train or val by a hash of the set key: sister difficulties never straddle the split, and a set keeps its
    side when the corpus grows."""
    return "val" if _unit_hash(set_key) < val_fraction else "train"


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:8], "big") / 2**64


def assign_splits(set_keys: Iterable[str], val_fraction: float = VAL_FRACTION) -> dict[str, str]:
    """Split for every set; a corpus of two or more sets always gets one val set, so validation never runs empty."""
    keys = sorted(set(set_keys))
    splits = {k: split_of(k, val_fraction) for k in keys}
    if len(keys) >= 2 and "val" not in splits.values():
        splits[min(keys, key=_unit_hash)] = "val"
    return splits


# ---------------------------------------------------------------- the cache, read and written with csv


def _previous_state(output: Path, codec: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """Rows by MD5 and source records by key from the last completed run with this codec; sources whose map is not
    in the table (a run killed before its table was written) are not trusted, so they are read again."""
    rows = {r["md5"]: r for r in read_csv(output / MAPS_FILE) if r.get("md5") and r.get("codec") == codec}
    trusted = {}
    for record in read_csv(output / SOURCES_FILE):
        if record.get("codec") == codec and (record.get("skip_reason") or record.get("md5") in rows):
            trusted[record["source"]] = record
    return rows, trusted


# ---------------------------------------------------------------- the build


def prepare(
    inputs: list[str | os.PathLike],
    output: str | os.PathLike,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Build or update the cache in `output` from `inputs`; return a summary dict."""
    output = Path(output)
    existing = next(p for p in (output, *output.parents) if p.exists())
    if not existing.is_dir():
        raise BadInputError(existing, "is a file, not a folder for the cache")
    sources, walk_problems = find_maps(inputs, exclude=output)
    if not sources and not walk_problems:
        raise BadInputError(", ".join(map(str, inputs)), "no .osu or .osz files found")
    created = [p for p in (output, *output.parents) if not p.exists()]  # deepest first
    (output / ARRAYS_DIR).mkdir(parents=True, exist_ok=True)
    try:
        return _build(sources, walk_problems, output, workers, progress, ", ".join(map(str, inputs)))
    except BaseException:
        if created:  # a refused first build leaves nothing behind, not even the folders made for it
            shutil.rmtree(created[-1], ignore_errors=True)
        raise


def _build(
    sources: list[MapSource],
    walk_problems: list[tuple[str, str]],
    output: Path,
    workers: int | None,
    progress: bool,
    inputs_text: str,
) -> dict:
    codec = codec_fingerprint()
    old_rows, old_sources = _previous_state(output, codec)

    todo = []
    outcomes: dict[str, dict] = {}
    for source in sources:
        old = old_sources.get(source.key)
        if (
            old is not None
            and old["stamp"] == source.stamp
            and (old["skip_reason"] or _array_ok(output, old["md5"], codec))
        ):
            outcomes[source.key] = dict(old, set_key=source.set_key, cached=True)
        else:
            todo.append(source)
    for outcome in _run_workers(todo, output, codec, workers, progress):
        outcomes[outcome["source"]] = outcome

    rows_by_md5: dict[str, dict] = {}
    skipped = Counter(reason for _, reason in walk_problems)
    duplicates = 0
    cached = 0
    for source in sources:  # key order: the first file holding an MD5 names its row
        outcome = outcomes[source.key]
        if outcome["skip_reason"]:
            skipped[outcome["skip_reason"]] += 1
            continue
        md5 = outcome["md5"]
        if md5 in rows_by_md5:
            duplicates += 1
            continue
        cached += bool(outcome.get("cached"))
        row = outcome.get("row") or dict(old_rows[md5])
        rows_by_md5[md5] = dict(row, source=source.key, set_key=source.set_key)

    rows = [rows_by_md5[md5] for md5 in sorted(rows_by_md5)]
    if not rows:
        refused = list(walk_problems) + [
            (s.key, outcomes[s.key].get("problem") or outcomes[s.key]["skip_reason"]) for s in sources
        ]
        if len(refused) == 1:  # a single bad file: its own name and problem
            raise BadInputError(*refused[0])
        raise BadInputError(inputs_text, f"no usable map among the inputs ({_reasons_text(skipped)})")
    styles = _fill_classes_and_splits(rows)
    source_records = [{c: outcomes[s.key].get(c, "") for c in SOURCE_COLUMNS} | {"set_key": s.set_key} for s in sources]
    write_text_atomic(output / SOURCES_FILE, csv_text(source_records, SOURCE_COLUMNS))
    styles_doc = {"fingerprint": styles_fingerprint(rows_by_md5), "styles": styles.to_dict()}
    write_text_atomic(output / STYLES_FILE, json.dumps(styles_doc, indent=1, sort_keys=True))
    write_text_atomic(output / MAPS_FILE, csv_text(rows, MAP_COLUMNS))  # last: the commit point
    _remove_unlisted_arrays(output, {array_path(output, md5, codec).name for md5 in rows_by_md5})

    return {
        "found": len(sources),
        "maps": len(rows),
        "new": len(todo),
        "cached": cached,
        "duplicates": duplicates,
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "train": sum(r["split"] == "train" for r in rows),
        "val": sum(r["split"] == "val" for r in rows),
        "style_classes": len(styles),
    }


def _array_ok(output: Path, md5: str, codec: str) -> bool:
    return bool(md5) and array_path(output, md5, codec).exists()


def _run_workers(
    todo: list[MapSource], output: Path, codec: str, workers: int | None, progress: bool
) -> Iterable[dict]:
    from tqdm import tqdm

    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    # Longest first, so one big marathon map does not finish alone at the end.
    todo = sorted(todo, key=lambda s: -int(s.stamp.split(":", 1)[0]))
    jobs = [(source, str(output), codec) for source in todo]
    # disable=None: a bar on a terminal only, so a log or a refusal's stderr holds just the lines that matter
    disable = True if not progress or not todo else None
    bar = tqdm(total=len(todo), unit="map", desc="prepare", disable=disable, file=sys.stderr)
    try:
        if workers == 1:
            for job in jobs:
                yield _process_star(job)
                bar.update()
            return
        # fork: workers inherit the imported codec instead of importing it again.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            chunk = max(1, min(8, len(jobs) // (workers * 16)))  # small chunks: balanced load, a live bar
            for outcome in pool.imap_unordered(_process_star, jobs, chunksize=chunk):
                yield outcome
                bar.update()
    finally:
        bar.close()


def _fill_classes_and_splits(rows: list[dict]) -> StyleTable:
    styles = build_styles(rows)
    splits = assign_splits(r["set_key"] for r in rows)
    for row in rows:
        row["style_class"] = styles.map_class(row["md5"], int_or_none(row["BeatmapID"]))
        mapper = styles.mapper_class(row["creator"]) if row["creator"] else None
        row["mapper_class"] = NO_CLASS if mapper is None else mapper
        row["split"] = splits[row["set_key"]]
    return styles


def _remove_unlisted_arrays(output: Path, keep: set[str]) -> None:
    """Drop arrays of maps no longer in any input or of an older codec, and temp files of killed runs."""
    for path in (output / ARRAYS_DIR).iterdir():
        if path.name.endswith(".tmp") or (path.suffix == ".npy" and path.name not in keep):
            try:
                path.unlink()
            except OSError:
                pass


def _reasons_text(skipped: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))


def summary_line(summary: dict) -> str:
    line = (
        f"prepare: {summary['maps']} maps in cache ({summary['new']} files read, {summary['cached']} cached, "
        f"{summary['duplicates']} duplicates stored once), {summary['skipped']} skipped"
    )
    if summary["skipped"]:
        line += f": {_reasons_text(Counter(summary['skipped_by_reason']))}"
    return line


# ---------------------------------------------------------------- replays (owned by data/replay_dataset.py)


def _maps_by_md5(output: Path) -> dict[str, str]:
    """A file path for every map in the cache; archive members are written out once, since pairing wants paths."""
    maps: dict[str, str] = {}
    for row in read_csv(output / MAPS_FILE):
        archive, sep, member = row["source"].partition(ARCHIVE_SEPARATOR)
        if not sep:
            maps[row["md5"]] = row["source"]
            continue
        target = output / ARCHIVE_MAPS_DIR / f"{row['md5']}.osu"
        if not target.exists():
            write_bytes_atomic(target, MapSource(row["source"], "", "", archive, member).read_bytes())
        maps[row["md5"]] = str(target)
    return maps


def _prepare_replays(replay_dirs: list[str], output: Path) -> None:
    summary = prepare_replays(replay_dirs, _maps_by_md5(output), output)
    print(f"replays: {json.dumps(summary, sort_keys=True, default=str)}", file=sys.stderr)


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data.prepare", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--input", nargs="+", required=True, help="Songs folders, folders of .osu, .osz files, Mapperator datasets"
    )
    parser.add_argument("--output", required=True, help="cache folder (created or updated in place)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all CPU cores)")
    parser.add_argument("--replays", nargs="+", default=None, help="folders of .osr to pair with the cached maps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="raise errors with a traceback")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.replays:
            find_replays(args.replays)  # a missing or flagged folder is refused before the maps are built
        summary = prepare(args.input, args.output, args.workers, progress=not args.no_progress)
        print(summary_line(summary), file=sys.stderr)
        if args.replays:
            _prepare_replays(args.replays, Path(args.output))
    except BadInputError as err:
        if args.debug:
            raise
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
