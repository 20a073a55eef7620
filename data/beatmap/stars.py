"""Star rating of a map through rosu-pp (the osu!lazer difficulty algorithm, compiled)."""

from __future__ import annotations

import rosu_pp_py

from data.errors import BadInputError


def star_rating(osu_bytes_or_text: bytes | str, mods: int = 0, path: str | None = None) -> float:
    """Star rating of .osu content with osu! mod bit flags `mods` (8 HD, 16 HR, 64 DT, ...)."""
    data = osu_bytes_or_text.encode("utf-8") if isinstance(osu_bytes_or_text, str) else osu_bytes_or_text
    try:
        beatmap = rosu_pp_py.Beatmap(content=data)
        if beatmap.n_objects == 0:
            raise BadInputError(path, "rosu-pp finds no hit objects in it")
        return float(rosu_pp_py.Difficulty(mods=mods).calculate(beatmap).stars)
    except (rosu_pp_py.ParseError, rosu_pp_py.ConvertError, rosu_pp_py.ArgsError) as err:
        raise BadInputError(path, f"rosu-pp cannot rate it: {err}") from None
