#!/bin/sh
# Installs the Debian packages a target needs when they are missing, if it can (root with
# apt-get); otherwise stops naming exactly what to install. Usage: system-deps.sh venv|services
# (services: what the suite runs for real: PostgreSQL, Redis, nginx and the browser, Chromium)
set -eu

PYTHON=${PYTHON:-python3}

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
    echo ">> installing Debian packages: $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

pg_bin() {
    command -v "$1" 2>/dev/null && return 0
    ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -rV | head -n 1 | grep . && return 0
    return 1
}

case "${1:-}" in
venv)
    # Debian splits ensurepip out of python3 into python3.X-venv.
    if "$PYTHON" -c 'import ensurepip' 2>/dev/null; then exit 0; fi
    version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    if can_apt; then
        apt_install "python${version}-venv" || apt_install python3-venv
    else
        echo "Python's venv module is missing. Install it: sudo apt-get install python${version}-venv" >&2
        exit 1
    fi
    ;;
services)
    missing=""
    if [ -z "${CHROMIUM:-}" ]; then
        command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
    fi
    if [ -z "${TEST_DATABASE_URL:-}" ]; then
        { pg_bin initdb >/dev/null && pg_bin pg_ctl >/dev/null; } || missing="$missing postgresql"
    fi
    if [ -z "${TEST_REDIS_URL:-}" ]; then
        command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
    fi
    # Debian puts nginx in /usr/sbin, which is not on every user's PATH.
    { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing="$missing nginx"
    [ -z "$missing" ] && exit 0
    if can_apt; then
        # shellcheck disable=SC2086
        apt_install $missing
    else
        echo "The test suite needs these Debian packages:$missing" >&2
        echo "Install them (sudo apt-get install$missing), or set TEST_DATABASE_URL /" >&2
        echo "TEST_REDIS_URL to servers to use and CHROMIUM to a Chromium binary." >&2
        exit 1
    fi
    ;;
*)
    echo "usage: $0 venv|services" >&2
    exit 2
    ;;
esac
