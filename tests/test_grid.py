"""Editor grid: detected on real maps, and remaps of a map on a grid land on it while keeping its spacing."""

from __future__ import annotations

import numpy as np
import pytest

from data.beatmap.codec import encode
from data.beatmap.datapoints import ANCHOR_TYPES, PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.grid import HIT_TYPES, editor_grid, on_grid_share, snap_to_grid
from pipeline import remap as pipeline_remap


def fixture(fixture_maps, name: str):
    return read_beatmap(next(p for p in fixture_maps if name in p.name))


def hits(datapoints) -> np.ndarray:
    return datapoints.position[np.isin(datapoints.kind, list(HIT_TYPES))]


@pytest.mark.parametrize(
    ("name", "grid", "anchors"),
    [("Rocket", 16, True), ("Red Goose", 4, True), ("Aka no Ha", 4, True), ("Natsukoi", None, False)],
)
def test_the_grid_a_mapper_used_is_found(fixture_maps, name, grid, anchors):
    assert editor_grid(encode(fixture(fixture_maps, name))) == (grid, anchors)


def test_snapping_keeps_spacing_better_than_rounding_to_the_nearest_point(fixture_maps):
    datapoints = encode(fixture(fixture_maps, "Aka no Ha"))
    rng = np.random.default_rng(0)
    moved = datapoints.position + rng.normal(0, 6, datapoints.position.shape)  # a layout off every grid
    snapped = snap_to_grid(moved, datapoints.kind, datapoints.distance, 16)
    is_hit = np.isin(datapoints.kind, list(HIT_TYPES))
    assert on_grid_share(snapped[is_hit], 16) == 1.0
    assert on_grid_share(snapped[np.isin(datapoints.kind, list(ANCHOR_TYPES))], 16) == 1.0
    others = ~np.isin(datapoints.kind, list(HIT_TYPES | ANCHOR_TYPES))
    assert np.array_equal(snapped[others], moved[others].astype(np.float32))
    assert (snapped[is_hit] >= 0).all() and (snapped[is_hit] <= [PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT]).all()
    nearest = moved.copy()
    nearest[is_hit] = np.round(moved[is_hit] / 16) * 16

    def spacing_error(p):
        legs = np.linalg.norm(np.diff(p, axis=0), axis=1)
        return np.median(np.abs(legs - datapoints.distance[1:])[is_hit[1:]])

    assert spacing_error(snapped) < 0.6 * spacing_error(nearest)
    assert np.abs(snapped[is_hit] - moved[is_hit]).max() <= 16 * np.sqrt(2) + 1e-6


def test_a_remap_of_a_map_on_a_grid_lands_on_it(fixture_maps):
    source = fixture(fixture_maps, "Rocket")
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    kwargs = {"steps": 4, "progress": False, "seed": 0}
    gridded = encode(parse_beatmap(pipeline_remap.remap(source, model, ckpt, 0, **kwargs)[0].encode()))
    free = encode(parse_beatmap(pipeline_remap.remap(source, model, ckpt, 0, grid="none", **kwargs)[0].encode()))
    assert on_grid_share(hits(gridded), 16) == 1.0  # the source's grid: every circle and head
    assert on_grid_share(hits(free), 16) < 0.3  # the network alone lands on it by chance
    assert editor_grid(gridded)[0] == 16  # (a v3 map keeps slider lengths, so its anchors scale off the grid)
