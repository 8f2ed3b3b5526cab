#!/usr/bin/env bash
# Runs the README's first command exactly as written (the first ```sh block
# under "Try it"), bounded: waits for the demo to print its URL, fetches the
# start page and the outbox through it, then stops it with Ctrl-C (SIGINT)
# and checks that it exits with status 0 and has removed its temporary
# directory (the command runs with a TMPDIR of its own, checked empty of
# latchkey-demo-* after). CI runs this on its clean checkout.
#
# The SIGINT goes to the demo process only. A terminal's Ctrl-C signals the
# whole process group, `go run` included, and `go run` then exits 1 even
# when the demo exits 0 (measured with go 1.26.8: group SIGINT, child exits
# 0 -> go run 1; child exits 3 -> go run 1 and "exit status 3"). Signalled
# alone, the demo gets the same SIGINT and `go run` exits with 0 only when
# the demo did (and 1 otherwise), so the status checked here is exact.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=$(awk '/^## Try it/{t=1} t&&/^```sh$/{f=1;next} f&&/^```$/{exit} f{print}' README.md)
[ -n "$cmd" ] || { echo "demo-smoke: no sh block under '## Try it' in README.md" >&2; exit 1; }
echo "demo-smoke: running the README's first command: $cmd"

out=$(mktemp)
tmp=$(mktemp -d)
trap 'rm -f "$out"; rm -rf "$tmp"' EXIT
# its own process group, so that everything it starts can be found and,
# on a failure here, stopped
TMPDIR=$tmp setsid bash -c "$cmd" >"$out" 2>&1 &
pid=$!
stop() { kill -INT -- "-$pid" 2>/dev/null || true; }

# the first `go run` compiles; allow 5 minutes for that on a cold cache
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's#^ *Open *\(http://localhost:[0-9]*\)/ *$#\1#p' "$out" | head -1)
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

# the demo itself: the one process named latchkey in the command's process
# group (the child of `go run`, or the command's own process), read from
# /proc so that procps is not needed
demos=()
for p in /proc/[0-9]*; do
  [ "$(cat "$p/comm" 2>/dev/null)" = latchkey ] || continue
  stat=$(cat "$p/stat" 2>/dev/null) || continue
  read -r -a f <<<"${stat##*) }" # state ppid pgrp ...
  [ "${f[2]}" = "$pid" ] && demos+=("${p#/proc/}")
done
demo=""
if [ "${#demos[@]}" -eq 1 ]; then
  demo=${demos[0]}
else
  echo "demo-smoke: want one process named latchkey in the command's process group, found ${#demos[@]}: ${demos[*]}" >&2; fail=1
fi
if ! compgen -G "$tmp/latchkey-demo-*" >/dev/null; then
  echo "demo-smoke: no latchkey-demo-* temporary directory in the demo's TMPDIR while it runs" >&2; fail=1
fi

if [ -n "$demo" ]; then kill -INT "$demo"; else stop; fi
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$pid" 2>/dev/null; then
  kill -KILL -- "-$pid" 2>/dev/null || true
  echo "demo-smoke: the demo did not stop within 20 s of Ctrl-C" >&2; fail=1
fi
status=0
wait "$pid" || status=$?
if [ "$status" -ne 0 ]; then
  echo "demo-smoke: the command exited with status $status after Ctrl-C, want 0 (\`go run\` exits 1 for any failure of the demo and prints the demo's own \"exit status N\" in the output below)" >&2; fail=1
fi
if left=$(compgen -G "$tmp/latchkey-demo-*"); then
  echo "demo-smoke: the demo left its temporary directory behind: $left" >&2; fail=1
fi
if [ "$fail" -ne 0 ]; then cat "$out" >&2; exit 1; fi
echo "demo-smoke: ok ($url answered; stopped on Ctrl-C with status 0; its temporary directory is gone)"
