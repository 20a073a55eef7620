"""The diffusion objective apart from the network: cosine schedule, training loss, samplers, guidance.

Time is continuous, t in [0, 1] (t = 1 is pure noise), variance preserving: x_t = alpha_t x0 + sigma_t eps
with alpha_t^2 = alpha_bar(t) from the cosine schedule and sigma_t^2 = 1 - alpha_t^2.

Samplers share one signature (after k-diffusion): `sample_<name>(model_fn, x, steps, *, extra_args, callback,
disable, generator, start)` where `model_fn(x, t, **extra_args)` returns the denoised x0 (wrap a network with
`denoiser`). `x` is the sample at time `start`: N(0, I) at the default 1, or `q_sample(data, start, noise)` to
rework existing data only as far as that noise level reaches (SDEdit, Meng et al. 2021, arXiv:2108.01073).

Prediction target: v (Salimans & Ho 2022): at high noise it denoises far better than eps, which divides by a
vanishing alpha (docs/decisions.md has the comparison).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import trange

Prediction = Literal["eps", "v"]
PREDICTIONS: tuple[str, ...] = ("eps", "v")
DEFAULT_PREDICTION: Prediction = "v"

COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal: keeps beta from being tiny near t = 0
ALPHA_BAR_MIN = 1e-6  # as their beta clip at 0.999: alpha never reaches 0, so x0 = f(eps) stays finite
X0_RANGE = 1.0  # positions are normalized to [-1, 1]

ModelFn = Callable[..., Tensor]


#################################################################################
#                               Noise schedule                                  #
#################################################################################


def alpha_bar(t: Tensor) -> Tensor:
    """Cosine schedule, Nichol & Dhariwal 2021 (arXiv:2102.09672), eq. 17, in continuous time."""
    s = COSINE_OFFSET
    f = torch.cos((t.double() + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return (f / f0).clamp(ALPHA_BAR_MIN, 1.0)


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """Signal and noise scales (alpha_t, sigma_t) at times t, float64."""
    ab = alpha_bar(t)
    return ab.sqrt(), (1 - ab).sqrt()


def _expand(v: Tensor, like: Tensor) -> Tensor:
    """Per-item scale [B] -> [B, 1, ...] broadcastable against `like`, in its dtype."""
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like x, drawn on the generator's device: a CPU generator gives the same
    numbers whether the model runs on CPU or GPU."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def q_sample(x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """Sample x_t ~ q(x_t | x0)."""
    alpha, sigma = alpha_sigma(t)
    return _expand(alpha, x0) * x0 + _expand(sigma, x0) * noise


def predict_x0(output: Tensor, x: Tensor, t: Tensor, prediction: Prediction) -> Tensor:
    """x0 implied by the network output (eps or v, Salimans & Ho 2022 arXiv:2202.00512) at x_t."""
    alpha, sigma = alpha_sigma(t)
    a, s = _expand(alpha, x), _expand(sigma, x)
    if prediction == "eps":
        return (x - s * output) / a
    if prediction == "v":
        return a * x - s * output
    raise ValueError(f"unknown prediction {prediction!r}, expected one of {PREDICTIONS}")


def training_target(x0: Tensor, noise: Tensor, t: Tensor, prediction: Prediction) -> Tensor:
    if prediction == "eps":
        return noise
    if prediction == "v":
        alpha, sigma = alpha_sigma(t)
        return _expand(alpha, x0) * noise - _expand(sigma, x0) * x0
    raise ValueError(f"unknown prediction {prediction!r}, expected one of {PREDICTIONS}")


#################################################################################
#                                  Training                                     #
#################################################################################


def masked_mean_per_item(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Sum over real tokens of values [B, L, C] averaged over channels -> (per-item sum [B], real counts [B])."""
    weights = mask.to(values.dtype)
    per_token = values.mean(dim=-1)  # [B, L]
    return (per_token * weights).sum(dim=1), weights.sum(dim=1)


def _turns(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Turn at every inner point of paths x [B, L, 2] as (cos, sin) of the angle between the legs into and out
    of it, plus those legs' lengths, each [B, L - 2]."""
    legs = x[:, 1:] - x[:, :-1]
    length = legs.norm(dim=-1).clamp_min(1e-4)
    a, b, la, lb = legs[:, :-1], legs[:, 1:], length[:, :-1], length[:, 1:]
    cos = (a * b).sum(-1) / (la * lb)
    sin = (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]) / (la * lb)
    return cos, sin, la, lb


def turn_loss(x0_hat: Tensor, x0: Tensor, t: Tensor, mask: Tensor, min_leg: float) -> Tensor:
    """Squared distance between the unit turn vectors of the denoised estimate and of the data, at every point
    whose two data legs are longer than min_leg, weighted by alpha_t^2 (the share of signal at t) and averaged.

    Why: the v loss scores each point alone, and a network trained on it alone blurs mappers' sharp and wide
    turns toward right angles; this term scores the shape between neighbours. Off by default: it lowered the
    validation MSE but made held-out remaps worse (docs/decisions.md).
    """
    c0, s0, la, lb = _turns(x0.float())
    c1, s1, _, _ = _turns(x0_hat.float())
    jump = (la > min_leg) & (lb > min_leg) & mask[:, 2:] & mask[:, 1:-1] & mask[:, :-2]
    weight = alpha_sigma(t)[0].pow(2).float()[:, None]
    err = ((c1 - c0) ** 2 + (s1 - s0) ** 2) * weight
    return (err * jump).sum() / jump.sum().clamp_min(1)


