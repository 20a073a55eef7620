"""Remap a beatmap with the position DiT: resolve the style asked for, sample new positions, decode to .osu text."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.beatmap.codec import decode, encode, layout
from data.beatmap.datapoints import AIM_TYPES, SLIDER_END_TYPES, Datapoints
from data.beatmap.osu_file import Beatmap
from data.beatmap.osu_reader import read_beatmap
from data.errors import BadInputError
from data.grid import GRID_SIZES_PX, editor_grid, snap_to_grid
from data.position_io import (
    POSITION_SCALE,
    TURN_SCALE,
    denormalize_positions,
    full_map_sample,
    normalize_positions,
    playfield_bounds,
)
from data.replay.mods import circle_radius_px
from data.style_features import JUMP_ANGLE_BINS, JUMP_PX, descriptor_spread_px, playable_style_features
from data.tables import StyleTable
from dit import diffusion
from dit.checkpoint import build_model_from_checkpoint, load_checkpoint
from dit.constraints import (
    AimPath,
    Separation,
    drawn_turn_histogram,
    keep_apart,
    keep_slider_shapes,
    match_spacing,
    match_turns,
    narrow_spread,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CKPT = ROOT / "checkpoints" / "position_turns.pt"
# Guidance when a map style is asked for and no scale is given: at scale 1 the shipped model follows the source's
# own flow and a style moves it only a little (docs/decisions.md).
STYLE_CFG_SCALE = 8.0
OWN_STYLE_LABEL = "own style"  # a remap that follows its source's own descriptor (no style asked for)
# Relaxation passes pulling each denoised estimate's legs to the source spacing: the network alone lands short.
SPACING_PASSES = 8
# Passes per step matching the turns at jumps to the style's histogram: the network reads a descriptor's mean
# turn but not its shape (docs/measurements.md gives both figures).
TURN_PASSES = 4
# Passes per step matching the turns at jumps to the histogram the network's own turn channels draw (models trained
# with them only): alone its positions turn flatter than its channels do (docs/decisions.md).
OWN_TURN_PASSES = 4
# Passes per step keeping non-neighbours apart and the source's stacks stacked: the network crowds objects that
# are on screen together and never stacks exactly (testing/map_discriminator.py's most telling features).
SEPARATION_PASSES = 4
# Pairs the source keeps at least this many circle radii apart stay that far apart: at 2 the remaps' closest
# non-neighbours sat nearer than the sources' (docs/decisions.md).
APART_RADII = 3.0
SEPARATION_OBJECTS = 16  # pairs up to this many aim points apart ...
SEPARATION_MS = 4000.0  # ... and this close in time: what is on screen together
# Each step's layout spreads no wider than the style's: the pulls above widen it and the clip piles the excess on
# the playfield's edge (testing/map_discriminator.py's most telling feature after crowding). Its slow drift over
# this many datapoints is what is narrowed.
SPREAD_CHOICES = ("style", "network")
SPREAD_SIGMA = 8.0
# Sliders keep the source's shape, turned and moved where the network puts them: alone it draws them straighter.
SLIDER_SHAPES = ("source", "network")
GRID_CHOICES = ("auto", "none", *map(str, sorted(GRID_SIZES_PX)))


@dataclass(frozen=True)
class StyleRequest:
    """The style a remap is asked for: a beatmap or mapper class, a map by example, none, or (all unset) its own."""

    style_id: int | None = None
    mapper: str | None = None
    style_from: Path | None = None
    unconditional: bool = False


@dataclass(frozen=True)
class Style:
    """A resolved style: the class, the descriptor that stands in for the class's own, and the output's label."""

    index: int
    features: np.ndarray | None
    label: str
    styled: bool  # a style was asked for: guidance defaults to STYLE_CFG_SCALE


def load_position_model(ckpt_path: str | Path = DEFAULT_CKPT):
    """(model in eval mode, checkpoint dict, StyleTable) from a position-model checkpoint."""
    ckpt = load_checkpoint(ckpt_path)
    if ckpt["config"].get("model") != "PositionDiT":
        raise BadInputError(ckpt_path, f"holds a {ckpt['config'].get('model')}, not a position model")
    return build_model_from_checkpoint(ckpt), ckpt, StyleTable.from_dict(ckpt["extra"]["styles"])


def resolve_style(styles: StyleTable, style_id: int | None = None, mapper: str | None = None) -> int:
    """Style class for a BeatmapID or mapper name (0, the null class, when neither is given)."""
    if style_id is None and mapper is None:
        return 0
    by_id = style_id is not None
    index = styles.beatmap_class(style_id) if by_id else styles.mapper_class(mapper)
    if index is None:
        flag, kind = (f"--style-id {style_id}", "beatmap") if by_id else (f"--mapper {mapper!r}", "mapper")
        raise BadInputError(
            None, f"{flag} is not a {kind} this checkpoint knows (python sample.py --list-styles shows them)"
        )
    return index


def reference_features(model, path: Path) -> tuple[str, np.ndarray]:
    """(label, descriptor) of the map a --style-from remap should look like."""
    if not model.config.class_feature_dim:
        raise BadInputError(None, "--style-from needs a checkpoint trained with style features (see train.py --help)")
    if not path.is_file() or path.suffix.lower() != ".osu":
        raise BadInputError(path, "--style-from takes an .osu file")
    reference = read_beatmap(path)
    features = playable_style_features(encode(reference))
    if not features.any():
        raise BadInputError(path, "has too few objects to show a style")
    name = f"style {reference.beatmap_id}" if reference.beatmap_id else f"style of {reference.version or path.stem}"
    return name, features


def own_style_features(model, beatmap: Beatmap) -> np.ndarray | None:
    """The source's own descriptor, which a remap follows at guidance 1 when no style is asked for (None when the
    checkpoint reads no descriptors or the map has too few objects to show a style)."""
    if not model.config.class_feature_dim:
        return None
    features = playable_style_features(encode(beatmap))
    return features if features.any() else None


def choose_style(model, styles: StyleTable, request: StyleRequest, beatmap: Beatmap) -> Style:
    """The style a remap follows: the class or map asked for; with none asked for, the source's own descriptor
    (unless `unconditional`)."""
    index = resolve_style(styles, request.style_id, request.mapper)
    if request.style_from is not None:
        label, features = reference_features(model, request.style_from)
        return Style(index, features, label, styled=True)
    if index:
        label = f"style {request.style_id}" if request.style_id is not None else f"mapper {request.mapper}"
        return Style(index, None, label, styled=True)
    own = None if request.unconditional else own_style_features(model, beatmap)
    return Style(0, own, OWN_STYLE_LABEL if own is not None else "no style", styled=False)


def guidance_scale(cfg_scale: float | None, styled: bool) -> float:
    """The scale given, else STYLE_CFG_SCALE for a styled remap and 1 (one pass) for an unstyled one."""
    if cfg_scale is not None:
        return cfg_scale
    return STYLE_CFG_SCALE if styled else 1.0


def style_label(styles: StyleTable, index: int) -> str:
    return "no style" if index == 0 else styles.describe(index)


def map_tensors(datapoints, style: int) -> dict[str, torch.Tensor]:
    """The whole map as one sample of the network's inputs (data.position_io.full_map_sample), as tensors."""
    return {key: torch.from_numpy(value) for key, value in full_map_sample(datapoints, style).items()}


