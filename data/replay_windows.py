"""Replay training samples: fixed-length windows of grid ticks, as a cursor offset from a reference path
(data.replay_io). Windows cover the part of a replay where an object is within reach (breaks and idle lead-ins
are skipped), are deterministic for (seed, epoch, index) like data.windows.WindowDataset, and split by map set.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from data.cache import load_replay_array, load_replay_cache
from data.position_io import MIRRORS
from data.replay.gameplay import osu_accuracy
from data.replay.habits import (
    NUM_HABITS,
    habit_stats,
    median_descriptor,
    normalize_habits,
    tick_habits,
    windows_descriptor,
)
from data.replay.pseudo_map import HumanErrors, press_errors, pseudo_play, replay_difficulty
from data.replay_io import (
    CHANNELS,
    DEFAULT_REFERENCE,
    FEATURE_INDEX,
    KEY_UP,
    MODEL_FEATURE_NAMES,
    MS_PER_UNIT,
    NUM_MODEL_FEATURES,
    ReferenceKind,
    active_span,
    encode_targets,
    map_features,
    model_features,
    reference_path,
)
from data.spans import window_starts

# Windows start anywhere in the first 10 minutes of a song: every phase of the real-time embedding's periods
# (up to a minute) is seen in training, so a whole map sampled in one pass is still in distribution.
TIME_SHIFT_MS = 600_000.0
VAL_PERCENT = 10  # share of map sets held out (hash of the set folder name)
# Pseudo-maps draw their errors from paired plays at least this accurate: most replays without a map in the
# corpus are (median 0.98), while many paired ones are test plays that miss on purpose.
POOL_MIN_ACCURACY = 0.95
_F = FEATURE_INDEX
# Columns that are x or y components of a position or offset: a mirror flips their sign.
_X_COLUMNS = [MODEL_FEATURE_NAMES.index(n) for n in MODEL_FEATURE_NAMES if n.endswith(("_x", "_dx", "_vx"))]
_Y_COLUMNS = [MODEL_FEATURE_NAMES.index(n) for n in MODEL_FEATURE_NAMES if n.endswith(("_y", "_dy", "_vy"))]


def set_split(
    map_path: str, val_percent: int = VAL_PERCENT, val_sets: frozenset[str] | None = None
) -> Literal["train", "val"]:
    """Train or val by the map's set folder (sister difficulties never straddle the split): the named set
    folders when `val_sets` is given, else a hash of the folder name."""
    folder = Path(map_path).parent.name
    if val_sets is not None:
        return "val" if folder in val_sets else "train"
    return "val" if int(hashlib.md5(folder.encode("utf-8")).hexdigest(), 16) % 100 < val_percent else "train"


def judged_accuracy(row: dict) -> float:
    """osu! accuracy of a paired replay as data.replay.gameplay judged it (NaN when it was not judged)."""
    try:
        counts = [int(row[f"judged_{k}"]) for k in ("300", "100", "50", "miss")]
    except (KeyError, ValueError):
        return float("nan")
    return osu_accuracy(*counts[:3], sum(counts))


def read_set_list(path: str | os.PathLike) -> frozenset[str]:
    """Set folder names, one per line (a map path names its folder; '#' starts a comment)."""
    names = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(Path(line).parent.name if line.lower().endswith(".osu") else Path(line).name)
    return frozenset(names)


def sample_tensors(
    targets: np.ndarray,
    features: np.ndarray,
    time_ms: np.ndarray,
    mask: np.ndarray,
    player: int,
    player_features: np.ndarray,
) -> dict[str, torch.Tensor]:
    """The dict-of-tensors contract train.py batches: x0, features, time_ms, mask, player, player_features."""
    return {
        "x0": torch.from_numpy(np.asarray(targets, np.float32)),
        "features": torch.from_numpy(np.asarray(features, np.float32)),
        "time_ms": torch.from_numpy(np.asarray(time_ms, np.float32)),
        "mask": torch.from_numpy(np.asarray(mask, bool)),
        "player": torch.tensor(int(player), dtype=torch.int64),
        "player_features": torch.from_numpy(np.asarray(player_features, np.float32)),
    }


# ----------------------------------------------------------------------------------------------------------
# Dataset


class ReplayWindowDataset(Dataset):
    """Windows of paired replays of one split; deterministic for a given (seed, epoch, index).

    With `unpaired_share` > 0 the training split also takes that share of its windows from replays without
    their map, each played on a pseudo-map (data.replay.pseudo_map), conditioned on their player and on habits
    measured against the pseudo-map (its hit error and aim are the drawn errors'). They train the network, not
    the players' descriptors or the habits' normalisation, which stay those of paired play."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        split: Literal["train", "val", "all"] = "train",
        seq_len: int = 256,
        stride: int = 128,
        augment: bool = True,
        seed: int = 0,
        val_percent: int = VAL_PERCENT,
        val_sets: frozenset[str] | None = None,
        reference: ReferenceKind = DEFAULT_REFERENCE,
        habit_normalization: dict[str, list[float]] | None = None,
        unpaired_share: float = 0.0,
    ):
        if seq_len < 1 or stride < 1:
            raise ValueError(f"seq_len and stride must be positive, got {seq_len}, {stride}")
        if not 0.0 <= unpaired_share < 1.0:
            raise ValueError(f"unpaired_share must be in [0, 1), got {unpaired_share}")
        self.cache_dir = Path(cache_dir)
        all_rows, self.players = load_replay_cache(cache_dir)
        # Paired replays carry a map to condition on; flagged replays never reach the cache.
        rows = [r for r in all_rows if r["paired"]]
        if split != "all":
            rows = [r for r in rows if set_split(r["map_path"], val_percent, val_sets) == split]
        self.split, self.seq_len, self.stride, self.reference = split, seq_len, stride, reference
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.rows: list[dict] = []
        self._inputs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._window_300_ms: list[float] = []  # per replay: its map's 300 window with its mods (ms of play time)
        windows, habits, errors, difficulty = [], [], [], []
        for row in sorted(rows, key=lambda r: r["replay_md5"]):
            array = load_replay_array(self.cache_dir, row["replay_md5"])
            first, last = active_span(array["features"])
            array = array[first:last]
            window_300 = float(array["features"][0, _F["window_300_s"]]) * MS_PER_UNIT if len(array) else 0.0
            starts, descriptors = self._store(row, array, array["features"], window_300)
            windows.extend((len(self.rows) - 1, s) for s in starts)
            habits.append(descriptors)
            if unpaired_share > 0 and len(array) and judged_accuracy(row) >= POOL_MIN_ACCURACY:
                errors.append(press_errors(array["time_ms"], array["x"], array["y"], array["k1"], array["k2"],
                                           array["features"]))  # fmt: skip
                difficulty.append(replay_difficulty(float(row["rate"]), array["features"]))
        self._windows = np.array(windows, np.int64).reshape(-1, 2)
        # Each window is conditioned on its own play's habits (data.replay.habits), normalised by the training
        # windows' spread; a player is later asked for by their windows' median (player_descriptors).
        self.habits = np.concatenate(habits) if habits else np.zeros((0, NUM_HABITS))
        self.habit_normalization = habit_normalization or habit_stats(self.habits)
        self._player_features = normalize_habits(self.habits, self.habit_normalization)
        self.paired_windows = len(self._windows)
        if unpaired_share > 0 and split != "val" and errors:
            human = HumanErrors.pooled(errors, difficulty)
            self._add_unpaired([r for r in all_rows if not r["paired"]], human, unpaired_share)

    def _store(self, row: dict, array: np.ndarray, features: np.ndarray, window_300_ms: float):
        """Keep one replay's targets and conditioning against `features` (its map's or a pseudo-map's); return
        its window starts and each window's habit descriptor."""
        reference = reference_path(features, self.reference)
        targets = encode_targets(array["x"], array["y"], array["k1"], array["k2"], reference)
        self._inputs.append((targets, model_features(features, reference), np.asarray(array["time_ms"], np.float64)))
        self.rows.append(row)
        self._window_300_ms.append(window_300_ms)
        starts = window_starts(len(array), self.seq_len, self.stride)
        ticks = tick_habits(array["time_ms"], array["x"], array["y"], array["k1"], array["k2"], features)
        return starts, windows_descriptor(ticks, starts, self.seq_len)

    def _add_unpaired(self, rows: list[dict], human: HumanErrors, share: float) -> None:
        """Append windows of unpaired replays on pseudo-maps, evenly chosen so they make `share` of all windows;
        each replay's pseudo-map is drawn from (seed, its md5), so the windows do not depend on the others."""
        windows, habits = [], []
        for row in sorted(rows, key=lambda r: r["replay_md5"]):
            array = load_replay_array(self.cache_dir, row["replay_md5"])
            rng = np.random.default_rng([self.seed, int(row["replay_md5"][:8], 16)])
            play = pseudo_play(array["time_ms"], array["x"], array["y"], array["k1"], array["k2"],
                               float(row["rate"]), human, rng)  # fmt: skip
            features = map_features(play, array["time_ms"])
            first, last = active_span(features)
            if last - first < 1:
                continue
            array, features = array[first:last], features[first:last]
            starts, descriptors = self._store(row, array, features, float(play.hit_windows_ms[0]))
            windows.extend((len(self.rows) - 1, s) for s in starts)
            habits.append(descriptors)
        wanted = min(len(windows), round(share / (1 - share) * self.paired_windows))
        if not wanted:
            return
        chosen = np.unique(np.linspace(0, len(windows) - 1, wanted).round().astype(np.int64))
        added = np.concatenate(habits)[chosen]
        self._windows = np.concatenate([self._windows, np.array(windows, np.int64)[chosen]])
        self.habits = np.concatenate([self.habits, added])
        self._player_features = np.concatenate(
            [self._player_features, normalize_habits(added, self.habit_normalization)]
        )

    def player_descriptors(self) -> np.ndarray:
        """[num_classes, NUM_HABITS] normalised: each player's median raw window descriptor (0 for the null
        class and players without windows here)."""
        table = np.full((self.num_classes, NUM_HABITS), np.nan)
        classes = np.array([self.rows[r]["player_class"] for r in self._windows[: self.paired_windows, 0]], np.int64)
        for c in np.unique(classes):
            table[c] = median_descriptor(self.habits[: self.paired_windows][classes == c])
        out = normalize_habits(table, self.habit_normalization)
        out[0] = 0.0
        return out

    def player_windows(self) -> list[float]:
        """[num_classes] each player's median 300 window (ms of play time) over their windows here (0 for the
        null class and players without windows): the timing a player's hit error was measured against."""
        table = [0.0] * self.num_classes
        classes = np.array([self.rows[r]["player_class"] for r in self._windows[: self.paired_windows, 0]], np.int64)
        window = np.asarray(self._window_300_ms)[self._windows[: self.paired_windows, 0]]
        for c in np.unique(classes):
            if c:
                table[c] = float(np.median(window[classes == c]))
        return table

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
        player = self.rows[replay]["player_class"]
        return sample_tensors(x0, features, times, mask, player, self._player_features[index])
