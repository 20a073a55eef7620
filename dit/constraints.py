"""Constraints applied to each denoised estimate during sampling.

The network is conditioned on the source's spacing but, like most regressors, lands short of it: remaps came
out 6-8% tighter than their sources (20 DDIM steps 8%, 100 ancestral steps 6%), which lowers star rating and
turns short jumps into stacks. Nudging each estimate's legs toward the requested lengths before the sampler
steps keeps the network's directions (where the style lives) and restores the rhythm's spacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from data.beatmap.datapoints import AIM_TYPES, ANCHOR_TYPES, SLIDER_END_TYPES, SLIDER_HEAD_TYPES


def match_spacing(
    x: Tensor,
    target: Tensor,
    mask: Tensor,
    passes: int = 8,
    rate: float = 0.5,
    bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Move points along their legs so each leg's length approaches `target`.

    x [B, L, 2] positions, target [B, L] wanted distance of each point to the one before it (same units as x),
    mask [B, L] True for real points. Jacobi relaxation: each leg pushes (or pulls) its two ends apart along
    itself by half its error, times `rate`; a point between two legs takes both pushes. Legs of length 0 have no
    direction and are left alone. `bounds` (low, high) [2]: every pass ends clipped to them, so a long jump whose
    end meets the playfield's edge is lengthened from its other end rather than cut short by the final clip.
    """
    legs_real = (mask[:, 1:] & mask[:, :-1]).to(x.dtype)
    for _ in range(passes):
        leg = x[:, 1:] - x[:, :-1]
        length = leg.norm(dim=-1)
        scale = torch.where(length > 1e-6, (target[:, 1:] - length) / length.clamp_min(1e-6), torch.zeros_like(length))
        push = (0.5 * rate * scale * legs_real).unsqueeze(-1) * leg
        x = x + F.pad(push, (0, 0, 1, 0)) - F.pad(push, (0, 0, 0, 1))
        if bounds is not None:
            x = torch.maximum(torch.minimum(x, bounds[1].to(x)), bounds[0].to(x))
    return x


