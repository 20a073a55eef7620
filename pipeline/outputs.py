"""What a run writes and how it is named: remapped .osu files, their .osr, previews, animations and the .osz."""

from __future__ import annotations

import sys
from pathlib import Path

from data.atomic import write_text_atomic
from data.beatmap.osu_file import Beatmap
from data.beatmap.osu_reader import read_beatmap
from data.beatmap.osz import export_osz, osu_member_name, safe_filename
from data.errors import BadInputError
from data.render.animation import render_animation
from data.render.preview import render_preview
from data.replay.osr import read_replay

# Every generated map declares itself, so one shared online is not taken for a mapper's work.
PROVENANCE_TAGS = ("osu-dit", "ai-generated")


def label_remap(osu_text: str, version: str) -> str:
    """The remap's [Metadata]: Version renamed (so the map sits beside its source in osu! instead of replacing it)
    and Tags extended with PROVENANCE_TAGS; a file without those lines, or without the section, gains them."""
    lines = osu_text.split("\n")
    cr = "\r" if sum(line.endswith("\r") for line in lines) * 2 > len(lines) else ""  # the file's own line ending
    text = [line.rstrip("\r") for line in lines]
    section = next((i for i, line in enumerate(text) if line.strip() == "[Metadata]"), None)
    if section is None:  # old formats: the section goes before the first one osu! reads after it
        later = ("[Difficulty]", "[Events]", "[TimingPoints]", "[Colours]", "[HitObjects]")
        section = next((i for i, line in enumerate(text) if line.strip() in later), len(text))
        lines[section:section] = ["[Metadata]" + cr, cr]
        text[section:section] = ["[Metadata]", ""]
    end = next((i for i in range(section + 1, len(text)) if text[i].lstrip().startswith("[")), len(text))
    while end > section + 1 and not text[end - 1].strip():
        end -= 1  # new keys go after the section's last one, before its blank lines
    keys = {line.split(":", 1)[0].strip(): i for i, line in enumerate(text[section + 1 : end], section + 1)}
    new_keys = []
    if "Tags" in keys:
        i = keys["Tags"]
        head, _, value = text[i].partition(":")
        tags = value.split()
        added = [t for t in PROVENANCE_TAGS if t not in tags]
        lines[i] = f"{head}:{value.rstrip()}{' ' if tags and added else ''}{' '.join(added)}" + lines[i][len(text[i]) :]
    else:
        new_keys.append("Tags:" + " ".join(PROVENANCE_TAGS))
    if "Version" in keys:
        i = keys["Version"]
        lines[i] = f"{text[i].partition(':')[0]}:{version}" + lines[i][len(text[i]) :]
    else:
        new_keys.insert(0, f"Version:{version}")
    lines[end:end] = [key + cr for key in new_keys]
    return "\n".join(lines)


def default_output(beatmap: Beatmap, label: str, seed: int, variant: int | None, suffix: str = ".osu") -> Path:
    """`<source stem> (osu-dit <label>, seed <seed>)[ v<n>]<suffix>` in the working folder."""
    stem = Path(beatmap.path).stem if beatmap.path else beatmap.md5
    number = f" v{variant + 1}" if variant is not None else ""
    return Path.cwd() / safe_filename(f"{stem} (osu-dit {label}, seed {seed}){number}{suffix}")


def numbered(path: Path, index: int, count: int) -> Path:
    """`path` for one of `count` variants: "x v2.png" when there are several."""
    return path if count == 1 else path.with_name(f"{path.stem} v{index + 1}{path.suffix}")


def remap_text(text: str, source: Beatmap, label: str, index: int, count: int) -> str:
    """Variant `index` of `count` as it is written: renamed `<Version> (osu-dit <label>[ vN])`, tagged."""
    number = f" v{index + 1}" if count > 1 else ""
    return label_remap(text, f"{source.version or 'Unknown'} (osu-dit {label}{number})")


def write_remap(text: str, source: Beatmap, label: str, seed: int, output: Path | None, index: int, count: int) -> Path:
    """Write variant `index` of `count` (remap_text) to `output` or a default name."""
    variant = index if count > 1 else None
    path = numbered(output, index, count) if output else default_output(source, label, seed, variant)
    write_text_atomic(path, remap_text(text, source, label, index, count))
    print(f"wrote {path}")
    return path


def write_companions(
    source: Beatmap,
    source_path: Path,
    written: list[Path],
    preview: Path | None = None,
    preview_time: float | None = None,
    animation: Path | None = None,
    osz: Path | None = None,
) -> list[Path]:
    """The preview PNGs, animation GIFs and .osz archive of the maps and replays just written."""
    maps = [p for p in written if p.suffix == ".osu"]
    replays = [read_replay(p) for p in written if p.suffix == ".osr"]
    shown = [read_beatmap(p) for p in maps] or [source]  # a replay of the source plays the source itself
    headings = ("source", "remap") if maps else ("map", "replay")
    out = []
    for i, beatmap in enumerate(shown):
        replay = replays[i] if replays else None
        if preview:
            out.append(numbered(preview, i, len(shown)))
            render_preview(out[-1], source, beatmap, time_ms=preview_time, replay=replay, headings=headings)
        if animation:
            out.append(numbered(animation, i, len(shown)))
            render_animation(out[-1], beatmap, replay, start_ms=preview_time)
    if osz:
        members = {osu_member_name(m): p.read_bytes() for m, p in zip(shown, maps, strict=True)}
        for name in export_osz(osz, source_path, source, members).missing:
            print(f"warning: {name} is not in the set; {osz} has no copy of it", file=sys.stderr)
        out.append(osz)
    for path in out:
        print(f"wrote {path}")
    return out


def check_outputs(*paths: Path | None) -> None:
    """Refuse an output path that is a folder before any work is done."""
    for path in paths:
        if path is not None and path.is_dir():
            raise BadInputError(path, "is a folder; give a file name to write")
