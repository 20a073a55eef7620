"""Remap a beatmap with a trained position DiT, optionally in the style of another map or mapper.

    python sample.py --beatmap x.osu                       # shipped checkpoint, fast sampler, the map's own style
    python sample.py --beatmap x.osu --unconditional       # no style at all
    python sample.py --beatmap x.osu --style-id 1849273    # in the style of a beatmap the model knows
    python sample.py --beatmap x.osu --style-from y.osu    # in the style of any map (style by example)
    python sample.py --beatmap set.osz --difficulty Hard --mapper Sotarks --cfg-scale 2
    python sample.py --list-styles                         # the beatmaps and mappers a checkpoint knows
    python sample.py --beatmap x.osu --replay-only --player yuitora --mods HR --output y.osr   # play it
    python sample.py --beatmap x.osu --replay              # remap, then play the new map (.osu + .osr)
    python sample.py --list-players                        # the players the replay checkpoint knows

The functions here are what the Colab notebook and the tests call; main() only parses arguments.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from data.beatmap.datapoints import PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH
from data.errors import BadInputError, refusal_exit

ROOT = Path(__file__).resolve().parent
DEFAULT_CKPT = ROOT / "checkpoints" / "position.pt"
DEFAULT_REPLAY_CKPT = ROOT / "checkpoints" / "replay.pt"
# Replays start this long before the first object (play time) and end this long after the last one.
REPLAY_LEAD_IN_MS = 1000.0
REPLAY_TAIL_MS = 500.0
REPLAY_PLAYER_NAME = "osu-dit"
DEFAULT_REPLAY_TEMPERATURE = 0.5
# Guidance when a map style is asked for and --cfg-scale is not given: at scale 1 the shipped model follows the
# source map's own flow and a style moves it only a little. 8 rather than 5: on the hardest maps measured (a gimmick
# map and a 12-object test map) it steers at least 0.05 rad further in each of 4 seeds, and styled remaps stay as
# playable (README, "Style transfer" has the measurements).
STYLE_CFG_SCALE = 8.0
OWN_STYLE_LABEL = "own style"  # a remap that follows its source's own descriptor (no style asked for)
# Relaxation passes pulling each denoised estimate's legs to the source spacing (dit.constraints). On 12 held-out
# maps 8 passes take the shipped checkpoint's median spacing error from 7.7 to 1.7 px and its star error from 2.0%
# to 1.0%; with an earlier checkpoint 16 passes gave 1.0 px against 8's 2.1, for no better turning or stars.
SPACING_PASSES = 8
# Passes per step matching the turns at jumps to the style descriptor's jump-turn histogram (dit.constraints).
# The network reads a descriptor's mean turn but not its shape: on 39 random corpus maps its own-style remaps
# drew a flat turn histogram (turning W1 to the source 0.118, half the random walk's); 4 passes give 0.059 (8 at
# twice the rate, measured before the playfield check, 0.056: not worth the harder pull).
TURN_PASSES = 4


# ----------------------------------------------------------------------------------------------------------------
# Model and styles
# ----------------------------------------------------------------------------------------------------------------


def load_position_model(ckpt_path: str | Path = DEFAULT_CKPT):
    """(model in eval mode, checkpoint dict, StyleTable) from a position-model checkpoint."""
    from data.tables import StyleTable
    from dit.checkpoint import build_model_from_checkpoint, load_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    if ckpt["config"].get("model") != "PositionDiT":
        raise BadInputError(ckpt_path, f"holds a {ckpt['config'].get('model')}, not a position model")
    return build_model_from_checkpoint(ckpt), ckpt, StyleTable.from_dict(ckpt["extra"]["styles"])


def resolve_style(styles, style_id: int | None = None, mapper: str | None = None) -> int:
    """Style class for a BeatmapID or mapper name (0, the null class, when neither is given)."""
    if style_id is not None:
        index = styles.beatmap_class(style_id)
        if index is None:
            raise BadInputError(
                None,
                f"--style-id {style_id} is not a beatmap this checkpoint knows "
                "(python sample.py --list-styles shows them)",
            )
        return index
    if mapper is not None:
        index = styles.mapper_class(mapper)
        if index is None:
            raise BadInputError(
                None,
                f"--mapper {mapper!r} is not a mapper this checkpoint knows "
                "(python sample.py --list-styles shows them)",
            )
        return index
    return 0


def reference_features(model, path: Path) -> tuple[str, np.ndarray]:
    """(label, descriptor) of the map a --style-from remap should look like."""
    from data.beatmap.codec import encode
    from data.beatmap.osu_file import read_beatmap
    from data.style_features import playable_style_features

    if not model.config.class_feature_dim:
        raise BadInputError(None, "--style-from needs a checkpoint trained with style features (see train.py --help)")
    if not path.is_file() or path.suffix.lower() != ".osu":
        raise BadInputError(path, "--style-from takes an .osu file")
    reference = read_beatmap(path)
    features = playable_style_features(encode(reference))
    if not features.any():
        raise BadInputError(path, "has too few objects to show a style")
    name = f"style {reference.beatmap_id}" if reference.beatmap_id else f"style of {reference.version or path.stem}"
    return name, features


def own_style_features(model, beatmap) -> np.ndarray | None:
    """The source's own descriptor, which a remap follows at guidance 1 when no style is asked for (None when the
    checkpoint reads no descriptors or the map has too few objects to show a style).

    Measured with the shipped checkpoint: turning-angle W1 to the source 0.094 against 0.121 unconditioned on 12
    held-out maps, 0.118 against 0.138 on 39 random corpus maps; the remaps keep each source's mean turn (README,
    "Remapping quality")."""
    from data.beatmap.codec import encode
    from data.style_features import playable_style_features

    if not model.config.class_feature_dim:
        return None
    features = playable_style_features(encode(beatmap))
    return features if features.any() else None


def guidance_scale(cfg_scale: float | None, styled: bool) -> float:
    """The --cfg-scale given, else STYLE_CFG_SCALE for a styled remap and 1 (one pass) for an unstyled one."""
    if cfg_scale is not None:
        return cfg_scale
    return STYLE_CFG_SCALE if styled else 1.0


def style_label(styles, index: int) -> str:
    return "no style" if index == 0 else styles.describe(index)


# ----------------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------------


def generate_positions(
    model,
    ckpt: dict,
    datapoints,
    style: int,
    *,
    cfg_scale: float = 1.0,
    steps: int = 20,
    sampler: str = "ddim",
    seed: int = 0,
    num_variants: int = 1,
    progress: bool = True,
    style_features: np.ndarray | None = None,
    spacing_passes: int = SPACING_PASSES,
    strength: float = 1.0,
    turn_passes: int = TURN_PASSES,
) -> np.ndarray:
    """New positions in px, [num_variants, N, 2], for a whole map in one pass (attention cost is linear in N).
    `style_features` (a reference map's descriptor) stand in for the style class's own. `strength` below 1 starts
    from the source's own layout noised to t = strength and runs that share of the steps, so the output keeps
    what that much noise leaves of it."""
    import torch

    from data.windows import denormalize_positions, full_map_sample, normalize_positions
    from dit import diffusion

    fields = full_map_sample(datapoints, style)
    batch = {k: v.unsqueeze(0).expand(num_variants, *v.shape) for k, v in fields.items()}
    extra = {
        "time_ms": batch["time_ms"],
        "distance": batch["distance"],
        "kind": batch["kind"],
        "style": batch["style"],
        "mask": batch["mask"],
    }
    if style_features is not None:
        extra["style_features"] = torch.from_numpy(np.asarray(style_features, np.float32)).expand(num_variants, -1)
    device = next(model.parameters()).device
    extra = {k: v.to(device) for k, v in extra.items()}
    # Noise comes from a CPU generator on every device, so a seed means the same starting point everywhere.
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch["position"].shape, generator=generator).to(device)
    if strength < 1.0:  # SDEdit: the source's own layout under time `strength`'s noise, denoised from there
        x = diffusion.q_sample(batch["position"].to(device), torch.full((num_variants,), strength), x).float()
        steps = max(1, round(steps * strength))
    prediction = ckpt["extra"].get("prediction", "v")
    # Clip every denoised estimate to the playfield: objects must stay where players can reach them.
    bounds = normalize_positions(np.array([[0, 0], [PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT]], np.float32))
    clip = (torch.from_numpy(bounds[0]), torch.from_numpy(bounds[1]))
    constrain = _constraints(
        model, extra["kind"][0], style, extra.get("style_features"), spacing_passes, turn_passes, clip
    )
    model_fn = diffusion.denoiser(
        diffusion.guided(model, cfg_scale), prediction=prediction, clip=clip, constrain=constrain
    )
    with torch.inference_mode():
        x0 = diffusion.SAMPLERS[sampler](
            model_fn, x, steps, extra_args=extra, disable=not progress, generator=generator, start=strength
        )
    return np.stack([denormalize_positions(v) for v in x0.float().cpu().numpy()])


def _constraints(model, kind, style: int, style_features, spacing_passes: int, turn_passes: int, bounds):
    """What each denoised estimate goes through before the sampler steps (None: nothing): turns at jumps matched
    to the style descriptor's (the given one, else the style class's own; none for an unstyled remap), then legs
    pulled to the source's lengths."""
    from data.style_features import JUMP_ANGLE_BINS, JUMP_PX
    from data.windows import POSITION_SCALE
    from dit.constraints import AimPath, match_spacing, match_turns

    descriptor = style_features[0] if style_features is not None else None
    if descriptor is None and style:
        descriptor = model.class_descriptor(style)
    histogram = None if descriptor is None or not turn_passes else descriptor[:JUMP_ANGLE_BINS]
    if histogram is None and not spacing_passes:
        return None
    path = AimPath.from_kinds(kind) if histogram is not None else None

    def constrain(x0, kwargs):  # positions and distances in the same normalized units
        if histogram is not None:
            x0 = match_turns(x0, histogram, path, JUMP_PX / POSITION_SCALE, passes=turn_passes, bounds=bounds)
        if spacing_passes:
            x0 = match_spacing(x0, kwargs["distance"], kwargs["mask"], passes=spacing_passes)
        return x0

    return constrain