def generate_positions(
    model,
    ckpt: dict,
    datapoints,
    style: int,
    *,
    cfg_scale: float = 1.0,
    steps: int = 20,
    sampler: str = "ddim",
    seed: int = 0,
    num_variants: int = 1,
    progress: bool = True,
    style_features: np.ndarray | None = None,
    spacing_passes: int = SPACING_PASSES,
    strength: float = 1.0,
    turn_passes: int = TURN_PASSES,
    own_turn_passes: int = OWN_TURN_PASSES,
    separation: Separation | None = None,
    separation_passes: int = SEPARATION_PASSES,
    sliders: np.ndarray | None = None,
    slider_shapes: str = "source",
    keep: tuple[np.ndarray, np.ndarray] | None = None,
    spread: str = "style",
) -> np.ndarray:
    """New positions in px, [num_variants, N, 2], for a whole map in one pass (attention cost is linear in N).
    `style_features` (a reference map's descriptor) stand in for the style class's own. `strength` below 1 starts
    from the source's own layout noised to t = strength and runs that share of the steps (SDEdit, Meng et al.
    2021, arXiv:2108.01073), so the output keeps what that much noise leaves of it. `keep` (positions in px [N, 2]
    and a mask [N]) holds the masked datapoints where they are and samples the rest around them (inpainting: every
    denoised estimate takes the kept positions, so the network sees them as context at every step).
    `own_turn_passes`: a model with turn channels matches its positions' turns to the histogram of the turns its
    channels draw, at every step (0: they are drawn and left unused). `spread`: "style" narrows every step's layout
    to the style's spread (none for an unstyled remap); "network" leaves it as the network and the pulls draw it."""
    fields = map_tensors(datapoints, style)
    batch = {k: v.unsqueeze(0).expand(num_variants, *v.shape) for k, v in fields.items()}
    extra = {k: batch[k] for k in ("time_ms", "distance", "kind", "style", "mask")}
    if style_features is not None:
        extra["style_features"] = torch.from_numpy(np.asarray(style_features, np.float32)).expand(num_variants, -1)
    device = next(model.parameters()).device
    extra = {k: v.to(device) for k, v in extra.items()}
    # Noise comes from a CPU generator on every device, so a seed means the same starting point everywhere.
    generator = torch.Generator().manual_seed(seed)
    turns = model.config.turn_channels
    source = torch.cat([batch["position"], batch["turns"]], -1) if turns else batch["position"]
    x = torch.randn(source.shape, generator=generator).to(device)
    if strength < 1.0:  # the source's own layout under time `strength`'s noise, denoised from there
        x = diffusion.q_sample(source.to(device), torch.full((num_variants,), strength), x).float()
        steps = max(1, round(steps * strength))
    prediction = ckpt["extra"].get("prediction", "v")
    # Clip every denoised estimate to the playfield: objects must stay where players can reach them.
    bounds = playfield_bounds()
    clip = (torch.from_numpy(bounds[0]), torch.from_numpy(bounds[1]))
    channel_clip = clip
    if turns:  # turn channels are scaled unit vectors
        reach = torch.full((2,), TURN_SCALE)
        channel_clip = (torch.cat([clip[0], -reach]), torch.cat([clip[1], reach]))
    constrain = constraints(
        model,
        extra["kind"][0],
        style,
        extra.get("style_features"),
        spacing_passes,
        turn_passes,
        clip,
        separation if separation_passes else None,
        separation_passes,
        (batch["position"][0].to(device), torch.from_numpy(sliders).to(device))
        if sliders is not None and slider_shapes == "source"
        else None,
        None
        if keep is None
        else (torch.from_numpy(normalize_positions(keep[0])).to(device), torch.from_numpy(keep[1]).to(device)),
        own_turn_passes if turns else 0,
        spread == "style",
    )
    model_fn = diffusion.denoiser(
        diffusion.guided(model, cfg_scale),
        prediction=prediction,
        clip=channel_clip,
        constrain=constrain,
        self_condition=model.config.self_condition,
    )
    with torch.inference_mode():
        x0 = diffusion.SAMPLERS[sampler](
            model_fn, x, steps, extra_args=extra, disable=not progress, generator=generator, start=strength
        )
    return np.stack([denormalize_positions(v[:, :2]) for v in x0.float().cpu().numpy()])


