import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from data.beatmap.codec import encode
from data.beatmap.datapoints import AIM_TYPES, PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH
from data.beatmap.osu_reader import read_beatmap
from data.cache import STYLES_FILE
from data.position_io import (
    POSITION_CENTER,
    POSITION_SCALE,
    TURN_MIN_LEG,
    TURN_SCALE,
    denormalize_positions,
    full_map_sample,
    normalize_positions,
    turn_channels,
)
from data.prepare import prepare
from data.spans import window_starts
from data.style_features import STYLE_FEATURE_DIM
from data.windows import WindowDataset, load_cache

SEQ_LEN = 32
STRIDE = 16


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = Path(__file__).resolve().parent / "fixtures" / "songs"
    out = tmp_path_factory.mktemp("cache")
    prepare([root], out, workers=1, progress=False)
    return out


def both_splits(cache: Path, **kwargs) -> list[WindowDataset]:
    loaded = load_cache(cache)
    return [WindowDataset(loaded, split, SEQ_LEN, STRIDE, **kwargs) for split in ("train", "val")]


def test_positions_normalize_into_unit_box_and_back():
    corners = np.array([[0, 0], [PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT], list(POSITION_CENTER)], np.float32)
    normalized = normalize_positions(corners)
    assert np.abs(normalized).max() < 1 and np.allclose(normalized[2], 0)
    assert np.allclose(denormalize_positions(normalized), corners)


def test_window_starts_cover_every_datapoint():
    for n in (1, 31, 32, 33, 100, 129):
        starts = window_starts(n, SEQ_LEN, STRIDE)
        covered = set()
        for s in starts:
            covered.update(range(s, min(s + SEQ_LEN, n)))
        assert covered == set(range(n)) and starts[0] == 0


def test_every_map_is_windowed_and_short_maps_are_padded_and_masked(cache: Path):
    table, _, arrays = load_cache(cache)
    datasets = both_splits(cache, augment=False)
    assert sum(len(d.table) for d in datasets) == len(table)
    short = table.loc[table["n_datapoints"].idxmin()]
    assert short["n_datapoints"] < SEQ_LEN
    dataset = next(d for d in datasets if short["md5"] in set(d.table["md5"]))
    index = next(i for i, (m, _) in enumerate(dataset._windows) if dataset._md5s[m] == short["md5"])
    sample = dataset[index]
    n = int(short["n_datapoints"])
    assert sample["mask"].tolist() == [True] * n + [False] * (SEQ_LEN - n)
    assert sample["position"].shape == (SEQ_LEN, 2) and sample["kind"].shape == (SEQ_LEN,)
    assert torch.all(sample["position"][n:] == 0) and torch.all(sample["time_ms"][n:] == 0)
    datapoints = arrays[short["md5"]]
    assert np.allclose(denormalize_positions(sample["position"][:n].numpy()), datapoints.position, atol=1e-3)
    assert np.allclose(sample["time_ms"][:n].numpy(), datapoints.time_ms - datapoints.time_ms[0])
    assert sample["kind"][:n].tolist() == datapoints.kind.tolist()


def test_window_lengths_count_the_real_datapoints_of_each_window(cache: Path):
    for dataset in both_splits(cache, augment=False):
        lengths = dataset.window_lengths()
        assert lengths.tolist() == [int(dataset[i]["mask"].sum()) for i in range(len(dataset))]
    assert any((d.window_lengths() < SEQ_LEN).any() for d in both_splits(cache, augment=False))


def test_sample_fields_have_the_promised_types(cache: Path):
    sample = both_splits(cache)[0][0]
    expected = {
        "position": (torch.float32, (SEQ_LEN, 2)),
        "turns": (torch.float32, (SEQ_LEN, 2)),
        "time_ms": (torch.float32, (SEQ_LEN,)),
        "distance": (torch.float32, (SEQ_LEN,)),
        "kind": (torch.int64, (SEQ_LEN,)),
        "mask": (torch.bool, (SEQ_LEN,)),
        "style": (torch.int64, ()),
        "style_features": (torch.float32, (STYLE_FEATURE_DIM,)),
    }
    assert {k: (v.dtype, tuple(v.shape)) for k, v in sample.items()} == expected


def test_mirror_keeps_distances_and_only_flips_axes(cache: Path):
    train = both_splits(cache, augment=True)[0]
    plain = WindowDataset(load_cache(cache), "train", SEQ_LEN, STRIDE, augment=False)
    flips = set()
    for index in range(len(train)):
        a, b = train[index], plain[index]
        mask = b["mask"]
        assert torch.equal(a["distance"], b["distance"]) and torch.equal(a["mask"], mask)
        mirrors = [(sx, sy) for sx in (1, -1) for sy in (1, -1)]
        match = [m for m in mirrors if torch.allclose(a["position"][mask], b["position"][mask] * torch.tensor(m))]
        assert match, "augmented positions are not a mirror of the originals"
        flips.add(match[-1])
        # Mirroring about the playfield centre keeps the distance between consecutive points.
        steps_a = torch.linalg.norm(torch.diff(a["position"][mask], dim=0), dim=1)
        steps_b = torch.linalg.norm(torch.diff(b["position"][mask], dim=0), dim=1)
        assert torch.allclose(steps_a, steps_b, atol=1e-5)
        # Relative time is kept, absolute time is shifted.
        times = a["time_ms"][mask] - b["time_ms"][mask]
        assert torch.allclose(times, times[0].expand_as(times), atol=1e-2)
        # A mirror through one axis turns every turn the other way; through both, a half turn, it keeps them.
        sign = match[-1][0] * match[-1][1]
        torch.testing.assert_close(a["turns"], b["turns"] * torch.tensor([1.0, sign]), atol=1e-5, rtol=0)
    assert len(flips) == 4


