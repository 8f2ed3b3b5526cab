#!/usr/bin/env bash
# Installs what the test suites need, idempotently and without prompts:
# Debian packages for the real directories (slapd, Samba AD DC), Chromium's
# headless shell for the browser tests, and mailpit (the SMTP server the mail tests talk to).
# Needs root (or sudo) for apt.
set -euo pipefail

packages=(slapd ldap-utils samba samba-ad-provision samba-ad-dc ldb-tools postgresql chromium-headless-shell ca-certificates systemd curl iproute2 haproxy nginx-light)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "deps: installing ${missing[*]}"
  # Do not let package scripts start system daemons (slapd, smbd, nmbd,
  # PostgreSQL's "main" cluster...): the tests start their own throwaway
  # servers on loopback (store/pgtest runs initdb and postgres itself).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  if [ -n "$SUDO" ]; then
    $SUDO -E apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

GOBIN_DIR=$(go env GOPATH)/bin
if [ ! -x "$GOBIN_DIR/mailpit" ] && ! command -v mailpit >/dev/null; then
  echo "deps: installing mailpit (about a minute to compile)"
  go install github.com/axllent/mailpit@v1.27.11
fi

if [ ! -x "$GOBIN_DIR/golangci-lint" ]; then
  echo "deps: installing golangci-lint v2.15.0 (about a minute to compile)"
  go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
fi
