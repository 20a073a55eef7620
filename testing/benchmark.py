"""Timings of the project's pipelines, each run as its users run it (whole processes, wall clock).

    python testing/benchmark.py prepare --input SONGS_DIR [--maps 140] [--json]
    python testing/benchmark.py train --model DiT-S --batch-size 32 --seq-len 128 [--data-path CACHE] [--json]
    python testing/benchmark.py sample --beatmap X.osu [--ckpt PATH] [--json]
    python testing/benchmark.py replay --beatmap X.osu [--replay-ckpt PATH] [--json]

Each subcommand is one `add_<name>(subparsers)` function registered in SUBCOMMANDS; to add one, write the
function (it sets `func` and `show` with `set_defaults`; `common` carries --json) and add it to the dict.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))  # train/sample/replay import the project's packages


# ---------------------------------------------------------------- prepare


def run_prepare(args: argparse.Namespace) -> dict:
    """Copy up to --maps maps into a temp Songs folder, then time a fresh `python -m data.prepare` on it."""
    source = Path(args.input)
    if not source.is_dir():
        from data.errors import BadInputError

        raise BadInputError(source, "not a folder")
    maps = sorted(source.rglob("*.osu"))
    # Spread the pick over the whole corpus (every k-th map), so it is not one artist's sets.
    step = max(1, len(maps) // args.maps) if args.maps else 1
    picked = maps[::step][: args.maps] if args.maps else maps
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        songs = Path(tmp) / "songs"
        for path in picked:
            target = songs / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        output = Path(tmp) / "cache"
        command = [PYTHON, "-m", "data.prepare", "--input", str(songs), "--output", str(output), "--no-progress"]
        if args.workers:
            command += ["--workers", str(args.workers)]
        timings = []
        cpu_s = []
        for _ in range(args.repeat):
            shutil.rmtree(output, ignore_errors=True)
            cpu_before = _children_cpu_s()
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            timings.append(time.perf_counter() - started)
            cpu_s.append(_children_cpu_s() - cpu_before)
            if done.returncode != 0:
                raise SystemExit(f"prepare failed ({done.returncode}): {done.stderr.strip()}")
        started = time.perf_counter()
        rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        rerun_s = time.perf_counter() - started
        best = min(timings)
        return {
            "maps_copied": len(picked),
            "wall_s": round(best, 3),
            "wall_s_all": [round(t, 3) for t in timings],
            "maps_per_s": round(len(picked) / best, 1),
            # CPU seconds of the process and its workers: the wall time an idle machine would need, times cores.
            "cpu_s": round(min(cpu_s), 3),
            "maps_per_cpu_s": round(len(picked) / min(cpu_s), 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "incremental_rerun_s": round(rerun_s, 3),
            "summary": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "",
            "rerun_summary": rerun.stderr.strip().splitlines()[-1] if rerun.stderr.strip() else "",
            "cpu_count": os.cpu_count(),
        }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def print_prepare(result: dict) -> None:
    print(
        f"prepare: {result['maps_copied']} maps in {result['wall_s']:.2f} s = {result['maps_per_s']} maps/s "
        f"(whole process, best of {len(result['wall_s_all'])}: {result['wall_s_all']}); "
        f"{result['cpu_s']:.2f} CPU s = {result['maps_per_cpu_s']} maps per CPU s on {result['cpu_count']} cores "
        f"at load {result['load_average_1min']}; unchanged rerun {result['incremental_rerun_s']:.2f} s"
    )
    print(result["summary"])


def add_prepare(subparsers: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "prepare", parents=common, help="time python -m data.prepare on a copy of some corpus maps"
    )
    parser.add_argument("--input", required=True, help="a Songs folder to take maps from")
    parser.add_argument("--maps", type=int, default=140, help="how many maps to copy (0: all)")
    parser.add_argument("--workers", type=int, default=None, help="passed to data.prepare")
    parser.add_argument("--repeat", type=int, default=1, help="fresh runs to time; the best is reported")
    parser.set_defaults(func=run_prepare, show=print_prepare)


# ---------------------------------------------------------------- reference figures
# What the reference osu-diffusion measured on this machine (issue 3): DiT-S training throughput, and one
# 250-step DiT-S sample of a 2000-datapoint map (DiT-B: about 46 minutes).
REFERENCE_TRAIN_DATAPOINTS_PER_S = 1100.0
REFERENCE_SAMPLE_S = 19 * 60.0
REFERENCE_SAMPLE_DATAPOINTS = 2000
REFERENCE_SAMPLE_STEPS = 250


# ---------------------------------------------------------------- train


def run_train(args: argparse.Namespace) -> dict:
    """Time forward + backward + optimizer step (+ EMA) of a position DiT on real windows, in this process."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        cache = Path(args.data_path) if args.data_path else _fixture_cache(Path(tmp))
        return _time_train(args, cache)


