"""Hash what the command line and the notebook write for a fixed set of runs, to show a refactor keeps every byte.

    python testing/golden.py --output before.json             # on the old code
    python testing/golden.py --output after.json --check before.json

Each run is `sample.py` in a fresh folder with the shipped checkpoints; the notebook runs headless as its test
does. Hashes depend on the torch build and CPU, so compare runs made on one machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "aka_no_ha_extra.osu"
ROCKET = next((ROOT / "tests/fixtures/songs").glob("*Rocket*/*.osu"))
RUNS = {
    "quickstart": ["--beatmap", str(EXAMPLE), "--replay", "--preview", "remap.png"],
    "style_id": ["--beatmap", str(EXAMPLE), "--style-id", "1849273"],
    "mapper": ["--beatmap", str(EXAMPLE), "--mapper", "Sotarks", "--num-variants", "2", "--seed", "1"],
    "style_from": ["--beatmap", str(EXAMPLE), "--style-from", str(ROCKET)],
    "unconditional": ["--beatmap", str(EXAMPLE), "--unconditional", "--sampler", "dpmpp_2m"],
    "strength": ["--beatmap", str(EXAMPLE), "--strength", "0.5"],
    "replay_only_hr": ["--beatmap", str(EXAMPLE), "--replay-only", "--mods", "HR", "--player", "yuitora"],
    "osz": ["--beatmap", str(ROCKET), "--osz", "set.osz", "--animation", "a.gif", "--replay", "--mods", "DT"],
    "list_styles": ["--list-styles"],
    "list_players": ["--list-players"],
}


def digest(folder: Path, stdout: str) -> dict[str, str]:
    files = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    files["<stdout>"] = hashlib.sha256(stdout.replace(str(folder), "<dir>").encode()).hexdigest()
    return dict(sorted(files.items()))


def run_cli(name: str, argv: list[str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cmd = [sys.executable, str(ROOT / "sample.py"), *argv, "--no-progress"]
        if argv[0].startswith("--list"):
            cmd = cmd[:-1]
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr.strip()}")
        return digest(folder, done.stdout)


def run_notebook() -> dict[str, str]:
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        env = {"OSU_DIT_OUTPUT": str(out), "OSU_DIT_STEPS": "4", "OMP_NUM_THREADS": "1"}
        os.environ.update(env)
        notebook = ROOT / "colab" / "osu_dit.ipynb"
        nb = nbformat.read(notebook, as_version=4)
        resources = {"metadata": {"path": str(notebook.parent)}}
        NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
        return digest(out, "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", type=Path, required=True, help="JSON of {run: {file: sha256}}")
    p.add_argument("--check", type=Path, help="a JSON written earlier; exit 1 if any hash differs")
    args = p.parse_args()
    hashes = {name: run_cli(name, argv) for name, argv in RUNS.items()}
    hashes["notebook"] = run_notebook()
    args.output.write_text(json.dumps(hashes, indent=1) + "\n")
    if args.check is None:
        return 0
    before = json.loads(args.check.read_text())
    differ = [name for name in before if before[name] != hashes.get(name)]
    print("identical" if not differ else f"differ: {', '.join(differ)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
