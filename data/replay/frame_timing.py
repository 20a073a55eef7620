"""Frame timing as osu!stable records it, measured from human replays and replayed onto a generated cursor.

The replay model works on a fixed 60 Hz grid; a client does not. Human stable replays have whole-millisecond
frame intervals that jitter around 16-17 ms with bursts of short ones, extra frames when a key changes, and the
same position repeated when the mouse reported nothing new (almost always at rest, a few percent in motion),
and positions on the screen's pixels (a lattice in osu! coordinates).
`measure` takes those facts from one replay; `FrameTiming` pools them over a training set and, in `frames`,
lays a generated grid onto sampled frame times: runs of human intervals drawn whole (block bootstrap, so their
rhythm and lag bursts survive), a frame added at a key change as often as humans get one, the next frame after
a press as soon as that human's came (a lagging client's long intervals end at presses), and positions held
where a human's would have been, by cursor speed, and every position snapped onto that human's pixel lattice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.replay.habits import ALTERNATION_GAP_MS, CHORD_MS
from data.replay.osr import KEY1_BITS, KEY2_BITS, ReplayFrames, ReplayGrid, ReplayRecord, key_holds
from data.tables import name_key

# Repeated-position tables: by cursor speed (px/ms, over the two neighbouring frames) and by the interval that
# led to the frame (ms): a frame right after another (a key change) mostly repeats, whatever the speed.
SPEED_EDGES = (0.0, 0.001, 0.05, 0.2, 0.5, 1.0, 2.0)
INTERVAL_EDGES = (0.0, 3.0, 10.0)
MAX_INTERVAL_MS = 100  # runs with a longer interval (a paused game) are not drawn
BLOCK = 64  # intervals per drawn run
SHORT_MS = 8.0  # an interval this short before a key change is the client's extra frame
RUNS_PER_REPLAY = 8  # runs kept from each replay, spread evenly over it
PRIOR_FRAMES = 50.0  # a replay's repeat table leans on the pooled one as if the pool had shown this many frames
# Which key a press uses: the share of presses on the other key than the press before, by the gap between them
# (ms of play time): streams alternate, slow rhythms often do not, and players differ most of all.
ALTERNATION_GAP_EDGES = (0.0, 120.0, 180.0, 250.0, 400.0)
PRIOR_PRESSES = 20.0
MIN_GAP_TICKS = 2  # a key's holds stay this many grid ticks apart (as data.replay_io.clean_keys leaves them)
LATTICE_TOLERANCE = 0.01  # px: a coordinate step within this of a multiple of the quantum is on the lattice
LATTICE_SHARE = 0.9  # a replay is on a lattice when this share of its small steps are
KNOT_SHIFT = 0.49  # share of a tick a press tick's position may move in time: neighbours' knots stay in order
PRESS_SAMPLES = 64  # intervals after a press frame (to the next later frame) kept per replay, spread evenly
LAZER_GAME_VERSION = 30000000  # lazer records differently; only stable replays are measured


def measure(record: ReplayRecord) -> dict[str, np.ndarray] | None:
    """A stable replay's frame-timing facts (None for lazer replays, mods that change the rate, short plays)."""
    frames = record.frames
    if record.game_version >= LAZER_GAME_VERSION or record.rate != 1.0 or len(frames) < BLOCK + 2:
        return None
    t = np.asarray(frames.time_ms, np.float64)
    x, y = frames.x.astype(np.float64), frames.y.astype(np.float64)
    dt = np.diff(t)
    starts = np.linspace(0, len(dt) - BLOCK, RUNS_PER_REPLAY).astype(int)
    repeated = np.hypot(np.diff(x), np.diff(y))[:-1] == 0  # frame i + 1 repeats frame i
    speed = np.hypot(x[2:] - x[:-2], y[2:] - y[:-2]) / np.maximum(t[2:] - t[:-2], 1.0)
    cell = repeat_cells(speed, dt[:-1])
    size = len(SPEED_EDGES) * len(INTERVAL_EDGES)
    keys = frames.keys & (KEY1_BITS | KEY2_BITS)
    key_change = np.diff(keys) != 0
    quantum, offset = lattice(x, y)
    pressed = np.flatnonzero((keys[1:] & ~keys[:-1]) != 0) + 1  # frames where a key goes down
    later = np.searchsorted(t, t[pressed], side="right")  # the next frame at a later time (not a same-ms twin)
    after_press = t[later[later < len(t)]] - t[pressed[later < len(t)]]
    picks = np.linspace(0, len(after_press) - 1, min(PRESS_SAMPLES, len(after_press))).astype(int)
    return {
        "player": np.array(name_key(record.player)),
        "lattice": np.array([quantum, *offset]),
        "intervals": np.concatenate([dt[s : s + BLOCK] for s in starts]).round().clip(0, 255).astype(np.uint8),
        "repeats": np.bincount(cell, weights=repeated, minlength=size),
        "frames": np.bincount(cell, minlength=size).astype(np.float64),
        "after_press": after_press[picks].round().clip(1, 255).astype(np.uint8),
        "key_short": np.array([(dt[key_change] < SHORT_MS).sum(), key_change.sum()], np.float64),
        "other_short": np.array([(dt[~key_change] < SHORT_MS).sum(), (~key_change).sum()], np.float64),
        **_alternation_counts(t, frames.keys),
    }


