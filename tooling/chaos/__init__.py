"""``make chaos``: faults against the three-node cluster under a sustained publish, and the count of what
survived. See :mod:`tooling.chaos.runner` (the scenarios) and :mod:`tooling.chaos.load` (the load and the
count)."""
