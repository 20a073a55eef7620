"""Every entry point on bad input: one line naming the file and the problem, exit 2, no traceback, no output.

The bad files are built from the real fixtures (tests/bad_inputs.py). Entry points that start fast (prepare,
roundtrip, replay_eval, benchmark) run as subprocesses for every case; those that import torch (sample, train,
evaluate) run every case through the main() their script calls, plus a few cases as real processes, to keep
the suite fast. Legal but odd files (UTF-16, CRLF, one object, 20000 objects, unsorted times and timing points,
an .osz with one standard difficulty) must work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.beatmap.inputs import read_beatmap_input
from data.beatmap.osu_reader import read_beatmap
from tests import bad_inputs
from tests.conftest import FIXTURES, ROOT
from tests.tiny_checkpoints import TINY_MODEL_ARGS

TINY_TRAIN = [*TINY_MODEL_ARGS, "--warmup-steps", "1", "--workers", "1"]
SAMPLE_FAST = ["--num-sampling-steps", "2", "--no-progress"]
HAS_EVALUATE = (ROOT / "testing" / "evaluate.py").is_file()


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def message_lines(stderr: str) -> list[str]:
    """stderr without progress bars (tqdm redraws with carriage returns) and blank lines."""
    lines = []
    for line in stderr.splitlines():
        line = line.split("\r")[-1].strip()
        if line and not ("%|" in line and ("it/s" in line or "map/s" in line or "s/it" in line or "?" in line)):
            lines.append(line)
    return lines


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def assert_refused(proc: subprocess.CompletedProcess, bad: Path, out: Path) -> None:
    shown = f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    assert proc.returncode == 2, shown
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, shown
    lines = message_lines(proc.stderr)
    assert len(lines) == 1, shown
    assert bad.name in lines[0], shown  # names the file
    assert lines[0].split(bad.name, 1)[1].lstrip("'\": ").strip(), shown  # and says what is wrong with it
    left = sorted(out.rglob("*")) if out.exists() else []
    assert left == [], f"output left behind: {left}"  # no file, and no folder made for one


# ---------------------------------------------------------------- shared fixtures


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny position checkpoint trained one step on the fixture maps (what sample.py needs)."""
    import train

    results = tmp_path_factory.mktemp("tiny_run")
    args = [*TINY_TRAIN, "--data-path", str(FIXTURES / "songs"), "--results-dir", str(results), "--max-steps", "1"]
    assert train.cli(args) == 0
    return results / "checkpoints" / "step_0000001.pt"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """Each bad beatmap in a folder of its own (a batch tool given the folder sees only that file)."""
    root = tmp_path_factory.mktemp("bad")
    built = {}
    for name, build in bad_inputs.BAD_BEATMAPS.items():
        (root / name).mkdir()
        built[name] = build(FIXTURES, root / name)
    return built


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    built = {}
    for name, build in bad_inputs.ODD_BEATMAPS.items():
        (root / name).mkdir()
        built[name] = build(FIXTURES, root / name)
    return built


def command(entry: str, path: Path, out: Path, ckpt: Path | None) -> list[str]:
    """The argument list of `entry` reading `path` and writing under `out`."""
    if entry == "sample":
        return ["sample.py", "--beatmap", str(path), "--ckpt", str(ckpt), "--output", str(out / "x.osu"), *SAMPLE_FAST]
    if entry == "train":
        return [
            "train.py",
            *TINY_TRAIN,
            "--data-path",
            str(path),
            "--results-dir",
            str(out / "run"),
            "--max-steps",
            "1",
        ]
    if entry == "prepare":
        return ["-m", "data.prepare", "--input", str(path), "--output", str(out / "cache")]
    if entry == "roundtrip":
        return ["testing/roundtrip.py", "--input", str(path), "--output", str(out / "roundtrip")]
    if entry == "evaluate":
        return [
            "testing/evaluate.py",
            "--input",
            str(path),
            "--output",
            str(out / "evaluate"),
            "--ckpt",
            str(ckpt),
            "--num-sampling-steps",
            "2",
        ]
    raise ValueError(entry)


ENTRY_POINTS = ["sample", "train", "prepare", "roundtrip"] + (["evaluate"] if HAS_EVALUATE else [])
NEEDS_CKPT = {"sample", "evaluate"}
# Entry points that import torch cost seconds to start; they run every case in-process (their main() is what
# the script runs) and a few cases as real processes. The others start in a fraction of a second.
IN_PROCESS = {"sample", "train", "evaluate"}
AS_PROCESS_CASES = ["binary"]  # one real process each: exit status and stderr as a user sees them


