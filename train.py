"""Train a position DiT on prepared beatmaps (or a replay DiT on a replay cache): one loop for CPU, GPUs, nodes.

    python train.py --model DiT-T --data-path ~/osu/Songs --results-dir results/run1
    python train.py --task replay --data-path CACHE --results-dir DIR   # CACHE from data.prepare --replays
    torchrun --nproc-per-node=2 train.py --model DiT-S --data-path CACHE --results-dir DIR
    accelerate launch train.py --model DiT-B --data-path CACHE --results-dir DIR

The batch of step s is a pure function of (seed, s): resuming from a checkpoint replays the exact data order,
noise and learning-rate schedule, so N straight steps and N/2 + resume + N/2 give the same weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

from data.errors import BadInputError, refusal_exit

TASKS = ("position", "replay")
DEFAULT_SEQ_LEN = {"position": 128, "replay": 512}
MODEL_NAMES = {"position": "PositionDiT", "replay": "ReplayDiT"}
# The turn term counts the turns the evaluation judges: both legs longer than this (testing/metrics.JUMP_MIN_LEG_PX,
# repeated here because the judge stays independent of what it judges and nothing imports testing/).
TURN_MIN_LEG_PX = 40.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from dit.models import DIT_PRESETS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--task",
        choices=TASKS,
        default="position",
        help="position: remap beatmaps (a map cache); replay: play maps (a cache made with data.prepare --replays)",
    )
    p.add_argument("--model", choices=sorted(DIT_PRESETS), default="DiT-T", help="model preset")
    p.add_argument(
        "--data-path",
        type=Path,
        required=True,
        nargs="+",
        help="a prepared cache (python -m data.prepare) or raw map folders / Songs folders / .osz files",
    )
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="checkpoints, logs and TensorBoard")
    p.add_argument("--global-batch-size", type=int, default=64, help="windows per optimizer step, all processes")
    p.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help=f"datapoints (position, default {DEFAULT_SEQ_LEN['position']}) or grid ticks "
        f"(replay, default {DEFAULT_SEQ_LEN['replay']}) per training window",
    )
    p.add_argument(
        "--val-percent",
        type=int,
        default=10,
        help="replay task: share of map sets held out for validation (0 trains on every paired replay)",
    )
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (AdamW)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--warmup-steps", type=int, default=200, help="linear LR warmup steps")
    p.add_argument("--max-steps", type=int, default=10000, help="total optimizer steps (LR decays to 10%% by then)")
    p.add_argument("--ckpt-every", type=int, default=1000, help="write a checkpoint every N steps (and at the end)")
    p.add_argument("--val-every", type=int, default=500, help="validation loss every N steps (and at the end)")
    p.add_argument("--log-every", type=int, default=50, help="print and log the training loss every N steps")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the shipped weights")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0 turns it off)")
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        default="auto",
        help="autocast dtype; auto is bf16 where the GPU or CPU computes it natively, otherwise fp32",
    )
    p.add_argument(
        "--style-features",
        choices=["window", "map", "off"],
        default="window",
        help="position task: condition each training window on the turning and field-use descriptor of its own "
        "points (window), of its whole map or mapper (map), or on the class embedding alone (off); with window "
        "or map, sampling can ask for any map's descriptor",
    )
    p.add_argument(
        "--turn-loss-weight",
        type=float,
        default=0.0,
        help="position task: weight of the turn term beside the v loss (dit.diffusion.turn_loss; 0 = off)",
    )
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    p.add_argument("--seed", type=int, default=0, help="seed of data order, augmentation, noise and init")
    p.add_argument("--resume", type=Path, default=None, help="continue from this checkpoint (exact step and state)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True, help="log to TensorBoard")
    p.add_argument("--workers", type=int, default=2, help="worker processes when the data must be prepared first")
    p.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    args = p.parse_args(argv)
    if args.turn_loss_weight < 0 or not math.isfinite(args.turn_loss_weight):
        p.error(f"--turn-loss-weight must be a finite number >= 0, got {args.turn_loss_weight}")
    if args.turn_loss_weight and args.task != "position":
        p.error("--turn-loss-weight applies to the position task only")
    if args.seq_len is None:
        args.seq_len = DEFAULT_SEQ_LEN[args.task]
    return args


# ----------------------------------------------------------------------------------------------------------------
# Schedules and the deterministic batch order
# ----------------------------------------------------------------------------------------------------------------


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warmup, then cosine decay to 10% of the peak at max_steps."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = min(1.0, (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def resolve_precision(choice: str) -> str:
    """'auto' is bf16 where the hardware computes it natively, else fp32 ('no').

    On a Zen 4 CPU (AVX512-BF16) bf16 autocast trains DiT-S ~1.8x faster than fp32 (testing/benchmark.py
    train: 2049 vs 1107 datapoints/s); CPUs without it would emulate bf16 and get slower, so they keep fp32.
    """
    import torch

    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    native = native or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16" if native else "no"


def make_optimizer(model, lr: float, weight_decay: float = 0.0):
    """AdamW with torch's fused kernel: on a CPU its step costs a fifth of the default's (0.03 s vs 0.14 s for
    DiT-S's 33M parameters, one thread), a few percent of every training step."""
    import torch

    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99), fused=True)


