"""Position training samples: the prepared cache read back (`load_cache`), and fixed-length windows of datapoints
with augmentation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from data.beatmap.datapoints import Datapoints
from data.cache import ARRAYS_DIR, MAPS_FILE, STYLES_FILE, array_path, build_styles, load_datapoints, styles_fingerprint
from data.errors import BadInputError
from data.position_io import MIRRORS, PAD_KIND, normalize_positions, sample_fields
from data.spans import window_starts
from data.style_features import span_features
from data.tables import StyleTable

# A window's times start at a random offset in [0, TIME_SHIFT_MS): the model sees relative time only.
TIME_SHIFT_MS = 10_000.0
_INT_COLUMNS = ["BeatmapID", "BeatmapSetID"]  # empty when unknown, so pandas' nullable Int64
# Read as text even when they look like numbers (a set folder named "1234", an artist called "2", an MD5 of digits).
_TEXT_COLUMNS = ["md5", "source", "set_key", "creator", "version", "title", "artist", "split", "codec"]


# ---------------------------------------------------------------- the cache


class CacheArrays:
    """Datapoints of cached maps by MD5, loaded on first use and kept (a whole corpus fits in memory)."""

    def __init__(self, cache_dir: str | os.PathLike, codec_by_md5: dict[str, str]):
        self.cache_dir = Path(cache_dir)
        self._codec = dict(codec_by_md5)
        self._loaded: dict[str, Datapoints] = {}

    def __getitem__(self, md5: str) -> Datapoints:
        datapoints = self._loaded.get(md5)
        if datapoints is None:
            if md5 not in self._codec:
                raise KeyError(md5)
            path = array_path(self.cache_dir, md5, self._codec[md5])
            try:
                datapoints = load_datapoints(path)
            except (OSError, ValueError) as err:
                raise BadInputError(path, f"cannot read cached arrays ({type(err).__name__})") from None
            self._loaded[md5] = datapoints
        return datapoints

    def __contains__(self, md5: str) -> bool:
        return md5 in self._codec


def load_cache(cache_dir: str | os.PathLike) -> tuple[pd.DataFrame, StyleTable, CacheArrays]:
    """The table (one row per map), the style classes and the arrays of a cache built by data.prepare."""
    cache_dir = Path(cache_dir)
    table_path = cache_dir / MAPS_FILE
    if not table_path.is_file() or not (cache_dir / ARRAYS_DIR).is_dir():
        raise BadInputError(cache_dir, "not a prepared cache (run python -m data.prepare first)")
    table = pd.read_csv(
        table_path,
        dtype={c: str for c in _TEXT_COLUMNS},
        keep_default_na=False,
        na_values={c: [""] for c in _INT_COLUMNS},
    )
    if "codec" not in table:  # a cache from before the codec fingerprint
        table["codec"] = ""
    for column in _INT_COLUMNS:
        table[column] = table[column].astype("Int64")
    try:
        styles_doc = json.loads((cache_dir / STYLES_FILE).read_text(encoding="utf-8"))
        styles = StyleTable.from_dict(styles_doc["styles"])
        fresh = styles_doc["fingerprint"] == styles_fingerprint(table["md5"])
    except (OSError, ValueError, KeyError):
        fresh = False
    if not fresh:  # styles.json of a run killed before its table: the table is the truth, rebuild from it
        styles = build_styles(table.astype(object).where(table.notna(), None).to_dict("records"))
    return table, styles, CacheArrays(cache_dir, dict(zip(table["md5"], table["codec"], strict=True)))


# ---------------------------------------------------------------- windows


class WindowDataset(Dataset):
    """Fixed-length windows over every map of one split; deterministic for a given (seed, epoch, index)."""

    def __init__(
        self,
        cache: str | os.PathLike | tuple[pd.DataFrame, StyleTable, CacheArrays],
        split: Literal["train", "val"] = "train",
        seq_len: int = 128,
        stride: int = 64,
        augment: bool = True,
        seed: int = 0,
    ):
        if seq_len < 1 or stride < 1:
            raise ValueError(f"seq_len and stride must be positive, got {seq_len}, {stride}")
        table, self.styles, self.arrays = load_cache(cache) if isinstance(cache, (str, os.PathLike)) else cache
        self.table = table[table["split"] == split].sort_values("md5").reset_index(drop=True)
        self.split = split
        self.seq_len = seq_len
        self.stride = stride
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._md5s = self.table["md5"].tolist()
        self._beatmap_class = self.table["style_class"].astype(int).tolist()
        self._mapper_class = self.table["mapper_class"].astype(int).tolist()
        windows = [
            (map_index, start)
            for map_index, n in enumerate(self.table["n_datapoints"].astype(int))
            for start in window_starts(n, seq_len, stride)
        ]
        self._windows = np.array(windows, np.int64).reshape(-1, 2)

    @property
    def num_classes(self) -> int:
        return len(self.styles)

    def set_epoch(self, epoch: int) -> None:
        """Pick this epoch's augmentation draws (call before each epoch; resumed runs see the same data)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._windows)

    def window_lengths(self) -> np.ndarray:
        """Real datapoints in each window: seq_len, except the one padded window of a map shorter than that."""
        n = self.table["n_datapoints"].to_numpy(np.int64)[self._windows[:, 0]] - self._windows[:, 1]
        return np.minimum(n, self.seq_len)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = range(len(self))[index]  # negative indices count from the end; the generator seed needs >= 0
        map_index, start = (int(v) for v in self._windows[index])
        datapoints = self.arrays[self._md5s[map_index]]
        end = min(start + self.seq_len, len(datapoints))
        n = end - start
        position = np.zeros((self.seq_len, 2), np.float32)
        time_ms = np.zeros(self.seq_len, np.float64)
        distance = np.zeros(self.seq_len, np.float32)
        kind = np.full(self.seq_len, PAD_KIND, np.int64)
        mask = np.zeros(self.seq_len, bool)
        position[:n] = normalize_positions(datapoints.position[start:end])
        time_ms[:n] = datapoints.time_ms[start:end] - datapoints.time_ms[start]
        distance[:n] = datapoints.distance[start:end]
        kind[:n] = datapoints.kind[start:end]
        mask[:n] = True
        # Mirrors leave the descriptor unchanged (it holds angles and spreads only), so it is taken here.
        features = span_features(datapoints.position[start:end], datapoints.kind[start:end])
        beatmap_class = self._beatmap_class[map_index]
        mapper_class = self._mapper_class[map_index]
        style = beatmap_class
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            time_ms[:n] += rng.uniform(0.0, TIME_SHIFT_MS)
            position[:n] *= np.array(MIRRORS[rng.integers(len(MIRRORS))], np.float32)
            if mapper_class > 0 and rng.random() < 0.5:
                style = mapper_class
        fields = sample_fields(position, time_ms, distance, kind, mask, style, features)
        return {key: torch.from_numpy(value) for key, value in fields.items()}
