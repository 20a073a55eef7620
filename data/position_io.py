"""What the position network sees: positions normalized about the playfield, and the fields of a sample.

Training windows (data.windows) and sampling (pipeline.remap) build their fields here, so both agree. Arrays
only: each caller makes tensors of them (torch.from_numpy), so preparing a cache never imports torch.
"""

from __future__ import annotations

import numpy as np

from data.beatmap.datapoints import PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH, Datapoints

# normalized = (px - center) / scale: the 512x384 playfield maps into [-0.8, 0.8] x [-0.6, 0.6], leaving room for
# slider anchors placed off-screen, and the sampler's clip to [-1, 1] keeps them.
POSITION_CENTER = (PLAYFIELD_WIDTH / 2, PLAYFIELD_HEIGHT / 2)
POSITION_SCALE = 320.0
MAX_DISTANCE_PX = 4 * POSITION_SCALE  # farther than any playable jump; troll maps' anchors go millions of px out
# Mirror choices of augmentation, drawn uniformly: none, x (left-right), y (up-down), both. Normalized positions
# are centred on the playfield, so a mirror is a sign flip.
MIRRORS = ((1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0))
PAD_KIND = 0  # kind of padding tokens; they are masked out, any valid type would do

_CENTER = np.array(POSITION_CENTER, np.float32)


def normalize_positions(position_px: np.ndarray) -> np.ndarray:
    """Playfield-centred positions over POSITION_SCALE, clipped to [-1, 1] (the range the sampler clips to):
    legal maps put slider anchors up to millions of px off-screen, which would swamp the loss."""
    normalized = (np.asarray(position_px, np.float32) - _CENTER) / POSITION_SCALE
    return np.clip(normalized, -1.0, 1.0).astype(np.float32)


def denormalize_positions(position: np.ndarray) -> np.ndarray:
    return (np.asarray(position, np.float32) * POSITION_SCALE + _CENTER).astype(np.float32)


def playfield_bounds() -> np.ndarray:
    """[[x0, y0], [x1, y1]] of the playfield in normalized units."""
    return normalize_positions(np.array([[0, 0], [PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT]], np.float32))


def sample_fields(
    position: np.ndarray,
    time_ms: np.ndarray,
    distance_px: np.ndarray,
    kind: np.ndarray,
    mask: np.ndarray,
    style: int,
    style_features: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The fields of one sample (train.py batches them as tensors): position, time_ms, distance, kind, mask,
    style and, when given, style_features."""
    fields = {
        "position": np.asarray(position, np.float32),
        "time_ms": np.asarray(time_ms, np.float32),
        "distance": (np.minimum(np.asarray(distance_px, np.float32), MAX_DISTANCE_PX) / POSITION_SCALE).astype(
            np.float32
        ),
        "kind": np.asarray(kind, np.int64),
        "mask": np.asarray(mask, bool),
        "style": np.asarray(int(style), np.int64),
    }
    if style_features is not None:
        fields["style_features"] = np.asarray(style_features, np.float32)
    return fields


def full_map_sample(datapoints: Datapoints, style: int) -> dict[str, np.ndarray]:
    """The fields of a training sample for a whole map (no window, no augmentation), for sampling. No style
    descriptor: a remap asks for its style's (or a reference map's), never the source's own."""
    n = len(datapoints)
    time_ms = datapoints.time_ms - (datapoints.time_ms[0] if n else 0.0)
    position = normalize_positions(datapoints.position)
    return sample_fields(position, time_ms, datapoints.distance, datapoints.kind, np.ones(n, bool), style)
