#!/usr/bin/env bash
# Create the Docker secrets docker-compose.yml expects (owner-only, never committed: .sharehub/ is ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.sharehub/compose
mkdir -p "$dir"
chmod 700 "$dir"
if [ ! -s "$dir/db_password" ]; then
  (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$dir/db_password")
  echo "created $dir/db_password" >&2
fi
