"""The position DiT on real fixture maps: shapes, gradients, padding invariance, locality, guidance cost."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from data.beatmap.codec import encode
from data.beatmap.datapoints import Datapoints
from data.beatmap.osu_reader import read_beatmap
from dit.attention import local_attention, rotate_by_index
from dit.diffusion import guided
from dit.models import DIT_PRESETS, NULL_CLASS, DiTConfig, PositionDiT, preset_config
from pipeline.remap import map_tensors

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The largest fixture map (814 objects): long enough for windows, padding and locality to matter.
BIG_MAP = FIXTURES / "songs/700886 Shano x 40mP - Natsukoi Hanabi"
NUM_STYLES = 4  # null class + 3


def map_datapoints(path: Path) -> Datapoints:
    return encode(read_beatmap(path))


def big_map_path() -> Path:
    return next(BIG_MAP.glob("*.osu"))


def map_batch(datapoints: Datapoints, length: int, starts: list[int], style: list[int]) -> dict[str, torch.Tensor]:
    """Windows of `length` datapoints from `starts` as model inputs, normalized by the dataset's own code."""
    whole = map_tensors(datapoints, 0)
    windows = [{k: v[s : s + length] for k, v in whole.items() if k != "style"} for s in starts]
    batch = {k: torch.stack([w[k] for w in windows]) for k in windows[0]}
    batch["time_ms"] = batch["time_ms"] - batch["time_ms"][:, :1]
    batch["x0"] = batch.pop("position")
    batch["style"] = torch.tensor(style)
    return batch