def remap(beatmap, model, ckpt: dict, style: int, **generate_kwargs) -> list[str]:
    """The source beatmap with every object placed anew, as .osu texts (one per variant)."""
    from data.beatmap.codec import decode, encode

    datapoints = encode(beatmap)
    variants = generate_positions(model, ckpt, datapoints, style, **generate_kwargs)
    return [decode(beatmap, positions) for positions in variants]


def set_version(osu_text: str, version: str) -> str:
    """Rename the difficulty so the new map sits beside its source in osu! instead of replacing it."""
    return re.sub(r"(?m)^(Version\s*:).*?(\r?)$", lambda m: f"{m.group(1)}{version}{m.group(2)}", osu_text, count=1)


def default_output(beatmap, label: str, seed: int, variant: int | None) -> Path:
    stem = Path(beatmap.path).stem if beatmap.path else beatmap.md5
    suffix = f" v{variant + 1}" if variant is not None else ""
    name = re.sub(r'[<>:"/\\|?*]', "_", f"{stem} (osu-dit {label}, seed {seed}){suffix}.osu")
    return Path.cwd() / name


# ----------------------------------------------------------------------------------------------------------------
# Replays
# ----------------------------------------------------------------------------------------------------------------


def load_replay_model(ckpt_path: str | Path = DEFAULT_REPLAY_CKPT):
    """(model in eval mode, checkpoint dict, PlayerTable) from a replay-model checkpoint."""
    import dit.replay_model  # noqa: F401  (registers ReplayDiT)
    from data.replay_dataset import PlayerTable
    from dit.checkpoint import build_model_from_checkpoint, load_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    if ckpt["config"].get("model") != "ReplayDiT":
        raise BadInputError(ckpt_path, f"holds a {ckpt['config'].get('model')}, not a replay model")
    return build_model_from_checkpoint(ckpt), ckpt, PlayerTable.from_dict(ckpt["extra"]["players"])


