"""Pictures of a map on the playfield: a remap beside its source over a few seconds, a replay's cursor on top.

Drawn the way osu! shows a map (https://osu.ppy.sh/wiki/en/Gameplay/Hit_object): circles sized by CS, slider
bodies along their curves, combo colours and numbers, follow points inside a combo, approach circles shrinking
from 4x the radius over the preempt time, and stacking as the game applies it. Everything is in play time (mods
applied), with a replay's frames in the same time. Matplotlib's Agg canvas is used directly: no pyplot state, no
display needed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from data.atomic import write_bytes_atomic
from data.beatmap.datapoints import PLAYFIELD_HEIGHT, PLAYFIELD_WIDTH
from data.beatmap.osu_file import Beatmap
from data.replay.gameplay import stack_offsets
from data.replay.mods import PlayBeatmap, apply_mods, mods_to_string
from data.replay.osr import KEY1_BITS, KEY2_BITS, ReplayFrames, ReplayRecord

# ---- look -------------------------------------------------------------------------------------------------
MARGIN_PX = 64  # stacks and edge objects reach past the 512 x 384 field; 64 keeps the view at 4:3
VIEW_X = (-MARGIN_PX, PLAYFIELD_WIDTH + MARGIN_PX)
VIEW_Y = (PLAYFIELD_HEIGHT + MARGIN_PX * 3 / 4, -MARGIN_PX * 3 / 4)  # y grows downwards, as in osu!
DPI = 100
PANEL_PX = (600, 450)
FIGURE_PX = (1280, 560)
PANEL_LEFT_PX = (26, 654)
PANEL_BOTTOM_PX = 46
BACKGROUND = np.array([0.09, 0.09, 0.11])
FIELD_EDGE = "#3a3a48"
TEXT = "#e8e8f0"
MUTED_TEXT = "#9a9ab0"
# osu!'s default skin colours, used when the map has no [Colours]
DEFAULT_COMBO_COLOURS = ((255, 192, 0), (0, 202, 0), (18, 124, 255), (242, 24, 57))
APPROACH_START_SCALE = 4.0  # an approach circle starts at 4x the object's radius
FOLLOW_POINT_GAP = 1.1  # follow points start this many radii away from each object's centre
SLIDER_BORDER = 0.12  # white border of a slider body, share of the radius
SPINNER_RADII_PX = (40.0, 120.0, 180.0)
DEFAULT_WINDOW_MS = 3000.0
READABLE_OBJECTS = 10  # a default slice stops after this many objects: dense streams overlap into a blur
LEAD_IN_OF_PREEMPT = 0.3  # the slice opens this share of the preempt before its first object: approach visible
KEY_COLOURS = ("#ffb020", "#3ad0ff")  # key 1, key 2
CURSOR_COLOUR = "#fff27a"


# ---- a map ready to draw ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """A map as the player sees it (mods, play time and stacking applied), with combo colours and numbers."""

    play: PlayBeatmap
    heads: np.ndarray  # float64 [N, 2], stacked head positions
    paths: list[np.ndarray | None]  # stacked slider polylines, head first (None for circles and spinners)
    combo_number: np.ndarray  # int [N], 1 for an object that starts a combo
    colour: np.ndarray  # float [N, 3] in 0..1
    title: str

    @property
    def times_ms(self) -> np.ndarray:
        return np.array([o.time_ms for o in self.play.hit_objects], np.float64)

    @property
    def end_times_ms(self) -> np.ndarray:
        return np.array([o.end_time_ms for o in self.play.hit_objects], np.float64)

    def overlapping(self, start_ms: float, end_ms: float) -> np.ndarray:
        """Indices of objects whose hit time span touches [start_ms, end_ms] (play time)."""
        return np.flatnonzero((self.times_ms <= end_ms) & (self.end_times_ms >= start_ms))

    def tail_position(self, i: int) -> np.ndarray:
        """Where object i ends: the head after an even number of slider spans, else the path's end."""
        o, path = self.play.hit_objects[i], self.paths[i]
        if path is None or o.slides % 2 == 0:
            return self.heads[i]
        return path[-1]