def _time_train(args: argparse.Namespace, cache: Path) -> dict:
    """Times pipeline.training.train_step, the step train.py runs, on the position task's own windows."""
    import copy

    import numpy as np
    import torch
    from accelerate import Accelerator

    from dit.models import PositionDiT
    from pipeline.tasks import PositionTask
    from pipeline.training import collate, make_optimizer, resolve_precision, train_step

    precision = resolve_precision(args.mixed_precision)  # the same choice train.py makes on this machine
    accelerator = Accelerator(cpu=True, mixed_precision=precision)
    options = argparse.Namespace(data_path=[cache], seq_len=args.seq_len, seed=0, model=args.model,
                                 style_features="window", turn_loss_weight=0.0, self_condition=False,
                                 turn_channels=False)  # fmt: skip
    task = PositionTask(options)
    _, dataset, _ = task.datasets(accelerator)
    if len(dataset) == 0:
        raise SystemExit(f"{cache}: no training windows")
    torch.manual_seed(0)
    model = PositionDiT(task.new_config())
    task.init_model(model)
    ema = copy.deepcopy(model).requires_grad_(False)
    model, optimizer = accelerator.prepare(model, make_optimizer(model, lr=1e-4))
    model.train()
    generator = torch.Generator().manual_seed(0)
    # The reference trains on full windows only (it skips maps shorter than one), so full windows are what is
    # timed; the padding train.py would carry on this data is reported beside the figure.
    lengths = dataset.window_lengths()
    full = np.flatnonzero(lengths == args.seq_len)
    candidates = full if len(full) else np.arange(len(dataset))
    order = candidates[torch.randperm(len(candidates), generator=generator).numpy()].tolist()
    batches = [
        [order[(s * args.batch_size + i) % len(order)] for i in range(args.batch_size)]
        for s in range(args.warmup + args.steps)
    ]

    def step(indices: list[int]) -> int:
        batch = collate([dataset[i] for i in indices])
        train_step(task, model, ema, optimizer, accelerator, batch, lr=1e-4, grad_clip=1.0, ema_decay=0.999,
                   generator=generator)  # fmt: skip
        return int(batch["mask"].sum())

    for indices in batches[: args.warmup]:
        step(indices)
    cpu_before = time.process_time()
    started = time.perf_counter()
    real = sum(step(indices) for indices in batches[args.warmup :])
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    tokens = args.steps * args.batch_size * args.seq_len
    rate = real / wall
    return {
        "model": args.model,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "steps_timed": args.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_datapoints_per_s": round(rate, 1),  # real (unpadded) datapoints, as train.py logs them
        "train_tokens_per_s": round(tokens / wall, 1),
        # On a shared machine wall time mostly measures the other processes; CPU time is this one's own cost.
        "train_datapoints_per_cpu_s": round(real / cpu, 1) if cpu > 0 else None,
        "step_s": round(wall / args.steps, 4),
        "cpu_s_per_step": round(cpu / args.steps, 4),
        "threads": torch.get_num_threads(),
        "precision": precision,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "data": str(cache) if args.data_path else "tests/fixtures/songs (prepared to a temp cache)",
        "windows_timed": "full" if len(full) else "all (no map fills a window)",
        # Share of padding tokens in an epoch of this data's windows (maps shorter than --seq-len).
        "padding_share_in_training": round(1 - float(lengths.sum()) / (len(lengths) * args.seq_len), 4),
        "reference_train_datapoints_per_s": REFERENCE_TRAIN_DATAPOINTS_PER_S,
        "speedup_vs_reference": round(rate / REFERENCE_TRAIN_DATAPOINTS_PER_S, 2),
    }


