"""Sliders keep their source's shape (bends, curve type, length), turned and moved where the network puts them."""

from __future__ import annotations

import numpy as np
import torch

from data.beatmap.codec import encode
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.position_io import normalize_positions
from dit.constraints import keep_slider_shapes
from pipeline import remap as pipeline_remap


def source(fixture_maps, name: str):
    return read_beatmap(next(p for p in fixture_maps if name in p.name))


def test_every_slider_is_one_group_of_head_anchors_and_end(fixture_maps):
    beatmap = source(fixture_maps, "Natsukoi")
    ids = pipeline_remap.slider_groups(beatmap)
    kinds = encode(beatmap).kind
    sliders = sum(h.kind == "slider" for h in beatmap.hit_objects)
    assert len(ids) == len(kinds) and ids.max() + 1 == sliders
    assert (np.bincount(ids[ids >= 0]) >= 2).all()  # at least a head and an end each, though objects interleave
    assert set(kinds[ids < 0]) <= {0, 1, 2, 3}  # circles and spinners


def test_a_moved_and_turned_slider_gets_its_source_shape_back(fixture_maps):
    beatmap = source(fixture_maps, "Natsukoi")
    datapoints = encode(beatmap)
    ids = torch.from_numpy(pipeline_remap.slider_groups(beatmap))
    src = torch.from_numpy(normalize_positions(datapoints.position)).double()
    rng = np.random.default_rng(0)
    estimate = src.clone()
    for s in range(int(ids.max()) + 1):
        member = ids == s
        angle = rng.uniform(-np.pi, np.pi)
        rot = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float64)
        offset = torch.from_numpy(rng.normal(0, 0.1, 2))
        estimate[member] = (src[member] - src[member].mean(0)) @ rot.T + src[member].mean(0) + offset
    estimate += torch.from_numpy(rng.normal(0, 0.01, estimate.shape))  # and each point a little off
    fixed = keep_slider_shapes(estimate[None], src, ids)[0]
    for s in range(int(ids.max()) + 1):
        member = ids == s
        assert torch.allclose(torch.cdist(fixed[member], fixed[member]), torch.cdist(src[member], src[member]))
        assert torch.allclose(fixed[member].mean(0), estimate[member].mean(0))  # it stays where it was put
    assert torch.equal(fixed[ids < 0], estimate[ids < 0])


def test_remapped_sliders_keep_curve_type_and_length(fixture_maps):
    beatmap = source(fixture_maps, "Natsukoi")  # no editor grid, so nothing moves anchors after sampling
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    text = pipeline_remap.remap(beatmap, model, ckpt, 0, steps=4, progress=False)[0]
    pairs = [(a, b) for a, b in zip(beatmap.hit_objects, parse_beatmap(text.encode()).hit_objects, strict=True)
             if a.kind == "slider"]  # fmt: skip
    changed = [(a.curve_type, b.curve_type) for a, b in pairs if a.curve_type != b.curve_type]
    # the decoder writes an arc that would leave the playfield as a bezier of the same points
    assert set(changed) <= {("P", "B")} and len(changed) <= 0.02 * len(pairs), changed
    assert np.median([abs(a.length_px - b.length_px) for a, b in pairs]) < 1.0
    assert np.mean([a.control_points != b.control_points for a, b in pairs]) > 0.8  # yet nearly every one moved
