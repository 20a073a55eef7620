"""A fixed-length descriptor of a map's style: the geometry its rhythm and spacing do not already decide.

The position model is given every datapoint's time, type and distance to the previous one, so what is left
for a style to say is where the cursor turns: the turning-angle distribution at jumps and in streams, whether
turns keep one rotation (circular flow) or alternate (zig-zag), and how much of the playfield the map uses.
A learned class embedding alone sees a handful of sparse updates per class in a CPU-sized training run, and a
whole-map descriptor is a weak, blurred target for any one window. So the trainer conditions every window on the
descriptor of its own points (what the network must reproduce), and sampling asks for the descriptor of the
style's map or mapper, or of any reference map (style by example).
"""

from __future__ import annotations

import numpy as np

from data.beatmap.datapoints import AIM_TYPES, PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH, Datapoints

JUMP_PX = 40.0  # legs longer than this are jumps: stacks and streams say little of flow
MIN_LEG_PX = 2.0  # shorter legs (stacks) have no direction
JUMP_ANGLE_BINS = 8
STREAM_ANGLE_BINS = 4
STYLE_FEATURE_DIM = JUMP_ANGLE_BINS + STREAM_ANGLE_BINS + 1 + 3
SPREAD_INDEX = JUMP_ANGLE_BINS + STREAM_ANGLE_BINS + 1  # where the x and y spreads sit in the descriptor

_AIM_KINDS = np.array(sorted(AIM_TYPES), np.int8)


def _histogram(angles: np.ndarray, bins: int) -> np.ndarray:
    if len(angles) == 0:
        return np.zeros(bins, np.float32)
    counts, _ = np.histogram(angles, bins=bins, range=(0.0, np.pi))
    return (counts / len(angles)).astype(np.float32)


def style_features(datapoints: Datapoints) -> np.ndarray:
    """float32 [STYLE_FEATURE_DIM] descriptor of a map (zeros where it has too few objects to say)."""
    return span_features(datapoints.position, datapoints.kind)


def playable_style_features(datapoints: Datapoints) -> np.ndarray:
    """The descriptor of a map with its points clipped to the playfield: the style a remap, which keeps every
    point inside, can follow. It differs from style_features only where a map leaves the field: a gimmick map with
    8% of its slider ends off it asks for a vertical spread no in-field layout has (1.9 half-heights), and a remap
    told so crowded its edges (0.975 of points inside against 0.989 with no style)."""
    limits = np.array([PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT], np.float64)
    return span_features(np.clip(np.asarray(datapoints.position, np.float64), 0.0, limits), datapoints.kind)


def leg_turns(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """At each interior point of a path [N, 2]: the turn in [0, pi] between the legs into and out of it (0 is
    straight on, pi straight back), both legs' lengths, and the cross product whose sign says left or right."""
    legs = np.diff(np.asarray(points, np.float64), axis=0)
    lengths = np.linalg.norm(legs, axis=1)
    a, b, la, lb = legs[:-1], legs[1:], lengths[:-1], lengths[1:]
    cos = np.einsum("ij,ij->i", a, b) / np.maximum(la * lb, 1e-9)
    return np.arccos(np.clip(cos, -1.0, 1.0)), la, lb, a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def span_features(position_px: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """The descriptor of any run of datapoints (a whole map, or one training window), positions in px."""
    points = np.asarray(position_px)[np.isin(kind, _AIM_KINDS)].astype(np.float64)
    features = np.zeros(STYLE_FEATURE_DIM, np.float32)
    if len(points) < 3:
        return features
    angles, la, lb, cross = leg_turns(points)
    valid = (la > MIN_LEG_PX) & (lb > MIN_LEG_PX)
    jumps = valid & (la > JUMP_PX) & (lb > JUMP_PX)
    streams = valid & (la <= JUMP_PX) & (lb <= JUMP_PX)
    i = 0
    features[i : i + JUMP_ANGLE_BINS] = _histogram(angles[jumps], JUMP_ANGLE_BINS)
    i += JUMP_ANGLE_BINS
    features[i : i + STREAM_ANGLE_BINS] = _histogram(angles[streams], STREAM_ANGLE_BINS)
    i += STREAM_ANGLE_BINS
    signs = np.sign(cross[jumps])
    features[i] = float(np.mean(signs[1:] == signs[:-1])) if len(signs) > 1 else 0.0
    i = SPREAD_INDEX
    centre = np.array([PLAYFIELD_WIDTH / 2, PLAYFIELD_HEIGHT / 2])
    features[i] = points[:, 0].std() / (PLAYFIELD_WIDTH / 2)
    features[i + 1] = points[:, 1].std() / (PLAYFIELD_HEIGHT / 2)
    features[i + 2] = np.linalg.norm(points - centre, axis=1).mean() / (PLAYFIELD_WIDTH / 2)
    return features


def descriptor_spread_px(features) -> tuple[float, float]:
    """The standard deviation of a descriptor's aim points in x and y, px (0 where it has too few to say)."""
    return float(features[SPREAD_INDEX]) * PLAYFIELD_WIDTH / 2, float(features[SPREAD_INDEX + 1]) * PLAYFIELD_HEIGHT / 2


def class_feature_table(table, arrays, num_classes: int) -> np.ndarray:
    """[num_classes, STYLE_FEATURE_DIM]: each beatmap class its map's descriptor, each mapper class the mean
    of its maps' descriptors, the null class zeros. `table` is the cache's map table (style_class, mapper_class)."""
    sums = np.zeros((num_classes, STYLE_FEATURE_DIM), np.float64)
    counts = np.zeros(num_classes, np.int64)
    for md5, beatmap_class, mapper_class in zip(
        table["md5"], table["style_class"].astype(int), table["mapper_class"].astype(int), strict=True
    ):
        features = style_features(arrays[md5])
        for c in (beatmap_class, mapper_class):
            if 0 < c < num_classes:
                sums[c] += features
                counts[c] += 1
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
