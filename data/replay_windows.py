"""Replay training samples: fixed-length windows of grid ticks, as a cursor offset from a reference path.

The network does not have to learn where the objects are: `reference_path` is a plain 'auto' path through
the (stacked, mod-applied) objects, a minimum-jerk reach (or a straight line) from one object's end to the
next one's head, on the slider ball while a slider lasts, at the centre during spinners. The model
diffuses the human's deviation from it (early arrival, overshoot, curvature, aim error, spinning) and the
two keys as +-1 channels that are thresholded after sampling. Positions here are normalized like every
dataset, (px - centre) / 320.

Windows cover the part of a replay where an object is within reach (breaks and idle lead-ins are skipped),
are deterministic for (seed, epoch, index) like data.windows.WindowDataset, and split by map set.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch.utils.data import Dataset

from data.replay.osr import key_holds
from data.replay_dataset import (
    FEATURE_INDEX,
    MAX_LOOKAHEAD_MS,
    MS_PER_UNIT,
    POSITION_CENTER,
    POSITION_SCALE,
    load_replay_array,
    load_replay_cache,
)

# The cursor channels are (cursor - reference) / POSITION_SCALE * OFFSET_GAIN, clipped to [-1, 1] (the
# sampler's x0 range): the clip is an offset of POSITION_SCALE / OFFSET_GAIN px from the reference path.
OFFSET_GAIN = 2.0
KEY_DOWN, KEY_UP = 1.0, -1.0
CHANNELS = ("dx", "dy", "key1", "key2")
NUM_CHANNELS = len(CHANNELS)
# Velocity of the reference path per tick is tiny in normalized units; this brings it near unit scale.
VELOCITY_GAIN = 10.0
# Decays that turn times to and since objects into sharp "about now" signals (seconds).
TIME_DECAYS_S = (0.03, 0.1, 0.3)
MIRRORS = ((1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0))
# Windows start anywhere in the first 10 minutes of a song: every phase of the real-time embedding's periods
# (up to a minute) is seen in training, so a whole map sampled in one pass is still in distribution.
TIME_SHIFT_MS = 600_000.0
# Key holds shorter than this many ticks are lengthened to it and gaps that short are filled. A one-tick gap is
# sampler flicker (0.3% of human gaps at 60 Hz); a one-tick hold is most often a tap the sampler committed to for
# a single tick, and dropping it missed its object (Tower of Heaven, 1500-step checkpoint: 86 -> 60 misses);
# human holds are rarely that short (1.1%), so it is lengthened to two ticks rather than kept as it is.
MIN_KEY_TICKS = 2
# A window may start up to this long before the first object and end this long after the last.
LEAD_IN_MS = 1000.0
ReferenceKind = Literal["linear", "minimum_jerk"]
REFERENCE_KINDS: tuple[str, ...] = get_args(ReferenceKind)
DEFAULT_REFERENCE: ReferenceKind = "minimum_jerk"
VAL_PERCENT = 10  # share of map sets held out (hash of the set folder name)
LEAVE_SLIDER_S = 0.1  # how early a player leaves a slider whose end the next object overlaps

_F = FEATURE_INDEX
_CLIP_S = MAX_LOOKAHEAD_MS / MS_PER_UNIT
# Map features the model sees exactly as the replay cache stores them.
PASSTHROUGH_FEATURES = (
    "next_time_s",
    "next2_time_s",
    "prev_time_s",
    "active_left_s",
    "next_is_circle",
    "next_is_slider",
    "next_is_spinner",
    "next_new_combo",
    "slider_active",
    "spinner_active",
    "radius",
    "preempt_s",
    "window_300_s",
    "window_50_s",
)
# Names of the model's per-tick conditioning columns (`model_features`), in order.
MODEL_FEATURE_NAMES = (
    "ref_x",
    "ref_y",
    "ref_vx",
    "ref_vy",
    "next_dx",  # next object's head - reference
    "next_dy",
    "next2_dx",
    "next2_dy",
    "prev_dx",  # last object's end - reference
    "prev_dy",
    "ball_dx",  # slider ball - reference (0 when no slider is active)
    "ball_dy",
    *PASSTHROUGH_FEATURES,
    *(f"next_soon_{d}" for d in TIME_DECAYS_S),
    *(f"prev_recent_{d}" for d in TIME_DECAYS_S),
)
NUM_MODEL_FEATURES = len(MODEL_FEATURE_NAMES)
# Columns that are x or y components of a position or offset: a mirror flips their sign.
_X_COLUMNS = [MODEL_FEATURE_NAMES.index(n) for n in MODEL_FEATURE_NAMES if n.endswith(("_x", "_dx", "_vx"))]
_Y_COLUMNS = [MODEL_FEATURE_NAMES.index(n) for n in MODEL_FEATURE_NAMES if n.endswith(("_y", "_dy", "_vy"))]


# ----------------------------------------------------------------------------------------------------------
# Reference path and model inputs (also used by sample.py on a map with no replay)


def minimum_jerk(share: np.ndarray) -> np.ndarray:
    """Position share along a point-to-point reach at time share s: 10s^3 - 15s^4 + 6s^5 (Flash & Hogan 1985,
    doi:10.1523/JNEUROSCI.05-07-01688.1985). Hands start and stop at rest, so the path has no full-speed
    reversal on an object (a replay analyser counts those as snaps) and rests near the object at its hit."""
    return share**3 * (10 - 15 * share + 6 * share**2)


def reference_path(features: np.ndarray, kind: ReferenceKind = DEFAULT_REFERENCE) -> np.ndarray:
    """The 'auto' cursor [T, 2] (normalized) implied by replay_dataset.map_features [T, 22].

    Between objects it goes from one object's end to the next one's head, at constant speed ('linear') or
    along a minimum-jerk reach ('minimum_jerk')."""
    if kind not in REFERENCE_KINDS:
        raise ValueError(f"unknown reference path {kind!r}, expected one of {REFERENCE_KINDS}")
    f = features
    prev = f[:, [_F["prev_x"], _F["prev_y"]]]
    nxt = f[:, [_F["next_x"], _F["next_y"]]]
    since = f[:, _F["prev_time_s"]].astype(np.float64)
    until = f[:, _F["next_time_s"]].astype(np.float64)
    total = since + until
    share = np.where(total > 0, since / np.where(total > 0, total, 1.0), 1.0)[:, None]
    if kind == "minimum_jerk":
        share = minimum_jerk(share)
    path = prev + (nxt - prev) * share
    sliding = f[:, _F["slider_active"]] > 0
    path[sliding] = f[sliding][:, [_F["ball_x"], _F["ball_y"]]]
    # Maps put the next object on (or just before) a slider's end: players leave the slider early for it.
    leaving = sliding & (until <= f[:, _F["active_left_s"]])
    catch = np.clip(1.0 - until / LEAVE_SLIDER_S, 0.0, 1.0)[:, None]
    path[leaving] += ((nxt - path) * catch)[leaving]
    spinning = f[:, _F["spinner_active"]] > 0
    path[spinning] = 0.0  # the playfield centre
    return path.astype(np.float32)


def model_features(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-tick conditioning [T, NUM_MODEL_FEATURES]: positions relative to the reference path, times, flags."""
    f = features
    out = np.zeros((len(f), NUM_MODEL_FEATURES), np.float32)
    col = {n: i for i, n in enumerate(MODEL_FEATURE_NAMES)}
    out[:, col["ref_x"]], out[:, col["ref_y"]] = reference[:, 0], reference[:, 1]
    if len(f) > 1:
        velocity = np.diff(reference, axis=0, prepend=reference[:1]) * VELOCITY_GAIN
        out[:, col["ref_vx"]], out[:, col["ref_vy"]] = velocity[:, 0], velocity[:, 1]
    for name, (x, y) in {
        "next": ("next_x", "next_y"),
        "next2": ("next2_x", "next2_y"),
        "prev": ("prev_x", "prev_y"),
        "ball": ("ball_x", "ball_y"),
    }.items():
        out[:, col[f"{name}_dx"]] = f[:, _F[x]] - reference[:, 0]
        out[:, col[f"{name}_dy"]] = f[:, _F[y]] - reference[:, 1]
    no_ball = f[:, _F["slider_active"]] <= 0
    out[no_ball, col["ball_dx"]] = out[no_ball, col["ball_dy"]] = 0.0
    for name in PASSTHROUGH_FEATURES:
        out[:, col[name]] = f[:, _F[name]]
    for d in TIME_DECAYS_S:
        out[:, col[f"next_soon_{d}"]] = np.exp(-f[:, _F["next_time_s"]] / d)
        out[:, col[f"prev_recent_{d}"]] = np.exp(-f[:, _F["prev_time_s"]] / d)
    return out


