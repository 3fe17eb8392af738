#!/usr/bin/env bash
# Build IBM aihwkit 1.2.0 (CPU) from its source distribution into a virtual environment of its own,
# as docs/VALIDATION.md describes; CI runs this same script. Usage:
#   bash scripts/build_aihwkit.sh [VENV]        (default /work/aihwkit-venv)
# aihwkit 1.2.0 is published only as an sdist that compiles C++ (cmake >= 4.2.1, pybind11 >= 3, a BLAS,
# torch's headers). Its own venv keeps the build tools (and aihwkit's pins) out of the main environment;
# torch is pinned to the CPU wheel so that pip never resolves a CUDA torch.
set -euo pipefail
VENV=${1:-/work/aihwkit-venv}
REPO=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
command -v apt-get >/dev/null && { dpkg -s libopenblas-dev >/dev/null 2>&1 \
    || apt-get install -y libopenblas-dev || (apt-get update && apt-get install -y libopenblas-dev); }
python -m venv "$VENV"
export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"   # the build calls the venv's tools (stubgen) by name
pip install -q torch==2.13.0
pip install -q scikit-build pybind11 numpy setuptools wheel "cmake>=4.2.1" ninja mypy \
    scipy requests protobuf tqdm scikit-learn
work=$(mktemp -d)
cd "$work"
pip download -q --no-deps --no-build-isolation aihwkit==1.2.0   # an sdist only; no metadata build env
tar xzf aihwkit-1.2.0.tar.gz
cd aihwkit-1.2.0
USE_CUDA=OFF CMAKE_BUILD_PARALLEL_LEVEL=2 \
    CMAKE_PREFIX_PATH=$(python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)') \
    pip wheel -q --no-deps --no-build-isolation -w dist .
pip install -q --no-deps dist/aihwkit-1.2.0-*.whl
mkdir -p "$VENV/wheels" && cp dist/aihwkit-1.2.0-*.whl "$VENV/wheels/"   # for another env with this torch
pip install -q matplotlib pyyaml click safetensors pytest && pip install -q --no-deps -e "$REPO"
cd / && rm -rf "$work"
python -c 'import aihwkit; print("aihwkit", aihwkit.__version__, "built in", '"$(( $(date +%s) - start ))"', "s")'
