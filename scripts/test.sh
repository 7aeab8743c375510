#!/usr/bin/env bash
# The whole test suite against real components: a local Kafka broker (KRaft) and a PostgreSQL server are
# started for the run and stopped afterwards, whatever happens. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
.venv/bin/ruff check sharehub connectors projections services tooling tests bench
.venv/bin/mypy

# SoftHSM2 for the PKCS#11 key-encryption key's tests (each makes its own token under its tmp dir).
scripts/softhsm.sh install >/dev/null || echo "test run: no SoftHSM2, the PKCS#11 tests will be skipped" >&2
# Debian's Chromium for the console's browser tests.
if chromium=$(scripts/browser.sh install); then
  export SHAREHUB_CHROMIUM="$chromium"
else
  echo "test run: no Chromium, the console's browser tests will be skipped" >&2
fi

export SHAREHUB_HOME="$PWD/.sharehub-test"
export SHAREHUB_LOCAL_KAFKA_PORT="${SHAREHUB_TEST_KAFKA_PORT:-29592}"
rm -rf "$SHAREHUB_HOME"
mkdir -p "$SHAREHUB_HOME"

started_kafka=""
started_pg=""
cleanup() {
  status=$?
  # Hub processes a test started and could not stop (the run was interrupted): a supervised worker would
  # go on restarting its worker. They all run this clone's interpreter.
  pkill -f "^$PWD/.venv/bin/python -m services " 2>/dev/null || true
  [ -n "$started_kafka" ] && env -u SHAREHUB_KAFKA_BOOTSTRAP .venv/bin/sharehub kafka stop >/dev/null 2>&1 || true
  [ -n "$started_pg" ] && scripts/postgres.sh stop || true
  exit $status
}
trap cleanup EXIT INT TERM

if [ -z "${SHAREHUB_KAFKA_BOOTSTRAP:-}" ]; then
  started_kafka=1
  export SHAREHUB_KAFKA_BOOTSTRAP=$(.venv/bin/sharehub kafka start | tail -n 1)
  # The broker's super user, which each test hub's governance uses (owner-only file, made by the broker).
  export SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE="$SHAREHUB_HOME/kafka/admin.password"
  # The hub CA that issued the broker's certificate, which every test hub's clients verify it against.
  export SHAREHUB_KAFKA_CA_FILE="$SHAREHUB_HOME/tls/ca.pem"
  # Its listener for principals known by a client certificate (mutual TLS): two ports up.
  export SHAREHUB_KAFKA_MTLS_BOOTSTRAP="127.0.0.1:$((SHAREHUB_LOCAL_KAFKA_PORT + 2))"
fi
if [ -z "${SHAREHUB_TEST_POSTGRES_URL:-}" ]; then
  started_pg=1
  export SHAREHUB_TEST_POSTGRES_URL=$(scripts/postgres.sh start | tail -n 1)
fi
echo "test run: Kafka at $SHAREHUB_KAFKA_BOOTSTRAP, PostgreSQL at $SHAREHUB_TEST_POSTGRES_URL" >&2

# The suite on SHAREHUB_TEST_WORKERS processes (default 2, one per core of CI's machine), a file's tests in
# one process (its shared fixtures are made once); the slowest tests listed, so that the suite's time stays
# within its budget (30 minutes on 2 cores). SHAREHUB_TEST_WORKERS=0 runs it in this one process.
.venv/bin/python -m pytest -n "${SHAREHUB_TEST_WORKERS:-2}" --dist loadfile --durations=40 "$@"
