#!/usr/bin/env bash
# Runs Latchkey against a throwaway local OpenLDAP directory, with mail and
# SMS printed to this terminal. Open http://127.0.0.1:8080. Ctrl-C stops
# everything and removes its files.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
export PATH="$(go env GOPATH)/bin:$PATH"
exec go run ./internal/devenv "$@"