def constraints(model, kind, style: int, style_features, spacing_passes: int, turn_passes: int, bounds,
                separation: Separation | None = None, separation_passes: int = 0, shapes=None, keep=None,
                own_turn_passes: int = 0, spread: bool = False):  # fmt: skip
    """What each denoised estimate goes through before the sampler steps (None: nothing): its spread narrowed to
    the style descriptor's (`spread`; the given descriptor, else the style class's own; none for an unstyled
    remap), the source's stacks and distances between non-neighbours kept, turns at jumps matched to the style
    descriptor's, legs pulled to the source's lengths inside the playfield, turns at jumps matched to the histogram
    of the estimate's own turn channels (`own_turn_passes`, models with them), then each slider given the source's
    shape (`shapes`: the source's positions and each datapoint's slider; None leaves the network's), and last the
    datapoints `keep` masks put back where it holds them (normalized positions, mask). Turn channels pass through
    unchanged."""
    descriptor = style_features[0] if style_features is not None else None
    if descriptor is None and style:
        descriptor = model.class_descriptor(style)
    histogram = None if descriptor is None or not turn_passes else descriptor[:JUMP_ANGLE_BINS]
    spread_px = descriptor_spread_px(descriptor) if spread and descriptor is not None else (0.0, 0.0)
    wanted = torch.tensor(spread_px) / POSITION_SCALE if min(spread_px) > 0 else None
    steered = histogram is not None or separation is not None or own_turn_passes or wanted is not None
    if not steered and not spacing_passes and shapes is None and keep is None:
        return None
    path = AimPath.from_kinds(kind) if steered else None
    min_leg = JUMP_PX / POSITION_SCALE

    def constrain(estimate, kwargs):  # positions and distances in the same normalized units
        x0, turns = estimate[..., :2], estimate[..., 2:]
        if wanted is not None:  # first: the pulls after it need room, and narrowing last would crowd
            x0 = narrow_spread(x0, wanted, path.hit, SPREAD_SIGMA)
        if separation is not None:
            x0 = keep_apart(x0, separation, path, passes=separation_passes)
        if histogram is not None:
            x0 = match_turns(x0, histogram, path, min_leg, passes=turn_passes, bounds=bounds)
        if spacing_passes:
            x0 = match_spacing(x0, kwargs["distance"], kwargs["mask"], passes=spacing_passes, bounds=bounds)
        if own_turn_passes:  # after the pulls that flatten them; before slider shapes, which it would scale
            drawn = drawn_turn_histogram(turns, path, TURN_SCALE / 2, JUMP_ANGLE_BINS)
            x0 = match_turns(x0, drawn, path, min_leg, passes=own_turn_passes, bounds=bounds)
        if shapes is not None:
            x0 = keep_slider_shapes(x0, *shapes, bounds=bounds)
        if keep is not None:
            x0 = torch.where(keep[1][:, None], keep[0].to(x0), x0)
        return torch.cat([x0, turns], -1)

    return constrain


