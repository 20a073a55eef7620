"""Replay windows and ReplayDiT on the real fixture replays: inputs, a forward/backward pass, training and resume."""

import numpy as np
import torch

import train
from data.beatmap.osu_reader import read_beatmap
from data.cache import load_replay_array, load_replay_cache
from data.replay.gameplay import stacked_positions
from data.replay.habits import HABIT_NAMES, tick_habits
from data.replay.mods import apply_mods
from data.replay.osr import key_holds
from data.replay_io import (
    FEATURE_INDEX,
    MODEL_FEATURE_NAMES,
    NUM_MODEL_FEATURES,
    REFERENCE_KINDS,
    SETTLE_SPEED_PX,
    SETTLE_WIDTH_PX,
    clean_keys,
    decode_targets,
    encode_targets,
    hold_taps,
    map_features,
    reference_path,
    settle,
    unhairpin,
)
from data.replay_windows import ReplayWindowDataset
from dit import diffusion
from dit.checkpoint import load_checkpoint
from dit.replay_model import ReplayDiT, ReplayDiTConfig
from pipeline.training import collate

TINY = ReplayDiTConfig(depth=2, hidden_size=32, num_heads=2, num_features=NUM_MODEL_FEATURES, patch_ticks=4)


def test_reference_path_passes_through_every_object_at_its_hit_time(fixture_maps):
    for path in fixture_maps:
        play = apply_mods(read_beatmap(path), 0)
        if not play.hit_objects:
            continue
        times = np.array([o.time_ms for o in play.hit_objects])
        # Just before each hit time: the path is then on its way into the object's head.
        ticks = times - 1e-3
        reference = reference_path(map_features(play, ticks))
        heads = stacked_positions(play)
        x, y, _, _ = decode_targets(np.zeros((len(ticks), 4), np.float32), reference)
        # Spinners have no head, and two objects at one time (a few real maps do it) cannot both be reached.
        skip = np.array([o.kind == "spinner" for o in play.hit_objects])
        skip |= np.isin(times, times[np.flatnonzero(np.diff(times) == 0)])
        error = np.hypot(x - heads[:, 0], y - heads[:, 1])[~skip]
        assert np.max(error) < 2.0, path.name


def test_targets_round_trip_to_cursor_and_keys(replay_cache):
    rows, _ = load_replay_cache(replay_cache)
    row = next(r for r in rows if r["paired"])
    array = load_replay_array(replay_cache, row["replay_md5"])
    reference = reference_path(array["features"])
    targets = encode_targets(array["x"], array["y"], array["k1"], array["k2"], reference)
    x, y, k1, k2 = decode_targets(targets, reference)
    unclipped = np.all(np.abs(targets[:, :2]) < 1, axis=1)
    assert unclipped.mean() > 0.9
    # Decoding takes a 3-tick running median of the offset: human motion comes back nearly unchanged.
    error = np.hypot(x - array["x"], y - array["y"])[unclipped]
    assert np.median(error) < 0.5 and np.quantile(error, 0.95) < 5.0
    # Keys come back as recorded, less one-tick holds and gaps (decoding treats those as sampler noise).
    for decoded, recorded in ((k1, array["k1"] > 0), (k2, array["k2"] > 0)):
        assert np.array_equal(decoded, clean_keys(recorded))
        assert np.mean(decoded != recorded) < 0.01


def test_full_speed_reversals_are_taken_out_and_human_motion_left_alone(replay_cache):
    rows, _ = load_replay_cache(replay_cache)
    array = load_replay_array(replay_cache, next(r for r in rows if r["paired"])["replay_md5"])
    human = np.stack([array["x"], array["y"]], axis=1).astype(np.float64)
    kept = unhairpin(human)
    assert np.mean(np.any(kept != human, axis=1)) < 0.01, "a human hand seldom reverses within one tick"
    # A two-tick out-and-back spike of 40 px in the middle of a steady move.
    path = np.stack([np.arange(20) * 5.0, np.full(20, 100.0)], axis=1)
    path[10] += [0, 40]
    path[11] += [0, 40]
    fixed = unhairpin(path)
    steps = np.diff(fixed, axis=0)
    cos = np.einsum("ij,ij->i", steps[:-1], steps[1:]) / np.maximum(
        np.linalg.norm(steps[:-1], axis=1) * np.linalg.norm(steps[1:], axis=1), 1e-9
    )
    long = np.minimum(np.linalg.norm(steps[:-1], axis=1), np.linalg.norm(steps[1:], axis=1)) > 8
    assert not np.any(long & (cos < -np.cos(np.radians(10)))), "no circleguard snap is left"


