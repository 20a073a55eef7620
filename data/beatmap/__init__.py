"""The .osu format: parsing, slider curves, the 16 datapoint types and their codec, .osz archives, inputs."""
