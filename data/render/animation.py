"""A few seconds of a replay played back as a small GIF: objects fading in, approach circles, slider balls,
hit results, and the cursor with its trail and key presses, as osu! shows them.

Frames are drawn with the primitives of data.render.preview on a Matplotlib Agg canvas and encoded by Pillow (which
Matplotlib depends on) with one palette for all frames, so flat areas compress well and the file stays small.
Object timings follow osu!: https://osu.ppy.sh/wiki/en/Beatmap/Approach_rate (fade-in within the preempt time).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np

from data.atomic import write_bytes_atomic
from data.beatmap.osu_file import Beatmap
from data.render.preview import (
    BACKGROUND,
    CURSOR_COLOUR,
    DEFAULT_WINDOW_MS,
    KEY_COLOURS,
    MUTED_TEXT,
    PLAYFIELD_WIDTH,
    TEXT,
    VIEW_X,
    VIEW_Y,
    Cursor,
    busiest_slice_ms,
    draw_approach,
    draw_follow_points,
    draw_object,
    fade,
    playfield_axes,
    points_per_unit,
    scene_of,
    song_clock,
)
from data.replay.gameplay import judge
from data.replay.osr import ReplayFrames, ReplayRecord

FPS = 20  # GIF delays are whole centiseconds: 20 fps (and 10 and 5, when halved) is exact
MIN_FPS = 5
MAX_GIF_BYTES = 2_000_000  # what chat and forum uploads take without complaint
DEFAULT_DURATION_MS = 4000.0
SIZE_PX = (480, 360)
FADE_IN_MS = 400.0  # osu!'s fade-in, shortened when the preempt is shorter
FADE_OUT_MS = 180.0
RESULT_SHOW_MS = 300.0
TRAIL_MS = 120.0
TRAIL_SAMPLES = 12
CURSOR_RADIUS_PX = 9.0
PALETTE_COLOURS = 96
PALETTE_SAMPLE_FRAMES = 8
# 300s are left out (as many skins do): the results worth seeing are the misses and the inaccurate hits
RESULT_STYLE = {100: ("100", "#88e060"), 50: ("50", "#ffbb44"), 0: ("miss", "#ff4455")}


@dataclass(frozen=True)
class Animation:
    """What an animation shows: its span in song time and the frame count."""

    start_ms: float
    end_ms: float
    frames: int
    gif: bytes = field(repr=False)

    @property
    def size_bytes(self) -> int:
        return len(self.gif)


def render_animation(
    path: str | os.PathLike | None,
    beatmap: Beatmap,
    replay: ReplayRecord | ReplayFrames,
    *,
    start_ms: float | None = None,
    duration_ms: float = DEFAULT_DURATION_MS,
    mods: int | str = 0,
    fps: int = FPS,
) -> Animation:
    """Play `replay` on `beatmap` from `start_ms` (song time; default: the busiest stretch) for `duration_ms` of
    watching (real time, so DT plays more song in it) and write the GIF to `path` (skipped when None). A
    ReplayRecord brings its own mods.
    """
    if isinstance(replay, ReplayRecord):
        mods = replay.mods
    scene = scene_of(beatmap, mods)
    rate = scene.play.rate
    cursor = Cursor.from_replay(replay, rate)
    results = judge(scene.play, replay).result if scene.play.hit_objects else np.zeros(0, np.int16)
    if start_ms is None:
        start = busiest_slice_ms(scene, DEFAULT_WINDOW_MS / rate)[0]
    else:
        start = start_ms / rate
    step = 1000.0 / fps  # real time per frame; play time is real time
    count = max(int(duration_ms / step), 1)
    canvas = _Canvas()
    frames = [_frame(canvas, scene, cursor, results, start + k * step, rate) for k in range(count)]
    data = _gif(frames, fps)
    while len(data) > MAX_GIF_BYTES and fps >= 2 * MIN_FPS:
        # too big to post: keep the length, halve the frame rate
        frames, fps = frames[::2], fps // 2
        data = _gif(frames, fps)
    if path is not None:
        write_bytes_atomic(path, data)
    return Animation(float(start * rate), float((start + count * step) * rate), len(frames), data)


class _Canvas:
    """One figure reused for every frame: only the frame's own artists are drawn and removed each time."""

    def __init__(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        dpi = 100
        self.fig = Figure(figsize=(SIZE_PX[0] / dpi, SIZE_PX[1] / dpi), dpi=dpi, facecolor=BACKGROUND)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = playfield_axes(self.fig, 0, 0, SIZE_PX)
        for spine in self.ax.spines.values():
            spine.set_visible(False)
        self.base = set(self.ax.get_children())

    def snapshot(self) -> np.ndarray:
        """The drawn frame as RGB, then a clean playfield for the next one."""
        self.canvas.draw()
        image = np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()
        for artist in self.ax.get_children():
            if artist not in self.base:
                artist.remove()
        return image


def _frame(canvas: _Canvas, scene, cursor: Cursor, results: np.ndarray, now_ms: float, rate: float) -> np.ndarray:
    """One RGB frame at play time `now_ms`."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle, FancyBboxPatch

    ax = canvas.ax
    play = scene.play
    preempt, r = play.preempt_ms, play.radius_px
    fade_in = min(FADE_IN_MS, preempt)
    times, ends = scene.times_ms, scene.end_times_ms
    visible = np.flatnonzero((times - preempt <= now_ms) & (ends + FADE_OUT_MS >= now_ms))

    def alpha_of(i: int) -> float:
        if now_ms > ends[i]:
            return max(1.0 - (now_ms - ends[i]) / FADE_OUT_MS, 0.0)
        return min(max((now_ms - (times[i] - preempt)) / fade_in, 0.0), 1.0)

    draw_follow_points(ax, scene, visible, alpha_of)
    for rank, i in enumerate(visible[::-1]):
        draw_object(ax, scene, int(i), alpha_of(int(i)), zorder=2 + rank * 1e-3)
    for i in visible:
        draw_approach(ax, scene, int(i), now_ms, alpha_of(int(i)))
    keys = cursor.keys_at(now_ms)
    ppu = points_per_unit(ax)
    for i in visible:
        o = play.hit_objects[int(i)]
        if o.kind == "slider" and o.time_ms <= now_ms <= o.end_time_ms:
            ball = np.add(o.position_at(now_ms), scene.heads[i] - (o.x, o.y))
            ax.add_artist(Circle(ball, r * 0.75, fc=fade(scene.colour[i], 1.0), ec="white", lw=2, zorder=40))
            if any(keys):
                ax.add_artist(Circle(ball, r * 2.0, fill=False, ec="white", lw=1.5, alpha=0.7, zorder=40))
    shown = np.flatnonzero((ends <= now_ms) & (ends + RESULT_SHOW_MS >= now_ms))
    for i in shown:
        if i >= len(results) or int(results[i]) not in RESULT_STYLE:
            continue
        label, colour = RESULT_STYLE[int(results[i])]
        where = scene.tail_position(int(i))
        age = (now_ms - ends[i]) / RESULT_SHOW_MS
        ax.text(*where, label, color=colour, fontsize=r * 0.7 * ppu, fontweight="bold", ha="center",
                va="center", alpha=1 - age * 0.8, zorder=70)  # fmt: skip
    # cursor: a trail of the last moments, brighter towards now
    trail_t = np.linspace(now_ms - TRAIL_MS, now_ms, TRAIL_SAMPLES)
    trail = np.stack([np.interp(trail_t, cursor.time_ms, cursor.x), np.interp(trail_t, cursor.time_ms, cursor.y)], 1)
    segments = np.stack([trail[:-1], trail[1:]], axis=1)
    widths = np.linspace(1.0, CURSOR_RADIUS_PX * ppu, len(segments))
    colours = [(1.0, 0.95, 0.48, a) for a in np.linspace(0.1, 0.8, len(segments))]
    ax.add_collection(LineCollection(segments, colors=colours, linewidths=widths, capstyle="round", zorder=80))
    pressed = KEY_COLOURS[0] if keys[0] else KEY_COLOURS[1] if keys[1] else CURSOR_COLOUR
    ax.add_artist(Circle(trail[-1], CURSOR_RADIUS_PX, fc=pressed, ec="white", lw=1.5, zorder=81))
    # key overlay in the right margin, as osu!'s input overlay
    for k, label in enumerate(("K1", "K2")):
        x, y = PLAYFIELD_WIDTH + 16, 160 + k * 44
        colour = KEY_COLOURS[k] if keys[k] else fade((1, 1, 1), 0.15)
        ax.add_artist(FancyBboxPatch((x, y), 34, 34, boxstyle="round,pad=0,rounding_size=6", fc=colour, ec="none"))
        ax.text(x + 17, y + 17, label, color="black" if keys[k] else MUTED_TEXT, fontsize=9, fontweight="bold",
                ha="center", va="center")  # fmt: skip
    ax.text(VIEW_X[0] + 8, VIEW_Y[1] + 8, song_clock(now_ms * rate), color=TEXT, fontsize=10, va="top",
            family="monospace")  # fmt: skip
    return canvas.snapshot()


def _gif(frames: list[np.ndarray], fps: int) -> bytes:
    """Encode frames with one shared palette and no dithering (flat regions stay flat and compress)."""
    from PIL import Image

    picks = np.linspace(0, len(frames) - 1, min(PALETTE_SAMPLE_FRAMES, len(frames))).round().astype(int)
    montage = Image.fromarray(np.concatenate([frames[k] for k in picks], axis=0))
    palette = montage.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=False
    )
    return buf.getvalue()
