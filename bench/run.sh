#!/usr/bin/env bash
# Print hull's benchmark figures (medians, and ratios to their floors). Nothing here
# asserts: the numbers are for people. BENCH_RUNS sets the sample count (default 5).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$top/bench/bench.py" "$top" "$@"