def resolve_player(players, name: str | None) -> int:
    """Player class for a username (0, the null class, when none is given)."""
    if name is None:
        return 0
    index = players.class_of(name)
    if index == 0:
        raise BadInputError(
            None,
            f"--player {name!r} is not a player this checkpoint knows (python sample.py --list-players shows them)",
        )
    return index


def replay_ticks(play, step_ms: float) -> np.ndarray:
    """Grid ticks (play time, whole multiples of the step, none before 1 step) covering the map's objects."""
    objects = play.hit_objects
    if not objects:
        raise BadInputError(None, "the map has no hit objects to play")
    first = max(1, int(np.floor((objects[0].time_ms - REPLAY_LEAD_IN_MS) / step_ms)))
    last = int(np.ceil((max(o.end_time_ms for o in objects) + REPLAY_TAIL_MS) / step_ms))
    return step_ms * np.arange(first, max(last, first) + 1, dtype=np.float64)


def generate_replay_grid(
    play,
    model,
    ckpt: dict,
    player: int,
    *,
    cfg_scale: float = 1.0,
    steps: int = 20,
    sampler: str = "ddim",
    seed: int = 0,
    temperature: float = DEFAULT_REPLAY_TEMPERATURE,
    progress: bool = True,
):
    """A ReplayGrid (play time) of the model playing a modded map (data.replay.mods.PlayBeatmap), whole map in one pass.

    `temperature` scales the starting noise: below 1 the deterministic samplers land nearer the most likely
    play (tighter aim, steadier timing), at 1 they draw from the full spread the model learned."""
    import torch

    from data.replay.osr import ReplayGrid
    from data.replay_dataset import map_features
    from data.replay_windows import CHANNELS, decode_targets, model_features, reference_path
    from dit import diffusion

    step_ms = float(ckpt["extra"]["data_stats"]["step_ms"])
    ticks = replay_ticks(play, step_ms)
    features = map_features(play, ticks)
    # Checkpoints from before the reference kind was recorded were trained on the linear path.
    reference = reference_path(features, ckpt["extra"]["data_stats"].get("reference", "linear"))
    extra = {
        "features": torch.from_numpy(model_features(features, reference))[None],
        "time_ms": torch.from_numpy((ticks - ticks[0]).astype(np.float32))[None],
        "player": torch.tensor([int(player)]),
        "mask": torch.ones(1, len(ticks), dtype=torch.bool),
    }
    device = next(model.parameters()).device
    extra = {k: v.to(device) for k, v in extra.items()}
    generator = torch.Generator().manual_seed(seed)
    noise = (torch.randn((1, len(ticks), len(CHANNELS)), generator=generator) * temperature).to(device)
    prediction = ckpt["extra"].get("prediction", "v")
    model_fn = diffusion.denoiser(diffusion.guided(model, cfg_scale), prediction=prediction)
    with torch.inference_mode():
        x0 = diffusion.SAMPLERS[sampler](
            model_fn, noise, steps, extra_args=extra, disable=not progress, generator=generator
        )
    x, y, k1, k2 = decode_targets(x0[0].float().cpu().numpy(), reference)
    return ReplayGrid(ticks, x, y, k1, k2, step_ms, play.rate)