def combo_colours(beatmap: Beatmap) -> list[tuple[int, int, int]]:
    """The map's Combo1..ComboN colours in order, or osu!'s defaults."""
    found = {}
    for line in beatmap.sections.get("Colours", []):
        key, _, value = line.partition(":")
        key = key.strip()
        if key.lower().startswith("combo") and key[5:].isdigit():
            try:
                rgb = tuple(int(float(v)) for v in value.split(",")[:3])
            except ValueError:
                continue
            if len(rgb) == 3:
                found[int(key[5:])] = tuple(min(max(c, 0), 255) for c in rgb)
    return [found[k] for k in sorted(found)] or list(DEFAULT_COMBO_COLOURS)


def scene_of(beatmap: Beatmap, mods: int | str = 0, title: str | None = None) -> Scene:
    """Prepare `beatmap` for drawing as played with `mods`."""
    play = apply_mods(beatmap, mods)
    offsets = stack_offsets(play) if play.hit_objects else np.zeros((0, 2))
    heads = np.array([(o.x, o.y) for o in play.hit_objects], np.float64).reshape(-1, 2) + offsets
    paths = [None if o.path is None else o.path + offsets[i] for i, o in enumerate(play.hit_objects)]
    palette = np.array(combo_colours(beatmap), np.float64) / 255.0
    numbers = np.zeros(len(heads), np.int64)
    colours = np.zeros((len(heads), 3))
    colour_index, number = -1, 0
    for i, h in enumerate(beatmap.hit_objects):
        previous_spinner = i > 0 and beatmap.hit_objects[i - 1].kind == "spinner"
        if i == 0 or h.new_combo or h.kind == "spinner" or previous_spinner:
            colour_index += 1 + (h.combo_skip if h.new_combo else 0)
            number = 0
        number += 1
        numbers[i] = number
        colours[i] = palette[colour_index % len(palette)]
    label = title if title is not None else f"[{beatmap.version}]" if beatmap.version else ""
    return Scene(play, heads, paths, numbers, colours, label)


def busiest_slice_ms(scene: Scene, window_ms: float = DEFAULT_WINDOW_MS) -> tuple[float, float]:
    """(start, end) play time of the busiest `window_ms` of the map, cut after READABLE_OBJECTS objects."""
    times = scene.times_ms
    if len(times) == 0:
        return 0.0, window_ms
    counts = np.searchsorted(times, times + window_ms, side="left") - np.arange(len(times))
    first = int(np.argmax(counts))
    start = max(times[first] - LEAD_IN_OF_PREEMPT * scene.play.preempt_ms, 0.0)
    end = start + window_ms
    last = first + READABLE_OBJECTS - 1
    if last + 1 < len(times) and times[last + 1] <= end:
        end = (times[last] + times[last + 1]) / 2
    return start, end


# ---- cursor -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """A replay's cursor in play time: positions and the two merged keys."""

    time_ms: np.ndarray  # float64 [F], play time
    x: np.ndarray
    y: np.ndarray
    k1: np.ndarray  # bool [F]
    k2: np.ndarray

    @classmethod
    def from_replay(cls, replay: ReplayRecord | ReplayFrames, rate: float = 1.0) -> Cursor:
        """From a replay (its mods give the rate) or from song-time frames played at `rate`."""
        if isinstance(replay, ReplayRecord):
            rate, replay = replay.rate, replay.frames
        keys = np.asarray(replay.keys)
        return cls(
            np.asarray(replay.time_ms, np.float64) / rate,
            np.asarray(replay.x, np.float64),
            np.asarray(replay.y, np.float64),
            keys & KEY1_BITS != 0,
            keys & KEY2_BITS != 0,
        )

    def position_at(self, time_ms: float) -> tuple[float, float]:
        return float(np.interp(time_ms, self.time_ms, self.x)), float(np.interp(time_ms, self.time_ms, self.y))

    def keys_at(self, time_ms: float) -> tuple[bool, bool]:
        i = max(int(np.searchsorted(self.time_ms, time_ms, side="right")) - 1, 0)
        return bool(self.k1[i]), bool(self.k2[i])

    def presses(self, start_ms: float, end_ms: float) -> list[tuple[int, float, float, float]]:
        """(key 0 or 1, time, x, y) of each key going down inside [start_ms, end_ms]."""
        out = []
        for key, down in enumerate((self.k1, self.k2)):
            edges = np.flatnonzero(down & ~np.concatenate([[False], down[:-1]]))
            for e in edges:
                if start_ms <= self.time_ms[e] <= end_ms:
                    out.append((key, float(self.time_ms[e]), float(self.x[e]), float(self.y[e])))
        return sorted(out, key=lambda p: p[1])


