#!/usr/bin/env bash
# Measure the false-alarm rate of `ganbench check`: re-run a suite with fresh seeds (never used by
# the baseline) several times and count the comparisons that fail although nothing changed.
#
#   scripts/false_alarms.sh [SUITE] [BASELINE.json] [RERUNS] [FIRST_SEED] [SEEDS_PER_RUN]
#   defaults:                ci      baselines/ci.json  10       1000         3
#
# Re-run i uses seeds FIRST_SEED + (i-1)*SEEDS_PER_RUN ... (consecutive, disjoint between re-runs).
# Results go under ${WORK:-/tmp/ganbench-false-alarms}; the last line is the summary.
set -euo pipefail
suite=${1:-ci}
baseline=${2:-baselines/ci.json}
reruns=${3:-10}
first=${4:-1000}
per=${5:-3}
work=${WORK:-/tmp/ganbench-false-alarms}
ganbench=${GANBENCH:-ganbench}
mkdir -p "$work"
failed=0 total=0 bad_runs=0
for i in $(seq 1 "$reruns"); do
    lo=$((first + (i - 1) * per)); hi=$((lo + per - 1))
    out="$work/rerun-$lo-$hi"
    "$ganbench" run --suite "$suite" --seeds "$lo-$hi" --out "$out" --no-progress > "$out.log" 2>&1 \
        || { echo "re-run $i failed, see $out.log" >&2; exit 2; }
    set +e
    "$ganbench" check "$out" --baseline "$baseline" > "$out.check" 2>&1
    rc=$?
    set -e
    [ "$rc" -le 1 ] || { cat "$out.check" >&2; exit 2; }
    n=$(grep -c '| *\(ok\|REGRESSED\) *|$' "$out.check")
    bad=$(grep -c '| *REGRESSED *|$' "$out.check" || true)
    failed=$((failed + bad)); total=$((total + n)); [ "$rc" -eq 0 ] || bad_runs=$((bad_runs + 1))
    echo "re-run $i (seeds $lo-$hi): $bad of $n comparisons failed"
done
echo "false alarms: $failed of $total comparisons failed; $bad_runs of $reruns re-runs would fail CI"
