#!/usr/bin/env bash
# The full test suite: the unit tests and the real-server suites (slapd,
# Samba AD DC, mailpit, the SMS contract server, headless Chromium), with
# go vet, golangci-lint and a short run of every fuzz target
# (scripts/checks.sh) beside them. Run as root: a Samba AD DC must listen on
# 389/636 (of 127.0.0.1, 127.0.0.11 and 127.0.0.12: directory/dirtest adds
# the last two to the loopback interface).
set -euo pipefail
cd "$(dirname "$0")/.."
# step NAME CMD...: runs CMD and prints how long it took (the minutes of a
# CI run, step by step)
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" || rc=$?
  echo "test.sh: $name took $((SECONDS - t0)) s"
  return $rc
}
step deps ./scripts/deps.sh
export PATH="$(go env GOPATH)/bin:$PATH"
# The servers the suites start (Samba DCs, slapd, PostgreSQL, mailpit, the
# gateways' SQLite stores, Chromium's profiles) keep their files in the
# temp dir, and each of their writes waits on fsync. On a RAM disk (tmpfs)
# those cost nothing: the package of real-server suites (e2e) took 324 s
# instead of 386 s on the 2-core CI machine, Samba AD's reset start in the
# timing test 24 s instead of 83 s. No test is about the disk's own
# durability (TestSQLiteDiskFull mounts a tmpfs of its own). Used when
# TMPDIR is not set already and /dev/shm is a tmpfs with 2 GiB free that
# may run programs (the e2e package runs the binary it builds there). The
# directory is made by this user and is, like /tmp, open to all with the
# sticky bit (PostgreSQL and the demo run as other users under it); one
# made by someone else, or a link, is not used (anyone may write to
# /dev/shm). It is kept between runs as /tmp would be (the Samba DC
# template is provisioned once); what killed runs left there over a day
# ago is removed. Any step that fails leaves TMPDIR as it was.
tmpfs_dir() {
  local tmp chk
  tmp=/dev/shm/latchkey-test-$(id -u)
  [ -z "${TMPDIR:-}" ] || return 1
  [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || return 1
  [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt $((2 * 1024 * 1024)) ] 2>/dev/null || return 1
  if [ ! -e "$tmp" ] && [ ! -L "$tmp" ]; then
    mkdir "$tmp" || return 1
  fi
  [ -d "$tmp" ] && [ ! -L "$tmp" ] && [ "$(stat -c %u "$tmp")" = "$(id -u)" ] || return 1
  chmod 1777 "$tmp" || return 1
  find "$tmp" -mindepth 1 -maxdepth 1 -mmin +1440 ! -name 'latchkey-samba-template-*' \
    ! -name 'latchkey-samba-cert-*' ! -name '*.lock' -exec rm -rf {} + 2>/dev/null || true
  # a file of our own (mktemp: a new name, mode 600) that runs
  chk=$(mktemp "$tmp/exec-check.XXXXXX") || return 1
  if printf '#!/bin/sh\nexit 0\n' >"$chk" && chmod 700 "$chk" && "$chk" 2>/dev/null; then
    rm -f "$chk"
    echo "$tmp"
    return 0
  fi
  rm -f "$chk"
  return 1
}
if tmp=$(tmpfs_dir); then
  export TMPDIR=$tmp
  echo "test.sh: temp dir on tmpfs ($TMPDIR)"
fi
# The checks need no server and the suites spend much of their time
# waiting on the servers they start, so the checks run beside them, at the
# lowest CPU priority (nice 19: they take what the suites leave idle).
# Their output is printed when the suites are done; either failing fails
# the run.
checks_log=$(mktemp)
nice -n 19 ./scripts/checks.sh >"$checks_log" 2>&1 &
checks=$!
trap 'kill $checks 2>/dev/null || true; rm -f "$checks_log"' EXIT
tests=0
step tests go test -count=1 -timeout 30m ./... || tests=$?
t0=$SECONDS
rc=0
wait $checks || rc=$?
cat "$checks_log"
echo "test.sh: checks done $((SECONDS - t0)) s after the tests"
if [ "$rc" -ne 0 ]; then
  echo "test.sh: scripts/checks.sh failed (exit $rc)" >&2
fi
[ "$tests" -eq 0 ] && [ "$rc" -eq 0 ]
