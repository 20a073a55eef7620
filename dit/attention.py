"""Sliding-window self-attention whose cost is linear in sequence length.

Tokens attend to keys with |i - j| <= window and to real (unmasked) keys only. The sequence is cut into
blocks of `window` queries; each block sees its own and both neighbouring blocks' keys (3 * window), which
covers every allowed key, so one call to `F.scaled_dot_product_attention` over [B * blocks, heads, W, 3W]
costs O(L * W) instead of O(L^2). The same mask is used in training and in sampling.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _neighbour_blocks(x: Tensor) -> Tensor:
    """[B, nb, W, ...] -> [B, nb, 3W, ...]: each block's previous, own and next block, zero beyond the ends."""
    pad = [0, 0] * (x.dim() - 3) + [0, 0, 1, 1]
    padded = F.pad(x, pad)
    return torch.cat([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]], dim=2)


def local_attention_mask(mask: Tensor, window: int, block: int) -> Tensor:
    """Bool mask [B, nb, block, 3*block] for block-local attention; True = may attend.

    `mask` is [B, Lp] with Lp a multiple of `block`. A query always sees itself, so padded queries have one
    key and softmax never gets an empty row (which would give NaN).
    """
    batch, padded_len = mask.shape
    num_blocks = padded_len // block
    query_pos = torch.arange(block, device=mask.device)[:, None]
    key_pos = torch.arange(3 * block, device=mask.device)[None, :] - block
    offset = key_pos - query_pos  # [block, 3*block], j - i
    band = offset.abs() <= window
    is_self = offset == 0
    key_real = _neighbour_blocks(mask.view(batch, num_blocks, block))  # [B, nb, 3*block]
    return (band & key_real[:, :, None, :]) | is_self


def _attend(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, dropout_p: float) -> Tensor:
    """Masked softmax attention; bf16 inputs on CPU take the unfused form.

    At training shapes on CPU the fused kernel's bf16 backward is slower than fp32's, while the unfused form runs
    its matmuls at bf16 speed (docs/decisions.md). CPU softmax on bf16 computes in fp32 and rounds its output, as
    the fused kernels do inside; what differs is the scores' bf16 rounding.
    """
    if q.device.type != "cpu" or q.dtype != torch.bfloat16:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)  # accumulates in fp32 inside
    return (F.dropout(weights, dropout_p) if dropout_p else weights) @ v


def local_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, window: int, dropout_p: float = 0.0) -> Tensor:
    """Attention of q, k, v [B, heads, L, d] restricted to |i - j| <= window and real keys; returns [B, heads, L, d]."""
    batch, heads, length, head_dim = q.shape
    if length <= 3 * window:
        # Blocks would give each query 3 * window keys, more than the whole sequence: a dense banded mask is
        # cheaper here (training windows are this short) and the blocks take over for long maps.
        offset = torch.arange(length, device=q.device)
        band = (offset[None, :] - offset[:, None]).abs() <= window  # [L, L]
        allowed = (band[None] & mask[:, None, :]) | torch.eye(length, dtype=torch.bool, device=q.device)
        return _attend(q, k, v, allowed[:, None], dropout_p)
    # Blocks no longer than the sequence: short inputs do not pay for a full window of padding.
    block = max(1, min(window, length))
    num_blocks = -(-length // block)
    pad = num_blocks * block - length
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        mask = F.pad(mask, (0, pad), value=False)

    def blocks(t: Tensor) -> Tensor:  # [B, h, Lp, d] -> [B, nb, h, block, d]
        return t.view(batch, heads, num_blocks, block, head_dim).transpose(1, 2)

    qb = blocks(q)
    kb = _neighbour_blocks(blocks(k).transpose(2, 3)).transpose(2, 3)  # [B, nb, h, 3*block, d]
    vb = _neighbour_blocks(blocks(v).transpose(2, 3)).transpose(2, 3)
    attn_mask = local_attention_mask(mask, window, block)[:, :, None]  # [B, nb, 1, block, 3*block]

    flat = batch * num_blocks
    out = _attend(
        qb.reshape(flat, heads, block, head_dim),
        kb.reshape(flat, heads, 3 * block, head_dim),
        vb.reshape(flat, heads, 3 * block, head_dim),
        attn_mask.reshape(flat, 1, block, 3 * block),
        dropout_p,
    )
    out = out.view(batch, num_blocks, heads, block, head_dim).transpose(1, 2)
    return out.reshape(batch, heads, num_blocks * block, head_dim)[:, :, :length]


def rotate_by_index(x: Tensor, dim: int = -2, base: float = 10_000.0) -> Tensor:
    """Rotary position embedding over token index (Su et al. 2021, arXiv:2104.09864): x [..., d] with tokens
    along `dim` ([B, heads, L, d] by default).

    Scores then depend on the index offset j - i only, so order is known (datapoints often share a time:
    a slider's last anchor and its end) while a shift of the window or padding at the end changes nothing.
    """
    dim = dim % x.dim()
    length, head_dim = x.shape[dim], x.shape[-1]
    half = head_dim // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.arange(length, device=x.device, dtype=torch.float32)[:, None] * inv_freq  # [L, d/2]
    angles = angles.view(length, *[1] * (x.dim() - dim - 2), half)  # broadcast over dims between L and d
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return rotated if 2 * half == head_dim else torch.cat([rotated, x[..., 2 * half :]], dim=-1)


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention over a sliding window of `window` tokens on each side, rotary in token index."""

    def __init__(self, hidden_size: int, num_heads: int, window: int, dropout: float = 0.0):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.window = window
        self.dropout = dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        batch, length, hidden = x.shape
        qkv = self.qkv(x)
        dropout_p = self.dropout if self.training else 0.0
        # Under CPU autocast, attention runs with autocast off on the bf16 qkv itself (see _attend), so its
        # matmuls, softmax and rotary keep the dtypes chosen there.
        cpu_autocast = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        with torch.autocast("cpu", enabled=False) if cpu_autocast else contextlib.nullcontext():
            # Rotating in the linear's own [B, L, heads, d] layout and handing attention transposed views
            # spares a permuted copy of q, k, v and of their gradients.
            q, k, v = qkv.view(batch, length, 3, self.num_heads, hidden // self.num_heads).unbind(2)
            q, k = rotate_by_index(q, dim=1), rotate_by_index(k, dim=1)
            y = local_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, self.window, dropout_p)
        y = y.transpose(1, 2).reshape(batch, length, hidden)
        return self.proj_drop(self.proj(y))
