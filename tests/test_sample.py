"""Remapping real fixture maps end to end with a tiny checkpoint: playfield, rhythm, determinism."""

import numpy as np
import pytest

import sample
from data.beatmap.codec import encode
from data.beatmap.datapoints import PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from pipeline import remap as pipeline_remap
from tests.tiny_checkpoints import tiny_position_checkpoint


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return tiny_position_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_ckpt):
    return pipeline_remap.load_position_model(tiny_ckpt)


def test_generated_positions_stay_in_the_playfield(tiny, fixture_maps):
    # An untrained model places points anywhere; the sampler's clip is what must keep them on the field.
    model, ckpt, _ = tiny
    beatmap = read_beatmap(next(p for p in fixture_maps if "Aka no Ha" in p.name))
    positions = pipeline_remap.generate_positions(model, ckpt, encode(beatmap), 0, steps=3, progress=False)
    assert positions.shape == (1, len(encode(beatmap)), 2)
    assert positions[..., 0].min() >= 0 and positions[..., 0].max() <= PLAYFIELD_WIDTH
    assert positions[..., 1].min() >= 0 and positions[..., 1].max() <= PLAYFIELD_HEIGHT
    assert positions.std() > 10  # and they were really placed anew, not collapsed to a point


def test_remap_keeps_rhythm_and_is_deterministic(tiny, fixture_maps):
    model, ckpt, _ = tiny
    source = read_beatmap(next(p for p in fixture_maps if "Red Goose" in p.name))
    first = pipeline_remap.remap(source, model, ckpt, 0, steps=3, seed=7, progress=False)[0]
    again = pipeline_remap.remap(source, model, ckpt, 0, steps=3, seed=7, progress=False)[0]
    other = pipeline_remap.remap(source, model, ckpt, 0, steps=3, seed=8, progress=False)[0]
    assert first == again and first != other
    remapped = parse_beatmap(first.encode("utf-8"))
    assert [h.time_ms for h in remapped.hit_objects] == [h.time_ms for h in source.hit_objects]
    assert [h.kind for h in remapped.hit_objects] == [h.kind for h in source.hit_objects]
    for new, old in zip(remapped.hit_objects, source.hit_objects, strict=True):
        assert new.new_combo == old.new_combo and new.hitsound == old.hitsound and new.slides == old.slides
        if new.kind == "slider":
            duration = remapped.slider_duration_ms(new) * new.slides
            assert abs(duration - source.slider_duration_ms(old) * old.slides) <= 2
    moved = np.mean([(n.x, n.y) != (o.x, o.y) for n, o in zip(remapped.hit_objects, source.hit_objects, strict=True)])
    assert moved > 0.9


def test_style_from_a_reference_map_reaches_the_network_and_names_the_remap(tiny, tiny_ckpt, fixture_maps, tmp_path):
    # The tiny model is barely trained, so this checks the path, not the quality (testing/evaluate.py does that).
    model, ckpt, _ = tiny
    source = next(p for p in fixture_maps if "Red Goose" in p.name)
    reference = next(p for p in fixture_maps if "Natsukoi" in p.name)
    label, features = pipeline_remap.reference_features(model, reference)
    datapoints = encode(read_beatmap(source))
    plain = pipeline_remap.generate_positions(model, ckpt, datapoints, 0, steps=3, progress=False)
    styled = pipeline_remap.generate_positions(
        model, ckpt, datapoints, 0, steps=3, progress=False, style_features=features
    )
    assert not np.array_equal(plain, styled)

    out = tmp_path / "styled.osu"
    args = ["--beatmap", str(source), "--ckpt", str(tiny_ckpt), "--style-from", str(reference), "--output", str(out)]
    assert sample.main([*args, "--num-sampling-steps", "3", "--no-progress"]) == 0
    assert label == f"style {read_beatmap(reference).beatmap_id}"
    assert read_beatmap(out).version.endswith(f"(osu-dit {label})")


def test_lower_strength_keeps_more_of_the_source_layout(fixture_maps):
    # The trained checkpoint, since an untrained one scatters points from any start.
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    datapoints = encode(read_beatmap(next(p for p in fixture_maps if "Rocket" in p.name)))
    moved = {}
    for strength in (0.1, 0.4, 1.0):
        positions = pipeline_remap.generate_positions(model, ckpt, datapoints, 0, progress=False, strength=strength)[0]
        moved[strength] = float(np.median(np.linalg.norm(positions - datapoints.position, axis=1)))
    assert moved[0.1] < 0.5 * moved[0.4] and moved[0.4] < 0.75 * moved[1.0], moved  # measured 25, 95, 188 px


