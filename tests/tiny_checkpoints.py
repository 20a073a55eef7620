"""Tiny checkpoints trained for two steps on the fixture maps, for tests that run the whole remap pipeline."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The smallest training run every test shares; each test adds the step counts and logging it needs.
TINY_MODEL_ARGS = ["--model", "DiT-T", "--global-batch-size", "4", "--seq-len", "32", "--no-tensorboard"]
TINY_ARGS = [*TINY_MODEL_ARGS, "--warmup-steps", "1", "--max-steps", "2", "--ckpt-every", "2", "--val-every", "2"]
TINY_ARGS += ["--log-every", "2"]


def tiny_position_checkpoint(work: Path, *extra: str) -> Path:
    """A DiT-T position model after two steps (train.py options `extra` added): untrained, but every code path
    downstream of it runs."""
    import train
    from data.prepare import prepare

    cache = work / "cache"
    prepare([ROOT / "tests" / "fixtures" / "songs"], cache, workers=1, progress=False)
    assert train.cli([*TINY_ARGS, *extra, "--data-path", str(cache), "--results-dir", str(work / "run")]) == 0
    return work / "run" / "checkpoints" / "step_0000002.pt"
