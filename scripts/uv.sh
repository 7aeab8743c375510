#!/usr/bin/env bash
# Run the pinned uv (scripts/uv-requirements.txt: one version, every wheel's hash), installing it into .uv/
# first when missing or when the pin changed. Arguments go to uv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
pin=scripts/uv-requirements.txt
if [ ! -x .uv/bin/uv ] || [ "$pin" -nt .uv/.installed ]; then
  rm -rf .uv
  "$PY" -m venv .uv
  .uv/bin/pip install -q --disable-pip-version-check --require-hashes --only-binary :all: --no-deps -r "$pin"
  touch .uv/.installed
fi
UV_PYTHON_DOWNLOADS=never exec .uv/bin/uv "$@"
