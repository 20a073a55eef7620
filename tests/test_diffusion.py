"""The diffusion objective: schedule algebra, masked loss, samplers, guidance, and learning on a real map."""

from __future__ import annotations

import math

import pytest
import torch

from dit import diffusion
from dit.models import NULL_CLASS
from tests.test_models import big_map_path, map_batch, map_datapoints, model_kwargs, randomize_zero_init, tiny_model


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    return map_batch(map_datapoints(big_map_path()), 64, [0, 150, 400, 600], [1, 2, 3, 1])


def test_cosine_schedule_goes_from_data_to_noise():
    t = torch.linspace(0, 1, 101)
    ab = diffusion.alpha_bar(t)
    assert ab[0] == 1.0
    assert ab[-1] == diffusion.ALPHA_BAR_MIN
    assert (ab[1:] <= ab[:-1]).all()
    alpha, sigma = diffusion.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(ab, dtype=torch.float64))


@pytest.mark.parametrize("prediction", diffusion.PREDICTIONS)
def test_true_target_gives_back_x0(batch, prediction):
    g = torch.Generator().manual_seed(0)
    x0 = batch["x0"]
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0.01, 0.3, 0.7, 0.99])
    x_t = diffusion.q_sample(x0, t, noise)
    target = diffusion.training_target(x0, noise, t, prediction)
    x0_hat = diffusion.predict_x0(target, x_t, t, prediction)
    torch.testing.assert_close(x0_hat, x0, atol=2e-4, rtol=0)


JUMP = 40.0 / 320.0  # the evaluation's jump legs in normalized units


def turns_by_hand(x0: torch.Tensor, mask: torch.Tensor, min_leg: float) -> list[list[float]]:
    """Signed turn angles (radians) at every real point with both legs longer than min_leg, per item, via atan2."""
    out = []
    for path, real in zip(x0.double().numpy(), mask.numpy(), strict=True):
        angles = []
        for i in range(1, len(path) - 1):
            if not real[i - 1 : i + 2].all():
                continue
            a, b = path[i] - path[i - 1], path[i + 1] - path[i]
            if math.hypot(*a) > min_leg and math.hypot(*b) > min_leg:
                angles.append(math.atan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1]))
        out.append(angles)
    return out


def test_turn_loss_scores_the_turns_of_a_real_map():
    from tests.conftest import FIXTURES

    jumps = map_batch(
        map_datapoints(next((FIXTURES / "songs").glob("*Aka no Ha/*.osu"))), 128, [0, 150, 300, 450], [0] * 4
    )
    x0, mask = jumps["x0"], jumps["mask"]
    t = torch.tensor([0.1, 0.3, 0.5, 0.9])
    # Turns are blind to where the pattern sits, how it is rotated and how large it is.
    c, s = math.cos(0.7), math.sin(0.7)
    moved = 1.3 * x0 @ torch.tensor([[c, s], [-s, c]]) + torch.tensor([0.2, -0.1])
    assert diffusion.turn_loss(moved, x0, t, mask, JUMP) < 1e-6
    # Mirroring flips every turn: each jump costs |(cos a, sin a) - (cos a, -sin a)|^2 = 4 sin^2 a, times alpha_t^2.
    mirrored = x0 * torch.tensor([-1.0, 1.0])
    angles = turns_by_hand(x0, mask, JUMP)
    alpha2 = diffusion.alpha_bar(t).tolist()
    terms = [4 * math.sin(a) ** 2 * w for item, w in zip(angles, alpha2, strict=True) for a in item]
    assert len(terms) > 100, "a jump map's windows hold many jumps"
    expected = sum(terms) / len(terms)
    assert float(diffusion.turn_loss(mirrored, x0, t, mask, JUMP)) == pytest.approx(expected, rel=1e-4)
    # Padding and short legs do not count: garbage past the mask changes nothing, a huge min_leg leaves no jumps.
    cut = mask.clone()
    cut[:, 40:] = False
    garbage = mirrored.clone()
    garbage[:, 40:] = 5.0
    ref = diffusion.turn_loss(mirrored, x0, t, cut, JUMP)
    assert diffusion.turn_loss(garbage, x0, t, cut, JUMP) == ref > 0
    assert diffusion.turn_loss(mirrored, x0, t, mask, 10.0) == 0


def test_turn_term_adds_to_the_mse_only_when_asked(batch):
    model = randomize_zero_init(tiny_model()).eval()
    kw = model_kwargs(batch)
    mask = kw.pop("mask")
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(batch["x0"].shape, generator=g)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7])
    plain = diffusion.training_losses(model, batch["x0"], kw, mask, t=t, noise=noise)
    assert plain["turn"] == 0 and plain["loss"] == plain["mse"]
    out = diffusion.training_losses(model, batch["x0"], kw, mask, t=t, noise=noise, turn_weight=0.3, turn_min_leg=JUMP)
    torch.testing.assert_close(out["mse"], plain["mse"])
    x_t = diffusion.q_sample(batch["x0"], t, noise)
    x0_hat = diffusion.predict_x0(model(x_t, t, mask=mask, **kw), x_t, t, diffusion.DEFAULT_PREDICTION)
    torch.testing.assert_close(out["turn"], diffusion.turn_loss(x0_hat, batch["x0"], t, mask, JUMP))
    assert out["turn"] > 0.01
    torch.testing.assert_close(out["loss"], out["mse"] + 0.3 * out["turn"])


