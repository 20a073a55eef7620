"""Class tables for conditioning. Styles: one class per beatmap, one per mapper; players: one per username; in
both, class 0 is the null class of classifier-free guidance.

Index space: 0 is the null (unconditional) class used by classifier-free guidance; then one class per beatmap
(by BeatmapID, or by MD5 for maps without one); then one class per mapper. Plain types only in `to_dict`, since
the table travels inside checkpoints loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

NULL_CLASS = 0


@dataclass(frozen=True)
class StyledMap:
    """What the table needs to know about one map."""

    md5: str
    beatmap_id: int | None
    creator: str | None
    label: str = ""  # for display: "Artist - Title (Creator) [Version]"


def name_key(name: str) -> str:
    """Mapper and player names compare case-insensitively (osu! usernames do)."""
    return name.strip().casefold()


class StyleTable:
    """Deterministic mapping between style classes and beatmaps / mappers."""

    def __init__(self, beatmaps: list[dict], mappers: list[str]):
        # beatmaps: [{"beatmap_id": int | None, "md5s": [str, ...], "label": str}], in class order.
        self._beatmaps = [
            {"beatmap_id": b["beatmap_id"], "md5s": list(b["md5s"]), "label": b.get("label", "")} for b in beatmaps
        ]
        self._mappers = list(mappers)
        self._by_id: dict[int, int] = {}
        self._by_md5: dict[str, int] = {}
        for offset, beatmap in enumerate(self._beatmaps):
            index = 1 + offset
            if beatmap["beatmap_id"] is not None:
                self._by_id[int(beatmap["beatmap_id"])] = index
            for md5 in beatmap["md5s"]:
                self._by_md5[md5] = index
        first_mapper = 1 + len(self._beatmaps)
        self._by_mapper = {name_key(name): first_mapper + i for i, name in enumerate(self._mappers)}

    @classmethod
    def build(cls, maps: Iterable[StyledMap]) -> StyleTable:
        """Classes for `maps`: beatmaps by ID (ascending), then ID-less maps by MD5, then mappers by name."""
        by_id: dict[int, list[StyledMap]] = {}
        by_md5: dict[str, StyledMap] = {}
        spellings: dict[str, Counter] = {}
        for m in maps:
            if m.beatmap_id is not None:
                by_id.setdefault(int(m.beatmap_id), []).append(m)
            else:
                by_md5[m.md5] = m
            if m.creator and m.creator.strip():
                spellings.setdefault(name_key(m.creator), Counter())[m.creator.strip()] += 1
        beatmaps = []
        for beatmap_id in sorted(by_id):
            group = sorted(by_id[beatmap_id], key=lambda m: m.md5)
            beatmaps.append({"beatmap_id": beatmap_id, "md5s": [m.md5 for m in group], "label": group[0].label})
        for md5 in sorted(by_md5):
            beatmaps.append({"beatmap_id": None, "md5s": [md5], "label": by_md5[md5].label})
        # Display the most used spelling; ties go to the alphabetically first, so the choice is stable.
        mappers = [min(spellings[k].items(), key=lambda kv: (-kv[1], kv[0]))[0] for k in sorted(spellings)]
        return cls(beatmaps, mappers)

    def __len__(self) -> int:
        """Number of classes, the null class included (the size of the model's embedding table)."""
        return 1 + len(self._beatmaps) + len(self._mappers)

    @property
    def num_beatmaps(self) -> int:
        return len(self._beatmaps)

    @property
    def num_mappers(self) -> int:
        return len(self._mappers)

    def beatmap_class(self, beatmap_id: int) -> int | None:
        return self._by_id.get(int(beatmap_id))

    def md5_class(self, md5: str) -> int | None:
        return self._by_md5.get(md5.lower())

    def map_class(self, md5: str, beatmap_id: int | None = None) -> int | None:
        """Class of a map: by BeatmapID when it has one in the table, else by MD5."""
        if beatmap_id is not None and beatmap_id in self._by_id:
            return self._by_id[beatmap_id]
        return self.md5_class(md5)

    def mapper_class(self, name: str) -> int | None:
        return self._by_mapper.get(name_key(name))

    def is_mapper_class(self, index: int) -> bool:
        return 1 + len(self._beatmaps) <= index < len(self)

    def describe(self, index: int) -> str:
        """A human-readable name for a class."""
        if index == NULL_CLASS:
            return "(none)"
        if 1 <= index <= len(self._beatmaps):
            beatmap = self._beatmaps[index - 1]
            ident = beatmap["beatmap_id"] if beatmap["beatmap_id"] is not None else beatmap["md5s"][0]
            return f"beatmap {ident}: {beatmap['label']}" if beatmap["label"] else f"beatmap {ident}"
        if self.is_mapper_class(index):
            return f"mapper {self._mappers[index - 1 - len(self._beatmaps)]}"
        raise IndexError(f"style class {index} out of range 0..{len(self) - 1}")

    def to_dict(self) -> dict:
        return {"beatmaps": [dict(b, md5s=list(b["md5s"])) for b in self._beatmaps], "mappers": list(self._mappers)}

    @classmethod
    def from_dict(cls, d: dict) -> StyleTable:
        return cls(d["beatmaps"], d["mappers"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StyleTable) and self.to_dict() == other.to_dict()


@dataclass(frozen=True)
class PlayerTable:
    """Player classes: 0 is the null class (unknown player, and the guidance null), then one per username."""

    players: tuple[str, ...]  # display names, class i + 1

    @classmethod
    def build(cls, names: list[str]) -> PlayerTable:
        first: dict[str, str] = {}
        for name in sorted(n for n in names if n.strip()):
            first.setdefault(name_key(name), name.strip())
        return cls(tuple(first[k] for k in sorted(first)))

    def class_of(self, name: str) -> int:
        key = name_key(name)
        for i, player in enumerate(self.players):
            if name_key(player) == key:
                return i + 1
        return NULL_CLASS

    @property
    def num_classes(self) -> int:
        return len(self.players) + 1

    def to_dict(self) -> dict:
        return {"null_class": NULL_CLASS, "players": list(self.players)}

    @classmethod
    def from_dict(cls, doc: dict) -> PlayerTable:
        return cls(tuple(doc["players"]))
