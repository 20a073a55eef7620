"""The checkpoint format: weights_only round trip, rebuild from the file alone, refusal of broken files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from data.errors import BadInputError
from dit import checkpoint
from dit.diffusion import training_losses
from tests.test_models import big_map_path, map_batch, map_datapoints, model_kwargs, randomize_zero_init, tiny_model

STYLE_TABLE = {"names": ["<null>", "Karia", "MinG3012", "nold_1702"], "counts": [0, 1, 1, 1]}


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    return map_batch(map_datapoints(big_map_path()), 48, [0, 500], [1, 3])


def trained_checkpoint(path: Path, batch) -> tuple[torch.nn.Module, dict]:
    """Take two optimizer steps on a fixture map and save everything a resume needs."""
    torch.manual_seed(0)
    model = tiny_model(depth=2)
    ema = randomize_zero_init(tiny_model(depth=2), seed=5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    kw = model_kwargs(batch)
    mask = kw.pop("mask")
    for _ in range(2):
        loss = training_losses(model, batch["x0"], kw, mask)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    config = {**checkpoint.model_config_dict("PositionDiT", model.config), "diffusion": {"prediction": "v"}}
    train_state = {"step": 2, "epoch": 0, "rng": checkpoint.capture_rng_state()}
    extra = {"styles": STYLE_TABLE, "position_scale_px": 320.0}
    checkpoint.save_checkpoint(
        path,
        model_state=model.state_dict(),
        ema_state=ema.state_dict(),
        optimizer_state=optimizer.state_dict(),
        config=config,
        train_state=train_state,
        extra=extra,
    )
    return ema.eval(), optimizer.state_dict()


def test_roundtrip_with_weights_only(tmp_path, batch):
    path = tmp_path / "run" / "last.pt"
    ema, optimizer_state = trained_checkpoint(path, batch)
    raw = torch.load(path, weights_only=True)
    assert raw["extra"]["styles"] == STYLE_TABLE
    assert raw["train_state"]["step"] == 2
    assert list(path.parent.iterdir()) == [path]  # no temp file left beside it

    ckpt = checkpoint.load_checkpoint(path)
    model = checkpoint.build_model_from_checkpoint(ckpt)
    assert not model.training
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.3, 0.6])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, **model_kwargs(batch)), ema(x, t, **model_kwargs(batch)))

    resumed = torch.optim.AdamW(checkpoint.build_model_from_checkpoint(ckpt, use_ema=False).parameters(), lr=1e-3)
    resumed.load_state_dict(ckpt["optimizer_state"])
    assert resumed.state_dict()["state"][0]["step"] == optimizer_state["state"][0]["step"]


def test_rng_state_roundtrip():
    state = checkpoint.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.random(), np.random.rand(), torch.rand(1)
    checkpoint.restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_truncated_checkpoint_is_bad_input(tmp_path, batch):
    path = tmp_path / "last.pt"
    trained_checkpoint(path, batch)
    data = path.read_bytes()
    for cut in (len(data) // 2, 100, 0):
        broken = tmp_path / f"cut{cut}.pt"
        broken.write_bytes(data[:cut])
        with pytest.raises(BadInputError) as err:
            checkpoint.load_checkpoint(broken)
        assert str(err.value).startswith(str(broken) + ": ")


def test_other_files_are_bad_input(tmp_path, fixture_maps):
    with pytest.raises(BadInputError, match="not a checkpoint"):
        checkpoint.load_checkpoint(fixture_maps[0])  # an .osu given where a checkpoint belongs
    with pytest.raises(BadInputError, match="no such"):
        checkpoint.load_checkpoint(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(BadInputError, match="not an osu-dit-checkpoint"):
        checkpoint.load_checkpoint(foreign)


def test_non_plain_values_are_refused(tmp_path):
    model = tiny_model(depth=1)
    with pytest.raises(TypeError, match="extra.stats"):
        checkpoint.save_checkpoint(
            tmp_path / "x.pt",
            model_state=model.state_dict(),
            ema_state=None,
            optimizer_state=None,
            config=checkpoint.model_config_dict("PositionDiT", model.config),
            train_state={"step": 0},
            extra={"stats": np.zeros(3)},
        )
    assert not (tmp_path / "x.pt").exists()


def test_inference_export_is_small_and_equivalent(tmp_path, batch):
    path = tmp_path / "last.pt"
    ema, _ = trained_checkpoint(path, batch)
    export_path = tmp_path / "model.pt"
    checkpoint.save_inference_export(checkpoint.load_checkpoint(path), export_path)
    assert export_path.stat().st_size < 0.3 * path.stat().st_size  # no optimizer, no raw weights, fp16
    exported = checkpoint.load_checkpoint(export_path)
    assert exported["optimizer_state"] is None and exported["extra"]["styles"] == STYLE_TABLE
    model = checkpoint.build_model_from_checkpoint(exported)
    x = torch.randn_like(batch["x0"])
    t = torch.tensor([0.3, 0.6])
    with torch.no_grad():
        torch.testing.assert_close(
            model(x, t, **model_kwargs(batch)), ema(x, t, **model_kwargs(batch)), atol=2e-2, rtol=0
        )
