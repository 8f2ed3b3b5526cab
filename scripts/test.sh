#!/usr/bin/env bash
# The full test suite: go vet and golangci-lint, unit tests, the real-server suites (slapd, Samba AD DC,
# mailpit, the SMS contract server, headless Chromium) and a short run of
# every fuzz target. Run as root: a Samba AD DC must listen on 389/636 (of
# 127.0.0.1, 127.0.0.11 and 127.0.0.12: directory/dirtest adds the last two to
# the loopback interface).
set -euo pipefail
cd "$(dirname "$0")/.."
# step NAME CMD...: runs CMD and prints how long it took (the minutes of a
# CI run, step by step)
step() {
  local name=$1 t0=$SECONDS
  shift
  "$@"
  echo "test.sh: $name took $((SECONDS - t0)) s"
}
step deps ./scripts/deps.sh
export PATH="$(go env GOPATH)/bin:$PATH"
step vet go vet ./...
step lint golangci-lint run ./...   # gosec, staticcheck, errcheck, ... (.golangci.yml)
step tests go test -count=1 -timeout 30m ./...
t0=$SECONDS
# each fuzz target briefly (the corpus in testdata/fuzz runs in every go test).
# A count of inputs, not a duration: with -fuzztime 10s, Go 1.26's fuzzing
# coordinator sometimes reports its own deadline as a failure ("context
# deadline exceeded", no failing input; golang/go#75804, fixed in Go 1.27):
# 1 CI run in 7 here. 20000 inputs take 0.3-13 s a target on this machine.
grep -rEo '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sort -u | while IFS=: read -r file decl; do
  target=${decl#func }
  go test -run '^$' -fuzz "^${target}\$" -fuzztime 20000x "./$(dirname "${file#./}")"
done
echo "test.sh: fuzz took $((SECONDS - t0)) s"
