"""Objects on screen together stay as far apart as the source keeps them, and the source's stacks stay stacked."""

from __future__ import annotations

import numpy as np
import torch

from data.beatmap.codec import encode
from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.grid import HIT_TYPES
from data.position_io import normalize_positions
from dit.constraints import AimPath, keep_apart
from pipeline import remap as pipeline_remap


def source(fixture_maps, name: str):
    return read_beatmap(next(p for p in fixture_maps if name in p.name))


def crowding(positions: np.ndarray, separation, path) -> tuple[float, float]:
    """(share of kept-apart pairs closer than their floor, median distance of the stacked pairs), normalized."""
    hit = positions[path.hit.numpy()]
    first, second = separation.first.numpy(), separation.second.numpy()
    dist = np.linalg.norm(hit[second] - hit[first], axis=1)
    stacked, floor = separation.stacked.numpy(), separation.floor.numpy()
    crowded = float(np.mean(dist[~stacked] < floor[~stacked] - 1e-6))
    return crowded, float(np.median(dist[stacked])) if stacked.any() else 0.0


def test_the_source_itself_satisfies_its_separation(fixture_maps):
    beatmap = source(fixture_maps, "Natsukoi")
    datapoints = encode(beatmap)
    separation = pipeline_remap.separation_of(datapoints, beatmap.circle_size)
    path = AimPath.from_kinds(torch.from_numpy(datapoints.kind.astype(np.int64)))
    assert separation.stacked.any() and (~separation.stacked).sum() > 1000
    assert (separation.first + 2 <= separation.second).all()  # never neighbours on the aim path
    assert crowding(normalize_positions(datapoints.position), separation, path) == (0.0, 0.0)


def test_a_crowded_layout_is_pushed_apart_and_stacks_pulled_together(fixture_maps):
    beatmap = source(fixture_maps, "Natsukoi")
    datapoints = encode(beatmap)
    separation = pipeline_remap.separation_of(datapoints, beatmap.circle_size)
    path = AimPath.from_kinds(torch.from_numpy(datapoints.kind.astype(np.int64)))
    rng = np.random.default_rng(0)
    crowded = normalize_positions(datapoints.position) * 0.6 + rng.normal(0, 0.01, datapoints.position.shape)
    before = crowding(crowded, separation, path)
    after_x = keep_apart(torch.from_numpy(crowded.astype(np.float32))[None], separation, path, passes=8)[0].numpy()
    after = crowding(after_x, separation, path)
    assert before[0] > 0.1 and after[0] < 0.5 * before[0], (before, after)
    assert after[1] < 0.25 * before[1], (before, after)
    others = np.setdiff1d(np.arange(len(crowded)), np.concatenate([path.hit.numpy(), path.anchor.numpy()]))
    assert np.allclose(after_x[others], crowded[others])  # spinners and the like stay put


def test_remaps_keep_the_source_stacks(fixture_maps):
    beatmap = source(fixture_maps, "Aka no Ha")
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    separation = pipeline_remap.separation_of(encode(beatmap), beatmap.circle_size)
    hit_kind = encode(beatmap).kind[AimPath.from_kinds(torch.from_numpy(encode(beatmap).kind.astype(np.int64))).hit]
    heads = np.isin(hit_kind, list(HIT_TYPES))  # circles and slider heads; a slider's end follows its path
    stacked = separation.stacked.numpy() & heads[separation.first.numpy()] & heads[separation.second.numpy()]
    assert stacked.sum() > 50  # the map stacks a later object exactly on an earlier one
    on_pixel = {}
    for passes in (0, pipeline_remap.SEPARATION_PASSES):
        text = pipeline_remap.remap(beatmap, model, ckpt, 0, steps=8, progress=False, separation_passes=passes)[0]
        out = encode(parse_beatmap(text.encode()))
        hit = out.position[AimPath.from_kinds(torch.from_numpy(out.kind.astype(np.int64))).hit.numpy()]
        gaps = np.linalg.norm(hit[separation.second.numpy()] - hit[separation.first.numpy()], axis=1)[stacked]
        on_pixel[passes] = float(np.mean(gaps < 1.0))
    assert on_pixel[0] < 0.2 and on_pixel[pipeline_remap.SEPARATION_PASSES] > 0.9, on_pixel
