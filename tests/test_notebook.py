"""The Colab notebook runs headless top to bottom (as CI's nbconvert would) and leaves a playable remap behind.

It runs against the shipped checkpoints in checkpoints/; until the position model is shipped, against a tiny
one trained here on the fixture maps. Without a replay checkpoint the notebook skips its replay step, and so
does the test that checks it.
"""

import ast
import hashlib
import zipfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from data.beatmap.osu_reader import parse_beatmap, read_beatmap
from data.replay.osr import read_replay
from tests.tiny_checkpoints import tiny_position_checkpoint

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "colab" / "osu_dit.ipynb"
SHIPPED_POSITION = ROOT / "checkpoints" / "position_turns.pt"
SHIPPED_REPLAY = ROOT / "checkpoints" / "replay.pt"
EXAMPLE = (
    ROOT / "tests/fixtures/songs/506908 Nakamura Meiko - Aka no Ha/Nakamura Meiko - Aka no Ha (Lily Bread) [Extra].osu"
)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run the notebook once; (output folder, executed notebook)."""
    work = tmp_path_factory.mktemp("notebook")
    position = SHIPPED_POSITION if SHIPPED_POSITION.exists() else tiny_position_checkpoint(work)
    out = work / "out"
    env = {
        "OSU_DIT_POSITION_CKPT": str(position),
        "OSU_DIT_REPLAY_CKPT": str(SHIPPED_REPLAY),
        "OSU_DIT_OUTPUT": str(out),
        "OSU_DIT_BEATMAP": str(EXAMPLE),
        "OSU_DIT_STEPS": "4",
        "OSU_DIT_PLAYTEST": "True",
        "OMP_NUM_THREADS": "1",
    }
    if not SHIPPED_POSITION.exists():
        env["OSU_DIT_STYLE"] = "no style"  # the presets are mappers of the corpus, unknown to the tiny model
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # "python3" is ipykernel's spec; jupyter_client starts it with this interpreter (sys.executable)
    # run from colab/, as `jupyter nbconvert --execute colab/osu_dit.ipynb` does
    resources = {"metadata": {"path": str(NOTEBOOK.parent)}}
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        client.execute()
    return out, nb


def test_notebook_runs_headless_and_leaves_a_remap_preview_and_osz(executed):
    out, nb = executed
    maps = sorted(out.glob("*.osu"))
    assert len(maps) == 1
    source, remap = read_beatmap(EXAMPLE), read_beatmap(maps[0])
    assert len(remap.hit_objects) == len(source.hit_objects)
    assert [h.time_ms for h in remap.hit_objects] == [h.time_ms for h in source.hit_objects]
    assert remap.version.startswith(source.version + " (osu-dit")
    assert (out / "preview.png").stat().st_size > 10_000
    with zipfile.ZipFile(out / "remap.osz") as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    # the example map has no audio beside it: the archive holds the new difficulty, the very bytes written
    assert list(members.values()) == [maps[0].read_bytes()]
    assert parse_beatmap(next(iter(members.values()))).version == remap.version
    # the preview was shown in the notebook
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert shown


def test_notebook_plays_the_remap(executed):
    if not SHIPPED_REPLAY.exists():
        pytest.skip(f"no replay checkpoint at {SHIPPED_REPLAY.relative_to(ROOT)}: the notebook skipped its replay step")
    out, _ = executed
    (osu,) = out.glob("*.osu")
    (osr,) = out.glob("*.osr")
    replay = read_replay(osr)
    assert replay.beatmap_md5 == hashlib.md5(osu.read_bytes()).hexdigest()
    assert len(replay.frames) > 100
    assert (out / "replay.gif").stat().st_size < 2_000_000
    # the playtest's report: every object of the map in one of its sections
    report = pd.read_csv(osu.with_suffix(".playtest.csv"))
    assert report["objects"].sum() == len(read_beatmap(osu).hit_objects)


def test_style_presets_are_styles_the_shipped_checkpoint_knows():
    if not SHIPPED_POSITION.exists():
        pytest.skip(f"no shipped position checkpoint at {SHIPPED_POSITION.relative_to(ROOT)} yet")
    from pipeline.remap import load_position_model

    _, _, styles = load_position_model(SHIPPED_POSITION)
    settings = nbformat.read(NOTEBOOK, as_version=4).cells[1].source
    line = next(s for s in settings.splitlines() if s.startswith("STYLE ="))
    presets = ast.literal_eval(line.split("#@param", 1)[1].split("{")[0].strip())
    unknown = [p for p in presets if p not in ("own style", "no style") and styles.mapper_class(p) is None]
    assert not unknown, f"presets the checkpoint does not know: {unknown}"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