def play(
    beatmap,
    model,
    ckpt: dict,
    player: int = 0,
    mods: int | str = 0,
    *,
    output: str | Path | None = None,
    player_name: str = REPLAY_PLAYER_NAME,
    **generate_kwargs,
) -> bytes:
    """An osu!stable .osr of the model playing `beatmap` (data.beatmap.osu_file.Beatmap) with `mods`; written to
    `output` when given. The header names the map's MD5 and carries the judged hit counts, combo and life bar."""
    from data.replay.gameplay import judge
    from data.replay.mods import apply_mods, parse_mods
    from data.replay.osr import grid_frames, write_replay

    flags = parse_mods(mods) if isinstance(mods, str) else int(mods)
    modded = apply_mods(beatmap, flags)
    grid = generate_replay_grid(modded, model, ckpt, player, **generate_kwargs)
    seed = int(generate_kwargs.get("seed", 0))
    return write_replay(
        output,
        beatmap_md5=beatmap.md5,
        player=player_name,
        mods=flags,
        frames=grid_frames(grid),
        judgement=judge(modded, grid),
        rng_seed=seed,
    )


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def strength_value(text: str) -> float:
    """argparse type of --strength (sample.py and testing/evaluate.py): a float in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, not {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from dit.diffusion import SAMPLERS

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
        help=f"classifier-free guidance scale (1 = one pass; default {STYLE_CFG_SCALE:g} for a map style, else 1)",
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
        "--strength",
        type=strength_value,
        default=1.0,
        help="how much of the source's layout to rework, in (0, 1]: 1 places every object anew; lower values "
        "start from the source's own positions under that much noise and keep more of them (0.3: objects move "
        "about half as far as at 1)",
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
    p.add_argument("--player", help="play like this player (see --list-players; default: no player)")
    p.add_argument("--mods", default="", help="mods of the replay, e.g. HR, DT, HDHR (default: none)")
    p.add_argument("--replay-ckpt", type=Path, default=DEFAULT_REPLAY_CKPT, help="replay-model checkpoint")
    p.add_argument("--list-players", action="store_true", help="print the players the replay checkpoint knows")
    p.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_REPLAY_TEMPERATURE,
        help="replays: scale of the starting noise (below 1: tighter, more accurate play; 1: the full human spread)",
    )
    p.add_argument("--preview", type=Path, help="PNG of the new map beside its source (with --replay, the cursor)")
    p.add_argument("--preview-time", type=float, help="song time in ms where the preview opens (default: a busy part)")
    p.add_argument("--animation", type=Path, help="GIF of a few seconds of the replay (needs --replay/--replay-only)")
    p.add_argument("--osz", type=Path, help="pack the new map(s) with the set's audio and background into an .osz")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    args = p.parse_args(argv)
    if not (args.list_styles or args.list_players) and args.beatmap is None:
        p.error("--beatmap is required (or --list-styles / --list-players)")
    if args.num_variants < 1 or args.num_sampling_steps < 1:
        p.error("--num-variants and --num-sampling-steps must be at least 1")
    if args.spacing_passes < 0 or args.turn_passes < 0:
        p.error("--spacing-passes and --turn-passes must be 0 or more")
    if args.animation and not (args.replay or args.replay_only):
        p.error("--animation plays a replay: add --replay (or --replay-only)")
    if args.osz and args.replay_only:
        p.error("--osz packs a remapped map; --replay-only writes none")
    return args


def list_styles(styles) -> None:
    for index in range(1, len(styles)):
        print(f"{index}\t{styles.describe(index)}")


def list_players(players) -> None:
    for index, name in enumerate(players.players, start=1):
        print(f"{index}\t{name}")


def default_replay_output(beatmap, label: str, seed: int) -> Path:
    stem = Path(beatmap.path).stem if beatmap.path else beatmap.md5
    return Path.cwd() / re.sub(r'[<>:"/\\|?*]', "_", f"{stem} (osu-dit {label}, seed {seed}).osr")


def pick_device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise BadInputError(None, "--device cuda: no CUDA GPU is visible to torch")
    return "cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name)


def run(args: argparse.Namespace) -> list[Path]:
    from data.atomic import write_text_atomic
    from data.beatmap.inputs import read_beatmap_input
    from data.beatmap.osu_file import read_beatmap
    from data.replay.mods import mods_to_string, parse_mods

    device = pick_device(args.device)
    replaying = args.replay or args.replay_only or args.list_players
    if replaying:
        mods = parse_mods(args.mods)
        replay_model, replay_ckpt, players = load_replay_model(args.replay_ckpt)
        replay_model.to(device)
        if args.list_players:
            list_players(players)
            return []
        player = resolve_player(players, args.player)
        play_kwargs = {
            "player": player,
            "mods": mods,
            "player_name": REPLAY_PLAYER_NAME if player == 0 else f"{REPLAY_PLAYER_NAME} {players.players[player - 1]}",
            "cfg_scale": 1.0 if args.cfg_scale is None else args.cfg_scale,
            "steps": args.num_sampling_steps,
            "sampler": args.sampler,
            "seed": args.seed,
            "temperature": args.temperature,
            "progress": args.progress,
        }
        replay_label = " ".join(filter(None, [args.player or "", mods_to_string(mods)])) or "replay"
    if args.replay_only:
        beatmap = read_beatmap_input(args.beatmap, args.difficulty)
        out = args.output or default_replay_output(beatmap, replay_label, args.seed)
        play(beatmap, replay_model, replay_ckpt, output=out, **play_kwargs)
        print(f"wrote {out}")
        return [out, *write_companions(args, beatmap, [out])]

    model, ckpt, styles = load_position_model(args.ckpt)
    model.to(device)
    if args.list_styles:
        list_styles(styles)
        return []
    style = resolve_style(styles, args.style_id, args.mapper)
    reference = reference_features(model, args.style_from) if args.style_from else None
    beatmap = read_beatmap_input(args.beatmap, args.difficulty)
    own = None if style or reference or args.unconditional else own_style_features(model, beatmap)
    texts = remap(
        beatmap,
        model,
        ckpt,
        style,
        cfg_scale=guidance_scale(args.cfg_scale, styled=bool(style or reference)),
        steps=args.num_sampling_steps,
        sampler=args.sampler,
        seed=args.seed,
        num_variants=args.num_variants,
        progress=args.progress,
        style_features=reference[1] if reference else own,
        spacing_passes=args.spacing_passes,
        turn_passes=args.turn_passes,
        strength=args.strength,
    )
    if reference:
        label = reference[0]
    elif own is not None:
        label = OWN_STYLE_LABEL
    else:
        label = "no style" if style == 0 else (f"style {args.style_id}" if args.style_id else f"mapper {args.mapper}")
    if args.strength < 1.0:
        label += f", strength {args.strength:g}"
    version = beatmap.version or "Unknown"
    written = []
    for i, text in enumerate(texts):
        variant = i if len(texts) > 1 else None
        out = args.output if args.output and len(texts) == 1 else None
        if out is None and args.output:
            out = args.output.with_name(f"{args.output.stem} v{i + 1}{args.output.suffix}")
        out = out or default_output(beatmap, label, args.seed, variant)
        text = set_version(text, f"{version} (osu-dit {label}{f' v{i + 1}' if variant is not None else ''})")
        write_text_atomic(out, text)
        written.append(out)
        print(f"wrote {out}")
        if args.replay:
            # Read back what was written: the replay must name the MD5 of these exact bytes.
            osr = out.with_suffix(".osr")
            play(read_beatmap(out), replay_model, replay_ckpt, output=osr, **play_kwargs)
            written.append(osr)
            print(f"wrote {osr}")
    return written + write_companions(args, beatmap, written)


def write_companions(args: argparse.Namespace, source, written: list[Path]) -> list[Path]:
    """The --preview PNGs, --animation GIFs and --osz archive of the maps and replays just written."""
    from data.beatmap.osu_file import read_beatmap
    from data.beatmap.osz import export_osz, osu_member_name
    from data.render.animation import render_animation
    from data.render.preview import render_preview
    from data.replay.osr import read_replay

    maps = [p for p in written if p.suffix == ".osu"]
    replays = [read_replay(p) for p in written if p.suffix == ".osr"]
    shown = [read_beatmap(p) for p in maps] or [source]  # --replay-only plays the source itself
    headings = ("source", "remap") if maps else ("map", "replay")
    out = []
    for i, beatmap in enumerate(shown):
        replay = replays[i] if replays else None
        if args.preview:
            out.append(numbered(args.preview, i, len(shown)))
            render_preview(out[-1], source, beatmap, time_ms=args.preview_time, replay=replay, headings=headings)
        if args.animation:
            out.append(numbered(args.animation, i, len(shown)))
            render_animation(out[-1], beatmap, replay, start_ms=args.preview_time)
    if args.osz:
        members = {osu_member_name(m): p.read_bytes() for m, p in zip(shown, maps, strict=True)}
        for name in export_osz(args.osz, args.beatmap, source, members).missing:
            print(f"warning: {name} is not in the set; {args.osz} has no copy of it", file=sys.stderr)
        out.append(args.osz)
    for path in out:
        print(f"wrote {path}")
    return out


def numbered(path: Path, index: int, count: int) -> Path:
    """`path` for one of `count` variants: "x v2.png" when there are several."""
    return path if count == 1 else path.with_name(f"{path.stem} v{index + 1}{path.suffix}")


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output path that is a folder before any work is done."""
    for path in (args.output, args.preview, args.animation, args.osz):
        if path is not None and path.is_dir():
            raise BadInputError(path, "is a folder; give a file name to write")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_outputs(args)
        run(args)
    except BadInputError as err:
        return refusal_exit(err, args.debug)
    except OSError as err:  # an output that cannot be written (no permission, a file in place of a folder, ...)
        if args.debug:
            raise
        print(f"error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
