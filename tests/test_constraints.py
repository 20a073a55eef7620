"""Spacing and turn matching during sampling: on real maps, unit-level and through the shipped checkpoint."""

import math

import numpy as np
import torch

from data.beatmap.codec import encode
from data.beatmap.datapoints import AIM_TYPES, PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH
from data.beatmap.osu_reader import read_beatmap
from data.position_io import POSITION_SCALE, TURN_SCALE, normalize_positions, turn_channels
from data.style_features import JUMP_ANGLE_BINS, JUMP_PX, playable_style_features, style_features
from dit.constraints import (
    AimPath,
    drawn_turn_histogram,
    histogram_quantiles,
    match_spacing,
    match_turns,
    narrow_spread,
)
from pipeline import remap as pipeline_remap
from pipeline.remap import map_tensors
from testing.metrics import turning_angles, wasserstein_1d


def fixture(fixture_maps, name: str):
    return encode(read_beatmap(next(p for p in fixture_maps if name in p.name)))


def aka_no_ha(fixture_maps):
    return fixture(fixture_maps, "Aka no Ha")


def leg_lengths(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 1:] - x[:, :-1]).norm(dim=-1)


def test_a_shrunken_map_gets_its_spacing_back_along_its_own_legs(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
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


def playfield() -> tuple[torch.Tensor, torch.Tensor]:
    corners = normalize_positions(np.array([[0, 0], [PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT]], np.float32))
    return torch.from_numpy(corners[0]), torch.from_numpy(corners[1])


def test_a_pull_inside_the_playfield_lengthens_legs_from_their_free_end(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    target, mask = fields["distance"][None], fields["mask"][None]
    low, high = playfield()
    # 20% short and pushed right until a fifth of the points sit on the right edge
    shrunk = torch.minimum(fields["position"][None] * 0.8 + torch.tensor([0.5, 0.0]), high)
    assert (shrunk[0, :, 0] >= high[0]).float().mean() > 0.2
    legs = target[:, 1:] > 0.05
    error = lambda x: ((leg_lengths(x) - target[:, 1:]).abs() / target[:, 1:])[legs].median()  # noqa: E731
    free = match_spacing(shrunk, target, mask, passes=8)
    bounded = match_spacing(shrunk, target, mask, passes=8, bounds=(low, high))
    assert (free[0, :, 0] > high[0] + 1e-6).any()  # unbounded, the pull runs off the field ...
    assert bool(((bounded >= low) & (bounded <= high)).all())  # ... bounded it never does
    clipped = torch.maximum(torch.minimum(free, high), low)  # the sampler's clip after an unbounded pull
    # measured 1.7% against 3.0%
    assert error(bounded) < 0.06 and error(bounded) < 0.75 * error(clipped), (error(bounded), error(clipped))


def test_narrowing_the_spread_moves_passages_not_legs(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    path = AimPath.from_kinds(fields["kind"])
    source = fields["position"][None].double()
    # each passage carried along a slow loop around the field (a period of 300 datapoints), as a drifting remap
    phase = torch.arange(source.shape[1], dtype=torch.float64) * 2 * math.pi / 300
    wide = source + 0.3 * torch.stack([phase.sin(), phase.cos()], -1)[None]
    wanted = source[0, path.hit].std(0)
    narrowed = narrow_spread(wide, wanted, path.hit, 8.0)
    spread = narrowed[0, path.hit].std(0)
    assert wide[0, path.hit].std(0).min() > 1.15 * wanted.max()
    assert torch.allclose(spread, wanted, rtol=0.05), (spread, wanted)
    legs = lambda x: leg_lengths(x[:, path.hit])[0]  # noqa: E731
    jumps = legs(source) > JUMP_PX / POSITION_SCALE
    change = ((legs(narrowed) - legs(wide)).abs() / legs(wide))[jumps]
    assert change.median() < 0.03, change.median()  # the drift moves neighbours alike
    # already narrower than asked: left as it is (it never widens)
    assert torch.equal(narrow_spread(source, 2 * wanted, path.hit, 8.0), source)
    assert torch.equal(narrow_spread(wide, wanted, path.hit[:2], 8.0), wide)  # two aim points have no spread


def test_the_shipped_checkpoint_spreads_a_remap_like_its_source(fixture_maps):
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    beatmap = read_beatmap(next(p for p in fixture_maps if "Rocket" in p.name))
    datapoints = encode(beatmap)
    hit = np.isin(datapoints.kind, sorted(AIM_TYPES))
    source = datapoints.position[hit].std(0)
    own = playable_style_features(datapoints)  # its own style, as sample.py asks for by default
    spread = {}
    for choice in pipeline_remap.SPREAD_CHOICES:
        positions = pipeline_remap.remap_positions(
            beatmap, model, ckpt, 0, progress=False, spread=choice, style_features=own
        )[0]
        spread[choice] = positions[hit].std(0)
    # Measured: source 91 x 68 px, network 108 x 82, narrowed to the style's (its own) 90 x 68.
    assert np.all(spread["network"] > 1.15 * source), spread
    assert np.allclose(spread["style"], source, rtol=0.05), (spread, source)


def test_padding_neither_moves_nor_pulls_on_real_points(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
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
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    datapoints = aka_no_ha(fixture_maps)
    errors = {}
    for passes in (0, pipeline_remap.SPACING_PASSES):
        positions = pipeline_remap.generate_positions(
            model, ckpt, datapoints, 0, progress=False, spacing_passes=passes
        )[0]
        legs = np.linalg.norm(np.diff(positions, axis=0), axis=1)
        errors[passes] = float(np.median(np.abs(legs - datapoints.distance[1:])))
    assert errors[pipeline_remap.SPACING_PASSES] < 0.5 * errors[0], errors


def jump_histogram(datapoints) -> torch.Tensor:
    return torch.from_numpy(style_features(datapoints)[:JUMP_ANGLE_BINS]).double()


def aim_turns(x: torch.Tensor, path: AimPath) -> np.ndarray:
    return turning_angles(x[0, path.hit].numpy() * POSITION_SCALE)


def histogram_sample(histogram: torch.Tensor) -> np.ndarray:
    return histogram_quantiles(histogram, (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000).numpy()


def test_histogram_quantiles_spread_each_bins_share_evenly_across_it():
    levels = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    for histogram in ([0.5, 0.0, 0.0, 0.5], [3.0, 0.0, 0.0, 3.0]):  # shares or counts
        got = histogram_quantiles(torch.tensor(histogram, dtype=torch.float64), levels)
        expected = torch.tensor([0, 1 / 8, 3 / 4, 7 / 8, 1], dtype=torch.float64) * math.pi
        torch.testing.assert_close(got, expected)


def test_turns_take_another_maps_histogram_and_the_legs_keep_their_length(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    x, path = fields["position"][None], AimPath.from_kinds(fields["kind"])
    target = jump_histogram(fixture(fixture_maps, "Rocket"))  # many straight-on and right-angle jumps
    moved = match_turns(x, target, path, JUMP_PX / POSITION_SCALE, passes=16)
    before = wasserstein_1d(aim_turns(x, path), histogram_sample(target))
    after = wasserstein_1d(aim_turns(moved, path), histogram_sample(target))
    assert after < 0.25 * before, (before, after)  # measured 0.516 -> 0.084
    legs = lambda y: np.linalg.norm(np.diff(y[0, path.hit].numpy(), axis=0), axis=1)  # noqa: E731
    real = legs(x) > JUMP_PX / POSITION_SCALE
    assert np.median(np.abs(legs(moved)[real] / legs(x)[real] - 1)) < 0.05  # measured 0.026


def test_the_drawn_histogram_counts_the_turn_channels_at_jumps(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    x, kind, path = fields["position"][None], fields["kind"], AimPath.from_kinds(fields["kind"])
    channels = torch.from_numpy(turn_channels(x[0].numpy(), kind.numpy()))[None]
    drawn = drawn_turn_histogram(channels, path, TURN_SCALE / 2, JUMP_ANGLE_BINS)
    counted, _ = np.histogram(aim_turns(x, path), bins=JUMP_ANGLE_BINS, range=(0, np.pi))
    assert drawn.shape == (1, JUMP_ANGLE_BINS) and drawn.sum() > 50
    np.testing.assert_array_equal(drawn[0].numpy(), counted)
    # vectors shorter than the threshold are points the network does not draw as jumps
    assert float(drawn_turn_histogram(0.4 * channels, path, TURN_SCALE / 2, JUMP_ANGLE_BINS).sum()) == 0


def test_each_item_takes_its_own_histogram_and_an_empty_one_leaves_it_alone(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    x, path = fields["position"][None], AimPath.from_kinds(fields["kind"])
    target = jump_histogram(fixture(fixture_maps, "Rocket"))
    both = match_turns(
        torch.cat([x, x]), torch.stack([target, torch.zeros_like(target)]), path, JUMP_PX / POSITION_SCALE
    )
    torch.testing.assert_close(both[:1], match_turns(x, target, path, JUMP_PX / POSITION_SCALE))
    torch.testing.assert_close(both[1:], x)
    assert float((both[0] - x[0]).norm(dim=-1).median()) * POSITION_SCALE > 5


def test_a_map_already_in_the_style_moves_far_less_than_one_steered_elsewhere(fixture_maps):
    datapoints = aka_no_ha(fixture_maps)
    fields = map_tensors(datapoints, 0)
    x, path = fields["position"][None], AimPath.from_kinds(fields["kind"])
    moves = {}
    for name, histogram in (
        ("own", jump_histogram(datapoints)),
        ("other", jump_histogram(fixture(fixture_maps, "Rocket"))),
    ):
        moved = match_turns(x, histogram, path, JUMP_PX / POSITION_SCALE)
        moves[name] = float((moved - x).norm(dim=-1).median()) * POSITION_SCALE
    assert moves["own"] < 0.25 * moves["other"], moves  # measured 7 vs 53 px


def test_slider_anchors_keep_their_place_on_their_slider(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    x, path = fields["position"][None], AimPath.from_kinds(fields["kind"])
    assert len(path.anchor) > 100
    moved = match_turns(x, jump_histogram(fixture(fixture_maps, "Rocket")), path, JUMP_PX / POSITION_SCALE)

    def along_slider(y):  # each anchor as a complex multiple of its slider's head-to-end chord
        points = torch.view_as_complex(y[0].double().contiguous())
        head, end = points[path.hit[path.anchor_head]], points[path.hit[path.anchor_end]]
        return (points[path.anchor] - head) / (end - head), (end - head).abs()

    (before, chord), (after, _) = along_slider(x), along_slider(moved)
    assert (moved[0, path.hit[path.anchor_end]] - x[0, path.hit[path.anchor_end]]).norm(dim=-1).max() > 0.05
    long = chord > 0.05  # chords of 16 px and more
    torch.testing.assert_close(after[long], before[long], atol=1e-4, rtol=0)


def test_a_histogram_without_jumps_leaves_the_map_as_it_is(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    x = fields["position"][None]
    same = match_turns(x, torch.zeros(JUMP_ANGLE_BINS, dtype=torch.float64), AimPath.from_kinds(fields["kind"]), 0.1)
    torch.testing.assert_close(same, x, atol=0, rtol=0)


def test_the_shipped_checkpoint_follows_the_styles_turns_with_the_default_passes(fixture_maps):
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    datapoints = fixture(fixture_maps, "Red Goose")
    style = fixture(fixture_maps, "Natsukoi")  # straight on or straight back: far from Red Goose's own turns
    aim = np.zeros(len(datapoints), bool)
    aim[AimPath.from_kinds(torch.from_numpy(datapoints.kind.astype(np.int64))).hit.numpy()] = True
    wanted = histogram_sample(jump_histogram(style))
    distance = {}
    for passes in (0, pipeline_remap.TURN_PASSES):
        # its own passes off: they match the turns its channels draw, after the style's histogram
        positions = pipeline_remap.generate_positions(
            model, ckpt, datapoints, 0, progress=False, style_features=playable_style_features(style),
            turn_passes=passes, own_turn_passes=0,
        )[0]  # fmt: skip
        distance[passes] = wasserstein_1d(turning_angles(positions[aim]), wanted)
    assert distance[pipeline_remap.TURN_PASSES] < 0.5 * distance[0], distance  # measured 0.128 vs 0.303


def test_the_turn_channel_checkpoint_turns_its_positions_like_the_source_with_its_own_passes(fixture_maps):
    model, ckpt, _ = pipeline_remap.load_position_model(pipeline_remap.DEFAULT_CKPT)
    assert model.config.turn_channels
    datapoints = aka_no_ha(fixture_maps)
    hit = np.isin(datapoints.kind, sorted(AIM_TYPES))
    right = lambda a: float(np.mean((a >= 3 * np.pi / 8) & (a <= 5 * np.pi / 8)))  # noqa: E731
    source = right(turning_angles(datapoints.position[hit]))
    shares = {}
    for passes in (0, pipeline_remap.OWN_TURN_PASSES):
        positions = pipeline_remap.generate_positions(
            model, ckpt, datapoints, 0, progress=False, turn_passes=0, own_turn_passes=passes
        )[0]
        shares[passes] = right(turning_angles(positions[hit]))
    # Measured: source 0.246, its positions alone 0.278, matched to the turns its channels draw 0.248.
    assert abs(shares[pipeline_remap.OWN_TURN_PASSES] - source) < 0.015 < abs(shares[0] - source), (source, shares)


def test_bounds_keep_steered_points_on_the_playfield(fixture_maps):
    fields = map_tensors(aka_no_ha(fixture_maps), 0)
    x, path = fields["position"][None], AimPath.from_kinds(fields["kind"])
    target = jump_histogram(fixture(fixture_maps, "Natsukoi"))  # straight on or straight back, 300 px jumps
    bounds = playfield()
    one_px = 1 / POSITION_SCALE
    outside = {}
    for name, given in (("free", None), ("bounded", bounds)):
        moved = match_turns(x, target, path, JUMP_PX / POSITION_SCALE, passes=8, bounds=given)[0, path.hit]
        outside[name] = int(((moved < bounds[0] - one_px) | (moved > bounds[1] + one_px)).any(-1).sum())
    assert outside["free"] > 50 and outside["bounded"] < 0.25 * outside["free"], outside  # measured 105 vs 15 of 463