def encode_targets(x_px: np.ndarray, y_px: np.ndarray, k1, k2, reference: np.ndarray) -> np.ndarray:
    """Cursor in px and keys -> the diffused channels [T, 4] (see OFFSET_GAIN)."""
    cursor = np.stack([(x_px - POSITION_CENTER[0]), (y_px - POSITION_CENTER[1])], axis=1) / POSITION_SCALE
    offset = np.clip((cursor - reference) * OFFSET_GAIN, -1.0, 1.0)
    keys = np.stack([np.where(np.asarray(k, bool), KEY_DOWN, KEY_UP) for k in (k1, k2)], axis=1)
    return np.concatenate([offset, keys], axis=1).astype(np.float32)


def decode_targets(x0: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of encode_targets: (x px, y px, key1, key2) from sampled channels [T, 4]."""
    cursor = reference + despike(np.asarray(x0[:, :2], np.float64)) / OFFSET_GAIN
    x = (cursor[:, 0] * POSITION_SCALE + POSITION_CENTER[0]).astype(np.float32)
    y = (cursor[:, 1] * POSITION_SCALE + POSITION_CENTER[1]).astype(np.float32)
    threshold = (KEY_DOWN + KEY_UP) / 2
    return x, y, clean_keys(x0[:, 2] > threshold), clean_keys(x0[:, 3] > threshold)


def despike(offset: np.ndarray) -> np.ndarray:
    """Running median of 3 ticks per channel: removes one-tick back-and-forth spikes of the sampler (a replay
    analyser counts them as aim-correction snaps), keeps steady motion and steps as they are."""
    if len(offset) < 3:
        return offset
    padded = np.concatenate([offset[:1], offset, offset[-1:]])
    return np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)


def clean_keys(down: np.ndarray, min_ticks: int = MIN_KEY_TICKS) -> np.ndarray:
    """Fill gaps shorter than `min_ticks` ticks between holds, then lengthen holds shorter than that (bool [T])."""
    out = np.asarray(down, bool).copy()
    for start, stop in key_holds(~out):  # gaps first: a flickering hold becomes one hold, not several taps
        if stop - start < min_ticks and start > 0 and stop < len(out):  # a gap at either end is not between holds
            out[start:stop] = True
    for start, stop in key_holds(out):
        if stop - start < min_ticks:
            out[start : start + min_ticks] = True
    return out


def active_span(features: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) ticks with an object within LEAD_IN_MS ahead or behind (the played part)."""
    near_s = LEAD_IN_MS / MS_PER_UNIT
    near = (features[:, _F["next_time_s"]] < near_s) | (features[:, _F["prev_time_s"]] < near_s)
    near |= features[:, _F["slider_active"]] > 0
    near |= features[:, _F["spinner_active"]] > 0
    ticks = np.flatnonzero(near)
    if len(ticks) == 0:
        return 0, 0
    return int(ticks[0]), int(ticks[-1]) + 1


def set_split(map_path: str, val_percent: int = VAL_PERCENT) -> Literal["train", "val"]:
    """Train or val by the map's set folder (sister difficulties never straddle the split)."""
    key = Path(map_path).parent.name.encode("utf-8")
    return "val" if int(hashlib.md5(key).hexdigest(), 16) % 100 < val_percent else "train"


def sample_tensors(
    targets: np.ndarray, features: np.ndarray, time_ms: np.ndarray, mask: np.ndarray, player: int
) -> dict[str, torch.Tensor]:
    """The dict-of-tensors contract train.py batches: x0, features, time_ms, mask, player."""
    return {
        "x0": torch.from_numpy(np.asarray(targets, np.float32)),
        "features": torch.from_numpy(np.asarray(features, np.float32)),
        "time_ms": torch.from_numpy(np.asarray(time_ms, np.float32)),
        "mask": torch.from_numpy(np.asarray(mask, bool)),
        "player": torch.tensor(int(player), dtype=torch.int64),
    }


# ----------------------------------------------------------------------------------------------------------
# Dataset


class ReplayWindowDataset(Dataset):
    """Windows of paired replays of one split; deterministic for a given (seed, epoch, index)."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        split: Literal["train", "val", "all"] = "train",
        seq_len: int = 256,
        stride: int = 128,
        augment: bool = True,
        seed: int = 0,
        val_percent: int = VAL_PERCENT,
        reference: ReferenceKind = DEFAULT_REFERENCE,
    ):
        if seq_len < 1 or stride < 1:
            raise ValueError(f"seq_len and stride must be positive, got {seq_len}, {stride}")
        self.cache_dir = Path(cache_dir)
        rows, self.players = load_replay_cache(cache_dir)
        # Only paired replays carry a map to condition on; flagged replays never reach the cache.
        rows = [r for r in rows if r["paired"]]
        if split != "all":
            rows = [r for r in rows if set_split(r["map_path"], val_percent) == split]
        self.rows = sorted(rows, key=lambda r: r["replay_md5"])
        self.split, self.seq_len, self.stride, self.reference = split, seq_len, stride, reference
        reference_kind = reference
        self.augment, self.seed, self.epoch = augment, seed, 0
        self._inputs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        windows = []
        for i, row in enumerate(self.rows):
            array = load_replay_array(self.cache_dir, row["replay_md5"])
            first, last = active_span(array["features"])
            array = array[first:last]
            reference = reference_path(array["features"], reference_kind)
            targets = encode_targets(array["x"], array["y"], array["k1"], array["k2"], reference)
            conditioning = model_features(array["features"], reference)
            self._inputs.append((targets, conditioning, np.asarray(array["time_ms"], np.float64)))
            windows.extend((i, s) for s in _window_starts(len(array), seq_len, stride))
        self._windows = np.array(windows, np.int64).reshape(-1, 2)

    @property
    def num_classes(self) -> int:
        return self.players.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Pick this epoch's augmentation draws (resumed runs see the same data)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = range(len(self))[index]
        replay, start = (int(v) for v in self._windows[index])
        targets, conditioning, time_ms = self._inputs[replay]
        end = min(start + self.seq_len, len(targets))
        n = end - start
        x0 = np.zeros((self.seq_len, len(CHANNELS)), np.float32)
        x0[:, 2:] = KEY_UP
        features = np.zeros((self.seq_len, NUM_MODEL_FEATURES), np.float32)
        times = np.zeros(self.seq_len, np.float64)
        mask = np.zeros(self.seq_len, bool)
        x0[:n], features[:n], mask[:n] = targets[start:end], conditioning[start:end], True
        times[:n] = time_ms[start:end] - time_ms[start]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            times[:n] += rng.uniform(0.0, TIME_SHIFT_MS)
            sx, sy = MIRRORS[rng.integers(len(MIRRORS))]
            x0[:, 0] *= sx
            x0[:, 1] *= sy
            features[:, _X_COLUMNS] *= sx
            features[:, _Y_COLUMNS] *= sy
        return sample_tensors(x0, features, times, mask, self.rows[replay]["player_class"])


def _window_starts(n: int, seq_len: int, stride: int) -> list[int]:
    """Starts covering all n ticks (none for an empty replay; one padded window for a short one)."""
    if n == 0:
        return []
    if n <= seq_len:
        return [0]
    starts = list(range(0, n - seq_len + 1, stride))
    if starts[-1] != n - seq_len:
        starts.append(n - seq_len)
    return starts
