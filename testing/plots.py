"""Figures of the evaluations (matplotlib, Agg backend), written atomically as PNGs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from data.atomic import atomic_path  # noqa: E402

ANGLE_BINS = np.linspace(0.0, math.pi, 19)  # 10 degree bins


def save(figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def evaluation_plots(
    table: pd.DataFrame, turns: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], output: Path
) -> list[Path]:
    """Turning-angle histograms (source, output, random walk), spacing error per map, star ratings."""
    written = []
    source, remapped, walk = (np.concatenate([t[k] for t in turns]) for k in range(3))
    fig, ax = plt.subplots(figsize=(6, 4))
    for values, label, style in ((source, "source", "-"), (remapped, "output", "-"), (walk, "random walk", ":")):
        if len(values):
            ax.hist(values, bins=ANGLE_BINS, density=True, histtype="step", linestyle=style, linewidth=1.6,
                    label=f"{label} (n={len(values)})")  # fmt: skip
    ax.set_xlabel("turning angle at jumps (rad; 0 straight on, pi straight back)")
    ax.set_ylabel("density")
    ax.set_title(f"Turning angles at jumps, {len(turns)} maps")
    ax.legend()
    save(fig, output / "turning_angles.png")
    written.append(output / "turning_angles.png")

    names = [Path(s).stem[:28] for s in table["source"]]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 2), 4))
    ax.bar(range(len(names)), table["median_spacing_error_px"].to_numpy(float))
    ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("median |output - source| spacing (px)")
    ax.set_title("Spacing error per map")
    save(fig, output / "spacing_error.png")
    written.append(output / "spacing_error.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    stars_src, stars_out = table["stars_source"].to_numpy(float), table["stars_output"].to_numpy(float)
    ax.scatter(stars_src, stars_out, s=18)
    finite = np.isfinite(stars_src) & np.isfinite(stars_out)
    top = max(float(np.max(np.r_[stars_src[finite], stars_out[finite]])) if finite.any() else 1.0, 1.0) * 1.05
    ax.plot([0, top], [0, top], color="grey", linewidth=1)
    ax.plot([0, top], [0, top * 1.1], color="grey", linewidth=0.6, linestyle=":")
    ax.plot([0, top], [0, top * 0.9], color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("source star rating (rosu-pp)")
    ax.set_ylabel("output star rating")
    ax.set_title("Star rating, source vs remap (dotted: 10%)")
    save(fig, output / "star_ratings.png")
    written.append(output / "star_ratings.png")
    return written


def style_plot(table: pd.DataFrame, id_a: str, id_b: str, output: Path) -> Path:
    """Mean turning angle per map under two styles, beside the source's."""
    names = [Path(s).stem[:28] for s in table["source"]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    ax.bar(x - 0.27, table["mean_turn_source_rad"], width=0.27, label="source")
    ax.bar(x, table["mean_turn_a_rad"], width=0.27, label=id_a)
    ax.bar(x + 0.27, table["mean_turn_b_rad"], width=0.27, label=id_b)
    ax.set_xticks(x, names, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("mean turning angle at jumps (rad)")
    ax.legend()
    save(fig, output / "compare_styles.png")
    return output / "compare_styles.png"


def replay_plots(table: pd.DataFrame, hit_errors: dict[str, np.ndarray], output: Path) -> list[Path]:
    """Hit-error histograms per group and cursor speed per replay against the human band."""
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-120, 120, 49)
    for group, errors in hit_errors.items():
        if len(errors):
            ax.hist(errors, bins=bins, density=True, histtype="step", linewidth=1.5, label=f"{group} (n={len(errors)})")
    ax.set_xlabel("hit error (ms, press - object)")
    ax.set_ylabel("density")
    ax.set_title("Hit errors")
    ax.legend(fontsize=8)
    save(fig, output / "hit_errors.png")
    written.append(output / "hit_errors.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    groups = list(dict.fromkeys(table["group"]))
    human = table[table["group"] == "human"]
    if len(human):
        low, high = human["speed_median_px_per_ms"].quantile([0.05, 0.95])
        ax.axhspan(low, high, color="grey", alpha=0.2, label="human 5-95%")
    for k, group in enumerate(groups):
        part = table[table["group"] == group]
        ax.scatter(np.full(len(part), k) + np.linspace(-0.2, 0.2, len(part)), part["speed_median_px_per_ms"], s=10,
                   label=group)  # fmt: skip
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("median cursor speed (px/ms)")
    ax.set_title("Cursor speed against the human band")
    ax.legend(fontsize=8)
    save(fig, output / "cursor_speed.png")
    written.append(output / "cursor_speed.png")
    return written
