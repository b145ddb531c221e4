#!/usr/bin/env bash
# Prepare this checkout for tests and the demo; safe to run again (it skips what is done).
#   - .venv in the repo root (Python >= 3.11) with tilewatch installed editable, extras
#     [test] and, when pyproject.toml defines them, [demo] and [confluent];
#   - the Debian packages prometheus and prometheus-alertmanager, when their binaries are
#     missing (apt-get, through sudo when not root);
#   - the Debian packages chromium and chromium-driver (the tile page's browser tests), when
#     /usr/bin/chromium or /usr/bin/chromedriver is missing.
# Environment: PYTHON=/path/to/python3.x picks the interpreter for a new .venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

# --- Python virtualenv -------------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
    python=""
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            python="$candidate"
            break
        fi
    done
    [[ -n "$python" ]] || die "tilewatch needs Python >= 3.11; found: $(python3 --version 2>&1 || echo 'no python3'). Install python3.11+ or set PYTHON=/path/to/python3.11"
    say "creating .venv with $("$python" --version 2>&1)"
    "$python" -m venv .venv || die "'$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi
python_ok .venv/bin/python || die ".venv has $(.venv/bin/python --version 2>&1), tilewatch needs >= 3.11: remove .venv and run again"

extras="test"
if grep -Eq '^[[:space:]]*demo[[:space:]]*=' pyproject.toml; then
    extras="$extras,demo"
fi
# The broker tests run against both Kafka clients: kafka-python and confluent-kafka.
if grep -Eq '^[[:space:]]*confluent[[:space:]]*=' pyproject.toml; then
    extras="$extras,confluent"
fi
# Reinstall only when pyproject.toml (or the extras) changed: the install is editable.
stamp=".venv/.tilewatch-setup"
want="$(cat pyproject.toml; echo "extras=$extras")"
want="$(printf '%s' "$want" | .venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say ".venv is up to date"
else
    say "upgrading pip"
    .venv/bin/python -m pip install --quiet --upgrade pip
    say "installing tilewatch[$extras] (editable)"
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    printf '%s\n' "$want" >"$stamp"
fi

# --- Prometheus and Alertmanager (Debian packages) ---------------------------------------
if [[ -x /usr/bin/prometheus && -x /usr/bin/prometheus-alertmanager ]]; then
    say "prometheus and alertmanager are installed"
else
    command -v apt-get >/dev/null 2>&1 \
        || die "/usr/bin/prometheus or /usr/bin/prometheus-alertmanager is missing and there is no apt-get: install Prometheus and Alertmanager by hand"
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "installing the prometheus packages needs root or sudo"
        sudo=(sudo)
    fi
    say "installing the Debian packages prometheus and prometheus-alertmanager"
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    # The packages try to start their services; tilewatch does not use them, and in a
    # container without an init system that step may fail: only the binaries matter.
    if ! ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends prometheus prometheus-alertmanager >/dev/null; then
        say "apt-get reported an error (often the service start); checking the binaries"
    fi
    for bin in /usr/bin/prometheus /usr/bin/promtool /usr/bin/prometheus-alertmanager /usr/bin/amtool; do
        [[ -x "$bin" ]] || die "$bin is still missing after apt-get install"
    done
    say "prometheus and alertmanager installed"
fi
# --- Chromium and its WebDriver (Debian packages), for the tile page's browser tests ------
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    say "chromium and chromium-driver are installed"
else
    command -v apt-get >/dev/null 2>&1 \
        || die "/usr/bin/chromium or /usr/bin/chromedriver is missing and there is no apt-get: install Chromium and its driver by hand"
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "installing the chromium packages needs root or sudo"
        sudo=(sudo)
    fi
    say "installing the Debian packages chromium and chromium-driver"
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends chromium chromium-driver >/dev/null \
        || die "apt-get install chromium chromium-driver failed"
    for bin in /usr/bin/chromium /usr/bin/chromedriver; do
        [[ -x "$bin" ]] || die "$bin is still missing after apt-get install"
    done
    say "chromium and chromium-driver installed"
fi
say "done"