def batch_indices(step: int, n_items: int, global_batch: int, seed: int) -> tuple[int, list[int]]:
    """(epoch, dataset indices) of the global batch at `step`; epochs are seeded permutations."""
    import torch

    per_epoch = max(1, n_items // global_batch) if n_items >= global_batch else 1
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    if n_items < global_batch:  # tiny datasets: repeat the permutation to fill the batch
        perm = (perm * (global_batch // n_items + 1))[:global_batch]
        return epoch, perm
    return epoch, perm[k * global_batch : (k + 1) * global_batch]


def collate(items: list[dict]) -> dict:
    import torch

    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


def is_cache(path: Path) -> bool:
    from data.cache import is_map_cache

    return is_map_cache(path)


def resolve_cache(data_paths: list[Path], results_dir: Path, workers: int, is_main: bool, accelerator) -> Path:
    """A prepared cache as given, or prepare the raw folders into results_dir/cache first (main process only)."""
    from data.prepare import prepare

    if len(data_paths) == 1 and is_cache(data_paths[0]):
        return data_paths[0]
    for path in data_paths:
        if not path.exists():
            raise BadInputError(path, "no such file or folder")
    cache = results_dir / "cache"
    if is_main:
        prepare([str(p) for p in data_paths], str(cache), workers=workers)
    accelerator.wait_for_everyone()
    if not is_cache(cache):
        raise BadInputError(data_paths[0], "no usable osu!standard maps found")
    return cache


def replay_datasets(args: argparse.Namespace):
    """(cache, train set, val set, player table) of a replay cache made by data.prepare --replays."""
    from data.cache import is_replay_cache
    from data.replay_windows import ReplayWindowDataset

    cache = args.data_path[0]
    if len(args.data_path) != 1 or not is_replay_cache(cache):
        raise BadInputError(
            cache,
            "not a replay cache (make one with python -m data.prepare --input SONGS --output DIR --replays REPLAYS)",
        )
    split = "all" if args.val_percent <= 0 else "train"
    common = {"seq_len": args.seq_len, "stride": args.seq_len // 2, "seed": args.seed, "val_percent": args.val_percent}
    train_set = ReplayWindowDataset(cache, split, augment=True, **common)
    val_set = ReplayWindowDataset(cache, "val", augment=False, **common)  # empty when val_percent is 0
    return cache, train_set, val_set, train_set.players


def replay_extra(players, args: argparse.Namespace, prediction: str, run_config: dict) -> dict:
    """What sample.py needs beside the weights to play a map: players, prediction, the data layout."""
    from data.replay.osr import DEFAULT_STEP_MS
    from data.replay_io import CHANNELS, DEFAULT_REFERENCE, MODEL_FEATURE_NAMES, OFFSET_GAIN

    return {
        "players": players.to_dict(),
        "prediction": prediction,
        "data_stats": {
            "step_ms": DEFAULT_STEP_MS,
            "offset_gain": OFFSET_GAIN,
            "reference": DEFAULT_REFERENCE,
            "channels": list(CHANNELS),
            "features": list(MODEL_FEATURE_NAMES),
            "seq_len": args.seq_len,
        },
        "run": run_config,
    }


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> None:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    from data.position_io import POSITION_CENTER, POSITION_SCALE
    from data.replay_io import NUM_MODEL_FEATURES
    from data.style_features import STYLE_FEATURE_DIM, class_feature_table
    from data.windows import WindowDataset, load_cache
    from dit import diffusion
    from dit.checkpoint import MODEL_REGISTRY, load_checkpoint, model_config_dict, save_checkpoint
    from dit.models import preset_config
    from dit.replay_model import replay_config

    mixed = resolve_precision(args.mixed_precision)
    # cpu=True is what makes accelerate form a gloo process group under torchrun when there is no GPU.
    accelerator = Accelerator(
        cpu=args.cpu or not torch.cuda.is_available(),
        mixed_precision=mixed,
        log_with="tensorboard" if args.tensorboard else None,
        project_dir=str(args.results_dir),
    )
    world, rank, is_main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    if args.global_batch_size % world:
        raise BadInputError(None, f"--global-batch-size {args.global_batch_size} is not divisible by {world} processes")
    local_batch = args.global_batch_size // world

    model_name = MODEL_NAMES[args.task]
    resumed = load_checkpoint(args.resume) if args.resume else None
    if resumed is not None and resumed["config"]["model"] != model_name:
        raise BadInputError(args.resume, f"holds a {resumed['config']['model']}, not a {model_name}")

    if args.task == "position":
        cache = resolve_cache(args.data_path, args.results_dir, args.workers, is_main, accelerator)
        table, styles, arrays = load_cache(cache)
        train_set = WindowDataset(
            (table, styles, arrays), split="train", seq_len=args.seq_len, augment=True, seed=args.seed
        )
        val_set = WindowDataset(
            (table, styles, arrays), split="val", seq_len=args.seq_len, augment=False, seed=args.seed
        )
        num_classes, classes_text = len(styles), f"{len(styles)} style classes"
    else:
        cache, train_set, val_set, players = replay_datasets(args)
        num_classes, classes_text = players.num_classes, f"{players.num_classes} player classes"
    if len(train_set) == 0:
        raise BadInputError(cache, "no training windows in the cache")

    model_class, config_class = MODEL_REGISTRY[model_name]
    if resumed is not None:
        config = config_class.from_dict(resumed["config"]["model_config"])
        if config.num_classes != num_classes:
            raise BadInputError(args.resume, f"has {config.num_classes} classes, the cache {num_classes}")
    elif args.task == "position":
        feature_dim = 0 if args.style_features == "off" else STYLE_FEATURE_DIM
        config = preset_config(args.model, num_classes=num_classes, class_feature_dim=feature_dim)
    else:
        config = replay_config(args.model, num_classes=num_classes, num_features=NUM_MODEL_FEATURES)
    set_seed(args.seed)
    model = model_class(config)
    if args.task == "position" and config.class_feature_dim and resumed is None:
        features = class_feature_table(table, arrays, num_classes)
        model.style_embedder.class_features.copy_(torch.from_numpy(features))
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    start_step = 0
    if resumed is not None:
        model.load_state_dict(resumed["model_state"])
        ema.load_state_dict(resumed["ema_state"])
        optimizer.load_state_dict(resumed["optimizer_state"])
        start_step = int(resumed["train_state"]["step"])
    model, optimizer = accelerator.prepare(model, optimizer)

    run_config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    run_config["data_path"] = [str(p) for p in args.data_path]
    if args.tensorboard:
        accelerator.init_trackers("tensorboard", config={k: str(v) for k, v in run_config.items()})
    metrics_path = args.results_dir / "metrics.jsonl"
    ckpt_dir = args.results_dir / "checkpoints"
    if is_main:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"{model_name} {args.model}: {n_params / 1e6:.2f}M parameters, {classes_text}; "
            f"{len(train_set)} train / {len(val_set)} val windows; {world} process(es), "
            f"batch {args.global_batch_size}, precision {mixed}",
            flush=True,
        )

    def log(step: int, values: dict) -> None:
        if not is_main:
            return
        accelerator.log(values, step=step)
        with open(metrics_path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")

    def checkpoint(step: int) -> None:
        accelerator.wait_for_everyone()
        if is_main:
            if args.task == "position":
                extra = {
                    "styles": styles.to_dict(),
                    "prediction": diffusion.DEFAULT_PREDICTION,
                    "data_stats": {
                        "position_center": list(POSITION_CENTER),
                        "position_scale": POSITION_SCALE,
                        "seq_len": args.seq_len,
                    },
                    "run": run_config,
                }
            else:
                extra = replay_extra(players, args, diffusion.DEFAULT_PREDICTION, run_config)
            path = ckpt_dir / f"step_{step:07d}.pt"
            save_checkpoint(
                path,
                model_state=accelerator.unwrap_model(model).state_dict(),
                ema_state=ema.state_dict(),
                optimizer_state=optimizer.state_dict(),
                config={**model_config_dict(model_name, config), "preset": args.model},
                train_state={"step": step},
                extra=extra,
            )
            print(f"saved {path}", flush=True)
        accelerator.wait_for_everyone()

    @torch.no_grad()
    def validate(step: int) -> float | None:
        if len(val_set) == 0:
            return None
        ema.eval()
        total, turn, count = 0.0, 0.0, 0
        indices = list(range(rank, min(len(val_set), 512), world))
        for i in range(0, len(indices), local_batch):
            batch = collate([val_set[j] for j in indices[i : i + local_batch]])
            gen = torch.Generator().manual_seed(10_007 + i * world + rank)  # same noise at every validation
            out = diffusion.training_losses(
                ema,
                batch[target_key],
                model_kwargs=model_kwargs(batch, drop_labels=False),
                mask=batch["mask"],
                generator=gen,
                **turn_terms,
            )
            total += float(out["mse"]) * len(batch["mask"])
            turn += float(out["turn"]) * len(batch["mask"])
            count += len(batch["mask"])
        stats = accelerator.reduce(torch.tensor([total, turn, count], dtype=torch.float64), reduction="sum")
        value = float(stats[0] / max(1.0, float(stats[2])))
        # val_loss stays the plain MSE so runs with and without the turn term compare on one scale.
        values = {"val_loss": value}
        if turn_terms:
            values["val_turn"] = float(stats[1] / max(1.0, float(stats[2])))
        log(step, values)
        return value

    target_key, class_key = ("position", "style") if args.task == "position" else ("x0", "player")
    turn_terms = {}
    if args.turn_loss_weight:
        turn_terms = {"turn_weight": args.turn_loss_weight, "turn_min_leg": TURN_MIN_LEG_PX / POSITION_SCALE}

    def model_kwargs(batch: dict, drop_labels: bool) -> dict:
        if args.task == "position":
            kwargs = {
                "time_ms": batch["time_ms"],
                "distance": batch["distance"],
                "kind": batch["kind"],
                "style": batch["style"],
            }
            if args.style_features == "window":
                kwargs["style_features"] = batch["style_features"]
        else:
            kwargs = {"features": batch["features"], "time_ms": batch["time_ms"], "player": batch["player"]}
        if not drop_labels:
            kwargs["force_drop_ids"] = torch.zeros_like(batch[class_key], dtype=torch.bool)
        return kwargs

    model.train()
    running, seen, t0 = 0.0, 0, time.perf_counter()
    bar = tqdm(total=args.max_steps, initial=start_step, disable=not is_main, desc="train", dynamic_ncols=True)
    step = start_step
    while step < args.max_steps:
        epoch, indices = batch_indices(step, len(train_set), args.global_batch_size, args.seed)
        train_set.set_epoch(epoch)
        batch = collate([train_set[j] for j in indices[rank * local_batch : (rank + 1) * local_batch]])
        # Noise, timesteps and label dropout are drawn from (seed, step, rank) so a resumed run repeats them.
        torch.manual_seed(args.seed * 1_000_003 + step * 997 + rank)
        gen = torch.Generator().manual_seed(args.seed * 7_919 + step * 31 + rank)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        with accelerator.autocast():
            out = diffusion.training_losses(
                model,
                batch[target_key],
                model_kwargs=model_kwargs(batch, True),
                mask=batch["mask"],
                generator=gen,
                **turn_terms,
            )
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(out["loss"])
        if args.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        step += 1
        decay = min(args.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), accelerator.unwrap_model(model).parameters(), strict=True):
                p_ema.lerp_(p.detach().float(), 1 - decay)
        running += out["loss"].detach().item()
        seen += int(batch["mask"].sum())
        bar.update(1)
        if step % args.log_every == 0 or step == args.max_steps:
            elapsed = time.perf_counter() - t0
            loss = running / (args.log_every if step % args.log_every == 0 else step % args.log_every or 1)
            rate = seen * world / elapsed
            log(step, {"train_loss": loss, "lr": learning_rate(step - 1, args), "datapoints_per_s": rate})
            if is_main:
                bar.write(f"step {step} loss {loss:.4f} lr {learning_rate(step - 1, args):.2e} {rate:.0f} datapoints/s")
            running, seen, t0 = 0.0, 0, time.perf_counter()
        if step % args.val_every == 0 or step == args.max_steps:
            val = validate(step)
            if is_main and val is not None:
                bar.write(f"step {step} val_loss {val:.4f}")
            model.train()
        if step % args.ckpt_every == 0 or step == args.max_steps:
            checkpoint(step)
    bar.close()
    accelerator.end_training()


def check_results_dir(path: Path) -> None:
    """Refuse a results folder that is a file (or lies under one) before any work is done."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise BadInputError(existing, "is a file, not a folder for results")


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_results_dir(args.results_dir)
        main(args)
    except BadInputError as err:
        return refusal_exit(err, args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
