"""The evaluation metrics on real fixture maps, and testing/evaluate.py end to end with a tiny trained checkpoint."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from testing import evaluate, map_judge, metrics

RED_GOOSE = "Red Goose (nold_1702) [ERT Basic].osu"
ROCKET = "Rocket (Moyashimon ED) (flakmonkey) [Insane].osu"


def _map(fixture_maps, name):
    return next(p for p in fixture_maps if p.name.endswith(name))


# ---------------------------------------------------------------- metrics on real maps


def test_turning_angles_equal_a_direct_computation(fixture_maps):
    path = _map(fixture_maps, ROCKET)
    objects = map_judge.slider_objects(path.read_text(encoding="utf-8-sig"))
    assert objects is not None and len(objects) == 203
    segments = metrics.aim_segments(objects)
    expected = []
    for points in segments:
        for a, b, c in zip(points[:-2], points[1:-1], points[2:], strict=True):
            into, out = math.dist(a, b), math.dist(b, c)
            if into > metrics.JUMP_PX and out > metrics.JUMP_PX:
                heading_in = math.atan2(b[1] - a[1], b[0] - a[0])
                heading_out = math.atan2(c[1] - b[1], c[0] - b[0])
                turn = abs(heading_out - heading_in) % (2 * math.pi)
                expected.append(min(turn, 2 * math.pi - turn))
    angles = metrics.path_turning_angles(segments)
    assert len(angles) == len(expected) > 30
    np.testing.assert_allclose(angles, expected, atol=1e-6)
    assert np.all((angles >= 0) & (angles <= math.pi))


def test_wasserstein_is_zero_on_itself_and_a_shift_on_a_shift(fixture_maps):
    objects = map_judge.slider_objects(_map(fixture_maps, ROCKET).read_text(encoding="utf-8-sig"))
    angles = metrics.path_turning_angles(metrics.aim_segments(objects))
    assert metrics.wasserstein_1d(angles, angles) == 0.0
    assert metrics.wasserstein_1d(angles, angles + 0.25) == pytest.approx(0.25)
    # Order and duplication do not change a distribution.
    assert metrics.wasserstein_1d(angles[::-1], np.concatenate([angles, angles])) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(metrics.wasserstein_1d(angles, np.zeros(0)))


def test_random_walk_keeps_the_spacing_and_turns_unlike_the_map(fixture_maps):
    objects = map_judge.slider_objects(_map(fixture_maps, ROCKET).read_text(encoding="utf-8-sig"))
    segments = metrics.aim_segments(objects)
    rng = np.random.default_rng(0)
    walks = [metrics.random_walk(s, rng) for s in segments]
    for source, walk in zip(segments, walks, strict=True):
        np.testing.assert_allclose(metrics.leg_lengths(walk), metrics.leg_lengths(source), atol=1e-9)
        np.testing.assert_array_equal(walk[0], source[0])
    assert metrics.median_spacing_error_px(segments, walks) == pytest.approx(0.0, abs=1e-9)
    source_turns = metrics.path_turning_angles(segments)
    assert metrics.wasserstein_1d(metrics.path_turning_angles(walks), source_turns) > 0.05
    again = [metrics.random_walk(s, np.random.default_rng(0)) for s in segments[:1]]
    np.testing.assert_array_equal(again[0], walks[0])  # seeded: the same walk again


def test_rhythm_problems_find_a_moved_object(fixture_maps):
    path = _map(fixture_maps, RED_GOOSE)
    objects = map_judge.slider_objects(path.read_text(encoding="utf-8-sig"))
    assert metrics.rhythm_problems(objects, objects) == []
    text = path.read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    first = lines.index(next(line for line in lines if line.startswith("[HitObjects]"))) + 1
    fields = lines[first].split(",")
    fields[2] = str(int(fields[2]) + 5)  # 5 ms late: over the 2 ms tolerance
    lines[first] = ",".join(fields)
    moved = map_judge.slider_objects("\n".join(lines))
    problems = metrics.rhythm_problems(objects, moved)
    assert len(problems) == 1 and "moved" in problems[0]


def test_slider_fault_falls_back_to_our_reader(fixture_maps):
    # This fixture has no [Metadata] section, which the slider library refuses.
    path = next(p for p in fixture_maps if p.parent.name == "14b9a6706b8f")
    assert map_judge.slider_objects(path.read_text(encoding="utf-8-sig")) is None
    data = path.read_bytes()
    row = map_judge.judge_pair(path.read_text(encoding="utf-8-sig"), data, data.decode("utf-8-sig"), data)
    assert row["reader"] == "ours" and row["valid"] and row["rhythm_kept"]
    assert row["turning_w1"] == 0.0 and row["median_spacing_error_px"] == 0.0 and row["star_error"] == 0.0


# ---------------------------------------------------------------- evaluate.py end to end


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    import train
    from data.prepare import prepare
    from tests.conftest import FIXTURES

    root = tmp_path_factory.mktemp("tiny")
    prepare([FIXTURES / "songs"], root / "cache", workers=1, progress=False)
    args = ["--model", "DiT-T", "--global-batch-size", "4", "--seq-len", "32", "--no-tensorboard"]
    args += ["--warmup-steps", "1", "--max-steps", "2", "--data-path", str(root / "cache")]
    assert train.cli([*args, "--results-dir", str(root / "run")]) == 0
    return root / "run" / "checkpoints" / "step_0000002.pt"


def test_evaluate_two_maps_keeps_rhythm_and_writes_every_file(tmp_path, fixture_maps, tiny_ckpt, capsys):
    inputs = [_map(fixture_maps, RED_GOOSE), _map(fixture_maps, ROCKET)]
    bad = tmp_path / "taiko.osu"
    bad.write_bytes(inputs[0].read_bytes().replace(b"Mode: 0", b"Mode: 1"))
    out = tmp_path / "eval"
    argv = ["--input", *map(str, inputs), str(bad), "--output", str(out), "--ckpt", str(tiny_ckpt)]
    assert evaluate.main([*argv, "--num-sampling-steps", "2"]) == 0
    table = pd.read_csv(out / "evaluation.csv")
    assert list(table.columns) == evaluate.COLUMNS
    assert len(table) == 2
    # The codec keeps rhythm whatever the model's quality, so this holds even for an untrained model.
    assert table["valid"].all() and table["same_object_count"].all() and table["rhythm_kept"].all()
    assert table["objects"].tolist() == [102, 203]
    assert table["reader"].tolist() == ["slider", "slider"]
    assert ((table["inside_playfield_share"] > 0) & (table["inside_playfield_share"] <= 1)).all()
    assert (table["random_walk_w1"] > 0).all() and (table["stars_output"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["maps"] == 2 and summary["skipped"] == 1 and str(bad) in summary["skipped_lines"][0]
    assert summary["checks"]["rhythm_kept_everywhere"] and summary["checks"]["all_valid"]
    for name in ("turning_angles.png", "spacing_error.png", "star_ratings.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "maps").rglob("*.osu"))) == 2
    assert not list(out.rglob("*.tmp")), "atomic writes leave no temp files"
    err = capsys.readouterr().err
    assert err.count("skipped") == 1 and "Traceback" not in err
    # Same seed, same files.
    first = (out / "evaluation.csv").read_text()
    assert evaluate.main([*argv, "--num-sampling-steps", "2"]) == 0
    again = pd.read_csv(out / "evaluation.csv").drop(columns="remap_s")
    pd.testing.assert_frame_equal(pd.read_csv(pd.io.common.StringIO(first)).drop(columns="remap_s"), again)


def test_compare_styles_remaps_with_both_styles(tmp_path, fixture_maps, tiny_ckpt):
    from pipeline.remap import load_position_model

    _, _, styles = load_position_model(tiny_ckpt)
    ids = [b["beatmap_id"] for b in styles.to_dict()["beatmaps"] if b["beatmap_id"]][:2]
    assert len(ids) == 2
    out = tmp_path / "styles"
    argv = ["--input", str(_map(fixture_maps, RED_GOOSE)), "--output", str(out), "--ckpt", str(tiny_ckpt)]
    # Style B by example: any .osu, known to the checkpoint or not.
    reference = next(p for p in fixture_maps if "Natsukoi" in p.name)
    assert evaluate.main([*argv, "--compare-styles", str(ids[0]), str(reference), "--num-sampling-steps", "2"]) == 0
    assert len(list((out / "maps").glob(f"*(style {ids[0]}).osu"))) == 1
    assert len(list((out / "maps").glob("*.osu"))) == 2
    table = pd.read_csv(out / "compare_styles.csv")
    assert len(table) == 1 and table["rhythm_kept_a"].all() and table["rhythm_kept_b"].all()
    row = table.iloc[0]
    assert row["turn_difference_rad"] == pytest.approx(row["mean_turn_a_rad"] - row["mean_turn_b_rad"], abs=1e-5)
    assert json.loads((out / "compare_styles.json").read_text())["maps"] == 1


def test_unknown_style_is_one_line_and_exit_2(tmp_path, fixture_maps, tiny_ckpt, capsys):
    argv = ["--input", str(fixture_maps[0]), "--output", str(tmp_path / "o"), "--ckpt", str(tiny_ckpt)]
    assert evaluate.main([*argv, "--style-id", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--style-id 1" in err
    assert not (tmp_path / "o" / "evaluation.csv").exists()


# ---------------------------------------------------------------- replay_eval


@pytest.fixture(scope="module")
def replay_table():
    from testing import replay_judge
    from tests.conftest import FIXTURES

    maps = replay_judge.maps_by_md5([FIXTURES / "songs"])
    pairs = replay_judge.pair_replays([FIXTURES / "replays"], maps)
    assert len(pairs) == 4 and sum(osu is not None for _, osu in pairs) == 3
    return replay_judge.evaluate_replays(pairs, "human")


def test_replay_eval_reproduces_header_counts_and_reads_circleguard(replay_table):
    paired = replay_table[replay_table["map"] != ""]
    assert len(paired) == 3
    assert paired["judge_matches_header"].astype(bool).all()
    for _, row in paired.iterrows():
        assert (row["judge_300"], row["judge_100"], row["judge_miss"]) == (
            row["header_300"],
            row["header_100"],
            row["header_miss"],
        )
        # circleguard judges heads only: one judgment per circle or slider, spinners left out.
        assert 0 < row["cg_300"] + row["cg_100"] + row["cg_50"] + row["cg_miss"] <= row["objects"]
        assert 0.5 < row["accuracy"] <= 1 and row["unstable_rate"] > 0 and row["snaps"] >= 0
        assert 10 < row["frame_time_ms"] < 20  # stable records about 60 frames a second of real time
        assert 0.8 < row["presses_per_object"] < 1.5
    unpaired = replay_table[replay_table["map"] == ""].iloc[0]
    assert np.isnan(unpaired["accuracy"]) and unpaired["presses"] > 0 and unpaired["speed_median_px_per_ms"] > 0
    assert paired["in_band"].any(), "real plays of the fixtures sit in the human band"


def test_key_presses_are_rising_edges(fixtures):
    from data.replay.osr import KEY1_BITS, KEY2_BITS, read_replay
    from testing import replay_judge

    record = read_replay(sorted((fixtures / "replays").glob("*.osr"))[0])
    presses, holds = replay_judge.key_presses(record.frames, record.rate)
    expected = 0
    for bits in (KEY1_BITS, KEY2_BITS):
        down = [(k & bits) != 0 for k in record.frames.keys.tolist()]
        expected += sum(1 for i, d in enumerate(down) if d and (i == 0 or not down[i - 1]))
    assert presses == expected == len(holds) and np.all(holds >= 0)


def test_style_distance_is_zero_on_itself(replay_table):
    dists = replay_table.attrs["distributions"]
    paths = [p for p in replay_table["replay"] if len(dists[p]["hit_errors"])]
    from testing import replay_judge

    assert replay_judge.style_distance(dists[paths[0]], dists[paths[0]]) == 0
    assert replay_judge.style_distance(dists[paths[0]], dists[paths[1]]) > 0


def test_auto_replay_is_perfect_and_fails_the_human_band(tmp_path, fixture_maps):
    import osrparse

    from testing import replay_judge

    osu = _map(fixture_maps, ROCKET)
    osr = replay_judge.write_auto_replay(osu, tmp_path / "auto.osr")
    raw = osrparse.Replay.from_path(osr)
    assert raw.count_miss == 0 and raw.count_100 == 0 and raw.count_300 == 203
    row = replay_judge.evaluate_replays([(osr, osu)], "auto").iloc[0]
    assert row["judge_matches_header"] and row["accuracy"] == 1.0
    assert row["unstable_rate"] < replay_judge.BAND["unstable_rate"][0]  # perfect timing is not human
    assert not row["in_band"]


def test_a_utf16_map_is_read_by_every_reader(fixture_maps):
    from data.beatmap.osu_reader import parse_beatmap

    text = _map(fixture_maps, RED_GOOSE).read_text(encoding="utf-8-sig")
    data = b"\xff\xfe" + text.encode("utf-16-le")
    beatmap = parse_beatmap(data)
    row = map_judge.judge_pair(beatmap.text, data, beatmap.text, data)
    assert row["reader"] == "slider" and row["valid"] and row["rhythm_kept"] and row["objects"] == 102
    assert row["stars_source"] > 0 and row["star_error"] == 0.0 and row["turning_w1"] == 0.0


def test_style_report_compares_a_sample_with_its_player_and_the_others(replay_table):
    from testing import replay_eval, replay_judge

    paired = replay_table[replay_table["map"] != ""]
    paired.attrs = replay_table.attrs
    sample, target = paired.iloc[[0]].copy(), paired.iloc[1]["player"]
    sample.attrs = replay_table.attrs
    report = replay_eval.style_report(sample, paired, as_player=target.upper())  # names match case-blind
    assert report["samples"] == 1
    row = report["rows"][0]
    dists = replay_table.attrs["distributions"]
    expected_own = replay_judge.style_distance(dists[sample.iloc[0]["replay"]], dists[paired.iloc[1]["replay"]])
    assert row["own"] == pytest.approx(expected_own) and row["others"] > 0
