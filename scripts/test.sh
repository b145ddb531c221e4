#!/usr/bin/env bash
# Run the test suite in .venv (made by scripts/setup.sh); arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
