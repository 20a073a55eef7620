"""Can a classifier tell generated replays from human ones on the same maps? The project's two-sample judge
for replays.

    python sample.py --beatmap MAP --replay-only --mods MODS --output GEN/NAME.osr      # for each held-out map
    python testing/replay_discriminator.py --human corpus/replays --songs corpus/songs --generated GEN --output DIR

Generated replays are paired with their maps by the beatmap MD5 in the .osr header; every human replay of those
maps is the other side. Each replay is cut into 1-second windows of play time where an object is within reach,
and each window is described relative to its objects: frame timing (intervals, repeated positions, extra
frames at key events), motion (speed, rest, acceleration, tremor, how far paths bow off the straight line
between objects), aim at the press (offset from the object's centre, along and across the approach), timing
(hit error), keys (hold time, alternation, presses per object). A gradient-boosted classifier is scored with
folds grouped by map set: window accuracy and AUC, replay-level AUC, the most telling features, and the same
on the cursor alone (no frame timing, no keys). Controls: human against human, every paired human play under
--human with the map sets split by a seeded draw (~0.5), and the humans' cursor smoothed with a Gaussian (~1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.atomic import write_text_atomic  # noqa: E402
from data.beatmap.osu_reader import read_beatmap  # noqa: E402
from data.errors import BadInputError  # noqa: E402
from data.replay.gameplay import stacked_positions  # noqa: E402
from data.replay.mods import PlayBeatmap, apply_mods  # noqa: E402
from data.replay.osr import KEY1_BITS, KEY2_BITS, ReplayFrames, ReplayRecord, key_holds, read_replay  # noqa: E402
from testing.cli import main_of  # noqa: E402
from testing.map_discriminator import judge  # noqa: E402
from testing.replay_judge import maps_by_md5  # noqa: E402

WINDOW_MS = 1000.0
REACH_MS = 1000.0  # a window is kept when an object is this close ahead or behind (as replay training windows)
UNIFORM_MS = 4.0  # motion features resample the cursor this finely
TREMOR_SIGMAS_MS = (10.0, 40.0)  # the band between two Gaussian smooths: roughly 5-15 Hz
REST_PX_PER_MS = 0.02
PRESS_REACH_MS = 200.0  # a press is aimed at the nearest object within this time
SMOOTH_CONTROL_MS = 30.0  # sigma of the smoothed-human control
TIMING_PREFIXES = ("ft_", "repeat_", "key_frame_", "frames_")
KEY_PREFIXES = ("hold_", "alternation", "presses_", "hit_error")


def _gaussian(values: np.ndarray, sigma_samples: float) -> np.ndarray:
    radius = max(int(3 * sigma_samples), 1)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_samples) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def smoothed(frames: ReplayFrames, sigma_ms: float = SMOOTH_CONTROL_MS) -> ReplayFrames:
    """The same frames with the cursor smoothed by a Gaussian in time (the control that must be told apart)."""
    t = frames.time_ms
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    sigma = sigma_ms / max(step, 1.0)
    x = _gaussian(frames.x.astype(np.float64), sigma).astype(np.float32)
    y = _gaussian(frames.y.astype(np.float64), sigma).astype(np.float32)
    return ReplayFrames(t, x, y, frames.keys)


def _stats(prefix: str, values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {f"{prefix}_mean": np.nan, f"{prefix}_std": np.nan}
    return {f"{prefix}_mean": float(values.mean()), f"{prefix}_std": float(values.std())}


def window_features(play: PlayBeatmap, frames: ReplayFrames) -> pd.DataFrame:
    """One row per 1-second window of play time with an object within reach (see the module doc)."""
    objects = play.hit_objects
    if not objects or len(frames) < 10:
        return pd.DataFrame()
    t = np.asarray(frames.time_ms, np.float64) / play.rate
    x, y = frames.x.astype(np.float64), frames.y.astype(np.float64)
    k1, k2 = (frames.keys & KEY1_BITS) != 0, (frames.keys & KEY2_BITS) != 0
    radius = play.radius_px
    heads = stacked_positions(play)
    starts = np.array([o.time_ms for o in objects])
    ends = np.array([o.end_time_ms for o in objects])
    kinds = np.array([o.kind for o in objects])

    # Uniform resampling for motion: speed, rest, acceleration, tremor (frame timing must not leak in here).
    grid = np.arange(t[0], t[-1], UNIFORM_MS)
    gx, gy = np.interp(grid, t, x), np.interp(grid, t, y)
    speed = np.hypot(np.diff(gx), np.diff(gy)) / UNIFORM_MS
    accel = np.abs(np.diff(speed)) / UNIFORM_MS
    fine, coarse = (s / UNIFORM_MS for s in TREMOR_SIGMAS_MS)
    band = np.hypot(_gaussian(gx, fine) - _gaussian(gx, coarse), _gaussian(gy, fine) - _gaussian(gy, coarse))

    presses = []  # (time, key, hold ms, x, y)
    for key, down in ((1, k1), (2, k2)):
        for p, r in key_holds(down):
            release = t[r] if r < len(t) else t[-1]
            presses.append((t[p], key, release - t[p], x[p], y[p]))
    presses.sort()
    press = np.array(presses, np.float64).reshape(-1, 5)
    key_change = np.concatenate([[False], (k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1])])

    rows = []
    first = max(starts[0] - REACH_MS, t[0])
    last = min(ends.max() + REACH_MS, t[-1])
    for w0 in np.arange(first, last - WINDOW_MS, WINDOW_MS):
        w1 = w0 + WINDOW_MS
        in_objects = np.flatnonzero((starts < w1 + REACH_MS) & (ends > w0 - REACH_MS))
        if len(in_objects) == 0:
            continue
        fi = np.flatnonzero((t >= w0) & (t < w1))
        if len(fi) < 5:
            continue
        row = {}
        dt = np.diff(t[fi])
        moved = np.hypot(np.diff(x[fi]), np.diff(y[fi]))
        row["frames_per_s"] = len(fi) / (WINDOW_MS / 1000.0)
        row["ft_median"] = float(np.median(dt))
        row["ft_std"] = float(dt.std())
        row["ft_iqr"] = float(np.subtract(*np.percentile(dt, [75, 25])))
        row["ft_max"] = float(dt.max())
        row["ft_short_share"] = float((dt < 8).mean())
        row["repeat_share"] = float((moved == 0).mean())
        # Screen pixels: a mouse cursor's steps are whole multiples of one quantum (see frame_timing.lattice).
        steps = np.abs(np.concatenate([np.diff(x[fi]), np.diff(y[fi])]))
        steps = steps[steps > 0.005]
        if len(steps) >= 5:
            quantum = max(float(steps.min()), 0.005)
            ratio = steps / quantum
            row["step_min_px"] = quantum
            row["step_lattice_share"] = float((np.abs(ratio - np.round(ratio)) * quantum < 0.01).mean())
        row["key_frame_short_share"] = float(((dt < 8) & key_change[fi[1:]]).sum() / max(key_change[fi].sum(), 1))

        gi = slice(int((w0 - grid[0]) / UNIFORM_MS), int((w1 - grid[0]) / UNIFORM_MS))
        s, a = speed[gi], accel[gi]
        if len(s) < 10:
            continue
        row["speed_mean"] = float(s.mean())
        row["speed_p90"] = float(np.percentile(s, 90))
        row["speed_max"] = float(s.max())
        row["rest_share"] = float((s < REST_PX_PER_MS).mean())
        row["accel_mean"] = float(a.mean())
        row["accel_p90"] = float(np.percentile(a, 90))
        row["tremor_px"] = float(np.sqrt((band[gi] ** 2).mean()))
        row["tremor_per_speed"] = row["tremor_px"] / (row["speed_mean"] + 0.05)

        # How far the path bows off the straight line from one object's end to the next one's head (radii).
        bows = []
        for i in in_objects:
            if i + 1 >= len(objects) or kinds[i + 1] == "spinner":
                continue
            a0, a1 = ends[i], starts[i + 1]
            if a1 - a0 < 30 or a0 < w0 or a1 > w1:
                continue
            p0 = np.array(objects[i].end_position) + (heads[i] - [objects[i].x, objects[i].y])
            p1 = heads[i + 1]
            leg = p1 - p0
            length = np.hypot(*leg)
            if length < 2 * radius:
                continue
            leg_t = np.linspace(a0, a1, 12)
            cx, cy = np.interp(leg_t, t, x) - p0[0], np.interp(leg_t, t, y) - p0[1]
            bows.append(np.abs(cx * leg[1] - cy * leg[0]).max() / length / radius)
        row["path_bow_radii"] = float(np.mean(bows)) if bows else np.nan

        # Aim and timing at each press, against the nearest object in time.
        pi = np.flatnonzero((press[:, 0] >= w0) & (press[:, 0] < w1)) if len(press) else np.array([], int)
        offsets, along, across, errors = [], [], [], []
        for j in pi:
            pt = press[j, 0]
            near = np.flatnonzero((np.abs(starts - pt) < PRESS_REACH_MS) & (kinds != "spinner"))
            if len(near) == 0:
                continue
            i = near[np.argmin(np.abs(starts[near] - pt))]
            d = press[j, 3:5] - heads[i]
            offsets.append(np.hypot(*d) / radius)
            errors.append(pt - starts[i])
            if i > 0:
                approach = heads[i] - heads[i - 1]
                norm = np.hypot(*approach)
                if norm > radius:
                    u = approach / norm
                    along.append(float(d @ u) / radius)
                    across.append(abs(float(d[0] * u[1] - d[1] * u[0])) / radius)
        row.update(_stats("aim_offset", offsets))
        row.update(_stats("aim_along", along))
        row.update(_stats("aim_across", across))
        row.update(_stats("hit_error", errors))
        row.update(_stats("hold_ms", press[pi, 2] if len(pi) else []))
        keys_used = press[pi, 1] if len(pi) else np.array([])
        row["alternation"] = float((np.diff(keys_used) != 0).mean()) if len(keys_used) > 1 else np.nan
        clickable = np.flatnonzero((starts >= w0) & (starts < w1) & (kinds != "spinner"))
        row["presses_per_object"] = len(pi) / len(clickable) if len(clickable) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def play_of(record: ReplayRecord, osu_path: Path, plays: dict) -> PlayBeatmap:
    """The record's map with its mods, cached in `plays` by (map path, mods)."""
    key = (str(osu_path), record.mods)
    if key not in plays:
        plays[key] = apply_mods(read_beatmap(osu_path), record.mods)
    return plays[key]


