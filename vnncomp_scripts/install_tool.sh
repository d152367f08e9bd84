#!/bin/bash
# VNN-COMP: install nnir.  Usage: install_tool.sh v1
#
# Makes a virtual environment (default: .vnncomp-venv in the repository root; NNIR_VENV
# overrides it) and installs nnir there with the package versions its tests pass with
# (constraints.txt), onnxruntime included (it replays counterexamples on the original file).
# Needs Python >= 3.10 as `python3` (PYTHON overrides it) and network access for pip.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "${1:-}"

PYTHON="${PYTHON:-python3}"
echo "installing nnir from $ROOT into $NNIR_VENV"
"$PYTHON" -m venv "$NNIR_VENV"
"$NNIR_VENV/bin/python" -m pip install -q --upgrade pip
"$NNIR_VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" "$ROOT[onnx-runtime]"
"$NNIR_VENV/bin/python" -m nnir backends
echo "nnir installed: $NNIR_VENV/bin/nnirc"
