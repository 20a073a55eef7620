"""Playtest a remap: the replay model plays it and its source, each section is judged (misses, aim-correction
snaps), the sections the remap plays worse than the source's are sampled again around the rest, and the report
gives every section's figures for both maps."""

from __future__ import annotations

import argparse
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from circleguard import KeylessCircleguard, ReplayString
from slider import Beatmap as SliderBeatmap

from data.beatmap.codec import layout
from data.beatmap.osu_file import Beatmap
from data.beatmap.osu_reader import parse_beatmap
from data.replay.gameplay import MISS, Judgement, judge
from data.replay.mods import PlayBeatmap
from data.replay.osr import ReplayFrames, write_replay
from pipeline.play import play_frames
from pipeline.remap import remap_positions

# A section begins at the first new combo this long after the last one began: a phrase a mapper would rework.
SECTION_MS = 8000.0
# Rounds of re-sampling the sections that still play worse than the source's.
PLAYTEST_ROUNDS = 3
# A section plays worse only when its faults exceed the source's by this many standard deviations of the
# difference of two Poisson counts: one play's misses are mostly the replay model's own randomness.
NOISE_SDS = 2.0

Player = Callable[[Beatmap], tuple[PlayBeatmap, ReplayFrames]]  # pipeline.play.play_frames with the job's player
Resampler = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (positions, keep mask, round) -> positions


@dataclass(frozen=True)
class SectionPlay:
    """How one play of a map went, per section."""

    misses: np.ndarray  # int [S]
    snaps: np.ndarray  # int [S]; 0 where circleguard could not read the map
    judgement: Judgement

    @property
    def faults(self) -> np.ndarray:
        return self.misses + self.snaps


@dataclass(frozen=True)
class Playtest:
    positions: np.ndarray  # [N, 2] px: the remap with its bad sections re-sampled
    report: pd.DataFrame  # one row per section: the source's play, the remap's first and its last
    source: SectionPlay
    remap: SectionPlay  # the play of `positions`

    def summary(self) -> str:
        resampled = int((self.report["resampled"] > 0).sum())
        return (
            f"playtest: remap {self.remap.misses.sum()} misses, {self.remap.snaps.sum()} snaps "
            f"(source {self.source.misses.sum()}, {self.source.snaps.sum()}); accuracy "
            f"{self.remap.judgement.accuracy:.3f} (source {self.source.judgement.accuracy:.3f}); "
            f"{resampled} of {len(self.report)} sections re-sampled"
        )

    def table(self) -> str:
        buffer = io.StringIO()
        self.report.to_csv(buffer, index=False)
        return buffer.getvalue()


def rounds_value(text: str) -> int:
    """argparse type of --playtest (sample.py and testing/evaluate.py): a whole number of rounds, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def plays_worse(faults: np.ndarray, source_faults: np.ndarray) -> np.ndarray:
    """Sections whose faults exceed the source's by more than NOISE_SDS standard deviations of chance."""
    return faults - source_faults > NOISE_SDS * np.sqrt(faults + source_faults + 1)


def replay_player(model, ckpt: dict, **play_kwargs) -> Player:
    """The replay model playing a map as pipeline.play.play_frames would with these keywords (no progress bar)."""
    return lambda beatmap: play_frames(beatmap, model, ckpt, **{**play_kwargs, "progress": False})


def remap_resampler(beatmap: Beatmap, model, ckpt: dict, style: int, seed: int, variant: int = 0, **remap_kwargs):
    """pipeline.remap.remap_positions sampling again around the kept datapoints, with noise of its own for every
    variant and round (the keywords are the remap's own, less seed, variants and progress)."""

    def resample(kept: np.ndarray, mask: np.ndarray, round_: int) -> np.ndarray:
        again = seed + 1000 * (variant + 1) + round_
        return remap_positions(beatmap, model, ckpt, style, seed=again, progress=False, keep=(kept, mask),
                               **remap_kwargs)[0]  # fmt: skip

    return resample


