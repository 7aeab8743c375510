#!/usr/bin/env bash
# Make .venv hold exactly what uv.lock pins (hashes checked), for the runtime and the dev tools.
# Refused, with .venv untouched, when pyproject.toml and uv.lock disagree: run `make lock` then.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "sharehub needs Python >= 3.11 (found $("$PY" --version))" >&2; exit 1; }
scripts/uv.sh sync --quiet --locked --extra dev --extra postgres --python "$PY" \
  || { echo "scripts/venv.sh: .venv not installed (if uv.lock is stale, run \`make lock\` and commit it)" >&2; exit 1; }