def read_records(items: list[Path], skipped: list[str]) -> list[ReplayRecord]:
    """Every readable .osr under the files/folders; the unreadable ones are counted in `skipped`."""
    records = []
    for item in items:
        if not item.exists():
            raise BadInputError(item, "no such file or folder")
        for path in sorted(item.rglob("*.osr")) if item.is_dir() else [item]:
            try:
                records.append(read_replay(path))
            except BadInputError as err:
                skipped.append(str(err))
    return records


def run(args: argparse.Namespace) -> dict:
    maps = maps_by_md5(args.songs)
    skipped: list[str] = []
    generated = []
    for record in read_records(args.generated, skipped):
        if record.beatmap_md5 in maps:
            generated.append(record)
        else:
            skipped.append(f"{record.path}: its map is not under --songs")
    wanted = {r.beatmap_md5 for r in generated}
    humans = [r for r in read_records(args.human, skipped) if r.beatmap_md5 in maps]
    human = [r for r in humans if r.beatmap_md5 in wanted]
    others = [r for r in humans if r.beatmap_md5 not in wanted]
    if not generated or not human:
        raise BadInputError(args.generated[0], "needs generated replays and human replays of the same maps")
    plays: dict = {}
    samples = {"generated": [], "human": [], "smoothed": [], "other_human": []}
    for side, items in (("generated", generated), ("human", human), ("other_human", others)):
        for record in items:
            osu = maps[record.beatmap_md5]
            play = play_of(record, osu, plays)
            group = osu.resolve().parent.name
            samples[side].append((window_features(play, record.frames), group))
            if side == "human":
                samples["smoothed"].append((window_features(play, smoothed(record.frames)), group))
    rng = np.random.default_rng(args.seed)
    columns = [c for c in samples["human"][0][0].columns]
    cursor_only = [c for c in columns if not c.startswith(TIMING_PREFIXES + KEY_PREFIXES)]
    no_timing = [c for c in columns if not c.startswith(TIMING_PREFIXES)]

    def labelled(other: str) -> list:
        return [(f, 0, g) for f, g in samples["human"]] + [(f, 1, g) for f, g in samples[other]]

    groups = sorted({g for _, g in samples["human"]})
    # Human against human over every paired human play (few groups would tilt a grouped judge below 0.5).
    every_human = samples["human"] + samples["other_human"]
    side = {g: int(rng.integers(2)) for g in sorted({g for _, g in every_human})}
    summary = {
        "generated_vs_human": judge(labelled("generated"), seed=args.seed, balanced=True),
        "generated_vs_human_without_frame_timing": judge(labelled("generated"), no_timing, args.seed, balanced=True),
        "generated_vs_human_cursor_only": judge(labelled("generated"), cursor_only, args.seed, balanced=True),
        "control_human_vs_human": judge([(f, side[g], g) for f, g in every_human], seed=args.seed, balanced=True)
        if len(set(side.values())) == 2
        else "needs human plays of at least two map sets on each side",
        "control_smoothed_human_vs_human": judge(labelled("smoothed"), seed=args.seed, balanced=True),
        "replays": {
            "generated": len(generated),
            "human": len(human),
            "map_sets": len(groups),
            "other_human": len(others),
        },
        "means": {
            name: pd.concat([f for f, _ in items], ignore_index=True).median(numeric_only=True).round(4).to_dict()
            for name, items in samples.items()
            if items
        },
        "skipped": skipped,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output / "replay_discriminator.json", json.dumps(summary, indent=2) + "\n")
    return summary


def report(summary: dict) -> str:
    lines = [f"replays: {summary['replays']}"]
    for name, result in summary.items():
        if isinstance(result, dict) and "window_accuracy" in result:
            top = ", ".join(f"{k} {v[0]} ({v[1]} vs {v[2]})" for k, v in list(result["top_features"].items())[:5])
            lines.append(
                f"{name}: window accuracy {result['window_accuracy']:.3f}, AUC {result['window_auc']:.3f}, "
                f"replay AUC {result['map_auc']:.3f} ({result['maps']} replays, {result['windows']} windows); "
                f"top features (share, mean human vs other): {top}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--human", type=Path, nargs="+", required=True, help="human .osr files or folders")
    p.add_argument("--songs", type=Path, nargs="+", required=True, help="folders with the maps (found by MD5)")
    p.add_argument("--generated", type=Path, nargs="+", required=True, help="generated .osr files or folders")
    p.add_argument("--output", type=Path, required=True, help="folder for replay_discriminator.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the human/human split and the classifier")
    p.add_argument("--debug", action="store_true", help="re-raise errors with a traceback")
    return p.parse_args(argv)


main = main_of(parse_args, run, report)


if __name__ == "__main__":
    sys.exit(main())
