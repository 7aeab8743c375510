"""The soak: ``python -m bench.soak --minutes 30 --events-per-s 2000 --queries-per-s 500`` (``make soak``).

A hub of its own (``party-members`` and its two read models, SQLite, as the scale run's) on a broker of its
own, the real projection worker (``sharehub project``) and the real query API (``sharehub serve``, HTTPS);
then two load processes for the given minutes: new party members published at the events rate by the
hub's own publisher (:mod:`bench.soak.publish_load`) and pages of a read model read at the queries rate
(:mod:`bench.soak.query_load`), both open loops. Every interval (10 s): events acknowledged/s, queries
answered/s, the interval's query p50/p99, errors, each read model's lag and the RSS of the worker, the API
and both loads (:mod:`bench.soak.watch`). Afterwards, at rest: every acknowledged event in every read model,
no duplicate, each read model hashing like a replay of the log, ``audit verify`` clean. The rule that
passes or fails it is :mod:`bench.soak.verdict`; the run writes ``bench/results/soak.json`` and the chart
``bench/results/soak.svg``, prints the checks and exits 1 if any failed.

One broker, not the three-node cluster of ``make chaos``: three JVMs replicating 2,000 events a second
would take the cores the hub's own processes are measured on, and losing a node is chaos's subject, not
the soak's (``--brokers`` is not offered for that reason).
"""