def test_settle_lets_a_jittering_cursor_rest_where_the_hand_did_and_leaves_fast_motion(replay_cache):
    rows, _ = load_replay_cache(replay_cache)
    array = load_replay_array(replay_cache, next(r for r in rows if r["paired"])["replay_md5"])
    human = np.stack([array["x"], array["y"]], axis=1).astype(np.float64)
    at_rest = np.r_[False, np.linalg.norm(np.diff(human, axis=0), axis=1) < 0.5]
    assert at_rest.mean() > 0.05, "the fixture's player rests"
    # The network's cursor: human motion with a jitter of a few px where a hand would be still.
    jittered = human + np.random.default_rng(0).normal(0, 1.5, human.shape)
    settled = settle(jittered)

    def rest(path):
        return np.mean(np.linalg.norm(np.diff(path, axis=0), axis=1) < 0.5)

    assert rest(jittered) < 0.02 and rest(settled) > 0.5 * at_rest.mean(), (rest(jittered), rest(settled))
    assert np.max(np.linalg.norm(settled - jittered, axis=1)) <= SETTLE_WIDTH_PX + 1e-9, "it trails the path"
    # Where the path moves at full speed the zone is gone: the cursor is the path's (after the zone has caught up).
    padded = np.pad(human, ((4, 4), (0, 0)), mode="edge")
    fast = np.linalg.norm(padded[8:] - padded[:-8], axis=1) / 8 > 2 * SETTLE_SPEED_PX
    fast &= np.convolve(fast, np.ones(9), "same") == 9
    assert fast.sum() > 100 and np.allclose(settled[fast], jittered[fast])
    assert np.array_equal(settle(jittered, width_px=0), jittered)


def test_taps_are_held_the_asked_share_of_the_gap_and_slider_holds_kept(replay_cache):
    rows, _ = load_replay_cache(replay_cache)
    arrays = [load_replay_array(replay_cache, r["replay_md5"]) for r in rows if r["paired"]]
    array = max(arrays, key=lambda a: len(key_holds(a["k1"] > 0)) + len(key_holds(a["k2"] > 0)))
    t, x, y, f = array["time_ms"], array["x"], array["y"], array["features"]
    body = (f[:, FEATURE_INDEX["slider_active"]] > 0) | (f[:, FEATURE_INDEX["spinner_active"]] > 0)

    def hold(k1, k2):
        return np.nanmean(tick_habits(t, x, y, k1, k2, f)[:, HABIT_NAMES.index("hold_share")])

    def holds(k1, k2):
        return sorted((p, r, key) for key, down in enumerate((k1, k2)) for p, r in key_holds(down > 0))

    human = holds(array["k1"], array["k2"])
    assert len(human) > 50 and any(body[p:r].any() for p, r, _ in human), "taps and slider holds"
    for share in (0.5, 0.7):  # within what the fastest taps (2 ticks) and the next press leave
        k1, k2 = hold_taps(array["k1"], array["k2"], f, share)
        assert abs(hold(k1, k2) - share) < 0.05, (share, hold(k1, k2), hold(array["k1"], array["k2"]))
        changed = holds(k1, k2)
        assert [(p, key) for p, _, key in changed] == [(p, key) for p, _, key in human], "every press kept"
        assert [h for h in changed if body[h[0] : h[1]].any()] == [h for h in human if body[h[0] : h[1]].any()]


