"""The HTTP ingest gateway (``sharehub serve gateway``): agency systems without a Kafka client publish over
HTTPS, exactly once per ``Idempotency-Key``, through the exactly-once core (:mod:`connectors.exactly_once`).

- :mod:`.ingest`: one source per idempotency key, publishers and journals per dataset, answers kept.
- :mod:`.guard`: who calls (the agency's credential), how often (a rate per agency), how much (body limit).
- :mod:`.app`: the routes, the error shape and the OpenAPI document.
"""
