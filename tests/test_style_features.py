"""Style descriptors of real fixture maps."""

import numpy as np

from data.beatmap.codec import encode
from data.beatmap.datapoints import Datapoints
from data.beatmap.osu_reader import read_beatmap
from data.style_features import (
    JUMP_ANGLE_BINS,
    STREAM_ANGLE_BINS,
    STYLE_FEATURE_DIM,
    playable_style_features,
    style_features,
)


def _features(fixture_maps, name):
    return style_features(encode(read_beatmap(next(p for p in fixture_maps if name in p.name))))


def test_histograms_are_distributions_and_maps_differ(fixture_maps):
    a, b = _features(fixture_maps, "Aka no Ha"), _features(fixture_maps, "Red Goose")
    assert a.shape == (STYLE_FEATURE_DIM,) and a.dtype == np.float32
    for f in (a, b):
        assert abs(f[:JUMP_ANGLE_BINS].sum() - 1) < 1e-5  # both maps have jumps
        assert 0 <= f[JUMP_ANGLE_BINS : JUMP_ANGLE_BINS + STREAM_ANGLE_BINS].sum() <= 1 + 1e-5
    assert np.abs(a - b).sum() > 0.1


def test_mirroring_a_map_keeps_its_turning_but_not_its_rotation_sense(fixture_maps):
    datapoints = encode(read_beatmap(next(p for p in fixture_maps if "Aka no Ha" in p.name)))
    mirrored = datapoints.with_positions(datapoints.position * np.array([-1, 1], np.float32) + [512, 0])
    a, b = style_features(datapoints), style_features(mirrored)
    np.testing.assert_allclose(a, b, atol=1e-5)  # angles, persistence and spread are mirror-invariant


def test_too_few_objects_give_no_descriptor(fixture_maps):
    datapoints = encode(read_beatmap(next(p for p in fixture_maps if "Aka no Ha" in p.name)))
    first_two = Datapoints(
        datapoints.time_ms[:2], datapoints.position[:2], datapoints.distance[:2], datapoints.kind[:2]
    )
    assert not style_features(first_two).any()
    assert style_features(datapoints).any()


def test_playable_features_describe_the_map_as_clipped_to_the_playfield(fixture_maps):
    def datapoints(name):
        return encode(read_beatmap(next(p for p in fixture_maps if name in p.name)))

    inside = datapoints("Aka no Ha")  # every point on the field: described as it is
    np.testing.assert_array_equal(playable_style_features(inside), style_features(inside))
    gimmick = datapoints("Natsukoi")  # a gimmick map with many slider ends off the field
    off = ((gimmick.position < 0) | (gimmick.position > [512, 384])).any(axis=1)
    assert off.mean() > 0.1
    clipped = gimmick.with_positions(np.clip(gimmick.position, 0, [512, 384]))
    playable, raw = playable_style_features(gimmick), style_features(gimmick)
    np.testing.assert_allclose(playable, style_features(clipped), atol=1e-6)
    spread = slice(JUMP_ANGLE_BINS + STREAM_ANGLE_BINS + 1, STYLE_FEATURE_DIM)  # x and y spread, distance to centre
    assert (playable[spread] <= raw[spread] + 1e-6).all() and not np.allclose(playable[spread], raw[spread])
