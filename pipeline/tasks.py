"""One task object per model: what train.py's single loop needs to know of the position or the replay model
(its data, its config, the network's inputs, what the checkpoint carries beside the weights)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from data.cache import is_map_cache, is_replay_cache, load_frame_timing, load_replay_cache
from data.errors import BadInputError
from data.position_io import POSITION_CENTER, POSITION_SCALE
from data.prepare import prepare
from data.replay.frame_timing import FrameTiming
from data.replay.habits import HABIT_NAMES, NUM_HABITS
from data.replay.osr import DEFAULT_STEP_MS
from data.replay_io import (  # noqa: F401  (the reference kinds are train.py's --reference choices)
    CHANNELS,
    DEFAULT_REFERENCE,
    MODEL_FEATURE_NAMES,
    NUM_MODEL_FEATURES,
    OFFSET_GAIN,
    REFERENCE_KINDS,
)
from data.replay_windows import ReplayWindowDataset, read_set_list
from data.style_features import JUMP_PX, STYLE_FEATURE_DIM, class_feature_table
from data.windows import WindowDataset, load_cache
from dit import diffusion
from dit.models import preset_config
from dit.replay_model import replay_config


class Task:
    """What both tasks share: the loss of a batch, and the network's inputs with or without label dropout."""

    target_key: str
    class_key: str
    loss_terms: dict = {}

    def _inputs(self, batch: dict) -> dict:
        raise NotImplementedError

    def model_kwargs(self, batch: dict, drop_labels: bool) -> dict:
        """The network's inputs; without `drop_labels` no row's class is dropped (validation)."""
        kwargs = self._inputs(batch)
        if not drop_labels:
            kwargs["force_drop_ids"] = torch.zeros_like(batch[self.class_key], dtype=torch.bool)
        return kwargs

    def target(self, batch: dict, config) -> torch.Tensor:
        """What the network denoises."""
        return batch[self.target_key]

    def losses(self, model, batch: dict, drop_labels: bool, generator: torch.Generator) -> dict:
        config = getattr(model, "module", model).config  # a DistributedDataParallel wrapper keeps it on .module
        return diffusion.training_losses(
            model,
            self.target(batch, config),
            model_kwargs=self.model_kwargs(batch, drop_labels),
            mask=batch["mask"],
            generator=generator,
            self_condition=config.self_condition,
            **self.loss_terms,
        )


class PositionTask(Task):
    """Remap beatmaps: windows of datapoints from a map cache, conditioned on a style class and descriptor."""

    name = "position"
    model_name = "PositionDiT"
    default_seq_len = 128
    target_key, class_key = "position", "style"

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.loss_terms = {}
        if args.turn_loss_weight:  # the turns the evaluation judges: both legs longer than JUMP_PX
            self.loss_terms = {"turn_weight": args.turn_loss_weight, "turn_min_leg": JUMP_PX / POSITION_SCALE}

    def datasets(self, accelerator) -> tuple[Path, WindowDataset, WindowDataset]:
        """(cache, train set, val set): a prepared cache as given, or raw folders prepared into
        results_dir/cache first (by the main process)."""
        args = self.args
        cache = self._cache(accelerator)
        self.table, self.styles, self.arrays = load_cache(cache)
        common = {"seq_len": args.seq_len, "seed": args.seed}
        data = (self.table, self.styles, self.arrays)
        return (
            cache,
            WindowDataset(data, "train", augment=True, **common),
            WindowDataset(data, "val", augment=False, **common),
        )

    def _cache(self, accelerator) -> Path:
        paths = self.args.data_path
        if len(paths) == 1 and is_map_cache(paths[0]):
            return paths[0]
        for path in paths:
            if not path.exists():
                raise BadInputError(path, "no such file or folder")
        cache = self.args.results_dir / "cache"
        if accelerator.is_main_process:
            prepare([str(p) for p in paths], str(cache), workers=self.args.workers)
        accelerator.wait_for_everyone()
        if not is_map_cache(cache):
            raise BadInputError(paths[0], "no usable osu!standard maps found")
        return cache

    @property
    def num_classes(self) -> int:
        return len(self.styles)

    def describe_classes(self) -> str:
        return f"{len(self.styles)} style classes"

    def new_config(self):
        feature_dim = 0 if self.args.style_features == "off" else STYLE_FEATURE_DIM
        return preset_config(
            self.args.model,
            num_classes=self.num_classes,
            class_feature_dim=feature_dim,
            self_condition=self.args.self_condition,
            turn_channels=self.args.turn_channels,
        )

    def target(self, batch: dict, config) -> torch.Tensor:
        """Positions, and with turn channels each aim point's turn beside them."""
        if config.turn_channels:
            return torch.cat([batch["position"], batch["turns"]], dim=-1)
        return batch["position"]

    def init_model(self, model) -> None:
        """A fresh model's class descriptors: each class's own maps' (sampling asks for them by class)."""
        if model.config.class_feature_dim:
            features = class_feature_table(self.table, self.arrays, self.num_classes)
            model.style_embedder.class_features.copy_(torch.from_numpy(features))

    def _inputs(self, batch: dict) -> dict:
        kwargs = {k: batch[k] for k in ("time_ms", "distance", "kind", "style")}
        if self.args.style_features == "window":
            kwargs["style_features"] = batch["style_features"]
        return kwargs

    def checkpoint_extra(self, run_config: dict) -> dict:
        """What sampling needs beside the weights: the style table, the prediction, the data layout."""
        return {
            "styles": self.styles.to_dict(),
            "prediction": diffusion.DEFAULT_PREDICTION,
            "data_stats": {
                "position_center": list(POSITION_CENTER),
                "position_scale": POSITION_SCALE,
                "seq_len": self.args.seq_len,
            },
            "run": run_config,
        }


