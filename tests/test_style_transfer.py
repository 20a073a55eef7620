"""The shipped position checkpoint steers: the issue's style pair, on fixture maps with jump patterns to shape."""

import json

import pandas as pd

from testing import evaluate

JUMPY, FLOWING = "1849273", "668662"  # back-and-forth jumps (mean turn 2.24 rad) vs flowing (0.86 rad)


def test_shipped_checkpoint_turns_more_in_the_jumpy_style(tmp_path, fixture_maps):
    maps = [p for p in fixture_maps if "Aka no Ha" in p.name or "Red Goose" in p.name]
    assert len(maps) == 2
    out = tmp_path / "styles"
    argv = ["--input", *map(str, maps), "--output", str(out), "--compare-styles", JUMPY, FLOWING]
    assert evaluate.main(argv) == 0
    table = pd.read_csv(out / "compare_styles.csv")
    assert len(table) == 2 and table["rhythm_kept_a"].all() and table["rhythm_kept_b"].all()
    # The bar is 0.3 rad on every map; these two measured +1.31 and +1.13 with the shipped checkpoint.
    assert (table["turn_difference_rad"] >= 0.3).all(), table[["source", "turn_difference_rad"]]
    assert json.loads((out / "compare_styles.json").read_text())["steers_on_every_map"]


def test_no_style_asked_for_means_the_source_own_style(tmp_path, fixture_maps):
    import sample
    from data.beatmap.osu_reader import read_beatmap

    source = next(p for p in fixture_maps if "Aka no Ha" in p.name)
    common = ["--beatmap", str(source), "--no-progress", "--seed", "3"]
    runs = {
        "default": [],
        "by_example": ["--style-from", str(source), "--cfg-scale", "1"],
        "unconditional": ["--unconditional"],
    }
    maps = {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.osu"
        assert sample.main([*common, *extra, "--output", str(out)]) == 0
        maps[name] = read_beatmap(out)

    def points(beatmap):
        return [(h.x, h.y) for h in beatmap.hit_objects]

    # The default is style by example of the map itself at guidance 1: the same layout, named for what it is.
    assert points(maps["default"]) == points(maps["by_example"])
    assert maps["default"].version.endswith("(osu-dit own style)")
    assert maps["unconditional"].version.endswith("(osu-dit no style)")
    assert points(maps["default"]) != points(maps["unconditional"])
