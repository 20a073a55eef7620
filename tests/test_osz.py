"""The .osz export on real fixture maps: the new difficulty plus the set's audio, background and hitsounds.

The corpus has no audio or images, so each test builds a set folder around a real map with small placeholder
files named as its [General] and [Events] sections say; the archive must hold exactly those, byte for byte.
"""

import io
import shutil
import zipfile

import pytest
from PIL import Image

from data.beatmap.inputs import read_beatmap_input
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.beatmap.osz import (
    audio_filename,
    background_filename,
    collect_assets,
    export_osz,
    osu_member_name,
    write_osz,
)
from data.errors import BadInputError
from pipeline.outputs import label_remap

AKA_NO_HA = "506908 Nakamura Meiko - Aka no Ha/Nakamura Meiko - Aka no Ha (Lily Bread) [Extra].osu"
RED_GOOSE = "mutsuhikoizumiredgoose Mutsuhiko Izumi - Red Goose/Mutsuhiko Izumi - Red Goose (nold_1702) [ERT Basic].osu"


def placeholder_image() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 9), (40, 60, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def make_set(fixtures, tmp_path, relative: str, extra: dict[str, bytes] | None = None):
    """A set folder: the real map, placeholder audio/background under its names, and `extra` files."""
    map_path = fixtures / "songs" / relative
    folder = tmp_path / map_path.parent.name
    folder.mkdir()
    shutil.copy(map_path, folder / map_path.name)
    beatmap = read_beatmap(map_path)
    files = {
        audio_filename(beatmap): b"ID3 placeholder audio " + bytes(range(64)),
        background_filename(beatmap): placeholder_image(),
    }
    files.update(extra or {})
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder, folder / map_path.name, files


def new_difficulty(beatmap) -> tuple[str, bytes]:
    version = f"{beatmap.version} (osu-dit test)"
    text = label_remap(beatmap.text, version)
    return osu_member_name(beatmap, version), text.encode("utf-8")


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def test_names_come_from_general_and_events(fixtures):
    beatmap = read_beatmap(fixtures / "songs" / AKA_NO_HA)
    assert audio_filename(beatmap) == "audio.mp3"
    assert background_filename(beatmap) == "58447044_p0.jpg"
    # a background line without offsets is still the background
    goose = read_beatmap(fixtures / "songs" / RED_GOOSE)
    assert (audio_filename(goose), background_filename(goose)) == ("Red Goose.mp3", "Jubeat.jpg")


def test_set_folder_export_holds_the_new_difficulty_and_the_set_assets(fixtures, tmp_path):
    folder, map_path, files = make_set(fixtures, tmp_path, AKA_NO_HA)
    source = read_beatmap_input(folder)
    name, data = new_difficulty(source)
    out = tmp_path / "out.osz"
    assets = export_osz(out, folder, source, {name: data})
    assert assets.missing == []
    got = members(out)
    assert set(got) == {name, "audio.mp3", "58447044_p0.jpg"}
    assert got["audio.mp3"] == files["audio.mp3"] and got["58447044_p0.jpg"] == files["58447044_p0.jpg"]
    inside = parse_beatmap(got[name], name)
    assert inside.version == "Extra (osu-dit test)"
    assert len(inside.hit_objects) == len(source.hit_objects)
    assert name == "Nakamura Meiko - Aka no Ha (Lily Bread) [Extra (osu-dit test)].osu"


def test_osz_input_and_lone_osu_give_the_same_archive(fixtures, tmp_path):
    folder, map_path, _ = make_set(fixtures, tmp_path, AKA_NO_HA)
    osz = tmp_path / "set.osz"
    write_osz(osz, {p.name: p.read_bytes() for p in sorted(folder.iterdir())})
    archives = []
    for input_path in (osz, folder, map_path):
        source = read_beatmap_input(input_path)
        name, data = new_difficulty(source)
        out = tmp_path / f"from_{input_path.suffix or 'folder'}.osz"
        export_osz(out, input_path, source, {name: data})
        archives.append(out.read_bytes())
    # same inputs, same bytes: fixed member timestamps and order
    assert archives[0] == archives[1] == archives[2]


def test_file_names_match_case_insensitively_and_hitsounds_come_along(fixtures, tmp_path):
    hitsounds = {"soft-hitclap2.wav": b"RIFF clap", "drum-hitnormal.ogg": b"OggS drum", "notes.txt": b"not a sample"}
    folder, map_path, files = make_set(fixtures, tmp_path, RED_GOOSE, hitsounds)
    (folder / "Jubeat.jpg").rename(folder / "JUBEAT.JPG")
    source = read_beatmap(map_path)
    name, data = new_difficulty(source)
    out = tmp_path / "out.osz"
    export_osz(out, map_path, source, {name: data})
    got = members(out)
    assert set(got) == {name, "Red Goose.mp3", "Jubeat.jpg", "soft-hitclap2.wav", "drum-hitnormal.ogg"}
    assert got["Jubeat.jpg"] == files["Jubeat.jpg"]


def test_missing_assets_are_reported_and_the_archive_still_written(fixtures, tmp_path):
    folder, map_path, _ = make_set(fixtures, tmp_path, AKA_NO_HA)
    (folder / "58447044_p0.jpg").unlink()
    source = read_beatmap(map_path)
    name, data = new_difficulty(source)
    out = tmp_path / "out.osz"
    assets = export_osz(out, folder, source, {name: data})
    assert assets.missing == ["58447044_p0.jpg"]
    assert set(members(out)) == {name, "audio.mp3"}


def test_names_leaving_the_set_folder_are_never_packed(fixtures, tmp_path):
    folder, map_path, _ = make_set(fixtures, tmp_path, AKA_NO_HA)
    (tmp_path / "secret.mp3").write_bytes(b"outside the set")
    text = map_path.read_text(encoding="utf-8").replace("AudioFilename: audio.mp3", "AudioFilename: ../secret.mp3")
    map_path.write_text(text, encoding="utf-8")
    source = read_beatmap(map_path)
    assert audio_filename(source) is None
    assert set(collect_assets(folder, source).files) == {"58447044_p0.jpg"}


def test_a_corrupt_osz_input_is_refused_and_leaves_no_archive(fixtures, tmp_path):
    folder, map_path, _ = make_set(fixtures, tmp_path, AKA_NO_HA)
    source = read_beatmap(map_path)
    broken = tmp_path / "broken.osz"
    broken.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "out.osz"
    with pytest.raises(BadInputError):
        export_osz(out, broken, source, dict([new_difficulty(source)]))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.osz")] == []


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from tests.tiny_checkpoints import tiny_position_checkpoint

    return tiny_position_checkpoint(tmp_path_factory.mktemp("tiny"))


def test_sample_cli_writes_the_osz_and_preview_beside_the_remap(fixtures, tmp_path, tiny_checkpoint):
    import sample

    folder, _, files = make_set(fixtures, tmp_path, AKA_NO_HA)
    out = tmp_path / "out"
    argv = ["--beatmap", str(folder), "--ckpt", str(tiny_checkpoint), "--num-sampling-steps", "2", "--no-progress"]
    argv += ["--output", str(out / "remap.osu"), "--preview", str(out / "p.png"), "--osz", str(out / "remap.osz")]
    assert sample.main(argv) == 0
    written = (out / "remap.osu").read_bytes()
    got = members(out / "remap.osz")
    name = "Nakamura Meiko - Aka no Ha (Lily Bread) [Extra (osu-dit own style)].osu"
    assert set(got) == {name, "audio.mp3", "58447044_p0.jpg"}
    # the archive holds the very bytes written (a replay of the .osu names their MD5)
    assert got[name] == written and got["audio.mp3"] == files["audio.mp3"]
    assert Image.open(out / "p.png").size == (1280, 560)


def test_sample_cli_refuses_an_animation_without_a_replay(fixtures, tmp_path):
    import sample

    with pytest.raises(SystemExit) as exit_info:
        sample.parse_args(["--beatmap", str(fixtures / "songs" / AKA_NO_HA), "--animation", str(tmp_path / "a.gif")])
    assert exit_info.value.code == 2


def test_sample_cli_with_a_corrupt_osz_exits_2_and_writes_nothing(fixtures, tmp_path, tiny_checkpoint, capsys):
    import sample

    broken = tmp_path / "broken.osz"
    broken.write_bytes((fixtures / "songs" / AKA_NO_HA).read_bytes()[:200])
    out = tmp_path / "out"
    argv = ["--beatmap", str(broken), "--ckpt", str(tiny_checkpoint), "--no-progress"]
    argv += ["--output", str(out / "remap.osu"), "--preview", str(out / "p.png"), "--osz", str(out / "remap.osz")]
    assert sample.main(argv) == 2
    assert "broken.osz" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
