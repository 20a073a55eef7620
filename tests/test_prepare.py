import json
import os
import shutil
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from data.beatmap.sources import find_maps
from data.cache import ARRAYS_DIR, MAPS_FILE, STYLES_FILE, array_path, load_datapoints
from data.prepare import assign_splits, prepare, reason_of
from data.tables import NULL_CLASS, StyledMap, StyleTable

ROOT = Path(__file__).resolve().parents[1]
SHORT_MAP = "ce8fdf066984/c573baa8138194a92060ef158481537a.osu"  # 6 objects, no metadata
KARIA_SET = "434845 Kaori Sadohara - Day to Story (TV Size)"
V9_MAP = "mutsuhikoizumiredgoose Mutsuhiko Izumi - Red Goose/Mutsuhiko Izumi - Red Goose (nold_1702) [ERT Basic].osu"


def read_table(cache: Path):
    import pandas as pd

    return pd.read_csv(cache / MAPS_FILE, keep_default_na=False, dtype={"md5": str, "codec": str})


def count_objects(path: Path) -> tuple[int, int, int]:
    """Circles, sliders, spinners by the type bits of [HitObjects] lines (independent of the codec)."""
    text = path.read_bytes()
    text = text.decode("utf-16") if text[:2] in (b"\xff\xfe", b"\xfe\xff") else text.decode("utf-8-sig")
    counts = [0, 0, 0]
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
        elif section == "[HitObjects]" and line and not line.startswith("//"):
            type_bits = int(line.split(",")[3])
            counts[0 if type_bits & 1 else 1 if type_bits & 2 else 2] += type_bits & 0b1011 != 0
    return tuple(counts)


@pytest.fixture
def songs(tmp_path: Path, fixtures: Path) -> Path:
    target = tmp_path / "songs"
    shutil.copytree(fixtures / "songs", target)
    return target


def test_fixture_songs_give_one_row_per_map_with_counts_and_classes(songs: Path, tmp_path: Path):
    import hashlib

    cache = tmp_path / "cache"
    summary = prepare([songs], cache, workers=2, progress=False)
    table = read_table(cache)
    maps = sorted(songs.rglob("*.osu"))
    assert summary["skipped"] == 0 and summary["maps"] == len(maps) == len(table)
    assert sorted(table["md5"]) == sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in maps)
    for path in maps:
        row = table[table["source"] == str(path)].iloc[0]
        assert (row["n_circles"], row["n_sliders"], row["n_spinners"]) == count_objects(path)
        datapoints = load_datapoints(array_path(cache, row["md5"], row["codec"]))
        assert len(datapoints) == row["n_datapoints"] >= sum(count_objects(path))
        assert row["star_rating"] > 0
        assert row["set_key"] == path.parent.name
    styles = StyleTable.from_dict(json.loads((cache / STYLES_FILE).read_text())["styles"])
    # Every map its own class after the null class, then one class per mapper.
    assert sorted(table["style_class"]) == list(range(1, len(maps) + 1))
    karia = table[table["creator"] == "Karia"].iloc[0]
    assert int(karia["BeatmapID"]) == 936808
    assert styles.beatmap_class(936808) == karia["style_class"]
    assert styles.mapper_class("KARIA") == karia["mapper_class"] and styles.is_mapper_class(karia["mapper_class"])
    named = table[table["creator"] != ""]
    assert len(styles) == 1 + len(maps) + named["creator"].str.casefold().nunique()
    assert set(table["split"]) == {"train", "val"}  # a small corpus still gets a val set


