"""Play every map that humans played, with their mods, for the replay judges.

    python testing/play_like_humans.py --human corpus/replays --songs corpus/songs \
        --sets docs/sets/replay_heldout.txt --output GEN [--mods HR] [-- sample.py flags]

For each human replay whose map is under --songs (and, with --sets, in one of the named set folders), the map
is played with the replay's rate and flip mods (HR, DT/NC, HT, EZ; or --mods for all) and written to
GEN/<human replay md5>.osr. Then testing/replay_discriminator.py and testing/replay_eval.py judge GEN.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sample  # noqa: E402
from data.errors import BadInputError, refusal_exit  # noqa: E402
from data.replay.mods import mods_to_string  # noqa: E402
from data.replay_windows import read_set_list  # noqa: E402
from testing.replay_discriminator import read_records  # noqa: E402
from testing.replay_judge import maps_by_md5  # noqa: E402

PLAYED_MODS = ("HR", "DT", "NC", "HT", "EZ")  # what changes the motion; HD, NF, SD... do not


def plays(human: list[Path], songs: list[Path], sets: frozenset[str] | None) -> list[tuple[Path, Path, str]]:
    """(human replay, its map, the mods to play) for every human replay of a map under `songs` (and `sets`)."""
    maps = maps_by_md5(songs)
    found = []
    for record in read_records(human, []):
        osu = maps.get(record.beatmap_md5)
        if osu is None or (sets is not None and osu.resolve().parent.name not in sets):
            continue
        text = mods_to_string(record.mods)
        found.append((Path(record.path), osu, "".join(m for m in PLAYED_MODS if m in text)))
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--human", type=Path, nargs="+", required=True, help="human .osr files or folders")
    p.add_argument("--songs", type=Path, nargs="+", required=True, help="folders with the maps (found by MD5)")
    p.add_argument("--sets", type=Path, help="only maps in these set folders (one per line, as --val-sets)")
    p.add_argument("--output", type=Path, required=True, help="folder for the generated .osr files")
    p.add_argument("--mods", help="play every map with these mods instead of the human's")
    args = p.parse_args(own)
    try:
        sets = read_set_list(args.sets) if args.sets else None
        found = plays(args.human, args.songs, sets)
        if not found:
            raise BadInputError(args.human[0], "no human replay of a map under --songs (and --sets)")
        args.output.mkdir(parents=True, exist_ok=True)
        for replay, osu, mods in found:
            mods = args.mods if args.mods is not None else mods
            out = args.output / f"{replay.stem}.osr"
            flags = ["--beatmap", str(osu), "--replay-only", "--output", str(out), "--no-progress"]
            code = sample.main([*flags, *(["--mods", mods] if mods else []), *extra])
            if code != 0:
                return code
    except BadInputError as err:
        return refusal_exit(err, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
