"""What the position network sees: positions normalized about the playfield, and the fields of a sample.

Training windows (data.windows) and sampling (pipeline.remap) build their fields here, so both agree. Arrays
only: each caller makes tensors of them (torch.from_numpy), so preparing a cache never imports torch.
"""

from __future__ import annotations

import numpy as np

from data.beatmap.datapoints import AIM_TYPES, PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH, Datapoints
from data.style_features import JUMP_PX, leg_turns

# normalized = (px - center) / scale: the 512x384 playfield maps into [-0.8, 0.8] x [-0.6, 0.6], leaving room for
# slider anchors placed off-screen, and the sampler's clip to [-1, 1] keeps them.
POSITION_CENTER = (PLAYFIELD_WIDTH / 2, PLAYFIELD_HEIGHT / 2)
POSITION_SCALE = 320.0
MAX_DISTANCE_PX = 4 * POSITION_SCALE  # farther than any playable jump; troll maps' anchors go millions of px out
# Mirror choices of augmentation, drawn uniformly: none, x (left-right), y (up-down), both. Normalized positions
# are centred on the playfield, so a mirror is a sign flip.
MIRRORS = ((1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0))
PAD_KIND = 0  # kind of padding tokens; they are masked out, any valid type would do
# Turn channels (DiTConfig.turn_channels) are unit vectors scaled to about the positions' spread, so the noise
# schedule settles turns at about the noise level where it settles the legs they join.
TURN_SCALE = 0.5
TURN_MIN_LEG = JUMP_PX / POSITION_SCALE  # a turn between two jumps: what the evaluation judges

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


def turn_channels(position: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """[L, 2]: at each aim point (circle, slider head or end) whose legs along the aim path are both longer than
    TURN_MIN_LEG, the signed turn between them as TURN_SCALE * (cos, sin); zeros elsewhere.

    The position network can be trained to draw these beside the positions: a turn is then one token's value,
    whose distribution a diffusion model learns far more easily than a relation between three noisy points.
    """
    out = np.zeros((len(position), 2), np.float32)
    hit = np.flatnonzero(np.isin(kind, sorted(AIM_TYPES)))
    if len(hit) < 3:
        return out
    angle, into, out_leg, cross = leg_turns(np.asarray(position)[hit])
    jump = (into > TURN_MIN_LEG) & (out_leg > TURN_MIN_LEG)
    angle = np.where(cross < 0, -angle, angle)[jump]
    out[hit[1:-1][jump]] = TURN_SCALE * np.stack([np.cos(angle), np.sin(angle)], 1)
    return out


def sample_fields(
    position: np.ndarray,
    time_ms: np.ndarray,
    distance_px: np.ndarray,
    kind: np.ndarray,
    mask: np.ndarray,
    style: int,
    style_features: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The fields of one sample (train.py batches them as tensors): position, turns (`turn_channels` of the real
    tokens), time_ms, distance, kind, mask, style and, when given, style_features."""
    mask = np.asarray(mask, bool)
    turns = np.zeros((len(mask), 2), np.float32)
    turns[mask] = turn_channels(np.asarray(position)[mask], np.asarray(kind)[mask])
    fields = {
        "position": np.asarray(position, np.float32),
        "turns": turns,
        "time_ms": np.asarray(time_ms, np.float32),
        "distance": (np.minimum(np.asarray(distance_px, np.float32), MAX_DISTANCE_PX) / POSITION_SCALE).astype(
            np.float32
        ),
        "kind": np.asarray(kind, np.int64),
        "mask": mask,
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
