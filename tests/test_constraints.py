"""Spacing matching during sampling: on real maps, unit-level and through the shipped checkpoint."""

import numpy as np
import torch

import sample
from data.codec import encode
from data.dataset import full_map_sample
from data.osu_file import read_beatmap
from dit.constraints import match_spacing


def aka_no_ha(fixture_maps):
    return encode(read_beatmap(next(p for p in fixture_maps if "Aka no Ha" in p.name)))


def leg_lengths(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 1:] - x[:, :-1]).norm(dim=-1)


def test_a_shrunken_map_gets_its_spacing_back_along_its_own_legs(fixture_maps):
    fields = full_map_sample(aka_no_ha(fixture_maps), 0)
    source = fields["position"][None]
    target, mask = fields["distance"][None], fields["mask"][None]
    shrunk = source * 0.8  # every leg 20% short, directions unchanged
    legs = target[:, 1:] > 0.05  # ~16 px and longer: legs whose length and direction mean something
    fixed = match_spacing(shrunk, target, mask, passes=8)
    before = ((leg_lengths(shrunk) - target[:, 1:]).abs() / target[:, 1:])[legs]
    after = ((leg_lengths(fixed) - target[:, 1:]).abs() / target[:, 1:])[legs]
    assert before.median() > 0.19 and after.median() < 0.05
    direction = lambda x: torch.atan2(*(x[:, 1:] - x[:, :-1]).unbind(-1))  # noqa: E731
    turned = (direction(fixed) - direction(shrunk)).remainder(2 * np.pi)
    turned = torch.minimum(turned, 2 * np.pi - turned)[legs]
    assert turned.median() < 0.1  # a few degrees (measured 0.056 rad): lengthened along themselves, not redrawn


def test_padding_neither_moves_nor_pulls_on_real_points(fixture_maps):
    fields = full_map_sample(aka_no_ha(fixture_maps), 0)
    x, target, mask = fields["position"][None] * 0.8, fields["distance"][None], fields["mask"][None]
    alone = match_spacing(x, target, mask)
    pad = 7
    far = torch.full((1, pad, 2), 0.9)
    padded = match_spacing(
        torch.cat([x, far], 1),
        torch.cat([target, torch.ones(1, pad)], 1),
        torch.cat([mask, torch.zeros(1, pad, dtype=torch.bool)], 1),
    )
    torch.testing.assert_close(padded[:, : x.shape[1]], alone)
    torch.testing.assert_close(padded[:, x.shape[1] :], far)


def test_the_shipped_checkpoint_keeps_the_source_spacing_with_the_default_passes(fixture_maps):
    model, ckpt, _ = sample.load_position_model(sample.DEFAULT_CKPT)
    datapoints = aka_no_ha(fixture_maps)
    errors = {}
    for passes in (0, sample.SPACING_PASSES):
        positions = sample.generate_positions(model, ckpt, datapoints, 0, progress=False, spacing_passes=passes)[0]
        legs = np.linalg.norm(np.diff(positions, axis=0), axis=1)
        errors[passes] = float(np.median(np.abs(legs - datapoints.distance[1:])))
    assert errors[sample.SPACING_PASSES] < 0.5 * errors[0], errors
