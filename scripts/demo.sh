#!/usr/bin/env bash
# Run the tilewatch demo from .venv (made by scripts/setup.sh); arguments go to `tilewatch demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/tilewatch demo "$@"
