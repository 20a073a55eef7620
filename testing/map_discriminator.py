"""Can a classifier tell remaps from the maps they came from? The project's two-sample judge for maps.

    python testing/evaluate.py --input DIR --output EVAL                 # remaps the maps, writes evaluation.csv
    python testing/map_discriminator.py --evaluation EVAL/evaluation.csv --output DIR

Every map is cut into windows of WINDOW consecutive objects (spinners left out); each window is described by
what a remap may change (editor grid, crowding of non-neighbours, circles on slider bodies, slider shapes and
curve types, turns, use of the field) and, as a control, by what it must keep (rhythm and spacing). A
gradient-boosted classifier is scored with folds grouped by source map (a map and its remap always sit in the
same fold): window accuracy and AUC, map-level AUC, the most telling features. Controls: a random walk that
keeps each source's spacing (should be told apart), real against real with the maps split in two by a seeded
draw (~0.5), and the remaps on the rhythm and spacing features alone (~0.5: the remap keeps those).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.atomic import write_text_atomic  # noqa: E402
from data.beatmap.codec import decode, encode  # noqa: E402
from data.beatmap.curves import hit_object_path  # noqa: E402
from data.beatmap.osu_file import Beatmap  # noqa: E402
from data.beatmap.osu_reader import parse_beatmap, read_beatmap  # noqa: E402
from data.errors import BadInputError  # noqa: E402
from data.grid import GRID_SIZES_PX, on_grid_share  # noqa: E402
from data.replay.mods import circle_radius_px  # noqa: E402
from data.style_features import JUMP_PX, leg_turns  # noqa: E402
from testing.cli import main_of  # noqa: E402
from testing.map_judge import read_pairs  # noqa: E402
from testing.metrics import random_walk, right_angles  # noqa: E402

WINDOW = 8  # objects per window, as the judge
STRIDE = 4
FOLDS = 5
# Features a remap must keep (rhythm and spacing): a judge that tells maps apart on these alone found a bug.
KEPT_FEATURES = ("gap_mean_ms", "gap_std_ms", "leg_mean_px", "leg_std_px", "slider_share", "new_combo_share")


def window_features(beatmap: Beatmap) -> pd.DataFrame:
    """One row of features per window of WINDOW consecutive non-spinner objects."""
    objects = [h for h in beatmap.hit_objects if h.kind != "spinner"]
    radius = circle_radius_px(beatmap.circle_size)
    heads = np.array([(h.x, h.y) for h in objects], np.float64).reshape(-1, 2)
    paths = [np.asarray(hit_object_path(h), np.float64) if h.kind == "slider" else heads[i : i + 1]
             for i, h in enumerate(objects)]  # fmt: skip
    ends = np.array([p[-1] if len(p) else heads[i] for i, p in enumerate(paths)], np.float64).reshape(-1, 2)
    rows = []
    for start in range(0, max(len(objects) - WINDOW + 1, 0), STRIDE):
        span = range(start, start + WINDOW)
        rows.append(_features(objects, heads, ends, paths, radius, span))
    return pd.DataFrame(rows)


def _features(objects, heads, ends, paths, radius: float, span: range) -> dict:
    window = [objects[i] for i in span]
    hit = heads[list(span)]
    row = {f"grid_{g}": on_grid_share(hit, g) for g in GRID_SIZES_PX}
    # Crowding: the smallest distance between objects that are not neighbours in time, in radii (stacks apart).
    aim = np.concatenate([np.stack([heads[i], ends[i]]) for i in span])
    owner = np.repeat(np.arange(len(span)), 2)
    gaps = np.linalg.norm(aim[:, None] - aim[None], axis=-1)
    far = np.abs(owner[:, None] - owner[None]) >= 2
    stacked = gaps < 1.0
    row["stack_share"] = float((stacked & far).sum() / max(far.sum(), 1))
    apart = gaps[far & ~stacked]
    row["min_nonneighbour_gap_r"] = float(apart.min() / radius) if len(apart) else 10.0
    row["close_nonneighbour_share"] = float((apart < 2 * radius).mean()) if len(apart) else 0.0
    # Circles on slider bodies: a circle within a radius of another object's slider path, not its neighbour.
    on_body = 0
    for a in span:
        if objects[a].kind != "circle":
            continue
        for b in span:
            if objects[b].kind == "slider" and abs(a - b) >= 2:
                if np.linalg.norm(paths[b] - heads[a], axis=1).min() < radius:
                    on_body += 1
                    break
    row["circles_on_sliders"] = on_body
    sliders = [i for i in span if objects[i].kind == "slider" and len(paths[i]) > 1]
    bends, anchors = [], []
    for i in sliders:
        path = paths[i]
        chord = np.linalg.norm(path[-1] - path[0])
        length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
        bends.append(length / max(chord, 1.0))
        anchors.append(len(objects[i].control_points))
    row["slider_bend_max"] = max(bends, default=1.0)
    row["slider_bend_mean"] = float(np.mean(bends)) if bends else 1.0
    row["slider_anchors_mean"] = float(np.mean(anchors)) if anchors else 0.0
    for letter in "BPLC":
        row[f"curve_{letter}"] = sum(objects[i].curve_type == letter for i in sliders) / max(len(sliders), 1)
    path = np.concatenate([np.stack([heads[i], ends[i]]) if objects[i].kind == "slider" else heads[i : i + 1]
                           for i in span])  # fmt: skip
    angles, into, out, cross = leg_turns(path) if len(path) >= 3 else (np.zeros(0),) * 4
    jump = (into > JUMP_PX) & (out > JUMP_PX)
    turns = angles[jump]
    row["turn_mean"] = float(turns.mean()) if len(turns) else math.nan
    row["turn_std"] = float(turns.std()) if len(turns) else math.nan
    row["right_angle_share"] = right_angles(turns) / len(turns) if len(turns) else math.nan
    signs = np.sign(cross[jump])
    row["rotation_persistence"] = float(np.mean(signs[1:] == signs[:-1])) if len(signs) > 1 else math.nan
    row["field_std_x"], row["field_std_y"] = (float(v) for v in hit.std(axis=0))
    row["field_centre_px"] = float(np.linalg.norm(hit - [256.0, 192.0], axis=1).mean())
    row["edge_share"] = float(((hit < 24) | (hit > [488.0, 360.0])).any(axis=1).mean())
    times = np.array([o.time_ms for o in window], np.float64)
    legs = np.linalg.norm(heads[list(span)][1:] - ends[list(span)][:-1], axis=1)
    row["gap_mean_ms"], row["gap_std_ms"] = float(np.diff(times).mean()), float(np.diff(times).std())
    row["leg_mean_px"], row["leg_std_px"] = float(legs.mean()), float(legs.std())
    row["slider_share"] = len(sliders) / WINDOW
    row["new_combo_share"] = sum(o.new_combo for o in window) / WINDOW
    return row


def random_walk_map(beatmap: Beatmap, rng: np.random.Generator) -> Beatmap:
    """The map with every datapoint placed by a random walk with the source's own distances (a map with the
    source's rhythm and spacing and no sense of layout), decoded to a real .osu."""
    datapoints = encode(beatmap)
    walk = random_walk(datapoints.position, rng)
    return parse_beatmap(decode(beatmap, walk).encode("utf-8"))


