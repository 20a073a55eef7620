"""ReplayDiT: the sibling of PositionDiT that denoises a replay (cursor offset + two keys per grid tick).

Same backbone (adaLN-Zero blocks, local attention, cost linear in length), its own token embedder and head:
every `patch_ticks` consecutive ticks form one token (as DiT patchifies an image), made of their noisy
channels and their per-tick map features. Per-tick features rather than cross-attention to object tokens:
the features already name the current, next and previous objects at each tick, so conditioning costs one
linear map per token and needs no second attention or object-to-frame bookkeeping.
Conditioning c = diffusion time + player class + player habits (data.replay.habits; a training window's own,
a player's median at sampling), dropped together to the null condition for classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from dit.checkpoint import register_model
from dit.models import (
    DiTBackbone,
    DiTConfig,
    FinalLayer,
    LabelEmbedder,
    ScalarEmbedder,
    TimestepEmbedder,
    initialize_dit_weights,
    preset_config,
)

MODEL_NAME = "ReplayDiT"


@dataclass
class ReplayDiTConfig(DiTConfig):
    """DiTConfig plus the replay token layout (in_channels = diffused channels per tick)."""

    in_channels: int = 4  # cursor dx, dy, key 1, key 2
    num_features: int = 32  # per-tick map features (data.replay_windows.NUM_MODEL_FEATURES)
    patch_ticks: int = 4  # ticks per token
    attn_window: int = 8  # tokens each side: 8 x 4 ticks ~ 0.5 s at 60 Hz (6 blocks see ~3 s each way)


def replay_config(preset: str, **overrides) -> ReplayDiTConfig:
    """A ReplayDiTConfig with the depth/width/heads of a DiT preset name."""
    base = preset_config(preset).to_dict()
    keep = {k: base[k] for k in ("depth", "hidden_size", "num_heads")}
    return ReplayDiTConfig(**{**keep, **overrides})


class ReplayDiT(nn.Module):
    """Denoises replay channels [B, T, C] given per-tick map features, tick times and a player class."""

    def __init__(self, config: ReplayDiTConfig):
        super().__init__()
        self.config = config
        h, p = config.hidden_size, config.patch_ticks
        self.x_embedder = nn.Linear(p * config.in_channels, h)
        self.feature_embedder = nn.Sequential(nn.Linear(p * config.num_features, h), nn.SiLU(), nn.Linear(h, h))
        self.time_embedder = ScalarEmbedder(
            h, config.time_min_period_ms, config.time_max_period_ms, config.frequency_embedding_size
        )
        self.t_embedder = TimestepEmbedder(h, config.frequency_embedding_size)
        self.player_embedder = LabelEmbedder(
            config.num_classes,
            h,
            config.class_dropout_prob,
            feature_dim=config.class_feature_dim,
            label_only_dropout_prob=config.label_only_dropout_prob,
        )
        self.backbone = DiTBackbone(config)
        self.final_layer = FinalLayer(h, p * config.in_channels)
        initialize_dit_weights(self)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        features: Tensor,
        time_ms: Tensor,
        player: Tensor,
        mask: Tensor,
        player_features: Tensor | None = None,
        force_drop_ids: Tensor | None = None,
    ) -> Tensor:
        """x [B, T, C] noisy channels, t [B] in [0, 1], features [B, T, F], time_ms [B, T], player [B] long
        (0 = null), mask [B, T] bool (True = real tick) -> network output [B, T, C]. player_features [B, H]
        (models with a class_feature_dim) replace the player class's own habit descriptor."""
        batch, length, channels = x.shape
        p = self.config.patch_ticks
        pad = (-length) % p
        if pad:  # the last token is filled up with masked ticks
            x, features = F.pad(x, (0, 0, 0, pad)), F.pad(features, (0, 0, 0, pad))
            time_ms, mask = F.pad(time_ms, (0, pad)), F.pad(mask, (0, pad), value=False)
        tokens_len = (length + pad) // p
        token_mask = mask.view(batch, tokens_len, p).any(dim=2)  # [B, N]
        # Times as given, not relative to the window: the dataset shifts each window's start over minutes, so
        # every phase of the embedding is seen in training and a whole map (minutes long) is in distribution.
        token_time = time_ms.float()[:, ::p]  # first tick of each token
        tokens = (
            self.x_embedder(x.reshape(batch, tokens_len, p * channels))
            + self.feature_embedder(features.reshape(batch, tokens_len, -1))
            + self.time_embedder(token_time)
        )  # [B, N, H]
        player_c = self.player_embedder(player.long(), self.training, force_drop_ids, player_features)
        c = self.t_embedder(t) + player_c  # [B, H]
        tokens = self.backbone(tokens, c, token_mask)
        out = self.final_layer(tokens, c).reshape(batch, tokens_len * p, channels)
        return out[:, :length]

    def class_descriptor(self, player: int) -> Tensor | None:
        """The habit descriptor this model reads for a player class (None when it reads none)."""
        return self.player_embedder.class_descriptor(player)


register_model(MODEL_NAME, ReplayDiT, ReplayDiTConfig)