def separation_of(datapoints: Datapoints, circle_size: float) -> Separation:
    """The source's stacks and least distances between non-neighbouring aim points (rows of AimPath.hit) that
    are on screen together, in normalized units."""
    hit = np.flatnonzero(np.isin(datapoints.kind, list(AIM_TYPES)))
    position, time_ms = datapoints.position[hit].astype(np.float64), datapoints.time_ms[hit]
    apart_px = APART_RADII * circle_radius_px(circle_size)
    pairs = [(r, r + k) for k in range(2, SEPARATION_OBJECTS + 1) for r in range(len(hit) - k)]
    first, second = np.array(pairs, np.int64).reshape(-1, 2).T
    near = time_ms[second] - time_ms[first] <= SEPARATION_MS
    first, second = first[near], second[near]
    distance = np.linalg.norm(position[second] - position[first], axis=1)
    stacked = distance < 1.0
    floor = np.where(stacked, 0.0, np.minimum(distance, apart_px)) / POSITION_SCALE
    return Separation(torch.from_numpy(first), torch.from_numpy(second), torch.from_numpy(floor),
                      torch.from_numpy(stacked))  # fmt: skip


def remap(beatmap: Beatmap, model, ckpt: dict, style: int, **kwargs) -> list[str]:
    """The source beatmap with every object placed anew, as .osu texts (one per variant); the keywords are
    remap_positions' and generate_positions'."""
    return [decode(beatmap, positions) for positions in remap_positions(beatmap, model, ckpt, style, **kwargs)]


