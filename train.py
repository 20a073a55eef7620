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

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm import tqdm

from data.errors import BadInputError, refusal_exit
from dit.checkpoint import MODEL_REGISTRY, load_checkpoint, model_config_dict, save_checkpoint
from dit.models import DIT_PRESETS
from pipeline.tasks import DEFAULT_REFERENCE, REFERENCE_KINDS, TASKS, PositionTask, ReplayTask
from pipeline.training import (
    batch_indices,
    collate,
    ema_decay_at,
    learning_rate,
    make_optimizer,
    resolve_precision,
    train_step,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--task",
        choices=sorted(TASKS),
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
        help=f"datapoints (position, default {PositionTask.default_seq_len}) or grid ticks "
        f"(replay, default {ReplayTask.default_seq_len}) per training window",
    )
    p.add_argument(
        "--val-percent",
        type=int,
        default=10,
        help="replay task: share of map sets held out for validation (0 trains on every paired replay)",
    )
    p.add_argument(
        "--val-sets",
        type=Path,
        default=None,
        help="replay task: file naming the set folders (or maps) held out for validation, one per line; "
        "replaces --val-percent",
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
        "--reference",
        choices=REFERENCE_KINDS,
        default=DEFAULT_REFERENCE,
        help="replay task: the path through the objects the cursor is diffused as an offset from (stored in the "
        "checkpoint; sampling reads it there)",
    )
    p.add_argument(
        "--unpaired-share",
        type=float,
        default=0.0,
        help="replay task: share of training windows taken from replays without their map, each played on a "
        "pseudo-map rebuilt from its presses (data.replay.pseudo_map; 0 = paired replays only)",
    )
    p.add_argument(
        "--turn-loss-weight",
        type=float,
        default=0.0,
        help="position task: weight of the turn term beside the v loss (dit.diffusion.turn_loss; 0 = off)",
    )
    p.add_argument(
        "--self-condition",
        action="store_true",
        help="position task: the network also reads its own previous estimate (half the training batches take "
        "one first; sampling passes each step's to the next)",
    )
    p.add_argument(
        "--turn-channels",
        action="store_true",
        help="position task: the network also denoises each aim point's turn between jumps, as two more channels "
        "(sampling matches the positions' turns to the histogram they draw)",
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
    if args.self_condition and args.task != "position":
        p.error("--self-condition applies to the position task only")
    if args.turn_channels and args.task != "position":
        p.error("--turn-channels applies to the position task only")
    if not 0.0 <= args.unpaired_share < 1.0:
        p.error(f"--unpaired-share must be in [0, 1), got {args.unpaired_share}")
    if args.unpaired_share and args.task != "replay":
        p.error("--unpaired-share applies to the replay task only")
    if args.seq_len is None:
        args.seq_len = TASKS[args.task].default_seq_len
    return args


def main(args: argparse.Namespace) -> None:
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

    task = TASKS[args.task](args)
    resumed = load_checkpoint(args.resume) if args.resume else None
    if resumed is not None and resumed["config"]["model"] != task.model_name:
        raise BadInputError(args.resume, f"holds a {resumed['config']['model']}, not a {task.model_name}")
    cache, train_set, val_set = task.datasets(accelerator)
    if len(train_set) == 0:
        raise BadInputError(cache, "no training windows in the cache")

    model_class, config_class = MODEL_REGISTRY[task.model_name]
    if resumed is not None:
        config = config_class.from_dict(resumed["config"]["model_config"])
        if config.num_classes != task.num_classes:
            raise BadInputError(args.resume, f"has {config.num_classes} classes, the cache {task.num_classes}")
    else:
        config = task.new_config()
    set_seed(args.seed)
    model = model_class(config)
    if resumed is None:
        task.init_model(model)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    start_step = 0
    if resumed is not None:
        model.load_state_dict(resumed["model_state"])
        ema.load_state_dict(resumed["ema_state"])
        optimizer.load_state_dict(resumed["optimizer_state"])
        start_step = int(resumed["train_state"]["step"])
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    ema.to(device)

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
            f"{task.model_name} {args.model}: {n_params / 1e6:.2f}M parameters, {task.describe_classes()}; "
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
            path = ckpt_dir / f"step_{step:07d}.pt"
            save_checkpoint(
                path,
                model_state=accelerator.unwrap_model(model).state_dict(),
                ema_state=ema.state_dict(),
                optimizer_state=optimizer.state_dict(),
                config={**model_config_dict(task.model_name, config), "preset": args.model},
                train_state={"step": step},
                extra=task.checkpoint_extra(run_config),
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
            batch = collate([val_set[j] for j in indices[i : i + local_batch]], device)
            gen = torch.Generator().manual_seed(10_007 + i * world + rank)  # same noise at every validation
            out = task.losses(ema, batch, drop_labels=False, generator=gen)
            total += float(out["mse"]) * len(batch["mask"])
            turn += float(out["turn"]) * len(batch["mask"])
            count += len(batch["mask"])
        stats = accelerator.reduce(
            torch.tensor([total, turn, count], dtype=torch.float64, device=device), reduction="sum"
        )
        # val_loss stays the plain MSE so runs with and without the turn term compare on one scale.
        values = {"val_loss": float(stats[0] / max(1.0, float(stats[2])))}
        if task.loss_terms:
            values["val_turn"] = float(stats[1] / max(1.0, float(stats[2])))
        log(step, values)
        return values["val_loss"]

    def lr_at(step: int) -> float:
        return learning_rate(step, args.lr, args.warmup_steps, args.max_steps)

    model.train()
    running, seen, t0 = 0.0, 0, time.perf_counter()
    bar = tqdm(total=args.max_steps, initial=start_step, disable=not is_main, desc="train", dynamic_ncols=True)
    step = start_step
    while step < args.max_steps:
        epoch, indices = batch_indices(step, len(train_set), args.global_batch_size, args.seed)
        train_set.set_epoch(epoch)
        batch = collate([train_set[j] for j in indices[rank * local_batch : (rank + 1) * local_batch]], device)
        # Noise, timesteps and label dropout are drawn from (seed, step, rank) so a resumed run repeats them.
        torch.manual_seed(args.seed * 1_000_003 + step * 997 + rank)
        gen = torch.Generator().manual_seed(args.seed * 7_919 + step * 31 + rank)
        out = train_step(task, model, ema, optimizer, accelerator, batch, lr=lr_at(step), grad_clip=args.grad_clip,
                         ema_decay=ema_decay_at(step + 1, args.ema_decay), generator=gen)  # fmt: skip
        step += 1
        running += out["loss"].item()
        seen += int(batch["mask"].sum())
        bar.update(1)
        if step % args.log_every == 0 or step == args.max_steps:
            elapsed = time.perf_counter() - t0
            loss = running / (args.log_every if step % args.log_every == 0 else step % args.log_every or 1)
            rate = seen * world / elapsed
            log(step, {"train_loss": loss, "lr": lr_at(step - 1), "datapoints_per_s": rate})
            if is_main:
                bar.write(f"step {step} loss {loss:.4f} lr {lr_at(step - 1):.2e} {rate:.0f} datapoints/s")
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
