"""Remap a set of maps with a position checkpoint and judge every output against its source.

    python testing/evaluate.py --input DIR_OR_FILES... --output DIR [--ckpt PATH] [--style-id ID | --mapper NAME]
                               [--unconditional] [--cfg-scale S] [--num-sampling-steps N] [--sampler NAME]
                               [--seed S] [--limit N]
    python testing/evaluate.py --input DIR --output DIR --compare-styles 1849273 668662   # BeatmapIDs or .osu files

Both files of each pair are read by independent readers: the slider library (falling back to our parser only
when slider cannot read the source, e.g. its numpy-2 Catmull fault) and rosu-pp. Per map: valid and same object
count; rhythm kept (kind, time within 2 ms, new combo, repeats, end time); share of heads and slider ends in
the playfield; median spacing error; the 1-Wasserstein distance between turning-angle distributions at jumps
of output and source, next to that of a random walk with the source's spacing; mean turning angle; star error.
Writes maps/, evaluation.csv, summary.json and plots to --output; a short report on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.atomic import write_bytes_atomic, write_text_atomic  # noqa: E402
from data.beatmap.codec import decode, encode_text  # noqa: E402
from data.beatmap.inputs import read_beatmap_input  # noqa: E402
from data.errors import BadInputError, refusal_exit, refuse_unless_readable  # noqa: E402
from dit.diffusion import SAMPLERS  # noqa: E402
from pipeline.outputs import remap_text  # noqa: E402
from pipeline.play import load_replay_model  # noqa: E402
from pipeline.playtest import PLAYTEST_ROUNDS, playtest, remap_resampler, replay_player, rounds_value  # noqa: E402
from pipeline.remap import (  # noqa: E402
    DEFAULT_CKPT,
    GRID_CHOICES,
    OWN_STYLE_LABEL,
    OWN_TURN_PASSES,
    SEPARATION_PASSES,
    SLIDER_SHAPES,
    SPACING_PASSES,
    SPREAD_CHOICES,
    TURN_PASSES,
    StyleRequest,
    choose_style,
    guidance_scale,
    load_position_model,
    reference_features,
    remap_positions,
    resolve_style,
    strength_value,
    style_label,
)
from testing import plots  # noqa: E402
from testing.map_judge import judge_pair  # noqa: E402

# The bars for "done" (issue 3), checked in the summary.
MIN_INSIDE_SHARE = 0.98
MAX_TURNING_RATIO = 0.5  # median turning-angle distance / median random-walk distance
MAX_MEDIAN_STAR_ERROR = 0.10
MIN_STYLE_TURN_DIFFERENCE_RAD = 0.3

COLUMNS = """
source output objects reader valid slider_reads_output rosu_reads_output same_object_count rhythm_kept
rhythm_problems first_rhythm_problem inside_playfield_share median_spacing_error_px mean_spacing_source_px
mean_spacing_output_px jumps_source jumps_output right_angles_source right_angles_output turning_w1 random_walk_w1
turning_ratio mean_turn_source_rad mean_turn_output_rad stars_source stars_output star_error source_grid_px
output_on_source_grid remap_s
""".split()


# ---------------------------------------------------------------- inputs and remapping


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Every .osu named, or found under a named folder, in sorted order; missing paths are kept (they fail later)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.osu")) if path.is_dir() else [path])
    return found


def output_name(source: Path, roots: list[Path], label: str) -> Path:
    """The output's path under maps/: the source's path below its input folder, tagged with the style."""
    for root in roots:
        if root.is_dir() and source.is_relative_to(root):
            relative = source.relative_to(root)
            break
    else:
        relative = Path(source.name)
    return relative.with_name(f"{relative.stem} ({label}).osu")


class Remapper:
    """Loads the checkpoint once and remaps beatmaps with the pipeline's own functions."""

    def __init__(
        self,
        ckpt: Path,
        cfg_scale: float,
        steps: int,
        sampler: str,
        seed: int,
        spacing_passes: int,
        strength: float = 1.0,
        unconditional: bool = False,
        turn_passes: int = TURN_PASSES,
        grid: str = "auto",
        separation_passes: int = SEPARATION_PASSES,
        slider_shapes: str = "source",
        playtest: int | None = None,
        own_turn_passes: int = OWN_TURN_PASSES,
        spread: str = "style",
    ):
        self.model, self.ckpt, self.styles = load_position_model(ckpt)
        # sample.py --playtest with its default player: the replay model's own plays choose what to re-sample.
        self.playtest = playtest
        self.player = None if playtest is None else replay_player(*load_replay_model()[:2], seed=seed)
        self.cfg_scale = cfg_scale
        self.unconditional = unconditional
        self.kwargs = dict(
            steps=steps,
            sampler=sampler,
            seed=seed,
            progress=False,
            spacing_passes=spacing_passes,
            strength=strength,
            turn_passes=turn_passes,
            own_turn_passes=own_turn_passes,
            grid=grid,
            separation_passes=separation_passes,
            slider_shapes=slider_shapes,
            spread=spread,
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Remapper:
        return cls(
            args.ckpt,
            args.cfg_scale,
            args.num_sampling_steps,
            args.sampler,
            args.seed,
            args.spacing_passes,
            args.strength,
            args.unconditional,
            args.turn_passes,
            args.grid,
            args.separation_passes,
            args.slider_shapes,
            args.playtest,
            args.own_turn_passes,
            args.spread,
        )

    def style(self, style_id: int | None, mapper: str | None) -> int:
        return resolve_style(self.styles, style_id, mapper)

    def reference(self, spec: str) -> tuple[str, int, np.ndarray | None]:
        """(label, style class, descriptor) of a BeatmapID the checkpoint knows, or of any .osu (by example)."""
        if spec.isdigit():
            return f"style {spec}", self.style(int(spec), None), None
        label, features = reference_features(self.model, Path(spec))
        return label, 0, features

    def remap(
        self, beatmap, style: int, style_features: np.ndarray | None = None, label: str | None = None
    ) -> tuple[str, bytes, float]:
        """(text, bytes in the source's encoding, seconds) of the remapped map."""
        started = time.perf_counter()
        styled = style != 0 or style_features is not None
        kwargs = dict(self.kwargs, cfg_scale=guidance_scale(self.cfg_scale, styled=styled))
        if not styled:  # the pipeline's rule: no style asked for means the source's own (unless unconditional)
            own = choose_style(self.model, self.styles, StyleRequest(unconditional=self.unconditional), beatmap)
            style_features, label = own.features, label or own.label
        positions = remap_positions(beatmap, self.model, self.ckpt, style, style_features=style_features, **kwargs)[0]
        label = label or style_label(self.styles, style)

        def text_of(p: np.ndarray) -> str:  # as sample.py writes a single remap
            return remap_text(decode(beatmap, p), beatmap, label, 0, 1)

        if self.playtest is not None:
            remap_kwargs = {k: v for k, v in kwargs.items() if k not in ("seed", "progress")}
            resample = remap_resampler(beatmap, self.model, self.ckpt, style, self.kwargs["seed"],
                                       style_features=style_features, **remap_kwargs)  # fmt: skip
            positions = playtest(beatmap, positions, text_of, self.player, resample, rounds=self.playtest).positions
        text = text_of(positions)
        return text, encode_text(beatmap, text), time.perf_counter() - started


# ---------------------------------------------------------------- runs


def _read(path: Path, skipped: list[str]):
    try:
        return read_beatmap_input(path)
    except BadInputError as err:
        skipped.append(str(err))
        print(f"skipped {err}", file=sys.stderr)
        return None


def _refuse_if_nothing_to_judge(inputs: list[Path], paths: list[Path]) -> None:
    """No maps, or a single bad one: one line and exit 2 before anything is written, like every entry point."""
    refuse_unless_readable(paths, read_beatmap_input, inputs, ".osu files", "maps")


def _crashed(path: Path, err: Exception, failures: list[str]) -> None:
    line = f"{path}: {type(err).__name__}: {err}"
    failures.append(line)
    print(f"failed {line}", file=sys.stderr)


def evaluate(args: argparse.Namespace) -> dict:
    """Remap and judge every input map; write maps, CSV, summary and plots to args.output; return the summary."""
    remapper = Remapper.from_args(args)
    style = remapper.style(args.style_id, args.mapper)
    label = style_label(remapper.styles, style)
    if style == 0 and not args.unconditional:
        label = OWN_STYLE_LABEL
    paths = collect_inputs(args.input)[: args.limit]
    _refuse_if_nothing_to_judge(args.input, paths)
    rows, turns, skipped, failures = [], [], [], []
    for path in paths:
        beatmap = _read(path, skipped)
        if beatmap is None:
            continue
        try:
            text, data, seconds = remapper.remap(beatmap, style)
            out_path = args.output / "maps" / output_name(path, args.input, label)
            write_bytes_atomic(out_path, data)
            row = {"source": str(path), "output": str(out_path), "remap_s": seconds}
            row.update(judge_pair(beatmap.text, beatmap.raw, text, data, seed=args.seed))
        except Exception as err:  # a crash on a readable map is a finding, reported, not the end of the run
            if args.debug:
                raise
            _crashed(path, err, failures)
            continue
        turns.append(row.pop("_turns"))
        rows.append(row)
        print(_row_line(row), flush=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    summary = summarize(table, skipped, failures)
    options = ("seed", "sampler", "spacing_passes", "strength", "turn_passes", "own_turn_passes", "grid",
               "separation_passes", "slider_shapes", "spread")  # fmt: skip
    summary.update({name: getattr(args, name) for name in options})
    summary.update(style=label, ckpt=str(args.ckpt), steps=args.num_sampling_steps,
                   cfg_scale=guidance_scale(args.cfg_scale, styled=style != 0))  # fmt: skip
    _write_table(args.output / "evaluation.csv", table)
    write_text_atomic(args.output / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if rows:
        plots.evaluation_plots(table, turns, args.output)
    print(report(summary))
    return summary


def _row_line(row: dict) -> str:
    return (
        f"{'OK ' if row['valid'] and row['rhythm_kept'] else 'BAD'} {Path(row['source']).name}: "
        f"{row['objects']} objects, rhythm {'kept' if row['rhythm_kept'] else row['first_rhythm_problem']}, "
        f"inside {row['inside_playfield_share']:.3f}, spacing err {row['median_spacing_error_px']:.1f} px, "
        f"turn W1 {row['turning_w1']:.3f} (walk {row['random_walk_w1']:.3f}), "
        f"stars {row['stars_source']:.2f} -> {row['stars_output']:.2f}, {row['remap_s']:.1f} s"
    )


def _median(series: pd.Series) -> float | None:
    values = series.dropna()
    return float(values.median()) if len(values) else None


def _share(part: pd.Series, whole: pd.Series) -> float | None:
    """sum(part) / sum(whole): a share pooled over the maps."""
    total = float(whole.sum())
    return float(part.sum()) / total if total else None


def summarize(table: pd.DataFrame, skipped: list[str], failures: list[str]) -> dict:
    """Medians, counts and the issue's pass/fail bars over the per-map table."""
    n = len(table)
    turning, walk = _median(table["turning_w1"]), _median(table["random_walk_w1"])
    star = _median(table["star_error"])
    summary = {
        "maps": n,
        "skipped": len(skipped),
        "skipped_lines": skipped,
        "failed": len(failures),
        "failed_lines": failures,
        "valid": int(table["valid"].sum()),
        "same_object_count": int(table["same_object_count"].sum()),
        "rhythm_kept": int(table["rhythm_kept"].sum()),
        "min_inside_playfield_share": float(table["inside_playfield_share"].min()) if n else None,
        "median_spacing_error_px": _median(table["median_spacing_error_px"]),
        "median_spacing_ratio": _median(table["mean_spacing_output_px"] / table["mean_spacing_source_px"]),
        "median_turning_w1": turning,
        "median_random_walk_w1": walk,
        "median_turning_ratio": _median(table["turning_ratio"]),
        "sources_on_a_grid": int((table["source_grid_px"] > 0).sum()),
        "median_output_on_source_grid": _median(table["output_on_source_grid"]),
        "right_angle_share_source": _share(table["right_angles_source"], table["jumps_source"]),
        "right_angle_share_output": _share(table["right_angles_output"], table["jumps_output"]),
        "median_mean_turn_source_rad": _median(table["mean_turn_source_rad"]),
        "median_mean_turn_output_rad": _median(table["mean_turn_output_rad"]),
        "median_star_error": star,
        "median_remap_s": _median(table["remap_s"]),
    }
    summary["checks"] = {
        "all_valid": n > 0 and summary["valid"] == n and summary["same_object_count"] == n,
        "rhythm_kept_everywhere": n > 0 and summary["rhythm_kept"] == n,
        "inside_playfield_every_map": n > 0 and summary["min_inside_playfield_share"] >= MIN_INSIDE_SHARE,
        "turning_within_half_random_walk": turning is not None and walk is not None
        and turning <= MAX_TURNING_RATIO * walk,
        "median_star_error_within_10pct": star is not None and star <= MAX_MEDIAN_STAR_ERROR,
    }  # fmt: skip
    return summary


def report(summary: dict) -> str:
    """A few lines for the terminal."""
    n = summary["maps"]

    def fmt(value, spec=".3f"):
        return "n/a" if value is None else format(value, spec)

    lines = [
        f"maps judged: {n} (skipped {summary['skipped']}, failed {summary['failed']})",
        f"valid: {summary['valid']}/{n}, same object count: {summary['same_object_count']}/{n}, "
        f"rhythm kept: {summary['rhythm_kept']}/{n}",
        f"lowest share in playfield: {fmt(summary['min_inside_playfield_share'])}",
        f"median spacing error: {fmt(summary['median_spacing_error_px'], '.1f')} px "
        f"(output / source mean spacing, median over maps: {fmt(summary['median_spacing_ratio'])})",
        f"turning-angle W1 median: {fmt(summary['median_turning_w1'])} vs random walk "
        f"{fmt(summary['median_random_walk_w1'])} (median ratio {fmt(summary['median_turning_ratio'])})",
        f"mean turning angle median: output {fmt(summary['median_mean_turn_output_rad'])} rad, "
        f"source {fmt(summary['median_mean_turn_source_rad'])} rad",
        f"right angles at jumps, pooled: output {fmt(summary['right_angle_share_output'])}, source "
        f"{fmt(summary['right_angle_share_source'])}",
        f"median star error: {fmt(summary['median_star_error'])}",
        "checks: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in summary["checks"].items()),
    ]
    return "\n".join(lines)


def _write_table(path: Path, table: pd.DataFrame) -> None:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6g")
    write_text_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------- style steering


def compare_styles(args: argparse.Namespace) -> dict:
    """Remap each map in both styles (same seed) and report how much more the first turns than the second."""
    remapper = Remapper.from_args(args)
    (id_a, style_a, features_a), (id_b, style_b, features_b) = map(remapper.reference, args.compare_styles)
    paths = collect_inputs(args.input)[: args.limit]
    rows, skipped, failures = [], [], []
    for path in paths:
        beatmap = _read(path, skipped)
        if beatmap is None:
            continue
        try:
            row = {"source": str(path)}
            for key, name, style, features in (("a", id_a, style_a, features_a), ("b", id_b, style_b, features_b)):
                text, data, _ = remapper.remap(beatmap, style, features, name)
                write_bytes_atomic(args.output / "maps" / output_name(path, args.input, name), data)
                judged = judge_pair(beatmap.text, beatmap.raw, text, data, seed=args.seed)
                row[f"mean_turn_{key}_rad"] = judged["mean_turn_output_rad"]
                row[f"jumps_{key}"] = judged["jumps_output"]
                row[f"rhythm_kept_{key}"] = judged["rhythm_kept"]
            row["mean_turn_source_rad"] = judged["mean_turn_source_rad"]
            row["turn_difference_rad"] = row["mean_turn_a_rad"] - row["mean_turn_b_rad"]
        except Exception as err:
            if args.debug:
                raise
            _crashed(path, err, failures)
            continue
        rows.append(row)
        print(
            f"{Path(path).name}: mean turn {row['mean_turn_a_rad']:.3f} ({id_a}) vs "
            f"{row['mean_turn_b_rad']:.3f} ({id_b}): difference {row['turn_difference_rad']:+.3f} rad",
            flush=True,
        )
    table = pd.DataFrame(rows)
    differences = table["turn_difference_rad"].dropna() if rows else pd.Series(dtype=float)
    summary = {
        "style_a": id_a,
        "style_b": id_b,
        "maps": len(rows),
        "skipped": len(skipped),
        "skipped_lines": skipped,
        "failed": len(failures),
        "failed_lines": failures,
        "mean_turn_difference_rad": float(differences.mean()) if len(differences) else None,
        "min_turn_difference_rad": float(differences.min()) if len(differences) else None,
        "maps_turning_0.3_rad_more": int((differences >= MIN_STYLE_TURN_DIFFERENCE_RAD).sum()),
        "steers_on_every_map": bool(len(differences) == len(rows) > 0)
        and bool((differences >= MIN_STYLE_TURN_DIFFERENCE_RAD).all()),
    }  # fmt: skip
    _write_table(args.output / "compare_styles.csv", table)
    write_text_atomic(args.output / "compare_styles.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if rows:
        plots.style_plot(table, id_a, id_b, args.output)
    print(
        f"{id_a} turns {summary['mean_turn_difference_rad'] or 0:+.3f} rad more than {id_b} on average; "
        f">= {MIN_STYLE_TURN_DIFFERENCE_RAD} rad on {summary['maps_turning_0.3_rad_more']}/{len(rows)} maps "
        f"({'PASS' if summary['steers_on_every_map'] else 'FAIL'})"
    )
    return summary


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], fromfile_prefix_chars="@")
    p.add_argument(
        "--input",
        type=Path,
        nargs="+",
        required=True,
        help=".osu files and/or folders searched for them (@LIST reads them from a file, one a line)",
    )
    p.add_argument("--output", type=Path, required=True, help="folder for remapped maps, CSV, summary and plots")
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT, help="position-model checkpoint")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--style-id", type=int, help="BeatmapID whose style to map in")
    style.add_argument("--mapper", help="mapper name whose style to map in")
    style.add_argument(
        "--compare-styles",
        nargs=2,
        metavar=("STYLE_A", "STYLE_B"),
        help="remap each map in both styles, each a BeatmapID the checkpoint knows or any .osu (style by example), "
        "and report how much more A turns than B",
    )
    style.add_argument(
        "--unconditional", action="store_true", help="no style at all (default: each map's own, as sample.py)"
    )
    p.add_argument(
        "--cfg-scale", type=float, default=None, help="classifier-free guidance scale (default: as sample.py's)"
    )
    p.add_argument("--num-sampling-steps", type=int, default=20, help="denoising steps")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), default="ddim", help="sampler")
    p.add_argument(
        "--spacing-passes", type=int, default=SPACING_PASSES, help="passes per step pulling distances to the source's"
    )
    p.add_argument("--turn-passes", type=int, default=TURN_PASSES, help="passes per step matching turns to the style's")
    p.add_argument(
        "--own-turn-passes", type=int, default=OWN_TURN_PASSES, help="passes matching turns to the network's own"
    )
    p.add_argument(
        "--separation-passes", type=int, default=SEPARATION_PASSES, help="passes keeping non-neighbours apart"
    )
    p.add_argument("--slider-shapes", choices=SLIDER_SHAPES, default="source", help="as sample.py's")
    p.add_argument("--spread", choices=SPREAD_CHOICES, default="style", help="as sample.py's")
    p.add_argument("--grid", choices=GRID_CHOICES, default="auto", help="editor grid of the remaps (as sample.py)")
    p.add_argument(
        "--strength", type=strength_value, default=1.0, help="share of the source's layout to rework (as sample.py)"
    )
    p.add_argument(
        "--playtest",
        type=rounds_value,
        nargs="?",
        const=PLAYTEST_ROUNDS,
        metavar="ROUNDS",
        help="re-sample the sections the replay model plays worse than the source's (as sample.py)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of the random-walk baseline")
    p.add_argument("--limit", type=int, default=None, help="judge only the first N maps (sorted by path)")
    p.add_argument("--debug", action="store_true", help="re-raise errors with a traceback")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        compare_styles(args) if args.compare_styles else evaluate(args)
    except BadInputError as err:  # the checkpoint or the style; single maps are skipped inside
        return refusal_exit(err, args.debug)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
