"""Plot the training and validation loss of a run: `python testing/plot_training.py RESULTS_DIR --output loss.png`.

Reads the metrics.jsonl that train.py appends to in its --results-dir.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.errors import BadInputError  # noqa: E402


def read_metrics(results_dir: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train_loss) and (step, val_loss) pairs, in step order, last value per step."""
    path = results_dir / "metrics.jsonl"
    if not path.is_file():
        raise BadInputError(results_dir, "has no metrics.jsonl (is it a train.py --results-dir?)")
    train, val = {}, {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise BadInputError(path, f"line {number} is not JSON") from None
        if "train_loss" in row:
            train[int(row["step"])] = float(row["train_loss"])
        if "val_loss" in row:
            val[int(row["step"])] = float(row["val_loss"])
    if not train:
        raise BadInputError(path, "holds no training loss")
    return sorted(train.items()), sorted(val.items())


def plot_losses(results_dir: Path, output: Path, title: str | None = None) -> Path:
    from testing.plots import plt, save

    train, val = read_metrics(results_dir)
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    axis.plot(*zip(*train, strict=True), label="train (mean of each logging interval)", color="tab:blue", linewidth=1)
    if val:
        axis.plot(*zip(*val, strict=True), "o-", label="validation (held-out set folders)", color="tab:orange")
    axis.set_xlabel("step")
    axis.set_ylabel("v-prediction MSE")
    axis.set_title(title or results_dir.name)
    axis.grid(alpha=0.3)
    axis.legend()
    save(figure, output)
    return output


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results_dir", type=Path, help="a train.py --results-dir")
    p.add_argument("--output", type=Path, required=True, help="PNG to write")
    p.add_argument("--title", help="plot title (default: the folder name)")
    args = p.parse_args(argv)
    try:
        plot_losses(args.results_dir, args.output, args.title)
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
