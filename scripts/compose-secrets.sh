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
# The hub CA (its key encrypted under a passphrase beside it, both owner-only) and the certificates it
# issues to the broker (reached as `kafka` in the stack) and the API (`api`, and `localhost` from the host,
# where its port is published). Kept while still good; made with the repository's own tool.
[ -x .venv/bin/sharehub ] || scripts/venv.sh
SHAREHUB_HOME="$dir" .venv/bin/sharehub tls server kafka --dns kafka >/dev/null
# The nodes of the three-node profile (`--profile cluster`), each with a certificate of its own.
for node in 1 2 3; do
  SHAREHUB_HOME="$dir" .venv/bin/sharehub tls server "kafka-$node" --dns "kafka-$node" >/dev/null
done
SHAREHUB_HOME="$dir" .venv/bin/sharehub tls server api --dns api >/dev/null
echo "hub CA: $dir/tls/ca.pem (give it to every client: curl --cacert, agencies' Kafka clients)" >&2
