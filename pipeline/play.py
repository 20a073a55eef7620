"""Play a beatmap with the replay DiT: the model's cursor and keys on the play-time grid, judged, as an .osr."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch

from data.beatmap.osu_file import Beatmap
from data.beatmap.osu_reader import read_beatmap
from data.errors import BadInputError
from data.replay.frame_timing import FrameTiming
from data.replay.gameplay import judge
from data.replay.habits import describe, normalize_habits, replay_descriptor
from data.replay.mods import NOT_HUMAN_MODS, PlayBeatmap, apply_mods, parse_mods
from data.replay.osr import ReplayFrames, ReplayGrid, grid_frames, read_replay, write_replay
from data.replay_io import (
    CHANNELS,
    LEAD_IN_MS,
    SETTLE_SPEED_PX,
    SETTLE_WIDTH_PX,
    TAIL_MS,
    decode_targets,
    hold_taps,
    map_features,
    model_features,
    reference_path,
    settle,
    unhairpin,
)
from data.tables import PlayerTable
from dit import diffusion
from dit.checkpoint import build_model_from_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPLAY_CKPT = ROOT / "checkpoints" / "replay.pt"
REPLAY_PLAYER_NAME = "osu-dit"
# Starting-noise scales of the cursor and the key channels: below 1 the deterministic samplers land nearer
# the most likely play. Figures for the choice: docs/measurements.md (replays).
DEFAULT_REPLAY_TEMPERATURE = 1.0
DEFAULT_KEY_TEMPERATURE = 0.5
# Guidance toward an asked player's habits: of the scales measured (1-3) the one where habits follow and a strong
# player's accuracy stays near the humans' at two seeds (docs/measurements.md, player style).
PLAYER_CFG_SCALE = 3.0
FrameTimingKind = Literal["human", "grid"]
FRAME_TIMINGS: tuple[str, ...] = get_args(FrameTimingKind)


def load_replay_model(ckpt_path: str | Path = DEFAULT_REPLAY_CKPT):
    """(model in eval mode, checkpoint dict, PlayerTable) from a replay-model checkpoint."""
    ckpt = load_checkpoint(ckpt_path)
    if ckpt["config"].get("model") != "ReplayDiT":
        raise BadInputError(ckpt_path, f"holds a {ckpt['config'].get('model')}, not a replay model")
    return build_model_from_checkpoint(ckpt), ckpt, PlayerTable.from_dict(ckpt["extra"]["players"])


@dataclass(frozen=True)
class PlayerChoice:
    """Whom to play as: a player class (0: none) and the raw habit descriptor asked for (None: the class's
    own, or no player), with a label for file names and the replay header, and the 300 window of the maps the
    habits were measured on (None where unknown)."""

    index: int
    habits: np.ndarray | None
    label: str
    window_300_ms: float | None = None  # the 300 window (ms of play time) the asked hit error was measured against

    @property
    def asked(self) -> bool:
        return bool(self.index) or self.habits is not None


def choose_player(ckpt: dict, name: str | None, player_from: Path | None, player_map: Path | None) -> PlayerChoice:
    """A PlayerChoice for --player NAME, --player-from replay.osr (with its map found by MD5 beside it, or
    --player-map; measured over windows of the checkpoint's training length), or neither, of a replay checkpoint."""
    players = PlayerTable.from_dict(ckpt["extra"]["players"])
    if player_from is None:
        index = resolve_player(players, name)
        return PlayerChoice(index, None, players.players[index - 1] if index else "", class_window(ckpt, index))
    record = read_replay(player_from)
    if record.mods & NOT_HUMAN_MODS:
        raise BadInputError(player_from, "is played with relax, autopilot or autoplay: no human habits to copy")
    map_path = player_map or _map_beside(player_from, record.beatmap_md5)
    beatmap = read_beatmap(map_path)
    if beatmap.md5 != record.beatmap_md5:
        raise BadInputError(map_path, f"is not the map {player_from.name} was played on (MD5 differs)")
    played = apply_mods(beatmap, record.mods)
    habits = replay_descriptor(record, played, int(ckpt["extra"]["data_stats"]["seq_len"]))
    return PlayerChoice(0, habits, f"like {record.player}", played.hit_windows_ms[0])


def class_window(ckpt: dict, index: int) -> float | None:
    """The median 300 window (ms of play time) of a player class's training maps, which their hit error was
    measured against (None for the null class, a player without windows, or a checkpoint that predates it)."""
    windows = ckpt["extra"].get("habits", {}).get("player_window_300_ms") or []
    return windows[index] if 0 < index < len(windows) and windows[index] > 0 else None


def _map_beside(replay: Path, md5: str) -> Path:
    """The .osu with this MD5 in the replay's folder or below it, or in a Songs folder beside that folder (an
    osu! install keeps Replays/ and Songs/ side by side)."""
    for folder in (replay.parent, replay.parent.parent / "Songs"):
        for path in sorted(folder.rglob("*.osu")) if folder.is_dir() else []:
            if hashlib.md5(path.read_bytes()).hexdigest() == md5:
                return path
    raise BadInputError(replay, f"its map (MD5 {md5}) is not in {replay.parent}; give it with --player-map")


def player_features(model, ckpt: dict, choice: PlayerChoice) -> np.ndarray | None:
    """The normalised descriptor the network reads for a choice (None for models that read none; zeros, the
    null condition, when no player is asked for)."""
    if not model.config.class_feature_dim:
        if choice.habits is not None:
            raise BadInputError(
                None, "the replay checkpoint predates player habits: --player-from needs one trained with them"
            )
        return None
    if choice.habits is not None:
        return normalize_habits(choice.habits, ckpt["extra"]["habits"])
    if not choice.index:
        return np.zeros(model.config.class_feature_dim, np.float32)
    descriptor = class_habits(model, choice.index)
    if descriptor is None:
        raise BadInputError(
            None,
            f"--player {choice.label!r}: the replay checkpoint knows no habits of this player (no replay of theirs "
            "with its map in training); give one of their replays with --player-from",
        )
    return descriptor


def at_window(features: np.ndarray, ckpt: dict, asked_window_ms: float, map_window_ms: float) -> np.ndarray:
    """An asked normalised descriptor with its hit error scaled from the 300 window it was measured against to
    the map's: players hit earlier on lenient maps (over the corpus's paired replays the mean hit error falls
    with the window), so a habit of 30 ms early on wide windows is kept as a share of the window, not in ms."""
    stats = ckpt["extra"]["habits"]
    i = list(stats["names"]).index("hit_error_ms")
    out = np.array(features, np.float32)
    raw = out[i] * stats["scale"][i] + stats["center"][i]
    out[i] = (raw * map_window_ms / asked_window_ms - stats["center"][i]) / stats["scale"][i]
    return out


def class_habits(model, index: int) -> np.ndarray | None:
    """The normalised habits the model asks for as a player class; None when it reads none, or when the player
    had no replay with its map in training (their row was left at zero)."""
    descriptor = model.class_descriptor(index)
    if descriptor is None or not descriptor.any():
        return None
    return descriptor.float().cpu().numpy()


def raw_habits(features: np.ndarray, ckpt: dict) -> dict[str, float]:
    """A normalised descriptor the network reads back in the habits' own units (data.replay.habits)."""
    stats = ckpt["extra"]["habits"]
    raw = np.asarray(features, np.float64) * np.array(stats["scale"]) + np.array(stats["center"])
    return dict(zip(stats["names"], (float(v) for v in raw), strict=True))


def describe_players(model, ckpt: dict, players: PlayerTable) -> str:
    """One line per known player: class, name, and the habits the checkpoint asks for as them, in words."""
    reads_habits = bool(model.config.class_feature_dim)
    lines = []
    for index, name in enumerate(players.players, start=1):
        descriptor = class_habits(model, index)
        if descriptor is None:
            lines.append(
                f"{index}\t{name}" + ("\t(no paired replay in training: habits unknown)" if reads_habits else "")
            )
            continue
        words = describe(raw_habits(descriptor, ckpt))
        window = class_window(ckpt, index)
        if window is not None:  # the hit error is asked as a share of this window
            words += f" (on maps with a {window:.0f} ms 300 window)"
        lines.append(f"{index}\t{name}\t{words}")
    return "\n".join(lines)


def resolve_player(players: PlayerTable, name: str | None) -> int:
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


def replay_ticks(play: PlayBeatmap, step_ms: float) -> np.ndarray:
    """Grid ticks (play time, whole multiples of the step, none before 1 step) covering the map's objects."""
    objects = play.hit_objects
    if not objects:
        raise BadInputError(None, "the map has no hit objects to play")
    first = max(1, int(np.floor((objects[0].time_ms - LEAD_IN_MS) / step_ms)))
    last = int(np.ceil((max(o.end_time_ms for o in objects) + TAIL_MS) / step_ms))
    return step_ms * np.arange(first, max(last, first) + 1, dtype=np.float64)


def generate_replay_grid(
    play: PlayBeatmap,
    model,
    ckpt: dict,
    player: int,
    *,
    player_features: np.ndarray | None = None,
    cfg_scale: float = 1.0,
    steps: int = 20,
    sampler: str = "ddim",
    seed: int = 0,
    temperature: float = DEFAULT_REPLAY_TEMPERATURE,
    key_temperature: float = DEFAULT_KEY_TEMPERATURE,
    still_zone: float = SETTLE_WIDTH_PX,
    still_speed: float = SETTLE_SPEED_PX,
    hold_share: float | None = None,
    progress: bool = True,
) -> ReplayGrid:
    """A ReplayGrid (play time) of the model playing a modded map (data.replay.mods.PlayBeatmap), whole map in one pass.

    `temperature` scales the starting noise of the cursor channels and `key_temperature` that of the keys:
    below 1 the deterministic samplers land nearer the most likely play (tighter aim, steadier timing), at 1
    they draw from the full spread the model learned. `player_features` (pipeline.play.player_features) is the
    habit descriptor the network reads beside the class. The cursor rests in a still zone of `still_zone` px
    (data.replay_io.settle; 0: off), fading to none at `still_speed` px a tick (`player_still_speed` gives an asked
    player's). `hold_share` (an asked player's) sets how much of the gap to the next press taps are held
    (data.replay_io.hold_taps; None: as the network holds them)."""
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
    if player_features is not None:
        extra["player_features"] = torch.from_numpy(np.asarray(player_features, np.float32))[None]
    device = next(model.parameters()).device
    extra = {k: v.to(device) for k, v in extra.items()}
    generator = torch.Generator().manual_seed(seed)
    scale = torch.tensor([key_temperature if c.startswith("key") else temperature for c in CHANNELS])
    noise = (torch.randn((1, len(ticks), len(CHANNELS)), generator=generator) * scale).to(device)
    prediction = ckpt["extra"].get("prediction", "v")
    model_fn = diffusion.denoiser(diffusion.guided(model, cfg_scale), prediction=prediction)
    with torch.inference_mode():
        x0 = diffusion.SAMPLERS[sampler](
            model_fn, noise, steps, extra_args=extra, disable=not progress, generator=generator
        )
    x, y, k1, k2 = decode_targets(x0[0].float().cpu().numpy(), reference)
    if hold_share is not None and np.isfinite(hold_share):
        # The network holds taps about half the gap whoever is asked; players differ (docs/measurements.md).
        k1, k2 = hold_taps(k1, k2, features, hold_share)
    cursor = settle(unhairpin(np.stack([x, y], axis=1)), still_zone, still_speed).astype(np.float32)
    return ReplayGrid(ticks, cursor[:, 0], cursor[:, 1], k1, k2, step_ms, play.rate)


def play_frames(
    beatmap: Beatmap,
    model,
    ckpt: dict,
    player: int = 0,
    mods: int | str = 0,
    *,
    frame_timing: FrameTimingKind = "human",
    player_features: np.ndarray | None = None,
    player_window_ms: float | None = None,
    **generate_kwargs,
) -> tuple[PlayBeatmap, ReplayFrames]:
    """(the map with `mods` applied, the frames of the model playing it in song time): what play() writes.

    An asked player's hit error is scaled from `player_window_ms` (PlayerChoice.window_300_ms) to the
    modded map's 300 window (`at_window`) when given.

    `frame_timing` "human" lays the model's grid onto frame times drawn from the human replays the checkpoint
    was trained on (data.replay.frame_timing); "grid" (and checkpoints without that profile) gives one frame
    per grid tick."""
    if frame_timing not in FRAME_TIMINGS:
        raise ValueError(f"unknown frame timing {frame_timing!r}, expected one of {FRAME_TIMINGS}")
    flags = parse_mods(mods) if isinstance(mods, str) else int(mods)
    modded = apply_mods(beatmap, flags)
    asked = player_features is not None and bool(np.any(player_features))
    habits = raw_habits(player_features, ckpt) if asked else None
    if habits is not None:
        generate_kwargs.setdefault("still_speed", player_still_speed(habits["rest_share"], ckpt["extra"]["habits"]))
        generate_kwargs.setdefault("hold_share", habits["hold_share"])
        if player_window_ms:
            player_features = at_window(player_features, ckpt, player_window_ms, modded.hit_windows_ms[0])
    grid = generate_replay_grid(modded, model, ckpt, player, player_features=player_features, **generate_kwargs)
    seed = int(generate_kwargs.get("seed", 0))
    profile = ckpt["extra"].get("frame_timing")
    if not (frame_timing == "human" and profile):
        return modded, grid_frames(grid)
    # Seeded by the map too: one seed over many maps draws many human setups, as many players would.
    rng = np.random.default_rng([seed, int(beatmap.md5[:8], 16)])
    name = PlayerTable.from_dict(ckpt["extra"]["players"]).players[player - 1] if player else None
    # Which key a press takes is drawn, not learned (the network alternates all or nothing): by an asked
    # player's own alternation in runs of presses, else by the drawn setup's player's.
    alternation = habits["alternation"] if habits is not None else None
    return modded, FrameTiming.from_dict(profile).frames(grid, rng, player=name, alternation=alternation)


def player_still_speed(asked_rest: float, stats: dict) -> float:
    """The path speed (px a tick) at which an asked player's still zone fades out: the default's times the square
    root of how many times as often as the median training window they rest (data.replay.habits; within
    0.25-8). The network hardly follows the rest it is asked for, so the zone carries part of it; a player who
    rests more gets a zone held to faster paths, not a wider one, which cost accuracy (decisions.md)."""
    center = stats["center"][list(stats["names"]).index("rest_share")]
    return SETTLE_SPEED_PX * float(np.sqrt(np.clip(asked_rest / max(center, 1e-3), 0.25, 8.0)))


def play(
    beatmap: Beatmap,
    model,
    ckpt: dict,
    player: int = 0,
    mods: int | str = 0,
    *,
    output: str | Path | None = None,
    player_name: str = REPLAY_PLAYER_NAME,
    **play_kwargs,
) -> bytes:
    """An osu!stable .osr of the model playing `beatmap` (data.beatmap.osu_file.Beatmap) with `mods`; written to
    `output` when given. The header names the map's MD5 and carries the judged hit counts, combo and life bar.
    The keywords are play_frames' and generate_replay_grid's."""
    modded, frames = play_frames(beatmap, model, ckpt, player, mods, **play_kwargs)
    return write_replay(
        output,
        beatmap_md5=beatmap.md5,
        player=player_name,
        mods=modded.mods,
        frames=frames,
        judgement=judge(modded, frames),
        rng_seed=int(play_kwargs.get("seed", 0)),
    )
