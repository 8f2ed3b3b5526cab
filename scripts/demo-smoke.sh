#!/usr/bin/env bash
# Runs the README's first command exactly as written (the first ```sh block
# under "Try it"), bounded: waits for the demo to print its URL, fetches the
# start page and the outbox through it, then stops it with Ctrl-C (SIGINT)
# and checks that it exits cleanly. CI runs this on its clean checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=$(awk '/^## Try it/{t=1} t&&/^```sh$/{f=1;next} f&&/^```$/{exit} f{print}' README.md)
[ -n "$cmd" ] || { echo "demo-smoke: no sh block under '## Try it' in README.md" >&2; exit 1; }
echo "demo-smoke: running the README's first command: $cmd"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# its own process group, so that Ctrl-C reaches `go run` and the demo alike
setsid bash -c "$cmd" >"$out" 2>&1 &
pid=$!
stop() { kill -INT -- "-$pid" 2>/dev/null || true; }

# the first `go run` compiles; allow 5 minutes for that on a cold cache
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's#^ *Open *\(http://127\.0\.0\.1:[0-9]*\)/ *$#\1#p' "$out" | head -1)
  [ -n "$url" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo-smoke: the demo exited before printing its URL:" >&2; cat "$out" >&2; exit 1
  fi
  sleep 0.5
done
if [ -z "$url" ]; then
  stop; echo "demo-smoke: no URL within 5 minutes:" >&2; cat "$out" >&2; exit 1
fi
grep -q "NOT FOR PRODUCTION" "$out" || { stop; echo "demo-smoke: no production warning" >&2; exit 1; }

fail=0
curl -fsS --max-time 10 "$url/" | grep -q "Forgot my password" || { echo "demo-smoke: the start page did not answer" >&2; fail=1; }
curl -fsS --max-time 10 "$url/demo/outbox" | grep -q "Demo accounts" || { echo "demo-smoke: the outbox page did not answer" >&2; fail=1; }
curl -fsS --max-time 10 "$url/readyz" >/dev/null || { echo "demo-smoke: not ready (directory or store)" >&2; fail=1; }

stop
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$pid" 2>/dev/null; then
  kill -KILL -- "-$pid" 2>/dev/null || true
  echo "demo-smoke: the demo did not stop within 20 s of Ctrl-C" >&2; fail=1
fi
wait "$pid" 2>/dev/null || true
if [ "$fail" -ne 0 ]; then cat "$out" >&2; exit 1; fi
echo "demo-smoke: ok ($url answered; stopped on Ctrl-C)"