def test_loss_ignores_padding(batch):
    model = randomize_zero_init(tiny_model()).eval()
    kw = model_kwargs(batch)
    mask = batch["mask"].clone()
    mask[:, 50:] = False
    kw.pop("mask")
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(batch["x0"].shape, generator=g)
    t = torch.tensor([0.2, 0.4, 0.6, 0.8])
    ref = diffusion.training_losses(model, batch["x0"], kw, mask, t=t, noise=noise)
    x0 = batch["x0"].clone()
    x0[:, 50:] = 7.0  # garbage in padded tokens
    noise2 = noise.clone()
    noise2[:, 50:] = -9.0
    out = diffusion.training_losses(model, x0, kw, mask, t=t, noise=noise2)
    torch.testing.assert_close(out["loss"], ref["loss"])
    torch.testing.assert_close(out["loss_per_item"], ref["loss_per_item"])
    assert out["loss_per_item"].shape == (4,)


@pytest.mark.parametrize("name", sorted(diffusion.SAMPLERS))
def test_oracle_denoiser_lands_on_the_data(batch, name):
    """With a model that always knows x0, every sampler must end exactly at x0."""
    x0 = batch["x0"].clamp(-1, 1)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x0.shape, generator=g)
    out = diffusion.SAMPLERS[name](lambda x, t: x0, noise, 7, disable=True, generator=g)
    torch.testing.assert_close(out, x0)


@pytest.mark.parametrize("name", sorted(diffusion.SAMPLERS))
def test_samplers_are_deterministic_given_a_generator(batch, name):
    model = randomize_zero_init(tiny_model()).eval()
    kw = model_kwargs(batch)
    fn = diffusion.denoiser(diffusion.guided(model, 2.0))
    seen = []
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(123)
        x = torch.randn(batch["x0"].shape, generator=g)
        outs.append(diffusion.SAMPLERS[name](fn, x, 5, extra_args=kw, disable=True, generator=g, callback=seen.append))
    assert torch.equal(outs[0], outs[1])
    assert outs[0].abs().max() <= 1.0
    assert [s["i"] for s in seen] == list(range(5)) * 2
    g = torch.Generator().manual_seed(124)
    other = diffusion.SAMPLERS[name](
        fn, torch.randn(batch["x0"].shape, generator=g), 5, extra_args=kw, disable=True, generator=g
    )
    assert not torch.equal(outs[0], other)


def test_guidance_batches_cond_and_uncond_once(batch):
    calls = []

    def model_fn(x, t, *, style, mask, force_drop_ids):
        style = torch.where(force_drop_ids == 1, NULL_CLASS, style)
        calls.append(style.tolist())
        return x * (style[:, None, None].float() + 1)

    x = batch["x0"]
    t = torch.full((4,), 0.5)
    assert diffusion.guided(model_fn, 1.0) is model_fn
    out = diffusion.guided(model_fn, 2.5)(x, t, style=batch["style"], mask=batch["mask"])
    assert calls == [batch["style"].tolist() + [NULL_CLASS] * 4]
    cond = x * (batch["style"][:, None, None].float() + 1)
    torch.testing.assert_close(out, x + 2.5 * (cond - x))


def test_training_loss_decreases_on_a_fixture_map(batch):
    torch.manual_seed(0)
    model = tiny_model(depth=2, hidden_size=64, frequency_embedding_size=64, attn_window=16).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    kw = model_kwargs(batch)
    mask = kw.pop("mask")
    # A fixed evaluation set of (t, noise) so the comparison is not noise in the loss estimate.
    g = torch.Generator().manual_seed(99)
    eval_t = torch.rand(8, 4, generator=g)
    eval_noise = torch.randn(8, *batch["x0"].shape, generator=g)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = [
                diffusion.training_losses(model, batch["x0"], kw, mask, t=eval_t[k], noise=eval_noise[k])["loss"]
                for k in range(8)
            ]
        model.train()
        return float(torch.stack(losses).mean())

    before = eval_loss()
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        loss = diffusion.training_losses(model, batch["x0"], kw, mask, generator=gen)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    assert after < 0.8 * before, (before, after)


# First-order samplers shrink the spread at few steps (DDIM 20 steps: std 0.268 of 0.3), so they get more steps.
@pytest.mark.parametrize(
    ("name", "steps", "std_tol"), [("ddim", 200, 0.01), ("dpmpp_2m", 20, 0.01), ("ancestral", 200, 0.015)]
)
def test_exact_denoiser_of_a_gaussian_recovers_it(name, steps, std_tol):
    """For x0 ~ N(mu, s^2) the best denoiser is known in closed form; sampling with it must give back N(mu, s^2)."""
    mu, s = 0.2, 0.3

    def gaussian_denoiser(x, t):
        alpha, sigma = (v.float()[:, None, None] for v in diffusion.alpha_sigma(t))
        return mu + alpha * s**2 / (alpha**2 * s**2 + sigma**2) * (x - alpha * mu)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 20_000, 1, generator=g)
    out = diffusion.SAMPLERS[name](gaussian_denoiser, x, steps, disable=True, generator=g)
    assert abs(out.mean().item() - mu) < 0.01
    assert abs(out.std().item() - s) < std_tol


