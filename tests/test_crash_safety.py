"""Training killed with SIGKILL while it writes a checkpoint loses nothing, and resumes to the end.

The kill lands while the temporary file of a checkpoint exists (atomic_path writes `.step_N.pt.XXXX.tmp` beside
it and renames it when complete). Every `step_*.pt` left must load; the temp file must never pass for a
checkpoint; --resume from the newest one finishes the run. A cache build killed half-way is completed by the
next run. (That a resumed run equals a straight one is tests/test_train.py's job; that a truncated checkpoint is
refused by train.py --resume and sample.py is tests/test_bad_input.py's.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data.errors import BadInputError
from data.prepare import prepare
from dit.checkpoint import load_checkpoint
from tests.conftest import FIXTURES, ROOT
from tests.tiny_checkpoints import TINY_MODEL_ARGS

TINY = [*TINY_MODEL_ARGS, "--warmup-steps", "1", "--log-every", "1000", "--val-every", "1000", "--ckpt-every", "1"]
LONG_RUN_STEPS = 200  # far more than a try lets it reach: it is always killed mid-run
TRIES = 4
TRY_TIMEOUT_S = 120
POLL_S = 0.0005


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache")
    prepare([FIXTURES / "songs"], out, workers=1, progress=False)
    return out


def train_process(cache: Path, results: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "train.py", *TINY, "--data-path", str(cache), "--results-dir", str(results), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def temp_files(ckpt_dir: Path) -> list[Path]:
    try:
        return [ckpt_dir / n for n in os.listdir(ckpt_dir) if n.endswith(".tmp")]
    except FileNotFoundError:
        return []


def kill_during_a_checkpoint_write(cache: Path, results: Path) -> list[Path]:
    """Start training and SIGKILL it the moment a checkpoint's temp file appears (once an older checkpoint
    exists, so there is one to keep). Returns the temp files the kill left: the interrupted write."""
    ckpt_dir = results / "checkpoints"
    before = set(temp_files(ckpt_dir))  # left by an earlier try
    proc = train_process(cache, results, "--max-steps", str(LONG_RUN_STEPS))
    deadline = time.monotonic() + TRY_TIMEOUT_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if set(temp_files(ckpt_dir)) - before and any(ckpt_dir.glob("step_*.pt")):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return sorted(set(temp_files(ckpt_dir)) - before)  # empty when the rename won the race
            time.sleep(POLL_S)
        stderr = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
        pytest.fail(f"training never wrote a second checkpoint (exit {proc.poll()}): {stderr[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_sigkill_during_checkpoint_write_leaves_only_whole_checkpoints(cache, tmp_path):
    results = tmp_path / "run"
    ckpt_dir = results / "checkpoints"
    for _ in range(TRIES):
        # Each try goes on in the same folder, as a pre-empted job restarted by hand would.
        interrupted = kill_during_a_checkpoint_write(cache, results)
        if interrupted:
            break
    assert interrupted, "the kill never landed during a checkpoint write"

    checkpoints = sorted(ckpt_dir.glob("step_*.pt"))
    assert checkpoints
    # A temp file is named so that no checkpoint pattern takes it for one.
    assert not any(p.name.endswith(".tmp") or p.name.startswith(".") for p in checkpoints)
    for path in checkpoints:
        ckpt = load_checkpoint(path)  # every file with a checkpoint's name is whole
        assert ckpt["train_state"]["step"] == int(path.stem.split("_")[1])
    # The interrupted write is refused if it is ever handed over as a checkpoint (unless it was complete).
    for tmp in interrupted:
        try:
            load_checkpoint(tmp)
        except BadInputError as err:
            assert "\n" not in str(err)

    newest = checkpoints[-1]
    start = load_checkpoint(newest)["train_state"]["step"]
    target = start + 2
    proc = train_process(cache, results, "--max-steps", str(target), "--resume", str(newest))
    _, stderr = proc.communicate(timeout=TRY_TIMEOUT_S)
    assert proc.returncode == 0, stderr.decode(errors="replace")[-3000:]
    final = load_checkpoint(ckpt_dir / f"step_{target:07d}.pt")
    assert final["train_state"]["step"] == target
    for name, value in final["model_state"].items():
        assert value.isfinite().all(), name


def test_sigkill_during_prepare_then_rerun_gives_the_straight_cache(tmp_path):
    """A cache build killed half-way holds only whole arrays and no table; running again completes it exactly."""
    from data.cache import ARRAYS_DIR, MAPS_FILE, STYLES_FILE

    songs = FIXTURES / "songs"
    straight = tmp_path / "straight"
    prepare([songs], straight, workers=1, progress=False)

    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "data.prepare", "--input", str(songs), "--output", str(killed), "--workers", "1"]
    proc = subprocess.Popen([*args, "--no-progress"], cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + TRY_TIMEOUT_S
    arrays = killed / ARRAYS_DIR
    while time.monotonic() < deadline and proc.poll() is None:
        if arrays.is_dir() and any(p.suffix == ".npy" for p in arrays.iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(POLL_S)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "prepare finished before the kill; the test needs a slower step"
    assert not (killed / MAPS_FILE).exists()  # the table is the commit point, written last
    for path in arrays.glob("*.npy"):
        np.load(path, allow_pickle=False)  # every array with a final name is whole

    done = subprocess.run([*args, "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=TRY_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    for name in (MAPS_FILE, STYLES_FILE):
        assert (killed / name).read_bytes() == (straight / name).read_bytes(), name
    assert sorted(p.name for p in (killed / ARRAYS_DIR).iterdir()) == sorted(
        p.name for p in (straight / ARRAYS_DIR).iterdir()
    )