def test_strength_names_the_remap_repeats_and_is_checked(tiny_ckpt, fixture_maps, tmp_path):
    source = next(p for p in fixture_maps if "Red Goose" in p.name)
    args = ["--beatmap", str(source), "--ckpt", str(tiny_ckpt), "--num-sampling-steps", "4", "--no-progress"]
    outputs = [tmp_path / "a.osu", tmp_path / "b.osu"]
    for out in outputs:
        assert sample.main([*args, "--strength", "0.5", "--output", str(out)]) == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert read_beatmap(outputs[0]).version.endswith("(osu-dit own style, strength 0.5)")
    for bad in ("0", "1.5"):
        with pytest.raises(SystemExit) as exit_info:
            sample.main([*args, "--strength", bad, "--output", str(tmp_path / "bad.osu")])
        assert exit_info.value.code == 2
    assert not (tmp_path / "bad.osu").exists()


def test_negative_pass_counts_are_refused(tiny_ckpt, fixture_maps, tmp_path):
    source = next(p for p in fixture_maps if "Red Goose" in p.name)
    for flag in ("--turn-passes", "--spacing-passes", "--own-turn-passes"):
        with pytest.raises(SystemExit) as exit_info:
            sample.main(
                ["--beatmap", str(source), "--ckpt", str(tiny_ckpt), flag, "-1", "--output", str(tmp_path / "x.osu")]
            )
        assert exit_info.value.code == 2
    assert not (tmp_path / "x.osu").exists()


def test_spread_network_reaches_the_sampler_and_leaves_the_layout_wider(tiny_ckpt, fixture_maps, tmp_path):
    source = next(p for p in fixture_maps if "Red Goose" in p.name)
    remaps = {n: remap_bytes(tiny_ckpt, source, tmp_path / f"{n}.osu", "--spread", n) for n in ("style", "network")}
    style, network = remaps["style"], remaps["network"]
    assert style == remap_bytes(tiny_ckpt, source, tmp_path / "default.osu") != network
    spread = {n: np.std([(h.x, h.y) for h in read_beatmap(tmp_path / f"{n}.osu").hit_objects], axis=0)
              for n in ("style", "network")}  # fmt: skip
    assert np.all(spread["style"] < spread["network"]), spread
    assert_rhythm_kept(tmp_path / "network.osu", source)


def remap_bytes(ckpt, source, out, *extra: str) -> bytes:
    """A 4-step remap of `source` at seed 3 through sample.py, as written."""
    args = ["--beatmap", str(source), "--ckpt", str(ckpt), "--output", str(out), "--seed", "3", *extra]
    assert sample.main([*args, "--num-sampling-steps", "4", "--no-progress"]) == 0
    return out.read_bytes()


def assert_rhythm_kept(remap, source) -> None:
    assert [h.time_ms for h in read_beatmap(remap).hit_objects] == [h.time_ms for h in read_beatmap(source).hit_objects]


def test_a_turn_channel_checkpoint_remaps_the_same_bytes_twice_and_keeps_the_rhythm(fixture_maps, tmp_path):
    ckpt = tiny_position_checkpoint(tmp_path / "tiny", "--turn-channels")
    source = next(p for p in fixture_maps if "Red Goose" in p.name)
    a, b = (remap_bytes(ckpt, source, tmp_path / name) for name in ("a.osu", "b.osu"))
    c = remap_bytes(ckpt, source, tmp_path / "c.osu", "--strength", "0.5")
    assert a == b != c
    for name in ("a.osu", "c.osu"):
        assert_rhythm_kept(tmp_path / name, source)


def test_a_self_conditioned_checkpoint_remaps_the_same_bytes_twice(fixture_maps, tmp_path):
    # The denoiser carries each step's estimate to the next; no state may leak from one remap into the next.
    ckpt = tiny_position_checkpoint(tmp_path / "tiny", "--self-condition")
    source = next(p for p in fixture_maps if "Red Goose" in p.name)
    assert remap_bytes(ckpt, source, tmp_path / "a.osu") == remap_bytes(ckpt, source, tmp_path / "b.osu")
    assert_rhythm_kept(tmp_path / "a.osu", source)