@pytest.mark.parametrize(("name", "steps"), [("ddim", 100), ("dpmpp_2m", 20), ("ancestral", 200)])
def test_sampling_from_part_way_keeps_the_data_distribution_and_its_starting_data(name, steps):
    """Starting at t = start from noised data (SDEdit), the exact denoiser of x0 ~ N(mu, s^2) must still give
    N(mu, s^2), tied to the data it started from as the closed form says: the deterministic samplers map x_t
    linearly, so corr(out, data) = r = corr(x_t, data); ancestral draws from p(x0 | x_t), corr r^2."""
    mu, s = 0.2, 0.3

    def gaussian_denoiser(x, t):
        alpha, sigma = (v.float()[:, None, None] for v in diffusion.alpha_sigma(t))
        return mu + alpha * s**2 / (alpha**2 * s**2 + sigma**2) * (x - alpha * mu)

    g = torch.Generator().manual_seed(0)
    data = mu + s * torch.randn(1, 20_000, 1, generator=g)
    for start in (0.2, 0.6, 1.0):
        t = torch.full((1,), start)
        x = diffusion.q_sample(data, t, torch.randn(data.shape, generator=g)).float()
        out = diffusion.SAMPLERS[name](gaussian_denoiser, x, steps, disable=True, generator=g, start=start)
        assert abs(out.mean().item() - mu) < 0.01 and abs(out.std().item() - s) < 0.015, start
        alpha, sigma = (v.item() for v in diffusion.alpha_sigma(t))
        r = alpha * s / math.hypot(alpha * s, sigma)
        expected = r**2 if name == "ancestral" else r  # 0.66 / 0.21 / 0.0 at the three starts (r)
        correlation = torch.corrcoef(torch.stack([out.flatten(), data.flatten()]))[0, 1].item()
        assert abs(correlation - expected) < 0.03, (start, correlation, expected)


def test_a_time_grid_outside_the_schedule_is_refused():
    with pytest.raises(ValueError, match="start"):
        diffusion.time_grid(5, start=0.0)
    with pytest.raises(ValueError, match="start"):
        diffusion.time_grid(5, start=1.5)


def test_self_conditioned_training_feeds_half_the_batches_the_models_own_estimate(batch):
    model = randomize_zero_init(tiny_model(depth=2, hidden_size=64, frequency_embedding_size=64, self_condition=True))
    kw = model_kwargs(batch)
    mask = kw.pop("mask")
    seen = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs.get("self_cond")), with_kwargs=True)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(40):
        seen.clear()
        diffusion.training_losses(model, batch["x0"], kw, mask, generator=gen, self_condition=True)
        assert len(seen) in (1, 2) and seen[0] is None
        if len(seen) == 2:  # the second pass reads the first pass's x0, which is no copy of the data
            assert seen[1].shape == batch["x0"].shape and not torch.equal(seen[1], batch["x0"])
    model.eval()
    seen.clear()
    diffusion.training_losses(model, batch["x0"], kw, mask, generator=gen, self_condition=True)
    assert seen == [None]  # validation stays one plain pass


def test_self_conditioned_training_takes_the_estimate_about_half_the_time(batch):
    model = tiny_model(depth=1, hidden_size=32, frequency_embedding_size=32, self_condition=True).train()
    kw = model_kwargs(batch)
    mask = kw.pop("mask")
    passes = []
    model.register_forward_hook(lambda *_: passes.append(1))
    gen = torch.Generator().manual_seed(1)
    for _ in range(200):
        diffusion.training_losses(model, batch["x0"], kw, mask, generator=gen, self_condition=True)
    assert 70 <= len(passes) - 200 <= 130


def test_the_denoiser_hands_each_estimate_to_the_next_step(batch):
    model = randomize_zero_init(tiny_model(depth=2, hidden_size=64, frequency_embedding_size=64, self_condition=True))
    model.eval()
    kw = model_kwargs(batch)
    seen = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs.get("self_cond")), with_kwargs=True)
    returned = []
    fn = diffusion.denoiser(model, clip=True, self_condition=True)
    x = torch.randn(batch["x0"].shape, generator=torch.Generator().manual_seed(0))
    diffusion.sample_ddim(fn, x, 4, extra_args=kw, disable=True, callback=lambda d: returned.append(d["denoised"]))
    assert seen[0] is None
    for previous, given in zip(returned[:-1], seen[1:], strict=True):
        assert torch.equal(previous, given)
    # The estimate it reads changes what the model says: the same x and t with and without it differ.
    t = torch.full((4,), 0.5)
    with torch.no_grad():
        plain = model(x, t, **kw)
        conditioned = model(x, t, **kw, self_cond=returned[-1])
    assert (plain - conditioned).abs().max() > 1e-3
