#!/usr/bin/env bash
# Build Jaeger (v2, the OpenTelemetry-Collector-based backend) from its Go module: the real trace
# store the Docker-less stack and the tests send traces to.
#
# Usage:
#   scripts/build-jaeger.sh               build if needed, print the binary's path
#   scripts/build-jaeger.sh --print-path  print where the binary is (or will be); no build
#   scripts/build-jaeger.sh --force       rebuild even if the cached binary exists
#
# The binary lands in ~/.cache/dbpulse/jaeger-<version>/jaeger (DBPULSE_CACHE_DIR moves it).
#
# Why Jaeger and not Tempo here: docker-compose.yml runs Grafana Tempo from its release image,
# but Tempo's Go module is under the AGPL and this project's machines may not build it (their
# package rules name github.com/grafana/tempo "not to use"). Jaeger is Apache-2.0, takes the
# same OTLP the collector sends Tempo, stores traces on disk (badger) across restarts, and
# answers trace-by-id and attribute searches; see docs/stack.md for what that proves and what
# it cannot.
#
# How: Jaeger's go.mod has replace directives, so `go install pkg@version` refuses it. The script
# makes a one-line module in the cache, adds Jaeger as a tool at the pinned version
# (`go get -tool`, checksums verified by the Go checksum database) and builds that tool.
set -euo pipefail

TOOL=build-jaeger
# shellcheck source=scripts/_build-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_build-lib.sh"
JAEGER_PACKAGE=github.com/jaegertracing/jaeger/cmd/jaeger
# The module's v1 tags carry the Jaeger v2 backend (cmd/jaeger); collector v0.140 inside.
JAEGER_VERSION=v1.76.0

OUT_DIR="$CACHE_DIR/jaeger-$JAEGER_VERSION"
BIN="$OUT_DIR/jaeger"

build_preamble "$BIN" "$OUT_DIR" jaeger "Jaeger module $JAEGER_VERSION" "${1:-}"

export GOFLAGS="-p=${DBPULSE_GO_JOBS:-2} ${GOFLAGS:-}"
export GOTOOLCHAIN=local CGO_ENABLED=0
WORK="$OUT_DIR.work"
LOG="$OUT_DIR.log"
rm -rf "$WORK"
mkdir -p "$WORK"
: >"$LOG"
start=$(date +%s)

log "resolving $JAEGER_PACKAGE@$JAEGER_VERSION from the Go module proxy; log: $LOG"
(
    cd "$WORK"
    go mod init dbpulse.invalid/jaeger-build >>"$LOG" 2>&1
    go get -tool "$JAEGER_PACKAGE@$JAEGER_VERSION" >>"$LOG" 2>&1
) || { tail -n 30 "$LOG" >&2; die "could not resolve $JAEGER_PACKAGE@$JAEGER_VERSION (log: $LOG)"; }

log "building jaeger ($(go version | cut -d' ' -f3)); several minutes on two cores"
(cd "$WORK" && go build -trimpath -ldflags "-s -w" -o "$WORK/jaeger" "$JAEGER_PACKAGE") \
    >>"$LOG" 2>&1 &
if ! wait_with_progress $! "$start"; then
    tail -n 40 "$LOG" >&2
    die "the Jaeger build failed after $(( $(date +%s) - start ))s (log: $LOG)"
fi

elapsed=$(( $(date +%s) - start ))
mkdir -p "$OUT_DIR.tmp"
mv "$WORK/jaeger" "$OUT_DIR.tmp/jaeger"
cp "$WORK/go.mod" "$WORK/go.sum" "$OUT_DIR.tmp/"
printf 'built_at=%s\nseconds=%s\ngo=%s\nmodule=%s@%s\n' "$(date -u +%FT%TZ)" "$elapsed" \
    "$(go version | cut -d' ' -f3)" "$JAEGER_PACKAGE" "$JAEGER_VERSION" >"$OUT_DIR.tmp/build-info"
rm -rf "$OUT_DIR" "$WORK"
mv "$OUT_DIR.tmp" "$OUT_DIR"
log "built $BIN in ${elapsed}s ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
