"""Pictures of maps and replays (matplotlib): previews and animations."""
