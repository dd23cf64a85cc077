#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages that building and testing mrtc-transport needs, when any is
# missing. Sourced by test/run, test/demo and .ci/run; safe to run again.
mrtc_packages=(
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libevent-dev libjson-c-dev libsodium-dev libssl-dev libc-ares-dev libsqlite3-dev libhiredis-dev check
  python3 python3-signedjson python3-nacl python3-canonicaljson python3-jwt python3-yaml
  python3-unpaddedbase64 python3-prometheus-client curl ca-certificates openssl nginx-light
  dnsmasq-base dnsutils systemd redis-server redis-sentinel groff-base chromium wrk
)

mrtc_install_deps() {
  local missing=()
  for p in "${mrtc_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Node.js and the testbed's npm packages (livekit-server-sdk, prom-client, @livekit/rtc-node). Debian's nodejs and
# npm are installed only when no node/npm is on PATH (the machine image may bring its own).
mrtc_install_node_deps() {
  local want=()
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
  if [ ${#want[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
  fi
  local dir
  dir="$(dirname "${BASH_SOURCE[0]}")/testbed"
  if [ ! -d "$dir/node_modules/livekit-server-sdk" ] || [ ! -d "$dir/node_modules/matrix-js-sdk" ] ||
     [ ! -d "$dir/node_modules/@livekit/rtc-node" ]; then
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  fi
  # Element Call, matrix-widget-api and playwright-core for the clients suite.
  dir="$(dirname "${BASH_SOURCE[0]}")/clients/element_call"
  if [ ! -d "$dir/node_modules/@element-hq/element-call-embedded" ] ||
     [ ! -d "$dir/node_modules/playwright-core" ]; then
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  fi
}

# LiveKit's own server, for the suites that run against the real SFU: the pinned release built
# with `go install` from the Go module proxy into a cache folder that survives between runs on
# the same machine (MRTC_CACHE_DIR, default /var/cache/mrtc-transport when writable). Skipped
# when the binary there already reports the pinned version. Go itself: /usr/local/go/bin/go or
# `go` on PATH. Exports MRTC_LIVEKIT_SERVER (the testbed also looks in the same place itself).
MRTC_LIVEKIT_VERSION=1.9.11
mrtc_install_livekit() {
  local cache="${MRTC_CACHE_DIR:-}"
  if [ -z "$cache" ]; then
    if mkdir -p /var/cache/mrtc-transport 2>/dev/null && [ -w /var/cache/mrtc-transport ]; then
      cache=/var/cache/mrtc-transport
    else
      cache="${XDG_CACHE_HOME:-$HOME/.cache}/mrtc-transport"
    fi
  fi
  local bin="$cache/go/bin/livekit-server"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qw "$MRTC_LIVEKIT_VERSION"; then
    export MRTC_LIVEKIT_SERVER="$bin"
    return 0
  fi
  local go
  go="$(command -v go || echo /usr/local/go/bin/go)"
  if [ ! -x "$go" ]; then
    echo "Go is needed to build livekit-server $MRTC_LIVEKIT_VERSION (https://go.dev/dl/)" >&2
    return 1
  fi
  echo "building livekit-server v$MRTC_LIVEKIT_VERSION with go install (a few minutes, once)"
  mkdir -p "$cache/go/bin"
  GOPATH="$cache/go" GOMODCACHE="$cache/go/pkg/mod" GOCACHE="$cache/go/build" \
    GOBIN="$cache/go/bin" GOFLAGS=-modcacherw GOTOOLCHAIN=auto \
    "$go" install "github.com/livekit/livekit-server/cmd/server@v$MRTC_LIVEKIT_VERSION" || return 1
  mv -f "$cache/go/bin/server" "$bin"
  "$bin" --version | grep -qw "$MRTC_LIVEKIT_VERSION" || {
    echo "livekit-server at $bin does not report version $MRTC_LIVEKIT_VERSION" >&2
    return 1
  }
  export MRTC_LIVEKIT_SERVER="$bin"
}