def classifier(x: np.ndarray, y: np.ndarray, seed: int, balanced: bool = False) -> GradientBoostingClassifier:
    """The judges' gradient-boosted classifier fitted to (x, y); `balanced` weighs the two labels equally."""
    weight = None
    if balanced:
        counts = np.bincount(y, minlength=2).astype(np.float64)
        weight = (len(y) / (2 * np.maximum(counts, 1)))[y]
    return GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=seed).fit(x, y, sample_weight=weight)


def judge(
    samples: list[tuple[pd.DataFrame, int, str]],
    columns: list[str] | None = None,
    seed: int = 0,
    balanced: bool = False,
) -> dict:
    """Out-of-fold scores of a classifier telling label-1 windows from label-0 ones; `samples` are (windows of
    one map, label, group), and a group (a map set: sister difficulties are near-duplicates) never straddles
    training and test. `balanced` weighs each class equally in every training fold: without it, leaving out
    whole groups of one label tilts the prior against that label and a judge of few groups scores below 0.5."""
    data = pd.concat([f.assign(label=label, group=group) for f, label, group in samples if len(f)], ignore_index=True)
    features = columns or [c for c in data.columns if c not in ("label", "group")]
    x, y = data[features].fillna(-1.0).to_numpy(), data["label"].to_numpy()
    groups = pd.factorize(data["group"])[0]
    proba = np.zeros(len(data))
    importance = np.zeros(len(features))
    folds = GroupKFold(n_splits=min(FOLDS, len(set(groups))))
    for train, test in folds.split(x, y, groups):
        model = classifier(x[train], y[train], seed, balanced)
        proba[test] = model.predict_proba(x[test])[:, 1]
        with warnings.catch_warnings():  # a model that found no split has no importances (0 / 0)
            warnings.simplefilter("ignore", RuntimeWarning)
            importance += np.nan_to_num(model.feature_importances_)
    data["proba"] = proba
    maps = data.assign(map=np.repeat(np.arange(len(samples)), [len(f) for f, _, _ in samples]))
    by_map = maps.groupby(["map", "label"])["proba"].mean().reset_index()
    order = np.argsort(-importance)[:8]
    means = data.groupby("label")[[features[i] for i in order]].mean()
    return {
        "windows": len(data),
        "maps": len(samples),
        "sets": int(len(set(groups))),
        "window_accuracy": float(((proba > 0.5) == y).mean()),
        "window_auc": float(roc_auc_score(y, proba)) if len(set(y)) == 2 else math.nan,
        "map_auc": float(roc_auc_score(by_map["label"], by_map["proba"]))
        if by_map["label"].nunique() == 2
        else math.nan,
        # share of the classifier's splits, then the feature's mean in the label-0 and label-1 windows
        "top_features": {
            features[i]: [
                round(float(importance[i] / max(importance.sum(), 1e-12)), 3),
                *(round(float(v), 3) for v in means[features[i]]),
            ]
            for i in order
        },
    }