def _fixture_cache(tmp: Path) -> Path:
    from data.prepare import prepare

    prepare([ROOT / "tests" / "fixtures" / "songs"], tmp / "cache", workers=1, progress=False)
    return tmp / "cache"


def print_train(result: dict) -> None:
    print(
        f"train {result['model']} batch {result['batch_size']} x {result['seq_len']}: "
        f"{result['train_datapoints_per_s']:.0f} datapoints/s ({result['step_s']:.3f} s/step, "
        f"{result['train_datapoints_per_cpu_s']} per CPU s, "
        f"{result['threads']} threads, load {result['load_average_1min']}); reference osu-diffusion "
        f"{result['reference_train_datapoints_per_s']:.0f} datapoints/s -> {result['speedup_vs_reference']}x"
    )


def add_train(subparsers: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    from dit.models import DIT_PRESETS

    parser = subparsers.add_parser("train", parents=common, help="time training steps of a position DiT")
    parser.add_argument("--model", choices=sorted(DIT_PRESETS), default="DiT-S", help="model preset")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per step")
    parser.add_argument("--seq-len", type=int, default=128, help="datapoints per window")
    parser.add_argument("--data-path", help="a prepared cache (default: the fixture maps, prepared to a temp dir)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16"],
        default="auto",
        help="autocast as train.py does (auto: bf16 where the CPU computes it natively)",
    )
    parser.set_defaults(func=run_train, show=print_train)


# ---------------------------------------------------------------- sample


