"""Replays and game rules: the .osr format, mods, stacking and judging."""