def _alternation_counts(t: np.ndarray, keys: np.ndarray) -> dict[str, np.ndarray]:
    """Presses on the other key than the press before, and all press pairs, by the gap between them."""
    presses = []
    for number, bits in enumerate((KEY1_BITS, KEY2_BITS)):
        presses += [(t[p], number) for p, _ in key_holds((keys & bits) != 0)]
    presses.sort()
    times, which = np.array([p[0] for p in presses]), np.array([p[1] for p in presses])
    gaps = np.diff(times) if len(presses) > 1 else np.array([])
    other = np.diff(which) != 0 if len(presses) > 1 else np.array([], bool)
    tap = gaps >= CHORD_MS  # both keys pressed together is a chord, not a choice of key
    gap_bin, other = np.digitize(gaps[tap], ALTERNATION_GAP_EDGES[1:]), other[tap]
    size = len(ALTERNATION_GAP_EDGES)
    return {
        "alternations": np.bincount(gap_bin, weights=other, minlength=size),
        "press_pairs": np.bincount(gap_bin, minlength=size).astype(np.float64),
    }


def _samples(mine: np.ndarray, everyone: np.ndarray) -> np.ndarray:
    """PRESS_SAMPLES values: a replay's own, repeated in order when it has fewer; everyone's spread evenly when it
    has none."""
    if len(mine) == 0:
        mine = everyone[np.linspace(0, len(everyone) - 1, PRESS_SAMPLES).astype(int)] if len(everyone) else [255]
    return np.resize(np.asarray(mine), PRESS_SAMPLES)


def _frame_soon_after(times: np.ndarray, presses: list[float], after: np.ndarray, rng) -> np.ndarray:
    """`times` (sorted, each press among them) with a frame added after a press wherever the next later one would
    come later than an interval drawn from `after`. A lagging client's long intervals end at a press and the
    next frame follows within milliseconds; drawn runs alone let a long interval start at a press, and a
    hairpin turn there reads as an aim-correction snap."""
    added = []
    for press in presses:
        gap = float(after[rng.integers(len(after))])
        at = int(np.searchsorted(times, press, side="right"))
        following = times[at] if at < len(times) else np.inf
        if following - press > gap:
            added.append(press + gap)
    return np.sort(np.concatenate([times, added]), kind="stable") if added else times


def lattice(x: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, float]]:
    """(quantum, (x offset, y offset)): a mouse cursor sits on screen pixels, so its osu! coordinates are
    offset + k * quantum (0.444 px at 1080p, 0.625 at 768p...). Quantum 0 when no lattice shows."""
    steps = np.abs(np.concatenate([np.diff(x), np.diff(y)]))
    small = steps[(steps > LATTICE_TOLERANCE) & (steps < 3.0)]
    if len(small) < 20:
        return 0.0, (0.0, 0.0)
    quantum = float(np.percentile(small, 2))
    ratio = small / quantum
    if np.mean(np.abs(ratio - np.round(ratio)) * quantum < LATTICE_TOLERANCE) < LATTICE_SHARE:
        return 0.0, (0.0, 0.0)
    return quantum, (float(np.median(np.mod(x, quantum))), float(np.median(np.mod(y, quantum))))


