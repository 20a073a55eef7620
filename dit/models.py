"""Diffusion transformers over datapoint sequences (after DiT, Peebles & Xie 2023, arXiv:2212.09748).

The shared parts (embedders, adaLN-Zero block, final layer, `DiTBackbone`) serve both the position model
here and the replay model, which brings its own token embedders and output head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from data.beatmap.datapoints import NUM_DATAPOINT_TYPES
from dit.attention import LocalSelfAttention

NULL_CLASS = 0  # style id used for "no style": the unconditional branch of classifier-free guidance
TIMESTEP_SCALE = 1000.0  # continuous t in [0, 1] is embedded like DiT's integer steps 0..1000


@dataclass
class DiTConfig:
    """Shape and regularisation of a DiT (stored in checkpoints as a plain dict)."""

    depth: int = 12
    hidden_size: int = 384
    num_heads: int = 6
    mlp_ratio: float = 4.0
    attn_window: int = 64  # tokens each side a query may see; receptive field grows by this per block
    dropout: float = 0.0
    class_dropout_prob: float = 0.1
    num_classes: int = 1  # size of the style table INCLUDING the null class 0
    class_feature_dim: int = 0  # length of a fixed per-class style descriptor (0: class embedding only)
    # Share of training rows that keep their descriptor but lose the class label: teaches the network a style
    # from the descriptor alone, which is all a reference map unknown to the checkpoint (--style-from) has.
    label_only_dropout_prob: float = 0.1
    in_channels: int = 2
    # Self-conditioning (Chen et al. 2022, arXiv:2208.04202): the network also reads its own previous estimate of
    # x0, so at high noise it can refine a layout's shape between neighbours instead of redrawing it each step.
    self_condition: bool = False
    # Position model: two more channels beside x and y, each aim point's turn between jumps as a scaled unit vector
    # (data.position_io.turn_channels), denoised with the positions; the sampler matches the positions' turns to the
    # histogram they draw.
    turn_channels: bool = False
    # Exact GELU is faster than the tanh form on CPU (docs/decisions.md); checkpoints written before this field
    # existed used "tanh" and keep it (LEGACY_FIELDS).
    gelu_approximate: str = "none"
    frequency_embedding_size: int = 256
    time_min_period_ms: float = 10.0
    time_max_period_ms: float = 60_000.0

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        """Build from a stored dict, ignoring keys this version does not know; a field missing from it takes
        the value it had before it became a field."""
        known = {f.name for f in fields(cls)}
        return cls(**{**LEGACY_FIELDS, **{k: v for k, v in d.items() if k in known}})

    def to_dict(self) -> dict:
        return asdict(self)


# Fields added after checkpoints were shipped, with the behaviour those checkpoints were trained with.
LEGACY_FIELDS: dict[str, object] = {"gelu_approximate": "tanh"}


#################################################################################
#                                 Presets                                       #
#################################################################################

# (depth, hidden_size, num_heads). DiT-T and DiT-M are sized for CPU training (fp32 weights <= 25 MB).
DIT_PRESETS: dict[str, tuple[int, int, int]] = {
    "DiT-T": (6, 128, 4),
    "DiT-M": (8, 192, 6),
    "DiT-S": (12, 384, 6),
    "DiT-B": (12, 768, 12),
    "DiT-L": (24, 1024, 16),
    "DiT-XL": (28, 1152, 16),
}


def preset_config(name: str, **overrides) -> DiTConfig:
    """DiTConfig for a preset name (a key of DIT_PRESETS) with any field overridden; turn channels bring their
    two input channels."""
    depth, hidden_size, num_heads = DIT_PRESETS[name]
    if overrides.get("turn_channels"):
        overrides = {"in_channels": 4, **overrides}
    return DiTConfig(**{"depth": depth, "hidden_size": hidden_size, "num_heads": num_heads, **overrides})


#################################################################################
#               Embedding Layers for Timesteps, Real Time and Labels            #
#################################################################################


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: per-sample affine of token features x [B, L, H] by shift, scale [B, H]."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def sinusoidal_embedding(x: Tensor, dim: int, min_period: float, max_period: float) -> Tensor:
    """[...] -> [..., dim] cos/sin features with periods spaced geometrically from min_period to max_period."""
    half = dim // 2
    periods = torch.exp(
        torch.linspace(math.log(min_period), math.log(max_period), half, device=x.device, dtype=torch.float32)
    )
    args = x.float()[..., None] * (2 * math.pi / periods)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Diffusion time t in [0, 1] [B] -> [B, H] (sinusoid + MLP, as DiT)."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: Tensor) -> Tensor:
        # Periods 2*pi .. 2*pi*10^4 over t*1000 reproduce DiT's `timestep_embedding` frequencies.
        freq = sinusoidal_embedding(t * TIMESTEP_SCALE, self.frequency_embedding_size, 2 * math.pi, 2 * math.pi * 1e4)
        return self.mlp(freq)


class ScalarEmbedder(nn.Module):
    """A real-valued feature per token [B, L] -> [B, L, H] via sinusoids over a range of periods + a linear map.

    Used for real time in ms (periods ~10 ms .. ~60 s: a 1/16 beat up to a section) and for spacing.
    """

    def __init__(self, hidden_size: int, min_period: float, max_period: float, frequency_embedding_size: int = 256):
        super().__init__()
        self.min_period = min_period
        self.max_period = max_period
        self.frequency_embedding_size = frequency_embedding_size
        self.proj = nn.Linear(frequency_embedding_size, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        freq = sinusoidal_embedding(x, self.frequency_embedding_size, self.min_period, self.max_period)
        return self.proj(freq)


class LabelEmbedder(nn.Module):
    """Class ids [B] -> [B, H]; during training drops labels to NULL_CLASS for classifier-free guidance."""

    def __init__(
        self,
        num_classes: int,
        hidden_size: int,
        dropout_prob: float,
        feature_dim: int = 0,
        label_only_dropout_prob: float = 0.0,
    ):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes, hidden_size)
        self.dropout_prob = dropout_prob
        self.label_only_dropout_prob = label_only_dropout_prob
        if feature_dim:
            # A fixed descriptor per class (set by the trainer, saved in the state dict) through an MLP: every
            # map teaches the MLP, while a class's own embedding row is updated only by its own few windows.
            self.register_buffer("class_features", torch.zeros(num_classes, feature_dim))
            self.feature_mlp = nn.Sequential(
                nn.Linear(feature_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
            )

    def class_descriptor(self, index: int) -> Tensor | None:
        """The fixed descriptor of a class (None when this embedder reads none)."""
        table = getattr(self, "class_features", None)
        return None if table is None else table[index]

    def drop_mask(self, labels: Tensor, force_drop_ids: Tensor | None = None) -> Tensor:
        """Rows to replace by the null condition: at random, or where force_drop_ids == 1."""
        if force_drop_ids is None:
            return torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        return force_drop_ids == 1

    def forward(
        self, labels: Tensor, train: bool, force_drop_ids: Tensor | None = None, features: Tensor | None = None
    ) -> Tensor:
        """`features` [B, F], when given, replace the class's own descriptor (a training window's, or a reference
        map's); dropped rows get the null class and a zero descriptor alike."""
        if (train and self.dropout_prob > 0) or force_drop_ids is not None:
            drop = self.drop_mask(labels, force_drop_ids)
            labels = torch.where(drop, torch.full_like(labels, NULL_CLASS), labels)
            if features is not None:
                features = torch.where(drop[:, None], torch.zeros_like(features), features)
                if train and force_drop_ids is None and self.label_only_dropout_prob > 0:
                    label_only = torch.rand(labels.shape[0], device=labels.device) < self.label_only_dropout_prob
                    labels = torch.where(label_only, torch.full_like(labels, NULL_CLASS), labels)
        embedding = self.embedding_table(labels)
        if hasattr(self, "class_features"):
            if features is None:
                features = self.class_features[labels]
            embedding = embedding + self.feature_mlp(features.to(embedding.dtype))
        return embedding


