"""The roundtrip checker on the fixture maps: every one comes back byte for byte and passes every check."""

from __future__ import annotations

from testing.roundtrip import compare, main

AKA_NO_HA = "506908 Nakamura Meiko - Aka no Ha/Nakamura Meiko - Aka no Ha (Lily Bread) [Extra].osu"


def test_every_fixture_roundtrips_exactly(fixtures, fixture_maps, tmp_path, capsys):
    assert main(["--input", str(fixtures / "songs"), "--output", str(tmp_path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nOK ") + out.startswith("OK ") == len(fixture_maps)
    for path in fixture_maps:
        assert (tmp_path / path.relative_to(fixtures / "songs")).read_bytes() == path.read_bytes()


def test_compare_notices_a_changed_rhythm(fixtures):
    data = (fixtures / "songs" / AKA_NO_HA).read_bytes()
    text = data.decode()
    objects_at = text.index("[HitObjects]")
    first = text[objects_at:].split("\r\n")[1]
    fields = first.split(",")
    fields[2] = str(int(fields[2]) + 10)
    changed = text.replace(first, ",".join(fields)).encode()
    result = compare(data, changed, "x.osu", expect_identical=True)
    assert result.status == "diff" and result.independent
    assert any("bytes differ" in p for p in result.problems)
    assert any("time" in p for p in result.problems[1:])


def test_jittered_fixture_keeps_rhythm(fixtures, tmp_path):
    path = fixtures / "songs" / AKA_NO_HA
    assert main(["--input", str(path), "--output", str(tmp_path), "--jitter-px", "15"]) == 0


def test_bad_single_input_exits_2_without_output(fixtures, tmp_path, capsys):
    bad = tmp_path / "in" / "truncated.osu"
    bad.parent.mkdir()
    bad.write_bytes((fixtures / "songs" / AKA_NO_HA).read_bytes()[:2000])
    out = tmp_path / "out"
    assert main(["--input", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]
    assert not out.exists() or not any(out.rglob("*.osu"))
