"""The import directions of the house (../shared/DESIGN.md), read from the code itself with ast."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "dit", "pipeline", "testing")
# dit/ knows tensors, not files: beside itself it may name the bad-input error, atomic writes (checkpoints) and the
# datapoint type enum.
DIT_MAY_IMPORT = {"data.errors", "data.atomic", "data.beatmap.datapoints"}
# Modules that hold what the networks are trained on, which inference must never load.
TRAINING_DATA = {"data.windows", "data.replay_windows", "data.prepare", "data.prepare_replays"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [ROOT / "sample.py", ROOT / "train.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return {module_name(p): p for p in files}


def imports_of(path: Path) -> set[str]:
    """Every project module the file imports, at any depth of the file (function bodies too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = project_modules()
    return {name for name in found if name in modules and name.split(".")[0] in (*PACKAGES, "sample", "train")}


def graph() -> dict[str, set[str]]:
    return {name: imports_of(path) for name, path in project_modules().items()}


def closure(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        for other in edges.get(name, ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def test_the_graph_is_read():
    edges = graph()
    assert "pipeline.job" in edges and "data.beatmap.codec" in edges["pipeline.remap"]
    assert "dit.diffusion" in edges["pipeline.remap"]


def test_data_knows_files_not_networks():
    for name, targets in graph().items():
        if name.startswith("data"):
            assert all(t.split(".")[0] == "data" for t in targets), (name, targets)


def test_dit_never_reads_files():
    for name, targets in graph().items():
        if name.startswith("dit"):
            outside = {t for t in targets if not t.startswith("dit")}
            assert outside <= DIT_MAY_IMPORT, (name, outside - DIT_MAY_IMPORT)


def test_nothing_imports_testing():
    for name, targets in graph().items():
        if not name.startswith("testing"):
            assert not any(t.startswith("testing") for t in targets), name


def test_the_pipeline_is_the_only_place_that_joins_dit_and_data():
    for name, targets in graph().items():
        if name.startswith(("pipeline", "testing")):
            continue
        packages = {t.split(".")[0] for t in targets}
        # The command lines may name the bad-input error and the sampler list; their logic is the pipeline's.
        data_used = {t for t in targets if t.startswith("data")}
        if name in ("sample", "train"):
            assert data_used <= {"data.errors"}, (name, data_used)
        else:
            assert not {"dit", "data"} <= packages or name.startswith("dit"), (name, targets)


def test_inference_never_loads_a_training_dataset():
    edges = graph()
    for start in ("pipeline.job", "pipeline.remap", "pipeline.play", "pipeline.outputs", "sample"):
        assert not closure(start, edges) & TRAINING_DATA, (start, closure(start, edges) & TRAINING_DATA)
