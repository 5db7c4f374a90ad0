#!/usr/bin/env bash
# Build dbpulse's slim OpenTelemetry Collector from collector/manifest.yaml.
#
# Usage:
#   scripts/build-collector.sh               build if needed, print the binary's path
#   scripts/build-collector.sh --print-path  print where the binary is (or will be); no build
#   scripts/build-collector.sh --force       rebuild even if the cached binary exists
#
# The binary lands in ~/.cache/dbpulse/otelcol-<hash of manifest.yaml>/otelcol-dbpulse
# (DBPULSE_CACHE_DIR moves the cache), so it is rebuilt only when the manifest changes.
# Needs Go (1.25 or newer) and the Go module proxy; the builder (ocb) of the version the
# manifest pins is installed into the cache first. Run it anywhere you need a collector
# without containers, then:  "$(scripts/build-collector.sh)" --config collector/config.yaml
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL=build-collector
# shellcheck source=scripts/_build-lib.sh
. "$ROOT/scripts/_build-lib.sh"
MANIFEST="$ROOT/collector/manifest.yaml"
BIN_NAME=otelcol-dbpulse

[ -f "$MANIFEST" ] || die "manifest not found: $MANIFEST"
KEY="$(sha256sum "$MANIFEST" | cut -c1-12)"
OUT_DIR="$CACHE_DIR/otelcol-$KEY"
BIN="$OUT_DIR/$BIN_NAME"

# Two builds of the same key at once would fight over one work dir: the preamble locks.
build_preamble "$BIN" "$OUT_DIR" otelcol "manifest hash $KEY" "${1:-}"

# The builder's version is the distribution's version: they are released together.
OCB_VERSION="v$(sed -n 's/^  version: *//p' "$MANIFEST" | head -n1)"
[ "$OCB_VERSION" != "v" ] || die "dist.version missing in $MANIFEST"
OCB_DIR="$CACHE_DIR/tools/ocb-$OCB_VERSION"
OCB="$OCB_DIR/builder"
# -p bounds parallel compile jobs: the machine this runs on may have two cores and other work.
export GOFLAGS="-p=${DBPULSE_GO_JOBS:-2} ${GOFLAGS:-}"
export CGO_ENABLED=0

WORK="$OUT_DIR.work"
LOG="$OUT_DIR.log"
rm -rf "$WORK"
mkdir -p "$WORK"
start=$(date +%s)
: >"$LOG"

if [ ! -x "$OCB" ]; then
    log "installing the collector builder $OCB_VERSION into $OCB_DIR"
    GOBIN="$OCB_DIR" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION" >>"$LOG" 2>&1 ||
        { tail -n 30 "$LOG" >&2; die "could not install the builder $OCB_VERSION (log: $LOG)"; }
fi

log "building $BIN_NAME (manifest hash $KEY, $(go version | cut -d' ' -f3)); log: $LOG"
log "this downloads the modules and compiles for several minutes on two cores"
cp "$MANIFEST" "$WORK/manifest.yaml"
(
    cd "$WORK"
    "$OCB" --config manifest.yaml >>"$LOG" 2>&1
) &
if ! wait_with_progress $! "$start"; then
    tail -n 40 "$LOG" >&2
    die "the collector build failed after $(( $(date +%s) - start ))s (log: $LOG). If a module \
could not be downloaded, check the Go module proxy (GOPROXY=$(go env GOPROXY))"
fi
[ -x "$WORK/_build/$BIN_NAME" ] || die "builder finished but $WORK/_build/$BIN_NAME is missing"

mkdir -p "$OUT_DIR.tmp"
mv "$WORK/_build/$BIN_NAME" "$OUT_DIR.tmp/$BIN_NAME"
cp "$MANIFEST" "$OUT_DIR.tmp/manifest.yaml"
elapsed=$(( $(date +%s) - start ))
printf 'built_at=%s\nseconds=%s\ngo=%s\nmanifest_sha256=%s\n' \
    "$(date -u +%FT%TZ)" "$elapsed" "$(go version | cut -d' ' -f3)" "$KEY" >"$OUT_DIR.tmp/build-info"
rm -rf "$OUT_DIR"
mv "$OUT_DIR.tmp" "$OUT_DIR"
rm -rf "$WORK"
log "built $BIN in ${elapsed}s ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
