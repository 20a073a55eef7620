"""The datapoint vocabulary shared by the codec, the datasets and the models.

One datapoint per thing on a beatmap that has a coordinate (the design of OliBomby/osu-diffusion):
hit circles, spinners and their ends, slider heads, every slider anchor, and slider ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

PLAYFIELD_WIDTH = 512
PLAYFIELD_HEIGHT = 384


class DatapointType(IntEnum):
    CIRCLE = 0
    CIRCLE_NEW_COMBO = 1
    SPINNER = 2
    SPINNER_END = 3
    SLIDER_HEAD = 4
    SLIDER_HEAD_NEW_COMBO = 5
    BEZIER_ANCHOR = 6
    PERFECT_ANCHOR = 7
    CATMULL_ANCHOR = 8
    RED_ANCHOR = 9
    LAST_ANCHOR = 10
    SLIDER_END_NO_REPEAT = 11
    SLIDER_END_ONE_REPEAT = 12
    SLIDER_END_TWO_REPEATS = 13
    SLIDER_END_EVEN_REPEATS = 14
    SLIDER_END_ODD_REPEATS = 15


NUM_DATAPOINT_TYPES = len(DatapointType)

SLIDER_END_TYPES = frozenset(
    {
        DatapointType.SLIDER_END_NO_REPEAT,
        DatapointType.SLIDER_END_ONE_REPEAT,
        DatapointType.SLIDER_END_TWO_REPEATS,
        DatapointType.SLIDER_END_EVEN_REPEATS,
        DatapointType.SLIDER_END_ODD_REPEATS,
    }
)
SLIDER_HEAD_TYPES = frozenset({DatapointType.SLIDER_HEAD, DatapointType.SLIDER_HEAD_NEW_COMBO})
# The points a player aims at, in time order the aim path: circles, slider heads and slider ends.
AIM_TYPES = frozenset({DatapointType.CIRCLE, DatapointType.CIRCLE_NEW_COMBO, *SLIDER_HEAD_TYPES, *SLIDER_END_TYPES})
ANCHOR_TYPES = frozenset(
    {
        DatapointType.BEZIER_ANCHOR,
        DatapointType.PERFECT_ANCHOR,
        DatapointType.CATMULL_ANCHOR,
        DatapointType.RED_ANCHOR,
        DatapointType.LAST_ANCHOR,
    }
)


def slider_end_type(repeats: int) -> DatapointType:
    """Type of a slider's end datapoint; `repeats` counts reverse arrows (slides - 1)."""
    if repeats <= 2:
        return DatapointType(DatapointType.SLIDER_END_NO_REPEAT + repeats)
    return DatapointType.SLIDER_END_EVEN_REPEATS if repeats % 2 == 0 else DatapointType.SLIDER_END_ODD_REPEATS


@dataclass(frozen=True)
class Datapoints:
    """A map as a time-sorted sequence of datapoints (struct of arrays, length N)."""

    time_ms: np.ndarray  # float64 [N], absolute time in the map
    position: np.ndarray  # float32 [N, 2], osu! pixels
    distance: np.ndarray  # float32 [N], px to the previous datapoint (0 for the first)
    kind: np.ndarray  # int8 [N], DatapointType values

    def __len__(self) -> int:
        return len(self.kind)

    def with_positions(self, position: np.ndarray) -> Datapoints:
        """Same rhythm and types, new positions (distances are left as the source's)."""
        return Datapoints(self.time_ms, np.asarray(position, np.float32), self.distance, self.kind)


def distances(position: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point to the one before it, 0 for the first."""
    d = np.zeros(len(position), np.float32)
    if len(position) > 1:
        d[1:] = np.linalg.norm(np.diff(position.astype(np.float64), axis=0), axis=1)
    return d