# ---- drawing primitives (shared with data.render.animation) ------------------------------------------------------
def fade(colour, alpha: float) -> np.ndarray:
    """`colour` mixed into the background: opaque drawing that looks faded, without overlap artefacts."""
    return np.asarray(colour, np.float64)[:3] * alpha + BACKGROUND * (1 - alpha)


def points_per_unit(ax) -> float:
    """Line width in points that covers one osu! pixel in `ax` (the axes keep the view's exact aspect)."""
    width_px = ax.get_position().width * ax.figure.get_figwidth() * ax.figure.dpi
    return width_px / (VIEW_X[1] - VIEW_X[0]) * 72.0 / ax.figure.dpi


def playfield_axes(fig, left_px: float, bottom_px: float, size_px: tuple[int, int]):
    """Axes showing the playfield with its margin, y down, the 512 x 384 field outlined."""
    from matplotlib.patches import Rectangle

    fig_w, fig_h = fig.get_figwidth() * fig.dpi, fig.get_figheight() * fig.dpi
    ax = fig.add_axes((left_px / fig_w, bottom_px / fig_h, size_px[0] / fig_w, size_px[1] / fig_h))
    ax.set_xlim(*VIEW_X)
    ax.set_ylim(*VIEW_Y)
    ax.set_facecolor(BACKGROUND)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(FIELD_EDGE)
    ax.add_artist(
        Rectangle((0, 0), PLAYFIELD_WIDTH, PLAYFIELD_HEIGHT, fill=False, ec=FIELD_EDGE, lw=1.0, ls=(0, (4, 4)))
    )
    return ax


def draw_object(ax, scene: Scene, i: int, alpha: float = 1.0, zorder: float = 2.0) -> None:
    """Object i as osu! draws it: slider body with border, head circle with its combo number, spinner rings."""
    from matplotlib import patheffects
    from matplotlib.patches import Circle, Polygon

    o = scene.play.hit_objects[i]
    r = scene.play.radius_px
    ppu = points_per_unit(ax)
    white = fade((1, 1, 1), alpha)
    if o.kind == "spinner":
        centre = (PLAYFIELD_WIDTH / 2, PLAYFIELD_HEIGHT / 2)
        for radius in SPINNER_RADII_PX:
            ax.add_artist(Circle(centre, radius, fill=False, ec=white, lw=2.0, zorder=zorder))
        ax.add_artist(Circle(centre, 6, fc=white, ec="none", zorder=zorder))
        return
    colour = scene.colour[i]
    path = scene.paths[i]
    if path is not None and len(path) > 1:
        body = fade(colour * 0.35, alpha)
        kw = {"solid_capstyle": "round", "solid_joinstyle": "round", "zorder": zorder}
        ax.plot(path[:, 0], path[:, 1], color=white, lw=2 * r * ppu, **kw)
        ax.plot(path[:, 0], path[:, 1], color=body, lw=2 * r * (1 - SLIDER_BORDER) * ppu, **kw)
        ax.add_artist(Circle(path[-1], r * 0.92, fill=False, ec=white, lw=r * 0.1 * ppu, zorder=zorder))
        if o.slides > 1:
            # a reverse arrow on the end: a chevron pointing back along the path
            end, before = path[-1], path[max(len(path) - 4, 0)]
            back = before - end
            back /= max(np.linalg.norm(back), 1e-6)
            side = np.array([-back[1], back[0]])
            tip = end + back * r * 0.45
            tri = [tip, end - back * r * 0.2 + side * r * 0.4, end - back * r * 0.2 - side * r * 0.4]
            ax.add_artist(Polygon(tri, closed=True, fc=white, ec="none", zorder=zorder))
    head = scene.heads[i]
    ax.add_artist(Circle(head, r * 0.93, fc=fade(colour, alpha), ec=white, lw=r * 0.12 * ppu, zorder=zorder))
    # a dark rim keeps white numbers readable on light combo colours, as skins do with a shadow
    rim = [patheffects.withStroke(linewidth=max(r * 0.1 * ppu, 1.0), foreground=fade(colour * 0.3, alpha))]
    ax.text(
        head[0],
        head[1],
        str(scene.combo_number[i]),
        color=white,
        fontsize=r * (0.85 if scene.combo_number[i] < 10 else 0.65) * ppu,
        fontweight="bold",
        ha="center",
        va="center_baseline",
        zorder=zorder,
        path_effects=rim,
    )


