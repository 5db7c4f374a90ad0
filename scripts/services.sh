#!/usr/bin/env bash
# Provision what dbpulse's tests and its Docker-less stack need on a Debian machine.
#
# Usage:
#   scripts/services.sh [all|packages|postgres|redis|binaries|status|env]...
#
#   all       (default) packages + postgres + redis + binaries, then print the env
#   packages  apt-get install postgresql, redis-server, prometheus, chromium, docker-compose
#   postgres  start a PostgreSQL cluster on 127.0.0.1:5432 with role/database dbpulse
#   redis     start redis-server on 127.0.0.1:6379 (daemonized, no systemd needed)
#   binaries  build the slim collector and Jaeger (the tests' trace store) from the Go module
#             proxy (cached)
#   status    say what is running and which binaries are built
#   env       print the variables the tests read (also written to $DBPULSE_CACHE_DIR/env)
#
# Idempotent: installed packages, running servers and cached builds are left as they are.
# Runs as root (CI runs it with CI=true) or as a user with sudo for the apt/postgres steps.
# Source the env file to point the tests at what it provisioned:
#   scripts/services.sh && . ~/.cache/dbpulse/env
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${DBPULSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbpulse}"
PG_HOST=127.0.0.1
PG_PORT="${DBPULSE_PG_PORT:-5432}"
REDIS_PORT="${DBPULSE_REDIS_PORT:-6379}"
# redis-tools: redis-cli, which also makes the tests' private Redis Cluster (--cluster create).
APT_PACKAGES_SERVICES=(postgresql redis-server redis-tools)
# docker-compose (v1, Debian) validates docker-compose.yml offline in the tests: no daemon needed.
APT_PACKAGES_TOOLS=(prometheus chromium docker-compose)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

as_postgres() {
    # runuser needs root; a user goes through sudo.
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt: already installed: $*"
        return
    fi
    log "apt: installing ${missing[*]}"
    # Other processes may hold the dpkg lock: wait for it instead of failing.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
        install -y --no-install-recommends "${missing[@]}" >"$CACHE_DIR/apt.log" 2>&1 || {
        log "apt-get install failed; retrying after apt-get update (log: $CACHE_DIR/apt.log)"
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=900 update >>"$CACHE_DIR/apt.log" 2>&1
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
            install -y --no-install-recommends "${missing[@]}" >>"$CACHE_DIR/apt.log" 2>&1 ||
            die "apt-get install ${missing[*]} failed; see $CACHE_DIR/apt.log"
    }
}

cmd_packages() {
    apt_install "${APT_PACKAGES_SERVICES[@]}"
    apt_install "${APT_PACKAGES_TOOLS[@]}"
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

cmd_postgres() {
    command -v pg_lsclusters >/dev/null || apt_install "${APT_PACKAGES_SERVICES[@]}"
    local ver
    ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | tail -n1)"
    [ -n "$ver" ] || die "no PostgreSQL server under /usr/lib/postgresql"
    if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
        log "postgres: creating cluster $ver/main on port $PG_PORT"
        "${SUDO[@]}" pg_createcluster -p "$PG_PORT" "$ver" main >/dev/null
    fi
    # Loopback only, on the port the tests expect. Debian's postgresql.conf reads conf.d/ last,
    # so a drop-in overrides it without editing the packaged file.
    printf "listen_addresses = '%s'\nport = %s\n" "$PG_HOST" "$PG_PORT" |
        "${SUDO[@]}" tee "/etc/postgresql/$ver/main/conf.d/dbpulse.conf" >/dev/null
    if pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
        log "postgres: cluster $ver/main already online"
    else
        log "postgres: starting cluster $ver/main"
        # pg_ctlcluster works without systemd (containers, CI); with systemd it redirects to it.
        "${SUDO[@]}" pg_ctlcluster "$ver" main start
    fi
    for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
    pg_ready || die "PostgreSQL is not accepting connections on $PG_HOST:$PG_PORT"
    # Role and database are created once; the password is reset so a stale one cannot linger.
    as_postgres psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbpulse') THEN
    CREATE ROLE dbpulse LOGIN PASSWORD 'dbpulse';
  ELSE
    ALTER ROLE dbpulse LOGIN PASSWORD 'dbpulse';
  END IF;
END $$;
SQL
    if ! as_postgres psql -tA -p "$PG_PORT" -c "SELECT 1 FROM pg_database WHERE datname='dbpulse'" |
        grep -q 1; then
        as_postgres createdb -p "$PG_PORT" -O dbpulse dbpulse
    fi
    PGPASSWORD=dbpulse psql -q -h "$PG_HOST" -p "$PG_PORT" -U dbpulse -d dbpulse -c 'SELECT 1' \
        >/dev/null || die "cannot log in as dbpulse@$PG_HOST:$PG_PORT/dbpulse"
    log "postgres: ready at postgresql://dbpulse:dbpulse@$PG_HOST:$PG_PORT/dbpulse"
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

cmd_redis() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
        apt_install redis-server redis-tools
    if redis_ready; then
        log "redis: already answering on 127.0.0.1:$REDIS_PORT"
        return
    fi
    local dir="$CACHE_DIR/redis"
    mkdir -p "$dir"
    log "redis: starting on 127.0.0.1:$REDIS_PORT (data and log in $dir)"
    # Command-line options instead of /etc/redis/redis.conf: works as any user, no systemd.
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
        --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" --save '' --appendonly no
    for _ in $(seq 1 40); do redis_ready && break; sleep 0.25; done
    redis_ready || die "redis-server did not answer on 127.0.0.1:$REDIS_PORT; see $dir/redis.log"
    log "redis: ready at redis://127.0.0.1:$REDIS_PORT/0"
}