def test_second_run_reads_nothing_and_a_touched_file_is_read_again(songs: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    first = prepare([songs], cache, workers=2, progress=False)
    table_before = (cache / MAPS_FILE).read_bytes()
    second = prepare([songs], cache, workers=2, progress=False)
    assert second["new"] == 0 and second["cached"] == first["maps"]
    assert (cache / MAPS_FILE).read_bytes() == table_before
    touched = songs / SHORT_MAP
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    third = prepare([songs], cache, workers=2, progress=False)
    assert third["new"] == 1 and third["maps"] == first["maps"]
    assert (cache / MAPS_FILE).read_bytes() == table_before


def test_removed_file_drops_out_with_its_array(songs: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    prepare([songs], cache, progress=False)
    gone = songs / SHORT_MAP
    md5, codec = read_table(cache).set_index("source").loc[str(gone), ["md5", "codec"]]
    assert array_path(cache, md5, codec).exists()
    gone.unlink()
    summary = prepare([songs], cache, progress=False)
    table = read_table(cache)
    assert md5 not in set(table["md5"]) and summary["new"] == 0
    assert not array_path(cache, md5, codec).exists()


def test_duplicate_file_is_stored_once(songs: Path, tmp_path: Path):
    copy = songs / "zz copy" / "same.osu"
    copy.parent.mkdir()
    shutil.copy(songs / SHORT_MAP, copy)
    summary = prepare([songs], tmp_path / "cache", progress=False)
    table = read_table(tmp_path / "cache")
    assert summary["duplicates"] == 1 and table["md5"].is_unique
    assert len(table) == len(list(songs.rglob("*.osu"))) - 1


def test_osz_archive_is_read_in_memory(fixtures: Path, tmp_path: Path):
    import hashlib

    set_dir = fixtures / "songs" / KARIA_SET
    osz = tmp_path / "in" / f"{KARIA_SET}.osz"
    osz.parent.mkdir()
    with zipfile.ZipFile(osz, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in set_dir.iterdir():
            archive.write(path, path.name)
    summary = prepare([osz.parent], tmp_path / "cache", progress=False)
    table = read_table(tmp_path / "cache")
    assert summary["maps"] == 1 and summary["skipped"] == 0
    row = table.iloc[0]
    assert row["md5"] == hashlib.md5(next(set_dir.glob("*.osu")).read_bytes()).hexdigest()
    assert row["source"].startswith(str(osz) + "::") and row["set_key"] == KARIA_SET  # same split key as a folder
    assert int(row["BeatmapID"]) == 936808


def test_mapperator_layout_supplies_missing_ids(fixtures: Path, tmp_path: Path):
    import hashlib

    source = fixtures / "songs" / V9_MAP  # v9: no BeatmapID in the file
    track = tmp_path / "dataset" / "Track00000"
    (track / "beatmaps").mkdir(parents=True)
    shutil.copy(source, track / "beatmaps" / "000000M000.osu")
    metadata = {
        "BeatmapSetId": 1234,
        "Creator": "nold_1702",
        "Beatmaps": {"000000M000": {"BeatmapId": 5678, "MD5Hash": hashlib.md5(source.read_bytes()).hexdigest()}},
    }
    (track / "metadata.json").write_text(json.dumps(metadata))
    summary = prepare([tmp_path / "dataset"], tmp_path / "cache", progress=False)
    row = read_table(tmp_path / "cache").iloc[0]
    assert summary["maps"] == 1
    assert (int(row["BeatmapID"]), int(row["BeatmapSetID"])) == (5678, 1234)
    assert row["set_key"] == "Track00000" and row["creator"] == "nold_1702"


def test_bad_files_are_skipped_and_counted(songs: Path, tmp_path: Path):
    good = len(list(songs.rglob("*.osu")))
    original = (songs / V9_MAP).read_bytes()
    bad = songs / "bad"
    bad.mkdir()
    (bad / "truncated.osu").write_bytes(original[: len(original) // 3])
    (bad / "empty.osu").write_bytes(b"")
    (bad / "binary.osu").write_bytes(zlib.compress(original))
    (bad / "broken.osz").write_bytes(original[:100])
    summary = prepare([songs], tmp_path / "cache", progress=False)
    assert summary["maps"] == good and summary["skipped"] == 4
    assert sum(summary["skipped_by_reason"].values()) == 4 and len(summary["skipped_by_reason"]) >= 3
    # The skips are remembered: an unchanged bad file is not read again, and still counted.
    again = prepare([songs], tmp_path / "cache", progress=False)
    assert again["new"] == 0 and again["skipped_by_reason"] == summary["skipped_by_reason"]


def test_taiko_map_is_refused_with_its_reason(songs: Path, tmp_path: Path):
    original = (songs / V9_MAP).read_bytes()
    assert b"Mode: 0" in original or b"Mode:0" in original
    (songs / "taiko.osu").write_bytes(original.replace(b"Mode: 0", b"Mode: 1").replace(b"Mode:0", b"Mode:1"))
    summary = prepare([songs], tmp_path / "cache", progress=False)
    assert summary["skipped"] == 1
    assert any("Mode" in reason for reason in summary["skipped_by_reason"])


def test_missing_input_exits_2_with_one_line_and_no_output(tmp_path: Path):
    output = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "data.prepare", "--input", str(tmp_path / "nope"), "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "nope" in done.stderr
    assert not output.exists()


def test_only_bad_maps_exit_2_and_leave_nothing(songs: Path, tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.osu").write_bytes(b"")
    output = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "data.prepare", "--input", str(bad), "--output", str(output), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert not output.exists()


def test_command_line_prints_one_closing_line(songs: Path, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "data.prepare", "--input", str(songs), "--output", str(tmp_path / "c"), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prepare: 8 maps") and "0 skipped" in lines[0]


def test_find_maps_is_sorted_and_stamps_change_with_content(songs: Path):
    first, problems = find_maps([songs])
    assert problems == [] and [s.key for s in first] == sorted(s.key for s in first)
    path = songs / SHORT_MAP
    path.write_bytes(path.read_bytes() + b"\n")
    second, _ = find_maps([songs])
    changed = [a.key for a, b in zip(first, second, strict=True) if a.stamp != b.stamp]
    assert changed == [str(path)]


def test_splits_are_deterministic_and_about_five_percent():
    keys = [f"set {i}" for i in range(4000)]
    splits = assign_splits(keys)
    assert splits == assign_splits(reversed(keys))
    assert 0.04 < sum(v == "val" for v in splits.values()) / len(keys) < 0.06
    assert set(assign_splits(["a", "b"]).values()) == {"train", "val"}


def test_style_table_round_trips_through_plain_json():
    maps = [
        StyledMap("b" * 32, 20, "Karia", "x"),
        StyledMap("a" * 32, None, "karia", "y"),
        StyledMap("c" * 32, 10, "Karia", "z"),
        StyledMap("d" * 32, None, None, "w"),
    ]
    table = StyleTable.build(maps)
    again = StyleTable.build(reversed(maps))
    assert table == again
    restored = StyleTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert restored == table and len(table) == 1 + 4 + 1
    assert (table.beatmap_class(10), table.beatmap_class(20)) == (1, 2)
    assert table.md5_class("a" * 32) == 3 and table.map_class("c" * 32, 10) == 1
    assert table.mapper_class("KARIA") == 5 and table.describe(5) == "mapper Karia"
    assert table.mapper_class("nobody") is None and table.beatmap_class(99) is None
    assert NULL_CLASS == 0 and table.describe(NULL_CLASS) == "(none)"


def test_reasons_drop_specifics():
    assert reason_of("hit object x 'abc' is not a number in '1,2,3'") == "hit object x is not a number"
    assert reason_of("slider at 1234.5 ms has no finite duration") == "slider at N ms has no finite duration"


def test_replays_pair_with_maps_read_from_an_archive(fixtures: Path, tmp_path: Path):
    import pandas as pd

    set_dir = (fixtures / "songs" / V9_MAP).parent
    osz = tmp_path / "in" / f"{set_dir.name}.osz"
    osz.parent.mkdir()
    with zipfile.ZipFile(osz, "w") as archive:
        for path in set_dir.iterdir():
            archive.write(path, path.name)
    output = tmp_path / "cache"
    command = [sys.executable, "-m", "data.prepare", "--input", str(osz.parent), "--output", str(output)]
    command += ["--replays", str(fixtures / "replays"), "--no-progress"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].startswith("replays: ")
    map_md5 = read_table(output)["md5"].iloc[0]
    replays = pd.read_csv(output / "replays.csv", dtype={"beatmap_md5": str})
    paired = replays[replays["beatmap_md5"] == map_md5]
    assert len(paired) == 1 and bool(paired["paired"].iloc[0])
    assert Path(paired["map_path"].iloc[0]).read_bytes() == (fixtures / "songs" / V9_MAP).read_bytes()


def test_cache_inside_an_input_is_not_read_as_input(songs: Path):
    first = prepare([songs], songs / "cache", progress=False)
    (songs / "cache" / "archive_maps").mkdir()
    shutil.copy(songs / SHORT_MAP, songs / "cache" / "archive_maps" / "x.osu")
    second = prepare([songs], songs / "cache", progress=False)
    assert second["found"] == first["found"] and second["new"] == 0


def test_workers_do_not_change_the_output_bytes(songs: Path, tmp_path: Path):
    prepare([songs], tmp_path / "one", workers=1, progress=False)
    prepare([songs], tmp_path / "two", workers=2, progress=False)
    for name in (MAPS_FILE, STYLES_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    arrays = sorted(p.name for p in (tmp_path / "one" / ARRAYS_DIR).iterdir())
    assert arrays == sorted(p.name for p in (tmp_path / "two" / ARRAYS_DIR).iterdir())
    for name in arrays:
        assert (tmp_path / "one" / ARRAYS_DIR / name).read_bytes() == (
            tmp_path / "two" / ARRAYS_DIR / name
        ).read_bytes()


def test_corrupt_archive_member_is_skipped(fixtures: Path, tmp_path: Path):
    inputs = tmp_path / "in"
    shutil.copytree(fixtures / "songs" / KARIA_SET, inputs / KARIA_SET)
    osz = inputs / "broken.osz"
    with zipfile.ZipFile(osz, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(fixtures / "songs" / V9_MAP, "map.osu")
    data = bytearray(osz.read_bytes())
    middle = len(data) // 3  # inside the member's compressed bytes; the directory at the end stays intact
    data[middle : middle + 40] = bytes(40)
    osz.write_bytes(bytes(data))
    summary = prepare([inputs], tmp_path / "cache", progress=False)
    assert summary["maps"] == 1 and summary["skipped"] == 1
    assert next(iter(summary["skipped_by_reason"])).startswith("unreadable")


def test_mapperator_ids_found_by_md5_and_single_file_inputs(fixtures: Path, tmp_path: Path):
    import hashlib

    source = fixtures / "songs" / V9_MAP
    track = tmp_path / "dataset" / "Track00007"
    (track / "beatmaps").mkdir(parents=True)
    shutil.copy(source, track / "beatmaps" / "renamed.osu")  # not the metadata's key: found by its MD5
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    metadata = {"BeatmapSetId": 0, "Beatmaps": {"000000M000": {"BeatmapId": 42, "MD5Hash": md5.upper()}}}
    (track / "metadata.json").write_text(json.dumps(metadata))
    (found,), problems = find_maps([tmp_path / "dataset"])
    assert problems == [] and (found.beatmap_id, found.beatmapset_id) == (42, None)
    assert found.set_key == "Track00007"
    (single,), _ = find_maps([source])  # one .osu given directly: its folder is its set
    assert single.set_key == source.parent.name and single.read_bytes() == source.read_bytes()


def test_a_codec_change_encodes_every_map_again(songs: Path, tmp_path: Path, monkeypatch):
    import data.prepare

    cache = tmp_path / "cache"
    first = prepare([songs], cache, progress=False)
    old_files = sorted(p.name for p in (cache / ARRAYS_DIR).iterdir())
    monkeypatch.setattr(data.prepare, "codec_fingerprint", lambda: "edited")
    second = prepare([songs], cache, progress=False)
    assert second["new"] == first["found"] and second["cached"] == 0
    new_files = sorted(p.name for p in (cache / ARRAYS_DIR).iterdir())
    assert len(new_files) == len(old_files) and all(name.endswith(".edited.npy") for name in new_files)
    assert set(read_table(cache)["codec"]) == {"edited"}