class ReplayTask(Task):
    """Play maps: windows of paired human replays from a replay cache, conditioned on a player class."""

    name = "replay"
    model_name = "ReplayDiT"
    default_seq_len = 512
    target_key, class_key = "x0", "player"

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.frame_timing: FrameTiming | None = None

    def datasets(self, accelerator) -> tuple[Path, ReplayWindowDataset, ReplayWindowDataset]:
        args = self.args
        cache = args.data_path[0]
        if len(args.data_path) != 1 or not is_replay_cache(cache):
            raise BadInputError(
                cache,
                "not a replay cache (make one with python -m data.prepare --input SONGS --output DIR --replays DIR)",
            )
        val_sets = read_set_list(args.val_sets) if args.val_sets else None
        split = "all" if args.val_percent <= 0 and val_sets is None else "train"
        common = {
            "seq_len": args.seq_len,
            "stride": args.seq_len // 2,
            "seed": args.seed,
            "val_percent": args.val_percent,
            "val_sets": val_sets,
            "reference": args.reference,
        }
        train_set = ReplayWindowDataset(cache, split, augment=True, unpaired_share=args.unpaired_share, **common)
        # Validation windows are normalised like the training ones (empty when val_percent is 0).
        normalization = train_set.habit_normalization
        val_set = ReplayWindowDataset(cache, "val", augment=False, habit_normalization=normalization, **common)
        self.players, self.habit_normalization = train_set.players, normalization
        self.player_descriptors = train_set.player_descriptors()
        self.player_windows = train_set.player_windows()
        self.frame_timing = self._frame_timing(cache, held_out={r["replay_md5"] for r in val_set.rows})
        return cache, train_set, val_set

    @staticmethod
    def _frame_timing(cache: Path, held_out: set[str]) -> FrameTiming | None:
        """Frame timing pooled over every stored replay outside validation, paired or not (None when no
        replay could be measured: sampling then writes the model's grid as it is)."""
        rows, _ = load_replay_cache(cache)
        measured = [load_frame_timing(cache, r["replay_md5"]) for r in rows if r["replay_md5"] not in held_out]
        try:
            return FrameTiming.pooled(measured)
        except ValueError:
            return None

    @property
    def num_classes(self) -> int:
        return self.players.num_classes

    def describe_classes(self) -> str:
        return f"{self.players.num_classes} player classes"

    def new_config(self):
        return replay_config(
            self.args.model, num_classes=self.num_classes, num_features=NUM_MODEL_FEATURES, class_feature_dim=NUM_HABITS
        )

    def init_model(self, model) -> None:
        """A fresh model's player descriptors: each player's median training window (sampling as a player
        asks for them by class)."""
        if model.config.class_feature_dim:
            model.player_embedder.class_features.copy_(torch.from_numpy(self.player_descriptors))

    def _inputs(self, batch: dict) -> dict:
        return {k: batch[k] for k in ("features", "time_ms", "player", "player_features")}

    def checkpoint_extra(self, run_config: dict) -> dict:
        """What sampling needs beside the weights to play a map: players, prediction, the data layout."""
        return {
            "players": self.players.to_dict(),
            "prediction": diffusion.DEFAULT_PREDICTION,
            "data_stats": {
                "step_ms": DEFAULT_STEP_MS,
                "offset_gain": OFFSET_GAIN,
                "reference": self.args.reference,
                "channels": list(CHANNELS),
                "features": list(MODEL_FEATURE_NAMES),
                "seq_len": self.args.seq_len,
            },
            "frame_timing": self.frame_timing.to_dict() if self.frame_timing else None,
            # Each player's hit error was measured against their maps' 300 window; sampling scales it to the map's.
            "habits": {
                "names": list(HABIT_NAMES),
                **self.habit_normalization,
                "player_window_300_ms": self.player_windows,
            },
            "run": run_config,
        }


TASKS = {task.name: task for task in (PositionTask, ReplayTask)}
