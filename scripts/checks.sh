#!/usr/bin/env bash
# The checks that need no server: go vet, golangci-lint and a short run of
# every fuzz target (the corpus in testdata/fuzz runs in every go test
# too). scripts/test.sh runs this beside the test suites at the lowest CPU
# priority; it may also be run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" || rc=$?
  echo "checks.sh: $name took $((SECONDS - t0)) s"
  return $rc
}
step vet go vet ./...
step lint golangci-lint run ./...   # gosec, staticcheck, errcheck, ... (.golangci.yml)
# Each fuzz target briefly. A count of inputs, not a duration: with
# -fuzztime 10s, Go 1.26's fuzzing coordinator sometimes reports its own
# deadline as a failure ("context deadline exceeded", no failing input;
# golang/go#75804, fixed in Go 1.27): 1 CI run in 7 here. 20000 inputs take
# 0.3-13 s a target on this machine.
fuzz() {
  grep -rEo '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sort -u | while IFS=: read -r file decl; do
    target=${decl#func }
    go test -run '^$' -fuzz "^${target}\$" -fuzztime 20000x "./$(dirname "${file#./}")"
  done
}
step fuzz fuzz
