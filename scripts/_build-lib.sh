# Shared by scripts/build-*.sh (sourced, not run): the cache, the command line, the build lock
# and progress while a long Go build runs. Set TOOL (the log prefix) before sourcing.
# shellcheck shell=bash

CACHE_DIR="${DBPULSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbpulse}"

log() { printf '[%s] %s\n' "$TOOL" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$TOOL" "$*" >&2; exit 1; }

# build_preamble BIN OUT_DIR LOCK LABEL [--print-path|--force]
# Answers --print-path, honours --force, prints BIN and exits when it is already built, and
# otherwise returns holding the cache lock LOCK (one build of a binary at a time).
build_preamble() {
    local bin="$1" out_dir="$2" lock="$3" label="$4"
    case "${5:-}" in
        --print-path) echo "$bin"; exit 0 ;;
        --force) rm -rf "$out_dir" ;;
        "") ;;
        *) die "unknown option '$5' (--print-path | --force)" ;;
    esac
    if [ -x "$bin" ]; then
        log "up to date: $bin ($label)"
        echo "$bin"
        exit 0
    fi
    command -v go >/dev/null || die "Go is not installed; install Go 1.25+ to build $TOOL's binary"
    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/$lock.lock"
    flock 9
    # Another build may have finished while this one waited for the lock.
    if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
}

# wait_with_progress PID START: wait for the background build PID, logging every 30 s (the
# compile is long and otherwise silent); returns its exit status.
wait_with_progress() {
    local pid="$1" start="$2"
    while kill -0 "$pid" 2>/dev/null; do
        sleep 30
        kill -0 "$pid" 2>/dev/null && log "still building... $(( $(date +%s) - start ))s"
    done
    wait "$pid"
}