def repeat_cells(speed: np.ndarray, interval: np.ndarray) -> np.ndarray:
    """Flat index of each frame's (speed bin, interval bin) in the repeat tables."""
    return np.digitize(speed, SPEED_EDGES[1:]) * len(INTERVAL_EDGES) + np.digitize(interval, INTERVAL_EDGES[1:])


@dataclass(frozen=True)
class FrameTiming:
    """Human frame timing, one setup per measured replay (clients and mice differ: a generated replay takes
    one replay's runs of intervals and its repeat table), with extra frames at key changes as often as the
    pool shows."""

    runs: np.ndarray  # uint8 [R, BLOCK], ms of play time
    run_replay: np.ndarray  # int [R]: which measured replay each run came from
    repeat_probability: np.ndarray  # float [D, speed bins x interval bins], one row per measured replay
    key_frame_probability: float
    lattice: np.ndarray  # float [D, 3]: each replay's coordinate quantum (0: none) and x, y offsets
    alternation: np.ndarray  # float [D, gap bins]: chance a press takes the other key than the press before
    setup_player: tuple[str, ...]  # [D]: who played each measured replay (data.tables.name_key)
    # uint8 [D, PRESS_SAMPLES]: ms from a press frame to the next later frame, per replay (None: older profiles)
    after_press: np.ndarray | None = None

    @classmethod
    def pooled(cls, measurements: list[dict[str, np.ndarray] | None]) -> FrameTiming:
        measurements = [m for m in measurements if m is not None]
        if not measurements:
            raise ValueError("no stable human replay at normal speed to measure frame timing from")
        runs, owners, kept = [], [], []
        for m in measurements:
            mine = [run for run in m["intervals"].reshape(-1, BLOCK) if run.max() <= MAX_INTERVAL_MS and run.sum() > 0]
            if mine:
                runs.extend(mine)
                owners.extend([len(kept)] * len(mine))
                kept.append(m)
        if not kept:
            raise ValueError("no run of human frame intervals without a pause to draw from")
        repeats = np.stack([m["repeats"] for m in kept])
        frames = np.stack([m["frames"] for m in kept])
        pool = repeats.sum(0) / np.maximum(frames.sum(0), 1.0)
        table = (repeats + PRIOR_FRAMES * pool) / (frames + PRIOR_FRAMES)
        key_short, other_short = (sum(m[k] for m in kept) for k in ("key_short", "other_short"))
        key_rate = key_short[0] / max(key_short[1], 1.0)
        other_rate = other_short[0] / max(other_short[1], 1.0)
        runs = np.array(runs, np.uint8).reshape(-1, BLOCK)
        # Key changes follow a short interval more often than other frames do: some get a frame of their own.
        # A frame added at a uniform time follows a short interval with chance SHORT_MS / mean interval.
        added_short = min(SHORT_MS / max(float(runs.mean()), SHORT_MS), 1.0)
        extra = np.clip((key_rate - other_rate) / max(added_short - other_rate, 1e-9), 0.0, 1.0)
        lattices = np.stack([m["lattice"] for m in kept])
        alternations, pairs = (np.stack([m[k] for m in kept]) for k in ("alternations", "press_pairs"))
        players = tuple(str(m["player"]) for m in kept)
        after_press = None
        if all("after_press" in m for m in kept):  # caches prepared before it was measured have none
            everyone_after = np.concatenate([m["after_press"] for m in kept])
            after_press = np.stack([_samples(m["after_press"], everyone_after) for m in kept]).astype(np.uint8)
        # A replay with few presses leans on its player's other replays, and those on everyone's.
        everyone = alternations.sum(0) / np.maximum(pairs.sum(0), 1.0)
        alternation = np.zeros_like(alternations)
        for name in set(players):
            mine = np.array([p == name for p in players])
            player = (alternations[mine].sum(0) + PRIOR_PRESSES * everyone) / (pairs[mine].sum(0) + PRIOR_PRESSES)
            alternation[mine] = (alternations[mine] + PRIOR_PRESSES * player) / (pairs[mine] + PRIOR_PRESSES)
        return cls(runs, np.array(owners, np.int64), table, float(extra), lattices, alternation, players, after_press)

    def to_dict(self) -> dict:
        return {
            "runs": self.runs.tolist(),
            "run_replay": self.run_replay.tolist(),
            "repeat_probability": np.round(self.repeat_probability, 4).tolist(),
            "speed_edges": list(SPEED_EDGES),
            "interval_edges": list(INTERVAL_EDGES),
            "key_frame_probability": self.key_frame_probability,
            "lattice": np.round(self.lattice, 4).tolist(),
            "alternation": np.round(self.alternation, 4).tolist(),
            "alternation_gap_edges": list(ALTERNATION_GAP_EDGES),
            "setup_player": list(self.setup_player),
            **({} if self.after_press is None else {"after_press": self.after_press.tolist()}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> FrameTiming:
        return cls(
            np.array(d["runs"], np.uint8).reshape(-1, BLOCK),
            np.array(d["run_replay"], np.int64),
            np.array(d["repeat_probability"], np.float64),
            float(d["key_frame_probability"]),
            np.array(d["lattice"], np.float64).reshape(-1, 3),
            np.array(d["alternation"], np.float64).reshape(-1, len(ALTERNATION_GAP_EDGES)),
            tuple(d["setup_player"]),
            np.array(d["after_press"], np.uint8).reshape(-1, PRESS_SAMPLES) if "after_press" in d else None,
        )

    def frame_times(self, start_ms: float, end_ms: float, runs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Play times from `start_ms` past `end_ms`, stepping by whole runs of intervals drawn from `runs`."""
        times = [np.array([start_ms])]
        now = start_ms
        while now <= end_ms:
            run = runs[rng.integers(len(runs))].astype(np.float64)
            steps = now + np.cumsum(run)
            times.append(steps)
            now = steps[-1]
        return np.concatenate(times)

    def draw_setup(self, rng: np.random.Generator, player: str | None = None) -> int:
        """One measured replay's setup: one of `player`'s own when the pool has any, else any."""
        own = [i for i, name in enumerate(self.setup_player) if player and name == name_key(player)]
        candidates = own or range(len(self.repeat_probability))
        return int(candidates[rng.integers(len(candidates))])

    def frames(
        self,
        grid: ReplayGrid,
        rng: np.random.Generator,
        player: str | None = None,
        alternation: float | None = None,
    ) -> ReplayFrames:
        """The grid's cursor and keys at human frame times, in song time (what an .osr stores).

        One measured replay's setup is drawn (its runs of intervals, its repeat table, its pixel lattice, its
        key alternation; `draw_setup`). Each press goes to the key that replay's player would use
        (`_keys_of_holds`); `alternation`, when given, is the chance instead for presses closer than
        data.replay.habits.ALTERNATION_GAP_MS (an asked player's own habit).
        Each key change gets a frame of its own with `key_frame_probability`, at a uniform time within its tick
        (the grid only knows the tick); otherwise it moves to the nearest frame, where a client would record it. A
        hold no frame would see gets one. Positions are the grid's, interpolated, except where that replay's
        hand would have repeated its position (drawn by speed and by the interval before the frame), and sit on
        its pixel lattice. A press tick's position (where the press was) is reached at the press's frame time."""
        step = grid.step_ms
        t_grid = np.asarray(grid.time_ms, np.float64)
        setup = self.draw_setup(rng, player)
        times = self.frame_times(round(t_grid[0]), t_grid[-1], self.runs[self.run_replay == setup], rng)
        times = times[times <= t_grid[-1]]
        holds, extra = [], []  # holds: (key bits, press, release) in whole ms of play time
        # to_grid puts a press tick's cursor where the press was: read at the tick, a fast click moves off by up
        # to half a tick, so that knot moves to the press frame's time.
        knots = t_grid.copy()
        for bits, p, r in self._keys_of_holds(grid, setup, rng, alternation):
            release_tick = t_grid[r] if r < len(t_grid) else t_grid[-1] + step
            press, release = (self._place(t, step, times, rng, extra) for t in (t_grid[p], release_tick))
            if release <= press:  # both edges met one frame: the hold gets its own
                press = round(t_grid[p])
                extra.append(press)
                release = max(release, press + 1)
            holds.append((bits, press, release))
            knots[p] = np.clip(press, t_grid[p] - KNOT_SHIFT * step, t_grid[p] + KNOT_SHIFT * step)
        # Runs keep their zero intervals (humans have ~5%): equal times stay as separate frames.
        times = np.sort(np.concatenate([times, extra]), kind="stable")
        if self.after_press is not None:
            presses = [press for _, press, _ in holds]
            times = _frame_soon_after(times, presses, self.after_press[setup], rng)
        keys = np.zeros(len(times), np.int32)
        for bits, press, release in holds:
            keys[(times >= press) & (times < release)] |= bits
        x = np.interp(times, knots, grid.x.astype(np.float64))
        y = np.interp(times, knots, grid.y.astype(np.float64))
        speed = np.zeros(len(times))
        if len(times) > 2:
            speed[1:-1] = np.hypot(x[2:] - x[:-2], y[2:] - y[:-2]) / np.maximum(times[2:] - times[:-2], 1.0)
        before = np.diff(times, prepend=times[0] - step)
        chance = self.repeat_probability[setup][repeat_cells(speed, before)]
        repeat = rng.random(len(times)) < chance
        repeat[0] = False
        for i in np.flatnonzero(repeat):
            x[i], y[i] = x[i - 1], y[i - 1]
        quantum, ox, oy = self.lattice[setup]
        if quantum > 0:  # onto that replay's screen pixels
            x = ox + quantum * np.round((x - ox) / quantum)
            y = oy + quantum * np.round((y - oy) / quantum)
        return ReplayFrames(times * grid.rate, x.astype(np.float32), y.astype(np.float32), keys)

    def _keys_of_holds(
        self, grid: ReplayGrid, setup: int, rng: np.random.Generator, alternation: float | None = None
    ) -> list[tuple[int, int, int]]:
        """(key bits, press tick, release tick) of every hold of the grid, in press order, each on the key the
        setup's player would use: the other key than the press before with that replay's chance for the gap,
        unless that key is still down (or just released), where the other one is taken."""
        holds = []
        for number, down in enumerate((grid.k1, grid.k2)):
            holds += [(p, r, number) for p, r in key_holds(np.asarray(down, bool))]
        holds.sort()
        free_from = [-MIN_GAP_TICKS, -MIN_GAP_TICKS]  # first tick each key may be pressed again
        out, previous = [], None
        for p, r, number in holds:
            key = number
            if previous is not None:
                gap_ms = (p - previous[0]) * grid.step_ms
                chance = self.alternation[setup][np.digitize(gap_ms, ALTERNATION_GAP_EDGES[1:])]
                if alternation is not None and gap_ms < ALTERNATION_GAP_MS:
                    chance = alternation
                key = 1 - previous[1] if rng.random() < chance else previous[1]
            if free_from[key] > p:
                key = 1 - key if free_from[1 - key] <= p else number
            free_from[key] = r + MIN_GAP_TICKS
            previous = (p, key)
            out.append(((KEY1_BITS, KEY2_BITS)[key], p, r))
        return out

    def _place(self, tick: float, step: float, times: np.ndarray, rng: np.random.Generator, extra: list) -> float:
        """Where a key change at a grid tick lands: a frame of its own at a uniform time within the tick
        (appended to `extra`), or the nearest frame to the tick."""
        if rng.random() < self.key_frame_probability:
            edge = round(tick + rng.uniform(-0.5, 0.5) * step)
            extra.append(edge)
            return edge
        i = int(np.clip(np.searchsorted(times, tick), 1, len(times) - 1))
        return float(times[i] if times[i] - tick < tick - times[i - 1] else times[i - 1])
