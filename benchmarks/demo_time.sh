#!/usr/bin/env bash
# Wall time and CPU time of the demo (what `make demo` runs), offline on digits.
# Run it with nothing else busy on the machine. Usage: benchmarks/demo_time.sh [OUTDIR]
set -euo pipefail
out=${1:-$(mktemp -d)}
/usr/bin/time -f "wall %e s, cpu %U+%S s, peak memory %M KB" securedd demo --quiet --out-dir "$out"
