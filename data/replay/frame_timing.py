"""Frame timing as osu!stable records it, measured from human replays and replayed onto a generated cursor.

The replay model works on a fixed 60 Hz grid; a client does not. Human stable replays have whole-millisecond
frame intervals that jitter around 16-17 ms with bursts of short ones, extra frames when a key changes, and the
same position repeated when the mouse reported nothing new (almost always at rest, a few percent in motion).
`measure` takes those facts from one replay; `FrameTiming` pools them over a training set and, in `frames`,
lays a generated grid onto sampled frame times: runs of human intervals drawn whole (block bootstrap, so their
rhythm and lag bursts survive), a frame added at a key change as often as humans get one, and positions held
where a human's would have been, by cursor speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.replay.osr import KEY1_BITS, KEY2_BITS, ReplayFrames, ReplayGrid, ReplayRecord

# Speed bins (px/ms, over the two neighbouring frames) of the repeated-position table.
SPEED_EDGES = (0.0, 0.001, 0.05, 0.2, 0.5, 1.0, 2.0)
MAX_INTERVAL_MS = 60  # runs with a longer interval (pauses, lag spikes) are not drawn
BLOCK = 64  # intervals per drawn run
SHORT_MS = 8.0  # an interval this short before a key change is the client's extra frame
RUNS_PER_REPLAY = 8  # runs kept from each replay, spread evenly over it
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
    moved = np.hypot(np.diff(x), np.diff(y))
    speed = np.hypot(x[2:] - x[:-2], y[2:] - y[:-2]) / np.maximum(t[2:] - t[:-2], 1.0)
    repeated = moved[:-1] == 0
    bins = np.digitize(speed, SPEED_EDGES[1:])
    keys = frames.keys & (KEY1_BITS | KEY2_BITS)
    key_change = np.diff(keys) != 0
    return {
        "intervals": np.concatenate([dt[s : s + BLOCK] for s in starts]).round().clip(0, 255).astype(np.uint8),
        "repeats": np.bincount(bins, weights=repeated, minlength=len(SPEED_EDGES)),
        "frames": np.bincount(bins, minlength=len(SPEED_EDGES)).astype(np.float64),
        "key_short": np.array([(dt[key_change] < SHORT_MS).sum(), key_change.sum()], np.float64),
        "other_short": np.array([(dt[~key_change] < SHORT_MS).sum(), (~key_change).sum()], np.float64),
    }


@dataclass(frozen=True)
class FrameTiming:
    """Pooled human frame timing: runs of intervals, repeat probability by speed, extra frames at key changes."""

    runs: np.ndarray  # uint8 [R, BLOCK], ms of play time
    repeat_probability: np.ndarray  # float [len(SPEED_EDGES)]
    key_frame_probability: float

    @classmethod
    def pooled(cls, measurements: list[dict[str, np.ndarray]]) -> FrameTiming:
        measurements = [m for m in measurements if m is not None]
        if not measurements:
            raise ValueError("no stable human replay at normal speed to measure frame timing from")
        runs = []
        for m in measurements:
            intervals = m["intervals"]
            for start in range(0, len(intervals) - BLOCK + 1, BLOCK):
                run = intervals[start : start + BLOCK]
                if run.max() <= MAX_INTERVAL_MS and run.sum() > 0:
                    runs.append(run)
        repeats = sum(m["repeats"] for m in measurements)
        frames = sum(m["frames"] for m in measurements)
        key_short, other_short = (sum(m[k] for m in measurements) for k in ("key_short", "other_short"))
        key_rate = key_short[0] / max(key_short[1], 1.0)
        other_rate = other_short[0] / max(other_short[1], 1.0)
        runs = np.array(runs, np.uint8).reshape(-1, BLOCK)
        # Key changes follow a short interval more often than other frames do: some get a frame of their own.
        # A frame added at a uniform time follows a short interval with chance SHORT_MS / mean interval.
        added_short = min(SHORT_MS / max(float(runs.mean()), SHORT_MS), 1.0)
        extra = np.clip((key_rate - other_rate) / max(added_short - other_rate, 1e-9), 0.0, 1.0)
        return cls(runs, repeats / np.maximum(frames, 1.0), float(extra))

    def to_dict(self) -> dict:
        return {
            "runs": self.runs.tolist(),
            "repeat_probability": [float(p) for p in self.repeat_probability],
            "speed_edges": list(SPEED_EDGES),
            "key_frame_probability": self.key_frame_probability,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FrameTiming:
        return cls(
            np.array(d["runs"], np.uint8).reshape(-1, BLOCK),
            np.array(d["repeat_probability"], np.float64),
            float(d["key_frame_probability"]),
        )

    def frame_times(self, start_ms: float, end_ms: float, rng: np.random.Generator) -> np.ndarray:
        """Play times from `start_ms` past `end_ms`, stepping by whole human runs of intervals."""
        times = [np.array([start_ms])]
        now = start_ms
        while now <= end_ms:
            run = self.runs[rng.integers(len(self.runs))].astype(np.float64)
            steps = now + np.cumsum(run)
            times.append(steps)
            now = steps[-1]
        return np.concatenate(times)

    def frames(self, grid: ReplayGrid, rng: np.random.Generator) -> ReplayFrames:
        """The grid's cursor and keys at human frame times, in song time (what an .osr stores).

        Each key change moves from its tick to a uniform time within that tick (the grid only knows the tick),
        gets a frame of its own with `key_frame_probability` (otherwise the next frame carries it), and a
        press no frame would see gets one. Positions are the grid's, interpolated, except where a human's would
        have repeated (drawn by the speed there)."""
        step = grid.step_ms
        t_grid = np.asarray(grid.time_ms, np.float64)
        holds = []  # (press, release) play times of every hold of each key
        for key, down in ((KEY1_BITS, grid.k1), (KEY2_BITS, grid.k2)):
            edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(down, np.int8), [0]])))
            for p, r in zip(edges[0::2], edges[1::2], strict=True):
                press = t_grid[p] + rng.uniform(-0.5, 0.5) * step
                release = (t_grid[r] if r < len(t_grid) else t_grid[-1] + step) + rng.uniform(-0.5, 0.5) * step
                holds.append((key, press, max(release, press + 1.0)))
        times = self.frame_times(t_grid[0], t_grid[-1], rng)
        times = times[times <= t_grid[-1]]
        extra = []
        for _, press, release in holds:
            for edge in (press, release):
                if rng.random() < self.key_frame_probability:
                    extra.append(edge)
            if not np.any((times >= press) & (times < release)):
                extra.append(press)
        # Runs keep their zero intervals (humans have ~5%): equal times stay as separate frames.
        times = np.sort(np.round(np.concatenate([times, extra])), kind="stable")
        keys = np.zeros(len(times), np.int32)
        for bits, press, release in holds:
            keys[(times >= np.round(press)) & (times < np.round(release))] |= bits
        x = np.interp(times, t_grid, grid.x.astype(np.float64))
        y = np.interp(times, t_grid, grid.y.astype(np.float64))
        # Presses land where the grid put them: its press tick holds the cursor at the press.
        speed = np.zeros(len(times))
        if len(times) > 2:
            speed[1:-1] = np.hypot(x[2:] - x[:-2], y[2:] - y[:-2]) / np.maximum(times[2:] - times[:-2], 1.0)
        repeat = rng.random(len(times)) < self.repeat_probability[np.digitize(speed, SPEED_EDGES[1:])]
        changes = np.concatenate([[True], keys[1:] != keys[:-1]])
        repeat &= ~changes  # a press is where the hand is
        repeat[0] = False
        for i in np.flatnonzero(repeat):
            x[i], y[i] = x[i - 1], y[i - 1]
        return ReplayFrames(times * grid.rate, x.astype(np.float32), y.astype(np.float32), keys)
