"""Play each remap and its source with the replay model and compare how they play (misses, accuracy).

    python testing/evaluate.py --input DIR --output EVAL          # writes EVAL/evaluation.csv (source, output)
    python testing/playtest.py --evaluation EVAL/evaluation.csv --output DIR

A remap that the replay model misses more than its source reads worse than the mapper's layout: jumps it cannot
reach in time, objects hidden under others. Same seed and defaults for both plays of a map, played as sample.py
plays (human frame timing); snaps are circleguard's aim-correction snaps on objects. A remap made with
`--playtest` was chosen on its seed's plays: judge it with another --seed.
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
from pipeline.play import DEFAULT_REPLAY_CKPT, load_replay_model, play_frames  # noqa: E402
from pipeline.playtest import play_sections  # noqa: E402
from testing.cli import main_of  # noqa: E402
from testing.map_judge import read_pairs  # noqa: E402


def play_figures(path: str, model, ckpt: dict, seed: int) -> dict:
    """Misses, snaps and accuracy of the replay model playing the map at `path` (no mods) as sample.py plays it."""
    beatmap = read_beatmap(path)
    played = play_sections(
        beatmap,
        np.zeros(len(beatmap.hit_objects), np.int64),
        lambda b: play_frames(b, model, ckpt, seed=seed, progress=False),
    )
    return {
        "objects": len(beatmap.hit_objects),
        "misses": int(played.misses.sum()),
        "snaps": int(played.snaps.sum()),
        "accuracy": played.judgement.accuracy,
    }


def run(args: argparse.Namespace) -> dict:
    table = read_pairs(args.evaluation)
    model, ckpt, _ = load_replay_model(args.replay_ckpt)
    rows = []
    for source, output in zip(table["source"], table["output"], strict=True):
        try:
            row = {f"source_{k}": v for k, v in play_figures(source, model, ckpt, args.seed).items()}
            row.update({f"remap_{k}": v for k, v in play_figures(output, model, ckpt, args.seed).items()})
        except BadInputError as err:
            print(f"skipped {err}", file=sys.stderr)
            continue
        rows.append({"source": source, **row})
        print(f"{Path(source).name}: misses {row['source_misses']} -> {row['remap_misses']}, accuracy "
              f"{row['source_accuracy']:.3f} -> {row['remap_accuracy']:.3f}", flush=True)  # fmt: skip
    result = pd.DataFrame(rows)
    if result.empty:
        raise BadInputError(args.evaluation, "no map could be played")
    summary = {
        "maps": len(result),
        "median_source_misses": float(np.median(result["source_misses"])),
        "median_remap_misses": float(np.median(result["remap_misses"])),
        "median_source_snaps": float(np.median(result["source_snaps"])),
        "median_remap_snaps": float(np.median(result["remap_snaps"])),
        "median_source_accuracy": float(np.median(result["source_accuracy"])),
        "median_remap_accuracy": float(np.median(result["remap_accuracy"])),
        "remaps_missed_more": int((result["remap_misses"] > result["source_misses"]).sum()),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output / "playtest.csv", result.to_csv(index=False))
    write_text_atomic(args.output / "playtest.json", json.dumps(summary, indent=2) + "\n")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--evaluation", type=Path, required=True, help="testing/evaluate.py's evaluation.csv")
    p.add_argument("--output", type=Path, required=True, help="folder for playtest.csv and playtest.json")
    p.add_argument("--replay-ckpt", type=Path, default=DEFAULT_REPLAY_CKPT, help="replay-model checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of both plays of every map")
    p.add_argument("--debug", action="store_true", help="re-raise errors with a traceback")
    return p.parse_args(argv)


main = main_of(parse_args, run, json.dumps)


if __name__ == "__main__":
    sys.exit(main())