def run_sample(args: argparse.Namespace) -> dict:
    """Time `python sample.py --beatmap X` as a whole process (start-up, model load, sampling, writing)."""
    from data.beatmap.codec import encode
    from data.beatmap.inputs import read_beatmap_input

    beatmap = read_beatmap_input(args.beatmap, args.difficulty)
    datapoints = len(encode(beatmap))
    with tempfile.TemporaryDirectory(prefix="bench-sample-") as tmp:
        command = [
            PYTHON,
            str(ROOT / "sample.py"),
            "--beatmap",
            str(args.beatmap),
            "--output",
            str(Path(tmp) / "out.osu"),
        ]
        command += ["--no-progress", *(["--ckpt", str(args.ckpt)] if args.ckpt else [])]
        command += ["--difficulty", args.difficulty] if args.difficulty else []
        extra = args.sample_args or []
        extra = extra[1:] if extra[:1] == ["--"] else extra  # argparse keeps the "--" that introduces them
        command += extra
        timings, cpu_s = [], []
        for _ in range(args.repeat):
            cpu_before = _children_cpu_s()
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            timings.append(time.perf_counter() - started)
            cpu_s.append(_children_cpu_s() - cpu_before)
            if done.returncode != 0:
                raise SystemExit(f"sample.py failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    best = min(timings)
    # The reference's attention is dense (cost grows faster than length), so scaling its time down linearly to
    # our map's length flatters it; the speedup against that scaled figure is the conservative one.
    scaled_reference = REFERENCE_SAMPLE_S * datapoints / REFERENCE_SAMPLE_DATAPOINTS
    return {
        "beatmap": str(args.beatmap),
        "objects": len(beatmap.hit_objects),
        "datapoints": datapoints,
        "wall_s": round(best, 3),
        "wall_s_all": [round(t, 3) for t in timings],
        "cpu_s": round(min(cpu_s), 3),
        "datapoints_per_s": round(datapoints / best, 1),
        "ckpt": str(args.ckpt or "sample.py default"),
        "extra_args": extra,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "reference_sample_s": REFERENCE_SAMPLE_S,
        "reference_sample_datapoints": REFERENCE_SAMPLE_DATAPOINTS,
        "reference_sample_steps": REFERENCE_SAMPLE_STEPS,
        "speedup_vs_reference": round(REFERENCE_SAMPLE_S / best, 1),
        "speedup_vs_reference_scaled_to_length": round(scaled_reference / best, 1),
    }


def print_sample(result: dict) -> None:
    print(
        f"sample: {result['objects']} objects = {result['datapoints']} datapoints remapped in {result['wall_s']:.2f} s "
        f"(whole process, {result['cpu_s']:.1f} CPU s, load {result['load_average_1min']}); reference osu-diffusion "
        f"DiT-S {result['reference_sample_steps']} steps on {result['reference_sample_datapoints']} datapoints: "
        f"{result['reference_sample_s']:.0f} s -> {result['speedup_vs_reference']}x faster "
        f"({result['speedup_vs_reference_scaled_to_length']}x against the reference scaled to this length)"
    )


def add_sample(subparsers: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("sample", parents=common, help="time a whole sample.py remap of one map")
    parser.add_argument("--beatmap", required=True, type=Path, help="the .osu (or .osz) to remap")
    parser.add_argument("--difficulty", help="difficulty to take from an .osz")
    parser.add_argument("--ckpt", type=Path, help="position checkpoint (default: sample.py's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs to time; the best is reported")
    parser.add_argument("sample_args", nargs=argparse.REMAINDER, help="after --: more sample.py flags")
    parser.set_defaults(func=run_sample, show=print_sample)


# ---------------------------------------------------------------- replay


def run_replay(args: argparse.Namespace) -> dict:
    """Time `python sample.py --beatmap X --replay-only` (whole process); skipped when it cannot run yet."""
    from data.beatmap.inputs import read_beatmap_input

    beatmap = read_beatmap_input(args.beatmap, args.difficulty)
    help_text = subprocess.run([PYTHON, str(ROOT / "sample.py"), "--help"], cwd=ROOT, capture_output=True, text=True)
    result = {"beatmap": str(args.beatmap), "objects": len(beatmap.hit_objects)}
    if beatmap.hit_objects:
        result["length_s"] = round((beatmap.hit_objects[-1].end_time_ms - beatmap.hit_objects[0].time_ms) / 1000, 1)
    if "--replay-only" not in help_text.stdout:
        return {**result, "skipped": "sample.py has no --replay-only yet"}
    ckpt_flag = next((f for f in ("--replay-ckpt", "--ckpt-replay") if f in help_text.stdout), None)
    if not Path(args.replay_ckpt).is_file():
        return {**result, "skipped": f"{args.replay_ckpt}: no such replay checkpoint"}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        command = [PYTHON, str(ROOT / "sample.py"), "--beatmap", str(args.beatmap), "--replay-only"]
        command += ["--output", str(Path(tmp) / "out.osr"), "--no-progress"]
        command += ["--difficulty", args.difficulty] if args.difficulty else []
        command += [ckpt_flag, str(args.replay_ckpt)] if ckpt_flag else []
        command += ["--mods", args.mods] if args.mods else []
        cpu_before = _children_cpu_s()
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            return {
                **result,
                "skipped": f"sample.py --replay-only failed ({done.returncode}): {done.stderr.strip()[-300:]}",
            }
        written = (Path(tmp) / "out.osr").is_file()
    return {
        **result,
        "wall_s": round(wall, 3),
        "cpu_s": round(_children_cpu_s() - cpu_before, 3),
        "wrote_osr": written,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "issue_limit_s_for_3_min_map": 60,
    }


def print_replay(result: dict) -> None:
    if "skipped" in result:
        print(f"replay: skipped ({result['skipped']})")
        return
    print(
        f"replay: {result['objects']} objects ({result.get('length_s', 0):.0f} s of map) played in "
        f"{result['wall_s']:.2f} s (whole process, {result['cpu_s']:.1f} CPU s, load {result['load_average_1min']})"
    )


def add_replay(subparsers: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("replay", parents=common, help="time sample.py --replay-only on one map")
    parser.add_argument("--beatmap", required=True, type=Path, help="the .osu to play")
    parser.add_argument("--difficulty", help="difficulty to take from an .osz")
    parser.add_argument(
        "--replay-ckpt", type=Path, default=ROOT / "checkpoints" / "replay.pt", help="replay-model checkpoint"
    )
    parser.add_argument("--mods", help="mods of the replay, e.g. HR, DT")
    parser.set_defaults(func=run_replay, show=print_replay)


# ---------------------------------------------------------------- command line

# name -> add_<name>(subparsers, common parents): each adds its parser and sets func (run) and show (print).
SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction, list[argparse.ArgumentParser]], None]] = {
    "prepare": add_prepare,
    "train": add_train,
    "sample": add_sample,
    "replay": add_replay,
}


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS.values():
        add(subparsers, [common])
    args = parser.parse_args(argv)
    from data.errors import BadInputError

    try:
        result = args.func(args)
    except BadInputError as err:  # a missing input or a cache that is not one: one line, exit 2
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        args.show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