#################################################################################
#                                 Core DiT Model                                #
#################################################################################


class DiTBlock(nn.Module):
    """Transformer block conditioned on c through adaptive layer norm with zero-initialised gates (adaLN-Zero)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        mlp_ratio: float,
        window: int,
        dropout: float = 0.0,
        gelu_approximate: str = "none",
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = LocalSelfAttention(hidden_size, num_heads, window, dropout)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        mlp_hidden = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, mlp_hidden),
            nn.GELU(approximate=gelu_approximate),
            nn.Dropout(dropout),
            nn.Linear(mlp_hidden, hidden_size),
            nn.Dropout(dropout),
        )
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: Tensor, c: Tensor, mask: Tensor) -> Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), mask)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    """adaLN-modulated norm and a linear map from H to the output channels."""

    def __init__(self, hidden_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiTBackbone(nn.Module):
    """Stack of adaLN-Zero blocks: tokens [B, L, H], conditioning c [B, H], mask [B, L] -> [B, L, H]."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            DiTBlock(
                config.hidden_size,
                config.num_heads,
                config.mlp_ratio,
                config.attn_window,
                config.dropout,
                config.gelu_approximate,
            )
            for _ in range(config.depth)
        )

    def forward(self, x: Tensor, c: Tensor, mask: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, c, mask)
        return x


