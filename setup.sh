#!/usr/bin/env bash
# Create .venv with everything the project needs. Keeps a torch that the machine already has;
# otherwise installs torch 2.13.0 first so pip never resolves a plain `torch` to the multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if "$PYTHON" -c "import torch" 2>/dev/null; then
        "$PYTHON" -m venv --system-site-packages .venv
    else
        "$PYTHON" -m venv .venv
    fi
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install -q torch==2.13.0
fi
.venv/bin/pip install -q -e ".[dev]"
