"""Remap a beatmap with a trained position DiT, optionally in the style of another map or mapper.

    python sample.py --beatmap x.osu                       # shipped checkpoint, fast sampler, the map's own style
    python sample.py --beatmap x.osu --unconditional       # no style at all
    python sample.py --beatmap x.osu --style-id 1849273    # in the style of a beatmap the model knows
    python sample.py --beatmap x.osu --style-from y.osu    # in the style of any map (style by example)
    python sample.py --beatmap set.osz --difficulty Hard --mapper Sotarks --cfg-scale 2
    python sample.py --list-styles                         # the beatmaps and mappers a checkpoint knows
    python sample.py --beatmap x.osu --replay-only --player yuitora --mods HR --output y.osr   # play it
    python sample.py --beatmap x.osu --replay              # remap, then play the new map (.osu + .osr)
    python sample.py --beatmap x.osu --playtest            # re-sample the sections the replay model plays badly
    python sample.py --beatmap x.osu --replay-only --player-from mine.osr   # play with the habits of any replay
    python sample.py --list-players                        # the players the replay checkpoint knows, in words

Argument parsing only: the work is pipeline.job.run, which the notebook and the tests call too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.errors import BadInputError, refusal_exit
from dit.diffusion import SAMPLERS
from pipeline.job import Job, run
from pipeline.play import (
    DEFAULT_KEY_TEMPERATURE,
    DEFAULT_REPLAY_CKPT,
    DEFAULT_REPLAY_TEMPERATURE,
    FRAME_TIMINGS,
    PLAYER_CFG_SCALE,
    SETTLE_WIDTH_PX,
)
from pipeline.playtest import PLAYTEST_ROUNDS, rounds_value
from pipeline.remap import (
    DEFAULT_CKPT,
    GRID_CHOICES,
    OWN_TURN_PASSES,
    SEPARATION_PASSES,
    SLIDER_SHAPES,
    SPACING_PASSES,
    SPREAD_CHOICES,
    STYLE_CFG_SCALE,
    TURN_PASSES,
    strength_value,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beatmap", type=Path, help="the .osu to remap, or an .osz (with --difficulty if it holds several)")
    p.add_argument("--difficulty", help="difficulty (Version) to take from an .osz")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--style-id", type=int, help="BeatmapID whose style to map in (see --list-styles)")
    style.add_argument("--mapper", help="mapper name whose style to map in (see --list-styles)")
    style.add_argument(
        "--style-from",
        type=Path,
        metavar="OSU",
        help="map in the style of this .osu, known to the checkpoint or not (style by example)",
    )
    style.add_argument(
        "--unconditional",
        action="store_true",
        help="no style at all; without this or a style flag the remap follows the source's own style",
    )
    p.add_argument(
        "--cfg-scale",
        type=float,
        default=None,
        help=f"classifier-free guidance scale (1 = one pass; default {STYLE_CFG_SCALE:g} for a map style, "
        f"{PLAYER_CFG_SCALE:g} for a replay player, else 1)",
    )
    p.add_argument("--num-sampling-steps", type=int, default=20, help="denoising steps")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), default="ddim", help="sampler")
    p.add_argument(
        "--spacing-passes",
        type=int,
        default=SPACING_PASSES,
        help="passes per step pulling the new map's distances to the source's (0: the network's own spacing)",
    )
    p.add_argument(
        "--turn-passes",
        type=int,
        default=TURN_PASSES,
        help="passes per step matching the turns at jumps to the style's (the source's own by default; 0: the "
        "network's own turns; an --unconditional remap has no style to match)",
    )
    p.add_argument(
        "--own-turn-passes",
        type=int,
        default=OWN_TURN_PASSES,
        help="a checkpoint trained with --turn-channels: passes per step matching the turns at jumps to the "
        "histogram of the turns the network draws beside the positions (0: the positions' own turns)",
    )
    p.add_argument(
        "--separation-passes",
        type=int,
        default=SEPARATION_PASSES,
        help="passes per step keeping objects on screen together as far apart as the source keeps them, and its "
        "stacks stacked (0: the network's own layout)",
    )
    p.add_argument(
        "--spread",
        choices=SPREAD_CHOICES,
        default="style",
        help="style: every step's layout spreads over the field no wider than the style's (the source's own by "
        "default; an --unconditional remap has none); network: as wide as the network and the pulls draw it",
    )
    p.add_argument(
        "--slider-shapes",
        choices=SLIDER_SHAPES,
        default="source",
        help="source: each slider keeps its source's bends and curve type, turned and moved where the network "
        "puts it; network: the network's own anchors",
    )
    p.add_argument(
        "--strength",
        type=strength_value,
        default=1.0,
        help="how much of the source's layout to rework, in (0, 1]: 1 places every object anew; lower values "
        "start from the source's own positions under that much noise and keep more of them (0.3: objects move "
        "about half as far as at 1)",
    )
    p.add_argument(
        "--grid",
        choices=GRID_CHOICES,
        default="auto",
        help="place circles, slider heads and anchors on the editor grid: auto (the source's, when it uses one), "
        "none (the network's positions), or a size in px",
    )
    p.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same bytes")
    p.add_argument("--num-variants", type=int, default=1, help="write this many remaps with different noise")
    p.add_argument("--output", type=Path, help="output .osu (default: a descriptive name in the working directory)")
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT, help="position-model checkpoint")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the models run (auto: a CUDA GPU when there is one; outputs may differ from the CPU's in the "
        "last bits, so byte-identical reruns need the same device)",
    )
    p.add_argument("--list-styles", action="store_true", help="print the beatmaps and mappers the checkpoint knows")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--replay", action="store_true", help="remap, then play each new map: an .osr beside each .osu, naming its MD5"
    )
    mode.add_argument("--replay-only", action="store_true", help="play the given map as it is; --output is the .osr")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--player", help="play like this player (see --list-players; default: no player)")
    who.add_argument(
        "--player-from",
        type=Path,
        metavar="OSR",
        help="play with the habits of the player of this replay, known to the checkpoint or not (style by example; "
        "its map is found by MD5 in the replay's folder, or give --player-map)",
    )
    p.add_argument("--player-map", type=Path, metavar="OSU", help="the map the --player-from replay was played on")
    p.add_argument("--mods", default="", help="mods of the replay, e.g. HR, DT, HDHR (default: none)")
    p.add_argument("--replay-ckpt", type=Path, default=DEFAULT_REPLAY_CKPT, help="replay-model checkpoint")
    p.add_argument("--list-players", action="store_true", help="print the players the replay checkpoint knows")
    p.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_REPLAY_TEMPERATURE,
        help="replays: scale of the cursor's starting noise (below 1: tighter, more exact aim; 1: the full spread "
        "the model learned)",
    )
    p.add_argument(
        "--key-temperature",
        type=float,
        default=DEFAULT_KEY_TEMPERATURE,
        help="replays: the same for the keys (below 1: steadier hit timing)",
    )
    p.add_argument(
        "--still-zone",
        type=float,
        default=SETTLE_WIDTH_PX,
        metavar="PX",
        help="replays: the cursor rests where the model's path barely moves, trailing it by up to PX (0: off)",
    )
    p.add_argument(
        "--frame-timing",
        choices=FRAME_TIMINGS,
        default="human",
        help="replays: frame times drawn from human replays (as a client records them) or one frame per 60 Hz tick",
    )
    p.add_argument("--preview", type=Path, help="PNG of the new map beside its source (with --replay, the cursor)")
    p.add_argument("--preview-time", type=float, help="song time in ms where the preview opens (default: a busy part)")
    p.add_argument("--animation", type=Path, help="GIF of a few seconds of the replay (needs --replay/--replay-only)")
    p.add_argument("--osz", type=Path, help="pack the new map(s) with the set's audio and background into an .osz")
    p.add_argument(
        "--playtest",
        type=rounds_value,
        nargs="?",
        const=PLAYTEST_ROUNDS,
        metavar="ROUNDS",
        help="play the remap and its source with the replay model (as --player and --mods ask), sample again the "
        f"sections it plays worse (more misses plus snaps) for up to ROUNDS rounds (default {PLAYTEST_ROUNDS}; 0: "
        "report only), and write NAME.playtest.csv with every section's figures beside the .osu",
    )
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    args = p.parse_args(argv)
    if not (args.list_styles or args.list_players) and args.beatmap is None:
        p.error("--beatmap is required (or --list-styles / --list-players)")
    if args.num_variants < 1 or args.num_sampling_steps < 1:
        p.error("--num-variants and --num-sampling-steps must be at least 1")
    if min(args.spacing_passes, args.turn_passes, args.own_turn_passes, args.separation_passes) < 0:
        p.error("--spacing-passes, --turn-passes, --own-turn-passes and --separation-passes must be 0 or more")
    if args.animation and not (args.replay or args.replay_only):
        p.error("--animation plays a replay: add --replay (or --replay-only)")
    if args.player_map and not args.player_from:
        p.error("--player-map names the map of a --player-from replay")
    if args.osz and args.replay_only:
        p.error("--osz packs a remapped map; --replay-only writes none")
    if args.playtest is not None and args.replay_only:
        p.error("--playtest plays a remap; --replay-only writes none")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    debug = args.debug
    del args.debug
    try:
        run(Job(**vars(args)))
    except BadInputError as err:
        return refusal_exit(err, debug)
    except OSError as err:  # an output that cannot be written (no permission, a file in place of a folder, ...)
        if debug:
            raise
        print(f"error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
