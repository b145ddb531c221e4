#!/usr/bin/env bash
# Run the test suite in .venv (made by scripts/setup.sh); arguments go to pytest.
#
# The suite runs on TILEWATCH_TEST_WORKERS pytest-xdist workers (default 2; 0 runs it in one
# process). Each worker starts its own embedded broker. Passing -n yourself overrides it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
workers="${TILEWATCH_TEST_WORKERS:-2}"
xdist=()
case " $* " in
    *" -n "* | *" -n"[0-9]* | *"--numprocesses"* | *" -p no:xdist "*) ;;
    *) if [[ "$workers" != 0 ]]; then xdist=(-n "$workers"); fi ;;
esac
exec .venv/bin/python -m pytest ${xdist[@]+"${xdist[@]}"} "$@"
