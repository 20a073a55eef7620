"""testing/benchmark.py's train/sample/replay subcommands: arguments and result shapes (no timing assertions)."""

import json

from testing import benchmark


def _parse(argv):
    """The namespace main() would run, built through the same parser setup."""
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in benchmark.SUBCOMMANDS.values():
        add(subparsers, [common])
    return parser.parse_args(argv)


def test_subcommands_are_registered_with_the_issue_defaults():
    assert {"prepare", "train", "sample", "replay"} <= set(benchmark.SUBCOMMANDS)
    args = _parse(["train", "--json"])
    assert (args.model, args.batch_size, args.seq_len, args.json) == ("DiT-S", 32, 128, True)
    args = _parse(["sample", "--beatmap", "x.osu", "--ckpt", "c.pt", "--", "--num-sampling-steps", "4"])
    assert str(args.beatmap) == "x.osu" and args.sample_args[-2:] == ["--num-sampling-steps", "4"]


def test_train_reports_throughput_on_fixture_windows(capsys):
    argv = ["train", "--model", "DiT-T", "--batch-size", "2", "--seq-len", "16", "--steps", "1", "--warmup", "0"]
    assert benchmark.main([*argv, "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["train_datapoints_per_s"] > 0 and result["threads"] == 1
    assert result["reference_train_datapoints_per_s"] == benchmark.REFERENCE_TRAIN_DATAPOINTS_PER_S
    # Only full windows are timed (every token a real datapoint), as the reference trains; the fixture stubs of
    # 3-10 datapoints are shorter than 16 and show up as the padding training on this data would carry.
    assert result["windows_timed"] == "full"
    assert result["train_datapoints_per_s"] == result["train_tokens_per_s"]
    assert 0 < result["padding_share_in_training"] < 0.5


def test_replay_without_a_checkpoint_is_skipped_not_failed(tmp_path, fixture_maps, capsys):
    argv = ["replay", "--beatmap", str(fixture_maps[0]), "--replay-ckpt", str(tmp_path / "missing.pt"), "--json"]
    assert benchmark.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "missing.pt" in result["skipped"] and result["objects"] > 0