def randomize_zero_init(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """adaLN-Zero makes a fresh model output 0 everywhere; give zeroed layers weights so outputs mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def tiny_model(**overrides) -> PositionDiT:
    torch.manual_seed(0)
    return PositionDiT(preset_config("DiT-T", num_classes=NUM_STYLES, **overrides))


def model_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("time_ms", "distance", "kind", "style", "mask")}


@pytest.fixture(scope="module")
def big_map() -> Datapoints:
    return map_datapoints(big_map_path())


def test_forward_backward_on_fixture_map(big_map):
    model = tiny_model()
    batch = map_batch(big_map, 96, [0, 300], [1, 2])
    x = torch.randn_like(batch["x0"])
    out = model(x, torch.tensor([0.3, 0.9]), **model_kwargs(batch))
    assert out.shape == (2, 96, 2)
    assert torch.count_nonzero(out) == 0  # adaLN-Zero: the untrained model is the zero function
    loss = ((out - batch["x0"]) ** 2).mean()
    loss.backward()
    assert model.final_layer.linear.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_small_presets_fit_in_25_mb():
    for name in ("DiT-T", "DiT-M"):
        model = PositionDiT(preset_config(name, num_classes=200))
        size_bytes = sum(p.numel() * 4 for p in model.parameters())
        assert size_bytes <= 25 * 2**20, (name, size_bytes)
    assert set(DIT_PRESETS) >= {"DiT-S", "DiT-B", "DiT-L", "DiT-XL"}


@pytest.mark.parametrize("length", [37, 12])  # block path (L > 3 * window) and short dense path
def test_local_attention_equals_dense_banded_attention(length):
    g = torch.Generator().manual_seed(1)
    batch, heads, dim, window = 2, 3, 8, 5
    q, k, v = (torch.randn(batch, heads, length, dim, generator=g) for _ in range(3))
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, length - 7 :] = False
    i = torch.arange(length)
    allowed = ((i[:, None] - i[None, :]).abs() <= window) & mask[:, None, None, :]
    allowed = allowed | torch.eye(length, dtype=torch.bool)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    local = local_attention(q, k, v, mask, window)
    torch.testing.assert_close(local, dense, atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_real_tokens(big_map):
    model = randomize_zero_init(tiny_model(attn_window=16)).eval()
    batch = map_batch(big_map, 120, [40], [2])
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.5])
    ref = model(x, t, **model_kwargs(batch))

    pad = 53
    g = torch.Generator().manual_seed(3)
    padded = {
        "time_ms": torch.cat([batch["time_ms"], torch.rand(1, pad, generator=g) * 1e5], dim=1),
        "distance": torch.cat([batch["distance"], torch.rand(1, pad, generator=g)], dim=1),
        "kind": torch.cat([batch["kind"], torch.randint(0, 16, (1, pad), generator=g)], dim=1),
        "style": batch["style"],
        "mask": torch.cat([batch["mask"], torch.zeros(1, pad, dtype=torch.bool)], dim=1),
    }
    x_padded = torch.cat([x, torch.randn(1, pad, 2, generator=g) * 5], dim=1)
    out = model(x_padded, t, **padded)
    torch.testing.assert_close(out[:, :120], ref, atol=1e-5, rtol=1e-5)


def test_one_block_sees_only_its_window(big_map):
    window = 8
    model = randomize_zero_init(tiny_model(depth=1, attn_window=window)).eval()
    batch = map_batch(big_map, 80, [100], [1])
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.4])
    ref = model(x, t, **model_kwargs(batch))
    j = 40
    x2 = x.clone()
    x2[0, j] += 3.0
    out = model(x2, t, **model_kwargs(batch))
    changed = (out - ref).abs().amax(dim=-1)[0] > 0  # far tokens are untouched bit for bit
    far = (torch.arange(80) - j).abs() > window
    assert not changed[far].any()
    assert changed[j - window : j + window + 1].all()


def test_two_blocks_reach_twice_as_far(big_map):
    window = 6
    model = randomize_zero_init(tiny_model(depth=2, attn_window=window)).eval()
    batch = map_batch(big_map, 80, [100], [1])
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.4])
    ref = model(x, t, **model_kwargs(batch))
    x2 = x.clone()
    x2[0, 40] += 3.0
    changed = (model(x2, t, **model_kwargs(batch)) - ref).abs().amax(dim=-1)[
        0
    ] > 0  # far tokens are untouched bit for bit
    distance_to_edit = (torch.arange(80) - 40).abs()
    assert changed[distance_to_edit <= 2 * window].all()
    assert not changed[distance_to_edit > 2 * window].any()


def test_5000_tokens_in_one_pass():
    model = tiny_model().eval()
    length = 5000
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out = model(
            torch.randn(1, length, 2, generator=g),
            torch.tensor([0.5]),
            time_ms=torch.cumsum(torch.rand(1, length, generator=g) * 300, dim=1),
            distance=torch.rand(1, length, generator=g),
            kind=torch.randint(0, 16, (1, length), generator=g),
            style=torch.tensor([1]),
            mask=torch.ones(1, length, dtype=torch.bool),
        )
    assert out.shape == (1, length, 2) and torch.isfinite(out).all()


def test_forced_label_drop_is_the_null_class(big_map):
    model = randomize_zero_init(tiny_model()).eval()
    batch = map_batch(big_map, 64, [0, 0], [3, 3])
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.5, 0.5])
    kw = model_kwargs(batch)
    dropped = model(x, t, **kw, force_drop_ids=torch.tensor([1, 0]))
    null = model(x, t, **{**kw, "style": torch.tensor([NULL_CLASS, 3])})
    torch.testing.assert_close(dropped, null)
    assert not torch.allclose(dropped[0], dropped[1])


def test_given_style_features_stand_in_for_the_class_descriptor(big_map):
    from data.style_features import STYLE_FEATURE_DIM

    model = randomize_zero_init(tiny_model(class_feature_dim=STYLE_FEATURE_DIM)).eval()
    table = torch.rand(NUM_STYLES, STYLE_FEATURE_DIM, generator=torch.Generator().manual_seed(1))
    table[NULL_CLASS] = 0
    model.style_embedder.class_features.copy_(table)
    batch = map_batch(big_map, 64, [0, 0], [1, 2])
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.5, 0.5])
    kw = model_kwargs(batch)
    by_class = model(x, t, **kw)
    torch.testing.assert_close(model(x, t, **kw, style_features=table[[1, 2]]), by_class)
    swapped = model(x, t, **kw, style_features=table[[2, 1]])
    assert not torch.allclose(swapped, by_class)
    # A dropped row is the null condition whatever descriptor came with it (guidance's unconditional half).
    dropped = model(x, t, **kw, style_features=table[[2, 1]], force_drop_ids=torch.tensor([1, 1]))
    torch.testing.assert_close(dropped, model(x, t, **{**kw, "style": torch.tensor([NULL_CLASS, NULL_CLASS])}))


def test_training_mode_drops_labels_at_the_configured_rate():
    model = tiny_model(class_dropout_prob=0.25).train()
    torch.manual_seed(0)
    labels = torch.full((4000,), 2)
    dropped = model.style_embedder.drop_mask(labels)
    assert 0.2 < dropped.float().mean() < 0.3


def test_training_drops_the_label_alone_for_some_rows_and_everything_for_others():
    from data.style_features import STYLE_FEATURE_DIM

    model = tiny_model(class_feature_dim=STYLE_FEATURE_DIM, class_dropout_prob=0.2, label_only_dropout_prob=0.3)
    embedder = model.style_embedder.train()
    n = 4000
    labels = torch.full((n,), 2)
    features = torch.rand(n, STYLE_FEATURE_DIM, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with torch.no_grad():
        out = embedder(labels, True, features=features)
        table, mlp = embedder.embedding_table.weight, embedder.feature_mlp
        kept = torch.isclose(out, table[2] + mlp(features), atol=1e-6).all(1)
        label_only = torch.isclose(out, table[NULL_CLASS] + mlp(features), atol=1e-6).all(1)
        null = torch.isclose(out, table[NULL_CLASS] + mlp(torch.zeros_like(features)), atol=1e-6).all(1)
    assert bool((kept | label_only | null).all())
    assert 0.17 < null.float().mean() < 0.23  # both gone: the unconditional half of guidance
    assert 0.21 < label_only.float().mean() < 0.27  # 0.3 of the 0.8 left: the descriptor alone (--style-from)


def test_guidance_scale_one_is_one_conditional_pass(big_map):
    model = randomize_zero_init(tiny_model()).eval()
    batch = map_batch(big_map, 64, [10, 200], [1, 2])
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.7, 0.2])
    kw = model_kwargs(batch)
    calls = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        cond = model(x, t, **kw)
        calls.clear()
        out = guided(model, 1.0)(x, t, **kw)
        assert calls == [2]
        assert torch.equal(out, cond)

        calls.clear()
        steered = guided(model, 3.0)(x, t, **kw)
        assert calls == [4]  # cond and uncond batched together in one pass
        uncond = model(x, t, **{**kw, "style": torch.full((2,), NULL_CLASS)})
    handle.remove()
    torch.testing.assert_close(steered, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)


def test_rotary_scores_depend_on_index_offset_only():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 16, generator=g).expand(1, 1, 12, 16)
    k = torch.randn(1, 1, 1, 16, generator=g).expand(1, 1, 12, 16)
    scores = (rotate_by_index(q) @ rotate_by_index(k).transpose(-1, -2))[0, 0]  # same vectors at every index
    for offset in range(-3, 4):
        diagonal = torch.diagonal(scores, offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(torch.diagonal(scores, 1)[0], torch.diagonal(scores, -1)[0])  # order is visible


def test_rotary_along_another_token_dim_matches_the_default_layout():
    x = torch.randn(2, 3, 10, 8, generator=torch.Generator().manual_seed(0))  # [B, heads, L, d]
    along_dim1 = rotate_by_index(x.transpose(1, 2).contiguous(), dim=1).transpose(1, 2)  # [B, L, heads, d] layout
    torch.testing.assert_close(along_dim1, rotate_by_index(x))


def test_bf16_autocast_block_matches_the_fp32_block(big_map):
    """Under CPU autocast attention takes the unfused bf16 path: the block's output stays within bf16
    rounding of a pure fp32 pass, and gradients reach the attention weights."""
    model = randomize_zero_init(tiny_model())
    block = model.backbone.blocks[0]
    batch = map_batch(big_map, 96, [0, 200], [1, 2])
    x = torch.randn(2, 96, model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    c = torch.randn(2, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    reference = block(x, c, batch["mask"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = block(x, c, batch["mask"])
    assert mixed.dtype == torch.float32  # the residual stream stays fp32
    torch.testing.assert_close(mixed, reference, atol=0.05, rtol=0.05)
    mixed.pow(2).mean().backward()
    assert block.attn.qkv.weight.grad is not None and block.attn.qkv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("length", [37, 12])  # block path and short dense path
def test_bf16_cpu_attention_matches_fp32_attention_and_its_gradients(length):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, length, 16, generator=g) for _ in range(3))
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, length - 5 :] = False  # padded keys must get no weight in the bf16 path either
    upstream = torch.randn(2, 3, length, 16, generator=g)

    def run(dtype):
        leaves = [t.to(dtype).clone().requires_grad_() for t in (q, k, v)]
        out = local_attention(*leaves, mask, window=5)
        out.backward(upstream.to(dtype))
        return out.float(), [leaf.grad.float() for leaf in leaves]

    out32, grads32 = run(torch.float32)
    out16, grads16 = run(torch.bfloat16)
    assert out16.dtype == torch.float32 and torch.isfinite(out16).all()
    torch.testing.assert_close(out16, out32, atol=0.05, rtol=0.05)
    for got, want in zip(grads16, grads32, strict=True):
        torch.testing.assert_close(got, want, atol=0.1, rtol=0.1)


def test_configs_stored_before_a_field_existed_keep_the_old_behaviour():
    stored = preset_config("DiT-T").to_dict()
    del stored["gelu_approximate"]  # as in checkpoints written before exact GELU became the default
    del stored["turn_channels"], stored["self_condition"]
    old = PositionDiT(DiTConfig.from_dict(stored))
    assert old.backbone.blocks[0].mlp[1].approximate == "tanh"
    assert not old.config.self_condition and not hasattr(old, "self_cond_embedder")
    assert not old.config.turn_channels and old.x_embedder.in_features == 2
    assert PositionDiT(preset_config("DiT-T")).backbone.blocks[0].mlp[1].approximate == "none"
