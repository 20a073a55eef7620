"""One run of the tool, as the command line, the notebook and the tests ask for it: remap and/or play a map and
write every output. `sample.py` parses its flags into a Job; the notebook builds one directly."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from data.atomic import write_text_atomic
from data.beatmap.codec import decode
from data.beatmap.inputs import read_beatmap_input
from data.beatmap.osu_reader import read_beatmap
from data.errors import BadInputError
from data.replay.mods import mods_to_string, parse_mods
from pipeline.outputs import check_outputs, default_output, remap_text, write_companions, write_remap
from pipeline.play import (
    DEFAULT_KEY_TEMPERATURE,
    DEFAULT_REPLAY_CKPT,
    DEFAULT_REPLAY_TEMPERATURE,
    PLAYER_CFG_SCALE,
    REPLAY_PLAYER_NAME,
    SETTLE_WIDTH_PX,
    choose_player,
    describe_players,
    load_replay_model,
    play,
    player_features,
)
from pipeline.playtest import playtest, remap_resampler, replay_player
from pipeline.remap import (
    DEFAULT_CKPT,
    OWN_TURN_PASSES,
    SEPARATION_PASSES,
    SPACING_PASSES,
    TURN_PASSES,
    StyleRequest,
    choose_style,
    guidance_scale,
    load_position_model,
    remap_positions,
)


@dataclass
class Job:
    """Everything a run needs; the defaults are the command line's."""

    beatmap: Path | None = None
    difficulty: str | None = None
    style_id: int | None = None
    mapper: str | None = None
    style_from: Path | None = None
    unconditional: bool = False
    cfg_scale: float | None = None
    num_sampling_steps: int = 20
    sampler: str = "ddim"
    spacing_passes: int = SPACING_PASSES
    turn_passes: int = TURN_PASSES
    own_turn_passes: int = OWN_TURN_PASSES
    separation_passes: int = SEPARATION_PASSES
    slider_shapes: str = "source"
    spread: str = "style"
    strength: float = 1.0
    grid: str = "auto"
    seed: int = 0
    num_variants: int = 1
    output: Path | None = None
    ckpt: Path = DEFAULT_CKPT
    device: str = "auto"
    list_styles: bool = False
    replay: bool = False
    replay_only: bool = False
    player: str | None = None
    player_from: Path | None = None
    player_map: Path | None = None
    mods: str = ""
    replay_ckpt: Path = DEFAULT_REPLAY_CKPT
    list_players: bool = False
    temperature: float = DEFAULT_REPLAY_TEMPERATURE
    key_temperature: float = DEFAULT_KEY_TEMPERATURE
    still_zone: float = SETTLE_WIDTH_PX
    frame_timing: str = "human"
    preview: Path | None = None
    preview_time: float | None = None
    animation: Path | None = None
    osz: Path | None = None
    playtest: int | None = None  # rounds of re-sampling what plays badly (0: report only; None: no playtest)
    progress: bool = True


def pick_device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInputError(None, "--device cuda: no CUDA GPU is visible to torch")
    return "cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name)


def run(job: Job) -> list[Path]:
    """Do what the job asks; return the paths written (nothing for the listings, which print)."""
    check_outputs(job.output, job.preview, job.animation, job.osz)
    device = pick_device(job.device)
    if job.replay or job.replay_only or job.list_players or job.playtest is not None:
        mods = parse_mods(job.mods)
        replay_model, replay_ckpt, players = load_replay_model(job.replay_ckpt)
        replay_model.to(device)
        if job.list_players:
            print(describe_players(replay_model, replay_ckpt, players))
            return []
        choice = choose_player(replay_ckpt, job.player, job.player_from, job.player_map)
        play_kwargs = {
            "player": choice.index,
            "player_features": player_features(replay_model, replay_ckpt, choice),
            "player_window_ms": choice.window_300_ms,
            "mods": mods,
            "cfg_scale": job.cfg_scale if job.cfg_scale is not None else PLAYER_CFG_SCALE if choice.asked else 1.0,
            "steps": job.num_sampling_steps,
            "sampler": job.sampler,
            "seed": job.seed,
            "temperature": job.temperature,
            "key_temperature": job.key_temperature,
            "still_zone": job.still_zone,
            "frame_timing": job.frame_timing,
            "progress": job.progress,
        }
        player_name = " ".join(filter(None, [REPLAY_PLAYER_NAME, choice.label]))
    if job.replay_only:
        beatmap = read_beatmap_input(job.beatmap, job.difficulty)
        label = " ".join(filter(None, [choice.label, mods_to_string(mods)])) or "replay"
        out = job.output or default_output(beatmap, label, job.seed, None, ".osr")
        play(beatmap, replay_model, replay_ckpt, output=out, player_name=player_name, **play_kwargs)
        print(f"wrote {out}")
        return [out, *companions(job, beatmap, [out])]

    model, ckpt, styles = load_position_model(job.ckpt)
    model.to(device)
    if job.list_styles:
        for index in range(1, len(styles)):
            print(f"{index}\t{styles.describe(index)}")
        return []
    request = StyleRequest(job.style_id, job.mapper, job.style_from, job.unconditional)
    beatmap = read_beatmap_input(job.beatmap, job.difficulty)
    style = choose_style(model, styles, request, beatmap)
    remap_kwargs = {
        "cfg_scale": guidance_scale(job.cfg_scale, style.styled),
        "steps": job.num_sampling_steps,
        "sampler": job.sampler,
        "style_features": style.features,
        "spacing_passes": job.spacing_passes,
        "turn_passes": job.turn_passes,
        "own_turn_passes": job.own_turn_passes,
        "separation_passes": job.separation_passes,
        "slider_shapes": job.slider_shapes,
        "spread": job.spread,
        "strength": job.strength,
        "grid": job.grid,
    }
    variants = remap_positions(
        beatmap, model, ckpt, style.index, seed=job.seed, num_variants=job.num_variants, progress=job.progress,
        **remap_kwargs,
    )  # fmt: skip
    label = style.label + (f", strength {job.strength:g}" if job.strength < 1.0 else "")

    def text_of(positions, index):  # the bytes write_remap writes: a replay names their MD5
        return remap_text(decode(beatmap, positions), beatmap, label, index, len(variants))

    player = replay_player(replay_model, replay_ckpt, **play_kwargs) if job.playtest is not None else None
    written, source_play = [], None
    for i, positions in enumerate(variants):
        report = None
        if player is not None:
            resample = remap_resampler(beatmap, model, ckpt, style.index, job.seed, i, **remap_kwargs)
            report = playtest(beatmap, positions, partial(text_of, index=i), player, resample, rounds=job.playtest,
                              source_play=source_play)  # fmt: skip
            source_play = report.source  # the same player plays the same source for every variant
            positions = report.positions
            print(report.summary())
        path = write_remap(decode(beatmap, positions), beatmap, label, job.seed, job.output, i, len(variants))
        written.append(path)
        if report is not None:
            table = path.with_suffix(".playtest.csv")
            write_text_atomic(table, report.table())
            written.append(table)
            print(f"wrote {table}")
        if job.replay:
            # Read back what was written: the replay must name the MD5 of these exact bytes.
            osr = path.with_suffix(".osr")
            play(read_beatmap(path), replay_model, replay_ckpt, output=osr, player_name=player_name, **play_kwargs)
            written.append(osr)
            print(f"wrote {osr}")
    return written + companions(job, beatmap, written)


def companions(job: Job, source, written: list[Path]) -> list[Path]:
    return write_companions(source, job.beatmap, written, job.preview, job.preview_time, job.animation, job.osz)
