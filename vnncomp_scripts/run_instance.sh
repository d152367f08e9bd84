#!/bin/bash
# VNN-COMP: answer one instance.
# Usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS TIMEOUT
#
# Writes RESULTS in the competition's format: `sat` and the counterexample ((X_0 v) ... (Y_0 v)),
# or `unsat`, `timeout`, `unknown` or `error` (a file nnir cannot read or a network it does not
# support). nnir gets TIMEOUT less its start-up and its own grace period, so the whole script
# ends within TIMEOUT seconds; a watchdog stops it (and every solver it started) if it does not.
# Exit status 0 whenever RESULTS was written, 1 on bad arguments.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$1"
if [ "$#" -ne 6 ]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB RESULTS TIMEOUT" >&2
    exit 1
fi
CATEGORY=$2
ONNX=$(packed "$3")
VNNLIB=$(packed "$4")
RESULTS=$5
TIMEOUT=$6
if ! [[ "$TIMEOUT" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "TIMEOUT must be a number of seconds, got '$TIMEOUT'" >&2
    exit 1
fi

# nnir's own limit B: B + its grace max(1.5 s, 4% of B) + ~3 s to start Python (on a loaded
# machine) stays within TIMEOUT.
BUDGET=$(awk -v t="$TIMEOUT" 'BEGIN { b = (t - 3) / 1.04; if (t - 3 - b < 1.5) b = t - 4.5;
                                     if (b < 0.5) b = 0.5; printf "%.2f", b }')
echo "running nnir ($NNIR_BACKEND) on category '$CATEGORY': onnx '$ONNX', vnnlib '$VNNLIB'," \
     "results '$RESULTS', timeout $TIMEOUT s (nnir's limit $BUDGET s)"

echo "unknown" > "$RESULTS"   # a run stopped from outside leaves `unknown`, never a stale verdict
mkdir -p "$NNIR_STATE"
set -m                        # background jobs lead process groups of their own
"$NNIR_PYTHON" -m nnir verify "$ONNX" "$VNNLIB" --backend "$NNIR_BACKEND" \
    --timeout "$BUDGET" -o "$RESULTS" &
PID=$!
echo "$PID" > "$PGID_FILE"
trap 'kill -KILL -- "-$PID" 2>/dev/null; rm -f "$PGID_FILE"; exit 143' TERM INT
# The watchdog: past TIMEOUT the whole group goes (nnir's children also die with their parent).
FIRED="$NNIR_STATE/watchdog.$PID"
rm -f "$FIRED"
( sleep "$TIMEOUT"; touch "$FIRED"; kill -TERM -- "-$PID" 2>/dev/null; sleep 1
  kill -KILL -- "-$PID" 2>/dev/null ) &
WATCH=$!
disown "$WATCH"               # no job notice when it is stopped below
wait "$PID"
RC=$?
kill -KILL -- "-$WATCH" 2>/dev/null
rm -f "$PGID_FILE"

if [ -e "$FIRED" ]; then
    echo "timeout" > "$RESULTS"                         # stopped by the watchdog
    rm -f "$FIRED"
elif [ "$RC" -ne 0 ]; then
    echo "error" > "$RESULTS"                           # 1: unreadable input, 3: query error
    echo "nnir exited with status $RC" >&2
fi                                                      # else RESULTS holds nnir's verdict
echo "result: $(head -n 1 "$RESULTS")"
exit 0