def training_losses(
    model: ModelFn,
    x0: Tensor,
    model_kwargs: dict,
    mask: Tensor,
    *,
    prediction: Prediction = DEFAULT_PREDICTION,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    turn_weight: float = 0.0,
    turn_min_leg: float = 0.0,
    self_condition: bool = False,
) -> dict[str, Tensor]:
    """MSE of the network against its target on real tokens only, plus turn_weight times `turn_loss` for
    position data (legs longer than turn_min_leg, normalized units).

    `self_condition` (a model trained to read its previous estimate, `self_cond`): in training mode, half the
    batches first take the model's own x0 estimate, without gradient, and pass it in (Chen et al. 2022); the
    others pass none, as the sampler's first step does. Evaluation mode passes none, so validation stays one
    plain pass.

    Returns loss (the objective: mean MSE over all real tokens of the batch, plus the turn term), mse (that mean
    alone, comparable across runs with and without the turn term), turn (the unweighted turn term, 0 when off),
    loss_per_item [B], x0_mse_per_item [B] (the error measured in normalized position space, comparable across
    prediction types) and the t used. `model(x_t, t, mask=mask, **model_kwargs)` is called once (twice for a
    self-conditioned batch).
    """
    batch = x0.shape[0]
    draw_device = generator.device if generator is not None else x0.device  # where the generator draws
    if t is None:
        t = torch.rand(batch, generator=generator, device=draw_device).to(x0.device)
    if noise is None:
        noise = randn_like(x0, generator)
    x_t = q_sample(x0, t, noise)
    if self_condition and getattr(model, "training", False):
        if bool(torch.rand((), generator=generator, device=draw_device) < 0.5):
            with torch.no_grad():
                estimate = predict_x0(model(x_t, t, mask=mask, **model_kwargs).float(), x_t, t, prediction)
            model_kwargs = {**model_kwargs, "self_cond": estimate.to(x_t.dtype)}
    output = model(x_t, t, mask=mask, **model_kwargs)
    target = training_target(x0, noise, t, prediction)
    sq_err = (output - target) ** 2
    loss_sum, count = masked_mean_per_item(sq_err, mask)
    with torch.no_grad():
        x0_err = (predict_x0(output, x_t, t, prediction) - x0) ** 2
        x0_sum, _ = masked_mean_per_item(x0_err, mask)
    safe_count = count.clamp_min(1)
    mse = loss_sum.sum() / count.sum().clamp_min(1)
    turn = torch.zeros((), device=mse.device)
    if turn_weight:
        estimate = predict_x0(output.float(), x_t, t, prediction)
        turn = turn_loss(estimate[..., :2], x0[..., :2], t, mask, turn_min_leg)  # positions: turn channels follow
    return {
        "loss": mse + turn_weight * turn,
        "mse": mse,
        "turn": turn,
        "loss_per_item": loss_sum / safe_count,
        "x0_mse_per_item": x0_sum / safe_count,
        "t": t,
    }


#################################################################################
#                            Guidance and denoiser                              #
#################################################################################


def guided(model_fn: ModelFn, cfg_scale: float) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598): out = u + s (c - u).

    Conditional and unconditional halves run as one doubled batch, the second half with every condition dropped
    through the model's own `force_drop_ids` (so a class label and any descriptor beside it go null together);
    with cfg_scale == 1 the model is returned unchanged, so guidance off costs a single pass. Put the model in
    eval mode first, or its training-time label dropout mixes into the conditional half.
    """
    if cfg_scale == 1:
        return model_fn

    def fn(x: Tensor, t: Tensor, **kwargs) -> Tensor:
        batch = x.shape[0]
        doubled = {
            k: torch.cat([v, v]) if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == batch else v
            for k, v in kwargs.items()
        }
        doubled["force_drop_ids"] = (torch.arange(2 * batch, device=x.device) >= batch).long()  # 0 = keep
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), **doubled)
        cond_out, uncond_out = out.chunk(2)
        return uncond_out + cfg_scale * (cond_out - uncond_out)

    return fn


def denoiser(
    model_fn: ModelFn,
    prediction: Prediction = DEFAULT_PREDICTION,
    clip: bool | tuple[Tensor, Tensor] = True,
    constrain: Callable[[Tensor, dict], Tensor] | None = None,
    self_condition: bool = False,
) -> ModelFn:
    """Turn a network (eps or v output) into the x0 predictor the samplers call.

    `clip`: True clips x0 to [-1, 1]; a (low, high) pair of per-channel bounds clips to the data's own range
    (the playfield for positions), which keeps every step of the trajectory inside it.
    `constrain(x0, model_kwargs)`, when given, adjusts each estimate before the clip (see dit.constraints).
    `self_condition`: the network reads the previous call's returned estimate as `self_cond` (none on the first
    call), so the returned function holds state: make a new one for every sampling run.
    """
    low, high = clip if isinstance(clip, tuple) else (None, None)
    previous: Tensor | None = None

    def fn(x: Tensor, t: Tensor, **kwargs) -> Tensor:
        nonlocal previous
        if self_condition and previous is not None:
            kwargs = {**kwargs, "self_cond": previous}
        x0 = predict_x0(model_fn(x, t, **kwargs), x, t, prediction)
        if constrain is not None:
            x0 = constrain(x0, kwargs)
        if low is not None:
            x0 = torch.maximum(torch.minimum(x0, high.to(x0)), low.to(x0))
        elif clip:
            x0 = x0.clamp(-X0_RANGE, X0_RANGE)
        previous = x0
        return x0

    return fn


#################################################################################
#                                  Samplers                                     #
#################################################################################


def time_grid(steps: int, device: torch.device | str = "cpu", start: float = 1.0) -> Tensor:
    """steps + 1 times from `start` (1: pure noise) down to 0 (data), uniform in t (the cosine schedule spreads
    SNR)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start must be in (0, 1], got {start}")
    return torch.linspace(start, 0.0, steps + 1, device=device, dtype=torch.float64)


