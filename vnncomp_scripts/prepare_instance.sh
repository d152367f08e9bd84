#!/bin/bash
# VNN-COMP: get ready for one instance.  Usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
#
# Stops whatever a previous run_instance.sh left running (only the process group it noted, never
# other users' processes), then checks that both files are there and readable (.gz or not).
# Exit status 0: ready; 1: bad arguments or a missing file.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$1"
if [ "$#" -ne 4 ]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi
CATEGORY=$2
ONNX=$(packed "$3")
VNNLIB=$(packed "$4")
echo "preparing nnir for category '$CATEGORY': onnx '$ONNX', vnnlib '$VNNLIB'"

stop_leftovers
for f in "$ONNX" "$VNNLIB"; do
    if [ ! -f "$f" ] || [ ! -r "$f" ]; then
        echo "cannot read '$f'" >&2
        exit 1
    fi
done
if [ ! -x "$NNIR_PYTHON" ] && ! command -v "$NNIR_PYTHON" >/dev/null; then
    echo "nnir is not installed at $NNIR_VENV: run install_tool.sh v1 first" >&2
    exit 1
fi
exit 0