def remap_positions(
    beatmap: Beatmap,
    model,
    ckpt: dict,
    style: int,
    grid: str = "auto",
    separation_passes: int = SEPARATION_PASSES,
    **generate_kwargs,
) -> list[np.ndarray]:
    """New positions in px of every datapoint (data.beatmap.codec.encode's order), one [N, 2] array per variant.
    `grid`: "auto" places circles, heads (and anchors, where the source's are) on the editor grid the source uses,
    if any; "none" keeps the network's positions; a size in px forces that grid. With `separation_passes`, the
    source's stacks are kept while sampling and put on the same pixel after it."""
    datapoints = encode(beatmap)
    separation = separation_of(datapoints, beatmap.circle_size) if separation_passes else None
    variants = generate_positions(
        model,
        ckpt,
        datapoints,
        style,
        separation=separation,
        separation_passes=separation_passes,
        sliders=slider_groups(beatmap),
        **generate_kwargs,
    )
    size, anchors = editor_grid(datapoints) if grid == "auto" else (None if grid == "none" else int(grid), True)
    if size:
        variants = [snap_to_grid(v, datapoints.kind, datapoints.distance, size, anchors) for v in variants]
    if separation is not None:
        variants = [stack_exactly(v, datapoints) for v in variants]
    return list(variants)


def slider_groups(beatmap: Beatmap) -> np.ndarray:
    """[N] the slider (0, 1, ...) each datapoint of the map belongs to, -1 for a datapoint of no slider."""
    objects = layout(beatmap)[3][:, 0]
    is_slider = np.array([beatmap.hit_objects[i].kind == "slider" for i in objects], bool)
    _, ids = np.unique(np.where(is_slider, objects, -1), return_inverse=True)
    return np.where(is_slider, ids - (~is_slider).any(), -1).astype(np.int64)


def stack_exactly(position_px: np.ndarray, datapoints: Datapoints) -> np.ndarray:
    """Every aim point the source stacks on an earlier one (the same pixel, on screen together) put exactly on
    the first of its stack: sampling brings them close, and osu! stacks only what sits on the same pixel."""
    hit = np.flatnonzero(np.isin(datapoints.kind, list(AIM_TYPES)))
    source, time_ms = datapoints.position[hit], datapoints.time_ms[hit]
    on_top_of = np.full(len(hit), -1)
    for k in range(SEPARATION_OBJECTS, 0, -1):  # the nearest earlier point of the stack wins
        j = np.arange(k, len(hit))
        same = (np.linalg.norm(source[j] - source[j - k], axis=1) < 1.0) & (
            time_ms[j] - time_ms[j - k] <= SEPARATION_MS
        )
        on_top_of[j[same]] = j[same] - k
    # A slider's end stays where its slider's shape puts it; what stacks on it comes to it.
    on_top_of[np.isin(datapoints.kind[hit], list(SLIDER_END_TYPES))] = -1
    first = np.arange(len(hit))  # the earliest movable member of each point's stack
    for j in np.flatnonzero(on_top_of >= 0):
        first[j] = first[on_top_of[j]]
    out = np.array(position_px, copy=True)
    out[hit] = out[hit[first]]
    return out


def strength_value(text: str) -> float:
    """argparse type of --strength (sample.py and testing/evaluate.py): a float in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, not {text}")
    return value