def _t_batch(t: Tensor, x: Tensor) -> Tensor:
    return t.to(torch.float32).expand(x.shape[0]).contiguous()


@torch.no_grad()
def sample_ancestral(
    model_fn: ModelFn,
    x: Tensor,
    steps: int,
    *,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool = False,
    generator: torch.Generator | None = None,
    start: float = 1.0,
) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, arXiv:2006.11239), respaced through the posterior q(x_s | x_t, x0)."""
    extra_args = extra_args or {}
    times = time_grid(steps, x.device, start)
    for i in trange(steps, disable=disable, desc="ancestral"):
        t, s = times[i], times[i + 1]
        x0 = model_fn(x, _t_batch(t, x), **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "t": float(t), "denoised": x0})
        if i == steps - 1:
            x = x0
            break
        (alpha_t, sigma_t), (alpha_s, sigma_s) = alpha_sigma(t), alpha_sigma(s)
        alpha_ts = alpha_t / alpha_s
        var_ts = sigma_t**2 - alpha_ts**2 * sigma_s**2
        mean = (alpha_ts * sigma_s**2 / sigma_t**2) * x + (alpha_s * var_ts / sigma_t**2) * x0
        std = (var_ts * sigma_s**2 / sigma_t**2).sqrt()
        x = (mean + std * randn_like(x, generator)).to(x.dtype)
    return x


@torch.no_grad()
def sample_ddim(
    model_fn: ModelFn,
    x: Tensor,
    steps: int,
    *,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool = False,
    generator: torch.Generator | None = None,
    start: float = 1.0,
) -> Tensor:
    """Deterministic DDIM, eta = 0 (Song et al. 2020, arXiv:2010.02502)."""
    extra_args = extra_args or {}
    times = time_grid(steps, x.device, start)
    for i in trange(steps, disable=disable, desc="ddim"):
        t, s = times[i], times[i + 1]
        x0 = model_fn(x, _t_batch(t, x), **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "t": float(t), "denoised": x0})
        (alpha_t, sigma_t), (alpha_s, sigma_s) = alpha_sigma(t), alpha_sigma(s)
        # eps from the (clipped) x0, as guided-diffusion does, so clipping also steers the trajectory.
        eps = (x - alpha_t * x0) / sigma_t
        x = (alpha_s * x0 + sigma_s * eps).to(x.dtype)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model_fn: ModelFn,
    x: Tensor,
    steps: int,
    *,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool = False,
    generator: torch.Generator | None = None,
    start: float = 1.0,
) -> Tensor:
    """DPM-Solver++(2M), deterministic multistep in log-SNR (Lu et al. 2022, arXiv:2211.01095)."""
    extra_args = extra_args or {}
    times = time_grid(steps, x.device, start)

    def log_snr_half(t: Tensor) -> Tensor:  # lambda = log(alpha / sigma)
        alpha, sigma = alpha_sigma(t)
        return alpha.log() - sigma.log()

    previous_x0, previous_h = None, None
    for i in trange(steps, disable=disable, desc="dpm++2m"):
        t, s = times[i], times[i + 1]
        x0 = model_fn(x, _t_batch(t, x), **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "t": float(t), "denoised": x0})
        if i == steps - 1:  # s = 0: sigma_s = 0 and lambda_s is infinite, the update is x0 itself
            x = x0
            break
        (_, sigma_t), (alpha_s, sigma_s) = alpha_sigma(t), alpha_sigma(s)
        h = log_snr_half(s) - log_snr_half(t)
        if previous_x0 is None:
            d = x0
        else:
            r = previous_h / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous_x0
        x = ((sigma_s / sigma_t) * x - alpha_s * torch.expm1(-h) * d).to(x.dtype)
        previous_x0, previous_h = x0, h
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
    "ancestral": sample_ancestral,
}
