# Shared by the VNN-COMP scripts (sourced, not run): where nnir lives and how to call it.
#
#   NNIR_VENV    the virtual environment install_tool.sh makes (default: .vnncomp-venv in the
#                repository root)
#   NNIR_PYTHON  the Python that runs nnir (default: $NNIR_VENV/bin/python)
#   NNIR_BACKEND the backend for every instance (default: auto, which picks per network)
#   NNIR_STATE   where run_instance.sh notes the process group it runs, so prepare_instance.sh
#                can stop leftovers (default: ${TMPDIR:-/tmp}/nnir-vnncomp-$UID)

VERSION_STRING=v1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$SCRIPT_DIR")"
NNIR_VENV="${NNIR_VENV:-$ROOT/.vnncomp-venv}"
NNIR_PYTHON="${NNIR_PYTHON:-$NNIR_VENV/bin/python}"
NNIR_BACKEND="${NNIR_BACKEND:-auto}"
NNIR_STATE="${NNIR_STATE:-${TMPDIR:-/tmp}/nnir-vnncomp-$(id -u)}"
PGID_FILE="$NNIR_STATE/run_instance.pgid"

check_version() {
    if [ "$1" != "$VERSION_STRING" ]; then
        echo "Expected first argument (version string) '$VERSION_STRING', got '$1'" >&2
        exit 1
    fi
}

# The file to read: the path given, or PATH.gz when only the compressed file is there (the
# competition's lists name .onnx/.vnnlib files, its benchmark folders ship them gzipped; nnir
# reads both directly).
packed() {
    if [ ! -e "$1" ] && [ -f "$1.gz" ]; then echo "$1.gz"; else echo "$1"; fi
}

# Stop the process group a previous run_instance.sh left running, if any (and only that one).
stop_leftovers() {
    [ -f "$PGID_FILE" ] || return 0
    local pgid
    pgid="$(cat "$PGID_FILE" 2>/dev/null)"
    rm -f "$PGID_FILE"
    case "$pgid" in ''|*[!0-9]*) return 0 ;; esac
    if kill -0 -- "-$pgid" 2>/dev/null; then
        echo "stopping leftover nnir processes (process group $pgid)"
        kill -TERM -- "-$pgid" 2>/dev/null
        sleep 0.5
        kill -KILL -- "-$pgid" 2>/dev/null
    fi
    return 0
}