def draw_approach(ax, scene: Scene, i: int, now_ms: float, alpha: float = 1.0) -> None:
    """Object i's approach circle at `now_ms`, if it is still closing in."""
    from matplotlib.patches import Circle

    o = scene.play.hit_objects[i]
    remaining = o.time_ms - now_ms
    if o.kind == "spinner" or not 0 < remaining <= scene.play.preempt_ms:
        return
    scale = 1 + (APPROACH_START_SCALE - 1) * remaining / scene.play.preempt_ms
    colour = fade(scene.colour[i], alpha)
    ax.add_artist(Circle(scene.heads[i], scene.play.radius_px * scale, fill=False, ec=colour, lw=2.2, zorder=50))


def draw_follow_points(ax, scene: Scene, indices: np.ndarray, alpha_of) -> None:
    """Dotted lines from each object's end to the next object of its combo."""
    r = scene.play.radius_px
    objects = scene.play.hit_objects
    for i in indices:
        j = i + 1
        if j >= len(objects) or scene.combo_number[j] == 1 or objects[i].kind == "spinner":
            continue
        a, b = scene.tail_position(i), scene.heads[j]
        gap = np.linalg.norm(b - a)
        if gap <= 2 * FOLLOW_POINT_GAP * r:
            continue
        unit = (b - a) / gap
        a, b = a + unit * FOLLOW_POINT_GAP * r, b - unit * FOLLOW_POINT_GAP * r
        colour = fade((1, 1, 1), 0.55 * alpha_of(j))
        ax.plot([a[0], b[0]], [a[1], b[1]], color=colour, lw=1.6, ls=(0, (1.5, 3)), zorder=1)


def draw_slice(ax, scene: Scene, start_ms: float, end_ms: float) -> np.ndarray:
    """Objects of [start_ms, end_ms]: what the player sees at `start_ms` at full strength, the rest fading.

    Returns the indices drawn.
    """
    indices = scene.overlapping(start_ms, end_ms)
    preempt = scene.play.preempt_ms
    span = max(end_ms - start_ms - preempt, 1.0)

    def alpha_of(i: int) -> float:
        # on screen at start_ms: full strength; later ones fade out towards the end of the slice
        ahead = scene.play.hit_objects[i].time_ms - start_ms - preempt
        return 1.0 if ahead <= 0 else 1.0 - 0.65 * min(ahead / span, 1.0)

    draw_follow_points(ax, scene, indices, alpha_of)
    # earlier objects on top, as in osu!
    for rank, i in enumerate(indices[::-1]):
        draw_object(ax, scene, int(i), alpha_of(int(i)), zorder=2 + rank * 1e-3)
    for i in indices:
        draw_approach(ax, scene, int(i), start_ms)
    return indices


def draw_cursor_trail(ax, cursor: Cursor, start_ms: float, end_ms: float) -> int:
    """The cursor's path over the slice (brighter later) and a dot per key press; returns the presses drawn."""
    from matplotlib.collections import LineCollection

    keep = (cursor.time_ms >= start_ms) & (cursor.time_ms <= end_ms)
    xy = np.stack([cursor.x[keep], cursor.y[keep]], axis=1)
    if len(xy) > 1:
        segments = np.stack([xy[:-1], xy[1:]], axis=1)
        t = np.linspace(0.25, 1.0, len(segments))
        colours = np.concatenate([np.tile([[1.0, 0.95, 0.48]], (len(t), 1)), t[:, None] * 0.9], axis=1)
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.6, zorder=60, capstyle="round"))
    presses = cursor.presses(start_ms, end_ms)
    for key, _, x, y in presses:
        ax.plot([x], [y], "o", ms=7, mfc=KEY_COLOURS[key], mec="black", mew=1.0, zorder=61)
    return len(presses)


