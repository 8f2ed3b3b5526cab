#!/usr/bin/env bash
# Runs one test N times under CPU load and prints its failure rate:
#   scripts/flake.sh PACKAGE TEST N [LOAD]
# e.g. scripts/flake.sh ./directory TestFailoverToReplica 50
# PACKAGE is a package path (./directory, ./e2e); TEST a test name (anchored:
# ^TEST$, subtests with TEST/sub); N the number of runs; LOAD the number of
# busy processes beside it (default: one per core, as CI's `go test ./...`
# keeps every core busy with other packages). The test binary is built once;
# each run is a fresh process with -count=1. Logs of failed runs are kept
# under $FLAKE_DIR (default a temporary directory) and their paths printed.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 PACKAGE TEST N [LOAD]" >&2
  exit 2
fi
pkg=$1 test=$2 n=$3 load=${4:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${FLAKE_DIR:-$(mktemp -d -t flake.XXXXXX)}
mkdir -p "$out"
bin="$out/test.bin"
(cd "$root" && go test -c -o "$bin" "$pkg")
pkgdir=$(cd "$root" && go list -f '{{.Dir}}' "$pkg")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq 1 "$load"); do
  (while :; do :; done) &
  pids+=($!)
done

run=${test}
case $test in
  */*) run="^${test%%/*}\$/${test#*/}" ;;
  *) run="^${test}\$" ;;
esac
fail=0
start=$(date +%s)
for i in $(seq 1 "$n"); do
  log="$out/run-$i.log"
  if (cd "$pkgdir" && "$bin" -test.run "$run" -test.count 1 -test.timeout 20m -test.v) >"$log" 2>&1; then
    if ! grep -q -- "^--- PASS: ${test%%/*}" "$log"; then
      echo "run $i: no test matched $run" >&2
      exit 2
    fi
    rm -f "$log"
  else
    fail=$((fail + 1))
    echo "run $i: FAIL ($log)"
  fi
done
secs=$(( $(date +%s) - start ))
echo "flake: $pkg $test: $fail of $n runs failed ($(awk -v f="$fail" -v n="$n" 'BEGIN{printf "%.1f", 100*f/n}') %) under $load busy processes, ${secs} s"
[ "$fail" -eq 0 ]
