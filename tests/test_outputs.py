"""What a run writes declares itself: every remap's [Metadata] carries its new Version and the provenance tags."""

from __future__ import annotations

import pytest

from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from pipeline.outputs import PROVENANCE_TAGS, label_remap


def changed_lines(before: str, after: str) -> tuple[set[str], set[str]]:
    old, new = before.splitlines(), after.splitlines()
    return set(old) - set(new), set(new) - set(old)


@pytest.mark.parametrize("index", range(8))
def test_every_fixture_gains_version_and_tags_and_nothing_else_changes(fixture_maps, index):
    if index >= len(fixture_maps):
        pytest.skip("fewer fixture maps")
    source = read_beatmap(fixture_maps[index])
    labelled = label_remap(source.text, "Hard (osu-dit own style)")
    parsed = parse_beatmap(labelled.encode(source.encoding if source.encoding != "utf-8-sig" else "utf-8"))
    assert parsed.version == "Hard (osu-dit own style)"
    tags = parsed.metadata["Tags"].split()
    assert tags[-2:] == list(PROVENANCE_TAGS)
    assert tags[:-2] == source.metadata.get("Tags", "").split()  # the mapper's own tags stay, in order
    assert parsed.hit_objects == source.hit_objects and parsed.timing_points == source.timing_points
    removed, added = changed_lines(source.text, labelled)
    assert all(line.startswith(("Version", "Tags")) for line in removed)
    assert all(line.startswith(("Version", "Tags", "[Metadata]")) or not line.strip() for line in added)
    # Labelling a labelled map again renames it but never repeats the tags.
    again = parse_beatmap(label_remap(labelled, "Hard v2").encode("utf-8"))
    assert again.metadata["Tags"].split() == tags and again.version == "Hard v2"


def test_line_endings_are_the_files_own():
    crlf = "osu file format v14\r\n\r\n[General]\r\nMode: 0\r\n\r\n[Metadata]\r\nTitle:x\r\n\r\n[Difficulty]\r\n"
    out = label_remap(crlf, "New")
    assert out.count("\n") == out.count("\r\n") and "Version:New\r\nTags:osu-dit ai-generated\r\n" in out
    bare = "osu file format v5\n\n[General]\nMode: 0\n\n[Difficulty]\nHPDrainRate:5\n"
    out = label_remap(bare, "New")
    assert "\r" not in out and "[Metadata]\nVersion:New\nTags:osu-dit ai-generated\n\n[Difficulty]" in out