def call(args: list[str]) -> tuple[int, str]:
    """Run an entry point's main() in this process: (exit status, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    script, argv = args[0], args[1:]
    if script == "-m":
        script, argv = argv[0], argv[1:]
    if script == "sample.py":
        import sample

        main = sample.main
    elif script == "train.py":
        import train

        main = train.cli
    elif script == "testing/evaluate.py":
        from testing import evaluate

        main = evaluate.main
    else:
        raise ValueError(script)
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        code = main(argv)
    return code, err.getvalue()


def check_refused(args: list[str], bad: Path, out: Path, in_process: bool) -> None:
    if not in_process:
        assert_refused(run(args), bad, out)
        return
    code, stderr = call(args)
    assert_refused(subprocess.CompletedProcess(args, code, "", stderr), bad, out)


# ---------------------------------------------------------------- bad beatmaps, every entry point


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bad_beatmaps_are_refused_by_every_entry_point(entry, bad_files, tmp_path, request):
    ckpt = request.getfixturevalue("checkpoint") if entry in NEEDS_CKPT else None
    failures = []
    for name, bad in bad_files.items():
        out = tmp_path / name
        out.mkdir()
        try:
            check_refused(command(entry, bad, out, ckpt), bad, out, in_process=entry in IN_PROCESS)
        except Exception as err:  # collect every case: the report names each entry point x case that fails
            failures.append(f"{entry} x {name}: {type(err).__name__}: {err}")
    assert not failures, "\n\n".join(failures)


def test_bad_beatmaps_are_refused_as_a_style_reference(bad_files, checkpoint, tmp_path):
    source = next((FIXTURES / "songs").rglob("*.osu"))
    failures = []
    for name, bad in bad_files.items():
        out = tmp_path / name
        out.mkdir()
        args = ["sample.py", "--beatmap", str(source), "--ckpt", str(checkpoint), "--style-from", str(bad)]
        try:
            check_refused([*args, "--output", str(out / "x.osu"), *SAMPLE_FAST], bad, out, in_process=True)
        except Exception as err:
            failures.append(f"--style-from {name}: {type(err).__name__}: {err}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("entry", sorted(IN_PROCESS & set(ENTRY_POINTS)))
def test_bad_beatmaps_are_refused_as_a_process(entry, bad_files, tmp_path, request):
    ckpt = request.getfixturevalue("checkpoint") if entry in NEEDS_CKPT else None
    for name in AS_PROCESS_CASES:
        out = tmp_path / name
        out.mkdir()
        check_refused(command(entry, bad_files[name], out, ckpt), bad_files[name], out, in_process=False)


def test_debug_flag_shows_the_traceback(bad_files, tmp_path):
    proc = run(["-m", "data.prepare", "--input", str(bad_files["taiko"]), "--output", str(tmp_path / "c"), "--debug"])
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "BadInputError" in proc.stderr


# ---------------------------------------------------------------- legal but odd input works


def test_odd_beatmaps_are_remapped(odd_files, checkpoint, tmp_path):
    failures = []
    for name, path in odd_files.items():
        out = tmp_path / f"{name}.osu"
        code, stderr = call(
            ["sample.py", "--beatmap", str(path), "--ckpt", str(checkpoint), "--output", str(out), *SAMPLE_FAST]
        )
        if code != 0 or not out.is_file():
            failures.append(f"{name}: exit {code}: {stderr[-1500:]}")
            continue
        written, expected = read_beatmap(out), read_beatmap_input(path)
        # Same rhythm: every object's time and kind, in osu!'s (time-sorted) order.
        if [(h.time_ms, h.kind) for h in written.hit_objects] != [(h.time_ms, h.kind) for h in expected.hit_objects]:
            failures.append(f"{name}: the remap changed the objects' times or kinds")
    assert not failures, "\n\n".join(failures)


def test_odd_beatmaps_are_prepared_and_roundtrip(odd_files, tmp_path):
    for name, path in odd_files.items():
        proc = run(["-m", "data.prepare", "--input", str(path), "--output", str(tmp_path / name), "--no-progress"])
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert "prepare: 1 maps" in proc.stderr, f"{name}: {proc.stderr}"
        if path.suffix != ".osu":
            continue
        proc = run(["testing/roundtrip.py", "--input", str(path), "--output", str(tmp_path / f"rt_{name}")])
        assert proc.returncode == 0 and proc.stdout.startswith("OK"), f"{name}: {proc.stdout}{proc.stderr}"
        # With its own positions the decoded map is the source, byte for byte (unsorted lines stay where they were).
        assert (tmp_path / f"rt_{name}" / path.name).read_bytes() == path.read_bytes(), name


# ---------------------------------------------------------------- batch tools skip, count and finish


@pytest.fixture()
def mixed_folder(tmp_path) -> tuple[Path, int, int]:
    """Two real set folders plus every bad beatmap that a folder walk finds (.osu and .osz files)."""
    root = tmp_path / "Songs"
    good = 0
    for set_folder in sorted((FIXTURES / "songs").iterdir())[:3]:
        target = root / set_folder.name
        target.mkdir(parents=True)
        for f in set_folder.glob("*.osu"):
            (target / f.name).write_bytes(f.read_bytes())
            good += 1
    bad_dir = root / "bad"
    bad_dir.mkdir()
    for name, build in bad_inputs.BAD_BEATMAPS.items():
        (bad_dir / name).mkdir()
        build(FIXTURES, bad_dir / name)
    bad_maps = sum(1 for p in bad_dir.rglob("*") if p.is_file() and p.suffix == ".osu")
    return root, good, bad_maps


def test_prepare_skips_and_counts_bad_files(mixed_folder, tmp_path):
    root, good, bad_maps = mixed_folder
    proc = run(["-m", "data.prepare", "--input", str(root), "--output", str(tmp_path / "cache"), "--no-progress"])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    line = message_lines(proc.stderr)[-1]
    assert line.startswith(f"prepare: {good} maps"), line
    # every bad .osu, the archive without a standard map (2 members) and the broken archive are counted
    skipped = int(line.split(" skipped")[0].rsplit(" ", 1)[-1])
    assert skipped >= bad_maps + 1, line


def test_roundtrip_skips_and_counts_bad_files(mixed_folder, tmp_path):
    root, good, bad_maps = mixed_folder
    proc = run(["testing/roundtrip.py", "--input", str(root), "--output", str(tmp_path / "out")])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("\nOK ") + proc.stdout.startswith("OK ") == good
    refused = len(list((root / "bad").rglob("*.osu")))  # the folder named like a map is refused too
    assert proc.stdout.count("REFUSED ") == refused > bad_maps
    assert f"refused: {refused}" in proc.stdout
    assert len(files_under(tmp_path / "out")) == good


def test_batch_tools_with_nothing_usable_exit_2(bad_files, tmp_path):
    folder = bad_files["empty"].parent
    for args in (
        ["-m", "data.prepare", "--input", str(folder), "--output", str(tmp_path / "cache"), "--no-progress"],
        ["testing/roundtrip.py", "--input", str(folder), "--output", str(tmp_path / "rt")],
    ):
        proc = run(args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
    assert files_under(tmp_path) == []


def test_bad_replays_are_skipped_by_prepare(tmp_path):
    replays = tmp_path / "replays"
    replays.mkdir()
    for f in sorted((FIXTURES / "replays").glob("*.osr"))[:2]:
        (replays / f.name).write_bytes(f.read_bytes())
    for build in bad_inputs.BAD_REPLAYS.values():
        build(FIXTURES, replays)
    cache = tmp_path / "cache"
    proc = run(
        [
            "-m",
            "data.prepare",
            "--input",
            str(FIXTURES / "songs"),
            "--output",
            str(cache),
            "--no-progress",
            "--replays",
            str(replays),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    replay_line = next(line for line in proc.stderr.splitlines() if line.startswith("replays:"))
    assert str(len(bad_inputs.BAD_REPLAYS)) in replay_line


# ---------------------------------------------------------------- bad checkpoints


def test_bad_checkpoints_are_refused(checkpoint, tmp_path):
    bad = bad_inputs.bad_checkpoints(checkpoint, FIXTURES, tmp_path / "ckpts")
    beatmap = FIXTURES / "songs" / bad_inputs.BASE_MAP
    failures = []
    for name, path in bad.items():
        out = tmp_path / "out" / name
        out.mkdir(parents=True)
        sample_args = ["sample.py", "--beatmap", str(beatmap), "--ckpt", str(path), "--output", str(out / "x.osu")]
        train_args = ["train.py", *TINY_TRAIN, "--data-path", str(FIXTURES / "songs")]
        train_args += ["--results-dir", str(out / "run"), "--max-steps", "2", "--resume", str(path)]
        for entry, args in (("sample", sample_args), ("train --resume", train_args)):
            try:
                # a truncated checkpoint also runs as a real process
                check_refused(args, path, out, in_process=name != "truncated")
                if entry == "sample" and name != "truncated":
                    message = call(args)[1]
                    assert "pickle" not in message.lower() and "weights_only" not in message, message
            except Exception as err:
                failures.append(f"{entry} x {name}: {type(err).__name__}: {err}")
    assert not failures, "\n\n".join(failures)


def test_output_that_is_a_folder_is_refused(checkpoint, tmp_path):
    folder = tmp_path / "out.osu"
    folder.mkdir()
    beatmap = FIXTURES / "songs" / bad_inputs.BASE_MAP
    args = ["sample.py", "--beatmap", str(beatmap), "--ckpt", str(checkpoint), "--output", str(folder), *SAMPLE_FAST]
    check_refused(args, folder, folder, in_process=True)


def test_output_folder_that_is_a_file_is_refused(tmp_path):
    """A file where an output folder belongs: the cache, the round-trip output, the results folder."""
    taken = tmp_path / "taken"
    taken.write_bytes(b"")
    songs = FIXTURES / "songs"
    cases = [
        (["-m", "data.prepare", "--input", str(songs), "--output", str(taken), "--no-progress"], False),
        (["testing/roundtrip.py", "--input", str(songs), "--output", str(taken)], False),
        (["train.py", *TINY_TRAIN, "--data-path", str(songs), "--results-dir", str(taken), "--max-steps", "1"], True),
    ]
    for args, in_process in cases:
        check_refused(args, taken, tmp_path / "nothing", in_process=in_process)
        assert taken.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_missing_replay_folder_is_refused_before_the_maps_are_built(tmp_path):
    cache = tmp_path / "cache"
    missing = tmp_path / "no_replays"
    args = ["-m", "data.prepare", "--input", str(FIXTURES / "songs"), "--output", str(cache), "--replays", str(missing)]
    check_refused(args, missing, cache, in_process=False)
    assert not cache.exists()


def test_wrong_kind_of_model_or_cache_is_refused(checkpoint, tmp_path):
    """A position checkpoint where a replay model belongs, a map folder where a replay cache belongs."""
    beatmap = FIXTURES / "songs" / bad_inputs.BASE_MAP
    out = tmp_path / "out"
    out.mkdir()
    replay_args = ["sample.py", "--beatmap", str(beatmap), "--replay-only", "--replay-ckpt", str(checkpoint)]
    check_refused([*replay_args, "--output", str(out / "x.osr"), *SAMPLE_FAST], checkpoint, out, in_process=True)
    songs = FIXTURES / "songs"
    train_args = ["train.py", *TINY_TRAIN, "--task", "replay", "--data-path", str(songs)]
    check_refused([*train_args, "--results-dir", str(out / "run"), "--max-steps", "1"], songs, out, in_process=True)


# ---------------------------------------------------------------- bad replays where a replay is expected

HAS_REPLAY_EVAL = (ROOT / "testing" / "replay_eval.py").is_file()


@pytest.mark.skipif(not HAS_REPLAY_EVAL, reason="testing/replay_eval.py not in this checkout")
def test_bad_replays_are_refused_by_replay_eval(tmp_path):
    built = {name: build(FIXTURES, tmp_path / "replays") for name, build in bad_inputs.BAD_REPLAYS.items()}
    built["missing"] = tmp_path / "replays" / "missing.osr"
    empty_folder = tmp_path / "no_replays"
    empty_folder.mkdir()
    built["folder without replays"] = empty_folder
    failures = []
    for name, path in built.items():
        out = tmp_path / "out" / name
        args = [
            "testing/replay_eval.py",
            "--human",
            str(path),
            "--songs",
            str(FIXTURES / "songs"),
            "--output",
            str(out),
        ]
        try:
            assert_refused(run(args), path, out)
        except AssertionError as err:
            failures.append(f"replay_eval x {name}: {err}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.skipif(not HAS_REPLAY_EVAL, reason="testing/replay_eval.py not in this checkout")
def test_replay_eval_skips_bad_replays_among_good_ones(tmp_path):
    replays = tmp_path / "replays"
    replays.mkdir()
    good = sorted((FIXTURES / "replays").glob("*.osr"))[0]
    (replays / good.name).write_bytes(good.read_bytes())
    for build in bad_inputs.BAD_REPLAYS.values():
        build(FIXTURES, replays)
    out = tmp_path / "out"
    args = ["testing/replay_eval.py", "--human", str(replays), "--songs", str(FIXTURES / "songs"), "--output", str(out)]
    proc = run(args)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (out / "summary.json").is_file()


def test_benchmark_refuses_missing_inputs(bad_files, tmp_path):
    missing = bad_files["missing_path"]
    for args in (
        ["testing/benchmark.py", "prepare", "--input", str(missing)],
        ["testing/benchmark.py", "sample", "--beatmap", str(bad_files["taiko"])],
    ):
        proc = run(args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(message_lines(proc.stderr)) == 1, proc.stderr


def test_ambiguous_or_unknown_difficulty_is_refused(checkpoint, tmp_path):
    """An .osz with several standard difficulties needs --difficulty; a name it does not hold is refused."""
    import zipfile

    osz = tmp_path / "set.osz"
    with zipfile.ZipFile(osz, "w") as archive:
        for path in sorted((FIXTURES / "songs").rglob("*.osu"))[:2]:
            archive.write(path, path.name)
    out = tmp_path / "out"
    out.mkdir()
    base = ["sample.py", "--beatmap", str(osz), "--ckpt", str(checkpoint), "--output", str(out / "x.osu")]
    for extra in ([], ["--difficulty", "No Such Difficulty"]):
        check_refused([*base, *extra, *SAMPLE_FAST], osz, out, in_process=True)