def test_one_tick_key_holds_are_lengthened_and_one_tick_gaps_filled():
    # Sampled key channels: a tap held for one tick, a hold with a one-tick dip, a tap on the last tick.
    k1 = np.array([0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1], bool)
    decoded = clean_keys(k1)
    assert decoded.tolist() == [0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    presses = np.flatnonzero(decoded & ~np.concatenate([[False], decoded[:-1]]))
    assert presses.tolist() == [1, 5, 14]  # every tap keeps its press, the dip does not add one


def test_windows_are_deterministic_and_mirror_cursor_and_map_together(replay_cache):
    plain = ReplayWindowDataset(replay_cache, "all", seq_len=64, augment=False)
    aug = ReplayWindowDataset(replay_cache, "all", seq_len=64, augment=True, seed=3)
    assert len(plain) > 10 and len(plain) == len(aug)
    assert plain.rows and all(r["paired"] for r in plain.rows)
    again = ReplayWindowDataset(replay_cache, "all", seq_len=64, augment=True, seed=3)
    aug.set_epoch(2), again.set_epoch(2)
    # Windows inside a long spinner have every position at the centre (all zeros): nothing to mirror there.
    moving = [i for i in range(0, len(plain), 7) if float(plain[i]["features"][:, :2].abs().sum()) > 0]
    for i in moving[:4]:
        a, b, p = aug[i], again[i], plain[i]
        assert all(torch.equal(a[k], b[k]) for k in a)
        # A mirror flips the offset and every x (or y) feature by one sign.
        for channel, suffixes in ((0, ("_x", "_dx", "_vx")), (1, ("_y", "_dy", "_vy"))):
            columns = [j for j, n in enumerate(MODEL_FEATURE_NAMES) if n.endswith(suffixes)]
            flips = [
                sign
                for sign in (1.0, -1.0)
                if torch.allclose(a["features"][:, columns], sign * p["features"][:, columns])
                and torch.allclose(a["x0"][:, channel], sign * p["x0"][:, channel])
            ]
            assert len(flips) == 1
        assert torch.equal(a["x0"][:, 2:], p["x0"][:, 2:]), "keys do not mirror"
    # A different epoch draws different augmentation.
    aug.set_epoch(3)
    assert any(not torch.equal(aug[i]["features"], again[i]["features"]) for i in range(8))


def test_collate_puts_the_batch_on_the_training_device(replay_cache):
    # train.py hands collate the accelerator's device; on a GPU a batch left on the CPU fails the first step.
    dataset = ReplayWindowDataset(replay_cache, "all", seq_len=70)
    items = [dataset[i] for i in (0, len(dataset) - 1)]
    on_cpu, elsewhere = collate(items), collate(items, "meta")
    assert set(on_cpu) == set(elsewhere)
    for key, value in elsewhere.items():
        assert value.device.type == "meta" and value.shape == on_cpu[key].shape and on_cpu[key].device.type == "cpu"


def test_tiny_replay_dit_forward_backward_on_a_real_window(replay_cache):
    dataset = ReplayWindowDataset(replay_cache, "all", seq_len=70, augment=True)  # 70: not a multiple of the patch
    players = dataset.num_classes
    model = ReplayDiT(ReplayDiTConfig(**{**TINY.to_dict(), "num_classes": players}))
    batch = collate([dataset[i] for i in (0, len(dataset) - 1)])
    kwargs = {"features": batch["features"], "time_ms": batch["time_ms"], "player": batch["player"]}
    out = diffusion.training_losses(
        model, batch["x0"], kwargs, batch["mask"], generator=torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    # Padded ticks change nothing on the real ones, and the output keeps the input's shape.
    model.eval()
    x = torch.randn(1, 70, 4)
    t = torch.tensor([0.5])
    one = {k: v[:1] for k, v in batch.items()}
    real = int(one["mask"].sum())
    with torch.no_grad():
        full = model(x, t, features=one["features"], time_ms=one["time_ms"], player=one["player"], mask=one["mask"])
        cut = model(x[:, :real], t, features=one["features"][:, :real], time_ms=one["time_ms"][:, :real],
                    player=one["player"], mask=one["mask"][:, :real])  # fmt: skip
    assert full.shape == x.shape
    assert torch.allclose(full[:, :real], cut, atol=1e-5)


TRAIN_ARGS = ["--task", "replay", "--model", "DiT-T", "--global-batch-size", "4", "--seq-len", "64", "--log-every",
              "1", "--val-every", "2", "--no-tensorboard", "--warmup-steps", "1", "--val-percent", "0"]  # fmt: skip


def test_train_replay_task_runs_and_resumes_to_the_same_weights(replay_cache, tmp_path):
    # The fixture cache holds one replay without its map: a third of the windows are its, on a pseudo-map.
    common = [*TRAIN_ARGS, "--data-path", str(replay_cache), "--max-steps", "2", "--ckpt-every", "1",
              "--unpaired-share", "0.3"]  # fmt: skip
    assert train.cli([*common, "--results-dir", str(tmp_path / "a")]) == 0
    first = tmp_path / "a" / "checkpoints" / "step_0000001.pt"
    assert train.cli([*common, "--results-dir", str(tmp_path / "b"), "--resume", str(first)]) == 0
    straight = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000002.pt")
    resumed = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_0000002.pt")
    assert straight["config"]["model"] == "ReplayDiT"
    assert straight["extra"]["players"]["players"], "the player table travels with the weights"
    assert straight["extra"]["run"]["unpaired_share"] == 0.3
    for key in ("model_state", "ema_state"):
        for name, value in straight[key].items():
            assert torch.equal(value, resumed[key][name]), f"{key}.{name} differs after resume"
    assert any(not torch.equal(v, straight["model_state"][k]) for k, v in load_checkpoint(first)["model_state"].items())


def test_the_reference_path_trained_on_travels_with_the_checkpoint(replay_cache, tmp_path):
    common = [*TRAIN_ARGS, "--data-path", str(replay_cache), "--max-steps", "1", "--ckpt-every", "1"]
    for kind in REFERENCE_KINDS:
        assert train.cli([*common, "--results-dir", str(tmp_path / kind), "--reference", kind]) == 0
        ckpt = load_checkpoint(tmp_path / kind / "checkpoints" / "step_0000001.pt")
        assert ckpt["extra"]["data_stats"]["reference"] == kind  # sampling reads the path it was trained on


def test_train_replay_task_refuses_a_folder_that_is_no_replay_cache(tmp_path, capsys):
    from tests.conftest import FIXTURES

    args = [*TRAIN_ARGS, "--data-path", str(FIXTURES / "songs"), "--results-dir", str(tmp_path), "--max-steps", "1"]
    assert train.cli(args) == 2
    err = capsys.readouterr().err
    assert "not a replay cache" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "checkpoints").exists()