cmd_binaries() {
    # One heavy Go build at a time: the machine may have only two cores.
    "$ROOT/scripts/build-collector.sh"
    "$ROOT/scripts/build-jaeger.sh"
}

prometheus_bin() {
    if [ -n "${DBPULSE_PROMETHEUS_BIN:-}" ]; then echo "$DBPULSE_PROMETHEUS_BIN"; return; fi
    command -v prometheus 2>/dev/null || echo /usr/bin/prometheus
}

env_lines() {
    cat <<EOF
export DBPULSE_TEST_POSTGRES_DSN="${DBPULSE_TEST_POSTGRES_DSN:-postgresql://dbpulse:dbpulse@$PG_HOST:$PG_PORT/dbpulse}"
export DBPULSE_TEST_REDIS_URL="${DBPULSE_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export DBPULSE_OTELCOL_BIN="$("$ROOT/scripts/build-collector.sh" --print-path)"
export DBPULSE_JAEGER_BIN="$("$ROOT/scripts/build-jaeger.sh" --print-path)"
export DBPULSE_PROMETHEUS_BIN="$(prometheus_bin)"
export DBPULSE_CHROMIUM_BIN="${DBPULSE_CHROMIUM_BIN:-$(command -v chromium 2>/dev/null || echo /usr/bin/chromium)}"
EOF
}

cmd_env() {
    mkdir -p "$CACHE_DIR"
    env_lines >"$CACHE_DIR/env"
    cat "$CACHE_DIR/env"
    log "env written to $CACHE_DIR/env (source it: . $CACHE_DIR/env)"
}

status_line() { printf '  %-12s %s\n' "$1" "$2"; }

cmd_status() {
    echo "dbpulse services:"
    if pg_ready; then status_line postgres "up on $PG_HOST:$PG_PORT"; else status_line postgres down; fi
    if redis_ready; then status_line redis "up on 127.0.0.1:$REDIS_PORT"; else status_line redis down; fi
    local b
    for name in collector jaeger; do
        b="$("$ROOT/scripts/build-$name.sh" --print-path)"
        if [ -x "$b" ]; then status_line "$name" "built: $b"; else status_line "$name" "not built ($b)"; fi
    done
    b="$(prometheus_bin)"
    if [ -x "$b" ]; then status_line prometheus "$b"; else status_line prometheus "missing ($b)"; fi
    if command -v chromium >/dev/null; then status_line chromium "$(command -v chromium)"; else
        status_line chromium missing
    fi
}

main() {
    mkdir -p "$CACHE_DIR"
    [ "$#" -gt 0 ] || set -- all
    for cmd in "$@"; do
        case "$cmd" in
            all)
                cmd_packages
                cmd_postgres
                cmd_redis
                cmd_binaries
                cmd_env
                ;;
            packages) cmd_packages ;;
            postgres) cmd_postgres ;;
            redis) cmd_redis ;;
            binaries) cmd_binaries ;;
            status) cmd_status ;;
            env) cmd_env ;;
            -h | --help | help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
            *) die "unknown sub-command '$cmd' (all|packages|postgres|redis|binaries|status|env)" ;;
        esac
    done
}

main "$@"
