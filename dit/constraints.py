"""Constraints applied to each denoised estimate during sampling.

The network is conditioned on the source's spacing but, like most regressors, lands short of it: remaps came
out 6-8% tighter than their sources (20 DDIM steps 8%, 100 ancestral steps 6%), which lowers star rating and
turns short jumps into stacks. Nudging each estimate's legs toward the requested lengths before the sampler
steps keeps the network's directions (where the style lives) and restores the rhythm's spacing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def match_spacing(x: Tensor, target: Tensor, mask: Tensor, passes: int = 8, rate: float = 0.5) -> Tensor:
    """Move points along their legs so each leg's length approaches `target`.

    x [B, L, 2] positions, target [B, L] wanted distance of each point to the one before it (same units as x),
    mask [B, L] True for real points. Jacobi relaxation: each leg pushes (or pulls) its two ends apart along
    itself by half its error, times `rate`; a point between two legs takes both pushes. Legs of length 0 have no
    direction and are left alone.
    """
    legs_real = (mask[:, 1:] & mask[:, :-1]).to(x.dtype)
    for _ in range(passes):
        leg = x[:, 1:] - x[:, :-1]
        length = leg.norm(dim=-1)
        scale = torch.where(length > 1e-6, (target[:, 1:] - length) / length.clamp_min(1e-6), torch.zeros_like(length))
        push = (0.5 * rate * scale * legs_real).unsqueeze(-1) * leg
        x = x + F.pad(push, (0, 0, 1, 0)) - F.pad(push, (0, 0, 0, 1))
    return x
