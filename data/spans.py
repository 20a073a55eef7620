"""Where fixed-length training windows start over a sequence (maps, replays) and over a replay at sampling."""

from __future__ import annotations


def window_starts(n: int, seq_len: int, stride: int) -> list[int]:
    """Window starts covering all n items (none when n is 0); a sequence shorter than one window gets one padded
    window."""
    if n <= seq_len:
        return [0] if n else []
    starts = list(range(0, n - seq_len + 1, stride))
    if starts[-1] != n - seq_len:  # the tail would be missed by the stride
        starts.append(n - seq_len)
    return starts
