#!/usr/bin/env bash
# Build telemetrygen (collector-contrib's OTLP load generator) from the Go module proxy, for
# benchmarks/collector_throughput.py.
#
# Usage:
#   scripts/build-telemetrygen.sh               build if needed, print the binary's path
#   scripts/build-telemetrygen.sh --print-path  print where the binary is (or will be); no build
#   scripts/build-telemetrygen.sh --force       rebuild even if the cached binary exists
#
# The binary lands in ~/.cache/dbpulse/bin/telemetrygen-<version>/telemetrygen
# (DBPULSE_CACHE_DIR moves the cache).
set -euo pipefail

TOOL=build-telemetrygen
# shellcheck source=scripts/_build-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_build-lib.sh"
PACKAGE=github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen
VERSION=v0.161.0

OUT_DIR="$CACHE_DIR/bin/telemetrygen-$VERSION"
BIN="$OUT_DIR/telemetrygen"

build_preamble "$BIN" "$OUT_DIR" telemetrygen "$PACKAGE@$VERSION" "${1:-}"

export GOFLAGS="-p=${DBPULSE_GO_JOBS:-2} ${GOFLAGS:-}"
export CGO_ENABLED=0
LOG="$OUT_DIR.log"
mkdir -p "$OUT_DIR.tmp"
start=$(date +%s)
log "go install $PACKAGE@$VERSION; log: $LOG"
GOBIN="$OUT_DIR.tmp" go install -trimpath -ldflags "-s -w" "$PACKAGE@$VERSION" >"$LOG" 2>&1 &
if ! wait_with_progress $! "$start"; then
    tail -n 30 "$LOG" >&2
    die "the telemetrygen build failed (log: $LOG)"
fi
rm -rf "$OUT_DIR"
mv "$OUT_DIR.tmp" "$OUT_DIR"
log "built $BIN in $(( $(date +%s) - start ))s"
echo "$BIN"
