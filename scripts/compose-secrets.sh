#!/usr/bin/env bash
# Create the Docker secrets docker-compose.yml expects (owner-only, never committed: .sharehub/ is ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.sharehub/compose
mkdir -p "$dir"
chmod 700 "$dir"
for secret in db_password kafka_admin_password; do
  if [ ! -s "$dir/$secret" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$dir/$secret")
    echo "created $dir/$secret" >&2
  fi
done
