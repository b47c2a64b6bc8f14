#!/usr/bin/env bash
# The GPU check in one command, within 10 minutes on one GPU (what it measures: bench/gpu_check.py):
#
#     bash bench/gpu_check.sh                  # writes bench/results/gpu_check.json
#     bash bench/gpu_check.sh --cpu --output /tmp/check.json   # the reduced CPU mode, also what runs without a GPU
#
# Python: $PYTHON, else the project's .venv, else python3. It needs torch, transformers >= 5.24 and accelerate.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "No GPU: the CPU mode runs."
# 9.5 minutes at most: the results are written after each part, so a run cut short keeps what it measured.
exec timeout 570 "$PYTHON" bench/gpu_check.py "$@"
