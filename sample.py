"""Remap a beatmap with a trained position DiT, optionally in the style of another map or mapper.

    python sample.py --beatmap x.osu                       # shipped checkpoint, fast sampler, unconditional
    python sample.py --beatmap x.osu --style-id 1849273    # in the style of a beatmap the model knows
    python sample.py --beatmap set.osz --difficulty Hard --mapper Sotarks --cfg-scale 2
    python sample.py --list-styles                         # the beatmaps and mappers a checkpoint knows

The functions here are what the Colab notebook and the tests call; main() only parses arguments.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from data.errors import BadInputError

ROOT = Path(__file__).resolve().parent
DEFAULT_CKPT = ROOT / "checkpoints" / "position.pt"


# ----------------------------------------------------------------------------------------------------------------
# Model and styles
# ----------------------------------------------------------------------------------------------------------------


def load_position_model(ckpt_path: str | Path = DEFAULT_CKPT):
    """(model in eval mode, checkpoint dict, StyleTable) from a position-model checkpoint."""
    from data.styles import StyleTable
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
) -> np.ndarray:
    """New positions in px, [num_variants, N, 2], for a whole map in one pass (attention cost is linear in N)."""
    import torch

    from data.dataset import denormalize_positions, full_map_sample
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
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch["position"].shape, generator=generator)
    prediction = ckpt["extra"].get("prediction", "v")
    model_fn = diffusion.denoiser(diffusion.guided(model, cfg_scale), prediction=prediction)
    with torch.inference_mode():
        x0 = diffusion.SAMPLERS[sampler](
            model_fn, noise, steps, extra_args=extra, disable=not progress, generator=generator
        )
    return np.stack([denormalize_positions(v) for v in x0.numpy()])


def remap(beatmap, model, ckpt: dict, style: int, **generate_kwargs) -> list[str]:
    """The source beatmap with every object placed anew, as .osu texts (one per variant)."""
    from data.codec import decode, encode

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
# Command line
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from dit.diffusion import SAMPLERS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beatmap", type=Path, help="the .osu to remap, or an .osz (with --difficulty if it holds several)")
    p.add_argument("--difficulty", help="difficulty (Version) to take from an .osz")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--style-id", type=int, help="BeatmapID whose style to map in (see --list-styles)")
    style.add_argument("--mapper", help="mapper name whose style to map in (see --list-styles)")
    p.add_argument("--cfg-scale", type=float, default=1.0, help="classifier-free guidance scale (1 = one pass)")
    p.add_argument("--num-sampling-steps", type=int, default=20, help="denoising steps")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), default="ddim", help="sampler")
    p.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same bytes")
    p.add_argument("--num-variants", type=int, default=1, help="write this many remaps with different noise")
    p.add_argument("--output", type=Path, help="output .osu (default: a descriptive name in the working directory)")
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT, help="position-model checkpoint")
    p.add_argument("--list-styles", action="store_true", help="print the beatmaps and mappers the checkpoint knows")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    args = p.parse_args(argv)
    if not args.list_styles and args.beatmap is None:
        p.error("--beatmap is required (or --list-styles)")
    if args.num_variants < 1 or args.num_sampling_steps < 1:
        p.error("--num-variants and --num-sampling-steps must be at least 1")
    return args


def list_styles(styles) -> None:
    for index in range(1, len(styles)):
        print(f"{index}\t{styles.describe(index)}")


def run(args: argparse.Namespace) -> list[Path]:
    from data.atomic import write_text_atomic
    from data.inputs import read_beatmap_input

    model, ckpt, styles = load_position_model(args.ckpt)
    if args.list_styles:
        list_styles(styles)
        return []
    style = resolve_style(styles, args.style_id, args.mapper)
    beatmap = read_beatmap_input(args.beatmap, args.difficulty)
    texts = remap(
        beatmap,
        model,
        ckpt,
        style,
        cfg_scale=args.cfg_scale,
        steps=args.num_sampling_steps,
        sampler=args.sampler,
        seed=args.seed,
        num_variants=args.num_variants,
        progress=args.progress,
    )
    label = "no style" if style == 0 else (f"style {args.style_id}" if args.style_id else f"mapper {args.mapper}")
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
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except BadInputError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
