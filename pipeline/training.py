"""The pieces of one training loop that train.py runs and testing/benchmark.py times: schedules, the
deterministic batch order, the optimizer and `train_step`."""

from __future__ import annotations

import math

import torch


def learning_rate(step: int, peak: float, warmup_steps: int, max_steps: int) -> float:
    """Linear warmup, then cosine decay to 10% of the peak at max_steps."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def resolve_precision(choice: str) -> str:
    """'auto' is bf16 where the hardware computes it natively, else fp32 ('no'): CPUs without AVX512-BF16 or
    AMX would emulate bf16 and get slower."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    native = native or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16" if native else "no"


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW with torch's fused kernel: on a CPU its step costs a fraction of the default's."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99), fused=True)


def batch_indices(step: int, n_items: int, global_batch: int, seed: int) -> tuple[int, list[int]]:
    """(epoch, dataset indices) of the global batch at `step`; epochs are seeded permutations."""
    per_epoch = max(1, n_items // global_batch) if n_items >= global_batch else 1
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    if n_items < global_batch:  # tiny datasets: repeat the permutation to fill the batch
        perm = (perm * (global_batch // n_items + 1))[:global_batch]
        return epoch, perm
    return epoch, perm[k * global_batch : (k + 1) * global_batch]


def collate(items: list[dict], device: torch.device | str = "cpu") -> dict:
    """Stack dataset items into one batch on `device` (the items are built on the CPU)."""
    return {key: torch.stack([item[key] for item in items]).to(device) for key in items[0]}


def ema_decay_at(step: int, decay: float) -> float:
    """The EMA decay after `step` optimizer steps: warmed up, so early weights do not linger."""
    return min(decay, (1 + step) / (10 + step))


def train_step(task, model, ema, optimizer, accelerator, batch: dict, *, lr: float, grad_clip: float,
               ema_decay: float, generator: torch.Generator) -> dict:  # fmt: skip
    """One optimizer step of `task`'s loss on `batch`, then the EMA update; the loss terms, detached."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with accelerator.autocast():
        out = task.losses(model, batch, drop_labels=True, generator=generator)
    optimizer.zero_grad(set_to_none=True)
    accelerator.backward(out["loss"])
    if grad_clip > 0:
        accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), accelerator.unwrap_model(model).parameters(), strict=True):
            p_ema.lerp_(p.detach().float(), 1 - ema_decay)
    return {key: value.detach() for key, value in out.items()}
