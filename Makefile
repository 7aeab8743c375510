# sharehub: the two commands are `make demo` and `make test`.
.PHONY: demo demo-down test venv lock lock-upgrade lint kafka-start kafka-stop clean

demo: venv  ## Start Kafka, load demo governance and data, start the worker and the API, print a curl line.
	.venv/bin/sharehub demo up

demo-down:  ## Stop the demo's API, worker and broker.
	.venv/bin/sharehub demo down

test:  ## The whole suite against a real Kafka broker and PostgreSQL, started and stopped for the run.
	scripts/test.sh

venv:  ## .venv with exactly what uv.lock pins (refused when pyproject.toml and uv.lock disagree).
	scripts/venv.sh

lock:  ## Update uv.lock after a change to pyproject.toml's dependencies (keeps every other pin).
	scripts/uv.sh lock

lock-upgrade:  ## Move every pin in uv.lock to the newest release the ranges allow; run `make test` after.
	scripts/uv.sh lock --upgrade

lint: venv
	.venv/bin/ruff check sharehub connectors projections services tooling tests bench
	.venv/bin/mypy

kafka-start: venv
	.venv/bin/sharehub kafka start

kafka-stop:
	.venv/bin/sharehub kafka stop

clean: demo-down
	rm -rf .sharehub .sharehub-test .sharehub-chaos

.PHONY: bench bench-scale bench-backfill bench-purge bench-audit-scale bench-growth bench-profile
EVENTS_PROFILED ?= 100000
MEMBERS ?= 5000000
MEMBERS_BACKFILL ?= 1000000
EVENTS ?= 5000000
ROWS ?= 5000000

bench: venv  ## The benchmark suite: the hub against plain baselines; writes BENCHMARKS.md and bench/results/.
	.venv/bin/python -m bench

bench-scale: venv  ## MEMBERS (5,000,000) party members through publish, projection and query; hours on 2 cores (SCALE_ON=postgres: PostgreSQL read models).
	.venv/bin/python -m bench scale --members $(MEMBERS) $(if $(filter postgres,$(SCALE_ON)),--postgres)

bench-backfill: venv  ## A consumer's backfill of MEMBERS_BACKFILL (1,000,000) members beside the live stream: its rate, the others' freshness.
	.venv/bin/python -m bench backfill --members $(MEMBERS_BACKFILL)

bench-purge: venv  ## Time from an agreement's end on the log to the consumer losing access (R5).
	.venv/bin/python -m bench purge

bench-audit-scale: venv  ## EVENTS (5,000,000) party-members events: a plain read, the audit with 1 worker and one per CPU.
	.venv/bin/python -m bench audit-scale --events $(EVENTS)

bench-growth: venv  ## ROWS (5,000,000) rows into a read model: its write rate as it grows, against a plain loop (GROWTH_ON=postgres: PostgreSQL).
	.venv/bin/python -m bench read-model-growth --rows $(ROWS) $(if $(filter postgres,$(GROWTH_ON)),--postgres)

bench-profile: venv  ## py-spy flame graphs (bench/results/flame-*.svg) of publishing and projecting EVENTS_PROFILED (100,000).
	.venv/bin/python -m bench profile --events $(EVENTS_PROFILED)

.PHONY: fuzz
FUZZ_EXAMPLES ?= 1000000

fuzz: venv  ## Hostile input at length: FUZZ_EXAMPLES (1,000,000) inputs to each decoder; failures kept in tests/fuzz/regressions/.
	SHAREHUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) .venv/bin/python -m pytest tests/fuzz -q -p no:cacheprovider --timeout=0 --durations=0

.PHONY: chaos
CHAOS_HOME ?= $(CURDIR)/.sharehub-chaos

chaos: venv  ## Faults under publish and query load on a 3-node cluster (see RELIABILITY.md); not in `make test`. As root (the full-disk volume, the partition's network namespaces).
	mkdir -p $(CHAOS_HOME)
	env -u SHAREHUB_KAFKA_BOOTSTRAP .venv/bin/python -m pytest tests/e2e/test_kafka_cluster.py -m cluster -q
	env -u SHAREHUB_KAFKA_BOOTSTRAP SHAREHUB_HOME=$(CHAOS_HOME) .venv/bin/python -m bench.chaos; \
	  status=$$?; env -u SHAREHUB_KAFKA_BOOTSTRAP SHAREHUB_HOME=$(CHAOS_HOME) .venv/bin/sharehub kafka stop; exit $$status

.PHONY: soak
SOAK_MINUTES ?= 30

soak: venv  ## SOAK_MINUTES (30) at 2,000 events/s published and 500 queries/s on a hub and broker of its own; a chart and a verdict (see RELIABILITY.md); not in `make test`.
	env -u SHAREHUB_KAFKA_BOOTSTRAP .venv/bin/python -m bench.soak --minutes $(SOAK_MINUTES) --events-per-s 2000 --queries-per-s 500