def initialize_dit_weights(model: nn.Module) -> None:
    """DiT init: xavier linears, N(0, 0.02) embeddings, then zero every adaLN modulation and final linear."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
    for module in model.modules():
        if isinstance(module, TimestepEmbedder):
            nn.init.normal_(module.mlp[0].weight, std=0.02)
            nn.init.normal_(module.mlp[2].weight, std=0.02)
        if isinstance(module, DiTBlock | FinalLayer):
            # Zero modulation: each block starts as the identity and the model's output starts at 0.
            nn.init.zeros_(module.adaLN_modulation[-1].weight)
            nn.init.zeros_(module.adaLN_modulation[-1].bias)
        if isinstance(module, FinalLayer):
            nn.init.zeros_(module.linear.weight)
            nn.init.zeros_(module.linear.bias)


#################################################################################
#                              Position Model                                   #
#################################################################################


DISTANCE_MIN_PERIOD = 0.01  # distance is px / 320: periods 3 px .. 3200 px
DISTANCE_MAX_PERIOD = 10.0


def relative_time_ms(time_ms: Tensor, mask: Tensor) -> Tensor:
    """Time since the sequence's first real token: a window's timing should not depend on where the song
    is, and small values keep float32 sinusoids of ~10 ms periods accurate late in long songs."""
    start = torch.where(mask, time_ms, torch.full_like(time_ms, float("inf"))).amin(dim=1, keepdim=True)
    start = torch.where(torch.isfinite(start), start, torch.zeros_like(start))
    return time_ms - start


def previous_gap_ms(time_ms: Tensor) -> Tensor:
    """Time since the previous datapoint (0 for the first): the rhythm that spacing follows."""
    gap = torch.zeros_like(time_ms)
    gap[:, 1:] = time_ms[:, 1:] - time_ms[:, :-1]
    return gap


class PositionDiT(nn.Module):
    """Denoises normalized positions [B, L, 2] (with turn channels [B, L, 4]: positions, then turns) given rhythm,
    datapoint kinds, spacing and a style class."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        h = config.hidden_size
        f = config.frequency_embedding_size
        self.x_embedder = nn.Linear(config.in_channels, h)
        if config.self_condition:
            self.self_cond_embedder = nn.Linear(config.in_channels, h)
        self.t_embedder = TimestepEmbedder(h, f)
        self.time_embedder = ScalarEmbedder(h, config.time_min_period_ms, config.time_max_period_ms, f)
        self.gap_embedder = ScalarEmbedder(h, config.time_min_period_ms, config.time_max_period_ms, f)
        self.distance_embedder = ScalarEmbedder(h, DISTANCE_MIN_PERIOD, DISTANCE_MAX_PERIOD, f)
        self.kind_embedder = nn.Embedding(NUM_DATAPOINT_TYPES, h)
        self.style_embedder = LabelEmbedder(
            config.num_classes,
            h,
            config.class_dropout_prob,
            feature_dim=config.class_feature_dim,
            label_only_dropout_prob=config.label_only_dropout_prob,
        )
        self.backbone = DiTBackbone(config)
        self.final_layer = FinalLayer(h, config.in_channels)
        initialize_dit_weights(self)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        time_ms: Tensor,
        distance: Tensor,
        kind: Tensor,
        style: Tensor,
        mask: Tensor,
        style_features: Tensor | None = None,
        force_drop_ids: Tensor | None = None,
        self_cond: Tensor | None = None,
    ) -> Tensor:
        """x [B, L, C] noisy positions (and turns: C = in_channels), t [B] in [0, 1], time_ms/distance [B, L]
        float, kind [B, L] long, style [B] long (0 = null), mask [B, L] bool (True = real) -> output [B, L, C].
        style_features [B, F] (models with a class_feature_dim) replace the style class's own descriptor.
        self_cond [B, L, C] (models with self_condition): the previous estimate of x0, zeros (or None) at first."""
        time_ms = time_ms.float()
        tokens = self.x_embedder(x)
        if self.config.self_condition:
            tokens = tokens + self.self_cond_embedder(torch.zeros_like(x) if self_cond is None else self_cond)
        tokens = (
            tokens
            + self.time_embedder(relative_time_ms(time_ms, mask))
            + self.gap_embedder(previous_gap_ms(time_ms))
            + self.distance_embedder(distance)
            + self.kind_embedder(kind.long())
        )  # [B, L, H]
        style_c = self.style_embedder(style.long(), self.training, force_drop_ids, style_features)
        c = self.t_embedder(t) + style_c  # [B, H]
        tokens = self.backbone(tokens, c, mask)
        return self.final_layer(tokens, c)

    def class_descriptor(self, style: int) -> Tensor | None:
        """The fixed descriptor this model reads for a style class (None when it reads none)."""
        return self.style_embedder.class_descriptor(style)
