"""Judge one remap against its source with readers independent of ours: the slider library (falling back to our
parser only when slider cannot read the source) and rosu-pp. Used by testing/evaluate.py."""

from __future__ import annotations

import datetime
import math
import warnings

import numpy as np
import pandas as pd

from data.beatmap.curves import end_point
from data.beatmap.osu_reader import parse_beatmap
from data.errors import BadInputError
from data.grid import grid_size, on_grid_share
from testing import metrics
from testing.metrics import MapObject

# ---------------------------------------------------------------- independent readers


def _ms(t: datetime.timedelta) -> float:
    return t.total_seconds() * 1000.0


def slider_objects(text: str) -> list[MapObject] | None:
    """The objects as the slider library reads them, or None when it cannot (its faults are caught here)."""
    try:
        import slider

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beatmap = slider.Beatmap.parse(text)
            # stacking=True moves positions in place (and differently on every call); read raw positions once.
            out = []
            for h in beatmap.hit_objects(stacking=False):
                x, y = float(h.position.x), float(h.position.y)
                if isinstance(h, slider.beatmap.Slider):
                    end = h.curve(1)
                    out.append(
                        MapObject(_ms(h.time), "slider", bool(h.new_combo), int(h.repeat), _ms(h.end_time), x, y,
                                  float(end.x), float(end.y))
                    )  # fmt: skip
                elif isinstance(h, slider.beatmap.Spinner):
                    out.append(MapObject(_ms(h.time), "spinner", bool(h.new_combo), 1, _ms(h.end_time), x, y, x, y))
                else:
                    t = _ms(h.time)
                    out.append(MapObject(t, "circle", bool(h.new_combo), 1, t, x, y, x, y))
            return out
    except Exception:  # numpy-2 Catmull fault, maps it cannot parse: the caller falls back
        return None


def our_objects(data: bytes) -> list[MapObject]:
    """The objects as our own parser reads them (used only where slider cannot read the source)."""
    out = []
    for h in parse_beatmap(data).hit_objects:
        end = end_point(h) if h.kind == "slider" and h.control_points else (h.x, h.y)
        slides = h.slides if h.kind == "slider" else 1
        out.append(MapObject(float(h.time_ms), h.kind, h.new_combo, slides, h.end_time_ms, h.x, h.y, *map(float, end)))
    return out


def rosu_read(data: bytes) -> tuple[float, int] | None:
    """(star rating, object count) from rosu-pp, or None when it cannot read the map."""
    try:
        import rosu_pp_py

        beatmap = rosu_pp_py.Beatmap(content=data)
        if beatmap.n_objects == 0:
            return None
        return float(rosu_pp_py.Difficulty().calculate(beatmap).stars), int(beatmap.n_objects)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # rosu-pp's Rust panics are BaseExceptions
        return None


# ---------------------------------------------------------------- judging one pair


def judge_pair(source_text: str, source_bytes: bytes, output_text: str, output_bytes: bytes, seed: int = 0) -> dict:
    """Every metric of one (source, remapped output) pair as a row (see testing/evaluate.COLUMNS)."""
    row: dict = {}
    src_slider, out_slider = slider_objects(source_text), slider_objects(output_text)
    if src_slider is not None and out_slider is not None:
        src, out, row["reader"] = src_slider, out_slider, "slider"
    else:  # measure with our parser; an output slider cannot read (but the source it can) is still invalid
        src, out, row["reader"] = our_objects(source_bytes), our_objects(output_bytes), "ours"
    row["slider_reads_output"] = out_slider is not None
    rosu_src, rosu_out = rosu_read(source_bytes), rosu_read(output_bytes)
    row["rosu_reads_output"] = rosu_out is not None
    # Valid: every independent reader that accepts the source accepts the output too.
    row["valid"] = bool((rosu_out is not None or rosu_src is None) and (out_slider is not None or src_slider is None))
    row["objects"] = len(src)
    counts_match = len(src) == len(out)
    if rosu_src is not None and rosu_out is not None:
        counts_match = counts_match and rosu_src[1] == rosu_out[1]
    row["same_object_count"] = counts_match
    problems = metrics.rhythm_problems(src, out)
    row["rhythm_kept"] = not problems
    row["rhythm_problems"] = len(problems)
    row["first_rhythm_problem"] = problems[0] if problems else ""

    row["inside_playfield_share"] = metrics.inside_playfield_share(metrics.aim_points(out))
    src_segments, out_segments = metrics.aim_segments(src), metrics.aim_segments(out)
    row["median_spacing_error_px"] = metrics.median_spacing_error_px(src_segments, out_segments)
    row["mean_spacing_source_px"] = metrics.mean_leg_px(src_segments)
    row["mean_spacing_output_px"] = metrics.mean_leg_px(out_segments)
    src_turns = metrics.path_turning_angles(src_segments)
    out_turns = metrics.path_turning_angles(out_segments)
    rng = np.random.default_rng(seed)
    walk_turns = metrics.path_turning_angles([metrics.random_walk(s, rng) for s in src_segments])
    row["jumps_source"], row["jumps_output"] = len(src_turns), len(out_turns)
    row["right_angles_source"] = metrics.right_angles(src_turns)
    row["right_angles_output"] = metrics.right_angles(out_turns)
    row["turning_w1"] = metrics.wasserstein_1d(out_turns, src_turns)
    row["random_walk_w1"] = metrics.wasserstein_1d(walk_turns, src_turns)
    row["turning_ratio"] = (
        row["turning_w1"] / row["random_walk_w1"] if row["random_walk_w1"] and row["random_walk_w1"] > 0 else math.nan
    )
    row["mean_turn_source_rad"] = float(src_turns.mean()) if len(src_turns) else math.nan
    row["mean_turn_output_rad"] = float(out_turns.mean()) if len(out_turns) else math.nan
    row["stars_source"] = rosu_src[0] if rosu_src else math.nan
    row["stars_output"] = rosu_out[0] if rosu_out else math.nan
    row["star_error"] = metrics.relative_error(row["stars_output"], row["stars_source"])
    # The editor grid of the source's circles and slider heads, and the share of the output's on it.
    src_hits = np.array([(o.x, o.y) for o in src if o.kind != "spinner"], np.float64).reshape(-1, 2)
    out_hits = np.array([(o.x, o.y) for o in out if o.kind != "spinner"], np.float64).reshape(-1, 2)
    row["source_grid_px"] = grid_size(src_hits) or 0
    row["output_on_source_grid"] = on_grid_share(out_hits, row["source_grid_px"]) if row["source_grid_px"] else math.nan
    # Kept for the plots, dropped before the CSV.
    row["_turns"] = (src_turns, out_turns, walk_turns)
    return row


def read_pairs(path) -> pd.DataFrame:
    """The (source, output) columns of testing/evaluate.py's evaluation.csv, for the judges that read it back."""
    try:
        return pd.read_csv(path)[["source", "output"]]
    except (OSError, ValueError, KeyError) as err:
        problem = f"not an evaluation table of testing/evaluate.py ({type(err).__name__})"
        raise BadInputError(path, problem) from None
