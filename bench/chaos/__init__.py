"""``make chaos``: faults against the three-node cluster under a sustained publish, and the count of what
survived. See :mod:`bench.chaos.runner` (the scenarios) and :mod:`bench.chaos.load` (the load and the
count)."""
