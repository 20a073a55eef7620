"""The editor grid a map was placed on, and placing new positions on it.

osu!'s editor snaps circles, slider heads and slider anchors to a grid of 4, 8, 16 or 32 px when grid snap is
on; many mappers leave it on for a whole map, and a remap that lands on the grid at chance level (one point in
16 at 4 px) is easy to tell from a mapped map.
"""

from __future__ import annotations

import numpy as np

from data.beatmap.datapoints import (
    ANCHOR_TYPES,
    PLAYFIELD_HEIGHT,
    PLAYFIELD_WIDTH,
    SLIDER_HEAD_TYPES,
    Datapoints,
    DatapointType,
)

GRID_SIZES_PX = (32, 16, 8, 4)  # the editor's grid sizes, coarsest first
ON_GRID_SHARE = 0.5  # a map uses a grid when this share of its placed points sit on it (chance: 1 in 16 at 4 px)
MIN_POINTS = 10  # fewer placed points say nothing about a grid
HIT_TYPES = frozenset({DatapointType.CIRCLE, DatapointType.CIRCLE_NEW_COMBO, *SLIDER_HEAD_TYPES})


def on_grid_share(position_px: np.ndarray, size: int) -> float:
    """Share of points whose x and y are both whole multiples of `size` px."""
    points = np.asarray(position_px, np.float64)
    if not len(points):
        return 0.0
    return float(np.mean(np.all(np.isclose(np.mod(points, size), 0) | np.isclose(np.mod(points, size), size), 1)))


def grid_size(position_px: np.ndarray) -> int | None:
    """The coarsest editor grid that ON_GRID_SHARE of the points sit on (None: no grid, or too few points)."""
    if len(position_px) < MIN_POINTS:
        return None
    return next((g for g in GRID_SIZES_PX if on_grid_share(position_px, g) >= ON_GRID_SHARE), None)


def editor_grid(datapoints: Datapoints) -> tuple[int | None, bool]:
    """(grid size in px or None, whether the anchors sit on it too) of a map's circles and slider heads."""
    size = grid_size(datapoints.position[np.isin(datapoints.kind, list(HIT_TYPES))])
    anchors = datapoints.position[np.isin(datapoints.kind, list(ANCHOR_TYPES))]
    return size, size is not None and (not len(anchors) or on_grid_share(anchors, size) >= ON_GRID_SHARE)


def snap_to_grid(
    position_px: np.ndarray, kind: np.ndarray, distance_px: np.ndarray, size: int, anchors: bool = True
) -> np.ndarray:
    """Positions [N, 2] with circles, slider heads (and anchors) moved to a corner of their grid cell inside the
    playfield: the corner whose distance to the previous datapoint is nearest the source's `distance_px`, so the
    spacing is kept as well as the grid allows. Other datapoints stay where they are."""
    out = np.asarray(position_px, np.float64).copy()
    snapped = set(HIT_TYPES) | (set(ANCHOR_TYPES) if anchors else set())
    field = np.floor(np.array([PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT], np.float64) / size) * size
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float64) * size
    for i, k in enumerate(kind):
        if int(k) not in snapped:
            continue
        candidates = np.floor(out[i] / size) * size + corners
        if int(k) in HIT_TYPES:  # anchors may lie off-screen; what players hit may not
            candidates = np.clip(candidates, 0, field)
        moved = np.linalg.norm(candidates - out[i], axis=1)
        if i == 0:
            out[i] = candidates[np.argmin(moved)]
            continue
        spacing_error = np.abs(np.linalg.norm(candidates - out[i - 1], axis=1) - float(distance_px[i]))
        out[i] = candidates[np.lexsort((moved, np.round(spacing_error, 6)))[0]]
    return out.astype(np.float32)