def pairs(real: list[pd.DataFrame], other: list[pd.DataFrame], sets: list[str]) -> list[tuple[pd.DataFrame, int, str]]:
    return [(a, 0, s) for a, s in zip(real, sets, strict=True)] + [(b, 1, s) for b, s in zip(other, sets, strict=True)]


def run(args: argparse.Namespace) -> dict:
    table = read_pairs(args.evaluation)
    rng = np.random.default_rng(args.seed)
    real, remapped, walks, sets, skipped = [], [], [], [], []
    for source, output in zip(table["source"], table["output"], strict=True):
        try:
            source_map = read_beatmap(source)
            features = window_features(source_map), window_features(read_beatmap(output))
            walk = window_features(random_walk_map(source_map, rng))
        except BadInputError as err:
            skipped.append(str(err))
            continue
        real.append(features[0])
        remapped.append(features[1])
        walks.append(walk)
        sets.append(Path(source).resolve().parent.name)
    if len(real) < 2:
        raise BadInputError(args.evaluation, f"needs at least 2 readable map pairs, found {len(real)}")
    # Real against real: each map set drawn to one side or the other by a seeded coin.
    side = {s: int(rng.integers(2)) for s in sorted(set(sets))}
    kept = [c for c in KEPT_FEATURES if c in real[0].columns]
    no_grid = [c for c in real[0].columns if not c.startswith("grid_")]
    summary = {
        "remap_vs_source": judge(pairs(real, remapped, sets), seed=args.seed),
        "remap_vs_source_without_grid": judge(pairs(real, remapped, sets), no_grid, args.seed),
        "control_random_walk_vs_source": judge(pairs(real, walks, sets), seed=args.seed),
        "control_real_vs_real": judge([(f, side[s], s) for f, s in zip(real, sets, strict=True)], seed=args.seed),
        "control_kept_features_only": judge(pairs(real, remapped, sets), kept, args.seed),
        "skipped": skipped,
        "evaluation": str(args.evaluation),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output / "map_discriminator.json", json.dumps(summary, indent=2) + "\n")
    return summary


def report(summary: dict) -> str:
    lines = []
    for name, result in summary.items():
        if isinstance(result, dict):
            top = ", ".join(f"{k} {v[0]} ({v[1]} vs {v[2]})" for k, v in list(result["top_features"].items())[:4])
            lines.append(
                f"{name}: window accuracy {result['window_accuracy']:.3f}, AUC {result['window_auc']:.3f}, "
                f"map AUC {result['map_auc']:.3f} ({result['maps']} maps of {result['sets']} sets, {result['windows']} "
                f"windows); top features (share, mean real vs other): {top}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--evaluation", type=Path, required=True, help="evaluation.csv of testing/evaluate.py (source, output)"
    )
    p.add_argument("--output", type=Path, required=True, help="folder for map_discriminator.json")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the random walks, the real/real split and the classifier"
    )
    p.add_argument("--debug", action="store_true", help="re-raise errors with a traceback")
    return p.parse_args(argv)


main = main_of(parse_args, run, report)


if __name__ == "__main__":
    sys.exit(main())