def lowpass(x: Tensor, sigma: float) -> Tensor:
    """x [B, L, C] smoothed along L by a Gaussian of `sigma` points (ends held): the layout's slow drift."""
    radius = max(1, int(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    channels = x.shape[-1]
    kernel = (kernel / kernel.sum()).view(1, 1, -1).repeat(channels, 1, 1)
    padded = F.pad(x.transpose(1, 2), (radius, radius), mode="replicate")
    return F.conv1d(padded, kernel, groups=channels).transpose(1, 2)


def narrow_spread(x: Tensor, wanted: Tensor, hit: Tensor, sigma: float, least: float = 0.5) -> Tensor:
    """Scale the slow drift of each item's layout (`lowpass` of x) about its centre, per axis, so its aim points
    (`hit`, indices into L) spread no wider than `wanted` [2] (standard deviation, x's units); never wider, and
    at most down to `least` of the drift. The drift moves many neighbours alike, so legs and turns barely change:
    what moves is where on the field a passage sits.

    The pulls that lengthen legs and keep non-neighbours apart push every step's estimate outwards, and the
    clip then piles objects onto the playfield's edge; this undoes that widening, towards the style's spread.
    """
    if len(hit) < 3:  # no spread to speak of (and a variance of one point is undefined)
        return x
    drift = lowpass(x, sigma)
    points, slow = x[:, hit], drift[:, hit]
    slow_var = slow.var(dim=1).clamp_min(1e-12)
    fast_var = (points.var(dim=1) - slow_var).clamp_min(0)  # drift and the rest taken as uncorrelated
    scale = ((wanted.to(x) ** 2 - fast_var).clamp_min(0) / slow_var).sqrt().clamp(least, 1.0)
    centre = slow.mean(dim=1, keepdim=True)
    return x + (scale[:, None, :] - 1) * (drift - centre)


@dataclass(frozen=True)
class AimPath:
    """Where a map's aim path runs in its datapoint sequence, for match_turns.

    hit: indices of the points a player aims at (circles, slider heads, slider ends), in time order.
    anchor, anchor_head, anchor_end: each slider anchor's index, and its slider's head and end as rows of `hit`,
    so an anchor can follow its slider when the head or end moves.
    """

    hit: Tensor
    anchor: Tensor
    anchor_head: Tensor
    anchor_end: Tensor

    @classmethod
    def from_kinds(cls, kind: Tensor) -> AimPath:
        kinds = [int(k) for k in kind.tolist()]
        hit, anchor, anchor_head, anchor_end = [], [], [], []
        head, pending = -1, []
        for i, k in enumerate(kinds):
            if k in AIM_TYPES:
                hit.append(i)
            if k in SLIDER_HEAD_TYPES:
                head, pending = len(hit) - 1, []
            elif k in ANCHOR_TYPES and head >= 0:
                pending.append(i)
            elif k in SLIDER_END_TYPES and head >= 0:
                anchor += pending
                anchor_head += [head] * len(pending)
                anchor_end += [len(hit) - 1] * len(pending)
                head, pending = -1, []

        def as_tensor(values: list[int]) -> Tensor:
            return torch.tensor(values, dtype=torch.long, device=kind.device)

        return cls(as_tensor(hit), as_tensor(anchor), as_tensor(anchor_head), as_tensor(anchor_end))


def histogram_quantiles(histogram: Tensor, levels: Tensor) -> Tensor:
    """Angles in [0, pi] at the given cumulative levels of a histogram of equal-width bins over [0, pi],
    uniform within each bin."""
    bins = histogram.numel()
    mass = histogram.clamp_min(0).to(levels.dtype)
    cumulative = torch.cumsum(mass / mass.sum(), 0)
    k = torch.searchsorted(cumulative, levels.contiguous(), right=True).clamp_max(bins - 1)
    below = torch.where(k > 0, cumulative[(k - 1).clamp_min(0)], torch.zeros_like(levels))
    within = ((levels - below) / (cumulative[k] - below).clamp_min(1e-12)).clamp(0, 1)
    return (k.to(levels.dtype) + within) * (math.pi / bins)


def match_turns(
    x: Tensor,
    histogram: Tensor,
    path: AimPath,
    min_leg: float,
    passes: int = 4,
    rate: float = 0.5,
    bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Rotate legs about their shared points so the turning angles at jumps take the distribution `histogram`.

    x [B, L, 2] positions; histogram [bins], or [B, bins] one per item, the wanted share of jump turns per
    equal-width bin of [0, pi] (a style descriptor's jump-turn bins, or `drawn_turn_histogram`); path from
    AimPath.from_kinds; a turn counts when both its legs are longer than min_leg (x's units). Each pass sorts the
    turns and gives each the angle of the same rank in the histogram (the 1-D optimal transport); `_steer_turns`
    says how the legs turn there. An item whose histogram is empty is left as it is.
    """
    histograms = histogram.to(x.device, torch.float64).expand(len(x), -1)
    if len(path.hit) < 3 or float(histograms.sum(-1).max()) <= 0:
        return x

    def wanted(turn: Tensor, item: int, jump: Tensor) -> tuple[Tensor, Tensor]:
        if float(histograms[item].sum()) <= 0:
            return torch.zeros_like(turn), torch.zeros_like(jump)
        count = int(jump.sum())
        order = torch.argsort(turn[jump], stable=True)
        levels = (torch.arange(count, dtype=turn.dtype, device=turn.device) + 0.5) / count
        ranked = torch.empty(count, dtype=turn.dtype, device=turn.device)
        ranked[order] = histogram_quantiles(histograms[item], levels)
        target = torch.zeros_like(turn)
        target[jump] = ranked
        return target, jump

    return _steer_turns(x, wanted, path, min_leg, passes, rate, bounds)


def drawn_turn_histogram(turns: Tensor, path: AimPath, min_norm: float, bins: int) -> Tensor:
    """[B, bins] counts of the turn sizes a model with turn channels draws at the inner aim points, per
    equal-width bin of [0, pi]: the histogram that model's own turns make, for match_turns.

    turns [B, L, 2] the channels' estimate, a vector (cos, sin) of the turn at each aim point, scaled; a vector
    shorter than `min_norm` is a point the network does not draw as a jump.
    """
    if len(path.hit) < 3:
        return torch.zeros(len(turns), bins, dtype=torch.float64, device=turns.device)
    channel = turns[:, path.hit[1:-1]].double()
    size = torch.atan2(channel[..., 1], channel[..., 0]).abs()
    index = (size / math.pi * bins).long().clamp(0, bins - 1)
    weight = (channel.norm(dim=-1) > min_norm).double()
    return torch.zeros(len(turns), bins, dtype=torch.float64, device=turns.device).scatter_add_(1, index, weight)


def _steer_turns(x: Tensor, wanted, path: AimPath, min_leg: float, passes: int, rate: float, bounds) -> Tensor:
    """Each pass asks `wanted(turn, item, jump)` for the target size of every inner aim point's turn and where to
    steer it, then rotates the next point about the turn's point by half the error and the previous point by the
    other half, times `rate`. One rotation keeps both legs' lengths, but a point also turns about its other
    neighbour, so the moves summed stretch legs: two relaxation passes after each pull the aim path's legs back to
    their lengths on entry. Slider anchors follow their slider's head and end (a rotation and scale about the
    head). `bounds` (low, high) [2]: a point whose move would take it outside stays put that pass, and the
    relaxation passes clip to them, so steered maps do not pile onto the playfield's edge."""
    if bounds is not None:
        low, high = bounds = tuple(b.to(x.device, torch.float64) for b in bounds)
    out = []
    for index, item in enumerate(x):
        points = item[path.hit].double()
        lengths = F.pad((points[1:] - points[:-1]).norm(dim=-1), (1, 0))[None]
        everywhere = torch.ones_like(lengths, dtype=torch.bool)
        for _ in range(passes):
            into = points[1:-1] - points[:-2]
            out_leg = points[2:] - points[1:-1]
            jump = (into.norm(dim=-1) > min_leg) & (out_leg.norm(dim=-1) > min_leg)
            cross = into[:, 0] * out_leg[:, 1] - into[:, 1] * out_leg[:, 0]
            signed = torch.atan2(cross, (into * out_leg).sum(-1))
            target, steer = wanted(signed.abs(), index, jump)
            if not bool(steer.any()):
                break
            error = torch.where(steer, target - signed.abs(), torch.zeros_like(signed))
            # turning further means rotating the out-leg towards the side it already turns to
            half = 0.5 * rate * error * torch.where(signed < 0, -1.0, 1.0)
            move = torch.zeros_like(points)
            move[2:] += _rotate(out_leg, half) - out_leg
            move[:-2] += into - _rotate(into, -half)
            if bounds is not None:  # no point is turned off the field, where the clip would crowd the edge
                moved = points + move
                move[((moved < low) | (moved > high)).any(-1)] = 0
            points = match_spacing((points + move)[None], lengths, everywhere, passes=2, bounds=bounds)[0]
        out.append(_place_hits(item, path, points))
    return torch.stack(out)


def _place_hits(item: Tensor, path: AimPath, points: Tensor) -> Tensor:
    """`item` [L, 2] with its aim points moved to `points`; slider anchors follow their slider's head and end."""
    item = item.clone()
    new_hit = points.to(item.dtype)
    if len(path.anchor):
        old_head, old_end = item[path.hit[path.anchor_head]], item[path.hit[path.anchor_end]]
        new_head, new_end = new_hit[path.anchor_head], new_hit[path.anchor_end]
        item[path.anchor] = new_head + _similar(item[path.anchor] - old_head, old_end - old_head, new_end - new_head)
    item[path.hit] = new_hit
    return item


@dataclass(frozen=True)
class Separation:
    """Pairs of aim points that are not neighbours on the aim path (rows of AimPath.hit): those the source
    stacks exactly, which stay stacked, and the others, which stay at least `floor` apart."""

    first: Tensor  # [P] row of the earlier point
    second: Tensor  # [P] row of the later point
    floor: Tensor  # [P] least distance, x's units (0 for stacks)
    stacked: Tensor  # [P] bool


def keep_apart(x: Tensor, separation: Separation, path: AimPath, passes: int = 4, rate: float = 0.5) -> Tensor:
    """Pull the source's stacks together and push other pairs that crowd closer than their floor apart.

    Mappers keep objects that are on screen together apart unless they mean to overlap, and stack a later
    object exactly on an earlier one as a pattern; a network that places each point well on its own does
    neither. Each pass moves both points of a pair by half the error along the line between them, times `rate`
    (Jacobi, like match_spacing); anchors follow their slider.
    """
    if not len(separation.first):
        return x
    first, second = separation.first.to(x.device), separation.second.to(x.device)
    floor, stacked = separation.floor.to(x.device, torch.float64), separation.stacked.to(x.device)
    out = []
    for item in x:
        points = item[path.hit].double()
        for _ in range(passes):
            delta = points[second] - points[first]
            dist = delta.norm(dim=-1)
            crowded = ~stacked & (dist < floor) & (dist > 1e-9)
            share = torch.where(stacked, 0.5 * rate, 0.0)
            share = torch.where(crowded, -0.5 * rate * (floor - dist) / dist.clamp_min(1e-9), share)
            if not bool((share != 0).any()):
                break
            move = torch.zeros_like(points)
            move.index_add_(0, first, share[:, None] * delta)
            move.index_add_(0, second, -share[:, None] * delta)
            points = points + move
        out.append(_place_hits(item, path, points))
    return torch.stack(out)


def _rotate(v: Tensor, angle: Tensor) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], -1)


def _similar(v: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """v under the rotation and scale that takes `old` to `new` (identity where `old` is too short to say)."""
    as_complex = lambda t: torch.view_as_complex(t.contiguous())  # noqa: E731
    long = old.norm(dim=-1) > 1e-6
    ratio = (as_complex(new) / as_complex(old).where(long, 1.0)).where(long, 1.0)
    return torch.view_as_real(as_complex(v) * ratio)


def keep_slider_shapes(
    x: Tensor, source: Tensor, sliders: Tensor, bounds: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """Each slider (head, anchors and end) replaced by the source's slider turned and moved onto it: the rotation
    about the centroids that best fits the source's points to the estimate's (2-D Procrustes, no scaling, so
    the slider keeps its length and so its velocity). Where a slider goes and which way it points stay the
    network's; its bends and curve type are the mapper's.

    x [B, L, 2], source [L, 2] the source's positions (x's units), sliders [L] each datapoint's slider (0, 1, ...)
    or -1 for a datapoint of no slider. `bounds` (low, high) [2]: a slider that would cross them is shifted back
    inside, since the clip that follows would bend it; one that cannot fit at that angle keeps the estimate.
    """
    member = sliders >= 0
    if not bool(member.any()):
        return x
    ids = sliders[member]
    count = int(ids.max()) + 1
    size = torch.zeros(count, dtype=x.dtype, device=x.device).index_add_(0, ids, torch.ones_like(ids, dtype=x.dtype))
    src = source.to(x.device, x.dtype)[member]
    src_centre = torch.zeros(count, 2, dtype=x.dtype, device=x.device).index_add_(0, ids, src) / size[:, None]
    src_rel = src - src_centre[ids]
    out = x.clone()
    for b in range(len(x)):
        est = x[b, member]
        centre = torch.zeros_like(src_centre).index_add_(0, ids, est) / size[:, None]
        est_rel = est - centre[ids]
        dot = torch.zeros(count, dtype=x.dtype, device=x.device).index_add_(0, ids, (src_rel * est_rel).sum(-1))
        cross = src_rel[:, 0] * est_rel[:, 1] - src_rel[:, 1] * est_rel[:, 0]
        cross = torch.zeros_like(dot).index_add_(0, ids, cross)
        angle = torch.atan2(cross, dot)[ids]
        placed = centre[ids] + _rotate(src_rel, angle)
        if bounds is not None:
            low, high = (v.to(x.device, x.dtype) for v in bounds)
            least = torch.full((count, 2), float("inf"), dtype=x.dtype, device=x.device)
            most = torch.full((count, 2), -float("inf"), dtype=x.dtype, device=x.device)
            least = least.scatter_reduce(0, ids[:, None].expand(-1, 2), placed, "amin")
            most = most.scatter_reduce(0, ids[:, None].expand(-1, 2), placed, "amax")
            shift = (low - least).clamp_min(0) + (high - most).clamp_max(0)
            placed = placed + shift[ids]
            fits = ((most - least) <= (high - low)).all(-1)  # a slider larger than the field keeps the estimate's
            placed = torch.where(fits[ids, None], placed, est)
        out[b, member] = placed
    return out
