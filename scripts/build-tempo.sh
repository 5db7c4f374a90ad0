#!/usr/bin/env bash
# Build Grafana Tempo (single binary) from its Go module, for the Docker-less stack and tests.
#
# Usage:
#   scripts/build-tempo.sh               build if needed, print the binary's path
#   scripts/build-tempo.sh --print-path  print where the binary is (or will be); no build
#   scripts/build-tempo.sh --force       rebuild even if the cached binary exists
#
# The binary lands in ~/.cache/dbpulse/tempo-<revision>/tempo (DBPULSE_CACHE_DIR moves it).
#
# Which Tempo: the Go module proxy serves no tagged Tempo 2.x/3.x release (Tempo's tags lack the
# /vN module suffix, so they are not valid module versions, and this project's proxy answers
# 403 for them). It does serve the pseudo-version below, Tempo's main branch on 2025-05-29,
# after v2.8.0-rc.0 (the same commit Grafana's own go.mod pins). Its go.mod/go.sum (with its
# replace directives) are used as they are: the build runs inside the module's own directory.
# The checksum database has no entry for this pseudo-version, so the download is verified
# against the module hash pinned here instead (TEMPO_SUM); a mismatch stops the build.
# docker-compose.yml runs the 2.8 release image of the same line.
set -euo pipefail

CACHE_DIR="${DBPULSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbpulse}"
TEMPO_MODULE=github.com/grafana/tempo
TEMPO_VERSION=v1.5.1-0.20250529124718-87c2dc380cec
TEMPO_SUM="h1:wnzJov9RhSHGaTYGzTygL4qq986fLen8xSqnQgaMd28="
TEMPO_REVISION="${TEMPO_VERSION##*-}"
TEMPO_LABEL="2.8.0-main-$TEMPO_REVISION"

log() { printf '[build-tempo] %s\n' "$*" >&2; }
die() { printf '[build-tempo] ERROR: %s\n' "$*" >&2; exit 1; }

OUT_DIR="$CACHE_DIR/tempo-$TEMPO_REVISION"
BIN="$OUT_DIR/tempo"

case "${1:-}" in
    --print-path) echo "$BIN"; exit 0 ;;
    --force) rm -rf "$OUT_DIR" ;;
    "") ;;
    *) die "unknown option '$1' (--print-path | --force)" ;;
esac

if [ -x "$BIN" ]; then
    log "up to date: $BIN (Tempo $TEMPO_LABEL)"
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || die "Go is not installed; install Go 1.24+ to build Tempo"
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/tempo.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

export GOFLAGS="-p=${DBPULSE_GO_JOBS:-2} -mod=readonly ${GOFLAGS:-}"
export GOTOOLCHAIN=local CGO_ENABLED=0
LOG="$OUT_DIR.log"
: >"$LOG"
start=$(date +%s)

log "downloading $TEMPO_MODULE@$TEMPO_VERSION from the Go module proxy"
# Only this module skips the checksum database (it has no entry); its hash is checked below.
info="$(GONOSUMDB="$TEMPO_MODULE" go mod download -json \
    "$TEMPO_MODULE@$TEMPO_VERSION" 2>>"$LOG")" || {
    echo "$info" >>"$LOG"
    die "could not download $TEMPO_MODULE@$TEMPO_VERSION (log: $LOG): $(grep -o '"Error": ".*"' <<<"$info")"
}
sum="$(sed -n 's/.*"Sum": "\(.*\)".*/\1/p' <<<"$info")"
src="$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$info")"
[ "$sum" = "$TEMPO_SUM" ] || die "module hash mismatch for $TEMPO_MODULE@$TEMPO_VERSION: got $sum, pinned $TEMPO_SUM"
[ -d "$src/cmd/tempo" ] || die "no cmd/tempo in $src"

log "building tempo $TEMPO_LABEL ($(go version | cut -d' ' -f3)); log: $LOG"
log "this downloads ~350 modules and compiles for several minutes on two cores"
mkdir -p "$OUT_DIR.tmp"
ldflags="-s -w -X main.Version=$TEMPO_LABEL -X main.Branch=main -X main.Revision=$TEMPO_REVISION"
# Built in the module's own directory so its go.mod (replace directives) and go.sum apply;
# the module cache is read-only, which go build does not mind.
(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$OUT_DIR.tmp/tempo" ./cmd/tempo) \
    >>"$LOG" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && log "still building... $(( $(date +%s) - start ))s"
done
if ! wait "$pid"; then
    tail -n 40 "$LOG" >&2
    die "the Tempo build failed after $(( $(date +%s) - start ))s (log: $LOG)"
fi
elapsed=$(( $(date +%s) - start ))
printf 'built_at=%s\nseconds=%s\ngo=%s\nmodule=%s@%s\n' "$(date -u +%FT%TZ)" "$elapsed" \
    "$(go version | cut -d' ' -f3)" "$TEMPO_MODULE" "$TEMPO_VERSION" >"$OUT_DIR.tmp/build-info"
rm -rf "$OUT_DIR"
mv "$OUT_DIR.tmp" "$OUT_DIR"
log "built $BIN in ${elapsed}s ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
