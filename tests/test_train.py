"""The training loop on real fixture maps: runs, checkpoints, and resumes to the same weights."""

import json
import subprocess
import sys

import pytest
import torch

import train
from data.prepare import prepare
from dit.checkpoint import load_checkpoint
from tests.tiny_checkpoints import TINY_MODEL_ARGS

TINY = [*TINY_MODEL_ARGS, "--log-every", "2", "--val-every", "4", "--warmup-steps", "2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory, request):
    from tests.conftest import FIXTURES

    out = tmp_path_factory.mktemp("cache")
    prepare([FIXTURES / "songs"], out, workers=1, progress=False)
    return out


def run(args):
    assert train.cli(args) == 0


def test_straight_and_resumed_runs_give_the_same_weights(cache, tmp_path):
    run(
        [
            *TINY,
            "--data-path",
            str(cache),
            "--results-dir",
            str(tmp_path / "a"),
            "--max-steps",
            "4",
            "--ckpt-every",
            "2",
        ]
    )
    run(
        [
            *TINY,
            "--data-path",
            str(cache),
            "--results-dir",
            str(tmp_path / "b"),
            "--max-steps",
            "4",
            "--ckpt-every",
            "2",
            "--resume",
            str(tmp_path / "a" / "checkpoints" / "step_0000002.pt"),
        ]
    )
    straight = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000004.pt")
    resumed = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_0000004.pt")
    assert resumed["train_state"]["step"] == 4
    for key in ("model_state", "ema_state"):
        for name, value in straight[key].items():
            assert torch.equal(value, resumed[key][name]), f"{key}.{name} differs after resume"
    # The run changed the weights: the comparison above is not between two untouched initialisations.
    first = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000002.pt")
    assert any(not torch.equal(v, straight["model_state"][k]) for k, v in first["model_state"].items())


def test_checkpoint_is_self_describing(cache, tmp_path):
    run([*TINY, "--data-path", str(cache), "--results-dir", str(tmp_path), "--max-steps", "2"])
    ckpt = torch.load(tmp_path / "checkpoints" / "step_0000002.pt", weights_only=True)
    assert ckpt["config"]["model"] == "PositionDiT"
    assert (
        ckpt["config"]["model_config"]["num_classes"]
        == len(ckpt["extra"]["styles"]["beatmaps"]) + len(ckpt["extra"]["styles"]["mappers"]) + 1
    )
    assert ckpt["extra"]["prediction"] in ("eps", "v")
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert any('"val_loss"' in line for line in lines) and any('"train_loss"' in line for line in lines)


def test_raw_folder_is_prepared_on_first_use(tmp_path):
    from tests.conftest import FIXTURES

    run([*TINY, "--data-path", str(FIXTURES / "songs"), "--results-dir", str(tmp_path), "--max-steps", "1"])
    assert (tmp_path / "cache" / "maps.csv").is_file()
    assert (tmp_path / "checkpoints" / "step_0000001.pt").is_file()


def test_bad_data_path_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--data-path",
            str(tmp_path / "missing"),
            "--results-dir",
            str(tmp_path / "r"),
            "--max-steps",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=train.Path(train.__file__).parent,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_style_classes_carry_their_maps_descriptors(cache, tmp_path):
    run([*TINY, "--data-path", str(cache), "--results-dir", str(tmp_path), "--max-steps", "1"])
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "step_0000001.pt")
    features = ckpt["ema_state"]["style_embedder.class_features"]
    assert features.shape[0] == ckpt["config"]["model_config"]["num_classes"]
    assert not features[0].any()  # the null class says nothing
    assert (features[1:].abs().sum(dim=1) > 0).float().mean() > 0.5


def test_turn_loss_weight_changes_the_objective_and_is_recorded(cache, tmp_path):
    args = [*TINY, "--data-path", str(cache), "--max-steps", "2", "--val-every", "2", "--log-every", "2"]
    run([*args, "--results-dir", str(tmp_path / "plain")])
    run([*args, "--results-dir", str(tmp_path / "turn"), "--turn-loss-weight", "0.3"])
    plain, turn = (
        [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        for name in ("plain", "turn")
    )
    plain_val = next(r for r in plain if "val_loss" in r)
    turn_val = next(r for r in turn if "val_loss" in r)
    assert "val_turn" not in plain_val and turn_val["val_turn"] > 0
    # Same data, noise and init: the turn term is the only difference, so the training loss grows by it.
    assert next(r["train_loss"] for r in turn if "train_loss" in r) > next(
        r["train_loss"] for r in plain if "train_loss" in r
    )
    ckpt = load_checkpoint(tmp_path / "turn" / "checkpoints" / "step_0000002.pt")
    assert ckpt["extra"]["run"]["turn_loss_weight"] == 0.3


@pytest.mark.parametrize("extra", [["--turn-loss-weight", "-1"], ["--task", "replay", "--turn-loss-weight", "0.3"]])
def test_turn_loss_weight_is_refused_where_it_means_nothing(tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as err:
        train.parse_args(["--data-path", str(tmp_path), *extra])
    assert err.value.code == 2 and "--turn-loss-weight" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--task", "replay", "--unpaired-share", "1"], ["--unpaired-share", "0.5"]])
def test_unpaired_share_is_refused_where_it_means_nothing(tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as err:
        train.parse_args(["--data-path", str(tmp_path), *extra])
    assert err.value.code == 2 and "--unpaired-share" in capsys.readouterr().err


def test_a_self_conditioned_run_resumes_exactly_and_its_checkpoint_says_so(cache, tmp_path):
    args = [*TINY, "--data-path", str(cache), "--self-condition", "--ckpt-every", "2"]
    run([*args, "--results-dir", str(tmp_path / "a"), "--max-steps", "4"])
    resume = str(tmp_path / "a" / "checkpoints" / "step_0000002.pt")
    run([*args, "--results-dir", str(tmp_path / "b"), "--max-steps", "4", "--resume", resume])
    straight = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000004.pt")
    resumed = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_0000004.pt")
    assert straight["config"]["model_config"]["self_condition"] is True
    assert "self_cond_embedder.weight" in straight["ema_state"]
    for key, value in straight["model_state"].items():
        assert torch.equal(value, resumed["model_state"][key]), key


@pytest.mark.parametrize("flag", ["--self-condition", "--turn-channels"])
def test_position_only_flags_are_refused_for_the_replay_task(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as err:
        train.parse_args(["--data-path", str(tmp_path), "--task", "replay", flag])
    assert err.value.code == 2 and flag in capsys.readouterr().err


def test_a_turn_channel_run_learns_four_channels_and_its_checkpoint_says_so(cache, tmp_path):
    run([*TINY, "--data-path", str(cache), "--turn-channels", "--results-dir", str(tmp_path), "--max-steps", "2"])
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "step_0000002.pt")
    config = ckpt["config"]["model_config"]
    assert config["turn_channels"] is True and config["in_channels"] == 4
    assert ckpt["ema_state"]["x_embedder.weight"].shape[1] == 4
    assert ckpt["ema_state"]["final_layer.linear.weight"].shape[0] == 4