def sections(beatmap: Beatmap) -> np.ndarray:
    """[objects] the section of every hit object: a new one begins at the first new combo SECTION_MS or more
    after the current one began."""
    section = np.zeros(len(beatmap.hit_objects), np.int64)
    start, current = None, -1
    for i, h in enumerate(beatmap.hit_objects):
        if start is None or (h.new_combo and h.time_ms - start >= SECTION_MS):
            start, current = h.time_ms, current + 1
        section[i] = current
    return section


def snap_times(beatmap: Beatmap, play: PlayBeatmap, frames: ReplayFrames, judged: Judgement) -> np.ndarray:
    """Song times (ms) of circleguard's aim-correction snaps on hit objects; none where it cannot read the map."""
    osr = write_replay(None, beatmap_md5=beatmap.md5, player="playtest", mods=play.mods, frames=frames,
                       judgement=judged)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cg = KeylessCircleguard()
            replay = ReplayString(osr)
            cg.load(replay)
            return np.array([s.time for s in cg.snaps(replay, beatmap=SliderBeatmap.parse(beatmap.text))], np.float64)
        except Exception:  # slider's faults (Catmull on numpy 2, maps without [Metadata]): misses still judge
            return np.zeros(0)


def play_sections(beatmap: Beatmap, section: np.ndarray, player: Player) -> SectionPlay:
    """Play the map and count misses and snaps in each section."""
    modded, frames = player(beatmap)
    judged = judge(modded, frames)
    count = int(section.max()) + 1
    misses = np.bincount(section, weights=judged.result == MISS, minlength=count).astype(np.int64)
    times = np.array([h.time_ms for h in beatmap.hit_objects], np.float64)
    snapped = np.abs(times[None, :] - snap_times(beatmap, modded, frames, judged)[:, None]).argmin(axis=1)
    snaps = np.bincount(section[snapped], minlength=count).astype(np.int64)
    return SectionPlay(misses, snaps, judged)


def playtest(
    source: Beatmap,
    positions: np.ndarray,
    text_of: Callable[[np.ndarray], str],
    player: Player,
    resample: Resampler,
    rounds: int = PLAYTEST_ROUNDS,
    source_play: SectionPlay | None = None,
) -> Playtest:
    """Play the remap (`positions` of every datapoint, `text_of` giving the .osu text to be written) and its
    source; while any section has clearly more misses plus snaps than the source's same section (plays_worse),
    sample those sections again around the kept rest and take each one's new layout where it plays better. At
    most `rounds` rounds."""

    def map_of(positions: np.ndarray) -> Beatmap:
        return parse_beatmap(text_of(positions).encode("utf-8"))

    section = sections(source)
    by_datapoint = section[layout(source)[3][:, 0]]
    source_play = source_play or play_sections(source, section, player)
    best = np.array(positions, np.float32, copy=True)
    first_play = play_sections(map_of(best), section, player)
    faults = first_play.faults.copy()
    resampled = np.zeros(len(faults), np.int64)
    for round_ in range(rounds):
        bad = plays_worse(faults, source_play.faults)
        if not bad.any():
            break
        keep = ~bad[by_datapoint]
        candidate = np.array(resample(best, keep, round_), np.float32, copy=True)
        candidate[keep] = best[keep]
        tried = play_sections(map_of(candidate), section, player)
        better = bad & (tried.faults < faults)
        resampled[bad] += 1
        best[better[by_datapoint]] = candidate[better[by_datapoint]]
        faults[better] = tried.faults[better]
    final = play_sections(map_of(best), section, player) if resampled.any() else first_play
    times = np.array([h.time_ms for h in source.hit_objects], np.float64)
    report = pd.DataFrame(
        {
            "section": np.arange(len(faults)) + 1,
            "start_ms": [times[section == s].min() for s in range(len(faults))],
            "objects": np.bincount(section),
            "source_misses": source_play.misses,
            "source_snaps": source_play.snaps,
            "before_misses": first_play.misses,
            "before_snaps": first_play.snaps,
            "remap_misses": final.misses,
            "remap_snaps": final.snaps,
            "resampled": resampled,
        }
    )
    return Playtest(best, report, source_play, final)