def song_clock(time_ms: float) -> str:
    """m:ss.s of a song time."""
    seconds = max(time_ms, 0.0) / 1000.0
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def figure_png(fig) -> bytes:
    """The figure as PNG bytes, with no time stamp in them (same drawing, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, facecolor=fig.get_facecolor(), metadata={"Software": None})
    return buf.getvalue()


# ---- the preview ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preview:
    """What a preview shows: its slice in song time and the objects drawn in each panel."""

    start_ms: float
    end_ms: float
    source_objects: np.ndarray
    remap_objects: np.ndarray
    presses: int


def render_preview(
    path: str | os.PathLike | None,
    source: Beatmap,
    remap: Beatmap,
    *,
    time_ms: float | None = None,
    window_ms: float = DEFAULT_WINDOW_MS,
    replay: ReplayRecord | ReplayFrames | None = None,
    mods: int | str = 0,
    headings: tuple[str, str] = ("source", "remap"),
) -> tuple[Preview, bytes]:
    """Draw `remap` beside `source` over [time_ms, time_ms + window_ms] and write the PNG to `path` (skipped
    when None); with a replay, its cursor and presses over the remap. Times are song times; without `time_ms`
    the slice is the busiest stretch of the source, up to READABLE_OBJECTS objects.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if replay is not None and isinstance(replay, ReplayRecord):
        mods = replay.mods
    left = scene_of(source, mods)
    right = scene_of(remap, mods)
    rate = left.play.rate
    if time_ms is None:
        start, end = busiest_slice_ms(left, window_ms / rate)
    else:
        start, end = time_ms / rate, (time_ms + window_ms) / rate
    fig = Figure(figsize=(FIGURE_PX[0] / DPI, FIGURE_PX[1] / DPI), dpi=DPI, facecolor=BACKGROUND * 0.8)
    FigureCanvasAgg(fig)
    drawn, presses = [], 0
    for scene, left_px, heading in ((left, PANEL_LEFT_PX[0], headings[0]), (right, PANEL_LEFT_PX[1], headings[1])):
        ax = playfield_axes(fig, left_px, PANEL_BOTTOM_PX, PANEL_PX)
        indices = draw_slice(ax, scene, start, end)
        drawn.append(indices)
        if scene is right and replay is not None:
            presses = draw_cursor_trail(ax, Cursor.from_replay(replay, rate), start, end)
        fig.text(
            (left_px + 4) / FIGURE_PX[0],
            (PANEL_BOTTOM_PX + PANEL_PX[1] + 12) / FIGURE_PX[1],
            f"{heading}  {scene.title}",
            color=TEXT,
            fontsize=13,
            fontweight="bold",
            va="bottom",
        )
        fig.text(
            (left_px + PANEL_PX[0] - 4) / FIGURE_PX[0],
            (PANEL_BOTTOM_PX + PANEL_PX[1] + 12) / FIGURE_PX[1],
            f"{len(indices)} objects",
            color=MUTED_TEXT,
            fontsize=11,
            ha="right",
            va="bottom",
        )
    play = left.play
    mods_text = f"  +{mods_to_string(play.mods)}" if play.mods else ""
    song = " - ".join(part for part in (source.artist, source.title) if part)
    song += f" ({source.creator})" if source.creator else ""
    caption = (
        f"{song}   {song_clock(start * rate)} - {song_clock(end * rate)}"
        f"   CS {play.circle_size:.1f}  AR {play.approach_rate:.1f}{mods_text}"
    ).strip()
    fig.text(PANEL_LEFT_PX[0] / FIGURE_PX[0], 14 / FIGURE_PX[1], caption, color=MUTED_TEXT, fontsize=11)
    if replay is not None:
        _key_legend(fig)
    data = figure_png(fig)
    if path is not None:
        write_bytes_atomic(path, data)
    return Preview(start * rate, end * rate, drawn[0], drawn[1], presses), data


def _key_legend(fig) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker="o", ms=7, mfc=KEY_COLOURS[0], mec="black", label="K1 press"),
        Line2D([], [], ls="", marker="o", ms=7, mfc=KEY_COLOURS[1], mec="black", label="K2 press"),
        Line2D([], [], color=CURSOR_COLOUR, lw=1.6, label="cursor trail"),
    ]
    x = (PANEL_LEFT_PX[1] + PANEL_PX[0]) / FIGURE_PX[0]
    legend = fig.legend(handles=handles, loc="lower right", bbox_to_anchor=(x, 0.0), ncol=3, frameon=False, fontsize=11)
    for text in legend.get_texts():
        text.set_color(TEXT)