def test_turn_channels_are_the_turns_at_jumps_of_the_aim_path(fixture_maps):
    datapoints = encode(read_beatmap(next(p for p in fixture_maps if "Aka no Ha" in p.name)))
    position = normalize_positions(datapoints.position)
    turns = turn_channels(position, datapoints.kind)
    hit = np.flatnonzero(np.isin(datapoints.kind, sorted(AIM_TYPES)))
    drawn = np.linalg.norm(turns, axis=1) > 0
    assert set(np.flatnonzero(drawn)) <= set(hit[1:-1].tolist())  # anchors and the path's ends draw none
    np.testing.assert_allclose(np.linalg.norm(turns[drawn], axis=1), TURN_SCALE, rtol=1e-5)
    checked = 0
    for before, here, after in zip(hit[:-2], hit[1:-1], hit[2:], strict=True):
        into, out = (position[here] - position[before]).astype(float), (position[after] - position[here]).astype(float)
        if min(np.linalg.norm(into), np.linalg.norm(out)) <= TURN_MIN_LEG:
            assert not drawn[here]
            continue
        cosine = into @ out / (np.linalg.norm(into) * np.linalg.norm(out))
        left = into[0] * out[1] - into[1] * out[0] > 0
        sine = np.sqrt(max(0.0, 1 - cosine**2)) * (1 if left else -1)
        np.testing.assert_allclose(turns[here] / TURN_SCALE, [cosine, sine], atol=1e-4)
        checked += 1
    assert checked > 50


def test_same_seed_same_sample_and_epochs_differ(cache: Path):
    first, again = both_splits(cache, seed=7)[0], both_splits(cache, seed=7)[0]
    for index in (0, len(first) - 1):
        assert all(torch.equal(first[index][k], again[index][k]) for k in first[index])
    before = [first[i]["time_ms"][0].item() for i in range(len(first))]
    first.set_epoch(1)
    after = [first[i]["time_ms"][0].item() for i in range(len(first))]
    assert before != after


def test_style_is_the_beatmap_or_the_mapper_class(cache: Path):
    table, styles, _ = load_cache(cache)
    train = both_splits(cache, augment=True)[0]
    chosen = {"beatmap": 0, "mapper": 0}
    for index in range(len(train)):
        map_index = int(train._windows[index][0])
        row = train.table.iloc[map_index]
        style = int(train[index]["style"])
        assert style in (row["style_class"], row["mapper_class"])
        chosen["mapper" if styles.is_mapper_class(style) else "beatmap"] += 1
    assert chosen["beatmap"] > 0 and chosen["mapper"] > 0
    plain = WindowDataset(load_cache(cache), "train", SEQ_LEN, STRIDE, augment=False)
    assert all(int(plain[i]["style"]) == plain.table.iloc[int(plain._windows[i][0])]["style_class"] for i in (0, 1))


def test_full_map_sample_is_the_whole_map(cache: Path):
    table, styles, arrays = load_cache(cache)
    row = table.loc[table["n_datapoints"].idxmax()]
    datapoints = arrays[row["md5"]]
    sample = full_map_sample(datapoints, int(row["style_class"]))
    assert sample["position"].shape == (len(datapoints), 2) and bool(sample["mask"].all())
    assert sample["time_ms"][0] == 0 and int(sample["style"]) == row["style_class"]
    assert np.allclose(sample["distance"] * POSITION_SCALE, datapoints.distance, atol=1e-3)


def test_stale_styles_file_is_rebuilt_from_the_table(cache: Path, tmp_path: Path):
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    _, styles, _ = load_cache(copy)
    (copy / STYLES_FILE).write_text(json.dumps({"fingerprint": "x", "styles": {"beatmaps": [], "mappers": []}}))
    _, rebuilt, _ = load_cache(copy)
    assert rebuilt == styles and len(rebuilt) > 1


def test_far_off_anchors_are_clipped_into_the_model_range(fixtures, tmp_path):
    # Legal troll maps put anchors millions of px off-screen; they must not reach the loss at that scale.
    from data.beatmap.codec import encode
    from data.beatmap.osu_reader import read_beatmap
    from data.position_io import full_map_sample
    from tests.bad_inputs import OSU_QUIRKS

    beatmap = read_beatmap(OSU_QUIRKS["far_off_anchor"](fixtures, tmp_path))
    datapoints = encode(beatmap)
    assert np.abs(datapoints.position).max() > 10_000
    sample = full_map_sample(datapoints, 0)
    assert np.abs(sample["position"]).max() <= 1.0
    assert sample["distance"].max() <= 4.0
